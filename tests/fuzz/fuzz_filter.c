/* fuzz_filter.c - libFuzzer harness: any bytes as a header block, run
 * through a few fixed filters; decoded values stay within their caps. The
 * first bytes also go to filter_parse_size(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct filter *list[4];

static struct filter *
mk(const char *name, const char *k1, const char *v1, const char *k2,
    const char *v2, const char *action)
{
	struct filter *fl = filter_new(name);
	const char *err;

	if (filter_set(fl, k1, v1, &err) || (k2 && filter_set(fl, k2, v2, &err)) ||
	    filter_set(fl, "action", action, &err) || filter_finish(fl, &err))
		abort();
	return fl;
}

static void
setup(void)
{
	list[0] = mk("spam", "header", "X-Spam-Flag: ^yes$", "header",
	    "X-Spam-Status: ^yes", "skip");
	list[1] = mk("subj", "header", "Subject: gr\xc3\xbc\xc3\x9f" "e|\xe2\x82\xac",
	    "match", "any", "delete");
	list[2] = mk("to", "to", "@list\\.example", "larger_than", "1k",
	    "deliver:maildir:/tmp/junk");
	list[3] = mk("from", "from", "^a", "match", "all", "skip");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct filter_headers *h;
	struct filter_msg m;
	const char *v, *raw;
	char num[24];
	unsigned long long n;

	if (list[0] == NULL)
		setup();
	h = filter_headers_parse((const char *)data, size);
	m.size = size * 3;
	m.headers = h;
	(void)filter_decide(list, 4, &m);
	if (filter_headers_count(h) > size / 2 + 1)
		abort();
	raw = filter_headers_get_raw(h, "Subject");
	v = filter_headers_get(h, "Subject");
	if (raw && strlen(raw) > size)
		abort();
	if (v != raw && (strlen(v) > FILTER_DECODED_MAX ||
	    strlen(v) > 3 * strlen(raw)))
		abort();
	filter_headers_free(h);

	memset(num, 0, sizeof(num));
	memcpy(num, data, size < sizeof(num) - 1 ? size : sizeof(num) - 1);
	(void)filter_parse_size(num, &n);
	return 0;
}
