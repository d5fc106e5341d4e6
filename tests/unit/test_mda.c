/* test_mda.c - the MDA target: exit codes, bytes, time limit, %F safety. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "target.h"
#include "unit.h"
#include "xmalloc.h"

/* Not in target.h yet: the MDA target and its test hook (src/target/mda.c). */

static const struct target_ops *ops = &mda_target;
static char tdir[64];

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void
setup(void)
{
	signal(SIGPIPE, SIG_IGN);       /* as main() does */
	snprintf(tdir, sizeof(tdir), "/tmp/mailpull-mda-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	ck_assert_int_eq(chdir(tdir), 0);      /* commands write here */
	mda_test_set_timeout(0);
}

static void
teardown(void)
{
	(void)chdir("/");
	nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tdir/name */
static char *
tpath(const char *name)
{
	return xasprintf("%s/%s", tdir, name);
}

/* Open a target running cmd (in tdir, our working directory). */
static void *
open_cmd(const char *cmd)
{
	struct fail f = { FAIL_NONE, "" };
	void *t = NULL;

	ck_assert_msg(ops->open(&t, cmd, &f) == FAIL_NONE, "%s", f.msg);
	ck_assert_ptr_nonnull(t);
	return t;
}

/* Deliver one message written in the given pieces; the first failure. */
static enum fail_kind
deliver_parts(void *t, char *ref, const char *const *parts, const size_t *lens,
    size_t n, struct fail *f)
{
	struct msg_meta m = { .uid = "u1", .size = 0, .flags = "", .mtime = 0 };
	enum fail_kind k;

	ck_assert_int_eq(ops->plan(t, ref, TARGET_REF_MAX, f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, f), FAIL_NONE);
	for (size_t i = 0; i < n; i++) {
		k = ops->write(t, parts[i], lens[i], f);
		if (k != FAIL_NONE) {
			ops->abort(t);
			return k;
		}
	}
	return ops->end(t, f);
}

static enum fail_kind
deliver_str(void *t, const char *msg, struct fail *f)
{
	char ref[TARGET_REF_MAX];
	size_t len = strlen(msg);

	return deliver_parts(t, ref, &msg, &len, 1, f);
}

static char *
slurp(const char *path, size_t *len)
{
	struct stat sb;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &sb), 0);
	buf = xmalloc((size_t)sb.st_size + 1);
	ck_assert_int_eq(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	buf[sb.st_size] = '\0';
	close(fd);
	if (len != NULL)
		*len = (size_t)sb.st_size;
	return buf;
}

static void
assert_file(const char *name, const char *want)
{
	char *path = tpath(name), *got = slurp(path, NULL);

	ck_assert_str_eq(got, want);
	free(got);
	free(path);
}

/* No child of ours is left, not even a zombie. */
static void
assert_no_children(void)
{
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(test_exit0_exact_bytes)
{
	static const char p0[] = "Subject: x\r";
	static const char p1[] = "\n\r";
	static const char p2[] = "\nbody\0\xff\x80 lone\rCR\r";
	static const char p3[] = "\n";
	static const char p4[] = "\r\r\n8bit \xe9\r";
	const char *parts[] = { p0, p1, p2, "", p3, p4 };
	size_t lens[] = { sizeof(p0) - 1, sizeof(p1) - 1, sizeof(p2) - 1, 0,
	    sizeof(p3) - 1, sizeof(p4) - 1 };
	static const char want[] =
	    "Subject: x\n\nbody\0\xff\x80 lone\rCR\n\r\n8bit \xe9\r";
	char ref[TARGET_REF_MAX], *path = tpath("out"), *got;
	struct fail f = { FAIL_NONE, "" };
	size_t len;
	void *t = open_cmd("cat > out");

	ck_assert_msg(deliver_parts(t, ref, parts, lens, 6, &f) == FAIL_NONE,
	    "%s", f.msg);
	got = slurp(path, &len);
	ck_assert_uint_eq(len, sizeof(want) - 1);
	ck_assert_mem_eq(got, want, len);
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);
	/* The batch's delivered messages are vouched for. */
	ck_assert_int_eq(ops->settle(t, ref, &f), 1);
	free(got);
	/* A message that never ends its header still goes through. */
	ck_assert_int_eq(deliver_str(t, "Subject: only a header", &f),
	    FAIL_NONE);
	assert_file("out", "Subject: only a header");
	ck_assert_int_eq(deliver_str(t, "", &f), FAIL_NONE);
	assert_file("out", "");
	ops->close(t);
	free(path);
	assert_no_children();
}
END_TEST

/* Reference conversion, byte by byte. */
static size_t
crlf_to_lf(const unsigned char *in, size_t n, unsigned char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
			continue;
		out[o++] = in[i];
	}
	return o;
}

/* Bigger than the held header and the pipe, in random pieces; a header
 * longer than the hold buffer. */
START_TEST(test_large_random_chunks)
{
	const size_t n = 700 * 1024;
	unsigned char *in = xmalloc(n), *want = xmalloc(n);
	char ref[TARGET_REF_MAX], *path = tpath("big"), *got;
	struct msg_meta m = { .uid = "big", .size = n, .flags = "", .mtime = 0 };
	struct fail f = { FAIL_NONE, "" };
	size_t i, off, len, wlen;
	void *t = open_cmd("cat > big");

	srand(7);
	/* 100 KiB of header lines first, then random bytes */
	for (i = 0; i < 100 * 1024; i++)
		in[i] = i % 50 == 48 ? '\r' : i % 50 == 49 ? '\n' : 'h';
	for (; i < n; i++) {
		int r = rand() % 16;

		in[i] = r < 3 ? '\r' : r < 6 ? '\n' : r == 6 ? 0 :
		    (unsigned char)rand();
	}
	wlen = crlf_to_lf(in, n, want);
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, &f), FAIL_NONE);
	for (off = 0; off < n; off += len) {
		len = (size_t)(rand() % 5 == 0 ? rand() % 3 : rand() % 150000);
		if (len > n - off)
			len = n - off;
		ck_assert_msg(ops->write(t, (char *)in + off, len, &f) ==
		    FAIL_NONE, "%s", f.msg);
	}
	ck_assert_msg(ops->end(t, &f) == FAIL_NONE, "%s", f.msg);
	got = slurp(path, &len);
	ck_assert_uint_eq(len, wlen);
	ck_assert(memcmp(got, want, len) == 0);
	free(got);
	free(in);
	free(want);
	free(path);
	ops->close(t);
	assert_no_children();
}
END_TEST

START_TEST(test_exit75_temp)
{
	struct fail f = { FAIL_NONE, "" };
	void *t = open_cmd("cat >/dev/null; exit 75");

	ck_assert_int_eq(deliver_str(t, "Subject: a\r\n\r\nb\r\n", &f), FAIL_TEMP);
	ck_assert_int_eq(f.kind, FAIL_TEMP);
	ck_assert_str_eq(f.msg, "mda: cat >/dev/null; exit 75 exited 75 "
	    "(temporary failure); kept, retried next poll");
	ops->close(t);
	assert_no_children();
}
END_TEST

START_TEST(test_exit1_and_signal_fail)
{
	struct fail f = { FAIL_NONE, "" };
	char ref[TARGET_REF_MAX];
	const char *msg = "Subject: a\r\n\r\nb\r\n";
	size_t len = strlen(msg);
	void *t = open_cmd("cat >/dev/null; exit 1");

	ck_assert_int_eq(deliver_parts(t, ref, &msg, &len, 1, &f), FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, "exited 1; kept"));
	/* A failed message is not vouched for. */
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);
	ops->close(t);

	t = open_cmd("cat >/dev/null; kill -9 $$");
	ck_assert_int_eq(deliver_str(t, msg, &f), FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, "killed by signal 9"));
	ops->close(t);

	t = open_cmd("/nonexistent/mda");
	ck_assert_int_eq(deliver_str(t, msg, &f), FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, "exited 127"));
	ops->close(t);
	assert_no_children();
}
END_TEST

/* A command that stops reading: the message fails, whatever it exits. */
START_TEST(test_early_exit)
{
	const size_t n = 1024 * 1024;
	char *msg = xmalloc(n + 1);
	struct fail f = { FAIL_NONE, "" };
	void *t;

	memcpy(msg, "Subject: big\r\n\r\n", 16);
	memset(msg + 16, 'x', n - 16);
	msg[n] = '\0';
	t = open_cmd("exit 0");
	ck_assert_int_eq(deliver_str(t, msg, &f), FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, "exited 0 before reading the "
	    "whole message"));
	ops->close(t);
	t = open_cmd("head -c 10 >/dev/null; exit 75");
	ck_assert_int_eq(deliver_str(t, msg, &f), FAIL_TEMP);
	ck_assert_ptr_nonnull(strstr(f.msg, "exited 75 (temporary failure) "
	    "before reading the whole message"));
	/* The target carries on with the next message. */
	ck_assert_int_eq(deliver_str(t, "Subject: s\r\n\r\n", &f), FAIL_TEMP);
	ops->close(t);
	free(msg);
	assert_no_children();
}
END_TEST

static pid_t
read_pid(const char *name)
{
	char *path = tpath(name), *s;
	pid_t pid;

	s = slurp(path, NULL);
	pid = (pid_t)atol(s);
	ck_assert_int_gt(pid, 1);
	free(s);
	free(path);
	return pid;
}

/* It reads everything, then hangs with a grandchild in its group: killed
 * after the time limit, reaped, and its whole group is gone. */
START_TEST(test_hang_killed)
{
	struct fail f = { FAIL_NONE, "" };
	double t0;
	pid_t pid, gpid;
	int status;
	void *t;

	/* Orphans come to us, so that we can see how they died. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	mda_test_set_timeout(1);
	t = open_cmd("echo $$ > pid; sleep 30 & echo $! > gpid; "
	    "cat >/dev/null; sleep 30; echo done > done");
	t0 = now_s();
	ck_assert_int_eq(deliver_str(t, "Subject: h\r\n\r\nhang\r\n", &f),
	    FAIL_TEMP);
	ck_assert_double_lt(now_s() - t0, 5.0);
	ck_assert_double_ge(now_s() - t0, 0.9);
	ck_assert_ptr_nonnull(strstr(f.msg, "did not exit within 1 s; "
	    "killed"));
	pid = read_pid("pid");
	gpid = read_pid("gpid");
	/* The command itself was reaped: no zombie. */
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	/* Its children, orphaned to us (unless it reaped one as it died),
	 * all died of SIGKILL with it. */
	while (waitpid(-1, &status, 0) != -1)
		ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_int_eq(errno, ECHILD);
	/* The background sleep is gone, and nothing is left in the group. */
	ck_assert_int_eq(kill(gpid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	ck_assert_int_eq(kill(-pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
	ops->close(t);
	assert_no_children();
}
END_TEST

/* It never reads its input: the write cannot go on, and is given up. */
START_TEST(test_no_input_killed)
{
	const size_t n = 1024 * 1024;
	char *msg = xmalloc(n + 1);
	struct fail f = { FAIL_NONE, "" };
	double t0;
	void *t;

	memcpy(msg, "Subject: big\r\n\r\n", 16);
	memset(msg + 16, 'x', n - 16);
	msg[n] = '\0';
	mda_test_set_timeout(1);
	t = open_cmd("sleep 30");
	t0 = now_s();
	ck_assert_int_eq(deliver_str(t, msg, &f), FAIL_TEMP);
	ck_assert_double_lt(now_s() - t0, 5.0);
	ck_assert_ptr_nonnull(strstr(f.msg, "accepted no input within 1 s"));
	ops->close(t);
	free(msg);
	assert_no_children();
}
END_TEST

/* Killed before it sees the end of its input: nothing half delivered. */
START_TEST(test_abort_kills)
{
	struct msg_meta m = { .uid = "u", .size = 0, .flags = "", .mtime = 0 };
	struct fail f = { FAIL_NONE, "" };
	char ref[TARGET_REF_MAX], *path = tpath("out");
	void *t = open_cmd("cat > part && mv part out");

	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, &f), FAIL_NONE);
	ck_assert_int_eq(ops->write(t, "Subject: a\r\n\r\nhalf a me", 23, &f),
	    FAIL_NONE);
	ops->abort(t);
	assert_no_children();
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);
	/* Usable again afterwards. */
	ck_assert_int_eq(deliver_str(t, "Subject: b\r\n\r\nwhole\r\n", &f),
	    FAIL_NONE);
	assert_file("out", "Subject: b\n\nwhole\n");
	ops->close(t);
	free(path);
}
END_TEST

/* Everything a header can carry to break out of quoting. */
#define HOSTILE "$(touch pwned1)`touch pwned2`'$(touch pwned3)'" \
	"\"$(touch pwned4)\";touch pwned5;\\'@evil"

static int
pwned(void)
{
	char path[128];

	for (int i = 1; i <= 5; i++) {
		snprintf(path, sizeof(path), "pwned%d", i);
		if (access(path, F_OK) == 0)
			return 1;
	}
	return 0;
}

START_TEST(test_sender_no_injection)
{
	static const char *const cmds[] = {
		"printf '[%%s]' %F > out; cat >/dev/null",
		"printf '[%%s]' \"%F\" > out; cat >/dev/null",
		"printf '[%%s]' '%F' > out; cat >/dev/null",
		"printf '[%%s]' x%F\"y\"'z' > out; cat >/dev/null",
	};
	static const char *const pre[] = { "", "", "", "x" };
	static const char *const post[] = { "", "", "", "yz" };
	char hostile[1024], msg[8192], want[1200];
	struct fail f = { FAIL_NONE, "" };
	void *t;

	snprintf(hostile, sizeof(hostile), "%s", HOSTILE);
	snprintf(msg, sizeof(msg), "Return-Path: <%s>\r\nFrom: %s\r\n"
	    "Subject: %s\r\n\r\nbody %s\r\n", hostile, hostile, hostile,
	    hostile);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		t = open_cmd(cmds[i]);
		ck_assert_msg(deliver_str(t, msg, &f) == FAIL_NONE, "%s", f.msg);
		ops->close(t);
		ck_assert_msg(!pwned(), "command %zu ran header text", i);
		/* one argument, the address exactly */
		snprintf(want, sizeof(want), "[%s%s%s]", pre[i], hostile, post[i]);
		assert_file("out", want);
	}
	/* In a command substitution inside "...": may be split into words,
	 * but never run. */
	t = open_cmd("x=\"$(printf %%s \"%F\")\"; cat >/dev/null");
	ck_assert_msg(deliver_str(t, msg, &f) == FAIL_NONE, "%s", f.msg);
	ops->close(t);
	ck_assert(!pwned());
	assert_no_children();
}
END_TEST

START_TEST(test_sender_forms)
{
	static const char *const msgs[] = {
		"Return-Path: <a@b.example>\r\n\r\n",
		"Received: x\r\nreturn-path:\r\n  <folded@b.example>\r\n\r\n",
		"Return-Path: <>\r\n\r\nbody\r\n",
		"Subject: none\r\n\r\nReturn-Path: <body@x>\r\n",
		"Return-Path: bare@b.example  \r\nReturn-Path: <second@x>\r\n\r\n",
		"Return-Path: <x\x01y@b>\r\n\r\n",
	};
	static const char *const want[] = {
		"a@b.example", "folded@b.example", "MAILER-DAEMON",
		"MAILER-DAEMON", "bare@b.example", "xy@b",
	};
	struct fail f = { FAIL_NONE, "" };
	void *t = open_cmd("printf %%s %F > out; cat >/dev/null");

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		ck_assert_msg(deliver_str(t, msgs[i], &f) == FAIL_NONE, "%s",
		    f.msg);
		assert_file("out", want[i]);
	}
	ops->close(t);
}
END_TEST

START_TEST(test_user_recipient)
{
	struct passwd *pw = getpwuid(getuid());
	struct fail f = { FAIL_NONE, "" };
	char want[512];
	void *t;

	ck_assert_ptr_nonnull(pw);
	t = open_cmd("printf '%%s|%%s|%%s' %u %T '100%%' > out; "
	    "cat >/dev/null");
	ck_assert_msg(deliver_str(t, "Subject: u\r\n\r\n", &f) == FAIL_NONE,
	    "%s", f.msg);
	snprintf(want, sizeof(want), "%s|%s|100%%", pw->pw_name, pw->pw_name);
	assert_file("out", want);
	ops->close(t);
}
END_TEST

/* Run a delivery with our stderr captured; returns what was logged. */
static char *
logged_by(const char *cmd, const char *msg, enum fail_kind want)
{
	struct fail f = { FAIL_NONE, "" };
	char *path = tpath("log"), *out;
	int fd, saved;
	void *t = open_cmd(cmd);

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	ck_assert_int_eq(deliver_str(t, msg, &f), want);
	ops->close(t);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	out = slurp(path, NULL);
	free(path);
	return out;
}

START_TEST(test_stderr_logged)
{
	char *log;

	log_init(0, LOG_LVL_INFO);
	log = logged_by("echo 'procmail: oops' >&2; cat >/dev/null; "
	    "printf 'no newline\\033' >&2; exit 75", "Subject: e\r\n\r\n",
	    FAIL_TEMP);
	ck_assert_msg(strstr(log, "mailpull: mda: procmail: oops\n") != NULL,
	    "%s", log);
	ck_assert_msg(strstr(log, "mailpull: mda: no newline?\n") != NULL,
	    "%s", log);
	free(log);

	/* Long lines are cut, many lines capped; the command is not slowed
	 * by a flood (it would block on a full pipe otherwise). */
	log = logged_by("i=0; while [ $i -lt 3000 ]; do echo "
	    "\"line $i $(printf %%0300d 0)\" >&2; i=$((i+1)); done; "
	    "cat >/dev/null", "Subject: e\r\n\r\n", FAIL_NONE);
	ck_assert_ptr_nonnull(strstr(log, "mda: line 0 000"));
	ck_assert_ptr_nonnull(strstr(log, "0...\n"));
	ck_assert_ptr_nonnull(strstr(log, "mda: line 19 "));
	ck_assert_ptr_null(strstr(log, "mda: line 20 "));
	ck_assert_ptr_nonnull(strstr(log, "more output from"));
	ck_assert_ptr_null(strstr(log, "line 2999"));
	free(log);
}
END_TEST

START_TEST(test_settle_and_refs)
{
	struct fail f = { FAIL_NONE, "" };
	char ref1[TARGET_REF_MAX], ref2[TARGET_REF_MAX], r[TARGET_REF_MAX];
	const char *msg = "Subject: s\r\n\r\n";
	size_t len = strlen(msg);
	void *t = open_cmd("cat >/dev/null");

	ck_assert_int_eq(deliver_parts(t, ref1, &msg, &len, 1, &f), FAIL_NONE);
	ck_assert_int_eq(deliver_parts(t, ref2, &msg, &len, 1, &f), FAIL_NONE);
	ck_assert_str_ne(ref1, ref2);
	ck_assert_ptr_nonnull(strstr(ref1, "mda."));
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);
	ck_assert_int_eq(ops->settle(t, ref1, &f), 1);
	ck_assert_int_eq(ops->settle(t, ref2, &f), 1);
	/* A ref from an interrupted run: cannot be known, so not delivered. */
	ck_assert_int_eq(ops->settle(t, "mda.1700000000.1.7", &f), 0);
	/* The next batch starts afresh. */
	ck_assert_int_eq(ops->plan(t, r, sizeof(r), &f), FAIL_NONE);
	ck_assert_int_eq(ops->settle(t, ref1, &f), 0);
	/* Too small a buffer is an error. */
	ck_assert_int_eq(ops->plan(t, r, 8, &f), FAIL_LOCAL);
	ops->close(t);
}
END_TEST

START_TEST(test_open_empty)
{
	struct fail f = { FAIL_NONE, "" };
	void *t = NULL;

	ck_assert_int_eq(ops->open(&t, "  ", &f), FAIL_CONFIG);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(strstr(f.msg, "mda:COMMAND"));
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("mda");
	TCase *tc = tcase_create("mda");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_exit0_exact_bytes);
	tcase_add_test(tc, test_large_random_chunks);
	tcase_add_test(tc, test_exit75_temp);
	tcase_add_test(tc, test_exit1_and_signal_fail);
	tcase_add_test(tc, test_early_exit);
	tcase_add_test(tc, test_hang_killed);
	tcase_add_test(tc, test_no_input_killed);
	tcase_add_test(tc, test_abort_kills);
	tcase_add_test(tc, test_sender_no_injection);
	tcase_add_test(tc, test_sender_forms);
	tcase_add_test(tc, test_user_recipient);
	tcase_add_test(tc, test_stderr_logged);
	tcase_add_test(tc, test_settle_and_refs);
	tcase_add_test(tc, test_open_empty);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
