/* crypto.h - the few primitives SASL and APOP need (libcrypto behind it). */
#ifndef MAILPULL_CRYPTO_H
#define MAILPULL_CRYPTO_H

#include <stddef.h>

#define SHA256_LEN 32

/* Lower-case hex MD5 of data into out (33 bytes with NUL). */
void crypto_md5_hex(const void *data, size_t len, char out[33]);
void crypto_sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, unsigned char out[SHA256_LEN]);
/* PBKDF2-HMAC-SHA256 with one output block (Hi() of RFC 5802). 0 ok, -1 error. */
int crypto_pbkdf2_sha256(const char *pass, size_t passlen, const unsigned char *salt,
    size_t saltlen, unsigned iterations, unsigned char out[SHA256_LEN]);
/* Cryptographically random bytes. 0 ok, -1 error. */
int crypto_random(void *buf, size_t len);

/* Base64 (RFC 4648, no line breaks). encode returns a NUL-terminated string
 * (xmalloc'd). decode returns 0 and an xmalloc'd buffer (NUL-terminated for
 * convenience, *outlen excludes it) or -1 on invalid input. */
char *base64_encode(const void *data, size_t len);
int base64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen);

#endif
