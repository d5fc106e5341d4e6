/* imap_parse.c - the pure, incremental IMAP response parser (no I/O).
 *
 * Shape: bytes are cut into lines (a LF search over new bytes only; a partial
 * line waits in p->line). A complete line is tokenized once, in a loop over
 * its bytes, into values appended to the open list on an explicit stack (no
 * recursion, depth capped). A line that ends in "{N}" is followed by a
 * literal: counted into the arena (small) or handed to the caller (streamed);
 * the next line continues the same response with the same open lists.
 *
 * Every value and string of a response lives in one arena, capped at
 * max_response bytes and released as a unit when the next response starts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"
#include "xmalloc.h"

#define ARENA_CHUNK     16384
#define ARENA_ALIGN     _Alignof(max_align_t)
#define DEPTH_MAX       1024
#define SNIP            40      /* server text quoted in an error message */

struct chunk {
	struct chunk *next;
	size_t size, used;
	max_align_t data[];
};

enum pstate { P_LINE, P_LITERAL, P_STREAM, P_DONE, P_ERROR };
enum rstate { R_HEAD, R_VALUES };
enum { V_ERROR = -1, V_END, V_LITERAL };
enum { H_ERROR = -1, H_DONE, H_VALUES };

struct imap_parser {
	struct imap_limits lim;
	const char *const *stream_items;
	enum pstate state;
	enum rstate rstate;
	char *line;                     /* partial line */
	size_t linelen, linecap;
	struct chunk *chunks;           /* the response arena */
	size_t used;
	struct imap_response *resp;
	struct imap_value *root;
	struct imap_value **stack;      /* open lists; stack[0] is the root */
	unsigned sp;
	unsigned nvalues;
	int fetch;                      /* resp is a FETCH */
	uint64_t lit_size;              /* header just parsed */
	int lit_binary;
	struct imap_value *lit;         /* small literal being filled */
	size_t lit_got;
	struct imap_literal ev;
	struct fail err;
};

/* Bytes that end an atom (besides '[' handling and control bytes). */
static const unsigned char atom_stop[256] = {
	[' '] = 1, ['('] = 1, [')'] = 1, ['{'] = 1, ['"'] = 1, [']'] = 1,
};

static int
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* ---- errors ---- */

static int perr(struct imap_parser *p, struct fail *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
perr(struct imap_parser *p, struct fail *f, const char *fmt, ...)
{
	va_list ap;

	p->err.kind = FAIL_PROTO;
	va_start(ap, fmt);
	vsnprintf(p->err.msg, sizeof(p->err.msg), fmt, ap);
	va_end(ap);
	p->state = P_ERROR;
	if (f != NULL)
		*f = p->err;
	return -1;
}

void
imap_sanitize(char *dst, size_t dstsize, const char *s, size_t len)
{
	size_t n = len, i;

	if (dstsize == 0)
		return;
	if (n > dstsize - 1)
		n = dstsize >= 4 ? dstsize - 4 : dstsize - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = (c < 0x20 || c > 0x7e) ? '?' : (char)c;
	}
	if (n < len && dstsize >= 4) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
}

static const char *
snip(char *buf, size_t size, const char *s, size_t len)
{
	imap_sanitize(buf, size, s, len);
	return buf;
}

/* ---- arena ---- */

static void
arena_reset(struct imap_parser *p)
{
	struct chunk *c, *next, *keep = NULL;

	for (c = p->chunks; c != NULL; c = next) {
		next = c->next;
		if (keep == NULL && c->size == ARENA_CHUNK) {
			keep = c;
			keep->used = 0;
			keep->next = NULL;
		} else
			free(c);
	}
	p->chunks = keep;
	p->used = 0;
}

static void *
arena_alloc(struct imap_parser *p, size_t n, struct fail *f)
{
	struct chunk *c = p->chunks, *nc;
	size_t size;
	void *ret;

	n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (n > p->lim.max_response - p->used) {
		perr(p, f, "IMAP: response larger than %zu bytes",
		    p->lim.max_response);
		return NULL;
	}
	p->used += n;
	if (c != NULL && c->size - c->used >= n) {
		ret = (char *)c->data + c->used;
		c->used += n;
		return ret;
	}
	size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
	nc = xmalloc(sizeof(*nc) + size);
	nc->size = size;
	nc->used = n;
	if (c != NULL && n > ARENA_CHUNK / 4) {
		/* A big one gets its own chunk; the head keeps its room. */
		nc->next = c->next;
		c->next = nc;
	} else {
		nc->next = c;
		p->chunks = nc;
	}
	return nc->data;
}

static char *
arena_str(struct imap_parser *p, const char *s, size_t len, struct fail *f)
{
	char *d = arena_alloc(p, len + 1, f);

	if (d == NULL)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* ---- set-up ---- */

void
imap_limits_default(struct imap_limits *lim)
{
	lim->max_line = 1024 * 1024;
	lim->max_atom = 64 * 1024;
	lim->max_depth = 32;
	lim->max_args = 200000;
	lim->max_small_literal = 64 * 1024;
	lim->max_literal = 2ULL * 1024 * 1024 * 1024;
	lim->max_response = 8 * 1024 * 1024;
}

struct imap_parser *
imap_parser_new(const struct imap_limits *lim, const char *const *stream_items)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	struct imap_limits d;

	imap_limits_default(&d);
	if (lim != NULL) {
		p->lim = *lim;
		if (p->lim.max_line == 0)
			p->lim.max_line = d.max_line;
		if (p->lim.max_atom == 0)
			p->lim.max_atom = d.max_atom;
		if (p->lim.max_depth == 0)
			p->lim.max_depth = d.max_depth;
		if (p->lim.max_args == 0)
			p->lim.max_args = d.max_args;
		if (p->lim.max_literal == 0)
			p->lim.max_literal = d.max_literal;
		if (p->lim.max_response == 0)
			p->lim.max_response = d.max_response;
	} else
		p->lim = d;
	if (p->lim.max_depth > DEPTH_MAX)
		p->lim.max_depth = DEPTH_MAX;
	if (p->lim.max_line > SIZE_MAX / 2)
		p->lim.max_line = SIZE_MAX / 2;
	p->stream_items = stream_items;
	p->stack = xcalloc(p->lim.max_depth + 1, sizeof(*p->stack));
	p->state = P_LINE;
	p->rstate = R_HEAD;
	return p;
}

void
imap_parser_free(struct imap_parser *p)
{
	if (p == NULL)
		return;
	arena_reset(p);
	free(p->chunks);
	free(p->line);
	free(p->stack);
	free(p);
}

void
imap_parser_reset(struct imap_parser *p)
{
	arena_reset(p);
	p->state = P_LINE;
	p->rstate = R_HEAD;
	p->linelen = 0;
	p->resp = NULL;
	p->root = NULL;
	p->lit = NULL;
	p->sp = 0;
	memset(&p->err, 0, sizeof(p->err));
}

static int
start_response(struct imap_parser *p, struct fail *f)
{
	struct imap_response *r = arena_alloc(p, sizeof(*r), f);
	struct imap_value *root = arena_alloc(p, sizeof(*root), f);

	if (r == NULL || root == NULL)
		return -1;
	memset(r, 0, sizeof(*r));
	memset(root, 0, sizeof(*root));
	root->type = IMAP_V_LIST;
	r->args = root;
	r->code.text = "";
	p->resp = r;
	p->root = root;
	p->stack[0] = root;
	p->sp = 0;
	p->nvalues = 0;
	p->fetch = 0;
	return 0;
}

/* ---- values ---- */

/* A FETCH is one list of name/value pairs whose names are atoms; checked as
 * values arrive, so that a literal at depth 1 knows its item name. */
static int
fetch_check(struct imap_parser *p, const struct imap_value *list,
    enum imap_vtype t, struct fail *f)
{
	if (p->sp == 0 && (list->len > 0 || t != IMAP_V_LIST))
		return perr(p, f, "IMAP: malformed FETCH response");
	if (p->sp == 1 && list->len % 2 == 0 && t != IMAP_V_ATOM)
		return perr(p, f, "IMAP: FETCH item name expected");
	return 0;
}

static struct imap_value *
new_value(struct imap_parser *p, enum imap_vtype t, struct fail *f)
{
	struct imap_value *list = p->stack[p->sp], *v;

	if (++p->nvalues > p->lim.max_args) {
		perr(p, f, "IMAP: more than %u values in one response",
		    p->lim.max_args);
		return NULL;
	}
	if (p->fetch && fetch_check(p, list, t, f) == -1)
		return NULL;
	v = arena_alloc(p, sizeof(*v), f);
	if (v == NULL)
		return NULL;
	memset(v, 0, sizeof(*v));
	v->type = t;
	if (list->last != NULL)
		list->last->next = v;
	else
		list->child = v;
	list->last = v;
	list->len++;
	return v;
}

/* Decimal digits s[0..len) (len > 0) to *out; -1 on overflow of max. */
static int
digits_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
quoted(struct imap_parser *p, const char *s, size_t len, size_t *pos,
    struct fail *f)
{
	size_t i, olen = 0, k;
	struct imap_value *v;
	char *d;

	for (i = *pos + 1; i < len && s[i] != '"'; i++, olen++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			if (i + 1 >= len) {
				i = len;
				break;
			}
			c = (unsigned char)s[++i];
			if (c != '"' && c != '\\') {
				char b[8];

				return perr(p, f, "IMAP: bad escape \\%s in quoted string",
				    snip(b, sizeof(b), s + i, 1));
			}
		} else if (c == '\0' || c == '\r')
			return perr(p, f, "IMAP: bad character 0x%02x in quoted string", c);
	}
	if (i >= len)
		return perr(p, f, "IMAP: unterminated quoted string");
	if ((v = new_value(p, IMAP_V_QUOTED, f)) == NULL ||
	    (d = arena_alloc(p, olen + 1, f)) == NULL)
		return -1;
	for (k = *pos + 1, olen = 0; k < i; k++) {
		if (s[k] == '\\')
			k++;
		d[olen++] = s[k];
	}
	d[olen] = '\0';
	v->s = d;
	v->len = olen;
	*pos = i + 1;
	return 0;
}

/* "{N}" / "{N+}" at s[*pos] ('{'), which must end the line. */
static int
literal_header(struct imap_parser *p, const char *s, size_t len, size_t pos,
    int binary, int in_code, struct fail *f)
{
	size_t i = pos + 1, start = i, ndig;
	uint64_t v = 0;
	int over;
	char b[SNIP];

	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	if ((ndig = i - start) == 0)
		return perr(p, f, "IMAP: bad literal header");
	over = digits_u64(s + start, ndig, UINT64_MAX, &v) == -1;
	if (i < len && s[i] == '+')
		i++;
	if (i >= len || s[i] != '}')
		return perr(p, f, "IMAP: bad literal header");
	if (i + 1 != len)
		return perr(p, f, "IMAP: text after a literal header");
	if (in_code)
		return perr(p, f, "IMAP: literal in a response code");
	if (over || v > p->lim.max_literal)
		return perr(p, f, "IMAP: literal of %s bytes exceeds the limit of %llu",
		    snip(b, sizeof(b), s + start, ndig),
		    (unsigned long long)p->lim.max_literal);
	p->lit_size = v;
	p->lit_binary = binary;
	return 0;
}

static int
atom(struct imap_parser *p, const char *s, size_t len, size_t *pos,
    struct fail *f)
{
	size_t i = *pos, start = i, n, k;
	struct imap_value *v;
	enum imap_vtype t = IMAP_V_NUMBER;
	char b[SNIP];

	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		if (c == '[') {
			/* A section: BODY[HEADER.FIELDS (FROM TO)] is one atom. */
			for (i++; i < len && s[i] != ']'; i++)
				if (is_ctl((unsigned char)s[i]))
					return perr(p, f, "IMAP: bad character 0x%02x in atom",
					    (unsigned char)s[i]);
			if (i >= len)
				return perr(p, f, "IMAP: unterminated '[' in atom");
			i++;
			continue;
		}
		if (atom_stop[c])
			break;
		if (is_ctl(c))
			return perr(p, f, "IMAP: bad character 0x%02x in atom", c);
		i++;
	}
	if (i == start)
		return perr(p, f, "IMAP: unexpected '%c'", s[i]);
	n = i - start;
	if (n > p->lim.max_atom)
		return perr(p, f, "IMAP: atom longer than %zu bytes", p->lim.max_atom);
	for (k = start; k < i; k++)
		if (s[k] < '0' || s[k] > '9') {
			t = IMAP_V_ATOM;
			break;
		}
	if (t == IMAP_V_ATOM && n == 3 && strncasecmp(s + start, "NIL", 3) == 0)
		t = IMAP_V_NIL;
	if ((v = new_value(p, t, f)) == NULL)
		return -1;
	if (t == IMAP_V_NUMBER &&
	    digits_u64(s + start, n, UINT64_MAX, &v->num) == -1)
		return perr(p, f, "IMAP: number %s out of range",
		    snip(b, sizeof(b), s + start, n));
	if ((v->s = arena_str(p, s + start, n, f)) == NULL)
		return -1;
	v->len = n;
	*pos = i;
	return 0;
}

/* Tokenize s[pos..len) into the open lists. V_END at the end of the line,
 * V_LITERAL if it ended with a literal header (p->lit_size). */
static int
parse_values(struct imap_parser *p, const char *s, size_t len, size_t pos,
    int in_code, struct fail *f)
{
	struct imap_value *v;

	while (pos < len) {
		switch (s[pos]) {
		case ' ':
			pos++;
			break;
		case '(':
			if (p->sp >= p->lim.max_depth)
				return perr(p, f, "IMAP: list nesting deeper than %u",
				    p->lim.max_depth);
			if ((v = new_value(p, IMAP_V_LIST, f)) == NULL)
				return V_ERROR;
			p->stack[++p->sp] = v;
			pos++;
			break;
		case ')':
			if (p->sp == 0)
				return perr(p, f, "IMAP: unexpected ')'");
			p->sp--;
			pos++;
			break;
		case '"':
			if (quoted(p, s, len, &pos, f) == -1)
				return V_ERROR;
			break;
		case '{':
			if (literal_header(p, s, len, pos, 0, in_code, f) == -1)
				return V_ERROR;
			return V_LITERAL;
		case '~':
			if (pos + 1 < len && s[pos + 1] == '{') {
				if (literal_header(p, s, len, pos + 1, 1, in_code, f) == -1)
					return V_ERROR;
				return V_LITERAL;
			}
			/* FALLTHROUGH */
		default:
			if (atom(p, s, len, &pos, f) == -1)
				return V_ERROR;
			break;
		}
	}
	return V_END;
}

/* ---- the head of a response ---- */

static const struct {
	const char *name;
	enum imap_rtype type;
} keywords[] = {
	{ "OK", IMAP_R_OK }, { "NO", IMAP_R_NO }, { "BAD", IMAP_R_BAD },
	{ "BYE", IMAP_R_BYE }, { "PREAUTH", IMAP_R_PREAUTH },
	{ "CAPABILITY", IMAP_R_CAPABILITY }, { "LIST", IMAP_R_LIST },
	{ "LSUB", IMAP_R_LSUB }, { "FLAGS", IMAP_R_FLAGS },
	{ "EXISTS", IMAP_R_EXISTS }, { "RECENT", IMAP_R_RECENT },
	{ "EXPUNGE", IMAP_R_EXPUNGE }, { "FETCH", IMAP_R_FETCH },
	{ "SEARCH", IMAP_R_SEARCH }, { "STATUS", IMAP_R_STATUS },
	{ "ENABLED", IMAP_R_ENABLED },
};

static enum imap_rtype
keyword_type(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strlen(keywords[i].name) == n &&
		    strncasecmp(keywords[i].name, s, n) == 0)
			return keywords[i].type;
	return IMAP_R_OTHER;
}

static int
is_status(enum imap_rtype t)
{
	return t <= IMAP_R_PREAUTH;
}

static int
code_has_args(const char *name)
{
	static const char *const known[] = {
		"UIDVALIDITY", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ", "CAPABILITY",
		"PERMANENTFLAGS", "BADCHARSET", "APPENDUID", "COPYUID",
	};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(name, known[i]) == 0)
			return 1;
	return 0;
}

static int
text_check(struct imap_parser *p, const char *s, size_t len, const char *what,
    struct fail *f)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] == '\0' || s[i] == '\r')
			return perr(p, f, "IMAP: bad character 0x%02x in %s",
			    (unsigned char)s[i], what);
	return 0;
}

/* "[NAME args]" at s[pos] == '['. */
static int
parse_code(struct imap_parser *p, const char *s, size_t len, size_t *pos,
    struct fail *f)
{
	struct imap_code *code = &p->resp->code;
	size_t i = *pos + 1, start = i;
	const char *close;
	struct imap_value *list;
	int r;

	for (; i < len && s[i] != ' ' && s[i] != ']'; i++)
		if (is_ctl((unsigned char)s[i]) || s[i] == '[')
			return perr(p, f, "IMAP: bad character 0x%02x in response code",
			    (unsigned char)s[i]);
	if (i == start)
		return perr(p, f, "IMAP: empty response code");
	if (i >= len)
		return perr(p, f, "IMAP: unterminated response code");
	if ((code->name = arena_str(p, s + start, i - start, f)) == NULL)
		return -1;
	if (s[i] == ' ')
		i++;
	close = memchr(s + i, ']', len - i);
	if (close == NULL)
		return perr(p, f, "IMAP: unterminated response code");
	if (text_check(p, s + i, (size_t)(close - s) - i, "response code", f) == -1 ||
	    (code->text = arena_str(p, s + i, (size_t)(close - s) - i, f)) == NULL)
		return -1;
	*pos = (size_t)(close - s) + 1;
	if (!code_has_args(code->name))
		return 0;
	if ((list = arena_alloc(p, sizeof(*list), f)) == NULL)
		return -1;
	memset(list, 0, sizeof(*list));
	list->type = IMAP_V_LIST;
	p->stack[0] = list;
	r = parse_values(p, s + i, (size_t)(close - s) - i, 0, 1, f);
	if (r == V_ERROR)
		return -1;
	if (p->sp != 0)
		return perr(p, f, "IMAP: unterminated list in response code");
	p->stack[0] = p->root;
	code->args = list;
	return 0;
}

/* After a status keyword: [" " ["[" code "]"] [" "] text]. */
static int
parse_status(struct imap_parser *p, const char *s, size_t len, size_t pos,
    struct fail *f)
{
	struct imap_response *r = p->resp;

	if (pos < len) {
		if (s[pos] != ' ')
			return perr(p, f, "IMAP: bad %s response", r->keyword);
		pos++;
		if (pos < len && s[pos] == '[' && r->type != IMAP_R_CONTINUE) {
			if (parse_code(p, s, len, &pos, f) == -1)
				return -1;
			if (pos < len && s[pos] == ' ')
				pos++;
		}
	}
	if (text_check(p, s + pos, len - pos, "response text", f) == -1 ||
	    (r->text = arena_str(p, s + pos, len - pos, f)) == NULL)
		return -1;
	return 0;
}

static int
tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' &&
	    c != '%' && c != '*' && c != '"' && c != '\\' && c != '+';
}

static int
parse_head(struct imap_parser *p, const char *s, size_t len, size_t *pos,
    struct fail *f)
{
	struct imap_response *r = p->resp;
	size_t i = 0, start;
	int has_num = 0;
	uint64_t num = 0;
	char b[SNIP];

	if (len == 0)
		return perr(p, f, "IMAP: empty response line");
	if (s[0] == '+') {
		r->type = IMAP_R_CONTINUE;
		r->keyword = "+";
		return parse_status(p, s, len, 1, f) == -1 ? H_ERROR : H_DONE;
	}
	if (s[0] == '*') {
		if (len < 2 || s[1] != ' ')
			return perr(p, f, "IMAP: expected a space after '*'");
		i = 2;
		if (i < len && s[i] >= '0' && s[i] <= '9') {
			for (start = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
				;
			if (digits_u64(s + start, i - start, UINT32_MAX, &num) == -1)
				return perr(p, f, "IMAP: number %s out of range",
				    snip(b, sizeof(b), s + start, i - start));
			if (i >= len || s[i] != ' ')
				return perr(p, f, "IMAP: expected a space after a number");
			i++;
			has_num = 1;
		}
	} else {
		for (; i < len && s[i] != ' '; i++)
			if (!tag_char((unsigned char)s[i]))
				return perr(p, f, "IMAP: bad character 0x%02x in tag",
				    (unsigned char)s[i]);
		if (i == 0)
			return perr(p, f, "IMAP: missing tag");
		if (i > 64 || i > p->lim.max_atom)
			return perr(p, f, "IMAP: tag longer than 64 bytes");
		if (i >= len)
			return perr(p, f, "IMAP: tagged response \"%s\" without a status",
			    snip(b, sizeof(b), s, i));
		if ((r->tag = arena_str(p, s, i, f)) == NULL)
			return H_ERROR;
		i++;
	}
	for (start = i; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (atom_stop[c] || c == '[' || is_ctl(c))
			break;
	}
	if (i == start || i - start > 64)
		return perr(p, f, "IMAP: bad response keyword \"%s\"",
		    snip(b, sizeof(b), s + start, len - start));
	if ((r->keyword = arena_str(p, s + start, i - start, f)) == NULL)
		return H_ERROR;
	r->type = keyword_type(s + start, i - start);
	if (r->tag != NULL && r->type > IMAP_R_BAD)
		return perr(p, f, "IMAP: tagged response is not OK, NO or BAD: %s",
		    snip(b, sizeof(b), s + start, i - start));
	if (has_num) {
		if (r->type != IMAP_R_EXISTS && r->type != IMAP_R_RECENT &&
		    r->type != IMAP_R_EXPUNGE && r->type != IMAP_R_FETCH)
			r->type = IMAP_R_OTHER;
		if (num == 0 && (r->type == IMAP_R_EXPUNGE || r->type == IMAP_R_FETCH))
			return perr(p, f, "IMAP: message number 0 in %s", r->keyword);
		r->num = (uint32_t)num;
	} else if (r->type >= IMAP_R_EXISTS && r->type <= IMAP_R_FETCH)
		return perr(p, f, "IMAP: %s without a message number", r->keyword);
	if (is_status(r->type))
		return parse_status(p, s, len, i, f) == -1 ? H_ERROR : H_DONE;
	p->fetch = r->type == IMAP_R_FETCH;
	*pos = i;
	return H_VALUES;
}

/* ---- shape checks of a complete response ---- */

static int
all_atoms(const struct imap_value *v, int numbers_too)
{
	for (; v != NULL; v = v->next)
		if (v->type != IMAP_V_ATOM &&
		    !(numbers_too && v->type == IMAP_V_NUMBER))
			return 0;
	return 1;
}

static int
list_of_atoms(const struct imap_value *v)
{
	return v != NULL && v->type == IMAP_V_LIST && all_atoms(v->child, 0);
}

static int
shape_ok(const struct imap_response *r)
{
	const struct imap_value *a = r->args, *v = a->child;

	switch (r->type) {
	case IMAP_R_EXISTS:
	case IMAP_R_RECENT:
	case IMAP_R_EXPUNGE:
		return a->len == 0;
	case IMAP_R_FETCH:
		return a->len == 1 && v->type == IMAP_V_LIST && v->len % 2 == 0;
	case IMAP_R_FLAGS:
		return a->len == 1 && list_of_atoms(v);
	case IMAP_R_LIST:
	case IMAP_R_LSUB:
		return a->len >= 3 && list_of_atoms(v) &&
		    (v->next->type == IMAP_V_NIL ||
		    (v->next->type == IMAP_V_QUOTED && v->next->len == 1)) &&
		    imap_value_is_string(v->next->next);
	case IMAP_R_STATUS:
		if (a->len != 2 || !imap_value_is_string(v) ||
		    v->next->type != IMAP_V_LIST || v->next->len % 2 != 0)
			return 0;
		for (v = v->next->child; v != NULL; v = v->next->next)
			if (v->type != IMAP_V_ATOM || v->next->type != IMAP_V_NUMBER)
				return 0;
		return 1;
	case IMAP_R_SEARCH:
		for (; v != NULL; v = v->next)
			if (v->type != IMAP_V_NUMBER &&
			    !(v->type == IMAP_V_LIST && v->next == NULL))
				return 0;
		return 1;
	case IMAP_R_CAPABILITY:
	case IMAP_R_ENABLED:
		return all_atoms(v, 1);
	default:
		return 1;
	}
}

static enum imap_event
finish(struct imap_parser *p, struct fail *f)
{
	char b[SNIP];

	if (!is_status(p->resp->type) && p->resp->type != IMAP_R_CONTINUE &&
	    !shape_ok(p->resp)) {
		perr(p, f, "IMAP: malformed %s response",
		    snip(b, sizeof(b), p->resp->keyword, strlen(p->resp->keyword)));
		return IMAP_ERROR;
	}
	p->state = P_DONE;
	p->rstate = R_HEAD;
	return IMAP_RESPONSE;
}

/* ---- literals ---- */

static int
item_matches(const char *sent, const char *want)
{
	size_t n = strlen(sent);
	const char *lt = strrchr(sent, '<'), *rb = strrchr(sent, ']');

	/* Drop a partial suffix "<origin>" unless the caller asked for one. */
	if (strchr(want, '<') == NULL && lt != NULL && (rb == NULL || lt > rb) &&
	    n > 0 && sent[n - 1] == '>')
		n = (size_t)(lt - sent);
	return strlen(want) == n && strncasecmp(sent, want, n) == 0;
}

static int
stream_wanted(const struct imap_parser *p, const char *item)
{
	const char *const *w;

	if (p->stream_items == NULL)
		return 0;
	for (w = p->stream_items; *w != NULL; w++)
		if (item_matches(item, *w))
			return 1;
	return 0;
}

/* After a line ended with {N}: stream it, or hold it in the arena. */
static enum imap_event
begin_literal(struct imap_parser *p, struct fail *f)
{
	const struct imap_value *list = p->stack[p->sp];
	const char *item = NULL;
	struct imap_value *v;
	int stream = 0;
	char *d;

	if (p->fetch && p->sp == 1 && list->len % 2 == 1) {
		item = list->last->s;
		stream = p->lit_size > p->lim.max_small_literal ||
		    stream_wanted(p, item);
	} else if (p->lit_size > p->lim.max_small_literal) {
		perr(p, f, "IMAP: literal of %llu bytes exceeds the limit of %zu "
		    "outside a FETCH body", (unsigned long long)p->lit_size,
		    p->lim.max_small_literal);
		return IMAP_ERROR;
	}
	v = new_value(p, stream ? IMAP_V_STREAMED : IMAP_V_LITERAL, f);
	if (v == NULL)
		return IMAP_ERROR;
	v->binary = (unsigned)p->lit_binary;
	if (stream) {
		v->num = p->lit_size;
		p->ev.size = p->lit_size;
		p->ev.seq = p->resp->num;
		p->ev.item = item;
		p->ev.binary = p->lit_binary;
		p->ev.resp = p->resp;
		p->state = P_STREAM;
		return IMAP_LITERAL;
	}
	if ((d = arena_alloc(p, (size_t)p->lit_size + 1, f)) == NULL)
		return IMAP_ERROR;
	d[p->lit_size] = '\0';
	v->s = d;
	v->len = (size_t)p->lit_size;
	if (v->len > 0) {
		p->lit = v;
		p->lit_got = 0;
		p->state = P_LITERAL;
	}
	return IMAP_MORE;
}

/* ---- driving ---- */

/* One complete line s[0..len) (without its line end). IMAP_MORE: go on. */
static enum imap_event
segment(struct imap_parser *p, const char *s, size_t len, struct fail *f)
{
	size_t pos = 0;
	int r;

	if (p->rstate == R_HEAD) {
		if (start_response(p, f) == -1)
			return IMAP_ERROR;
		r = parse_head(p, s, len, &pos, f);
		if (r == H_ERROR)
			return IMAP_ERROR;
		if (r == H_DONE)
			return finish(p, f);
		p->rstate = R_VALUES;
	}
	r = parse_values(p, s, len, pos, 0, f);
	if (r == V_ERROR)
		return IMAP_ERROR;
	if (r == V_LITERAL)
		return begin_literal(p, f);
	if (p->sp > 0) {
		perr(p, f, "IMAP: line ends inside a list");
		return IMAP_ERROR;
	}
	return finish(p, f);
}

static int
line_append(struct imap_parser *p, const char *s, size_t n, struct fail *f)
{
	size_t need = p->linelen + n;

	/* +1: the CR before the LF is not counted. */
	if (need > p->lim.max_line + 1)
		return perr(p, f, "IMAP: line longer than %zu bytes", p->lim.max_line);
	if (need > p->linecap) {
		size_t cap = p->linecap ? p->linecap : 1024;

		while (cap < need)
			cap *= 2;
		if (cap > p->lim.max_line + 1)
			cap = p->lim.max_line + 1;
		p->line = xreallocarray(p->line, cap, 1);
		p->linecap = cap;
	}
	memcpy(p->line + p->linelen, s, n);
	p->linelen = need;
	return 0;
}

enum imap_event
imap_parse(struct imap_parser *p, const char *in, size_t n, size_t *consumed,
    struct fail *f)
{
	size_t i = 0, k;
	enum imap_event ev;

	*consumed = 0;
	if (p->state == P_ERROR) {
		if (f != NULL)
			*f = p->err;
		return IMAP_ERROR;
	}
	if (p->state == P_STREAM) {
		perr(p, f, "IMAP: fed while a streamed literal is pending");
		return IMAP_ERROR;
	}
	if (p->state == P_DONE) {
		arena_reset(p);
		p->resp = NULL;
		p->state = P_LINE;
	}
	while (i < n) {
		const char *lf, *s;
		size_t len;

		if (p->state == P_LITERAL) {
			k = p->lit->len - p->lit_got;
			if (k > n - i)
				k = n - i;
			memcpy((char *)p->lit->s + p->lit_got, in + i, k);
			p->lit_got += k;
			i += k;
			if (p->lit_got == p->lit->len)
				p->state = P_LINE;
			continue;
		}
		lf = memchr(in + i, '\n', n - i);
		if (lf == NULL) {
			if (line_append(p, in + i, n - i, f) == -1) {
				*consumed = i;
				return IMAP_ERROR;
			}
			i = n;
			break;
		}
		k = (size_t)(lf - in);
		if (p->linelen == 0) {
			s = in + i;
			len = k - i;
		} else {
			if (line_append(p, in + i, k - i, f) == -1) {
				*consumed = i;
				return IMAP_ERROR;
			}
			s = p->line;
			len = p->linelen;
		}
		i = k + 1;
		p->linelen = 0;
		if (len > 0 && s[len - 1] == '\r')
			len--;
		if (len > p->lim.max_line) {
			perr(p, f, "IMAP: line longer than %zu bytes", p->lim.max_line);
			*consumed = i;
			return IMAP_ERROR;
		}
		ev = segment(p, s, len, f);
		if (ev != IMAP_MORE) {
			*consumed = i;
			return ev;
		}
	}
	*consumed = n;
	return IMAP_MORE;
}

const struct imap_response *
imap_parser_response(const struct imap_parser *p)
{
	return p->state == P_DONE ? p->resp : NULL;
}

const struct imap_literal *
imap_parser_literal(const struct imap_parser *p)
{
	return p->state == P_STREAM ? &p->ev : NULL;
}

void
imap_parser_literal_done(struct imap_parser *p)
{
	if (p->state == P_STREAM)
		p->state = P_LINE;
}

int
imap_parser_busy(const struct imap_parser *p)
{
	return p->state == P_LITERAL || p->state == P_STREAM ||
	    (p->state == P_LINE && (p->linelen > 0 || p->rstate == R_VALUES));
}

enum fail_kind
imap_parser_eof(const struct imap_parser *p, struct fail *f)
{
	if (p->state == P_ERROR) {
		if (f != NULL)
			*f = p->err;
		return p->err.kind;
	}
	if (p->state == P_LITERAL)
		return fail_set(f, FAIL_CONN, "IMAP: connection closed inside a "
		    "%zu-byte literal, %zu bytes missing", p->lit->len,
		    p->lit->len - p->lit_got);
	if (p->state == P_STREAM)
		return fail_set(f, FAIL_CONN, "IMAP: connection closed inside a "
		    "streamed %llu-byte literal", (unsigned long long)p->ev.size);
	if (imap_parser_busy(p))
		return fail_set(f, FAIL_CONN,
		    "IMAP: connection closed in the middle of a response");
	return FAIL_NONE;
}

/* ---- accessors ---- */

int
imap_value_u64(const struct imap_value *v, uint64_t *out)
{
	if (v == NULL || v->type != IMAP_V_NUMBER)
		return -1;
	*out = v->num;
	return 0;
}

int
imap_value_u32(const struct imap_value *v, uint32_t *out)
{
	if (v == NULL || v->type != IMAP_V_NUMBER || v->num > UINT32_MAX)
		return -1;
	*out = (uint32_t)v->num;
	return 0;
}

int
imap_value_is_string(const struct imap_value *v)
{
	return v != NULL && (v->type == IMAP_V_ATOM || v->type == IMAP_V_NUMBER ||
	    v->type == IMAP_V_QUOTED || v->type == IMAP_V_LITERAL);
}

int
imap_list_has_atom(const struct imap_value *list, const char *name)
{
	const struct imap_value *v;

	if (list == NULL || list->type != IMAP_V_LIST)
		return 0;
	for (v = list->child; v != NULL; v = v->next)
		if (v->type == IMAP_V_ATOM && strcasecmp(v->s, name) == 0)
			return 1;
	return 0;
}

enum fail_kind
imap_check_tag(const struct imap_response *r, const char *tag, struct fail *f)
{
	char b[SNIP];

	if (r->tag == NULL || (tag != NULL && strcmp(r->tag, tag) == 0))
		return FAIL_NONE;
	return fail_set(f, FAIL_PROTO, "IMAP: unexpected tag \"%s\"%s%s",
	    snip(b, sizeof(b), r->tag, strlen(r->tag)),
	    tag != NULL ? ", waiting for " : "", tag != NULL ? tag : "");
}

int
imap_code_is(const struct imap_response *r, const char *name)
{
	return r->code.name != NULL && strcasecmp(r->code.name, name) == 0;
}

int
imap_code_u32(const struct imap_response *r, const char *name, uint32_t *out)
{
	if (!imap_code_is(r, name))
		return 0;
	if (r->code.args == NULL || r->code.args->len != 1 ||
	    imap_value_u32(r->code.args->child, out) == -1)
		return -1;
	return 1;
}

int
imap_code_appenduid(const struct imap_response *r, uint32_t *uidvalidity,
    uint32_t *uid)
{
	const struct imap_value *a;

	if (!imap_code_is(r, "APPENDUID"))
		return 0;
	a = r->code.args;
	if (a == NULL || a->len != 2 || imap_value_u32(a->child, uidvalidity) == -1 ||
	    imap_value_u32(a->child->next, uid) == -1)
		return -1;
	return 1;
}

int
imap_code_copyuid(const struct imap_response *r, uint32_t *uidvalidity,
    const char **src, const char **dst)
{
	const struct imap_value *a;

	if (!imap_code_is(r, "COPYUID"))
		return 0;
	a = r->code.args;
	if (a == NULL || a->len != 3 || imap_value_u32(a->child, uidvalidity) == -1)
		return -1;
	a = a->child->next;
	if (!all_atoms(a, 1))
		return -1;
	*src = a->s;
	*dst = a->next->s;
	return 1;
}

const struct imap_value *
imap_response_caps(const struct imap_response *r)
{
	if (r->type == IMAP_R_CAPABILITY)
		return r->args;
	if (imap_code_is(r, "CAPABILITY"))
		return r->code.args;
	return NULL;
}

const struct imap_value *
imap_fetch_item(const struct imap_response *r, const char *name)
{
	const struct imap_value *k;

	if (r->type != IMAP_R_FETCH || r->args->child == NULL)
		return NULL;
	for (k = r->args->child->child; k != NULL && k->next != NULL;
	    k = k->next->next)
		if (k->type == IMAP_V_ATOM && item_matches(k->s, name))
			return k->next;
	return NULL;
}

int
imap_fetch_uid(const struct imap_response *r, uint32_t *uid)
{
	const struct imap_value *v = imap_fetch_item(r, "UID");

	if (v == NULL)
		return 0;
	return imap_value_u32(v, uid) == -1 || *uid == 0 ? -1 : 1;
}

int
imap_fetch_size(const struct imap_response *r, uint64_t *size)
{
	const struct imap_value *v = imap_fetch_item(r, "RFC822.SIZE");

	if (v == NULL)
		return 0;
	return imap_value_u64(v, size) == -1 ? -1 : 1;
}

int
imap_fetch_internaldate(const struct imap_response *r, time_t *t)
{
	const struct imap_value *v = imap_fetch_item(r, "INTERNALDATE");

	if (v == NULL)
		return 0;
	if (v->type != IMAP_V_QUOTED && v->type != IMAP_V_LITERAL)
		return -1;
	return imap_internaldate_parse(v->s, v->len, t) == -1 ? -1 : 1;
}

int
imap_fetch_flags(const struct imap_response *r, const char **flags,
    size_t max, size_t *n)
{
	const struct imap_value *v = imap_fetch_item(r, "FLAGS");

	*n = 0;
	if (v == NULL)
		return 0;
	if (!list_of_atoms(v))
		return -1;
	for (v = v->child; v != NULL; v = v->next, (*n)++)
		if (*n < max)
			flags[*n] = v->s;
	return 1;
}

int
imap_fetch_body(const struct imap_response *r, const char *name,
    const char **data, size_t *len)
{
	const struct imap_value *v = imap_fetch_item(r, name);

	if (v == NULL)
		return 0;
	if (v->type == IMAP_V_NIL) {
		*data = "";
		*len = 0;
		return 1;
	}
	if (v->type != IMAP_V_QUOTED && v->type != IMAP_V_LITERAL)
		return -1;
	*data = v->s;
	*len = v->len;
	return 1;
}

int
imap_list_mailbox(const struct imap_response *r, struct imap_mailbox *mb)
{
	const struct imap_value *v;

	if (r->type != IMAP_R_LIST && r->type != IMAP_R_LSUB)
		return -1;
	v = r->args->child;     /* shape checked by finish() */
	mb->flags = v;
	mb->noselect = imap_list_has_atom(v, "\\Noselect") ||
	    imap_list_has_atom(v, "\\NonExistent");
	mb->noinferiors = imap_list_has_atom(v, "\\Noinferiors");
	v = v->next;
	mb->delim = v->type == IMAP_V_NIL ? '\0' : v->s[0];
	v = v->next;
	mb->name = v->s;
	mb->name_len = v->len;
	return 0;
}

int
imap_status_item(const struct imap_response *r, const char *name, uint64_t *out)
{
	const struct imap_value *v;

	if (r->type != IMAP_R_STATUS)
		return -1;
	for (v = r->args->child->next->child; v != NULL; v = v->next->next)
		if (strcasecmp(v->s, name) == 0)
			return imap_value_u64(v->next, out) == -1 ? -1 : 1;
	return 0;
}

/* ---- INTERNALDATE ---- */

static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* Exactly n digits at s[*i]. */
static int
fixed_digits(const char *s, size_t len, size_t *i, size_t n, unsigned *out)
{
	unsigned v = 0;
	size_t k;

	if (len - *i < n)
		return -1;
	for (k = 0; k < n; k++) {
		char c = s[*i + k];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (unsigned)(c - '0');
	}
	*i += n;
	*out = v;
	return 0;
}

static int
expect(const char *s, size_t len, size_t *i, char c)
{
	if (*i >= len || s[*i] != c)
		return -1;
	(*i)++;
	return 0;
}

int
imap_internaldate_parse(const char *s, size_t len, time_t *out)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned day, mon, year, hh, mm, ss, zh, zm;
	size_t i = 0;
	int sign;
	int64_t t;
	char mname[4];

	/* date-day-fixed: 2DIGIT or SP DIGIT; one bare digit is tolerated. */
	if (fixed_digits(s, len, &i, 2, &day) == -1) {
		i = len > 0 && s[0] == ' ';
		if (fixed_digits(s, len, &i, 1, &day) == -1)
			return -1;
	}
	if (expect(s, len, &i, '-') == -1 || len - i < 3)
		return -1;
	for (mon = 0; mon < 3; mon++)
		mname[mon] = (char)(s[i + mon] | 0x20);
	mname[3] = '\0';
	i += 3;
	for (mon = 0; mon < 12; mon++)
		if (memcmp(months + 3 * mon, mname, 3) == 0)
			break;
	if (mon == 12 || expect(s, len, &i, '-') == -1 ||
	    fixed_digits(s, len, &i, 4, &year) == -1 ||
	    expect(s, len, &i, ' ') == -1 ||
	    fixed_digits(s, len, &i, 2, &hh) == -1 || expect(s, len, &i, ':') == -1 ||
	    fixed_digits(s, len, &i, 2, &mm) == -1 || expect(s, len, &i, ':') == -1 ||
	    fixed_digits(s, len, &i, 2, &ss) == -1 || expect(s, len, &i, ' ') == -1 ||
	    i >= len || (s[i] != '+' && s[i] != '-'))
		return -1;
	sign = s[i++] == '-' ? -1 : 1;
	if (fixed_digits(s, len, &i, 2, &zh) == -1 ||
	    fixed_digits(s, len, &i, 2, &zm) == -1 || i != len)
		return -1;
	if (day < 1 || day > mdays[mon] || hh > 23 || mm > 59 || ss > 60 ||
	    zh > 23 || zm > 59 || year < 1900)
		return -1;
	if (mon == 1 && day == 29 &&
	    !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
		return -1;
	t = days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60 + ss -
	    sign * (int64_t)(zh * 3600 + zm * 60);
	if ((int64_t)(time_t)t != t)
		return -1;
	*out = (time_t)t;
	return 0;
}

/* ---- modified UTF-7 ---- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static size_t
put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decode one "&...-" run starting after '&'; *i ends past the '-'. */
static int
mutf7_run(const char *in, size_t len, size_t *i, char *out, size_t *o)
{
	uint32_t bits = 0, hi = 0;
	unsigned nbits = 0;

	for (; *i < len && in[*i] != '-'; (*i)++) {
		int val = b64val((unsigned char)in[*i]);
		uint32_t u;

		if (val < 0)
			return -1;
		bits = (bits << 6) | (uint32_t)val;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		if (hi != 0) {
			if (u < 0xdc00 || u > 0xdfff)
				return -1;
			*o += put_utf8(out + *o,
			    0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00));
			hi = 0;
		} else if (u >= 0xd800 && u <= 0xdbff)
			hi = u;
		else if ((u >= 0xdc00 && u <= 0xdfff) || u == 0 ||
		    (u >= 0x20 && u <= 0x7e))
			return -1;
		else
			*o += put_utf8(out + *o, u);
	}
	if (*i >= len || hi != 0 || nbits >= 6 || bits != 0)
		return -1;
	(*i)++;
	return 0;
}

char *
imap_mutf7_to_utf8(const char *in, size_t len)
{
	size_t i = 0, o = 0;
	char *out;

	if (len > (SIZE_MAX - 1) / 2)
		return NULL;
	out = xmalloc(2 * len + 1);
	while (i < len) {
		unsigned char c = (unsigned char)in[i++];

		if (c < 0x20 || c > 0x7e)
			goto bad;
		if (c != '&') {
			out[o++] = (char)c;
			continue;
		}
		if (i < len && in[i] == '-') {
			out[o++] = '&';
			i++;
			continue;
		}
		if (mutf7_run(in, len, &i, out, &o) == -1)
			goto bad;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* One UTF-8 sequence at in[*i]: the code point, or -1 (strict: no overlong,
 * no surrogates, nothing above U+10FFFF, no NUL). */
static int32_t
utf8_next(const unsigned char *in, size_t len, size_t *i)
{
	unsigned char c = in[*i];
	uint32_t cp, min;
	size_t n, k;

	if (c == 0)
		return -1;
	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else
		return -1;
	if (len - *i < n)
		return -1;
	for (k = 1; k < n; k++) {
		if ((in[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (in[*i + k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += n;
	return (int32_t)cp;
}

static void
b64_bits(char *out, size_t *o, uint32_t *bits, unsigned *nbits, uint32_t u)
{
	*bits = (*bits << 16) | u;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		out[(*o)++] = b64chars[(*bits >> *nbits) & 0x3f];
	}
	*bits &= (1u << *nbits) - 1;
}

char *
imap_utf8_to_mutf7(const char *in, size_t len)
{
	const unsigned char *u = (const unsigned char *)in;
	size_t i = 0, o = 0;
	uint32_t bits = 0;
	unsigned nbits = 0;
	int shifted = 0;
	char *out;

	if (len > (SIZE_MAX - 1) / 5)
		return NULL;
	out = xmalloc(5 * len + 1);
	while (i < len) {
		int32_t cp = utf8_next(u, len, &i);

		if (cp < 0) {
			free(out);
			return NULL;
		}
		if (cp >= 0x20 && cp <= 0x7e) {
			if (shifted) {
				if (nbits > 0)
					out[o++] = b64chars[(bits << (6 - nbits)) & 0x3f];
				out[o++] = '-';
				shifted = 0;
				bits = nbits = 0;
			}
			out[o++] = (char)cp;
			if (cp == '&')
				out[o++] = '-';
			continue;
		}
		if (!shifted) {
			out[o++] = '&';
			shifted = 1;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			b64_bits(out, &o, &bits, &nbits, 0xd800 + ((uint32_t)cp >> 10));
			b64_bits(out, &o, &bits, &nbits, 0xdc00 + ((uint32_t)cp & 0x3ff));
		} else
			b64_bits(out, &o, &bits, &nbits, (uint32_t)cp);
	}
	if (shifted) {
		if (nbits > 0)
			out[o++] = b64chars[(bits << (6 - nbits)) & 0x3f];
		out[o++] = '-';
	}
	out[o] = '\0';
	return out;
}

/* ---- command arguments ---- */

int
imap_quote(const char *s, size_t len, int literal_plus, char **out)
{
	size_t i, o = 0;
	int safe = len <= 1024;
	char *d;

	if (memchr(s, '\0', len) != NULL)
		return -1;
	for (i = 0; i < len && safe; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80 || c == '\r' || c == '\n')
			safe = 0;
	}
	if (!safe) {
		*out = xasprintf("{%zu%s}", len, literal_plus ? "+" : "");
		return 0;
	}
	d = xmalloc(2 * len + 3);
	d[o++] = '"';
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			d[o++] = '\\';
		d[o++] = s[i];
	}
	d[o++] = '"';
	d[o] = '\0';
	*out = d;
	return 1;
}
