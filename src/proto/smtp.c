/* smtp.c - the SMTP/LMTP client session (RFC 5321, RFC 2033 LMTP, RFC 2920
 * PIPELINING, RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 1870 SIZE, RFC 6152
 * 8BITMIME, RFC 6531 SMTPUTF8).
 *
 * Every line to the server goes through smtp_send(), every reply through
 * smtp_reply(): the trace and the redaction of AUTH secrets live there. The
 * body is streamed straight into the connection's write buffer, dot-stuffed
 * on the way; it is never copied whole.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "crypto.h"
#include "fail.h"
#include "log.h"
#include "sasl.h"
#include "smtp.h"
#include "xmalloc.h"

#define SMTP_TEXT_MAX           300     /* server text kept for messages */
#define SMTP_ADDR_MAX           512     /* longest envelope address */
#define SMTP_SASL_ROUNDS_MAX    16
#define REDACTED                "********"

enum smtp_state {
	S_CONNECT, S_GREETING, S_HELLO, S_STARTTLS, S_AUTH, S_READY, S_MAIL,
	S_DATA, S_QUIT, S_DEAD,
};

static const char *const smtp_state_names[] = {
	[S_CONNECT] = "CONNECT", [S_GREETING] = "GREETING", [S_HELLO] = "HELLO",
	[S_STARTTLS] = "STARTTLS", [S_AUTH] = "AUTH", [S_READY] = "READY",
	[S_MAIL] = "MAIL", [S_DATA] = "DATA", [S_QUIT] = "QUIT",
	[S_DEAD] = "DEAD",
};

struct smtp {
	struct conn *conn;
	struct smtp_params p;
	enum smtp_state state;
	unsigned caps;
	unsigned sasl;                  /* 1 << enum sasl_mech offered */
	unsigned long long size_max;
	int need_rset;                  /* a transaction came before */
	int early;                      /* see smtp_dropped_early() */
	int bol;                        /* body: at the start of a line */
	unsigned long long body_bytes;
	unsigned rcpts;                 /* accepted recipients (LMTP replies) */
	char text[SMTP_TEXT_MAX];       /* the last reply's text, cleaned */
};

static const char *
proto_name(const struct smtp *s)
{
	return s->p.proto == SMTP_PROTO_LMTP ? "lmtp" : "smtp";
}

static void
smtp_set_state(struct smtp *s, enum smtp_state to)
{
	if (s->state != to)
		log_debug("%s: %s -> %s", proto_name(s),
		    smtp_state_names[s->state], smtp_state_names[to]);
	s->state = to;
}

/* The connection is gone or out of step: no more transactions. */
static enum fail_kind
smtp_dead(struct smtp *s, enum fail_kind k)
{
	smtp_set_state(s, S_DEAD);
	return k;
}

/* ---- the pure part ----------------------------------------------------- */

int
smtp_reply_line(const char *line, int *code, int *more, const char **text)
{
	if (!isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (line[0] < '2' || line[0] > '5' || line[1] > '5')
		return -1;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (line[3] == '\0') {
		*more = 0;
		*text = line + 3;
		return 0;
	}
	if (line[3] != ' ' && line[3] != '-')
		return -1;
	*more = line[3] == '-';
	*text = line + 4;
	return 0;
}

/* Server text made fit for a one-line message, appended to buf. */
static void
clean_append(char *buf, size_t size, const char *in)
{
	size_t o = strlen(buf);

	for (; *in != '\0' && o + 4 < size; in++) {
		unsigned char ch = (unsigned char)*in;

		buf[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (*in != '\0' && o + 3 < size)
		memcpy(buf + o, "...", 3), o += 3;
	buf[o] = '\0';
}

/* ---- lines ------------------------------------------------------------- */

/* The one place lines are sent: verb [SP arg] CRLF. When secret, the trace
 * shows "verb ********" (or "********" for an empty verb). */
static enum fail_kind
smtp_send(struct smtp *s, const char *verb, const char *arg, int secret,
    struct fail *f)
{
	enum fail_kind k;
	int sp = verb[0] != '\0' && arg != NULL;

	if (log_enabled(LOG_LVL_TRACE)) {
		char t[SMTP_LINE_MAX];
		int len;

		len = snprintf(t, sizeof(t), "%s%s%s", verb, sp ? " " : "",
		    arg == NULL ? "" : secret ? REDACTED : arg);
		if (len < 0)
			len = 0;
		else if ((size_t)len >= sizeof(t))
			len = (int)sizeof(t) - 1;
		log_trace(">", t, (size_t)len);
	}
	if ((k = conn_write(s->conn, verb, strlen(verb), f)) != FAIL_NONE ||
	    (sp && (k = conn_write(s->conn, " ", 1, f)) != FAIL_NONE) ||
	    (arg != NULL &&
	    (k = conn_write(s->conn, arg, strlen(arg), f)) != FAIL_NONE) ||
	    (k = conn_write(s->conn, "\r\n", 2, f)) != FAIL_NONE)
		return smtp_dead(s, k);
	return FAIL_NONE;
}

/* Capabilities from one EHLO/LHLO line after the first. */
static void
smtp_cap_line(struct smtp *s, const char *t)
{
	size_t n = strcspn(t, " =");
	const char *arg = t + n;

	while (*arg == ' ' || *arg == '=')
		arg++;
	if (n == 10 && strncasecmp(t, "PIPELINING", n) == 0)
		s->caps |= SMTP_CAP_PIPELINING;
	else if (n == 4 && strncasecmp(t, "SIZE", n) == 0) {
		s->caps |= SMTP_CAP_SIZE;
		s->size_max = strtoull(arg, NULL, 10);
	} else if (n == 8 && strncasecmp(t, "8BITMIME", n) == 0)
		s->caps |= SMTP_CAP_8BITMIME;
	else if (n == 8 && strncasecmp(t, "SMTPUTF8", n) == 0)
		s->caps |= SMTP_CAP_SMTPUTF8;
	else if (n == 8 && strncasecmp(t, "STARTTLS", n) == 0)
		s->caps |= SMTP_CAP_STARTTLS;
	else if (n == 4 && strncasecmp(t, "AUTH", n) == 0) {
		s->caps |= SMTP_CAP_AUTH;
		while (*arg != '\0') {
			size_t m = strcspn(arg, " ");
			enum sasl_mech mech = sasl_mech_parse(arg, m);

			if (mech != SASL_NONE)
				s->sasl |= 1u << mech;
			arg += m;
			while (*arg == ' ')
				arg++;
		}
	}
}

/* The one place replies are read: every line of a multi-line reply, checked
 * (code range, the same code on every line, printable, line and count
 * caps). *code is the reply's code; s->text its text (lines joined by
 * " "). With ehlo, lines after the first are read as capabilities. */
static enum fail_kind
smtp_reply(struct smtp *s, int *code, int ehlo, struct fail *f)
{
	char *line, buf[160];
	const char *text;
	enum fail_kind k;
	size_t len;
	int c, more, lines = 0;

	s->text[0] = '\0';
	*code = 0;
	do {
		k = conn_readline(s->conn, &line, &len, SMTP_LINE_MAX, f);
		if (k != FAIL_NONE)
			return smtp_dead(s, k);
		if (log_enabled(LOG_LVL_TRACE))
			log_trace("<", line, len);
		buf[0] = '\0';
		clean_append(buf, sizeof(buf), line);
		if (memchr(line, '\0', len) != NULL)
			return smtp_dead(s, fail_set(f, FAIL_PROTO,
			    "NUL byte in a reply line"));
		if (smtp_reply_line(line, &c, &more, &text) == -1)
			return smtp_dead(s, fail_set(f, FAIL_PROTO,
			    "malformed reply: %s", buf));
		if (lines > 0 && c != *code)
			return smtp_dead(s, fail_set(f, FAIL_PROTO, "reply code "
			    "changed within a multi-line reply: %s", buf));
		if (++lines > SMTP_REPLY_LINES_MAX)
			return smtp_dead(s, fail_set(f, FAIL_PROTO,
			    "multi-line reply too long"));
		*code = c;
		if (ehlo && lines > 1)
			smtp_cap_line(s, text);
		if (s->text[0] != '\0' && strlen(s->text) + 2 < sizeof(s->text))
			strcat(s->text, " ");
		clean_append(s->text, sizeof(s->text), text);
	} while (more);
	return FAIL_NONE;
}

/* A reply outside the class wanted: 4xx temp, 5xx perm (as given), an
 * unexpected class is a protocol error. */
static enum fail_kind
smtp_refused(struct smtp *s, const char *what, int code, enum fail_kind perm,
    struct fail *f)
{
	enum fail_kind k = code / 100 == 4 ? FAIL_TEMP :
	    code / 100 == 5 ? perm : FAIL_PROTO;

	return fail_set(f, k, "%s: %s %s: %d %s", proto_name(s), what,
	    k == FAIL_PROTO ? "got an unexpected reply" : "refused", code,
	    s->text);
}

/* ---- opening ----------------------------------------------------------- */

static enum fail_kind
smtp_greeting(struct smtp *s, struct fail *f)
{
	enum fail_kind k;
	int code;

	smtp_set_state(s, S_GREETING);
	if ((k = smtp_reply(s, &code, 0, f)) != FAIL_NONE)
		return k;
	if (code != 220)
		return fail_set(f, code / 100 == 4 ? FAIL_TEMP : FAIL_CONN,
		    "%s: server refused the connection: %d %s", proto_name(s),
		    code, s->text);
	return FAIL_NONE;
}

/* EHLO (LHLO for LMTP); for SMTP, HELO when EHLO is refused. */
static enum fail_kind
smtp_hello(struct smtp *s, struct fail *f)
{
	const char *name = s->p.helo != NULL ? s->p.helo : "localhost";
	int lmtp = s->p.proto == SMTP_PROTO_LMTP, code;
	enum fail_kind k;

	smtp_set_state(s, S_HELLO);
	s->caps = 0;
	s->sasl = 0;
	s->size_max = 0;
	if ((k = smtp_send(s, lmtp ? "LHLO" : "EHLO", name, 0, f)) != FAIL_NONE ||
	    (k = smtp_reply(s, &code, 1, f)) != FAIL_NONE)
		return k;
	if (code / 100 == 2) {
		s->caps |= SMTP_CAP_ESMTP;
		return FAIL_NONE;
	}
	s->caps = 0;
	s->sasl = 0;
	if (lmtp || code / 100 != 5)
		return fail_set(f, code / 100 == 4 ? FAIL_TEMP : FAIL_PROTO,
		    "%s: %s refused: %d %s", proto_name(s),
		    lmtp ? "LHLO" : "EHLO", code, s->text);
	log_debug("smtp: EHLO refused; trying HELO");
	if ((k = smtp_send(s, "HELO", name, 0, f)) != FAIL_NONE ||
	    (k = smtp_reply(s, &code, 0, f)) != FAIL_NONE)
		return k;
	if (code / 100 != 2)
		return fail_set(f, code / 100 == 4 ? FAIL_TEMP : FAIL_PROTO,
		    "smtp: HELO refused: %d %s", code, s->text);
	return FAIL_NONE;
}

static enum fail_kind
smtp_starttls(struct smtp *s, struct fail *f)
{
	int required = s->p.tls == SMTP_TLS_STARTTLS, code;
	enum fail_kind k;

	if (!(s->caps & SMTP_CAP_STARTTLS)) {
		if (required)
			return fail_set(f, FAIL_CONN, "%s: server does not offer "
			    "STARTTLS; refusing to go on without TLS",
			    proto_name(s));
		return FAIL_NONE;
	}
	smtp_set_state(s, S_STARTTLS);
	if ((k = smtp_send(s, "STARTTLS", NULL, 0, f)) != FAIL_NONE ||
	    (k = smtp_reply(s, &code, 0, f)) != FAIL_NONE)
		return k;
	if (code != 220) {
		if (required)
			return fail_set(f, FAIL_CONN, "%s: STARTTLS refused: "
			    "%d %s", proto_name(s), code, s->text);
		log_verbose("%s: STARTTLS refused (%d %s); going on without "
		    "TLS", proto_name(s), code, s->text);
		return FAIL_NONE;
	}
	if ((k = conn_starttls(s->conn, f)) != FAIL_NONE)
		return smtp_dead(s, k);
	log_verbose("%s: %s", proto_name(s), conn_describe(s->conn));
	return smtp_hello(s, f);
}

/* After a local SASL error: "*", then the server's 501. */
static void
smtp_sasl_cancel(struct smtp *s)
{
	struct fail ignored;
	int code;

	if (smtp_send(s, "*", NULL, 0, &ignored) == FAIL_NONE)
		(void)smtp_reply(s, &code, 0, &ignored);
}

/* One "334 b64" challenge: decode, step, answer (redacted). */
static enum fail_kind
smtp_sasl_challenge(struct smtp *s, struct sasl *sasl, const char *b64,
    struct fail *note, struct fail *f)
{
	unsigned char *in = NULL, *out = NULL;
	size_t inlen = 0, outlen = 0;
	enum fail_kind k;
	char *resp;

	if (base64_decode(b64, strlen(b64), &in, &inlen) == -1) {
		smtp_sasl_cancel(s);
		return fail_set(f, FAIL_PROTO, "%s: invalid base64 in a SASL "
		    "challenge", proto_name(s));
	}
	k = sasl_step(sasl, in, inlen, &out, &outlen, note);
	free(in);
	if (k != FAIL_NONE) {
		*f = *note;
		f->kind = k;
		smtp_sasl_cancel(s);
		return k;
	}
	resp = base64_encode(out, outlen);
	explicit_bzero(out, outlen);
	free(out);
	k = smtp_send(s, "", resp, 1, f);
	free_secret(resp);
	return k;
}

/* "AUTH MECH [initial-response]", redacted in the trace. */
static enum fail_kind
smtp_sasl_start(struct smtp *s, struct sasl *sasl, enum sasl_mech m,
    struct fail *f)
{
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	char verb[64], *b64;
	enum fail_kind k;

	snprintf(verb, sizeof(verb), "AUTH %s", sasl_mech_name(m));
	if (!sasl_initial(sasl, &raw, &rawlen))
		return smtp_send(s, verb, NULL, 0, f);
	b64 = rawlen == 0 ? xstrdup("=") : base64_encode(raw, rawlen);
	explicit_bzero(raw, rawlen);
	free(raw);
	k = smtp_send(s, verb, b64, 1, f);
	free_secret(b64);
	return k;
}

static enum fail_kind
smtp_sasl(struct smtp *s, enum sasl_mech m, struct fail *f)
{
	struct sasl_params sp = {
		.user = s->p.user, .secret = s->p.secret,
		.host = s->p.conn.host, .port = s->p.conn.port,
	};
	struct fail note = { .kind = FAIL_NONE, .msg = "" };
	struct sasl *sasl;
	enum fail_kind k;
	int code, rounds = 0;

	if ((sasl = sasl_new(m, &sp)) == NULL)
		return fail_set(f, FAIL_AUTH, "%s: SASL %s unavailable",
		    proto_name(s), sasl_mech_name(m));
	if ((k = smtp_sasl_start(s, sasl, m, f)) != FAIL_NONE)
		goto out;
	for (;;) {
		if ((k = smtp_reply(s, &code, 0, f)) != FAIL_NONE)
			goto out;
		if (code != 334)
			break;
		if (++rounds > SMTP_SASL_ROUNDS_MAX) {
			smtp_sasl_cancel(s);
			k = fail_set(f, FAIL_PROTO, "%s: too many SASL "
			    "challenges", proto_name(s));
			goto out;
		}
		if ((k = smtp_sasl_challenge(s, sasl, s->text, &note, f)) !=
		    FAIL_NONE)
			goto out;
	}
	if (code / 100 != 2) {
		k = smtp_refused(s, "AUTH", code, FAIL_AUTH, f);
		if (k == FAIL_PROTO)
			k = f->kind = FAIL_AUTH;
		if (k == FAIL_AUTH && sasl_failed(sasl))
			fail_set(f, FAIL_AUTH, "%s: login refused: %s",
			    proto_name(s), note.msg);
		goto out;
	}
	k = sasl_finish(sasl, NULL, 0, f);
out:
	sasl_free(sasl);
	return k;
}

static enum fail_kind
smtp_auth(struct smtp *s, struct fail *f)
{
	enum sasl_mech m = s->p.mech;

	smtp_set_state(s, S_AUTH);
	if (s->p.secret == NULL)
		return fail_set(f, FAIL_CONFIG, "%s: password missing",
		    proto_name(s));
	if (m == SASL_NONE) {
		if (s->sasl & (1u << SASL_PLAIN))
			m = SASL_PLAIN;
		else if (s->sasl & (1u << SASL_LOGIN))
			m = SASL_LOGIN;
		else
			return fail_set(f, FAIL_AUTH, "%s: server offers no "
			    "AUTH mechanism mailpull can use", proto_name(s));
	} else if (!(s->sasl & (1u << m)))
		return fail_set(f, FAIL_AUTH, "%s: server does not offer AUTH "
		    "%s", proto_name(s), sasl_mech_name(m));
	if (sasl_mech_is_cleartext(m) && !conn_is_tls(s->conn) &&
	    !s->p.allow_plaintext)
		return fail_set(f, FAIL_AUTH, "%s: refusing to send a password "
		    "over an unencrypted connection", proto_name(s));
	log_verbose("%s: logging in with SASL %s", proto_name(s),
	    sasl_mech_name(m));
	return smtp_sasl(s, m, f);
}

enum fail_kind
smtp_open(struct smtp **out, const struct smtp_params *p, struct fail *f)
{
	struct smtp *s;
	enum fail_kind k;

	*out = NULL;
	s = xcalloc(1, sizeof(*s));
	s->p = *p;
	s->state = S_CONNECT;
	k = conn_open(&s->conn, &p->conn, p->tls == SMTP_TLS_IMPLICIT ?
	    TLS_IMPLICIT : TLS_NONE, f);
	if (k != FAIL_NONE) {
		free(s);
		return k;
	}
	if ((k = smtp_greeting(s, f)) != FAIL_NONE ||
	    (k = smtp_hello(s, f)) != FAIL_NONE)
		goto fail;
	if ((p->tls == SMTP_TLS_STARTTLS || p->tls == SMTP_TLS_OPPORTUNISTIC) &&
	    (k = smtp_starttls(s, f)) != FAIL_NONE)
		goto fail;
	if (p->user != NULL && (k = smtp_auth(s, f)) != FAIL_NONE)
		goto fail;
	smtp_set_state(s, S_READY);
	*out = s;
	return FAIL_NONE;
fail:
	conn_close(s->conn);
	free(s);
	return k;
}

unsigned
smtp_caps(const struct smtp *s)
{
	return s->caps;
}

unsigned long long
smtp_size_limit(const struct smtp *s)
{
	return s->size_max;
}

int
smtp_alive(const struct smtp *s)
{
	return s->state == S_READY;
}

int
smtp_dropped_early(const struct smtp *s)
{
	return s->early;
}

/* ---- a transaction ----------------------------------------------------- */

/* 0 if addr may go between angle brackets; *utf8 set for 8-bit bytes. */
static int
addr_ok(const char *addr, int *utf8)
{
	size_t n = 0;

	for (; *addr != '\0'; addr++, n++) {
		unsigned char c = (unsigned char)*addr;

		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return -1;
		if (c >= 0x80)
			*utf8 = 1;
	}
	return n <= SMTP_ADDR_MAX ? 0 : -1;
}

enum step { ST_RSET, ST_MAIL, ST_RCPT, ST_DATA, ST_N };

static const char *const step_names[ST_N] = {
	[ST_RSET] = "RSET", [ST_MAIL] = "MAIL FROM", [ST_RCPT] = "RCPT TO",
	[ST_DATA] = "DATA",
};

static enum fail_kind
smtp_step_send(struct smtp *s, enum step st, const char *mail,
    const char *rcpt, struct fail *f)
{
	switch (st) {
	case ST_RSET:   return smtp_send(s, "RSET", NULL, 0, f);
	case ST_MAIL:   return smtp_send(s, mail, NULL, 0, f);
	case ST_RCPT:   return smtp_send(s, rcpt, NULL, 0, f);
	default:        return smtp_send(s, "DATA", NULL, 0, f);
	}
}

/* Read the reply to step st; *ok is 1 if it is what the step wants. The
 * first failure is kept in *first. FAIL_CONN etc. end the session. */
static enum fail_kind
smtp_step_reply(struct smtp *s, enum step st, int *ok, struct fail *first,
    struct fail *f)
{
	enum fail_kind k;
	int code;

	if ((k = smtp_reply(s, &code, 0, f)) != FAIL_NONE) {
		if (st <= ST_MAIL && k == FAIL_CONN)
			s->early = 1;
		return k;
	}
	*ok = st == ST_DATA ? code == 354 : code / 100 == 2;
	if (st == ST_RCPT && *ok)
		s->rcpts++;
	if (!*ok && first->kind == FAIL_NONE) {
		if (st == ST_DATA && code / 100 == 2)
			fail_set(first, FAIL_PROTO, "%s: DATA got an "
			    "unexpected reply: %d %s", proto_name(s), code,
			    s->text);
		else
			smtp_refused(s, step_names[st], code,
			    st == ST_RSET ? FAIL_PROTO : FAIL_REJECTED, first);
	}
	return FAIL_NONE;
}

/* Send the steps, all at once with PIPELINING, else one by one; read their
 * replies in order. */
static enum fail_kind
smtp_steps(struct smtp *s, const enum step *steps, size_t n,
    const char *mail, const char *rcpt, struct fail *f)
{
	struct fail first = { .kind = FAIL_NONE, .msg = "" };
	int pipe = (s->caps & SMTP_CAP_PIPELINING) != 0, ok = 0, data_ok = 0;
	enum fail_kind k;
	size_t i;

	if (pipe) {
		for (i = 0; i < n; i++)
			if ((k = smtp_step_send(s, steps[i], mail, rcpt, f)) !=
			    FAIL_NONE) {
				s->early = 1;
				return k;
			}
	}
	for (i = 0; i < n; i++) {
		if (!pipe && (k = smtp_step_send(s, steps[i], mail, rcpt, f)) !=
		    FAIL_NONE) {
			s->early = steps[i] <= ST_MAIL;
			return k;
		}
		if ((k = smtp_step_reply(s, steps[i], &ok, &first, f)) !=
		    FAIL_NONE)
			return k;
		if (steps[i] == ST_DATA)
			data_ok = ok;
		if (!pipe && !ok)
			break;
	}
	if (first.kind == FAIL_NONE)
		return FAIL_NONE;
	if (data_ok) {
		/* RFC 2920: DATA was accepted although no recipient was: end
		 * an empty message, and ignore what the server says to it. */
		int code;

		if ((k = smtp_send(s, ".", NULL, 0, f)) != FAIL_NONE ||
		    (k = smtp_reply(s, &code, 0, f)) != FAIL_NONE)
			return k;
	}
	*f = first;
	return first.kind;
}

enum fail_kind
smtp_mail(struct smtp *s, const char *sender, const char *rcpt,
    unsigned long long size, struct fail *f)
{
	enum step steps[ST_N];
	char *mail, *to, sz[32];
	size_t n = 0;
	int utf8 = 0;
	enum fail_kind k;

	s->early = 0;
	if (s->state != S_READY)
		return fail_set(f, FAIL_CONN, "%s: the session is not ready for "
		    "a message", proto_name(s));
	if (addr_ok(sender, &utf8) == -1)
		return fail_set(f, FAIL_REJECTED, "%s: the envelope sender "
		    "cannot be sent", proto_name(s));
	if (addr_ok(rcpt, &utf8) == -1 || rcpt[0] == '\0')
		return fail_set(f, FAIL_CONFIG, "%s: the envelope recipient "
		    "cannot be sent", proto_name(s));
	if (utf8 && !(s->caps & SMTP_CAP_SMTPUTF8))
		log_debug("%s: 8-bit envelope but no SMTPUTF8 offered",
		    proto_name(s));
	sz[0] = '\0';
	if ((s->caps & SMTP_CAP_SIZE) && size > 0)
		snprintf(sz, sizeof(sz), " SIZE=%llu", size);
	mail = xasprintf("MAIL FROM:<%s>%s%s%s", sender, sz,
	    (s->caps & SMTP_CAP_8BITMIME) ? " BODY=8BITMIME" : "",
	    utf8 && (s->caps & SMTP_CAP_SMTPUTF8) ? " SMTPUTF8" : "");
	to = xasprintf("RCPT TO:<%s>", rcpt);
	if (s->need_rset)
		steps[n++] = ST_RSET;
	steps[n++] = ST_MAIL;
	steps[n++] = ST_RCPT;
	steps[n++] = ST_DATA;
	smtp_set_state(s, S_MAIL);
	s->need_rset = 1;
	s->rcpts = 0;
	k = smtp_steps(s, steps, n, mail, to, f);
	free(mail);
	free(to);
	if (k == FAIL_NONE) {
		smtp_set_state(s, S_DATA);
		s->bol = 1;
		s->body_bytes = 0;
	} else if (s->state == S_MAIL)
		smtp_set_state(s, S_READY);
	return k;
}

enum fail_kind
smtp_data(struct smtp *s, const char *p, size_t n, struct fail *f)
{
	const char *end = p + n, *nl;
	enum fail_kind k;

	if (s->state != S_DATA)
		return fail_set(f, FAIL_CONN, "%s: no message body open",
		    proto_name(s));
	s->body_bytes += n;
	while (p < end) {
		if (s->bol && *p == '.' &&
		    (k = conn_write(s->conn, ".", 1, f)) != FAIL_NONE)
			return smtp_dead(s, k);
		nl = memchr(p, '\n', (size_t)(end - p));
		s->bol = nl != NULL;
		nl = nl != NULL ? nl + 1 : end;
		if ((k = conn_write(s->conn, p, (size_t)(nl - p), f)) !=
		    FAIL_NONE)
			return smtp_dead(s, k);
		p = nl;
	}
	return FAIL_NONE;
}

enum fail_kind
smtp_data_end(struct smtp *s, struct fail *f)
{
	struct fail first = { .kind = FAIL_NONE, .msg = "" };
	const char *term = s->bol ? ".\r\n" : "\r\n.\r\n";
	enum fail_kind k;
	unsigned i, n;
	int code;

	if (s->state != S_DATA)
		return fail_set(f, FAIL_CONN, "%s: no message body open",
		    proto_name(s));
	if (log_enabled(LOG_LVL_TRACE)) {
		char t[64];
		int len = snprintf(t, sizeof(t), "[message body, %llu bytes]",
		    s->body_bytes);

		log_trace(">", t, (size_t)len);
		log_trace(">", ".", 1);
	}
	if ((k = conn_write(s->conn, term, strlen(term), f)) != FAIL_NONE ||
	    (k = conn_flush(s->conn, f)) != FAIL_NONE)
		return smtp_dead(s, k);
	/* LMTP: one reply per accepted recipient (RFC 2033 4.2). */
	n = s->p.proto == SMTP_PROTO_LMTP && s->rcpts > 0 ? s->rcpts : 1;
	for (i = 0; i < n; i++) {
		if ((k = smtp_reply(s, &code, 0, f)) != FAIL_NONE)
			return k;
		if (code / 100 != 2 && first.kind == FAIL_NONE)
			smtp_refused(s, "message (end of DATA)", code,
			    FAIL_REJECTED, &first);
	}
	smtp_set_state(s, S_READY);
	if (first.kind != FAIL_NONE)
		*f = first;
	return first.kind;
}

void
smtp_close(struct smtp *s)
{
	struct fail ignored;
	int code;

	if (s == NULL)
		return;
	if (s->state == S_READY) {
		smtp_set_state(s, S_QUIT);
		if (smtp_send(s, "QUIT", NULL, 0, &ignored) == FAIL_NONE)
			(void)smtp_reply(s, &code, 0, &ignored);
	}
	conn_close(s->conn);
	free(s);
}
