/* tls.h - private to src/net: the TLS half of a connection (OpenSSL).
 *
 * Every call is non-blocking on a non-blocking socket: it returns IO_OK or
 * asks the caller (conn.c) to poll for readability or writability and call
 * again with the same arguments. conn.c owns the socket and the timeouts.
 */
#ifndef MAILPULL_NET_TLS_H
#define MAILPULL_NET_TLS_H

#include <stddef.h>
#include "conn.h"
#include "fail.h"

enum io_res {
	IO_OK,                  /* progress made */
	IO_WANT_READ,           /* poll for POLLIN, then call again */
	IO_WANT_WRITE,          /* poll for POLLOUT, then call again */
	IO_EOF,                 /* the peer closed the connection */
	IO_ERROR,               /* *f is set */
};

struct tls;

/* Set up a client session on fd for p (trust, pin, SNI, host name check).
 * FAIL_NONE and *out, or a failure (bad fingerprint syntax, CA file). */
enum fail_kind tls_new(struct tls **out, int fd, const struct conn_params *p,
    struct fail *f);
/* Drive the handshake; IO_OK once it is complete AND the peer is trusted. */
enum io_res tls_handshake(struct tls *t, struct fail *f);
/* Read up to len bytes; IO_OK with *got > 0. */
enum io_res tls_read(struct tls *t, void *buf, size_t len, size_t *got,
    struct fail *f);
/* Write up to len bytes; IO_OK with *put > 0 (partial writes allowed). */
enum io_res tls_write(struct tls *t, const void *buf, size_t len, size_t *put,
    struct fail *f);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" into buf. */
void tls_describe(const struct tls *t, char *buf, size_t size);
/* Send close_notify without waiting, and free. NULL is fine. */
void tls_free(struct tls *t);

#endif
