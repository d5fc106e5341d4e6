/* test_config.c - the config file: values, defaults, and every error
 * naming FILE:LINE. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "unit.h"

static char dir[] = "/tmp/mailpull-test-config-XXXXXX";
static char cfgpath[256];
static char errpath[256];
static char errtext[8192];

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cfgpath, sizeof(cfgpath), "%s/config.ini", dir);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	log_init(0, LOG_LVL_INFO);
}

static void
teardown(void)
{
	unlink(cfgpath);
	unlink(errpath);
	rmdir(dir);
	strcpy(dir, "/tmp/mailpull-test-config-XXXXXX");
}

/* Write text as the config (mode 0600 unless told) and load it, capturing
 * what was logged into errtext. */
static int
load(const char *text, mode_t mode, struct config *cfg)
{
	FILE *fp = fopen(cfgpath, "w");
	int saved, fd, rc;
	ssize_t n;

	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
	chmod(cfgpath, mode);
	fflush(stderr);
	saved = dup(2);
	fd = open(errpath, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	dup2(fd, 2);
	close(fd);
	rc = config_load(cfg, cfgpath);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fd = open(errpath, O_RDONLY);
	n = read(fd, errtext, sizeof(errtext) - 1);
	close(fd);
	errtext[n > 0 ? n : 0] = '\0';
	return rc;
}

#define GOOD \
	"[general]\nstate = /tmp/x/state.db\ntimeout = 15\n\n" \
	"[account work]\nhost = pop.example.com\nuser = me\n" \
	"password = secret ; a comment\ndeliver = maildir:/tmp/x/Mail\n"

START_TEST(good_config)
{
	struct config cfg;

	ck_assert_int_eq(load(GOOD, 0600, &cfg), 0);
	ck_assert_str_eq(errtext, "");
	ck_assert_str_eq(cfg.state, "/tmp/x/state.db");
	ck_assert_int_eq(cfg.timeout, 15);
	ck_assert_uint_eq(cfg.naccounts, 1);
	struct account *a = config_find(&cfg, "work");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->host, "pop.example.com");
	ck_assert_str_eq(a->port, "995");
	ck_assert_int_eq(a->tls, TLS_IMPLICIT);
	ck_assert_int_eq(a->tls_verify, 1);
	ck_assert_int_eq(a->keep, 1);
	ck_assert_str_eq(a->password, "secret");
	ck_assert_uint_eq(a->ndeliver, 1);
	ck_assert_str_eq(a->deliver[0].path, "/tmp/x/Mail");
	ck_assert_str_eq(a->deliver[0].text, "maildir:/tmp/x/Mail");
	ck_assert_ptr_null(config_find(&cfg, "other"));
	config_free(&cfg);
}
END_TEST

START_TEST(port_defaults_follow_tls)
{
	struct config cfg;

	ck_assert_int_eq(load("[account a]\nhost = h\nuser = u\npassword = p\n"
	    "tls = starttls\ndeliver = maildir:/tmp/m\n", 0600, &cfg), 0);
	ck_assert_str_eq(cfg.accounts->port, "110");
	config_free(&cfg);
	ck_assert_int_eq(load("[account a]\nprotocol = imap\nhost = h\n"
	    "user = u\npassword = p\ndeliver = maildir:/tmp/m\n", 0600, &cfg), 0);
	ck_assert_str_eq(cfg.accounts->port, "993");
	ck_assert_uint_eq(cfg.accounts->nfolders, 1);
	ck_assert_str_eq(cfg.accounts->folders[0], "INBOX");
	config_free(&cfg);
	ck_assert_int_eq(load("[account a]\nprotocol = imap\nhost = h\n"
	    "tls = starttls\nuser = u\npassword = p\nmark_seen = yes\n"
	    "folders =  INBOX , Archive/2024,Entwürfe \n"
	    "deliver = maildir:/tmp/m\n", 0600, &cfg), 0);
	ck_assert_str_eq(cfg.accounts->port, "143");
	ck_assert_int_eq(cfg.accounts->mark_seen, 1);
	ck_assert_uint_eq(cfg.accounts->nfolders, 3);
	ck_assert_str_eq(cfg.accounts->folders[1], "Archive/2024");
	ck_assert_str_eq(cfg.accounts->folders[2], "Entwürfe");
	config_free(&cfg);
}
END_TEST

START_TEST(expansion)
{
	struct config cfg;

	setenv("HOME", "/home/tester", 1);
	setenv("MP_TEST_DIR", "mail", 1);
	ck_assert_int_eq(load("[general]\nstate = ~/s.db\n[account a]\n"
	    "host = h\nuser = u\npasscmd = echo $HOME\n"
	    "deliver = maildir:~/${MP_TEST_DIR}/$MP_TEST_DIR$$\n", 0644, &cfg), 0);
	ck_assert_str_eq(cfg.state, "/home/tester/s.db");
	ck_assert_str_eq(cfg.accounts->deliver[0].path, "/home/tester/mail/mail$");
	ck_assert_str_eq(cfg.accounts->deliver[0].text,
	    "maildir:~/${MP_TEST_DIR}/$MP_TEST_DIR$$");
	/* passcmd is for the shell: not expanded by us */
	ck_assert_str_eq(cfg.accounts->passcmd, "echo $HOME");
	config_free(&cfg);
	/* smtp_to goes into the URL the relay opens; the text stays */
	ck_assert_int_eq(load("[account a]\nhost = h\nuser = u\npasscmd = true\n"
	    "deliver = lmtp://127.0.0.1:24?tls=none\nsmtp_to = me+x@example.org\n",
	    0600, &cfg), 0);
	ck_assert_str_eq(cfg.accounts->deliver[0].path,
	    "lmtp://127.0.0.1:24?tls=none&to=me+x@example.org");
	ck_assert_str_eq(cfg.accounts->deliver[0].text,
	    "lmtp://127.0.0.1:24?tls=none");
	config_free(&cfg);
	/* nor is an MDA command */
	ck_assert_int_eq(load("[account a]\nhost = h\nuser = u\npasscmd = true\n"
	    "deliver = mda:procmail -m $HOME/.procmailrc $(id -u) %u\n", 0600,
	    &cfg), 0);
	ck_assert_str_eq(cfg.accounts->deliver[0].path,
	    "procmail -m $HOME/.procmailrc $(id -u) %u");
	config_free(&cfg);
}
END_TEST

#define RELAY_ACCT "[account a]\nhost = h\nuser = u\npassword = p\n" \
	"deliver = smtp://mx.example.org?to=me@x\n"

/* Each bad config must fail and name the right line. */
static const struct {
	const char *text;
	const char *expect;
} bad[] = {
	{ "[general]\nfoo = 1\n", "config.ini:2: unknown key 'foo' in [general]" },
	{ "[general]\ntimeout = 0\n", "config.ini:2: timeout must be" },
	{ "[general]\ntimeout = 10x\n", "config.ini:2: timeout must be" },
	{ "[general]\nlog = file\n", "config.ini:2: log must be" },
	{ "[nonsense]\nx = 1\n", "config.ini:1: unknown section [nonsense]" },
	{ "x = 1\n", "config.ini:1: 'x' is outside any section" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\n\n"
	  "deliver = maildir:/m\nport = 70000\n", "config.ini:7: port must be" },
	{ "[account a]\nhost = h\nhost = i\n", "config.ini:3: 'host' given twice" },
	{ "[account a]\nuser = u\npassword = p\ndeliver = maildir:/m\n",
	  "config.ini:1: [account a]: host is missing" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\n",
	  "config.ini:1: [account a]: deliver is missing" },
	{ "[account a]\nhost = h\nuser = u\ndeliver = maildir:/m\n",
	  "password or passcmd is missing" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = nowhere:/m\n",
	  "config.ini:5: " },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "tls = maybe\n", "config.ini:6: tls must be" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "auth = cram-md5\n", "config.ini:6: auth must be" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "fingerprint = sha256:abcd\n", "config.ini:6: fingerprint must be" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "keep = sometimes\n", "config.ini:6: keep must be" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "protocol = imap4\n", "config.ini:6: protocol must be pop3 or imap" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "folders = INBOX, *\n", "config.ini:6: folders: * means every folder" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "folders = INBOX,,x\n", "config.ini:6: folders: an empty name" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "folders = INBOX\n", "config.ini:1: [account a]: folders is for protocol = imap" },
	{ "[account a]\nprotocol = imap\nhost = h\nuser = u\npassword = p\n"
	  "deliver = maildir:/m\nauth = apop\n", "auth = apop is for POP3 only" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\n"
	  "deliver = maildir:$MP_UNSET_VARIABLE_X/m\n",
	  "config.ini:5: deliver: $MP_UNSET_VARIABLE_X is not set" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "[account a]\nhost = h\n", "config.ini:6: account 'a' is defined twice" },
	{ "[account bad/name]\nhost = h\n", "config.ini:1: bad account name" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "this line has no equals sign\n", "config.ini:6: expected [section]" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "ca_file = /nonexistent/ca.pem\n", "config.ini:6: ca_file cannot be read" },
	{ "[general]\n", "no [account NAME] section" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\n"
	  "deliver = smtp://localhost\n", "smtp://localhost needs a recipient" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "smtp_to = me@x\n", "smtp_to is for smtp:// and lmtp:// targets" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\n"
	  "deliver = smtp://h?to=a@b\nsmtp_to = two words\n",
	  "config.ini:6: smtp_to must be one address" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "deliver = maildir:/m/\n", "config.ini:6: deliver: maildir:/m/ is "
	  "the same target as line 5" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = mbox:~/x\n"
	  "deliver = mbox:$HOME/x\n", "config.ini:6: deliver: mbox:$HOME/x is "
	  "the same target as line 5" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "[acount typo]\n", "config.ini:6: unknown section [acount typo]" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	  "[account b]\n", "config.ini:6: [account b]: host is missing" },
	{ "[account a\nhost = h\n", "config.ini:1: section header without ']'" },
#define ACC "[account a]\nhost = h\nuser = u\npassword = p\ndeliver = maildir:/m\n"
	{ ACC "filter = spam\n[filter spam]\nheader = Subject: (\naction = skip\n",
	  "config.ini:8: bad regex in header" },
	{ ACC "filter = spam\n[filter spam]\nfrom = x\naction = bounce\n",
	  "config.ini:9: unknown action 'bounce'" },
	{ ACC "filter = spam\n[filter spam]\nfrom = x\n",
	  "config.ini:7: [filter spam]: " },
	{ ACC "filter = spam, nosuch\n[filter spam]\nfrom = x\naction = skip\n",
	  "config.ini:6: filter: no [filter nosuch] section" },
	{ ACC "filter = spam, spam\n[filter spam]\nfrom = x\naction = skip\n",
	  "config.ini:6: filter: spam is listed twice" },
	{ ACC "[filter spam]\nfrom = x\naction = skip\n[filter spam]\n",
	  "config.ini:9: filter 'spam' is defined twice (line 6)" },
	{ ACC "[filter s]\nsize = 1\n", "config.ini:7: unknown key 'size' in a filter" },
	{ ACC "[filter s]\nfrom = x\naction = deliver:nowhere\n",
	  "config.ini:8: action: unknown delivery target kind" },
	{ ACC "[filter s]\nfrom = x\naction = deliver:smtp://h\n",
	  "config.ini:8: action: smtp://h needs its recipient in the URL" },
	{ ACC "max_size = 10 MB\n", "config.ini:6: max_size must be a size" },
	{ ACC "keep = 0\n", "config.ini:6: keep = 0 or 1 is unclear" },
	{ ACC "keep = 1\n", "config.ini:6: keep = 0 or 1 is unclear" },
	{ ACC "keep = 0d\n", "config.ini:6: keep must be yes, no or a number of days" },
	{ "[account a]\nprotocol = imap\nhost = h\nuser = u\npassword = p\n"
	  "deliver = maildir:/m\nidle = yes\nidle_folders = INBOX, Lists\n",
	  "config.ini:1: [account a]: idle_folders: Lists is not in folders" },
	{ ACC "keep = often\n", "config.ini:6: keep must be yes, no or a number" },
	{ ACC "max_messages = -1\n", "config.ini:6: max_messages must be a number" },
	/* relay credentials */
	{ "[general]\ntimeout = 5\n" RELAY_ACCT "smtp_user = me\n"
	  "smtp_password = s\nsmtp_passcmd = pass mx\n",
	  "config.ini:3: [account a]: give smtp_password or smtp_passcmd, "
	  "not both" },
	{ RELAY_ACCT "smtp_password = s\n",
	  "config.ini:1: [account a]: smtp_password needs smtp_user" },
	{ RELAY_ACCT "smtp_passcmd = pass mx\n",
	  "config.ini:1: [account a]: smtp_passcmd needs smtp_user" },
	{ RELAY_ACCT "smtp_user = me\n",
	  "config.ini:1: [account a]: smtp_user needs smtp_password or "
	  "smtp_passcmd" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\n"
	  "deliver = maildir:/m\nsmtp_user = me\nsmtp_password = s\n",
	  "config.ini:1: [account a]: smtp_user is for smtp://, smtps:// and "
	  "lmtp targets" },
	{ "[account a]\nhost = h\nuser = u\npassword = p\n"
	  "deliver = mda:procmail\nsmtp_passcmd = pass mx\n",
	  "config.ini:1: [account a]: smtp_passcmd is for smtp://, smtps:// "
	  "and lmtp targets" },
	{ RELAY_ACCT "smtp_user = me\nsmtp_password = s\nsmtp_user = you\n",
	  "config.ini:8: 'smtp_user' given twice" },
	{ RELAY_ACCT "smtp_user =\nsmtp_password = s\n",
	  "config.ini:6: smtp_user is empty" },
	{ RELAY_ACCT "smtp_user = $MP_UNSET_VARIABLE_X\nsmtp_password = s\n",
	  "config.ini:6: smtp_user: $MP_UNSET_VARIABLE_X is not set" },
};

START_TEST(bad_configs)
{
	struct config cfg;

	unsetenv("MP_UNSET_VARIABLE_X");
	ck_assert_int_eq(load(bad[_i].text, 0600, &cfg), -1);
	ck_assert_msg(strstr(errtext, bad[_i].expect) != NULL,
	    "case %d: expected '%s' in: %s", _i, bad[_i].expect, errtext);
	ck_assert_ptr_null(cfg.accounts);
}
END_TEST

START_TEST(long_line)
{
	struct config cfg;
	char text[10000];

	snprintf(text, sizeof(text), "[general]\nstate = /%06000d\n", 1);
	ck_assert_int_eq(load(text, 0600, &cfg), -1);
	ck_assert_msg(strstr(errtext, "config.ini:2: line longer than") != NULL,
	    "%s", errtext);
}
END_TEST

START_TEST(readable_password_refused)
{
	struct config cfg;

	ck_assert_int_eq(load(GOOD, 0640, &cfg), -1);
	ck_assert_msg(strstr(errtext, "holds a password and can be read by "
	    "others") != NULL, "%s", errtext);
	/* the relay's password counts as much as the account's */
	ck_assert_int_eq(load("[account a]\nhost = h\nuser = u\npasscmd = true\n"
	    "deliver = smtp://mx.example.org?to=me@x\nsmtp_user = me\n"
	    "smtp_password = s3cret\n", 0604, &cfg), -1);
	ck_assert_msg(strstr(errtext, "config.ini holds a password and can be "
	    "read by others") != NULL, "%s", errtext);
	ck_assert_ptr_null(cfg.accounts);
	/* no password in the file: any mode is fine */
	ck_assert_int_eq(load("[account a]\nhost = h\nuser = u\npasscmd = true\n"
	    "deliver = maildir:/m\n", 0644, &cfg), 0);
	config_free(&cfg);
	ck_assert_int_eq(load("[account a]\nhost = h\nuser = u\npasscmd = true\n"
	    "deliver = smtp://mx.example.org?to=me@x\nsmtp_user = me\n"
	    "smtp_passcmd = pass mx\n", 0644, &cfg), 0);
	config_free(&cfg);
}
END_TEST

START_TEST(passcmd_first_line)
{
	struct config cfg;
	struct fail f;
	char *s;

	ck_assert_int_eq(load("[account a]\nhost = h\nuser = u\n"
	    "passcmd = printf 'tok3n\\nsecond\\n'\ndeliver = maildir:/m\n",
	    0600, &cfg), 0);
	s = config_run_passcmd(cfg.accounts, &f);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "tok3n");
	free(s);
	free(cfg.accounts->passcmd);
	cfg.accounts->passcmd = strdup("exit 3");
	ck_assert_ptr_null(config_run_passcmd(cfg.accounts, &f));
	ck_assert_int_eq(f.kind, FAIL_CONFIG);
	ck_assert_msg(strstr(f.msg, "exit status 3") != NULL, "%s", f.msg);
	free(cfg.accounts->passcmd);
	cfg.accounts->passcmd = strdup("true");
	ck_assert_ptr_null(config_run_passcmd(cfg.accounts, &f));
	ck_assert_msg(strstr(f.msg, "printed nothing") != NULL, "%s", f.msg);
	config_free(&cfg);
}
END_TEST

/* smtp_user / smtp_password / smtp_passcmd: parsed for every relay kind;
 * the secrets are taken as written (no $ expansion); config_smtp_secret()
 * gives smtp_password, or the first line smtp_passcmd prints. */
START_TEST(relay_credentials)
{
	static const char *const targets[] = {
		"smtp://mx.example.org?to=me@x", "smtps://mx.example.org?to=me@x",
		"lmtp://127.0.0.1:24?to=me@x", "lmtp:/run/dovecot/lmtp?to=me@x",
	};
	struct config cfg;
	struct fail f;
	char text[512];
	char *s;

	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		snprintf(text, sizeof(text), "[account a]\nhost = h\nuser = u\n"
		    "password = p\ndeliver = %s\nsmtp_user = relay@$MP_TEST_DOM\n"
		    "smtp_password = pa$$word;x\n", targets[i]);
		setenv("MP_TEST_DOM", "example.org", 1);
		ck_assert_msg(load(text, 0600, &cfg) == 0, "%s: %s", targets[i],
		    errtext);
		ck_assert_str_eq(cfg.accounts->smtp_user, "relay@example.org");
		ck_assert_str_eq(cfg.accounts->smtp_password, "pa$$word;x");
		ck_assert_ptr_null(cfg.accounts->smtp_passcmd);
		s = config_smtp_secret(cfg.accounts, &f);
		ck_assert_ptr_nonnull(s);
		ck_assert_str_eq(s, "pa$$word;x");
		ck_assert_ptr_ne(s, cfg.accounts->smtp_password);
		free(s);
		config_free(&cfg);
	}

	ck_assert_int_eq(load("[account a]\nhost = h\nuser = u\npassword = p\n"
	    "deliver = smtp://mx.example.org?to=me@x\nsmtp_user = me\n"
	    "smtp_passcmd = printf 'tok\\nrest' # $HOME\n", 0600, &cfg), 0);
	ck_assert_str_eq(cfg.accounts->smtp_passcmd,
	    "printf 'tok\\nrest' # $HOME");
	ck_assert_ptr_null(cfg.accounts->smtp_password);
	s = config_smtp_secret(cfg.accounts, &f);
	ck_assert_msg(s != NULL, "%s", f.msg);
	ck_assert_str_eq(s, "tok");
	free(s);
	/* the account's own passcmd is not the relay's */
	ck_assert_ptr_null(config_run_passcmd(cfg.accounts, &f));
	ck_assert_str_eq(f.msg, "passcmd is not set");
	free(cfg.accounts->smtp_passcmd);
	cfg.accounts->smtp_passcmd = strdup("echo leaked; exit 4");
	ck_assert_ptr_null(config_smtp_secret(cfg.accounts, &f));
	ck_assert_int_eq(f.kind, FAIL_CONFIG);
	ck_assert_str_eq(f.msg, "smtp_passcmd failed (exit status 4)");
	free(cfg.accounts->smtp_passcmd);
	cfg.accounts->smtp_passcmd = strdup("true");
	ck_assert_ptr_null(config_smtp_secret(cfg.accounts, &f));
	ck_assert_str_eq(f.msg, "smtp_passcmd printed nothing");
	config_free(&cfg);
}
END_TEST

/* The shipped sample.ini must load as it is (apart from its file mode). */
/* Filters: sections in any order, lists resolved, routes parsed, sizes,
 * keep = DAYS, and a digest that follows the filters and max_size. */
START_TEST(filters_parsed)
{
	struct config cfg;
	char d1[65], d2[65], g2[1024];
	const char *unknown =
	    "[account a]\nhost = h\nuser = u\npassword = p\n"
	    "deliver = maildir:/m\nfilter = junk\n"
	    "[filter junk]\nsubject = x\n";
	const char *good =
	    "[account a]\nhost = h\nuser = u\npassword = p\n"
	    "deliver = maildir:/m\nfilter = junk, spam\nmax_size = 25M\n"
	    "keep = 14\nmax_messages = 500\n"
	    "[account b]\nhost = h\nuser = u\npassword = p\n"
	    "deliver = maildir:/n\nkeep = 1d\n"
	    "[filter spam]\nheader = X-Spam-Flag: ^yes$\naction = skip\n"
	    "[filter junk]\nheader = Subject: $x\n"
	    "action = deliver: maildir:$HOME/junk\n";
	struct account *a, *b;

	ck_assert_int_eq(load(unknown, 0600, &cfg), -1);
	ck_assert_msg(strstr(errtext, "config.ini:8: unknown key 'subject'"),
	    "%s", errtext);
	setenv("HOME", "/home/tester", 1);
	ck_assert_msg(load(good, 0600, &cfg) == 0, "%s", errtext);
	a = config_find(&cfg, "a");
	b = config_find(&cfg, "b");
	ck_assert_uint_eq(cfg.nfilters, 2);
	ck_assert_uint_eq(a->nfilters, 2);
	ck_assert_str_eq(a->filters[0]->name, "junk");
	ck_assert_str_eq(a->filters[1]->name, "spam");
	ck_assert_ptr_eq(a->filters[1]->route.ops, NULL);
	ck_assert_ptr_eq(a->filters[0]->route.ops, &maildir_target);
	ck_assert_str_eq(a->filters[0]->route.path, "/home/tester/junk");
	ck_assert_uint_eq(a->max_size, 25ULL << 20);
	ck_assert_int_eq(a->keep, 0);
	ck_assert_int_eq(a->keep_days, 14);
	ck_assert_uint_eq(a->max_messages, 500);
	ck_assert_uint_eq(strlen(a->digest), 64);
	ck_assert_str_eq(b->digest, "");        /* no filters, no max_size */
	ck_assert_int_eq(b->keep_days, 1);      /* "1d" */
	snprintf(d1, sizeof(d1), "%s", a->digest);
	config_free(&cfg);
	/* the same filters with another max_size: another digest */
	snprintf(g2, sizeof(g2), "%s", good);
	memcpy(strstr(g2, "25M"), "26M", 3);
	ck_assert_msg(load(g2, 0600, &cfg) == 0, "%s", errtext);
	snprintf(d2, sizeof(d2), "%s", config_find(&cfg, "a")->digest);
	config_free(&cfg);
	ck_assert_str_ne(d1, d2);
}
END_TEST

START_TEST(sample_ini_loads)
{
	struct config cfg;
	char text[16384];
	FILE *fp = fopen("sample.ini", "r");
	size_t n;

	ck_assert_msg(fp != NULL, "run from the source tree: sample.ini");
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	setenv("HOME", "/home/tester", 1);
	ck_assert_msg(load(text, 0600, &cfg) == 0, "%s", errtext);
	ck_assert_ptr_nonnull(config_find(&cfg, "work"));
	config_free(&cfg);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, good_config);
	tcase_add_test(tc, port_defaults_follow_tls);
	tcase_add_test(tc, expansion);
	tcase_add_loop_test(tc, bad_configs, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, long_line);
	tcase_add_test(tc, filters_parsed);
	tcase_add_test(tc, readable_password_refused);
	tcase_add_test(tc, passcmd_first_line);
	tcase_add_test(tc, relay_credentials);
	tcase_add_test(tc, sample_ini_loads);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_MAIN
