/* fuzz_imap.c - libFuzzer harness for the IMAP response parser: the input is
 * a server's byte stream, fed whole and then in two chunks split where the
 * input's first byte says; the events (responses, literals, the error) must
 * be the same. Small limits, so that they are exercised. The helpers run on
 * the input too: UTF-8 -> mUTF-7 -> UTF-8 must round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const items[] = { "BODY[]", "RFC822", "BINARY[]", NULL };

/* FNV-1a over everything reported. */
static void
mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n--)
		*h = (*h ^ *s++) * 0x100000001b3ULL;
}

static void
mix_value(uint64_t *h, const struct imap_value *v)
{
	const struct imap_value *c;

	mix(h, &v->type, sizeof(v->type));
	mix(h, &v->len, sizeof(v->len));
	mix(h, &v->num, sizeof(v->num));
	mix(h, &v->binary, sizeof(v->binary));
	if (v->s != NULL)
		mix(h, v->s, v->len);
	if (v->type == IMAP_V_LIST)
		for (c = v->child; c != NULL; c = c->next)
			mix_value(h, c);
	mix(h, ")", 1);
}

static void
mix_str(uint64_t *h, const char *s)
{
	if (s != NULL)
		mix(h, s, strlen(s) + 1);
	else
		mix(h, "\xff", 1);
}

static void
mix_response(uint64_t *h, const struct imap_response *r)
{
	uint32_t u;
	uint64_t n;
	time_t t;
	size_t nf;
	const char *fl[4], *d;

	mix_str(h, r->tag);
	mix(h, &r->type, sizeof(r->type));
	mix(h, &r->num, sizeof(r->num));
	mix_str(h, r->keyword);
	mix_str(h, r->code.name);
	mix_str(h, r->code.text);
	if (r->code.args != NULL)
		mix_value(h, r->code.args);
	mix_str(h, r->text);
	mix_value(h, r->args);
	/* The accessors must not crash on anything the parser accepts. */
	if (imap_fetch_uid(r, &u) == 1)
		mix(h, &u, sizeof(u));
	if (imap_fetch_size(r, &n) == 1)
		mix(h, &n, sizeof(n));
	if (imap_fetch_internaldate(r, &t) == 1)
		mix(h, &t, sizeof(t));
	if (imap_fetch_flags(r, fl, 4, &nf) == 1)
		mix(h, &nf, sizeof(nf));
	if (imap_fetch_body(r, "BODY[HEADER]", &d, &nf) == 1)
		mix(h, d, nf);
	if (r->type == IMAP_R_LIST || r->type == IMAP_R_LSUB) {
		struct imap_mailbox mb;
		char *s;

		if (imap_list_mailbox(r, &mb) != 0)
			abort();
		s = imap_mutf7_to_utf8(mb.name, mb.name_len);
		mix_str(h, s);
		free(s);
	}
	if (r->type == IMAP_R_STATUS && imap_status_item(r, "UIDNEXT", &n) == 1)
		mix(h, &n, sizeof(n));
	(void)imap_code_u32(r, "UIDVALIDITY", &u);
	(void)imap_code_appenduid(r, &u, &u);
	(void)imap_code_copyuid(r, &u, &d, &d);
	(void)imap_response_caps(r);
	(void)imap_check_tag(r, "a1", NULL);
}

/* Feed data[0..size) in two chunks [0, cut) and [cut, size); hash events. */
static uint64_t
run(const uint8_t *data, size_t size, size_t cut)
{
	struct imap_limits lim;
	struct imap_parser *p;
	const char *in = (const char *)data;
	size_t pos = 0, avail = cut, c;
	uint64_t h = 0xcbf29ce484222325ULL;
	struct fail f;

	imap_limits_default(&lim);
	lim.max_line = 512;
	lim.max_atom = 64;
	lim.max_depth = 8;
	lim.max_args = 300;
	lim.max_small_literal = 64;
	lim.max_literal = 1 << 20;
	lim.max_response = 16384;
	p = imap_parser_new(&lim, items);
	for (;;) {
		enum imap_event ev;

		if (pos == avail) {
			if (avail == size)
				break;
			avail = size;
		}
		ev = imap_parse(p, in + pos, avail - pos, &c, &f);
		if (c > avail - pos)
			abort();
		pos += c;
		if (ev != IMAP_MORE)    /* how often depends on the split */
			mix(&h, &ev, sizeof(ev));
		if (ev == IMAP_RESPONSE) {
			mix_response(&h, imap_parser_response(p));
		} else if (ev == IMAP_LITERAL) {
			const struct imap_literal *l = imap_parser_literal(p);
			size_t take = l->size < size - pos ? (size_t)l->size : size - pos;

			mix(&h, &l->size, sizeof(l->size));
			mix(&h, &l->seq, sizeof(l->seq));
			mix_str(&h, l->item);
			mix(&h, in + pos, take);
			pos += take;
			if (take < l->size)
				break;
			imap_parser_literal_done(p);
			if (avail < pos)
				avail = pos;
		} else if (ev == IMAP_ERROR) {
			if (f.kind != FAIL_PROTO)
				abort();
			mix_str(&h, f.msg);
			break;
		}
	}
	if (imap_parser_eof(p, &f) != FAIL_NONE)
		mix_str(&h, f.msg);
	imap_parser_free(p);
	return h;
}

static void
helpers(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char *a, *b, *q = NULL;
	time_t t;

	(void)imap_internaldate_parse(s, size, &t);
	free(imap_mutf7_to_utf8(s, size));
	a = imap_utf8_to_mutf7(s, size);
	if (a != NULL) {
		b = imap_mutf7_to_utf8(a, strlen(a));
		if (b == NULL || strlen(b) != size || memcmp(b, s, size) != 0)
			abort();
		free(b);
		free(a);
	}
	if (imap_quote(s, size, size & 1, &q) >= 0)
		free(q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut = size ? data[0] % (size + 1) : 0;

	if (run(data, size, size) != run(data, size, cut))
		abort();
	helpers(data, size);
	return 0;
}
