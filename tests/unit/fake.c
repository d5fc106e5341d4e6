/* fake.c - the scripted fake server of the unit tests; see fake.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "fake.h"
#include "xmalloc.h"

#define FAKE_LINE_MAX 16384

/* --- the child --- */

void
fake_record(struct fake_child *c, const char *line)
{
	size_t n = strlen(line);

	if (c->tslen + n + 2 > FAKE_TRANSCRIPT_MAX)
		return;
	memcpy(c->ts + c->tslen, line, n);
	c->tslen += n;
	c->ts[c->tslen++] = '\n';
	c->ts[c->tslen] = '\0';
}

int
fake_readline(struct fake_child *c, char *buf, size_t size)
{
	size_t n = 0;
	char ch;

	for (;;) {
		ssize_t r = read(c->fd, &ch, 1);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (ch == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = ch;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return 0;
}

void
fake_write(struct fake_child *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(c->fd, p, n);

		if (w <= 0) {
			if (w == -1 && errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

void
fake_send(struct fake_child *c, const char *line)
{
	fake_write(c, line, strlen(line));
	fake_write(c, "\r\n", 2);
}

/* "N:": record a line the client sent within 200 ms. */
static void
fake_nothing_yet(struct fake_child *c, char *line, size_t size)
{
	struct pollfd pf = { .fd = c->fd, .events = POLLIN };
	char early[FAKE_LINE_MAX + 32];

	if (poll(&pf, 1, 200) > 0 && fake_readline(c, line, size) == 0) {
		snprintf(early, sizeof(early), "<sent early: %s>", line);
		fake_record(c, early);
	}
}

/* The steps every protocol has (fake.h). */
static enum fake_step
fake_core_step(struct fake_child *c, const char *st, char *line, size_t size)
{
	if (strncmp(st, "S:", 2) == 0)
		fake_send(c, st + 2);
	else if (strncmp(st, "R:", 2) == 0)
		fake_write(c, st + 2, strlen(st + 2));
	else if (strcmp(st, "Z:") == 0)
		fake_write(c, "", 1);           /* one NUL byte */
	else if (strncmp(st, "C:", 2) == 0) {
		if (fake_readline(c, line, size) == -1)
			return FAKE_STOP;
		fake_record(c, line);
	} else if (strcmp(st, "N:") == 0)
		fake_nothing_yet(c, line, size);
	else if (strncmp(st, "A:", 2) == 0) {
		close(c->fd);
		if ((c->fd = accept(c->lfd, NULL, NULL)) == -1)
			_exit(2);
	} else if (strncmp(st, "K:", 2) == 0) {
		shutdown(c->fd, SHUT_RDWR);
		close(c->fd);
		c->fd = -1;
		return FAKE_STOP;
	}
	return FAKE_DONE;
}

static void
fake_child_run(int lfd, int wfd, const struct fake_proto *proto,
    const char *const *script)
{
	struct fake_child c = { .fd = -1, .lfd = lfd };
	static char line[FAKE_LINE_MAX];

	alarm(20);
	c.ts = xmalloc(FAKE_TRANSCRIPT_MAX);
	c.ts[0] = '\0';
	if ((c.fd = accept(lfd, NULL, NULL)) == -1)
		_exit(2);
	for (; *script != NULL; script++) {
		enum fake_step r = FAKE_NOT_MINE;

		if (proto != NULL && proto->step != NULL)
			r = proto->step(&c, *script, line, sizeof(line));
		if (r == FAKE_NOT_MINE)
			r = fake_core_step(&c, *script, line, sizeof(line));
		if (r == FAKE_STOP)
			break;
	}
	/* Anything more the client says is recorded too. */
	while (c.fd != -1 && fake_readline(&c, line, sizeof(line)) == 0)
		fake_record(&c, line);
	fake_write(&(struct fake_child){ .fd = wfd }, c.ts, c.tslen);
	_exit(0);
}

/* --- the parent --- */

/* Run the script in a child, on the listening socket lfd. */
static void
fake_fork(struct fake *fk, int lfd, const char *const *script)
{
	int pfd[2];

	ck_assert_int_eq(pipe(pfd), 0);
	fk->pid = fork();
	ck_assert_int_ge(fk->pid, 0);
	if (fk->pid == 0) {
		close(pfd[0]);
		fake_child_run(lfd, pfd[1], fk->proto, script);
	}
	close(pfd[1]);
	close(lfd);
	fk->rfd = pfd[0];
}

void
fake_start_at(struct fake *fk, const struct fake_proto *proto,
    const char *addr, const char *const *script)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	int lfd, one = 1;

	memset(fk, 0, sizeof(*fk));
	fk->proto = proto;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 2), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	snprintf(fk->port, sizeof(fk->port), "%u", ntohs(sa.sin_port));
	fake_fork(fk, lfd, script);
}

void
fake_start(struct fake *fk, const struct fake_proto *proto,
    const char *const *script)
{
	fake_start_at(fk, proto, "127.0.0.1", script);
}

void
fake_start_unix(struct fake *fk, const struct fake_proto *proto,
    const char *const *script)
{
	struct sockaddr_un sun;
	int lfd;

	memset(fk, 0, sizeof(*fk));
	fk->proto = proto;
	snprintf(fk->dir, sizeof(fk->dir), "/tmp/mailpull-lmtp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fk->dir));
	snprintf(fk->path, sizeof(fk->path), "%s/lmtp", fk->dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, fk->path, strlen(fk->path) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 2), 0);
	fake_fork(fk, lfd, script);
}

/* The lines the script expects the child to have recorded. */
static void
fake_want(const struct fake_proto *proto, const char *const *script,
    char *want, size_t size)
{
	size_t w = 0;
	const char *e;

	want[0] = '\0';
	for (; *script != NULL; script++) {
		const char *st = *script;

		e = NULL;
		if (strncmp(st, "C:", 2) == 0)
			e = st + 2;
		else if (proto != NULL && proto->expect != NULL)
			e = proto->expect(st);
		if (e != NULL)
			w += (size_t)snprintf(want + w, size - w, "%s\n", e);
	}
}

void
fake_finish(struct fake *fk, const char *const *script)
{
	static char got[FAKE_TRANSCRIPT_MAX], want[FAKE_TRANSCRIPT_MAX];
	size_t n = 0;
	ssize_t r;
	int status;

	while ((r = read(fk->rfd, got + n, sizeof(got) - 1 - n)) > 0)
		n += (size_t)r;
	got[n] = '\0';
	close(fk->rfd);
	if (fk->path[0] != '\0') {
		unlink(fk->path);
		rmdir(fk->dir);
	}
	ck_assert_int_eq(waitpid(fk->pid, &status, 0), fk->pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fake_want(fk->proto, script, want, sizeof(want));
	ck_assert_str_eq(got, want);
}
