/* smtp.h - an SMTP (RFC 5321) or LMTP (RFC 2033) client session over conn.
 *
 * One session carries any number of transactions:
 *   smtp_open()                      greeting, EHLO/LHLO (HELO fallback for
 *                                    SMTP), STARTTLS, AUTH
 *   smtp_mail()                      [RSET] MAIL FROM, RCPT TO, DATA
 *                                    (pipelined when PIPELINING is offered)
 *   smtp_data()*                     the body, dot-stuffed as it streams
 *   smtp_data_end()                  "." and the reply (LMTP: one reply per
 *                                    accepted recipient; here one recipient)
 *   smtp_close()                     QUIT when the session is idle
 * A transaction that failed before the body (a refused MAIL or RCPT) leaves
 * the session usable; the next smtp_mail() sends RSET first. A connection
 * failure makes the session dead (smtp_alive() 0): only smtp_close() is
 * left. A transaction interrupted mid-body cannot be cancelled in SMTP; the
 * caller closes the session (smtp_close() then drops the connection without
 * QUIT, so the server discards the partial message).
 *
 * Replies: 2xx ok; 4xx FAIL_TEMP; 5xx FAIL_REJECTED; each failure's f->msg
 * holds the command and the server's text (cleaned, one line). Malformed
 * replies are FAIL_PROTO, a lost connection FAIL_CONN.
 *
 * Trace (log level TRACE): every line both ways; AUTH responses show as
 * "AUTH PLAIN ********" / "********"; the body as
 * "[message body, N bytes]".
 */
#ifndef MAILPULL_SMTP_H
#define MAILPULL_SMTP_H

#include <stddef.h>
#include "conn.h"
#include "fail.h"
#include "sasl.h"

#define SMTP_LINE_MAX           2048    /* one reply line, without CRLF */
#define SMTP_REPLY_LINES_MAX    200     /* lines of one multi-line reply */

enum smtp_proto { SMTP_PROTO_SMTP, SMTP_PROTO_LMTP };

/* TLS policy. TLS_IMPLICIT: smtps (TLS from the first byte). */
enum smtp_tls {
	SMTP_TLS_NONE,          /* never STARTTLS */
	SMTP_TLS_OPPORTUNISTIC, /* STARTTLS when offered (verified as conn says) */
	SMTP_TLS_STARTTLS,      /* STARTTLS required: refuse if not offered */
	SMTP_TLS_IMPLICIT,      /* smtps */
};

/* Capabilities from the EHLO/LHLO reply (bit set). */
enum smtp_cap {
	SMTP_CAP_PIPELINING     = 1u << 0,
	SMTP_CAP_SIZE           = 1u << 1,
	SMTP_CAP_8BITMIME       = 1u << 2,
	SMTP_CAP_SMTPUTF8       = 1u << 3,
	SMTP_CAP_STARTTLS       = 1u << 4,
	SMTP_CAP_AUTH           = 1u << 5,
	SMTP_CAP_ESMTP          = 1u << 6,      /* EHLO/LHLO worked (not HELO) */
};

struct smtp_params {
	struct conn_params conn;        /* host, port, timeout, TLS checks */
	enum smtp_proto proto;
	enum smtp_tls tls;
	const char *helo;               /* our name in EHLO/LHLO; NULL: "localhost" */
	/* AUTH: only when user != NULL. mech SASL_NONE: the first of PLAIN,
	 * LOGIN the server offers (XOAUTH2 only when asked for). Cleartext
	 * mechanisms need TLS unless allow_plaintext. */
	const char *user;
	const char *secret;
	enum sasl_mech mech;
	int allow_plaintext;
};

struct smtp;

/* Connect and get ready for transactions. p's strings must outlive the
 * session. On success *out owns it; on failure *out is NULL and nothing
 * beyond the greeting, EHLO/HELO (and STARTTLS/AUTH as far as they went)
 * was sent; the connection is dropped without QUIT. */
enum fail_kind smtp_open(struct smtp **out, const struct smtp_params *p,
    struct fail *f);

/* The capability bits seen (after STARTTLS: those of the second EHLO), and
 * the server's SIZE limit (0: none given). */
unsigned smtp_caps(const struct smtp *s);
unsigned long long smtp_size_limit(const struct smtp *s);
/* 1 while the connection is usable for another transaction. */
int smtp_alive(const struct smtp *s);
/* 1 if the last failure was the connection going away while the session was
 * idle or at MAIL/RSET (nothing of a transaction was accepted): a fresh
 * session may retry. */
int smtp_dropped_early(const struct smtp *s);

/* Start a transaction: RSET (if a transaction came before), MAIL
 * FROM:<sender> (sender "" gives "<>"; SIZE=size when the server has SIZE
 * and size > 0; BODY=8BITMIME when offered; SMTPUTF8 when the envelope has
 * non-ASCII bytes and it is offered), RCPT TO:<rcpt>, DATA. On FAIL_NONE
 * the server has answered 354 and the body may follow. Addresses with
 * control bytes, spaces or angle brackets are refused (FAIL_REJECTED). */
enum fail_kind smtp_mail(struct smtp *s, const char *sender, const char *rcpt,
    unsigned long long size, struct fail *f);

/* Body bytes, as they come (CRLF line ends expected, kept as given); a '.'
 * at the start of a line gets another '.', across calls too. */
enum fail_kind smtp_data(struct smtp *s, const char *p, size_t n,
    struct fail *f);

/* End the body (CRLF first if it did not end with a line end) and read the
 * reply: FAIL_NONE = the server took the message (250). */
enum fail_kind smtp_data_end(struct smtp *s, struct fail *f);

/* QUIT (reading its reply) if the session is alive and idle, then close and
 * free. NULL is fine. */
void smtp_close(struct smtp *s);

/* Pure: one reply line. 0 with *code (200..599), *more (1 for "250-"),
 * *text (after the separator, or "" for a bare code); -1 if malformed. */
int smtp_reply_line(const char *line, int *code, int *more, const char **text);

#endif
