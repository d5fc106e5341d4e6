/* state.c - what was taken, in SQLite. The only file that includes sqlite3.h.
 *
 * One connection per struct state; its prepared statements stay open until
 * state_close(). Not for concurrent use from several threads: give each
 * thread its own struct state (SQLite's WAL and busy timeout let them share
 * the file).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fail.h"
#include "fileutil.h"
#include "log.h"
#include "state.h"
#include "xmalloc.h"

#define STATE_BUSY_MS   10000

/* Schema history: migrations[i] takes the schema from version i to i + 1.
 * Add a version by appending a function; never edit an old one. */
static const char schema_v1[] =
	"CREATE TABLE seen ("
	"  account    TEXT NOT NULL,"
	"  uid        TEXT NOT NULL,"
	"  size       INTEGER NOT NULL,"
	"  message_id TEXT,"
	"  result     TEXT NOT NULL,"
	"  taken_at   INTEGER NOT NULL,"
	"  gone_since INTEGER,"
	"  PRIMARY KEY (account, uid)"
	") WITHOUT ROWID;"
	"CREATE TABLE intent ("
	"  account    TEXT NOT NULL,"
	"  uid        TEXT NOT NULL,"
	"  target     TEXT NOT NULL,"
	"  ref        TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (account, uid, target, ref)"
	") WITHOUT ROWID;";

static int
migrate_v1(sqlite3 *db)
{
	return sqlite3_exec(db, schema_v1, NULL, NULL, NULL);
}

/* v2: IMAP folders (UIDVALIDITY and UIDNEXT last seen, per folder), and
 * finding a message by Message-ID when a folder's UIDVALIDITY changed. */
static const char schema_v2[] =
	"CREATE TABLE folder ("
	"  account     TEXT NOT NULL,"
	"  folder      TEXT NOT NULL,"
	"  uidvalidity INTEGER NOT NULL,"
	"  uidnext     INTEGER NOT NULL,"
	"  PRIMARY KEY (account, folder)"
	") WITHOUT ROWID;"
	"CREATE INDEX seen_message_id ON seen (account, message_id);";

static int
migrate_v2(sqlite3 *db)
{
	return sqlite3_exec(db, schema_v2, NULL, NULL, NULL);
}

/* v3: what each target holds, per message. A message is recorded in seen
 * once every target has an outcome; until then these rows let a retry go
 * only to the targets that do not have it (fan-out to several targets).
 * Kept afterwards: ref names the local copy (retention checks it). */
static const char schema_v3[] =
	"CREATE TABLE delivery ("
	"  account    TEXT NOT NULL,"
	"  uid        TEXT NOT NULL,"
	"  target     TEXT NOT NULL,"
	"  ref        TEXT NOT NULL,"
	"  result     TEXT NOT NULL,"
	"  at         INTEGER NOT NULL,"
	"  PRIMARY KEY (account, uid, target)"
	") WITHOUT ROWID;";

static int
migrate_v3(sqlite3 *db)
{
	return sqlite3_exec(db, schema_v3, NULL, NULL, NULL);
}

/* v4: filters. Which filter decided a message's fate, and for one it made
 * skip, a digest of the filter configuration then: when the filters change,
 * skipped messages are examined again. Per account: the last poll. */
static const char schema_v4[] =
	"ALTER TABLE seen ADD COLUMN filter TEXT;"
	"ALTER TABLE seen ADD COLUMN digest TEXT;"
	"CREATE TABLE poll ("
	"  account    TEXT NOT NULL PRIMARY KEY,"
	"  last_poll  INTEGER,"
	"  last_ok    INTEGER,"
	"  last_error TEXT"
	") WITHOUT ROWID;";

static int
migrate_v4(sqlite3 *db)
{
	return sqlite3_exec(db, schema_v4, NULL, NULL, NULL);
}

/* v5: an intent remembers that its message arrived shorter than the server
 * announced, so that a crash before the record does not turn it into an
 * ordinary delivery (whose original would then be deleted). */
static int
migrate_v5(sqlite3 *db)
{
	return sqlite3_exec(db, "ALTER TABLE intent ADD COLUMN short INTEGER "
	    "NOT NULL DEFAULT 0;", NULL, NULL, NULL);
}

static int (*const migrations[])(sqlite3 *) = {
	migrate_v1,
	migrate_v2,
	migrate_v3,
	migrate_v4,
	migrate_v5,
};
#define SCHEMA_VERSION  ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SCAN,
	ST_SET_GONE,
	ST_FORGET,
	ST_RECORD,
	ST_INTENT_ADD,
	ST_INTENT_LIST,
	ST_INTENT_DROP,
	ST_COUNT,
	ST_FOLDER_GET,
	ST_FOLDER_SET,
	ST_MSGID_FIND,
	ST_DELIVERED,
	ST_SET_RESULT,
	ST_LOOKUP,
	ST_DELIVERY_ADD,
	ST_DELIVERY_LIST,
	ST_DELIVERY_FORGET,
	ST_STALE_SKIPS,
	ST_DUE,
	ST_INTENT_SHORT,
	ST_ORPHANS,
	ST_STATUS,
	ST_PENDING,
	ST_POLL_GET,
	ST_POLL_SET,
	ST__MAX
};

/* ?1 is always the account. */
static const char *const stmt_sql[ST__MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SCAN] =
	    "SELECT uid, gone_since, CASE WHEN result = 'delivered' THEN 1"
	    " WHEN (result LIKE 'skipped%' OR result = 'deleted')"
	    " AND digest IS NOT ?2 THEN 2"
	    " WHEN result = 'deleted' THEN 3 ELSE 0"
	    " END FROM seen WHERE account = ?1 ORDER BY uid",
	[ST_SET_GONE] =
	    "UPDATE seen SET gone_since = ?3 WHERE account = ?1 AND uid = ?2",
	[ST_FORGET] = "DELETE FROM seen WHERE account = ?1 AND uid = ?2",
	[ST_RECORD] =
	    "INSERT OR REPLACE INTO seen (account, uid, size, message_id,"
	    " result, taken_at, gone_since, filter, digest)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8)",
	[ST_INTENT_ADD] =
	    "INSERT OR REPLACE INTO intent (account, uid, target, ref, created_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_INTENT_LIST] =
	    "SELECT uid, target, ref, short FROM intent WHERE account = ?1"
	    " ORDER BY created_at, uid",
	[ST_INTENT_DROP] = "DELETE FROM intent WHERE account = ?1 AND uid = ?2",
	[ST_COUNT] = "SELECT count(*) FROM seen WHERE account = ?1",
	[ST_FOLDER_GET] = "SELECT uidvalidity, uidnext FROM folder"
	    " WHERE account = ?1 AND folder = ?2",
	[ST_FOLDER_SET] = "INSERT OR REPLACE INTO folder"
	    " (account, folder, uidvalidity, uidnext) VALUES (?1, ?2, ?3, ?4)",
	[ST_MSGID_FIND] = "SELECT result FROM seen WHERE account = ?1"
	    " AND message_id = ?2 AND size = ?3 LIMIT 1",
	[ST_DELIVERED] = "SELECT uid FROM seen WHERE account = ?1"
	    " AND result = 'delivered' ORDER BY uid",
	[ST_SET_RESULT] = "UPDATE seen SET result = ?3"
	    " WHERE account = ?1 AND uid = ?2",
	[ST_LOOKUP] = "SELECT CASE WHEN result = 'delivered' THEN 1"
	    " WHEN (result LIKE 'skipped%' OR result = 'deleted')"
	    " AND digest IS NOT ?3 THEN 2"
	    " WHEN result = 'deleted' THEN 3 ELSE 0"
	    " END FROM seen WHERE account = ?1 AND uid = ?2",
	[ST_DUE] = "SELECT uid, result FROM seen WHERE account = ?1 AND"
	    " ((result = 'deleted' AND digest IS ?3)"
	    " OR (result = 'delivered' AND taken_at <= ?2))"
	    " ORDER BY uid",
	[ST_ORPHANS] = "SELECT DISTINCT uid FROM delivery d WHERE account = ?1"
	    " AND at < ?2 AND NOT EXISTS (SELECT 1 FROM seen s"
	    " WHERE s.account = d.account AND s.uid = d.uid)",
	[ST_INTENT_SHORT] = "UPDATE intent SET short = 1 WHERE account = ?1"
	    " AND uid = ?2",
	/* ?1 the account; its folders' keys are "account\x1ffolder" */
	[ST_STATUS] = "SELECT account, filter,"
	    " sum(result IN ('delivered', 'short', 'flagged-deleted', 'expunged')"
	    "  AND (filter IS NULL OR filter LIKE 'deliver:%')),"
	    " sum(CASE WHEN result IN ('delivered', 'short', 'flagged-deleted',"
	    "  'expunged') AND (filter IS NULL OR filter LIKE 'deliver:%')"
	    "  THEN size ELSE 0 END),"
	    " sum(result = 'skipped'), sum(filter LIKE 'delete:%'),"
	    " sum(filter LIKE 'deliver:%'), sum(result LIKE 'rejected%')"
	    " FROM seen WHERE account = ?1 OR (account > ?1 || char(31)"
	    " AND account < ?1 || char(32)) GROUP BY account, filter"
	    " ORDER BY account, filter",
	[ST_PENDING] = "SELECT d.account, count(DISTINCT d.uid) FROM delivery d"
	    " WHERE (d.account = ?1 OR (d.account > ?1 || char(31)"
	    " AND d.account < ?1 || char(32))) AND NOT EXISTS (SELECT 1 FROM"
	    " seen s WHERE s.account = d.account AND s.uid = d.uid)"
	    " GROUP BY d.account",
	[ST_POLL_GET] = "SELECT last_poll, last_ok, last_error FROM poll"
	    " WHERE account = ?1",
	[ST_POLL_SET] = "INSERT INTO poll (account, last_poll, last_ok,"
	    " last_error) VALUES (?1, ?2, CASE WHEN ?3 IS NULL THEN ?2 END, ?3)"
	    " ON CONFLICT (account) DO UPDATE SET last_poll = ?2,"
	    " last_ok = CASE WHEN ?3 IS NULL THEN ?2 ELSE last_ok END,"
	    " last_error = ?3",
	[ST_STALE_SKIPS] = "SELECT 1 FROM seen WHERE account = ?1"
	    " AND (result LIKE 'skipped%' OR result = 'deleted')"
	    " AND digest IS NOT ?2 LIMIT 1",
	[ST_DELIVERY_ADD] = "INSERT OR REPLACE INTO delivery"
	    " (account, uid, target, ref, result, at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_DELIVERY_LIST] = "SELECT target, ref, result FROM delivery"
	    " WHERE account = ?1 AND uid = ?2 ORDER BY target",
	[ST_DELIVERY_FORGET] = "DELETE FROM delivery WHERE account = ?1"
	    " AND uid = ?2",
};

struct state {
	sqlite3         *db;
	char            *path;
	sqlite3_stmt    *stmt[ST__MAX];
};

static time_t (*state_clock)(void);

void
state_test_set_clock(time_t (*now)(void))
{
	state_clock = now;
}

static sqlite3_int64
state_now(void)
{
	return (sqlite3_int64)(state_clock != NULL ? state_clock() : time(NULL));
}

static enum fail_kind
db_fail(struct state *st, struct fail *f)
{
	return fail_set(f, FAIL_LOCAL, "state database %s: %s", st->path,
	    sqlite3_errmsg(st->db));
}

static sqlite3_stmt *
stmt_get(struct state *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Run a statement that returns no rows; SQLITE_OK or an error code. */
static int
stmt_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int
tx_begin(struct state *st)
{
	return stmt_done(stmt_get(st, ST_BEGIN));
}

static int
tx_commit(struct state *st)
{
	return stmt_done(stmt_get(st, ST_COMMIT));
}

/* Roll back after a failure, keeping the first error's message intact. */
static void
tx_rollback(struct state *st)
{
	if (!sqlite3_get_autocommit(st->db))
		(void)stmt_done(stmt_get(st, ST_ROLLBACK));
}

/* ---- opening ---------------------------------------------------------- */

/* Create the file ourselves so that it is 0600 whatever the umask. */
static int
create_db_file(const char *path)
{
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (close(fd) == -1)
		return -1;
	return 0;
}

static int
exec_int(sqlite3 *db, const char *sql, int *val)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*val = sqlite3_column_int(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

static enum fail_kind
set_pragmas(struct state *st, struct fail *f)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *mode;
	int rc, wal;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(st, f);
	/* Switching a new database to WAL needs it alone; the busy handler
	 * does not cover that, so wait here (bounded) for another process
	 * creating it at the same moment. */
	for (int tries = 0; (rc = sqlite3_step(s)) == SQLITE_BUSY &&
	    tries < STATE_BUSY_MS / 20; tries++) {
		sqlite3_reset(s);
		usleep(20 * 1000);
	}
	mode = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
	wal = mode != NULL && strcmp((const char *)mode, "wal") == 0;
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return db_fail(st, f);
	if (!wal)
		return fail_set(f, FAIL_LOCAL,
		    "state database %s: cannot use WAL journal mode", st->path);
	rc = sqlite3_exec(st->db, "PRAGMA synchronous=FULL;"
	    "PRAGMA cache_size=-256;", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(st, f);
	return FAIL_NONE;
}

static enum fail_kind
migrate(struct state *st, struct fail *f)
{
	char sql[64];
	int v = 0;

	if (exec_int(st->db, "PRAGMA user_version", &v) != SQLITE_OK)
		return db_fail(st, f);
	if (v == SCHEMA_VERSION)
		return FAIL_NONE;
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(st, f);
	/* Read again under the write lock: another process may have won. */
	if (exec_int(st->db, "PRAGMA user_version", &v) != SQLITE_OK)
		goto fail;
	if (v > SCHEMA_VERSION) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return fail_set(f, FAIL_LOCAL, "state database %s: schema version "
		    "%d is newer than this mailpull knows (%d)", st->path, v,
		    SCHEMA_VERSION);
	}
	for (; v < SCHEMA_VERSION; v++) {
		if (migrations[v](st->db) != SQLITE_OK)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
		log_debug("state database %s: schema now version %d", st->path,
		    v + 1);
	}
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return FAIL_NONE;
fail:
	db_fail(st, f);
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return FAIL_LOCAL;
}

static enum fail_kind
prepare_all(struct state *st, struct fail *f)
{
	int i;

	for (i = 0; i < ST__MAX; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) != SQLITE_OK)
			return db_fail(st, f);
	}
	return FAIL_NONE;
}

enum fail_kind
state_open(struct state **out, const char *path, struct fail *f)
{
	struct state *st;
	enum fail_kind k;

	*out = NULL;
	st = xcalloc(1, sizeof(*st));
	st->path = xstrdup(path);
	if (mkdirs(path, 0) == -1 || create_db_file(path) == -1) {
		k = fail_set(f, FAIL_LOCAL, "state database %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE,
	    NULL) != SQLITE_OK) {
		k = st->db != NULL ? db_fail(st, f) : fail_set(f, FAIL_LOCAL,
		    "state database %s: out of memory", path);
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STATE_BUSY_MS);
	if ((k = set_pragmas(st, f)) != FAIL_NONE)
		goto fail;
	if ((k = migrate(st, f)) != FAIL_NONE)
		goto fail;
	if ((k = prepare_all(st, f)) != FAIL_NONE)
		goto fail;
	*out = st;
	return FAIL_NONE;
fail:
	state_close(st);
	return k;
}

void
state_close(struct state *st)
{
	int i;

	if (st == NULL)
		return;
	for (i = 0; i < ST__MAX; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		log_warnx("state database %s: %s", st->path,
		    sqlite3_errmsg(st->db));
	free(st->path);
	free(st);
}

/* ---- classify --------------------------------------------------------- *
 * One ordered scan of the account's recorded uids, merge-joined in memory
 * with the sorted listing: O(n log n) with no per-uid query. Only rows whose
 * gone mark changes are written, each by primary key, in the same
 * transaction. strcmp() orders like SQLite's BINARY collation.
 */

struct listed {
	const char      *uid;
	size_t           i;             /* index in the caller's listing */
};

struct uid_list {
	char            **v;
	size_t           n, cap;
};

static int
listed_cmp(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;
	int c = strcmp(x->uid, y->uid);

	if (c != 0)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

static void
uid_list_add(struct uid_list *l, const char *uid)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = xstrdup(uid);
}

static void
uid_list_free(struct uid_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

struct classify {
	struct listed   *sorted;
	size_t           n;
	unsigned char   *out;
	sqlite3_int64    now;
	long             prune_after;   /* < 0: never forget */
	int              readonly;      /* dry run: look, change nothing */
	int              partial;       /* listing is not the whole mailbox */
	const char      *digest;        /* the filters now */
	struct uid_list  ungone, gone, forget;
};

/* A row's class from ST_SCAN / ST_LOOKUP: 1 delivered, 2 skipped under
 * other filters (examined again), 3 a filter said delete, 0 anything else
 * recorded. */
static unsigned char
row_status(int cls)
{
	switch (cls) {
	case 1:
		return SEEN_DELIVERED;
	case 2:
		return SEEN_NEW;
	case 3:
		return SEEN_DOOMED;
	default:
		return SEEN_KEPT;
	}
}

/* One recorded row against the sorted listing, from position *j on. */
static void
merge_row(struct classify *c, size_t *j, const char *uid, int has_gone,
    sqlite3_int64 gone_since, int cls)
{
	int present = 0, cmp;

	while (*j < c->n && (cmp = strcmp(c->sorted[*j].uid, uid)) <= 0) {
		if (cmp == 0) {
			c->out[c->sorted[*j].i] = row_status(cls);
			present = 1;
		}
		(*j)++;
	}
	if (c->partial)
		return;                 /* absent says nothing */
	if (present && has_gone)
		uid_list_add(&c->ungone, uid);
	else if (!present && !has_gone)
		uid_list_add(&c->gone, uid);
	else if (!present && c->prune_after >= 0 &&
	    gone_since < c->now - c->prune_after)
		uid_list_add(&c->forget, uid);
}

static int
classify_scan(struct state *st, const char *account, struct classify *c)
{
	sqlite3_stmt *s = stmt_get(st, ST_SCAN);
	const unsigned char *uid;
	size_t j = 0;
	int rc, has_gone;

	if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 2, c->digest, -1, SQLITE_STATIC)))
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uid = sqlite3_column_text(s, 0);
		if (uid == NULL)
			continue;
		has_gone = sqlite3_column_type(s, 1) != SQLITE_NULL;
		merge_row(c, &j, (const char *)uid, has_gone,
		    sqlite3_column_int64(s, 1), sqlite3_column_int(s, 2));
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Set (when >= 0) or clear gone_since of each uid in l. */
static int
set_gone(struct state *st, const char *account, const struct uid_list *l,
    sqlite3_int64 when)
{
	sqlite3_stmt *s;
	size_t i;
	int rc;

	for (i = 0; i < l->n; i++) {
		s = stmt_get(st, ST_SET_GONE);
		if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
		    (rc = sqlite3_bind_text(s, 2, l->v[i], -1, SQLITE_STATIC)) ||
		    (when >= 0 && (rc = sqlite3_bind_int64(s, 3, when))) ||
		    (rc = stmt_done(s)))
			return rc;
	}
	return SQLITE_OK;
}

static int
forget_all(struct state *st, const char *account, const struct uid_list *l)
{
	sqlite3_stmt *s;
	size_t i;
	int rc;

	for (i = 0; i < l->n; i++) {
		s = stmt_get(st, ST_FORGET);
		if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
		    (rc = sqlite3_bind_text(s, 2, l->v[i], -1, SQLITE_STATIC)) ||
		    (rc = stmt_done(s)))
			return rc;
		/* a uid that comes back later is a new message everywhere */
		s = stmt_get(st, ST_DELIVERY_FORGET);
		if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
		    (rc = sqlite3_bind_text(s, 2, l->v[i], -1, SQLITE_STATIC)) ||
		    (rc = stmt_done(s)))
			return rc;
	}
	return SQLITE_OK;
}

/* A few uids of a partial listing (IMAP new mail: often a handful against
 * thousands recorded): look each up rather than scan the account. */
#define LOOKUP_MAX      256

static int
classify_lookup(struct state *st, const char *account, struct classify *c)
{
	sqlite3_stmt *s = stmt_get(st, ST_LOOKUP);
	int rc = SQLITE_OK;

	for (size_t i = 0; i < c->n && rc == SQLITE_OK; i++) {
		if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
		    (rc = sqlite3_bind_text(s, 2, c->sorted[i].uid, -1,
		    SQLITE_STATIC)) ||
		    (rc = sqlite3_bind_text(s, 3, c->digest, -1, SQLITE_STATIC)))
			break;
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			c->out[c->sorted[i].i] = row_status(
			    sqlite3_column_int(s, 0));
			rc = SQLITE_DONE;
		}
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	return rc;
}

static int
listed_uid_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct listed *)elem)->uid);
}

/* Messages some target got but not all (no seen row), gone from the server
 * for longer than prune_after: forget what the targets held, as a seen row
 * would be forgotten (so that --status stops counting them pending). */
static int
prune_orphans(struct state *st, const char *account, struct classify *c)
{
	sqlite3_stmt *s = stmt_get(st, ST_ORPHANS);
	struct uid_list gone = { NULL, 0, 0 };
	int rc;

	if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_int64(s, 2, c->now - c->prune_after)))
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *uid = sqlite3_column_text(s, 0);

		if (uid != NULL && bsearch(uid, c->sorted, c->n,
		    sizeof(*c->sorted), listed_uid_cmp) == NULL)
			uid_list_add(&gone, (const char *)uid);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		uid_list_free(&gone);
		return rc;
	}
	rc = SQLITE_OK;
	for (size_t i = 0; i < gone.n && rc == SQLITE_OK; i++) {
		s = stmt_get(st, ST_DELIVERY_FORGET);
		if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
		    (rc = sqlite3_bind_text(s, 2, gone.v[i], -1, SQLITE_STATIC)))
			break;
		rc = stmt_done(s);
	}
	uid_list_free(&gone);
	return rc;
}

static int
classify_tx(struct state *st, const char *account, struct classify *c)
{
	int rc;

	if (c->partial && c->n <= LOOKUP_MAX)
		return classify_lookup(st, account, c);
	if (c->readonly || c->partial)
		return classify_scan(st, account, c);
	if ((rc = tx_begin(st)) ||
	    (rc = classify_scan(st, account, c)) ||
	    (rc = set_gone(st, account, &c->ungone, -1)) ||
	    (rc = set_gone(st, account, &c->gone, c->now)) ||
	    (rc = forget_all(st, account, &c->forget)) ||
	    (c->prune_after >= 0 && (rc = prune_orphans(st, account, c))) ||
	    (rc = tx_commit(st)))
		return rc;
	if (c->gone.n + c->ungone.n + c->forget.n > 0)
		log_debug("state: %s: %zu gone, %zu back, %zu forgotten",
		    account, c->gone.n, c->ungone.n, c->forget.n);
	return SQLITE_OK;
}

/* prune_after < 0: never forget a gone uid. */
enum fail_kind
state_classify(struct state *st, const char *account,
    const char *const *uids, size_t n, unsigned char *out, long prune_after,
    int flags, const char *digest, struct fail *f)
{
	struct classify c = { 0 };
	enum fail_kind k = FAIL_NONE;
	size_t i;

	c.sorted = xreallocarray(NULL, n ? n : 1, sizeof(*c.sorted));
	for (i = 0; i < n; i++) {
		c.sorted[i].uid = uids[i];
		c.sorted[i].i = i;
		out[i] = SEEN_NEW;
	}
	qsort(c.sorted, n, sizeof(*c.sorted), listed_cmp);
	c.n = n;
	c.out = out;
	c.now = state_now();
	c.prune_after = prune_after;
	c.readonly = (flags & STATE_READONLY) != 0;
	c.partial = (flags & STATE_PARTIAL) != 0;
	c.digest = digest != NULL ? digest : "";
	if (classify_tx(st, account, &c) != SQLITE_OK) {
		k = db_fail(st, f);
		tx_rollback(st);
		if (n > 0)
			memset(out, SEEN_NEW, n);
	}
	uid_list_free(&c.ungone);
	uid_list_free(&c.gone);
	uid_list_free(&c.forget);
	free(c.sorted);
	return k;
}

/* ---- intents and outcomes --------------------------------------------- */

static int
intent_add(struct state *st, const char *account, const struct intent *in,
    sqlite3_int64 now)
{
	sqlite3_stmt *s = stmt_get(st, ST_INTENT_ADD);
	int rc;

	if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 2, in->uid, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 3, in->target, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 4, in->ref, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_int64(s, 5, now)))
		return rc;
	return stmt_done(s);
}

enum fail_kind
state_add_intents(struct state *st, const char *account,
    const struct intent *v, size_t n, struct fail *f)
{
	sqlite3_int64 now = state_now();
	size_t i;

	if (tx_begin(st) != SQLITE_OK)
		goto fail;
	for (i = 0; i < n; i++) {
		if (intent_add(st, account, &v[i], now) != SQLITE_OK)
			goto fail;
	}
	if (tx_commit(st) != SQLITE_OK)
		goto fail;
	return FAIL_NONE;
fail:
	db_fail(st, f);
	tx_rollback(st);
	return FAIL_LOCAL;
}

static int
intent_drop(struct state *st, const char *account, const char *uid)
{
	sqlite3_stmt *s = stmt_get(st, ST_INTENT_DROP);
	int rc;

	if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 2, uid, -1, SQLITE_STATIC)))
		return rc;
	return stmt_done(s);
}

static int
record_one(struct state *st, const char *account, const struct outcome *o,
    sqlite3_int64 now)
{
	sqlite3_stmt *s = stmt_get(st, ST_RECORD);
	int rc;

	if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 2, o->uid, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_int64(s, 3, (sqlite3_int64)o->size)) ||
	    (rc = sqlite3_bind_text(s, 4, o->message_id, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 5, o->result != NULL ? o->result :
	    "delivered", -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_int64(s, 6, now)) ||
	    (rc = sqlite3_bind_text(s, 7, o->filter, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 8, o->digest, -1, SQLITE_STATIC)))
		return rc;
	if ((rc = stmt_done(s)) != SQLITE_OK)
		return rc;
	return intent_drop(st, account, o->uid);
}

static int
delivery_add(struct state *st, const char *account, const struct delivery *d,
    sqlite3_int64 now)
{
	sqlite3_stmt *s = stmt_get(st, ST_DELIVERY_ADD);
	int rc;

	if ((rc = sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 2, d->uid, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 3, d->target, -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 4, d->ref != NULL ? d->ref : "", -1,
	    SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_text(s, 5, d->result != NULL ? d->result :
	    "delivered", -1, SQLITE_STATIC)) ||
	    (rc = sqlite3_bind_int64(s, 6, now)))
		return rc;
	return stmt_done(s);
}

enum fail_kind
state_record(struct state *st, const char *account,
    const struct outcome *v, size_t n, struct fail *f)
{
	return state_record_batch(st, account, v, n, NULL, 0, NULL, 0, f);
}

enum fail_kind
state_record_batch(struct state *st, const char *account,
    const struct outcome *v, size_t n, const struct delivery *d, size_t nd,
    const char *const *drop, size_t ndrop, struct fail *f)
{
	sqlite3_int64 now = state_now();
	size_t i;

	if (tx_begin(st) != SQLITE_OK)
		goto fail;
	for (i = 0; i < nd; i++) {
		if (delivery_add(st, account, &d[i], now) != SQLITE_OK)
			goto fail;
	}
	for (i = 0; i < n; i++) {
		if (record_one(st, account, &v[i], now) != SQLITE_OK)
			goto fail;
	}
	for (i = 0; i < ndrop; i++) {
		if (intent_drop(st, account, drop[i]) != SQLITE_OK)
			goto fail;
	}
	if (tx_commit(st) != SQLITE_OK)
		goto fail;
	return FAIL_NONE;
fail:
	db_fail(st, f);
	tx_rollback(st);
	return FAIL_LOCAL;
}

enum fail_kind
state_deliveries(struct state *st, const char *account, const char *uid,
    state_delivery_cb cb, void *arg, struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_DELIVERY_LIST);
	int rc, stop = 0;

	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, uid, -1, SQLITE_STATIC) != SQLITE_OK)
		goto fail;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);
		const unsigned char *r = sqlite3_column_text(s, 1);
		const unsigned char *res = sqlite3_column_text(s, 2);

		stop = cb(arg, t ? (const char *)t : "", r ? (const char *)r : "",
		    res ? (const char *)res : "");
	}
	if (!stop && rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(s);
	return FAIL_NONE;
fail:
	db_fail(st, f);
	sqlite3_reset(s);
	return FAIL_LOCAL;
}

struct intent_row {
	char *uid, *target, *ref;
	int shortened;
};

static void
intent_rows_free(struct intent_row *rows, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(rows[i].uid);
		free(rows[i].target);
		free(rows[i].ref);
	}
	free(rows);
}

static char *
column_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return xstrdup(t != NULL ? (const char *)t : "");
}

/* Read all rows first, so that the callbacks may use the state freely. */
enum fail_kind
state_intents(struct state *st, const char *account, state_intent_cb cb,
    void *arg, struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_INTENT_LIST);
	struct intent_row *rows = NULL;
	size_t n = 0, cap = 0, i;
	int rc;

	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xreallocarray(rows, cap, sizeof(*rows));
		}
		rows[n].uid = column_dup(s, 0);
		rows[n].target = column_dup(s, 1);
		rows[n].ref = column_dup(s, 2);
		rows[n].shortened = sqlite3_column_int(s, 3);
		n++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(s);
	for (i = 0; i < n; i++) {
		if (cb(arg, rows[i].uid, rows[i].target, rows[i].ref,
		    rows[i].shortened) != 0)
			break;
	}
	intent_rows_free(rows, n);
	return FAIL_NONE;
fail:
	db_fail(st, f);
	sqlite3_reset(s);
	intent_rows_free(rows, n);
	return FAIL_LOCAL;
}

enum fail_kind
state_intent_short(struct state *st, const char *account, const char *uid,
    struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_INTENT_SHORT);

	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(s, 2, uid, -1, SQLITE_STATIC) ||
	    stmt_done(s) != SQLITE_OK) {
		sqlite3_reset(s);
		return db_fail(st, f);
	}
	return FAIL_NONE;
}

enum fail_kind
state_drop_intents(struct state *st, const char *account, const char *uid,
    struct fail *f)
{
	if (intent_drop(st, account, uid) != SQLITE_OK)
		return db_fail(st, f);
	return FAIL_NONE;
}

enum fail_kind
state_stale_skips(struct state *st, const char *account, const char *digest,
    int *any, struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_STALE_SKIPS);
	int rc;

	*any = 0;
	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, digest != NULL ? digest : "", -1,
	    SQLITE_STATIC) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	*any = rc == SQLITE_ROW;
	sqlite3_reset(s);
	return FAIL_NONE;
fail:
	db_fail(st, f);
	sqlite3_reset(s);
	return FAIL_LOCAL;
}

enum fail_kind
state_poll_done(struct state *st, const char *account, const char *error,
    struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_POLL_SET);

	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) ||
	    sqlite3_bind_int64(s, 2, state_now()) ||
	    sqlite3_bind_text(s, 3, error, -1, SQLITE_STATIC) ||
	    stmt_done(s) != SQLITE_OK) {
		sqlite3_reset(s);
		return db_fail(st, f);
	}
	return FAIL_NONE;
}

static char *
column_dup_or_null(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return t != NULL ? xstrdup((const char *)t) : NULL;
}

enum fail_kind
state_status(struct state *st, const char *account, struct state_status *out,
    struct fail *f)
{
	sqlite3_stmt *s;
	int rc;

	memset(out, 0, sizeof(*out));
	s = stmt_get(st, ST_POLL_GET);
	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC))
		goto fail;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		out->last_poll = (time_t)sqlite3_column_int64(s, 0);
		out->last_ok = (time_t)sqlite3_column_int64(s, 1);
		out->last_error = column_dup_or_null(s, 2);
	} else if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(s);
	s = stmt_get(st, ST_STATUS);
	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC))
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct state_count_row *r;

		out->rows = xreallocarray(out->rows, out->nrows + 1,
		    sizeof(*out->rows));
		r = &out->rows[out->nrows++];
		memset(r, 0, sizeof(*r));
		r->key = column_dup(s, 0);
		r->filter = column_dup_or_null(s, 1);
		r->taken = (unsigned long)sqlite3_column_int64(s, 2);
		r->bytes = (unsigned long long)sqlite3_column_int64(s, 3);
		r->skipped = (unsigned long)sqlite3_column_int64(s, 4);
		r->deleted = (unsigned long)sqlite3_column_int64(s, 5);
		r->routed = (unsigned long)sqlite3_column_int64(s, 6);
		r->rejected = (unsigned long)sqlite3_column_int64(s, 7);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(s);
	s = stmt_get(st, ST_PENDING);
	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC))
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct state_count_row *r;

		out->rows = xreallocarray(out->rows, out->nrows + 1,
		    sizeof(*out->rows));
		r = &out->rows[out->nrows++];
		memset(r, 0, sizeof(*r));
		r->key = column_dup(s, 0);
		r->pending = (unsigned long)sqlite3_column_int64(s, 1);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(s);
	return FAIL_NONE;
fail:
	db_fail(st, f);
	sqlite3_reset(s);
	state_status_free(out);
	return FAIL_LOCAL;
}

void
state_status_free(struct state_status *s)
{
	for (size_t i = 0; i < s->nrows; i++) {
		free(s->rows[i].key);
		free(s->rows[i].filter);
	}
	free(s->rows);
	free(s->last_error);
	memset(s, 0, sizeof(*s));
}

/* -1 on error. */
long
state_count(struct state *st, const char *account)
{
	sqlite3_stmt *s = stmt_get(st, ST_COUNT);
	long n = -1;

	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return n;
}

/* ---- IMAP folders --------------------------------------------------------- */

enum fail_kind
state_folder_get(struct state *st, const char *account, const char *folder,
    uint32_t *uidvalidity, uint32_t *uidnext, int *found, struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_FOLDER_GET);
	int rc;

	*found = 0;
	*uidvalidity = *uidnext = 0;
	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(s, 2, folder, -1, SQLITE_STATIC))
		goto fail;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*found = 1;
		*uidvalidity = (uint32_t)sqlite3_column_int64(s, 0);
		*uidnext = (uint32_t)sqlite3_column_int64(s, 1);
		rc = sqlite3_step(s);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_reset(s);
	return FAIL_NONE;
fail:
	sqlite3_reset(s);
	return db_fail(st, f);
}

enum fail_kind
state_folder_set(struct state *st, const char *account, const char *folder,
    uint32_t uidvalidity, uint32_t uidnext, struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_FOLDER_SET);

	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(s, 2, folder, -1, SQLITE_STATIC) ||
	    sqlite3_bind_int64(s, 3, uidvalidity) ||
	    sqlite3_bind_int64(s, 4, uidnext) || stmt_done(s) != SQLITE_OK)
		return db_fail(st, f);
	return FAIL_NONE;
}

enum fail_kind
state_find_message(struct state *st, const char *account,
    const char *message_id, unsigned long long size,
    char result[STATE_RESULT_MAX], int *found, struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_MSGID_FIND);
	const unsigned char *r;
	int rc;

	*found = 0;
	result[0] = '\0';
	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(s, 2, message_id, -1, SQLITE_STATIC) ||
	    sqlite3_bind_int64(s, 3, (sqlite3_int64)size))
		goto fail;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*found = 1;
		r = sqlite3_column_text(s, 0);
		snprintf(result, STATE_RESULT_MAX, "%s", r ? (const char *)r : "");
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, f);
	return FAIL_NONE;
fail:
	sqlite3_reset(s);
	return db_fail(st, f);
}

enum fail_kind
state_delivered(struct state *st, const char *account,
    int (*cb)(void *arg, const char *uid), void *arg, struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_DELIVERED);
	int rc;

	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC)) {
		sqlite3_reset(s);
		return db_fail(st, f);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *uid = sqlite3_column_text(s, 0);

		if (uid != NULL && cb(arg, (const char *)uid) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, f);
	return FAIL_NONE;
}

enum fail_kind
state_due(struct state *st, const char *account, time_t delivered_before,
    const char *digest,
    int (*cb)(void *arg, const char *uid, const char *result), void *arg,
    struct fail *f)
{
	sqlite3_stmt *s = stmt_get(st, ST_DUE);
	struct uid_list uids = { NULL, 0, 0 }, res = { NULL, 0, 0 };
	size_t i;
	int rc;

	if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) ||
	    sqlite3_bind_int64(s, 2, delivered_before > 0 ?
	    (sqlite3_int64)delivered_before : -1) ||
	    sqlite3_bind_text(s, 3, digest != NULL ? digest : "", -1,
	    SQLITE_STATIC)) {
		sqlite3_reset(s);
		return db_fail(st, f);
	}
	/* read first: the callbacks may use the state */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *uid = sqlite3_column_text(s, 0);
		const unsigned char *r = sqlite3_column_text(s, 1);

		if (uid == NULL || r == NULL)
			continue;
		uid_list_add(&uids, (const char *)uid);
		uid_list_add(&res, (const char *)r);
	}
	sqlite3_reset(s);
	for (i = 0; rc == SQLITE_DONE && i < uids.n; i++)
		if (cb(arg, uids.v[i], res.v[i]) != 0)
			break;
	uid_list_free(&uids);
	uid_list_free(&res);
	if (rc != SQLITE_DONE)
		return db_fail(st, f);
	return FAIL_NONE;
}

enum fail_kind
state_set_result(struct state *st, const char *account,
    const char *const *uids, size_t n, const char *result, struct fail *f)
{
	if (tx_begin(st) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = stmt_get(st, ST_SET_RESULT);

		if (sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC) ||
		    sqlite3_bind_text(s, 2, uids[i], -1, SQLITE_STATIC) ||
		    sqlite3_bind_text(s, 3, result, -1, SQLITE_STATIC) ||
		    stmt_done(s) != SQLITE_OK)
			goto fail;
	}
	if (tx_commit(st) != SQLITE_OK)
		goto fail;
	return FAIL_NONE;
fail:
	db_fail(st, f);
	tx_rollback(st);
	return FAIL_LOCAL;
}
