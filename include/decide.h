/* decide.h - what to do with each new message, before it is downloaded:
 * the account's max_size and filters applied to the sizes from the listing
 * and, when some filter needs them, the headers (POP3 TOP, IMAP
 * BODY.PEEK[HEADER]) fetched for the whole list at once.
 *
 * The pure matching is filter.h's; this module fetches what the filters
 * need through the source's table of functions and names the outcome.
 */
#ifndef MAILPULL_DECIDE_H
#define MAILPULL_DECIDE_H

#include <stddef.h>
#include "config.h"
#include "source.h"

enum decision_kind {
	D_TAKE = 0,     /* deliver to the account's targets */
	D_SKIP,         /* a filter said skip: leave it on the server, record it */
	D_DELETE,       /* a filter said delete: delete it on the server, unread */
	D_ROUTE,        /* a filter said deliver:TARGET: to that target alone */
	D_BIG,          /* larger than max_size: leave it on the server */
	D_LATE,         /* the server cannot send headers alone: decide once
	                 * the header has arrived with the message */
};

struct decision {
	unsigned char what;             /* enum decision_kind */
	const struct filter_def *by;    /* the filter that decided, or NULL */
	char *tag;                      /* recorded with it: "skip:NAME",
	                                 * "delete:NAME", "deliver:NAME",
	                                 * "max_size"; NULL for D_TAKE */
	char *from, *subject;           /* with show: for the dry run's report */
};

/* Decide for v[0..n). Fetches headers when a filter needs them, or when
 * show is set (the dry run reports From and Subject). A message whose
 * header could not be had is judged on its size alone (header conditions
 * are false: it is taken unless a size rule says otherwise), which never
 * loses mail. When the server cannot send headers alone, the messages that
 * need them get D_LATE and a line says so once per poll. out[] is the
 * caller's; decisions_free() it. */
enum fail_kind decide_messages(const struct account *a,
    const struct source_ops *ops, void *src, const struct msg *const *v,
    size_t n, int show, struct decision *out, struct fail *f);

/* Decide one message from its header block (D_LATE, once the header has
 * arrived). */
void decide_from_header(const struct account *a, const char *p, size_t len,
    unsigned long long size, struct decision *d);

void decisions_free(struct decision *d, size_t n);

/* The word for a decision in reports: "take", "skip", "delete",
 * "deliver", "too big". */
const char *decision_word(const struct decision *d);

#endif
