/* state.h - what was taken, in SQLite. The only user of sqlite3.h.
 *
 * Schema carries a version and migrates forward; WAL journal; prepared
 * statements; each batch is one transaction. Accounts are keyed by name.
 * Every call returns FAIL_NONE or FAIL_LOCAL with *f set.
 */
#ifndef MAILPULL_STATE_H
#define MAILPULL_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "fail.h"

struct state;

/* Open or create the database (and its parent directory, mode 0700). */
enum fail_kind state_open(struct state **out, const char *path, struct fail *f);
void state_close(struct state *st);

enum seen_status {
	SEEN_NEW = 0,           /* never taken */
	SEEN_DELIVERED = 1,     /* delivered: delete it on the server if keep = no */
	SEEN_KEPT = 2,          /* recorded otherwise (e.g. delivered short):
	                         * neither taken again nor deleted */
	SEEN_DOOMED = 3,        /* a filter said delete ("deleted"): delete it
	                         * whatever keep says */
};

/* Classify a complete listing of the mailbox in one set operation (not one
 * query per uid). out[i] gets the status of uids[i]. Also tracks vanished
 * uids: a recorded uid absent from the listing is marked gone (with the
 * time); one gone for longer than prune_after seconds (< 0: never) is
 * forgotten; one that reappears is unmarked. flags: see below. */
#define STATE_READONLY  1       /* dry run: fill out[], write nothing */
#define STATE_PARTIAL   2       /* the listing is not the whole mailbox (IMAP
                                 * new mail): no gone tracking, no pruning */
/* digest: the account's filters now (filter_digest; NULL or "" with none):
 * a message recorded as skipped, or as deleted by a filter but not yet
 * gone, under other filters is SEEN_NEW again. */
enum fail_kind state_classify(struct state *st, const char *account,
    const char *const *uids, size_t n, unsigned char *out, long prune_after,
    int flags, const char *digest, struct fail *f);
/* Is any message of the account recorded as skipped, or as deleted by a
 * filter and not yet gone, under filters other than digest? (IMAP then
 * lists the whole folder again.) */
enum fail_kind state_stale_skips(struct state *st, const char *account,
    const char *digest, int *any, struct fail *f);

/* Before delivering a batch: one transaction recording, for each message and
 * target, the name the message will have there. */
struct intent {
	const char *uid;
	const char *target;     /* target_spec.text */
	const char *ref;        /* the target's plan() name */
};
enum fail_kind state_add_intents(struct state *st, const char *account,
    const struct intent *v, size_t n, struct fail *f);

/* After the batch is durable: one transaction recording each outcome and
 * deleting those uids' intents. Recording a uid again replaces its row. */
struct outcome {
	const char *uid;
	unsigned long long size;
	const char *message_id; /* may be NULL */
	const char *result;     /* "delivered", "short", "rejected: ...",
	                         * "skipped", "deleted", ... */
	const char *filter;     /* the filter that decided, or NULL */
	const char *digest;     /* skipped: the filters' digest then */
};
enum fail_kind state_record(struct state *st, const char *account,
    const struct outcome *v, size_t n, struct fail *f);
/* The same, and in the same transaction: add the per-target rows d[]
 * (what each target now holds), then record the outcomes v[] (messages
 * every target has an outcome for), then forget the intents of drop[] (the
 * rest of the batch). A batch is settled all at once, so that a crash never
 * leaves the intents of a batch some of whose messages are recorded. */
struct delivery {
	const char *uid;
	const char *target;     /* target_spec.text */
	const char *ref;        /* the target's name for the copy */
	const char *result;     /* "delivered", "short", "rejected: ..." */
};
enum fail_kind state_record_batch(struct state *st, const char *account,
    const struct outcome *v, size_t n, const struct delivery *d, size_t nd,
    const char *const *drop, size_t ndrop, struct fail *f);

/* What each target holds of one uid (rows of state_record_batch's d[]),
 * one callback per target; non-zero from cb stops the walk; cb must not
 * use st. Rows of a uid forgotten by state_classify are forgotten with it. */
typedef int (*state_delivery_cb)(void *arg, const char *target,
    const char *ref, const char *result);
enum fail_kind state_deliveries(struct state *st, const char *account,
    const char *uid, state_delivery_cb cb, void *arg, struct fail *f);

/* Intents left from an interrupted run, one callback per row; a callback
 * returning non-zero stops the walk. */
typedef int (*state_intent_cb)(void *arg, const char *uid, const char *target,
    const char *ref, int shortened);
enum fail_kind state_intents(struct state *st, const char *account,
    state_intent_cb cb, void *arg, struct fail *f);
/* The message of uid's intents arrived shorter than announced: said
 * durably at once, before the batch is synced (see state_intents). */
enum fail_kind state_intent_short(struct state *st, const char *account,
    const char *uid, struct fail *f);
/* Forget the intents of one uid (its delivery did not happen). */
enum fail_kind state_drop_intents(struct state *st, const char *account,
    const char *uid, struct fail *f);

/* IMAP: per folder, the UIDVALIDITY and UIDNEXT seen at the last poll
 * (account is the account's name, folder the server's name for it). */
enum fail_kind state_folder_get(struct state *st, const char *account,
    const char *folder, uint32_t *uidvalidity, uint32_t *uidnext, int *found,
    struct fail *f);
enum fail_kind state_folder_set(struct state *st, const char *account,
    const char *folder, uint32_t uidvalidity, uint32_t uidnext,
    struct fail *f);

/* After a UIDVALIDITY change: was a message with this Message-ID and size
 * taken before (under any uid of this account key)? If so *found = 1 and
 * result gets what was recorded for it ("delivered", "expunged", ...). */
#define STATE_RESULT_MAX 32
enum fail_kind state_find_message(struct state *st, const char *account,
    const char *message_id, unsigned long long size,
    char result[STATE_RESULT_MAX], int *found, struct fail *f);

/* The uids recorded as "delivered" (IMAP keep = no: still to be deleted),
 * one callback each; non-zero from cb stops the walk. */
enum fail_kind state_delivered(struct state *st, const char *account,
    int (*cb)(void *arg, const char *uid), void *arg, struct fail *f);
/* The uids due for deletion on the server, one callback each: those a
 * filter said to delete (result "deleted") under the filters digest (one
 * recorded under other filters is not: state_classify has it examined
 * again), and those delivered at or before delivered_before (keep = no:
 * now; keep = DAYS: that long ago; 0: none of them). Non-zero from cb
 * stops the walk. */
enum fail_kind state_due(struct state *st, const char *account,
    time_t delivered_before, const char *digest,
    int (*cb)(void *arg, const char *uid, const char *result), void *arg,
    struct fail *f);
/* Change the recorded result of uids (one transaction), e.g. to
 * "expunged" once the server has deleted them. */
enum fail_kind state_set_result(struct state *st, const char *account,
    const char *const *uids, size_t n, const char *result, struct fail *f);

/* The end of a poll of an account: when, and its error (NULL: it went
 * well). */
enum fail_kind state_poll_done(struct state *st, const char *account,
    const char *error, struct fail *f);

/* --status: what was recorded for an account and its folders. One row per
 * key (the account, or "account\x1ffolder" for IMAP) and filter (NULL:
 * none decided), and one row per key with the messages some target still
 * lacks (pending). */
struct state_count_row {
	char *key;
	char *filter;                   /* "skip:NAME", "deliver:NAME", ... */
	unsigned long taken, skipped, deleted, routed, rejected, pending;
	unsigned long long bytes;       /* of the taken ones */
};
struct state_status {
	time_t last_poll, last_ok;      /* 0: never */
	char *last_error;               /* of the last poll, or NULL */
	struct state_count_row *rows;
	size_t nrows;
};
enum fail_kind state_status(struct state *st, const char *account,
    struct state_status *out, struct fail *f);
void state_status_free(struct state_status *s);

/* Number of uids recorded for an account (tests, --status later). */
long state_count(struct state *st, const char *account);

/* Tests: replace time(). NULL restores it. */
void state_test_set_clock(time_t (*now)(void));

#endif
