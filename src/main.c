/* main.c - the command line and the exit status. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "fail.h"
#include "log.h"
#include "state.h"
#include "daemon.h"
#include "status.h"
#include "xmalloc.h"

static const char usage_text[] =
"usage: mailpull [OPTIONS] [ACCOUNT...]\n"
"Poll the named accounts (default: all) once, then exit.\n"
"\n"
"  -c, --config FILE    config file (default: $XDG_CONFIG_HOME/mailpull/config.ini,\n"
"                       then ~/.mailpull.ini)\n"
"  -n, --dry-run        log in, list, filter and report per message on stdout\n"
"                       what would happen and why; deliver, record and delete\n"
"                       nothing\n"
"      --json           with -n: one JSON object per message; with -s: per account\n"
"  -d, --daemon         poll every [general] interval until SIGTERM/SIGINT;\n"
"                       SIGHUP re-reads the config; SIGUSR1 polls now\n"
"  -i, --interval SECS  override every interval (with -d)\n"
"  -s, --status         print each account's state (last poll, counts per\n"
"                       folder and filter) and exit; with --json as JSON\n"
"      --check          check the config, log in to each account and open\n"
"                       each target, then exit\n"
"  -k, --keep           delete nothing on any server this run\n"
"  -a, --all            also take messages already recorded as taken\n"
"  -v, --verbose        more detail; -vv adds the protocol trace, secrets redacted\n"
"  -q, --quiet          errors only\n"
"      --exit-1-if-none exit 1 when no account had new mail\n"
"  -V, --version        print the version and exit\n"
"  -h, --help           print this help and exit\n"
"\n"
"Exit status: 0 ok; 1 no new mail (with --exit-1-if-none); 64 usage;\n"
"69 server unreachable or protocol error; 73 a target could not be written\n"
"or refused a message for good;\n"
"75 temporary failure; 77 login refused; 78 config error.\n"
"With several accounts the worst status wins; the others still run.\n";

struct cli {
	const char *config;
	int daemon;
	int interval;
	int status;
	int check;
	int verbose;
	int quiet;
	int exit_none;
	struct run_opts run;
	char **accounts;
	int naccounts;
};

enum { OPT_EXIT_NONE = 256, OPT_JSON, OPT_CHECK };

static int
parse_args(int argc, char **argv, struct cli *cli)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "keep", no_argument, NULL, 'k' },
		{ "all", no_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "exit-1-if-none", no_argument, NULL, OPT_EXIT_NONE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "daemon", no_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "status", no_argument, NULL, 's' },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:nkavqVhdi:s", longopts,
	    NULL)) != -1) {
		char *end;
		long v;

		switch (ch) {
		case 'd': cli->daemon = 1; break;
		case 's': cli->status = 1; break;
		case OPT_CHECK: cli->check = 1; break;
		case 'i':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 10 ||
			    v > 7 * 24 * 3600) {
				fputs("mailpull: -i takes seconds, from 10 to "
				    "604800\n", stderr);
				return -1;
			}
			cli->interval = (int)v;
			break;
		case 'c': cli->config = optarg; break;
		case 'n': cli->run.dry_run = 1; break;
		case 'k': cli->run.keep = 1; break;
		case 'a': cli->run.all = 1; break;
		case 'v': cli->verbose++; break;
		case 'q': cli->quiet = 1; break;
		case OPT_EXIT_NONE: cli->exit_none = 1; break;
		case OPT_JSON: cli->run.json = 1; break;
		case 'V':
			printf("mailpull %s\n", MAILPULL_VERSION);
			exit(0);
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs(usage_text, stderr);
			return -1;
		}
	}
	if (cli->run.json && !cli->run.dry_run && !cli->status) {
		fputs("mailpull: --json goes with -n (--dry-run) or -s "
		    "(--status)\n", stderr);
		return -1;
	}
	if (cli->daemon + cli->status + cli->check > 1) {
		fputs("mailpull: -d, -s and --check go alone\n", stderr);
		return -1;
	}
	if (cli->daemon && cli->run.all) {
		fputs("mailpull: -a with -d would take everything again at every "
		    "poll\n", stderr);
		return -1;
	}
	if (cli->interval && !cli->daemon) {
		fputs("mailpull: -i goes with -d (--daemon)\n", stderr);
		return -1;
	}
	cli->accounts = argv + optind;
	cli->naccounts = argc - optind;
	return 0;
}

static enum log_level
level_for(const struct cli *cli)
{
	if (cli->quiet)
		return LOG_LVL_ERROR;
	if (cli->verbose >= 2)
		return LOG_LVL_TRACE;
	if (cli->verbose == 1)
		return LOG_LVL_VERBOSE;
	return LOG_LVL_INFO;
}

/* The accounts to poll, in config order, or NULL after an error. */
static const struct account **
select_accounts(const struct config *cfg, const struct cli *cli, size_t *n)
{
	const struct account **v = xcalloc(cfg->naccounts + 1, sizeof(*v));

	*n = 0;
	for (int i = 0; i < cli->naccounts; i++) {
		if (config_find(cfg, cli->accounts[i]) == NULL) {
			log_error("no account named '%s' in %s", cli->accounts[i],
			    cfg->path);
			free(v);
			return NULL;
		}
	}
	for (const struct account *a = cfg->accounts; a; a = a->next) {
		int want = cli->naccounts == 0;

		for (int i = 0; i < cli->naccounts && !want; i++)
			want = strcmp(a->name, cli->accounts[i]) == 0;
		if (want)
			v[(*n)++] = a;
	}
	return v;
}

int
main(int argc, char **argv)
{
	struct cli cli;
	struct config cfg;
	struct state *st = NULL;
	struct fail f = { FAIL_NONE, "" };
	const struct account **accts;
	char *defpath = NULL;
	size_t n;
	unsigned long taken = 0;
	int worst = 0;

	memset(&cli, 0, sizeof(cli));
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	log_init(0, LOG_LVL_INFO);
	if (parse_args(argc, argv, &cli) < 0)
		return EX_USAGE;
	log_init(0, level_for(&cli));
	if (cli.config == NULL)
		cli.config = defpath = config_default_path();
	if (config_load(&cfg, cli.config) < 0) {
		free(defpath);
		return EX_CONFIG;
	}
	/* defpath lives on: the daemon re-reads cli.config on SIGHUP */
	if (cfg.use_syslog)
		log_init(1, level_for(&cli));
	accts = select_accounts(&cfg, &cli, &n);
	if (accts == NULL) {
		free(defpath);
		config_free(&cfg);
		return EX_USAGE;
	}
	if (cli.status) {
		if (state_open(&st, cfg.state, &f) != FAIL_NONE) {
			log_error("%s", f.msg);
			worst = fail_exit_code(f.kind);
			goto out;
		}
		worst = status_print(stdout, st, accts, n, cli.run.json) < 0 ?
		    EX_IOERR : 0;
		goto out;
	}
	if (cli.check) {
		for (size_t i = 0; i < n; i++) {
			int rc = agent_check(&cfg, accts[i]);

			if (fail_exit_rank(rc) > fail_exit_rank(worst))
				worst = rc;
		}
		goto out;
	}
	if (cli.daemon) {
		struct daemon_opts d = { cli.config, cli.interval, cli.accounts,
		    cli.naccounts, cli.run, (int)level_for(&cli) };

		free(accts);
		worst = daemon_run(&cfg, &d);   /* it owns cfg now */
		free(defpath);
		return worst;
	}
	/* a progress line only for a person watching */
	cli.run.progress = isatty(STDOUT_FILENO) && !cli.quiet &&
	    !cli.run.dry_run;
	worst = run_polls(&cfg, accts, n, &cli.run, &taken);
	if (worst == 0 && cli.exit_none && taken == 0)
		worst = 1;
out:
	state_close(st);
	free(accts);
	config_free(&cfg);
	free(defpath);
	return worst;
}
