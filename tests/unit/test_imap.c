/* test_imap.c - IMAP source transcript tests against a scripted server.
 *
 * Each test runs a fake IMAP server (fake.h) in a forked child on
 * 127.0.0.1. The client makes up its own tags, so the script matches them
 * by wildcard; these steps replace or add to fake.h's (K: is fake.h's):
 *   "C:text"   read one client line "<tag> text"; the tag becomes the last
 *              tag; "text" is recorded
 *   "L:text"   read one untagged client line (a SASL response, the bytes of
 *              a literal); recorded as it is
 *   "S:text"   send text + CRLF; "$" is replaced by the last tag, "%" by
 *              the one before it
 *   "R:bytes"  send bytes as they are (with the same replacements)
 *   "P:bytes"  the same, a few bytes per write with pauses (split reads)
 *   "X:scram"  the server side of SCRAM-SHA-256 for bob/secret, SASL-IR
 *              (X:scram-badsig: a wrong server signature); records
 *              placeholder lines
 * The test compares the lines the client sent with the C:/L: steps,
 * exactly and in order.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "fake.h"
#include "log.h"
#include "source.h"
#include "unit.h"
#include "xmalloc.h"

/* --- the fake server's IMAP steps --- */

/* The client's last tag and the one before; child-side state, fresh in
 * each forked server. */
static char child_tag[64], child_prev[64];

/* Read "<tag> rest": remember the tag, return rest (in buf). */
static const char *
child_read_tagged(struct fake_child *c, char *buf, size_t size)
{
	char *sp;

	if (fake_readline(c, buf, size) == -1)
		return NULL;
	if ((sp = strchr(buf, ' ')) == NULL)
		return buf;
	*sp = '\0';
	snprintf(child_prev, sizeof(child_prev), "%s", child_tag);
	snprintf(child_tag, sizeof(child_tag), "%s", buf);
	return sp + 1;
}

/* Send with "$" -> last tag, "%" -> the one before; piece > 0: that many
 * bytes per write, with a pause after each. */
static void
child_send(struct fake_child *c, const char *s, int crlf, size_t piece)
{
	static char out[FAKE_TRANSCRIPT_MAX];
	size_t o = 0;

	for (; *s != '\0' && o + 70 < sizeof(out); s++) {
		const char *t = *s == '$' ? child_tag :
		    *s == '%' ? child_prev : NULL;

		if (t != NULL) {
			memcpy(out + o, t, strlen(t));
			o += strlen(t);
		} else
			out[o++] = *s;
	}
	if (crlf) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	if (piece == 0) {
		fake_write(c, out, o);
		return;
	}
	for (size_t i = 0; i < o; i += piece) {
		fake_write(c, out + i, o - i < piece ? o - i : piece);
		usleep(3000);
	}
}

static void
child_send_b64(struct fake_child *c, const char *raw)
{
	char *b64 = base64_encode(raw, strlen(raw));
	char line[1024];

	snprintf(line, sizeof(line), "+ %s", b64);
	child_send(c, line, 1, 0);
	free(b64);
}

static char *
b64_dec(const char *in)
{
	unsigned char *raw;
	size_t rawlen;

	if (base64_decode(in, strlen(in), &raw, &rawlen) == -1)
		return NULL;
	return (char *)raw;
}

/* Server side of SCRAM-SHA-256 (SASL-IR) for bob/secret. */
static void
child_scram(struct fake_child *c, int badsig)
{
	static const unsigned char salt[] = "0123456789abcdef";
	unsigned char salted[SHA256_LEN], ckey[SHA256_LEN], stored[SHA256_LEN];
	unsigned char csig[SHA256_LEN], proof[SHA256_LEN], skey[SHA256_LEN];
	unsigned char ssig[SHA256_LEN];
	char *first = NULL, *final = NULL, *salt64 = NULL, *p64 = NULL;
	char line[2048], sfirst[512], auth[2048], msg[256], *cnonce, *pp;
	const char *rest;
	size_t barelen;

	rest = child_read_tagged(c, line, sizeof(line));
	if (rest == NULL || strncmp(rest, "AUTHENTICATE SCRAM-SHA-256 ", 27) != 0 ||
	    (first = b64_dec(rest + 27)) == NULL ||
	    strncmp(first, "n,,n=bob,r=", 11) != 0)
		goto bad;
	fake_record(c, "AUTHENTICATE SCRAM-SHA-256 <client-first>");
	cnonce = first + 11;
	salt64 = base64_encode(salt, 16);
	snprintf(sfirst, sizeof(sfirst), "r=%sSERVERNONCE,s=%s,i=4096",
	    cnonce, salt64);
	child_send_b64(c, sfirst);
	if (fake_readline(c, line, sizeof(line)) == -1 ||
	    (final = b64_dec(line)) == NULL || (pp = strstr(final, ",p=")) == NULL)
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
		child_send(c, "$ NO [AUTHENTICATIONFAILED] bad proof", 1, 0);
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
	child_send(c, "$ BAD malformed", 1, 0);
out:
	free(first);
	free(final);
	free(salt64);
	free(p64);
}

static enum fake_step
imap_step(struct fake_child *c, const char *st, char *line, size_t size)
{
	const char *rest;

	if (strncmp(st, "S:", 2) == 0)
		child_send(c, st + 2, 1, 0);
	else if (strncmp(st, "R:", 2) == 0)
		child_send(c, st + 2, 0, 0);
	else if (strncmp(st, "P:", 2) == 0)
		child_send(c, st + 2, 0, 3);
	else if (strncmp(st, "C:", 2) == 0) {
		if ((rest = child_read_tagged(c, line, size)) == NULL)
			return FAKE_STOP;
		fake_record(c, rest);
	} else if (strncmp(st, "L:", 2) == 0) {
		if (fake_readline(c, line, size) == -1)
			return FAKE_STOP;
		fake_record(c, line);
	} else if (strcmp(st, "X:scram") == 0)
		child_scram(c, 0);
	else if (strcmp(st, "X:scram-badsig") == 0)
		child_scram(c, 1);
	else
		return FAKE_NOT_MINE;
	return FAKE_DONE;
}

static const char *
imap_expect(const char *st)
{
	if (strncmp(st, "L:", 2) == 0)
		return st + 2;
	if (strncmp(st, "X:scram", 7) == 0)
		return "AUTHENTICATE SCRAM-SHA-256 <client-first>\n"
		    "<client-final, proof ok>";
	return NULL;
}

static const struct fake_proto imap_fake = { imap_step, imap_expect };

static void
params_init(struct source_params *p)
{
	memset(p, 0, sizeof(*p));
	p->account = "test";
	p->conn.host = "127.0.0.1";
	p->conn.port = "0";
	p->conn.timeout = 5;
	p->conn.tls_verify = 1;
	p->tls = TLS_NONE;
	p->user = "bob";
	p->secret = "secret";
	p->auth = AUTH_AUTO;
	p->allow_plaintext = 1;
}

static void
run_open(const char *const *script, struct source_params *p,
    enum fail_kind want, const char *want_msg)
{
	struct fake fk;
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	void *src = NULL;
	enum fail_kind k;

	fake_start(&fk, &imap_fake, script);
	p->conn.port = fk.port;
	k = imap_source.open(&src, p, &f);
	ck_assert_msg(k == want, "open: got %d (%s), want %d", k, f.msg, want);
	if (want_msg != NULL)
		ck_assert_msg(strstr(f.msg, want_msg) != NULL, "message: %s", f.msg);
	if (k == FAIL_NONE) {
		ck_assert_ptr_nonnull(src);
		ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	} else
		ck_assert_ptr_null(src);
	fake_finish(&fk, script);
}

#define GREET_PLAIN "S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready"
#define LOGOUT      "C:LOGOUT", "S:* BYE bye", "S:$ OK done"
#define AUTH_OK     "C:AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=", \
	"S:$ OK [CAPABILITY IMAP4rev1 UIDPLUS] logged in"

/* --- login --- */

/* Capabilities from the greeting: no CAPABILITY command before login; the
 * OK to login carries new ones: none after it either. */
START_TEST(test_greeting_caps)
{
	static const char *const script[] = {
		GREET_PLAIN, AUTH_OK, LOGOUT, NULL,
	};
	struct source_params p;

	params_init(&p);
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

/* No capabilities in the greeting nor in the login OK: asked both times;
 * LOGIN command when no mechanism is offered; tolerated EOF after BYE. */
START_TEST(test_capability_cmd)
{
	static const char *const script[] = {
		"S:* OK ready", "C:CAPABILITY", "S:* CAPABILITY IMAP4rev1",
		"S:$ OK done", "C:LOGIN \"bob\" \"secret\"", "S:$ OK welcome",
		"C:CAPABILITY", "S:* CAPABILITY IMAP4rev1 UIDPLUS", "S:$ OK done",
		"C:LOGOUT", "S:* BYE bye", "K:", NULL,
	};
	struct source_params p;

	params_init(&p);
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

START_TEST(test_preauth_bye)
{
	static const char *const s_pre[] = {
		"S:* PREAUTH [CAPABILITY IMAP4rev1] hello bob", LOGOUT, NULL,
	};
	static const char *const s_bye[] = {
		"S:* BYE [UNAVAILABLE] too busy", NULL,
	};
	struct source_params p;

	params_init(&p);
	run_open(s_pre, &p, FAIL_NONE, NULL);
	run_open(s_bye, &p, FAIL_CONN, "too busy");
}
END_TEST

START_TEST(test_starttls_not_offered)
{
	static const char *const script[] = { GREET_PLAIN, NULL };
	struct source_params p;

	params_init(&p);
	p.tls = TLS_STARTTLS;
	run_open(script, &p, FAIL_CONN, "server does not offer STARTTLS; "
	    "refusing to log in without TLS");
}
END_TEST

/* Nothing at all is sent: the transcript is empty. */
START_TEST(test_refuse_plaintext)
{
	static const char *const script[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=LOGIN] hi",
		NULL,
	};
	struct source_params p;

	params_init(&p);
	p.allow_plaintext = 0;
	run_open(script, &p, FAIL_AUTH, "refusing to send a password over "
	    "an unencrypted connection (set tls, or allow_plaintext = yes)");
	p.auth = AUTH_USER;
	run_open(script, &p, FAIL_AUTH, "refusing to send a password");
	p.auth = AUTH_PLAIN;
	run_open(script, &p, FAIL_AUTH, "refusing to send a password");
	p.auth = AUTH_LOGIN;
	run_open(script, &p, FAIL_AUTH, "refusing to send a password");
}
END_TEST

START_TEST(test_not_offered)
{
	static const char *const s_dis[] = {
		"S:* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi", NULL,
	};
	struct source_params p;

	params_init(&p);
	run_open(s_dis, &p, FAIL_AUTH, "no login mechanism");
	p.auth = AUTH_USER;
	run_open(s_dis, &p, FAIL_AUTH, "LOGINDISABLED");
	p.auth = AUTH_SCRAM_SHA_256;
	run_open(s_dis, &p, FAIL_AUTH, "server does not offer AUTH=SCRAM-SHA-256");
	p.auth = AUTH_APOP;
	p.conn.port = "1";
	{
		struct fail f;
		void *src = NULL;

		ck_assert_int_eq(imap_source.open(&src, &p, &f), FAIL_CONFIG);
		ck_assert_str_eq(f.msg, "apop is POP3 only");
		ck_assert_ptr_null(src);
	}
}
END_TEST

START_TEST(test_login_quoted)
{
	static const char *const script[] = {
		"S:* OK [CAPABILITY IMAP4rev1] hi",
		"C:LOGIN \"b o\\\"b\" \"p\\\"w\\\\d\"", "S:$ OK [CAPABILITY IMAP4rev1] in",
		LOGOUT, NULL,
	};
	struct source_params p;

	params_init(&p);
	p.user = "b o\"b";
	p.secret = "p\"w\\d";
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

/* 8-bit: a synchronising literal; with LITERAL+ no wait. */
START_TEST(test_login_literal)
{
	static const char *const script[] = {
		"S:* OK [CAPABILITY IMAP4rev1] hi",
		"C:LOGIN \"bob\" {9}", "S:+ go on", "L:p\xc3\xa4sswort",
		"S:$ OK [CAPABILITY IMAP4rev1] in", LOGOUT, NULL,
	};
	static const char *const s_plus[] = {
		"S:* OK [CAPABILITY IMAP4rev1 LITERAL+] hi",
		"C:LOGIN \"bob\" {9+}", "L:p\xc3\xa4sswort",
		"S:$ OK [CAPABILITY IMAP4rev1] in", LOGOUT, NULL,
	};
	static const char *const s_no[] = {
		"S:* OK [CAPABILITY IMAP4rev1] hi",
		"C:LOGIN \"bob\" {9}", "S:$ NO no literals for you", NULL,
	};
	struct source_params p;

	params_init(&p);
	p.secret = "p\xc3\xa4sswort";
	run_open(script, &p, FAIL_NONE, NULL);
	run_open(s_plus, &p, FAIL_NONE, NULL);
	run_open(s_no, &p, FAIL_AUTH, "login refused: no literals for you");
}
END_TEST

START_TEST(test_auth_plain)
{
	static const char *const s_noir[] = {
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready",
		"C:AUTHENTICATE PLAIN", "S:+ ", "L:AGJvYgBzZWNyZXQ=",
		"S:$ OK [CAPABILITY IMAP4rev1] in", LOGOUT, NULL,
	};
	struct source_params p;

	params_init(&p);
	run_open((const char *const[]){ GREET_PLAIN, AUTH_OK, LOGOUT, NULL },
	    &p, FAIL_NONE, NULL);
	run_open(s_noir, &p, FAIL_NONE, NULL);
}
END_TEST

START_TEST(test_auth_login_mech)
{
	static const char *const script[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=LOGIN] ready",
		"C:AUTHENTICATE LOGIN", "S:+ VXNlcm5hbWU6", "L:Ym9i",
		"S:+ UGFzc3dvcmQ6", "L:c2VjcmV0", "S:$ OK in",
		"C:CAPABILITY", "S:* CAPABILITY IMAP4rev1", "S:$ OK", LOGOUT, NULL,
	};
	struct source_params p;

	params_init(&p);
	run_open(script, &p, FAIL_NONE, NULL);
}
END_TEST

/* SCRAM comes first, and is allowed without TLS. */
START_TEST(test_auth_scram)
{
	static const char *const script[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=SCRAM-SHA-256] hi",
		"X:scram", "L:", "S:$ OK [CAPABILITY IMAP4rev1] in", LOGOUT, NULL,
	};
	static const char *const s_bad[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=SCRAM-SHA-256] hi",
		"X:scram-badsig", "L:*", "S:$ BAD cancelled", NULL,
	};
	struct source_params p;

	params_init(&p);
	p.allow_plaintext = 0;
	run_open(script, &p, FAIL_NONE, NULL);
	run_open(s_bad, &p, FAIL_AUTH, "SCRAM server signature does not match");
}
END_TEST

START_TEST(test_auth_no)
{
	static const char *const s_no[] = {
		GREET_PLAIN, "C:AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=",
		"S:$ NO [AUTHENTICATIONFAILED] Authentication \x01" "failed.", NULL,
	};
	static const char *const s_unavail[] = {
		GREET_PLAIN, "C:AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=",
		"S:$ NO [UNAVAILABLE] backend down", NULL,
	};
	static const char *const s_alert[] = {
		GREET_PLAIN, "C:AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=",
		"S:* OK [ALERT] password expires soon",
		"S:$ OK [CAPABILITY IMAP4rev1] in", LOGOUT, NULL,
	};
	struct source_params p;

	params_init(&p);
	run_open(s_no, &p, FAIL_AUTH,
	    "login refused: Authentication ?failed.");
	run_open(s_unavail, &p, FAIL_TEMP, "backend down");
	run_open(s_alert, &p, FAIL_NONE, NULL);
}
END_TEST

/* --- folders, select, list --- */

static void *
open_ok(struct fake *fk, const char *const *script)
{
	struct source_params p;
	struct fail f;
	void *src = NULL;

	fake_start(fk, &imap_fake, script);
	params_init(&p);
	p.conn.port = fk->port;
	ck_assert_msg(imap_source.open(&src, &p, &f) == FAIL_NONE, "%s", f.msg);
	return src;
}

#define LOGIN_UIDPLUS GREET_PLAIN, AUTH_OK
#define LOGIN_NOUIDPLUS GREET_PLAIN, "C:AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=", \
	"S:$ OK [CAPABILITY IMAP4rev1] logged in"
#define SELECT_INBOX \
	"C:SELECT \"INBOX\"", "S:* FLAGS (\\Seen \\Deleted)", "S:* 3 EXISTS", \
	"S:* 0 RECENT", "S:* OK [UIDVALIDITY 77] ok", "S:* OK [UIDNEXT 9] ok", \
	"S:$ OK [READ-WRITE] selected"

START_TEST(test_folders_all)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, "C:LIST \"\" \"*\"",
		"S:* LIST (\\HasNoChildren) \".\" Sent",
		"S:* LIST (\\Noselect \\HasChildren) \".\" &ANw-",
		"S:* LIST (\\HasNoChildren) \".\" \"&ANw-.nested\"",
		"S:* LIST (\\NonExistent) \".\" Gone",
		"S:* LIST () NIL Entw&APw-rfe",
		"S:* LIST (\\HasNoChildren) \".\" {5}", "S:Inbox",
		"S:$ OK done", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct folder *v = NULL;
	size_t n = 0;
	const char *const star[] = { "*" };
	void *src = open_ok(&fk, script);

	ck_assert_int_eq(imap_source.folders(src, star, 1, &v, &n, &f), FAIL_NONE);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(v[0].name, "Inbox");
	ck_assert_str_eq(v[1].utf8, "Entw\xc3\xbcrfe");
	ck_assert_str_eq(v[1].name, "Entw&APw-rfe");
	ck_assert_int_eq(v[1].delim, 0);
	ck_assert_str_eq(v[2].name, "Sent");
	ck_assert_int_eq(v[2].delim, '.');
	ck_assert_str_eq(v[3].utf8, "\xc3\x9c.nested");
	folders_free(v, n);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_folders_wanted)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS,
		"C:LIST \"\" \"Entw&APw-rfe\"",
		"S:* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe", "S:$ OK done",
		"C:LIST \"\" \"INBOX\"", "S:* LIST () \"/\" INBOX", "S:$ OK done",
		"C:LIST \"\" \"Nope\"", "S:$ OK done", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct folder *v = NULL;
	size_t n = 0;
	const char *const want[] = { "Entw\xc3\xbcrfe", "INBOX" };
	const char *const nope[] = { "Nope" };
	void *src = open_ok(&fk, script);

	ck_assert_int_eq(imap_source.folders(src, want, 2, &v, &n, &f), FAIL_NONE);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0].name, "INBOX");
	ck_assert_str_eq(v[1].utf8, "Entw\xc3\xbcrfe");
	ck_assert_int_eq(v[1].delim, '/');
	folders_free(v, n);
	ck_assert_int_eq(imap_source.folders(src, nope, 1, &v, &n, &f),
	    FAIL_CONFIG);
	ck_assert_str_eq(f.msg, "no folder named Nope on the server");
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

static const struct folder inbox = { .name = "INBOX", .utf8 = "INBOX" };

START_TEST(test_select)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_INBOX,
		"C:SELECT \"INBOX\"", "S:* 0 EXISTS", "S:$ OK [READ-WRITE] no uidvalidity",
		LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct folder_status st;
	void *src = open_ok(&fk, script);

	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_uint_eq(st.uidvalidity, 77);
	ck_assert_uint_eq(st.uidnext, 9);
	ck_assert_uint_eq(st.exists, 3);
	ck_assert_int_eq(st.uidplus, 1);
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_PROTO);
	ck_assert_msg(strstr(f.msg, "UIDVALIDITY") != NULL, "%s", f.msg);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* "5:*" names the last message even when its UID is below 5: filtered.
 * Untagged noise arrives in between. An empty folder costs no FETCH. */
START_TEST(test_list_since)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_INBOX,
		"C:UID FETCH 5:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
		"S:* 2 FETCH (UID 5 RFC822.SIZE 120 FLAGS (\\Seen \\Answered NonJunk) "
		    "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\")",
		"S:* 4 EXISTS", "S:* 1 RECENT",
		"S:* 3 FETCH (FLAGS (\\Flagged))",
		"S:* 3 FETCH (UID 8 RFC822.SIZE 7 FLAGS (\\Draft \\Deleted \\Flagged) "
		    "INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")",
		"S:* 4 FETCH (UID 9 RFC822.SIZE 3 FLAGS () "
		    "INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")",
		"S:$ OK done",
		"C:SELECT \"INBOX\"", "S:* 0 EXISTS", "S:* OK [UIDVALIDITY 77] ok",
		"S:$ OK selected", LOGOUT, NULL,
	};
	static const char *const s_low[] = {
		LOGIN_UIDPLUS, SELECT_INBOX,
		"C:UID FETCH 5:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
		"S:* 3 FETCH (UID 4 RFC822.SIZE 120 FLAGS () "
		    "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\")",
		"S:$ OK done", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct folder_status st;
	struct msg *v = NULL;
	size_t n = 0;
	void *src = open_ok(&fk, script);

	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.list(src, 5, &v, &n, &f), FAIL_NONE);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0].uid, "77:5");
	ck_assert_uint_eq(v[0].imap_uid, 5);
	ck_assert_uint_eq(v[0].size, 120);
	ck_assert_str_eq(v[0].flags, "RS");
	ck_assert_int_eq(v[0].internaldate, 837596665);
	ck_assert_str_eq(v[1].flags, "DFT");
	ck_assert_uint_eq(v[2].imap_uid, 9);
	ck_assert_str_eq(v[2].flags, "");
	free(v);
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.list(src, 1, &v, &n, &f), FAIL_NONE);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);

	src = open_ok(&fk, s_low);
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.list(src, 5, &v, &n, &f), FAIL_NONE);
	ck_assert_uint_eq(n, 0);
	free(v);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_low);
}
END_TEST

START_TEST(test_list_malformed)
{
	static const char *const s_size[] = {
		LOGIN_UIDPLUS, SELECT_INBOX,
		"C:UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
		"S:* 1 FETCH (UID 5 RFC822.SIZE big FLAGS ())", "S:$ OK done", NULL,
	};
	static const char *const s_missing[] = {
		LOGIN_UIDPLUS, SELECT_INBOX,
		"C:UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
		"S:* 1 FETCH (UID 5 FLAGS ())", "S:$ OK done", NULL,
	};
	static const char *const s_bye[] = {
		LOGIN_UIDPLUS, SELECT_INBOX,
		"C:UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
		"S:* BYE shutting down", "K:", NULL,
	};
	const char *const *scripts[] = { s_size, s_bye, s_missing };
	const char *msgs[] = { "malformed FETCH",
	    "server closed the session: shutting down" };
	enum fail_kind kinds[] = { FAIL_PROTO, FAIL_CONN };

	/* s_missing: an entry without size or date is a message gone before
	 * our FETCH reached it (only a flag update came): dropped, not an
	 * error for the whole listing. */
	for (size_t i = 0; i < 3; i++) {
		struct fake fk;
		struct fail f;
		struct folder_status st;
		struct msg *v = NULL;
		size_t n = 0;
		void *src = open_ok(&fk, scripts[i]);

		ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
		if (i == 2) {
			ck_assert_int_eq(imap_source.list(src, 0, &v, &n, &f),
			    FAIL_NONE);
			ck_assert_uint_eq(n, 0);
		} else {
			ck_assert_int_eq(imap_source.list(src, 0, &v, &n, &f),
			    kinds[i]);
			ck_assert_msg(strstr(f.msg, msgs[i]) != NULL, "%s", f.msg);
		}
		ck_assert_ptr_null(v);
		ck_assert_int_eq(imap_source.close(src, 0, &f), FAIL_NONE);
		fake_finish(&fk, scripts[i]);
	}
}
END_TEST

/* --- fetch --- */

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

static struct msg fmsgs[4] = {
	{ .uid = "77:5", .imap_uid = 5 }, { .uid = "77:6", .imap_uid = 6 },
	{ .uid = "77:7", .imap_uid = 7 }, { .uid = "77:9", .imap_uid = 9 },
};
static const struct msg *const fptrs[4] = {
	&fmsgs[0], &fmsgs[1], &fmsgs[2], &fmsgs[3],
};

#define LIST_4 \
	"C:UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)", \
	"S:* 1 FETCH (UID 5 RFC822.SIZE 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")", \
	"S:* 2 FETCH (UID 6 RFC822.SIZE 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")", \
	"S:* 3 FETCH (UID 7 RFC822.SIZE 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")", \
	"S:* 4 FETCH (UID 9 RFC822.SIZE 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")", \
	"S:$ OK done"
#define SELECT_4 \
	"C:SELECT \"INBOX\"", "S:* 4 EXISTS", "S:* OK [UIDVALIDITY 77] ok", \
	"S:$ OK [READ-WRITE] selected"

/* Open, select, list (for the sequence numbers). */
static void *
open_listed(struct fake *fk, const char *const *script)
{
	struct fail f;
	struct folder_status st;
	struct msg *v = NULL;
	size_t n = 0;
	void *src = open_ok(fk, script);

	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.list(src, 0, &v, &n, &f), FAIL_NONE);
	ck_assert_uint_eq(n, 4);
	free(v);
	return src;
}

/* UID before the body; body before the UID (found by its sequence number,
 * after an EXPUNGE moved it); a FETCH nobody asked for (drained); a message
 * that never comes (warned, no callbacks); bodies in small pieces. */
START_TEST(test_fetch_orders)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5:7,9 (UID BODY.PEEK[])",
		"P:* 1 FETCH (UID 5 BODY[] {12}\r\nHi\r\n\r\nbody\r\n)\r\n",
		"S:* 1 EXPUNGE",
		"P:* 2 FETCH (BODY[] {10}\r\nx\r\ny\x01z\r\n\r\n UID 7 FLAGS (\\Seen))\r\n",
		"R:* 1 FETCH (BODY[] {3}\r\nabc UID 6)\r\n",
		"R:* 3 FETCH (UID 99 BODY[] {4}\r\nnope)\r\n",
		"S:* 3 FETCH (FLAGS (\\Seen))",
		"S:$ OK done", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_listed(&fk, script);

	rec_sink(&r, &sink);
	ck_assert_msg(imap_source.fetch(src, fptrs, 4, &sink, &f) == FAIL_NONE,
	    "%s", f.msg);
	ck_assert_str_eq(r.log, "b0 e0 b2 e2 b1 e1 ");
	ck_assert_uint_eq(r.len[0], 12);
	ck_assert(memcmp(r.data[0], "Hi\r\n\r\nbody\r\n", 12) == 0);
	ck_assert_uint_eq(r.len[2], 10);
	ck_assert(memcmp(r.data[2], "x\r\ny\x01z\r\n\r\n", 10) == 0);
	ck_assert_uint_eq(r.len[1], 3);
	ck_assert(memcmp(r.data[1], "abc", 3) == 0);
	ck_assert_uint_eq(r.len[3], 0);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* The body comes before the UID, but the UID then says it was another
 * message than the sequence number claimed: aborted, not ended. */
START_TEST(test_fetch_uid_mismatch)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5 (UID BODY.PEEK[])",
		"R:* 1 FETCH (BODY[] {2}\r\nab UID 6)\r\n",
		"S:$ OK done", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_listed(&fk, script);

	rec_sink(&r, &sink);
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 1, &sink, &f), FAIL_NONE);
	ck_assert_str_eq(r.log, "b0 a0 ");
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_fetch_cut)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5:6 (UID BODY.PEEK[])",
		"R:* 1 FETCH (UID 5 BODY[] {2}\r\nab)\r\n",
		"R:* 2 FETCH (UID 6 BODY[] {100}\r\nonly a part", "K:", NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_listed(&fk, script);

	rec_sink(&r, &sink);
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 2, &sink, &f), FAIL_CONN);
	ck_assert_str_eq(r.log, "b0 e0 b1 a1 ");
	ck_assert_msg(strstr(f.msg, "11 of 100 bytes") != NULL, "%s", f.msg);
	ck_assert_int_eq(imap_source.close(src, 0, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* Cut after the body, before the FETCH ends: not known whole either. */
START_TEST(test_fetch_cut_after_body)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5 (UID BODY.PEEK[])",
		"R:* 1 FETCH (BODY[] {2}\r\nab", "K:", NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_listed(&fk, script);

	rec_sink(&r, &sink);
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 1, &sink, &f), FAIL_CONN);
	ck_assert_str_eq(r.log, "b0 a0 ");
	ck_assert_int_eq(imap_source.close(src, 0, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_fetch_bye)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5:6 (UID BODY.PEEK[])",
		"R:* 1 FETCH (UID 5 BODY[] {2}\r\nab)\r\n",
		"S:* BYE [UNAVAILABLE] server shutting down", "K:", NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_listed(&fk, script);

	rec_sink(&r, &sink);
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 2, &sink, &f), FAIL_CONN);
	ck_assert_str_eq(r.log, "b0 e0 ");
	ck_assert_msg(strstr(f.msg, "server shutting down") != NULL, "%s", f.msg);
	ck_assert_int_eq(imap_source.close(src, 0, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* The sink fails on the first message: no more callbacks, the rest is
 * drained to the tagged OK, the session goes on (LOGOUT). */
START_TEST(test_fetch_sink_fails)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5:6 (UID BODY.PEEK[])",
		"R:* 1 FETCH (UID 5 BODY[] {2}\r\nab)\r\n",
		"R:* 2 FETCH (UID 6 BODY[] {3}\r\ncde)\r\n",
		"S:$ OK done", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_listed(&fk, script);

	rec_sink(&r, &sink);
	r.fail_write = 1;
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 2, &sink, &f), FAIL_LOCAL);
	ck_assert_str_eq(f.msg, "disk full");
	ck_assert_str_eq(r.log, "b0 ");
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* BODY[] as a quoted string or NIL (an nstring) is a message too. */
START_TEST(test_fetch_held_body)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5:7 (UID BODY.PEEK[])",
		"S:* 1 FETCH (UID 5 BODY[] \"ab\")",
		"S:* 2 FETCH (UID 6 BODY[] NIL)",
		"S:* 3 FETCH (BODY[] {3}", "R:xyz", "S: UID 7)",
		"S:$ OK done", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_listed(&fk, script);

	rec_sink(&r, &sink);
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 3, &sink, &f), FAIL_NONE);
	ck_assert_str_eq(r.log, "b0 e0 b1 e1 b2 e2 ");
	ck_assert_uint_eq(r.len[0], 2);
	ck_assert(memcmp(r.data[0], "ab", 2) == 0);
	ck_assert_uint_eq(r.len[1], 0);
	ck_assert_uint_eq(r.len[2], 3);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* A NO to a FETCH (a message the server cannot render) keeps the session:
 * the message is warned about and left; a BAD means we are out of step. */
START_TEST(test_fetch_no)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5 (UID BODY.PEEK[])", "S:$ NO [SERVERBUG] oops",
		"C:UID FETCH 5 (UID BODY.PEEK[])", "S:$ BAD what",
		LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src = open_listed(&fk, script);

	rec_sink(&r, &sink);
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 1, &sink, &f), FAIL_NONE);
	ck_assert_str_eq(r.log, "");
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 1, &sink, &f), FAIL_PROTO);
	ck_assert_msg(strstr(f.msg, "what") != NULL, "%s", f.msg);
	ck_assert_str_eq(r.log, "");
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* Long uid-sets are cut into several commands, pipelined. */
START_TEST(test_fetch_batches)
{
	static char cmd1[9000], cmd2[9000];
	static const char *script[] = {
		LOGIN_UIDPLUS, SELECT_4, "C:UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
		"S:$ OK done", cmd1, cmd2, "S:% OK done", "S:$ OK done", LOGOUT, NULL,
	};
	struct msg *m = xcalloc(3000, sizeof(*m));
	const struct msg **mp = xcalloc(3000, sizeof(*mp));
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	struct folder_status st;
	struct msg *v = NULL;
	size_t n = 0, o = 0, i;
	void *src;

	o = (size_t)snprintf(cmd1, sizeof(cmd1), "C:UID FETCH ");
	for (i = 0; o < 8000 + 12; i++) {
		o += (size_t)snprintf(cmd1 + o, sizeof(cmd1) - o, "%s%zu",
		    i ? "," : "", 2 * i + 1);
	}
	snprintf(cmd1 + o, sizeof(cmd1) - o, " (UID BODY.PEEK[])");
	o = (size_t)snprintf(cmd2, sizeof(cmd2), "C:UID FETCH ");
	for (size_t j = i; j < 3000; j++)
		o += (size_t)snprintf(cmd2 + o, sizeof(cmd2) - o, "%s%zu",
		    j > i ? "," : "", 2 * j + 1);
	snprintf(cmd2 + o, sizeof(cmd2) - o, " (UID BODY.PEEK[])");
	for (i = 0; i < 3000; i++) {
		m[i].imap_uid = (uint32_t)(2 * (2999 - i) + 1);
		mp[i] = &m[i];
	}
	src = open_ok(&fk, script);
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.list(src, 0, &v, &n, &f), FAIL_NONE);
	rec_sink(&r, &sink);
	log_init(0, LOG_LVL_ERROR);     /* 3000 "not sent" warnings */
	ck_assert_int_eq(imap_source.fetch(src, mp, 3000, &sink, &f), FAIL_NONE);
	log_init(0, LOG_LVL_INFO);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
	free(m);
	free(mp);
}
END_TEST

/* --- del, seen, logout --- */

START_TEST(test_del_uidplus)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4,
		"C:UID STORE 5:7,9 +FLAGS.SILENT (\\Deleted)", "S:$ OK stored",
		"C:UID EXPUNGE 5:7,9", "S:* 4 EXPUNGE", "S:* 3 EXPUNGE",
		"S:* 2 EXPUNGE", "S:* 1 EXPUNGE", "S:$ OK expunged",
		"C:UID STORE 5 +FLAGS.SILENT (\\Seen)", "S:$ OK stored",
		LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct folder_status st;
	size_t refused = 9;
	void *src = open_ok(&fk, script);

	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.del(src, fptrs, 4, &refused, &f), FAIL_NONE);
	ck_assert_uint_eq(refused, 0);
	ck_assert_int_eq(imap_source.seen(src, fptrs, 1, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_del_no_uidplus)
{
	static const char *const s_ours[] = {
		LOGIN_NOUIDPLUS, SELECT_4,
		"C:UID STORE 5:6 +FLAGS.SILENT (\\Deleted)", "S:$ OK stored",
		"C:UID SEARCH DELETED", "S:* SEARCH 6 5", "S:$ OK searched",
		"C:EXPUNGE", "S:* 1 EXPUNGE", "S:* 1 EXPUNGE", "S:$ OK expunged",
		LOGOUT, NULL,
	};
	static const char *const s_others[] = {
		LOGIN_NOUIDPLUS, SELECT_4,
		"C:UID STORE 5:6 +FLAGS.SILENT (\\Deleted)", "S:$ OK stored",
		"C:UID SEARCH DELETED", "S:* SEARCH 5 6 42", "S:$ OK searched",
		LOGOUT, NULL,
	};
	static const char *const s_no[] = {
		LOGIN_NOUIDPLUS, SELECT_4,
		"C:UID STORE 5:6 +FLAGS.SILENT (\\Deleted)", "S:$ NO read-only",
		LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct folder_status st;
	size_t refused = 9;
	void *src = open_ok(&fk, s_ours);

	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(st.uidplus, 0);
	ck_assert_int_eq(imap_source.del(src, fptrs, 2, &refused, &f), FAIL_NONE);
	ck_assert_uint_eq(refused, 0);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_ours);

	src = open_ok(&fk, s_others);
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.del(src, fptrs, 2, &refused, &f), FAIL_TEMP);
	ck_assert_uint_eq(refused, 2);
	ck_assert_msg(strstr(f.msg, "1 other messages carry \\Deleted") != NULL,
	    "%s", f.msg);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_others);

	src = open_ok(&fk, s_no);
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.del(src, fptrs, 2, &refused, &f), FAIL_TEMP);
	ck_assert_uint_eq(refused, 2);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_no);
}
END_TEST

/* Without UIDPLUS, an answer to SEARCH we do not understand (ESEARCH) must
 * not lead to a plain EXPUNGE: ours stay flagged, nothing else is lost. An
 * IMAP4rev2 server has UID EXPUNGE without saying UIDPLUS. */
START_TEST(test_del_fail_closed_and_rev2)
{
	static const char *const s_esearch[] = {
		LOGIN_NOUIDPLUS, SELECT_4,
		"C:UID STORE 5:6 +FLAGS.SILENT (\\Deleted)", "S:$ OK stored",
		"C:UID SEARCH DELETED", "S:* ESEARCH (TAG \"x\") UID ALL 5:6,42",
		"S:$ OK searched", LOGOUT, NULL,
	};
	static const char *const s_rev2[] = {
		GREET_PLAIN, "C:AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=",
		"S:$ OK [CAPABILITY IMAP4rev2] logged in", SELECT_4,
		"C:UID STORE 5:6 +FLAGS.SILENT (\\Deleted)", "S:$ OK stored",
		"C:UID EXPUNGE 5:6", "S:$ OK expunged", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct folder_status st;
	size_t refused = 9;
	void *src = open_ok(&fk, s_esearch);

	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.del(src, fptrs, 2, &refused, &f), FAIL_TEMP);
	ck_assert_uint_eq(refused, 2);
	ck_assert_msg(strstr(f.msg, "no SEARCH reply") != NULL, "%s", f.msg);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_esearch);

	src = open_ok(&fk, s_rev2);
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(st.uidplus, 1);
	ck_assert_int_eq(imap_source.del(src, fptrs, 2, &refused, &f), FAIL_NONE);
	ck_assert_uint_eq(refused, 0);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_rev2);
}
END_TEST

START_TEST(test_logout_no)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, "C:LOGOUT", "S:$ BAD not now", NULL,
	};
	struct fake fk;
	struct fail f;
	void *src = open_ok(&fk, script);

	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_PROTO);
	fake_finish(&fk, script);
}
END_TEST

START_TEST(test_server_name)
{
	static const char *const script[] = { LOGIN_UIDPLUS, LOGOUT, NULL };
	struct fake fk;
	struct fail f;
	char want[64];
	void *src = open_ok(&fk, script);

	snprintf(want, sizeof(want), "127.0.0.1:%s", fk.port);
	ck_assert_str_eq(imap_source.server(src), want);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* --- the trace never shows a secret --- */

static int trace_saved = -1, trace_fd = -1;

static void
trace_begin(void)
{
	char path[] = "/tmp/mailpull-trace-XXXXXX";

	trace_fd = mkstemp(path);
	ck_assert_int_ge(trace_fd, 0);
	unlink(path);
	fflush(stderr);
	trace_saved = dup(2);
	ck_assert_int_ge(trace_saved, 0);
	ck_assert_int_ge(dup2(trace_fd, 2), 0);
	log_init(0, LOG_LVL_TRACE);
}

static void
trace_end(char *out, size_t size)
{
	ssize_t n;

	log_init(0, LOG_LVL_INFO);
	fflush(stderr);
	dup2(trace_saved, 2);
	close(trace_saved);
	n = pread(trace_fd, out, size - 1, 0);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	close(trace_fd);
}

static void
trace_login(const char *const *script, struct source_params *p, char *out,
    size_t size)
{
	trace_begin();
	run_open(script, p, FAIL_NONE, NULL);
	trace_end(out, size);
}

START_TEST(test_trace_redacted)
{
	static const char *const s_login[] = {
		"S:* OK [CAPABILITY IMAP4rev1] hi",
		"C:LOGIN \"bob\" \"secret\"", "S:$ OK [CAPABILITY IMAP4rev1] in",
		LOGOUT, NULL,
	};
	static const char *const s_lit[] = {
		"S:* OK [CAPABILITY IMAP4rev1] hi",
		"C:LOGIN \"bob\" {9}", "S:+ go on", "L:s\xc3\xa4" "cretxx",
		"S:$ OK [CAPABILITY IMAP4rev1] in", LOGOUT, NULL,
	};
	static const char *const s_plain[] = {
		GREET_PLAIN, AUTH_OK, LOGOUT, NULL,
	};
	static const char *const s_mech[] = {
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=LOGIN] ready",
		"C:AUTHENTICATE LOGIN", "S:+ VXNlcm5hbWU6", "L:Ym9i",
		"S:+ UGFzc3dvcmQ6", "L:c2VjcmV0", "S:$ OK [CAPABILITY IMAP4rev1] in",
		LOGOUT, NULL,
	};
	static const char *const s_scram[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=SCRAM-SHA-256] hi",
		"X:scram", "L:", "S:$ OK [CAPABILITY IMAP4rev1] in", LOGOUT, NULL,
	};
	static char out[65536];
	struct source_params p;

	params_init(&p);
	p.auth = AUTH_USER;
	trace_login(s_login, &p, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "> A1 LOGIN \"bob\" ********"));
	ck_assert_ptr_nonnull(strstr(out, "< * OK [CAPABILITY IMAP4rev1] hi"));
	ck_assert_ptr_nonnull(strstr(out, "imap: AUTH -> AUTHENTICATED"));
	ck_assert_ptr_null(strstr(out, "secret"));

	p.secret = "s\xc3\xa4" "cretxx";
	trace_login(s_lit, &p, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "> A1 LOGIN \"bob\" {9}"));
	ck_assert_ptr_nonnull(strstr(out, "> ********"));
	ck_assert_ptr_null(strstr(out, "cretxx"));

	p.secret = "secret";
	p.auth = AUTH_AUTO;
	trace_login(s_plain, &p, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "> A1 AUTHENTICATE PLAIN ********"));
	ck_assert_ptr_null(strstr(out, "secret"));
	ck_assert_ptr_null(strstr(out, "AGJvYgBzZWNyZXQ"));

	trace_login(s_mech, &p, out, sizeof(out));
	ck_assert_ptr_null(strstr(out, "c2VjcmV0"));
	ck_assert_ptr_null(strstr(out, "Ym9i"));
	ck_assert_ptr_null(strstr(out, "secret"));

	trace_login(s_scram, &p, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "> A1 AUTHENTICATE SCRAM-SHA-256 ********"));
	ck_assert_ptr_null(strstr(out, "secret"));
}
END_TEST

/* A body shows as one line, never its contents. */
START_TEST(test_trace_body)
{
	static const char *const script[] = {
		LOGIN_UIDPLUS, SELECT_4, LIST_4,
		"C:UID FETCH 5 (UID BODY.PEEK[])",
		"R:* 1 FETCH (UID 5 BODY[] {16}\r\nhidden-body-text)\r\n",
		"S:$ OK done", LOGOUT, NULL,
	};
	static char out[65536];
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	void *src;

	trace_begin();
	src = open_listed(&fk, script);
	rec_sink(&r, &sink);
	ck_assert_int_eq(imap_source.fetch(src, fptrs, 1, &sink, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	trace_end(out, sizeof(out));
	fake_finish(&fk, script);
	ck_assert_str_eq(r.log, "b0 e0 ");
	ck_assert_ptr_nonnull(strstr(out, "< * 1 FETCH (UID 5 BODY[] {16}"));
	ck_assert_ptr_nonnull(strstr(out, "< [message body, 16 bytes]"));
	ck_assert_ptr_null(strstr(out, "hidden-body-text"));
}
END_TEST


/* --- IDLE --- */

#define LOGIN_IDLE GREET_PLAIN, "C:AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=", \
	"S:$ OK [CAPABILITY IMAP4rev1 UIDPLUS IDLE] logged in"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Open, log in with IDLE announced, select the 4-message INBOX. */
static void *
open_idle(struct fake *fk, const char *const *script)
{
	struct fail f;
	struct folder_status st;
	void *src = open_ok(fk, script);

	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_uint_eq(st.exists, 4);
	return src;
}

/* New mail during IDLE: DONE at once, news = 1, and the session goes on to
 * FETCH the new message (4 EXISTS after 1 EXPUNGE is new mail although 4
 * was the SELECT count).
 * The trace shows IDLE and DONE like any command. */
START_TEST(test_idle_new_mail)
{
	static const char *const script[] = {
		LOGIN_IDLE, SELECT_4,
		"C:IDLE", "S:+ idling", "S:* 1 EXPUNGE", "S:* 4 EXISTS",
		"S:* 1 RECENT", "L:DONE", "S:$ OK IDLE terminated",
		"C:UID FETCH 10 (UID BODY.PEEK[])",
		"R:* 4 FETCH (UID 10 BODY[] {3}\r\nnew)\r\n", "S:$ OK done",
		LOGOUT, NULL,
	};
	static struct msg m10 = { .uid = "77:10", .imap_uid = 10 };
	static const struct msg *const p10[] = { &m10 };
	static char out[65536];
	struct fake fk;
	struct fail f;
	struct rec r;
	struct msg_sink sink;
	double t0;
	int news = -7;
	void *src;

	trace_begin();
	src = open_idle(&fk, script);
	t0 = now_s();
	ck_assert_msg(imap_source.idle(src, 8, NULL, &news, &f) == FAIL_NONE,
	    "%s", f.msg);
	ck_assert_int_eq(news, 1);
	ck_assert_msg(now_s() - t0 < 3.0, "took %.2f s", now_s() - t0);
	rec_sink(&r, &sink);
	ck_assert_int_eq(imap_source.fetch(src, p10, 1, &sink, &f), FAIL_NONE);
	ck_assert_str_eq(r.log, "b0 e0 ");
	ck_assert(r.len[0] == 3 && memcmp(r.data[0], "new", 3) == 0);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	trace_end(out, sizeof(out));
	fake_finish(&fk, script);
	ck_assert_ptr_nonnull(strstr(out, "> A3 IDLE\n"));
	ck_assert_ptr_nonnull(strstr(out, "< + idling\n"));
	ck_assert_ptr_nonnull(strstr(out, "> DONE\n"));
	ck_assert_ptr_nonnull(strstr(out, "imap: SELECTED -> IDLE"));
}
END_TEST

/* Nothing but noise (flags, RECENT, an EXPUNGE and an EXISTS restating the
 * lower count, a keepalive): it idles until max_seconds, then DONE, the
 * tagged OK, news = 0, and the session still answers. */
START_TEST(test_idle_timeout)
{
	static const char *const script[] = {
		LOGIN_IDLE, SELECT_4,
		"C:IDLE", "S:+ idling", "S:* 2 FETCH (FLAGS (\\Seen))",
		"S:* 1 RECENT", "S:* 1 EXPUNGE", "S:* 3 EXISTS",
		"S:* OK Still here",
		"L:DONE", "S:$ OK IDLE terminated",
		"C:UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
		"S:* 1 FETCH (UID 6 RFC822.SIZE 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")",
		"S:* 3 FETCH (UID 9 RFC822.SIZE 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")",
		"S:$ OK done", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct msg *v = NULL;
	size_t n = 0;
	double t;
	int news = -7;
	void *src = open_idle(&fk, script);

	t = now_s();
	ck_assert_msg(imap_source.idle(src, 1, NULL, &news, &f) == FAIL_NONE,
	    "%s", f.msg);
	t = now_s() - t;
	ck_assert_int_eq(news, 0);
	ck_assert_msg(t >= 0.9 && t < 3.0, "took %.2f s", t);
	ck_assert_msg(imap_source.list(src, 0, &v, &n, &f) == FAIL_NONE, "%s",
	    f.msg);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(v[1].imap_uid, 9);
	free(v);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

static volatile sig_atomic_t idle_stop;

static void *
stop_later(void *arg)
{
	usleep(300 * 1000);
	idle_stop = 1;
	return NULL;
}

static void
on_usr1(int sig)
{
	idle_stop = 1;
}

/* The stop flag, set from another thread (seen within the 1 s slice) and
 * from a signal handler (seen at once: the signal ends the wait), ends
 * IDLE properly with news = 0; set before the call, nothing is sent. */
START_TEST(test_idle_stop)
{
	static const char *const script[] = {
		LOGIN_IDLE, SELECT_4,
		"C:IDLE", "S:+ idling", "L:DONE", "S:$ OK IDLE terminated",
		"C:IDLE", "S:+ idling", "L:DONE", "S:$ OK IDLE terminated",
		LOGOUT, NULL,
	};
	struct sigaction sa;
	struct sigevent sev;
	struct itimerspec its;
	timer_t timer;
	pthread_t th;
	struct fake fk;
	struct fail f;
	double t;
	int news = -7;
	void *src = open_idle(&fk, script);

	idle_stop = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, stop_later, NULL), 0);
	t = now_s();
	ck_assert_msg(imap_source.idle(src, 5, &idle_stop, &news, &f) ==
	    FAIL_NONE, "%s", f.msg);
	t = now_s() - t;
	pthread_join(th, NULL);
	ck_assert_int_eq(news, 0);
	ck_assert_msg(t < 1.6, "thread stop took %.2f s", t);

	idle_stop = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	ck_assert_int_eq(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
	memset(&its, 0, sizeof(its));
	its.it_value.tv_nsec = 200 * 1000 * 1000;
	ck_assert_int_eq(timer_settime(timer, 0, &its, NULL), 0);
	t = now_s();
	ck_assert_msg(imap_source.idle(src, 5, &idle_stop, &news, &f) ==
	    FAIL_NONE, "%s", f.msg);
	t = now_s() - t;
	timer_delete(timer);
	ck_assert_int_eq(news, 0);
	ck_assert_msg(t < 0.9, "signal stop took %.2f s", t);

	/* Still set: returns at once, sends nothing. */
	news = -7;
	ck_assert_int_eq(imap_source.idle(src, 5, &idle_stop, &news, &f),
	    FAIL_NONE);
	ck_assert_int_eq(news, 0);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* No IDLE announced: -1 at once, nothing sent. IMAP4rev2 implies IDLE. A
 * tagged NO to IDLE: -1, and no second try. POP3 has no idle op. */
START_TEST(test_idle_unsupported)
{
	static const char *const s_none[] = {
		LOGIN_UIDPLUS, SELECT_4, LOGOUT, NULL,
	};
	static const char *const s_no[] = {
		GREET_PLAIN, "C:AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=",
		"S:$ OK [CAPABILITY IMAP4rev2] logged in", SELECT_4,
		"C:IDLE", "S:$ NO [LIMIT] too many idlers", LIST_4, LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct msg *v = NULL;
	size_t n = 0;
	int news = 7;
	void *src;

	ck_assert_ptr_null(pop3_source.idle);
	src = open_idle(&fk, s_none);
	ck_assert_int_eq(imap_source.idle(src, 5, NULL, &news, &f), FAIL_NONE);
	ck_assert_int_eq(news, -1);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_none);

	src = open_idle(&fk, s_no);
	news = 7;
	ck_assert_int_eq(imap_source.idle(src, 5, NULL, &news, &f), FAIL_NONE);
	ck_assert_int_eq(news, -1);
	news = 7;
	ck_assert_int_eq(imap_source.idle(src, 5, NULL, &news, &f), FAIL_NONE);
	ck_assert_int_eq(news, -1);
	/* Still SELECTED and in step. */
	ck_assert_msg(imap_source.list(src, 0, &v, &n, &f) == FAIL_NONE, "%s",
	    f.msg);
	ck_assert_uint_eq(n, 4);
	free(v);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, s_no);
}
END_TEST

/* One IDLE on a fresh session that must fail with kind and message. */
static void
idle_fails(const char *const *script, enum fail_kind want, const char *msg)
{
	struct fake fk;
	struct fail f = { .kind = FAIL_NONE, .msg = "" };
	int news = 7;
	enum fail_kind k;
	void *src = open_idle(&fk, script);

	k = imap_source.idle(src, 5, NULL, &news, &f);
	ck_assert_msg(k == want, "idle: got %d (%s), want %d", k, f.msg, want);
	ck_assert_msg(strstr(f.msg, "IDLE on folder INBOX: ") == f.msg &&
	    strstr(f.msg, msg) != NULL, "message: %s", f.msg);
	ck_assert_int_eq(imap_source.close(src, 0, &f), FAIL_NONE);
	fake_finish(&fk, script);
}

/* BYE during IDLE, a cut after "+", a cut before it, a cut inside a
 * literal, a literal over the cap, a tagged BAD after DONE. */
START_TEST(test_idle_bye_cut)
{
	static const char *const s_bye[] = {
		LOGIN_IDLE, SELECT_4, "C:IDLE", "S:+ idling",
		"S:* BYE [UNAVAILABLE] shutting down", "K:", NULL,
	};
	static const char *const s_cut[] = {
		LOGIN_IDLE, SELECT_4, "C:IDLE", "S:+ idling", "K:", NULL,
	};
	static const char *const s_cut_early[] = {
		LOGIN_IDLE, SELECT_4, "C:IDLE", "K:", NULL,
	};
	static const char *const s_cut_lit[] = {
		LOGIN_IDLE, SELECT_4, "C:IDLE", "S:+ idling",
		"R:* 2 FETCH (BODY[HEADER] {40}\r\nSubject: x\r\n", "K:", NULL,
	};
	static const char *const s_huge[] = {
		LOGIN_IDLE, SELECT_4, "C:IDLE", "S:+ idling",
		"R:* 2 FETCH (BODY[] {99999999999}\r\nxx", NULL,
	};
	static const char *const s_bad[] = {
		LOGIN_IDLE, SELECT_4, "C:IDLE", "S:+ idling", "S:* 5 EXISTS",
		"L:DONE", "S:$ BAD what", NULL,
	};

	idle_fails(s_bye, FAIL_CONN, "server closed the session: shutting down");
	idle_fails(s_cut, FAIL_CONN, "connection closed by server");
	idle_fails(s_cut_early, FAIL_CONN, "connection closed by server");
	idle_fails(s_cut_lit, FAIL_CONN, "40-byte literal");
	idle_fails(s_huge, FAIL_PROTO, "literal");
	idle_fails(s_bad, FAIL_PROTO, "IDLE failed: BAD what");
}
END_TEST

/* FETCH responses with literals during IDLE (a streamed BODY[] drained, a
 * held BODY[HEADER], both arriving a few bytes at a time) are consumed:
 * the EXISTS after them is seen. */
START_TEST(test_idle_fetch_literal)
{
	static const char *const script[] = {
		LOGIN_IDLE, SELECT_4,
		"C:IDLE", "S:+ idling",
		"P:* 2 FETCH (FLAGS (\\Seen) BODY[] {13}\r\nab\r\n\r\n)DONE\r\n UID 6)\r\n",
		"P:* 3 FETCH (UID 7 BODY[HEADER] {8}\r\nX: y\r\n\r\n)\r\n",
		"S:* 5 EXISTS", "L:DONE", "S:$ OK IDLE terminated", LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	int news = 7;
	void *src = open_idle(&fk, script);

	ck_assert_msg(imap_source.idle(src, 10, NULL, &news, &f) == FAIL_NONE,
	    "%s", f.msg);
	ck_assert_int_eq(news, 1);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

/* Continuations as servers send them: "+" alone, "+ " with nothing after,
 * "+ Waiting for DONE" after an EXISTS that came before it (DONE follows
 * the "+" at once). A server that ends IDLE with its own tagged OK gets no
 * DONE. */
START_TEST(test_idle_continuations)
{
	static const char *const script[] = {
		LOGIN_IDLE, SELECT_4,
		"C:IDLE", "S:+", "S:* 5 EXISTS", "L:DONE", "S:$ OK done",
		"C:IDLE", "R:+ \r\n", "S:* 6 EXISTS", "L:DONE", "S:$ OK done",
		"C:IDLE", "S:* 7 EXISTS", "S:+ Waiting for DONE", "L:DONE",
		"S:$ OK done",
		"C:IDLE", "S:+ idling", "S:* OK Still here",
		"S:$ OK IDLE terminated (server timeout)",
		LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	int news;
	void *src = open_idle(&fk, script);

	for (int i = 0; i < 3; i++) {
		news = 7;
		ck_assert_msg(imap_source.idle(src, 10, NULL, &news, &f) ==
		    FAIL_NONE, "round %d: %s", i, f.msg);
		ck_assert_int_eq(news, 1);
	}
	news = 7;
	ck_assert_msg(imap_source.idle(src, 10, NULL, &news, &f) == FAIL_NONE,
	    "%s", f.msg);
	ck_assert_int_eq(news, 0);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
}
END_TEST

#define LIST_EXISTS(n) \
	"C:UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)", \
	"S:* 1 FETCH (UID 5 RFC822.SIZE 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")", \
	"S:* " n " EXISTS", "S:$ OK done"

/* New mail announced while the session did something else (here during
 * the listing) is reported at once, without IDLE; what came before a new
 * SELECT, and the EXISTS of SELECT itself, are not. No folder selected:
 * an error. */
START_TEST(test_idle_pending)
{
	static const char *const script[] = {
		LOGIN_IDLE, SELECT_4, LIST_EXISTS("5"), LIST_EXISTS("6"),
		"C:SELECT \"INBOX\"", "S:* 6 EXISTS", "S:* OK [UIDVALIDITY 77] ok",
		"S:$ OK [READ-WRITE] selected",
		"C:IDLE", "S:+ idling", "L:DONE", "S:$ OK done",
		LOGOUT, NULL,
	};
	struct fake fk;
	struct fail f;
	struct folder_status st;
	struct msg *v = NULL;
	size_t n = 0;
	int news = 7;
	void *src = open_ok(&fk, script);

	ck_assert_int_eq(imap_source.idle(src, 1, NULL, &news, &f), FAIL_PROTO);
	ck_assert_str_eq(f.msg, "idle: no folder selected");
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	ck_assert_int_eq(imap_source.list(src, 0, &v, &n, &f), FAIL_NONE);
	free(v);
	ck_assert_int_eq(imap_source.idle(src, 1, NULL, &news, &f), FAIL_NONE);
	ck_assert_int_eq(news, 1);
	ck_assert_int_eq(imap_source.list(src, 0, &v, &n, &f), FAIL_NONE);
	free(v);
	ck_assert_int_eq(imap_source.select(src, &inbox, &st, &f), FAIL_NONE);
	news = 7;
	ck_assert_int_eq(imap_source.idle(src, 1, NULL, &news, &f), FAIL_NONE);
	ck_assert_int_eq(news, 0);
	ck_assert_int_eq(imap_source.close(src, 1, &f), FAIL_NONE);
	fake_finish(&fk, script);
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
	Suite *s = suite_create("imap");
	TCase *tc = tcase_create("transcript");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_greeting_caps);
	tcase_add_test(tc, test_capability_cmd);
	tcase_add_test(tc, test_preauth_bye);
	tcase_add_test(tc, test_starttls_not_offered);
	tcase_add_test(tc, test_refuse_plaintext);
	tcase_add_test(tc, test_not_offered);
	tcase_add_test(tc, test_login_quoted);
	tcase_add_test(tc, test_login_literal);
	tcase_add_test(tc, test_auth_plain);
	tcase_add_test(tc, test_auth_login_mech);
	tcase_add_test(tc, test_auth_scram);
	tcase_add_test(tc, test_auth_no);
	tcase_add_test(tc, test_folders_all);
	tcase_add_test(tc, test_folders_wanted);
	tcase_add_test(tc, test_select);
	tcase_add_test(tc, test_list_since);
	tcase_add_test(tc, test_list_malformed);
	tcase_add_test(tc, test_fetch_orders);
	tcase_add_test(tc, test_fetch_uid_mismatch);
	tcase_add_test(tc, test_fetch_cut);
	tcase_add_test(tc, test_fetch_cut_after_body);
	tcase_add_test(tc, test_fetch_bye);
	tcase_add_test(tc, test_fetch_sink_fails);
	tcase_add_test(tc, test_fetch_no);
	tcase_add_test(tc, test_fetch_held_body);
	tcase_add_test(tc, test_fetch_batches);
	tcase_add_test(tc, test_del_uidplus);
	tcase_add_test(tc, test_del_no_uidplus);
	tcase_add_test(tc, test_del_fail_closed_and_rev2);
	tcase_add_test(tc, test_logout_no);
	tcase_add_test(tc, test_server_name);
	tcase_add_test(tc, test_trace_redacted);
	tcase_add_test(tc, test_trace_body);
	tcase_add_test(tc, test_idle_new_mail);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_idle_stop);
	tcase_add_test(tc, test_idle_unsupported);
	tcase_add_test(tc, test_idle_bye_cut);
	tcase_add_test(tc, test_idle_fetch_literal);
	tcase_add_test(tc, test_idle_continuations);
	tcase_add_test(tc, test_idle_pending);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
