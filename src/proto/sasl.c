/* sasl.c - SASL client mechanisms: PLAIN, LOGIN, SCRAM-SHA-256, XOAUTH2,
 * OAUTHBEARER. Pure: bytes in, bytes out, no I/O.
 *
 * SCRAM note: the password is used as given (no SASLprep); an ASCII password
 * is unaffected, which is what servers see in practice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "fail.h"
#include "sasl.h"
#include "xmalloc.h"

#define SCRAM_NONCE_BYTES       24
#define SCRAM_MIN_ITER          4096
#define SCRAM_MAX_ITER          10000000UL

enum scram_state {
	SCRAM_START,            /* nothing sent yet */
	SCRAM_SENT_FIRST,       /* client-first sent, waiting for server-first */
	SCRAM_SENT_FINAL,       /* client-final sent, waiting for server-final */
	SCRAM_DONE,             /* server signature verified */
};

struct sasl {
	enum sasl_mech  mech;
	char           *user;
	char           *secret;
	char           *host;
	char           *port;
	int             initial_done;   /* initial response produced */
	int             steps;          /* challenges answered */
	int             failed;         /* OAuth error challenge seen */
	/* SCRAM */
	enum scram_state scram;
	char            nonce[64];
	char           *client_first_bare;
	unsigned char   server_sig[SHA256_LEN];
};

static const struct {
	enum sasl_mech  mech;
	const char     *name;
	int             cleartext;
} mechs[] = {
	{ SASL_PLAIN,           "PLAIN",         1 },
	{ SASL_LOGIN,           "LOGIN",         1 },
	{ SASL_SCRAM_SHA_256,   "SCRAM-SHA-256", 0 },
	{ SASL_XOAUTH2,         "XOAUTH2",       1 },
	{ SASL_OAUTHBEARER,     "OAUTHBEARER",   1 },
};

const char *
sasl_mech_name(enum sasl_mech m)
{
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (mechs[i].mech == m)
			return mechs[i].name;
	return "NONE";
}

enum sasl_mech
sasl_mech_parse(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (strlen(mechs[i].name) == len &&
		    strncasecmp(mechs[i].name, name, len) == 0)
			return mechs[i].mech;
	return SASL_NONE;
}

int
sasl_mech_is_cleartext(enum sasl_mech m)
{
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (mechs[i].mech == m)
			return mechs[i].cleartext;
	return 1;
}

/* A growing byte string for building responses. */
struct bytes {
	unsigned char  *p;
	size_t          len;
	size_t          size;
};

static void
bytes_add(struct bytes *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->size) {
		b->size = (b->len + len + 1) * 2;
		b->p = xreallocarray(b->p, 1, b->size);
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void
bytes_str(struct bytes *b, const char *s)
{
	bytes_add(b, s, strlen(s));
}

/* RFC 5802 saslname: ',' -> "=2C", '=' -> "=3D". */
static void
bytes_saslname(struct bytes *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == ',')
			bytes_str(b, "=2C");
		else if (*s == '=')
			bytes_str(b, "=3D");
		else
			bytes_add(b, s, 1);
	}
}

static void
bytes_return(struct bytes *b, unsigned char **out, size_t *outlen)
{
	if (b->p == NULL)
		bytes_add(b, "", 0);
	*out = b->p;
	*outlen = b->len;
}

static void
empty_response(unsigned char **out, size_t *outlen)
{
	*out = xcalloc(1, 1);
	*outlen = 0;
}

struct sasl *
sasl_new(enum sasl_mech m, const struct sasl_params *p)
{
	struct sasl *s;
	unsigned char raw[SCRAM_NONCE_BYTES];
	char *nonce;

	s = xcalloc(1, sizeof(*s));
	s->mech = m;
	s->user = xstrdup(p->user != NULL ? p->user : "");
	s->secret = xstrdup(p->secret != NULL ? p->secret : "");
	s->host = xstrdup(p->host != NULL ? p->host : "");
	s->port = xstrdup(p->port != NULL ? p->port : "");
	if (m == SASL_SCRAM_SHA_256) {
		/* Without random bytes SCRAM's security is gone: stop. */
		if (crypto_random(raw, sizeof(raw)) == -1)
			abort();
		nonce = base64_encode(raw, sizeof(raw));
		strncpy(s->nonce, nonce, sizeof(s->nonce) - 1);
		free(nonce);
	}
	return s;
}

void
sasl_test_set_nonce(struct sasl *s, const char *nonce)
{
	memset(s->nonce, 0, sizeof(s->nonce));
	strncpy(s->nonce, nonce, sizeof(s->nonce) - 1);
}

static void
initial_plain(struct sasl *s, struct bytes *b)
{
	bytes_add(b, "", 1);
	bytes_str(b, s->user);
	bytes_add(b, "", 1);
	bytes_str(b, s->secret);
}

static void
initial_scram(struct sasl *s, struct bytes *b)
{
	struct bytes bare = { NULL, 0, 0 };

	bytes_str(&bare, "n=");
	bytes_saslname(&bare, s->user);
	bytes_str(&bare, ",r=");
	bytes_str(&bare, s->nonce);
	free(s->client_first_bare);
	s->client_first_bare = (char *)bare.p;
	bytes_str(b, "n,,");
	bytes_str(b, s->client_first_bare);
	s->scram = SCRAM_SENT_FIRST;
}

static void
initial_xoauth2(struct sasl *s, struct bytes *b)
{
	bytes_str(b, "user=");
	bytes_str(b, s->user);
	bytes_str(b, "\001auth=Bearer ");
	bytes_str(b, s->secret);
	bytes_str(b, "\001\001");
}

static void
initial_oauthbearer(struct sasl *s, struct bytes *b)
{
	bytes_str(b, "n,a=");
	bytes_saslname(b, s->user);
	bytes_str(b, ",\001host=");
	bytes_str(b, s->host);
	bytes_str(b, "\001port=");
	bytes_str(b, s->port);
	bytes_str(b, "\001auth=Bearer ");
	bytes_str(b, s->secret);
	bytes_str(b, "\001\001");
}

int
sasl_initial(struct sasl *s, unsigned char **out, size_t *outlen)
{
	struct bytes b = { NULL, 0, 0 };

	*out = NULL;
	*outlen = 0;
	switch (s->mech) {
	case SASL_PLAIN:
		initial_plain(s, &b);
		break;
	case SASL_SCRAM_SHA_256:
		initial_scram(s, &b);
		break;
	case SASL_XOAUTH2:
		initial_xoauth2(s, &b);
		break;
	case SASL_OAUTHBEARER:
		initial_oauthbearer(s, &b);
		break;
	case SASL_LOGIN:
	case SASL_NONE:
		return 0;
	}
	s->initial_done = 1;
	bytes_return(&b, out, outlen);
	return 1;
}

/* Copy a server-supplied text into a message: printable ASCII only, short. */
static void
sanitize(const unsigned char *in, size_t inlen, char *out, size_t size)
{
	size_t i, o = 0;

	for (i = 0; i < inlen && o + 1 < size; i++)
		out[o++] = (in[i] >= 0x20 && in[i] < 0x7f) ? (char)in[i] : '?';
	out[o] = '\0';
}

/* ---- SCRAM-SHA-256 ---- */

/* Attributes of a SCRAM message, split on ','. */
struct scram_attr {
	char            name;
	const char     *val;
	size_t          len;
};

/* Take the next "x=value" attribute at *pos; 0 ok, -1 malformed or end. */
static int
scram_next(const char *msg, size_t len, size_t *pos, struct scram_attr *a)
{
	const char *start = msg + *pos, *comma;
	size_t rest;

	if (*pos >= len)
		return -1;
	rest = len - *pos;
	if (rest < 2 || start[1] != '=' ||
	    !((start[0] >= 'a' && start[0] <= 'z') ||
	    (start[0] >= 'A' && start[0] <= 'Z')))
		return -1;
	a->name = start[0];
	a->val = start + 2;
	comma = memchr(a->val, ',', rest - 2);
	a->len = comma != NULL ? (size_t)(comma - a->val) : rest - 2;
	*pos += 2 + a->len + (comma != NULL ? 1 : 0);
	return 0;
}

static int
scram_printable(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
			return 0;
	return 1;
}

static int
scram_iterations(const struct scram_attr *a, unsigned long *iter)
{
	unsigned long v = 0;
	size_t i;

	if (a->len == 0 || a->len > 9 || a->val[0] == '0')
		return -1;
	for (i = 0; i < a->len; i++) {
		if (a->val[i] < '0' || a->val[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(a->val[i] - '0');
	}
	*iter = v;
	return 0;
}

struct scram_first {
	struct scram_attr r, s, i;
	unsigned long   iter;
	unsigned char  *salt;
	size_t          saltlen;
};

static enum fail_kind
scram_parse_first(struct sasl *s, const char *msg, size_t len,
    struct scram_first *sf, struct fail *f)
{
	size_t pos = 0, nlen = strlen(s->nonce);
	char text[128];

	if (memchr(msg, '\0', len) != NULL)
		return fail_set(f, FAIL_PROTO, "SCRAM server-first message contains NUL");
	if (len >= 2 && msg[0] == 'e' && msg[1] == '=') {
		sanitize((const unsigned char *)msg + 2, len - 2, text, sizeof(text));
		return fail_set(f, FAIL_AUTH, "SCRAM server error: %s", text);
	}
	if (scram_next(msg, len, &pos, &sf->r) == -1 || sf->r.name != 'r' ||
	    scram_next(msg, len, &pos, &sf->s) == -1 || sf->s.name != 's' ||
	    scram_next(msg, len, &pos, &sf->i) == -1 || sf->i.name != 'i')
		return fail_set(f, FAIL_PROTO, "malformed SCRAM server-first message");
	if (sf->r.len <= nlen || memcmp(sf->r.val, s->nonce, nlen) != 0 ||
	    !scram_printable(sf->r.val, sf->r.len))
		return fail_set(f, FAIL_AUTH,
		    "SCRAM server nonce does not extend the client nonce");
	if (scram_iterations(&sf->i, &sf->iter) == -1)
		return fail_set(f, FAIL_PROTO, "malformed SCRAM iteration count");
	if (sf->iter < SCRAM_MIN_ITER || sf->iter > SCRAM_MAX_ITER)
		return fail_set(f, FAIL_AUTH,
		    "SCRAM iteration count %lu outside %d..%lu", sf->iter,
		    SCRAM_MIN_ITER, SCRAM_MAX_ITER);
	if (base64_decode(sf->s.val, sf->s.len, &sf->salt, &sf->saltlen) == -1 ||
	    sf->saltlen == 0)
		return fail_set(f, FAIL_PROTO, "malformed SCRAM salt");
	return FAIL_NONE;
}

static int
ct_equal(const unsigned char *a, const unsigned char *b, size_t len)
{
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < len; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* Keys derived from the password; wiped by the caller. */
struct scram_keys {
	unsigned char   salted[SHA256_LEN];
	unsigned char   client_key[SHA256_LEN];
	unsigned char   stored_key[SHA256_LEN];
	unsigned char   client_sig[SHA256_LEN];
	unsigned char   server_key[SHA256_LEN];
	unsigned char   proof[SHA256_LEN];
};

static enum fail_kind
scram_proof(struct sasl *s, const struct scram_first *sf, const char *authmsg,
    struct scram_keys *k, struct fail *f)
{
	size_t i;

	if (crypto_pbkdf2_sha256(s->secret, strlen(s->secret), sf->salt,
	    sf->saltlen, (unsigned)sf->iter, k->salted) == -1)
		return fail_set(f, FAIL_LOCAL, "SCRAM key derivation failed");
	crypto_hmac_sha256(k->salted, SHA256_LEN, "Client Key", 10, k->client_key);
	crypto_sha256(k->client_key, SHA256_LEN, k->stored_key);
	crypto_hmac_sha256(k->stored_key, SHA256_LEN, authmsg, strlen(authmsg),
	    k->client_sig);
	for (i = 0; i < SHA256_LEN; i++)
		k->proof[i] = k->client_key[i] ^ k->client_sig[i];
	crypto_hmac_sha256(k->salted, SHA256_LEN, "Server Key", 10, k->server_key);
	crypto_hmac_sha256(k->server_key, SHA256_LEN, authmsg, strlen(authmsg),
	    s->server_sig);
	return FAIL_NONE;
}

static enum fail_kind
scram_server_first(struct sasl *s, const unsigned char *in, size_t inlen,
    unsigned char **out, size_t *outlen, struct fail *f)
{
	struct scram_first sf;
	struct scram_keys k;
	struct bytes final = { NULL, 0, 0 }, auth = { NULL, 0, 0 };
	char *proof64 = NULL;
	enum fail_kind rc;

	memset(&sf, 0, sizeof(sf));
	memset(&k, 0, sizeof(k));
	if ((rc = scram_parse_first(s, (const char *)in, inlen, &sf, f)) != FAIL_NONE)
		goto fail;
	/* client-final-message-without-proof: "c=biws" is base64("n,,"). */
	bytes_str(&final, "c=biws,r=");
	bytes_add(&final, sf.r.val, sf.r.len);
	bytes_str(&auth, s->client_first_bare);
	bytes_str(&auth, ",");
	bytes_add(&auth, in, inlen);
	bytes_str(&auth, ",");
	bytes_add(&auth, final.p, final.len);
	if ((rc = scram_proof(s, &sf, (char *)auth.p, &k, f)) != FAIL_NONE)
		goto fail;
	proof64 = base64_encode(k.proof, sizeof(k.proof));
	bytes_str(&final, ",p=");
	bytes_str(&final, proof64);
	s->scram = SCRAM_SENT_FINAL;
	bytes_return(&final, out, outlen);
	final.p = NULL;
	rc = FAIL_NONE;
fail:
	explicit_bzero(&k, sizeof(k));
	free(sf.salt);
	free(final.p);
	free(auth.p);
	free(proof64);
	return rc;
}

static enum fail_kind
scram_server_final(struct sasl *s, const unsigned char *in, size_t inlen,
    struct fail *f)
{
	struct scram_attr a;
	unsigned char *sig = NULL;
	size_t pos = 0, siglen = 0;
	char text[128];
	enum fail_kind rc;

	if (memchr(in, '\0', inlen) != NULL ||
	    scram_next((const char *)in, inlen, &pos, &a) == -1)
		return fail_set(f, FAIL_PROTO, "malformed SCRAM server-final message");
	if (a.name == 'e') {
		sanitize((const unsigned char *)a.val, a.len, text, sizeof(text));
		return fail_set(f, FAIL_AUTH, "SCRAM server error: %s", text);
	}
	if (a.name != 'v' || base64_decode(a.val, a.len, &sig, &siglen) == -1) {
		rc = fail_set(f, FAIL_PROTO, "malformed SCRAM server-final message");
		goto out;
	}
	if (siglen != SHA256_LEN || !ct_equal(sig, s->server_sig, SHA256_LEN)) {
		rc = fail_set(f, FAIL_AUTH, "SCRAM server signature does not match");
		goto out;
	}
	s->scram = SCRAM_DONE;
	rc = FAIL_NONE;
out:
	free(sig);
	return rc;
}

static enum fail_kind
step_scram(struct sasl *s, const unsigned char *in, size_t inlen,
    unsigned char **out, size_t *outlen, struct fail *f)
{
	enum fail_kind rc;

	switch (s->scram) {
	case SCRAM_SENT_FIRST:
		return scram_server_first(s, in, inlen, out, outlen, f);
	case SCRAM_SENT_FINAL:
		if ((rc = scram_server_final(s, in, inlen, f)) != FAIL_NONE)
			return rc;
		empty_response(out, outlen);
		return FAIL_NONE;
	case SCRAM_START:
	case SCRAM_DONE:
		break;
	}
	return fail_set(f, FAIL_PROTO, "unexpected SCRAM challenge");
}

/* ---- the others ---- */

static enum fail_kind
step_login(struct sasl *s, unsigned char **out, size_t *outlen, struct fail *f)
{
	const char *answer;

	/* Answer by order, not by the (localised, varying) prompt text. */
	if (s->steps == 0)
		answer = s->user;
	else if (s->steps == 1)
		answer = s->secret;
	else
		return fail_set(f, FAIL_PROTO, "unexpected third LOGIN challenge");
	*outlen = strlen(answer);
	*out = (unsigned char *)xstrdup(answer);
	return FAIL_NONE;
}

static enum fail_kind
step_oauth(struct sasl *s, const unsigned char *in, size_t inlen,
    unsigned char **out, size_t *outlen, struct fail *f)
{
	char text[300];

	if (s->failed)
		return fail_set(f, FAIL_PROTO, "unexpected OAuth challenge");
	s->failed = 1;
	sanitize(in, inlen, text, sizeof(text));
	fail_set(f, FAIL_AUTH, "OAuth error: %s", text);
	if (s->mech == SASL_OAUTHBEARER) {
		*out = (unsigned char *)xstrdup("\001");
		*outlen = 1;
	} else
		empty_response(out, outlen);
	return FAIL_NONE;
}

enum fail_kind
sasl_step(struct sasl *s, const unsigned char *in, size_t inlen,
    unsigned char **out, size_t *outlen, struct fail *f)
{
	enum fail_kind rc;

	*out = NULL;
	*outlen = 0;
	/* No initial response was sent: the server's empty challenge asks
	 * for it (AUTH without SASL-IR). */
	if (!s->initial_done && s->mech != SASL_LOGIN && inlen == 0) {
		if (sasl_initial(s, out, outlen) == 1)
			return FAIL_NONE;
	}
	switch (s->mech) {
	case SASL_LOGIN:
		rc = step_login(s, out, outlen, f);
		break;
	case SASL_SCRAM_SHA_256:
		rc = step_scram(s, in, inlen, out, outlen, f);
		break;
	case SASL_XOAUTH2:
	case SASL_OAUTHBEARER:
		rc = step_oauth(s, in, inlen, out, outlen, f);
		break;
	case SASL_PLAIN:
		rc = fail_set(f, FAIL_PROTO, "unexpected PLAIN challenge");
		break;
	default:
		rc = fail_set(f, FAIL_PROTO, "no SASL mechanism");
		break;
	}
	if (rc == FAIL_NONE)
		s->steps++;
	return rc;
}

enum fail_kind
sasl_finish(struct sasl *s, const unsigned char *in, size_t inlen,
    struct fail *f)
{
	enum fail_kind rc;

	if (s->failed)
		return fail_set(f, FAIL_AUTH, "%s login failed",
		    sasl_mech_name(s->mech));
	if (s->mech != SASL_SCRAM_SHA_256)
		return FAIL_NONE;
	if (s->scram == SCRAM_SENT_FINAL && in != NULL && inlen > 0) {
		if ((rc = scram_server_final(s, in, inlen, f)) != FAIL_NONE)
			return rc;
	}
	if (s->scram != SCRAM_DONE)
		return fail_set(f, FAIL_AUTH,
		    "SCRAM server did not prove it knows the password");
	return FAIL_NONE;
}

int
sasl_failed(const struct sasl *s)
{
	return s->failed;
}

void
sasl_free(struct sasl *s)
{
	if (s == NULL)
		return;
	free_secret(s->secret);
	free(s->user);
	free(s->host);
	free(s->port);
	free(s->client_first_bare);
	explicit_bzero(s, sizeof(*s));
	free(s);
}
