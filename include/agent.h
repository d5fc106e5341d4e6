/* agent.h - one poll of one account: the pipeline and its ordering.
 *
 * For each batch of new messages: record intents (one transaction), stream
 * each message to every target, sync the targets (one sync), record outcomes
 * (one transaction), and only then delete on the server if keep = no.
 * Intents left by a crash are settled first.
 */
#ifndef MAILPULL_AGENT_H
#define MAILPULL_AGENT_H

#include "config.h"
#include "state.h"

struct run_opts {
	int dry_run;            /* -n: list and report, change nothing */
	int keep;               /* -k: delete nothing this run */
	int all;                /* -a: take messages already recorded too */
	size_t batch;           /* messages per batch (group commit); 0 = default */
};

/* Poll one account. Returns the exit status for it (0 = fine), having
 * logged one clear line for any failure. */
int agent_poll(const struct config *cfg, struct account *a, struct state *st,
    const struct run_opts *o);

#endif
