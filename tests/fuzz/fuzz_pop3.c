/* fuzz_pop3.c - libFuzzer harness for the pure POP3 parsers: every reply
 * line parser, and the dot decoder fed the input split at a point the input
 * itself chooses; the decoder's output must not depend on the split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_parse.h"

struct out {
	unsigned char buf[4096];
	size_t len;
	unsigned long long total;
};

static int
collect(void *arg, const char *p, size_t n)
{
	struct out *o = arg;
	size_t room = sizeof(o->buf) - o->len;

	memcpy(o->buf + o->len, p, n < room ? n : room);
	o->len += n < room ? n : room;
	o->total += n;
	return 0;
}

static size_t
decode(const uint8_t *data, size_t size, size_t cut, struct out *o, int *done)
{
	struct dot_decoder d;
	size_t used = 0, c;

	dot_decoder_init(&d);
	*done = 0;
	if (dot_decode(&d, (const char *)data, cut, &c, collect, o) == DOT_DONE) {
		*done = 1;
		return c;
	}
	used = c;
	if (dot_decode(&d, (const char *)data + used, size - used, &c, collect,
	    o) == DOT_DONE)
		*done = 1;
	return used + c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[POP3_LINE_MAX + 1], uid[POP3_UID_MAX + 1];
	struct pop3_caps caps;
	unsigned num;
	unsigned long long sz;
	const char *text;
	size_t n = size < POP3_LINE_MAX ? size : POP3_LINE_MAX;

	memcpy(line, data, n);
	line[n] = '\0';
	(void)pop3_status(line, &text);
	(void)pop3_err_kind(line, FAIL_PROTO);
	(void)pop3_is_continuation(line, &text);
	(void)pop3_parse_uidl(line, &num, uid);
	(void)pop3_parse_list(line, &num, &sz);
	memset(&caps, 0, sizeof(caps));
	pop3_caps_line(&caps, line);
	pop3_caps_greeting(&caps, line);

	static struct out a, b;
	int done_a, done_b;
	size_t cut = size ? data[0] % (size + 1) : 0;

	a.len = a.total = b.len = b.total = 0;
	size_t used_a = decode(data, size, size, &a, &done_a);
	size_t used_b = decode(data, size, cut, &b, &done_b);
	if (done_a != done_b || used_a != used_b || a.total != b.total ||
	    a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0)
		abort();
	return 0;
}
