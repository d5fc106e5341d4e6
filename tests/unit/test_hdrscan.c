/* test_hdrscan.c - Message-ID capture across any split of the input. */
#include <string.h>

#include "hdrscan.h"
#include "unit.h"

static const char msg[] =
	"Received: from a\r\n\tby b\r\n"
	"message-id:\r\n <abc.123@example.org>\r\n"
	"Subject: Message-ID: <not-this@x>\r\n"
	"\r\n"
	"Message-ID: <body@x>\r\n";

START_TEST(every_split)
{
	size_t len = strlen(msg);

	for (size_t cut = 0; cut <= len; cut++) {
		struct hdrscan h;

		hdrscan_init(&h);
		hdrscan_feed(&h, msg, cut);
		hdrscan_feed(&h, msg + cut, len - cut);
		ck_assert_ptr_nonnull(hdrscan_message_id(&h));
		ck_assert_str_eq(hdrscan_message_id(&h), "<abc.123@example.org>");
		ck_assert_int_eq(h.done, 1);
	}
}
END_TEST

START_TEST(byte_at_a_time_and_none)
{
	static const char nomid[] = "From: a\nSubject: b\n\nMessage-ID: <x>\n";
	struct hdrscan h;

	hdrscan_init(&h);
	for (size_t i = 0; i < sizeof(nomid) - 1; i++)
		hdrscan_feed(&h, nomid + i, 1);
	ck_assert_ptr_null(hdrscan_message_id(&h));
}
END_TEST

START_TEST(long_line_capped)
{
	static char big[5000];
	struct hdrscan h;

	memset(big, 'x', sizeof(big));
	memcpy(big, "Message-ID: <", 13);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\n';
	hdrscan_init(&h);
	hdrscan_feed(&h, big, sizeof(big));
	ck_assert_ptr_nonnull(hdrscan_message_id(&h));
	ck_assert_uint_lt(strlen(hdrscan_message_id(&h)), HDRSCAN_LINE_MAX);
	ck_assert_int_eq(h.done, 1);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("hdrscan");
	TCase *tc = tcase_create("hdrscan");

	tcase_add_test(tc, every_split);
	tcase_add_test(tc, byte_at_a_time_and_none);
	tcase_add_test(tc, long_line_capped);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
