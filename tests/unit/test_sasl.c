/* test_sasl.c - SASL mechanisms byte-exact, SCRAM against RFC 7677. */
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "sasl.h"
#include "unit.h"

#define S(x) (const unsigned char *)(x), strlen(x)

/* RFC 7677 section 3 */
#define V_NONCE   "rOprNGfwEbeRWgbNEkqO"
#define V_FIRST   "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define V_SFIRST  "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
                  "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define V_FINAL   "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
                  "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define V_SFINAL  "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static const struct sasl_params params = {
	"user", "pencil", "mail.example.com", "993"
};

static void
assert_bytes(const unsigned char *got, size_t gotlen, const char *want,
    size_t wantlen)
{
	ck_assert_uint_eq(gotlen, wantlen);
	ck_assert(memcmp(got, want, wantlen) == 0);
}

/* A SCRAM session with the RFC nonce, client-first already checked. */
static struct sasl *
scram_start(void)
{
	struct sasl *s = sasl_new(SASL_SCRAM_SHA_256, &params);
	unsigned char *out;
	size_t outlen;

	sasl_test_set_nonce(s, V_NONCE);
	ck_assert_int_eq(sasl_initial(s, &out, &outlen), 1);
	assert_bytes(out, outlen, V_FIRST, strlen(V_FIRST));
	free(out);
	return s;
}

static void
scram_to_final(struct sasl *s)
{
	struct fail f = { 0 };
	unsigned char *out;
	size_t outlen;

	ck_assert_int_eq(sasl_step(s, S(V_SFIRST), &out, &outlen, &f), FAIL_NONE);
	assert_bytes(out, outlen, V_FINAL, strlen(V_FINAL));
	free(out);
}

START_TEST(scram_rfc7677_challenge)
{
	struct sasl *s = scram_start();
	struct fail f = { 0 };
	unsigned char *out;
	size_t outlen;

	scram_to_final(s);
	/* server-final as a challenge: answered with an empty response */
	ck_assert_int_eq(sasl_step(s, S(V_SFINAL), &out, &outlen, &f), FAIL_NONE);
	ck_assert_uint_eq(outlen, 0);
	free(out);
	ck_assert_int_eq(sasl_finish(s, NULL, 0, &f), FAIL_NONE);
	ck_assert_int_eq(sasl_failed(s), 0);
	sasl_free(s);
}
END_TEST

START_TEST(scram_rfc7677_success_data)
{
	struct sasl *s = scram_start();
	struct fail f = { 0 };

	scram_to_final(s);
	ck_assert_int_eq(sasl_finish(s, S(V_SFINAL), &f), FAIL_NONE);
	sasl_free(s);
}
END_TEST

START_TEST(scram_wrong_server_signature)
{
	struct sasl *s = scram_start();
	struct fail f = { 0 };
	unsigned char *out = NULL;
	size_t outlen;

	scram_to_final(s);
	ck_assert_int_eq(sasl_step(s,
	    S("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), &out, &outlen,
	    &f), FAIL_AUTH);
	ck_assert_ptr_null(out);
	ck_assert_str_eq(f.msg, "SCRAM server signature does not match");
	ck_assert_int_eq(sasl_finish(s, NULL, 0, &f), FAIL_AUTH);
	sasl_free(s);
}
END_TEST

START_TEST(scram_wrong_signature_in_success)
{
	struct sasl *s = scram_start();
	struct fail f = { 0 };

	scram_to_final(s);
	ck_assert_int_eq(sasl_finish(s, S("v=AAAA"), &f), FAIL_AUTH);
	sasl_free(s);
}
END_TEST

START_TEST(scram_never_verified)
{
	struct sasl *s = scram_start();
	struct fail f = { 0 };

	scram_to_final(s);
	ck_assert_int_eq(sasl_finish(s, NULL, 0, &f), FAIL_AUTH);
	ck_assert(strstr(f.msg, "SCRAM") != NULL);
	sasl_free(s);
}
END_TEST

START_TEST(scram_server_error)
{
	struct sasl *s = scram_start();
	struct fail f = { 0 };
	unsigned char *out;
	size_t outlen;

	scram_to_final(s);
	ck_assert_int_eq(sasl_step(s, S("e=invalid-proof"), &out, &outlen, &f),
	    FAIL_AUTH);
	ck_assert_str_eq(f.msg, "SCRAM server error: invalid-proof");
	sasl_free(s);
}
END_TEST

static const char *bad_first[] = {
	/* nonce does not extend ours */
	"r=XOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	/* nonce equal to ours (no server part) */
	"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	/* too few iterations, too many */
	"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
	"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001",
	"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
	/* malformed */
	"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==",
	"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
	"r=rOprNGfwEbeRWgbNEkqOxyz,s=***,i=4096",
	"r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096",
	"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x",
	"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-4096",
	"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	"",
	"e=other-error",
};

START_TEST(scram_bad_server_first)
{
	struct sasl *s = scram_start();
	struct fail f = { 0 };
	unsigned char *out = NULL;
	size_t outlen = 7;
	enum fail_kind rc;

	rc = sasl_step(s, S(bad_first[_i]), &out, &outlen, &f);
	ck_assert_msg(rc == FAIL_AUTH || rc == FAIL_PROTO, "accepted %s",
	    bad_first[_i]);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(sasl_finish(s, NULL, 0, &f), FAIL_AUTH);
	sasl_free(s);
}
END_TEST

START_TEST(scram_nonce_rejected_kind)
{
	struct sasl *s = scram_start();
	struct fail f = { 0 };
	unsigned char *out = NULL;
	size_t outlen;

	ck_assert_int_eq(sasl_step(s, S(bad_first[0]), &out, &outlen, &f),
	    FAIL_AUTH);
	ck_assert(strstr(f.msg, "nonce") != NULL);
	sasl_free(s);
}
END_TEST

START_TEST(scram_username_escaping_and_random_nonce)
{
	struct sasl_params p = { "a,b=c", "x", NULL, NULL };
	struct sasl *s = sasl_new(SASL_SCRAM_SHA_256, &p), *s2;
	unsigned char *out, *out2;
	size_t outlen, outlen2;

	ck_assert_int_eq(sasl_initial(s, &out, &outlen), 1);
	ck_assert(outlen > 20);
	ck_assert(memcmp(out, "n,,n=a=2Cb=3Dc,r=", 17) == 0);
	ck_assert_uint_eq(outlen - 17, 32);     /* 24 bytes in base64 */
	s2 = sasl_new(SASL_SCRAM_SHA_256, &p);
	ck_assert_int_eq(sasl_initial(s2, &out2, &outlen2), 1);
	ck_assert(memcmp(out, out2, outlen) != 0);
	free(out);
	free(out2);
	sasl_free(s);
	sasl_free(s2);
}
END_TEST

START_TEST(plain_exact)
{
	struct sasl_params p = { "tim", "tanstaaftanstaaf", NULL, NULL };
	struct sasl *s = sasl_new(SASL_PLAIN, &p);
	struct fail f = { 0 };
	unsigned char *out;
	size_t outlen;

	ck_assert_int_eq(sasl_initial(s, &out, &outlen), 1);
	assert_bytes(out, outlen, "\0tim\0tanstaaftanstaaf", 21);
	free(out);
	ck_assert_int_eq(sasl_finish(s, NULL, 0, &f), FAIL_NONE);
	sasl_free(s);
}
END_TEST

START_TEST(plain_without_initial_response)
{
	struct sasl_params p = { "tim", "pw", NULL, NULL };
	struct sasl *s = sasl_new(SASL_PLAIN, &p);
	struct fail f = { 0 };
	unsigned char *out;
	size_t outlen;

	/* server's empty "+ " challenge asks for the initial response */
	ck_assert_int_eq(sasl_step(s, NULL, 0, &out, &outlen, &f), FAIL_NONE);
	assert_bytes(out, outlen, "\0tim\0pw", 7);
	free(out);
	ck_assert_int_eq(sasl_step(s, S("more?"), &out, &outlen, &f), FAIL_PROTO);
	sasl_free(s);
}
END_TEST

START_TEST(login_by_order)
{
	struct sasl_params p = { "tim", "secret", NULL, NULL };
	struct sasl *s = sasl_new(SASL_LOGIN, &p);
	struct fail f = { 0 };
	unsigned char *out;
	size_t outlen;

	ck_assert_int_eq(sasl_initial(s, &out, &outlen), 0);
	/* prompts in an unexpected order and language: order decides */
	ck_assert_int_eq(sasl_step(s, S("Password:"), &out, &outlen, &f), FAIL_NONE);
	assert_bytes(out, outlen, "tim", 3);
	free(out);
	ck_assert_int_eq(sasl_step(s, S("Benutzer"), &out, &outlen, &f), FAIL_NONE);
	assert_bytes(out, outlen, "secret", 6);
	free(out);
	ck_assert_int_eq(sasl_step(s, S("Again:"), &out, &outlen, &f), FAIL_PROTO);
	ck_assert_int_eq(sasl_finish(s, NULL, 0, &f), FAIL_NONE);
	sasl_free(s);
}
END_TEST

START_TEST(xoauth2_exact_and_error)
{
	struct sasl_params p = { "me@example.com", "ya29.tok", NULL, NULL };
	struct sasl *s = sasl_new(SASL_XOAUTH2, &p);
	struct fail f = { 0 };
	const char *want = "user=me@example.com\001auth=Bearer ya29.tok\001\001";
	const char *err = "{\"status\":\"401\",\"schemes\":\"Bearer\"}";
	unsigned char *out;
	size_t outlen;

	ck_assert_int_eq(sasl_initial(s, &out, &outlen), 1);
	assert_bytes(out, outlen, want, strlen(want));
	free(out);
	ck_assert_int_eq(sasl_failed(s), 0);
	ck_assert_int_eq(sasl_step(s, S(err), &out, &outlen, &f), FAIL_NONE);
	ck_assert_uint_eq(outlen, 0);
	free(out);
	ck_assert_int_eq(sasl_failed(s), 1);
	ck_assert(strstr(f.msg, "401") != NULL);
	ck_assert(strstr(f.msg, "ya29") == NULL);
	ck_assert_int_eq(sasl_finish(s, NULL, 0, &f), FAIL_AUTH);
	sasl_free(s);
}
END_TEST

START_TEST(oauthbearer_exact_and_error)
{
	struct sasl_params p = { "me@example.com", "tok", "imap.example.com", "993" };
	struct sasl *s = sasl_new(SASL_OAUTHBEARER, &p);
	struct fail f = { 0 };
	const char *want = "n,a=me@example.com,\001host=imap.example.com"
	    "\001port=993\001auth=Bearer tok\001\001";
	unsigned char *out;
	size_t outlen;

	ck_assert_int_eq(sasl_initial(s, &out, &outlen), 1);
	assert_bytes(out, outlen, want, strlen(want));
	free(out);
	ck_assert_int_eq(sasl_step(s, S("{\"status\":\"invalid_token\"}"), &out,
	    &outlen, &f), FAIL_NONE);
	assert_bytes(out, outlen, "\001", 1);
	free(out);
	ck_assert_int_eq(sasl_failed(s), 1);
	ck_assert(strstr(f.msg, "invalid_token") != NULL);
	sasl_free(s);
}
END_TEST

START_TEST(mech_names)
{
	ck_assert_int_eq(sasl_mech_parse("scram-sha-256", 13), SASL_SCRAM_SHA_256);
	ck_assert_int_eq(sasl_mech_parse("PLAINX", 5), SASL_PLAIN);
	ck_assert_int_eq(sasl_mech_parse("PLAINX", 6), SASL_NONE);
	ck_assert_int_eq(sasl_mech_parse("xoauth2", 7), SASL_XOAUTH2);
	ck_assert_str_eq(sasl_mech_name(SASL_OAUTHBEARER), "OAUTHBEARER");
	ck_assert_str_eq(sasl_mech_name(SASL_LOGIN), "LOGIN");
	ck_assert_int_eq(sasl_mech_is_cleartext(SASL_SCRAM_SHA_256), 0);
	ck_assert_int_eq(sasl_mech_is_cleartext(SASL_PLAIN), 1);
	ck_assert_int_eq(sasl_mech_is_cleartext(SASL_XOAUTH2), 1);
	ck_assert_int_eq(sasl_mech_is_cleartext(SASL_OAUTHBEARER), 1);
	ck_assert_int_eq(sasl_mech_is_cleartext(SASL_LOGIN), 1);
	sasl_free(NULL);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, scram_rfc7677_challenge);
	tcase_add_test(tc, scram_rfc7677_success_data);
	tcase_add_test(tc, scram_wrong_server_signature);
	tcase_add_test(tc, scram_wrong_signature_in_success);
	tcase_add_test(tc, scram_never_verified);
	tcase_add_test(tc, scram_server_error);
	tcase_add_loop_test(tc, scram_bad_server_first, 0,
	    sizeof(bad_first) / sizeof(bad_first[0]));
	tcase_add_test(tc, scram_nonce_rejected_kind);
	tcase_add_test(tc, scram_username_escaping_and_random_nonce);
	tcase_add_test(tc, plain_exact);
	tcase_add_test(tc, plain_without_initial_response);
	tcase_add_test(tc, login_by_order);
	tcase_add_test(tc, xoauth2_exact_and_error);
	tcase_add_test(tc, oauthbearer_exact_and_error);
	tcase_add_test(tc, mech_names);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
