/* unit.h - shared by the check unit tests: each test_*.c defines
 * `Suite *unit_suite(void)` and ends with UNIT_MAIN. */
#ifndef MAILPULL_UNIT_H
#define MAILPULL_UNIT_H

#include <check.h>
#include <stdlib.h>

Suite *unit_suite(void);

#define UNIT_MAIN                                                       \
	int main(void)                                                  \
	{                                                               \
		SRunner *sr = srunner_create(unit_suite());             \
		srunner_run_all(sr, CK_NORMAL);                         \
		int failed = srunner_ntests_failed(sr);                 \
		srunner_free(sr);                                       \
		return failed ? EXIT_FAILURE : EXIT_SUCCESS;            \
	}

#endif
