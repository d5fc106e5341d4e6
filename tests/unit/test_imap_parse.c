/* test_imap_parse.c - the IMAP response parser: server transcripts fed whole,
 * split in two at every position and one byte at a time (identical results),
 * hostile input, accessors, INTERNALDATE, modified UTF-7, quoting. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "unit.h"

/* ---- a growing text dump of what the parser reported ---- */

struct dump {
	char *s;
	size_t len, cap;
};

static void
put(struct dump *d, const char *s, size_t n)
{
	if (d->len + n + 1 > d->cap) {
		d->cap = (d->len + n + 1) * 2;
		d->s = realloc(d->s, d->cap);
		ck_assert_ptr_nonnull(d->s);
	}
	memcpy(d->s + d->len, s, n);
	d->len += n;
	d->s[d->len] = '\0';
}

static void putf(struct dump *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
putf(struct dump *d, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put(d, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void
put_str(struct dump *d, const char *s, size_t n)
{
	size_t i;

	put(d, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			putf(d, "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			putf(d, "\\x%02x", c);
		else
			put(d, s + i, 1);
	}
	put(d, "\"", 1);
}

static void
put_value(struct dump *d, const struct imap_value *v)
{
	const struct imap_value *c;

	switch (v->type) {
	case IMAP_V_ATOM:
	case IMAP_V_NUMBER:
		put(d, v->s, v->len);
		break;
	case IMAP_V_NIL:
		put(d, "NIL", 3);
		break;
	case IMAP_V_QUOTED:
		put_str(d, v->s, v->len);
		break;
	case IMAP_V_LITERAL:
		putf(d, "%s{%zu}", v->binary ? "~" : "", v->len);
		put_str(d, v->s, v->len);
		break;
	case IMAP_V_STREAMED:
		putf(d, "<stream %s%llu>", v->binary ? "~" : "",
		    (unsigned long long)v->num);
		break;
	case IMAP_V_LIST:
		put(d, "(", 1);
		for (c = v->child; c != NULL; c = c->next) {
			put_value(d, c);
			if (c->next != NULL)
				put(d, " ", 1);
		}
		put(d, ")", 1);
		break;
	}
}

static const char *
type_name(enum imap_rtype t)
{
	static const char *const names[] = {
		"OK", "NO", "BAD", "BYE", "PREAUTH", "CONTINUE", "CAPABILITY",
		"LIST", "LSUB", "FLAGS", "EXISTS", "RECENT", "EXPUNGE", "FETCH",
		"SEARCH", "STATUS", "ENABLED", "OTHER",
	};

	return names[t];
}

static void
put_response(struct dump *d, const struct imap_response *r)
{
	put(d, r->tag ? r->tag : r->type == IMAP_R_CONTINUE ? "+" : "*",
	    strlen(r->tag ? r->tag : "*"));
	putf(d, " %s", type_name(r->type));
	if (r->type == IMAP_R_OTHER)
		putf(d, ":%s", r->keyword);
	if (r->num != 0 || (r->type >= IMAP_R_EXISTS && r->type <= IMAP_R_FETCH))
		putf(d, " #%u", r->num);
	if (r->code.name != NULL) {
		putf(d, " [%s|%s]", r->code.name, r->code.text);
		if (r->code.args != NULL)
			put_value(d, r->code.args);
	}
	if (r->text != NULL) {
		put(d, " ", 1);
		put_str(d, r->text, strlen(r->text));
	}
	if (r->args->len > 0) {
		put(d, " ", 1);
		put_value(d, r->args);
	}
	put(d, "\n", 1);
}

/* ---- the driver: a fake connection delivering `in` in chunks ---- */

enum mode { WHOLE, SPLIT, BYTES, CUTS };

struct feed {
	enum mode mode;
	size_t cut;                     /* SPLIT */
	const size_t *cuts;             /* CUTS: ascending, ended by n */
};

static size_t
next_avail(const struct feed *fd, size_t avail, size_t n)
{
	size_t k;

	switch (fd->mode) {
	case WHOLE:
		return n;
	case SPLIT:
		return avail < fd->cut ? fd->cut : n;
	case BYTES:
		return avail + 1 < n ? avail + 1 : n;
	case CUTS:
		for (k = 0; fd->cuts[k] < n; k++)
			if (fd->cuts[k] > avail)
				return fd->cuts[k];
		return n;
	}
	return n;
}

static char *
run_lim(const char *in, size_t n, const struct feed *fd,
    const struct imap_limits *lim, const char *const *stream)
{
	struct imap_parser *p = imap_parser_new(lim, stream);
	struct dump d = { NULL, 0, 0 };
	size_t pos = 0, avail = 0, c;
	struct fail f;
	int stop = 0;

	put(&d, "", 0);
	while (!stop) {
		enum imap_event ev;

		if (pos == avail) {
			if (avail >= n)
				break;
			avail = next_avail(fd, avail, n);
		}
		memset(&f, 0, sizeof(f));
		ev = imap_parse(p, in + pos, avail - pos, &c, &f);
		ck_assert_uint_le(c, avail - pos);
		pos += c;
		switch (ev) {
		case IMAP_MORE:
			ck_assert_uint_eq(pos, avail);
			ck_assert_ptr_null(imap_parser_response(p));
			break;
		case IMAP_RESPONSE:
			put_response(&d, imap_parser_response(p));
			break;
		case IMAP_LITERAL: {
			const struct imap_literal *l = imap_parser_literal(p);
			uint32_t uid = 0;
			size_t nflags = 0, take;
			const char *fl[4];
			int ru = imap_fetch_uid(l->resp, &uid);
			int rf = imap_fetch_flags(l->resp, fl, 4, &nflags);

			ck_assert_ptr_null(imap_parser_response(p));
			putf(&d, "LIT #%u %s %s%llu uid=%d:%u flags=%d:%zu ", l->seq,
			    l->item, l->binary ? "~" : "", (unsigned long long)l->size,
			    ru, uid, rf, nflags);
			take = l->size < n - pos ? (size_t)l->size : n - pos;
			put_str(&d, in + pos, take);
			pos += take;
			if (take < l->size) {
				put(&d, " CUT\n", 5);
				stop = 2;
				break;
			}
			put(&d, "\n", 1);
			imap_parser_literal_done(p);
			ck_assert_ptr_null(imap_parser_literal(p));
			if (avail < pos)
				avail = pos;
			break;
		}
		case IMAP_ERROR:
			ck_assert_int_eq(f.kind, FAIL_PROTO);
			putf(&d, "ERR: %s\n", f.msg);
			stop = 1;
			break;
		}
	}
	if (stop == 0) {
		memset(&f, 0, sizeof(f));
		if (imap_parser_eof(p, &f) != FAIL_NONE)
			putf(&d, "EOF: %s\n", f.msg);
	}
	imap_parser_free(p);
	return d.s;
}

static const char *const body_items[] = { "BODY[]", "RFC822", "BINARY[]", NULL };

/* Fed whole, the dump must be `want`; fed split in two anywhere and one byte
 * at a time, the same. */
static void
check_lim(const char *in, size_t n, const char *want,
    const struct imap_limits *lim, const char *const *stream)
{
	struct feed whole = { WHOLE, 0, NULL }, fd = { SPLIT, 0, NULL };
	char *a = run_lim(in, n, &whole, lim, stream), *b;
	size_t cut, step = n > 3000 ? 97 : 1;

	if (want != NULL)
		ck_assert_msg(strcmp(a, want) == 0, "whole:\n%s\nwant:\n%s", a, want);
	else
		ck_assert_msg(strstr(a, "ERR: ") == NULL && strstr(a, "EOF: ") == NULL,
		    "whole:\n%s", a);
	for (cut = 0; cut <= n; cut += step) {
		fd.cut = cut;
		b = run_lim(in, n, &fd, lim, stream);
		ck_assert_msg(strcmp(a, b) == 0, "split at %zu:\n%s\nvs whole:\n%s",
		    cut, b, a);
		free(b);
	}
	fd.mode = BYTES;
	b = run_lim(in, n, &fd, lim, stream);
	ck_assert_msg(strcmp(a, b) == 0, "bytewise:\n%s\nvs whole:\n%s", b, a);
	free(b);
	free(a);
}

#define CHECK(in, want) check_lim(in, sizeof(in) - 1, want, NULL, body_items)
#define CHECKL(in, want, lim) check_lim(in, sizeof(in) - 1, want, lim, NULL)

/* One response from a string, for the accessor tests. */
static const struct imap_response *
one(struct imap_parser *p, const char *s)
{
	size_t c;
	struct fail f;
	enum imap_event ev = imap_parse(p, s, strlen(s), &c, &f);

	ck_assert_msg(ev == IMAP_RESPONSE, "event %d: %s", ev,
	    ev == IMAP_ERROR ? f.msg : "");
	ck_assert_uint_eq(c, strlen(s));
	return imap_parser_response(p);
}

/* ---- transcripts ---- */

static const char greeting[] =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
    "LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n"
    "a1 OK [CAPABILITY IMAP4rev1 SASL-IR ID ENABLE IDLE SORT UIDPLUS "
    "CONDSTORE MOVE SPECIAL-USE LITERAL+] Logged in\r\n"
    "* CAPABILITY IMAP4rev1 UIDPLUS LIST-EXTENDED\r\n"
    "a2 OK Capability completed (0.001 + 0.000 secs).\r\n";

START_TEST(test_greeting)
{
	CHECK(greeting,
	    "* OK [CAPABILITY|IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN]"
	    "(IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN) \"Dovecot (Debian) ready.\"\n"
	    "a1 OK [CAPABILITY|IMAP4rev1 SASL-IR ID ENABLE IDLE SORT UIDPLUS CONDSTORE MOVE SPECIAL-USE LITERAL+]"
	    "(IMAP4rev1 SASL-IR ID ENABLE IDLE SORT UIDPLUS CONDSTORE MOVE SPECIAL-USE LITERAL+) \"Logged in\"\n"
	    "* CAPABILITY (IMAP4rev1 UIDPLUS LIST-EXTENDED)\n"
	    "a2 OK \"Capability completed (0.001 + 0.000 secs).\"\n");
}
END_TEST

START_TEST(test_greeting_caps)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	const struct imap_response *r;
	const struct imap_value *caps;

	r = one(p, "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ STARTTLS "
	    "AUTH=PLAIN] Dovecot ready.\r\n");
	ck_assert_int_eq(r->type, IMAP_R_OK);
	ck_assert_ptr_null(r->tag);
	ck_assert_str_eq(r->text, "Dovecot ready.");
	ck_assert(imap_code_is(r, "capability"));
	caps = imap_response_caps(r);
	ck_assert_ptr_nonnull(caps);
	ck_assert_uint_eq(caps->len, 5);
	ck_assert(imap_list_has_atom(caps, "starttls"));
	ck_assert(imap_list_has_atom(caps, "AUTH=PLAIN"));
	ck_assert(!imap_list_has_atom(caps, "AUTH=LOGIN"));
	ck_assert(!imap_list_has_atom(caps, "LITERAL"));
	r = one(p, "* CAPABILITY IMAP4rev1 IDLE\r\n");
	ck_assert_int_eq(r->type, IMAP_R_CAPABILITY);
	ck_assert(imap_list_has_atom(imap_response_caps(r), "IDLE"));
	r = one(p, "* OK no caps\r\n");
	ck_assert_ptr_null(imap_response_caps(r));
	ck_assert(!imap_code_is(r, "CAPABILITY"));
	r = one(p, "* PREAUTH [CAPABILITY IMAP4rev2] ready\r\n");
	ck_assert_int_eq(r->type, IMAP_R_PREAUTH);
	ck_assert(imap_list_has_atom(imap_response_caps(r), "IMAP4rev2"));
	imap_parser_free(p);
}
END_TEST

static const char list_tx[] =
    "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
    "* LIST (\\Noselect \\HasChildren) \"/\" \"Archive\"\r\n"
    "* LIST (\\HasNoChildren) \"/\" \"Archive/2024\"\r\n"
    "* LIST (\\HasNoChildren \\Drafts) \"/\" Entw&APw-rfe\r\n"
    "* LIST (\\HasNoChildren) \"/\" \"&AMQ-rger\"\r\n"
    "* LIST (\\HasNoChildren) \".\" {10}\r\nspace name\r\n"
    "* LIST () NIL \"flat\"\r\n"
    "* LIST (\\NonExistent) \"\\\\\" \"a\\\\b \\\"q\\\"\"\r\n"
    "* LSUB () \"/\" \"Archive/2024\"\r\n"
    "* LIST (\\Subscribed) \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
    "a3 OK List completed (0.001 + 0.000 secs).\r\n";

START_TEST(test_list)
{
	CHECK(list_tx,
	    "* LIST ((\\HasNoChildren) \"/\" INBOX)\n"
	    "* LIST ((\\Noselect \\HasChildren) \"/\" \"Archive\")\n"
	    "* LIST ((\\HasNoChildren) \"/\" \"Archive/2024\")\n"
	    "* LIST ((\\HasNoChildren \\Drafts) \"/\" Entw&APw-rfe)\n"
	    "* LIST ((\\HasNoChildren) \"/\" \"&AMQ-rger\")\n"
	    "* LIST ((\\HasNoChildren) \".\" {10}\"space name\")\n"
	    "* LIST (() NIL \"flat\")\n"
	    "* LIST ((\\NonExistent) \"\\\\\" \"a\\\\b \\\"q\\\"\")\n"
	    "* LSUB (() \"/\" \"Archive/2024\")\n"
	    "* LIST ((\\Subscribed) \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\")))\n"
	    "a3 OK \"List completed (0.001 + 0.000 secs).\"\n");
}
END_TEST

START_TEST(test_list_mailbox)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	const struct imap_response *r;
	struct imap_mailbox mb;
	char *u;

	r = one(p, "* LIST (\\HasNoChildren \\Drafts) \"/\" Entw&APw-rfe\r\n");
	ck_assert_int_eq(imap_list_mailbox(r, &mb), 0);
	ck_assert_int_eq(mb.delim, '/');
	ck_assert_str_eq(mb.name, "Entw&APw-rfe");
	ck_assert(!mb.noselect);
	ck_assert(imap_list_has_atom(mb.flags, "\\drafts"));
	u = imap_mutf7_to_utf8(mb.name, mb.name_len);
	ck_assert_str_eq(u, "Entw\xc3\xbcrfe");
	free(u);

	r = one(p, "* LIST (\\Noselect \\HasChildren) \"/\" \"&AMQ-\"\r\n");
	ck_assert_int_eq(imap_list_mailbox(r, &mb), 0);
	ck_assert(mb.noselect);
	u = imap_mutf7_to_utf8(mb.name, mb.name_len);
	ck_assert_str_eq(u, "\xc3\x84");
	free(u);

	r = one(p, "* LIST (\\NoInferiors) NIL {5}\r\na\"b c\r\n");
	ck_assert_int_eq(imap_list_mailbox(r, &mb), 0);
	ck_assert_int_eq(mb.delim, 0);
	ck_assert(mb.noinferiors);
	ck_assert_uint_eq(mb.name_len, 5);
	ck_assert_str_eq(mb.name, "a\"b c");

	r = one(p, "* LIST (\\NonExistent) \"\\\\\" inbox\r\n");
	ck_assert_int_eq(imap_list_mailbox(r, &mb), 0);
	ck_assert_int_eq(mb.delim, '\\');
	ck_assert(mb.noselect);

	r = one(p, "* LSUB () \".\" \"x\"\r\n");
	ck_assert_int_eq(imap_list_mailbox(r, &mb), 0);
	ck_assert_int_eq(mb.delim, '.');
	r = one(p, "* FLAGS ()\r\n");
	ck_assert_int_eq(imap_list_mailbox(r, &mb), -1);
	imap_parser_free(p);
}
END_TEST

static const char select_tx[] =
    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n"
    "* 5000 EXISTS\r\n"
    "* 0 RECENT\r\n"
    "* OK [UNSEEN 12] First unseen.\r\n"
    "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
    "* OK [UIDNEXT 5001] Predicted next UID\r\n"
    "* OK [HIGHESTMODSEQ 18446744073709551615] Highest\r\n"
    "a4 OK [READ-WRITE] Select completed (0.002 + 0.000 + 0.001 secs).\r\n";

START_TEST(test_select)
{
	CHECK(select_tx,
	    "* FLAGS ((\\Answered \\Flagged \\Deleted \\Seen \\Draft))\n"
	    "* OK [PERMANENTFLAGS|(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"
	    "((\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)) \"Flags permitted.\"\n"
	    "* EXISTS #5000\n"
	    "* RECENT #0\n"
	    "* OK [UNSEEN|12](12) \"First unseen.\"\n"
	    "* OK [UIDVALIDITY|1700000000](1700000000) \"UIDs valid\"\n"
	    "* OK [UIDNEXT|5001](5001) \"Predicted next UID\"\n"
	    "* OK [HIGHESTMODSEQ|18446744073709551615](18446744073709551615) \"Highest\"\n"
	    "a4 OK [READ-WRITE|] \"Select completed (0.002 + 0.000 + 0.001 secs).\"\n");
}
END_TEST

START_TEST(test_codes)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	const struct imap_response *r;
	uint32_t v = 0, w = 0;
	const char *src = NULL, *dst = NULL;

	r = one(p, "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n");
	ck_assert_int_eq(imap_code_u32(r, "UIDVALIDITY", &v), 1);
	ck_assert_uint_eq(v, 1700000000u);
	ck_assert_int_eq(imap_code_u32(r, "UIDNEXT", &v), 0);
	r = one(p, "* OK [uidnext 4294967295] x\r\n");
	ck_assert_int_eq(imap_code_u32(r, "UIDNEXT", &v), 1);
	ck_assert_uint_eq(v, 4294967295u);
	r = one(p, "* OK [UIDNEXT 4294967296] x\r\n");
	ck_assert_int_eq(imap_code_u32(r, "UIDNEXT", &v), -1);
	r = one(p, "* OK [UIDNEXT abc] x\r\n");
	ck_assert_int_eq(imap_code_u32(r, "UIDNEXT", &v), -1);
	r = one(p, "* OK [UIDNEXT] x\r\n");
	ck_assert_int_eq(imap_code_u32(r, "UIDNEXT", &v), -1);
	r = one(p, "* OK [UIDNEXT 5 6] x\r\n");
	ck_assert_int_eq(imap_code_u32(r, "UIDNEXT", &v), -1);
	r = one(p, "a1 OK [APPENDUID 38505 3955] APPEND completed\r\n");
	ck_assert_int_eq(imap_code_appenduid(r, &v, &w), 1);
	ck_assert_uint_eq(v, 38505);
	ck_assert_uint_eq(w, 3955);
	ck_assert_int_eq(imap_code_copyuid(r, &v, &src, &dst), 0);
	r = one(p, "a1 OK [APPENDUID 38505 1:3] multi\r\n");
	ck_assert_int_eq(imap_code_appenduid(r, &v, &w), -1);
	r = one(p, "a1 OK [APPENDUID 38505 1 2] x\r\n");
	ck_assert_int_eq(imap_code_appenduid(r, &v, &w), -1);
	r = one(p, "a1 OK [APPENDUID 38505] x\r\n");
	ck_assert_int_eq(imap_code_appenduid(r, &v, &w), -1);
	r = one(p, "a2 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n");
	ck_assert_int_eq(imap_code_copyuid(r, &v, &src, &dst), 1);
	ck_assert_uint_eq(v, 38505);
	ck_assert_str_eq(src, "304,319:320");
	ck_assert_str_eq(dst, "3956:3958");
	r = one(p, "a2 OK [COPYUID 38505 7 8] Done\r\n");
	ck_assert_int_eq(imap_code_copyuid(r, &v, &src, &dst), 1);
	ck_assert_str_eq(src, "7");
	ck_assert_str_eq(dst, "8");
	r = one(p, "a2 OK [COPYUID 38505 (7) 8] Done\r\n");
	ck_assert_int_eq(imap_code_copyuid(r, &v, &src, &dst), -1);
	r = one(p, "a3 NO [TRYCREATE] Mailbox doesn't exist: Foo\r\n");
	ck_assert_int_eq(r->type, IMAP_R_NO);
	ck_assert(imap_code_is(r, "TRYCREATE"));
	ck_assert_ptr_null(r->code.args);
	ck_assert_str_eq(r->code.text, "");
	ck_assert_str_eq(r->text, "Mailbox doesn't exist: Foo");
	r = one(p, "* OK [READ-ONLY] ro\r\n");
	ck_assert(imap_code_is(r, "read-only"));
	ck_assert(!imap_code_is(r, "READ-WRITE"));
	r = one(p, "* NO [ALERT] Quota (95%) \"exceeded\r\n");
	ck_assert(imap_code_is(r, "ALERT"));
	ck_assert_str_eq(r->text, "Quota (95%) \"exceeded");
	r = one(p, "* OK [REFERRAL imap://u@h/ (x] see\r\n");
	ck_assert_str_eq(r->code.name, "REFERRAL");
	ck_assert_str_eq(r->code.text, "imap://u@h/ (x");
	ck_assert_ptr_null(r->code.args);
	ck_assert_str_eq(r->text, "see");
	r = one(p, "* OK [PERMANENTFLAGS ()] none\r\n");
	ck_assert_uint_eq(r->code.args->len, 1);
	ck_assert_uint_eq(r->code.args->child->len, 0);
	imap_parser_free(p);
}
END_TEST

/* FETCH of bodies, streamed, items in varied order; a body holding ")\r\n"
 * and "* 3 FETCH" must be counted, not parsed. */
static const char fetch_tx[] =
    "* 1 FETCH (UID 101 FLAGS (\\Seen) RFC822.SIZE 5 INTERNALDATE "
    "\"17-Jul-1996 02:44:25 -0700\" BODY[] {5}\r\nhello)\r\n"
    "* 2 FETCH (BODY[] {18}\r\nab\r\n)\r\n* 3 FETCH\r\n UID 102 FLAGS ())\r\n"
    "* 3 FETCH (FLAGS (\\Seen $Forwarded) UID 103 BODY[]<0> {0}\r\n"
    " INTERNALDATE \" 7-Jan-2024 23:59:59 +0100\")\r\n"
    "* 4 FETCH (UID 104 BODY[HEADER] {21}\r\nSubject: hi\r\nX: y\r\n\r\n"
    " RFC822.SIZE 100)\r\n"
    "* 5 FETCH (FLAGS (\\Deleted))\r\n"
    "* 6 FETCH (UID 106 RFC822 {3}\r\nabc BINARY[] ~{2}\r\n\x00\xff)\r\n"
    "* 7 FETCH (UID 107 BODY[HEADER.FIELDS (FROM TO)] {5}\r\nx\r\n\r\n)\r\n"
    "a5 OK Fetch completed (0.001 + 0.000 secs).\r\n";

START_TEST(test_fetch)
{
	CHECK(fetch_tx,
	    "LIT #1 BODY[] 5 uid=1:101 flags=1:1 \"hello\"\n"
	    "* FETCH #1 ((UID 101 FLAGS (\\Seen) RFC822.SIZE 5 INTERNALDATE "
	    "\"17-Jul-1996 02:44:25 -0700\" BODY[] <stream 5>))\n"
	    "LIT #2 BODY[] 18 uid=0:0 flags=0:0 \"ab\\x0d\\x0a)\\x0d\\x0a* 3 FETCH\\x0d\\x0a\"\n"
	    "* FETCH #2 ((BODY[] <stream 18> UID 102 FLAGS ()))\n"
	    "LIT #3 BODY[]<0> 0 uid=1:103 flags=1:2 \"\"\n"
	    "* FETCH #3 ((FLAGS (\\Seen $Forwarded) UID 103 BODY[]<0> <stream 0> "
	    "INTERNALDATE \" 7-Jan-2024 23:59:59 +0100\"))\n"
	    "* FETCH #4 ((UID 104 BODY[HEADER] {21}\"Subject: hi\\x0d\\x0aX: y\\x0d\\x0a\\x0d\\x0a\" "
	    "RFC822.SIZE 100))\n"
	    "* FETCH #5 ((FLAGS (\\Deleted)))\n"
	    "LIT #6 RFC822 3 uid=1:106 flags=0:0 \"abc\"\n"
	    "LIT #6 BINARY[] ~2 uid=1:106 flags=0:0 \"\\x00\\xff\"\n"
	    "* FETCH #6 ((UID 106 RFC822 <stream 3> BINARY[] <stream ~2>))\n"
	    "* FETCH #7 ((UID 107 BODY[HEADER.FIELDS (FROM TO)] {5}\"x\\x0d\\x0a\\x0d\\x0a\"))\n"
	    "a5 OK \"Fetch completed (0.001 + 0.000 secs).\"\n");
}
END_TEST

START_TEST(test_fetch_accessors)
{
	struct imap_parser *p = imap_parser_new(NULL, body_items);
	const struct imap_response *r;
	const char *flags[3], *data;
	size_t n, len;
	uint32_t uid;
	uint64_t size;
	time_t t;

	r = one(p, "* 12 FETCH (UID 4242 RFC822.SIZE 18446744073709551615 FLAGS "
	    "(\\Seen \\Answered $Junk) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
	    "BODY[HEADER] {14}\r\nSubject: x\r\n\r\n)\r\n");
	ck_assert_int_eq(r->type, IMAP_R_FETCH);
	ck_assert_uint_eq(r->num, 12);
	ck_assert_int_eq(imap_fetch_uid(r, &uid), 1);
	ck_assert_uint_eq(uid, 4242);
	ck_assert_int_eq(imap_fetch_size(r, &size), 1);
	ck_assert(size == UINT64_MAX);
	ck_assert_int_eq(imap_fetch_internaldate(r, &t), 1);
	ck_assert(t == 837596665);
	flags[2] = "untouched";
	ck_assert_int_eq(imap_fetch_flags(r, flags, 2, &n), 1);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(flags[0], "\\Seen");
	ck_assert_str_eq(flags[1], "\\Answered");
	ck_assert_str_eq(flags[2], "untouched");
	ck_assert_int_eq(imap_fetch_flags(r, flags, 3, &n), 1);
	ck_assert_str_eq(flags[2], "$Junk");
	ck_assert_int_eq(imap_fetch_body(r, "BODY[HEADER]", &data, &len), 1);
	ck_assert_uint_eq(len, 14);
	ck_assert_str_eq(data, "Subject: x\r\n\r\n");
	ck_assert_int_eq(imap_fetch_body(r, "body[header]", &data, &len), 1);
	ck_assert_int_eq(imap_fetch_body(r, "BODY[]", &data, &len), 0);
	ck_assert_ptr_null(imap_fetch_item(r, "BODY"));
	ck_assert_ptr_null(imap_fetch_item(r, "UID "));

	r = one(p, "* 1 FETCH (UID 4294967296 FLAGS \\Seen RFC822.SIZE x "
	    "INTERNALDATE \"31-Feb-2020 00:00:00 +0000\" BODY[HEADER] NIL "
	    "BODY[TEXT] (a))\r\n");
	ck_assert_int_eq(imap_fetch_uid(r, &uid), -1);
	ck_assert_int_eq(imap_fetch_flags(r, flags, 2, &n), -1);
	ck_assert_int_eq(imap_fetch_size(r, &size), -1);
	ck_assert_int_eq(imap_fetch_internaldate(r, &t), -1);
	ck_assert_int_eq(imap_fetch_body(r, "BODY[HEADER]", &data, &len), 1);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(imap_fetch_body(r, "BODY[TEXT]", &data, &len), -1);

	r = one(p, "* 2 FETCH (UID 0 FLAGS ())\r\n");
	ck_assert_int_eq(imap_fetch_uid(r, &uid), -1);
	ck_assert_int_eq(imap_fetch_flags(r, flags, 2, &n), 1);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(imap_fetch_size(r, &size), 0);
	ck_assert_int_eq(imap_fetch_internaldate(r, &t), 0);

	/* Partial suffix: "BODY[]<0>" answers for "BODY[]"; asking with a
	 * suffix compares it. Quoted bodies are held. */
	r = one(p, "* 3 FETCH (BODY[]<0> \"abc\" BODY[TEXT]<5> \"x\")\r\n");
	ck_assert_int_eq(imap_fetch_body(r, "BODY[]", &data, &len), 1);
	ck_assert_str_eq(data, "abc");
	ck_assert_int_eq(imap_fetch_body(r, "BODY[]<0>", &data, &len), 1);
	ck_assert_int_eq(imap_fetch_body(r, "BODY[]<1>", &data, &len), 0);
	ck_assert_int_eq(imap_fetch_body(r, "BODY[TEXT]", &data, &len), 1);
	ck_assert_str_eq(data, "x");

	/* Not a FETCH. */
	r = one(p, "* 3 EXISTS\r\n");
	ck_assert_int_eq(imap_fetch_uid(r, &uid), 0);
	ck_assert_ptr_null(imap_fetch_item(r, "UID"));
	imap_parser_free(p);
}
END_TEST

/* Without stream_items, only literals above max_small_literal stream; the
 * rest are held. */
START_TEST(test_fetch_small_limit)
{
	static const char in[] =
	    "* 1 FETCH (BODY[] {8}\r\n12345678 UID 1)\r\n"
	    "* 2 FETCH (UID 2 BODY[] {9}\r\n123456789)\r\n"
	    "* 3 FETCH (BODY[HEADER] {9}\r\n123456789)\r\n"
	    "* 4 FETCH (ENVELOPE (NIL {3}\r\nabc))\r\n"
	    "* 5 FETCH (ENVELOPE (NIL {9}\r\n123456789))\r\n";
	struct imap_limits lim;

	imap_limits_default(&lim);
	lim.max_small_literal = 8;
	check_lim(in, sizeof(in) - 1,
	    "* FETCH #1 ((BODY[] {8}\"12345678\" UID 1))\n"
	    "LIT #2 BODY[] 9 uid=1:2 flags=0:0 \"123456789\"\n"
	    "* FETCH #2 ((UID 2 BODY[] <stream 9>))\n"
	    "LIT #3 BODY[HEADER] 9 uid=0:0 flags=0:0 \"123456789\"\n"
	    "* FETCH #3 ((BODY[HEADER] <stream 9>))\n"
	    "* FETCH #4 ((ENVELOPE (NIL {3}\"abc\")))\n"
	    "ERR: IMAP: literal of 9 bytes exceeds the limit of 8 outside a FETCH body\n",
	    &lim, NULL);
}
END_TEST

static const char tagged_tx[] =
    "a5 NO [TRYCREATE] Mailbox doesn't exist: Foo\r\n"
    "a6 BAD Error in IMAP command UID FETCH: Invalid arguments.\r\n"
    "a7 OK [APPENDUID 1700000000 42] Append completed.\r\n"
    "A0008 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n"
    "a9 ok\r\n"
    "* BYE Logging out\r\n"
    "a10 OK Logout completed.\r\n";

START_TEST(test_tagged)
{
	CHECK(tagged_tx,
	    "a5 NO [TRYCREATE|] \"Mailbox doesn't exist: Foo\"\n"
	    "a6 BAD \"Error in IMAP command UID FETCH: Invalid arguments.\"\n"
	    "a7 OK [APPENDUID|1700000000 42](1700000000 42) \"Append completed.\"\n"
	    "A0008 OK [COPYUID|38505 304,319:320 3956:3958](38505 304,319:320 3956:3958) \"Done\"\n"
	    "a9 OK \"\"\n"
	    "* BYE \"Logging out\"\n"
	    "a10 OK \"Logout completed.\"\n");
}
END_TEST

START_TEST(test_check_tag)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	const struct imap_response *r;
	struct fail f;

	r = one(p, "a7 OK done\r\n");
	ck_assert_str_eq(r->tag, "a7");
	ck_assert_int_eq(imap_check_tag(r, "a7", &f), FAIL_NONE);
	ck_assert_int_eq(imap_check_tag(r, "a8", &f), FAIL_PROTO);
	ck_assert_str_eq(f.msg, "IMAP: unexpected tag \"a7\", waiting for a8");
	ck_assert_int_eq(imap_check_tag(r, "A7", &f), FAIL_PROTO);
	ck_assert_int_eq(imap_check_tag(r, NULL, &f), FAIL_PROTO);
	ck_assert_str_eq(f.msg, "IMAP: unexpected tag \"a7\"");
	r = one(p, "* OK untagged\r\n");
	ck_assert_int_eq(imap_check_tag(r, "a8", &f), FAIL_NONE);
	r = one(p, "]x OK tag with a bracket\r\n");
	ck_assert_str_eq(r->tag, "]x");
	imap_parser_free(p);
}
END_TEST

static const char cont_tx[] =
    "+ \r\n"
    "+\r\n"
    "+ idling\r\n"
    "+ dGVzdA==\r\n"
    "+ [ALERT] kept as text\r\n"
    "+ Ready for literal data\r\n";

START_TEST(test_continuation)
{
	CHECK(cont_tx,
	    "+ CONTINUE \"\"\n"
	    "+ CONTINUE \"\"\n"
	    "+ CONTINUE \"idling\"\n"
	    "+ CONTINUE \"dGVzdA==\"\n"
	    "+ CONTINUE \"[ALERT] kept as text\"\n"
	    "+ CONTINUE \"Ready for literal data\"\n");
}
END_TEST

static const char misc_tx[] =
    "* SEARCH 2 84 882\r\n"
    "* SEARCH\r\n"
    "* SEARCH 1 2 (MODSEQ 917162500)\r\n"
    "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"
    "* STATUS \"Entw&APw-rfe\" (UIDVALIDITY 7 UIDNEXT 1 MESSAGES 0)\r\n"
    "* ENABLED CONDSTORE QRESYNC\r\n"
    "* 44 EXPUNGE\r\n"
    "* ID (\"name\" \"Dovecot\")\r\n"
    "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"
    "* ESEARCH (TAG \"a1\") UID ALL 1:3,5\r\n"
    "* 3 XFOO bar\r\n"
    "* 5 SEARCH x\r\n"
    "* XBARE\r\n"
    "* OK [x] y\r\n"
    "* OK\r\n"
    "* ok lower case\r\n"
    "* NO [ALERT] Quota exceeded\r\n"
    "* BAD [PARSE] Bad header\r\n"
    "* PREAUTH IMAP4rev1 server logged in as Smith\r\n"
    "* OK  two spaces\r\n"
    "* 0 EXISTS\r\n"
    "* 4294967295 EXISTS\r\n"
    "* FLAGS ()\r\n"
    "* LIST () \"/\" 42\r\n"
    "* X  a   (b  c)  \r\n"
    "* X ~abc NIL nil \"NIL\" {3}\r\nNIL\r\n";

START_TEST(test_misc)
{
	CHECK(misc_tx,
	    "* SEARCH (2 84 882)\n"
	    "* SEARCH\n"
	    "* SEARCH (1 2 (MODSEQ 917162500))\n"
	    "* STATUS (blurdybloop (MESSAGES 231 UIDNEXT 44292))\n"
	    "* STATUS (\"Entw&APw-rfe\" (UIDVALIDITY 7 UIDNEXT 1 MESSAGES 0))\n"
	    "* ENABLED (CONDSTORE QRESYNC)\n"
	    "* EXPUNGE #44\n"
	    "* OTHER:ID ((\"name\" \"Dovecot\"))\n"
	    "* OTHER:NAMESPACE (((\"\" \"/\")) NIL NIL)\n"
	    "* OTHER:ESEARCH ((TAG \"a1\") UID ALL 1:3,5)\n"
	    "* OTHER:XFOO #3 (bar)\n"
	    "* OTHER:SEARCH #5 (x)\n"
	    "* OTHER:XBARE\n"
	    "* OK [x|] \"y\"\n"
	    "* OK \"\"\n"
	    "* OK \"lower case\"\n"
	    "* NO [ALERT|] \"Quota exceeded\"\n"
	    "* BAD [PARSE|] \"Bad header\"\n"
	    "* PREAUTH \"IMAP4rev1 server logged in as Smith\"\n"
	    "* OK \" two spaces\"\n"
	    "* EXISTS #0\n"
	    "* EXISTS #4294967295\n"
	    "* FLAGS (())\n"
	    "* LIST (() \"/\" 42)\n"
	    "* OTHER:X (a (b c))\n"
	    "* OTHER:X (~abc NIL NIL \"NIL\" {3}\"NIL\")\n");
}
END_TEST

START_TEST(test_status_search)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	const struct imap_response *r;
	const struct imap_value *v;
	uint64_t n = 0;

	r = one(p, "* STATUS \"INBOX\" (MESSAGES 231 uidnext 44292 HIGHESTMODSEQ "
	    "18446744073709551615)\r\n");
	ck_assert_int_eq(imap_status_item(r, "UIDNEXT", &n), 1);
	ck_assert(n == 44292);
	ck_assert_int_eq(imap_status_item(r, "HIGHESTMODSEQ", &n), 1);
	ck_assert(n == UINT64_MAX);
	ck_assert_int_eq(imap_status_item(r, "UIDVALIDITY", &n), 0);
	ck_assert_str_eq(r->args->child->s, "INBOX");
	r = one(p, "* SEARCH 2 84 4294967295\r\n");
	ck_assert_int_eq(imap_status_item(r, "UIDNEXT", &n), -1);
	v = r->args->child;
	ck_assert_uint_eq(r->args->len, 3);
	ck_assert_uint_eq(v->num, 2);
	ck_assert_uint_eq(v->next->next->num, 4294967295u);
	imap_parser_free(p);
}
END_TEST

/* ---- hostile input: one clean error each, the same for every split ---- */

struct bad {
	const char *in;
	size_t len;
	const char *want;
};
#define BAD(s, w) { s, sizeof(s) - 1, w }

static const struct bad bad_cases[] = {
	BAD("* 1 FETCH (BODY[] {9223372036854775808}\r\n",
	    "ERR: IMAP: literal of 9223372036854775808 bytes exceeds the limit of 2147483648\n"),
	BAD("* 1 FETCH (BODY[] {99999999999999999999}\r\n",
	    "ERR: IMAP: literal of 99999999999999999999 bytes exceeds the limit of 2147483648\n"),
	BAD("* 1 FETCH (BODY[] {18446744073709551616+}\r\nxx",
	    "ERR: IMAP: literal of 18446744073709551616 bytes exceeds the limit of 2147483648\n"),
	BAD("* 1 FETCH (BODY[] {2147483649}\r\n",
	    "ERR: IMAP: literal of 2147483649 bytes exceeds the limit of 2147483648\n"),
	BAD("* LIST () \"/\" {70000}\r\n",
	    "ERR: IMAP: literal of 70000 bytes exceeds the limit of 65536 outside a FETCH body\n"),
	BAD("* LIST () \"/\" {10}\r\nabc",
	    "EOF: IMAP: connection closed inside a 10-byte literal, 7 bytes missing\n"),
	BAD("* 1 FETCH (UID 5 BODY[] {10}\r\nabc",
	    "LIT #1 BODY[] 10 uid=1:5 flags=0:0 \"abc\" CUT\n"),
	BAD("* 1 FETCH (BODY[] {3}\r\nabc",
	    "LIT #1 BODY[] 3 uid=0:0 flags=0:0 \"abc\"\n"
	    "EOF: IMAP: connection closed in the middle of a response\n"),
	BAD("* LIST () \"/\" {0}\r\n",
	    "EOF: IMAP: connection closed in the middle of a response\n"),
	/* BYE mid-FETCH: inside a literal it is only bytes (the caller sees the
	 * literal cut short); between items it breaks the list. */
	BAD("* 1 FETCH (UID 5 BODY[] {100}\r\n* BYE shutting down\r\n",
	    "LIT #1 BODY[] 100 uid=1:5 flags=0:0 \"* BYE shutting down\\x0d\\x0a\" CUT\n"),
	BAD("* 1 FETCH (UID 5 FLAGS (\\Seen)\r\n* BYE shutting down\r\n",
	    "ERR: IMAP: line ends inside a list\n"),
	BAD("* 1 FETCH (UID 1",
	    "EOF: IMAP: connection closed in the middle of a response\n"),
	BAD("a1 OK done\r\n* 2 EXI",
	    "a1 OK \"done\"\n"
	    "EOF: IMAP: connection closed in the middle of a response\n"),
	BAD(" OK hi\r\n", "ERR: IMAP: missing tag\n"),
	BAD("OK\r\n", "ERR: IMAP: tagged response \"OK\" without a status\n"),
	BAD("a1 FETCH (UID 1)\r\n",
	    "ERR: IMAP: tagged response is not OK, NO or BAD: FETCH\n"),
	BAD("a1 BYE x\r\n", "ERR: IMAP: tagged response is not OK, NO or BAD: BYE\n"),
	BAD("a+1 OK x\r\n", "ERR: IMAP: bad character 0x2b in tag\n"),
	BAD("a\0 OK x\r\n", "ERR: IMAP: bad character 0x00 in tag\n"),
	BAD("* OK hi\0there\r\n", "ERR: IMAP: bad character 0x00 in response text\n"),
	BAD("* OK [ALERT\0] x\r\n", "ERR: IMAP: bad character 0x00 in response code\n"),
	BAD("* OK [ALERT x\0] x\r\n", "ERR: IMAP: bad character 0x00 in response code\n"),
	BAD("* FLAGS (\\Se\0en)\r\n", "ERR: IMAP: bad character 0x00 in atom\n"),
	BAD("* LIST () \"/\" \"a\0b\"\r\n",
	    "ERR: IMAP: bad character 0x00 in quoted string\n"),
	BAD("* X BODY[a\0]\r\n", "ERR: IMAP: bad character 0x00 in atom\n"),
	BAD("* X a\rb\r\n", "ERR: IMAP: bad character 0x0d in atom\n"),
	BAD("* OK a\rb\r\n", "ERR: IMAP: bad character 0x0d in response text\n"),
	BAD("* X a\x01" "b\r\n", "ERR: IMAP: bad character 0x01 in atom\n"),
	BAD("\0\r\n", "ERR: IMAP: bad character 0x00 in tag\n"),
	BAD("* LIST () \"/\" \"abc\r\n", "ERR: IMAP: unterminated quoted string\n"),
	BAD("* LIST () \"/\" \"abc\\\r\n", "ERR: IMAP: unterminated quoted string\n"),
	BAD("* LIST () \"/\" \"a\\nb\"\r\n", "ERR: IMAP: bad escape \\n in quoted string\n"),
	BAD("* LIST () \"/\" \"a\\\x01\"\r\n", "ERR: IMAP: bad escape \\? in quoted string\n"),
	BAD("* 3 EXISTS junk\r\n", "ERR: IMAP: malformed EXISTS response\n"),
	BAD("* FLAGS (\\Seen) x\r\n", "ERR: IMAP: malformed FLAGS response\n"),
	BAD("* FLAGS (\"quoted\")\r\n", "ERR: IMAP: malformed FLAGS response\n"),
	BAD("* 1 FETCH (UID 1) x\r\n", "ERR: IMAP: malformed FETCH response\n"),
	BAD("* 1 FETCH UID 1\r\n", "ERR: IMAP: malformed FETCH response\n"),
	BAD("* 1 FETCH (UID)\r\n", "ERR: IMAP: malformed FETCH response\n"),
	BAD("* 1 FETCH (\"UID\" 1)\r\n", "ERR: IMAP: FETCH item name expected\n"),
	BAD("* 1 FETCH ({3}\r\nUID 1)\r\n", "ERR: IMAP: FETCH item name expected\n"),
	BAD("* LIST () \"//\" x\r\n", "ERR: IMAP: malformed LIST response\n"),
	BAD("* LIST () \"/\"\r\n", "ERR: IMAP: malformed LIST response\n"),
	BAD("* STATUS x (MESSAGES)\r\n", "ERR: IMAP: malformed STATUS response\n"),
	BAD("* STATUS x (MESSAGES 1) y\r\n", "ERR: IMAP: malformed STATUS response\n"),
	BAD("* STATUS x (MESSAGES x)\r\n", "ERR: IMAP: malformed STATUS response\n"),
	BAD("* SEARCH 1 x\r\n", "ERR: IMAP: malformed SEARCH response\n"),
	BAD("* CAPABILITY IMAP4rev1 \"x\"\r\n", "ERR: IMAP: malformed CAPABILITY response\n"),
	BAD("a1 OK done\r\n)\r\n",
	    "a1 OK \"done\"\nERR: IMAP: bad character 0x29 in tag\n"),
	BAD("* X a)\r\n", "ERR: IMAP: unexpected ')'\n"),
	BAD("* X a]\r\n", "ERR: IMAP: unexpected ']'\n"),
	BAD("* FLAGS (\\Seen\r\n", "ERR: IMAP: line ends inside a list\n"),
	BAD("* X {5}x\r\n", "ERR: IMAP: text after a literal header\n"),
	BAD("* X {abc}\r\n", "ERR: IMAP: bad literal header\n"),
	BAD("* X {5\r\n", "ERR: IMAP: bad literal header\n"),
	BAD("* X {}\r\n", "ERR: IMAP: bad literal header\n"),
	BAD("* OK [CAPABILITY {5}\r\n", "ERR: IMAP: unterminated response code\n"),
	BAD("* OK [CAPABILITY {5}] x\r\n", "ERR: IMAP: literal in a response code\n"),
	BAD("* OK [PERMANENTFLAGS (\\Seen] x\r\n",
	    "ERR: IMAP: unterminated list in response code\n"),
	BAD("* OK [UIDNEXT \"x] y\r\n", "ERR: IMAP: unterminated quoted string\n"),
	BAD("* OK [ALERT hi\r\n", "ERR: IMAP: unterminated response code\n"),
	BAD("* OK [] hi\r\n", "ERR: IMAP: empty response code\n"),
	BAD("* X BODY[abc\r\n", "ERR: IMAP: unterminated '[' in atom\n"),
	BAD("* 4294967296 EXISTS\r\n", "ERR: IMAP: number 4294967296 out of range\n"),
	BAD("* SEARCH 18446744073709551616\r\n",
	    "ERR: IMAP: number 18446744073709551616 out of range\n"),
	BAD("* 0 FETCH (UID 1)\r\n", "ERR: IMAP: message number 0 in FETCH\n"),
	BAD("* 0 EXPUNGE\r\n", "ERR: IMAP: message number 0 in EXPUNGE\n"),
	BAD("* FETCH (UID 1)\r\n", "ERR: IMAP: FETCH without a message number\n"),
	BAD("* EXISTS\r\n", "ERR: IMAP: EXISTS without a message number\n"),
	BAD("* 5\r\n", "ERR: IMAP: expected a space after a number\n"),
	BAD("\r\n", "ERR: IMAP: empty response line\n"),
	BAD("\n", "ERR: IMAP: empty response line\n"),
	BAD("*x\r\n", "ERR: IMAP: expected a space after '*'\n"),
	BAD("*\r\n", "ERR: IMAP: expected a space after '*'\n"),
	BAD("* (a)\r\n", "ERR: IMAP: bad response keyword \"(a)\"\n"),
	BAD("* OK[x]\r\n", "ERR: IMAP: bad OK response\n"),
	BAD("+x\r\n", "ERR: IMAP: bad + response\n"),
};

START_TEST(test_hostile)
{
	const struct bad *b = &bad_cases[_i];

	check_lim(b->in, b->len, b->want, NULL, body_items);
}
END_TEST

static char *
repeat(const char *head, char c, size_t n, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = malloc(hl + n + tl + 1);

	memcpy(s, head, hl);
	memset(s + hl, c, n);
	memcpy(s + hl + n, tail, tl + 1);
	return s;
}

START_TEST(test_deep_nesting)
{
	char *s = repeat("* 1 FETCH (X ", '(', 10000, "\r\n");

	check_lim(s, strlen(s), "ERR: IMAP: list nesting deeper than 32\n",
	    NULL, NULL);
	free(s);
	s = repeat("* X ", '(', 10000, "\n");
	check_lim(s, strlen(s), "ERR: IMAP: list nesting deeper than 32\n",
	    NULL, NULL);
	free(s);
	/* 32 deep is fine. */
	s = malloc(200);
	strcpy(s, "* X ");
	memset(s + 4, '(', 32);
	memset(s + 36, ')', 32);
	strcpy(s + 68, "\r\n");
	check_lim(s, strlen(s),
	    "* OTHER:X ((((((((((((((((((((((((((((((((()))))))))))))))))))))))))))))))))\n",
	    NULL, NULL);
	free(s);
}
END_TEST

START_TEST(test_limits)
{
	struct imap_limits lim;

	imap_limits_default(&lim);
	lim.max_atom = 16;
	lim.max_line = 64;
	lim.max_depth = 3;
	lim.max_args = 5;
	lim.max_response = 4096;
	CHECKL("* FLAGS (\\aaaaaaaaaaaaaaa)\r\n",
	    "* FLAGS ((\\aaaaaaaaaaaaaaa))\n", &lim);
	CHECKL("* FLAGS (\\aaaaaaaaaaaaaaaa)\r\n",
	    "ERR: IMAP: atom longer than 16 bytes\n", &lim);
	CHECKL("* X (((a)))\r\n", "* OTHER:X ((((a))))\n", &lim);
	CHECKL("* X ((((a))))\r\n",
	    "ERR: IMAP: list nesting deeper than 3\n", &lim);
	CHECKL("* SEARCH 1 2 3 4 5\r\n", "* SEARCH (1 2 3 4 5)\n", &lim);
	CHECKL("* SEARCH 1 2 3 4 5 6\r\n",
	    "ERR: IMAP: more than 5 values in one response\n", &lim);
}
END_TEST

START_TEST(test_limits_line)
{
	struct imap_limits lim;
	char *s, want[200];
	struct dump d = { NULL, 0, 0 };

	imap_limits_default(&lim);
	lim.max_line = 64;
	lim.max_response = 4096;
	s = repeat("* OK ", 'x', 59, "\r\n");
	snprintf(want, sizeof(want), "* OK \"%.59s\"\n", s + 5);
	check_lim(s, strlen(s), want, &lim, NULL);
	free(s);
	s = repeat("* OK ", 'x', 60, "\r\n");
	check_lim(s, strlen(s), "ERR: IMAP: line longer than 64 bytes\n", &lim, NULL);
	free(s);
	s = repeat("* OK ", 'x', 60, "\n");
	check_lim(s, strlen(s), "ERR: IMAP: line longer than 64 bytes\n", &lim, NULL);
	free(s);
	s = repeat("* OK ", 'x', 100000, "");
	check_lim(s, strlen(s), "ERR: IMAP: line longer than 64 bytes\n", &lim, NULL);
	free(s);
	/* The literal's bytes do not count against the line. */
	s = repeat("* 1 FETCH (BODY[HEADER] {1000}\r\n", 'y', 1000, ")\r\n");
	check_lim(s, strlen(s), NULL, &lim, NULL);
	free(s);
	/* A response's memory is capped as a whole: one 3000-byte literal fits
	 * in 4096 bytes, two do not. */
	s = repeat("* X {3000}\r\n", 'y', 3000, " {3000}\r\n");
	put(&d, s, strlen(s));
	free(s);
	s = repeat("", 'z', 3000, "\r\n");
	put(&d, s, strlen(s));
	free(s);
	check_lim(d.s, d.len, "ERR: IMAP: response larger than 4096 bytes\n",
	    &lim, NULL);
	free(d.s);
	s = repeat("* X {3000}\r\n", 'y', 3000, "\r\n");
	check_lim(s, strlen(s), NULL, &lim, NULL);
	free(s);
}
END_TEST

/* Parsed whole or in random pieces, a long session gives the same. */
START_TEST(test_random_splits)
{
	struct dump all = { NULL, 0, 0 };
	struct feed whole = { WHOLE, 0, NULL }, fd = { CUTS, 0, NULL };
	size_t cuts[8], k, it;
	char *a, *b;
	unsigned seed = 12345;

	put(&all, greeting, sizeof(greeting) - 1);
	put(&all, select_tx, sizeof(select_tx) - 1);
	put(&all, list_tx, sizeof(list_tx) - 1);
	put(&all, fetch_tx, sizeof(fetch_tx) - 1);
	put(&all, tagged_tx, sizeof(tagged_tx) - 1);
	put(&all, misc_tx, sizeof(misc_tx) - 1);
	put(&all, cont_tx, sizeof(cont_tx) - 1);
	a = run_lim(all.s, all.len, &whole, NULL, body_items);
	ck_assert_msg(strstr(a, "ERR: ") == NULL && strstr(a, "EOF: ") == NULL, "%s", a);
	fd.cuts = cuts;
	for (it = 0; it < 2000; it++) {
		size_t n = 1 + it % 7;

		for (k = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			cuts[k] = (seed >> 8) % all.len;
		}
		/* sort */
		for (k = 1; k < n; k++) {
			size_t j = k, v = cuts[k];

			for (; j > 0 && cuts[j - 1] > v; j--)
				cuts[j] = cuts[j - 1];
			cuts[j] = v;
		}
		cuts[n] = all.len;
		b = run_lim(all.s, all.len, &fd, NULL, body_items);
		ck_assert_msg(strcmp(a, b) == 0, "iteration %zu differs", it);
		free(b);
	}
	free(a);
	free(all.s);
}
END_TEST

/* ---- the parser's own contract ---- */

START_TEST(test_consumed)
{
	static const char in[] = "* 1 EXISTS\r\n* 2 EXISTS\r\n";
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	struct fail f;
	size_t c;

	ck_assert(!imap_parser_busy(p));
	ck_assert_int_eq(imap_parse(p, in, sizeof(in) - 1, &c, &f), IMAP_RESPONSE);
	ck_assert_uint_eq(c, 12);
	ck_assert_uint_eq(imap_parser_response(p)->num, 1);
	ck_assert(!imap_parser_busy(p));
	ck_assert_int_eq(imap_parse(p, in + 12, 5, &c, &f), IMAP_MORE);
	ck_assert_uint_eq(c, 5);
	ck_assert_ptr_null(imap_parser_response(p));
	ck_assert(imap_parser_busy(p));
	ck_assert_int_eq(imap_parser_eof(p, &f), FAIL_CONN);
	ck_assert_int_eq(imap_parse(p, in + 17, 0, &c, &f), IMAP_MORE);
	ck_assert_uint_eq(c, 0);
	ck_assert_int_eq(imap_parse(p, in + 17, 7, &c, &f), IMAP_RESPONSE);
	ck_assert_uint_eq(c, 7);
	ck_assert_uint_eq(imap_parser_response(p)->num, 2);
	ck_assert_int_eq(imap_parser_eof(p, &f), FAIL_NONE);
	imap_parser_free(p);
}
END_TEST

START_TEST(test_stream_contract)
{
	static const char in[] = "* 9 FETCH (UID 7 BODY[] {4}\r\nabcd)\r\n";
	struct imap_parser *p = imap_parser_new(NULL, body_items);
	const struct imap_literal *l;
	struct fail f;
	size_t c;

	ck_assert_int_eq(imap_parse(p, in, sizeof(in) - 1, &c, &f), IMAP_LITERAL);
	ck_assert_uint_eq(c, 29);
	l = imap_parser_literal(p);
	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(l->seq, 9);
	ck_assert(l->size == 4);
	ck_assert_str_eq(l->item, "BODY[]");
	ck_assert(imap_parser_busy(p));
	ck_assert_int_eq(imap_parser_eof(p, &f), FAIL_CONN);
	ck_assert_str_eq(f.msg,
	    "IMAP: connection closed inside a streamed 4-byte literal");
	/* Feeding before literal_done is the caller's bug: a clean error. */
	ck_assert_int_eq(imap_parse(p, in + 29, 4, &c, &f), IMAP_ERROR);
	ck_assert_str_eq(f.msg, "IMAP: fed while a streamed literal is pending");
	ck_assert_int_eq(imap_parse(p, in + 33, 3, &c, &f), IMAP_ERROR);
	ck_assert_int_eq(imap_parser_eof(p, &f), FAIL_PROTO);
	/* Reset: a fresh stream works again. */
	imap_parser_reset(p);
	ck_assert(!imap_parser_busy(p));
	ck_assert_int_eq(imap_parse(p, in, sizeof(in) - 1, &c, &f), IMAP_LITERAL);
	imap_parser_literal_done(p);
	ck_assert_int_eq(imap_parse(p, in + 33, 3, &c, &f), IMAP_RESPONSE);
	ck_assert_uint_eq(c, 3);
	ck_assert_int_eq(imap_fetch_item(imap_parser_response(p), "BODY[]")->type,
	    IMAP_V_STREAMED);
	imap_parser_free(p);
}
END_TEST

START_TEST(test_error_sticks)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	struct fail f;
	size_t c;

	ck_assert_int_eq(imap_parse(p, "* X )\r\n* 1 EXISTS\r\n", 19, &c, &f),
	    IMAP_ERROR);
	ck_assert_str_eq(f.msg, "IMAP: unexpected ')'");
	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(imap_parse(p, "* 1 EXISTS\r\n", 12, &c, &f), IMAP_ERROR);
	ck_assert_str_eq(f.msg, "IMAP: unexpected ')'");
	ck_assert_uint_eq(c, 0);
	imap_parser_reset(p);
	ck_assert_int_eq(imap_parse(p, "* 1 EXISTS\r\n", 12, &c, &f), IMAP_RESPONSE);
	/* Reset drops a partial line and a partial literal (after STARTTLS). */
	ck_assert_int_eq(imap_parse(p, "* 2 EXI", 7, &c, &f), IMAP_MORE);
	imap_parser_reset(p);
	ck_assert(!imap_parser_busy(p));
	ck_assert_int_eq(imap_parse(p, "* 3 EXISTS\r\n", 12, &c, &f), IMAP_RESPONSE);
	ck_assert_uint_eq(imap_parser_response(p)->num, 3);
	ck_assert_int_eq(imap_parse(p, "* LIST () \"/\" {5}\r\nab", 21, &c, &f),
	    IMAP_MORE);
	imap_parser_reset(p);
	ck_assert_int_eq(imap_parse(p, "* 4 EXISTS\r\n", 12, &c, &f), IMAP_RESPONSE);
	ck_assert_uint_eq(imap_parser_response(p)->num, 4);
	imap_parser_free(p);
	imap_parser_free(NULL);
}
END_TEST

/* Server text in error messages is sanitized and cut. */
START_TEST(test_error_text)
{
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	char in[300];
	struct fail f;
	size_t c;

	memset(in, 'A', sizeof(in));
	memcpy(in, "a1 \x1b[31m", 8);
	memcpy(in + 250, "\r\n", 2);
	ck_assert_int_eq(imap_parse(p, in, 252, &c, &f), IMAP_ERROR);
	ck_assert_str_eq(f.msg, "IMAP: bad response keyword "
	    "\"?[31mAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA...\"");
	imap_parser_free(p);
}
END_TEST

/* ---- helpers ---- */

START_TEST(test_internaldate)
{
	time_t t = 0;

#define DATE_OK(s, v) do {                                                  \
	ck_assert_msg(imap_internaldate_parse(s, strlen(s), &t) == 0, "%s", s); \
	ck_assert_msg(t == (time_t)(v), "%s: %lld", s, (long long)t);       \
} while (0)
#define DATE_BAD(s) ck_assert_msg(imap_internaldate_parse(s, strlen(s), &t) == -1, "%s", s)
	DATE_OK("17-Jul-1996 02:44:25 -0700", 837596665);
	DATE_OK("17-jul-1996 09:44:25 +0000", 837596665);
	DATE_OK("17-JUL-1996 11:44:25 +0200", 837596665);
	DATE_OK("01-Jan-1970 00:00:00 +0000", 0);
	DATE_OK(" 1-Jan-1970 01:00:00 +0100", 0);
	DATE_OK("1-Jan-1970 00:00:00 +0000", 0);
	DATE_OK("29-Feb-2024 23:59:59 +0000", 1709251199);
	DATE_OK("29-Feb-2000 00:00:00 +0000", 951782400);
	DATE_OK("31-Dec-1969 23:59:59 +0000", -1);
	DATE_OK("19-Jan-2038 03:14:08 +0000", 2147483648LL);
	DATE_OK("01-Jan-1970 00:00:00 -0130", 5400);
	DATE_BAD("");
	DATE_BAD("17-Jul-1996 02:44:25");
	DATE_BAD("17-Jul-1996 02:44:25 -0700 ");
	DATE_BAD("17-Jly-1996 02:44:25 -0700");
	DATE_BAD("32-Jul-1996 02:44:25 -0700");
	DATE_BAD("00-Jul-1996 02:44:25 -0700");
	DATE_BAD("31-Apr-1996 02:44:25 -0700");
	DATE_BAD("29-Feb-2023 02:44:25 -0700");
	DATE_BAD("29-Feb-1900 02:44:25 -0700");
	DATE_BAD("17-Jul-96 02:44:25 -0700");
	DATE_BAD("17-Jul-1996 24:44:25 -0700");
	DATE_BAD("17-Jul-1996 02:60:25 -0700");
	DATE_BAD("17-Jul-1996 02:44:61 -0700");
	DATE_BAD("17-Jul-1996 02:44:25 -0760");
	DATE_BAD("17-Jul-1996 02:44:25 0700");
	DATE_BAD("17-Jul-1996 2:44:25 -0700");
	DATE_BAD("17-Jul-1996T02:44:25 -0700");
	DATE_BAD("  7-Jul-1996 02:44:25 -0700");
	DATE_BAD(" 17-Jul-1996 02:44:25 -0700");
	DATE_BAD("117-Jul-1996 02:44:25 -0700");
	DATE_BAD("17-Jul-1996 02:44:25 -07");
	ck_assert_int_eq(imap_internaldate_parse("17-Jul-1996 02:44:25 -0700xyz",
	    26, &t), 0);
	ck_assert(t == 837596665);
#undef DATE_OK
#undef DATE_BAD
}
END_TEST

START_TEST(test_mutf7_decode)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "INBOX", "INBOX" },
		{ "", "" },
		{ "&AMQ-", "\xc3\x84" },
		{ "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
		{ "&-", "&" },
		{ "a&-b&-", "a&b&" },
		{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
		  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
		{ "&2D3eAA-", "\xf0\x9f\x98\x80" },
		{ "&AMQAxADE-", "\xc3\x84\xc3\x84\xc3\x84" },
		{ "&AAE-", "\x01" },
	};
	static const char *const bad[] = {
		"&AGE-",        /* 'a' encoded */
		"&ACY-",        /* '&' encoded */
		"&AMQ",         /* unterminated */
		"&",
		"&A-",          /* 6 leftover bits */
		"&AMR-",        /* non-zero leftover bits */
		"&AM=-",        /* bad base64 */
		"&AM/-",        /* '/' is ',' in mUTF-7 */
		"&2DQ-",        /* lone high surrogate */
		"&3gA-",        /* lone low surrogate */
		"&2DTYNA-",     /* high + high */
		"&AAA-",        /* NUL */
		"\xc3\xa4",     /* raw 8-bit */
		"a\tb",         /* control */
		"\x7f",
	};
	size_t i;
	char *s;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		s = imap_mutf7_to_utf8(ok[i].in, strlen(ok[i].in));
		ck_assert_msg(s != NULL, "%s", ok[i].in);
		ck_assert_str_eq(s, ok[i].out);
		free(s);
		s = imap_utf8_to_mutf7(ok[i].out, strlen(ok[i].out));
		ck_assert_msg(s != NULL, "%s", ok[i].in);
		if (strcmp(ok[i].in, "a&-b&-") != 0)
			ck_assert_str_eq(s, ok[i].in);
		free(s);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(imap_mutf7_to_utf8(bad[i], strlen(bad[i])) == NULL,
		    "accepted %s", bad[i]);
}
END_TEST

START_TEST(test_mutf7_encode)
{
	static const char *const bad[] = {
		"\xc3",                 /* cut short */
		"\xc0\xaf",             /* overlong */
		"\xe0\x80\xaf",         /* overlong */
		"\xed\xa0\x80",         /* surrogate */
		"\xf4\x90\x80\x80",     /* > U+10FFFF */
		"\xff",
		"a\x80",
	};
	size_t i;
	char *s, *u;

	s = imap_utf8_to_mutf7("Entw\xc3\xbcrfe & Co", 14);
	ck_assert_str_eq(s, "Entw&APw-rfe &- Co");
	free(s);
	s = imap_utf8_to_mutf7("a\0b", 3);
	ck_assert_ptr_null(s);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(imap_utf8_to_mutf7(bad[i], strlen(bad[i])) == NULL,
		    "accepted %zu", i);
	/* Round trip of every 1- to 3-unit run length. */
	s = imap_utf8_to_mutf7("\xc3\xa4x\xc3\xa4\xc3\xa4y\xc3\xa4\xc3\xa4\xc3\xa4"
	    "\xf0\x9f\x98\x80z", 19);
	ck_assert_ptr_nonnull(s);
	u = imap_mutf7_to_utf8(s, strlen(s));
	ck_assert_str_eq(u, "\xc3\xa4x\xc3\xa4\xc3\xa4y\xc3\xa4\xc3\xa4\xc3\xa4"
	    "\xf0\x9f\x98\x80z");
	free(u);
	free(s);
}
END_TEST

START_TEST(test_quote)
{
	char *s = NULL, long_s[1100];

	ck_assert_int_eq(imap_quote("abc", 3, 0, &s), 1);
	ck_assert_str_eq(s, "\"abc\"");
	free(s);
	ck_assert_int_eq(imap_quote("", 0, 0, &s), 1);
	ck_assert_str_eq(s, "\"\"");
	free(s);
	ck_assert_int_eq(imap_quote("a\"b\\c d", 7, 0, &s), 1);
	ck_assert_str_eq(s, "\"a\\\"b\\\\c d\"");
	free(s);
	ck_assert_int_eq(imap_quote("p\xc3\xa4ss", 5, 0, &s), 0);
	ck_assert_str_eq(s, "{5}");
	free(s);
	ck_assert_int_eq(imap_quote("p\xc3\xa4ss", 5, 1, &s), 0);
	ck_assert_str_eq(s, "{5+}");
	free(s);
	ck_assert_int_eq(imap_quote("a\r\nb", 4, 0, &s), 0);
	ck_assert_str_eq(s, "{4}");
	free(s);
	ck_assert_int_eq(imap_quote("a\nb", 3, 0, &s), 0);
	free(s);
	s = NULL;
	ck_assert_int_eq(imap_quote("a\0b", 3, 0, &s), -1);
	ck_assert_ptr_null(s);
	memset(long_s, 'a', sizeof(long_s));
	ck_assert_int_eq(imap_quote(long_s, 1024, 0, &s), 1);
	free(s);
	ck_assert_int_eq(imap_quote(long_s, 1025, 0, &s), 0);
	ck_assert_str_eq(s, "{1025}");
	free(s);
}
END_TEST

START_TEST(test_sanitize)
{
	char b[8];

	imap_sanitize(b, sizeof(b), "abc", 3);
	ck_assert_str_eq(b, "abc");
	imap_sanitize(b, sizeof(b), "a\x1b\0\xff", 4);
	ck_assert_str_eq(b, "a???");
	imap_sanitize(b, sizeof(b), "1234567", 7);
	ck_assert_str_eq(b, "1234567");
	imap_sanitize(b, sizeof(b), "12345678", 8);
	ck_assert_str_eq(b, "1234...");
	imap_sanitize(b, 2, "12345678", 8);
	ck_assert_str_eq(b, "1");
	imap_sanitize(b, 1, "12345678", 8);
	ck_assert_str_eq(b, "");
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("imap_parse");
	TCase *tc = tcase_create("transcripts");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_greeting);
	tcase_add_test(tc, test_greeting_caps);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_list_mailbox);
	tcase_add_test(tc, test_select);
	tcase_add_test(tc, test_codes);
	tcase_add_test(tc, test_fetch);
	tcase_add_test(tc, test_fetch_accessors);
	tcase_add_test(tc, test_fetch_small_limit);
	tcase_add_test(tc, test_tagged);
	tcase_add_test(tc, test_check_tag);
	tcase_add_test(tc, test_continuation);
	tcase_add_test(tc, test_misc);
	tcase_add_test(tc, test_status_search);
	tcase_add_test(tc, test_random_splits);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_hostile, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_limits_line);
	tcase_add_test(tc, test_consumed);
	tcase_add_test(tc, test_stream_contract);
	tcase_add_test(tc, test_error_sticks);
	tcase_add_test(tc, test_error_text);
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_test(tc, test_internaldate);
	tcase_add_test(tc, test_mutf7_decode);
	tcase_add_test(tc, test_mutf7_encode);
	tcase_add_test(tc, test_quote);
	tcase_add_test(tc, test_sanitize);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
