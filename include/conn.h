/* conn.h - one network connection: TCP (IPv4/IPv6) or a unix-domain stream
 * socket, TLS, buffered reads.
 *
 * The only code that sees file descriptors and SSL objects. Protocol code sees
 * lines and byte spans. Every read and write is bounded by the inactivity
 * timeout; a line longer than the cap is an error, never a reallocation.
 *
 * Errors: functions return FAIL_NONE or a fail kind and fill *f with one line
 * ("connection timed out after 60 s", "certificate verify failed: ...").
 * They never log errors themselves; with log level TRACE they log nothing
 * either: tracing is the protocol layer's job (it knows what to redact).
 */
#ifndef MAILPULL_CONN_H
#define MAILPULL_CONN_H

#include <stddef.h>
#include <sys/types.h>
#include "fail.h"

enum tls_mode { TLS_NONE, TLS_IMPLICIT, TLS_STARTTLS };

struct conn_params {
	const char *host;
	const char *port;       /* numeric string or service name */
	int timeout;            /* seconds: connect and inactivity */
	int tls_verify;         /* 1 = verify chain + host name (default) */
	const char *ca_file;    /* extra trust anchors (PEM), or NULL */
	const char *fingerprint;/* "sha256:AB:CD:..." pin of the leaf cert, or NULL */
	const char *unix_path;  /* set: connect to this AF_UNIX stream socket
	                         * instead (host and port unused; no TLS) */
};

struct conn;

/* Resolve (getaddrinfo, AF_UNSPEC), connect to each address in turn with the
 * timeout, and if tls is TLS_IMPLICIT, do the TLS handshake at once. With
 * p->unix_path, connect to that socket within the timeout instead (errors
 * name the path); tls must then be TLS_NONE (FAIL_CONFIG otherwise). On
 * success *out owns the connection. p's strings must outlive the conn. */
enum fail_kind conn_open(struct conn **out, const struct conn_params *p,
    enum tls_mode tls, struct fail *f);

/* Upgrade a plain connection to TLS (after STLS/STARTTLS was accepted). Any
 * bytes buffered from before the upgrade are an error (injection). Not over
 * a unix socket (FAIL_CONFIG). */
enum fail_kind conn_starttls(struct conn *c, struct fail *f);

int conn_is_tls(const struct conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "plain". */
const char *conn_describe(const struct conn *c);

/* Read one line. On success *line points into the connection's buffer (valid
 * until the next read call), *len is its length WITHOUT the line ending
 * ("\r\n" or a bare "\n" are both accepted and stripped), and the line is
 * NUL-terminated in place. A line longer than maxlen bytes (before the line
 * end) fails with FAIL_PROTO "line too long". EOF fails with FAIL_CONN. */
enum fail_kind conn_readline(struct conn *c, char **line, size_t *len,
    size_t maxlen, struct fail *f);

/* Streaming: make at least one byte available and point *p at all bytes
 * currently buffered (*n > 0). conn_consume() then drops the first k of
 * them (k <= *n). Used for bodies: callers never copy the whole message. */
enum fail_kind conn_peek(struct conn *c, const char **p, size_t *n, struct fail *f);
void conn_consume(struct conn *c, size_t k);

/* Wait up to timeout_ms for input, for waits longer than the inactivity
 * timeout (IMAP IDLE). Flushes pending output first. *ready = 1 when bytes
 * are buffered (the next conn_peek/conn_readline does not wait for the
 * first of them; it may wait, within the inactivity timeout, for the rest
 * of a line); *ready = 0 when the time passed or a signal interrupted the
 * wait. EOF fails with FAIL_CONN. */
enum fail_kind conn_wait_input(struct conn *c, int timeout_ms, int *ready,
    struct fail *f);

/* Buffered write; conn_flush() sends everything buffered. conn_readline and
 * conn_peek flush pending output first, so a command followed by a read never
 * deadlocks. */
enum fail_kind conn_write(struct conn *c, const void *buf, size_t len, struct fail *f);
enum fail_kind conn_printf(struct conn *c, struct fail *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum fail_kind conn_flush(struct conn *c, struct fail *f);

/* Close (TLS close_notify best effort, no waiting) and free. NULL is fine. */
void conn_close(struct conn *c);

#endif
