/* test_conn.c - conn against tiny servers forked on 127.0.0.1 (or on a unix
 * socket): line reading, caps, streaming, EOF, timeouts, refusal, and TLS
 * trust (CA, host names, fingerprint pins, tls_verify = 0, STARTTLS). */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conn.h"
#include "fail.h"
#include "unit.h"

/* ---- a forked server ---- */

typedef void (*serve_fn)(int fd);

static pid_t server_pid = -1;
static char port_str[16];
static char tmpdir[] = "/tmp/test_conn.XXXXXX";
static char pin_lower[200];     /* "sha256:ab:cd:..." of leaf a */
static char pin_upper[200];     /* "sha256:AB:CD:..." as the server shows it */
static const char *server_cert = "a";   /* which leaf the TLS server uses */

static int
listen_local(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ne(fd, -1);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(port_str, sizeof(port_str), "%u", ntohs(sin.sin_port));
	return fd;
}

/* Fork a server that accepts one connection and runs fn on it. */
static void
serve(serve_fn fn)
{
	int lfd = listen_local(), fd, one = 1;

	server_pid = fork();
	ck_assert_int_ne(server_pid, -1);
	if (server_pid == 0) {
		alarm(10);
		signal(SIGPIPE, SIG_IGN);
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			_exit(2);
		close(lfd);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		fn(fd);
		close(fd);
		_exit(0);
	}
	close(lfd);
}

/* The server's exit status (0 = its own checks passed). */
static int
server_wait(void)
{
	int status;

	if (server_pid <= 0)
		return -1;
	if (waitpid(server_pid, &status, 0) != server_pid)
		return -1;
	server_pid = -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The unix-socket tests' directory and socket; teardown removes them. */
static char unix_dir[64];
static char unix_path[100];

static void
unix_cleanup(void)
{
	if (unix_path[0] != '\0')
		unlink(unix_path);
	if (unix_dir[0] != '\0')
		rmdir(unix_dir);
}

static void
setup(void)
{
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	server_pid = -1;
	server_cert = "a";
}

static void
teardown(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
	}
	unix_cleanup();
}

static void
put(int fd, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, s, len)) <= 0)
			_exit(3);
		s += n;
		len -= (size_t)n;
	}
}

static struct conn_params
plain_params(int timeout)
{
	struct conn_params p = { "127.0.0.1", port_str, timeout, 1, NULL, NULL, NULL };

	return p;
}

static struct conn *
open_plain(int timeout)
{
	struct conn_params p = plain_params(timeout);
	struct conn *c = NULL;
	struct fail f = { 0 };

	ck_assert_msg(conn_open(&c, &p, TLS_NONE, &f) == FAIL_NONE, "%s", f.msg);
	return c;
}

static void
expect_line(struct conn *c, const char *want)
{
	struct fail f = { 0 };
	char *line;
	size_t len;

	ck_assert_msg(conn_readline(c, &line, &len, 1000, &f) == FAIL_NONE,
	    "%s", f.msg);
	ck_assert_str_eq(line, want);
	ck_assert_uint_eq(len, strlen(want));
}

static void
expect_eof(struct conn *c)
{
	struct fail f = { 0 };
	char *line;
	size_t len;

	ck_assert_int_eq(conn_readline(c, &line, &len, 1000, &f), FAIL_CONN);
	ck_assert_str_eq(f.msg, "connection closed by server");
}

/* ---- plain ---- */

static void
srv_lines(int fd)
{
	put(fd, "one\r\ntwo\nthree\r\n\r\n\nbare\rcr\r\nlast\n");
}

START_TEST(lines_crlf_and_lf)
{
	struct conn *c;

	serve(srv_lines);
	c = open_plain(5);
	ck_assert_int_eq(conn_is_tls(c), 0);
	ck_assert_str_eq(conn_describe(c), "plain");
	expect_line(c, "one");
	expect_line(c, "two");
	expect_line(c, "three");
	expect_line(c, "");
	expect_line(c, "");
	expect_line(c, "bare\rcr");
	expect_line(c, "last");
	expect_eof(c);
	conn_close(c);
}
END_TEST

static void
srv_long(int fd)
{
	static char buf[5001];

	memset(buf, 'a', 5000);
	put(fd, buf);
	put(fd, "\r\n");
	sleep(1);
}

START_TEST(line_too_long)
{
	struct conn *c;
	struct fail f = { 0 };
	char *line = (char *)"x";
	size_t len = 7;

	serve(srv_long);
	c = open_plain(5);
	ck_assert_int_eq(conn_readline(c, &line, &len, 1000, &f), FAIL_PROTO);
	ck_assert(strstr(f.msg, "line too long") != NULL);
	ck_assert_ptr_null(line);
	conn_close(c);
}
END_TEST

static void
srv_exact(int fd)
{
	static char buf[1002];

	memset(buf, 'b', 1000);
	put(fd, buf);
	put(fd, "\r\n");
	put(fd, buf);
	put(fd, "b\n");
}

START_TEST(line_at_cap)
{
	struct conn *c;
	struct fail f = { 0 };
	char *line;
	size_t len;

	serve(srv_exact);
	c = open_plain(5);
	ck_assert_int_eq(conn_readline(c, &line, &len, 1000, &f), FAIL_NONE);
	ck_assert_uint_eq(len, 1000);
	ck_assert_uint_eq(strlen(line), 1000);
	ck_assert_int_eq(conn_readline(c, &line, &len, 1000, &f), FAIL_PROTO);
	conn_close(c);
}
END_TEST

static void
srv_endless(int fd)
{
	static char buf[8192];
	int i;

	memset(buf, 'z', sizeof(buf) - 1);
	for (i = 0; i < 64; i++)
		put(fd, buf);   /* 512 KiB, no line end */
}

START_TEST(line_longer_than_buffer)
{
	struct conn *c;
	struct fail f = { 0 };
	char *line;
	size_t len;

	serve(srv_endless);
	c = open_plain(5);
	/* no cap from the caller: the buffer is the cap */
	ck_assert_int_eq(conn_readline(c, &line, &len, SIZE_MAX, &f), FAIL_PROTO);
	ck_assert(strstr(f.msg, "line too long") != NULL);
	conn_close(c);
}
END_TEST

static void
srv_trickle(int fd)
{
	const char *s = "+OK split across many writes\r\nsecond\r\n";
	struct timespec ms = { 0, 2000000 };
	char ch[2] = { 0, 0 };

	for (; *s != '\0'; s++) {
		ch[0] = *s;
		put(fd, ch);
		nanosleep(&ms, NULL);
	}
}

START_TEST(line_split_small_writes)
{
	struct conn *c;

	serve(srv_trickle);
	c = open_plain(5);
	expect_line(c, "+OK split across many writes");
	expect_line(c, "second");
	expect_eof(c);
	conn_close(c);
}
END_TEST

#define STREAM_LEN (300 * 1000 + 7)

static void
srv_stream(int fd)
{
	static char buf[STREAM_LEN];
	size_t i;

	put(fd, "+OK 300007 octets\r\n");
	for (i = 0; i < STREAM_LEN; i++)
		buf[i] = (char)(i % 251);
	for (i = 0; i < STREAM_LEN; i += 4096) {
		size_t n = STREAM_LEN - i < 4096 ? STREAM_LEN - i : 4096;
		ssize_t w = write(fd, buf + i, n);
		if (w != (ssize_t)n)
			_exit(3);
	}
}

/* Read STREAM_LEN bytes with peek/consume in uneven steps. */
static void
check_stream(struct conn *c)
{
	struct fail f = { 0 };
	const char *p;
	size_t n, k, i, total = 0, step = 1;

	while (total < STREAM_LEN) {
		ck_assert_msg(conn_peek(c, &p, &n, &f) == FAIL_NONE, "%s", f.msg);
		ck_assert_uint_gt(n, 0);
		k = n < step ? n : step;
		if (k > STREAM_LEN - total)
			k = STREAM_LEN - total;
		for (i = 0; i < k; i++)
			ck_assert_int_eq((unsigned char)p[i],
			    (unsigned char)((total + i) % 251));
		conn_consume(c, k);
		total += k;
		step = step * 3 % 70001 + 1;
	}
	ck_assert_uint_eq(total, STREAM_LEN);
}

START_TEST(peek_consume_stream)
{
	struct conn *c;
	struct fail f = { 0 };
	const char *p;
	size_t n;

	serve(srv_stream);
	c = open_plain(5);
	expect_line(c, "+OK 300007 octets");
	check_stream(c);
	ck_assert_int_eq(conn_peek(c, &p, &n, &f), FAIL_CONN);
	ck_assert_str_eq(f.msg, "connection closed by server");
	conn_close(c);
}
END_TEST

static void
srv_partial(int fd)
{
	put(fd, "complete\r\npartial line without end");
}

START_TEST(eof_mid_line)
{
	struct conn *c;

	serve(srv_partial);
	c = open_plain(5);
	expect_line(c, "complete");
	expect_eof(c);
	conn_close(c);
}
END_TEST

static void
srv_stall(int fd)
{
	put(fd, "hello\r\n");
	sleep(4);
}

START_TEST(inactivity_timeout)
{
	struct conn *c;
	struct fail f = { 0 };
	struct timespec a, b;
	char *line;
	size_t len;
	double secs;

	serve(srv_stall);
	c = open_plain(1);
	expect_line(c, "hello");
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(conn_readline(c, &line, &len, 1000, &f), FAIL_TEMP);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ck_assert_str_eq(f.msg, "no response from server for 1 s");
	secs = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	ck_assert(secs > 0.9 && secs < 2.5);
	conn_close(c);
}
END_TEST

START_TEST(connect_refused)
{
	struct conn_params p;
	struct conn *c = (struct conn *)1;
	struct fail f = { 0 };
	char want[100];
	int lfd = listen_local();

	close(lfd);     /* the port is now closed */
	p = plain_params(2);
	ck_assert_int_eq(conn_open(&c, &p, TLS_NONE, &f), FAIL_CONN);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%s: Connection refused",
	    port_str);
	ck_assert_str_eq(f.msg, want);
}
END_TEST

START_TEST(resolve_failure)
{
	struct conn_params p = { "no-such-host.invalid", "110", 2, 1, NULL, NULL, NULL };
	struct conn *c = NULL;
	struct fail f = { 0 };
	enum fail_kind rc;

	rc = conn_open(&c, &p, TLS_NONE, &f);
	ck_assert(rc == FAIL_CONN || rc == FAIL_TEMP);
	ck_assert(strstr(f.msg, "no-such-host.invalid") != NULL);
	ck_assert_ptr_null(c);
}
END_TEST

/* ---- unix sockets ---- */

/* A listening AF_UNIX socket at unix_path (in a fresh directory). */
static int
listen_unix(int backlog)
{
	struct sockaddr_un sun;
	int fd;

	snprintf(unix_dir, sizeof(unix_dir), "/tmp/test_conn_unix.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(unix_dir));
	snprintf(unix_path, sizeof(unix_path), "%s/lmtp", unix_dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", unix_path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(fd, backlog), 0);
	return fd;
}

/* Greets, reads one line, answers with what it read. */
static void
srv_unix_echo(int fd)
{
	char buf[256];
	size_t have = 0;
	ssize_t n;

	put(fd, "220 unix ready\r\n");
	while (have < sizeof(buf) - 1 && memchr(buf, '\n', have) == NULL) {
		if ((n = read(fd, buf + have, sizeof(buf) - 1 - have)) <= 0)
			_exit(4);
		have += (size_t)n;
	}
	buf[have] = '\0';
	if (strcmp(buf, "LHLO me\r\n") != 0)
		_exit(5);
	put(fd, "250 got LHLO\r\n");
}

static struct conn_params
unix_params(const char *path, int timeout)
{
	struct conn_params p = { NULL, NULL, timeout, 1, NULL, NULL, path };

	return p;
}

/* lmtp:/path: a conn over a unix socket reads and writes like TCP. */
START_TEST(unix_socket_lines)
{
	struct conn_params p;
	struct conn *c = NULL;
	struct fail f = { 0 };
	int lfd = listen_unix(4), fd;

	server_pid = fork();
	ck_assert_int_ne(server_pid, -1);
	if (server_pid == 0) {
		alarm(10);
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			_exit(2);
		srv_unix_echo(fd);
		close(fd);
		_exit(0);
	}
	close(lfd);
	p = unix_params(unix_path, 5);
	ck_assert_msg(conn_open(&c, &p, TLS_NONE, &f) == FAIL_NONE, "%s", f.msg);
	ck_assert_int_eq(conn_is_tls(c), 0);
	expect_line(c, "220 unix ready");
	ck_assert_int_eq(conn_printf(c, &f, "LHLO %s\r\n", "me"), FAIL_NONE);
	expect_line(c, "250 got LHLO");
	expect_eof(c);
	conn_close(c);
	ck_assert_int_eq(server_wait(), 0);
}
END_TEST

/* No socket at the path: FAIL_CONN, and the message names the path. */
START_TEST(unix_socket_missing)
{
	struct conn_params p;
	struct conn *c = (struct conn *)1;
	struct fail f = { 0 };
	char want[300];

	close(listen_unix(4));
	unix_cleanup();         /* the socket file is gone now */
	p = unix_params(unix_path, 2);
	ck_assert_int_eq(conn_open(&c, &p, TLS_NONE, &f), FAIL_CONN);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "connect to unix socket %s: No such file "
	    "or directory", unix_path);
	ck_assert_str_eq(f.msg, want);
}
END_TEST

/* A socket nobody accepts on, its backlog full: connect gives up after the
 * timeout, naming the path; TLS over a unix socket is refused. */
START_TEST(unix_socket_timeout_and_tls)
{
	struct conn_params p;
	struct conn *c = NULL;
	struct fail f = { 0 };
	struct sockaddr_un sun;
	struct timespec a, b;
	int lfd = listen_unix(0), filler[4], i, n = 0;
	double secs;
	char want[300];

	/* Fill the backlog with clients that never get accepted. */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", unix_path);
	for (i = 0; i < 4; i++) {
		filler[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		ck_assert_int_ne(filler[i], -1);
		if (connect(filler[i], (struct sockaddr *)&sun, sizeof(sun)) == 0)
			n++;
	}
	ck_assert_int_ge(n, 1);
	ck_assert_int_lt(n, 4);         /* the backlog did fill */
	p = unix_params(unix_path, 1);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(conn_open(&c, &p, TLS_NONE, &f), FAIL_CONN);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "connect to unix socket %s: timed out",
	    unix_path);
	ck_assert_str_eq(f.msg, want);
	secs = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	ck_assert_msg(secs > 0.9 && secs < 2.5, "gave up after %.2f s", secs);

	p = unix_params(unix_path, 1);
	ck_assert_int_eq(conn_open(&c, &p, TLS_IMPLICIT, &f), FAIL_CONFIG);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(f.msg, "no TLS over a unix socket"));
	for (i = 0; i < 4; i++)
		close(filler[i]);
	close(lfd);
}
END_TEST

#define BIG_WRITE (100 * 1000)

/* Reads "CMD n\r\n" then BIG_WRITE bytes of 'w' then "END\r\n"; answers. */
static void
srv_sink(int fd)
{
	static char buf[BIG_WRITE + 64];
	const char *want_head = "CMD 42\r\n";
	size_t have = 0, need = strlen(want_head) + BIG_WRITE + 5, i;
	ssize_t n;

	while (have < need) {
		if ((n = read(fd, buf + have, sizeof(buf) - have)) <= 0)
			_exit(4);
		have += (size_t)n;
	}
	if (memcmp(buf, want_head, strlen(want_head)) != 0)
		_exit(5);
	for (i = 0; i < BIG_WRITE; i++)
		if (buf[strlen(want_head) + i] != 'w')
			_exit(6);
	if (memcmp(buf + need - 5, "END\r\n", 5) != 0)
		_exit(7);
	put(fd, "+OK got it\r\n");
}

START_TEST(buffered_writes_flushed_before_read)
{
	static char big[BIG_WRITE];
	struct conn *c;
	struct fail f = { 0 };

	serve(srv_sink);
	c = open_plain(5);
	memset(big, 'w', sizeof(big));
	ck_assert_int_eq(conn_printf(c, &f, "CMD %d\r\n", 42), FAIL_NONE);
	ck_assert_int_eq(conn_write(c, big, sizeof(big), &f), FAIL_NONE);
	ck_assert_int_eq(conn_write(c, "END\r\n", 5, &f), FAIL_NONE);
	expect_line(c, "+OK got it");       /* readline flushed END */
	conn_close(c);
	ck_assert_int_eq(server_wait(), 0);
}
END_TEST

/* ---- TLS ---- */

static char *
tmp_path(const char *name)
{
	static char paths[8][300];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, 300, "%s/%s", tmpdir, name);
	return p;
}

static int
run(const char *cmd)
{
	char full[2048];

	snprintf(full, sizeof(full), "cd %s && ( %s ) >/dev/null 2>&1", tmpdir, cmd);
	return system(full);
}

static void
make_leaf(const char *name, const char *san)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
	    "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
	    "-nodes -keyout %s.key -out %s.csr -subj /CN=%s && "
	    "printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n"
	    "extendedKeyUsage=serverAuth\\n' > %s.ext && "
	    "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -days 2 -out %s.pem -extfile %s.ext",
	    name, name, name, san, name, name, name, name);
	if (run(cmd) != 0)
		abort();
}

static void
compute_pin(void)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;
	size_t o1, o2;
	X509 *x;
	FILE *fp;

	if ((fp = fopen(tmp_path("a.pem"), "r")) == NULL)
		abort();
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x == NULL || X509_digest(x, EVP_sha256(), md, &len) != 1)
		abort();
	X509_free(x);
	o1 = (size_t)snprintf(pin_lower, sizeof(pin_lower), "sha256:");
	o2 = (size_t)snprintf(pin_upper, sizeof(pin_upper), "sha256:");
	for (i = 0; i < len; i++) {
		o1 += (size_t)snprintf(pin_lower + o1, sizeof(pin_lower) - o1,
		    i ? ":%02x" : "%02x", md[i]);
		o2 += (size_t)snprintf(pin_upper + o2, sizeof(pin_upper) - o2,
		    i ? ":%02X" : "%02X", md[i]);
	}
}

/* Once, before the TLS tests: a CA, leaf "a" for localhost, leaf "b" for
 * mail.example.org only. */
static void
tls_fixture_setup(void)
{
	if (mkdtemp(tmpdir) == NULL)
		abort();
	if (run("openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem "
	    "-days 2 -subj '/CN=mailpull test CA' "
	    "-addext basicConstraints=critical,CA:TRUE "
	    "-addext keyUsage=critical,keyCertSign,cRLSign") != 0)
		abort();
	make_leaf("a", "DNS:localhost");
	make_leaf("b", "DNS:mail.example.org");
	compute_pin();
	/* an empty system trust, so that results do not depend on the host */
	if (run("mkdir empty") != 0)
		abort();
	setenv("SSL_CERT_DIR", tmp_path("empty"), 1);
	unsetenv("SSL_CERT_FILE");
}

static void
tls_fixture_teardown(void)
{
	run("rm -f *.pem *.key *.csr *.ext *.srl && rmdir empty");
	rmdir(tmpdir);
}

static SSL *
tls_accept(int fd)
{
	char cert[300], key[300];
	SSL_CTX *ctx;
	SSL *ssl;

	snprintf(cert, sizeof(cert), "%s/%s.pem", tmpdir, server_cert);
	snprintf(key, sizeof(key), "%s/%s.key", tmpdir, server_cert);
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		_exit(10);
	if (SSL_accept(ssl) != 1)
		_exit(11);      /* the client refused us: expected sometimes */
	return ssl;
}

static void
tls_put(SSL *ssl, const char *s)
{
	if (SSL_write(ssl, s, (int)strlen(s)) != (int)strlen(s))
		_exit(12);
}

static void
tls_getline(SSL *ssl, char *buf, size_t size)
{
	size_t n = 0;
	char ch;

	while (n + 1 < size) {
		if (SSL_read(ssl, &ch, 1) != 1)
			_exit(13);
		if (ch == '\n')
			break;
		if (ch != '\r')
			buf[n++] = ch;
	}
	buf[n] = '\0';
}

/* Greeting, one PING answered, then 200 KB, then close_notify. */
static void
tls_session(SSL *ssl)
{
	static char big[200 * 1000];
	char line[256], reply[300];

	tls_put(ssl, "+OK tls\r\n");
	tls_getline(ssl, line, sizeof(line));
	snprintf(reply, sizeof(reply), "PONG %s\r\n", line);
	tls_put(ssl, reply);
	memset(big, 'T', sizeof(big));
	if (SSL_write(ssl, big, sizeof(big)) != (int)sizeof(big))
		_exit(14);
	SSL_shutdown(ssl);
}

static void
srv_tls(int fd)
{
	tls_session(tls_accept(fd));
}

/* What every accepted TLS session checks. */
static void
client_session(struct conn *c)
{
	struct fail f = { 0 };
	const char *p;
	size_t n, i, total = 0;

	ck_assert_int_eq(conn_is_tls(c), 1);
	ck_assert_msg(strncmp(conn_describe(c), "TLSv1.", 6) == 0, "%s",
	    conn_describe(c));
	ck_assert(strchr(conn_describe(c), ' ') != NULL);
	expect_line(c, "+OK tls");
	ck_assert_int_eq(conn_printf(c, &f, "PING\r\n"), FAIL_NONE);
	expect_line(c, "PONG PING");
	while (total < 200 * 1000) {
		ck_assert_msg(conn_peek(c, &p, &n, &f) == FAIL_NONE, "%s", f.msg);
		for (i = 0; i < n; i++)
			ck_assert_int_eq(p[i], 'T');
		conn_consume(c, n);
		total += n;
	}
	ck_assert_uint_eq(total, 200 * 1000);
	expect_eof(c);
}

static enum fail_kind
open_tls(const char *host, const char *ca, const char *pin, int verify,
    struct conn **c, struct fail *f)
{
	struct conn_params p = { host, port_str, 5, verify, ca, pin, NULL };

	*c = NULL;
	return conn_open(c, &p, TLS_IMPLICIT, f);
}

START_TEST(tls_ca_file_trusted)
{
	struct conn *c;
	struct fail f = { 0 };

	serve(srv_tls);
	ck_assert_msg(open_tls("localhost", tmp_path("ca.pem"), NULL, 1, &c,
	    &f) == FAIL_NONE, "%s", f.msg);
	client_session(c);
	conn_close(c);
	ck_assert_int_eq(server_wait(), 0);
}
END_TEST

START_TEST(tls_untrusted_refused)
{
	struct conn *c;
	struct fail f = { 0 };

	serve(srv_tls);
	ck_assert_int_eq(open_tls("localhost", NULL, NULL, 1, &c, &f), FAIL_CONN);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(f.msg, "TLS certificate verification failed: "
	    "unable to get local issuer certificate");
	ck_assert_int_ne(server_wait(), 0);     /* server saw no session */
}
END_TEST

START_TEST(tls_ip_mismatch_refused)
{
	struct conn *c;
	struct fail f = { 0 };

	serve(srv_tls);
	ck_assert_int_eq(open_tls("127.0.0.1", tmp_path("ca.pem"), NULL, 1, &c,
	    &f), FAIL_CONN);
	ck_assert_str_eq(f.msg, "TLS certificate verification failed: "
	    "IP address mismatch");
}
END_TEST

START_TEST(tls_hostname_mismatch_refused)
{
	struct conn *c;
	struct fail f = { 0 };

	server_cert = "b";      /* mail.example.org only */
	serve(srv_tls);
	ck_assert_int_eq(open_tls("localhost", tmp_path("ca.pem"), NULL, 1, &c,
	    &f), FAIL_CONN);
	ck_assert_str_eq(f.msg, "TLS certificate verification failed: "
	    "hostname mismatch");
}
END_TEST

START_TEST(tls_pin_match)
{
	struct conn *c;
	struct fail f = { 0 };

	serve(srv_tls);
	/* no CA, and an address the certificate does not name: the pin decides */
	ck_assert_msg(open_tls("127.0.0.1", NULL, pin_lower, 1, &c, &f) ==
	    FAIL_NONE, "%s", f.msg);
	client_session(c);
	conn_close(c);
}
END_TEST

START_TEST(tls_pin_no_colons_upper)
{
	struct conn *c;
	struct fail f = { 0 };
	char pin[200];
	size_t i, o = 0;

	for (i = 0; pin_upper[i] != '\0'; i++)
		if (i < 7 || pin_upper[i] != ':')
			pin[o++] = pin_upper[i];
	pin[o] = '\0';
	pin[0] = 'S';
	serve(srv_tls);
	ck_assert_msg(open_tls("localhost", NULL, pin, 1, &c, &f) == FAIL_NONE,
	    "%s", f.msg);
	client_session(c);
	conn_close(c);
}
END_TEST

START_TEST(tls_pin_mismatch)
{
	struct conn *c;
	struct fail f = { 0 };
	char want[300];

	serve(srv_tls);
	ck_assert_int_eq(open_tls("localhost", tmp_path("ca.pem"),
	    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
	    1, &c, &f), FAIL_CONN);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "certificate fingerprint mismatch: "
	    "server has %s", pin_upper);
	ck_assert_str_eq(f.msg, want);
}
END_TEST

START_TEST(tls_pin_malformed)
{
	struct conn *c;
	struct fail f = { 0 };

	serve(srv_tls);
	ck_assert_int_eq(open_tls("localhost", NULL, "sha256:12:34", 1, &c, &f),
	    FAIL_CONFIG);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(tls_bad_ca_file)
{
	struct conn *c;
	struct fail f = { 0 };

	serve(srv_tls);
	ck_assert_int_eq(open_tls("localhost", tmp_path("missing.pem"), NULL, 1,
	    &c, &f), FAIL_CONFIG);
	ck_assert(strstr(f.msg, "missing.pem") != NULL);
}
END_TEST

START_TEST(tls_verify_off)
{
	struct conn *c;
	struct fail f = { 0 };

	server_cert = "b";
	serve(srv_tls);
	ck_assert_msg(open_tls("127.0.0.1", NULL, NULL, 0, &c, &f) == FAIL_NONE,
	    "%s", f.msg);
	client_session(c);
	conn_close(c);
}
END_TEST

static void
srv_plain_to_tls(int fd)
{
	char line[64];
	size_t n = 0;
	char ch;

	put(fd, "+OK plain\r\n");
	while (n + 1 < sizeof(line) && read(fd, &ch, 1) == 1 && ch != '\n')
		line[n++] = ch;
	line[n] = '\0';
	if (strcmp(line, "STLS\r") != 0)
		_exit(20);
	put(fd, "+OK begin TLS\r\n");
	tls_session(tls_accept(fd));
}

START_TEST(tls_starttls)
{
	struct conn_params p = { "localhost", port_str, 5, 1, NULL, NULL, NULL };
	struct conn *c = NULL;
	struct fail f = { 0 };

	p.ca_file = tmp_path("ca.pem");
	serve(srv_plain_to_tls);
	ck_assert_msg(conn_open(&c, &p, TLS_STARTTLS, &f) == FAIL_NONE, "%s",
	    f.msg);
	ck_assert_int_eq(conn_is_tls(c), 0);
	expect_line(c, "+OK plain");
	ck_assert_int_eq(conn_printf(c, &f, "STLS\r\n"), FAIL_NONE);
	expect_line(c, "+OK begin TLS");
	ck_assert_msg(conn_starttls(c, &f) == FAIL_NONE, "%s", f.msg);
	client_session(c);
	ck_assert_int_eq(conn_starttls(c, &f), FAIL_PROTO);
	conn_close(c);
	ck_assert_int_eq(server_wait(), 0);
}
END_TEST

static void
srv_inject(int fd)
{
	put(fd, "+OK plain\r\n");
	put(fd, "+OK begin TLS\r\n+OK injected\r\n");
	sleep(2);
}

START_TEST(tls_starttls_injection)
{
	struct conn_params p = { "localhost", port_str, 5, 1, NULL, NULL, NULL };
	struct conn *c = NULL;
	struct fail f = { 0 };
	struct timespec ms = { 0, 200000000 };

	p.ca_file = tmp_path("ca.pem");
	serve(srv_inject);
	ck_assert_int_eq(conn_open(&c, &p, TLS_STARTTLS, &f), FAIL_NONE);
	nanosleep(&ms, NULL);   /* let both writes arrive */
	expect_line(c, "+OK plain");
	expect_line(c, "+OK begin TLS");
	ck_assert_int_eq(conn_starttls(c, &f), FAIL_PROTO);
	ck_assert(strstr(f.msg, "injection") != NULL);
	ck_assert_int_eq(conn_is_tls(c), 0);
	conn_close(c);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("plain"), *tt = tcase_create("tls");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, lines_crlf_and_lf);
	tcase_add_test(tc, line_too_long);
	tcase_add_test(tc, line_at_cap);
	tcase_add_test(tc, line_longer_than_buffer);
	tcase_add_test(tc, line_split_small_writes);
	tcase_add_test(tc, peek_consume_stream);
	tcase_add_test(tc, eof_mid_line);
	tcase_add_test(tc, inactivity_timeout);
	tcase_add_test(tc, connect_refused);
	tcase_add_test(tc, resolve_failure);
	tcase_add_test(tc, buffered_writes_flushed_before_read);
	tcase_add_test(tc, unix_socket_lines);
	tcase_add_test(tc, unix_socket_missing);
	tcase_add_test(tc, unix_socket_timeout_and_tls);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(tt, tls_fixture_setup, tls_fixture_teardown);
	tcase_add_checked_fixture(tt, setup, teardown);
	tcase_set_timeout(tt, 30);
	tcase_add_test(tt, tls_ca_file_trusted);
	tcase_add_test(tt, tls_untrusted_refused);
	tcase_add_test(tt, tls_ip_mismatch_refused);
	tcase_add_test(tt, tls_hostname_mismatch_refused);
	tcase_add_test(tt, tls_pin_match);
	tcase_add_test(tt, tls_pin_no_colons_upper);
	tcase_add_test(tt, tls_pin_mismatch);
	tcase_add_test(tt, tls_pin_malformed);
	tcase_add_test(tt, tls_bad_ca_file);
	tcase_add_test(tt, tls_verify_off);
	tcase_add_test(tt, tls_starttls);
	tcase_add_test(tt, tls_starttls_injection);
	suite_add_tcase(s, tt);
	return s;
}

UNIT_MAIN
