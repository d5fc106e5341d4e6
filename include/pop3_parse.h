/* pop3_parse.h - pure POP3 reply parsing and the body decoder. No I/O.
 *
 * Lines are given without their CRLF and are NUL-terminated.
 */
#ifndef MAILPULL_POP3_PARSE_H
#define MAILPULL_POP3_PARSE_H

#include <stddef.h>
#include "fail.h"

#define POP3_UID_MAX 70         /* RFC 1939: 1-70 chars of 0x21-0x7e */
#define POP3_LINE_MAX 1024      /* our cap for a reply line (RFC: 512) */

/* Status line: returns 1 for "+OK", 0 for "-ERR", -1 if malformed. *text
 * (may be NULL) is set to the text after the status and one space. */
int pop3_status(const char *line, const char **text);

/* RFC 2449 / 3206 response code in "-ERR [CODE] text": FAIL_AUTH for [AUTH],
 * FAIL_TEMP for [IN-USE], [LOGIN-DELAY], [SYS/TEMP]; FAIL_PROTO otherwise
 * (SYS/PERM and no code). */
enum fail_kind pop3_err_kind(const char *text, enum fail_kind dflt);

/* Continuation line of a SASL exchange "+ BASE64" (or "+" alone). Returns 1
 * and *b64 (points into line) if it is one, 0 if not. */
int pop3_is_continuation(const char *line, const char **b64);

/* "N UID" of a UIDL listing. 0 ok, -1 malformed (bad number, uid length or
 * characters, trailing junk). */
int pop3_parse_uidl(const char *line, unsigned *num, char uid[POP3_UID_MAX + 1]);
/* "N SIZE" of a LIST listing (extra words after SIZE are allowed). */
int pop3_parse_list(const char *line, unsigned *num, unsigned long long *size);

struct pop3_caps {
	unsigned seen_capa:1;   /* CAPA answered +OK */
	unsigned top:1, uidl:1, user:1, pipelining:1, stls:1;
	unsigned sasl;          /* bit (1u << enum sasl_mech) per mechanism offered */
	unsigned apop:1;        /* greeting carried a timestamp */
	char apop_stamp[256];   /* "<...@...>" from the greeting */
};
/* One line of a CAPA listing (not the "." terminator). */
void pop3_caps_line(struct pop3_caps *caps, const char *line);
/* Extract the APOP timestamp from a greeting text; sets apop and apop_stamp. */
void pop3_caps_greeting(struct pop3_caps *caps, const char *greeting);

/* Multi-line body decoder: undoes dot-stuffing and finds the terminating
 * "." line, correct for any split of the input across calls. CR/LF bytes are
 * passed through unchanged (a bare LF also ends a line). */
struct dot_decoder {
	int state;
	unsigned long long bytes;       /* payload bytes emitted so far */
};
enum dot_result { DOT_MORE, DOT_DONE, DOT_SINK_FAILED };
typedef int (*dot_out_fn)(void *arg, const char *p, size_t n);   /* 0 ok, -1 fail */

void dot_decoder_init(struct dot_decoder *d);
/* Feed in[0..n). Emits payload in as few spans as possible. *consumed is the
 * number of input bytes used: all of them for DOT_MORE; up to and including
 * the terminator line for DOT_DONE (the rest belongs to the next reply). On
 * DOT_SINK_FAILED the decoder keeps going on later calls with out == NULL
 * (discarding), so the caller can drain the reply. out may be NULL (discard). */
enum dot_result dot_decode(struct dot_decoder *d, const char *in, size_t n,
    size_t *consumed, dot_out_fn out, void *arg);

#endif
