/* config.c - the configuration file; the only user of ini.h.
 *
 * inih calls key_handler() for every "key = value"; our own line reader
 * counts lines so that every error names FILE:LINE, and remembers where each
 * [section] header was for errors about a whole section (a missing key).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ini.h>

#include "clock.h"
#include "config.h"
#include "crypto.h"
#include "filter.h"
#include "log.h"
#include "xmalloc.h"

#define CONFIG_LINE_MAX 4096

struct parse {
	struct config *cfg;
	FILE *fp;
	const char *path;
	int line;               /* line being parsed */
	int section_line;       /* line of the last [section] header */
	int errors;
	int has_password;
	struct account *acct;   /* account of the current section, or NULL */
	struct account **tail;
	/* which keys of the current section were set, to catch duplicates */
	unsigned long long set;
	int section_ok;         /* keys of the current section are taken */
	int general_seen;
	long fidx;              /* [filter NAME] being read, or -1 */
	/* accounts' `filter =` lists, resolved once every section is read */
	struct filter_ref {
		struct account *acct;
		char *name;
		int line;
	} *frefs;
	size_t nfrefs;
};

static void
config_error(struct parse *ps, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
config_error(struct parse *ps, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s:%d: %s", ps->path, line, msg);
	ps->errors++;
}

/* --- value helpers ------------------------------------------------------ */

char *
config_expand(const char *s, const char **err)
{
	size_t cap = strlen(s) + 1, len = 0;
	char *out = xmalloc(cap);

#define PUT(p, n) do {                                                  \
	if (len + (n) + 1 > cap) {                                      \
		cap = (len + (n) + 1) * 2;                              \
		out = xreallocarray(out, cap, 1);                       \
	}                                                               \
	memcpy(out + len, (p), (n));                                    \
	len += (n);                                                     \
} while (0)

	if (s[0] == '~' && (s[1] == '/' || s[1] == '\0')) {
		const char *home = getenv("HOME");

		if (home == NULL || *home == '\0') {
			*err = "~ used but HOME is not set";
			free(out);
			return NULL;
		}
		PUT(home, strlen(home));
		s++;
	}
	while (*s) {
		if (*s != '$') {
			const char *d = strchr(s, '$');
			size_t n = d ? (size_t)(d - s) : strlen(s);

			PUT(s, n);
			s += n;
			continue;
		}
		if (s[1] == '$') {              /* "$$" is a literal "$" */
			PUT("$", 1);
			s += 2;
			continue;
		}
		const char *name = s + 1, *end;
		int braced = (*name == '{');

		if (braced)
			name++;
		for (end = name; isalnum((unsigned char)*end) || *end == '_'; end++)
			;
		if (end == name || (braced && *end != '}')) {
			*err = "bad variable reference (use $NAME, ${NAME} or $$)";
			free(out);
			return NULL;
		}
		char var[256];
		size_t vn = (size_t)(end - name);

		if (vn >= sizeof(var)) {
			*err = "variable name too long";
			free(out);
			return NULL;
		}
		memcpy(var, name, vn);
		var[vn] = '\0';
		const char *val = getenv(var);

		if (val == NULL) {
			static _Thread_local char msg[300];

			snprintf(msg, sizeof(msg), "$%s is not set", var);
			*err = msg;
			free(out);
			return NULL;
		}
		PUT(val, strlen(val));
		s = end + (braced ? 1 : 0);
	}
	out[len] = '\0';
	return out;
#undef PUT
}

static int
parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static int
parse_int(const char *v, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

/* "sha256:" followed by 32 hex bytes, colons optional. */
static int
valid_fingerprint(const char *v)
{
	size_t digits = 0;

	if (strncasecmp(v, "sha256:", 7) != 0)
		return 0;
	for (v += 7; *v; v++) {
		if (isxdigit((unsigned char)*v))
			digits++;
		else if (*v != ':')
			return 0;
	}
	return digits == 64;
}

static int
lookup(const char *v, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcasecmp(v, names[i]) == 0)
			return (int)i;
	return -1;
}

/* --- keys ---------------------------------------------------------------- */

enum key_flags { K_REPEAT = 1, K_NOEXPAND = 2 };

struct key {
	const char *name;
	int flags;
	int (*set)(struct parse *ps, const char *v, const char **err);
};

/* [general] */

static int
g_state(struct parse *ps, const char *v, const char **err)
{
	free(ps->cfg->state);
	ps->cfg->state = xstrdup(v);
	return 0;
}

static int
g_timeout(struct parse *ps, const char *v, const char **err)
{
	long n;

	if (parse_int(v, 1, 3600, &n) < 0) {
		*err = "timeout must be a number of seconds from 1 to 3600";
		return -1;
	}
	ps->cfg->timeout = (int)n;
	return 0;
}

static int
g_log(struct parse *ps, const char *v, const char **err)
{
	static const char *const names[] = { "stderr", "syslog" };
	int i = lookup(v, names, 2);

	if (i < 0) {
		*err = "log must be stderr or syslog";
		return -1;
	}
	ps->cfg->use_syslog = (i == 1);
	return 0;
}

static int
g_interval(struct parse *ps, const char *v, const char **err)
{
	long n;

	if (parse_int(v, 10, 7 * 24 * 3600, &n) < 0) {
		*err = "interval must be a number of seconds from 10 to 604800";
		return -1;
	}
	ps->cfg->interval = (int)n;
	return 0;
}

static int
g_parallel(struct parse *ps, const char *v, const char **err)
{
	long n;

	if (parse_int(v, 1, 64, &n) < 0) {
		*err = "parallel must be a number from 1 to 64";
		return -1;
	}
	ps->cfg->parallel = (int)n;
	return 0;
}

static const struct key general_keys[] = {
	{ "state", 0, g_state },
	{ "timeout", 0, g_timeout },
	{ "log", 0, g_log },
	{ "interval", 0, g_interval },
	{ "parallel", 0, g_parallel },
};

/* [account NAME] */

#define ACCT (ps->acct)

static int
a_protocol(struct parse *ps, const char *v, const char **err)
{
	if (strcasecmp(v, "pop3") == 0) {
		ACCT->protocol = PROTO_POP3;
		return 0;
	}
	if (strcasecmp(v, "imap") == 0) {
		ACCT->protocol = PROTO_IMAP;
		return 0;
	}
	*err = "protocol must be pop3 or imap";
	return -1;
}

static void
free_folders(struct account *a)
{
	for (size_t i = 0; i < a->nfolders; i++)
		free(a->folders[i]);
	free(a->folders);
	a->folders = NULL;
	a->nfolders = 0;
}

/* "a, b, c": the items, blanks around each trimmed, appended to *v.
 * -1 if one is empty. */
static int
split_list(const char *v, char ***out, size_t *n)
{
	const char *p = v;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *b = p, *e = p + len;

		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == b)
			return -1;
		*out = xreallocarray(*out, *n + 1, sizeof(**out));
		(*out)[(*n)++] = xstrndup(b, (size_t)(e - b));
		p += len + (comma ? 1 : 0);
	}
	return 0;
}

/* "INBOX, Archive/2024" or "*". Names are UTF-8 as the user sees them. */
static int
a_folders(struct parse *ps, const char *v, const char **err)
{
	free_folders(ACCT);
	if (split_list(v, &ACCT->folders, &ACCT->nfolders) < 0) {
		*err = "folders: an empty name (folders = INBOX, Archive "
		    "or folders = *)";
		return -1;
	}
	if (ACCT->nfolders == 0) {
		*err = "folders is empty";
		return -1;
	}
	for (size_t i = 0; i < ACCT->nfolders; i++) {
		if (strcmp(ACCT->folders[i], "*") == 0 && ACCT->nfolders > 1) {
			*err = "folders: * means every folder; give it alone";
			return -1;
		}
	}
	return 0;
}


static int
a_mark_seen(struct parse *ps, const char *v, const char **err)
{
	if (parse_bool(v, &ACCT->mark_seen) < 0) {
		*err = "mark_seen must be yes or no";
		return -1;
	}
	return 0;
}

static int
a_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
	return 0;
}

static int
a_smtp_to(struct parse *ps, const char *v, const char **err)
{
	if (*v == '\0' || strpbrk(v, " \t<>") != NULL) {
		*err = "smtp_to must be one address (me@example.org)";
		return -1;
	}
	return a_str(&ACCT->smtp_to, v);
}

static int
a_host(struct parse *ps, const char *v, const char **err)
{
	if (*v == '\0') {
		*err = "host is empty";
		return -1;
	}
	return a_str(&ACCT->host, v);
}

static int
a_port(struct parse *ps, const char *v, const char **err)
{
	long n;

	if (parse_int(v, 1, 65535, &n) < 0) {
		*err = "port must be a number from 1 to 65535";
		return -1;
	}
	return a_str(&ACCT->port, v);
}

static int
a_tls(struct parse *ps, const char *v, const char **err)
{
	static const char *const names[] = {
		[TLS_NONE] = "none", [TLS_IMPLICIT] = "implicit",
		[TLS_STARTTLS] = "starttls",
	};
	int i = lookup(v, names, 3);

	if (i < 0) {
		*err = "tls must be implicit, starttls or none";
		return -1;
	}
	ACCT->tls = (enum tls_mode)i;
	return 0;
}

static int
a_tls_verify(struct parse *ps, const char *v, const char **err)
{
	if (parse_bool(v, &ACCT->tls_verify) < 0) {
		*err = "tls_verify must be yes or no";
		return -1;
	}
	return 0;
}

static int
a_ca_file(struct parse *ps, const char *v, const char **err)
{
	if (access(v, R_OK) != 0) {
		*err = "ca_file cannot be read";
		return -1;
	}
	return a_str(&ACCT->ca_file, v);
}

static int
a_fingerprint(struct parse *ps, const char *v, const char **err)
{
	if (!valid_fingerprint(v)) {
		*err = "fingerprint must be sha256: followed by 32 hex bytes";
		return -1;
	}
	return a_str(&ACCT->fingerprint, v);
}

static int
a_user(struct parse *ps, const char *v, const char **err)
{
	return a_str(&ACCT->user, v);
}

static int
a_password(struct parse *ps, const char *v, const char **err)
{
	ps->has_password = 1;
	free_secret(ACCT->password);
	ACCT->password = xstrdup(v);
	return 0;
}

static int
a_passcmd(struct parse *ps, const char *v, const char **err)
{
	return a_str(&ACCT->passcmd, v);
}

/* The relay's AUTH credentials (smtp://, smtps://, lmtp targets). */
static int
a_smtp_user(struct parse *ps, const char *v, const char **err)
{
	if (*v == '\0') {
		*err = "smtp_user is empty";
		return -1;
	}
	return a_str(&ACCT->smtp_user, v);
}

static int
a_smtp_password(struct parse *ps, const char *v, const char **err)
{
	ps->has_password = 1;
	free_secret(ACCT->smtp_password);
	ACCT->smtp_password = xstrdup(v);
	return 0;
}

static int
a_smtp_passcmd(struct parse *ps, const char *v, const char **err)
{
	return a_str(&ACCT->smtp_passcmd, v);
}

static int
a_auth(struct parse *ps, const char *v, const char **err)
{
	static const char *const names[] = {
		[AUTH_AUTO] = "auto", [AUTH_USER] = "user", [AUTH_APOP] = "apop",
		[AUTH_PLAIN] = "plain", [AUTH_LOGIN] = "login",
		[AUTH_SCRAM_SHA_256] = "scram-sha-256", [AUTH_XOAUTH2] = "xoauth2",
		[AUTH_OAUTHBEARER] = "oauthbearer",
	};
	int i = lookup(v, names, sizeof(names) / sizeof(names[0]));

	if (i < 0) {
		*err = "auth must be auto, user, apop, plain, login, "
		    "scram-sha-256, xoauth2 or oauthbearer";
		return -1;
	}
	ACCT->auth = (enum auth_choice)i;
	return 0;
}

static int
a_allow_plaintext(struct parse *ps, const char *v, const char **err)
{
	if (parse_bool(v, &ACCT->allow_plaintext) < 0) {
		*err = "allow_plaintext must be yes or no";
		return -1;
	}
	return 0;
}

static int
a_keep(struct parse *ps, const char *v, const char **err)
{
	long days;

	ACCT->keep_days = 0;
	if (*v >= '0' && *v <= '9') {
		char num[32];
		size_t n = strlen(v);

		/* "1" and "0" read as yes and no elsewhere: a day count needs a
		 * d after it there ("1d"); from 2 on the d may be left out */
		if (n > 0 && n < sizeof(num) && (v[n - 1] == 'd' ||
		    v[n - 1] == 'D'))
			n--;
		snprintf(num, sizeof(num), "%.*s", (int)n, v);
		if (n == strlen(v) && (strcmp(num, "0") == 0 ||
		    strcmp(num, "1") == 0)) {
			*err = "keep = 0 or 1 is unclear: write no or yes, or a "
			    "number of days (1d, 2, 30)";
			return -1;
		}
		if (parse_int(num, 1, 36500, &days) < 0) {
			*err = "keep must be yes, no or a number of days (1d or "
			    "more)";
			return -1;
		}
		ACCT->keep = 0;
		ACCT->keep_days = (int)days;
		return 0;
	}
	if (parse_bool(v, &ACCT->keep) < 0) {
		*err = "keep must be yes, no or a number of days";
		return -1;
	}
	return 0;
}

static int
a_max_size(struct parse *ps, const char *v, const char **err)
{
	if (filter_parse_size(v, &ACCT->max_size) < 0) {
		*err = "max_size must be a size: a number, optionally followed "
		    "by k, M or G (0: no limit)";
		return -1;
	}
	return 0;
}

static int
a_max_messages(struct parse *ps, const char *v, const char **err)
{
	long n;

	if (parse_int(v, 0, 100000000, &n) < 0) {
		*err = "max_messages must be a number (0: no limit)";
		return -1;
	}
	ACCT->max_messages = (unsigned long)n;
	return 0;
}

static int
a_interval(struct parse *ps, const char *v, const char **err)
{
	long n;

	if (parse_int(v, 10, 7 * 24 * 3600, &n) < 0) {
		*err = "interval must be a number of seconds from 10 to 604800";
		return -1;
	}
	ACCT->interval = (int)n;
	return 0;
}

/* idle_folders = INBOX, Lists/dev: one IDLE connection each. */
static int
a_idle_folders(struct parse *ps, const char *v, const char **err)
{
	int bad = split_list(v, &ACCT->idle_folders, &ACCT->nidle_folders);

	for (size_t i = 0; !bad && i < ACCT->nidle_folders; i++)
		bad = strcmp(ACCT->idle_folders[i], "*") == 0;
	if (bad) {
		*err = "idle_folders: a list of folder names (idle_folders "
		    "= INBOX, Lists)";
		return -1;
	}
	return 0;
}

static int
a_idle(struct parse *ps, const char *v, const char **err)
{
	if (parse_bool(v, &ACCT->idle) < 0) {
		*err = "idle must be yes or no";
		return -1;
	}
	return 0;
}

/* filter = a, b: names of [filter NAME] sections, looked up at the end. */
static int
a_filter(struct parse *ps, const char *v, const char **err)
{
	char **names = NULL;
	size_t n = 0;
	int rc = split_list(v, &names, &n);

	/* each name is looked up once every section is read */
	for (size_t i = 0; i < n; i++) {
		if (rc < 0) {
			free(names[i]);
			continue;
		}
		ps->frefs = xreallocarray(ps->frefs, ps->nfrefs + 1,
		    sizeof(*ps->frefs));
		ps->frefs[ps->nfrefs++] = (struct filter_ref){ ACCT, names[i],
		    ps->line };
	}
	free(names);
	if (rc < 0) {
		*err = "filter: an empty name (filter = spam, junk)";
		return -1;
	}
	return 0;
}


/* A target as written in `deliver =` or a filter's `action = deliver:`:
 * its kind, and its path expanded (not an MDA command or a relay URL). */
static int
parse_target(const char *v, struct target_spec *out, const char **err)
{
	struct target_spec spec;
	const char *e2 = NULL;
	char *path;

	if (target_spec_parse(v, &spec, err) < 0)
		return -1;
	/* An MDA command is the shell's to expand, not ours; a relay's URL
	 * is taken as written. */
	if (spec.ops == &mda_target || spec.ops == &smtp_target)
		path = xstrdup(spec.path);
	else
		path = config_expand(spec.path, &e2);
	if (path == NULL) {
		static _Thread_local char msg[400];

		snprintf(msg, sizeof(msg), "deliver: %s", e2);
		*err = msg;
		free(spec.path);
		free(spec.text);
		return -1;
	}
	free(spec.path);
	spec.path = path;
	*out = spec;
	return 0;
}

static int
a_deliver(struct parse *ps, const char *v, const char **err)
{
	struct target_spec spec;

	if (parse_target(v, &spec, err) < 0)
		return -1;
	/* Fan-out: each line one more target, each a different one. */
	for (size_t i = 0; i < ACCT->ndeliver; i++) {
		const struct target_spec *o = &ACCT->deliver[i];
		static _Thread_local char msg[400];

		if (o->ops == spec.ops && target_same_path(o->path, spec.path)) {
			snprintf(msg, sizeof(msg), "deliver: %.300s is the same "
			    "target as line %d", spec.text, ACCT->deliver_line[i]);
			*err = msg;
			free(spec.path);
			free(spec.text);
			return -1;
		}
	}
	ACCT->deliver_line = xreallocarray(ACCT->deliver_line,
	    ACCT->ndeliver + 1, sizeof(*ACCT->deliver_line));
	ACCT->deliver_line[ACCT->ndeliver] = ps->line;
	ACCT->deliver = xreallocarray(ACCT->deliver, ACCT->ndeliver + 1,
	    sizeof(*ACCT->deliver));
	ACCT->deliver[ACCT->ndeliver++] = spec;
	return 0;
}

/* Keys whose raw value must not be expanded: secrets and shell commands,
 * and deliver, which keeps its text as written (its path is expanded). */
static const struct key account_keys[] = {
	{ "protocol", 0, a_protocol },
	{ "host", 0, a_host },
	{ "port", 0, a_port },
	{ "tls", 0, a_tls },
	{ "tls_verify", 0, a_tls_verify },
	{ "ca_file", 0, a_ca_file },
	{ "fingerprint", 0, a_fingerprint },
	{ "user", 0, a_user },
	{ "password", K_NOEXPAND, a_password },
	{ "passcmd", K_NOEXPAND, a_passcmd },
	{ "auth", 0, a_auth },
	{ "allow_plaintext", 0, a_allow_plaintext },
	{ "keep", 0, a_keep },
	{ "folders", 0, a_folders },
	{ "mark_seen", 0, a_mark_seen },
	{ "smtp_to", 0, a_smtp_to },
	{ "smtp_user", 0, a_smtp_user },
	{ "smtp_password", K_NOEXPAND, a_smtp_password },
	{ "smtp_passcmd", K_NOEXPAND, a_smtp_passcmd },
	/* repeatable: each line is one more target (fan-out) */
	{ "deliver", K_NOEXPAND | K_REPEAT, a_deliver },
	{ "filter", 0, a_filter },
	{ "interval", 0, a_interval },
	{ "idle", 0, a_idle },
	{ "idle_folders", 0, a_idle_folders },
	{ "max_size", 0, a_max_size },
	{ "max_messages", 0, a_max_messages },
};

#undef ACCT

/* --- sections ------------------------------------------------------------ */

static struct account *
account_new(struct parse *ps, const char *name)
{
	struct account *a = xcalloc(1, sizeof(*a));

	a->name = xstrdup(name);
	a->line = ps->section_line;
	a->protocol = PROTO_POP3;
	a->tls = TLS_IMPLICIT;
	a->tls_verify = 1;
	a->auth = AUTH_AUTO;
	a->keep = 1;
	*ps->tail = a;
	ps->tail = &a->next;
	ps->cfg->naccounts++;
	return a;
}

static int
valid_account_name(const char *name)
{
	if (*name == '\0' || strlen(name) > 64)
		return 0;
	for (; *name; name++)
		if (!isalnum((unsigned char)*name) && !strchr("-_.@+", *name))
			return 0;
	return 1;
}

/* Enter the section named in a header; returns 0 if its keys are taken. */
static int
enter_section(struct parse *ps, const char *section)
{
	ps->acct = NULL;
	ps->fidx = -1;
	ps->set = 0;
	if (strcmp(section, "general") == 0) {
		if (ps->general_seen++)
			config_error(ps, ps->section_line, "[general] given twice");
		return 0;
	}
	if (strncmp(section, "account ", 8) == 0) {
		const char *name = section + 8;

		while (*name == ' ')
			name++;
		if (!valid_account_name(name)) {
			config_error(ps, ps->section_line, "bad account name '%s' "
			    "(letters, digits and - _ . @ + only)", name);
			return -1;
		}
		if (config_find(ps->cfg, name)) {
			config_error(ps, ps->section_line,
			    "account '%s' is defined twice", name);
			return -1;
		}
		ps->acct = account_new(ps, name);
		return 0;
	}
	if (strncmp(section, "filter ", 7) == 0) {
		const char *name = section + 7;
		struct config *cfg = ps->cfg;

		while (*name == ' ')
			name++;
		if (!valid_account_name(name)) {
			config_error(ps, ps->section_line, "bad filter name '%s' "
			    "(letters, digits and - _ . @ + only)", name);
			return -1;
		}
		for (size_t i = 0; i < cfg->nfilters; i++) {
			if (strcmp(cfg->filters[i].name, name) == 0) {
				config_error(ps, ps->section_line, "filter '%s' "
				    "is defined twice (line %d)", name,
				    cfg->filters[i].line);
				return -1;
			}
		}
		cfg->filters = xreallocarray(cfg->filters, cfg->nfilters + 1,
		    sizeof(*cfg->filters));
		memset(&cfg->filters[cfg->nfilters], 0, sizeof(*cfg->filters));
		cfg->filters[cfg->nfilters].name = xstrdup(name);
		cfg->filters[cfg->nfilters].line = ps->section_line;
		cfg->filters[cfg->nfilters].fl = filter_new(name);
		ps->fidx = (long)cfg->nfilters++;
		return 0;
	}
	config_error(ps, ps->section_line, "unknown section [%s] "
	    "(expected [general], [account NAME] or [filter NAME])", section);
	return -1;
}

/* A key of a [filter NAME] section. Values are taken as written: a regex's
 * $ is the regex's (the target of action = deliver: is expanded). */
static void
filter_key(struct parse *ps, const char *name, const char *value)
{
	struct filter_def *d = &ps->cfg->filters[ps->fidx];
	const char *err = NULL;

	if (filter_set(d->fl, name, value, &err) < 0) {
		config_error(ps, ps->line, "%s", err);
		return;
	}
	if (strcmp(name, "action") == 0 &&
	    strncasecmp(value, "deliver:", 8) == 0) {
		const char *t = value + 8, *q;

		while (*t == ' ' || *t == '\t')
			t++;
		if (parse_target(t, &d->route, &err) < 0)
			config_error(ps, ps->line, "action: %s", err);
		else if (d->route.ops == &smtp_target &&
		    ((q = strchr(d->route.path, '?')) == NULL ||
		    (strncmp(q + 1, "to=", 3) != 0 && strstr(q, "&to=") == NULL)))
			config_error(ps, ps->line, "action: %s needs its "
			    "recipient in the URL (?to=ADDRESS)", d->route.text);
	}
}

static int
key_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *ps = user;
	const struct key *keys;
	size_t nkeys, i;
	const char *err = NULL;
	char *expanded = NULL;

	if (*section == '\0') {
		config_error(ps, ps->line, "'%s' is outside any section", name);
		return 1;
	}
	if (!ps->section_ok)
		return 1;       /* a bad section, reported once */
	if (ps->fidx >= 0) {
		filter_key(ps, name, value);
		return 1;
	}
	if (ps->acct) {
		keys = account_keys;
		nkeys = sizeof(account_keys) / sizeof(account_keys[0]);
	} else {
		keys = general_keys;
		nkeys = sizeof(general_keys) / sizeof(general_keys[0]);
	}
	for (i = 0; i < nkeys; i++)
		if (strcmp(name, keys[i].name) == 0)
			break;
	if (i == nkeys) {
		config_error(ps, ps->line, "unknown key '%s' in [%s]", name, section);
		return 1;
	}
	if ((ps->set & (1ULL << i)) && !(keys[i].flags & K_REPEAT)) {
		config_error(ps, ps->line, "'%s' given twice in [%s]", name, section);
		return 1;
	}
	ps->set |= 1ULL << i;
	if (!(keys[i].flags & K_NOEXPAND)) {
		expanded = config_expand(value, &err);
		if (expanded == NULL) {
			config_error(ps, ps->line, "%s: %s", name, err);
			return 1;
		}
		value = expanded;
	}
	if (keys[i].set(ps, value, &err) < 0)
		config_error(ps, ps->line, "%s", err);
	free(expanded);
	return 1;
}

/* A "[name]" line: sections are entered here, not from key_handler(), so
 * that one without keys is still checked (and an account still made). */
static void
section_header(struct parse *ps, const char *p)
{
	const char *end = strchr(p, ']');
	char name[256];
	size_t n;

	ps->section_line = ps->line;
	ps->section_ok = 0;
	ps->acct = NULL;
	ps->fidx = -1;
	ps->set = 0;
	if (end == NULL) {
		config_error(ps, ps->line, "section header without ']'");
		return;
	}
	n = (size_t)(end - p - 1);
	if (n >= sizeof(name)) {
		config_error(ps, ps->line, "section name too long");
		return;
	}
	memcpy(name, p + 1, n);
	name[n] = '\0';
	ps->section_ok = enter_section(ps, name) == 0;
}

/* inih's reader: one line at a time, counted; too long is an error. */
static char *
line_reader(char *str, int num, void *arg)
{
	struct parse *ps = arg;
	size_t n = 0;
	int c = 0;

	while ((c = getc(ps->fp)) != EOF) {
		if (n + 2 < (size_t)num)
			str[n++] = (char)c;
		else if (c != '\n')
			n = (size_t)num;        /* mark as too long */
		if (c == '\n')
			break;
	}
	if (n == 0 && c == EOF)
		return NULL;
	ps->line++;
	if (n >= (size_t)num) {
		config_error(ps, ps->line, "line longer than %d bytes", num - 3);
		str[0] = '\0';
		return str;
	}
	str[n] = '\0';
	const char *p = str;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '[')
		section_header(ps, p);
	else if (*p != '\0' && *p != ';' && *p != '#' && *p != '\r' &&
	    *p != '\n' &&
	    strpbrk(p, "=:") == NULL) {
		config_error(ps, ps->line, "expected [section] or key = value");
		str[0] = '\0';
	}
	return str;
}

/* --- whole file ------------------------------------------------------------ */

static void
default_port(struct account *a)
{
	if (a->port)
		return;
	if (a->protocol == PROTO_IMAP)
		a->port = xstrdup(a->tls == TLS_IMPLICIT ? "993" : "143");
	else
		a->port = xstrdup(a->tls == TLS_IMPLICIT ? "995" : "110");
}

/* smtp_user with smtp_password or smtp_passcmd (one of them), and only for
 * an account that relays. */
static void
check_relay_auth(struct parse *ps, struct account *a, int relays)
{
	const char *secret = a->smtp_password != NULL ? "smtp_password" :
	    a->smtp_passcmd != NULL ? "smtp_passcmd" : NULL;

	if (a->smtp_password != NULL && a->smtp_passcmd != NULL)
		config_error(ps, a->line, "[account %s]: give smtp_password or "
		    "smtp_passcmd, not both", a->name);
	if (secret != NULL && a->smtp_user == NULL)
		config_error(ps, a->line, "[account %s]: %s needs smtp_user",
		    a->name, secret);
	if (a->smtp_user != NULL && secret == NULL)
		config_error(ps, a->line, "[account %s]: smtp_user needs "
		    "smtp_password or smtp_passcmd", a->name);
	if ((a->smtp_user != NULL || secret != NULL) && relays == 0)
		config_error(ps, a->line, "[account %s]: %s is for smtp://, "
		    "smtps:// and lmtp targets (no such deliver here)", a->name,
		    a->smtp_user != NULL ? "smtp_user" : secret);
}

/* A relay target takes its recipient from ?to= in its URL, or from
 * smtp_to, which is added to the URL it is opened with (the text as written
 * stays the target's name in the state). */
static void
check_relay_keys(struct parse *ps, struct account *a)
{
	int relays = 0;

	for (size_t i = 0; i < a->ndeliver; i++) {
		struct target_spec *t = &a->deliver[i];
		const char *q;

		if (t->ops != &smtp_target)
			continue;
		relays++;
		q = strchr(t->path, '?');
		if (q != NULL && (strncmp(q + 1, "to=", 3) == 0 ||
		    strstr(q, "&to=") != NULL))
			continue;
		if (a->smtp_to == NULL) {
			config_error(ps, a->line, "[account %s]: %s needs a "
			    "recipient: smtp_to = ADDRESS (or ?to= in the URL)",
			    a->name, t->text);
			continue;
		}
		char *path = xasprintf("%s%sto=", t->path, q ? "&" : "?");
		for (const unsigned char *c = (const unsigned char *)a->smtp_to;
		    *c; c++) {
			char *next = isalnum(*c) || strchr("@._+-", *c) ?
			    xasprintf("%s%c", path, *c) :
			    xasprintf("%s%%%02X", path, *c);
			free(path);
			path = next;
		}
		free(t->path);
		t->path = path;
	}
	if (a->smtp_to != NULL && relays == 0)
		config_error(ps, a->line, "[account %s]: smtp_to is for "
		    "smtp:// and lmtp:// targets", a->name);
	check_relay_auth(ps, a, relays);
}

static void
check_imap_keys(struct parse *ps, struct account *a)
{
	if (a->protocol == PROTO_IMAP) {
		if (a->auth == AUTH_APOP)
			config_error(ps, a->line, "[account %s]: auth = apop is "
			    "for POP3 only", a->name);
		if (a->nfolders == 0) {
			a->folders = xcalloc(1, sizeof(*a->folders));
			a->folders[0] = xstrdup("INBOX");
			a->nfolders = 1;
		}
		/* an IDLE on a folder that is not polled would wake polls
		 * that never read it */
		for (size_t i = 0; i < a->nidle_folders; i++) {
			int polled = strcmp(a->folders[0], "*") == 0;

			for (size_t j = 0; j < a->nfolders && !polled; j++)
				polled = strcmp(a->folders[j],
				    a->idle_folders[i]) == 0 || (strcasecmp(
				    a->folders[j], "INBOX") == 0 && strcasecmp(
				    a->idle_folders[i], "INBOX") == 0);
			if (!polled)
				config_error(ps, a->line, "[account %s]: "
				    "idle_folders: %s is not in folders",
				    a->name, a->idle_folders[i]);
		}
		return;
	}
	if (a->nfolders > 0)
		config_error(ps, a->line, "[account %s]: folders is for "
		    "protocol = imap", a->name);
	if (a->mark_seen)
		config_error(ps, a->line, "[account %s]: mark_seen is for "
		    "protocol = imap", a->name);
}

/* The account's digest of what decides which messages are skipped: its
 * filters (in order) and max_size. Empty with neither. */
static void
account_digest(struct account *a)
{
	struct filter **fls;
	unsigned char h[SHA256_LEN];
	char buf[128];
	int n;

	a->digest[0] = '\0';
	if (a->nfilters == 0 && a->max_size == 0)
		return;
	fls = xcalloc(a->nfilters ? a->nfilters : 1, sizeof(*fls));
	for (size_t i = 0; i < a->nfilters; i++)
		fls[i] = a->filters[i]->fl;
	filter_digest(fls, a->nfilters, a->digest);
	free(fls);
	n = snprintf(buf, sizeof(buf), "%s;max_size=%llu", a->digest,
	    a->max_size);
	crypto_sha256(buf, (size_t)n, h);
	for (size_t i = 0; i < SHA256_LEN; i++)
		snprintf(a->digest + 2 * i, 3, "%02x", h[i]);
}

/* Every [filter] complete; every account's `filter =` names one. */
static void
resolve_filters(struct parse *ps)
{
	struct config *cfg = ps->cfg;

	for (size_t i = 0; i < cfg->nfilters; i++) {
		const char *err = NULL;

		if (filter_finish(cfg->filters[i].fl, &err) < 0)
			config_error(ps, cfg->filters[i].line, "[filter %s]: %s",
			    cfg->filters[i].name, err);
	}
	for (size_t r = 0; r < ps->nfrefs; r++) {
		struct filter_ref *fr = &ps->frefs[r];
		struct account *a = fr->acct;
		const struct filter_def *d = NULL;

		for (size_t i = 0; i < cfg->nfilters; i++)
			if (strcmp(cfg->filters[i].name, fr->name) == 0)
				d = &cfg->filters[i];
		if (d == NULL) {
			config_error(ps, fr->line, "filter: no [filter %s] "
			    "section", fr->name);
			continue;
		}
		for (size_t i = 0; i < a->nfilters; i++)
			if (a->filters[i] == d)
				config_error(ps, fr->line, "filter: %s is "
				    "listed twice", fr->name);
		a->filters = xreallocarray(a->filters, a->nfilters + 1,
		    sizeof(*a->filters));
		a->filters[a->nfilters++] = d;
	}
	for (size_t r = 0; r < ps->nfrefs; r++)
		free(ps->frefs[r].name);
	free(ps->frefs);
	ps->frefs = NULL;
	ps->nfrefs = 0;
	for (struct account *a = cfg->accounts; a; a = a->next)
		account_digest(a);
}

static void
check_account(struct parse *ps, struct account *a)
{
	if (a->idle && a->protocol != PROTO_IMAP)
		config_error(ps, a->line, "[account %s]: idle is for IMAP "
		    "accounts", a->name);
	if (a->nidle_folders > 0 && !a->idle)
		config_error(ps, a->line, "[account %s]: idle_folders needs "
		    "idle = yes", a->name);
	if (a->host == NULL)
		config_error(ps, a->line, "[account %s]: host is missing", a->name);
	if (a->user == NULL)
		config_error(ps, a->line, "[account %s]: user is missing", a->name);
	if (a->password == NULL && a->passcmd == NULL)
		config_error(ps, a->line, "[account %s]: password or passcmd is "
		    "missing", a->name);
	if (a->password && a->passcmd)
		config_error(ps, a->line, "[account %s]: give password or "
		    "passcmd, not both", a->name);
	if (a->ndeliver == 0)
		config_error(ps, a->line, "[account %s]: deliver is missing "
		    "(e.g. deliver = maildir:~/Mail)", a->name);
	if ((a->auth == AUTH_XOAUTH2 || a->auth == AUTH_OAUTHBEARER) &&
	    a->passcmd == NULL)
		config_error(ps, a->line, "[account %s]: auth = %s needs passcmd "
		    "to fetch the token", a->name,
		    a->auth == AUTH_XOAUTH2 ? "xoauth2" : "oauthbearer");
	if (a->tls == TLS_NONE && (a->ca_file || a->fingerprint))
		config_error(ps, a->line, "[account %s]: ca_file and fingerprint "
		    "need tls = implicit or starttls", a->name);
	check_imap_keys(ps, a);
	check_relay_keys(ps, a);
	default_port(a);
}

static char *
default_state_path(void)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");

	if (xdg && *xdg == '/')
		return xasprintf("%s/mailpull/state.db", xdg);
	return xasprintf("%s/.local/state/mailpull/state.db", home ? home : ".");
}

char *
config_default_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	char *p;

	if (home == NULL)
		home = ".";
	if (xdg && *xdg == '/')
		p = xasprintf("%s/mailpull/config.ini", xdg);
	else
		p = xasprintf("%s/.config/mailpull/config.ini", home);
	if (access(p, F_OK) == 0)
		return p;
	free(p);
	return xasprintf("%s/.mailpull.ini", home);
}

int
config_load(struct config *cfg, const char *path)
{
	struct parse ps;
	struct stat sb;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	memset(&ps, 0, sizeof(ps));
	cfg->path = xstrdup(path);
	cfg->timeout = 60;
	cfg->interval = 300;
	cfg->parallel = 4;
	ps.cfg = cfg;
	ps.path = path;
	ps.fidx = -1;
	ps.tail = &cfg->accounts;
	ps.fp = fopen(path, "r");
	if (ps.fp == NULL) {
		log_error("cannot read config file %s: %s", path, strerror(errno));
		config_free(cfg);
		return -1;
	}
	ini_allow_multiline = false;
	ini_use_stack = false;
	ini_max_line = CONFIG_LINE_MAX;
	rc = ini_parse_stream(line_reader, &ps, key_handler, &ps);
	if (rc > 0 && ps.errors == 0)
		config_error(&ps, rc, "syntax error (expected [section] or key = value)");
	else if (rc < 0)
		config_error(&ps, ps.line, "cannot parse (out of memory)");
	if (ps.has_password && fstat(fileno(ps.fp), &sb) == 0 &&
	    (sb.st_mode & (S_IRWXG | S_IRWXO))) {
		log_error("%s holds a password and can be read by others; "
		    "run: chmod 600 %s", path, path);
		ps.errors++;
	}
	fclose(ps.fp);
	resolve_filters(&ps);
	for (struct account *a = cfg->accounts; a; a = a->next)
		check_account(&ps, a);
	if (cfg->naccounts == 0 && ps.errors == 0)
		config_error(&ps, ps.line, "no [account NAME] section");
	if (cfg->state == NULL)
		cfg->state = default_state_path();
	if (ps.errors) {
		config_free(cfg);
		return -1;
	}
	return 0;
}

void
config_free(struct config *cfg)
{
	struct account *a, *next;

	for (a = cfg->accounts; a; a = next) {
		next = a->next;
		free(a->name);
		free(a->host);
		free(a->port);
		free(a->ca_file);
		free(a->fingerprint);
		free(a->user);
		free_secret(a->password);
		free(a->passcmd);
		free(a->smtp_to);
		free(a->smtp_user);
		free_secret(a->smtp_password);
		free(a->smtp_passcmd);
		for (size_t i = 0; i < a->ndeliver; i++) {
			free(a->deliver[i].path);
			free(a->deliver[i].text);
		}
		free(a->deliver);
		free(a->deliver_line);
		free(a->filters);
		for (size_t i = 0; i < a->nidle_folders; i++)
			free(a->idle_folders[i]);
		free(a->idle_folders);
		free_folders(a);
		free(a);
	}
	for (size_t i = 0; i < cfg->nfilters; i++) {
		free(cfg->filters[i].name);
		filter_free(cfg->filters[i].fl);
		free(cfg->filters[i].route.path);
		free(cfg->filters[i].route.text);
	}
	free(cfg->filters);
	free(cfg->path);
	free(cfg->state);
	memset(cfg, 0, sizeof(*cfg));
}

struct account *
config_find(const struct config *cfg, const char *name)
{
	for (struct account *a = cfg->accounts; a; a = a->next)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

/* --- passcmd, smtp_passcmd ------------------------------------------------ */

#define SECRET_CMD_TIMEOUT      120     /* seconds for a passcmd to answer */

volatile sig_atomic_t *config_cmd_stop;

/* Run cmd through /bin/sh and return the first line of its stdout
 * (xmalloc'd, secret); what is the config key, for messages. */
static char *
run_secret_cmd(const char *cmd, const char *what, struct fail *f)
{
	char buf[8192], sink[512];
	long long deadline = mono_ms() + SECRET_CMD_TIMEOUT * 1000LL;
	int timed_out = 0;
	size_t len = 0;
	int fds[2] = { -1, -1 }, status;
	pid_t pid;
	ssize_t n;

	if (cmd == NULL) {
		fail_set(f, FAIL_CONFIG, "%s is not set", what);
		return NULL;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		fail_set(f, FAIL_LOCAL, "%s: pipe: %s", what, strerror(errno));
		return NULL;
	}
	pid = fork();
	if (pid < 0) {
		fail_set(f, FAIL_LOCAL, "%s: fork: %s", what, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return NULL;
	}
	if (pid == 0) {
		setpgid(0, 0);  /* its own group: stopped whole if need be */
		close(fds[0]);
		if (dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(127);
		close(fds[1]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	/* Read to the end, but not for ever: a command that waits for a
	 * person (a pinentry with no display) would hold up the poll and a
	 * daemon's SIGTERM. Past the limit it is killed. */
	for (;;) {
		struct pollfd pfd = { fds[0], POLLIN, 0 };
		long long left = deadline - mono_ms();
		char *dst = len < sizeof(buf) - 1 ? buf + len : sink;
		size_t room = len < sizeof(buf) - 1 ? sizeof(buf) - 1 - len :
		    sizeof(sink);

		if (left <= 0 || (config_cmd_stop != NULL && *config_cmd_stop)) {
			timed_out = left <= 0 ? 1 : 2;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) <= 0)
			continue;
		n = read(fds[0], dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst == buf + len)
			len += (size_t)n;
	}
	explicit_bzero(sink, sizeof(sink));
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		explicit_bzero(buf, sizeof(buf));
		if (timed_out == 2)
			fail_set(f, FAIL_TEMP, "%s stopped (signal)", what);
		else
			fail_set(f, FAIL_CONFIG, "%s gave no answer within %d "
			    "s; stopped it", what, SECRET_CMD_TIMEOUT);
		return NULL;
	}
	buf[len] = '\0';
	char *nl = memchr(buf, '\n', len);

	if (nl)
		*nl = '\0';
	if (nl && nl > buf && nl[-1] == '\r')
		nl[-1] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		explicit_bzero(buf, sizeof(buf));
		fail_set(f, FAIL_CONFIG, "%s failed (%s %d)", what,
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return NULL;
	}
	if (buf[0] == '\0') {
		explicit_bzero(buf, sizeof(buf));
		fail_set(f, FAIL_CONFIG, "%s printed nothing", what);
		return NULL;
	}
	char *secret = xstrdup(buf);

	explicit_bzero(buf, sizeof(buf));
	return secret;
}

char *
config_run_passcmd(const struct account *a, struct fail *f)
{
	return run_secret_cmd(a->passcmd, "passcmd", f);
}

char *
config_smtp_secret(const struct account *a, struct fail *f)
{
	if (a->smtp_password != NULL)
		return xstrdup(a->smtp_password);
	return run_secret_cmd(a->smtp_passcmd, "smtp_passcmd", f);
}
