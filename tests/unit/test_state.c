/* test_state.c - the SQLite state: schema, classify, intents, pruning. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "state.h"
#include "unit.h"

static char tdir[64];
static char dbpath[128];
static time_t fake_now;

static time_t
fake_clock(void)
{
	return fake_now;
}

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/mailpull-state-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	snprintf(dbpath, sizeof(dbpath), "%s/sub/dir/state.db", tdir);
	fake_now = 1000000;
	state_test_set_clock(fake_clock);
}

static void
teardown(void)
{
	state_test_set_clock(NULL);
	nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct state *
open_ok(void)
{
	struct state *st = NULL;
	struct fail f = { 0 };

	ck_assert_msg(state_open(&st, dbpath, &f) == FAIL_NONE, "%s", f.msg);
	ck_assert_ptr_nonnull(st);
	return st;
}

static void
record(struct state *st, const char *account, const char *uid)
{
	struct outcome o = { uid, 1234, "<id@x>", "delivered", NULL, NULL };
	struct fail f = { 0 };

	ck_assert_msg(state_record(st, account, &o, 1, &f) == FAIL_NONE, "%s",
	    f.msg);
}

static void
classify(struct state *st, const char *account, const char *const *uids,
    size_t n, unsigned char *out, long prune_after)
{
	struct fail f = { 0 };

	ck_assert_msg(state_classify(st, account, uids, n, out, prune_after,
	    0, NULL, &f) == FAIL_NONE, "%s", f.msg);
}

/* Four big-endian bytes of the database header. */
static unsigned long
header_u32(const char *path, off_t off)
{
	unsigned char b[4];
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, b, 4, off), 4);
	close(fd);
	return (unsigned long)b[0] << 24 | (unsigned long)b[1] << 16 |
	    (unsigned long)b[2] << 8 | b[3];
}

START_TEST(test_create_modes_version)
{
	struct state *st = open_ok();
	struct stat sb;
	char dir[160];

	state_close(st);
	ck_assert_int_eq(stat(dbpath, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0600);
	snprintf(dir, sizeof(dir), "%s/sub/dir", tdir);
	ck_assert_int_eq(stat(dir, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0700);
	/* user_version at offset 60; WAL: read/write versions 2 at 18. */
	ck_assert_uint_eq(header_u32(dbpath, 60), 5);
	ck_assert_uint_eq(header_u32(dbpath, 16) & 0xffff, 0x0202);
}
END_TEST

START_TEST(test_reopen_keeps_data)
{
	struct state *st = open_ok();

	record(st, "acct", "u1");
	record(st, "acct", "u2");
	state_close(st);
	st = open_ok();
	ck_assert_int_eq(state_count(st, "acct"), 2);
	state_close(st);
	ck_assert_uint_eq(header_u32(dbpath, 60), 5);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
	struct state *st = open_ok();
	unsigned char v[4] = { 0, 0, 0, 99 };
	struct fail f = { 0 };
	int fd;

	state_close(st);
	fd = open(dbpath, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, v, 4, 60), 4);
	close(fd);
	st = NULL;
	ck_assert_int_eq(state_open(&st, dbpath, &f), FAIL_LOCAL);
	ck_assert_ptr_null(st);
	ck_assert_ptr_nonnull(strstr(f.msg, "schema version 99"));
}
END_TEST

START_TEST(test_classify_new_and_seen)
{
	struct state *st = open_ok();
	const char *uids[] = { "a", "b", "c", "d" };
	unsigned char out[4];

	classify(st, "acct", uids, 4, out, -1);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(out[i], SEEN_NEW);
	record(st, "acct", "b");
	record(st, "acct", "d");
	memset(out, 7, sizeof(out));
	classify(st, "acct", uids, 4, out, -1);
	ck_assert_int_eq(out[0], SEEN_NEW);
	ck_assert_int_eq(out[1], SEEN_DELIVERED);
	ck_assert_int_eq(out[2], SEEN_NEW);
	ck_assert_int_eq(out[3], SEEN_DELIVERED);
	/* An empty listing is fine. */
	classify(st, "acct", NULL, 0, out, -1);
	/* A uid listed twice gets its status twice. */
	{
		const char *dup[] = { "d", "a", "d", "b" };

		classify(st, "acct", dup, 4, out, -1);
		ck_assert_int_eq(out[0], SEEN_DELIVERED);
		ck_assert_int_eq(out[1], SEEN_NEW);
		ck_assert_int_eq(out[2], SEEN_DELIVERED);
		ck_assert_int_eq(out[3], SEEN_DELIVERED);
	}
	state_close(st);
}
END_TEST

START_TEST(test_record_replaces)
{
	struct state *st = open_ok();
	struct outcome o[2] = {
		{ "x", 10, NULL, "delivered", NULL, NULL },
		{ "y", 20, "<m@y>", "delivered", NULL, NULL },
	};
	struct fail f = { 0 };

	ck_assert_int_eq(state_record(st, "acct", o, 2, &f), FAIL_NONE);
	ck_assert_int_eq(state_count(st, "acct"), 2);
	o[0].size = 11;
	ck_assert_int_eq(state_record(st, "acct", o, 1, &f), FAIL_NONE);
	ck_assert_int_eq(state_count(st, "acct"), 2);
	state_close(st);
}
END_TEST

struct walk {
	int n;
	int stop_after;
	char seen[8][3][64];
};

static int
walk_cb(void *arg, const char *uid, const char *target, const char *ref,
    int shortened)
{
	struct walk *w = arg;

	if (w->n < 8) {
		snprintf(w->seen[w->n][0], 64, "%s", uid);
		snprintf(w->seen[w->n][1], 64, "%s", target);
		snprintf(w->seen[w->n][2], 64, "%s", ref);
	}
	w->n++;
	return w->stop_after != 0 && w->n >= w->stop_after;
}

static int
count_intents(struct state *st, const char *account)
{
	struct walk w = { 0 };
	struct fail f = { 0 };

	ck_assert_int_eq(state_intents(st, account, walk_cb, &w, &f), FAIL_NONE);
	return w.n;
}

START_TEST(test_intents)
{
	struct state *st = open_ok();
	struct intent in[3] = {
		{ "u1", "maildir:~/M", "r1" },
		{ "u1", "mbox:~/m", "r2" },
		{ "u2", "maildir:~/M", "r3" },
	};
	struct walk w = { 0 };
	struct fail f = { 0 };

	ck_assert_int_eq(state_add_intents(st, "acct", in, 3, &f), FAIL_NONE);
	ck_assert_int_eq(state_intents(st, "acct", walk_cb, &w, &f), FAIL_NONE);
	ck_assert_int_eq(w.n, 3);
	ck_assert_str_eq(w.seen[0][0], "u1");
	ck_assert_str_eq(w.seen[2][0], "u2");
	ck_assert_str_eq(w.seen[2][1], "maildir:~/M");
	ck_assert_str_eq(w.seen[2][2], "r3");
	ck_assert_int_eq(count_intents(st, "other"), 0);
	/* A callback returning non-zero stops the walk. */
	memset(&w, 0, sizeof(w));
	w.stop_after = 1;
	ck_assert_int_eq(state_intents(st, "acct", walk_cb, &w, &f), FAIL_NONE);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(state_drop_intents(st, "acct", "u1", &f), FAIL_NONE);
	ck_assert_int_eq(count_intents(st, "acct"), 1);
	state_close(st);
}
END_TEST

START_TEST(test_record_deletes_intents)
{
	struct state *st = open_ok();
	struct intent in[2] = {
		{ "u1", "maildir:~/M", "r1" },
		{ "u2", "maildir:~/M", "r2" },
	};
	struct fail f = { 0 };

	ck_assert_int_eq(state_add_intents(st, "acct", in, 2, &f), FAIL_NONE);
	ck_assert_int_eq(state_add_intents(st, "acct2", in, 1, &f), FAIL_NONE);
	record(st, "acct", "u1");
	ck_assert_int_eq(count_intents(st, "acct"), 1);
	ck_assert_int_eq(count_intents(st, "acct2"), 1);
	state_close(st);
	st = open_ok();
	ck_assert_int_eq(count_intents(st, "acct"), 1);
	state_close(st);
}
END_TEST

START_TEST(test_prune)
{
	struct state *st = open_ok();
	const char *all[] = { "a", "b", "c" };
	const char *ab[] = { "a", "b" }, *a[] = { "a" }, *ac[] = { "a", "c" };
	unsigned char out[3];

	record(st, "acct", "a");
	record(st, "acct", "b");
	record(st, "acct", "c");
	fake_now = 1000;
	classify(st, "acct", ab, 2, out, 100);          /* c gone at 1000 */
	ck_assert_int_eq(state_count(st, "acct"), 3);
	fake_now = 1050;
	classify(st, "acct", a, 1, out, 100);           /* b gone at 1050 */
	ck_assert_int_eq(state_count(st, "acct"), 3);
	fake_now = 1080;
	classify(st, "acct", ac, 2, out, 100);          /* c is back */
	ck_assert_int_eq(out[1], SEEN_DELIVERED);
	fake_now = 1160;
	classify(st, "acct", a, 1, out, 100);           /* b pruned; c gone at 1160 */
	ck_assert_int_eq(state_count(st, "acct"), 2);
	classify(st, "acct", all, 3, out, 100);
	ck_assert_int_eq(out[0], SEEN_DELIVERED);
	ck_assert_int_eq(out[1], SEEN_NEW);
	ck_assert_int_eq(out[2], SEEN_DELIVERED);       /* unmarked again */
	fake_now = 100000;
	classify(st, "acct", all, 3, out, 100);         /* nothing gone */
	ck_assert_int_eq(state_count(st, "acct"), 2);
	classify(st, "acct", a, 1, out, 100);           /* c gone at 100000 */
	fake_now = 100100;
	classify(st, "acct", a, 1, out, 100);           /* exactly 100: kept */
	ck_assert_int_eq(state_count(st, "acct"), 2);
	fake_now = 100101;
	classify(st, "acct", a, 1, out, -1);            /* never prune */
	ck_assert_int_eq(state_count(st, "acct"), 2);
	classify(st, "acct", a, 1, out, 100);
	ck_assert_int_eq(state_count(st, "acct"), 1);
	state_close(st);
}
END_TEST

/* A dry run looks without writing: nothing is marked gone or pruned. */
START_TEST(test_classify_readonly)
{
	struct state *st = open_ok();
	const char *a[] = { "a" }, *ab[] = { "a", "b" };
	unsigned char out[2];
	struct fail f = { 0 };

	record(st, "acct", "a");
	record(st, "acct", "b");
	fake_now = 1000;
	ck_assert_int_eq(state_classify(st, "acct", a, 1, out, 0, STATE_READONLY, NULL, &f),
	    FAIL_NONE);
	ck_assert_int_eq(out[0], SEEN_DELIVERED);
	fake_now = 5000;
	ck_assert_int_eq(state_classify(st, "acct", a, 1, out, 0, STATE_READONLY, NULL, &f),
	    FAIL_NONE);
	ck_assert_int_eq(state_count(st, "acct"), 2);   /* b not pruned */
	classify(st, "acct", a, 1, out, 0);             /* b gone now */
	fake_now = 6000;
	classify(st, "acct", ab, 2, out, 100000);       /* and back */
	ck_assert_int_eq(out[1], SEEN_DELIVERED);
	state_close(st);
}
END_TEST

/* A row recorded with another result is neither new nor to be deleted. */
START_TEST(test_kept_result)
{
	struct state *st = open_ok();
	struct outcome o = { "s", 10, NULL, "short", NULL, NULL };
	const char *v[] = { "s", "d", "n" };
	unsigned char out[3];
	struct fail f = { 0 };

	ck_assert_int_eq(state_record(st, "acct", &o, 1, &f), FAIL_NONE);
	record(st, "acct", "d");
	classify(st, "acct", v, 3, out, -1);
	ck_assert_int_eq(out[0], SEEN_KEPT);
	ck_assert_int_eq(out[1], SEEN_DELIVERED);
	ck_assert_int_eq(out[2], SEEN_NEW);
	state_close(st);
}
END_TEST

/* A version 1 database (before IMAP) is migrated to version 2, its rows
 * kept. Made here with the sqlite3 command's SQL, as version 1 wrote it. */
START_TEST(test_migrate_v1)
{
	char cmd[1024];
	struct state *st;

	mkdir(tdir, 0700);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/sub/dir && sqlite3 %s "
	    "\"PRAGMA journal_mode=WAL; CREATE TABLE seen (account TEXT NOT NULL,"
	    " uid TEXT NOT NULL, size INTEGER NOT NULL, message_id TEXT, result"
	    " TEXT NOT NULL, taken_at INTEGER NOT NULL, gone_since INTEGER,"
	    " PRIMARY KEY (account, uid)) WITHOUT ROWID; CREATE TABLE intent ("
	    "account TEXT NOT NULL, uid TEXT NOT NULL, target TEXT NOT NULL, ref"
	    " TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (account,"
	    " uid, target, ref)) WITHOUT ROWID; INSERT INTO seen VALUES ('acct',"
	    " 'old', 5, '<m@x>', 'delivered', 1, NULL); PRAGMA user_version = 1;"
	    "\" >/dev/null", tdir, dbpath);
	if (system("command -v sqlite3 >/dev/null") != 0)
		return;         /* no sqlite3 command: nothing to make v1 with */
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_uint_eq(header_u32(dbpath, 60), 1);
	st = open_ok();
	ck_assert_int_eq(state_count(st, "acct"), 1);
	state_close(st);        /* the last close checkpoints the WAL */
	ck_assert_uint_eq(header_u32(dbpath, 60), 5);
}
END_TEST

struct held {
	char got[4][200];
	int n;
};

static int
collect_held(void *arg, const char *target, const char *ref,
    const char *result)
{
	struct held *h = arg;

	if (h->n < 4)
		snprintf(h->got[h->n++], sizeof(h->got[0]), "%s|%s|%s", target,
		    ref, result);
	return 0;
}

static struct held
held(struct state *st, const char *account, const char *uid)
{
	struct held h;
	struct fail f = { 0 };

	memset(&h, 0, sizeof(h));
	ck_assert_msg(state_deliveries(st, account, uid, collect_held, &h,
	    &f) == FAIL_NONE, "%s", f.msg);
	return h;
}

/* Fan-out: what each target holds is kept per target, in the same
 * transaction as the outcomes and the forgotten intents; a message whose
 * uid is pruned forgets them too. */
START_TEST(test_deliveries)
{
	struct state *st = open_ok();
	struct intent in[] = {
		{ "u1", "maildir:/m", "r1" }, { "u1", "mbox:/b", "r2" },
		{ "u2", "maildir:/m", "r3" }, { "u2", "mbox:/b", "r4" },
	};
	struct delivery d[] = {
		{ "u1", "maildir:/m", "r1", "delivered" },
		{ "u2", "maildir:/m", "r3", "delivered" },
		{ "u2", "mbox:/b", "r4", "rejected: 550 no" },
	};
	struct outcome o = { "u2", 10, NULL, "rejected: 550 no", NULL, NULL };
	const char *drop[] = { "u1", "u2" };
	const char *both[] = { "u1", "u2" }, *none[] = { "zz" };
	unsigned char out[2];
	struct fail f = { 0 };
	struct held h;

	ck_assert_int_eq(state_add_intents(st, "acct", in, 4, &f), FAIL_NONE);
	ck_assert_int_eq(state_record_batch(st, "acct", &o, 1, d, 3, drop, 2,
	    &f), FAIL_NONE);
	ck_assert_int_eq(count_intents(st, "acct"), 0);
	h = held(st, "acct", "u1");     /* u1: one target has it, not recorded */
	ck_assert_int_eq(h.n, 1);
	ck_assert_str_eq(h.got[0], "maildir:/m|r1|delivered");
	h = held(st, "acct", "u2");
	ck_assert_int_eq(h.n, 2);
	ck_assert_str_eq(h.got[0], "maildir:/m|r3|delivered");
	ck_assert_str_eq(h.got[1], "mbox:/b|r4|rejected: 550 no");
	ck_assert_int_eq(held(st, "other", "u1").n, 0);
	classify(st, "acct", both, 2, out, 100);
	ck_assert_int_eq(out[0], SEEN_NEW);
	ck_assert_int_eq(out[1], SEEN_KEPT);
	/* a failing transaction adds none of it */
	{
		struct delivery bad[] = { { "u3", "maildir:/m", "r5", "delivered" } };
		struct outcome dup[] = { { "u3", 1, NULL, "delivered", NULL, NULL },
		    { NULL, 1, NULL, "delivered", NULL, NULL } };       /* NULL uid: NOT NULL */

		ck_assert_int_eq(state_record_batch(st, "acct", dup, 2, bad, 1,
		    NULL, 0, &f), FAIL_LOCAL);
		ck_assert_int_eq(held(st, "acct", "u3").n, 0);
	}
	/* u2 vanishes and is pruned: its per-target rows go with it */
	fake_now = 5000;
	classify(st, "acct", none, 1, out, 100);
	fake_now = 5200;
	classify(st, "acct", none, 1, out, 100);
	ck_assert_int_eq(held(st, "acct", "u2").n, 0);
	ck_assert_int_eq(held(st, "acct", "u1").n, 1);  /* not in seen: kept */
	/* u1, held by one target only and gone from the server longer than
	 * prune_after, is forgotten too; while listed it is not */
	fake_now = 2000000;
	classify(st, "acct", both, 1, out, 100);        /* lists u1 */
	ck_assert_int_eq(held(st, "acct", "u1").n, 1);
	classify(st, "acct", none, 1, out, -1);         /* never prune */
	ck_assert_int_eq(held(st, "acct", "u1").n, 1);
	classify(st, "acct", none, 1, out, 100);
	ck_assert_int_eq(held(st, "acct", "u1").n, 0);
	state_close(st);
}
END_TEST

struct due_seen {
	int n;
	char last[32];
};

static int
count_due(void *arg, const char *uid, const char *result)
{
	struct due_seen *d = arg;

	d->n++;
	snprintf(d->last, sizeof(d->last), "%s", uid);
	return 0;
}

/* A message a filter skipped is not examined again while the filters stay
 * as they were; it is once they change (another digest). */
START_TEST(test_skipped_digest)
{
	struct state *st = open_ok();
	struct outcome o[] = {
		{ "s1", 5, NULL, "skipped", "spam", "d1" },
		{ "d1", 5, NULL, "delivered", NULL, NULL },
		{ "x1", 5, NULL, "deleted", "spam", "d1" },
	};
	const char *uids[] = { "s1", "d1", "x1", "n1" };
	unsigned char out[4];
	struct fail f = { 0 };
	int any = -1;

	ck_assert_int_eq(state_record(st, "a", o, 3, &f), FAIL_NONE);
	for (int partial = 0; partial < 2; partial++) {
		int fl = partial ? STATE_PARTIAL : 0;

		ck_assert_int_eq(state_classify(st, "a", uids, 4, out, -1, fl,
		    "d1", &f), FAIL_NONE);
		ck_assert_int_eq(out[0], SEEN_KEPT);
		ck_assert_int_eq(out[1], SEEN_DELIVERED);
		ck_assert_int_eq(out[2], SEEN_DOOMED); /* deleted: delete */
		ck_assert_int_eq(out[3], SEEN_NEW);
		ck_assert_int_eq(state_classify(st, "a", uids, 4, out, -1, fl,
		    "d2", &f), FAIL_NONE);
		ck_assert_int_eq(out[0], SEEN_NEW);     /* filters changed */
		ck_assert_int_eq(out[1], SEEN_DELIVERED);
		ck_assert_int_eq(out[2], SEEN_NEW);     /* not deleted yet: the
		                                         * new filters decide */
		ck_assert_int_eq(state_classify(st, "a", uids, 4, out, -1, fl,
		    NULL, &f), FAIL_NONE);
		ck_assert_int_eq(out[0], SEEN_NEW);     /* no filters now */
	}
	{       /* due: x1 only under the filters that said delete */
		struct due_seen d = { 0 };

		ck_assert_int_eq(state_due(st, "a", 0, "d1", count_due, &d, &f),
		    FAIL_NONE);
		ck_assert_int_eq(d.n, 1);
		ck_assert_str_eq(d.last, "x1");
		d.n = 0;
		ck_assert_int_eq(state_due(st, "a", 0, "d2", count_due, &d, &f),
		    FAIL_NONE);
		ck_assert_int_eq(d.n, 0);
		d.n = 0;        /* and delivered ones when asked */
		ck_assert_int_eq(state_due(st, "a", fake_now, "d2", count_due,
		    &d, &f), FAIL_NONE);
		ck_assert_int_eq(d.n, 1);
		ck_assert_str_eq(d.last, "d1");
	}
	ck_assert_int_eq(state_stale_skips(st, "a", "d1", &any, &f), FAIL_NONE);
	ck_assert_int_eq(any, 0);
	ck_assert_int_eq(state_stale_skips(st, "a", "d2", &any, &f), FAIL_NONE);
	ck_assert_int_eq(any, 1);
	ck_assert_int_eq(state_stale_skips(st, "b", "d2", &any, &f), FAIL_NONE);
	ck_assert_int_eq(any, 0);
	state_close(st);
}
END_TEST

/* IMAP folders: UIDVALIDITY/UIDNEXT kept per account and folder. */
START_TEST(test_folders)
{
	struct state *st = open_ok();
	struct fail f = { 0 };
	uint32_t v, nx;
	int found;

	ck_assert_int_eq(state_folder_get(st, "a", "INBOX", &v, &nx, &found, &f),
	    FAIL_NONE);
	ck_assert_int_eq(found, 0);
	ck_assert_int_eq(state_folder_set(st, "a", "INBOX", 4000000000u, 17, &f),
	    FAIL_NONE);
	ck_assert_int_eq(state_folder_set(st, "b", "INBOX", 1, 2, &f), FAIL_NONE);
	ck_assert_int_eq(state_folder_get(st, "a", "INBOX", &v, &nx, &found, &f),
	    FAIL_NONE);
	ck_assert_int_eq(found, 1);
	ck_assert_uint_eq(v, 4000000000u);
	ck_assert_uint_eq(nx, 17);
	ck_assert_int_eq(state_folder_set(st, "a", "INBOX", 5, 6, &f), FAIL_NONE);
	ck_assert_int_eq(state_folder_get(st, "a", "INBOX", &v, &nx, &found, &f),
	    FAIL_NONE);
	ck_assert_uint_eq(v, 5);
	ck_assert_uint_eq(nx, 6);
	state_close(st);
}
END_TEST

static int
collect_uid(void *arg, const char *uid)
{
	char *out = arg;

	strcat(out, uid);
	strcat(out, " ");
	return 0;
}

/* Message-ID lookup, the delivered list, results changed, and a partial
 * listing that marks nothing gone. */
START_TEST(test_imap_helpers)
{
	struct state *st = open_ok();
	struct fail f = { 0 };
	struct outcome o[2] = {
		{ "1:10", 100, "<a@x>", "delivered", NULL, NULL },
		{ "1:11", 200, "<b@x>", "delivered", NULL, NULL },
	};
	const char *uids[] = { "1:11" }, *list[] = { "1:12" };
	unsigned char out[1];
	char got[256] = "";
	char res[STATE_RESULT_MAX];
	int found;

	ck_assert_int_eq(state_record(st, "k", o, 2, &f), FAIL_NONE);
	ck_assert_int_eq(state_find_message(st, "k", "<a@x>", 100, res, &found,
	    &f), FAIL_NONE);
	ck_assert_int_eq(found, 1);
	ck_assert_str_eq(res, "delivered");
	ck_assert_int_eq(state_find_message(st, "k", "<a@x>", 101, res, &found,
	    &f), FAIL_NONE);
	ck_assert_int_eq(found, 0);
	ck_assert_int_eq(state_find_message(st, "other", "<a@x>", 100, res,
	    &found, &f), FAIL_NONE);
	ck_assert_int_eq(found, 0);
	ck_assert_int_eq(state_delivered(st, "k", collect_uid, got, &f),
	    FAIL_NONE);
	ck_assert_str_eq(got, "1:10 1:11 ");
	ck_assert_int_eq(state_set_result(st, "k", uids, 1, "expunged", &f),
	    FAIL_NONE);
	got[0] = '\0';
	ck_assert_int_eq(state_delivered(st, "k", collect_uid, got, &f),
	    FAIL_NONE);
	ck_assert_str_eq(got, "1:10 ");
	ck_assert_int_eq(state_find_message(st, "k", "<b@x>", 200, res, &found,
	    &f), FAIL_NONE);
	ck_assert_str_eq(res, "expunged");      /* the result travels along */
	fake_now = 1000;
	ck_assert_int_eq(state_classify(st, "k", list, 1, out, 0, STATE_PARTIAL,
	    NULL, &f), FAIL_NONE);
	ck_assert_int_eq(out[0], SEEN_NEW);
	{       /* a partial listing is looked up uid by uid: same answers */
		const char *three[] = { "1:11", "1:12", "1:10" };
		unsigned char o3[3];

		ck_assert_int_eq(state_classify(st, "k", three, 3, o3, 0,
		    STATE_PARTIAL, NULL, &f), FAIL_NONE);
		ck_assert_int_eq(o3[0], SEEN_KEPT);     /* expunged */
		ck_assert_int_eq(o3[1], SEEN_NEW);
		ck_assert_int_eq(o3[2], SEEN_DELIVERED);
	}
	fake_now = 100000;
	ck_assert_int_eq(state_classify(st, "k", list, 1, out, 0, STATE_PARTIAL,
	    NULL, &f), FAIL_NONE);
	ck_assert_int_eq(state_count(st, "k"), 2);      /* nothing pruned */
	state_close(st);
}
END_TEST

START_TEST(test_accounts_separate)
{
	struct state *st = open_ok();
	const char *uids[] = { "same" };
	unsigned char out[1];

	record(st, "one", "same");
	classify(st, "two", uids, 1, out, 0);
	ck_assert_int_eq(out[0], SEEN_NEW);
	classify(st, "one", uids, 1, out, 0);
	ck_assert_int_eq(out[0], SEEN_DELIVERED);
	/* An empty listing of "two" must not touch "one". */
	fake_now += 1000;
	classify(st, "two", NULL, 0, out, 0);
	fake_now += 1000;
	classify(st, "two", NULL, 0, out, 0);
	ck_assert_int_eq(state_count(st, "one"), 1);
	ck_assert_int_eq(state_count(st, "two"), 0);
	state_close(st);
}
END_TEST

START_TEST(test_uid_quotes_backslashes)
{
	struct state *st = open_ok();
	const char *uids[] = { "a\"b", "c\\d", "\\\"", "e\\\\\"f", "plain" };
	const char *other[] = { "a\\\"b", "c\\\\d", "\"", "\\" };
	unsigned char out[5];
	int i;

	for (i = 0; i < 4; i++)
		record(st, "acct", uids[i]);
	classify(st, "acct", uids, 5, out, 1000);
	for (i = 0; i < 4; i++)
		ck_assert_msg(out[i] == SEEN_DELIVERED, "uid %s", uids[i]);
	ck_assert_int_eq(out[4], SEEN_NEW);
	classify(st, "acct", other, 4, out, 1000);
	for (i = 0; i < 4; i++)
		ck_assert_msg(out[i] == SEEN_NEW, "uid %s", other[i]);
	state_close(st);
}
END_TEST

static double
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

#define BIG 20000

START_TEST(test_big_listing)
{
	struct state *st = open_ok();
	static char names[BIG][40];
	static const char *uids[BIG];
	static struct outcome o[BIG / 2];
	static unsigned char out[BIG];
	struct fail f = { 0 };
	struct timespec t0;
	double ms;
	int i;

	for (i = 0; i < BIG; i++) {
		snprintf(names[i], sizeof(names[i]), "%08x%024d", i * 2654435761u, i);
		uids[i] = names[i];
	}
	for (i = 0; i < BIG / 2; i++)
		o[i] = (struct outcome){ uids[2 * i], 100, NULL, "delivered", NULL, NULL };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(state_record(st, "acct", o, BIG / 2, &f), FAIL_NONE);
	ms = ms_since(&t0);
	fprintf(stderr, "test_state: record %d: %.1f ms\n", BIG / 2, ms);
	ck_assert_int_eq(state_count(st, "acct"), BIG / 2);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	classify(st, "acct", uids, BIG, out, 3600);
	ms = ms_since(&t0);
	fprintf(stderr, "test_state: classify %d: %.1f ms\n", BIG, ms);
	for (i = 0; i < BIG; i++)
		ck_assert_int_eq(out[i], i % 2 ? SEEN_NEW : SEEN_DELIVERED);
	ck_assert_msg(ms < 500, "classify took %.1f ms", ms);

	/* Half the listing vanishes: marked gone, then pruned. */
	classify(st, "acct", uids + BIG / 2, BIG / 2, out, 3600);
	ck_assert_int_eq(state_count(st, "acct"), BIG / 2);
	fake_now += 3601;
	classify(st, "acct", uids + BIG / 2, BIG / 2, out, 3600);
	ck_assert_int_eq(state_count(st, "acct"), BIG / 4);
	state_close(st);
}
END_TEST

START_TEST(test_error_unwritable)
{
	struct state *st = NULL;
	struct fail f = { 0 };
	char file[96], path[128], ldir[96], lfile[128];
	int fd;

	/* A path under a regular file fails for root too. */
	snprintf(file, sizeof(file), "%s/plain", tdir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/state.db", file);
	ck_assert_int_eq(state_open(&st, path, &f), FAIL_LOCAL);
	ck_assert_ptr_null(st);
	ck_assert_int_eq(f.kind, FAIL_LOCAL);
	ck_assert_msg(strncmp(f.msg, "state database ", 15) == 0, "%s", f.msg);
	ck_assert_ptr_nonnull(strstr(f.msg, path));
	ck_assert_ptr_nonnull(strstr(f.msg, "Not a directory"));

	/* Not a database at all. */
	fd = open(file, O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, "this is not sqlite, not at all, nope\n"
	    "..............................................................\n",
	    101), 101);
	close(fd);
	ck_assert_int_eq(state_open(&st, file, &f), FAIL_LOCAL);
	ck_assert_ptr_nonnull(strstr(f.msg, file));

	if (geteuid() != 0) {
		snprintf(ldir, sizeof(ldir), "%s/locked", tdir);
		ck_assert_int_eq(mkdir(ldir, 0500), 0);
		snprintf(lfile, sizeof(lfile), "%s/state.db", ldir);
		ck_assert_int_eq(state_open(&st, lfile, &f), FAIL_LOCAL);
		ck_assert_ptr_nonnull(strstr(f.msg, "Permission denied"));
		chmod(ldir, 0700);
	}
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("state");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_modes_version);
	tcase_add_test(tc, test_reopen_keeps_data);
	tcase_add_test(tc, test_newer_schema_refused);
	tcase_add_test(tc, test_classify_new_and_seen);
	tcase_add_test(tc, test_record_replaces);
	tcase_add_test(tc, test_intents);
	tcase_add_test(tc, test_record_deletes_intents);
	tcase_add_test(tc, test_prune);
	tcase_add_test(tc, test_classify_readonly);
	tcase_add_test(tc, test_kept_result);
	tcase_add_test(tc, test_migrate_v1);
	tcase_add_test(tc, test_deliveries);
	tcase_add_test(tc, test_skipped_digest);
	tcase_add_test(tc, test_folders);
	tcase_add_test(tc, test_imap_helpers);
	tcase_add_test(tc, test_accounts_separate);
	tcase_add_test(tc, test_uid_quotes_backslashes);
	tcase_add_test(tc, test_big_listing);
	tcase_add_test(tc, test_error_unwritable);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
