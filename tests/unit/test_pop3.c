/* test_pop3.c - POP3 source transcript tests against a scripted server.
 *
 * Each test runs a fake POP3 server (fake.h) in a forked child on
 * 127.0.0.1, with fake.h's steps (S:, R:, Z:, C:, N:, K:) and one of its
 * own:
 *   "X:scram"  the server runs a SCRAM-SHA-256 exchange (RFC 5802) for
 *              user "bob", password "secret" (X:scram-badsig: sends a wrong
 *              server signature); it records placeholder client lines
 * The test compares the lines the client sent with the C: lines, exactly
 * and in order.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "fake.h"
#include "log.h"
#include "pop3_parse.h"
#include "source.h"
#include "unit.h"
#include "xmalloc.h"

/* --- the fake server's POP3 steps --- */

static void
child_send_b64(struct fake_child *c, const char *raw)
{
	char *b64 = base64_encode(raw, strlen(raw));

	fake_write(c, "+ ", 2);
	fake_send(c, b64);
	free(b64);
}

static char *
child_read_b64(struct fake_child *c, const char *skip)
{
	char line[2048];
	unsigned char *raw;
	size_t rawlen, k = strlen(skip);

	if (fake_readline(c, line, sizeof(line)) == -1)
		return NULL;
	if (strncmp(line, skip, k) != 0 ||
	    base64_decode(line + k, strlen(line + k), &raw, &rawlen) == -1) {
		fake_record(c, line);
		return NULL;
	}
	return (char *)raw;
}

/* Server side of SCRAM-SHA-256 for bob/secret. */
static void
child_scram(struct fake_child *c, int badsig)
{
	static const unsigned char salt[] = "0123456789abcdef";
	unsigned char salted[SHA256_LEN], ckey[SHA256_LEN], stored[SHA256_LEN];
	unsigned char csig[SHA256_LEN], proof[SHA256_LEN], skey[SHA256_LEN];
	unsigned char ssig[SHA256_LEN];
	char *first = NULL, *final = NULL, *salt64 = NULL, *p64 = NULL;
	char sfirst[512], auth[2048], msg[256], *cnonce, *pp;
	size_t barelen;

	first = child_read_b64(c, "AUTH SCRAM-SHA-256 ");
	if (first == NULL || strncmp(first, "n,,n=bob,r=", 11) != 0)
		goto bad;
	fake_record(c, "AUTH SCRAM-SHA-256 <client-first>");
	cnonce = first + 11;
	salt64 = base64_encode(salt, 16);
	snprintf(sfirst, sizeof(sfirst), "r=%sSERVERNONCE,s=%s,i=4096",
	    cnonce, salt64);
	child_send_b64(c, sfirst);
	final = child_read_b64(c, "");
	if (final == NULL || (pp = strstr(final, ",p=")) == NULL)
		goto bad;
	*pp = '\0';
	barelen = strlen(first + 3);
	snprintf(auth, sizeof(auth), "%.*s,%s,%s", (int)barelen, first + 3,
	    sfirst, final);
	crypto_pbkdf2_sha256("secret", 6, salt, 16, 4096, salted);
	crypto_hmac_sha256(salted, SHA256_LEN, "Client Key", 10, ckey);
	crypto_sha256(ckey, SHA256_LEN, stored);
	crypto_hmac_sha256(stored, SHA256_LEN, auth, strlen(auth), csig);
	for (int i = 0; i < SHA256_LEN; i++)
		proof[i] = ckey[i] ^ csig[i];
	p64 = base64_encode(proof, SHA256_LEN);
	if (strcmp(pp + 3, p64) != 0) {
		fake_record(c, "<SCRAM proof wrong>");
		fake_send(c, "-ERR [AUTH] bad proof");
		goto out;
	}
	fake_record(c, "<client-final, proof ok>");
	crypto_hmac_sha256(salted, SHA256_LEN, "Server Key", 10, skey);
	crypto_hmac_sha256(skey, SHA256_LEN, auth, strlen(auth), ssig);
	if (badsig)
		ssig[0] ^= 1;
	free(p64);
	p64 = base64_encode(ssig, SHA256_LEN);
	snprintf(msg, sizeof(msg), "v=%s", p64);
	child_send_b64(c, msg);
	goto out;
bad:
	fake_record(c, "<SCRAM exchange malformed>");
	fake_send(c, "-ERR malformed");
out:
	free(first);
	free(final);
	free(salt64);
	free(p64);
}

static enum fake_step
pop3_step(struct fake_child *c, const char *st, char *line, size_t size)
{
	if (strcmp(st, "X:scram") == 0)
		child_scram(c, 0);
	else if (strcmp(st, "X:scram-badsig") == 0)
		child_scram(c, 1);
	else
		return FAKE_NOT_MINE;
	return FAKE_DONE;
}

static const char *
pop3_expect(const char *st)
{
	if (strncmp(st, "X:scram", 7) == 0)
		return "AUTH SCRAM-SHA-256 <client-first>\n"
		    "<client-final, proof ok>";
	return NULL;
}

static const struct fake_proto pop3_fake = { pop3_step, pop3_expect };

static void
params_init(struct source_params *p, const struct fake *fk)
{
	memset(p, 0, sizeof(*p));
	p->account = "test";
	p->conn.host = "127.0.0.1";
	p->conn.port = fk == NULL ? "0" : fk->port;
	p->conn.timeout = 5;
	p->conn.tls_verify = 1;
	p->tls = TLS_NONE;
	p->user = "bob";
	p->secret = "secret";
	p->auth = AUTH_AUTO;
	p->allow_plaintext = 1;
}

/* Open (expecting `want`), then close(commit), then check the transcript. */
static void
run_open(const char *const *script, struct source_params *p,
    enum fail_kind want, const char *want_msg)
{
	struct fake fk;
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	void *src = NULL;
	enum fail_kind k;

	fake_start(&fk, &pop3_fake, script);
	p->conn.port = fk.port;
	k = pop3_source.open(&src, p, &f);
	ck_assert_msg(k == want, "open: got %d (%s), want %d", k, f.msg, want);
	if (want_msg != NULL)
		ck_assert_msg(strstr(f.msg, want_msg) != NULL, "message: %s", f.msg);
	if (k == FAIL_NONE) {
		ck_assert_ptr_nonnull(src);
		ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	} else
		ck_assert_ptr_null(src);
	fake_finish(&fk, script);
}

#define GREET   "S:+OK POP3 ready"
#define QUIT    "C:QUIT", "S:+OK bye"

/* --- login --- */

START_TEST(test_user_pass)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:TOP", "S:UIDL", "S:USER", "S:.",
		"C:USER bob", "S:+OK", "C:PASS secret", "S:+OK logged in",
		QUIT, NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

/* An old server without CAPA: USER/PASS is assumed. */
START_TEST(test_no_capa)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:-ERR what?",
		"C:USER bob", "S:+OK", "C:PASS secret", "S:+OK logged in",
		QUIT, NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

START_TEST(test_refuse_plaintext)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:USER", "S:SASL PLAIN LOGIN", "S:.",
		NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	p.allow_plaintext = 0;
	run_open(script, &p, FAIL_AUTH,
	    "refusing to send a password over an unencrypted connection");
	/* Explicit cleartext choices are refused too. */
	p.auth = AUTH_PLAIN;
	run_open(script, &p, FAIL_AUTH, "refusing to send a password");
	p.auth = AUTH_USER;
	run_open(script, &p, FAIL_AUTH, "refusing to send a password");
	p.auth = AUTH_LOGIN;
	run_open(script, &p, FAIL_AUTH, "refusing to send a password");
}
END_TEST

START_TEST(test_stls_not_offered)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:USER", "S:SASL PLAIN", "S:.", NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	p.tls = TLS_STARTTLS;
	run_open(script, &p, FAIL_CONN, "server does not offer STLS");
}
END_TEST

START_TEST(test_stls_refused)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:STLS", "S:USER", "S:.",
		"C:STLS", "S:-ERR [SYS/TEMP] no TLS today", NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	p.tls = TLS_STARTTLS;
	run_open(script, &p, FAIL_CONN, "STLS refused: [SYS/TEMP] no TLS today");
}
END_TEST

START_TEST(test_not_offered)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL PLAIN", "S:.", NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	p.auth = AUTH_SCRAM_SHA_256;
	run_open(script, &p, FAIL_AUTH, "server does not offer SASL SCRAM-SHA-256");
	p.auth = AUTH_USER;
	run_open(script, &p, FAIL_AUTH, "server does not offer USER");
	p.auth = AUTH_APOP;
	run_open(script, &p, FAIL_AUTH, "APOP");
}
END_TEST

START_TEST(test_auth_plain)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:USER", "S:SASL LOGIN PLAIN", "S:.",
		"C:AUTH PLAIN AGJvYgBzZWNyZXQ=", "S:+OK welcome", QUIT, NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

START_TEST(test_auth_login)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL LOGIN", "S:.",
		"C:AUTH LOGIN", "S:+ VXNlcm5hbWU6", "C:Ym9i",
		"S:+ UGFzc3dvcmQ6", "C:c2VjcmV0", "S:+OK welcome", QUIT, NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

/* SCRAM is chosen first, and allowed without TLS. */
START_TEST(test_auth_scram)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:USER",
		"S:SASL PLAIN LOGIN SCRAM-SHA-256", "S:.",
		"X:scram", "C:", "S:+OK welcome", QUIT, NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	p.allow_plaintext = 0;
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

/* A server that cannot prove it knows the password: cancelled, refused. */
START_TEST(test_auth_scram_badsig)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL SCRAM-SHA-256", "S:.",
		"X:scram-badsig", "C:*", "S:-ERR cancelled", NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_AUTH, "SCRAM server signature does not match");
}
END_TEST

/* An OAuth error challenge is answered with an empty line; the login fails
 * with the error the token server sent. Never chosen by auto. */
START_TEST(test_xoauth2_error)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL XOAUTH2", "S:.",
		"C:AUTH XOAUTH2 dXNlcj1ib2IBYXV0aD1CZWFyZXIgc2VjcmV0AQE=",
		"S:+ eyJzdGF0dXMiOiI0MDEifQ==", "C:", "S:-ERR [AUTH] invalid",
		NULL,
	};
	static const char *const s_auto[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL XOAUTH2 OAUTHBEARER", "S:.", NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	p.auth = AUTH_XOAUTH2;
	run_open(script, &p, FAIL_AUTH, "401");
	p.auth = AUTH_AUTO;
	run_open(s_auto, &p, FAIL_AUTH, "no login mechanism");
}
END_TEST

START_TEST(test_apop)
{
	/* RFC 1939's example. */
	static const char *const script[] = {
		"S:+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>",
		"C:CAPA", "S:-ERR unknown",
		"C:APOP mrose c4c9334bac560ecc979e58001b3e22fb",
		"S:+OK maildrop has 1 message (369 octets)", QUIT, NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	p.user = "mrose";
	p.secret = "tanstaaf";
	p.auth = AUTH_APOP;
	p.allow_plaintext = 0;
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

START_TEST(test_err_auth)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:USER", "S:.",
		"C:USER bob", "S:+OK", "C:PASS secret",
		"S:-ERR [AUTH] invalid \x01password\x7f", NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_AUTH, "login refused: [AUTH] invalid ?password?");
}
END_TEST

START_TEST(test_err_in_use)
{
	static const char *const script[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL PLAIN", "S:.",
		"C:AUTH PLAIN AGJvYgBzZWNyZXQ=",
		"S:-ERR [IN-USE] mailbox locked by another session", NULL,
	};
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_TEMP, "[IN-USE] mailbox locked");
}
END_TEST

START_TEST(test_greeting_err)
{
	static const char *const script[] = { "S:-ERR [SYS/TEMP] busy", NULL };
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_TEMP, "busy");
}
END_TEST

START_TEST(test_long_line)
{
	static char big[3000];
	static const char *script[] = { big, NULL };
	struct source_params p;

	strcpy(big, "S:+OK ");
	memset(big + 6, 'x', sizeof(big) - 7);
	params_init(&p, NULL);
	run_open(script, &p, FAIL_PROTO, NULL);
}
END_TEST

START_TEST(test_malformed_greeting)
{
	static const char *const script[] = { "S:* OK IMAP4rev1 ready", NULL };
	struct source_params p;

	params_init(&p, NULL);
	run_open(script, &p, FAIL_PROTO, "malformed reply");
}
END_TEST

/* --- transaction state --- */

#define LOGIN_PIPE \
	GREET, "C:CAPA", "S:+OK", "S:USER", "S:UIDL", "S:PIPELINING", "S:.", \
	"C:USER bob", "S:+OK", "C:PASS secret", "S:+OK"
#define LOGIN_LOCK \
	GREET, "C:CAPA", "S:+OK", "S:USER", "S:UIDL", "S:.", \
	"C:USER bob", "S:+OK", "C:PASS secret", "S:+OK"

/* Open against a script, for tests that go on to list/fetch/del. */
static void *
open_ok(struct fake *fk, const char *const *script, size_t window)
{
	struct source_params p;
	struct fail f;
	void *src = NULL;

	fake_start(fk, &pop3_fake, script);
	params_init(&p, fk);
	p.window = window;
	ck_assert_msg(pop3_source.open(&src, &p, &f) == FAIL_NONE, "%s", f.msg);
	return src;
}

START_TEST(test_list_ok)
{
	static const char *const script[] = {
		LOGIN_PIPE, "C:UIDL", "C:LIST",
		"S:+OK", "S:1 aaa", "S:2 ..dotted", "S:3 ccc", "S:.",
		"S:+OK 3 messages", "S:1 100", "S:2 200", "S:3 300 extra", "S:.",
		QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct msg *v = NULL;
	size_t n = 0;
	void *src = open_ok(&fk, script, 0);

	ck_assert_int_eq(pop3_source.list(src, 0, &v, &n, &f), FAIL_NONE);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0].uid, "aaa");
	ck_assert_str_eq(v[1].uid, "..dotted");
	ck_assert_uint_eq(v[1].num, 2);
	ck_assert_uint_eq(v[1].size, 200);
	ck_assert_uint_eq(v[2].size, 300);
	free(v);
	{
		char want[64];

		snprintf(want, sizeof(want), "127.0.0.1:%s", fk.port);
		ck_assert_str_eq(pop3_source.server(src), want);
	}
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* Lock-step without PIPELINING; an empty mailbox. */
START_TEST(test_list_lockstep_empty)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:UIDL", "S:+OK", "S:.", "C:LIST", "S:+OK", "S:.",
		QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct msg *v = NULL;
	size_t n = 5;
	void *src = open_ok(&fk, script, 0);

	ck_assert_int_eq(pop3_source.list(src, 0, &v, &n, &f), FAIL_NONE);
	ck_assert_uint_eq(n, 0);
	free(v);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

static void
list_fails(const char *const *script, enum fail_kind want, const char *msg)
{
	struct fake fk;
	struct fail f;
	struct msg *v = NULL;
	size_t n = 0;
	void *src = open_ok(&fk, script, 0);

	ck_assert_int_eq(pop3_source.list(src, 0, &v, &n, &f), want);
	ck_assert_msg(strstr(f.msg, msg) != NULL, "message: %s", f.msg);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(pop3_source.close(src, 0, &f), FAIL_NONE);
	fake_finish(&fk, script);
}

START_TEST(test_no_uidl)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:UIDL", "S:-ERR unknown command", NULL,
	};

	list_fails(script, FAIL_PROTO,
	    "server does not support UIDL; cannot tell new mail from old");
}
END_TEST

START_TEST(test_bad_uidl_line)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:UIDL", "S:+OK", "S:1 aaa", "S:2 bad uid\x1b[0m",
		"S:.", NULL,
	};

	list_fails(script, FAIL_PROTO, "malformed UIDL line: 2 bad uid?[0m");
}
END_TEST

START_TEST(test_bad_list_line)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:UIDL", "S:+OK", "S:1 aaa", "S:.",
		"C:LIST", "S:+OK", "S:1 99999999999999999999999", "S:.", NULL,
	};

	list_fails(script, FAIL_PROTO, "malformed LIST line");
}
END_TEST

START_TEST(test_list_mismatch)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:UIDL", "S:+OK", "S:1 aaa", "S:2 bbb", "S:.",
		"C:LIST", "S:+OK", "S:1 10", "S:.", NULL,
	};

	list_fails(script, FAIL_PROTO, "LIST lacks message 2");
}
END_TEST

/* A sink that records calls and bytes. */
struct rec {
	char log[256];
	char data[4][256];
	size_t len[4];
	size_t cur;
	int fail_write;         /* fail the write for this index + 1 */
};

static enum fail_kind
rec_begin(void *arg, size_t i, struct fail *f)
{
	struct rec *r = arg;
	size_t l = strlen(r->log);

	snprintf(r->log + l, sizeof(r->log) - l, "b%zu ", i);
	r->cur = i;
	return FAIL_NONE;
}

static enum fail_kind
rec_write(void *arg, const char *p, size_t n, struct fail *f)
{
	struct rec *r = arg;

	if (r->fail_write == (int)r->cur + 1)
		return fail_set(f, FAIL_LOCAL, "disk full");
	ck_assert_uint_le(r->len[r->cur] + n, sizeof(r->data[0]));
	memcpy(r->data[r->cur] + r->len[r->cur], p, n);
	r->len[r->cur] += n;
	return FAIL_NONE;
}

static enum fail_kind
rec_end(void *arg, size_t i, struct fail *f)
{
	struct rec *r = arg;
	size_t l = strlen(r->log);

	snprintf(r->log + l, sizeof(r->log) - l, "e%zu ", i);
	return FAIL_NONE;
}

static void
rec_abort(void *arg, size_t i)
{
	struct rec *r = arg;
	size_t l = strlen(r->log);

	snprintf(r->log + l, sizeof(r->log) - l, "a%zu ", i);
}

static void
rec_sink(struct rec *r, struct msg_sink *s)
{
	memset(r, 0, sizeof(*r));
	s->arg = r;
	s->begin = rec_begin;
	s->write = rec_write;
	s->end = rec_end;
	s->abort = rec_abort;
}

static struct msg fetch_msgs[4] = {
	{ .uid = "u1", .num = 1, .size = 10 }, { .uid = "u2", .num = 2, .size = 10 }, { .uid = "u3", .num = 3, .size = 10 }, { .uid = "u4", .num = 4, .size = 10 },
};
static const struct msg *const fetch_ptrs[4] = {
	&fetch_msgs[0], &fetch_msgs[1], &fetch_msgs[2], &fetch_msgs[3],
};

/* Window 2: RETR 3 goes out as soon as the first reply is read; message 2
 * is gone (-ERR) and skipped. */
START_TEST(test_fetch_pipelined)
{
	static const char *const script[] = {
		LOGIN_PIPE, "C:RETR 1", "C:RETR 2",
		"S:+OK 12 octets", "R:Subject: a\r\n\r\n..dot\r\nend\r\n.\r\n",
		"C:RETR 3", "S:-ERR no such message",
		"S:+OK", "R:.\r\n",
		"C:RETR 4", "S:+OK", "R:x\r\n\n.\r\n",
		QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_ok(&fk, script, 2);

	rec_sink(&r, &sink);
	ck_assert_int_eq(pop3_source.fetch(src, fetch_ptrs, 4, &sink, &f),
	    FAIL_NONE);
	ck_assert_str_eq(r.log, "b0 e0 b2 e2 b3 e3 ");
	ck_assert_uint_eq(r.len[0], 25);
	ck_assert(memcmp(r.data[0], "Subject: a\r\n\r\n.dot\r\nend\r\n", 25) == 0);
	ck_assert_uint_eq(r.len[2], 0);
	ck_assert_uint_eq(r.len[3], 4);
	ck_assert(memcmp(r.data[3], "x\r\n\n", 4) == 0);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* Default window: all four RETRs go out before any reply is read. */
START_TEST(test_fetch_window_default)
{
	static const char *const script[] = {
		LOGIN_PIPE, "C:RETR 1", "C:RETR 2", "C:RETR 3", "C:RETR 4",
		"S:+OK", "R:one\r\n.\r\n+OK\r\ntwo\r\n.\r\n+OK\r\nthree\r\n.\r\n",
		"S:+OK", "R:four\r\n.\r\n", QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_ok(&fk, script, 0);

	rec_sink(&r, &sink);
	ck_assert_int_eq(pop3_source.fetch(src, fetch_ptrs, 4, &sink, &f),
	    FAIL_NONE);
	ck_assert_str_eq(r.log, "b0 e0 b1 e1 b2 e2 b3 e3 ");
	ck_assert_uint_eq(r.len[1], 5);
	ck_assert(memcmp(r.data[1], "two\r\n", 5) == 0);
	ck_assert(memcmp(r.data[3], "four\r\n", 6) == 0);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* A message stored without a final line end comes with one the server
 * added; LIST's size tells, and it is taken off. One that had it keeps it. */
START_TEST(test_fetch_server_line_end)
{
	static struct msg m[3] = {
		{ .uid = "u1", .num = 1, .size = 3 }, { .uid = "u2", .num = 2, .size = 5 }, { .uid = "u3", .num = 3, .size = 1 },
	};
	static const struct msg *const mp[3] = { &m[0], &m[1], &m[2] };
	static const char *const script[] = {
		LOGIN_PIPE, "C:RETR 1", "C:RETR 2", "C:RETR 3",
		"S:+OK", "R:abc\r\n.\r\n+OK\r\nabc\r\n.\r\n+OK\r\nx\r",
		"R:\n.\r\n", QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_ok(&fk, script, 0);

	rec_sink(&r, &sink);
	ck_assert_int_eq(pop3_source.fetch(src, mp, 3, &sink, &f), FAIL_NONE);
	ck_assert_str_eq(r.log, "b0 e0 b1 e1 b2 e2 ");
	ck_assert_uint_eq(r.len[0], 3);
	ck_assert(memcmp(r.data[0], "abc", 3) == 0);
	ck_assert_uint_eq(r.len[1], 5);
	ck_assert(memcmp(r.data[1], "abc\r\n", 5) == 0);
	ck_assert_uint_eq(r.len[2], 1);
	ck_assert(memcmp(r.data[2], "x", 1) == 0);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_fetch_lockstep)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:RETR 1", "S:+OK", "R:a\r\n.\r\n",
		"C:RETR 2", "S:+OK", "R:b\r\n.\r\n", QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_ok(&fk, script, 0);

	rec_sink(&r, &sink);
	ck_assert_int_eq(pop3_source.fetch(src, fetch_ptrs, 2, &sink, &f),
	    FAIL_NONE);
	ck_assert_str_eq(r.log, "b0 e0 b1 e1 ");
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_fetch_cut)
{
	static const char *const script[] = {
		LOGIN_PIPE, "C:RETR 1", "C:RETR 2", "S:+OK", "R:a\r\n.\r\n",
		"S:+OK", "R:partial body\r\nmore", "K:", NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_ok(&fk, script, 0);

	rec_sink(&r, &sink);
	ck_assert_int_eq(pop3_source.fetch(src, fetch_ptrs, 2, &sink, &f),
	    FAIL_CONN);
	ck_assert_str_eq(r.log, "b0 e0 b1 a1 ");
	ck_assert_int_eq(pop3_source.close(src, 0, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* The sink fails on message 1: no more callbacks, the outstanding replies
 * are drained, the session stays usable, the sink's failure is returned. */
START_TEST(test_fetch_sink_fails)
{
	static const char *const script[] = {
		LOGIN_PIPE, "C:RETR 1", "C:RETR 2", "S:+OK", "R:a\r\n.\r\n",
		"C:RETR 3", "S:+OK", "R:bbb\r\n.\r\n", "S:+OK", "R:c\r\n.\r\n",
		QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_ok(&fk, script, 2);

	rec_sink(&r, &sink);
	r.fail_write = 2;
	ck_assert_int_eq(pop3_source.fetch(src, fetch_ptrs, 4, &sink, &f),
	    FAIL_LOCAL);
	ck_assert_str_eq(f.msg, "disk full");
	ck_assert_str_eq(r.log, "b0 e0 b1 ");
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_dele_quit)
{
	static const char *const script[] = {
		LOGIN_PIPE, "C:DELE 1", "C:DELE 2", "C:DELE 3",
		"S:+OK", "S:+OK", "S:+OK", QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	size_t refused;
	void *src = open_ok(&fk, script, 0);

	ck_assert_int_eq(pop3_source.del(src, fetch_ptrs, 3, &refused, &f), FAIL_NONE);
	ck_assert_uint_eq(refused, 0);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* A refused DELE is that message's business: the others are deleted, the
 * session goes on to QUIT, and the caller hears FAIL_TEMP. */
START_TEST(test_dele_err)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:DELE 1", "S:+OK", "C:DELE 2", "S:-ERR no such message",
		"C:DELE 3", "S:+OK", QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	size_t refused;
	void *src = open_ok(&fk, script, 0);

	ck_assert_int_eq(pop3_source.del(src, fetch_ptrs, 3, &refused, &f), FAIL_TEMP);
	ck_assert_uint_eq(refused, 1);
	ck_assert_msg(strstr(f.msg, "refused to delete 1 of 3") != NULL, "%s",
	    f.msg);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* A NUL in a reply line would cut a UID short unseen: refused. */
START_TEST(test_nul_in_uidl)
{
	static const char *const script[] = {
		LOGIN_PIPE, "C:UIDL", "C:LIST", "R:+OK\r\n1 abc", "Z:",
		"R:x\r\n.\r\n",
		NULL,
	};
	struct fake fk;
	struct fail f;
	struct msg *v = NULL;
	size_t n = 0;
	void *src = open_ok(&fk, script, 0);

	ck_assert_int_eq(pop3_source.list(src, 0, &v, &n, &f), FAIL_PROTO);
	ck_assert_msg(strstr(f.msg, "NUL byte") != NULL, "%s", f.msg);
	ck_assert_ptr_null(v);
	pop3_source.close(src, 0, NULL);
	fake_finish(&fk, script);
}
END_TEST

/* Two messages with one UID: refused, or one would pass for the other. */
START_TEST(test_duplicate_uid)
{
	static const char *const script[] = {
		LOGIN_PIPE, "C:UIDL", "C:LIST",
		"S:+OK", "S:1 same", "S:2 same", "S:.", "S:+OK", "S:1 5", "S:2 5",
		"S:.", NULL,
	};
	struct fake fk;
	struct fail f;
	struct msg *v = NULL;
	size_t n = 0;
	void *src = open_ok(&fk, script, 0);

	ck_assert_int_eq(pop3_source.list(src, 0, &v, &n, &f), FAIL_PROTO);
	ck_assert_msg(strstr(f.msg, "the same UID same") != NULL, "%s", f.msg);
	pop3_source.close(src, 0, NULL);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_quit_err)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:DELE 1", "S:+OK", "C:QUIT", "S:-ERR [SYS/TEMP] oops",
		NULL,
	};
	struct fake fk;
	struct fail f;
	size_t refused;
	void *src = open_ok(&fk, script, 0);

	ck_assert_int_eq(pop3_source.del(src, fetch_ptrs, 1, &refused, &f), FAIL_NONE);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_PROTO);
	ck_assert_str_eq(f.msg, "QUIT failed; deletions not applied: [SYS/TEMP] oops");
	fake_finish(&fk, script);
}
END_TEST

/* --- header-first: TOP n 0 --- */

#define LOGIN_PIPE_TOP \
	GREET, "C:CAPA", "S:+OK", "S:USER", "S:UIDL", "S:TOP", "S:PIPELINING", \
	"S:.", "C:USER bob", "S:+OK", "C:PASS secret", "S:+OK"
#define LOGIN_LOCK_TOP \
	GREET, "C:CAPA", "S:+OK", "S:USER", "S:UIDL", "S:TOP", "S:.", \
	"C:USER bob", "S:+OK", "C:PASS secret", "S:+OK"
#define LOGIN_NO_CAPA \
	GREET, "C:CAPA", "S:-ERR unknown command", \
	"C:USER bob", "S:+OK", "C:PASS secret", "S:+OK"

/* What headers() hands over: "hI " per call in the log, the bytes (the
 * first 512 of them) and the length. */
struct hrec {
	char log[64];
	char data[4][512];
	size_t len[4];
};

static void
hrec_cb(void *arg, size_t i, const char *p, size_t len)
{
	struct hrec *h = arg;
	size_t l = strlen(h->log);

	ck_assert_uint_lt(i, 4);
	snprintf(h->log + l, sizeof(h->log) - l, "h%zu ", i);
	memcpy(h->data[i], p, len < sizeof(h->data[i]) ? len : sizeof(h->data[i]));
	h->len[i] = len;
}

#define HDR_IS(h, i, s) do {                                            \
	ck_assert_uint_eq((h)->len[i], sizeof(s) - 1);                  \
	ck_assert_msg(memcmp((h)->data[i], (s), sizeof(s) - 1) == 0,    \
	    "header %d: %.*s", (i), (int)(h)->len[i], (h)->data[i]);    \
} while (0)

/* headers(msgs[0..n)) against a script; the session is then closed with
 * QUIT if the call succeeded, dropped otherwise. */
static void
headers_run(const char *const *script, size_t window, size_t n,
    struct hrec *h, enum fail_kind want, const char *want_msg)
{
	struct fake fk;
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	enum fail_kind k;
	void *src = open_ok(&fk, script, window);

	memset(h, 0, sizeof(*h));
	ck_assert_int_eq(pop3_source.header_first(src), 1);
	k = pop3_source.headers(src, fetch_ptrs, n, hrec_cb, h, &f);
	ck_assert_msg(k == want, "headers: got %d (%s), want %d", k, f.msg, want);
	if (want_msg != NULL)
		ck_assert_msg(strstr(f.msg, want_msg) != NULL, "message: %s", f.msg);
	ck_assert_int_eq(pop3_source.close(src, want == FAIL_NONE, &f),
	    FAIL_NONE);
	fake_finish(&fk, script);
}

/* Window 2: TOP 3 goes out as soon as the first reply is read. Dot-stuffed
 * header lines come back unstuffed; the empty line that ends the header is
 * part of it; the body lines after it are not. */
START_TEST(test_top_pipelined)
{
	static const char *const script[] = {
		LOGIN_PIPE_TOP, "C:TOP 1 0", "C:TOP 2 0",
		"S:+OK top of message follows",
		"R:Subject: a\r\n..X-Dot: stuffed\r\n\r\n.\r\n",
		"C:TOP 3 0", "S:+OK", "R:Subject: b\r\n\r\n.\r\n",
		"C:TOP 4 0", "S:+OK", "R:Subject: c\r\n\r\n.\r\n",
		"S:+OK", "R:Subject: d\r\n\r\n.\r\n",
		QUIT, NULL,
	};
	struct hrec h;

	headers_run(script, 2, 4, &h, FAIL_NONE, NULL);
	ck_assert_str_eq(h.log, "h0 h1 h2 h3 ");
	HDR_IS(&h, 0, "Subject: a\r\n.X-Dot: stuffed\r\n\r\n");
	HDR_IS(&h, 1, "Subject: b\r\n\r\n");
	HDR_IS(&h, 3, "Subject: d\r\n\r\n");
}
END_TEST

/* Without PIPELINING: one TOP at a time (N: checks that TOP 2 was not
 * sent before the reply to TOP 1). A message with an empty header. */
START_TEST(test_top_lockstep)
{
	static const char *const script[] = {
		LOGIN_LOCK_TOP, "C:TOP 1 0", "N:", "S:+OK",
		"R:From: x@example.org\r\n\r\n.\r\n",
		"C:TOP 2 0", "N:", "S:+OK", "R:\r\nonly a body\r\n.\r\n",
		QUIT, NULL,
	};
	struct hrec h;

	headers_run(script, 0, 2, &h, FAIL_NONE, NULL);
	ck_assert_str_eq(h.log, "h0 h1 ");
	HDR_IS(&h, 0, "From: x@example.org\r\n\r\n");
	HDR_IS(&h, 1, "\r\n");
}
END_TEST

/* Servers that send more than the header, or less: body lines after the
 * empty line (stuffed ones too) are drained, not passed on; a message with
 * no body at all gives its whole header; bare LF line ends are kept as
 * they came; a server that ignores the 0 and sends a 200 KB body costs
 * nothing but the drain. */
START_TEST(test_top_body_lines)
{
	static char whole[220000];
	static const char *script[] = {
		LOGIN_PIPE_TOP, "C:TOP 1 0", "C:TOP 2 0", "C:TOP 3 0", "C:TOP 4 0",
		"S:+OK", "R:Subject: a\r\nX: 1\r\n\r\nbody line\r\n..dotted body\r\n"
		"\r\nX-Not: header\r\n.\r\n",
		"S:+OK", "R:Subject: no body\r\nX: 2\r\n.\r\n",
		"S:+OK", "R:Subject: lf\n\nbody\n.\r\n",
		"S:+OK", whole, QUIT, NULL,
	};
	struct hrec h;
	size_t o;

	o = (size_t)snprintf(whole, sizeof(whole), "R:Subject: whole\r\n\r\n");
	while (o + 100 < sizeof(whole)) {
		static const char ln[] = "..a body line that looks like a "
		    "header: yes\r\n";

		memcpy(whole + o, ln, sizeof(ln) - 1);
		o += sizeof(ln) - 1;
	}
	memcpy(whole + o, ".\r\n", 4);
	headers_run(script, 0, 4, &h, FAIL_NONE, NULL);
	ck_assert_str_eq(h.log, "h0 h1 h2 h3 ");
	HDR_IS(&h, 0, "Subject: a\r\nX: 1\r\n\r\n");
	HDR_IS(&h, 1, "Subject: no body\r\nX: 2\r\n");
	HDR_IS(&h, 2, "Subject: lf\n\n");
	HDR_IS(&h, 3, "Subject: whole\r\n\r\n");
}
END_TEST

/* The cap: a header section of exactly 64 KiB (with its empty line) is
 * handed over; one byte more is drained and gives no call; the session
 * goes on to the next message and to QUIT. */
START_TEST(test_top_big)
{
	static char at[70000], over[70000];
	static const char *script[] = {
		LOGIN_PIPE_TOP, "C:TOP 1 0", "C:TOP 2 0", "C:TOP 3 0",
		"S:+OK", at, "S:+OK", over,
		"S:+OK", "R:Subject: small\r\n\r\n.\r\n", QUIT, NULL,
	};
	struct hrec h;

	/* "X-Big: " + value + CRLF + CRLF = 65536 (at) or 65537 (over) */
	snprintf(at, sizeof(at), "R:X-Big: %0*d\r\n\r\nbody\r\n.\r\n", 65525, 7);
	snprintf(over, sizeof(over), "R:X-Big: %0*d\r\n\r\nbody\r\n.\r\n", 65526, 8);
	headers_run(script, 0, 3, &h, FAIL_NONE, NULL);
	ck_assert_str_eq(h.log, "h0 h2 ");
	ck_assert_uint_eq(h.len[0], 65536);
	ck_assert(memcmp(h.data[0], "X-Big: 0000", 11) == 0);
	HDR_IS(&h, 2, "Subject: small\r\n\r\n");
}
END_TEST

/* A reply that does not end: refused once it is far longer than the
 * message LIST announced (10 bytes here: the limit is 2 * 10 + 1 MiB). */
START_TEST(test_top_endless)
{
	static char endless[1100000];
	static const char *script[] = {
		LOGIN_PIPE_TOP, "C:TOP 1 0", "S:+OK", endless, NULL,
	};
	struct hrec h;
	size_t o = 2;

	memcpy(endless, "R:", 2);
	while (o + 20 < sizeof(endless)) {
		memcpy(endless + o, "X-Again: and again\r\n", 20);
		o += 20;
	}
	endless[o] = '\0';
	headers_run(script, 0, 1, &h, FAIL_PROTO,
	    "TOP 1 (message u1): reply longer than 1048596 bytes");
	ck_assert_str_eq(h.log, "");
}
END_TEST

/* -ERR for one message: no call for it; the others go on, and TOP is still
 * used (the server announced it, so the refusal is that message's). */
START_TEST(test_top_err)
{
	static const char *const script[] = {
		LOGIN_PIPE_TOP, "C:TOP 1 0", "C:TOP 2 0", "C:TOP 3 0",
		"S:+OK", "R:A: 1\r\n\r\n.\r\n", "S:-ERR no such message",
		"S:+OK", "R:C: 3\r\n\r\n.\r\n", QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct hrec h;
	void *src = open_ok(&fk, script, 0);

	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(pop3_source.headers(src, fetch_ptrs, 3, hrec_cb, &h,
	    &f), FAIL_NONE);
	ck_assert_str_eq(h.log, "h0 h2 ");
	HDR_IS(&h, 2, "C: 3\r\n\r\n");
	ck_assert_int_eq(pop3_source.header_first(src), 1);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* A connection cut in the middle of a header, a cut before the status
 * line, and garbage for a status line: each fails naming the message. */
START_TEST(test_top_cut)
{
	static const char *const s_mid[] = {
		LOGIN_PIPE_TOP, "C:TOP 1 0", "C:TOP 2 0", "S:+OK",
		"R:A: 1\r\n\r\n.\r\n", "S:+OK", "R:Subject: partial\r\nFrom: x",
		"K:", NULL,
	};
	static const char *const s_before[] = {
		LOGIN_PIPE_TOP, "C:TOP 1 0", "C:TOP 2 0", "S:+OK",
		"R:A: 1\r\n\r\n.\r\n", "K:", NULL,
	};
	static const char *const s_garbage[] = {
		LOGIN_PIPE_TOP, "C:TOP 1 0", "C:TOP 2 0", "S:+OK",
		"R:A: 1\r\n\r\n.\r\n", "S:Subject: not a status line", NULL,
	};
	struct hrec h;

	headers_run(s_mid, 0, 2, &h, FAIL_CONN,
	    "TOP 2 (message u2): connection closed by server");
	ck_assert_str_eq(h.log, "h0 ");
	headers_run(s_before, 0, 2, &h, FAIL_CONN,
	    "TOP 2 (message u2): connection closed by server");
	ck_assert_str_eq(h.log, "h0 ");
	headers_run(s_garbage, 0, 2, &h, FAIL_PROTO,
	    "TOP 2 (message u2): malformed reply to TOP: Subject: not a "
	    "status line");
	ck_assert_str_eq(h.log, "h0 ");
}
END_TEST

/* header_first: 0 when CAPA was answered without TOP (and headers() then
 * sends nothing); 1 when CAPA lists TOP; IMAP can always. */
START_TEST(test_header_first_capa)
{
	static const char *const s_without[] = { LOGIN_PIPE, QUIT, NULL };
	static const char *const s_with[] = { LOGIN_LOCK_TOP, QUIT, NULL };
	struct fake fk;
	struct fail f;
	struct hrec h;
	void *src;

	src = open_ok(&fk, s_without, 0);
	ck_assert_int_eq(pop3_source.header_first(src), 0);
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(pop3_source.headers(src, fetch_ptrs, 4, hrec_cb, &h,
	    &f), FAIL_NONE);
	ck_assert_str_eq(h.log, "");
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_without);

	src = open_ok(&fk, s_with, 0);
	ck_assert_int_eq(pop3_source.header_first(src), 1);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_with);

	ck_assert_ptr_nonnull(imap_source.headers);
	ck_assert_int_eq(imap_source.header_first(NULL), 1);
}
END_TEST

/* A server without CAPA: TOP is tried; the first one refused means no TOP
 * (no more are sent, header_first turns 0). One refused after another
 * succeeded is only that message's. */
START_TEST(test_header_first_no_capa)
{
	static const char *const s_none[] = {
		LOGIN_NO_CAPA, "C:TOP 1 0", "N:", "S:-ERR unknown command",
		QUIT, NULL,
	};
	static const char *const s_some[] = {
		LOGIN_NO_CAPA, "C:TOP 1 0", "S:+OK", "R:A: 1\r\n\r\n.\r\n",
		"C:TOP 2 0", "S:-ERR no such message",
		"C:TOP 3 0", "S:+OK", "R:C: 3\r\n\r\n.\r\n", QUIT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct hrec h;
	void *src;

	src = open_ok(&fk, s_none, 0);
	ck_assert_int_eq(pop3_source.header_first(src), 1);
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(pop3_source.headers(src, fetch_ptrs, 3, hrec_cb, &h,
	    &f), FAIL_NONE);
	ck_assert_str_eq(h.log, "");
	ck_assert_int_eq(pop3_source.header_first(src), 0);
	ck_assert_int_eq(pop3_source.headers(src, fetch_ptrs, 3, hrec_cb, &h,
	    &f), FAIL_NONE);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_none);

	headers_run(s_some, 0, 3, &h, FAIL_NONE, NULL);
	ck_assert_str_eq(h.log, "h0 h2 ");
}
END_TEST

/* --- the trace never shows a secret --- */

static void
trace_login(const char *const *script, struct source_params *p, char *out,
    size_t size)
{
	char path[] = "/tmp/mailpull-trace-XXXXXX";
	int tfd, saved;
	ssize_t n;

	tfd = mkstemp(path);
	ck_assert_int_ge(tfd, 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(tfd, 2), 0);
	log_init(0, LOG_LVL_TRACE);
	run_open(script, p, FAIL_NONE, NULL);
	log_init(0, LOG_LVL_INFO);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(tfd, out, size - 1, 0);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	close(tfd);
}

START_TEST(test_trace_redacted)
{
	static const char *const s_user[] = {
		LOGIN_LOCK, QUIT, NULL,
	};
	static const char *const s_plain[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL PLAIN", "S:.",
		"C:AUTH PLAIN AGJvYgBzZWNyZXQ=", "S:+OK", QUIT, NULL,
	};
	static const char *const s_login[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL LOGIN", "S:.",
		"C:AUTH LOGIN", "S:+ VXNlcm5hbWU6", "C:Ym9i",
		"S:+ UGFzc3dvcmQ6", "C:c2VjcmV0", "S:+OK welcome", QUIT, NULL,
	};
	static const char *const s_scram[] = {
		GREET, "C:CAPA", "S:+OK", "S:SASL SCRAM-SHA-256", "S:.",
		"X:scram", "C:", "S:+OK welcome", QUIT, NULL,
	};
	static const char *const s_apop[] = {
		"S:+OK ready <1896.697170952@dbc.mtview.ca.us>",
		"C:CAPA", "S:-ERR", "C:APOP bob (digest set below)",
		"S:+OK", QUIT, NULL,
	};
	static char out[65536];
	struct source_params p;
	char digest[33], *joined;

	params_init(&p, NULL);
	trace_login(s_user, &p, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "> PASS ********"));
	ck_assert_ptr_nonnull(strstr(out, "> USER bob"));
	ck_assert_ptr_nonnull(strstr(out, "< +OK POP3 ready"));
	ck_assert_ptr_nonnull(strstr(out, "pop3: AUTH -> TRANSACTION"));
	ck_assert_ptr_null(strstr(out, "secret"));

	trace_login(s_plain, &p, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "> AUTH PLAIN ********"));
	ck_assert_ptr_null(strstr(out, "secret"));
	ck_assert_ptr_null(strstr(out, "AGJvYgBzZWNyZXQ"));

	trace_login(s_login, &p, out, sizeof(out));
	ck_assert_ptr_null(strstr(out, "c2VjcmV0"));
	ck_assert_ptr_null(strstr(out, "secret"));

	trace_login(s_scram, &p, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "> AUTH SCRAM-SHA-256 ********"));
	ck_assert_ptr_null(strstr(out, "secret"));
	ck_assert_ptr_null(strstr(out, ",p="));

	/* APOP: the digest is as good as the password to a replayer. */
	joined = xasprintf("%s%s", "<1896.697170952@dbc.mtview.ca.us>", "secret");
	crypto_md5_hex(joined, strlen(joined), digest);
	free(joined);
	{
		static char line[64];
		static const char *s2[sizeof(s_apop) / sizeof(s_apop[0])];

		memcpy(s2, s_apop, sizeof(s_apop));
		snprintf(line, sizeof(line), "C:APOP bob %s", digest);
		s2[3] = line;
		p.auth = AUTH_APOP;
		trace_login(s2, &p, out, sizeof(out));
	}
	ck_assert_ptr_nonnull(strstr(out, "> APOP bob ********"));
	ck_assert_ptr_null(strstr(out, digest));
	ck_assert_ptr_null(strstr(out, "secret"));
}
END_TEST

/* The trace of a fetch: one line for the body, never its contents. */
START_TEST(test_trace_body)
{
	static const char *const script[] = {
		LOGIN_LOCK, "C:RETR 1", "S:+OK", "R:hidden-body-text\r\n.\r\n",
		QUIT, NULL,
	};
	char path[] = "/tmp/mailpull-trace-XXXXXX";
	static char out[65536];
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src;
	int tfd, saved;
	ssize_t n;

	tfd = mkstemp(path);
	ck_assert_int_ge(tfd, 0);
	unlink(path);
	saved = dup(2);
	dup2(tfd, 2);
	log_init(0, LOG_LVL_TRACE);
	src = open_ok(&fk, script, 0);
	rec_sink(&r, &sink);
	ck_assert_int_eq(pop3_source.fetch(src, fetch_ptrs, 1, &sink, &f),
	    FAIL_NONE);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	log_init(0, LOG_LVL_INFO);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fake_finish(&fk, script);
	n = pread(tfd, out, sizeof(out) - 1, 0);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	close(tfd);
	ck_assert_ptr_nonnull(strstr(out, "< [message body, 18 bytes]"));
	ck_assert_ptr_null(strstr(out, "hidden-body-text"));
}
END_TEST

/* The trace of TOP: one line per header, never its contents. */
START_TEST(test_trace_header)
{
	static const char *const script[] = {
		LOGIN_LOCK_TOP, "C:TOP 1 0", "S:+OK",
		"R:Subject: hidden-subject\r\n\r\nhidden-body\r\n.\r\n",
		QUIT, NULL,
	};
	char path[] = "/tmp/mailpull-trace-XXXXXX";
	static char out[65536];
	struct fake fk;
	struct fail f;
	struct hrec h;
	void *src;
	int tfd, saved;
	ssize_t n;

	tfd = mkstemp(path);
	ck_assert_int_ge(tfd, 0);
	unlink(path);
	saved = dup(2);
	dup2(tfd, 2);
	log_init(0, LOG_LVL_TRACE);
	src = open_ok(&fk, script, 0);
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(pop3_source.headers(src, fetch_ptrs, 1, hrec_cb, &h,
	    &f), FAIL_NONE);
	ck_assert_int_eq(pop3_source.close(src, 1, &f), FAIL_NONE);
	log_init(0, LOG_LVL_INFO);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fake_finish(&fk, script);
	n = pread(tfd, out, sizeof(out) - 1, 0);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	close(tfd);
	ck_assert_str_eq(h.log, "h0 ");
	ck_assert_ptr_nonnull(strstr(out, "> TOP 1 0"));
	ck_assert_ptr_nonnull(strstr(out, "< [message header, 2 lines, 27 "
	    "bytes; 13 bytes after it ignored]"));
	ck_assert_ptr_null(strstr(out, "hidden"));
}
END_TEST

static void
setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(30);
}

static void
teardown(void)
{
	alarm(0);
}

Suite *
unit_suite(void)
{
	Suite *s = suite_create("pop3");
	TCase *tc = tcase_create("transcript");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_user_pass);
	tcase_add_test(tc, test_no_capa);
	tcase_add_test(tc, test_refuse_plaintext);
	tcase_add_test(tc, test_stls_not_offered);
	tcase_add_test(tc, test_stls_refused);
	tcase_add_test(tc, test_not_offered);
	tcase_add_test(tc, test_auth_plain);
	tcase_add_test(tc, test_auth_login);
	tcase_add_test(tc, test_auth_scram);
	tcase_add_test(tc, test_auth_scram_badsig);
	tcase_add_test(tc, test_xoauth2_error);
	tcase_add_test(tc, test_apop);
	tcase_add_test(tc, test_err_auth);
	tcase_add_test(tc, test_err_in_use);
	tcase_add_test(tc, test_greeting_err);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_malformed_greeting);
	tcase_add_test(tc, test_list_ok);
	tcase_add_test(tc, test_list_lockstep_empty);
	tcase_add_test(tc, test_no_uidl);
	tcase_add_test(tc, test_bad_uidl_line);
	tcase_add_test(tc, test_bad_list_line);
	tcase_add_test(tc, test_list_mismatch);
	tcase_add_test(tc, test_fetch_pipelined);
	tcase_add_test(tc, test_fetch_window_default);
	tcase_add_test(tc, test_fetch_lockstep);
	tcase_add_test(tc, test_fetch_server_line_end);
	tcase_add_test(tc, test_fetch_cut);
	tcase_add_test(tc, test_fetch_sink_fails);
	tcase_add_test(tc, test_dele_quit);
	tcase_add_test(tc, test_dele_err);
	tcase_add_test(tc, test_nul_in_uidl);
	tcase_add_test(tc, test_duplicate_uid);
	tcase_add_test(tc, test_quit_err);
	tcase_add_test(tc, test_trace_redacted);
	tcase_add_test(tc, test_trace_body);
	tcase_add_test(tc, test_top_pipelined);
	tcase_add_test(tc, test_top_lockstep);
	tcase_add_test(tc, test_top_body_lines);
	tcase_add_test(tc, test_top_big);
	tcase_add_test(tc, test_top_endless);
	tcase_add_test(tc, test_top_err);
	tcase_add_test(tc, test_top_cut);
	tcase_add_test(tc, test_header_first_capa);
	tcase_add_test(tc, test_header_first_no_capa);
	tcase_add_test(tc, test_trace_header);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
