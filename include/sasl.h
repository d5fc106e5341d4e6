/* sasl.h - SASL client mechanisms, shared by POP3, IMAP and SMTP.
 *
 * Pure: no I/O. The protocol code base64-decodes each server challenge,
 * hands the raw bytes to sasl_step(), and base64-encodes the raw response it
 * gets back. Secrets held here are wiped by sasl_free().
 */
#ifndef MAILPULL_SASL_H
#define MAILPULL_SASL_H

#include <stddef.h>
#include "fail.h"

enum sasl_mech {
	SASL_NONE = 0,
	SASL_PLAIN,             /* RFC 4616 */
	SASL_LOGIN,             /* draft-murchison-sasl-login */
	SASL_SCRAM_SHA_256,     /* RFC 5802 / RFC 7677, no channel binding ("n,,") */
	SASL_XOAUTH2,           /* Google/Microsoft: "user=U^Aauth=Bearer T^A^A" */
	SASL_OAUTHBEARER,       /* RFC 7628 */
};

/* "PLAIN", "LOGIN", "SCRAM-SHA-256", "XOAUTH2", "OAUTHBEARER". */
const char *sasl_mech_name(enum sasl_mech m);
/* Case-insensitive; SASL_NONE if unknown. */
enum sasl_mech sasl_mech_parse(const char *name, size_t len);
/* 1 if the mechanism reveals the secret to an eavesdropper (PLAIN, LOGIN,
 * XOAUTH2, OAUTHBEARER): it must only run over TLS unless allow_plaintext. */
int sasl_mech_is_cleartext(enum sasl_mech m);

struct sasl_params {
	const char *user;
	const char *secret;     /* password, or OAuth2 access token */
	const char *host;       /* for OAUTHBEARER's host= */
	const char *port;       /* for OAUTHBEARER's port= */
};

struct sasl;

/* Copies what it needs from p (the secret too). */
struct sasl *sasl_new(enum sasl_mech m, const struct sasl_params *p);

/* If the mechanism speaks first (PLAIN, SCRAM, XOAUTH2, OAUTHBEARER), return
 * 1 and an xmalloc'd raw initial response in *out and *outlen; 0 for LOGIN. */
int sasl_initial(struct sasl *s, unsigned char **out, size_t *outlen);

/* Answer one server challenge (raw bytes). Returns FAIL_NONE and an
 * xmalloc'd raw response (possibly empty, outlen 0) or FAIL_AUTH/FAIL_PROTO
 * with *f set (e.g. "SCRAM server signature does not match", or the error
 * JSON an OAuth server sent, which is then answered by an empty response the
 * caller must still send: in that case FAIL_NONE is returned and
 * sasl_failed() is 1). */
enum fail_kind sasl_step(struct sasl *s, const unsigned char *in, size_t inlen,
    unsigned char **out, size_t *outlen, struct fail *f);

/* After the server reported success: FAIL_NONE if the exchange is complete
 * and verified (for SCRAM, the server signature was checked; if the server
 * sent its final message as success data, pass it here as in/inlen, else
 * NULL/0). */
enum fail_kind sasl_finish(struct sasl *s, const unsigned char *in, size_t inlen,
    struct fail *f);

/* 1 when an OAuth error challenge was seen (the login will fail). */
int sasl_failed(const struct sasl *s);

/* Wipes secrets and frees. NULL is fine. */
void sasl_free(struct sasl *s);

/* Tests only: use this client nonce instead of a random one (SCRAM). */
void sasl_test_set_nonce(struct sasl *s, const char *nonce);

#endif
