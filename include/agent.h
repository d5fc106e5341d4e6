/* agent.h - one poll of one account: the pipeline and its ordering.
 *
 * Start-up: intents left by an interrupted run are settled (the target says
 * whether the message got there; delivered ones are recorded, the others
 * forgotten and fetched again). Then, for each batch of new messages: record
 * intents (one transaction), stream each message to every target, sync the
 * targets (one sync), record outcomes (one transaction), and only then mark
 * them deleted on the server if keep = no; QUIT at the end applies that.
 */
#ifndef MAILPULL_AGENT_H
#define MAILPULL_AGENT_H

#include <signal.h>
#include "config.h"
#include "state.h"

struct run_opts {
	int dry_run;            /* -n: list and report, change nothing */
	int keep;               /* -k: delete nothing this run */
	int all;                /* -a: take messages already recorded too */
	size_t batch;           /* messages per batch (group commit); 0 = default */
	int json;               /* --json: the dry run's lines as JSON */
	int progress;           /* a progress line on stdout (a terminal) */
};

struct poll_result {
	unsigned long taken;            /* messages delivered */
	unsigned long long bytes;       /* their size on the server */
	unsigned long deleted;          /* marked deleted and QUIT accepted */
	unsigned long skipped;          /* left on the server by a filter or max_size */
	unsigned long filtered_out;     /* deleted unread by a filter */
	unsigned long routed;           /* taken to a filter's own target */
	int hard;                       /* the poll itself failed (not only some
	                                 * messages or a target): back off */
};

/* Set (from a signal handler) to stop polls soon: no new message is begun;
 * what arrived whole is made durable and recorded; the session is dropped
 * without deleting. The poll then returns 75 (temporary). */
extern volatile sig_atomic_t agent_stop;

/* Poll one account. Returns the sysexits status for it (0 = fine), having
 * logged one clear line for any failure. res may be NULL. */
int agent_poll(const struct config *cfg, const struct account *a,
    struct state *st, const struct run_opts *o, struct poll_result *res);

/* --check: log in to the account (then log out) and open each target;
 * one line for each problem. Returns the exit status for it. */
int agent_check(const struct config *cfg, const struct account *a);

/* The daemon's IDLE connection for a folder of an IMAP account (idle =
 * yes): log in, select it, IDLE until *stop (re-issued every 25 minutes), calling
 * news(arg) for each arrival of new mail. Returns 0 when stopped, -1 when
 * the server has no IDLE (poll it instead), else the exit status of the
 * failure (said in one line; the caller tries again later). */
int agent_idle(const struct config *cfg, const struct account *a,
    const char *folder, volatile sig_atomic_t *stop,
    void (*news)(void *arg), void *arg);

#endif
