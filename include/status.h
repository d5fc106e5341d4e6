/* status.h - `mailpull --status`: per account, the last poll and its
 * outcome, and per folder and filter what the state recorded (taken,
 * skipped, deleted unread, routed, rejected, pending). */
#ifndef MAILPULL_STATUS_H
#define MAILPULL_STATUS_H

#include <stdio.h>
#include "config.h"
#include "state.h"

/* Print accts[0..n) to fp as text, or as one JSON object per account.
 * 0 ok; -1 after printing the error to stderr. */
int status_print(FILE *fp, struct state *st, const struct account *const *accts,
    size_t n, int json);

#endif
