/* pop3_parse.c - pure POP3 reply parsing and the multi-line body decoder.
 *
 * Nothing here does I/O or allocates. Every function takes a NUL-terminated
 * line (without its CRLF) that may hold any bytes a hostile server sends.
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "pop3_parse.h"
#include "sasl.h"

int
pop3_status(const char *line, const char **text)
{
	const char *rest;
	int ok;

	if (strncmp(line, "+OK", 3) == 0) {
		ok = 1;
		rest = line + 3;
	} else if (strncmp(line, "-ERR", 4) == 0) {
		ok = 0;
		rest = line + 4;
	} else
		return -1;
	if (*rest == ' ')
		rest++;
	else if (*rest != '\0')
		return -1;
	if (text != NULL)
		*text = rest;
	return ok;
}

/* 1 if the code at p (after '[') is `name`, alone or with a sub-code. */
static int
code_is(const char *p, size_t len, const char *name)
{
	size_t nl = strlen(name);

	if (len < nl || strncasecmp(p, name, nl) != 0)
		return 0;
	return len == nl || p[nl] == '/';
}

enum fail_kind
pop3_err_kind(const char *text, enum fail_kind dflt)
{
	const char *end;
	size_t len;

	if (text == NULL || text[0] != '[')
		return dflt;
	text++;
	end = strchr(text, ']');
	if (end == NULL)
		return dflt;
	len = (size_t)(end - text);
	if (code_is(text, len, "AUTH"))
		return FAIL_AUTH;
	if (code_is(text, len, "IN-USE") || code_is(text, len, "LOGIN-DELAY") ||
	    code_is(text, len, "SYS/TEMP"))
		return FAIL_TEMP;
	return dflt;
}

int
pop3_is_continuation(const char *line, const char **b64)
{
	if (line[0] != '+')
		return 0;
	if (line[1] == '\0') {
		*b64 = line + 1;
		return 1;
	}
	if (line[1] != ' ')
		return 0;
	*b64 = line + 2;
	return 1;
}

/* Decimal number without sign or overflow; *end is set past it. */
static int
parse_ull(const char *s, const char **end, unsigned long long max,
    unsigned long long *out)
{
	unsigned long long v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*end = p;
	*out = v;
	return 0;
}

/* A message number: 1..UINT_MAX, followed by one space. */
static int
parse_msgnum(const char *line, const char **rest, unsigned *num)
{
	unsigned long long v;
	const char *p;

	if (parse_ull(line, &p, UINT_MAX, &v) == -1 || v == 0 || *p != ' ')
		return -1;
	*num = (unsigned)v;
	*rest = p + 1;
	return 0;
}

int
pop3_parse_uidl(const char *line, unsigned *num, char uid[POP3_UID_MAX + 1])
{
	const char *p;
	size_t len;

	if (parse_msgnum(line, &p, num) == -1)
		return -1;
	for (len = 0; p[len] != '\0'; len++) {
		unsigned char ch = (unsigned char)p[len];

		if (ch < 0x21 || ch > 0x7e || len >= POP3_UID_MAX)
			return -1;
	}
	if (len == 0)
		return -1;
	memcpy(uid, p, len);
	uid[len] = '\0';
	return 0;
}

int
pop3_parse_list(const char *line, unsigned *num, unsigned long long *size)
{
	const char *p;

	if (parse_msgnum(line, &p, num) == -1)
		return -1;
	if (parse_ull(p, &p, ULLONG_MAX, size) == -1)
		return -1;
	if (*p != '\0' && *p != ' ')
		return -1;
	return 0;
}

/* Length of the word at p (up to a space or the end). */
static size_t
word_len(const char *p)
{
	size_t n = 0;

	while (p[n] != '\0' && p[n] != ' ')
		n++;
	return n;
}

static void
caps_sasl(struct pop3_caps *caps, const char *p)
{
	for (;;) {
		size_t n;
		enum sasl_mech m;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		n = word_len(p);
		m = sasl_mech_parse(p, n);
		if (m != SASL_NONE && (unsigned)m < sizeof(caps->sasl) * CHAR_BIT)
			caps->sasl |= 1u << m;
		p += n;
	}
}

void
pop3_caps_line(struct pop3_caps *caps, const char *line)
{
	size_t n = word_len(line);

#define KW(s) (n == sizeof(s) - 1 && strncasecmp(line, s, n) == 0)
	if (KW("TOP"))
		caps->top = 1;
	else if (KW("UIDL"))
		caps->uidl = 1;
	else if (KW("USER"))
		caps->user = 1;
	else if (KW("PIPELINING"))
		caps->pipelining = 1;
	else if (KW("STLS"))
		caps->stls = 1;
	else if (KW("SASL"))
		caps_sasl(caps, line + n);
#undef KW
}

void
pop3_caps_greeting(struct pop3_caps *caps, const char *greeting)
{
	const char *lt, *p;
	int at = 0;

	caps->apop = 0;
	caps->apop_stamp[0] = '\0';
	lt = strchr(greeting, '<');
	if (lt == NULL)
		return;
	for (p = lt + 1; *p != '>'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch < 0x21 || ch > 0x7e || ch == '<')
			return;
		if (ch == '@')
			at = 1;
	}
	/* p is at '>': the stamp is lt..p inclusive, and must fit. */
	if (!at || (size_t)(p - lt) + 2 > sizeof(caps->apop_stamp) || p == lt + 1)
		return;
	memcpy(caps->apop_stamp, lt, (size_t)(p - lt) + 1);
	caps->apop_stamp[p - lt + 1] = '\0';
	caps->apop = 1;
}

/*
 * The body decoder. States:
 *   SOL    at the start of a line
 *   MID    inside a line (payload up to the next LF)
 *   DOT    a '.' started the line and was dropped
 *   DOTCR  ".\r" seen; the CR is held back until we know it is not the end
 *   DONE   the terminator line was consumed
 * Payload is emitted as spans of the input: a span is cut only where a
 * stuffing dot is dropped, so a normal read yields one callback.
 */
enum { DOT_SOL = 0, DOT_MID, DOT_DOT, DOT_DOTCR, DOT_END };

void
dot_decoder_init(struct dot_decoder *d)
{
	d->state = DOT_SOL;
	d->bytes = 0;
}

static int
dot_emit(struct dot_decoder *d, const char *p, size_t n, dot_out_fn out, void *arg)
{
	if (n == 0)
		return 0;
	d->bytes += n;
	if (out == NULL)
		return 0;
	return out(arg, p, n) == 0 ? 0 : -1;
}

#define EMIT(p, n) do {                                                 \
	if (dot_emit(d, (p), (n), out, arg) == -1) {                    \
		*consumed = i;                                          \
		return DOT_SINK_FAILED;                                 \
	}                                                               \
} while (0)

enum dot_result
dot_decode(struct dot_decoder *d, const char *in, size_t n, size_t *consumed,
    dot_out_fn out, void *arg)
{
	size_t i = 0, span = 0;
	const char *lf;

	while (i < n && d->state != DOT_END) {
		switch (d->state) {
		case DOT_SOL:
			if (in[i] == '.') {
				EMIT(in + span, i - span);
				span = ++i;
				d->state = DOT_DOT;
			} else
				d->state = DOT_MID;
			break;
		case DOT_MID:
			lf = memchr(in + i, '\n', n - i);
			if (lf == NULL) {
				i = n;
			} else {
				i = (size_t)(lf - in) + 1;
				d->state = DOT_SOL;
			}
			break;
		case DOT_DOT:
			if (in[i] == '\r') {
				EMIT(in + span, i - span);
				span = ++i;
				d->state = DOT_DOTCR;
			} else if (in[i] == '\n') {
				EMIT(in + span, i - span);
				d->state = DOT_END;
				i++;
			} else
				d->state = DOT_MID;
			break;
		case DOT_DOTCR:
			if (in[i] == '\n') {
				EMIT(in + span, i - span);
				d->state = DOT_END;
				i++;
			} else {
				/* ".\r" + other: a stuffed line starting with CR. */
				EMIT(in + span, i - span);
				span = i;
				d->state = DOT_MID;
				EMIT("\r", 1);
			}
			break;
		}
	}
	if (d->state == DOT_END) {
		*consumed = i;
		return DOT_DONE;
	}
	EMIT(in + span, n - span);
	*consumed = n;
	return DOT_MORE;
}
