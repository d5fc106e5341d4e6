/* log.c - lines to stderr or syslog, each naming its account. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

/* Set again by a daemon's re-read config while other threads log. */
static atomic_int log_syslog;
static atomic_int log_level = LOG_LVL_INFO;
static _Thread_local char log_account[128];

void
log_init(int use_syslog, enum log_level level)
{
	int was = atomic_exchange(&log_syslog, use_syslog);

	atomic_store(&log_level, (int)level);
	if (use_syslog && !was)
		openlog("mailpull", LOG_PID, LOG_MAIL);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

int
log_enabled(enum log_level level)
{
	return (int)level <= atomic_load(&log_level);
}

void
log_set_context(const char *account)
{
	if (account == NULL)
		log_account[0] = '\0';
	else
		snprintf(log_account, sizeof(log_account), "%s", account);
}

static void log_vemit(enum log_level, const char *, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static void
log_vemit(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	static const int prio[] = {
		[LOG_LVL_ERROR] = LOG_ERR, [LOG_LVL_WARN] = LOG_WARNING,
		[LOG_LVL_INFO] = LOG_INFO, [LOG_LVL_VERBOSE] = LOG_DEBUG,
		[LOG_LVL_TRACE] = LOG_DEBUG,
	};
	char msg[2048];
	int saved = errno;

	if (!log_enabled(level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_syslog) {
		if (log_account[0])
			syslog(prio[level], "%s: %s%s", log_account, msg, suffix);
		else
			syslog(prio[level], "%s%s", msg, suffix);
	} else if (log_account[0]) {
		fprintf(stderr, "mailpull: %s: %s%s\n", log_account, msg, suffix);
	} else {
		fprintf(stderr, "mailpull: %s%s\n", msg, suffix);
	}
	errno = saved;
}

#define LOG_FN(name, level)                             \
	void name(const char *fmt, ...)                 \
	{                                               \
		va_list ap;                             \
		va_start(ap, fmt);                      \
		log_vemit(level, "", fmt, ap);          \
		va_end(ap);                             \
	}

LOG_FN(log_error, LOG_LVL_ERROR)
LOG_FN(log_warnx, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_verbose, LOG_LVL_VERBOSE)
LOG_FN(log_debug, LOG_LVL_TRACE)

void
log_warn(const char *fmt, ...)
{
	char suffix[256];
	va_list ap;
	int saved = errno;

	snprintf(suffix, sizeof(suffix), ": %s", strerror(saved));
	va_start(ap, fmt);
	log_vemit(LOG_LVL_WARN, suffix, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_trace(const char *dir, const char *text, size_t len)
{
	char out[1024];
	size_t o = 0;

	if (!log_enabled(LOG_LVL_TRACE))
		return;
	for (size_t i = 0; i < len && o + 5 < sizeof(out); i++) {
		unsigned char ch = (unsigned char)text[i];

		if (ch >= 0x20 && ch < 0x7f) {
			out[o++] = (char)ch;
		} else {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", ch);
		}
	}
	if (o + 5 >= sizeof(out) && len > 0)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "...");
	out[o] = '\0';
	/* Trace lines always go to stderr: -vv is for a person watching. */
	int saved = errno;
	if (log_account[0])
		fprintf(stderr, "mailpull: %s: %s %s\n", log_account, dir, out);
	else
		fprintf(stderr, "mailpull: %s %s\n", dir, out);
	errno = saved;
}
