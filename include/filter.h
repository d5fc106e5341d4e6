/* filter.h - take / skip / delete / route a message from its headers and
 * size, before it is downloaded. Pure: no I/O, no config file, no sockets.
 *
 * One struct filter is one `[filter NAME]` section. The config builds it key
 * by key (filter_new, filter_set per line, filter_finish at the end of the
 * section); the agent then asks filter_decide() for each message:
 *
 *   hdr = filter_headers_parse(block, len);     once per message
 *   m.size = size; m.headers = hdr;
 *   fl = filter_decide(list, n, &m);            NULL: take it
 *   filter_headers_free(hdr);
 *
 * A filter is immutable once finished and may then be shared read-only by
 * any number of threads. Keys and keywords are as in DESIGN.md §3; keywords
 * (any, all, skip, delete, deliver) are case-insensitive, key names are not.
 *
 * Errors: filter_set() and filter_finish() return -1 and set *err to one
 * short line without a file name ("bad regex in header: ..."); the config
 * prefixes FILE:LINE. *err is static or thread-local: valid until the next
 * call in the same thread. 0 on success.
 */
#ifndef MAILPULL_FILTER_H
#define MAILPULL_FILTER_H

#include <stddef.h>

/* Bytes of a header block that are looked at; the rest is ignored. */
#define FILTER_HEADER_MAX (256 * 1024)
/* Bytes of one RFC 2047-decoded value; longer decodings are cut there. */
#define FILTER_DECODED_MAX (64 * 1024)

enum filter_action {
	FILTER_SKIP,            /* leave it on the server, unread; record it */
	FILTER_DELETE,          /* delete it on the server, unread */
	FILTER_DELIVER,         /* take it, to filter_target() instead */
};

struct filter;                  /* opaque */
struct filter_headers;          /* opaque: one parsed header block */

/* What a filter looks at. headers may be NULL when none were fetched: header
 * conditions are then false (as for a message without those fields). */
struct filter_msg {
	unsigned long long size;                /* LIST / RFC822.SIZE, bytes */
	const struct filter_headers *headers;
};

/* --- building (the config) ---------------------------------------------- */

/* A new, empty filter called name (copied). Never NULL. */
struct filter *filter_new(const char *name);
/* Release fl and everything it holds. NULL is fine. */
void filter_free(struct filter *fl);

/* One key of the section; value is the config value (already trimmed and
 * ~/$VAR-expanded as the config does for every value):
 *   header = NAME: REGEX   repeatable; POSIX extended regex, case-insensitive,
 *                          on each unfolded NAME field (leading blanks of
 *                          REGEX dropped); true if any NAME field matches,
 *                          raw or RFC 2047-decoded
 *   from = REGEX           header = From: REGEX
 *   to = REGEX             true if a To or a Cc field matches
 *   larger_than = SIZE     size > SIZE;  smaller_than = SIZE: size < SIZE
 *   match = any | all      any (default): one condition; all: every one
 *   action = skip | delete | deliver:TARGET   (TARGET kept as text)
 * larger_than, smaller_than, match and action may be given once. */
int filter_set(struct filter *fl, const char *key, const char *value,
    const char **err);
/* End of the section: -1 unless it has an action and at least one
 * condition. */
int filter_finish(struct filter *fl, const char **err);

/* "123", "10k", "25M", "2G" (k = 1024; suffix either case; no blanks, no
 * sign) into *out. 0 ok, -1 if malformed or above 2^64-1. */
int filter_parse_size(const char *s, unsigned long long *out);

/* --- reading a filter ---------------------------------------------------- */

const char *filter_name(const struct filter *fl);
enum filter_action filter_action(const struct filter *fl);
/* The TARGET text of `action = deliver:TARGET` ("maildir:~/Mail/junk"), or
 * NULL for other actions. Owned by fl. */
const char *filter_target(const struct filter *fl);
/* "skip", "delete", "deliver". */
const char *filter_action_name(enum filter_action a);

/* 1 if fl has a header/from/to condition, 0 if it looks at the size only
 * (then no header need be fetched for it). */
int filter_needs_headers(const struct filter *fl);
/* 1 if any filter of the list needs headers. */
int filter_list_needs_headers(struct filter *const *list, size_t n);

/* Lower-case hex SHA-256 of the list's configuration: every filter's name
 * and its keys and values in the order given, in list order. Stable across
 * runs and builds; changes when any of these change. Recorded with skipped
 * messages so that they are examined again after the filters change. */
void filter_digest(struct filter *const *list, size_t n, char out[65]);

/* --- headers and evaluation ---------------------------------------------- */

/* Parse a header block as the server sent it: CRLF or LF line ends, with or
 * without the final empty line (anything after it is ignored), possibly
 * with NUL and 8-bit bytes. Only the first FILTER_HEADER_MAX bytes are
 * looked at. Lines that are neither a field ("Name: value") nor a
 * continuation of one (leading space or tab) are ignored. Each field's value
 * is unfolded (line breaks before blanks removed), stripped of leading and
 * trailing blanks, NUL bytes turned into spaces; where it holds RFC 2047
 * encoded words, a decoded copy is kept as well (see filter_headers_get).
 * p may be NULL when len is 0. Never NULL; the result does not point into p. */
struct filter_headers *filter_headers_parse(const char *p, size_t len);
void filter_headers_free(struct filter_headers *h);
/* Number of fields parsed. */
size_t filter_headers_count(const struct filter_headers *h);
/* The value of the first field called name (case-insensitive), decoded if
 * it holds encoded words, else raw; NULL if there is none. Owned by h.
 * RFC 2047: =?CHARSET?Q?...?= and ?B?, adjacent decoded words separated only
 * by blanks joined; UTF-8 and US-ASCII kept as they are; ISO-8859-1,
 * ISO-8859-15 and Windows-1252 converted to UTF-8; a word in another
 * charset, or malformed, is kept raw. */
const char *filter_headers_get(const struct filter_headers *h,
    const char *name);
/* The raw unfolded value of the first field called name, or NULL. */
const char *filter_headers_get_raw(const struct filter_headers *h,
    const char *name);

/* 1 if m satisfies fl's conditions (any or all of them), else 0. */
int filter_match(const struct filter *fl, const struct filter_msg *m);
/* The first filter of list[0..n) that matches m, or NULL: take it. */
const struct filter *filter_decide(struct filter *const *list, size_t n,
    const struct filter_msg *m);

#endif
