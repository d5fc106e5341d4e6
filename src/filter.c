/* filter.c - take / skip / delete / route from headers and size. Pure.
 *
 * Three parts: building a filter from config keys (conditions compiled once),
 * parsing a header block into (name, unfolded value, decoded value) fields
 * once per message, and evaluating filters against a parsed message.
 */
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "filter.h"
#include "xmalloc.h"

#define ERR_MAX 300
#define CHARSET_MAX 64

enum cond_kind { COND_HEADER, COND_LARGER, COND_SMALLER };

struct cond {
	enum cond_kind kind;
	const char *names[2];           /* COND_HEADER: names[1] may be NULL */
	char *owned_name;               /* names[0] when it came from `header =` */
	regex_t re;
	unsigned long long size;        /* COND_LARGER / COND_SMALLER */
};

struct setting {
	char *key;
	char *value;
};

struct filter {
	char *name;
	struct cond *conds;
	size_t nconds;
	struct setting *settings;       /* every key taken, in order: the digest */
	size_t nsettings;
	unsigned have_match:1, have_action:1, have_larger:1, have_smaller:1;
	unsigned match_all:1, needs_headers:1;
	enum filter_action action;
	char *target;                   /* FILTER_DELIVER only */
};

struct field {
	char *name;
	char *raw;                      /* unfolded, trimmed */
	char *decoded;                  /* RFC 2047-decoded, or NULL if none */
};

struct filter_headers {
	struct field *fields;
	size_t n;
};

/* A growing byte string that stops at max bytes (the rest is dropped). */
struct sbuf {
	char *p;
	size_t len, cap, max;
};

static void
sbuf_put(struct sbuf *b, const char *s, size_t n)
{
	if (n > b->max - b->len)
		n = b->max - b->len;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sbuf_putc(struct sbuf *b, char c)
{
	sbuf_put(b, &c, 1);
}

static char *
sbuf_take(struct sbuf *b)
{
	char *p = b->p ? b->p : xstrdup("");

	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

static const char *
errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *
errorf(const char *fmt, ...)
{
	static _Thread_local char msg[ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return msg;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 field name: printable US-ASCII except colon. */
static int
valid_field_name(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e ||
		    s[i] == ':')
			return 0;
	return 1;
}

/* --- building ------------------------------------------------------------ */

struct filter *
filter_new(const char *name)
{
	struct filter *fl = xcalloc(1, sizeof(*fl));

	fl->name = xstrdup(name);
	return fl;
}

void
filter_free(struct filter *fl)
{
	if (fl == NULL)
		return;
	for (size_t i = 0; i < fl->nconds; i++) {
		if (fl->conds[i].kind == COND_HEADER)
			regfree(&fl->conds[i].re);
		free(fl->conds[i].owned_name);
	}
	for (size_t i = 0; i < fl->nsettings; i++) {
		free(fl->settings[i].key);
		free(fl->settings[i].value);
	}
	free(fl->conds);
	free(fl->settings);
	free(fl->target);
	free(fl->name);
	free(fl);
}

static struct cond *
add_cond(struct filter *fl, enum cond_kind kind)
{
	struct cond *c;

	fl->conds = xreallocarray(fl->conds, fl->nconds + 1, sizeof(*fl->conds));
	c = &fl->conds[fl->nconds++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	return c;
}

/* The C library's regcomp builds repetitions by copying trees: stacked
 * quantifiers ("a+++", "(x{99}){99}") or large counts take memory and time
 * that grow without bound. A filter's regex needs none of that; such a
 * pattern is refused with a reason instead of exhausting the machine. */
#define RX_LEN_MAX      1024
#define RX_COUNT_MAX    255             /* largest {n,m} */
#define RX_REPEAT_MAX   4               /* quantified groups nested or in a row */

static const char *
regex_too_costly(const char *rx)
{
	int depth = 0, quant[64] = { 0 }, prev_quant = 0;

	if (strlen(rx) > RX_LEN_MAX)
		return "longer than 1024 characters";
	for (const char *p = rx; *p; p++) {
		int q = 0;

		if (*p == '\\' && p[1] != '\0') {
			p++;
			prev_quant = 0;
			continue;
		}
		if (*p == '[') {        /* a bracket expression: no operators */
			const char *e = p + 1;

			if (*e == '^')
				e++;
			if (*e == ']')
				e++;
			while (*e && *e != ']')
				e++;
			if (*e == '\0')
				return NULL;    /* regcomp says what is wrong */
			p = e;
			prev_quant = 0;
			continue;
		}
		if (*p == '(') {
			if (++depth >= 64)
				return "nested too deep";
			quant[depth] = 0;
		} else if (*p == ')') {
			if (depth > 0) {
				int inner = quant[depth--];

				/* a quantified group counts what it holds */
				if (p[1] == '*' || p[1] == '+' || p[1] == '?' ||
				    p[1] == '{')
					inner++;
				if (inner > quant[depth])
					quant[depth] = inner;
			}
		} else if (*p == '*' || *p == '+' || *p == '?') {
			q = 1;
		} else if (*p == '{') {
			unsigned long n = 0;

			q = 1;
			for (p++; *p && *p != '}'; p++)
				if (*p >= '0' && *p <= '9') {
					n = n * 10 + (unsigned long)(*p - '0');
					if (n > RX_COUNT_MAX)
						return "a repetition count above 255";
				} else if (*p == ',') {
					n = 0;
				}
			if (*p == '\0')
				return NULL;
		}
		if (q && prev_quant)
			return "quantifiers in a row (like a++)";
		prev_quant = q;
		if (quant[depth] > RX_REPEAT_MAX)
			return "quantified groups nested too deep";
	}
	return NULL;
}

/* A header condition on names[0] (and names[1]); owned_name is adopted. */
static int
add_header_cond(struct filter *fl, const char *key, const char *n0,
    const char *n1, char *owned_name, const char *rx, const char **err)
{
	regex_t re;
	const char *why;
	int rc;

	if (*rx == '\0') {
		free(owned_name);
		*err = errorf("%s needs a regex", key);
		return -1;
	}
	if ((why = regex_too_costly(rx)) != NULL) {
		free(owned_name);
		*err = errorf("bad regex in %s: %s", key, why);
		return -1;
	}
	rc = regcomp(&re, rx, REG_EXTENDED | REG_ICASE | REG_NOSUB);
	if (rc != 0) {
		char reason[160];

		regerror(rc, &re, reason, sizeof(reason));
		free(owned_name);
		*err = errorf("bad regex in %s: %s", key, reason);
		return -1;
	}
	struct cond *c = add_cond(fl, COND_HEADER);

	c->re = re;
	c->owned_name = owned_name;
	c->names[0] = owned_name ? owned_name : n0;
	c->names[1] = n1;
	fl->needs_headers = 1;
	return 0;
}

/* header = NAME: REGEX */
static int
set_header(struct filter *fl, const char *v, const char **err)
{
	const char *colon = strchr(v, ':');
	size_t n;

	if (colon == NULL)
		goto bad;
	n = (size_t)(colon - v);
	while (n > 0 && is_blank(v[n - 1]))
		n--;
	if (!valid_field_name(v, n))
		goto bad;
	colon++;
	while (is_blank(*colon))
		colon++;
	if (*colon == '\0')
		goto bad;
	return add_header_cond(fl, "header", NULL, NULL, xstrndup(v, n), colon,
	    err);
bad:
	*err = "header needs NAME: REGEX (header = X-Spam-Flag: ^yes$)";
	return -1;
}

static int
set_size(struct filter *fl, const char *key, const char *v, const char **err)
{
	int larger = strcmp(key, "larger_than") == 0;
	unsigned long long size;

	if ((larger && fl->have_larger) || (!larger && fl->have_smaller)) {
		*err = errorf("%s given twice", key);
		return -1;
	}
	if (filter_parse_size(v, &size) == -1) {
		*err = errorf("%s must be a size: a number, optionally followed "
		    "by k, M or G", key);
		return -1;
	}
	add_cond(fl, larger ? COND_LARGER : COND_SMALLER)->size = size;
	if (larger)
		fl->have_larger = 1;
	else
		fl->have_smaller = 1;
	return 0;
}

static int
set_match(struct filter *fl, const char *v, const char **err)
{
	if (fl->have_match) {
		*err = "match given twice";
		return -1;
	}
	if (strcasecmp(v, "any") == 0)
		fl->match_all = 0;
	else if (strcasecmp(v, "all") == 0)
		fl->match_all = 1;
	else {
		*err = errorf("unknown match '%.60s' (expected any or all)", v);
		return -1;
	}
	fl->have_match = 1;
	return 0;
}

static int
set_action(struct filter *fl, const char *v, const char **err)
{
	if (fl->have_action) {
		*err = "action given twice";
		return -1;
	}
	if (strcasecmp(v, "skip") == 0)
		fl->action = FILTER_SKIP;
	else if (strcasecmp(v, "delete") == 0)
		fl->action = FILTER_DELETE;
	else if (strncasecmp(v, "deliver", 7) == 0 &&
	    (v[7] == ':' || v[7] == '\0')) {
		const char *t = v[7] ? v + 8 : v + 7;

		while (is_blank(*t))
			t++;
		if (*t == '\0') {
			*err = "deliver needs a target "
			    "(action = deliver:maildir:~/Mail/junk)";
			return -1;
		}
		fl->action = FILTER_DELIVER;
		fl->target = xstrdup(t);
	} else {
		*err = errorf("unknown action '%.60s' (expected skip, delete or "
		    "deliver:TARGET)", v);
		return -1;
	}
	fl->have_action = 1;
	return 0;
}

static int
set_key(struct filter *fl, const char *key, const char *v, const char **err)
{
	if (strcmp(key, "header") == 0)
		return set_header(fl, v, err);
	if (strcmp(key, "from") == 0)
		return add_header_cond(fl, key, "From", NULL, NULL, v, err);
	if (strcmp(key, "to") == 0)
		return add_header_cond(fl, key, "To", "Cc", NULL, v, err);
	if (strcmp(key, "larger_than") == 0 || strcmp(key, "smaller_than") == 0)
		return set_size(fl, key, v, err);
	if (strcmp(key, "match") == 0)
		return set_match(fl, v, err);
	if (strcmp(key, "action") == 0)
		return set_action(fl, v, err);
	*err = errorf("unknown key '%.60s' in a filter (expected header, from, "
	    "to, larger_than, smaller_than, match or action)", key);
	return -1;
}

int
filter_set(struct filter *fl, const char *key, const char *value,
    const char **err)
{
	struct setting *s;

	if (set_key(fl, key, value, err) == -1)
		return -1;
	fl->settings = xreallocarray(fl->settings, fl->nsettings + 1,
	    sizeof(*fl->settings));
	s = &fl->settings[fl->nsettings++];
	s->key = xstrdup(key);
	s->value = xstrdup(value);
	return 0;
}

int
filter_finish(struct filter *fl, const char **err)
{
	if (fl->nconds == 0) {
		*err = "filter has no condition (header, from, to, larger_than "
		    "or smaller_than)";
		return -1;
	}
	if (!fl->have_action) {
		*err = "filter has no action (skip, delete or deliver:TARGET)";
		return -1;
	}
	return 0;
}

int
filter_parse_size(const char *s, unsigned long long *out)
{
	unsigned long long n = 0, mul = 1;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (~0ULL - (unsigned)(*s - '0')) / 10)
			return -1;
		n = n * 10 + (unsigned)(*s - '0');
	}
	switch (*s) {
	case '\0':
		break;
	case 'k': case 'K':
		mul = 1ULL << 10;
		break;
	case 'm': case 'M':
		mul = 1ULL << 20;
		break;
	case 'g': case 'G':
		mul = 1ULL << 30;
		break;
	default:
		return -1;
	}
	if (*s != '\0' && s[1] != '\0')
		return -1;
	if (n > ~0ULL / mul)
		return -1;
	*out = n * mul;
	return 0;
}

/* --- reading a filter ---------------------------------------------------- */

const char *
filter_name(const struct filter *fl)
{
	return fl->name;
}

enum filter_action
filter_action(const struct filter *fl)
{
	return fl->action;
}

const char *
filter_target(const struct filter *fl)
{
	return fl->action == FILTER_DELIVER ? fl->target : NULL;
}

const char *
filter_action_name(enum filter_action a)
{
	switch (a) {
	case FILTER_SKIP:
		return "skip";
	case FILTER_DELETE:
		return "delete";
	case FILTER_DELIVER:
		return "deliver";
	}
	return "?";
}

int
filter_needs_headers(const struct filter *fl)
{
	return fl->needs_headers;
}

int
filter_list_needs_headers(struct filter *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (filter_needs_headers(list[i]))
			return 1;
	return 0;
}

/* Length-prefixed, so that no two configurations serialize alike. */
static void
digest_put(struct sbuf *b, char tag, const char *s)
{
	char len[32];
	int n = snprintf(len, sizeof(len), "%c%zu:", tag, strlen(s));

	sbuf_put(b, len, (size_t)n);
	sbuf_put(b, s, strlen(s));
}

void
filter_digest(struct filter *const *list, size_t n, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	struct sbuf b = { .max = (size_t)-1 };
	unsigned char md[SHA256_LEN];

	digest_put(&b, 'V', "mailpull-filter-1");
	for (size_t i = 0; i < n; i++) {
		digest_put(&b, 'F', list[i]->name);
		for (size_t k = 0; k < list[i]->nsettings; k++) {
			digest_put(&b, 'K', list[i]->settings[k].key);
			digest_put(&b, 'V', list[i]->settings[k].value);
		}
	}
	crypto_sha256(b.p, b.len, md);
	free(b.p);
	for (size_t i = 0; i < SHA256_LEN; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

/* --- RFC 2047 ------------------------------------------------------------ */

enum charset { CS_UNKNOWN, CS_ASIS, CS_LATIN1, CS_LATIN9, CS_CP1252 };

static enum charset
charset_lookup(const char *name, size_t n)
{
	static const struct {
		const char *name;
		enum charset cs;
	} names[] = {
		{ "utf-8", CS_ASIS }, { "utf8", CS_ASIS },
		{ "us-ascii", CS_ASIS }, { "ascii", CS_ASIS },
		{ "iso-8859-1", CS_LATIN1 }, { "iso8859-1", CS_LATIN1 },
		{ "iso_8859-1", CS_LATIN1 }, { "latin1", CS_LATIN1 },
		{ "latin-1", CS_LATIN1 },
		{ "iso-8859-15", CS_LATIN9 }, { "iso8859-15", CS_LATIN9 },
		{ "iso_8859-15", CS_LATIN9 }, { "latin9", CS_LATIN9 },
		{ "latin-9", CS_LATIN9 },
		{ "windows-1252", CS_CP1252 }, { "cp1252", CS_CP1252 },
	};
	const char *star = memchr(name, '*', n);    /* RFC 2231 language */

	if (star)
		n = (size_t)(star - name);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == n &&
		    strncasecmp(name, names[i].name, n) == 0)
			return names[i].cs;
	return CS_UNKNOWN;
}

/* Unicode code point of byte c (>= 0x80) in a single-byte charset. */
static unsigned
charset_char(enum charset cs, unsigned char c)
{
	static const unsigned short cp1252[32] = {
		0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
		0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d, 0x017d, 0x008f,
		0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
		0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
	};

	if (cs == CS_CP1252 && c < 0xa0)
		return cp1252[c - 0x80];
	if (cs == CS_LATIN9) {
		switch (c) {
		case 0xa4: return 0x20ac;
		case 0xa6: return 0x0160;
		case 0xa8: return 0x0161;
		case 0xb4: return 0x017d;
		case 0xb8: return 0x017e;
		case 0xbc: return 0x0152;
		case 0xbd: return 0x0153;
		case 0xbe: return 0x0178;
		}
	}
	return c;
}

static void
put_utf8(struct sbuf *b, unsigned cp)
{
	char u[3];

	if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		sbuf_put(b, u, 2);
	} else {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		sbuf_put(b, u, 3);
	}
}

/* Decoded bytes of a word, in its charset, into b as UTF-8 (NUL -> space). */
static void
put_charset(struct sbuf *b, enum charset cs, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\0')
			sbuf_putc(b, ' ');
		else if (p[i] < 0x80 || cs == CS_ASIS)
			sbuf_putc(b, (char)p[i]);
		else
			put_utf8(b, charset_char(cs, p[i]));
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Q encoding into out (room for n bytes). Returns bytes, or -1 if malformed. */
static long
decode_q(const char *s, size_t n, unsigned char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '_')
			out[o++] = ' ';
		else if (s[i] != '=')
			out[o++] = (unsigned char)s[i];
		else if (i + 2 < n && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0) {
			out[o++] = (unsigned char)(hexval(s[i + 1]) << 4 |
			    hexval(s[i + 2]));
			i += 2;
		} else
			return -1;
	}
	return (long)o;
}

static int
b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* B encoding (padding optional) into out. Bytes, or -1 if malformed. */
static long
decode_b(const char *s, size_t n, unsigned char *out)
{
	unsigned acc = 0;
	size_t o = 0, bits = 0, data = 0;

	while (n > 0 && s[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++) {
		int v = b64val(s[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		data++;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (data % 4 == 1)
		return -1;
	return (long)o;
}

/* If s starts an encoded word we can decode, append its text to b and return
 * its length; 0 if it is not one (or malformed, or an unknown charset). */
static size_t
decode_word(const char *s, struct sbuf *b)
{
	const char *cs = s + 2, *q, *text, *end;
	unsigned char *buf;
	enum charset set;
	long n;

	for (q = cs; *q && *q != '?' && *q > 0x20 && *q < 0x7f; q++)
		;
	if (*q != '?' || q == cs || (size_t)(q - cs) > CHARSET_MAX)
		return 0;
	if (q[1] == '\0' || q[2] != '?' || strchr("QqBb", q[1]) == NULL)
		return 0;
	text = q + 3;
	for (end = text; *end && *end != '?' && *end > 0x20 && *end < 0x7f; end++)
		;
	if (end[0] != '?' || end[1] != '=')
		return 0;
	set = charset_lookup(cs, (size_t)(q - cs));
	if (set == CS_UNKNOWN)
		return 0;
	buf = xmalloc((size_t)(end - text) + 1);
	if (q[1] == 'Q' || q[1] == 'q')
		n = decode_q(text, (size_t)(end - text), buf);
	else
		n = decode_b(text, (size_t)(end - text), buf);
	if (n >= 0)
		put_charset(b, set, buf, (size_t)n);
	free(buf);
	return n < 0 ? 0 : (size_t)(end + 2 - s);
}

/* The decoded form of value s, or NULL if it holds no decodable word. Blanks
 * between two decoded words are dropped. */
static char *
decode_value(const char *s)
{
	struct sbuf b = { .max = FILTER_DECODED_MAX };
	struct sbuf word = { .max = FILTER_DECODED_MAX };
	size_t after_word = 0, w;
	int last_word = 0, any = 0;

	while (*s) {
		if (s[0] == '=' && s[1] == '?' && (w = decode_word(s, &word)) > 0) {
			if (last_word)
				b.len = after_word;     /* drop the blanks between */
			sbuf_put(&b, word.p, word.len);
			word.len = 0;
			s += w;
			after_word = b.len;
			last_word = any = 1;
			continue;
		}
		if (!is_blank(*s))
			last_word = 0;
		sbuf_putc(&b, *s++);
	}
	free(word.p);
	if (!any) {
		free(b.p);
		return NULL;
	}
	return sbuf_take(&b);
}

/* --- header block -------------------------------------------------------- */

static void
field_finish(struct filter_headers *h, struct sbuf *v)
{
	struct field *f = &h->fields[h->n - 1];
	size_t a = 0, z = v->len;

	for (size_t i = 0; i < v->len; i++)
		if (v->p[i] == '\0')
			v->p[i] = ' ';
	while (a < z && (is_blank(v->p[a]) || v->p[a] == '\r'))
		a++;
	while (z > a && (is_blank(v->p[z - 1]) || v->p[z - 1] == '\r'))
		z--;
	f->raw = xstrndup(v->p ? v->p + a : "", z - a);
	f->decoded = strstr(f->raw, "=?") ? decode_value(f->raw) : NULL;
	v->len = 0;
}

static void
field_start(struct filter_headers *h, size_t *cap, const char *name, size_t n)
{
	if (h->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		h->fields = xreallocarray(h->fields, *cap, sizeof(*h->fields));
	}
	h->fields[h->n].name = xstrndup(name, n);
	h->fields[h->n].raw = NULL;
	h->fields[h->n].decoded = NULL;
	h->n++;
}

struct filter_headers *
filter_headers_parse(const char *p, size_t len)
{
	struct filter_headers *h = xcalloc(1, sizeof(*h));
	struct sbuf v = { .max = FILTER_HEADER_MAX };
	size_t pos = 0, cap = 0;
	int open = 0;                   /* the last field takes continuations */

	if (len > FILTER_HEADER_MAX)
		len = FILTER_HEADER_MAX;
	while (pos < len) {
		const char *line = p + pos, *lf = memchr(line, '\n', len - pos);
		size_t n = lf ? (size_t)(lf - line) : len - pos;
		const char *colon;
		size_t nn;

		pos += n + (lf != NULL);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break;                  /* end of the header */
		if (is_blank(line[0])) {
			if (open)
				sbuf_put(&v, line, n);
			continue;
		}
		if (open)
			field_finish(h, &v);
		open = 0;
		colon = memchr(line, ':', n);
		if (colon == NULL)
			continue;
		nn = (size_t)(colon - line);
		while (nn > 0 && is_blank(line[nn - 1]))
			nn--;
		if (!valid_field_name(line, nn))
			continue;
		field_start(h, &cap, line, nn);
		sbuf_put(&v, colon + 1, n - (size_t)(colon + 1 - line));
		open = 1;
	}
	if (open)
		field_finish(h, &v);
	free(v.p);
	return h;
}

void
filter_headers_free(struct filter_headers *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->fields[i].name);
		free(h->fields[i].raw);
		free(h->fields[i].decoded);
	}
	free(h->fields);
	free(h);
}

size_t
filter_headers_count(const struct filter_headers *h)
{
	return h->n;
}

static const struct field *
field_find(const struct filter_headers *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->fields[i].name, name) == 0)
			return &h->fields[i];
	return NULL;
}

const char *
filter_headers_get(const struct filter_headers *h, const char *name)
{
	const struct field *f = field_find(h, name);

	return f == NULL ? NULL : f->decoded ? f->decoded : f->raw;
}

const char *
filter_headers_get_raw(const struct filter_headers *h, const char *name)
{
	const struct field *f = field_find(h, name);

	return f ? f->raw : NULL;
}

/* --- evaluation ---------------------------------------------------------- */

static int
header_cond(const struct cond *c, const struct filter_headers *h)
{
	if (h == NULL)
		return 0;
	for (size_t i = 0; i < h->n; i++) {
		const struct field *f = &h->fields[i];

		if (strcasecmp(f->name, c->names[0]) != 0 &&
		    (c->names[1] == NULL || strcasecmp(f->name, c->names[1]) != 0))
			continue;
		if (regexec(&c->re, f->raw, 0, NULL, 0) == 0)
			return 1;
		if (f->decoded && regexec(&c->re, f->decoded, 0, NULL, 0) == 0)
			return 1;
	}
	return 0;
}

static int
cond_true(const struct cond *c, const struct filter_msg *m)
{
	switch (c->kind) {
	case COND_HEADER:
		return header_cond(c, m->headers);
	case COND_LARGER:
		return m->size > c->size;
	case COND_SMALLER:
		return m->size < c->size;
	}
	return 0;
}

int
filter_match(const struct filter *fl, const struct filter_msg *m)
{
	if (fl->nconds == 0)
		return 0;
	for (size_t i = 0; i < fl->nconds; i++) {
		int t = cond_true(&fl->conds[i], m);

		if (t && !fl->match_all)
			return 1;
		if (!t && fl->match_all)
			return 0;
	}
	return fl->match_all;
}

const struct filter *
filter_decide(struct filter *const *list, size_t n, const struct filter_msg *m)
{
	for (size_t i = 0; i < n; i++)
		if (filter_match(list[i], m))
			return list[i];
	return NULL;
}
