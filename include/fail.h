/* fail.h - the one failure vocabulary of mailpull.
 *
 * Every operation that can fail returns an enum fail_kind (FAIL_NONE == 0 on
 * success) and, where it says so, fills a struct fail with one human line.
 * The agent logs that line once, prefixed with account and server; lower
 * layers do not log the error themselves (they may log_debug details).
 * fail_exit_code() is the only place a failure becomes a sysexits status.
 */
#ifndef MAILPULL_FAIL_H
#define MAILPULL_FAIL_H

#include <stddef.h>

enum fail_kind {
	FAIL_NONE = 0,
	FAIL_TEMP,      /* try again later: timeout, -ERR in use, 4xx (EX_TEMPFAIL 75) */
	FAIL_CONN,      /* cannot reach / connection lost / TLS refused (EX_UNAVAILABLE 69) */
	FAIL_PROTO,     /* the server said something we cannot accept (69) */
	FAIL_AUTH,      /* login refused or no safe mechanism (EX_NOPERM 77) */
	FAIL_REJECTED,  /* a target refused this message permanently (73) */
	FAIL_LOCAL,     /* a local target or the state could not be written (EX_CANTCREAT 73) */
	FAIL_CONFIG,    /* configuration error (EX_CONFIG 78) */
};

struct fail {
	enum fail_kind kind;
	char msg[512];          /* one line, no trailing newline, no secrets */
};

/* Fill f (if not NULL) with kind and a printf-formatted message; returns kind
 * so that callers can `return fail_set(f, FAIL_PROTO, "...")`. */
enum fail_kind fail_set(struct fail *f, enum fail_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The sysexits status for a kind (0 for FAIL_NONE). */
int fail_exit_code(enum fail_kind kind);

/* Severity order for "the worst outcome wins" across accounts. */
int fail_exit_rank(int exit_code);

const char *fail_kind_name(enum fail_kind kind);

#endif
