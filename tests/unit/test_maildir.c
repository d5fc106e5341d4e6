/* test_maildir.c - the Maildir target and target_spec_parse(). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "target.h"
#include "unit.h"
#include "xmalloc.h"

static char tdir[64];
static char mdir[128];
static const struct target_ops *ops = &maildir_target;

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	chmod(p, 0700);
	return remove(p);
}

static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/mailpull-md-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	snprintf(mdir, sizeof(mdir), "%s/a/b/Maildir", tdir);
}

static void
teardown(void)
{
	chmod(tdir, 0700);
	nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void *
open_ok(void)
{
	struct fail f = { 0 };
	void *t = NULL;

	ck_assert_msg(ops->open(&t, mdir, &f) == FAIL_NONE, "%s", f.msg);
	ck_assert_ptr_nonnull(t);
	return t;
}

/* Number of entries (not . or ..) in mdir/sub; the last name in *name. */
static int
count_dir(const char *sub, char *name, size_t namelen)
{
	char path[256];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", mdir, sub);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (name != NULL)
			snprintf(name, namelen, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* Read mdir/sub/name whole; *len gets its size. */
static char *
slurp(const char *sub, const char *name, size_t *len)
{
	char path[512];
	struct stat sb;
	char *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", mdir, sub, name);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	buf = xmalloc((size_t)sb.st_size + 1);
	ck_assert_int_eq(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

static void
deliver(void *t, char *ref, const char *const *parts, const size_t *lens,
    size_t nparts)
{
	struct msg_meta m = { .uid = "uid1" };
	struct fail f = { 0 };
	size_t i;

	ck_assert_int_eq(ops->plan(t, ref, TARGET_REF_MAX, &f), FAIL_NONE);
	ck_assert_msg(ops->begin(t, ref, &m, &f) == FAIL_NONE, "%s", f.msg);
	for (i = 0; i < nparts; i++)
		ck_assert_msg(ops->write(t, parts[i], lens[i], &f) == FAIL_NONE,
		    "%s", f.msg);
	ck_assert_msg(ops->end(t, &f) == FAIL_NONE, "%s", f.msg);
}

START_TEST(test_created)
{
	static const char *const subs[] = { "", "/tmp", "/new", "/cur" };
	char path[256];
	struct stat sb;
	void *t = open_ok();

	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s%s", mdir, subs[i]);
		ck_assert_int_eq(stat(path, &sb), 0);
		ck_assert(S_ISDIR(sb.st_mode));
		ck_assert_int_eq(sb.st_mode & 07777, 0700);
	}
	ops->close(t);
	/* Opening an existing Maildir again is fine. */
	t = open_ok();
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
	static const char want[] =
	    "Subject: x\n\nbody\0\xff\x80 lone\rCR\n\r\n8bit \xe9\r";
	char ref[TARGET_REF_MAX], name[512], expect[800];
	struct fail f = { 0 };
	struct stat sb;
	size_t len;
	char *got;
	void *t = open_ok();

	deliver(t, ref, parts, lens, 6);
	ck_assert_int_eq(count_dir("new", NULL, 0), 0);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 1);
	ck_assert_msg(ops->sync(t, &f) == FAIL_NONE, "%s", f.msg);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 0);
	ck_assert_int_eq(count_dir("new", name, sizeof(name)), 1);
	got = slurp("new", name, &len);
	ck_assert_uint_eq(len, sizeof(want) - 1);
	ck_assert_mem_eq(got, want, len);
	snprintf(expect, sizeof(expect), "%s,S=%zu", ref, len);
	ck_assert_str_eq(name, expect);
	snprintf(expect, sizeof(expect), "%s/new/%s", mdir, name);
	ck_assert_int_eq(stat(expect, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0600);
	free(got);
	ops->close(t);
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

START_TEST(test_large_random_chunks)
{
	const size_t n = 600 * 1024;
	unsigned char *in = xmalloc(n), *want = xmalloc(n);
	char ref[TARGET_REF_MAX], name[512];
	struct msg_meta m = { .uid = "big", .size = n };
	struct fail f = { 0 };
	size_t i, off, len, wlen;
	char *got;
	void *t = open_ok();

	srand(42);
	for (i = 0; i < n; i++) {
		int r = rand() % 16;
		in[i] = r < 3 ? '\r' : r < 6 ? '\n' : r == 6 ? 0 : (unsigned char)rand();
	}
	/* A long run without CR, to pass the buffer on the direct path. */
	memset(in + 100000, 'x', 200000);
	wlen = crlf_to_lf(in, n, want);
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, &f), FAIL_NONE);
	for (off = 0; off < n; off += len) {
		len = (size_t)(rand() % 5 == 0 ? rand() % 3 : rand() % 150000);
		if (len > n - off)
			len = n - off;
		ck_assert_int_eq(ops->write(t, (char *)in + off, len, &f), FAIL_NONE);
	}
	ck_assert_int_eq(ops->end(t, &f), FAIL_NONE);
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);
	ck_assert_int_eq(count_dir("new", name, sizeof(name)), 1);
	got = slurp("new", name, &len);
	ck_assert_uint_eq(len, wlen);
	ck_assert(memcmp(got, want, len) == 0);
	ck_assert_ptr_nonnull(strstr(name, ",S="));
	ck_assert_uint_eq(strtoull(strstr(name, ",S=") + 3, NULL, 10), wlen);
	free(got);
	free(in);
	free(want);
	ops->close(t);
}
END_TEST

START_TEST(test_batch_one_sync)
{
	const char *parts[] = { "a\r\nb\r\n" };
	size_t lens[] = { 6 };
	char ref[3][TARGET_REF_MAX], name[512];
	struct fail f = { 0 };
	void *t = open_ok();

	for (int i = 0; i < 3; i++)
		deliver(t, ref[i], parts, lens, 1);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 3);
	ck_assert_int_eq(count_dir("new", NULL, 0), 0);
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 0);
	ck_assert_int_eq(count_dir("new", name, sizeof(name)), 3);
	ck_assert_ptr_nonnull(strstr(name, ",S=4"));
	/* A second sync with nothing pending changes nothing. */
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);
	ck_assert_int_eq(count_dir("new", NULL, 0), 3);
	ops->close(t);
}
END_TEST

START_TEST(test_abort_leaves_nothing)
{
	struct msg_meta m = { .uid = "u", .size = 10 };
	char ref[TARGET_REF_MAX];
	struct fail f = { 0 };
	void *t = open_ok();

	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, &f), FAIL_NONE);
	ck_assert_int_eq(ops->write(t, "half a mess", 11, &f), FAIL_NONE);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 1);
	ops->abort(t);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 0);
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);
	ck_assert_int_eq(count_dir("new", NULL, 0), 0);
	/* The target is usable again after an abort. */
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref, &m, &f), FAIL_NONE);
	ck_assert_int_eq(ops->end(t, &f), FAIL_NONE);
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);
	ck_assert_int_eq(count_dir("new", NULL, 0), 1);
	ops->close(t);
}
END_TEST

START_TEST(test_close_unlinks_unsynced)
{
	const char *parts[] = { "x\r\n" };
	size_t lens[] = { 3 };
	char ref[TARGET_REF_MAX];
	void *t = open_ok();

	deliver(t, ref, parts, lens, 1);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 1);
	ops->close(t);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 0);
	ck_assert_int_eq(count_dir("new", NULL, 0), 0);
}
END_TEST

START_TEST(test_sync_failure_counts_nothing)
{
	const char *parts[] = { "x\r\n" };
	size_t lens[] = { 3 };
	char ref[TARGET_REF_MAX], path[256];
	struct fail f = { 0 };
	void *t = open_ok();

	deliver(t, ref, parts, lens, 1);
	deliver(t, ref, parts, lens, 1);
	/* new/ removed under the open target: the renames must fail. */
	snprintf(path, sizeof(path), "%s/new", mdir);
	ck_assert_int_eq(rmdir(path), 0);
	ck_assert_int_eq(ops->sync(t, &f), FAIL_LOCAL);
	ck_assert_int_eq(f.kind, FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, mdir));
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 0);
	ops->close(t);
}
END_TEST

static void
touch(const char *sub, const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", mdir, sub, name);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

/* Flags from the server send the message to cur/ with its info part, and
 * the server's date becomes the file's mtime; settle still finds it. */
START_TEST(test_flags_and_mtime)
{
	struct msg_meta seen = { .uid = "a", .size = 5, .flags = "FS",
	    .mtime = 1000000000 };
	struct msg_meta plain = { .uid = "b", .size = 5, .flags = "" };
	char ref1[TARGET_REF_MAX], ref2[TARGET_REF_MAX], name[512], path[1024];
	struct fail f = { 0 };
	struct stat sb;
	void *t = open_ok();

	ck_assert_int_eq(ops->plan(t, ref1, sizeof(ref1), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref1, &seen, &f), FAIL_NONE);
	ck_assert_int_eq(ops->write(t, "x\r\ny\r\n", 6, &f), FAIL_NONE);
	ck_assert_int_eq(ops->end(t, &f), FAIL_NONE);
	ck_assert_int_eq(ops->plan(t, ref2, sizeof(ref2), &f), FAIL_NONE);
	ck_assert_int_eq(ops->begin(t, ref2, &plain, &f), FAIL_NONE);
	ck_assert_int_eq(ops->write(t, "z\r\n", 3, &f), FAIL_NONE);
	ck_assert_int_eq(ops->end(t, &f), FAIL_NONE);
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);

	ck_assert_int_eq(count_dir("cur", name, sizeof(name)), 1);
	char want[512];
	snprintf(want, sizeof(want), "%s,S=4:2,FS", ref1);
	ck_assert_str_eq(name, want);
	snprintf(path, sizeof(path), "%s/cur/%s", mdir, name);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq((long long)sb.st_mtime, 1000000000LL);
	ck_assert_int_eq(count_dir("new", name, sizeof(name)), 1);
	snprintf(want, sizeof(want), "%s,S=2", ref2);
	ck_assert_str_eq(name, want);
	ck_assert_int_eq(ops->settle(t, ref1, &f), 1);
	ck_assert_int_eq(ops->settle(t, ref2, &f), 1);
	ops->close(t);
}
END_TEST

START_TEST(test_settle)
{
	const char *parts[] = { "hello\r\n" };
	size_t lens[] = { 7 };
	char ref[TARGET_REF_MAX], name[512], from[768], to[768];
	struct fail f = { 0 };
	void *t = open_ok();

	/* Delivered, in new/. */
	deliver(t, ref, parts, lens, 1);
	ck_assert_int_eq(ops->sync(t, &f), FAIL_NONE);
	ck_assert_int_eq(ops->settle(t, ref, &f), 1);
	/* A reader moved it to cur/ and added flags. */
	ck_assert_int_eq(count_dir("new", name, sizeof(name)), 1);
	snprintf(from, sizeof(from), "%s/new/%s", mdir, name);
	snprintf(to, sizeof(to), "%s/cur/%s:2,S", mdir, name);
	ck_assert_int_eq(rename(from, to), 0);
	ck_assert_int_eq(ops->settle(t, ref, &f), 1);
	/* Plain "REF:2,S" (no size) in cur/ counts too. */
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	touch("cur", strcat(strcpy(name, ref), ":2,RS"));
	ck_assert_int_eq(ops->settle(t, ref, &f), 1);
	/* Only a partial copy in tmp/: not delivered, and removed. */
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	touch("tmp", ref);
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);
	ck_assert_int_eq(count_dir("tmp", NULL, 0), 0);
	/* Absent everywhere. */
	ck_assert_int_eq(ops->plan(t, ref, sizeof(ref), &f), FAIL_NONE);
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);
	/* A name that merely starts with ref is not it. */
	touch("new", strcat(strcpy(name, ref), "0,S=1"));
	ck_assert_int_eq(ops->settle(t, ref, &f), 0);
	/* A bad ref is an error. */
	ck_assert_int_eq(ops->settle(t, "../x", &f), -1);
	ck_assert_int_eq(f.kind, FAIL_LOCAL);
	ops->close(t);
}
END_TEST

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(test_unique_names)
{
	enum { N = 5000 };
	static char refs[N][TARGET_REF_MAX];
	static char *p[N];
	struct fail f = { 0 };
	long long sec;
	long usec, pid;
	unsigned long q, q0 = 0;
	int i, used;
	void *t = open_ok();

	for (i = 0; i < N; i++) {
		ck_assert_int_eq(ops->plan(t, refs[i], TARGET_REF_MAX, &f),
		    FAIL_NONE);
		p[i] = refs[i];
		used = 0;
		ck_assert_int_eq(sscanf(refs[i], "%lld.M%ldP%ldQ%lu.%n", &sec,
		    &usec, &pid, &q, &used), 4);
		ck_assert_int_gt(used, 0);
		ck_assert_int_eq(pid, getpid());
		ck_assert(usec >= 0 && usec < 1000000);
		ck_assert(refs[i][used] != '\0');
		ck_assert_ptr_null(strchr(refs[i] + used, '/'));
		ck_assert_ptr_null(strchr(refs[i] + used, ':'));
		if (i > 0)
			ck_assert_uint_eq(q, q0 + 1);
		q0 = q;
	}
	qsort(p, N, sizeof(p[0]), str_cmp);
	for (i = 1; i < N; i++)
		ck_assert_str_ne(p[i - 1], p[i]);
	/* Too small a buffer is an error, not a truncated name. */
	ck_assert_int_eq(ops->plan(t, refs[0], 8, &f), FAIL_LOCAL);
	ops->close(t);
}
END_TEST

START_TEST(test_open_on_file)
{
	struct fail f = { 0 };
	void *t = NULL;
	int fd;

	snprintf(mdir, sizeof(mdir), "%s/file", tdir);
	fd = open(mdir, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(ops->open(&t, mdir, &f), FAIL_LOCAL);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(strstr(f.msg, "Maildir "));
	ck_assert_ptr_nonnull(strstr(f.msg, mdir));
	ck_assert_ptr_nonnull(strstr(f.msg, "Not a directory"));
	/* Below a regular file: fails for root as well. */
	snprintf(mdir, sizeof(mdir), "%s/file/Maildir", tdir);
	ck_assert_int_eq(ops->open(&t, mdir, &f), FAIL_LOCAL);
	ck_assert_ptr_null(t);
	/* tmp/ that is a file. */
	snprintf(mdir, sizeof(mdir), "%s/md2", tdir);
	ck_assert_int_eq(mkdir(mdir, 0700), 0);
	touch("", "tmp");
	ck_assert_int_eq(ops->open(&t, mdir, &f), FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, "/tmp"));
}
END_TEST

START_TEST(test_unwritable)
{
	struct fail f = { 0 };
	void *t = NULL;
	char path[256];

	if (geteuid() == 0)
		return;         /* root ignores modes: test_open_on_file covers it */
	t = open_ok();
	ops->close(t);
	ck_assert_int_eq(chmod(mdir, 0500), 0);
	t = NULL;
	ck_assert_int_eq(ops->open(&t, mdir, &f), FAIL_LOCAL);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(strstr(f.msg, "Permission denied"));
	snprintf(path, sizeof(path), "%s/locked", tdir);
	ck_assert_int_eq(mkdir(path, 0), 0);
	snprintf(mdir, sizeof(mdir), "%s/locked/Maildir", tdir);
	ck_assert_int_eq(ops->open(&t, mdir, &f), FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, "Permission denied"));
}
END_TEST

START_TEST(test_spec_parse)
{
	struct target_spec ts;
	const char *err = NULL;

	ck_assert_int_eq(target_spec_parse("maildir:~/Mail/work", &ts, &err), 0);
	ck_assert_ptr_eq(ts.ops, &maildir_target);
	ck_assert_str_eq(ts.path, "~/Mail/work");
	ck_assert_str_eq(ts.text, "maildir:~/Mail/work");
	free(ts.path);
	free(ts.text);

	ck_assert_int_eq(target_spec_parse("maildir:", &ts, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "path"));
	ck_assert_int_eq(target_spec_parse("pigeon:/x", &ts, &err), -1);
	ck_assert_str_eq(err, "unknown delivery target kind 'pigeon' "
	    "(expected maildir:PATH, mbox:PATH, mda:COMMAND, "
	    "smtp://HOST?to=ADDR or lmtp://HOST:PORT?to=ADDR)");
	ck_assert_int_eq(target_spec_parse("", &ts, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown"));
	ck_assert_int_eq(target_spec_parse("/home/me/Maildir", &ts, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown"));
	ck_assert_int_eq(target_spec_parse("mbox:~/m", &ts, &err), 0);
	ck_assert_ptr_eq(ts.ops, &mbox_target);
	free(ts.path);
	free(ts.text);
	ts.ops = NULL;
	ck_assert_int_eq(target_spec_parse("smtp://localhost:25?to=a@b", &ts,
	    &err), 0);
	ck_assert_ptr_eq(ts.ops, &smtp_target);
	ck_assert_str_eq(ts.path, "smtp://localhost:25?to=a@b");  /* whole */
	free(ts.path);
	free(ts.text);
	ts.ops = NULL;
	ck_assert_int_eq(target_spec_parse("mda:/usr/bin/procmail -d %u", &ts,
	    &err), 0);
	ck_assert_ptr_eq(ts.ops, &mda_target);
	ck_assert_str_eq(ts.path, "/usr/bin/procmail -d %u");
	free(ts.path);
	free(ts.text);
	ts.ops = NULL;
	ck_assert_ptr_null(ts.ops);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("maildir");
	TCase *tc = tcase_create("maildir");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_created);
	tcase_add_test(tc, test_crlf_split_exact_bytes);
	tcase_add_test(tc, test_large_random_chunks);
	tcase_add_test(tc, test_batch_one_sync);
	tcase_add_test(tc, test_abort_leaves_nothing);
	tcase_add_test(tc, test_close_unlinks_unsynced);
	tcase_add_test(tc, test_sync_failure_counts_nothing);
	tcase_add_test(tc, test_flags_and_mtime);
	tcase_add_test(tc, test_settle);
	tcase_add_test(tc, test_unique_names);
	tcase_add_test(tc, test_open_on_file);
	tcase_add_test(tc, test_unwritable);
	tcase_add_test(tc, test_spec_parse);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
