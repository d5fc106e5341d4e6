/* daemon.h - the loop around polls: several accounts at once, the daemon's
 * schedule, signals, back-off and IMAP IDLE.
 */
#ifndef MAILPULL_DAEMON_H
#define MAILPULL_DAEMON_H

#include <stddef.h>
#include "agent.h"
#include "config.h"

/* Poll v[0..n) once, up to cfg->parallel at a time, each in its own thread
 * with its own state connection. Returns the worst exit status (fail.h's
 * ranking); *taken (may be NULL) gets the messages taken. */
int run_polls(const struct config *cfg, const struct account *const *v,
    size_t n, const struct run_opts *o, unsigned long *taken);

struct daemon_opts {
	const char *config_path;        /* re-read on SIGHUP */
	int interval;                   /* -i: overrides every interval; 0: none */
	char **accounts;                /* the accounts named on the command */
	int naccounts;                  /* line (0: all) */
	struct run_opts run;
	int log_level;                  /* for a re-read config's log = */
};

/* -d: poll every account every interval until SIGTERM/SIGINT (which let
 * the message in flight finish); SIGHUP re-reads the config (a bad one is
 * reported and the old one kept); SIGUSR1 polls every account now. An
 * account that fails backs off (doubling, capped at an hour or its
 * interval, said once per change); IMAP accounts with idle = yes keep an
 * IDLE connection on INBOX and are polled within seconds of new mail.
 * Takes ownership of *cfg. Returns 0 after a clean stop. */
int daemon_run(struct config *cfg, const struct daemon_opts *d);

#endif
