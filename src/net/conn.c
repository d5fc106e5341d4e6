/* conn.c - one network connection: TCP or unix-socket connect with timeout,
 * optional TLS,
 * a fixed 64 KiB read buffer with a line reader and a streaming view, and
 * buffered writes. Every wait is a poll() bounded by the inactivity timeout.
 *
 * Read buffer: bytes [rstart, rend) are unread. The line reader remembers in
 * `scanned` how much of the partial line it has already searched, so a long
 * line arriving in small pieces costs linear time. A line must fit in the
 * buffer, so the effective line cap is at most RBUF_SIZE - 2.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "fail.h"
#include "tls.h"
#include "xmalloc.h"

#define RBUF_SIZE       (64 * 1024)
#define WBUF_SIZE       (16 * 1024)

struct conn {
	int             fd;
	struct tls     *tls;
	struct conn_params p;
	int             timeout;        /* seconds */
	char           *rbuf;
	size_t          rstart;
	size_t          rend;
	size_t          scanned;        /* bytes after rstart with no '\n' */
	char           *wbuf;
	size_t          wlen;
	char            desc[128];
};

/* ---- waiting ---- */

/* Wait until fd is ready for events or timeout_s passes: 1 ready, 0 timed
 * out, -1 error (errno). */
static int
wait_fd(int fd, short events, int timeout_s)
{
	struct pollfd pfd;
	long long deadline = mono_ms() + (long long)timeout_s * 1000, left;
	int n;

	for (;;) {
		left = deadline - mono_ms();
		if (left < 0)
			left = 0;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static enum fail_kind
wait_io(struct conn *c, enum io_res r, struct fail *f)
{
	int n;

	n = wait_fd(c->fd, r == IO_WANT_WRITE ? POLLOUT : POLLIN, c->timeout);
	if (n == 0)
		return fail_set(f, FAIL_TEMP, "no response from server for %d s",
		    c->timeout);
	if (n < 0)
		return fail_set(f, FAIL_CONN, "poll: %s", strerror(errno));
	return FAIL_NONE;
}

/* ---- raw I/O, plain or TLS ---- */

static enum io_res
io_read(struct conn *c, void *buf, size_t len, size_t *got, struct fail *f)
{
	ssize_t n;

	if (c->tls != NULL)
		return tls_read(c->tls, buf, len, got, f);
	*got = 0;
	for (;;) {
		n = read(c->fd, buf, len);
		if (n > 0) {
			*got = (size_t)n;
			return IO_OK;
		}
		if (n == 0)
			return IO_EOF;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return IO_WANT_READ;
		if (errno == ECONNRESET)
			return IO_EOF;
		if (errno != EINTR)
			break;
	}
	fail_set(f, FAIL_CONN, "read from server: %s", strerror(errno));
	return IO_ERROR;
}

static enum io_res
io_write(struct conn *c, const void *buf, size_t len, size_t *put,
    struct fail *f)
{
	ssize_t n;

	if (c->tls != NULL)
		return tls_write(c->tls, buf, len, put, f);
	*put = 0;
	for (;;) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0) {
			*put = (size_t)n;
			return IO_OK;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return IO_WANT_WRITE;
		if (errno == EPIPE || errno == ECONNRESET)
			return IO_EOF;
		if (errno != EINTR)
			break;
	}
	fail_set(f, FAIL_CONN, "write to server: %s", strerror(errno));
	return IO_ERROR;
}

static enum fail_kind
closed(struct fail *f)
{
	return fail_set(f, FAIL_CONN, "connection closed by server");
}

/* ---- connecting ---- */

static void
name_addr(const struct conn_params *p, char *buf, size_t size)
{
	if (strchr(p->host, ':') != NULL)
		snprintf(buf, size, "[%s]:%s", p->host, p->port);
	else
		snprintf(buf, size, "%s:%s", p->host, p->port);
}

/* Connect one address: the fd, or -1 with *err set (ETIMEDOUT on timeout).
 * A unix socket whose backlog is full answers EAGAIN at once: try again
 * until the timeout. */
static int
connect_one(const struct addrinfo *ai, int timeout, int *err)
{
	long long deadline = mono_ms() + (long long)timeout * 1000;
	int fd, n, soerr = 0, one = 1, rc;
	socklen_t len = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    ai->ai_protocol);
	if (fd == -1)
		goto fail;
	while ((rc = connect(fd, ai->ai_addr, ai->ai_addrlen)) == -1 &&
	    errno == EAGAIN && ai->ai_family == AF_UNIX) {
		if (mono_ms() >= deadline) {
			errno = ETIMEDOUT;
			goto fail;
		}
		(void)poll(NULL, 0, 20);
	}
	if (rc == -1) {
		if (errno != EINPROGRESS)
			goto fail;
		if ((n = wait_fd(fd, POLLOUT, timeout)) <= 0) {
			if (n == 0)
				errno = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
			goto fail;
		if (soerr != 0) {
			errno = soerr;
			goto fail;
		}
	}
	if (ai->ai_family != AF_UNIX) {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	return fd;
fail:
	*err = errno;
	if (fd != -1)
		close(fd);
	return -1;
}

/* The unix socket p.unix_path, within the timeout. */
static enum fail_kind
connect_unix(struct conn *c, struct fail *f)
{
	struct sockaddr_un sun;
	struct addrinfo ai;
	const char *path = c->p.unix_path;
	int err = 0;

	if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path))
		return fail_set(f, FAIL_CONFIG, "unix socket %.200s: %s", path,
		    path[0] == '\0' ? "empty path" : "path too long");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	memset(&ai, 0, sizeof(ai));
	ai.ai_family = AF_UNIX;
	ai.ai_socktype = SOCK_STREAM;
	ai.ai_addr = (struct sockaddr *)&sun;
	ai.ai_addrlen = sizeof(sun);
	if ((c->fd = connect_one(&ai, c->timeout, &err)) != -1)
		return FAIL_NONE;
	if (err == ETIMEDOUT)
		return fail_set(f, FAIL_CONN, "connect to unix socket %s: timed "
		    "out", path);
	return fail_set(f, FAIL_CONN, "connect to unix socket %s: %s", path,
	    strerror(err));
}

static enum fail_kind
connect_all(struct conn *c, struct fail *f)
{
	struct addrinfo hints, *res = NULL, *ai;
	char where[300];
	int rc, err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	name_addr(&c->p, where, sizeof(where));
	if ((rc = getaddrinfo(c->p.host, c->p.port, &hints, &res)) != 0) {
		return fail_set(f, rc == EAI_AGAIN ? FAIL_TEMP : FAIL_CONN,
		    "cannot resolve %s: %s", where,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((c->fd = connect_one(ai, c->timeout, &err)) != -1)
			break;
	}
	freeaddrinfo(res);
	if (c->fd != -1)
		return FAIL_NONE;
	if (err == ETIMEDOUT)
		return fail_set(f, FAIL_CONN, "connect to %s: timed out", where);
	return fail_set(f, FAIL_CONN, "connect to %s: %s", where,
	    err ? strerror(err) : "no address");
}

static enum fail_kind
handshake(struct conn *c, struct fail *f)
{
	enum fail_kind rc;
	enum io_res r;

	if ((rc = tls_new(&c->tls, c->fd, &c->p, f)) != FAIL_NONE)
		return rc;
	for (;;) {
		r = tls_handshake(c->tls, f);
		if (r == IO_OK)
			break;
		if (r == IO_ERROR || r == IO_EOF) {
			tls_free(c->tls);
			c->tls = NULL;
			if (r == IO_EOF)
				return closed(f);
			return f != NULL ? f->kind : FAIL_CONN;
		}
		if ((rc = wait_io(c, r, f)) != FAIL_NONE) {
			if (rc == FAIL_TEMP)
				rc = fail_set(f, FAIL_TEMP, "no response from "
				    "server for %d s during the TLS handshake",
				    c->timeout);
			tls_free(c->tls);
			c->tls = NULL;
			return rc;
		}
	}
	tls_describe(c->tls, c->desc, sizeof(c->desc));
	return FAIL_NONE;
}

enum fail_kind
conn_open(struct conn **out, const struct conn_params *p, enum tls_mode tls,
    struct fail *f)
{
	struct conn *c;
	enum fail_kind rc;

	*out = NULL;
	c = xcalloc(1, sizeof(*c));
	c->fd = -1;
	c->p = *p;
	c->timeout = p->timeout > 0 ? p->timeout : 60;
	snprintf(c->desc, sizeof(c->desc), "plain");
	if (p->unix_path != NULL && tls != TLS_NONE) {
		rc = fail_set(f, FAIL_CONFIG, "unix socket %s: no TLS over a "
		    "unix socket", p->unix_path);
		goto fail;
	}
	rc = p->unix_path != NULL ? connect_unix(c, f) : connect_all(c, f);
	if (rc != FAIL_NONE)
		goto fail;
	if (tls == TLS_IMPLICIT && (rc = handshake(c, f)) != FAIL_NONE)
		goto fail;
	c->rbuf = xmalloc(RBUF_SIZE);
	c->wbuf = xmalloc(WBUF_SIZE);
	*out = c;
	return FAIL_NONE;
fail:
	conn_close(c);
	return rc;
}

enum fail_kind
conn_starttls(struct conn *c, struct fail *f)
{
	enum fail_kind rc;

	if (c->tls != NULL)
		return fail_set(f, FAIL_PROTO, "TLS is already active");
	if (c->p.unix_path != NULL)
		return fail_set(f, FAIL_CONFIG, "unix socket %s: no TLS over a "
		    "unix socket", c->p.unix_path);
	if ((rc = conn_flush(c, f)) != FAIL_NONE)
		return rc;
	if (c->rend > c->rstart)
		return fail_set(f, FAIL_PROTO, "server sent data before the "
		    "TLS handshake (possible STARTTLS injection)");
	c->rstart = c->rend = c->scanned = 0;
	return handshake(c, f);
}

int
conn_is_tls(const struct conn *c)
{
	return c->tls != NULL;
}

const char *
conn_describe(const struct conn *c)
{
	return c->desc;
}

/* ---- reading ---- */

/* Make room at the end of the buffer: drop consumed bytes when the buffer
 * is empty (free) or when the tail is short (move the few unread bytes). */
static void
make_room(struct conn *c)
{
	size_t unread = c->rend - c->rstart;

	if (unread == 0) {
		c->rstart = c->rend = 0;
		return;
	}
	if (c->rstart > 0 && RBUF_SIZE - c->rend < RBUF_SIZE / 4) {
		memmove(c->rbuf, c->rbuf + c->rstart, unread);
		c->rstart = 0;
		c->rend = unread;
	}
}

/* Read at least one byte into the buffer; for TLS keep reading records that
 * are already there, so that large transfers move in large chunks. */
static enum fail_kind
fill(struct conn *c, struct fail *f)
{
	enum fail_kind rc;
	enum io_res r;
	size_t got, total = 0;

	make_room(c);
	while (c->rend < RBUF_SIZE) {
		r = io_read(c, c->rbuf + c->rend, RBUF_SIZE - c->rend, &got, f);
		if (r == IO_OK) {
			c->rend += got;
			total += got;
			if (c->tls == NULL)
				break;
			continue;
		}
		if (total > 0 && r != IO_ERROR)
			break;  /* deliver what we have; EOF shows up next time */
		if (r == IO_EOF)
			return closed(f);
		if (r == IO_ERROR)
			return f != NULL ? f->kind : FAIL_CONN;
		if ((rc = wait_io(c, r, f)) != FAIL_NONE)
			return rc;
	}
	return FAIL_NONE;
}

enum fail_kind
conn_readline(struct conn *c, char **line, size_t *len, size_t maxlen,
    struct fail *f)
{
	enum fail_kind rc;
	char *start, *nl;
	size_t n;

	*line = NULL;
	*len = 0;
	if ((rc = conn_flush(c, f)) != FAIL_NONE)
		return rc;
	for (;;) {
		start = c->rbuf + c->rstart;
		nl = memchr(start + c->scanned, '\n',
		    c->rend - c->rstart - c->scanned);
		if (nl != NULL)
			break;
		c->scanned = c->rend - c->rstart;
		/* maxlen bytes plus a CR that may be the line end's first half */
		if ((c->scanned > maxlen && c->scanned - maxlen > 1) ||
		    c->scanned >= RBUF_SIZE - 1)
			return fail_set(f, FAIL_PROTO, "line too long (more "
			    "than %zu bytes)", maxlen);
		if ((rc = fill(c, f)) != FAIL_NONE)
			return rc;
	}
	n = (size_t)(nl - start);
	c->rstart += n + 1;
	c->scanned = 0;
	if (n > 0 && start[n - 1] == '\r')
		n--;
	if (n > maxlen)
		return fail_set(f, FAIL_PROTO, "line too long (more than %zu "
		    "bytes)", maxlen);
	start[n] = '\0';
	*line = start;
	*len = n;
	return FAIL_NONE;
}

enum fail_kind
conn_peek(struct conn *c, const char **p, size_t *n, struct fail *f)
{
	enum fail_kind rc;

	*p = NULL;
	*n = 0;
	if ((rc = conn_flush(c, f)) != FAIL_NONE)
		return rc;
	if (c->rend == c->rstart && (rc = fill(c, f)) != FAIL_NONE)
		return rc;
	*p = c->rbuf + c->rstart;
	*n = c->rend - c->rstart;
	return FAIL_NONE;
}

void
conn_consume(struct conn *c, size_t k)
{
	if (k > c->rend - c->rstart)
		k = c->rend - c->rstart;
	c->rstart += k;
	c->scanned = 0;
	if (c->rstart == c->rend)
		c->rstart = c->rend = 0;
}

/* No blocking read: with TLS, OpenSSL may hold decrypted bytes that poll()
 * cannot see, so try a read first, poll only when it wants the socket, and
 * count as ready only bytes that reached the buffer (a readable socket may
 * hold half a TLS record). */
enum fail_kind
conn_wait_input(struct conn *c, int timeout_ms, int *ready, struct fail *f)
{
	struct pollfd pfd;
	enum fail_kind rc;
	enum io_res r;
	size_t got;
	int n;

	*ready = 0;
	if ((rc = conn_flush(c, f)) != FAIL_NONE)
		return rc;
	for (int round = 0; c->rend == c->rstart; round++) {
		make_room(c);
		r = io_read(c, c->rbuf + c->rend, RBUF_SIZE - c->rend, &got, f);
		if (r == IO_OK) {
			c->rend += got;
			break;
		}
		if (r == IO_EOF)
			return closed(f);
		if (r == IO_ERROR)
			return f != NULL ? f->kind : FAIL_CONN;
		if (round == 1)
			return FAIL_NONE;
		pfd.fd = c->fd;
		pfd.events = r == IO_WANT_WRITE ? POLLOUT : POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms);
		if (n == 0 || (n < 0 && errno == EINTR))
			return FAIL_NONE;
		if (n < 0)
			return fail_set(f, FAIL_CONN, "poll: %s", strerror(errno));
	}
	*ready = 1;
	return FAIL_NONE;
}

/* ---- writing ---- */

static enum fail_kind
send_all(struct conn *c, const char *buf, size_t len, struct fail *f)
{
	enum fail_kind rc;
	enum io_res r;
	size_t put;

	while (len > 0) {
		r = io_write(c, buf, len, &put, f);
		if (r == IO_OK) {
			buf += put;
			len -= put;
			continue;
		}
		if (r == IO_EOF)
			return closed(f);
		if (r == IO_ERROR)
			return f != NULL ? f->kind : FAIL_CONN;
		if ((rc = wait_io(c, r, f)) != FAIL_NONE)
			return rc;
	}
	return FAIL_NONE;
}

enum fail_kind
conn_flush(struct conn *c, struct fail *f)
{
	enum fail_kind rc;

	if (c->wlen == 0)
		return FAIL_NONE;
	rc = send_all(c, c->wbuf, c->wlen, f);
	/* Commands are short and may carry a secret: leave none behind. */
	explicit_bzero(c->wbuf, c->wlen);
	c->wlen = 0;
	return rc;
}

enum fail_kind
conn_write(struct conn *c, const void *buf, size_t len, struct fail *f)
{
	enum fail_kind rc;

	if (c->wlen + len > WBUF_SIZE && (rc = conn_flush(c, f)) != FAIL_NONE)
		return rc;
	if (len >= WBUF_SIZE)
		return send_all(c, buf, len, f);
	memcpy(c->wbuf + c->wlen, buf, len);
	c->wlen += len;
	return FAIL_NONE;
}

enum fail_kind
conn_printf(struct conn *c, struct fail *f, const char *fmt, ...)
{
	char small[1024], *big = NULL;
	enum fail_kind rc;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return fail_set(f, FAIL_LOCAL, "cannot format a command");
	if ((size_t)n < sizeof(small)) {
		rc = conn_write(c, small, (size_t)n, f);
		explicit_bzero(small, sizeof(small));
		return rc;
	}
	big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = conn_write(c, big, (size_t)n, f);
	explicit_bzero(big, (size_t)n);
	free(big);
	return rc;
}

void
conn_close(struct conn *c)
{
	size_t put;

	if (c == NULL)
		return;
	/* One try to send what is left (e.g. QUIT), never waiting. */
	if (c->fd != -1 && c->wlen > 0)
		(void)io_write(c, c->wbuf, c->wlen, &put, NULL);
	tls_free(c->tls);
	if (c->fd != -1)
		close(c->fd);
	if (c->wbuf != NULL)
		explicit_bzero(c->wbuf, WBUF_SIZE);
	free(c->wbuf);
	free(c->rbuf);
	free(c);
}
