/* tls.c - the only user of libssl: TLS client sessions for conn.c.
 *
 * Trust, in order of precedence:
 *   fingerprint set   the SHA-256 of the leaf certificate decides alone;
 *   tls_verify = 0    anything is accepted (the caller warns);
 *   otherwise         OpenSSL verifies the chain (system trust plus ca_file)
 *                     and the host name (SSL_set1_host / IP address).
 * The system trust is a hashed directory, read certificate by certificate on
 * demand, so a connection costs little memory.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "fail.h"
#include "log.h"
#include "tls.h"
#include "xmalloc.h"

#define PIN_LEN 32

struct tls {
	SSL_CTX        *ctx;
	SSL            *ssl;
	int             has_pin;
	unsigned char   pin[PIN_LEN];
	int             established;    /* handshake done */
	int             dead;           /* fatal error: no close_notify */
};

/* SIGPIPE: OpenSSL writes with write(2); a peer that went away must give
 * EPIPE, not kill the process. Block it in this thread around writes and
 * swallow the one we caused. */
struct sigpipe {
	sigset_t        old;
	int             pending;
};

static void
sigpipe_block(struct sigpipe *sp)
{
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sp->pending = 0;
	if (sigpending(&pend) == 0)
		sp->pending = sigismember(&pend, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &sp->old);
}

static void
sigpipe_restore(struct sigpipe *sp)
{
	sigset_t set, pend;
	struct timespec zero = { 0, 0 };
	int saved = errno;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!sp->pending && sigpending(&pend) == 0 &&
	    sigismember(&pend, SIGPIPE) == 1)
		(void)sigtimedwait(&set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &sp->old, NULL);
	errno = saved;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* "sha256:AB:CD:..." (prefix optional, colons optional, any case). */
static int
parse_pin(const char *s, unsigned char pin[PIN_LEN])
{
	size_t n = 0;
	int hi, lo;

	if (strncasecmp(s, "sha256:", 7) == 0)
		s += 7;
	while (*s != '\0') {
		if (*s == ':') {
			s++;
			continue;
		}
		if ((hi = hexval((unsigned char)s[0])) < 0 || s[1] == '\0' ||
		    (lo = hexval((unsigned char)s[1])) < 0 || n == PIN_LEN)
			return -1;
		pin[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
	}
	return n == PIN_LEN ? 0 : -1;
}

static void
format_pin(const unsigned char *md, char *buf, size_t size)
{
	size_t i, o;

	o = (size_t)snprintf(buf, size, "sha256:");
	for (i = 0; i < PIN_LEN && o + 3 < size; i++)
		o += (size_t)snprintf(buf + o, size - o, i ? ":%02X" : "%02X",
		    md[i]);
}

/* The reason of the last OpenSSL error. libssl's strings are loaded;
 * libcrypto's are not (they cost 600 KB), so those show as a code. */
static const char *
ssl_reason(void)
{
	static _Thread_local char code[64];
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (r != NULL)
		return r;
	if (e == 0)
		return "unknown error";
	snprintf(code, sizeof(code), "OpenSSL error %lx", e);
	return code;
}

static int
is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1;
}

static void
load_system_trust(SSL_CTX *ctx)
{
	const char *file = getenv(X509_get_default_cert_file_env());
	const char *dir = getenv(X509_get_default_cert_dir_env());

	ERR_set_mark();
	if (file != NULL && *file != '\0' &&
	    SSL_CTX_load_verify_file(ctx, file) != 1)
		log_debug("cannot load trust from %s", file);
	if (dir == NULL || *dir == '\0')
		dir = X509_get_default_cert_dir();
	if (SSL_CTX_load_verify_dir(ctx, dir) != 1)
		log_debug("cannot use trust directory %s", dir);
	ERR_pop_to_mark();
}

static enum fail_kind
setup_verify(struct tls *t, const struct conn_params *p, struct fail *f)
{
	if (p->fingerprint != NULL && *p->fingerprint != '\0') {
		if (parse_pin(p->fingerprint, t->pin) == -1)
			return fail_set(f, FAIL_CONFIG, "invalid fingerprint "
			    "(want sha256: and 32 hex bytes)");
		t->has_pin = 1;
		SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
		return FAIL_NONE;
	}
	if (!p->tls_verify) {
		SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
		return FAIL_NONE;
	}
	load_system_trust(t->ctx);
	if (p->ca_file != NULL && *p->ca_file != '\0') {
		if (access(p->ca_file, R_OK) == -1)
			return fail_set(f, FAIL_CONFIG, "cannot read ca_file "
			    "%s: %s", p->ca_file, strerror(errno));
		if (SSL_CTX_load_verify_locations(t->ctx, p->ca_file, NULL) != 1)
			return fail_set(f, FAIL_CONFIG, "ca_file %s holds no "
			    "usable PEM certificate", p->ca_file);
	}
	SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
	if (is_ip_literal(p->host)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl),
		    p->host) != 1)
			return fail_set(f, FAIL_CONN, "cannot check address %s",
			    p->host);
	} else if (SSL_set1_host(t->ssl, p->host) != 1)
		return fail_set(f, FAIL_CONN, "cannot check host name %s",
		    p->host);
	return FAIL_NONE;
}

static enum fail_kind
setup_ssl(struct tls *t, int fd, const struct conn_params *p, struct fail *f)
{
	if (OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG |
	    OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL) != 1 ||
	    (t->ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return fail_set(f, FAIL_LOCAL, "cannot set up TLS: %s",
		    ssl_reason());
	if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1)
		return fail_set(f, FAIL_LOCAL, "cannot require TLS 1.2");
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if ((t->ssl = SSL_new(t->ctx)) == NULL || SSL_set_fd(t->ssl, fd) != 1)
		return fail_set(f, FAIL_LOCAL, "cannot set up TLS: %s",
		    ssl_reason());
	if (!is_ip_literal(p->host) &&
	    SSL_set_tlsext_host_name(t->ssl, p->host) != 1)
		return fail_set(f, FAIL_CONN, "invalid TLS server name %s",
		    p->host);
	return setup_verify(t, p, f);
}

enum fail_kind
tls_new(struct tls **out, int fd, const struct conn_params *p, struct fail *f)
{
	struct tls *t;
	enum fail_kind rc;

	*out = NULL;
	t = xcalloc(1, sizeof(*t));
	ERR_clear_error();
	if ((rc = setup_ssl(t, fd, p, f)) != FAIL_NONE) {
		t->dead = 1;
		tls_free(t);
		return rc;
	}
	SSL_set_connect_state(t->ssl);
	*out = t;
	return FAIL_NONE;
}

/* Map a failed SSL call to an io_res; what names the operation. */
static enum io_res
ssl_result(struct tls *t, int ret, const char *what, struct fail *f)
{
	int err = SSL_get_error(t->ssl, ret);

	switch (err) {
	case SSL_ERROR_WANT_READ:
		return IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return IO_EOF;
	case SSL_ERROR_SYSCALL:
		t->dead = 1;
		if (ERR_peek_error() == 0 && (ret == 0 || errno == 0))
			return IO_EOF;
		if (errno == EPIPE || errno == ECONNRESET)
			return IO_EOF;
		fail_set(f, FAIL_CONN, "TLS %s: %s", what,
		    errno ? strerror(errno) : ssl_reason());
		return IO_ERROR;
	default:
		t->dead = 1;
		fail_set(f, FAIL_CONN, "TLS %s failed: %s", what, ssl_reason());
		return IO_ERROR;
	}
}

static enum io_res
check_pin(struct tls *t, struct fail *f)
{
	X509 *cert;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char shown[128];

	if ((cert = SSL_get0_peer_certificate(t->ssl)) == NULL) {
		fail_set(f, FAIL_CONN, "server sent no certificate");
		return IO_ERROR;
	}
	if (X509_digest(cert, EVP_sha256(), md, &len) != 1 || len != PIN_LEN) {
		fail_set(f, FAIL_CONN, "cannot hash the server certificate");
		return IO_ERROR;
	}
	if (memcmp(md, t->pin, PIN_LEN) != 0) {
		format_pin(md, shown, sizeof(shown));
		fail_set(f, FAIL_CONN, "certificate fingerprint mismatch: "
		    "server has %s", shown);
		return IO_ERROR;
	}
	return IO_OK;
}

enum io_res
tls_handshake(struct tls *t, struct fail *f)
{
	struct sigpipe sp;
	enum io_res r;
	long v;
	int ret;

	ERR_clear_error();
	sigpipe_block(&sp);
	ret = SSL_do_handshake(t->ssl);
	sigpipe_restore(&sp);
	if (ret != 1) {
		r = ssl_result(t, ret, "handshake", f);
		if (r == IO_EOF) {
			fail_set(f, FAIL_CONN, "connection closed by server "
			    "during the TLS handshake");
			r = IO_ERROR;
		}
		v = SSL_get_verify_result(t->ssl);
		if (r == IO_ERROR && v != X509_V_OK)
			fail_set(f, FAIL_CONN, "TLS certificate verification "
			    "failed: %s", X509_verify_cert_error_string(v));
		return r;
	}
	if (t->has_pin && check_pin(t, f) != IO_OK) {
		t->dead = 1;
		return IO_ERROR;
	}
	t->established = 1;
	return IO_OK;
}

enum io_res
tls_read(struct tls *t, void *buf, size_t len, size_t *got, struct fail *f)
{
	int ret;

	*got = 0;
	ERR_clear_error();
	if ((ret = SSL_read_ex(t->ssl, buf, len, got)) == 1)
		return IO_OK;
	return ssl_result(t, ret, "read", f);
}

enum io_res
tls_write(struct tls *t, const void *buf, size_t len, size_t *put,
    struct fail *f)
{
	struct sigpipe sp;
	int ret;

	*put = 0;
	ERR_clear_error();
	sigpipe_block(&sp);
	ret = SSL_write_ex(t->ssl, buf, len, put);
	sigpipe_restore(&sp);
	if (ret == 1)
		return IO_OK;
	return ssl_result(t, ret, "write", f);
}

void
tls_describe(const struct tls *t, char *buf, size_t size)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);

	snprintf(buf, size, "%s %s", SSL_get_version(t->ssl),
	    c != NULL ? SSL_CIPHER_get_name(c) : "(no cipher)");
}

void
tls_free(struct tls *t)
{
	struct sigpipe sp;

	if (t == NULL)
		return;
	if (t->ssl != NULL && t->established && !t->dead) {
		ERR_clear_error();
		sigpipe_block(&sp);
		(void)SSL_shutdown(t->ssl);
		sigpipe_restore(&sp);
	}
	ERR_clear_error();
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	explicit_bzero(t, sizeof(*t));
	free(t);
}
