/* mda.c - the MDA target: each message piped into a command.
 *
 * `deliver = mda:COMMAND` runs `/bin/sh -c COMMAND` once per message, in a
 * session of its own (its process group can be killed whole), with the
 * message on stdin (CRLF turned into LF, as procmail and maildrop expect),
 * stdout on /dev/null and stderr copied line by line into our log.
 *
 * %u (our user name), %T (the recipient: our user) and %F (the envelope
 * sender: the message's Return-Path, else MAILER-DAEMON) never put their
 * value into the command text. They become references to environment
 * variables set for the command (MAILPULL_USER, MAILPULL_RECIPIENT,
 * MAILPULL_SENDER), written for the quoting context they stand in: %F
 * unquoted becomes "$MAILPULL_SENDER", inside "..." ${MAILPULL_SENDER},
 * inside '...' '"${MAILPULL_SENDER}"'. The shell never parses the value, so
 * whatever a header holds ($(...), backticks, quotes) stays one literal
 * word, whatever the quoting around %F. %% is a '%'; any other % is kept.
 *
 * %F is known only once the header has passed, so the command starts when
 * the header section has ended (or MDA_HOLD_MAX bytes of it are held, or the
 * message ends), and the held bytes go first.
 *
 * end() closes stdin and waits for the exit: 0 = delivered, 75
 * (EX_TEMPFAIL) = FAIL_TEMP, anything else = FAIL_LOCAL. The message stays
 * on the server either way. FAIL_LOCAL rather than FAIL_REJECTED: an MDA's
 * exit code does not tell "this message is refused for good" from "my
 * mailbox or my rc file is broken" (procmail exits 1 for both, a typo gives
 * 127), and a rejection is meant to be recorded and not retried. A command
 * that accepts no input or does not exit within the time limit has its
 * process group killed: FAIL_TEMP.
 *
 * sync() has nothing to do: every end() waited for the MDA. An MDA cannot be
 * asked whether it got a message, so settle() after a crash answers 0 and
 * the message is delivered again (MDA delivery is at-least-once, DESIGN
 * 1.2). Not signal-driven: children are waited for with a pidfd (or short
 * polls), never SIGCHLD. Relies on SIGPIPE being ignored (main() does).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fail.h"
#include "log.h"
#include "target.h"
#include "xmalloc.h"

#define MDA_TIMEOUT     60              /* seconds without progress, or to exit */
#define MDA_HOLD_MAX    (64 * 1024)     /* header held back to find Return-Path */
#define MDA_ERRLINE_MAX 240             /* one stderr line in our log */
#define MDA_ERRLINES    20              /* stderr lines logged per message */
#define MDA_LABEL_MAX   80              /* the command as shown in messages */
#define MDA_ADDR_MAX    998             /* longest sender passed on */
#define MDA_NOSENDER    "MAILER-DAEMON"
#define MDA_EX_TEMPFAIL 75
#define MDA_POLL_MS     20              /* wait step without a pidfd */

#define ENV_SENDER      "MAILPULL_SENDER"
#define ENV_RECIPIENT   "MAILPULL_RECIPIENT"
#define ENV_USER        "MAILPULL_USER"

extern char **environ;

static atomic_int mda_timeout = MDA_TIMEOUT;
static atomic_ulong mda_seq;

struct mda {
	char            *cmd;           /* as configured */
	char            *script;        /* what sh -c runs */
	char             label[MDA_LABEL_MAX + 4];
	char            *user;

	/* The message being delivered. */
	int              active;        /* begun, not yet ended or aborted */
	char             ref[TARGET_REF_MAX];
	pid_t            pid;           /* -1: not started yet */
	int              in_fd;         /* its stdin (non-blocking) */
	int              err_fd;        /* its stderr (non-blocking) */
	int              pidfd;         /* -1 if the kernel has none */
	int              cr;            /* last write ended in '\r' */
	char            *hold;          /* bytes held until the start */
	size_t           nhold;
	size_t           scanned;       /* hold[0..scanned) has no header end */
	char             errline[MDA_ERRLINE_MAX + 1];
	size_t           nerr;
	int              errcut;        /* the line was longer than shown */
	int              errlines;      /* lines logged for this message */

	/* Delivered since the batch was planned: what settle() can vouch for. */
	char           **done;
	size_t           ndone, capdone;
	int              synced;        /* the next plan() starts a batch */
};

void
mda_test_set_timeout(int seconds)
{
	mda_timeout = seconds > 0 ? seconds : MDA_TIMEOUT;
}

/* ---- time ------------------------------------------------------------- */

static long long
deadline_ms(void)
{
	return mono_ms() + (long long)mda_timeout * 1000;
}

/* ---- the command text -------------------------------------------------- */

/* The configured command, printable and short, for messages. */
static void
make_label(struct mda *m)
{
	size_t i, o = 0;

	for (i = 0; m->cmd[i] != '\0' && o < MDA_LABEL_MAX; i++) {
		unsigned char c = (unsigned char)m->cmd[i];

		m->label[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (m->cmd[i] != '\0') {
		memcpy(m->label + o, "...", 3);
		o += 3;
	}
	m->label[o] = '\0';
}

enum quote { Q_NONE, Q_SINGLE, Q_DOUBLE };

/* A reference to variable var that yields its value as a literal, in the
 * quoting context q. */
static void
put_ref(char **out, size_t *len, size_t *cap, enum quote q, const char *var)
{
	char ref[64];
	int n;

	if (q == Q_NONE)
		n = snprintf(ref, sizeof(ref), "\"${%s}\"", var);
	else if (q == Q_DOUBLE)
		n = snprintf(ref, sizeof(ref), "${%s}", var);
	else
		n = snprintf(ref, sizeof(ref), "'\"${%s}\"'", var);
	if (*len + (size_t)n + 1 > *cap) {
		*cap = (*len + (size_t)n + 1) * 2;
		*out = xreallocarray(*out, *cap, 1);
	}
	memcpy(*out + *len, ref, (size_t)n);
	*len += (size_t)n;
}

static void
put_char(char **out, size_t *len, size_t *cap, char c)
{
	if (*len + 2 > *cap) {
		*cap = (*len + 2) * 2;
		*out = xreallocarray(*out, *cap, 1);
	}
	(*out)[(*len)++] = c;
}

/* The command with %u %T %F turned into variable references, tracking
 * '...', "..." and backslashes. The tracking is for correctness only: a
 * reference is safe in any context (the shell never re-parses a value). */
static char *
make_script(const char *cmd)
{
	size_t len = 0, cap = strlen(cmd) + 64;
	char *out = xmalloc(cap);
	enum quote q = Q_NONE;
	const char *p;

	for (p = cmd; *p != '\0'; p++) {
		if (*p == '%' && p[1] != '\0') {
			const char *var = p[1] == 'F' ? ENV_SENDER :
			    p[1] == 'T' ? ENV_RECIPIENT :
			    p[1] == 'u' ? ENV_USER : NULL;

			if (var != NULL) {
				put_ref(&out, &len, &cap, q, var);
				p++;
				continue;
			}
			if (p[1] == '%') {
				put_char(&out, &len, &cap, '%');
				p++;
				continue;
			}
		}
		put_char(&out, &len, &cap, *p);
		if (*p == '\\' && q != Q_SINGLE && p[1] != '\0')
			put_char(&out, &len, &cap, *++p);
		else if (*p == '\'' && q != Q_DOUBLE)
			q = q == Q_SINGLE ? Q_NONE : Q_SINGLE;
		else if (*p == '"' && q != Q_SINGLE)
			q = q == Q_DOUBLE ? Q_NONE : Q_DOUBLE;
	}
	out[len] = '\0';
	return out;
}

static char *
user_name(void)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	const char *env;

	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL && res->pw_name[0] != '\0')
		return xstrdup(res->pw_name);
	if ((env = getenv("USER")) != NULL && *env != '\0')
		return xstrdup(env);
	return xasprintf("%lu", (unsigned long)getuid());
}

/* ---- the envelope sender ----------------------------------------------- */

static int
header_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* The address in the first Return-Path of the held header (LF line ends),
 * or MAILER-DAEMON for none or <>. Control bytes are dropped. */
static char *
find_sender(const char *h, size_t n)
{
	const char *p = h, *end = h + n, *nl, *v = NULL, *vend = NULL;
	char addr[MDA_ADDR_MAX + 1];
	size_t o = 0;
	int angle;

	while (p < end && *p != '\n') {
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl ? nl : end;
		if (v == NULL && header_is(p, (size_t)(nl - p), "Return-Path")) {
			v = p + strlen("Return-Path:");
			vend = nl;
			/* folded continuation lines belong to it */
			while (vend < end && vend + 1 < end &&
			    (vend[1] == ' ' || vend[1] == '\t')) {
				const char *nx = memchr(vend + 1, '\n',
				    (size_t)(end - vend - 1));
				vend = nx ? nx : end;
			}
		}
		p = nl + 1;
	}
	if (v == NULL)
		return xstrdup(MDA_NOSENDER);
	while (v < vend && (*v == ' ' || *v == '\t' || *v == '\n'))
		v++;
	angle = v < vend && *v == '<';
	if (angle)
		v++;
	for (; v < vend && o < MDA_ADDR_MAX; v++) {
		unsigned char c = (unsigned char)*v;

		if (angle && c == '>')
			break;
		if (c < 0x20 || c == 0x7f)
			continue;
		addr[o++] = (char)c;
	}
	while (!angle && o > 0 && (addr[o - 1] == ' ' || addr[o - 1] == '\t'))
		o--;
	addr[o] = '\0';
	return xstrdup(o > 0 ? addr : MDA_NOSENDER);
}

/* ---- stderr into the log ------------------------------------------------ */

static void
err_flush_line(struct mda *m)
{
	if (m->nerr == 0 && !m->errcut)
		return;
	m->errline[m->nerr] = '\0';
	if (m->errlines < MDA_ERRLINES)
		log_warnx("mda: %s%s", m->errline, m->errcut ? "..." : "");
	else if (m->errlines == MDA_ERRLINES)
		log_warnx("mda: (more output from %s not shown)", m->label);
	m->errlines++;
	m->nerr = 0;
	m->errcut = 0;
}

static void
err_take(struct mda *m, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n') {
			err_flush_line(m);
		} else if (c == '\r') {
			continue;
		} else if (m->nerr < MDA_ERRLINE_MAX) {
			m->errline[m->nerr++] = c == '\t' ? ' ' :
			    c >= 0x20 && c < 0x7f ? (char)c : '?';
		} else {
			m->errcut = 1;
		}
	}
}

/* Read what stderr holds now; at EOF close it. */
static void
err_drain(struct mda *m)
{
	char buf[4096];
	ssize_t r;

	while (m->err_fd != -1) {
		r = read(m->err_fd, buf, sizeof(buf));
		if (r > 0) {
			err_take(m, buf, (size_t)r);
			continue;
		}
		if (r == -1 && errno == EINTR)
			continue;
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			close(m->err_fd);
			m->err_fd = -1;
		}
		break;
	}
}

/* ---- the process -------------------------------------------------------- */

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

/* environ without our variables, plus ours. Caller frees the strings it
 * added (the last three) and the array. */
static char **
make_env(const struct mda *m, const char *sender)
{
	size_t n = 0, o = 0;
	char **env;

	while (environ != NULL && environ[n] != NULL)
		n++;
	env = xcalloc(n + 4, sizeof(*env));
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], ENV_SENDER "=", sizeof(ENV_SENDER)) == 0 ||
		    strncmp(environ[i], ENV_RECIPIENT "=",
		    sizeof(ENV_RECIPIENT)) == 0 ||
		    strncmp(environ[i], ENV_USER "=", sizeof(ENV_USER)) == 0)
			continue;
		env[o++] = environ[i];
	}
	env[o++] = xasprintf("%s=%s", ENV_SENDER, sender);
	env[o++] = xasprintf("%s=%s", ENV_RECIPIENT, m->user);
	env[o++] = xasprintf("%s=%s", ENV_USER, m->user);
	env[o] = NULL;
	return env;
}

static void
free_env(char **env)
{
	size_t n = 0;

	while (env[n] != NULL)
		n++;
	for (size_t i = n - 3; i < n; i++)
		free(env[i]);
	free(env);
}

/* Its own session: a time limit kills the whole group. Signals we
 * ignore or block (SIGPIPE above all) are reset for it. */
static int
spawn_attrs(posix_spawnattr_t *at)
{
	static const int dfl[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT,
	    SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD };
	sigset_t set;
	int e;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++)
		sigaddset(&set, dfl[i]);
	if ((e = posix_spawnattr_setsigdefault(at, &set)) != 0)
		return e;
	sigemptyset(&set);
	if ((e = posix_spawnattr_setsigmask(at, &set)) != 0)
		return e;
	return posix_spawnattr_setflags(at, POSIX_SPAWN_SETSID |
	    POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
}

/* stdin from our pipe, stdout to /dev/null, stderr into our pipe. */
static int
spawn_files(posix_spawn_file_actions_t *fa, int in, int err)
{
	int e;

	if ((e = posix_spawn_file_actions_adddup2(fa, in, STDIN_FILENO)) != 0 ||
	    (e = posix_spawn_file_actions_addopen(fa, STDOUT_FILENO,
	    "/dev/null", O_WRONLY, 0)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(fa, err, STDERR_FILENO)) != 0)
		return e;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
	/* Our own descriptors are close-on-exec; anything else is not its. */
	e = posix_spawn_file_actions_addclosefrom_np(fa, STDERR_FILENO + 1);
#endif
	return e;
}

static int
spawn(struct mda *m, int in, int err, char **env)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char *argv[] = { "sh", "-c", m->script, NULL };
	int e;

	if ((e = posix_spawn_file_actions_init(&fa)) != 0)
		return e;
	if ((e = posix_spawnattr_init(&at)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return e;
	}
	if ((e = spawn_files(&fa, in, err)) == 0 &&
	    (e = spawn_attrs(&at)) == 0)
		e = posix_spawn(&m->pid, "/bin/sh", &fa, &at, argv, env);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return e;
}

/* Start the command for the held message; the sender comes from the
 * held header. */
static enum fail_kind
mda_start(struct mda *m, struct fail *f)
{
	int in[2] = { -1, -1 }, err[2] = { -1, -1 }, e;
	char *sender, **env;

	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1) {
		e = errno;
		close_fd(&in[0]);
		close_fd(&in[1]);
		return fail_set(f, FAIL_LOCAL, "mda: %s: pipe: %s", m->label,
		    strerror(e));
	}
	sender = find_sender(m->hold, m->nhold);
	env = make_env(m, sender);
	e = spawn(m, in[0], err[1], env);
	free_env(env);
	log_debug("mda: started %s (pid %ld, sender %s)", m->label,
	    e == 0 ? (long)m->pid : -1L, sender);
	free(sender);
	close(in[0]);
	close(err[1]);
	if (e != 0) {
		m->pid = -1;
		close(in[1]);
		close(err[0]);
		return fail_set(f, FAIL_LOCAL, "mda: cannot run %s: %s",
		    m->label, strerror(e));
	}
	m->in_fd = in[1];
	m->err_fd = err[0];
	(void)fcntl(m->in_fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(m->err_fd, F_SETFL, O_NONBLOCK);
#ifdef SYS_pidfd_open
	m->pidfd = (int)syscall(SYS_pidfd_open, m->pid, 0);
	if (m->pidfd != -1)
		(void)fcntl(m->pidfd, F_SETFD, FD_CLOEXEC);
#endif
	return FAIL_NONE;
}

/* Wait until the command has exited or the deadline passes, copying its
 * stderr meanwhile. 1 with *status when it exited, 0 on timeout. */
static int
mda_wait(struct mda *m, long long deadline, int *status)
{
	struct pollfd pfd[2];
	long long left;
	pid_t r;
	int n;

	for (;;) {
		r = waitpid(m->pid, status, WNOHANG);
		if (r == m->pid || (r == -1 && errno == ECHILD)) {
			if (r == -1)    /* reaped elsewhere: status lost */
				*status = 0x7f00;       /* counts as exit 127 */
			m->pid = -1;
			err_drain(m);
			return 1;
		}
		left = deadline - mono_ms();
		if (left <= 0)
			return 0;
		n = 0;
		if (m->err_fd != -1)
			pfd[n++] = (struct pollfd){ .fd = m->err_fd, .events = POLLIN };
		if (m->pidfd != -1)
			pfd[n++] = (struct pollfd){ .fd = m->pidfd, .events = POLLIN };
		else if (left > MDA_POLL_MS)
			left = MDA_POLL_MS;
		if (poll(pfd, (nfds_t)n, (int)left) > 0 && m->err_fd != -1 &&
		    pfd[0].revents != 0)
			err_drain(m);
	}
}

/* Kill the whole process group and reap the command. */
static void
mda_kill(struct mda *m)
{
	int status;

	if (m->pid == -1)
		return;
	(void)kill(-m->pid, SIGKILL);
	while (waitpid(m->pid, &status, 0) == -1 && errno == EINTR)
		;
	m->pid = -1;
}

/* The message is over: forget its process and buffers. */
static void
mda_reset(struct mda *m)
{
	mda_kill(m);
	close_fd(&m->in_fd);
	err_drain(m);
	err_flush_line(m);
	close_fd(&m->err_fd);
	close_fd(&m->pidfd);
	m->active = 0;
	m->nhold = m->scanned = 0;
	m->cr = 0;
}

/* Why the command failed, from its wait status; FAIL_NONE for exit 0. */
static enum fail_kind
mda_verdict(struct mda *m, int status, const char *when, struct fail *f)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return FAIL_NONE;
	if (WIFEXITED(status) && WEXITSTATUS(status) == MDA_EX_TEMPFAIL)
		return fail_set(f, FAIL_TEMP, "mda: %s exited 75 (temporary "
		    "failure)%s; kept, retried next poll", m->label, when);
	if (WIFEXITED(status))
		return fail_set(f, FAIL_LOCAL, "mda: %s exited %d%s; kept, "
		    "retried next poll", m->label, WEXITSTATUS(status), when);
	return fail_set(f, FAIL_LOCAL, "mda: %s was killed by signal %d "
	    "(%s)%s; kept, retried next poll", m->label, WTERMSIG(status),
	    strsignal(WTERMSIG(status)), when);
}

static enum fail_kind
mda_timed_out(struct mda *m, const char *what, struct fail *f)
{
	fail_set(f, FAIL_TEMP, "mda: %s %s within %d s; killed, kept, retried "
	    "next poll", m->label, what, (int)mda_timeout);
	mda_reset(m);
	return FAIL_TEMP;
}

/* The command closed its stdin early: say how it ended. */
static enum fail_kind
mda_gone(struct mda *m, struct fail *f)
{
	int status;

	close_fd(&m->in_fd);
	if (!mda_wait(m, deadline_ms(), &status))
		return mda_timed_out(m, "stopped reading but did not exit", f);
	if (mda_verdict(m, status, " before reading the whole message",
	    f) == FAIL_NONE)
		fail_set(f, FAIL_LOCAL, "mda: %s exited 0 before reading the "
		    "whole message; kept, retried next poll", m->label);
	mda_reset(m);
	return f->kind;
}

/* Write into its stdin; wait (copying stderr) while the pipe is full. */
static enum fail_kind
pipe_out(struct mda *m, const char *p, size_t n, struct fail *f)
{
	long long deadline = deadline_ms(), left;
	struct pollfd pfd[2];
	ssize_t w;
	int k;

	while (n > 0) {
		w = write(m->in_fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			deadline = deadline_ms();
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && errno == EPIPE)
			return mda_gone(m, f);
		if (w == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
			fail_set(f, FAIL_LOCAL, "mda: %s: writing the message: "
			    "%s", m->label, strerror(errno));
			mda_reset(m);
			return FAIL_LOCAL;
		}
		left = deadline - mono_ms();
		if (left <= 0)
			return mda_timed_out(m, "accepted no input", f);
		k = 0;
		pfd[k++] = (struct pollfd){ .fd = m->in_fd, .events = POLLOUT };
		if (m->err_fd != -1)
			pfd[k++] = (struct pollfd){ .fd = m->err_fd, .events = POLLIN };
		if (poll(pfd, (nfds_t)k, (int)left) > 0 && k > 1 &&
		    pfd[1].revents != 0)
			err_drain(m);
	}
	return FAIL_NONE;
}

/* Start the command and send it what was held. */
static enum fail_kind
mda_release(struct mda *m, struct fail *f)
{
	enum fail_kind k;

	if ((k = mda_start(m, f)) != FAIL_NONE) {
		mda_reset(m);
		return k;
	}
	k = pipe_out(m, m->hold, m->nhold, f);
	m->nhold = m->scanned = 0;
	return k;
}

/* Converted bytes: held until the header has passed, then piped. */
static enum fail_kind
mda_emit(struct mda *m, const char *p, size_t n, struct fail *f)
{
	size_t room, i;

	while (m->pid == -1 && n > 0) {
		room = MDA_HOLD_MAX - m->nhold;
		if (room > n)
			room = n;
		memcpy(m->hold + m->nhold, p, room);
		m->nhold += room;
		p += room;
		n -= room;
		/* The header ends at an empty line (or the message starts
		 * with one). */
		for (i = m->scanned; i < m->nhold; i++)
			if (m->hold[i] == '\n' && (i == 0 || m->hold[i - 1] == '\n'))
				break;
		m->scanned = i;
		if (i < m->nhold || m->nhold == MDA_HOLD_MAX) {
			enum fail_kind k = mda_release(m, f);

			if (k != FAIL_NONE)
				return k;
		}
	}
	return n > 0 ? pipe_out(m, p, n, f) : FAIL_NONE;
}

/* ---- the table ---------------------------------------------------------- */

static void mda_close(void *t);

static enum fail_kind
mda_open(void **t, const char *cmd, struct fail *f)
{
	struct mda *m;

	*t = NULL;
	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	if (*cmd == '\0')
		return fail_set(f, FAIL_CONFIG, "mda: no command given "
		    "(expected mda:COMMAND)");
	m = xcalloc(1, sizeof(*m));
	m->cmd = xstrdup(cmd);
	m->script = make_script(cmd);
	m->user = user_name();
	m->pid = -1;
	m->in_fd = m->err_fd = m->pidfd = -1;
	m->hold = xmalloc(MDA_HOLD_MAX);
	make_label(m);
	*t = m;
	return FAIL_NONE;
}

static void
done_clear(struct mda *m)
{
	for (size_t i = 0; i < m->ndone; i++)
		free(m->done[i]);
	m->ndone = 0;
}

static void
mda_close(void *t)
{
	struct mda *m = t;

	if (m == NULL)
		return;
	mda_reset(m);
	done_clear(m);
	free(m->done);
	free(m->hold);
	free(m->user);
	free(m->script);
	free(m->cmd);
	free(m);
}

static enum fail_kind
mda_plan(void *t, char *ref, size_t reflen, struct fail *f)
{
	struct mda *m = t;
	struct timespec ts;
	int n;

	if (m->synced) {
		/* A new batch: the last one has been recorded or settled. */
		done_clear(m);
		m->synced = 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(ref, reflen, "mda.%lld.%ld.%lu", (long long)ts.tv_sec,
	    (long)getpid(), atomic_fetch_add(&mda_seq, 1));
	if (n < 0 || (size_t)n >= reflen || (size_t)n >= TARGET_REF_MAX)
		return fail_set(f, FAIL_LOCAL, "mda: reference too long");
	return FAIL_NONE;
}

static enum fail_kind
mda_begin(void *t, const char *ref, const struct msg_meta *meta,
    struct fail *f)
{
	struct mda *m = t;

	if (m->active)
		return fail_set(f, FAIL_LOCAL, "mda: %s: a message is already "
		    "open", m->label);
	snprintf(m->ref, sizeof(m->ref), "%s", ref);
	m->active = 1;
	m->nhold = m->scanned = 0;
	m->cr = 0;
	m->nerr = 0;
	m->errcut = 0;
	m->errlines = 0;
	return FAIL_NONE;
}

/* CRLF -> LF; a lone CR is kept, also across write calls. */
static enum fail_kind
mda_write(void *t, const char *p, size_t n, struct fail *f)
{
	struct mda *m = t;
	const char *end = p + n, *cr;
	enum fail_kind k;

	if (!m->active)
		return fail_set(f, FAIL_LOCAL, "mda: %s: no message open",
		    m->label);
	if (n == 0)
		return FAIL_NONE;
	if (m->cr) {
		m->cr = 0;
		if (*p != '\n' && (k = mda_emit(m, "\r", 1, f)) != FAIL_NONE)
			return k;
	}
	while (p < end) {
		cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL)
			return mda_emit(m, p, (size_t)(end - p), f);
		if ((k = mda_emit(m, p, (size_t)(cr - p), f)) != FAIL_NONE)
			return k;
		if (cr + 1 == end) {
			m->cr = 1;
			break;
		}
		if (cr[1] != '\n' && (k = mda_emit(m, "\r", 1, f)) != FAIL_NONE)
			return k;
		p = cr + 1;
	}
	return FAIL_NONE;
}

static enum fail_kind
mda_end(void *t, struct fail *f)
{
	struct mda *m = t;
	enum fail_kind k;
	int status;

	if (!m->active)
		return fail_set(f, FAIL_LOCAL, "mda: %s: no message open",
		    m->label);
	if (m->cr) {
		m->cr = 0;
		if ((k = mda_emit(m, "\r", 1, f)) != FAIL_NONE)
			goto fail;
	}
	if (m->pid == -1 && (k = mda_release(m, f)) != FAIL_NONE)
		goto fail;
	close_fd(&m->in_fd);
	if (!mda_wait(m, deadline_ms(), &status))
		return mda_timed_out(m, "did not exit", f);
	k = mda_verdict(m, status, "", f);
	if (k == FAIL_NONE) {
		if (m->ndone == m->capdone) {
			m->capdone = m->capdone ? m->capdone * 2 : 16;
			m->done = xreallocarray(m->done, m->capdone,
			    sizeof(*m->done));
		}
		m->done[m->ndone++] = xstrdup(m->ref);
	}
fail:
	mda_reset(m);   /* a failed end() drops the message, as abort() */
	return k;
}

/* Kill it before it sees the end of its input: a command that got EOF
 * would deliver the partial message. */
static void
mda_abort(void *t)
{
	struct mda *m = t;

	if (m->active)
		mda_reset(m);
}

static enum fail_kind
mda_sync(void *t, struct fail *f)
{
	struct mda *m = t;

	m->synced = 1;
	return FAIL_NONE;
}

/* 1 for a message this run's MDA accepted (exit 0); else 0: the MDA cannot
 * be asked, so the message will be delivered again. */
static int
mda_settle(void *t, const char *ref, struct fail *f)
{
	struct mda *m = t;
	long pid = 0;

	for (size_t i = 0; i < m->ndone; i++)
		if (strcmp(m->done[i], ref) == 0)
			return 1;
	if (sscanf(ref, "mda.%*[0-9].%ld.", &pid) != 1 || pid != (long)getpid())
		log_verbose("mda: %s: cannot tell whether an interrupted run "
		    "delivered %s; it will be delivered again (MDA delivery is "
		    "at-least-once)", m->label, ref);
	return 0;
}

const struct target_ops mda_target = {
	.kind = "mda",
	.open = mda_open,
	.plan = mda_plan,
	.begin = mda_begin,
	.write = mda_write,
	.end = mda_end,
	.abort = mda_abort,
	.sync = mda_sync,
	.settle = mda_settle,
	.close = mda_close,
};
