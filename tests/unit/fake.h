/* fake.h - a scripted fake server for the check unit tests (test_pop3.c,
 * test_imap.c, test_smtp.c).
 *
 * fake_start() forks a child that accepts one connection and plays a
 * script: a NULL-terminated list of steps. The steps every protocol has:
 *   "S:text"   send text + CRLF
 *   "R:bytes"  send bytes as they are (no CRLF added)
 *   "Z:"       send one NUL byte
 *   "C:text"   read one client line (CRLF stripped) and record it; text is
 *              what the test expects the client to have sent
 *   "N:"       the client must have sent nothing more by now (it waits for
 *              a reply): checked for 200 ms; if a line came, it is recorded
 *              as "<sent early: LINE>" and fails the comparison
 *   "A:"       close the connection and accept the next one
 *   "K:"       close the connection at once and stop
 * A test file's struct fake_proto may run steps of its own, or the ones
 * above its own way; other steps are ignored. The child records every line
 * the client sent (and, after the script, all further lines until EOF),
 * hands them back through a pipe and exits; it is killed by SIGALRM after
 * 20 s. fake_finish() waits for it and checks the recorded lines against
 * the expected ones, exactly and in order.
 */
#ifndef MAILPULL_FAKE_H
#define MAILPULL_FAKE_H

#include <stddef.h>
#include <sys/types.h>

#define FAKE_TRANSCRIPT_MAX 65536

/* The child's side of one connection. */
struct fake_child {
	int fd;                 /* the connection; -1 once closed */
	int lfd;                /* the listening socket */
	char *ts;               /* transcript: recorded lines, '\n' after each */
	size_t tslen;
};

enum fake_step {
	FAKE_NOT_MINE,          /* not a step of the protocol's: run the core's */
	FAKE_DONE,              /* run; go on with the next step */
	FAKE_STOP,              /* stop the script (the client went away) */
};

/* A protocol's own steps; either function pointer may be NULL. */
struct fake_proto {
	/* Run step st; line (size bytes) is scratch space for a client line. */
	enum fake_step (*step)(struct fake_child *c, const char *st, char *line,
	    size_t size);
	/* What step st (not a C: step) adds to the transcript: lines joined
	 * by '\n', without the last one's; NULL if nothing. */
	const char *(*expect)(const char *st);
};

/* The parent's handle on a fake server. */
struct fake {
	pid_t pid;
	int rfd;                /* transcript from the child */
	const struct fake_proto *proto;
	char port[16];          /* TCP: the port it listens on */
	char dir[64];           /* unix socket: its directory and path */
	char path[100];
};

/* Start a fake server playing script (which must outlive fake_finish) on
 * 127.0.0.1, on addr (an IPv4 loopback address), or on a unix socket
 * fk->path in a fresh directory; any free port. proto may be NULL. Fails
 * the test if the socket cannot be set up. */
void fake_start(struct fake *fk, const struct fake_proto *proto,
    const char *const *script);
void fake_start_at(struct fake *fk, const struct fake_proto *proto,
    const char *addr, const char *const *script);
void fake_start_unix(struct fake *fk, const struct fake_proto *proto,
    const char *const *script);

/* Wait for the child, remove a unix socket, and check the client's lines
 * against the C: steps (and what fk->proto expects of the others). */
void fake_finish(struct fake *fk, const char *const *script);

/* For a protocol's steps, in the child. */
void fake_record(struct fake_child *c, const char *line);
/* Read one line (CRLF stripped, cut to size - 1); -1 at EOF. */
int fake_readline(struct fake_child *c, char *buf, size_t size);
void fake_write(struct fake_child *c, const char *p, size_t n);
/* Send line + CRLF. */
void fake_send(struct fake_child *c, const char *line);

#endif
