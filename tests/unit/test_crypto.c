/* test_crypto.c - digests, HMAC, PBKDF2 and base64 against known vectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "unit.h"

static void
hex(const unsigned char *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

START_TEST(md5_vectors)
{
	char out[33];

	crypto_md5_hex("", 0, out);
	ck_assert_str_eq(out, "d41d8cd98f00b204e9800998ecf8427e");
	crypto_md5_hex("abc", 3, out);
	ck_assert_str_eq(out, "900150983cd24fb0d6963f7d28e17f72");
	/* APOP example of RFC 1939 */
	crypto_md5_hex("<1896.697170952@dbc.mtview.ca.us>tanstaaf", 41, out);
	ck_assert_str_eq(out, "c4c9334bac560ecc979e58001b3e22fb");
}
END_TEST

START_TEST(sha256_vectors)
{
	unsigned char md[SHA256_LEN];
	char out[65];

	crypto_sha256("abc", 3, md);
	hex(md, sizeof(md), out);
	ck_assert_str_eq(out,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	crypto_sha256("", 0, md);
	hex(md, sizeof(md), out);
	ck_assert_str_eq(out,
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(hmac_rfc4231)
{
	unsigned char key[20], md[SHA256_LEN];
	char out[65];

	/* test case 1 */
	memset(key, 0x0b, sizeof(key));
	crypto_hmac_sha256(key, 20, "Hi There", 8, md);
	hex(md, sizeof(md), out);
	ck_assert_str_eq(out,
	    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	/* test case 2 */
	crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, md);
	hex(md, sizeof(md), out);
	ck_assert_str_eq(out,
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

START_TEST(pbkdf2_vectors)
{
	unsigned char md[SHA256_LEN];
	char out[65];

	ck_assert_int_eq(crypto_pbkdf2_sha256("password", 8,
	    (const unsigned char *)"salt", 4, 1, md), 0);
	hex(md, sizeof(md), out);
	ck_assert_str_eq(out,
	    "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
	ck_assert_int_eq(crypto_pbkdf2_sha256("password", 8,
	    (const unsigned char *)"salt", 4, 4096, md), 0);
	hex(md, sizeof(md), out);
	ck_assert_str_eq(out,
	    "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
	ck_assert_int_eq(crypto_pbkdf2_sha256("password", 8,
	    (const unsigned char *)"salt", 4, 0, md), -1);
}
END_TEST

START_TEST(random_bytes)
{
	unsigned char a[32], b[32];

	ck_assert_int_eq(crypto_random(a, sizeof(a)), 0);
	ck_assert_int_eq(crypto_random(b, sizeof(b)), 0);
	ck_assert(memcmp(a, b, sizeof(a)) != 0);
}
END_TEST

static const struct {
	const char *plain;
	const char *b64;
} b64_vectors[] = {     /* RFC 4648 section 10 */
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

START_TEST(base64_known)
{
	const char *plain = b64_vectors[_i].plain, *enc = b64_vectors[_i].b64;
	unsigned char *dec;
	size_t declen;
	char *e;

	e = base64_encode(plain, strlen(plain));
	ck_assert_str_eq(e, enc);
	free(e);
	ck_assert_int_eq(base64_decode(enc, strlen(enc), &dec, &declen), 0);
	ck_assert_uint_eq(declen, strlen(plain));
	ck_assert(memcmp(dec, plain, declen) == 0);
	ck_assert_int_eq(dec[declen], 0);
	free(dec);
}
END_TEST

START_TEST(base64_roundtrip_binary)
{
	unsigned char data[256], *dec;
	size_t n, declen;
	char *e;

	for (n = 0; n < sizeof(data); n++)
		data[n] = (unsigned char)(255 - n);
	for (n = 0; n <= sizeof(data); n++) {
		e = base64_encode(data, n);
		ck_assert_uint_eq(strlen(e), (n + 2) / 3 * 4);
		ck_assert_int_eq(base64_decode(e, strlen(e), &dec, &declen), 0);
		ck_assert_uint_eq(declen, n);
		ck_assert(memcmp(dec, data, n) == 0);
		free(dec);
		free(e);
	}
}
END_TEST

static const char *b64_invalid[] = {
	"Zg", "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm9v!A==",
	"Zm 9v", "Zm9v\n", "Zh==", "Zm9=", "=Zm9", "Zm=v", "Zm9v====",
};

START_TEST(base64_rejects)
{
	const char *in = b64_invalid[_i];
	unsigned char *dec = (unsigned char *)"x";
	size_t declen = 99;

	ck_assert_msg(base64_decode(in, strlen(in), &dec, &declen) == -1,
	    "accepted \"%s\"", in);
	ck_assert_ptr_null(dec);
	ck_assert_uint_eq(declen, 0);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, md5_vectors);
	tcase_add_test(tc, sha256_vectors);
	tcase_add_test(tc, hmac_rfc4231);
	tcase_add_test(tc, pbkdf2_vectors);
	tcase_add_test(tc, random_bytes);
	tcase_add_loop_test(tc, base64_known, 0,
	    sizeof(b64_vectors) / sizeof(b64_vectors[0]));
	tcase_add_test(tc, base64_roundtrip_binary);
	tcase_add_loop_test(tc, base64_rejects, 0,
	    sizeof(b64_invalid) / sizeof(b64_invalid[0]));
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
