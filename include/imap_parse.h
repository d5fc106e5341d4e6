/* imap_parse.h - the pure, incremental IMAP response parser. No I/O.
 *
 * RFC 3501 responses, tolerant of RFC 9051. The caller reads bytes from the
 * connection (conn_peek) and hands whatever it has to imap_parse(), which
 * says how many it used (conn_consume) and what happened:
 *
 *   IMAP_MORE      every byte was used; call again with more input.
 *   IMAP_RESPONSE  a whole response is ready: imap_parser_response().
 *   IMAP_LITERAL   a literal to stream starts right after the consumed bytes:
 *                  imap_parser_literal() says its size, the FETCH number, the
 *                  item name ("BODY[]") and the FETCH items seen before it.
 *                  The caller takes exactly `size` bytes from the stream
 *                  itself (to a file), calls imap_parser_literal_done(), then
 *                  feeds what follows. The parser records the item as an
 *                  IMAP_V_STREAMED value of that size and goes on.
 *   IMAP_ERROR     *f holds one line ("IMAP: ..."), kind FAIL_PROTO. The
 *                  parser is dead until imap_parser_reset(); drop the
 *                  connection, the stream is out of step.
 *
 * Input may be split anywhere, even one byte per call; results do not depend
 * on the split. Consumed bytes are never looked at again: a partial line is
 * kept in the parser (at most limits.max_line bytes), small literals are
 * counted into the response's memory.
 *
 * Memory: everything a response points at (values, strings, the literal
 * event) lives in one arena owned by the parser, released as a unit when the
 * parser starts on the next response (the first imap_parse() call after an
 * IMAP_RESPONSE), or by imap_parser_reset() / imap_parser_free(). Copy what
 * must live longer. Every allocation is bounded by the limits; a literal size
 * beyond max_literal is refused before anything is allocated.
 *
 * Literals: a literal {N} (also {N+} and literal8 ~{N}) that is the value of
 * a top-level item of a FETCH response is streamed (IMAP_LITERAL) if N >
 * max_small_literal or if the item name is one of the parser's stream_items;
 * otherwise it is held in memory (IMAP_V_LITERAL). Anywhere else, a literal
 * above max_small_literal is an error. A streamed literal cut short by EOF is
 * the caller's to notice: it knows N and counts. imap_parser_eof() describes
 * a response cut short inside the parser.
 */
#ifndef MAILPULL_IMAP_PARSE_H
#define MAILPULL_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "fail.h"

struct imap_limits {
	size_t max_line;          /* bytes of one line outside literals */
	size_t max_atom;          /* bytes of one atom or tag */
	unsigned max_depth;       /* nested parentheses (1..1024) */
	unsigned max_args;        /* values (all depths) in one response */
	size_t max_small_literal; /* largest literal held in memory */
	uint64_t max_literal;     /* largest literal accepted at all */
	size_t max_response;      /* memory of one response (values + strings) */
};

/* Defaults: line 1 MiB, atom 64 KiB, depth 32, 200,000 values, small
 * literal 64 KiB, literal 2 GiB, response 8 MiB. In a caller's struct, a
 * zero field means its default, except max_small_literal (0: hold no
 * literal; FETCH bodies all stream). */
void imap_limits_default(struct imap_limits *lim);

enum imap_vtype {
	IMAP_V_ATOM,            /* s: as sent ("\\Seen", "BODY[HEADER]", "1:3") */
	IMAP_V_NUMBER,          /* all digits; num: value (fits in 64 bits) */
	IMAP_V_QUOTED,          /* s: unescaped content */
	IMAP_V_LITERAL,         /* s, len: held content (may hold NUL bytes) */
	IMAP_V_STREAMED,        /* a literal the caller streamed; num: its size */
	IMAP_V_NIL,
	IMAP_V_LIST,            /* child: first element; len: number of elements */
};

/* A parsed value. Read-only for the caller. s is NUL-terminated (also for
 * numbers and NIL, as sent); it is NULL for lists and streamed literals. */
struct imap_value {
	enum imap_vtype type;
	unsigned binary;                /* literal8 (~{N}) */
	size_t len;                     /* bytes of s, or elements of a list */
	const char *s;
	uint64_t num;                   /* NUMBER value, STREAMED size */
	struct imap_value *next;        /* next element of the enclosing list */
	struct imap_value *child;       /* LIST: first element */
	struct imap_value *last;        /* LIST: last element (parser's use) */
};

enum imap_rtype {
	IMAP_R_OK, IMAP_R_NO, IMAP_R_BAD, IMAP_R_BYE, IMAP_R_PREAUTH,
	IMAP_R_CONTINUE,                /* "+ text" */
	IMAP_R_CAPABILITY, IMAP_R_LIST, IMAP_R_LSUB, IMAP_R_FLAGS,
	IMAP_R_EXISTS, IMAP_R_RECENT, IMAP_R_EXPUNGE, IMAP_R_FETCH,
	IMAP_R_SEARCH, IMAP_R_STATUS, IMAP_R_ENABLED,
	IMAP_R_OTHER,                   /* any other untagged response, kept as values */
};

/* "[NAME text]" of a status response. name is NULL when there is none.
 * args holds the parsed arguments of UIDVALIDITY, UIDNEXT, UNSEEN,
 * HIGHESTMODSEQ, CAPABILITY, PERMANENTFLAGS, BADCHARSET, APPENDUID and
 * COPYUID (a list value), NULL for any other code, kept as text only. */
struct imap_code {
	const char *name;               /* as sent, e.g. "UIDVALIDITY" */
	const char *text;               /* raw arguments, "" if none */
	const struct imap_value *args;
};

/* One response. Status responses (OK/NO/BAD/BYE/PREAUTH, tagged or not) and
 * continuations have code and text; data responses have args. Shape is
 * checked before IMAP_RESPONSE: EXISTS/RECENT/EXPUNGE have no args; FETCH one
 * list of name/value pairs; LIST/LSUB (flags) delim mailbox; FLAGS one list
 * of atoms; STATUS mailbox (name number ...); SEARCH numbers (and an optional
 * trailing "(MODSEQ n)"); CAPABILITY/ENABLED atoms. */
struct imap_response {
	const char *tag;                /* tagged: the tag; else NULL */
	enum imap_rtype type;
	const char *keyword;            /* as sent: "OK", "FETCH", "+"... */
	uint32_t num;                   /* N of "N EXISTS/RECENT/EXPUNGE/FETCH" */
	struct imap_code code;
	const char *text;               /* status/continuation text ("" if none); NULL for data */
	const struct imap_value *args;  /* list of the values after the keyword (maybe empty) */
};

/* The literal event of IMAP_LITERAL. item and resp live in the response arena
 * (see above): resp is the FETCH response as far as parsed, so the fetch
 * accessors below work on it (UID, FLAGS... if they came earlier). */
struct imap_literal {
	uint64_t size;
	uint32_t seq;                   /* the FETCH's message sequence number */
	const char *item;               /* as sent: "BODY[]", "BODY[]<0>", "BINARY[]" */
	int binary;                     /* literal8 */
	const struct imap_response *resp;
};

enum imap_event { IMAP_MORE, IMAP_RESPONSE, IMAP_LITERAL, IMAP_ERROR };

struct imap_parser;

/* A parser with a copy of *lim (NULL: the defaults). stream_items (may be
 * NULL) is a NULL-terminated list of FETCH item names whose literals are
 * always streamed, e.g. { "BODY[]", "RFC822", "BINARY[]", NULL }; compared
 * case-insensitively, a server's partial suffix "<0>" ignored. The array and
 * its strings are not copied: they must outlive the parser. */
struct imap_parser *imap_parser_new(const struct imap_limits *lim,
    const char *const *stream_items);
void imap_parser_free(struct imap_parser *p);       /* NULL is fine */
/* Forget any partial response and error; ready for a new stream. */
void imap_parser_reset(struct imap_parser *p);

/* Feed in[0..n). *consumed is set for every event: n for IMAP_MORE; up to
 * and including the response's final line end for IMAP_RESPONSE; up to and
 * including the line end after "{N}" for IMAP_LITERAL (the literal's bytes
 * follow). Calling it while a streamed literal is pending (no
 * imap_parser_literal_done yet) is an error. */
enum imap_event imap_parse(struct imap_parser *p, const char *in, size_t n,
    size_t *consumed, struct fail *f);

/* After IMAP_RESPONSE, the response (else NULL). */
const struct imap_response *imap_parser_response(const struct imap_parser *p);
/* After IMAP_LITERAL and until imap_parser_literal_done(), the event (else NULL). */
const struct imap_literal *imap_parser_literal(const struct imap_parser *p);
/* The caller has taken the streamed literal's bytes; parsing may go on. */
void imap_parser_literal_done(struct imap_parser *p);
/* 1 if a response has started and is not complete (or a literal is pending). */
int imap_parser_busy(const struct imap_parser *p);
/* At EOF: FAIL_NONE if the parser stands between responses; else FAIL_CONN
 * and one line saying where the stream was cut ("IMAP: connection closed
 * inside a 500-byte literal, 120 bytes missing"). */
enum fail_kind imap_parser_eof(const struct imap_parser *p, struct fail *f);

/* ---- accessors: pure functions of a response; pointers into it ---- */

/* Numbers: 0 ok, -1 if v is not a NUMBER or is out of range. */
int imap_value_u32(const struct imap_value *v, uint32_t *out);
int imap_value_u64(const struct imap_value *v, uint64_t *out);
/* 1 if v is an astring (atom, number, quoted, held literal). */
int imap_value_is_string(const struct imap_value *v);
/* 1 if the list holds an atom equal to name (case-insensitive). */
int imap_list_has_atom(const struct imap_value *list, const char *name);

/* 0 unless this is a tagged response whose tag differs from `tag` (or any
 * tagged response when tag is NULL): then FAIL_PROTO "IMAP: unexpected tag". */
enum fail_kind imap_check_tag(const struct imap_response *r, const char *tag,
    struct fail *f);

/* Response codes. imap_code_is: 1 if r carries code `name`. imap_code_u32:
 * 1 and *out for "[NAME n]", 0 if r has no such code, -1 if its argument is
 * not a 32-bit number (UIDVALIDITY, UIDNEXT, UNSEEN). */
int imap_code_is(const struct imap_response *r, const char *name);
int imap_code_u32(const struct imap_response *r, const char *name, uint32_t *out);
/* [APPENDUID uidvalidity uid] and [COPYUID uidvalidity src-set dst-set]: 1 ok,
 * 0 absent, -1 malformed. The sets point into r. */
int imap_code_appenduid(const struct imap_response *r, uint32_t *uidvalidity,
    uint32_t *uid);
int imap_code_copyuid(const struct imap_response *r, uint32_t *uidvalidity,
    const char **src, const char **dst);
/* The capability atoms of "* CAPABILITY ..." or of a [CAPABILITY ...] code
 * (a list value), or NULL. */
const struct imap_value *imap_response_caps(const struct imap_response *r);

/* FETCH: the value of item `name` (case-insensitive; the server's partial
 * suffix "<n>" is ignored unless name has one), or NULL. */
const struct imap_value *imap_fetch_item(const struct imap_response *r,
    const char *name);
/* 1 found, 0 absent, -1 malformed (UID 0 or beyond 32 bits, ...). */
int imap_fetch_uid(const struct imap_response *r, uint32_t *uid);
int imap_fetch_size(const struct imap_response *r, uint64_t *size);
int imap_fetch_internaldate(const struct imap_response *r, time_t *t);
/* FLAGS: up to max flag names into flags[] (pointers into r), *n the total.
 * 1 found, 0 absent, -1 malformed (not a list of atoms). */
int imap_fetch_flags(const struct imap_response *r, const char **flags,
    size_t max, size_t *n);
/* A held body item (quoted or small literal; NIL gives "" and 0): 1 and
 * *data and *len, 0 absent, -1 not held (streamed, or not a string). */
int imap_fetch_body(const struct imap_response *r, const char *name,
    const char **data, size_t *len);

/* LIST / LSUB. */
struct imap_mailbox {
	const struct imap_value *flags; /* list of atoms */
	char delim;                     /* hierarchy delimiter, 0 for NIL */
	const char *name;               /* as sent (modified UTF-7), may hold NUL */
	size_t name_len;
	unsigned noselect:1;            /* \Noselect or \NonExistent */
	unsigned noinferiors:1;
};
/* 0 ok, -1 if r is not a LIST/LSUB response. */
int imap_list_mailbox(const struct imap_response *r, struct imap_mailbox *mb);
/* STATUS: 1 and *out for item `name` ("UIDNEXT"), 0 absent, -1 malformed. */
int imap_status_item(const struct imap_response *r, const char *name, uint64_t *out);

/* ---- helpers for the client ---- */

/* "17-Jul-1996 02:44:25 -0700" (also " 7-Jul..." and "7-Jul...") to UTC.
 * 0 ok, -1 malformed or out of range. */
int imap_internaldate_parse(const char *s, size_t len, time_t *out);

/* Modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8. Return a new NUL-terminated
 * string (xmalloc; the caller frees), or NULL on invalid input (8-bit or
 * control bytes, bad base64, "&" unterminated, leftover bits, an encoded
 * printable ASCII char, broken surrogates; for the encoder invalid UTF-8,
 * overlongs, surrogates, NUL). */
char *imap_mutf7_to_utf8(const char *in, size_t len);
char *imap_utf8_to_mutf7(const char *in, size_t len);

/* Render s for a command argument: 1 and *out = "\"...\"" (with \" and \\)
 * when s is short (<= 1024) 7-bit text without CR/LF/NUL; 0 and *out = the
 * literal header "{N}" ("{N+}" with literal_plus) otherwise: the caller sends
 * it, CRLF, waits for "+" (unless LITERAL+), then the raw bytes of s. -1 if s
 * holds a NUL (no IMAP4rev1 string can). *out: xmalloc, the caller frees. */
int imap_quote(const char *s, size_t len, int literal_plus, char **out);

/* Server text fit for a log line: control and 8-bit bytes become '?', at
 * most dstsize - 1 bytes, "..." marking a cut. dst is always terminated. */
void imap_sanitize(char *dst, size_t dstsize, const char *s, size_t len);

#endif
