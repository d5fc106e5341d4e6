/* imap.c - the IMAP source (RFC 3501, tolerant of RFC 9051; RFC 2595
 * STARTTLS, RFC 4959 SASL-IR, RFC 7888 LITERAL+/-, RFC 4315 UIDPLUS,
 * RFC 2177 IDLE).
 *
 * Every byte to the server goes through imap_send() (the trace, with
 * secrets redacted, is written there, one line per CRLF); every response
 * comes through imap_read(), which feeds the pure parser from the
 * connection's buffer and streams FETCH body literals straight from that
 * buffer to the sink (never copied whole, never read line by line).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "conn.h"
#include "crypto.h"
#include "fail.h"
#include "imap_parse.h"
#include "log.h"
#include "sasl.h"
#include "source.h"
#include "xmalloc.h"

#define IMAP_MAX_LINE           (64 * 1024)
#define IMAP_MSGS_MAX           10000000u
#define IMAP_FOLDERS_MAX        100000
#define IMAP_WINDOW_DEFAULT     4
#define IMAP_WINDOW_MAX         16
#define IMAP_SET_MAX            8000    /* bytes of one uid-set in a command */
#define IMAP_SASL_ROUNDS_MAX    16
#define IMAP_TEXT_MAX           160     /* server text copied into a fail */
#define IMAP_TRACE_MAX          1000
#define IMAP_IDLE_MAX           (29 * 60)       /* RFC 2177: re-issue before 30 min */
#define IMAP_IDLE_SLICE_MS      1000            /* how often the stop flag is read */
#define REDACTED                "********"

enum imap_state {
	I_CONNECT, I_GREETING, I_CAPABILITY, I_STARTTLS, I_AUTH,
	I_AUTHENTICATED, I_SELECTED, I_IDLE, I_LOGOUT, I_CLOSED,
};

static const char *const imap_state_names[] = {
	[I_CONNECT] = "CONNECT", [I_GREETING] = "GREETING",
	[I_CAPABILITY] = "CAPABILITY", [I_STARTTLS] = "STARTTLS",
	[I_AUTH] = "AUTH", [I_AUTHENTICATED] = "AUTHENTICATED",
	[I_SELECTED] = "SELECTED", [I_IDLE] = "IDLE", [I_LOGOUT] = "LOGOUT",
	[I_CLOSED] = "CLOSED",
};

struct imap_caps {
	int known;                      /* a capability list was seen */
	int starttls, logindisabled, sasl_ir, literal_plus, literal_minus;
	int uidplus;
	int idle;                       /* IDLE (RFC 2177) */
	unsigned sasl;                  /* 1u << enum sasl_mech */
};

struct imap {
	struct conn *conn;
	struct imap_parser *parser;
	enum imap_state state;
	struct imap_caps caps;
	unsigned tagnum;
	char tag[16];                   /* the last tag sent */
	char server[300];
	/* The selected folder. */
	char *folder;                   /* its name, for messages */
	uint32_t uidvalidity, uidnext, exists;
	int exists_seen;                /* an EXISTS came since SELECT */
	int grew;                       /* an EXISTS above the count came since
	                                 * SELECT or the last idle() return */
	uint32_t *seq2uid;              /* [seq - 1] -> UID, 0 if unknown */
	size_t nseq, seqcap;
	/* Trace lines being put together. */
	char tout[IMAP_TRACE_MAX];
	size_t toutlen;
	int tout_secret;                /* "********" already in tout */
	char tin[IMAP_TRACE_MAX];
	size_t tinlen;
};

/* Called for a streamed literal (the caller takes its bytes) ... */
typedef enum fail_kind (*imap_lit_fn)(struct imap *s,
    const struct imap_literal *l, void *arg, struct fail *f);
/* ... and for every untagged response or continuation while waiting. */
typedef enum fail_kind (*imap_resp_fn)(struct imap *s,
    const struct imap_response *r, void *arg, struct fail *f);

static const char *const stream_items[] = { "BODY[]", NULL };

static void
imap_set_state(struct imap *s, enum imap_state to)
{
	if (s->state != to)
		log_debug("imap: %s -> %s", imap_state_names[s->state],
		    imap_state_names[to]);
	s->state = to;
}

static const char *
clean(const char *in, char *buf, size_t size)
{
	imap_sanitize(buf, size, in, strlen(in));
	return buf;
}

/* ---- sending ---- */

static void
trace_out_flush(struct imap *s)
{
	if (s->toutlen > 0 || s->tout_secret)
		log_trace(">", s->tout, s->toutlen);
	s->toutlen = 0;
	s->tout_secret = 0;
}

static void
trace_out_add(struct imap *s, const char *p, size_t n, int secret)
{
	if (secret) {
		if (s->tout_secret)
			return;
		p = REDACTED;
		n = strlen(REDACTED);
		s->tout_secret = 1;
	}
	if (n > sizeof(s->tout) - s->toutlen)
		n = sizeof(s->tout) - s->toutlen;
	memcpy(s->tout + s->toutlen, p, n);
	s->toutlen += n;
}

/* The one place bytes go to the server. A piece ending a line (eol) gets
 * CRLF and ends a trace line; a secret piece shows as "********". */
static enum fail_kind
imap_send(struct imap *s, const char *p, size_t n, int secret, int eol,
    struct fail *f)
{
	enum fail_kind k;

	if (log_enabled(LOG_LVL_TRACE))
		trace_out_add(s, p, n, secret);
	if (n > 0 && (k = conn_write(s->conn, p, n, f)) != FAIL_NONE)
		return k;
	if (!eol)
		return FAIL_NONE;
	if (log_enabled(LOG_LVL_TRACE))
		trace_out_flush(s);
	return conn_write(s->conn, "\r\n", 2, f);
}

static enum fail_kind
imap_sends(struct imap *s, const char *str, int eol, struct fail *f)
{
	return imap_send(s, str, strlen(str), 0, eol, f);
}

/* Start a command: a new tag and its space. */
static enum fail_kind
imap_begin(struct imap *s, struct fail *f)
{
	char t[20];

	snprintf(s->tag, sizeof(s->tag), "A%u", ++s->tagnum);
	snprintf(t, sizeof(t), "%s ", s->tag);
	return imap_sends(s, t, 0, f);
}

/* A whole command without arguments that need quoting. */
static enum fail_kind
imap_command(struct imap *s, const char *cmd, struct fail *f)
{
	enum fail_kind k;

	if ((k = imap_begin(s, f)) != FAIL_NONE)
		return k;
	return imap_sends(s, cmd, 1, f);
}

/* ---- reading ---- */

static void
trace_in(struct imap *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			size_t len = s->tinlen;

			if (len > 0 && s->tin[len - 1] == '\r')
				len--;
			log_trace("<", s->tin, len);
			s->tinlen = 0;
		} else if (s->tinlen < sizeof(s->tin))
			s->tin[s->tinlen++] = p[i];
	}
}

static void
caps_add(struct imap_caps *c, const char *a)
{
	enum sasl_mech m;

	if (strcasecmp(a, "STARTTLS") == 0)
		c->starttls = 1;
	else if (strcasecmp(a, "LOGINDISABLED") == 0)
		c->logindisabled = 1;
	else if (strcasecmp(a, "SASL-IR") == 0)
		c->sasl_ir = 1;
	else if (strcasecmp(a, "LITERAL+") == 0)
		c->literal_plus = 1;
	else if (strcasecmp(a, "LITERAL-") == 0)
		c->literal_minus = 1;
	else if (strcasecmp(a, "UIDPLUS") == 0)
		c->uidplus = 1;
	else if (strcasecmp(a, "IDLE") == 0)
		c->idle = 1;
	else if (strcasecmp(a, "IMAP4rev2") == 0)
		c->uidplus = c->idle = 1;       /* RFC 9051: both are base */
	else if (strncasecmp(a, "AUTH=", 5) == 0 &&
	    (m = sasl_mech_parse(a + 5, strlen(a + 5))) != SASL_NONE)
		c->sasl |= 1u << m;
}

/* A capability list replaces what we knew. */
static void
caps_set(struct imap *s, const struct imap_value *list)
{
	memset(&s->caps, 0, sizeof(s->caps));
	s->caps.known = 1;
	for (const struct imap_value *v = list->child; v != NULL; v = v->next)
		if (v->s != NULL)
			caps_add(&s->caps, v->s);
}

/* The sequence-number map: a hostile EXISTS must not make us allocate. */
static enum fail_kind
seq_resize(struct imap *s, uint32_t n, struct fail *f)
{
	if (n > IMAP_MSGS_MAX)
		return fail_set(f, FAIL_PROTO, "server says the folder holds %u "
		    "messages; more than %u is refused", n, IMAP_MSGS_MAX);
	if (n > s->seqcap) {
		size_t cap = s->seqcap ? s->seqcap : 1024;

		while (cap < n)
			cap *= 2;
		if (cap > IMAP_MSGS_MAX)
			cap = IMAP_MSGS_MAX;
		s->seq2uid = xreallocarray(s->seq2uid, cap, sizeof(*s->seq2uid));
		s->seqcap = cap;
	}
	if (n > s->nseq)
		memset(s->seq2uid + s->nseq, 0, (n - s->nseq) * sizeof(*s->seq2uid));
	s->nseq = n;
	s->exists = n;
	s->exists_seen = 1;
	return FAIL_NONE;
}

static uint32_t
seq_uid(const struct imap *s, uint32_t seq)
{
	return seq >= 1 && seq <= s->nseq ? s->seq2uid[seq - 1] : 0;
}

/* What every response tells us, whoever waits for it. */
static enum fail_kind
imap_untagged(struct imap *s, const struct imap_response *r, struct fail *f)
{
	const struct imap_value *caps;
	char buf[IMAP_TEXT_MAX];
	uint32_t uid;

	if (r->code.name != NULL && strcasecmp(r->code.name, "ALERT") == 0)
		log_warnx("%s: server alert: %s", s->server,
		    clean(r->text, buf, sizeof(buf)));
	if ((caps = imap_response_caps(r)) != NULL && s->state != I_STARTTLS)
		caps_set(s, caps);
	if (r->tag != NULL)
		return FAIL_NONE;
	switch (r->type) {
	case IMAP_R_BYE:
		if (s->state == I_LOGOUT)
			return FAIL_NONE;
		return fail_set(f, FAIL_CONN, "server closed the session: %s",
		    clean(r->text, buf, sizeof(buf)));
	case IMAP_R_EXISTS:
		/* New mail; not the count a SELECT reports (AUTHENTICATED). */
		if ((s->state == I_SELECTED || s->state == I_IDLE) &&
		    r->num > s->exists)
			s->grew = 1;
		if (s->state == I_SELECTED || s->state == I_AUTHENTICATED ||
		    s->state == I_IDLE)
			return seq_resize(s, r->num, f);
		break;
	case IMAP_R_EXPUNGE:
		if (r->num > s->nseq)
			return fail_set(f, FAIL_PROTO, "EXPUNGE of message %u "
			    "of %zu", r->num, s->nseq);
		memmove(s->seq2uid + r->num - 1, s->seq2uid + r->num,
		    (s->nseq - r->num) * sizeof(*s->seq2uid));
		s->nseq--;
		s->exists--;
		break;
	case IMAP_R_FETCH:
		if (imap_fetch_uid(r, &uid) == 1 && r->num <= s->nseq)
			s->seq2uid[r->num - 1] = uid;
		break;
	default:
		break;
	}
	return FAIL_NONE;
}

/* The connection ended (or failed) while reading: say where. */
static enum fail_kind
imap_read_failed(struct imap *s, enum fail_kind k, struct fail *f)
{
	struct fail pf;

	if (k == FAIL_CONN && imap_parser_eof(s->parser, &pf) != FAIL_NONE)
		*f = pf;
	return k;
}

/* Take a streamed literal's bytes to nowhere. */
static enum fail_kind
imap_drain(struct imap *s, uint64_t size, struct fail *f)
{
	const char *p;
	size_t n;
	enum fail_kind k;

	while (size > 0) {
		if ((k = conn_peek(s->conn, &p, &n, f)) != FAIL_NONE) {
			char why[sizeof(f->msg)];

			snprintf(why, sizeof(why), "%s", f->msg);
			return fail_set(f, k, "connection lost inside a literal, "
			    "%llu bytes missing: %s", (unsigned long long)size, why);
		}
		if (n > size)
			n = (size_t)size;
		conn_consume(s->conn, n);
		size -= n;
	}
	return FAIL_NONE;
}

/* The one read path: the next whole response, after imap_untagged() has
 * seen it. Streamed literals on the way go to lit (or are drained). *rp
 * is valid until the next read. */
static enum fail_kind
imap_read(struct imap *s, imap_lit_fn lit, void *arg,
    const struct imap_response **rp, struct fail *f)
{
	const struct imap_literal *l;
	enum imap_event ev;
	enum fail_kind k;
	const char *p;
	size_t n, used;

	for (;;) {
		if ((k = conn_peek(s->conn, &p, &n, f)) != FAIL_NONE)
			return imap_read_failed(s, k, f);
		ev = imap_parse(s->parser, p, n, &used, f);
		if (log_enabled(LOG_LVL_TRACE))
			trace_in(s, p, used);
		conn_consume(s->conn, used);
		switch (ev) {
		case IMAP_MORE:
			continue;
		case IMAP_ERROR:
			return FAIL_PROTO;
		case IMAP_LITERAL:
			l = imap_parser_literal(s->parser);
			k = lit != NULL ? lit(s, l, arg, f) :
			    imap_drain(s, l->size, f);
			if (k != FAIL_NONE)
				return k;
			imap_parser_literal_done(s->parser);
			continue;
		case IMAP_RESPONSE:
			*rp = imap_parser_response(s->parser);
			return imap_untagged(s, *rp, f);
		}
	}
}

/* Read until the tagged reply to s->tag, handing every other response to
 * fn. A continuation is handed to fn too (NULL fn: a protocol error). */
static enum fail_kind
imap_wait(struct imap *s, imap_resp_fn fn, imap_lit_fn lit, void *arg,
    const struct imap_response **done, struct fail *f)
{
	const struct imap_response *r;
	enum fail_kind k;

	for (;;) {
		if ((k = imap_read(s, lit, arg, &r, f)) != FAIL_NONE)
			return k;
		if (r->tag != NULL) {
			if ((k = imap_check_tag(r, s->tag, f)) != FAIL_NONE)
				return k;
			*done = r;
			return FAIL_NONE;
		}
		if (r->type == IMAP_R_CONTINUE && fn == NULL)
			return fail_set(f, FAIL_PROTO, "unexpected continuation "
			    "request from the server");
		if (fn != NULL && (k = fn(s, r, arg, f)) != FAIL_NONE)
			return k;
	}
}

/* "VERB failed: text" for a tagged NO or BAD. */
static enum fail_kind
imap_refused(const struct imap_response *r, enum fail_kind kind,
    const char *what, struct fail *f)
{
	char buf[IMAP_TEXT_MAX];

	return fail_set(f, kind, "%s failed: %s %s", what, r->keyword,
	    clean(r->text, buf, sizeof(buf)));
}

/* Send a command and wait for OK; NO/BAD -> FAIL_PROTO. */
static enum fail_kind
imap_simple(struct imap *s, const char *cmd, imap_resp_fn fn, void *arg,
    struct fail *f)
{
	const struct imap_response *r;
	enum fail_kind k;

	if ((k = imap_command(s, cmd, f)) != FAIL_NONE ||
	    (k = imap_wait(s, fn, NULL, arg, &r, f)) != FAIL_NONE)
		return k;
	if (r->type != IMAP_R_OK)
		return imap_refused(r, FAIL_PROTO, cmd, f);
	return FAIL_NONE;
}

/* Wait for "+" in the middle of a command. *r is the tagged reply if the
 * server ended the command instead (else NULL). */
static enum fail_kind
imap_wait_continue(struct imap *s, const struct imap_response **r,
    struct fail *f)
{
	enum fail_kind k;

	*r = NULL;
	for (;;) {
		const struct imap_response *x;

		if ((k = imap_read(s, NULL, NULL, &x, f)) != FAIL_NONE)
			return k;
		if (x->type == IMAP_R_CONTINUE)
			return FAIL_NONE;
		if (x->tag != NULL) {
			if ((k = imap_check_tag(x, s->tag, f)) != FAIL_NONE)
				return k;
			*r = x;
			return FAIL_NONE;
		}
	}
}

/* One astring argument: quoted, or a literal (synchronising unless
 * LITERAL+, or LITERAL- for small ones). *r as for imap_wait_continue. */
static enum fail_kind
imap_send_astring(struct imap *s, const char *str, int secret, int eol,
    const struct imap_response **r, struct fail *f)
{
	size_t len = strlen(str);
	int plus = s->caps.literal_plus || (s->caps.literal_minus && len <= 4096);
	char *q = NULL;
	enum fail_kind k;
	int quoted;

	*r = NULL;
	if ((quoted = imap_quote(str, len, plus, &q)) == -1)
		return fail_set(f, FAIL_CONFIG, "NUL byte in an argument");
	if (quoted) {
		k = imap_send(s, q, strlen(q), secret, eol, f);
		free_secret(q);
		return k;
	}
	k = imap_send(s, q, strlen(q), 0, 1, f);
	free(q);
	if (k != FAIL_NONE)
		return k;
	if (!plus && ((k = imap_wait_continue(s, r, f)) != FAIL_NONE ||
	    *r != NULL))
		return k;
	return imap_send(s, str, len, secret, eol, f);
}

/* ---- greeting, capabilities, STARTTLS ---- */

static enum fail_kind
imap_capability(struct imap *s, struct fail *f)
{
	enum fail_kind k;

	imap_set_state(s, I_CAPABILITY);
	s->caps.known = 0;
	if ((k = imap_simple(s, "CAPABILITY", NULL, NULL, f)) != FAIL_NONE)
		return k;
	if (!s->caps.known)
		return fail_set(f, FAIL_PROTO, "CAPABILITY: the server listed none");
	return FAIL_NONE;
}

/* *preauth = 1 for "* PREAUTH". */
static enum fail_kind
imap_greeting(struct imap *s, int *preauth, struct fail *f)
{
	const struct imap_response *r;
	char buf[IMAP_TEXT_MAX];
	enum fail_kind k;

	imap_set_state(s, I_GREETING);
	*preauth = 0;
	if ((k = imap_read(s, NULL, NULL, &r, f)) != FAIL_NONE)
		return k;
	if (r->tag != NULL || (r->type != IMAP_R_OK && r->type != IMAP_R_PREAUTH))
		return fail_set(f, FAIL_PROTO, "unexpected greeting: %s %s",
		    r->keyword, clean(r->text != NULL ? r->text : "", buf,
		    sizeof(buf)));
	*preauth = r->type == IMAP_R_PREAUTH;
	return FAIL_NONE;
}

static enum fail_kind
imap_starttls(struct imap *s, struct fail *f)
{
	const struct imap_response *r;
	enum fail_kind k;

	if (!s->caps.starttls)
		return fail_set(f, FAIL_CONN, "server does not offer STARTTLS; "
		    "refusing to log in without TLS");
	imap_set_state(s, I_STARTTLS);
	if ((k = imap_command(s, "STARTTLS", f)) != FAIL_NONE ||
	    (k = imap_wait(s, NULL, NULL, NULL, &r, f)) != FAIL_NONE)
		return k;
	if (r->type != IMAP_R_OK)
		return imap_refused(r, FAIL_CONN, "STARTTLS", f);
	if ((k = conn_starttls(s->conn, f)) != FAIL_NONE)
		return k;
	log_verbose("imap: %s", conn_describe(s->conn));
	/* What was said before TLS is forgotten. */
	memset(&s->caps, 0, sizeof(s->caps));
	return imap_capability(s, f);
}

/* ---- login ---- */

/* A tagged NO/BAD to a login step. */
static enum fail_kind
imap_login_refused(const struct imap_response *r, struct fail *f)
{
	char buf[IMAP_TEXT_MAX];

	if (r->type == IMAP_R_NO && imap_code_is(r, "UNAVAILABLE"))
		return fail_set(f, FAIL_TEMP, "login failed temporarily: %s",
		    clean(r->text, buf, sizeof(buf)));
	return fail_set(f, FAIL_AUTH, "login refused: %s",
	    clean(r->text, buf, sizeof(buf)));
}

static enum fail_kind
imap_login_cmd(struct imap *s, const struct source_params *p, struct fail *f)
{
	const struct imap_response *r = NULL;
	enum fail_kind k;

	if ((k = imap_begin(s, f)) != FAIL_NONE ||
	    (k = imap_sends(s, "LOGIN ", 0, f)) != FAIL_NONE ||
	    (k = imap_send_astring(s, p->user, 0, 0, &r, f)) != FAIL_NONE)
		return k;
	if (r == NULL && ((k = imap_sends(s, " ", 0, f)) != FAIL_NONE ||
	    (k = imap_send_astring(s, p->secret, 1, 1, &r, f)) != FAIL_NONE))
		return k;
	if (r == NULL && (k = imap_wait(s, NULL, NULL, NULL, &r, f)) != FAIL_NONE)
		return k;
	return r->type == IMAP_R_OK ? FAIL_NONE : imap_login_refused(r, f);
}

/* A raw SASL response, base64, as one line (redacted in the trace). */
static enum fail_kind
imap_sasl_respond(struct imap *s, const unsigned char *raw, size_t rawlen,
    struct fail *f)
{
	enum fail_kind k;
	char *b64;

	b64 = base64_encode(raw, rawlen);
	k = imap_send(s, b64, strlen(b64), 1, 1, f);
	free_secret(b64);
	return k;
}

/* "AUTHENTICATE MECH [ir]"; without SASL-IR the initial response waits for
 * the server's empty challenge (sasl_step gives it then). */
static enum fail_kind
imap_sasl_start(struct imap *s, struct sasl *sasl, enum sasl_mech m,
    struct fail *f)
{
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	char cmd[64], *b64;
	enum fail_kind k;

	snprintf(cmd, sizeof(cmd), "AUTHENTICATE %s", sasl_mech_name(m));
	if ((k = imap_begin(s, f)) != FAIL_NONE)
		return k;
	if (!s->caps.sasl_ir || !sasl_initial(sasl, &raw, &rawlen))
		return imap_sends(s, cmd, 1, f);
	b64 = rawlen == 0 ? xstrdup("=") : base64_encode(raw, rawlen);
	explicit_bzero(raw, rawlen);
	free(raw);
	if ((k = imap_sends(s, cmd, 0, f)) == FAIL_NONE &&
	    (k = imap_sends(s, " ", 0, f)) == FAIL_NONE)
		k = imap_send(s, b64, strlen(b64), 1, 1, f);
	free_secret(b64);
	return k;
}

struct imap_sasl_run {
	struct sasl *sasl;
	int rounds;
	int cancelled;
	struct fail note;               /* what the mechanism said */
};

/* One "+ b64" challenge during AUTHENTICATE. */
static enum fail_kind
imap_sasl_challenge(struct imap *s, const struct imap_response *r, void *arg,
    struct fail *f)
{
	struct imap_sasl_run *run = arg;
	unsigned char *in = NULL, *out = NULL;
	size_t inlen = 0, outlen = 0;
	enum fail_kind k;

	if (r->type != IMAP_R_CONTINUE || run->cancelled)
		return FAIL_NONE;
	if (++run->rounds > IMAP_SASL_ROUNDS_MAX) {
		fail_set(&run->note, FAIL_PROTO, "too many SASL challenges");
		goto cancel;
	}
	if (base64_decode(r->text, strlen(r->text), &in, &inlen) == -1) {
		fail_set(&run->note, FAIL_PROTO, "invalid base64 in SASL challenge");
		goto cancel;
	}
	k = sasl_step(run->sasl, in, inlen, &out, &outlen, &run->note);
	free(in);
	if (k != FAIL_NONE) {
		run->note.kind = k;
		goto cancel;
	}
	k = imap_sasl_respond(s, out, outlen, f);
	explicit_bzero(out, outlen);
	free(out);
	return k;
cancel:
	run->cancelled = 1;
	return imap_sends(s, "*", 1, f);
}

static enum fail_kind
imap_login_sasl(struct imap *s, const struct source_params *p,
    enum sasl_mech m, struct fail *f)
{
	struct sasl_params sp = {
		.user = p->user, .secret = p->secret,
		.host = p->conn.host, .port = p->conn.port,
	};
	struct imap_sasl_run run = { .note = { .kind = FAIL_NONE, .msg = "" } };
	const struct imap_response *r;
	enum fail_kind k;

	if ((run.sasl = sasl_new(m, &sp)) == NULL)
		return fail_set(f, FAIL_AUTH, "SASL %s unavailable",
		    sasl_mech_name(m));
	if ((k = imap_sasl_start(s, run.sasl, m, f)) != FAIL_NONE ||
	    (k = imap_wait(s, imap_sasl_challenge, NULL, &run, &r, f)) != FAIL_NONE)
		goto out;
	if (run.cancelled) {
		*f = run.note;
		k = f->kind = run.note.kind == FAIL_PROTO ? FAIL_PROTO : FAIL_AUTH;
		goto out;
	}
	if (r->type != IMAP_R_OK) {
		k = imap_login_refused(r, f);
		if (k == FAIL_AUTH && sasl_failed(run.sasl))
			fail_set(f, FAIL_AUTH, "login refused: %s", run.note.msg);
		goto out;
	}
	k = sasl_finish(run.sasl, NULL, 0, f);
out:
	sasl_free(run.sasl);
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
offers(const struct imap *s, enum sasl_mech m)
{
	return (s->caps.sasl & (1u << m)) != 0;
}

/* The mechanism to use: SASL_NONE means the LOGIN command. */
static enum fail_kind
imap_choose(struct imap *s, const struct source_params *p, int secure,
    enum sasl_mech *m, struct fail *f)
{
	*m = SASL_NONE;
	if (p->auth == AUTH_APOP)
		return fail_set(f, FAIL_CONFIG, "apop is POP3 only");
	if (p->auth == AUTH_USER) {
		if (s->caps.logindisabled)
			return fail_set(f, FAIL_AUTH, "server disables the LOGIN "
			    "command (LOGINDISABLED)");
		return FAIL_NONE;
	}
	if (p->auth != AUTH_AUTO) {
		*m = auth_to_mech(p->auth);
		if (*m == SASL_NONE || !offers(s, *m))
			return fail_set(f, FAIL_AUTH, "server does not offer "
			    "AUTH=%s", *m == SASL_NONE ? "(unknown)" :
			    sasl_mech_name(*m));
		return FAIL_NONE;
	}
	if (offers(s, SASL_SCRAM_SHA_256))
		*m = SASL_SCRAM_SHA_256;
	else if (!secure)
		return FAIL_NONE;       /* the caller refuses, naming why */
	else if (offers(s, SASL_PLAIN))
		*m = SASL_PLAIN;
	else if (offers(s, SASL_LOGIN))
		*m = SASL_LOGIN;
	else if (s->caps.logindisabled)
		return fail_set(f, FAIL_AUTH, "server offers no login mechanism "
		    "mailpull can use");
	return FAIL_NONE;
}

static enum fail_kind
imap_auth(struct imap *s, const struct source_params *p, struct fail *f)
{
	enum sasl_mech m;
	enum fail_kind k;
	int secure;

	imap_set_state(s, I_AUTH);
	if (p->user == NULL || p->secret == NULL)
		return fail_set(f, FAIL_CONFIG, "user or password missing");
	secure = conn_is_tls(s->conn) || p->allow_plaintext;
	if ((k = imap_choose(s, p, secure, &m, f)) != FAIL_NONE)
		return k;
	if (!secure && (m == SASL_NONE || sasl_mech_is_cleartext(m)))
		return fail_set(f, FAIL_AUTH, "refusing to send a password over "
		    "an unencrypted connection (set tls, or allow_plaintext = yes)");
	s->caps.known = 0;
	if (m == SASL_NONE) {
		log_verbose("imap: logging in with LOGIN");
		k = imap_login_cmd(s, p, f);
	} else {
		log_verbose("imap: logging in with AUTHENTICATE %s",
		    sasl_mech_name(m));
		k = imap_login_sasl(s, p, m, f);
	}
	if (k != FAIL_NONE)
		return k;
	imap_set_state(s, I_AUTHENTICATED);
	/* The OK may have carried new capabilities; else ask. */
	return s->caps.known ? FAIL_NONE : imap_capability(s, f);
}

static void
imap_free(struct imap *s)
{
	if (s == NULL)
		return;
	conn_close(s->conn);
	imap_parser_free(s->parser);
	free(s->seq2uid);
	free(s->folder);
	free(s);
}

static enum fail_kind
imap_open(void **src, const struct source_params *p, struct fail *f)
{
	struct imap_limits lim;
	struct imap *s;
	enum fail_kind k;
	int preauth;

	*src = NULL;
	if (p->auth == AUTH_APOP)
		return fail_set(f, FAIL_CONFIG, "apop is POP3 only");
	s = xcalloc(1, sizeof(*s));
	s->state = I_CONNECT;
	snprintf(s->server, sizeof(s->server),
	    strchr(p->conn.host, ':') != NULL ? "[%s]:%s" : "%s:%s",
	    p->conn.host, p->conn.port);
	imap_limits_default(&lim);
	lim.max_line = IMAP_MAX_LINE;
	lim.max_literal = 2ULL * 1024 * 1024 * 1024;
	s->parser = imap_parser_new(&lim, stream_items);
	if ((k = conn_open(&s->conn, &p->conn, p->tls, f)) != FAIL_NONE)
		goto fail;
	if (p->tls == TLS_IMPLICIT)
		log_verbose("imap: %s", conn_describe(s->conn));
	if ((k = imap_greeting(s, &preauth, f)) != FAIL_NONE)
		goto fail;
	if (preauth && p->tls == TLS_STARTTLS) {
		k = fail_set(f, FAIL_CONN, "server greets with PREAUTH, so "
		    "STARTTLS is impossible; refusing to go on without TLS");
		goto fail;
	}
	if (!s->caps.known && (k = imap_capability(s, f)) != FAIL_NONE)
		goto fail;
	if (p->tls == TLS_STARTTLS && (k = imap_starttls(s, f)) != FAIL_NONE)
		goto fail;
	if (preauth)
		imap_set_state(s, I_AUTHENTICATED);
	else if ((k = imap_auth(s, p, f)) != FAIL_NONE)
		goto fail;
	*src = s;
	return FAIL_NONE;
fail:
	imap_free(s);
	return k;
}

/* ---- uid sets ---- */

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The UIDs of msgs, sorted, without duplicates. */
static uint32_t *
sorted_uids(const struct msg *const *msgs, size_t n, size_t *nu)
{
	uint32_t *u = xcalloc(n ? n : 1, sizeof(*u));
	size_t o = 0;

	for (size_t i = 0; i < n; i++)
		u[i] = msgs[i]->imap_uid;
	qsort(u, n, sizeof(*u), u32_cmp);
	for (size_t i = 0; i < n; i++)
		if (u[i] != 0 && (o == 0 || u[o - 1] != u[i]))
			u[o++] = u[i];
	*nu = o;
	return u;
}

/* From u[*pos], a uid-set ("3:7,9") of at most IMAP_SET_MAX bytes into
 * buf (size > IMAP_SET_MAX + 24); *pos advances past what it holds. */
static void
uidset_next(const uint32_t *u, size_t n, size_t *pos, char *buf)
{
	size_t o = 0, i = *pos;

	buf[0] = '\0';
	while (i < n && o < IMAP_SET_MAX) {
		size_t j = i;

		while (j + 1 < n && u[j + 1] == u[j] + 1)
			j++;
		if (j == i)
			o += (size_t)sprintf(buf + o, "%s%u", o ? "," : "", u[i]);
		else
			o += (size_t)sprintf(buf + o, "%s%u:%u", o ? "," : "",
			    u[i], u[j]);
		i = j + 1;
	}
	*pos = i;
}

/* ---- folders ---- */

struct folder_list {
	struct folder *v;
	size_t n, cap;
	const char *want;               /* UTF-8 name wanted, or NULL for all */
	int found;                      /* want: seen, selectable or not */
	int selectable;
};

static int
is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

static int
folder_cmp(const void *a, const void *b)
{
	const struct folder *x = a, *y = b;
	int ix = is_inbox(x->name), iy = is_inbox(y->name);

	if (ix != iy)
		return iy - ix;
	return strcmp(x->utf8, y->utf8);
}

static enum fail_kind
folders_on_list(struct imap *s, const struct imap_response *r, void *arg,
    struct fail *f)
{
	struct folder_list *fl = arg;
	struct imap_mailbox mb;
	char buf[IMAP_TEXT_MAX];
	char *utf8;

	if (r->type != IMAP_R_LIST || imap_list_mailbox(r, &mb) == -1)
		return FAIL_NONE;
	if (memchr(mb.name, '\0', mb.name_len) != NULL)
		return fail_set(f, FAIL_PROTO, "NUL byte in a folder name");
	imap_sanitize(buf, sizeof(buf), mb.name, mb.name_len);
	if ((utf8 = imap_mutf7_to_utf8(mb.name, mb.name_len)) == NULL) {
		log_warnx("%s: folder name \"%s\" is not valid modified UTF-7; "
		    "skipped", s->server, buf);
		return FAIL_NONE;
	}
	for (unsigned char *c = (unsigned char *)utf8; *c; c++) {
		if (*c < 0x20 || *c == 0x7f) {
			/* It would end up in log lines and directory names. */
			log_warnx("%s: folder name \"%s\" has control "
			    "characters; skipped", s->server, buf);
			free(utf8);
			return FAIL_NONE;
		}
	}
	if (fl->want != NULL) {
		int match = is_inbox(fl->want) ? is_inbox(utf8) :
		    strcmp(utf8, fl->want) == 0;

		if (!match) {
			free(utf8);
			return FAIL_NONE;
		}
		fl->found = 1;
	}
	if (mb.noselect) {
		free(utf8);
		return FAIL_NONE;
	}
	if (fl->n >= IMAP_FOLDERS_MAX) {
		free(utf8);
		return fail_set(f, FAIL_PROTO, "more than %d folders",
		    IMAP_FOLDERS_MAX);
	}
	if (fl->want != NULL && fl->selectable) {
		free(utf8);             /* listed twice */
		return FAIL_NONE;
	}
	fl->selectable = 1;
	if (fl->n == fl->cap) {
		fl->cap = fl->cap ? fl->cap * 2 : 16;
		fl->v = xreallocarray(fl->v, fl->cap, sizeof(*fl->v));
	}
	fl->v[fl->n].name = xstrndup(mb.name, mb.name_len);
	fl->v[fl->n].utf8 = utf8;
	fl->v[fl->n].delim = mb.delim;
	fl->n++;
	return FAIL_NONE;
}

/* LIST "" pattern, the pattern given as a UTF-8 name (or "*"). */
static enum fail_kind
imap_list_cmd(struct imap *s, const char *utf8, struct folder_list *fl,
    struct fail *f)
{
	const struct imap_response *r = NULL;
	enum fail_kind k;
	char *m;

	if (strcmp(utf8, "*") == 0)
		m = xstrdup("*");
	else if ((m = imap_utf8_to_mutf7(utf8, strlen(utf8))) == NULL)
		return fail_set(f, FAIL_CONFIG, "folder name \"%s\" is not "
		    "valid UTF-8", utf8);
	if ((k = imap_begin(s, f)) != FAIL_NONE ||
	    (k = imap_sends(s, "LIST \"\" ", 0, f)) != FAIL_NONE ||
	    (k = imap_send_astring(s, m, 0, 1, &r, f)) != FAIL_NONE)
		goto out;
	if (r == NULL &&
	    (k = imap_wait(s, folders_on_list, NULL, fl, &r, f)) != FAIL_NONE)
		goto out;
	if (r->type != IMAP_R_OK)
		k = imap_refused(r, FAIL_PROTO, "LIST", f);
out:
	free(m);
	return k;
}

static enum fail_kind
imap_folders(void *src, const char *const *want, size_t nwant,
    struct folder **vp, size_t *np, struct fail *f)
{
	struct imap *s = src;
	struct folder_list fl = { .v = NULL };
	enum fail_kind k = FAIL_NONE;

	*vp = NULL;
	*np = 0;
	if (nwant == 1 && strcmp(want[0], "*") == 0)
		k = imap_list_cmd(s, "*", &fl, f);
	else
		for (size_t i = 0; i < nwant && k == FAIL_NONE; i++) {
			fl.want = want[i];
			fl.found = fl.selectable = 0;
			k = imap_list_cmd(s, want[i], &fl, f);
			if (k == FAIL_NONE && !fl.selectable)
				k = fail_set(f, FAIL_CONFIG, fl.found ?
				    "folder %s on the server cannot be selected" :
				    "no folder named %s on the server", want[i]);
		}
	if (k != FAIL_NONE) {
		folders_free(fl.v, fl.n);
		return k;
	}
	if (fl.n > 1)
		qsort(fl.v, fl.n, sizeof(*fl.v), folder_cmp);
	*vp = fl.v;
	*np = fl.n;
	return FAIL_NONE;
}

/* ---- select ---- */

struct select_run {
	int uidvalidity, uidnext;       /* 1 once seen */
};

static enum fail_kind
select_on_resp(struct imap *s, const struct imap_response *r, void *arg,
    struct fail *f)
{
	struct select_run *sr = arg;
	int rc;

	if (r->type != IMAP_R_OK)
		return FAIL_NONE;
	if ((rc = imap_code_u32(r, "UIDVALIDITY", &s->uidvalidity)) == -1 ||
	    (rc == 1 && s->uidvalidity == 0))
		return fail_set(f, FAIL_PROTO, "malformed UIDVALIDITY");
	sr->uidvalidity |= rc == 1;
	if ((rc = imap_code_u32(r, "UIDNEXT", &s->uidnext)) == -1)
		return fail_set(f, FAIL_PROTO, "malformed UIDNEXT");
	sr->uidnext |= rc == 1;
	return FAIL_NONE;
}

static enum fail_kind
imap_select(void *src, const struct folder *fo, struct folder_status *st,
    struct fail *f)
{
	struct imap *s = src;
	struct select_run sr = { 0, 0 };
	const struct imap_response *r = NULL;
	char buf[IMAP_TEXT_MAX];
	enum fail_kind k;

	memset(st, 0, sizeof(*st));
	imap_set_state(s, I_AUTHENTICATED);
	s->uidvalidity = s->uidnext = 0;
	s->nseq = s->exists = 0;
	s->exists_seen = 0;
	s->grew = 0;            /* SELECT's own EXISTS is no news (AUTHENTICATED) */
	free(s->folder);
	s->folder = xstrdup(fo->utf8 != NULL ? fo->utf8 : fo->name);
	if ((k = imap_begin(s, f)) != FAIL_NONE ||
	    (k = imap_sends(s, "SELECT ", 0, f)) != FAIL_NONE ||
	    (k = imap_send_astring(s, fo->name, 0, 1, &r, f)) != FAIL_NONE)
		return k;
	if (r == NULL &&
	    (k = imap_wait(s, select_on_resp, NULL, &sr, &r, f)) != FAIL_NONE)
		return k;
	if (r->type != IMAP_R_OK)      /* NO: this folder only; BAD: out of step */
		return fail_set(f, r->type == IMAP_R_NO ? FAIL_REJECTED :
		    FAIL_PROTO, "cannot select folder %s: %s",
		    fo->utf8 != NULL ? fo->utf8 : fo->name,
		    clean(r->text, buf, sizeof(buf)));
	/* Servers may put UIDVALIDITY/UIDNEXT on the tagged OK as well. */
	if ((k = select_on_resp(s, r, &sr, f)) != FAIL_NONE)
		return k;
	if (!sr.uidvalidity)
		return fail_set(f, FAIL_PROTO, "folder %s: the server sent no "
		    "UIDVALIDITY", fo->utf8 != NULL ? fo->utf8 : fo->name);
	imap_set_state(s, I_SELECTED);
	if (!sr.uidnext)
		s->uidnext = 0;
	st->uidvalidity = s->uidvalidity;
	st->uidnext = s->uidnext;
	st->exists = s->exists;
	st->uidplus = s->caps.uidplus;
	log_debug("imap: %s: UIDVALIDITY %u UIDNEXT %u EXISTS %u", fo->name,
	    st->uidvalidity, st->uidnext, st->exists);
	return FAIL_NONE;
}

/* ---- list ---- */

/* One FETCH of the listing, with which items it carried. */
struct list_entry {
	struct msg m;
	unsigned have;
	size_t order;                   /* arrival: a later FETCH wins */
};

struct list_run {
	struct list_entry *e;
	size_t n, cap;
	uint32_t since, uidvalidity;
};

#define HAVE_SIZE       1u
#define HAVE_DATE       2u
#define HAVE_FLAGS      4u

static void
flags_letters(const char *const *fl, size_t n, char out[8])
{
	static const struct { char c; const char *name; } map[] = {
		{ 'D', "\\Draft" }, { 'F', "\\Flagged" }, { 'R', "\\Answered" },
		{ 'S', "\\Seen" }, { 'T', "\\Deleted" },
	};
	size_t o = 0;

	for (size_t m = 0; m < sizeof(map) / sizeof(map[0]); m++)
		for (size_t i = 0; i < n; i++)
			if (strcasecmp(fl[i], map[m].name) == 0) {
				out[o++] = map[m].c;
				break;
			}
	out[o] = '\0';
}

#define LIST_FLAGS_MAX  64

static enum fail_kind
list_on_fetch(struct imap *s, const struct imap_response *r, void *arg,
    struct fail *f)
{
	struct list_run *lr = arg;
	const char *fl[LIST_FLAGS_MAX];
	struct list_entry *e;
	size_t nfl;
	uint32_t uid;
	uint64_t size;
	time_t date;
	int ru, rs, rd, rf;

	if (r->type != IMAP_R_FETCH)
		return FAIL_NONE;
	if ((ru = imap_fetch_uid(r, &uid)) == -1)
		return fail_set(f, FAIL_PROTO, "malformed UID in FETCH %u", r->num);
	if (ru == 0)
		return FAIL_NONE;       /* unsolicited, e.g. a flag change */
	if ((rs = imap_fetch_size(r, &size)) == -1 ||
	    (rd = imap_fetch_internaldate(r, &date)) == -1 ||
	    (rf = imap_fetch_flags(r, fl, LIST_FLAGS_MAX, &nfl)) == -1)
		return fail_set(f, FAIL_PROTO, "malformed FETCH response for "
		    "UID %u", uid);
	/* A server repeating FETCH responses must not grow this without
	 * bound: at most one entry a message it said it holds, and slack for
	 * the flag updates that may come along. */
	if (lr->n >= IMAP_MSGS_MAX ||
	    (s->exists_seen && lr->n >= 2 * (size_t)s->exists + 1024))
		return fail_set(f, FAIL_PROTO, "more FETCH responses than the "
		    "%u messages the folder holds", s->exists);
	if (lr->n == lr->cap) {
		lr->cap = lr->cap ? lr->cap * 2 : 256;
		lr->e = xreallocarray(lr->e, lr->cap, sizeof(*lr->e));
	}
	e = &lr->e[lr->n];
	*e = (struct list_entry){ .m = { .imap_uid = uid }, .order = lr->n };
	if (rs == 1) {
		e->m.size = size;
		e->have |= HAVE_SIZE;
	}
	if (rd == 1) {
		e->m.internaldate = date;
		e->have |= HAVE_DATE;
	}
	if (rf == 1) {
		flags_letters(fl, nfl < LIST_FLAGS_MAX ? nfl : LIST_FLAGS_MAX,
		    e->m.flags);
		e->have |= HAVE_FLAGS;
	}
	lr->n++;
	return FAIL_NONE;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct list_entry *x = a, *y = b;

	if (x->m.imap_uid != y->m.imap_uid)
		return x->m.imap_uid < y->m.imap_uid ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Sort by UID, merge what several FETCHes said of one UID, drop what is
 * below since ("N:*" always names the last message), check that every
 * message has its size and date, and hand back the messages. */
static enum fail_kind
list_settle(struct list_run *lr, struct msg **vp, size_t *np, struct fail *f)
{
	struct msg *v;
	size_t o = 0;

	if (lr->n == 0)
		return FAIL_NONE;
	qsort(lr->e, lr->n, sizeof(*lr->e), entry_cmp);
	for (size_t i = 0; i < lr->n; i++) {
		struct list_entry *e = &lr->e[i], *d;

		if (e->m.imap_uid < lr->since)
			continue;
		if (o == 0 || lr->e[o - 1].m.imap_uid != e->m.imap_uid) {
			lr->e[o++] = *e;
			continue;
		}
		d = &lr->e[o - 1];
		if (e->have & HAVE_SIZE)
			d->m.size = e->m.size;
		if (e->have & HAVE_DATE)
			d->m.internaldate = e->m.internaldate;
		if (e->have & HAVE_FLAGS)
			memcpy(d->m.flags, e->m.flags, sizeof(d->m.flags));
		d->have |= e->have;
	}
	/* An entry without size or date came only from an unsolicited FETCH
	 * (a flag change) for a message expunged before our FETCH reached it:
	 * it is gone; drop it. */
	size_t kept = 0;

	for (size_t i = 0; i < o; i++) {
		if ((lr->e[i].have & (HAVE_SIZE | HAVE_DATE)) !=
		    (HAVE_SIZE | HAVE_DATE)) {
			log_debug("imap: UID %u listed without RFC822.SIZE or "
			    "INTERNALDATE; gone", lr->e[i].m.imap_uid);
			continue;
		}
		lr->e[kept++] = lr->e[i];
	}
	o = kept;
	if (o == 0)
		return FAIL_NONE;
	v = xcalloc(o, sizeof(*v));
	for (size_t i = 0; i < o; i++) {
		v[i] = lr->e[i].m;
		snprintf(v[i].uid, sizeof(v[i].uid), "%u:%u", lr->uidvalidity,
		    v[i].imap_uid);
	}
	*vp = v;
	*np = o;
	return FAIL_NONE;
}

static enum fail_kind
imap_list(void *src, uint32_t since, struct msg **vp, size_t *np,
    struct fail *f)
{
	struct imap *s = src;
	struct list_run lr = { .e = NULL };
	char cmd[96];
	enum fail_kind k;

	*vp = NULL;
	*np = 0;
	if (s->state != I_SELECTED)
		return fail_set(f, FAIL_PROTO, "list: no folder selected");
	if (s->exists == 0 && s->exists_seen)
		return FAIL_NONE;       /* empty: no FETCH (no EXISTS: ask) */
	lr.since = since == 0 ? 1 : since;
	lr.uidvalidity = s->uidvalidity;
	snprintf(cmd, sizeof(cmd),
	    "UID FETCH %u:* (UID RFC822.SIZE FLAGS INTERNALDATE)", lr.since);
	if ((k = imap_simple(s, cmd, list_on_fetch, &lr, f)) == FAIL_NONE)
		k = list_settle(&lr, vp, np, f);
	free(lr.e);
	if (k == FAIL_NONE)
		log_debug("imap: %zu messages from UID %u", *np, lr.since);
	return k;
}

/* ---- fetch ---- */

struct fetch_key {
	uint32_t uid;
	size_t idx;
};

struct fetch_run {
	const struct msg *const *msgs;
	const struct msg_sink *sink;
	struct fetch_key *keys;         /* sorted by uid */
	size_t n;
	unsigned char *done;            /* per msgs[i]: delivered (or tried) */
	enum fail_kind failed;          /* the sink's failure: no more callbacks */
	struct fail sf;
	size_t cur;                     /* begun, awaiting the end of its FETCH */
	int have_cur;
	uint32_t cur_uid;
	enum fail_kind tagged_fail;     /* a NO/BAD to one of the commands */
	struct fail tf;
};

static int
key_cmp(const void *a, const void *b)
{
	const struct fetch_key *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static const struct fetch_key *
fetch_find(const struct fetch_run *fx, uint32_t uid)
{
	struct fetch_key key = { .uid = uid };

	return uid == 0 || fx->n == 0 ? NULL :
	    bsearch(&key, fx->keys, fx->n, sizeof(key), key_cmp);
}

/* Stream size bytes to the sink (or nowhere once it failed). */
static enum fail_kind
fetch_stream(struct imap *s, struct fetch_run *fx, uint64_t size,
    struct fail *f)
{
	const struct msg_sink *sink = fx->sink;
	uint64_t left = size;
	const char *p;
	size_t n;
	enum fail_kind k;

	while (left > 0) {
		if ((k = conn_peek(s->conn, &p, &n, f)) != FAIL_NONE) {
			char why[sizeof(f->msg)];

			snprintf(why, sizeof(why), "%s", f->msg);
			if (fx->have_cur && !fx->failed)
				sink->abort(sink->arg, fx->cur);
			fx->have_cur = 0;
			return fail_set(f, FAIL_CONN, "connection lost inside a "
			    "message body (%llu of %llu bytes): %s",
			    (unsigned long long)(size - left),
			    (unsigned long long)size, why);
		}
		if (n > left)
			n = (size_t)left;
		if (fx->have_cur && !fx->failed &&
		    (k = sink->write(sink->arg, p, n, &fx->sf)) != FAIL_NONE)
			fx->failed = fx->sf.kind = k;
		conn_consume(s->conn, n);
		left -= n;
	}
	if (log_enabled(LOG_LVL_TRACE)) {
		char t[64];

		snprintf(t, sizeof(t), "[message body, %llu bytes]",
		    (unsigned long long)size);
		log_trace("<", t, strlen(t));
	}
	return FAIL_NONE;
}

/* A streamed literal: whose is it? Begin that message, or drain. */
static enum fail_kind
fetch_on_literal(struct imap *s, const struct imap_literal *l, void *arg,
    struct fail *f)
{
	struct fetch_run *fx = arg;
	const struct fetch_key *key = NULL;
	uint32_t uid = 0;
	enum fail_kind k;
	int rc;

	if (strncasecmp(l->item, "BODY[]", 6) == 0 && (l->item[6] == '\0' ||
	    strcmp(l->item + 6, "<0>") == 0) && !fx->have_cur) {
		if ((rc = imap_fetch_uid(l->resp, &uid)) == -1)
			return fail_set(f, FAIL_PROTO, "malformed UID in FETCH %u",
			    l->seq);
		if (rc == 0)
			uid = seq_uid(s, l->seq);
		key = fetch_find(fx, uid);
	}
	if (key == NULL || fx->done[key->idx])
		return fetch_stream(s, fx, l->size, f);     /* drained */
	fx->cur = key->idx;
	fx->cur_uid = uid;
	fx->have_cur = 1;
	fx->done[key->idx] = 1;
	if (!fx->failed) {
		k = fx->sink->begin(fx->sink->arg, key->idx, &fx->sf);
		if (k != FAIL_NONE) {
			fx->failed = fx->sf.kind = k;
			fx->have_cur = 0;
		}
	}
	return fetch_stream(s, fx, l->size, f);
}

/* The end of a FETCH response: end (or abort) the message it carried. */
/* BODY[] may also come as a quoted string or NIL (an nstring: a server may
 * send an empty message so): deliver it from the response itself. */
static enum fail_kind
fetch_held_body(struct imap *s, struct fetch_run *fx,
    const struct imap_response *r, struct fail *f)
{
	const struct msg_sink *sink = fx->sink;
	const struct fetch_key *key;
	const char *data;
	size_t len;
	uint32_t uid;
	int rc;

	if (imap_fetch_body(r, "BODY[]", &data, &len) != 1)
		return FAIL_NONE;
	if ((rc = imap_fetch_uid(r, &uid)) == -1)
		return fail_set(f, FAIL_PROTO, "malformed UID in FETCH %u", r->num);
	if (rc == 0)
		uid = seq_uid(s, r->num);
	key = fetch_find(fx, uid);
	if (key == NULL || fx->done[key->idx] || fx->failed)
		return FAIL_NONE;
	fx->done[key->idx] = 1;
	if ((fx->sf.kind = sink->begin(sink->arg, key->idx, &fx->sf)) ||
	    (len > 0 &&
	    (fx->sf.kind = sink->write(sink->arg, data, len, &fx->sf))) ||
	    (fx->sf.kind = sink->end(sink->arg, key->idx, &fx->sf)))
		fx->failed = fx->sf.kind;       /* no more callbacks */
	return FAIL_NONE;
}

static enum fail_kind
fetch_on_resp(struct imap *s, const struct imap_response *r, void *arg,
    struct fail *f)
{
	struct fetch_run *fx = arg;
	const struct msg_sink *sink = fx->sink;
	enum fail_kind k;
	uint32_t uid;
	int rc;

	if (r->type != IMAP_R_FETCH)
		return FAIL_NONE;
	if (!fx->have_cur)
		return fetch_held_body(s, fx, r, f);
	fx->have_cur = 0;
	if ((rc = imap_fetch_uid(r, &uid)) == -1)
		return fail_set(f, FAIL_PROTO, "malformed UID in FETCH %u", r->num);
	if (fx->failed)
		return FAIL_NONE;
	if (rc == 0 || uid != fx->cur_uid) {
		sink->abort(sink->arg, fx->cur);
		log_warnx("%s: message %s: the server's FETCH %u does not carry "
		    "the UID expected; left for the next run", s->server,
		    fx->msgs[fx->cur]->uid, r->num);
		return FAIL_NONE;
	}
	if ((k = sink->end(sink->arg, fx->cur, &fx->sf)) != FAIL_NONE)
		fx->failed = fx->sf.kind = k;
	return FAIL_NONE;
}

/* In-flight commands of a pipelined fetch (or store). */
struct inflight {
	char tags[IMAP_WINDOW_MAX][16];
	size_t n;
};

static int
inflight_take(struct inflight *fl, const char *tag)
{
	for (size_t i = 0; i < fl->n; i++)
		if (strcmp(fl->tags[i], tag) == 0) {
			memmove(fl->tags[i], fl->tags[i + 1],
			    (fl->n - i - 1) * sizeof(fl->tags[0]));
			fl->n--;
			return 0;
		}
	return -1;
}

static enum fail_kind
fetch_send(struct imap *s, const uint32_t *u, size_t nu, size_t *pos,
    struct inflight *fl, struct fail *f)
{
	char set[IMAP_SET_MAX + 32], *cmd;
	enum fail_kind k;

	uidset_next(u, nu, pos, set);
	cmd = xasprintf("UID FETCH %s (UID BODY.PEEK[])", set);
	k = imap_command(s, cmd, f);
	free(cmd);
	if (k == FAIL_NONE)
		snprintf(fl->tags[fl->n++], sizeof(fl->tags[0]), "%s", s->tag);
	return k;
}

/* Read one response of a pipelined fetch. */
static enum fail_kind
fetch_read(struct imap *s, struct fetch_run *fx, struct inflight *fl,
    struct fail *f)
{
	const struct imap_response *r;
	char buf[IMAP_TEXT_MAX];
	enum fail_kind k;

	if ((k = imap_read(s, fetch_on_literal, fx, &r, f)) != FAIL_NONE)
		return k;
	if (r->tag == NULL)
		return fetch_on_resp(s, r, fx, f);
	if (inflight_take(fl, r->tag) == -1)
		return fail_set(f, FAIL_PROTO, "IMAP: unexpected tag %s",
		    clean(r->tag, buf, sizeof(buf)));
	/* A NO (some servers refuse messages they cannot render) leaves the
	 * session in step: the messages it did not send are warned about and
	 * left for the next run. A BAD means we are out of step. */
	if (r->type == IMAP_R_NO && !imap_code_is(r, "EXPUNGEISSUED"))
		log_warnx("%s: UID FETCH refused: %s", s->server,
		    clean(r->text, buf, sizeof(buf)));
	else if (r->type != IMAP_R_OK && r->type != IMAP_R_NO &&
	    fx->tagged_fail == FAIL_NONE)
		fx->tagged_fail = imap_refused(r, FAIL_PROTO, "UID FETCH", &fx->tf);
	return FAIL_NONE;
}

static enum fail_kind
imap_fetch(void *src, const struct msg *const *msgs, size_t n,
    const struct msg_sink *sink, struct fail *f)
{
	struct imap *s = src;
	struct fetch_run fx = { .msgs = msgs, .sink = sink, .n = n };
	struct inflight fl = { .n = 0 };
	size_t nu, pos = 0, window = IMAP_WINDOW_DEFAULT;
	uint32_t *u;
	enum fail_kind k = FAIL_NONE;

	if (n == 0)
		return FAIL_NONE;
	if (s->state != I_SELECTED)
		return fail_set(f, FAIL_PROTO, "fetch: no folder selected");
	fx.keys = xcalloc(n, sizeof(*fx.keys));
	fx.done = xcalloc(n, 1);
	for (size_t i = 0; i < n; i++)
		fx.keys[i] = (struct fetch_key){ msgs[i]->imap_uid, i };
	qsort(fx.keys, n, sizeof(*fx.keys), key_cmp);
	u = sorted_uids(msgs, n, &nu);
	for (;;) {
		while (pos < nu && fl.n < window && !fx.failed && !fx.tagged_fail)
			if ((k = fetch_send(s, u, nu, &pos, &fl, f)) != FAIL_NONE)
				goto out;
		if (fl.n == 0)
			break;
		if ((k = fetch_read(s, &fx, &fl, f)) != FAIL_NONE) {
			/* Cut (or refused) after a body, before its FETCH
			 * ended: that message is not known whole. */
			if (fx.have_cur && !fx.failed)
				sink->abort(sink->arg, fx.cur);
			goto out;
		}
	}
	if (fx.tagged_fail) {
		*f = fx.tf;
		k = fx.tagged_fail;
		goto out;
	}
	if (fx.failed) {
		*f = fx.sf;
		k = f->kind = fx.failed;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (!fx.done[i])
			log_warnx("%s: message %s was not sent by the server "
			    "(expunged meanwhile?); left for the next run",
			    s->server, msgs[i]->uid);
out:
	free(u);
	free(fx.keys);
	free(fx.done);
	return k;
}

/* ---- store, expunge ---- */

/* "UID verb set rest" for every batch of msgs, one after another; the
 * first NO is returned as FAIL_TEMP (BAD: FAIL_PROTO). */
static enum fail_kind
imap_uid_cmd(struct imap *s, const uint32_t *u, size_t nu, const char *verb,
    const char *rest, imap_resp_fn fn, void *arg, struct fail *f)
{
	const struct imap_response *r;
	char set[IMAP_SET_MAX + 32], *cmd;
	size_t pos = 0;
	enum fail_kind k;

	while (pos < nu) {
		uidset_next(u, nu, &pos, set);
		cmd = xasprintf("UID %s %s%s", verb, set, rest);
		k = imap_command(s, cmd, f);
		free(cmd);
		if (k != FAIL_NONE ||
		    (k = imap_wait(s, fn, NULL, arg, &r, f)) != FAIL_NONE)
			return k;
		if (r->type != IMAP_R_OK)
			return imap_refused(r, r->type == IMAP_R_NO ? FAIL_TEMP :
			    FAIL_PROTO, verb, f);
	}
	return FAIL_NONE;
}

struct search_run {
	const uint32_t *ours;
	size_t nours;
	size_t others;
	int seen;                       /* a SEARCH reply came */
};

static enum fail_kind
search_on_resp(struct imap *s, const struct imap_response *r, void *arg,
    struct fail *f)
{
	struct search_run *sr = arg;
	uint32_t uid;

	if (r->type != IMAP_R_SEARCH)
		return FAIL_NONE;
	sr->seen = 1;
	for (const struct imap_value *v = r->args->child; v != NULL; v = v->next) {
		if (v->type != IMAP_V_NUMBER)
			continue;       /* a trailing (MODSEQ n) */
		if (imap_value_u32(v, &uid) == -1)
			return fail_set(f, FAIL_PROTO, "malformed SEARCH response");
		if (sr->nours == 0 || bsearch(&uid, sr->ours, sr->nours,
		    sizeof(uid), u32_cmp) == NULL)
			sr->others++;
	}
	return FAIL_NONE;
}

/* Without UIDPLUS: EXPUNGE only when every \Deleted message is ours. */
static enum fail_kind
imap_expunge_all(struct imap *s, const uint32_t *u, size_t nu, size_t n,
    size_t *refused, struct fail *f)
{
	struct search_run sr = { .ours = u, .nours = nu };
	enum fail_kind k;

	if ((k = imap_simple(s, "UID SEARCH DELETED", search_on_resp, &sr,
	    f)) != FAIL_NONE)
		return k;
	if (!sr.seen) {
		/* No answer we understand (an ESEARCH, say): a plain EXPUNGE
		 * could take another client's \Deleted mail. Fail closed. */
		*refused = n;
		return fail_set(f, FAIL_TEMP, "no SEARCH reply to tell whether "
		    "other messages carry \\Deleted; %zu of ours left flagged "
		    "\\Deleted, not expunged", n);
	}
	if (sr.others > 0) {
		log_warnx("%s: %zu other messages carry \\Deleted; leaving ours "
		    "flagged \\Deleted, not expunged", s->server, sr.others);
		*refused = n;
		return fail_set(f, FAIL_TEMP, "%zu other messages carry "
		    "\\Deleted; %zu of ours left flagged \\Deleted, not expunged",
		    sr.others, n);
	}
	return imap_simple(s, "EXPUNGE", NULL, NULL, f);
}

static enum fail_kind
imap_del(void *src, const struct msg *const *msgs, size_t n, size_t *refused,
    struct fail *f)
{
	struct imap *s = src;
	size_t nu;
	uint32_t *u;
	enum fail_kind k;

	*refused = 0;
	if (n == 0)
		return FAIL_NONE;
	if (s->state != I_SELECTED)
		return fail_set(f, FAIL_PROTO, "del: no folder selected");
	u = sorted_uids(msgs, n, &nu);
	k = imap_uid_cmd(s, u, nu, "STORE", " +FLAGS.SILENT (\\Deleted)",
	    NULL, NULL, f);
	if (k == FAIL_NONE && s->caps.uidplus)
		k = imap_uid_cmd(s, u, nu, "EXPUNGE", "", NULL, NULL, f);
	else if (k == FAIL_NONE)
		k = imap_expunge_all(s, u, nu, n, refused, f);
	if (k == FAIL_TEMP)
		*refused = n;
	free(u);
	return k;
}

struct hdr_run {
	const struct msg *const *msgs;
	size_t n;
	uint32_t *byuid;                /* uids of msgs, sorted */
	size_t *index;                  /* index in msgs of byuid[i] */
	void (*cb)(void *arg, size_t i, const char *p, size_t len);
	void *arg;
};

static enum fail_kind
hdr_on_resp(struct imap *s, const struct imap_response *r, void *arg,
    struct fail *f)
{
	struct hdr_run *hr = arg;
	const uint32_t *hit;
	const char *p;
	size_t len;
	uint32_t uid;

	if (r->type != IMAP_R_FETCH || imap_fetch_uid(r, &uid) != 1)
		return FAIL_NONE;
	hit = bsearch(&uid, hr->byuid, hr->n, sizeof(uid), u32_cmp);
	if (hit != NULL && imap_fetch_body(r, "BODY[HEADER]", &p, &len) == 1)
		hr->cb(hr->arg, hr->index[hit - hr->byuid], p, len);
	return FAIL_NONE;
}

struct uid_index {
	uint32_t uid;
	size_t i;
};

static int
uid_index_cmp(const void *a, const void *b)
{
	return u32_cmp(&((const struct uid_index *)a)->uid,
	    &((const struct uid_index *)b)->uid);
}

static enum fail_kind
imap_headers(void *src, const struct msg *const *msgs, size_t n,
    void (*cb)(void *arg, size_t i, const char *p, size_t len), void *arg,
    struct fail *f)
{
	struct imap *s = src;
	struct hdr_run hr = { .msgs = msgs, .n = n, .cb = cb, .arg = arg };
	struct uid_index *ix;
	enum fail_kind k;

	if (n == 0)
		return FAIL_NONE;
	if (s->state != I_SELECTED)
		return fail_set(f, FAIL_PROTO, "headers: no folder selected");
	ix = xcalloc(n, sizeof(*ix));
	for (size_t i = 0; i < n; i++) {
		ix[i].uid = msgs[i]->imap_uid;
		ix[i].i = i;
	}
	qsort(ix, n, sizeof(*ix), uid_index_cmp);
	hr.byuid = xcalloc(n, sizeof(*hr.byuid));
	hr.index = xcalloc(n, sizeof(*hr.index));
	for (size_t i = 0; i < n; i++) {
		hr.byuid[i] = ix[i].uid;
		hr.index[i] = ix[i].i;
	}
	free(ix);
	k = imap_uid_cmd(s, hr.byuid, n, "FETCH", " (UID BODY.PEEK[HEADER])",
	    hdr_on_resp, &hr, f);
	free(hr.byuid);
	free(hr.index);
	return k;
}

/* BODY.PEEK[HEADER] is IMAP4rev1: every server can. */
static int
imap_header_first(void *src)
{
	return 1;
}

static enum fail_kind
imap_seen(void *src, const struct msg *const *msgs, size_t n, struct fail *f)
{
	struct imap *s = src;
	size_t nu;
	uint32_t *u;
	enum fail_kind k;

	if (n == 0)
		return FAIL_NONE;
	if (s->state != I_SELECTED)
		return fail_set(f, FAIL_PROTO, "seen: no folder selected");
	u = sorted_uids(msgs, n, &nu);
	k = imap_uid_cmd(s, u, nu, "STORE", " +FLAGS.SILENT (\\Seen)", NULL,
	    NULL, f);
	free(u);
	return k;
}

/* ---- idle ---- */

/* A failure during IDLE names the folder. */
static enum fail_kind
idle_failed(struct imap *s, enum fail_kind k, struct fail *f)
{
	char why[sizeof(f->msg)];

	snprintf(why, sizeof(why), "%s", f->msg);
	return fail_set(f, k, "IDLE on folder %s: %s", s->folder, why);
}

/* Idle until new mail, the deadline or *stop; *r is the tagged reply if
 * the server ended IDLE itself (else NULL). */
static enum fail_kind
idle_wait(struct imap *s, long long deadline, volatile sig_atomic_t *stop,
    const struct imap_response **r, struct fail *f)
{
	const struct imap_response *x;
	enum fail_kind k;
	long long left;
	int ready;

	*r = NULL;
	while (!s->grew && (stop == NULL || !*stop) &&
	    (left = deadline - mono_ms()) > 0) {
		if (left > IMAP_IDLE_SLICE_MS)
			left = IMAP_IDLE_SLICE_MS;
		if ((k = conn_wait_input(s->conn, (int)left, &ready, f)) !=
		    FAIL_NONE)
			return k;
		if (!ready)
			continue;
		if ((k = imap_read(s, NULL, NULL, &x, f)) != FAIL_NONE)
			return k;
		if (x->tag != NULL) {
			if ((k = imap_check_tag(x, s->tag, f)) != FAIL_NONE)
				return k;
			*r = x;
			return FAIL_NONE;
		}
		/* Anything else (RECENT, FETCH, EXPUNGE, OK, a second "+")
		 * is not new mail: imap_untagged() has taken note. */
	}
	return FAIL_NONE;
}

/* IDLE, "+", wait, DONE, tagged OK. *news as for source_ops.idle. */
static enum fail_kind
idle_run(struct imap *s, int max_seconds, volatile sig_atomic_t *stop,
    int *news, struct fail *f)
{
	const struct imap_response *r = NULL;
	char buf[IMAP_TEXT_MAX];
	long long deadline = mono_ms() + (long long)max_seconds * 1000;
	enum fail_kind k;

	log_debug("imap: %s: IDLE for at most %d s", s->folder, max_seconds);
	imap_set_state(s, I_IDLE);
	if ((k = imap_command(s, "IDLE", f)) != FAIL_NONE ||
	    (k = imap_wait_continue(s, &r, f)) != FAIL_NONE)
		return k;
	if (r != NULL && r->type == IMAP_R_NO) {
		/* Refused though announced: poll from now on. */
		log_warnx("%s: IDLE on folder %s refused: %s; polling instead",
		    s->server, s->folder, clean(r->text, buf, sizeof(buf)));
		s->caps.idle = 0;
		imap_set_state(s, I_SELECTED);
		*news = -1;
		return FAIL_NONE;
	}
	if (r == NULL && (k = idle_wait(s, deadline, stop, &r, f)) != FAIL_NONE)
		return k;
	if (r == NULL && ((k = imap_sends(s, "DONE", 1, f)) != FAIL_NONE ||
	    (k = imap_wait(s, NULL, NULL, NULL, &r, f)) != FAIL_NONE))
		return k;
	if (r->type != IMAP_R_OK)
		return imap_refused(r, FAIL_PROTO, "IDLE", f);
	imap_set_state(s, I_SELECTED);
	*news = s->grew;
	s->grew = 0;
	log_debug("imap: %s: IDLE ended: %s", s->folder,
	    *news ? "new mail" : stop != NULL && *stop ? "stopped" : "time");
	return FAIL_NONE;
}

static enum fail_kind
imap_idle(void *src, int max_seconds, volatile sig_atomic_t *stop, int *news,
    struct fail *f)
{
	struct imap *s = src;
	enum fail_kind k;

	*news = 0;
	if (s->state != I_SELECTED)
		return fail_set(f, FAIL_PROTO, "idle: no folder selected");
	if (!s->caps.idle) {
		*news = -1;
		return FAIL_NONE;
	}
	if (s->grew) {                  /* came while we were busy */
		s->grew = 0;
		*news = 1;
		return FAIL_NONE;
	}
	if (stop != NULL && *stop)
		return FAIL_NONE;
	if (max_seconds < 1)
		max_seconds = 1;
	if (max_seconds > IMAP_IDLE_MAX)
		max_seconds = IMAP_IDLE_MAX;
	if ((k = idle_run(s, max_seconds, stop, news, f)) != FAIL_NONE)
		return idle_failed(s, k, f);
	return FAIL_NONE;
}

/* ---- close ---- */

static enum fail_kind
imap_logout(struct imap *s, struct fail *f)
{
	const struct imap_response *r;
	enum fail_kind k;

	imap_set_state(s, I_LOGOUT);
	if ((k = imap_command(s, "LOGOUT", f)) != FAIL_NONE)
		return k;
	for (;;) {
		if ((k = imap_read(s, NULL, NULL, &r, f)) != FAIL_NONE)
			/* Closed after BYE: what many servers do. */
			return k == FAIL_CONN && !imap_parser_busy(s->parser) ?
			    FAIL_NONE : k;
		if (r->tag != NULL) {
			if ((k = imap_check_tag(r, s->tag, f)) != FAIL_NONE)
				return k;
			return r->type == IMAP_R_OK ? FAIL_NONE :
			    imap_refused(r, FAIL_PROTO, "LOGOUT", f);
		}
	}
}

static enum fail_kind
imap_close(void *src, int commit, struct fail *f)
{
	struct imap *s = src;
	enum fail_kind k = FAIL_NONE;

	if (s == NULL)
		return FAIL_NONE;
	if (commit)
		k = imap_logout(s, f);
	imap_set_state(s, I_CLOSED);
	imap_free(s);
	return k;
}

static const char *
imap_server(void *src)
{
	struct imap *s = src;

	return s->server;
}

const struct source_ops imap_source = {
	.name = "imap",
	.open = imap_open,
	.list = imap_list,
	.fetch = imap_fetch,
	.del = imap_del,
	.folders = imap_folders,
	.select = imap_select,
	.seen = imap_seen,
	.headers = imap_headers,
	.header_first = imap_header_first,
	.idle = imap_idle,
	.close = imap_close,
	.server = imap_server,
};
