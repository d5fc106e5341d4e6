/* hdrscan.c - incremental header field capture (Message-ID). */
#include <string.h>
#include <strings.h>

#include "hdrscan.h"

void
hdrscan_init(struct hdrscan *h)
{
	h->done = 0;
	h->in_msgid = 0;
	h->linelen = 0;
	h->message_id[0] = '\0';
}

static void
append_value(struct hdrscan *h, const char *v, size_t n)
{
	size_t have = strlen(h->message_id);

	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
		n--;
	if (n == 0)
		return;
	if (have > 0 && have + 1 < sizeof(h->message_id))
		h->message_id[have++] = ' ';
	if (n > sizeof(h->message_id) - 1 - have)
		n = sizeof(h->message_id) - 1 - have;
	memcpy(h->message_id + have, v, n);
	h->message_id[have + n] = '\0';
}

/* A complete header line (without its LF, maybe with CR). */
static void
header_line(struct hdrscan *h, const char *line, size_t n)
{
	if (n > 0 && line[n - 1] == '\r')
		n--;
	if (n == 0) {
		h->done = 1;
		return;
	}
	if (line[0] == ' ' || line[0] == '\t') {        /* folded */
		if (h->in_msgid)
			append_value(h, line, n);
		return;
	}
	h->in_msgid = 0;
	if (n >= 11 && strncasecmp(line, "Message-ID:", 11) == 0 &&
	    h->message_id[0] == '\0') {
		h->in_msgid = 1;
		append_value(h, line + 11, n - 11);
	}
}

void
hdrscan_feed(struct hdrscan *h, const char *p, size_t n)
{
	while (n > 0 && !h->done) {
		const char *lf = memchr(p, '\n', n);
		size_t take = lf ? (size_t)(lf - p) : n;
		size_t room = sizeof(h->line) - h->linelen;
		size_t copy = take < room ? take : room;

		memcpy(h->line + h->linelen, p, copy);
		h->linelen += copy;
		if (lf == NULL)
			return;
		header_line(h, h->line, h->linelen);
		h->linelen = 0;
		p = lf + 1;
		n -= take + 1;
	}
}

const char *
hdrscan_message_id(const struct hdrscan *h)
{
	return h->message_id[0] ? h->message_id : NULL;
}
