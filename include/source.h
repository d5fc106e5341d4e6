/* source.h - a mail source (POP3 now, IMAP later): one table of functions.
 *
 * The agent drives a poll through these calls only; it never speaks a
 * protocol. A source never writes a file: message bytes go to a msg_sink.
 * Every call returns FAIL_NONE or a fail kind with *f filled (one line, no
 * account prefix: the agent adds "account: host:port: ").
 */
#ifndef MAILPULL_SOURCE_H
#define MAILPULL_SOURCE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "conn.h"
#include "fail.h"

enum auth_choice {
	AUTH_AUTO = 0, AUTH_USER, AUTH_APOP, AUTH_PLAIN, AUTH_LOGIN,
	AUTH_SCRAM_SHA_256, AUTH_XOAUTH2, AUTH_OAUTHBEARER,
};

struct source_params {
	const char *account;            /* for debug lines only */
	struct conn_params conn;
	enum tls_mode tls;
	const char *user;
	const char *secret;             /* password or OAuth2 token; never logged */
	enum auth_choice auth;
	int allow_plaintext;            /* allow a cleartext secret without TLS */
	size_t window;                  /* pipelining window (commands in flight); 0 = default */
};

struct msg {
	char uid[72];                   /* POP3: the UIDL (1-70 chars of
	                                 * 0x21-0x7e); IMAP: "UIDVALIDITY:UID" */
	unsigned num;                   /* POP3 message number in this session */
	unsigned long long size;        /* size the server announced (octets) */
	uint32_t imap_uid;              /* IMAP: the UID; 0 for POP3 */
	time_t internaldate;            /* IMAP: INTERNALDATE; 0 if unknown */
	char flags[8];                  /* IMAP: Maildir info letters from the
	                                 * server's flags, in ASCII order:
	                                 * D \Draft, F \Flagged, R \Answered,
	                                 * S \Seen, T \Deleted; "" for POP3 */
};

/* A folder to poll (IMAP). POP3 has one implicit folder and no such ops. */
struct folder {
	char *name;                     /* as the server names it (mUTF-7) */
	char *utf8;                     /* the same, decoded, for local names */
	char delim;                     /* hierarchy delimiter; 0 if none */
};

struct folder_status {
	uint32_t uidvalidity;
	uint32_t uidnext;               /* 0 if the server did not say */
	uint32_t exists;
	int uidplus;                    /* UID EXPUNGE is available */
};

void folders_free(struct folder *v, size_t n);

/* What a source hands message bytes to. Callbacks return FAIL_NONE or a
 * kind with *f set. begin(i) .. write()* .. end(i) for each message in turn;
 * abort(i) instead of end(i) when the message could not be read whole. If a
 * callback fails, the source calls no more callbacks for this fetch, drains
 * the replies already requested so the session stays usable (or, if it
 * cannot, fails with FAIL_CONN), and returns the callback's failure. */
struct msg_sink {
	void *arg;
	enum fail_kind (*begin)(void *arg, size_t i, struct fail *f);
	enum fail_kind (*write)(void *arg, const char *p, size_t n, struct fail *f);
	enum fail_kind (*end)(void *arg, size_t i, struct fail *f);
	void (*abort)(void *arg, size_t i);
};

struct source_ops {
	const char *name;
	/* Connect, greet, negotiate TLS, log in. *src owns the session. */
	enum fail_kind (*open)(void **src, const struct source_params *p, struct fail *f);
	/* POP3: the whole mailbox (since is ignored). IMAP: the messages of
	 * the selected folder whose UID is >= since, with size, flags and
	 * INTERNALDATE. In server order; *v is xmalloc'd, the caller frees it. */
	enum fail_kind (*list)(void *src, uint32_t since, struct msg **v,
	    size_t *n, struct fail *f);
	/* Stream msgs[0..n) to the sink, pipelined where the server allows. The
	 * index passed to the sink is the position in msgs. A message the
	 * server refuses to send is skipped with a warning (no callbacks for
	 * it); the fetch still returns FAIL_NONE. */
	enum fail_kind (*fetch)(void *src, const struct msg *const *msgs, size_t n,
	    const struct msg_sink *sink, struct fail *f);
	/* Mark msgs for deletion (POP3: DELE; takes effect at close(commit=1)).
	 * A message the server refuses to delete is named in a warning and
	 * the others go on; then FAIL_TEMP is returned with a summary in *f,
	 * *refused says how many, and the session stays usable. Any other
	 * failure ends the session. */
	enum fail_kind (*del)(void *src, const struct msg *const *msgs, size_t n,
	    size_t *refused, struct fail *f);
	/* IMAP only (NULL for POP3). The folders to poll: the names in
	 * want[0..nwant) (each must exist and be selectable), or, if want is
	 * { "*" }, every selectable folder (LIST "" "*", \Noselect and
	 * \NonExistent skipped). *v is the caller's: folders_free(). */
	enum fail_kind (*folders)(void *src, const char *const *want,
	    size_t nwant, struct folder **v, size_t *n, struct fail *f);
	/* IMAP only: SELECT a folder; what list/fetch/del/seen then act on. */
	enum fail_kind (*select)(void *src, const struct folder *fo,
	    struct folder_status *st, struct fail *f);
	/* Header-first (IMAP BODY.PEEK[HEADER]; POP3 TOP n 0, pipelined
	 * where the server allows): the header section of each of msgs, raw
	 * (CRLF as received, POP3 dot-stuffing undone, up to and including
	 * the empty line that ends it; body lines a server sends anyway are
	 * dropped), to cb(arg, i, bytes, len) where i is the index in msgs;
	 * bytes is valid during the call only. A header too big to hold (over
	 * 64 KiB), absent, or refused by the server (POP3 -ERR, logged with
	 * -v) gives no call, and the others go on. When header_first() is 0,
	 * sends nothing, makes no call and returns FAIL_NONE. */
	enum fail_kind (*headers)(void *src, const struct msg *const *msgs,
	    size_t n, void (*cb)(void *arg, size_t i, const char *p, size_t len),
	    void *arg, struct fail *f);
	/* 1 when headers() can be used in this session; 0 when the server
	 * cannot: the caller then fetches whole messages and filters after
	 * download. IMAP: always 1. POP3: 0 when CAPA was answered without
	 * TOP; on a server that did not answer CAPA, 1 until its first TOP
	 * is refused (before any succeeded), 0 from then on: headers() then
	 * stops sending TOP, so ask again after it returns. */
	int (*header_first)(void *src);
	/* IMAP only: set \Seen on msgs (mark_seen = yes), after delivery. */
	enum fail_kind (*seen)(void *src, const struct msg *const *msgs,
	    size_t n, struct fail *f);
	/* IMAP only (NULL for POP3): wait on the selected folder for new mail
	 * (RFC 2177 IDLE), on a connection of its own.
	 * - Server without IDLE (nor IMAP4rev2), or one that answers IDLE
	 *   with a tagged NO: sends nothing more, *news = -1, FAIL_NONE (a NO
	 *   is warned about once; later calls return -1 at once): poll instead.
	 * - New mail is an untagged EXISTS above the folder's count at that
	 *   moment (after any EXPUNGEs). One that came since SELECT or the
	 *   last return (during list/fetch on this session, say) returns
	 *   *news = 1 at once, without IDLE. RECENT, FETCH (flags; literals
	 *   in it are read and dropped, within the parser's caps), EXPUNGE
	 *   and "* OK still here" keep it idling.
	 * - Otherwise sends IDLE, waits for the "+" (any text, or none; within
	 *   the inactivity timeout), then returns on new mail (*news = 1),
	 *   when max_seconds have passed (clamped to 1..29*60; the caller
	 *   re-issues, e.g. every 25*60), or when *stop becomes non-zero
	 *   (*news = 0 for both). stop (may be NULL) is read at least once a
	 *   second and after every signal; set before the call, nothing is
	 *   sent. In each case DONE is sent and the tagged OK read, so the
	 *   session stays SELECTED and usable (a server that ends IDLE with
	 *   its own tagged OK gets no DONE).
	 * - A BYE, a cut connection or a broken response: FAIL_CONN (or
	 *   FAIL_PROTO / FAIL_TEMP for an out-of-step or silent server), the
	 *   message naming the folder; the session is then dead: close(src,
	 *   0). No folder selected: FAIL_PROTO. */
	enum fail_kind (*idle)(void *src, int max_seconds,
	    volatile sig_atomic_t *stop, int *news, struct fail *f);
	/* commit = 1: end the session properly (POP3 QUIT, which applies the
	 * deletions; an error here is returned). commit = 0: just drop the
	 * connection. Frees the session in both cases. */
	enum fail_kind (*close)(void *src, int commit, struct fail *f);
	/* "host:port" for log lines. */
	const char *(*server)(void *src);
};

extern const struct source_ops pop3_source;
extern const struct source_ops imap_source;

#endif
