/* crypto.c - digests, HMAC, PBKDF2, random bytes (libcrypto) and base64. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "xmalloc.h"

/* The same start-up as tls.c, whichever runs first: no openssl.cnf, no
 * libcrypto error strings (memory). */
static void
crypto_init(void)
{
	if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG |
	    OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL) != 1)
		abort();
}

static void
digest(const EVP_MD *md, const void *data, size_t len, unsigned char *out)
{
	unsigned int outlen = 0;

	crypto_init();
	/* EVP_Digest only fails on allocation failure or a broken provider. */
	if (EVP_Digest(data, len, out, &outlen, md, NULL) != 1)
		abort();
}

void
crypto_md5_hex(const void *data, size_t len, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[16];
	size_t i;

	digest(EVP_md5(), data, len, md);
	for (i = 0; i < sizeof(md); i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[32] = '\0';
}

void
crypto_sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
	digest(EVP_sha256(), data, len, out);
}

void
crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, unsigned char out[SHA256_LEN])
{
	unsigned int outlen = 0;
	static const unsigned char nokey;

	crypto_init();
	if (keylen > INT32_MAX)
		abort();
	if (HMAC(EVP_sha256(), keylen ? key : &nokey, (int)keylen, data, len,
	    out, &outlen) == NULL || outlen != SHA256_LEN)
		abort();
}

int
crypto_pbkdf2_sha256(const char *pass, size_t passlen, const unsigned char *salt,
    size_t saltlen, unsigned iterations, unsigned char out[SHA256_LEN])
{
	if (passlen > INT32_MAX || saltlen > INT32_MAX || iterations == 0 ||
	    iterations > INT32_MAX)
		return -1;
	crypto_init();
	if (PKCS5_PBKDF2_HMAC(pass, (int)passlen, salt, (int)saltlen,
	    (int)iterations, EVP_sha256(), SHA256_LEN, out) != 1)
		return -1;
	return 0;
}

int
crypto_random(void *buf, size_t len)
{
	if (len > INT32_MAX)
		return -1;
	crypto_init();
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

/* Base64, RFC 4648 section 4, written out: strict decoding is simpler to
 * get right by hand than on top of EVP_DecodeBlock. */
static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
base64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out, *o;
	size_t i;
	uint32_t v;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		abort();
	out = o = xmalloc((len + 2) / 3 * 4 + 1);
	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
		*o++ = b64[v & 63];
	}
	if (i < len) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode one 4-character group; pad is the number of '=' at its end (0-2,
 * only allowed in the last group). Unused bits must be zero (canonical). */
static int
b64_group(const char *g, int pad, unsigned char *o, size_t *n)
{
	uint32_t v = 0;
	int i, d;

	for (i = 0; i < 4 - pad; i++) {
		if ((d = b64_value((unsigned char)g[i])) < 0)
			return -1;
		v = v << 6 | (uint32_t)d;
	}
	v <<= 6 * pad;
	if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
		return -1;
	o[(*n)++] = v >> 16 & 0xff;
	if (pad < 2)
		o[(*n)++] = v >> 8 & 0xff;
	if (pad < 1)
		o[(*n)++] = v & 0xff;
	return 0;
}

int
base64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
	unsigned char *buf = NULL;
	size_t i, n = 0;
	int pad = 0;

	*out = NULL;
	*outlen = 0;
	if (inlen % 4 != 0)
		goto fail;
	if (inlen > 0 && in[inlen - 1] == '=')
		pad = (inlen > 1 && in[inlen - 2] == '=') ? 2 : 1;
	buf = xmalloc(inlen / 4 * 3 + 1);
	for (i = 0; i < inlen; i += 4) {
		if (b64_group(in + i, i + 4 == inlen ? pad : 0, buf, &n) == -1)
			goto fail;
	}
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
fail:
	free(buf);
	return -1;
}
