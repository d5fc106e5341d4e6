/* config.h - the configuration file. The only user of ini.h.
 *
 * config_load() reads the whole file, checks every value, and reports every
 * problem as "FILE:LINE: message" through log_error(); it returns -1 if there
 * was any. Values take ~ and $VAR (${VAR}). A file that holds a password and
 * can be read by group or others is refused.
 */
#ifndef MAILPULL_CONFIG_H
#define MAILPULL_CONFIG_H

#include <signal.h>
#include <stddef.h>
#include "conn.h"
#include "source.h"
#include "target.h"

struct filter;

/* A [filter NAME] section. */
struct filter_def {
	char *name;
	int line;                       /* of its section header */
	struct filter *fl;              /* filter.h */
	struct target_spec route;       /* action = deliver:TARGET; else ops NULL */
};

enum protocol { PROTO_POP3, PROTO_IMAP };

struct account {
	char *name;
	int line;                       /* line of the [account NAME] header */
	enum protocol protocol;
	char *host;
	char *port;                     /* default from protocol and tls */
	enum tls_mode tls;
	int tls_verify;
	char *ca_file;
	char *fingerprint;
	char *user;
	char *password;                 /* wiped on config_free */
	char *passcmd;
	enum auth_choice auth;
	int allow_plaintext;
	int keep;                       /* 1 = leave on server */
	char **folders;                 /* IMAP: names (UTF-8), or { "*" } */
	size_t nfolders;
	int mark_seen;                  /* IMAP: set \Seen after delivery */
	char *smtp_to;                  /* envelope recipient for smtp/lmtp */
	char *smtp_user;                /* AUTH for smtp:// targets, or NULL */
	char *smtp_password;            /* wiped on config_free */
	char *smtp_passcmd;
	struct target_spec *deliver;    /* one or more (fan-out) */
	int *deliver_line;              /* where each was given */
	size_t ndeliver;
	const struct filter_def **filters;      /* filter = a, b: in order */
	size_t nfilters;
	unsigned long long max_size;    /* bigger ones stay on the server; 0: no limit */
	int keep_days;                  /* keep = DAYS (then keep = 0) */
	unsigned long max_messages;     /* taken per poll; 0: no limit */
	char digest[65];                /* filters and max_size, for skipped ones */
	int interval;                   /* daemon: seconds; 0: [general] interval */
	int idle;                       /* IMAP, daemon: IDLE */
	char **idle_folders;            /* the folders to IDLE on (default INBOX) */
	size_t nidle_folders;
	struct account *next;
};

struct config {
	char *path;
	char *state;                    /* state database path, expanded */
	int timeout;                    /* seconds */
	int interval;                   /* daemon: seconds between polls */
	int parallel;                   /* accounts polled at once */
	int use_syslog;
	struct account *accounts;       /* in file order */
	struct filter_def *filters;     /* [filter NAME] sections, in file order */
	size_t nfilters;
	size_t naccounts;
};

/* Default config path: $XDG_CONFIG_HOME/mailpull/config.ini if it exists,
 * else ~/.mailpull.ini. xmalloc'd. */
char *config_default_path(void);

/* 0 ok; -1 after logging every error. On error cfg holds nothing to free. */
int config_load(struct config *cfg, const char *path);
void config_free(struct config *cfg);

struct account *config_find(const struct config *cfg, const char *name);

/* Run an account's passcmd through /bin/sh and return the first line of its
 * stdout (xmalloc'd, secret). NULL and *f set on failure (exit status, empty
 * output). */
char *config_run_passcmd(const struct account *a, struct fail *f);
/* The same for the relay credentials: smtp_password, else smtp_passcmd's
 * first line (xmalloc'd, secret); NULL and *f set on failure. */
char *config_smtp_secret(const struct account *a, struct fail *f);

/* When set and non-zero (the daemon points it at its stop flag), a passcmd
 * still running is stopped at once and fails as temporary. */
extern volatile sig_atomic_t *config_cmd_stop;

/* Expand ~ and $VAR / ${VAR} in s. NULL with *err set if a variable is unset. */
char *config_expand(const char *s, const char **err);

#endif
