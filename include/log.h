/* log.h - logging to stderr or syslog.
 *
 * Every line names its account: log_set_context() sets the account name (and
 * optionally the server "host:port") for the calling thread; lines are then
 * "mailpull: ACCOUNT: message" on stderr. Without a context, lines are
 * "mailpull: message". Levels: error/warn always (unless quiet drops warn?
 * no: -q keeps errors and warnings), info by default, verbose with -v, trace
 * (protocol) with -vv. errno is preserved by every function here.
 */
#ifndef MAILPULL_LOG_H
#define MAILPULL_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,      /* -q shows only these */
	LOG_LVL_WARN,
	LOG_LVL_INFO,           /* default */
	LOG_LVL_VERBOSE,        /* -v */
	LOG_LVL_TRACE,          /* -vv: protocol trace */
};

void log_init(int use_syslog, enum log_level level);
enum log_level log_get_level(void);
int log_enabled(enum log_level level);

/* Account name for following lines from this thread; NULL clears. The string
 * is copied. */
void log_set_context(const char *account);

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);   /* error, no errno */
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);    /* warning + ": strerror(errno)" */
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);   /* warning */
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_verbose(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);   /* with the trace (-vv) */
/* Protocol trace: dir is "<" (from server) or ">" (to server). The text is
 * printed up to len bytes, non-printable bytes escaped; callers redact
 * secrets BEFORE calling (see proto code). */
void log_trace(const char *dir, const char *text, size_t len);

#endif
