/* test_filter.c - the filter engine: header parsing (folding, line ends,
 * RFC 2047), conditions, any/all, sizes, order, the digest, every error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "unit.h"

/* A finished filter from "key", "value" pairs ending with NULL. */
static struct filter *
mk(const char *name, const char *const *kv)
{
	struct filter *fl = filter_new(name);
	const char *err = NULL;

	for (; kv[0] != NULL; kv += 2) {
		if (filter_set(fl, kv[0], kv[1], &err) != 0)
			ck_abort_msg("%s = %s: %s", kv[0], kv[1], err);
	}
	if (filter_finish(fl, &err) != 0)
		ck_abort_msg("finish: %s", err);
	return fl;
}

#define MK(name, ...) mk(name, (const char *const[]){ __VA_ARGS__, NULL })

/* Does fl match the header block hdr (a C string) and size? */
static int
hits(const struct filter *fl, const char *hdr, unsigned long long size)
{
	struct filter_headers *h = filter_headers_parse(hdr, strlen(hdr));
	struct filter_msg m = { .size = size, .headers = h };
	int r = filter_match(fl, &m);

	filter_headers_free(h);
	return r;
}

/* The decoded value of field name in hdr, copied into a static buffer. */
static const char *
get(const char *hdr, const char *name)
{
	static char out[1024];
	struct filter_headers *h = filter_headers_parse(hdr, strlen(hdr));
	const char *v = filter_headers_get(h, name);

	if (v == NULL) {
		filter_headers_free(h);
		return NULL;
	}
	snprintf(out, sizeof(out), "%s", v);
	filter_headers_free(h);
	return out;
}

/* The error of setting key = value on a fresh filter (which must fail). */
static const char *
set_err(const char *key, const char *value)
{
	static char out[512];
	struct filter *fl = filter_new("t");
	const char *err = NULL;

	ck_assert_int_eq(filter_set(fl, key, value, &err), -1);
	ck_assert_ptr_nonnull(err);
	snprintf(out, sizeof(out), "%s", err);
	filter_free(fl);
	return out;
}

START_TEST(folding)
{
	static const char hdr[] =
		"Subject: hello\r\n"
		"  big\r\n"
		"\tworld  \r\n"
		"X-Other: y\r\n"
		"\r\n";
	struct filter *fl = MK("f", "header", "Subject: ^hello +big\tworld$",
	    "action", "skip");

	ck_assert_str_eq(get(hdr, "subject"), "hello  big\tworld");
	ck_assert_str_eq(get(hdr, "X-Other"), "y");
	ck_assert_int_eq(hits(fl, hdr, 1), 1);
	/* the same with LF line ends */
	ck_assert_str_eq(get("Subject: hello\n  big\n\tworld\n\n", "Subject"),
	    "hello  big\tworld");
	/* a continuation before any field, and one after a junk line: dropped */
	ck_assert_str_eq(get(" lost\nSubject: a\nnot a field\n more\n", "Subject"),
	    "a");
	/* a blank-only line continues the field; it does not end the header */
	ck_assert_str_eq(get("Subject: a\n \nTo: b\n", "To"), "b");
	filter_free(fl);
}
END_TEST

START_TEST(line_ends_and_end_of_header)
{
	struct filter *fl = MK("spam", "header", "X-Spam-Flag: ^yes$",
	    "action", "skip");

	ck_assert_int_eq(hits(fl, "X-Spam-Flag: YES\r\n\r\n", 1), 1);
	ck_assert_int_eq(hits(fl, "X-Spam-Flag: YES\n\n", 1), 1);
	ck_assert_int_eq(hits(fl, "X-Spam-Flag: YES\r\n", 1), 1);  /* no blank line */
	ck_assert_int_eq(hits(fl, "X-Spam-Flag: YES", 1), 1);      /* no line end */
	ck_assert_int_eq(hits(fl, "X-Spam-Flag:YES  \t\r\n", 1), 1);
	ck_assert_int_eq(hits(fl, "X-Spam-Flag: NO\r\n", 1), 0);
	ck_assert_int_eq(hits(fl, "X-Spam-Flag: YESS\r\n", 1), 0);
	/* the header ends at the first empty line: the body is not looked at */
	ck_assert_int_eq(hits(fl, "From: a\r\n\r\nX-Spam-Flag: YES\r\n", 1), 0);
	ck_assert_int_eq(hits(fl, "From: a\n\nX-Spam-Flag: YES\n", 1), 0);
	ck_assert_int_eq(hits(fl, "", 1), 0);
	/* obsolete "Name : value" and a leading mbox From_ line */
	ck_assert_int_eq(hits(fl, "From a@b Mon Jan 1 12:00:00 2024\n"
	    "X-Spam-Flag : yes\n", 1), 1);
	filter_free(fl);
	/* "From a@b Mon ... 12:00" is not a field named "From a@b Mon Jan 1 12",
	 * nor is a name with a control or 8-bit byte */
	static const char junk[] = "From a@b Mon Jan 1 12:00:00 2024\n"
	    "Bad\x01Name: x\nCaf\xc3\xa9: x\n: empty name\nSubject: s\n";
	struct filter_headers *h = filter_headers_parse(junk, strlen(junk));

	ck_assert_uint_eq(filter_headers_count(h), 1);
	ck_assert_str_eq(filter_headers_get(h, "Subject"), "s");
	filter_headers_free(h);
}
END_TEST

START_TEST(header_count_and_nul)
{
	static const char hdr[] = "A: 1\nB: x\0y\nC: 3\n\n";
	struct filter_headers *h = filter_headers_parse(hdr, sizeof(hdr) - 1);

	ck_assert_uint_eq(filter_headers_count(h), 3);
	ck_assert_str_eq(filter_headers_get(h, "B"), "x y");
	ck_assert_str_eq(filter_headers_get(h, "c"), "3");
	ck_assert_ptr_null(filter_headers_get(h, "D"));
	ck_assert_ptr_null(filter_headers_get_raw(h, "D"));
	filter_headers_free(h);

	h = filter_headers_parse(NULL, 0);
	ck_assert_uint_eq(filter_headers_count(h), 0);
	filter_headers_free(h);
}
END_TEST

START_TEST(encoded_words)
{
	/* Q, with underscores and upper/lower case charset and encoding */
	ck_assert_str_eq(get("Subject: =?UTF-8?Q?Gro=C3=9Fe_Rabatte?=\n", "Subject"),
	    "Gro\xc3\x9f" "e Rabatte");
	ck_assert_str_eq(get("Subject: =?utf-8?q?a_b?=\n", "Subject"), "a b");
	/* B, with and without padding */
	ck_assert_str_eq(get("Subject: =?UTF-8?B?R3LDvMOfZQ==?=\n", "Subject"),
	    "Gr\xc3\xbc\xc3\x9f" "e");
	ck_assert_str_eq(get("Subject: =?UTF-8?B?R3LDvMOfZQ?=\n", "Subject"),
	    "Gr\xc3\xbc\xc3\x9f" "e");
	/* adjacent words joined, even across a fold; a UTF-8 character split
	 * between two words comes out whole */
	ck_assert_str_eq(get("Subject: =?utf-8?q?Viagra?= \r\n =?utf-8?q?_now?=\r\n",
	    "Subject"), "Viagra now");
	ck_assert_str_eq(get("Subject: =?utf-8?q?caf=C3?= =?utf-8?q?=A9?=\n",
	    "Subject"), "caf\xc3\xa9");
	/* text around words, and between them, is kept */
	ck_assert_str_eq(get("Subject: Re: =?utf-8?q?a?= and =?utf-8?q?b?= !\n",
	    "Subject"), "Re: a and b !");
	/* Latin-1, Latin-9, Windows-1252 into UTF-8; US-ASCII as is */
	ck_assert_str_eq(get("Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\n", "Subject"),
	    "Gr\xc3\xbc\xc3\x9f" "e");
	ck_assert_str_eq(get("Subject: =?iso-8859-15?q?=A4?=\n", "Subject"),
	    "\xe2\x82\xac");
	ck_assert_str_eq(get("Subject: =?iso-8859-1?q?=A4?=\n", "Subject"),
	    "\xc2\xa4");
	ck_assert_str_eq(get("Subject: =?windows-1252?Q?=80_=93x=94?=\n", "Subject"),
	    "\xe2\x82\xac \xe2\x80\x9cx\xe2\x80\x9d");
	ck_assert_str_eq(get("Subject: =?us-ascii*en?q?plain?=\n", "Subject"),
	    "plain");
	/* unknown charset, malformed words: raw */
	ck_assert_str_eq(get("Subject: =?koi8-r?q?abc?=\n", "Subject"),
	    "=?koi8-r?q?abc?=");
	ck_assert_str_eq(get("Subject: =?utf-8?q?bad=ZZ?=\n", "Subject"),
	    "=?utf-8?q?bad=ZZ?=");
	ck_assert_str_eq(get("Subject: =?utf-8?q?trail=?=\n", "Subject"),
	    "=?utf-8?q?trail=?=");
	ck_assert_str_eq(get("Subject: =?utf-8?b?a?=\n", "Subject"),
	    "=?utf-8?b?a?=");
	ck_assert_str_eq(get("Subject: =?utf-8?b?a$bc?=\n", "Subject"),
	    "=?utf-8?b?a$bc?=");
	ck_assert_str_eq(get("Subject: =?utf-8?x?abc?=\n", "Subject"),
	    "=?utf-8?x?abc?=");
	ck_assert_str_eq(get("Subject: =?utf-8?q?no end\n", "Subject"),
	    "=?utf-8?q?no end");
	ck_assert_str_eq(get("Subject: =??q?abc?=\n", "Subject"), "=??q?abc?=");
	ck_assert_str_eq(get("Subject: =?utf-8?q\n", "Subject"), "=?utf-8?q");
	ck_assert_str_eq(get("Subject: =?\n", "Subject"), "=?");
	/* a raw word next to a decoded one keeps its blank */
	ck_assert_str_eq(get("Subject: =?utf-8?q?a?= =?x?q?b?=\n", "Subject"),
	    "a =?x?q?b?=");
	/* an empty word decodes to nothing */
	ck_assert_str_eq(get("Subject: =?utf-8?q?\?=\n", "Subject"), "");
	ck_assert_str_eq(get("Subject: =?utf-8?b?\?= =?utf-8?q?a?=\n", "Subject"),
	    "a");
	/* a decoded NUL becomes a space */
	ck_assert_str_eq(get("Subject: =?utf-8?q?a=00b?=\n", "Subject"), "a b");
}
END_TEST

START_TEST(encoded_match_raw_and_decoded)
{
	static const char hdr[] = "Subject: =?UTF-8?Q?Gro=C3=9Fe_Rabatte?=\r\n";
	struct filter *dec = MK("d", "header", "Subject: gro\xc3\x9f" "e rabatte",
	    "action", "skip");
	struct filter *raw = MK("r", "header", "Subject: ^=\\?utf-8\\?q\\?gro",
	    "action", "skip");
	struct filter_headers *h = filter_headers_parse(hdr, strlen(hdr));

	ck_assert_int_eq(hits(dec, hdr, 1), 1);
	ck_assert_int_eq(hits(raw, hdr, 1), 1);
	ck_assert_str_eq(filter_headers_get_raw(h, "Subject"),
	    "=?UTF-8?Q?Gro=C3=9Fe_Rabatte?=");
	filter_headers_free(h);
	filter_free(dec);
	filter_free(raw);
}
END_TEST

START_TEST(spam_flags_and_case)
{
	struct filter *fl = MK("spam",
	    "header", "X-Spam-Flag: ^yes$",
	    "header", "X-Spam-Status: ^yes",
	    "action", "skip");

	ck_assert_int_eq(hits(fl, "x-spam-flag: YES\r\n", 1), 1);
	ck_assert_int_eq(hits(fl, "X-SPAM-FLAG: Yes\r\n", 1), 1);
	ck_assert_int_eq(hits(fl, "X-Spam-Status: Yes, score=7.1\r\n", 1), 1);
	ck_assert_int_eq(hits(fl, "X-Spam-Status: No, score=0.1\r\n", 1), 0);
	ck_assert_int_eq(hits(fl, "X-Spam-Level: YES\r\n", 1), 0);
	/* several fields of one name: any of them */
	ck_assert_int_eq(hits(fl, "X-Spam-Flag: NO\nX-Spam-Flag: YES\n", 1), 1);
	/* the header name in the filter is case-insensitive too */
	filter_free(fl);
	fl = MK("s", "header", "x-spam-flag: ^YES$", "action", "skip");
	ck_assert_int_eq(hits(fl, "X-Spam-Flag: yes\n", 1), 1);
	filter_free(fl);
}
END_TEST

START_TEST(any_and_all)
{
	struct filter *any = MK("any", "from", "@spam\\.example$",
	    "larger_than", "1k", "action", "delete");
	struct filter *all = MK("all", "from", "@spam\\.example$",
	    "larger_than", "1k", "match", "ALL", "action", "delete");
	struct filter *any2 = MK("any2", "from", "@spam\\.example$",
	    "larger_than", "1k", "match", "any", "action", "delete");
	static const char spam[] = "From: x@spam.example\n";
	static const char ham[] = "From: x@ham.example\n";

	ck_assert_int_eq(hits(any, spam, 10), 1);
	ck_assert_int_eq(hits(any, ham, 2000), 1);
	ck_assert_int_eq(hits(any, ham, 10), 0);
	ck_assert_int_eq(hits(any2, ham, 2000), 1);
	ck_assert_int_eq(hits(all, spam, 2000), 1);
	ck_assert_int_eq(hits(all, spam, 10), 0);
	ck_assert_int_eq(hits(all, ham, 2000), 0);
	filter_free(any);
	filter_free(all);
	filter_free(any2);
}
END_TEST

START_TEST(sizes)
{
	unsigned long long v = 7;
	struct filter *big = MK("big", "larger_than", "10M", "action", "skip");
	struct filter *small = MK("small", "smaller_than", "2k", "action", "skip");
	struct filter_msg m = { .size = 0, .headers = NULL };

	ck_assert_int_eq(filter_parse_size("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(filter_parse_size("123", &v), 0);
	ck_assert_uint_eq(v, 123);
	ck_assert_int_eq(filter_parse_size("1k", &v), 0);
	ck_assert_uint_eq(v, 1024);
	ck_assert_int_eq(filter_parse_size("3K", &v), 0);
	ck_assert_uint_eq(v, 3072);
	ck_assert_int_eq(filter_parse_size("25M", &v), 0);
	ck_assert_uint_eq(v, 25ULL << 20);
	ck_assert_int_eq(filter_parse_size("2m", &v), 0);
	ck_assert_uint_eq(v, 2ULL << 20);
	ck_assert_int_eq(filter_parse_size("2G", &v), 0);
	ck_assert_uint_eq(v, 2ULL << 30);
	ck_assert_int_eq(filter_parse_size("18446744073709551615", &v), 0);
	ck_assert_uint_eq(v, ~0ULL);
	v = 7;
	static const char *const bad[] = {
		"", "k", "-1", "+1", " 1", "1 ", "1 k", "10MB", "1kk", "1T",
		"1.5M", "0x10", "18446744073709551616", "17179869184G",
		"99999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(filter_parse_size(bad[i], &v) == -1, "%s", bad[i]);
		ck_assert_uint_eq(v, 7);
	}
	ck_assert_int_eq(filter_parse_size("17179869183G", &v), 0);

	m.size = 10ULL << 20;
	ck_assert_int_eq(filter_match(big, &m), 0);     /* strictly larger */
	m.size++;
	ck_assert_int_eq(filter_match(big, &m), 1);
	m.size = 2048;
	ck_assert_int_eq(filter_match(small, &m), 0);   /* strictly smaller */
	m.size = 2047;
	ck_assert_int_eq(filter_match(small, &m), 1);
	filter_free(big);
	filter_free(small);
}
END_TEST

START_TEST(from_to_shorthands)
{
	struct filter *from = MK("f", "from", "boss@", "action", "skip");
	struct filter *to = MK("t", "to", "^list@", "action", "skip");

	ck_assert_int_eq(hits(from, "From: Boss@x\n", 1), 1);
	ck_assert_int_eq(hits(from, "To: boss@x\nSender: boss@x\n", 1), 0);
	ck_assert_int_eq(hits(to, "To: list@x\n", 1), 1);
	ck_assert_int_eq(hits(to, "To: me@x\nCC: List@x\n", 1), 1);
	ck_assert_int_eq(hits(to, "From: list@x\nBcc: list@x\n", 1), 0);
	ck_assert_int_eq(hits(to, "Resent-To: list@x\n", 1), 0);
	filter_free(from);
	filter_free(to);
}
END_TEST

START_TEST(first_match_wins)
{
	struct filter *list[3];
	struct filter_headers *h;
	struct filter_msg m = { .size = 100 };
	static const char spam[] = "X-Spam-Flag: YES\nFrom: a@list.example\n";
	static const char lst[] = "From: a@list.example\n";

	list[0] = MK("spam", "header", "X-Spam-Flag: yes", "action", "delete");
	list[1] = MK("lists", "from", "list\\.example", "action",
	    "deliver: maildir:~/Mail/lists");
	list[2] = MK("huge", "larger_than", "1M", "action", "skip");

	h = filter_headers_parse(spam, strlen(spam));
	m.headers = h;
	ck_assert_ptr_eq(filter_decide(list, 3, &m), list[0]);
	ck_assert_ptr_eq(filter_decide(list + 1, 2, &m), list[1]);
	filter_headers_free(h);

	h = filter_headers_parse(lst, strlen(lst));
	m.headers = h;
	m.size = 5ULL << 20;
	ck_assert_ptr_eq(filter_decide(list, 3, &m), list[1]);
	ck_assert_str_eq(filter_target(list[1]), "maildir:~/Mail/lists");
	ck_assert_int_eq(filter_action(list[1]), FILTER_DELIVER);
	filter_headers_free(h);

	m.headers = NULL;               /* no headers fetched: size rules only */
	ck_assert_ptr_eq(filter_decide(list, 3, &m), list[2]);
	m.size = 10;
	ck_assert_ptr_null(filter_decide(list, 3, &m));
	ck_assert_ptr_null(filter_decide(list, 0, &m));

	ck_assert_str_eq(filter_name(list[0]), "spam");
	ck_assert_int_eq(filter_action(list[0]), FILTER_DELETE);
	ck_assert_ptr_null(filter_target(list[0]));
	ck_assert_int_eq(filter_action(list[2]), FILTER_SKIP);
	ck_assert_str_eq(filter_action_name(FILTER_SKIP), "skip");
	ck_assert_str_eq(filter_action_name(FILTER_DELETE), "delete");
	ck_assert_str_eq(filter_action_name(FILTER_DELIVER), "deliver");
	for (size_t i = 0; i < 3; i++)
		filter_free(list[i]);
}
END_TEST

START_TEST(actions)
{
	struct filter *fl = MK("j", "larger_than", "0", "action",
	    "DELIVER:Maildir:~/Mail/Junk");

	ck_assert_int_eq(filter_action(fl), FILTER_DELIVER);
	ck_assert_str_eq(filter_target(fl), "Maildir:~/Mail/Junk");
	filter_free(fl);
	fl = MK("s", "larger_than", "0", "action", "Skip");
	ck_assert_int_eq(filter_action(fl), FILTER_SKIP);
	filter_free(fl);
}
END_TEST

START_TEST(needs_headers)
{
	struct filter *list[2];

	list[0] = MK("a", "larger_than", "1M", "smaller_than", "9M",
	    "action", "skip");
	list[1] = MK("b", "to", "x", "action", "skip");
	ck_assert_int_eq(filter_needs_headers(list[0]), 0);
	ck_assert_int_eq(filter_needs_headers(list[1]), 1);
	ck_assert_int_eq(filter_list_needs_headers(list, 1), 0);
	ck_assert_int_eq(filter_list_needs_headers(list, 2), 1);
	ck_assert_int_eq(filter_list_needs_headers(list, 0), 0);
	filter_free(list[0]);
	filter_free(list[1]);
}
END_TEST

static void
digest_of(struct filter *const *list, size_t n, char out[65])
{
	filter_digest(list, n, out);
	ck_assert_uint_eq(strlen(out), 64);
	ck_assert_uint_eq(strspn(out, "0123456789abcdef"), 64);
}

START_TEST(digest)
{
	char d0[65], d[65], e[65];
	struct filter *a = MK("spam", "header", "X-Spam-Flag: ^yes$",
	    "larger_than", "10M", "action", "skip");
	struct filter *a2 = MK("spam", "header", "X-Spam-Flag: ^yes$",
	    "larger_than", "10M", "action", "skip");
	struct filter *val = MK("spam", "header", "X-Spam-Flag: ^yes",
	    "larger_than", "10M", "action", "skip");
	struct filter *key = MK("spam", "header", "X-Spam-Flag: ^yes$",
	    "smaller_than", "10M", "action", "skip");
	struct filter *order = MK("spam", "larger_than", "10M",
	    "header", "X-Spam-Flag: ^yes$", "action", "skip");
	struct filter *name = MK("spam2", "header", "X-Spam-Flag: ^yes$",
	    "larger_than", "10M", "action", "skip");
	struct filter *act = MK("spam", "header", "X-Spam-Flag: ^yes$",
	    "larger_than", "10M", "action", "delete");
	struct filter *b = MK("big", "larger_than", "1M", "action", "skip");
	struct filter *ab[2] = { a, b }, *ba[2] = { b, a };
	struct filter *variants[] = { val, key, order, name, act };

	digest_of(&a, 1, d0);
	/* stable: the same config gives the same digest, in this build and
	 * every other (a change here re-examines every skipped message) */
	digest_of(&a2, 1, d);
	ck_assert_str_eq(d, d0);
	ck_assert_str_eq(d0,
	    "382de280da11778debf71ec6abad49e858f91394be3d5b93dc144aceb27c60e5");
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		digest_of(&variants[i], 1, d);
		ck_assert_msg(strcmp(d, d0) != 0, "variant %zu", i);
	}
	digest_of(ab, 2, d);
	digest_of(ba, 2, e);
	ck_assert_str_ne(d, e);
	ck_assert_str_ne(d, d0);
	digest_of(ab, 0, e);
	ck_assert_str_ne(e, d0);
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		filter_free(variants[i]);
	filter_free(a);
	filter_free(a2);
	filter_free(b);
}
END_TEST

START_TEST(digest_not_ambiguous)
{
	char d1[65], d2[65];
	/* plain concatenation would make both "afrombfromcactionskip" */
	struct filter *x = MK("a", "from", "bfromc", "action", "skip");
	struct filter *y = MK("afromb", "from", "c", "action", "skip");

	digest_of(&x, 1, d1);
	digest_of(&y, 1, d2);
	ck_assert_str_ne(d1, d2);
	filter_free(x);
	filter_free(y);
}
END_TEST

/* NULL when key = value is taken, else the error. */
static const char *
set_ok_err(const char *key, const char *value)
{
	struct filter *fl = filter_new("t");
	const char *err = NULL;
	int rc = filter_set(fl, key, value, &err);

	filter_free(fl);
	return rc == 0 ? NULL : err;
}

START_TEST(errors)
{
	ck_assert_str_eq(set_err("subject", "x"), "unknown key 'subject' in a "
	    "filter (expected header, from, to, larger_than, smaller_than, match "
	    "or action)");
	ck_assert_str_eq(set_err("Header", "A: b"), "unknown key 'Header' in a "
	    "filter (expected header, from, to, larger_than, smaller_than, match "
	    "or action)");
	static const char *const bad_header[] = {
		"no colon", ": x", "A B: x", "X-Spam-Flag:", "X-Spam-Flag:   ",
		"", "Caf\xc3\xa9: x",
	};
	for (size_t i = 0; i < sizeof(bad_header) / sizeof(bad_header[0]); i++)
		ck_assert_str_eq(set_err("header", bad_header[i]),
		    "header needs NAME: REGEX (header = X-Spam-Flag: ^yes$)");
	/* the reason after the prefix is regerror()'s, whatever libc says */
	static const char *const bad_rx[][3] = {
		{ "header", "Subject: (unclosed", "bad regex in header: " },
		{ "from", "[a-", "bad regex in from: " },
		{ "to", "a{2,1}", "bad regex in to: " },
	};
	for (size_t i = 0; i < sizeof(bad_rx) / sizeof(bad_rx[0]); i++) {
		const char *e = set_err(bad_rx[i][0], bad_rx[i][1]);
		size_t pl = strlen(bad_rx[i][2]);

		ck_assert_msg(strncmp(e, bad_rx[i][2], pl) == 0 &&
		    strlen(e) > pl, "%s", e);
	}
	/* patterns whose compiling would eat the machine (found by
	 * fuzz_config: "a++++..." made glibc's regcomp run out of memory) */
	ck_assert_str_eq(set_err("from", "a++++++++++++++++"),
	    "bad regex in from: quantifiers in a row (like a++)");
	ck_assert_str_eq(set_err("from", "(x{99}){999}"),
	    "bad regex in from: a repetition count above 255");
	ck_assert_str_eq(set_err("from", "((((((a*)*)*)*)*)*)*"),
	    "bad regex in from: quantified groups nested too deep");
	{
		char big[1100];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ck_assert_str_eq(set_err("from", big),
		    "bad regex in from: longer than 1024 characters");
	}
	/* ordinary ones pass: brackets hold no operators, escapes are not */
	ck_assert_ptr_null(set_ok_err("from", "^[+*?{]+ x\\++$"));
	ck_assert_ptr_null(set_ok_err("header", "X: (a|b)*(c{2,3})?.+$"));
	ck_assert_str_eq(set_err("from", ""), "from needs a regex");
	ck_assert_str_eq(set_err("to", ""), "to needs a regex");
	ck_assert_str_eq(set_err("larger_than", "10MB"), "larger_than must be "
	    "a size: a number, optionally followed by k, M or G");
	ck_assert_str_eq(set_err("smaller_than", ""), "smaller_than must be "
	    "a size: a number, optionally followed by k, M or G");
	ck_assert_str_eq(set_err("match", "some"),
	    "unknown match 'some' (expected any or all)");
	ck_assert_str_eq(set_err("action", "x"), "unknown action 'x' (expected "
	    "skip, delete or deliver:TARGET)");
	ck_assert_str_eq(set_err("action", "delivery:x"), "unknown action "
	    "'delivery:x' (expected skip, delete or deliver:TARGET)");
	ck_assert_str_eq(set_err("action", "deliver"),
	    "deliver needs a target (action = deliver:maildir:~/Mail/junk)");
	ck_assert_str_eq(set_err("action", "deliver:  "),
	    "deliver needs a target (action = deliver:maildir:~/Mail/junk)");
	/* a long value is cut in the message */
	char longv[400];

	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	ck_assert_uint_lt(strlen(set_err("action", longv)), 200);
}
END_TEST

START_TEST(errors_twice_and_finish)
{
	struct filter *fl = filter_new("t");
	const char *err = NULL;

	ck_assert_int_eq(filter_finish(fl, &err), -1);
	ck_assert_str_eq(err, "filter has no condition (header, from, to, "
	    "larger_than or smaller_than)");
	/* a failed key adds nothing */
	ck_assert_int_eq(filter_set(fl, "from", "(", &err), -1);
	ck_assert_int_eq(filter_set(fl, "larger_than", "x", &err), -1);
	ck_assert_int_eq(filter_finish(fl, &err), -1);
	ck_assert_str_eq(err, "filter has no condition (header, from, to, "
	    "larger_than or smaller_than)");

	ck_assert_int_eq(filter_set(fl, "larger_than", "1", &err), 0);
	ck_assert_int_eq(filter_set(fl, "larger_than", "2", &err), -1);
	ck_assert_str_eq(err, "larger_than given twice");
	ck_assert_int_eq(filter_set(fl, "smaller_than", "9", &err), 0);
	ck_assert_int_eq(filter_set(fl, "smaller_than", "9", &err), -1);
	ck_assert_str_eq(err, "smaller_than given twice");
	ck_assert_int_eq(filter_set(fl, "match", "all", &err), 0);
	ck_assert_int_eq(filter_set(fl, "match", "all", &err), -1);
	ck_assert_str_eq(err, "match given twice");
	ck_assert_int_eq(filter_finish(fl, &err), -1);
	ck_assert_str_eq(err, "filter has no action (skip, delete or "
	    "deliver:TARGET)");
	ck_assert_int_eq(filter_set(fl, "action", "bogus", &err), -1);
	ck_assert_int_eq(filter_finish(fl, &err), -1);
	ck_assert_int_eq(filter_set(fl, "action", "skip", &err), 0);
	ck_assert_int_eq(filter_set(fl, "action", "skip", &err), -1);
	ck_assert_str_eq(err, "action given twice");
	ck_assert_int_eq(filter_finish(fl, &err), 0);
	filter_free(fl);
	filter_free(NULL);
}
END_TEST

START_TEST(caps)
{
	size_t n = FILTER_HEADER_MAX + 100;
	char *big = malloc(n + 1);
	struct filter_headers *h;
	size_t sl;

	/* a field that starts beyond FILTER_HEADER_MAX is not seen */
	memset(big, 'a', n);
	memcpy(big, "X-Pad: ", 7);
	memcpy(big + FILTER_HEADER_MAX - 40, "\nX-In: 1\n", 9);
	memcpy(big + FILTER_HEADER_MAX + 10, "\nX-Out: 1\n", 10);
	big[n] = '\0';
	h = filter_headers_parse(big, n);
	ck_assert_ptr_nonnull(filter_headers_get(h, "X-In"));
	ck_assert_ptr_null(filter_headers_get(h, "X-Out"));
	filter_headers_free(h);

	/* a decoding longer than FILTER_DECODED_MAX is cut there */
	memcpy(big, "Subject: =?utf-8?q?", 19);
	sl = 19;
	while (sl + 3 + 2 < FILTER_HEADER_MAX - 2) {
		memcpy(big + sl, "=E2", 3);
		sl += 3;
	}
	memcpy(big + sl, "?=", 2);
	big[sl + 2] = '\0';
	h = filter_headers_parse(big, sl + 2);
	ck_assert_uint_eq(strlen(filter_headers_get(h, "Subject")),
	    FILTER_DECODED_MAX);
	filter_headers_free(h);

	/* ... also when it is made of many short words */
	static const char word[] = "=?windows-1252?q?=80=80=80=80=80=80=80=80"
	    "=80=80=80=80=80=80=80=80=80=80=80=80?= ";
	memcpy(big, "Subject: ", 9);
	sl = 9;
	while (sl + sizeof(word) < FILTER_HEADER_MAX) {
		memcpy(big + sl, word, sizeof(word) - 1);
		sl += sizeof(word) - 1;
	}
	ck_assert_uint_gt((sl - 9) / (sizeof(word) - 1) * 60, FILTER_DECODED_MAX);
	h = filter_headers_parse(big, sl);
	ck_assert_uint_eq(strlen(filter_headers_get(h, "Subject")),
	    FILTER_DECODED_MAX);
	ck_assert_int_eq(memcmp(filter_headers_get(h, "Subject"),
	    "\xe2\x82\xac\xe2\x82\xac", 6), 0);
	filter_headers_free(h);
	free(big);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("filter");
	TCase *tc = tcase_create("filter");

	tcase_add_test(tc, folding);
	tcase_add_test(tc, line_ends_and_end_of_header);
	tcase_add_test(tc, header_count_and_nul);
	tcase_add_test(tc, encoded_words);
	tcase_add_test(tc, encoded_match_raw_and_decoded);
	tcase_add_test(tc, spam_flags_and_case);
	tcase_add_test(tc, any_and_all);
	tcase_add_test(tc, sizes);
	tcase_add_test(tc, from_to_shorthands);
	tcase_add_test(tc, first_match_wins);
	tcase_add_test(tc, actions);
	tcase_add_test(tc, needs_headers);
	tcase_add_test(tc, digest);
	tcase_add_test(tc, digest_not_ambiguous);
	tcase_add_test(tc, errors);
	tcase_add_test(tc, errors_twice_and_finish);
	tcase_add_test(tc, caps);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
