/* test_pop3_parse.c - POP3 reply parsing and the dot decoder. */
#include <limits.h>
#include <string.h>

#include "pop3_parse.h"
#include "sasl.h"
#include "unit.h"

START_TEST(test_status)
{
	const char *t = NULL;

	ck_assert_int_eq(pop3_status("+OK", &t), 1);
	ck_assert_str_eq(t, "");
	ck_assert_int_eq(pop3_status("+OK hello there", &t), 1);
	ck_assert_str_eq(t, "hello there");
	ck_assert_int_eq(pop3_status("-ERR", &t), 0);
	ck_assert_int_eq(pop3_status("-ERR [AUTH] no", &t), 0);
	ck_assert_str_eq(t, "[AUTH] no");
	ck_assert_int_eq(pop3_status("+OK  two", &t), 1);
	ck_assert_str_eq(t, " two");
	ck_assert_int_eq(pop3_status("+OK x", NULL), 1);
	ck_assert_int_eq(pop3_status("+OKAY", &t), -1);
	ck_assert_int_eq(pop3_status("-ERROR", &t), -1);
	ck_assert_int_eq(pop3_status("+ok", &t), -1);
	ck_assert_int_eq(pop3_status("", &t), -1);
	ck_assert_int_eq(pop3_status("+", &t), -1);
	ck_assert_int_eq(pop3_status("* OK", &t), -1);
	ck_assert_int_eq(pop3_status("+OK\t", &t), -1);
}
END_TEST

START_TEST(test_err_kind)
{
	ck_assert_int_eq(pop3_err_kind("[AUTH] bad password", FAIL_PROTO), FAIL_AUTH);
	ck_assert_int_eq(pop3_err_kind("[auth] bad", FAIL_PROTO), FAIL_AUTH);
	ck_assert_int_eq(pop3_err_kind("[IN-USE] locked", FAIL_AUTH), FAIL_TEMP);
	ck_assert_int_eq(pop3_err_kind("[LOGIN-DELAY] wait", FAIL_AUTH), FAIL_TEMP);
	ck_assert_int_eq(pop3_err_kind("[SYS/TEMP] disk", FAIL_AUTH), FAIL_TEMP);
	ck_assert_int_eq(pop3_err_kind("[SYS/PERM] gone", FAIL_PROTO), FAIL_PROTO);
	ck_assert_int_eq(pop3_err_kind("[SYS/PERM] gone", FAIL_AUTH), FAIL_AUTH);
	ck_assert_int_eq(pop3_err_kind("no code", FAIL_PROTO), FAIL_PROTO);
	ck_assert_int_eq(pop3_err_kind("[AUTHX] no", FAIL_PROTO), FAIL_PROTO);
	ck_assert_int_eq(pop3_err_kind("[IN-USE/x] sub", FAIL_AUTH), FAIL_TEMP);
	ck_assert_int_eq(pop3_err_kind("[AUTH no bracket", FAIL_PROTO), FAIL_PROTO);
	ck_assert_int_eq(pop3_err_kind("", FAIL_PROTO), FAIL_PROTO);
	ck_assert_int_eq(pop3_err_kind("x [AUTH]", FAIL_PROTO), FAIL_PROTO);
	ck_assert_int_eq(pop3_err_kind(NULL, FAIL_PROTO), FAIL_PROTO);
}
END_TEST

START_TEST(test_continuation)
{
	const char *b = NULL;

	ck_assert_int_eq(pop3_is_continuation("+ abc=", &b), 1);
	ck_assert_str_eq(b, "abc=");
	ck_assert_int_eq(pop3_is_continuation("+", &b), 1);
	ck_assert_str_eq(b, "");
	ck_assert_int_eq(pop3_is_continuation("+ ", &b), 1);
	ck_assert_str_eq(b, "");
	ck_assert_int_eq(pop3_is_continuation("+OK", &b), 0);
	ck_assert_int_eq(pop3_is_continuation("-ERR", &b), 0);
	ck_assert_int_eq(pop3_is_continuation("", &b), 0);
}
END_TEST

START_TEST(test_uidl)
{
	char uid[POP3_UID_MAX + 1], line[200];
	unsigned num;

	ck_assert_int_eq(pop3_parse_uidl("1 whqtswO00WBw418f9t5JxYwZ", &num, uid), 0);
	ck_assert_uint_eq(num, 1);
	ck_assert_str_eq(uid, "whqtswO00WBw418f9t5JxYwZ");
	ck_assert_int_eq(pop3_parse_uidl("4294967295 x", &num, uid), 0);
	ck_assert_uint_eq(num, 4294967295u);
	ck_assert_int_eq(pop3_parse_uidl("007 !~", &num, uid), 0);
	ck_assert_uint_eq(num, 7);
	ck_assert_str_eq(uid, "!~");

	/* 70 characters ok, 71 not. */
	strcpy(line, "3 ");
	memset(line + 2, 'a', 70);
	line[72] = '\0';
	ck_assert_int_eq(pop3_parse_uidl(line, &num, uid), 0);
	ck_assert_uint_eq(strlen(uid), 70);
	line[72] = 'b';
	line[73] = '\0';
	ck_assert_int_eq(pop3_parse_uidl(line, &num, uid), -1);

	ck_assert_int_eq(pop3_parse_uidl("4294967296 x", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("99999999999999999999999 x", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("0 x", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("-1 x", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("+1 x", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1 ", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1  x", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1 x y", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1 x ", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1 a\tb", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1 a\x7f", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1 a\x01", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1 \xc3\xa9", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("1x y", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl(" 1 y", &num, uid), -1);
	ck_assert_int_eq(pop3_parse_uidl("", &num, uid), -1);
}
END_TEST

START_TEST(test_list)
{
	unsigned long long size;
	unsigned num;

	ck_assert_int_eq(pop3_parse_list("1 120", &num, &size), 0);
	ck_assert_uint_eq(num, 1);
	ck_assert_uint_eq(size, 120);
	ck_assert_int_eq(pop3_parse_list("2 0", &num, &size), 0);
	ck_assert_int_eq(pop3_parse_list("3 18446744073709551615", &num, &size), 0);
	ck_assert_uint_eq(size, ULLONG_MAX);
	ck_assert_int_eq(pop3_parse_list("3 18446744073709551616", &num, &size), -1);
	ck_assert_int_eq(pop3_parse_list("4 500 extra words", &num, &size), 0);
	ck_assert_uint_eq(size, 500);
	ck_assert_int_eq(pop3_parse_list("4 500x", &num, &size), -1);
	ck_assert_int_eq(pop3_parse_list("4", &num, &size), -1);
	ck_assert_int_eq(pop3_parse_list("4 ", &num, &size), -1);
	ck_assert_int_eq(pop3_parse_list("4 -5", &num, &size), -1);
	ck_assert_int_eq(pop3_parse_list("0 5", &num, &size), -1);
	ck_assert_int_eq(pop3_parse_list("4294967296 5", &num, &size), -1);
	ck_assert_int_eq(pop3_parse_list("a 5", &num, &size), -1);
	ck_assert_int_eq(pop3_parse_list("4\t5", &num, &size), -1);
}
END_TEST

START_TEST(test_caps)
{
	struct pop3_caps c;

	memset(&c, 0, sizeof(c));
	pop3_caps_line(&c, "TOP");
	pop3_caps_line(&c, "uidl");
	pop3_caps_line(&c, "USER");
	pop3_caps_line(&c, "RESP-CODES");
	pop3_caps_line(&c, "PIPELINING");
	pop3_caps_line(&c, "SASL PLAIN scram-sha-256 GSSAPI  LOGIN");
	pop3_caps_line(&c, "IMPLEMENTATION Dovecot");
	ck_assert(c.top && c.uidl && c.user && c.pipelining);
	ck_assert(!c.stls);
	ck_assert_uint_eq(c.sasl, (1u << SASL_PLAIN) | (1u << SASL_LOGIN) |
	    (1u << SASL_SCRAM_SHA_256));
	pop3_caps_line(&c, "STLS");
	ck_assert(c.stls);

	memset(&c, 0, sizeof(c));
	pop3_caps_line(&c, "TOPX");
	pop3_caps_line(&c, "STLSX");
	pop3_caps_line(&c, "SASLPLAIN");
	pop3_caps_line(&c, "");
	pop3_caps_line(&c, "SASL");
	pop3_caps_line(&c, "X TOP UIDL");
	ck_assert(!c.top && !c.stls && !c.uidl && c.sasl == 0);
}
END_TEST

START_TEST(test_greeting)
{
	struct pop3_caps c;
	char big[400];

	memset(&c, 0, sizeof(c));
	pop3_caps_greeting(&c, "POP3 server ready <1896.697170952@dbc.mtview.ca.us>");
	ck_assert(c.apop);
	ck_assert_str_eq(c.apop_stamp, "<1896.697170952@dbc.mtview.ca.us>");
	pop3_caps_greeting(&c, "Dovecot ready.");
	ck_assert(!c.apop);
	ck_assert_str_eq(c.apop_stamp, "");
	pop3_caps_greeting(&c, "ready <no-at-sign>");
	ck_assert(!c.apop);
	pop3_caps_greeting(&c, "ready <a@b");
	ck_assert(!c.apop);
	pop3_caps_greeting(&c, "ready <a @b>");
	ck_assert(!c.apop);
	pop3_caps_greeting(&c, "ready <>");
	ck_assert(!c.apop);
	pop3_caps_greeting(&c, "ready <a\x01@b>");
	ck_assert(!c.apop);
	pop3_caps_greeting(&c, "x <1.2@h> trailing");
	ck_assert(c.apop);
	ck_assert_str_eq(c.apop_stamp, "<1.2@h>");

	/* Too long for the buffer: refused, not truncated. */
	big[0] = '<';
	memset(big + 1, 'a', 300);
	big[301] = '@';
	big[302] = 'h';
	big[303] = '>';
	big[304] = '\0';
	pop3_caps_greeting(&c, big);
	ck_assert(!c.apop);
	/* 255 characters fits. */
	memset(big + 1, 'a', 251);
	big[252] = '@';
	big[253] = '>';
	big[254] = '\0';
	ck_assert_uint_eq(strlen(big), 254);
	pop3_caps_greeting(&c, big);
	ck_assert(c.apop);
	ck_assert_str_eq(c.apop_stamp, big);
	memset(big + 1, 'a', 252);
	big[253] = '@';
	big[254] = '>';
	big[255] = '\0';
	pop3_caps_greeting(&c, big);
	ck_assert(c.apop);
	big[255] = 'x';
	memset(big + 1, 'a', 253);
	big[254] = '@';
	big[255] = '>';
	big[256] = '\0';
	pop3_caps_greeting(&c, big);
	ck_assert(!c.apop);
}
END_TEST

/* --- the dot decoder --- */

struct outbuf {
	char buf[8192];
	size_t len;
	int calls;
	int fail_at;            /* fail on this call number (1-based), 0 never */
};

static int
collect(void *arg, const char *p, size_t n)
{
	struct outbuf *o = arg;

	ck_assert_uint_gt(n, 0);
	o->calls++;
	if (o->fail_at != 0 && o->calls == o->fail_at)
		return -1;
	ck_assert_uint_le(o->len + n, sizeof(o->buf));
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

/* Feed in[] in pieces cut at cuts[0..ncuts) (ascending); returns the total
 * consumed when DONE, or (size_t)-1 if never done. */
static size_t
feed(const char *in, size_t n, const size_t *cuts, size_t ncuts,
    struct outbuf *o, struct dot_decoder *d)
{
	size_t start = 0;

	dot_decoder_init(d);
	for (size_t c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : n, used = 0, off = start;
		enum dot_result r;

		for (;;) {
			r = dot_decode(d, in + off, end - off, &used,
			    o->fail_at && o->calls >= o->fail_at ? NULL : collect, o);
			ck_assert_uint_le(used, end - off);
			if (r == DOT_DONE)
				return off + used;
			if (r == DOT_MORE) {
				ck_assert_uint_eq(used, end - off);
				break;
			}
			off += used;    /* sink failed: drain the rest */
		}
		start = end;
	}
	return (size_t)-1;
}

struct dot_case {
	const char *in;         /* stuffed, terminated, maybe a trailing reply */
	size_t inlen;
	const char *out;        /* payload */
	size_t outlen;
	size_t consumed;        /* through the terminator line */
};

#define S(x) x, sizeof(x) - 1
static const struct dot_case dot_cases[] = {
	{ S("Hello\r\n.\r\n"), S("Hello\r\n"), 10 },
	{ S(".\r\n"), S(""), 3 },
	{ S(".\r\n+OK next\r\n"), S(""), 3 },
	{ S("a\r\n..\r\nb\r\n.\r\n"), S("a\r\n.\r\nb\r\n"), 13 },
	{ S("...\r\n.\r\n+OK"), S("..\r\n"), 8 },
	{ S("..\r\n.\r\n"), S(".\r\n"), 7 },
	{ S("..x\r\n.x\r\n.\r\n"), S(".x\r\nx\r\n"), 12 },
	{ S("a\n..\nb\n.\n-ERR x\r\n"), S("a\n.\nb\n"), 9 },
	{ S(".\n"), S(""), 2 },
	{ S("a\0b\r\n\0\r\n.\r\n\0"), S("a\0b\r\n\0\r\n"), 11 },
	{ S("x\r.\r\n.\r\n"), S("x\r.\r\n"), 8 },
	{ S("..\rX\r\n.\r\n"), S(".\rX\r\n"), 9 },
	{ S(".\rX\r\n.\r\n"), S("\rX\r\n"), 8 },
	{ S(".\r\r\n.\r\n"), S("\r\r\n"), 7 },
	{ S("\r\n\r\n.\r\n"), S("\r\n\r\n"), 7 },
	{ S("\n\n.\n"), S("\n\n"), 4 },
	{ S("a\r\n.\r\n.\r\n"), S("a\r\n"), 6 },
	{ S("Subject: x\r\n\r\n.. dots\r\n...\r\n. \r\nend.\r\n.\r\n+OK 2\r\n"),
	  S("Subject: x\r\n\r\n. dots\r\n..\r\n \r\nend.\r\n"), 41 },
};
#undef S

static void
check_case(const struct dot_case *c, const size_t *cuts, size_t ncuts,
    int fail_at)
{
	struct outbuf o;
	struct dot_decoder d;
	size_t used;

	memset(&o, 0, sizeof(o));
	o.fail_at = fail_at;
	used = feed(c->in, c->inlen, cuts, ncuts, &o, &d);
	ck_assert_uint_eq(used, c->consumed);
	ck_assert_uint_eq(d.bytes, c->outlen);
	if (fail_at == 0) {
		ck_assert_uint_eq(o.len, c->outlen);
		ck_assert(memcmp(o.buf, c->out, c->outlen) == 0);
	}
}

START_TEST(test_dot_whole)
{
	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++)
		check_case(&dot_cases[i], NULL, 0, 0);
}
END_TEST

START_TEST(test_dot_split2)
{
	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
		const struct dot_case *c = &dot_cases[i];

		for (size_t k = 0; k <= c->inlen; k++)
			check_case(c, &k, 1, 0);
	}
}
END_TEST

START_TEST(test_dot_split3)
{
	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
		const struct dot_case *c = &dot_cases[i];
		size_t cuts[2];

		for (cuts[0] = 0; cuts[0] <= c->inlen; cuts[0]++)
			for (cuts[1] = cuts[0]; cuts[1] <= c->inlen; cuts[1]++)
				check_case(c, cuts, 2, 0);
	}
}
END_TEST

START_TEST(test_dot_bytewise)
{
	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
		const struct dot_case *c = &dot_cases[i];
		size_t cuts[128];

		ck_assert_uint_lt(c->inlen, 128);
		for (size_t k = 0; k + 1 < c->inlen; k++)
			cuts[k] = k + 1;
		check_case(c, cuts, c->inlen > 0 ? c->inlen - 1 : 0, 0);
	}
}
END_TEST

/* A failing sink: the decoder still finds the end while discarding. */
START_TEST(test_dot_sink_fail)
{
	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
		const struct dot_case *c = &dot_cases[i];

		if (c->outlen == 0)
			continue;
		for (int at = 1; at <= 3; at++) {
			check_case(c, NULL, 0, at);
			for (size_t k = 0; k <= c->inlen; k++)
				check_case(c, &k, 1, at);
		}
	}
}
END_TEST

/* Random messages over a nasty alphabet, stuffed by a reference stuffer,
 * fed in random pieces: the decoder must give back the payload exactly. */
START_TEST(test_dot_random)
{
	static const char alpha[] = { '.', '.', '\r', '\n', 'a', '\0' };
	static char payload[512], in[1100];
	unsigned seed = 12345;

	for (int iter = 0; iter < 3000; iter++) {
		struct dot_case c;
		size_t plen = 0, n = 0, cuts[4], ncuts;
		size_t target = (seed = seed * 1103515245u + 12345u) % 200;

		/* Lines, each ending in LF. */
		while (plen < target) {
			unsigned r = (seed = seed * 1103515245u + 12345u) >> 8;
			char ch = alpha[r % sizeof(alpha)];

			payload[plen++] = ch;
			if (plen == target && ch != '\n')
				payload[plen++] = '\n';
		}
		for (size_t i = 0; i < plen; i++) {
			if ((i == 0 || payload[i - 1] == '\n') && payload[i] == '.')
				in[n++] = '.';
			in[n++] = payload[i];
		}
		if (iter % 2)
			memcpy(in + n, ".\r\n", 3), n += 3;
		else
			memcpy(in + n, ".\n", 2), n += 2;
		c.consumed = n;
		memcpy(in + n, ".\r\n+OK\r\n", 9);
		n += 9;
		c.in = in;
		c.inlen = n;
		c.out = payload;
		c.outlen = plen;
		ncuts = iter % 5;
		for (size_t k = 0; k < ncuts; k++)
			cuts[k] = ((seed = seed * 1103515245u + 12345u) >> 8) % (n + 1);
		/* ascending */
		for (size_t a = 0; a < ncuts; a++)
			for (size_t b = a + 1; b < ncuts; b++)
				if (cuts[b] < cuts[a]) {
					size_t t = cuts[a];

					cuts[a] = cuts[b];
					cuts[b] = t;
				}
		check_case(&c, cuts, ncuts, 0);
		check_case(&c, cuts, ncuts, 2);
	}
}
END_TEST

#define S2(x) x, sizeof(x) - 1

/* Big spans: a plain body is one callback; each stuffed dot cuts one. */
START_TEST(test_dot_spans)
{
	static char in[6000];
	struct dot_decoder d;
	struct outbuf o;
	size_t used, n = 0;

	for (int l = 0; l < 100; l++) {
		memcpy(in + n, "Line of text, not too short at all.\r\n", 37);
		n += 37;
	}
	memcpy(in + n, ".\r\n", 3);
	n += 3;
	memset(&o, 0, sizeof(o));
	dot_decoder_init(&d);
	ck_assert_int_eq(dot_decode(&d, in, n, &used, collect, &o), DOT_DONE);
	ck_assert_uint_eq(used, n);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_uint_eq(o.len, 3700);

	memset(&o, 0, sizeof(o));
	dot_decoder_init(&d);
	ck_assert_int_eq(dot_decode(&d, S2("a\r\n..b\r\nc\r\n.\r\n"), &used,
	    collect, &o), DOT_DONE);
	ck_assert_int_eq(o.calls, 2);

	/* A NULL sink just counts. */
	dot_decoder_init(&d);
	ck_assert_int_eq(dot_decode(&d, in, n, &used, NULL, NULL), DOT_DONE);
	ck_assert_uint_eq(d.bytes, 3700);
	/* No terminator yet: everything consumed, more needed. */
	dot_decoder_init(&d);
	ck_assert_int_eq(dot_decode(&d, in, n - 3, &used, NULL, NULL), DOT_MORE);
	ck_assert_uint_eq(used, n - 3);
	ck_assert_int_eq(dot_decode(&d, in, 0, &used, NULL, NULL), DOT_MORE);
	ck_assert_uint_eq(used, 0);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("pop3_parse");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_err_kind);
	tcase_add_test(tc, test_continuation);
	tcase_add_test(tc, test_uidl);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_caps);
	tcase_add_test(tc, test_greeting);
	tcase_add_test(tc, test_dot_whole);
	tcase_add_test(tc, test_dot_split2);
	tcase_add_test(tc, test_dot_split3);
	tcase_add_test(tc, test_dot_bytewise);
	tcase_add_test(tc, test_dot_sink_fail);
	tcase_add_test(tc, test_dot_spans);
	tcase_add_test(tc, test_dot_random);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
