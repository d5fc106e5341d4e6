/* test_smtp.c - SMTP/LMTP client and relay target transcript tests against
 * a scripted server.
 *
 * Each test runs a fake server (fake.h) in a forked child on 127.0.0.1 (or
 * another loopback address, or a unix socket for lmtp:/PATH), with
 * fake.h's steps: S:, C:, K: and A: (close the connection and accept the
 * next one). The test compares the lines the client sent with the C:
 * lines, exactly and in order.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fake.h"
#include "log.h"
#include "smtp.h"
#include "target.h"
#include "unit.h"
#include "xmalloc.h"

/* src/target/relay.c; target.h will declare it when target.c is wired. */


/* --- helpers --- */

static void
params_init(struct smtp_params *p, const struct fake *fk)
{
	memset(p, 0, sizeof(*p));
	p->conn.host = "127.0.0.1";
	p->conn.port = fk->port;
	p->conn.timeout = 5;
	p->conn.tls_verify = 1;
	p->proto = SMTP_PROTO_SMTP;
	p->tls = SMTP_TLS_NONE;
}

/* The relay target for "SCHEME://127.0.0.1:PORT?to=me@localhost". */
static void *
relay_open_ok(const struct fake *fk, const char *scheme)
{
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	char spec[200];
	void *t = NULL;

	snprintf(spec, sizeof(spec), "%s://127.0.0.1:%s?to=me@localhost"
	    "&timeout=5", scheme, fk->port);
	ck_assert_int_eq(smtp_target.open(&t, spec, &f), FAIL_NONE);
	ck_assert_ptr_nonnull(t);
	return t;
}

/* The relay target for a spec given in full. */
static void *
relay_open_spec(const char *spec)
{
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	void *t = NULL;

	ck_assert_msg(smtp_target.open(&t, spec, &f) == FAIL_NONE, "%s: %s",
	    spec, f.msg);
	ck_assert_ptr_nonnull(t);
	return t;
}

static enum fail_kind
relay_begin(void *t, unsigned long long size, struct fail *f)
{
	struct msg_meta m = { .uid = "1", .size = size, .flags = "" };
	char ref[TARGET_REF_MAX];

	ck_assert_int_eq(smtp_target.plan(t, ref, sizeof(ref), f), FAIL_NONE);
	return smtp_target.begin(t, ref, &m, f);
}

static enum fail_kind
write_str(void *t, const char *s, struct fail *f)
{
	return smtp_target.write(t, s, strlen(s), f);
}

/* One message through begin/write/end; returns end()'s result (or the
 * first failure). */
static enum fail_kind
deliver(void *t, const char *msg, unsigned long long size, struct fail *f)
{
	enum fail_kind k;

	if ((k = relay_begin(t, size, f)) != FAIL_NONE)
		return k;
	if ((k = write_str(t, msg, f)) != FAIL_NONE) {
		smtp_target.abort(t);
		return k;
	}
	return smtp_target.end(t, f);
}

/* Capture stderr (the trace) around fn. */
struct capture {
	int tfd, saved;
};

static void
capture_start(struct capture *c)
{
	char path[] = "/tmp/mailpull-smtp-trace-XXXXXX";

	c->tfd = mkstemp(path);
	ck_assert_int_ge(c->tfd, 0);
	unlink(path);
	fflush(stderr);
	c->saved = dup(2);
	ck_assert_int_ge(c->saved, 0);
	ck_assert_int_ge(dup2(c->tfd, 2), 0);
	log_init(0, LOG_LVL_TRACE);
}

static void
capture_end(struct capture *c, char *out, size_t size)
{
	ssize_t n;

	log_init(0, LOG_LVL_INFO);
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	n = pread(c->tfd, out, size - 1, 0);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	close(c->tfd);
}

#define GREET   "S:220 fake.example ESMTP"
#define QUIT    "C:QUIT", "S:221 bye"
#define MSG1    "Return-Path: <bob@example.org>\r\nSubject: hi\r\n\r\nHello\r\n"
#define MSG1_LINES "C:Return-Path: <bob@example.org>", "C:Subject: hi", \
	"C:", "C:Hello", "C:."

/* --- the pure reply parser --- */

START_TEST(test_reply_line)
{
	const char *text;
	int code, more;

	ck_assert_int_eq(smtp_reply_line("250-PIPELINING", &code, &more, &text), 0);
	ck_assert_int_eq(code, 250);
	ck_assert_int_eq(more, 1);
	ck_assert_str_eq(text, "PIPELINING");
	ck_assert_int_eq(smtp_reply_line("354 go on", &code, &more, &text), 0);
	ck_assert_int_eq(more, 0);
	ck_assert_int_eq(smtp_reply_line("221", &code, &more, &text), 0);
	ck_assert_str_eq(text, "");
	ck_assert_int_eq(smtp_reply_line("199 x", &code, &more, &text), -1);
	ck_assert_int_eq(smtp_reply_line("600 x", &code, &more, &text), -1);
	ck_assert_int_eq(smtp_reply_line("25 x", &code, &more, &text), -1);
	ck_assert_int_eq(smtp_reply_line("250x", &code, &more, &text), -1);
	ck_assert_int_eq(smtp_reply_line("+OK", &code, &more, &text), -1);
	ck_assert_int_eq(smtp_reply_line("", &code, &more, &text), -1);
}
END_TEST

/* --- sessions --- */

/* EHLO with PIPELINING and SIZE: MAIL, RCPT and DATA go out at once (the
 * server answers only after all three arrived: a lock-step client would
 * time out), with SIZE= and BODY=8BITMIME. */
START_TEST(test_ehlo_pipelining_size)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example hello",
		"S:250-PIPELINING", "S:250-SIZE 1000000", "S:250 8BITMIME",
		"C:MAIL FROM:<bob@example.org> SIZE=60 BODY=8BITMIME",
		"C:RCPT TO:<me@localhost>", "C:DATA",
		"S:250 2.1.0 ok", "S:250 2.1.5 ok", "S:354 go ahead",
		MSG1_LINES, "S:250 2.0.0 queued as 123", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	ck_assert_int_eq(deliver(t, MSG1, 60, &f), FAIL_NONE);
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* EHLO refused (502): HELO, then lock-step commands without extensions;
 * no Return-Path: the sender is <>. */
START_TEST(test_helo_fallback)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:502 5.5.1 what?",
		"C:HELO localhost", "S:250 fake.example",
		"C:MAIL FROM:<>", "S:250 ok", "C:RCPT TO:<me@localhost>",
		"S:250 ok", "C:DATA", "S:354 go ahead",
		"C:Subject: x", "C:", "C:body", "C:.", "S:250 ok", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	ck_assert_int_eq(deliver(t, "Subject: x\r\n\r\nbody\r\n", 20, &f),
	    FAIL_NONE);
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* STARTTLS required but not offered: refused; nothing but EHLO was sent. */
START_TEST(test_starttls_required)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250-AUTH PLAIN", "S:250 PIPELINING", NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct smtp_params p;
	struct smtp *s = NULL;
	struct fake fk;

	fake_start(&fk, NULL, script);
	params_init(&p, &fk);
	p.tls = SMTP_TLS_STARTTLS;
	p.user = "bob";
	p.secret = "secret";
	ck_assert_int_eq(smtp_open(&s, &p, &f), FAIL_CONN);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(f.msg, "does not offer STARTTLS"));
	fake_finish(&fk, script);
}
END_TEST

/* Opportunistic STARTTLS refused by the server: going on in plain. */
START_TEST(test_starttls_opportunistic_refused)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 STARTTLS", "C:STARTTLS", "S:454 4.7.0 not now",
		QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct smtp_params p;
	struct smtp *s = NULL;
	struct fake fk;

	fake_start(&fk, NULL, script);
	params_init(&p, &fk);
	p.tls = SMTP_TLS_OPPORTUNISTIC;
	ck_assert_int_eq(smtp_open(&s, &p, &f), FAIL_NONE);
	smtp_close(s);
	fake_finish(&fk, script);
}
END_TEST

static void
auth_run(const char *const *script, enum sasl_mech mech, enum fail_kind want,
    char *trace, size_t tsize)
{
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct smtp_params p;
	struct smtp *s = NULL;
	struct capture cap;
	struct fake fk;
	enum fail_kind k;

	fake_start(&fk, NULL, script);
	params_init(&p, &fk);
	p.user = "bob";
	p.secret = "secret";
	p.mech = mech;
	p.allow_plaintext = 1;
	capture_start(&cap);
	k = smtp_open(&s, &p, &f);
	smtp_close(s);
	capture_end(&cap, trace, tsize);
	ck_assert_msg(k == want, "open: got %d (%s)", k, f.msg);
	fake_finish(&fk, script);
}

START_TEST(test_auth_plain)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 AUTH LOGIN PLAIN",
		"C:AUTH PLAIN AGJvYgBzZWNyZXQ=", "S:235 2.7.0 ok", QUIT, NULL,
	};
	static char trace[16384];

	auth_run(script, SASL_NONE, FAIL_NONE, trace, sizeof(trace));
	ck_assert_ptr_nonnull(strstr(trace, "> AUTH PLAIN ********"));
	ck_assert_ptr_null(strstr(trace, "AGJvYgBzZWNyZXQ="));
	ck_assert_ptr_null(strstr(trace, "secret"));
}
END_TEST

START_TEST(test_auth_login)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 AUTH=LOGIN",
		"C:AUTH LOGIN", "S:334 VXNlcm5hbWU6", "C:Ym9i",
		"S:334 UGFzc3dvcmQ6", "C:c2VjcmV0", "S:235 2.7.0 ok",
		QUIT, NULL,
	};
	static char trace[16384];

	auth_run(script, SASL_LOGIN, FAIL_NONE, trace, sizeof(trace));
	ck_assert_ptr_nonnull(strstr(trace, "> AUTH LOGIN"));
	ck_assert_ptr_null(strstr(trace, "c2VjcmV0"));
	ck_assert_ptr_null(strstr(trace, "secret"));
}
END_TEST

START_TEST(test_auth_xoauth2)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 AUTH PLAIN XOAUTH2",
		"C:AUTH XOAUTH2 dXNlcj1ib2IBYXV0aD1CZWFyZXIgc2VjcmV0AQE=",
		"S:235 2.7.0 ok", QUIT, NULL,
	};
	static char trace[16384];

	auth_run(script, SASL_XOAUTH2, FAIL_NONE, trace, sizeof(trace));
	ck_assert_ptr_nonnull(strstr(trace, "> AUTH XOAUTH2 ********"));
	ck_assert_ptr_null(strstr(trace, "dXNlcj1ib2IBYXV0aD1CZWFyZXIgc2VjcmV0AQE="));
}
END_TEST

/* An 8-bit envelope: SMTPUTF8 when offered; SIZE= with the size. */
START_TEST(test_smtputf8)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250-SMTPUTF8", "S:250 SIZE",
		"C:MAIL FROM:<j\xc3\xb6rg@example.org> SIZE=42 SMTPUTF8",
		"S:250 ok", "C:RCPT TO:<me@localhost>", "S:250 ok",
		"C:DATA", "S:354 go", "C:x", "C:.", "S:250 ok", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct smtp_params p;
	struct smtp *s = NULL;
	struct fake fk;

	fake_start(&fk, NULL, script);
	params_init(&p, &fk);
	ck_assert_int_eq(smtp_open(&s, &p, &f), FAIL_NONE);
	ck_assert_uint_eq(smtp_caps(s) & (SMTP_CAP_SMTPUTF8 | SMTP_CAP_SIZE |
	    SMTP_CAP_PIPELINING), SMTP_CAP_SMTPUTF8 | SMTP_CAP_SIZE);
	ck_assert_int_eq(smtp_mail(s, "j\xc3\xb6rg@example.org",
	    "me@localhost", 42, &f), FAIL_NONE);
	ck_assert_int_eq(smtp_data(s, "x", 1, &f), FAIL_NONE);
	ck_assert_int_eq(smtp_data_end(s, &f), FAIL_NONE);
	smtp_close(s);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_auth_refused)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 AUTH PLAIN",
		"C:AUTH PLAIN AGJvYgBzZWNyZXQ=", "S:535 5.7.8 bad credentials",
		NULL,
	};
	static char trace[16384];

	auth_run(script, SASL_NONE, FAIL_AUTH, trace, sizeof(trace));
}
END_TEST

START_TEST(test_auth_plaintext_refused)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 AUTH PLAIN", NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct smtp_params p;
	struct smtp *s = NULL;
	struct fake fk;

	fake_start(&fk, NULL, script);
	params_init(&p, &fk);
	p.user = "bob";
	p.secret = "secret";
	ck_assert_int_eq(smtp_open(&s, &p, &f), FAIL_AUTH);
	ck_assert_ptr_nonnull(strstr(f.msg, "unencrypted"));
	fake_finish(&fk, script);
}
END_TEST

/* "." lines, split across write() calls anywhere, arrive dot-stuffed; a
 * body without a final line end gets one before the ".". The body is
 * traced as its size only. */
START_TEST(test_dot_stuffing)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 PIPELINING",
		"C:MAIL FROM:<a@b>", "C:RCPT TO:<me@localhost>", "C:DATA",
		"S:250 ok", "S:250 ok", "S:354 go ahead",
		"C:Return-Path: <a@b>", "C:", "C:..hidden-body-text",
		"C:line", "C:..split dot", "C:...two", "C:..", "C:x.y",
		"C:end", "C:.", "S:250 ok", QUIT, NULL,
	};
	static const char *const parts[] = {
		"Return-", "Path: <a@b>\r", "\n\r\n", ".hidden-body-text\r\n",
		"line\r\n", ".", "split dot\r\n.", ".two\r", "\n", ".", "\r\n",
		"x.y\r\n", "end", NULL,
	};
	static char trace[16384];
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct capture cap;
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	capture_start(&cap);
	ck_assert_int_eq(relay_begin(t, 0, &f), FAIL_NONE);
	for (size_t i = 0; parts[i] != NULL; i++)
		ck_assert_int_eq(write_str(t, parts[i], &f), FAIL_NONE);
	ck_assert_int_eq(smtp_target.end(t, &f), FAIL_NONE);
	capture_end(&cap, trace, sizeof(trace));
	smtp_target.close(t);
	fake_finish(&fk, script);
	ck_assert_ptr_nonnull(strstr(trace, "> [message body, 77 bytes]"));
	ck_assert_ptr_null(strstr(trace, "hidden-body-text"));
}
END_TEST

/* 4xx at RCPT: FAIL_TEMP with the server's text; the session stays usable
 * (QUIT at the end). */
START_TEST(test_rcpt_4xx)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 PIPELINING",
		"C:MAIL FROM:<bob@example.org>", "C:RCPT TO:<me@localhost>",
		"C:DATA", "S:250 ok", "S:450 4.2.1 mailbox busy",
		"S:554 5.5.1 no valid recipients", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_TEMP);
	ck_assert_ptr_nonnull(strstr(f.msg, "450 4.2.1 mailbox busy"));
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* 5xx after the body: FAIL_REJECTED with the text; then the next message
 * goes after RSET on the same connection. */
START_TEST(test_data_5xx_then_rset)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 PIPELINING",
		"C:MAIL FROM:<bob@example.org>", "C:RCPT TO:<me@localhost>",
		"C:DATA", "S:250 ok", "S:250 ok", "S:354 go ahead",
		MSG1_LINES, "S:554-5.7.1 message refused:", "S:554 5.7.1 spam",
		"C:RSET", "C:MAIL FROM:<bob@example.org>",
		"C:RCPT TO:<me@localhost>", "C:DATA", "S:250 reset",
		"S:250 ok", "S:250 ok", "S:354 go ahead",
		MSG1_LINES, "S:250 ok", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_REJECTED);
	ck_assert_ptr_nonnull(strstr(f.msg,
	    "554 5.7.1 message refused: 5.7.1 spam"));
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_NONE);
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* Two messages on one connection: RSET goes before the second. */
START_TEST(test_rset_between)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250 fake.example",
		"C:MAIL FROM:<bob@example.org>", "S:250 ok",
		"C:RCPT TO:<me@localhost>", "S:250 ok", "C:DATA", "S:354 go",
		MSG1_LINES, "S:250 ok",
		"C:RSET", "S:250 ok",
		"C:MAIL FROM:<bob@example.org>", "S:250 ok",
		"C:RCPT TO:<me@localhost>", "S:250 ok", "C:DATA", "S:354 go",
		MSG1_LINES, "S:250 ok", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_NONE);
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_NONE);
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* LMTP: LHLO, and the reply per recipient after the body. */
START_TEST(test_lmtp)
{
	static const char *const script[] = {
		GREET, "C:LHLO localhost", "S:250-fake.example",
		"S:250-PIPELINING", "S:250 ENHANCEDSTATUSCODES",
		"C:MAIL FROM:<bob@example.org>", "C:RCPT TO:<me@localhost>",
		"C:DATA", "S:250 ok", "S:250 ok", "S:354 go ahead",
		MSG1_LINES, "S:250 2.0.0 <me@localhost> Saved",
		"C:RSET", "C:MAIL FROM:<bob@example.org>",
		"C:RCPT TO:<me@localhost>", "C:DATA", "S:250 ok", "S:250 ok",
		"S:250 ok", "S:354 go ahead", MSG1_LINES,
		"S:452 4.2.2 <me@localhost> Mailbox full", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "lmtp");
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_NONE);
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_TEMP);
	ck_assert_ptr_nonnull(strstr(f.msg, "452 4.2.2 <me@localhost> Mailbox full"));
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* The connection is cut in the middle of the body: a failure, never a
 * success; the message is not counted as delivered. */
START_TEST(test_cut_mid_data)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250 fake.example",
		"C:MAIL FROM:<bob@example.org>", "S:250 ok",
		"C:RCPT TO:<me@localhost>", "S:250 ok", "C:DATA", "S:354 go",
		"C:Return-Path: <bob@example.org>", "K:", NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	enum fail_kind k;
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	ck_assert_int_eq(relay_begin(t, 0, &f), FAIL_NONE);
	k = write_str(t, "Return-Path: <bob@example.org>\r\n\r\n", &f);
	for (int i = 0; i < 2000 && k == FAIL_NONE; i++)
		k = write_str(t, "more body text, more body text, more\r\n", &f);
	if (k == FAIL_NONE)
		k = smtp_target.end(t, &f);
	else
		smtp_target.abort(t);
	ck_assert_msg(k == FAIL_CONN || k == FAIL_TEMP, "got %d (%s)", k, f.msg);
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* The server dropped the idle connection between messages: the relay
 * connects again (once) and delivers. */
START_TEST(test_reconnect)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 PIPELINING",
		"C:MAIL FROM:<bob@example.org>", "C:RCPT TO:<me@localhost>",
		"C:DATA", "S:250 ok", "S:250 ok", "S:354 go ahead",
		MSG1_LINES, "S:250 ok",
		"A:",
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250 PIPELINING",
		"C:MAIL FROM:<bob@example.org>", "C:RCPT TO:<me@localhost>",
		"C:DATA", "S:250 ok", "S:250 ok", "S:354 go ahead",
		MSG1_LINES, "S:250 ok", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct fake fk;
	void *t;

	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_NONE);
	usleep(100000);         /* let the server close the first one */
	ck_assert_msg(deliver(t, MSG1, 0, &f) == FAIL_NONE, "%s", f.msg);
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* Malformed replies are protocol errors. */
START_TEST(test_malformed_reply)
{
	static const char *const script[] = {
		"S:220-fake.example", "S:250 changed code", NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct smtp_params p;
	struct smtp *s = NULL;
	struct fake fk;

	fake_start(&fk, NULL, script);
	params_init(&p, &fk);
	ck_assert_int_eq(smtp_open(&s, &p, &f), FAIL_PROTO);
	fake_finish(&fk, script);
}
END_TEST

/* lmtp:/PATH: LMTP over a unix socket, LHLO, no STARTTLS attempted. */
START_TEST(test_lmtp_unix)
{
	static const char *const script[] = {
		GREET, "C:LHLO localhost", "S:250-fake.example",
		"S:250-STARTTLS", "S:250 PIPELINING",
		"C:MAIL FROM:<bob@example.org>", "C:RCPT TO:<me@localhost>",
		"C:DATA", "S:250 ok", "S:250 ok", "S:354 go ahead",
		MSG1_LINES, "S:250 2.0.0 <me@localhost> Saved", QUIT, NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	char spec[200];
	struct fake fk;
	void *t;

	fake_start_unix(&fk, NULL, script);
	snprintf(spec, sizeof(spec), "lmtp:%s?to=me@localhost&timeout=5",
	    fk.path);
	t = relay_open_spec(spec);
	ck_assert_msg(deliver(t, MSG1, 60, &f) == FAIL_NONE, "%s", f.msg);
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* A socket path that does not exist: a connection failure naming it. */
START_TEST(test_lmtp_unix_missing)
{
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	void *t = relay_open_spec("lmtp:/nonexistent/mailpull/lmtp?to=a@b"
	    "&timeout=2");

	ck_assert_int_eq(relay_begin(t, 0, &f), FAIL_CONN);
	/* the relay names itself, then what went wrong */
	ck_assert_str_eq(f.msg, "lmtp:/nonexistent/mailpull/lmtp: connect to "
	    "unix socket /nonexistent/mailpull/lmtp: No such file or directory");
	smtp_target.close(t);
}
END_TEST

/* login() on a loopback relay: AUTH PLAIN goes out although the connection
 * is plain (127.0.0.1), before the first MAIL; login() copied the secret
 * (the caller's buffer is wiped at once); the trace shows neither the
 * secret nor its base64. */
START_TEST(test_relay_login_loopback)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250-AUTH LOGIN PLAIN", "S:250 PIPELINING",
		"C:AUTH PLAIN AGJvYgBzZWNyZXQ=", "S:235 2.7.0 ok",
		"C:MAIL FROM:<bob@example.org>", "C:RCPT TO:<me@localhost>",
		"C:DATA", "S:250 ok", "S:250 ok", "S:354 go ahead",
		MSG1_LINES, "S:250 ok", QUIT, NULL,
	};
	static char trace[16384];
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	char user[] = "bob", secret[] = "secret";
	struct capture cap;
	struct fake fk;
	void *t;

	ck_assert_ptr_nonnull(smtp_target.login);
	fake_start(&fk, NULL, script);
	t = relay_open_ok(&fk, "smtp");
	capture_start(&cap);
	ck_assert_int_eq(smtp_target.login(t, user, secret, &f), FAIL_NONE);
	explicit_bzero(secret, sizeof(secret));
	explicit_bzero(user, sizeof(user));
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_NONE);
	smtp_target.close(t);
	capture_end(&cap, trace, sizeof(trace));
	fake_finish(&fk, script);
	ck_assert_ptr_nonnull(strstr(trace, "> AUTH PLAIN ********"));
	ck_assert_ptr_null(strstr(trace, "AGJvYgBzZWNyZXQ="));
	ck_assert_ptr_null(strstr(trace, "secret"));
}
END_TEST

/* login() on lmtp:/PATH with auth=login: AUTH LOGIN over the unix socket,
 * both answers redacted in the trace. */
START_TEST(test_relay_login_unix)
{
	static const char *const script[] = {
		GREET, "C:LHLO localhost", "S:250-fake.example",
		"S:250 AUTH PLAIN LOGIN",
		"C:AUTH LOGIN", "S:334 VXNlcm5hbWU6", "C:Ym9i",
		"S:334 UGFzc3dvcmQ6", "C:c2VjcmV0", "S:235 2.7.0 ok",
		"C:MAIL FROM:<bob@example.org>", "S:250 ok",
		"C:RCPT TO:<me@localhost>", "S:250 ok", "C:DATA", "S:354 go",
		MSG1_LINES, "S:250 ok", QUIT, NULL,
	};
	static char trace[16384];
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	struct capture cap;
	char spec[200];
	struct fake fk;
	void *t;

	fake_start_unix(&fk, NULL, script);
	snprintf(spec, sizeof(spec), "lmtp:%s?to=me@localhost&timeout=5"
	    "&auth=login", fk.path);
	t = relay_open_spec(spec);
	capture_start(&cap);
	ck_assert_int_eq(smtp_target.login(t, "bob", "secret", &f), FAIL_NONE);
	ck_assert_msg(deliver(t, MSG1, 0, &f) == FAIL_NONE, "%s", f.msg);
	smtp_target.close(t);
	capture_end(&cap, trace, sizeof(trace));
	fake_finish(&fk, script);
	ck_assert_ptr_nonnull(strstr(trace, "> AUTH LOGIN"));
	ck_assert_ptr_null(strstr(trace, "c2VjcmV0"));
	ck_assert_ptr_null(strstr(trace, "Ym9i"));
}
END_TEST

/* Credentials for a host that is not 127.0.0.1, ::1 or localhost need
 * TLS: with tls=none login() refuses at once; with the default (auto) a
 * server without STARTTLS is refused before any AUTH (127.0.0.2 stands in
 * for a remote host: nothing but EHLO reaches it). */
START_TEST(test_relay_login_remote_needs_tls)
{
	static const char *const script[] = {
		GREET, "C:EHLO localhost", "S:250-fake.example",
		"S:250-AUTH PLAIN LOGIN", "S:250 PIPELINING", NULL,
	};
	static const char *const plain[] = {
		"smtp://mail.example.org?to=a@b&tls=none",
		"lmtp://127.0.0.2:24?to=a@b",
		"smtp://[2001:db8::1]?to=a@b&tls=none", NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	char spec[200];
	struct fake fk;
	void *t;

	for (size_t i = 0; plain[i] != NULL; i++) {
		t = relay_open_spec(plain[i]);
		ck_assert_int_eq(smtp_target.login(t, "bob", "secret", &f),
		    FAIL_CONFIG);
		ck_assert_msg(strstr(f.msg, "without TLS") != NULL, "%s", f.msg);
		smtp_target.close(t);
	}
	fake_start_at(&fk, NULL, "127.0.0.2", script);
	snprintf(spec, sizeof(spec), "smtp://127.0.0.2:%s?to=me@localhost"
	    "&timeout=5", fk.port);
	t = relay_open_spec(spec);
	ck_assert_int_eq(smtp_target.login(t, "bob", "secret", &f), FAIL_NONE);
	ck_assert_int_eq(deliver(t, MSG1, 0, &f), FAIL_CONN);
	ck_assert_msg(strstr(f.msg, "does not offer STARTTLS") != NULL, "%s",
	    f.msg);
	smtp_target.close(t);
	fake_finish(&fk, script);
}
END_TEST

/* The spec syntax open() accepts. */
START_TEST(test_spec)
{
	static const char *const bad[] = {
		"smtp://localhost", "smtp://localhost:99999?to=a@b",
		"smtp://?to=a@b", "smtp://h?to=a@b&bogus=1",
		"smtp://h?to=a%2", "lmtp:var/run/lmtp?to=a@b",
		"lmtp:?to=a@b", "lmtp:/var/run/lmtp", "lmtp:/x?to=a@b&tls=auto",
		"lmtp:/x?to=a@b&tls=starttls", "lmtp:/x\ty?to=a@b",
		"maildir:/tmp/x", "smtp://h?to=a@b&tls=maybe",
		"smtp://h?to=a%20b", "smtp://h?to=a@b&auth=cram-md5",
		"smtp://h?to=a@b&auth=scram-sha-256", NULL,
	};
	static const char *const good[] = {
		"smtp://localhost?to=me@localhost",
		"smtp://localhost:2525/?to=me%40localhost&tls=none",
		"smtps://mail.example.com?to=a@b&tls_verify=no",
		"lmtp://127.0.0.1:24?to=a@b&helo=me.example",
		"smtp://[::1]:25?to=a@b&timeout=10",
		"lmtp:/var/run/dovecot/lmtp?to=a@b",
		"lmtp:/run/lmtp?to=a@b&tls=none&helo=me&auth=plain",
		"smtp://h?to=a@b&auth=xoauth2", "smtps://h?to=a@b&auth=LOGIN",
		NULL,
	};
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	void *t;

	for (size_t i = 0; bad[i] != NULL; i++) {
		ck_assert_msg(smtp_target.open(&t, bad[i], &f) == FAIL_CONFIG,
		    "accepted %s", bad[i]);
		ck_assert_ptr_null(t);
	}
	for (size_t i = 0; good[i] != NULL; i++) {
		ck_assert_msg(smtp_target.open(&t, good[i], &f) == FAIL_NONE,
		    "refused %s: %s", good[i], f.msg);
		smtp_target.close(t);
	}
	ck_assert_int_eq(smtp_target.open(&t, "lmtp:run/lmtp?to=a@b", &f),
	    FAIL_CONFIG);
	ck_assert_ptr_nonnull(strstr(f.msg, "absolute socket path"));
	ck_assert_int_eq(smtp_target.open(&t, "lmtp:/run/lmtp?to=a@b&tls=auto",
	    &f), FAIL_CONFIG);
	ck_assert_ptr_nonnull(strstr(f.msg, "no TLS over a unix socket"));
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
	Suite *s = suite_create("smtp");
	TCase *tc = tcase_create("transcript");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_reply_line);
	tcase_add_test(tc, test_ehlo_pipelining_size);
	tcase_add_test(tc, test_helo_fallback);
	tcase_add_test(tc, test_starttls_required);
	tcase_add_test(tc, test_starttls_opportunistic_refused);
	tcase_add_test(tc, test_auth_plain);
	tcase_add_test(tc, test_auth_login);
	tcase_add_test(tc, test_auth_refused);
	tcase_add_test(tc, test_auth_xoauth2);
	tcase_add_test(tc, test_smtputf8);
	tcase_add_test(tc, test_auth_plaintext_refused);
	tcase_add_test(tc, test_dot_stuffing);
	tcase_add_test(tc, test_rcpt_4xx);
	tcase_add_test(tc, test_data_5xx_then_rset);
	tcase_add_test(tc, test_rset_between);
	tcase_add_test(tc, test_lmtp);
	tcase_add_test(tc, test_cut_mid_data);
	tcase_add_test(tc, test_reconnect);
	tcase_add_test(tc, test_malformed_reply);
	tcase_add_test(tc, test_lmtp_unix);
	tcase_add_test(tc, test_lmtp_unix_missing);
	tcase_add_test(tc, test_relay_login_loopback);
	tcase_add_test(tc, test_relay_login_unix);
	tcase_add_test(tc, test_relay_login_remote_needs_tls);
	tcase_add_test(tc, test_spec);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
