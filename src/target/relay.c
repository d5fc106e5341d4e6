/* relay.c - the SMTP/LMTP relay target: each message passed on to a mail
 * server over the SMTP client in src/proto/smtp.c.
 *
 * open() takes the WHOLE `deliver =` text:
 *   smtp://HOST[:PORT][/][?KEY=VALUE[&KEY=VALUE...]]    port 25
 *   smtps://HOST[:PORT][/][?...]                        port 465, implicit TLS
 *   lmtp://HOST[:PORT][/][?...]                         port 24
 *   lmtp:/ABSOLUTE/PATH[?...]                           a unix socket
 * HOST may be a name, an IPv4 address or [IPv6]; a socket path runs to the
 * first '?' and is taken as written. Keys (values %XX-decoded):
 *   to=ADDR        the envelope recipient (required; the config adds it
 *                  from smtp_to)
 *   tls=auto|starttls|none   STARTTLS when offered (smtp default) |
 *                  required | never (lmtp default: none; a unix socket
 *                  takes none only)
 *   helo=NAME      our name in EHLO/LHLO (default "localhost")
 *   ca_file=PATH   extra trust anchors; tls_verify=no (testing only)
 *   timeout=SECS   connect and inactivity timeout (default 60)
 *   auth=auto|plain|login|xoauth2   the AUTH mechanism when login() gave
 *                  credentials (auto: PLAIN, else LOGIN, as offered)
 *
 * login() (optional, before the first message) makes every session AUTH.
 * Credentials never cross the network in clear: unless the server is
 * 127.0.0.1, ::1, localhost or a unix socket, they need TLS, so tls=none is
 * refused there and tls=auto becomes "STARTTLS required".
 *
 * One session carries the whole poll: the first begin() connects; later
 * messages follow RSET on the same connection; a connection found dropped
 * at RSET/MAIL is opened again, once per message. The envelope sender is
 * the message's Return-Path (else <>), so the header is held back (up to
 * RELAY_HOLD_MAX bytes) and MAIL FROM goes out when the header has passed.
 *
 * end() sends the final "." and reads the reply: 250 = committed. SMTP
 * and LMTP delivery is at-least-once (DESIGN 1.2): sync() has nothing to
 * do, and settle() after a crash answers 0 (the message is delivered
 * again), except for messages this run's server accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "fail.h"
#include "log.h"
#include "sasl.h"
#include "smtp.h"
#include "target.h"
#include "xmalloc.h"

#define RELAY_HOLD_MAX  (64 * 1024)     /* header held to find Return-Path */
#define RELAY_ADDR_MAX  512
#define RELAY_TIMEOUT   60
#define RELAY_LABEL_MAX 120

static atomic_ulong relay_seq;



struct relay {
	char             label[RELAY_LABEL_MAX + 4];    /* spec, printable */
	char            *host, *port, *to, *helo, *ca_file;
	char            *unix_path;     /* lmtp:/PATH, else NULL */
	char            *user, *secret; /* from login(); secret wiped on close */
	struct smtp_params sp;
	struct smtp     *sess;

	/* The message being delivered. */
	int              active;
	int              started;       /* MAIL..DATA done, body flowing */
	enum fail_kind   failed;        /* the message failed; kept in ff */
	struct fail      ff;
	char             ref[TARGET_REF_MAX];
	unsigned long long size;
	char            *hold;
	size_t           nhold, scanned, linestart;

	/* Accepted since the batch was planned: what settle() can vouch for. */
	char           **done;
	size_t           ndone, capdone;
	int              synced;
};

/* ---- the spec ----------------------------------------------------------- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* xmalloc'd %XX-decoded copy of [p, p+n); NULL for a bad escape or a
 * control byte. */
static char *
pct_decode(const char *p, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			int h, l;

			if (i + 2 >= n)
				goto bad;
			if ((h = hexval(p[i + 1])) < 0 || (l = hexval(p[i + 2])) < 0)
				goto bad;
			c = h * 16 + l;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			goto bad;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static enum fail_kind
relay_query(struct relay *r, const char *q, struct fail *f)
{
	while (*q != '\0') {
		size_t n = strcspn(q, "&"), kl = strcspn(q, "=");
		char *v;

		if (kl >= n)
			return fail_set(f, FAIL_CONFIG, "%s: expected KEY=VALUE "
			    "after '?'", r->label);
		if ((v = pct_decode(q + kl + 1, n - kl - 1)) == NULL)
			return fail_set(f, FAIL_CONFIG, "%s: bad %%-escape or "
			    "control byte in a value", r->label);
#define KEY(name) (kl == strlen(name) && strncmp(q, name, kl) == 0)
		if (KEY("to")) {
			free(r->to);
			r->to = v;
		} else if (KEY("helo")) {
			free(r->helo);
			r->helo = v;
		} else if (KEY("ca_file")) {
			free(r->ca_file);
			r->ca_file = v;
		} else if (KEY("tls")) {
			if (strcmp(v, "auto") == 0)
				r->sp.tls = SMTP_TLS_OPPORTUNISTIC;
			else if (strcmp(v, "starttls") == 0)
				r->sp.tls = SMTP_TLS_STARTTLS;
			else if (strcmp(v, "none") == 0)
				r->sp.tls = SMTP_TLS_NONE;
			else {
				free(v);
				return fail_set(f, FAIL_CONFIG, "%s: tls must be "
				    "auto, starttls or none", r->label);
			}
			free(v);
		} else if (KEY("auth")) {
			enum sasl_mech m = sasl_mech_parse(v, strlen(v));

			if (strcmp(v, "auto") != 0 && m != SASL_PLAIN &&
			    m != SASL_LOGIN && m != SASL_XOAUTH2) {
				free(v);
				return fail_set(f, FAIL_CONFIG, "%s: auth must be "
				    "auto, plain, login or xoauth2", r->label);
			}
			r->sp.mech = strcmp(v, "auto") == 0 ? SASL_NONE : m;
			free(v);
		} else if (KEY("tls_verify")) {
			r->sp.conn.tls_verify = strcmp(v, "no") != 0;
			free(v);
		} else if (KEY("timeout")) {
			char *end;
			long t = strtol(v, &end, 10);
			int bad = *end != '\0' || t <= 0 || t > 86400;

			free(v);
			if (bad)
				return fail_set(f, FAIL_CONFIG, "%s: bad timeout",
				    r->label);
			r->sp.conn.timeout = (int)t;
		} else {
			free(v);
			return fail_set(f, FAIL_CONFIG, "%s: unknown key '%.*s' "
			    "(expected to, tls, helo, ca_file, tls_verify, "
			    "timeout, auth)", r->label, (int)(kl > 40 ? 40 : kl), q);
		}
#undef KEY
		q += n;
		if (*q == '&')
			q++;
	}
	return FAIL_NONE;
}

/* HOST[:PORT][/] up to '?' or the end. */
static enum fail_kind
relay_hostport(struct relay *r, const char *p, size_t n, const char *dport,
    struct fail *f)
{
	const char *end = p + n, *hend, *colon = NULL;

	if (n > 0 && end[-1] == '/')
		end--;
	if (p < end && *p == '[') {
		if ((hend = memchr(p, ']', (size_t)(end - p))) == NULL)
			return fail_set(f, FAIL_CONFIG, "%s: missing ']'",
			    r->label);
		r->host = xstrndup(p + 1, (size_t)(hend - p - 1));
		if (hend + 1 < end && hend[1] == ':')
			colon = hend + 1;
		else if (hend + 1 != end)
			return fail_set(f, FAIL_CONFIG, "%s: junk after ']'",
			    r->label);
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		r->host = xstrndup(p, (size_t)((colon ? colon : end) - p));
	}
	if (r->host[0] == '\0' || strpbrk(r->host, "/@ ") != NULL)
		return fail_set(f, FAIL_CONFIG, "%s: no valid host", r->label);
	if (colon != NULL) {
		r->port = xstrndup(colon + 1, (size_t)(end - colon - 1));
		if (r->port[0] == '\0' || strspn(r->port, "0123456789") !=
		    strlen(r->port) || atoi(r->port) <= 0 || atoi(r->port) > 65535)
			return fail_set(f, FAIL_CONFIG, "%s: bad port", r->label);
	} else
		r->port = xstrdup(dport);
	return FAIL_NONE;
}

/* lmtp:PATH up to '?' or the end: an absolute path, no control bytes. */
static enum fail_kind
relay_sockpath(struct relay *r, const char *p, size_t n, struct fail *f)
{
	if (n == 0 || p[0] != '/')
		return fail_set(f, FAIL_CONFIG, "%s: expected an absolute socket "
		    "path (lmtp:/run/dovecot/lmtp) or lmtp://HOST[:PORT]",
		    r->label);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return fail_set(f, FAIL_CONFIG, "%s: control byte in the "
			    "socket path", r->label);
	r->unix_path = xstrndup(p, n);
	return FAIL_NONE;
}

static enum fail_kind
relay_parse(struct relay *r, const char *spec, struct fail *f)
{
	const char *rest, *dport, *q;
	size_t n;
	enum fail_kind k;

	r->sp.conn.timeout = RELAY_TIMEOUT;
	r->sp.conn.tls_verify = 1;
	if (strncmp(spec, "smtp://", 7) == 0) {
		rest = spec + 7, dport = "25";
		r->sp.tls = SMTP_TLS_OPPORTUNISTIC;
	} else if (strncmp(spec, "smtps://", 8) == 0) {
		rest = spec + 8, dport = "465";
		r->sp.tls = SMTP_TLS_IMPLICIT;
	} else if (strncmp(spec, "lmtp://", 7) == 0) {
		rest = spec + 7, dport = "24";
		r->sp.proto = SMTP_PROTO_LMTP;
		r->sp.tls = SMTP_TLS_NONE;
	} else if (strncmp(spec, "lmtp:", 5) == 0) {
		rest = spec + 5, dport = NULL;
		r->sp.proto = SMTP_PROTO_LMTP;
		r->sp.tls = SMTP_TLS_NONE;
	} else
		return fail_set(f, FAIL_CONFIG, "%s: expected smtp://HOST[:PORT], "
		    "smtps://HOST[:PORT], lmtp://HOST[:PORT] or lmtp:/PATH",
		    r->label);
	q = strchr(rest, '?');
	n = q != NULL ? (size_t)(q - rest) : strlen(rest);
	k = dport != NULL ? relay_hostport(r, rest, n, dport, f) :
	    relay_sockpath(r, rest, n, f);
	if (k != FAIL_NONE)
		return k;
	if (q != NULL && (k = relay_query(r, q + 1, f)) != FAIL_NONE)
		return k;
	if (strncmp(spec, "smtps://", 8) == 0)
		r->sp.tls = SMTP_TLS_IMPLICIT;  /* smtps: TLS whatever tls= says */
	if (r->unix_path != NULL && r->sp.tls != SMTP_TLS_NONE)
		return fail_set(f, FAIL_CONFIG, "%s: no TLS over a unix socket "
		    "(leave tls= out)", r->label);
	if (r->to == NULL || r->to[0] == '\0')
		return fail_set(f, FAIL_CONFIG, "%s: no envelope recipient "
		    "(add ?to=ADDRESS)", r->label);
	if (strlen(r->to) > RELAY_ADDR_MAX || strpbrk(r->to, " <>") != NULL)
		return fail_set(f, FAIL_CONFIG, "%s: bad recipient address",
		    r->label);
	r->sp.conn.host = r->host;
	r->sp.conn.port = r->port;
	r->sp.conn.unix_path = r->unix_path;
	r->sp.conn.ca_file = r->ca_file;
	r->sp.helo = r->helo;
	return FAIL_NONE;
}

/* ---- the envelope sender ------------------------------------------------ */

static int
header_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* The address of the first Return-Path in the held header (CRLF or LF line
 * ends), or "" (<>) for none, <> or anything that cannot be sent. */
static char *
find_sender(const char *h, size_t n)
{
	const char *p = h, *end = h + n, *nl, *v, *vend;
	size_t len;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = (size_t)((nl ? nl : end) - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0)
			break;
		if (header_is(p, len, "Return-Path")) {
			v = p + strlen("Return-Path:");
			vend = p + len;
			while (v < vend && (*v == ' ' || *v == '\t'))
				v++;
			while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			if (v < vend && *v == '<' && vend[-1] == '>')
				v++, vend--;
			if (v >= vend || (size_t)(vend - v) > RELAY_ADDR_MAX)
				return xstrdup("");
			for (const char *c = v; c < vend; c++)
				if ((unsigned char)*c <= 0x20 || *c == 0x7f ||
				    *c == '<' || *c == '>')
					return xstrdup("");
			return xstrndup(v, (size_t)(vend - v));
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return xstrdup("");
}

/* ---- the session -------------------------------------------------------- */

static void
relay_drop(struct relay *r)
{
	smtp_close(r->sess);
	r->sess = NULL;
}

static enum fail_kind
relay_connect(struct relay *r, struct fail *f)
{
	if (r->sess != NULL && smtp_alive(r->sess))
		return FAIL_NONE;
	relay_drop(r);
	return smtp_open(&r->sess, &r->sp, f);
}

/* The message's state is dropped; a session in the middle of a body cannot
 * be used again. */
static void
relay_reset(struct relay *r)
{
	if (r->sess != NULL && !smtp_alive(r->sess))
		relay_drop(r);
	r->active = r->started = 0;
	r->failed = FAIL_NONE;
	r->nhold = r->scanned = r->linestart = 0;
}

/* The SMTP client's messages name the protocol; ours name the relay as
 * written (without its parameters), as the other targets name their file. */
static enum fail_kind
relay_named(struct relay *r, enum fail_kind k, struct fail *f)
{
	size_t ll = strlen(r->label);

	if (strncmp(f->msg, r->label, ll) != 0) {
		char buf[sizeof(f->msg) + RELAY_LABEL_MAX + 8];

		snprintf(buf, sizeof(buf), "%s: %s", r->label, f->msg);
		snprintf(f->msg, sizeof(f->msg), "%.*s",
		    (int)sizeof(f->msg) - 1, buf);
	}
	return k;
}

static enum fail_kind
relay_failed(struct relay *r, enum fail_kind k, struct fail *f)
{
	relay_named(r, k, f);
	r->failed = k;
	r->ff = *f;
	if (r->sess != NULL && !smtp_alive(r->sess))
		relay_drop(r);
	return k;
}

/* MAIL, RCPT, DATA (reconnecting once if the connection had gone), then
 * the held bytes. */
static enum fail_kind
relay_start(struct relay *r, struct fail *f)
{
	enum fail_kind k;
	char *sender;

	if ((k = relay_connect(r, f)) != FAIL_NONE)
		return relay_failed(r, k, f);
	sender = find_sender(r->hold, r->nhold);
	log_debug("%s: envelope <%s> -> <%s>", r->label, sender, r->to);
	k = smtp_mail(r->sess, sender, r->to, r->size, f);
	if (k == FAIL_CONN && smtp_dropped_early(r->sess)) {
		log_verbose("%s: connection lost (%s); connecting again",
		    r->label, f->msg);
		relay_drop(r);
		if ((k = relay_connect(r, f)) == FAIL_NONE)
			k = smtp_mail(r->sess, sender, r->to, r->size, f);
	}
	free(sender);
	if (k != FAIL_NONE)
		return relay_failed(r, k, f);
	r->started = 1;
	k = smtp_data(r->sess, r->hold, r->nhold, f);
	r->nhold = 0;
	return k != FAIL_NONE ? relay_failed(r, k, f) : FAIL_NONE;
}

/* Hold bytes until the header has ended (an empty line) or the hold is
 * full; then start the transaction. */
static enum fail_kind
relay_hold(struct relay *r, const char **p, size_t *n, struct fail *f)
{
	size_t room = RELAY_HOLD_MAX - r->nhold, i;

	if (room > *n)
		room = *n;
	memcpy(r->hold + r->nhold, *p, room);
	r->nhold += room;
	*p += room;
	*n -= room;
	for (i = r->scanned; i < r->nhold; i++) {
		if (r->hold[i] != '\n')
			continue;
		if (i == r->linestart ||
		    (i == r->linestart + 1 && r->hold[r->linestart] == '\r'))
			break;
		r->linestart = i + 1;
	}
	r->scanned = i;
	if (i < r->nhold || r->nhold == RELAY_HOLD_MAX)
		return relay_start(r, f);
	return FAIL_NONE;
}

/* ---- the table ---------------------------------------------------------- */

static void relay_close(void *t);

static enum fail_kind
relay_open(void **t, const char *spec, struct fail *f)
{
	struct relay *r = xcalloc(1, sizeof(*r));
	enum fail_kind k;
	size_t i;

	*t = NULL;
	for (i = 0; spec[i] != '\0' && i < RELAY_LABEL_MAX &&
	    spec[i] != '?'; i++)
		r->label[i] = (unsigned char)spec[i] > 0x20 &&
		    (unsigned char)spec[i] < 0x7f ? spec[i] : '?';
	r->label[i] = '\0';
	if ((k = relay_parse(r, spec, f)) != FAIL_NONE) {
		relay_close(r);
		return k;
	}
	r->hold = xmalloc(RELAY_HOLD_MAX);
	*t = r;
	return FAIL_NONE;
}

static void
done_clear(struct relay *r)
{
	for (size_t i = 0; i < r->ndone; i++)
		free(r->done[i]);
	r->ndone = 0;
}

static void
relay_close(void *t)
{
	struct relay *r = t;

	if (r == NULL)
		return;
	relay_drop(r);
	done_clear(r);
	free(r->done);
	free(r->hold);
	free(r->host);
	free(r->port);
	free(r->to);
	free(r->helo);
	free(r->ca_file);
	free(r->unix_path);
	free(r->user);
	free_secret(r->secret);
	free(r);
}

static enum fail_kind
relay_plan(void *t, char *ref, size_t reflen, struct fail *f)
{
	struct relay *r = t;
	struct timespec ts;
	int n;

	if (r->synced) {
		done_clear(r);
		r->synced = 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(ref, reflen, "smtp.%lld.%ld.%lu", (long long)ts.tv_sec,
	    (long)getpid(), atomic_fetch_add(&relay_seq, 1));
	if (n < 0 || (size_t)n >= reflen || (size_t)n >= TARGET_REF_MAX)
		return fail_set(f, FAIL_LOCAL, "%s: reference too long",
		    r->label);
	return FAIL_NONE;
}

static enum fail_kind
relay_begin(void *t, const char *ref, const struct msg_meta *m,
    struct fail *f)
{
	struct relay *r = t;
	enum fail_kind k;

	if (r->active)
		return fail_set(f, FAIL_LOCAL, "%s: a message is already open",
		    r->label);
	if ((k = relay_connect(r, f)) != FAIL_NONE) {
		relay_drop(r);
		return relay_named(r, k, f);
	}
	snprintf(r->ref, sizeof(r->ref), "%s", ref);
	r->active = 1;
	r->started = 0;
	r->failed = FAIL_NONE;
	r->size = m != NULL ? m->size : 0;
	r->nhold = r->scanned = r->linestart = 0;
	return FAIL_NONE;
}

static enum fail_kind
relay_write(void *t, const char *p, size_t n, struct fail *f)
{
	struct relay *r = t;
	enum fail_kind k;

	if (!r->active)
		return fail_set(f, FAIL_LOCAL, "%s: no message open", r->label);
	if (r->failed != FAIL_NONE) {
		*f = r->ff;
		return r->failed;
	}
	while (!r->started && n > 0)
		if ((k = relay_hold(r, &p, &n, f)) != FAIL_NONE)
			return k;
	if (n == 0)
		return FAIL_NONE;
	if ((k = smtp_data(r->sess, p, n, f)) != FAIL_NONE)
		return relay_failed(r, k, f);
	return FAIL_NONE;
}

static enum fail_kind
relay_end(void *t, struct fail *f)
{
	struct relay *r = t;
	enum fail_kind k;

	if (!r->active)
		return fail_set(f, FAIL_LOCAL, "%s: no message open", r->label);
	if (r->failed != FAIL_NONE) {
		*f = r->ff;
		k = r->failed;
		goto out;
	}
	if (!r->started && (k = relay_start(r, f)) != FAIL_NONE)
		goto out;
	if ((k = smtp_data_end(r->sess, f)) != FAIL_NONE) {
		relay_named(r, k, f);
		goto out;
	}
	if (r->ndone == r->capdone) {
		r->capdone = r->capdone ? r->capdone * 2 : 16;
		r->done = xreallocarray(r->done, r->capdone, sizeof(*r->done));
	}
	r->done[r->ndone++] = xstrdup(r->ref);
out:
	relay_reset(r);         /* a failed end() drops the message */
	return k;
}

/* A body under way cannot be cancelled in SMTP: drop the connection (the
 * server discards the partial message); the next begin() reconnects. */
static void
relay_abort(void *t)
{
	struct relay *r = t;

	if (!r->active)
		return;
	if (r->started && r->sess != NULL && !smtp_alive(r->sess))
		relay_drop(r);
	relay_reset(r);
}

static enum fail_kind
relay_sync(void *t, struct fail *f)
{
	struct relay *r = t;

	r->synced = 1;
	return FAIL_NONE;
}

static int
relay_settle(void *t, const char *ref, struct fail *f)
{
	struct relay *r = t;
	long pid = 0;

	for (size_t i = 0; i < r->ndone; i++)
		if (strcmp(r->done[i], ref) == 0)
			return 1;
	if (sscanf(ref, "smtp.%*[0-9].%ld.", &pid) != 1 ||
	    pid != (long)getpid())
		log_verbose("%s: cannot tell whether an interrupted run "
		    "delivered %s; it will be delivered again (SMTP/LMTP "
		    "delivery is at-least-once)", r->label, ref);
	return 0;
}

/* May credentials go without TLS? Only to this machine. */
static int
relay_is_local(const struct relay *r)
{
	return r->unix_path != NULL || strcmp(r->host, "127.0.0.1") == 0 ||
	    strcmp(r->host, "::1") == 0 || strcasecmp(r->host, "localhost") == 0;
}

static enum fail_kind
relay_login(void *t, const char *user, const char *secret, struct fail *f)
{
	struct relay *r = t;
	int local = relay_is_local(r);

	if (r->active)
		return fail_set(f, FAIL_LOCAL, "%s: login while a message is "
		    "open", r->label);
	if (user == NULL || user[0] == '\0' || secret == NULL ||
	    secret[0] == '\0')
		return fail_set(f, FAIL_CONFIG, "%s: AUTH needs a user name and "
		    "a password", r->label);
	if (!local && r->sp.tls == SMTP_TLS_NONE)
		return fail_set(f, FAIL_CONFIG, "%s: refusing to send smtp_user's "
		    "credentials to %s without TLS (use smtps://, tls=starttls, "
		    "or a server on 127.0.0.1, ::1, localhost or a unix socket)",
		    r->label, r->host);
	if (!local && r->sp.tls == SMTP_TLS_OPPORTUNISTIC)
		r->sp.tls = SMTP_TLS_STARTTLS;  /* credentials: TLS or nothing */
	relay_drop(r);                          /* the next session logs in */
	free(r->user);
	free_secret(r->secret);
	r->user = xstrdup(user);
	r->secret = xstrdup(secret);
	r->sp.user = r->user;
	r->sp.secret = r->secret;
	r->sp.allow_plaintext = local;
	return FAIL_NONE;
}

const struct target_ops smtp_target = {
	.kind = "smtp",
	.open = relay_open,
	.plan = relay_plan,
	.begin = relay_begin,
	.write = relay_write,
	.end = relay_end,
	.abort = relay_abort,
	.sync = relay_sync,
	.settle = relay_settle,
	.close = relay_close,
	.login = relay_login,
};
