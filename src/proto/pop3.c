/* pop3.c - the POP3 source (RFC 1939, RFC 2449 CAPA/PIPELINING, RFC 2595
 * STLS, RFC 5034 AUTH).
 *
 * Every line to the server goes through pop3_send(), every line from it
 * through pop3_read(): those two are where the trace is written and where
 * secrets are redacted. Bodies are streamed from the connection's buffer
 * through the dot decoder into the sink; they are never copied or read line
 * by line. Headers (TOP n 0, for header-first filtering) go through the same
 * decoder into a 64 KiB buffer. RETR, TOP and DELE for a batch of messages
 * all go through pop3_batch(), pipelined when the server allows.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "crypto.h"
#include "fail.h"
#include "log.h"
#include "pop3_parse.h"
#include "sasl.h"
#include "source.h"
#include "xmalloc.h"

#define POP3_WINDOW_DEFAULT     32
#define POP3_WINDOW_MAX         1024
#define POP3_MSGS_MAX           1000000
#define POP3_CAPA_LINES_MAX     1000
#define POP3_SASL_ROUNDS_MAX    16
#define POP3_CLEAN_MAX          160     /* server text copied into a fail */
#define POP3_HDR_MAX            (64 * 1024)     /* a header section we hold */
#define POP3_TOP_SLACK          (1024 * 1024)   /* see pop3_top_limit() */
#define REDACTED                "********"

enum pop3_state {
	P_CONNECT, P_GREETING, P_CAPA, P_STLS, P_AUTH, P_TRANSACTION, P_QUIT,
	P_CLOSED,
};

static const char *const pop3_state_names[] = {
	[P_CONNECT] = "CONNECT", [P_GREETING] = "GREETING", [P_CAPA] = "CAPA",
	[P_STLS] = "STLS", [P_AUTH] = "AUTH", [P_TRANSACTION] = "TRANSACTION",
	[P_QUIT] = "QUIT", [P_CLOSED] = "CLOSED",
};

struct pop3 {
	struct conn *conn;
	enum pop3_state state;
	struct pop3_caps caps;
	size_t window;                  /* 1 without PIPELINING */
	unsigned top_ok:1;              /* a TOP was answered +OK */
	unsigned no_top:1;              /* TOP found unsupported (see
	                                 * pop3_top_refused) */
	char server[300];
};

/* How a login will be done. */
enum pop3_login { LOGIN_USER, LOGIN_APOP, LOGIN_SASL };

/* What fetch hands the decoder: the sink, and its failure once it failed. */
struct pop3_fetch {
	const struct msg_sink *sink;
	enum fail_kind failed;          /* != FAIL_NONE: no more callbacks */
	struct fail sf;
	char tail[2];                   /* last bytes of the body, held back */
	size_t ntail;
};

/* One batch of per-message commands, "VERB n[ extra]" for each message,
 * sent in windows and answered in order (see pop3_batch). */
struct pop3_batch {
	const char *verb;
	const char *extra;              /* after the number, or NULL */
	/* Read the reply for msgs[i]; anything but FAIL_NONE ends the batch. */
	enum fail_kind (*reply)(struct pop3 *s, const struct msg *m, size_t i,
	    void *arg, struct fail *f);
	int (*stop)(void *arg);         /* 1: send no more; may be NULL */
	void *arg;
};

/* What headers() collects from one TOP reply (the decoder's output). */
struct pop3_hdr {
	char *buf;                      /* POP3_HDR_MAX bytes */
	size_t len;                     /* header bytes held */
	unsigned lines;                 /* header lines seen */
	size_t linelen;                 /* bytes of the current line so far */
	int cr;                         /* ... and they are one CR */
	int done;                       /* the empty line that ends it was seen */
	int big;                        /* over POP3_HDR_MAX: not held */
};

/* A headers() call. */
struct pop3_headers {
	struct pop3 *s;
	struct pop3_hdr h;
	void (*cb)(void *arg, size_t i, const char *p, size_t len);
	void *arg;
};

static void
pop3_set_state(struct pop3 *s, enum pop3_state to)
{
	if (s->state != to)
		log_debug("pop3: %s -> %s", pop3_state_names[s->state],
		    pop3_state_names[to]);
	s->state = to;
}

/* Server text made fit for a one-line message: controls become '?', long
 * text is cut with "...". Returns buf. */
static const char *
clean(const char *in, char *buf, size_t size)
{
	size_t o = 0;

	for (; *in != '\0' && o + 4 < size; in++) {
		unsigned char ch = (unsigned char)*in;

		buf[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (*in != '\0')
		memcpy(buf + o, "...", 3), o += 3;
	buf[o] = '\0';
	return buf;
}

/* 1 if s holds a byte that must not go into a command line. */
static int
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* The one place lines are sent: "verb" or "verb arg" + CRLF. When secret,
 * the trace shows "verb ********" (or "********" for an empty verb). */
static enum fail_kind
pop3_send(struct pop3 *s, const char *verb, const char *arg, int secret,
    struct fail *f)
{
	enum fail_kind k;
	int sp = verb[0] != '\0' && arg != NULL;

	if (log_enabled(LOG_LVL_TRACE)) {
		char t[POP3_LINE_MAX];
		int len;

		len = snprintf(t, sizeof(t), "%s%s%s", verb, sp ? " " : "",
		    arg == NULL ? "" : secret ? REDACTED : arg);
		if (len < 0)
			len = 0;
		else if ((size_t)len >= sizeof(t))
			len = (int)sizeof(t) - 1;
		log_trace(">", t, (size_t)len);
	}
	if ((k = conn_write(s->conn, verb, strlen(verb), f)) != FAIL_NONE)
		return k;
	if (sp && (k = conn_write(s->conn, " ", 1, f)) != FAIL_NONE)
		return k;
	if (arg != NULL &&
	    (k = conn_write(s->conn, arg, strlen(arg), f)) != FAIL_NONE)
		return k;
	return conn_write(s->conn, "\r\n", 2, f);
}

/* The one place lines are read. *line is valid until the next read. */
static enum fail_kind
pop3_read(struct pop3 *s, char **line, struct fail *f)
{
	enum fail_kind k;
	size_t len;

	k = conn_readline(s->conn, line, &len, POP3_LINE_MAX, f);
	if (k != FAIL_NONE)
		return k;
	if (log_enabled(LOG_LVL_TRACE))
		log_trace("<", *line, len);
	/* Every parser below sees a C string: a NUL would cut the line short
	 * unseen (two UIDs that differ after it would become one). */
	if (memchr(*line, '\0', len) != NULL)
		return fail_set(f, FAIL_PROTO, "NUL byte in a reply line");
	return FAIL_NONE;
}

/* Read a status line: *ok is 1 for +OK, 0 for -ERR; *text is the rest. */
static enum fail_kind
pop3_reply(struct pop3 *s, const char *what, int *ok, const char **text,
    struct fail *f)
{
	char *line, buf[POP3_CLEAN_MAX];
	enum fail_kind k;

	if ((k = pop3_read(s, &line, f)) != FAIL_NONE)
		return k;
	if ((*ok = pop3_status(line, text)) == -1)
		return fail_set(f, FAIL_PROTO, "malformed reply to %s: %s", what,
		    clean(line, buf, sizeof(buf)));
	return FAIL_NONE;
}

/* A line of a multi-line listing, unstuffed; *end is 1 at the "." line. */
static enum fail_kind
pop3_read_ml(struct pop3 *s, char **line, int *end, struct fail *f)
{
	enum fail_kind k;

	if ((k = pop3_read(s, line, f)) != FAIL_NONE)
		return k;
	*end = 0;
	if ((*line)[0] == '.') {
		if ((*line)[1] == '\0')
			*end = 1;
		else
			(*line)++;
	}
	return FAIL_NONE;
}

static enum fail_kind
pop3_greeting(struct pop3 *s, struct fail *f)
{
	char buf[POP3_CLEAN_MAX];
	const char *text;
	enum fail_kind k;
	int ok;

	pop3_set_state(s, P_GREETING);
	if ((k = pop3_reply(s, "connect", &ok, &text, f)) != FAIL_NONE)
		return k;
	if (!ok)
		return fail_set(f, pop3_err_kind(text, FAIL_CONN),
		    "server refused the connection: %s",
		    clean(text, buf, sizeof(buf)));
	pop3_caps_greeting(&s->caps, text);
	return FAIL_NONE;
}

/* CAPA: fills s->caps; an -ERR (old server) leaves them unknown. */
static enum fail_kind
pop3_capa(struct pop3 *s, struct fail *f)
{
	const char *text;
	char *line;
	enum fail_kind k;
	int ok, end, lines = 0;

	pop3_set_state(s, P_CAPA);
	if ((k = pop3_send(s, "CAPA", NULL, 0, f)) != FAIL_NONE ||
	    (k = pop3_reply(s, "CAPA", &ok, &text, f)) != FAIL_NONE)
		return k;
	if (!ok) {
		log_debug("pop3: no CAPA; assuming an RFC 1939 server");
		return FAIL_NONE;
	}
	s->caps.seen_capa = 1;
	for (;;) {
		if ((k = pop3_read_ml(s, &line, &end, f)) != FAIL_NONE)
			return k;
		if (end)
			break;
		if (++lines > POP3_CAPA_LINES_MAX)
			return fail_set(f, FAIL_PROTO, "CAPA listing too long");
		pop3_caps_line(&s->caps, line);
	}
	return FAIL_NONE;
}

/* RFC 2595: STLS, upgrade, forget what we knew, ask CAPA again. */
static enum fail_kind
pop3_stls(struct pop3 *s, struct fail *f)
{
	char buf[POP3_CLEAN_MAX];
	const char *text;
	enum fail_kind k;
	int ok;

	if (!s->caps.stls)
		return fail_set(f, FAIL_CONN, "server does not offer STLS; "
		    "refusing to log in without TLS");
	pop3_set_state(s, P_STLS);
	if ((k = pop3_send(s, "STLS", NULL, 0, f)) != FAIL_NONE ||
	    (k = pop3_reply(s, "STLS", &ok, &text, f)) != FAIL_NONE)
		return k;
	if (!ok)
		return fail_set(f, FAIL_CONN, "STLS refused: %s",
		    clean(text, buf, sizeof(buf)));
	if ((k = conn_starttls(s->conn, f)) != FAIL_NONE)
		return k;
	log_verbose("pop3: %s", conn_describe(s->conn));
	s->caps.seen_capa = s->caps.top = s->caps.uidl = s->caps.user = 0;
	s->caps.pipelining = s->caps.stls = 0;
	s->caps.sasl = 0;
	return pop3_capa(s, f);
}

/* An -ERR to a login step. */
static enum fail_kind
pop3_login_refused(const char *text, struct fail *f)
{
	char buf[POP3_CLEAN_MAX];

	if (pop3_err_kind(text, FAIL_AUTH) == FAIL_TEMP)
		return fail_set(f, FAIL_TEMP, "login failed temporarily: %s",
		    clean(text, buf, sizeof(buf)));
	return fail_set(f, FAIL_AUTH, "login refused: %s",
	    clean(text, buf, sizeof(buf)));
}

/* Read the reply that ends a login step. */
static enum fail_kind
pop3_login_reply(struct pop3 *s, const char *what, struct fail *f)
{
	const char *text;
	enum fail_kind k;
	int ok;

	if ((k = pop3_reply(s, what, &ok, &text, f)) != FAIL_NONE)
		return k;
	return ok ? FAIL_NONE : pop3_login_refused(text, f);
}

static enum fail_kind
pop3_login_user(struct pop3 *s, const struct source_params *p, struct fail *f)
{
	enum fail_kind k;

	if (has_ctl(p->secret))
		return fail_set(f, FAIL_CONFIG, "password contains control "
		    "characters; USER/PASS cannot send it");
	if ((k = pop3_send(s, "USER", p->user, 0, f)) != FAIL_NONE ||
	    (k = pop3_login_reply(s, "USER", f)) != FAIL_NONE)
		return k;
	if ((k = pop3_send(s, "PASS", p->secret, 1, f)) != FAIL_NONE)
		return k;
	return pop3_login_reply(s, "PASS", f);
}

static enum fail_kind
pop3_login_apop(struct pop3 *s, const struct source_params *p, struct fail *f)
{
	char hex[33], *joined = NULL, *verb = NULL;
	enum fail_kind k;

	if (strchr(p->user, ' ') != NULL)
		return fail_set(f, FAIL_CONFIG, "APOP: user name contains a space");
	joined = xasprintf("%s%s", s->caps.apop_stamp, p->secret);
	crypto_md5_hex(joined, strlen(joined), hex);
	free_secret(joined);
	verb = xasprintf("APOP %s", p->user);
	k = pop3_send(s, verb, hex, 1, f);
	explicit_bzero(hex, sizeof(hex));
	free(verb);
	if (k != FAIL_NONE)
		return k;
	return pop3_login_reply(s, "APOP", f);
}

/* After a local SASL error: "*", then read the server's -ERR. */
static void
pop3_sasl_cancel(struct pop3 *s)
{
	struct fail ignored;
	const char *text;
	int ok;

	if (pop3_send(s, "*", NULL, 0, &ignored) == FAIL_NONE)
		(void)pop3_reply(s, "AUTH cancel", &ok, &text, &ignored);
}

/* Send a raw SASL response as a base64 line (redacted in the trace). */
static enum fail_kind
pop3_sasl_respond(struct pop3 *s, unsigned char *raw, size_t rawlen,
    struct fail *f)
{
	enum fail_kind k;
	char *b64;

	b64 = base64_encode(raw, rawlen);
	k = pop3_send(s, "", b64, 1, f);
	free_secret(b64);
	return k;
}

/* One "+ b64" challenge: decode, step, answer. What the mechanism says
 * about a challenge it answers anyway (an OAuth error) lands in *note. */
static enum fail_kind
pop3_sasl_challenge(struct pop3 *s, struct sasl *sasl, const char *b64,
    struct fail *note, struct fail *f)
{
	unsigned char *in = NULL, *out = NULL;
	size_t inlen = 0, outlen = 0;
	enum fail_kind k;

	if (base64_decode(b64, strlen(b64), &in, &inlen) == -1) {
		pop3_sasl_cancel(s);
		return fail_set(f, FAIL_PROTO, "invalid base64 in SASL challenge");
	}
	k = sasl_step(sasl, in, inlen, &out, &outlen, note);
	free(in);
	if (k != FAIL_NONE) {
		*f = *note;
		f->kind = k;
		pop3_sasl_cancel(s);
		return k;
	}
	k = pop3_sasl_respond(s, out, outlen, f);
	explicit_bzero(out, outlen);
	free(out);
	return k;
}

/* "AUTH MECH [initial-response]". */
static enum fail_kind
pop3_sasl_start(struct pop3 *s, struct sasl *sasl, enum sasl_mech m,
    struct fail *f)
{
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	char verb[64], *b64;
	enum fail_kind k;

	snprintf(verb, sizeof(verb), "AUTH %s", sasl_mech_name(m));
	if (!sasl_initial(sasl, &raw, &rawlen))
		return pop3_send(s, verb, NULL, 0, f);
	b64 = rawlen == 0 ? xstrdup("=") : base64_encode(raw, rawlen);
	explicit_bzero(raw, rawlen);
	free(raw);
	k = pop3_send(s, verb, b64, 1, f);
	free_secret(b64);
	return k;
}

static enum fail_kind
pop3_login_sasl(struct pop3 *s, const struct source_params *p,
    enum sasl_mech m, struct fail *f)
{
	struct sasl_params sp = {
		.user = p->user, .secret = p->secret,
		.host = p->conn.host, .port = p->conn.port,
	};
	struct fail note = { .kind = FAIL_NONE, .msg = "" };
	struct sasl *sasl;
	const char *b64, *text;
	char *line, buf[POP3_CLEAN_MAX];
	enum fail_kind k;
	int rounds = 0, ok;

	if ((sasl = sasl_new(m, &sp)) == NULL)
		return fail_set(f, FAIL_AUTH, "SASL %s unavailable",
		    sasl_mech_name(m));
	if ((k = pop3_sasl_start(s, sasl, m, f)) != FAIL_NONE)
		goto out;
	for (;;) {
		if ((k = pop3_read(s, &line, f)) != FAIL_NONE)
			goto out;
		if (!pop3_is_continuation(line, &b64))
			break;
		if (++rounds > POP3_SASL_ROUNDS_MAX) {
			pop3_sasl_cancel(s);
			k = fail_set(f, FAIL_PROTO, "too many SASL challenges");
			goto out;
		}
		if ((k = pop3_sasl_challenge(s, sasl, b64, &note, f)) != FAIL_NONE)
			goto out;
	}
	if ((ok = pop3_status(line, &text)) == -1) {
		k = fail_set(f, FAIL_PROTO, "malformed reply to AUTH: %s",
		    clean(line, buf, sizeof(buf)));
		goto out;
	}
	if (!ok) {
		k = pop3_login_refused(text, f);
		if (k == FAIL_AUTH && sasl_failed(sasl))
			fail_set(f, FAIL_AUTH, "login refused: %s", note.msg);
		goto out;
	}
	k = sasl_finish(sasl, NULL, 0, f);
out:
	sasl_free(sasl);
	return k;
}

static enum sasl_mech
auth_to_mech(enum auth_choice a)
{
	switch (a) {
	case AUTH_PLAIN:                return SASL_PLAIN;
	case AUTH_LOGIN:                return SASL_LOGIN;
	case AUTH_SCRAM_SHA_256:        return SASL_SCRAM_SHA_256;
	case AUTH_XOAUTH2:              return SASL_XOAUTH2;
	case AUTH_OAUTHBEARER:          return SASL_OAUTHBEARER;
	default:                        return SASL_NONE;
	}
}

static int
offers(const struct pop3 *s, enum sasl_mech m)
{
	return (s->caps.sasl & (1u << m)) != 0;
}

/* AUTH_AUTO: the strongest mechanism offered that may be used here. */
static enum fail_kind
pop3_choose_auto(struct pop3 *s, int secure, enum pop3_login *how,
    enum sasl_mech *m, struct fail *f)
{
	*m = SASL_NONE;
	*how = LOGIN_SASL;
	if (offers(s, SASL_SCRAM_SHA_256)) {
		*m = SASL_SCRAM_SHA_256;
		return FAIL_NONE;
	}
	if (!secure)
		return FAIL_NONE;       /* the caller refuses, naming why */
	if (offers(s, SASL_PLAIN))
		*m = SASL_PLAIN;
	else if (offers(s, SASL_LOGIN))
		*m = SASL_LOGIN;
	else if (s->caps.user || !s->caps.seen_capa)
		*how = LOGIN_USER;
	else
		return fail_set(f, FAIL_AUTH, "server offers no login mechanism "
		    "mailpull can use");
	return FAIL_NONE;
}

/* An explicit auth choice: is it offered? */
static enum fail_kind
pop3_choose_explicit(struct pop3 *s, enum auth_choice a, enum pop3_login *how,
    enum sasl_mech *m, struct fail *f)
{
	*m = auth_to_mech(a);
	if (a == AUTH_USER) {
		*how = LOGIN_USER;
		if (s->caps.seen_capa && !s->caps.user)
			return fail_set(f, FAIL_AUTH, "server does not offer USER");
		return FAIL_NONE;
	}
	if (a == AUTH_APOP) {
		*how = LOGIN_APOP;
		if (!s->caps.apop)
			return fail_set(f, FAIL_AUTH, "server does not offer APOP "
			    "(no timestamp in its greeting)");
		return FAIL_NONE;
	}
	*how = LOGIN_SASL;
	if (*m == SASL_NONE || !offers(s, *m))
		return fail_set(f, FAIL_AUTH, "server does not offer SASL %s",
		    *m == SASL_NONE ? "(unknown)" : sasl_mech_name(*m));
	return FAIL_NONE;
}

static enum fail_kind
pop3_auth(struct pop3 *s, const struct source_params *p, struct fail *f)
{
	enum pop3_login how;
	enum sasl_mech m;
	enum fail_kind k;
	int secure, cleartext;

	pop3_set_state(s, P_AUTH);
	if (p->user == NULL || p->secret == NULL)
		return fail_set(f, FAIL_CONFIG, "user or password missing");
	if (has_ctl(p->user))
		return fail_set(f, FAIL_CONFIG, "user name contains control "
		    "characters");
	secure = conn_is_tls(s->conn) || p->allow_plaintext;
	if (p->auth == AUTH_AUTO)
		k = pop3_choose_auto(s, secure, &how, &m, f);
	else
		k = pop3_choose_explicit(s, p->auth, &how, &m, f);
	if (k != FAIL_NONE)
		return k;
	cleartext = how == LOGIN_USER ||
	    (how == LOGIN_SASL && (m == SASL_NONE || sasl_mech_is_cleartext(m)));
	if (cleartext && !secure)
		return fail_set(f, FAIL_AUTH, "refusing to send a password over "
		    "an unencrypted connection (set tls, or allow_plaintext = yes)");
	switch (how) {
	case LOGIN_USER:
		log_verbose("pop3: logging in with USER/PASS");
		return pop3_login_user(s, p, f);
	case LOGIN_APOP:
		log_verbose("pop3: logging in with APOP");
		return pop3_login_apop(s, p, f);
	case LOGIN_SASL:
		break;
	}
	log_verbose("pop3: logging in with SASL %s", sasl_mech_name(m));
	return pop3_login_sasl(s, p, m, f);
}

static void
pop3_free(struct pop3 *s)
{
	if (s == NULL)
		return;
	conn_close(s->conn);
	free(s);
}

static enum fail_kind
pop3_open(void **src, const struct source_params *p, struct fail *f)
{
	struct pop3 *s;
	enum fail_kind k;

	*src = NULL;
	s = xcalloc(1, sizeof(*s));
	s->state = P_CONNECT;
	snprintf(s->server, sizeof(s->server),
	    strchr(p->conn.host, ':') != NULL ? "[%s]:%s" : "%s:%s",
	    p->conn.host, p->conn.port);
	if ((k = conn_open(&s->conn, &p->conn, p->tls, f)) != FAIL_NONE)
		goto fail;
	if (p->tls == TLS_IMPLICIT)
		log_verbose("pop3: %s", conn_describe(s->conn));
	if ((k = pop3_greeting(s, f)) != FAIL_NONE)
		goto fail;
	if ((k = pop3_capa(s, f)) != FAIL_NONE)
		goto fail;
	if (p->tls == TLS_STARTTLS && (k = pop3_stls(s, f)) != FAIL_NONE)
		goto fail;
	if ((k = pop3_auth(s, p, f)) != FAIL_NONE)
		goto fail;
	s->window = 1;
	if (s->caps.pipelining) {
		s->window = p->window == 0 ? POP3_WINDOW_DEFAULT : p->window;
		if (s->window > POP3_WINDOW_MAX)
			s->window = POP3_WINDOW_MAX;
	}
	pop3_set_state(s, P_TRANSACTION);
	*src = s;
	return FAIL_NONE;
fail:
	pop3_free(s);
	return k;
}

static int
msg_cmp(const void *a, const void *b)
{
	const struct msg *x = a, *y = b;

	return x->num < y->num ? -1 : x->num > y->num;
}

/* The UIDL listing into *v (sorted by number, no duplicates). */
static int
uid_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct msg *const *)a)->uid,
	    (*(const struct msg *const *)b)->uid);
}

/* RFC 1939: a UID names one message. Two messages with one UID would make
 * one of them look taken when only the other was. */
static enum fail_kind
pop3_unique_uids(const struct msg *v, size_t n, struct fail *f)
{
	const struct msg **p;
	enum fail_kind k = FAIL_NONE;
	char buf[POP3_CLEAN_MAX];

	if (n < 2)
		return FAIL_NONE;
	p = xcalloc(n, sizeof(*p));
	for (size_t i = 0; i < n; i++)
		p[i] = &v[i];
	qsort(p, n, sizeof(*p), uid_cmp);
	for (size_t i = 1; i < n && k == FAIL_NONE; i++)
		if (strcmp(p[i]->uid, p[i - 1]->uid) == 0)
			k = fail_set(f, FAIL_PROTO, "UIDL gives messages %u and "
			    "%u the same UID %s", p[i - 1]->num, p[i]->num,
			    clean(p[i]->uid, buf, sizeof(buf)));
	free(p);
	return k;
}

static enum fail_kind
pop3_read_uidl(struct pop3 *s, struct msg **v, size_t *n, struct fail *f)
{
	char *line, buf[POP3_CLEAN_MAX];
	size_t cap = 0;
	enum fail_kind k;
	int end;

	for (;;) {
		if ((k = pop3_read_ml(s, &line, &end, f)) != FAIL_NONE)
			return k;
		if (end)
			break;
		if (*n >= POP3_MSGS_MAX)
			return fail_set(f, FAIL_PROTO, "more than %d messages",
			    POP3_MSGS_MAX);
		if (*n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			*v = xreallocarray(*v, cap, sizeof(**v));
		}
		memset(&(*v)[*n], 0, sizeof(**v));
		if (pop3_parse_uidl(line, &(*v)[*n].num, (*v)[*n].uid) == -1)
			return fail_set(f, FAIL_PROTO, "malformed UIDL line: %s",
			    clean(line, buf, sizeof(buf)));
		(*n)++;
	}
	if (*n > 0)
		qsort(*v, *n, sizeof(**v), msg_cmp);
	for (size_t i = 1; i < *n; i++)
		if ((*v)[i].num == (*v)[i - 1].num)
			return fail_set(f, FAIL_PROTO, "UIDL lists message %u twice",
			    (*v)[i].num);
	return pop3_unique_uids(*v, *n, f);
}

/* The LIST listing, merged into v by message number. */
static enum fail_kind
pop3_read_list(struct pop3 *s, struct msg *v, size_t n, struct fail *f)
{
	char *line, buf[POP3_CLEAN_MAX];
	unsigned char *sized;
	enum fail_kind k = FAIL_NONE;
	struct msg key, *m;
	unsigned long long size;
	size_t i;
	int end;

	sized = xcalloc(n + 1, 1);
	for (;;) {
		if ((k = pop3_read_ml(s, &line, &end, f)) != FAIL_NONE)
			goto out;
		if (end)
			break;
		if (pop3_parse_list(line, &key.num, &size) == -1) {
			k = fail_set(f, FAIL_PROTO, "malformed LIST line: %s",
			    clean(line, buf, sizeof(buf)));
			goto out;
		}
		m = n == 0 ? NULL : bsearch(&key, v, n, sizeof(*v), msg_cmp);
		if (m == NULL || sized[m - v]) {
			k = fail_set(f, FAIL_PROTO, "LIST line does not match "
			    "UIDL: %s", clean(line, buf, sizeof(buf)));
			goto out;
		}
		m->size = size;
		sized[m - v] = 1;
	}
	for (i = 0; i < n; i++)
		if (!sized[i]) {
			k = fail_set(f, FAIL_PROTO, "LIST lacks message %u",
			    v[i].num);
			goto out;
		}
out:
	free(sized);
	return k;
}

static enum fail_kind
pop3_list_status(struct pop3 *s, const char *what, struct fail *f)
{
	char buf[POP3_CLEAN_MAX];
	const char *text;
	enum fail_kind k;
	int ok;

	if ((k = pop3_reply(s, what, &ok, &text, f)) != FAIL_NONE)
		return k;
	if (ok)
		return FAIL_NONE;
	if (strcmp(what, "UIDL") == 0)
		return fail_set(f, FAIL_PROTO, "server does not support UIDL; "
		    "cannot tell new mail from old");
	return fail_set(f, FAIL_PROTO, "%s failed: %s", what,
	    clean(text, buf, sizeof(buf)));
}

static enum fail_kind
pop3_list(void *src, uint32_t since, struct msg **vp, size_t *np,
    struct fail *f)
{
	struct pop3 *s = src;
	struct msg *v = NULL;
	size_t n = 0;
	enum fail_kind k;
	int piped = s->caps.pipelining;

	*vp = NULL;
	*np = 0;
	if ((k = pop3_send(s, "UIDL", NULL, 0, f)) != FAIL_NONE)
		goto fail;
	if (piped && (k = pop3_send(s, "LIST", NULL, 0, f)) != FAIL_NONE)
		goto fail;
	if ((k = pop3_list_status(s, "UIDL", f)) != FAIL_NONE ||
	    (k = pop3_read_uidl(s, &v, &n, f)) != FAIL_NONE)
		goto fail;
	if (!piped && (k = pop3_send(s, "LIST", NULL, 0, f)) != FAIL_NONE)
		goto fail;
	if ((k = pop3_list_status(s, "LIST", f)) != FAIL_NONE ||
	    (k = pop3_read_list(s, v, n, f)) != FAIL_NONE)
		goto fail;
	log_debug("pop3: %zu messages", n);
	*vp = v;
	*np = n;
	return FAIL_NONE;
fail:
	free(v);
	return k;
}

static int
pop3_emit(struct pop3_fetch *fx, const char *p, size_t n)
{
	enum fail_kind k;

	k = fx->sink->write(fx->sink->arg, p, n, &fx->sf);
	if (k == FAIL_NONE)
		return 0;
	fx->failed = fx->sf.kind = k;
	return -1;
}

/* Decoder output into the sink, holding back the last two bytes: a message
 * stored without a final line end gets one from the server (a "." line must
 * start a line), and pop3_body() takes it off again. */
static int
pop3_fetch_out(void *arg, const char *p, size_t n)
{
	struct pop3_fetch *fx = arg;

	if (n >= 2) {
		if (fx->ntail && pop3_emit(fx, fx->tail, fx->ntail) < 0)
			return -1;
		if (n > 2 && pop3_emit(fx, p, n - 2) < 0)
			return -1;
		memcpy(fx->tail, p + n - 2, 2);
		fx->ntail = 2;
		return 0;
	}
	if (n == 1 && fx->ntail == 2) {
		if (pop3_emit(fx, fx->tail, 1) < 0)
			return -1;
		fx->tail[0] = fx->tail[1];
		fx->ntail = 1;
	}
	if (n == 1)
		fx->tail[fx->ntail++] = p[0];
	return 0;
}

/* The end of a body: the held-back CRLF is the server's own when the body
 * is exactly two bytes longer than the size LIST announced. */
static void
pop3_body_end(struct pop3_fetch *fx, unsigned long long bytes,
    unsigned long long size)
{
	if (fx->failed || fx->ntail == 0)
		return;
	if (fx->ntail == 2 && memcmp(fx->tail, "\r\n", 2) == 0 &&
	    bytes == size + 2) {
		log_debug("pop3: dropped the line end the server added");
		return;
	}
	(void)pop3_emit(fx, fx->tail, fx->ntail);
}

/* The payload of a multi-line reply (after its +OK line), read from the
 * connection's buffer through the dot decoder to out(arg, ...) up to and
 * including the "." line. Once out returns -1 it is not called again and
 * the rest of the reply is drained; out may be NULL (drain only). *bytes is
 * the payload's size. With max != 0, a payload over max bytes is refused. */
static enum fail_kind
pop3_multiline(struct pop3 *s, dot_out_fn out, void *arg,
    unsigned long long max, unsigned long long *bytes, struct fail *f)
{
	struct dot_decoder d;
	enum dot_result r;
	enum fail_kind k;
	const char *p;
	size_t n, used;

	dot_decoder_init(&d);
	do {
		if ((k = conn_peek(s->conn, &p, &n, f)) != FAIL_NONE)
			return k;
		r = dot_decode(&d, p, n, &used, out, arg);
		conn_consume(s->conn, used);
		if (r == DOT_SINK_FAILED)
			out = NULL;
		if (max != 0 && d.bytes > max)
			return fail_set(f, FAIL_PROTO, "reply longer than %llu "
			    "bytes", max);
	} while (r != DOT_DONE);
	*bytes = d.bytes;
	return FAIL_NONE;
}

/* Stream one body from the connection through the decoder. */
static enum fail_kind
pop3_body(struct pop3 *s, struct pop3_fetch *fx, unsigned long long size,
    struct fail *f)
{
	unsigned long long bytes;
	enum fail_kind k;
	char t[64];

	fx->ntail = 0;
	k = pop3_multiline(s, fx->failed ? NULL : pop3_fetch_out, fx, 0, &bytes,
	    f);
	if (k != FAIL_NONE)
		return k;
	pop3_body_end(fx, bytes, size);
	if (log_enabled(LOG_LVL_TRACE)) {
		snprintf(t, sizeof(t), "[message body, %llu bytes]", bytes);
		log_trace("<", t, strlen(t));
	}
	return FAIL_NONE;
}

/* The reply to RETR for msgs[i]: begin, body, end (or abort). */
static enum fail_kind
pop3_retr_reply(struct pop3 *s, const struct msg *m, size_t i,
    struct pop3_fetch *fx, struct fail *f)
{
	const struct msg_sink *sink = fx->sink;
	char buf[POP3_CLEAN_MAX];
	const char *text;
	enum fail_kind k;
	int ok, began = 0;

	if ((k = pop3_reply(s, "RETR", &ok, &text, f)) != FAIL_NONE)
		return k;
	if (!ok) {
		log_warnx("%s: message %s could not be retrieved, left for the "
		    "next run: %s", s->server, m->uid,
		    clean(text, buf, sizeof(buf)));
		return FAIL_NONE;
	}
	if (!fx->failed) {
		k = sink->begin(sink->arg, i, &fx->sf);
		if (k != FAIL_NONE)
			fx->failed = fx->sf.kind = k;
		else
			began = 1;
	}
	if ((k = pop3_body(s, fx, m->size, f)) != FAIL_NONE) {
		if (began && !fx->failed)
			sink->abort(sink->arg, i);
		return k;
	}
	if (began && !fx->failed) {
		k = sink->end(sink->arg, i, &fx->sf);
		if (k != FAIL_NONE)
			fx->failed = fx->sf.kind = k;
	}
	return FAIL_NONE;
}

/* "VERB n" or "VERB n extra" for the message. */
static enum fail_kind
pop3_send_num(struct pop3 *s, const char *verb, unsigned num,
    const char *extra, struct fail *f)
{
	char arg[32];

	snprintf(arg, sizeof(arg), "%u%s%s", num, extra != NULL ? " " : "",
	    extra != NULL ? extra : "");
	return pop3_send(s, verb, arg, 0, f);
}

/* Send b's command for msgs[0..n) and read the replies in order: with
 * PIPELINING up to s->window commands are in flight, else one at a time.
 * Once b->stop says so, no more commands go out; the replies to those
 * already sent are still read. */
static enum fail_kind
pop3_batch(struct pop3 *s, const struct msg *const *msgs, size_t n,
    const struct pop3_batch *b, struct fail *f)
{
	size_t sent = 0, done = 0;
	enum fail_kind k;

	while (done < n) {
		while (sent < n && sent - done < s->window &&
		    (b->stop == NULL || !b->stop(b->arg))) {
			k = pop3_send_num(s, b->verb, msgs[sent]->num, b->extra, f);
			if (k != FAIL_NONE)
				return k;
			sent++;
		}
		if (done == sent)
			break;          /* stopped; nothing outstanding */
		if ((k = b->reply(s, msgs[done], done, b->arg, f)) != FAIL_NONE)
			return k;
		done++;
	}
	return FAIL_NONE;
}

static enum fail_kind
fetch_reply(struct pop3 *s, const struct msg *m, size_t i, void *arg,
    struct fail *f)
{
	return pop3_retr_reply(s, m, i, arg, f);
}

static int
fetch_stop(void *arg)
{
	const struct pop3_fetch *fx = arg;

	return fx->failed != FAIL_NONE;
}

static enum fail_kind
pop3_fetch(void *src, const struct msg *const *msgs, size_t n,
    const struct msg_sink *sink, struct fail *f)
{
	struct pop3 *s = src;
	struct pop3_fetch fx = { .sink = sink, .failed = FAIL_NONE };
	struct pop3_batch b = {
		.verb = "RETR", .reply = fetch_reply, .stop = fetch_stop,
		.arg = &fx,
	};
	enum fail_kind k;

	if ((k = pop3_batch(s, msgs, n, &b, f)) != FAIL_NONE)
		return k;
	if (fx.failed) {
		*f = fx.sf;
		f->kind = fx.failed;
		return fx.failed;
	}
	return FAIL_NONE;
}

/* A refused DELE leaves that one message on the server: a warning, and
 * the others go on. */
static enum fail_kind
pop3_dele_reply(struct pop3 *s, const struct msg *m, size_t *refused,
    struct fail *f)
{
	char buf[POP3_CLEAN_MAX];
	const char *text;
	enum fail_kind k;
	int ok;

	if ((k = pop3_reply(s, "DELE", &ok, &text, f)) != FAIL_NONE)
		return k;
	if (!ok) {
		log_warnx("%s: message %s stays on the server: DELE refused: %s",
		    s->server, m->uid, clean(text, buf, sizeof(buf)));
		(*refused)++;
	}
	return FAIL_NONE;
}

static enum fail_kind
dele_reply(struct pop3 *s, const struct msg *m, size_t i, void *arg,
    struct fail *f)
{
	return pop3_dele_reply(s, m, arg, f);
}

static enum fail_kind
pop3_del(void *src, const struct msg *const *msgs, size_t n, size_t *refused,
    struct fail *f)
{
	struct pop3 *s = src;
	struct pop3_batch b = { .verb = "DELE", .reply = dele_reply,
	    .arg = refused };
	enum fail_kind k;

	*refused = 0;
	if ((k = pop3_batch(s, msgs, n, &b, f)) != FAIL_NONE)
		return k;
	if (*refused > 0)
		return fail_set(f, FAIL_TEMP, "the server refused to delete %zu "
		    "of %zu messages; they stay there", *refused, n);
	return FAIL_NONE;
}

/* ---- header-first: TOP n 0 ---- */

/* The decoder's output for a TOP reply: hold the header section, up to and
 * including the empty line that ends it. Returns -1 (the decoder then only
 * drains) once that line was seen, or once the header is too big to hold:
 * body lines a server sends despite the 0 are never looked at. */
static int
pop3_hdr_out(void *arg, const char *p, size_t n)
{
	struct pop3_hdr *h = arg;
	size_t i;

	for (i = 0; i < n && !h->done; i++) {
		if (p[i] == '\n') {
			h->done = h->linelen == 0 || (h->linelen == 1 && h->cr);
			h->lines++;
			h->linelen = 0;
		} else if (h->linelen++ == 0)
			h->cr = p[i] == '\r';
	}
	if (h->len + i > POP3_HDR_MAX) {
		h->big = 1;
		return -1;
	}
	memcpy(h->buf + h->len, p, i);
	h->len += i;
	return h->done ? -1 : 0;
}

/* The most a TOP n 0 reply may carry: a server that ignores the 0 sends the
 * whole message, and LIST sizes are not always exact; beyond this it is not
 * a reply to TOP. */
static unsigned long long
pop3_top_limit(const struct msg *m)
{
	if (m->size > (ULLONG_MAX - POP3_TOP_SLACK) / 2)
		return 0;       /* no limit */
	return 2 * m->size + POP3_TOP_SLACK;
}

/* An -ERR to TOP: that message gets no header. On a server that did not
 * answer CAPA (so TOP is optional and unannounced), a first TOP refused
 * before any succeeded means no TOP at all: headers() sends no more, and
 * header_first() says 0 from now on. */
static void
pop3_top_refused(struct pop3 *s, const struct msg *m, const char *text)
{
	char buf[POP3_CLEAN_MAX];

	clean(text, buf, sizeof(buf));
	if (!s->caps.seen_capa && !s->top_ok && !s->no_top) {
		s->no_top = 1;
		log_verbose("pop3: TOP refused (%s); taking the server not to "
		    "support it", buf);
		return;
	}
	log_verbose("pop3: message %s: TOP refused, no header: %s", m->uid,
	    buf);
}

static void
pop3_hdr_trace(const struct pop3_hdr *h, unsigned long long bytes)
{
	char t[128];

	if (!log_enabled(LOG_LVL_TRACE))
		return;
	if (h->big)
		snprintf(t, sizeof(t), "[message header over %d bytes, %llu "
		    "bytes drained]", POP3_HDR_MAX, bytes);
	else
		snprintf(t, sizeof(t), "[message header, %u lines, %zu bytes; "
		    "%llu bytes after it ignored]", h->lines, h->len,
		    bytes - h->len);
	log_trace("<", t, strlen(t));
}

/* The reply to TOP for msgs[i]: its header section to the callback. */
static enum fail_kind
pop3_top_reply(struct pop3 *s, const struct msg *m, size_t i,
    struct pop3_headers *hx, struct fail *f)
{
	struct pop3_hdr *h = &hx->h;
	unsigned long long bytes;
	const char *text;
	enum fail_kind k;
	int ok;

	if ((k = pop3_reply(s, "TOP", &ok, &text, f)) != FAIL_NONE)
		return k;
	if (!ok) {
		pop3_top_refused(s, m, text);
		return FAIL_NONE;
	}
	s->top_ok = 1;
	h->len = h->linelen = 0;
	h->lines = 0;
	h->cr = h->done = h->big = 0;
	k = pop3_multiline(s, pop3_hdr_out, h, pop3_top_limit(m), &bytes, f);
	if (k != FAIL_NONE)
		return k;
	pop3_hdr_trace(h, bytes);
	if (h->big) {
		log_verbose("pop3: message %s: header over %d KiB, not used",
		    m->uid, POP3_HDR_MAX / 1024);
		return FAIL_NONE;
	}
	hx->cb(hx->arg, i, h->buf, h->len);
	return FAIL_NONE;
}

/* A failure reading a TOP reply names the message. */
static enum fail_kind
headers_reply(struct pop3 *s, const struct msg *m, size_t i, void *arg,
    struct fail *f)
{
	char why[sizeof(f->msg)];
	enum fail_kind k;

	if ((k = pop3_top_reply(s, m, i, arg, f)) == FAIL_NONE)
		return FAIL_NONE;
	snprintf(why, sizeof(why), "%s", f->msg);
	return fail_set(f, k, "TOP %u (message %s): %s", m->num, m->uid, why);
}

static int
pop3_header_first(void *src)
{
	const struct pop3 *s = src;

	if (s->no_top)
		return 0;
	return !s->caps.seen_capa || s->caps.top;
}

static int
headers_stop(void *arg)
{
	const struct pop3_headers *hx = arg;

	return !pop3_header_first(hx->s);
}

static enum fail_kind
pop3_headers(void *src, const struct msg *const *msgs, size_t n,
    void (*cb)(void *arg, size_t i, const char *p, size_t len), void *arg,
    struct fail *f)
{
	struct pop3 *s = src;
	struct pop3_headers hx = { .s = s, .cb = cb, .arg = arg };
	struct pop3_batch b = {
		.verb = "TOP", .extra = "0", .reply = headers_reply,
		.stop = headers_stop, .arg = &hx,
	};
	enum fail_kind k;

	/* headers_stop() is asked before every TOP, the first included: when
	 * header_first() is 0, nothing is sent. */
	if (n == 0)
		return FAIL_NONE;
	hx.h.buf = xmalloc(POP3_HDR_MAX);
	k = pop3_batch(s, msgs, n, &b, f);
	free(hx.h.buf);
	return k;
}

static enum fail_kind
pop3_quit(struct pop3 *s, struct fail *f)
{
	char buf[POP3_CLEAN_MAX];
	const char *text;
	enum fail_kind k;
	int ok;

	pop3_set_state(s, P_QUIT);
	if ((k = pop3_send(s, "QUIT", NULL, 0, f)) != FAIL_NONE ||
	    (k = pop3_reply(s, "QUIT", &ok, &text, f)) != FAIL_NONE) {
		char why[sizeof(f->msg)];

		snprintf(why, sizeof(why), "%s", f->msg);
		return fail_set(f, k, "QUIT failed; deletions may not have "
		    "been applied: %s", why);
	}
	if (!ok)
		return fail_set(f, FAIL_PROTO, "QUIT failed; deletions not "
		    "applied: %s", clean(text, buf, sizeof(buf)));
	return FAIL_NONE;
}

static enum fail_kind
pop3_close(void *src, int commit, struct fail *f)
{
	struct pop3 *s = src;
	enum fail_kind k = FAIL_NONE;

	if (s == NULL)
		return FAIL_NONE;
	if (commit)
		k = pop3_quit(s, f);
	pop3_set_state(s, P_CLOSED);
	pop3_free(s);
	return k;
}

static const char *
pop3_server(void *src)
{
	struct pop3 *s = src;

	return s->server;
}

const struct source_ops pop3_source = {
	.name = "pop3",
	.open = pop3_open,
	.list = pop3_list,
	.fetch = pop3_fetch,
	.del = pop3_del,
	.headers = pop3_headers,
	.header_first = pop3_header_first,
	.close = pop3_close,
	.server = pop3_server,
};
