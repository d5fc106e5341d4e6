/* test_mbox.c - the mbox target: mboxrd format, locking, truncate-back,
 * settle after a crash. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "target.h"
#include "unit.h"
#include "xmalloc.h"


extern int mbox_lock_timeout_ms;
extern int mbox_lock_stale_secs;

static char tdir[64];
static char mpath[128];
static char lpath[160];
static const struct target_ops *ops = &mbox_target;

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	chmod(p, 0700);
	return remove(p);
}

static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/mailpull-mbox-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	snprintf(mpath, sizeof(mpath), "%s/a/b/inbox.mbox", tdir);
	snprintf(lpath, sizeof(lpath), "%s.lock", mpath);
	setenv("TZ", "UTC0", 1);
	tzset();
	mbox_lock_timeout_ms = 10000;
	mbox_lock_stale_secs = 300;
}

static void
teardown(void)
{
	nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void *
open_ok(void)
{
	struct fail f = { 0 };
	void *t = NULL;

	ck_assert_msg(ops->open(&t, mpath, &f) == FAIL_NONE, "%s", f.msg);
	ck_assert_ptr_nonnull(t);
	return t;
}

static char *
slurp_path(const char *path, size_t *len)
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
	*len = (size_t)sb.st_size;
	return buf;
}

static char *
slurp(size_t *len)
{
	return slurp_path(mpath, len);
}

static off_t
fsize(void)
{
	struct stat sb;

	ck_assert_int_eq(stat(mpath, &sb), 0);
	return sb.st_size;
}

static int
exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* plan + begin + the parts + end; no sync. */
static void
put(void *t, char *ref, const struct msg_meta *m, const char *const *parts,
    const size_t *lens, size_t nparts)
{
	struct msg_meta dm = { .uid = "u", .mtime = 1000000000 };
	struct fail f = { 0 };

	ck_assert_msg(ops->plan(t, ref, TARGET_REF_MAX, &f) == FAIL_NONE, "%s",
	    f.msg);
	ck_assert_msg(ops->begin(t, ref, m ? m : &dm, &f) == FAIL_NONE, "%s",
	    f.msg);
	for (size_t i = 0; i < nparts; i++)
		ck_assert_msg(ops->write(t, parts[i], lens[i], &f) == FAIL_NONE,
		    "%s", f.msg);
	ck_assert_msg(ops->end(t, &f) == FAIL_NONE, "%s", f.msg);
}

static void
put1(void *t, char *ref, const char *s)
{
	size_t len = strlen(s);

	put(t, ref, NULL, &s, &len, 1);
}

static void
sync_ok(void *t)
{
	struct fail f = { 0 };

	ck_assert_msg(ops->sync(t, &f) == FAIL_NONE, "%s", f.msg);
}

#define SEP "From MAILER-DAEMON Sun Sep  9 01:46:40 2001\n"

/* ---- format ------------------------------------------------------------ */

START_TEST(test_created_and_separator)
{
	char ref[TARGET_REF_MAX], dir[160];
	struct stat sb;
	size_t len;
	char *got;
	void *t = open_ok();

	ck_assert_int_eq(stat(mpath, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0600);
	ck_assert_int_eq(sb.st_size, 0);
	snprintf(dir, sizeof(dir), "%s/a/b", tdir);
	ck_assert_int_eq(stat(dir, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0700);

	put1(t, ref, "Subject: a\r\n\r\nbody\r\n");
	ck_assert_str_eq(ref, "0.0");
	put1(t, ref, "Return-Path: <bob@example.org>\r\nSubject: b\r\n\r\nx\r\n");
	ck_assert_str_eq(ref, "0.1");
	put1(t, ref, "Received: x\r\nReturn-Path:\r\n <carol@example.net>\r\n\r\n"
	    "no final newline");
	put1(t, ref, "Return-Path: <>\r\n\r\ny\r\n");
	put1(t, ref, "Return-Path: <bad address@x>\r\n\r\n");
	put1(t, ref, "");
	ck_assert(exists(lpath));
	sync_ok(t);
	ck_assert(!exists(lpath));
	got = slurp(&len);
	ck_assert_str_eq(got,
	    SEP "Subject: a\n\nbody\n\n"
	    "From bob@example.org Sun Sep  9 01:46:40 2001\n"
	    "Return-Path: <bob@example.org>\nSubject: b\n\nx\n\n"
	    "From carol@example.net Sun Sep  9 01:46:40 2001\n"
	    "Received: x\nReturn-Path:\n <carol@example.net>\n\nno final newline\n\n"
	    SEP "Return-Path: <>\n\ny\n\n"
	    SEP "Return-Path: <bad address@x>\n\n\n"
	    SEP "\n");
	ck_assert_uint_eq(len, strlen(got));
	free(got);
	/* The next batch starts at the new size. */
	put1(t, ref, "z\r\n");
	ck_assert_uint_eq(strtoull(ref, NULL, 10), len);
	ck_assert_str_eq(strchr(ref, '.'), ".0");
	sync_ok(t);
	ops->close(t);
}
END_TEST

START_TEST(test_date_now)
{
	struct msg_meta m = { .uid = "u", .mtime = 0 };
	const char *s = "a\r\n";
	size_t l = 3, len;
	char ref[TARGET_REF_MAX], want[128], *got;
	time_t before = time(NULL), after;
	void *t = open_ok();

	put(t, ref, &m, &s, &l, 1);
	sync_ok(t);
	after = time(NULL);
	got = slurp(&len);
	for (time_t w = before; w <= after; w++) {
		struct tm tm;

		gmtime_r(&w, &tm);
		strftime(want, sizeof(want), "From MAILER-DAEMON %a %b %e %H:%M:%S %Y\na\n\n",
		    &tm);
		if (strcmp(got, want) == 0)
			break;
		ck_assert_msg(w < after, "got %s", got);
	}
	free(got);
	ops->close(t);
}
END_TEST

START_TEST(test_quoting)
{
	static const char *const parts[] = {
		"Subject: q\r\n\r\n",
		"From here\r\n",
		">From there\r\n>>From far\r\n",
		"From\r\nFromage\r\n From x\r\n>Fro\r\n>>\r\n",
		"Fr", "om split\r\n>", ">", "F", "rom", " split2\r\n",
		">>>F", "ro", "x\r\n",
		"From ",
	};
	static const char want[] = SEP "Subject: q\n\n"
	    ">From here\n"
	    ">>From there\n>>>From far\n"
	    "From\nFromage\n From x\n>Fro\n>>\n"
	    ">From split\n>>>From split2\n"
	    ">>>Frox\n"
	    ">From \n\n";
	size_t lens[sizeof(parts) / sizeof(parts[0])], len;
	char ref[TARGET_REF_MAX], *got;
	void *t = open_ok();

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		lens[i] = strlen(parts[i]);
	put(t, ref, NULL, (const char *const *)parts, lens,
	    sizeof(parts) / sizeof(parts[0]));
	/* A header line "From " is quoted too; the held prefix at the end of
	 * the message comes out. */
	put1(t, ref, "From x\r\n\r\n>>");
	sync_ok(t);
	got = slurp(&len);
	ck_assert_uint_eq(len, strlen(want) + strlen(SEP ">From x\n\n>>\n\n"));
	ck_assert_str_eq(got + strlen(want), SEP ">From x\n\n>>\n\n");
	got[strlen(want)] = '\0';
	ck_assert_str_eq(got, want);
	free(got);
	ops->close(t);
}
END_TEST

START_TEST(test_crlf_split_exact_bytes)
{
	static const char p0[] = "Subject: x\r";
	static const char p1[] = "\n\r";
	static const char p2[] = "\nbody\0\xff\x80 lone\rCR\r";
	static const char p3[] = "\n";
	static const char p4[] = "\r\r\n8bit \xe9\r";
	const char *parts[] = { p0, p1, p2, "", p3, p4 };
	size_t lens[] = { sizeof(p0) - 1, sizeof(p1) - 1, sizeof(p2) - 1, 0,
	    sizeof(p3) - 1, sizeof(p4) - 1 };
	static const char want[] = SEP
	    "Subject: x\n\nbody\0\xff\x80 lone\rCR\n\r\n8bit \xe9\r\n\n";
	char ref[TARGET_REF_MAX], *got;
	size_t len;
	void *t = open_ok();

	put(t, ref, NULL, parts, lens, 6);
	sync_ok(t);
	got = slurp(&len);
	ck_assert_uint_eq(len, sizeof(want) - 1);
	ck_assert(memcmp(got, want, len) == 0);
	free(got);
	ops->close(t);
}
END_TEST

/* Reference: CRLF -> LF, then ^>*From  gets one more '>'. */
static size_t
reference(const unsigned char *in, size_t n, unsigned char *out)
{
	size_t i, o = 0, j;
	int bol = 1;

	for (i = 0; i < n; i++) {
		if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
			continue;
		if (bol) {
			for (j = i; j < n && in[j] == '>'; j++)
				;
			if (n - j >= 5 && memcmp(in + j, "From ", 5) == 0)
				out[o++] = '>';
		}
		out[o++] = in[i];
		bol = in[i] == '\n';
	}
	return o;
}

/* mboxrd reader: the messages of buf, unquoted, each into msgs[]. */
static size_t
unquote_all(const char *buf, size_t len, char **msgs, size_t *mlens,
    size_t max)
{
	size_t n = 0, i = 0, o = 0;

	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t le = nl ? (size_t)(nl - buf) + 1 : len, j;

		if (le - i >= 5 && memcmp(buf + i, "From ", 5) == 0 &&
		    (i == 0 || (i >= 2 && buf[i - 1] == '\n' && buf[i - 2] == '\n'))) {
			if (n > 0)
				mlens[n - 1] = o - 1;   /* the blank line */
			ck_assert_uint_lt(n, max);
			msgs[n++] = xmalloc(len);
			o = 0;
			i = le;
			continue;
		}
		ck_assert_uint_gt(n, 0);
		for (j = i; j < le && buf[j] == '>'; j++)
			;
		if (j > i && le - j >= 5 && memcmp(buf + j, "From ", 5) == 0)
			i++;
		memcpy(msgs[n - 1] + o, buf + i, le - i);
		o += le - i;
		i = le;
	}
	if (n > 0)
		mlens[n - 1] = o - 1;
	return n;
}

START_TEST(test_large_random_chunks)
{
	const size_t n = 400 * 1024;
	unsigned char *in = xmalloc(n), *want = xmalloc(2 * n);
	char ref[TARGET_REF_MAX], *got, *msgs[2];
	struct msg_meta m = { .uid = "big", .size = n, .mtime = 1000000000 };
	struct fail f = { 0 };
	size_t i, off, len, wlen, mlens[2], sl = strlen(SEP);
	void *t = open_ok();

	srand(7);
	for (i = 0; i < n; i++) {
		int r = rand() % 24;
		in[i] = r < 3 ? '\r' : r < 6 ? '\n' : r < 8 ? '>' : r == 8 ? 0 :
		    (unsigned char)rand();
		if (r == 9 && i + 6 < n) {
			memcpy(in + i, "From ", 5);
			i += 4;
		}
	}
	memcpy(in, "X: y\r\n\r\n", 8);
	memset(in + 100000, 'x', 150000);       /* past the buffer */
	in[n - 1] = '\n';
	wlen = reference(in, n, want);
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, &f), FAIL_NONE);
	for (off = 0; off < n; off += len) {
		len = (size_t)(rand() % 4 == 0 ? rand() % 7 : rand() % 100000);
		if (len > n - off)
			len = n - off;
		ck_assert_int_eq(ops->write(t, (char *)in + off, len, &f),
		    FAIL_NONE);
	}
	ck_assert_int_eq(ops->end(t, &f), FAIL_NONE);
	put1(t, ref, "Subject: 2\r\n\r\ntwo\r\n");
	sync_ok(t);
	got = slurp(&len);
	ck_assert_uint_eq(len, sl + wlen + 1 + sl + strlen("Subject: 2\n\ntwo\n\n"));
	ck_assert(memcmp(got, SEP, sl) == 0);
	ck_assert(memcmp(got + sl, want, wlen) == 0);
	ck_assert(memcmp(got + sl + wlen, "\n" SEP, sl + 1) == 0);
	/* Read back and unquoted: the original, with LF. */
	ck_assert_uint_eq(unquote_all(got, len, msgs, mlens, 2), 2);
	wlen = 0;
	for (i = 0; i < n; i++)
		if (!(in[i] == '\r' && i + 1 < n && in[i + 1] == '\n'))
			want[wlen++] = in[i];
	ck_assert_uint_eq(mlens[0], wlen);
	ck_assert(memcmp(msgs[0], want, wlen) == 0);
	ck_assert_uint_eq(mlens[1], strlen("Subject: 2\n\ntwo\n"));
	free(msgs[0]);
	free(msgs[1]);
	free(got);
	free(in);
	free(want);
	ops->close(t);
}
END_TEST

/* Python's mailbox module reads back the same bodies (after mboxrd
 * unquoting, which Python does not do itself). */
START_TEST(test_python_reads_it)
{
	static const char *const msgs[] = {
		"Return-Path: <a@b.c>\r\nSubject: one\r\n\r\nFrom me\r\n>From you\r\n",
		"Subject: two\r\n\r\nno newline at the end",
		"Subject: three\r\n\r\n\r\n\r\nblank lines\r\n\r\n",
		"Subject: four\r\n\r\n8bit \xe9\xff and a lone \r CR\r\n",
	};
	char ref[TARGET_REF_MAX], script[4096], exp[256];
	int rc;
	void *t;

	if (system("python3 -c 'import mailbox' >/dev/null 2>&1") != 0)
		return;         /* no python3: the own reader above covers it */
	t = open_ok();
	for (size_t i = 0; i < 4; i++)
		put1(t, ref, msgs[i]);
	sync_ok(t);
	ops->close(t);
	snprintf(exp, sizeof(exp), "%s/expect.py", tdir);
	FILE *fp = fopen(exp, "w");
	ck_assert_ptr_nonnull(fp);
	fputs("import mailbox, re, sys\n"
	    "want = [b'Return-Path: <a@b.c>\\nSubject: one\\n\\nFrom me\\n>From you\\n',\n"
	    "  b'Subject: two\\n\\nno newline at the end\\n',\n"
	    "  b'Subject: three\\n\\n\\n\\nblank lines\\n\\n',\n"
	    "  b'Subject: four\\n\\n8bit \\xe9\\xff and a lone \\r CR\\n']\n"
	    "mb = mailbox.mbox(sys.argv[1], create=False)\n"
	    "got = [re.sub(rb'(?m)^>(>*From )', rb'\\1', mb.get_bytes(k)) for k in mb.keys()]\n"
	    "froms = [mb.get_message(k).get_from() for k in mb.keys()]\n"
	    "assert got == want, (got, want)\n"
	    "assert froms[0].startswith('a@b.c '), froms\n"
	    "assert froms[1].startswith('MAILER-DAEMON '), froms\n", fp);
	fclose(fp);
	snprintf(script, sizeof(script), "python3 %s %s", exp, mpath);
	rc = system(script);
	ck_assert_msg(rc == 0, "python3 mailbox check failed (%d)", rc);
}
END_TEST

/* A file that does not end with '\n' gets one before our separator. */
START_TEST(test_existing_without_newline)
{
	char ref[TARGET_REF_MAX], *got;
	size_t len;
	void *t = open_ok();
	int fd = open(mpath, O_WRONLY | O_APPEND);

	ck_assert_int_eq(write(fd, "From x\nold", 10), 10);
	close(fd);
	put1(t, ref, "new\r\n");
	ck_assert_str_eq(ref, "11.0");
	sync_ok(t);
	got = slurp(&len);
	ck_assert_str_eq(got, "From x\nold\n" SEP "new\n\n");
	free(got);
	ops->close(t);
}
END_TEST

/* ---- abort, failures, close ------------------------------------------- */

START_TEST(test_abort_and_close)
{
	struct msg_meta m = { .uid = "u", .mtime = 1000000000 };
	char ref[TARGET_REF_MAX], *got;
	struct fail f = { 0 };
	size_t len;
	void *t = open_ok();

	put1(t, ref, "one\r\n");
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, &f), FAIL_NONE);
	ck_assert_int_eq(ops->write(t, "X: y\r\n\r\nhalf a mess", 19, &f), FAIL_NONE);
	ops->abort(t);
	put1(t, ref, "three\r\n");
	sync_ok(t);
	got = slurp(&len);
	ck_assert_str_eq(got, SEP "one\n\n" SEP "three\n\n");
	free(got);
	/* Ended but never synced: close() takes it back out. */
	put1(t, ref, "four\r\n");
	ck_assert_uint_gt(fsize(), len);
	ops->close(t);
	ck_assert_int_eq(fsize(), (off_t)len);
	ck_assert(!exists(lpath));
}
END_TEST

/* A write that fails mid-message (EFBIG under RLIMIT_FSIZE): the message is
 * cut off again, the ones before it still count. */
START_TEST(test_write_failure_truncates)
{
	struct msg_meta m = { .uid = "u", .mtime = 1000000000 };
	char ref[TARGET_REF_MAX], *big, *got;
	struct rlimit old, rl;
	struct fail f = { 0 };
	size_t len, bl = 300000;
	off_t before;
	enum fail_kind k = FAIL_NONE;
	void *t = open_ok();

	put1(t, ref, "first\r\n");
	sync_ok(t);
	before = fsize();
	put1(t, ref, "second\r\n");
	big = xmalloc(bl);
	memset(big, 'x', bl);
	memcpy(big, "X: y\r\n\r\n", 8);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	rl = old;
	rl.rlim_cur = 100000;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, &f), FAIL_NONE);
	for (size_t off = 0; off < bl && k == FAIL_NONE; off += 1000)
		k = ops->write(t, big + off, 1000, &f);
	if (k == FAIL_NONE)
		k = ops->end(t, &f);
	else
		ops->abort(t);
	ck_assert_int_eq(k, FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, mpath));
	ck_assert_ptr_nonnull(strstr(f.msg, "too large"));
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	put1(t, ref, "fourth\r\n");
	sync_ok(t);
	got = slurp(&len);
	ck_assert_str_eq(got, SEP "first\n\n" SEP "second\n\n" SEP "fourth\n\n");
	ck_assert_int_gt((off_t)len, before);
	free(got);
	free(big);
	ops->close(t);
}
END_TEST

/* ---- locking ---------------------------------------------------------- */

/* A child takes the lock (kind 'f' fcntl, 'd' dotlock with its pid) for
 * hold_ms, then exits; returns once the lock is held. */
static pid_t
hold_lock(int kind, int hold_ms)
{
	int p[2];
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		int fd;

		close(p[0]);
		if (kind == 'f') {
			fd = open(mpath, O_RDWR);
			if (fd == -1 || fcntl(fd, F_SETLK, &fl) == -1)
				_exit(1);
		} else {
			char buf[32];
			int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

			fd = open(lpath, O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd == -1 || write(fd, buf, (size_t)n) != n)
				_exit(1);
			close(fd);
		}
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		usleep((useconds_t)hold_ms * 1000);
		if (kind == 'd')
			unlink(lpath);
		_exit(0);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static double
elapsed(const struct timeval *t0)
{
	struct timeval t1;

	gettimeofday(&t1, NULL);
	return (double)(t1.tv_sec - t0->tv_sec) +
	    (double)(t1.tv_usec - t0->tv_usec) / 1e6;
}

static void
lock_case(int kind)
{
	char ref[TARGET_REF_MAX], want[512];
	struct fail f = { 0 };
	struct timeval t0;
	int st;
	pid_t pid;
	void *t = open_ok();

	/* Held for 2 s: waits, then succeeds. */
	pid = hold_lock(kind, 2000);
	gettimeofday(&t0, NULL);
	put1(t, ref, "a\r\n");
	ck_assert_msg(elapsed(&t0) > 1.5, "did not wait: %.2f s", elapsed(&t0));
	sync_ok(t);
	waitpid(pid, &st, 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* Held longer than our timeout: a clear error. */
	mbox_lock_timeout_ms = 500;
	pid = hold_lock(kind, 2000);
	gettimeofday(&t0, NULL);
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_TEMP);
	ck_assert(elapsed(&t0) >= 0.45 && elapsed(&t0) < 1.9);
	if (kind == 'd')
		snprintf(want, sizeof(want), "mbox %s: locked by another program "
		    "(%s); gave up after 1 s", mpath, lpath);
	else
		snprintf(want, sizeof(want), "mbox %s: locked by another program "
		    "(fcntl lock on %s); gave up after 1 s", mpath, mpath);
	ck_assert_str_eq(f.msg, want);
	waitpid(pid, &st, 0);
	/* Free again. */
	put1(t, ref, "b\r\n");
	sync_ok(t);
	ops->close(t);
	ck_assert(!exists(lpath));
}

START_TEST(test_lock_fcntl)
{
	lock_case('f');
}
END_TEST

START_TEST(test_lock_dotlock)
{
	lock_case('d');
}
END_TEST

static void
write_lock(const char *content, time_t age)
{
	int fd = open(lpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	if (age > 0) {
		struct timespec ts[2] = { { time(NULL) - age, 0 },
		    { time(NULL) - age, 0 } };
		ck_assert_int_eq(utimensat(AT_FDCWD, lpath, ts, 0), 0);
	}
}

START_TEST(test_lock_stale)
{
	char ref[TARGET_REF_MAX], buf[32];
	struct fail f = { 0 };
	pid_t dead;
	int st;
	void *t = open_ok();

	/* A dead pid: removed at once. */
	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, &st, 0);
	snprintf(buf, sizeof(buf), "%ld\n", (long)dead);
	write_lock(buf, 0);
	mbox_lock_timeout_ms = 300;
	put1(t, ref, "a\r\n");
	sync_ok(t);
	/* No pid, young: held. */
	write_lock("", 0);
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_TEMP);
	/* No pid, older than the stale age: removed. */
	write_lock("", 400);
	put1(t, ref, "b\r\n");
	sync_ok(t);
	/* A live pid, even old: held (up to an hour). */
	snprintf(buf, sizeof(buf), "%ld\n", (long)getppid());
	write_lock(buf, 400);
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_TEMP);
	write_lock(buf, 4000);
	put1(t, ref, "c\r\n");
	sync_ok(t);
	ck_assert(!exists(lpath));
	ops->close(t);
}
END_TEST

/* ---- settle ----------------------------------------------------------- */

/* A child delivers these without sync (or with, if synced) and dies as a
 * kill -9 would: nothing cleaned up. The refs come back through a pipe. */
static void
crashed_run(int synced, char refs[][TARGET_REF_MAX], size_t n)
{
	int p[2], st;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char ref[TARGET_REF_MAX];
		void *t = open_ok();

		close(p[0]);
		for (size_t i = 0; i < n; i++) {
			put1(t, ref, "Subject: lost\r\n\r\nFrom the crash\r\n");
			if (write(p[1], ref, sizeof(ref)) != (ssize_t)sizeof(ref))
				_exit(1);
		}
		if (synced)
			sync_ok(t);
		_exit(0);
	}
	close(p[1]);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(read(p[0], refs[i], TARGET_REF_MAX),
		    TARGET_REF_MAX);
	close(p[0]);
	waitpid(pid, &st, 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int
count_saved(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ls %s/a/b | grep -c unrecorded >/dev/null",
	    tdir);
	return system(cmd) == 0;
}

START_TEST(test_settle_after_crash)
{
	char refs[3][TARGET_REF_MAX], ref[TARGET_REF_MAX];
	struct fail f = { 0 };
	off_t before;
	void *t = open_ok();

	put1(t, ref, "kept\r\n");
	sync_ok(t);
	ops->close(t);
	before = fsize();

	/* Crash before sync: its dotlock (dead pid, "mailpull OFFSET") is
	 * still there, so the cut is safe and nothing is saved aside. */
	crashed_run(0, refs, 3);
	ck_assert_uint_gt(fsize(), before);
	ck_assert(exists(lpath));
	t = open_ok();
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ops->settle(t, refs[i], &f), 0);
	ck_assert_int_eq(fsize(), before);
	ck_assert(!exists(lpath));
	ck_assert(!count_saved());
	/* The target carries on normally afterwards. */
	put1(t, ref, "next\r\n");
	sync_ok(t);
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);  /* in-process: proven */
	ck_assert_int_eq(fsize(), before);
	ck_assert(!count_saved());
	ops->close(t);

	/* Crash after sync, before the agent recorded: no lock is left to
	 * prove that nobody appended since, so the cut bytes are kept aside. */
	crashed_run(1, refs, 2);
	ck_assert(!exists(lpath));
	t = open_ok();
	ck_assert_int_eq(ops->settle(t, refs[0], &f), 0);
	ck_assert_int_eq(ops->settle(t, refs[1], &f), 0);
	ck_assert_int_eq(fsize(), before);
	ck_assert(count_saved());
	ops->close(t);
}
END_TEST

START_TEST(test_settle_rewritten)
{
	char ref[TARGET_REF_MAX], *a, *b;
	struct fail f = { 0 };
	size_t la, lb;
	void *t = open_ok();
	int fd;

	put1(t, ref, "one\r\n");
	put1(t, ref, "two\r\n");
	sync_ok(t);
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_str_eq(strchr(ref, '.'), ".0");
	ops->close(t);                                  /* planned only */
	t = open_ok();
	/* Size equal to OFFSET: nothing there. */
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);
	/* Someone rewrote it shorter: 0, nothing cut. */
	a = slurp(&la);
	ck_assert_int_eq(truncate(mpath, (off_t)la - 5), 0);
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);
	ck_assert_int_eq(fsize(), (off_t)la - 5);
	/* ... or longer, with something else than "From " at OFFSET. */
	fd = open(mpath, O_WRONLY | O_APPEND);
	ck_assert_int_eq(write(fd, "oops\nmore text\n\nFrom x\n", 23), 23);
	close(fd);
	b = slurp(&lb);
	ck_assert_int_eq(ops->settle(t, "1.3", &f), 0);
	ck_assert_int_eq(ops->settle(t, "5.0", &f), 0);
	free(a);
	a = slurp(&la);
	ck_assert_uint_eq(la, lb);
	ck_assert(memcmp(a, b, la) == 0);
	/* Bad refs. */
	ck_assert_int_eq(ops->settle(t, "x.1", &f), -1);
	ck_assert_int_eq(f.kind, FAIL_LOCAL);
	ck_assert_int_eq(ops->settle(t, "12", &f), -1);
	ck_assert_int_eq(ops->settle(t, "12.3x", &f), -1);
	free(a);
	free(b);
	ops->close(t);
}
END_TEST

/* Another target's sync failed: the agent settles while our batch is still
 * open; none of it counts. */
START_TEST(test_settle_open_batch)
{
	char ref[TARGET_REF_MAX], ref2[TARGET_REF_MAX];
	struct fail f = { 0 };
	off_t before;
	void *t = open_ok();

	put1(t, ref, "one\r\n");
	sync_ok(t);
	before = fsize();
	put1(t, ref, "two\r\n");
	put1(t, ref2, "three\r\n");
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);
	ck_assert_int_eq(ops->settle(t, ref2, &f), 0);
	ck_assert_int_eq(fsize(), before);
	ck_assert(!exists(lpath));
	sync_ok(t);
	ops->close(t);
	ck_assert_int_eq(fsize(), before);
}
END_TEST

START_TEST(test_open_errors)
{
	struct fail f = { 0 };
	void *t = NULL;

	snprintf(mpath, sizeof(mpath), "%s", tdir);
	ck_assert_int_eq(ops->open(&t, mpath, &f), FAIL_LOCAL);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(strstr(f.msg, "not a regular file"));
	snprintf(mpath, sizeof(mpath), "%s/dir/", tdir);
	ck_assert_int_eq(ops->open(&t, mpath, &f), FAIL_LOCAL);
	ck_assert_ptr_null(t);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("mbox");
	TCase *tc = tcase_create("mbox");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_created_and_separator);
	tcase_add_test(tc, test_date_now);
	tcase_add_test(tc, test_quoting);
	tcase_add_test(tc, test_crlf_split_exact_bytes);
	tcase_add_test(tc, test_large_random_chunks);
	tcase_add_test(tc, test_python_reads_it);
	tcase_add_test(tc, test_existing_without_newline);
	tcase_add_test(tc, test_abort_and_close);
	tcase_add_test(tc, test_write_failure_truncates);
	tcase_add_test(tc, test_lock_fcntl);
	tcase_add_test(tc, test_lock_dotlock);
	tcase_add_test(tc, test_lock_stale);
	tcase_add_test(tc, test_settle_after_crash);
	tcase_add_test(tc, test_settle_rewritten);
	tcase_add_test(tc, test_settle_open_batch);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
