/* fail.c - the failure vocabulary and its mapping to sysexits. */
#include <stdarg.h>
#include <stdio.h>
#include <sysexits.h>

#include "fail.h"

enum fail_kind
fail_set(struct fail *f, enum fail_kind kind, const char *fmt, ...)
{
	va_list ap;

	if (f == NULL)
		return kind;
	f->kind = kind;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	return kind;
}

int
fail_exit_code(enum fail_kind kind)
{
	switch (kind) {
	case FAIL_NONE:         return 0;
	case FAIL_TEMP:         return EX_TEMPFAIL;
	case FAIL_CONN:         return EX_UNAVAILABLE;
	case FAIL_PROTO:        return EX_UNAVAILABLE;
	case FAIL_AUTH:         return EX_NOPERM;
	case FAIL_REJECTED:     return EX_CANTCREAT;
	case FAIL_LOCAL:        return EX_CANTCREAT;
	case FAIL_CONFIG:       return EX_CONFIG;
	}
	return EX_SOFTWARE;
}

/* Higher is worse: config > usage > login > local > unavailable > temp > none-new > ok. */
int
fail_exit_rank(int code)
{
	switch (code) {
	case 0:                 return 0;
	case 1:                 return 1;
	case EX_TEMPFAIL:       return 2;
	case EX_UNAVAILABLE:    return 3;
	case EX_CANTCREAT:      return 4;
	case EX_NOPERM:         return 5;
	case EX_USAGE:          return 6;
	case EX_CONFIG:         return 7;
	default:                return 8;
	}
}

const char *
fail_kind_name(enum fail_kind kind)
{
	static const char *const names[] = {
		[FAIL_NONE] = "ok", [FAIL_TEMP] = "temporary failure",
		[FAIL_CONN] = "connection failure", [FAIL_PROTO] = "protocol error",
		[FAIL_AUTH] = "login refused", [FAIL_REJECTED] = "rejected",
		[FAIL_LOCAL] = "local failure", [FAIL_CONFIG] = "config error",
	};

	if ((unsigned)kind < sizeof(names) / sizeof(names[0]))
		return names[kind];
	return "unknown failure";
}
