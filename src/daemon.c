/* daemon.c - the loop around polls: accounts polled side by side, the
 * daemon's schedule, signals, back-off, IMAP IDLE.
 *
 * Threads: run_polls() gives each account to one of cfg->parallel workers;
 * each worker has its own state connection (SQLite's WAL lets them share
 * the file) and the account lock keeps any account to one poll at a time.
 * Signal handlers only set flags and write a byte to a pipe the main loop
 * waits on; the polls see SIGTERM through agent_stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "daemon.h"
#include "fail.h"
#include "log.h"
#include "source.h"
#include "state.h"
#include "xmalloc.h"

#define BACKOFF_CAP     3600    /* seconds: a failing account's longest wait */
#define WAIT_MAX        3600    /* the loop looks at the clock at least this often */

/* --- several accounts at once ------------------------------------------------ */

/* Two accounts writing to one mbox file would each hold its lock for a
 * batch and time out on the other: such accounts take turns. (A Maildir is
 * safe to share.) */
static int
mbox_of(const struct account *a, size_t i, const struct target_spec **out)
{
	const struct target_spec *sp = i < a->ndeliver ? &a->deliver[i] :
	    i < a->ndeliver + a->nfilters ?
	    &a->filters[i - a->ndeliver]->route : NULL;

	if (sp == NULL)
		return -1;
	*out = sp->ops == &mbox_target ? sp : NULL;
	return 0;
}

static int
accounts_conflict(const struct account *a, const struct account *b)
{
	const struct target_spec *x, *y;

	for (size_t i = 0; mbox_of(a, i, &x) == 0; i++) {
		if (x == NULL)
			continue;
		for (size_t j = 0; mbox_of(b, j, &y) == 0; j++)
			if (y != NULL && target_same_path(x->path, y->path))
				return 1;
	}
	return 0;
}

struct pool {
	const struct config *cfg;
	const struct account *const *v;
	size_t n;
	const struct run_opts *o;
	pthread_mutex_t mu;
	pthread_cond_t ended;
	unsigned char *state;           /* per account: 0 to do, 1 running, 2 done */
	int *rc;
	unsigned long *taken;
};

/* The next account to poll that shares no mbox with a running one; n when
 * none is left; waits while the only ones left must wait their turn. */
static size_t
pool_next(struct pool *p)
{
	for (;;) {
		int left = 0;

		for (size_t i = 0; i < p->n; i++) {
			int clash = 0;

			if (p->state[i] != 0)
				continue;
			left = 1;
			for (size_t j = 0; j < p->n && !clash; j++)
				clash = p->state[j] == 1 &&
				    accounts_conflict(p->v[i], p->v[j]);
			if (!clash) {
				p->state[i] = 1;
				return i;
			}
		}
		if (!left)
			return p->n;
		pthread_cond_wait(&p->ended, &p->mu);
	}
}

static void *
worker(void *arg)
{
	struct pool *p = arg;
	struct state *st = NULL;
	struct fail f = { FAIL_NONE, "" };
	int open_rc = 0;

	if (state_open(&st, p->cfg->state, &f) != FAIL_NONE) {
		log_error("%s", f.msg);
		open_rc = fail_exit_code(f.kind);
	}
	for (;;) {
		struct poll_result res;
		size_t i;

		pthread_mutex_lock(&p->mu);
		i = pool_next(p);
		pthread_mutex_unlock(&p->mu);
		if (i >= p->n)
			break;
		if (st == NULL) {
			p->rc[i] = open_rc;
		} else {
			memset(&res, 0, sizeof(res));
			p->rc[i] = agent_poll(p->cfg, p->v[i], st, p->o, &res);
			p->taken[i] = res.taken;
		}
		pthread_mutex_lock(&p->mu);
		p->state[i] = 2;
		pthread_cond_broadcast(&p->ended);
		pthread_mutex_unlock(&p->mu);
	}
	state_close(st);
	return NULL;
}

/* Poll v[0..n); rc[i] gets each account's exit status. */
static void
poll_set(const struct config *cfg, const struct account *const *v, size_t n,
    const struct run_opts *o, int *rc, unsigned long *taken)
{
	struct pool p = { cfg, v, n, o, PTHREAD_MUTEX_INITIALIZER,
	    PTHREAD_COND_INITIALIZER, xcalloc(n ? n : 1, 1), rc, taken };
	size_t nt = (size_t)(cfg->parallel > 0 ? cfg->parallel : 1);
	pthread_t *tid;
	size_t started = 0;

	if (nt > n)
		nt = n;
	if (nt <= 1) {
		worker(&p);
		free(p.state);
		return;
	}
	tid = xcalloc(nt, sizeof(*tid));
	for (size_t i = 0; i < nt; i++) {
		if (pthread_create(&tid[i], NULL, worker, &p) != 0) {
			log_warnx("cannot start a thread; polling with %zu",
			    started);
			break;
		}
		started++;
	}
	if (started == 0)
		worker(&p);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	free(tid);
	free(p.state);
}

int
run_polls(const struct config *cfg, const struct account *const *v, size_t n,
    const struct run_opts *o, unsigned long *taken)
{
	int *rc = xcalloc(n ? n : 1, sizeof(*rc));
	unsigned long *tk = xcalloc(n ? n : 1, sizeof(*tk));
	int worst = 0;

	poll_set(cfg, v, n, o, rc, tk);
	if (taken != NULL)
		*taken = 0;
	for (size_t i = 0; i < n; i++) {
		if (fail_exit_rank(rc[i]) > fail_exit_rank(worst))
			worst = rc[i];
		if (taken != NULL)
			*taken += tk[i];
	}
	free(rc);
	free(tk);
	return worst;
}

/* --- signals ------------------------------------------------------------------ */

static volatile sig_atomic_t got_term, got_hup, got_usr1;
static int wake_fd[2] = { -1, -1 };

static void
on_signal(int sig)
{
	int saved = errno;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		got_term = 1;
		agent_stop = 1;
		break;
	case SIGHUP:
		got_hup = 1;
		break;
	case SIGUSR1:
		got_usr1 = 1;
		break;
	}
	if (wake_fd[1] != -1)
		(void)!write(wake_fd[1], "", 1);
	errno = saved;
}

static int
signals_init(void)
{
	struct sigaction sa;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };

	if (pipe2(wake_fd, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) == -1)
			return -1;
	return 0;
}

/* Wait up to secs seconds, or until a signal, an IDLE thread or an ended
 * poll wakes us. */
static void
wait_for(long secs)
{
	struct pollfd pfd = { wake_fd[0], POLLIN, 0 };
	char buf[64];

	if (secs > WAIT_MAX)
		secs = WAIT_MAX;
	/* every signal and every ended poll writes to the pipe, so the
	 * wait ends for each of them, however they fall around it */
	if (secs > 0)
		(void)poll(&pfd, 1, (int)(secs * 1000));
	while (read(wake_fd[0], buf, sizeof(buf)) > 0)
		;
}

/* --- the schedule --------------------------------------------------------------- */

struct sched {
	char *name;
	time_t next;                    /* when to poll it next */
	int failures;                   /* in a row */
	long delay;                     /* the wait said last, to say changes once */
	atomic_int poke;                /* poll it now (IDLE, SIGUSR1) */
	int busy;                       /* a poll thread runs for it */
};

/* A configuration and the polls still using it: a re-read one takes over
 * at once, the old one is freed when its last poll ends. */
struct cfgref {
	struct config *cfg;
	int refs;                       /* polls running with it */
};

/* A poll that ended, for the main thread to collect (mu). */
struct ended {
	char *name;
	pthread_t tid;
	struct cfgref *ref;
	int rc, hard;
};

/* An IMAP account with idle = yes: a thread holding its IDLE connection. */
struct idler {
	struct daemon *dm;
	size_t idx;                     /* its sched entry */
	const struct account *a;
	const char *folder;
	volatile sig_atomic_t stop;
	pthread_t tid;
	int running;
};

struct daemon {
	struct config *cfg;             /* == cur->cfg */
	struct cfgref *cur;
	const struct daemon_opts *d;
	const struct account **acct;    /* the accounts polled, in config order */
	struct sched *sc;               /* one per acct[] */
	size_t n;
	struct idler *idl;              /* one per idle = yes account */
	size_t nidl;
	size_t running;                 /* poll threads */
	pthread_mutex_t mu;             /* ended[] */
	struct ended *ended;
	size_t nended, capended;
};

static int
interval_of(const struct daemon *dm, const struct account *a)
{
	if (dm->d->interval > 0)
		return dm->d->interval;
	return a->interval > 0 ? a->interval : dm->cfg->interval;
}

/* The accounts to poll (named on the command line, or all); keep the
 * schedule of those already known. -1 if a named account is missing. */
static int
select_accounts(struct daemon *dm, struct config *cfg)
{
	const struct account **acct = xcalloc(cfg->naccounts + 1, sizeof(*acct));
	struct sched *sc = xcalloc(cfg->naccounts + 1, sizeof(*sc));
	size_t n = 0;
	time_t now = (time_t)(mono_ms() / 1000);

	for (int i = 0; i < dm->d->naccounts; i++) {
		if (config_find(cfg, dm->d->accounts[i]) == NULL) {
			log_error("no account named '%s' in %s",
			    dm->d->accounts[i], cfg->path);
			free(acct);
			free(sc);
			return -1;
		}
	}
	for (const struct account *a = cfg->accounts; a; a = a->next) {
		int want = dm->d->naccounts == 0;

		for (int i = 0; i < dm->d->naccounts && !want; i++)
			want = strcmp(a->name, dm->d->accounts[i]) == 0;
		if (!want)
			continue;
		acct[n] = a;
		sc[n].name = xstrdup(a->name);
		sc[n].next = now;
		for (size_t j = 0; j < dm->n; j++) {
			if (strcmp(dm->sc[j].name, a->name) == 0) {
				/* a re-read config may have fixed what failed:
				 * a backed-off account is tried again now */
				sc[n].next = dm->sc[j].failures > 0 ? now :
				    dm->sc[j].next;
				atomic_store(&sc[n].poke,
				    atomic_load(&dm->sc[j].poke));
				sc[n].busy = dm->sc[j].busy;
				break;
			}
		}
		n++;
	}
	for (size_t j = 0; j < dm->n; j++)
		free(dm->sc[j].name);
	free(dm->sc);
	free(dm->acct);
	dm->acct = acct;
	dm->sc = sc;
	dm->n = n;
	return 0;
}

/* After a poll: the next one at the interval, or later after failures
 * (doubling from the interval, capped), said when the wait changes. */
static void
reschedule(struct daemon *dm, size_t i, int rc, time_t now)
{
	struct sched *s = &dm->sc[i];
	long iv = interval_of(dm, dm->acct[i]), delay = iv;
	long cap = iv > BACKOFF_CAP ? iv : BACKOFF_CAP;

	if (rc == 0 || rc == 1) {
		if (s->failures > 0)
			log_info("%s: working again; polling every %ld s",
			    s->name, iv);
		s->failures = 0;
	} else {
		s->failures++;
		for (int k = 0; k < s->failures && delay < cap; k++)
			delay *= 2;
		if (delay > cap)
			delay = cap;
		if (delay != s->delay)
			log_info("%s: failed %d time%s in a row; next try in "
			    "%ld s", s->name, s->failures,
			    s->failures == 1 ? "" : "s", delay);
	}
	s->delay = delay;
	s->next = now + delay;
}

/* --- IDLE ---------------------------------------------------------------------- */

static void
idle_news(void *arg)
{
	struct idler *id = arg;

	atomic_store(&id->dm->sc[id->idx].poke, 1);
	(void)!write(wake_fd[1], "", 1);
}

/* Hold the IDLE connection; after a failure wait (doubling from 30 s to
 * 15 minutes, watching the stop flag) and connect again. */
static void *
idler_main(void *arg)
{
	struct idler *id = arg;
	long wait = 30;

	while (!id->stop) {
		int rc = agent_idle(id->dm->cfg, id->a, id->folder, &id->stop,
		    idle_news, id);

		if (rc <= 0)
			break;          /* stopped, or no IDLE: polled as usual */
		log_info("%s: IDLE connection on %s lost; again in %ld s",
		    id->a->name, id->folder, wait);
		for (long t = 0; t < wait * 10 && !id->stop; t++)
			usleep(100 * 1000);
		if (wait < 15 * 60)
			wait *= 2;
	}
	return NULL;
}

static void
idlers_start(struct daemon *dm)
{
	size_t cap = 0;

	dm->idl = NULL;
	dm->nidl = 0;
	for (size_t i = 0; i < dm->n; i++) {
		const struct account *a = dm->acct[i];
		static const char *const inbox[] = { "INBOX" };
		const char *const *fo = a->nidle_folders ?
		    (const char *const *)a->idle_folders : inbox;
		size_t nfo = a->nidle_folders ? a->nidle_folders : 1;

		if (!a->idle || a->protocol != PROTO_IMAP)
			continue;
		for (size_t j = 0; j < nfo; j++) {
			struct idler *id;

			if (dm->nidl == cap) {
				cap = cap ? cap * 2 : 8;
				dm->idl = xreallocarray(dm->idl, cap,
				    sizeof(*dm->idl));
			}
			id = &dm->idl[dm->nidl];
			memset(id, 0, sizeof(*id));
			id->dm = dm;
			id->idx = i;
			id->a = a;
			id->folder = fo[j];
			dm->nidl++;
		}
	}
	/* start them once the array stops moving */
	for (size_t k = 0; k < dm->nidl; k++) {
		struct idler *id = &dm->idl[k];

		if (pthread_create(&id->tid, NULL, idler_main, id) != 0)
			log_warnx("%s: cannot start the IDLE thread for %s; "
			    "polled every interval", id->a->name, id->folder);
		else
			id->running = 1;
	}
}

static void
idlers_stop(struct daemon *dm)
{
	for (size_t i = 0; i < dm->nidl; i++)
		dm->idl[i].stop = 1;
	for (size_t i = 0; i < dm->nidl; i++)
		if (dm->idl[i].running)
			pthread_join(dm->idl[i].tid, NULL);
	free(dm->idl);
	dm->idl = NULL;
	dm->nidl = 0;
}

/* At exit: an IDLE thread in the middle of connecting or logging in sees
 * its stop flag only after that step (up to the network timeout); give
 * them 3 s, then leave without them. 0 if one is still running (the
 * caller then frees nothing it might use). */
static int
idlers_stop_at_exit(struct daemon *dm)
{
	struct timespec until;
	int all = 1;

	for (size_t i = 0; i < dm->nidl; i++)
		dm->idl[i].stop = 1;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	for (size_t i = 0; i < dm->nidl; i++) {
		if (!dm->idl[i].running)
			continue;
		if (pthread_timedjoin_np(dm->idl[i].tid, NULL, &until) != 0)
			all = 0;
	}
	if (!all) {
		log_info("an IDLE connection is still being opened; not "
		    "waiting for it");
		return 0;
	}
	free(dm->idl);
	dm->idl = NULL;
	dm->nidl = 0;
	return 1;
}

static void
reload(struct daemon *dm)
{
	struct config *fresh = xcalloc(1, sizeof(*fresh));

	got_hup = 0;
	if (config_load(fresh, dm->d->config_path) < 0) {
		log_error("%s has errors (above); still running with the "
		    "configuration read before", dm->d->config_path);
		free(fresh);
		return;
	}
	idlers_stop(dm);        /* they point into the schedule and the config */
	if (select_accounts(dm, fresh) < 0) {
		log_error("still running with the configuration read before");
		config_free(fresh);
		free(fresh);
		select_accounts(dm, dm->cfg);
		idlers_start(dm);
		return;
	}
	/* polls still running keep the old configuration until they end */
	if (dm->cur->refs == 0) {
		config_free(dm->cur->cfg);
		free(dm->cur->cfg);
		free(dm->cur);
	}
	dm->cur = xcalloc(1, sizeof(*dm->cur));
	dm->cur->cfg = fresh;
	dm->cfg = fresh;
	idlers_start(dm);
	log_init(fresh->use_syslog, (enum log_level)dm->d->log_level);
	log_info("configuration re-read from %s: %zu account%s",
	    dm->d->config_path, dm->n, dm->n == 1 ? "" : "s");
}

/* One poll of one account, in a thread of its own, so that a long poll of
 * one account does not hold up the others' schedules. It keeps the
 * configuration it started with, even if a re-read one takes over. */
struct poll_job {
	struct daemon *dm;
	struct cfgref *ref;
	const struct account *a;
	const struct run_opts *o;
	pthread_t tid;
};

static void *
poll_thread(void *arg)
{
	struct poll_job *j = arg;
	struct daemon *dm = j->dm;
	struct state *st = NULL;
	struct fail f = { FAIL_NONE, "" };
	struct poll_result res;
	struct ended *e;
	int rc;

	memset(&res, 0, sizeof(res));
	log_set_context(j->a->name);
	if (state_open(&st, j->ref->cfg->state, &f) != FAIL_NONE) {
		log_error("%s", f.msg);
		rc = fail_exit_code(f.kind);
		res.hard = 1;
	} else {
		rc = agent_poll(j->ref->cfg, j->a, st, j->o, &res);
	}
	state_close(st);
	log_set_context(NULL);
	pthread_mutex_lock(&dm->mu);
	if (dm->nended == dm->capended) {
		dm->capended = dm->capended ? dm->capended * 2 : 8;
		dm->ended = xreallocarray(dm->ended, dm->capended,
		    sizeof(*dm->ended));
	}
	e = &dm->ended[dm->nended++];
	e->name = xstrdup(j->a->name);
	e->tid = pthread_self();
	e->ref = j->ref;
	e->rc = rc;
	e->hard = res.hard;
	pthread_mutex_unlock(&dm->mu);
	(void)!write(wake_fd[1], "", 1);
	free(j);
	return NULL;
}

/* Polls that ended: join them, set their accounts' next time, and free a
 * configuration no poll uses any more. */
static void
reap(struct daemon *dm)
{
	struct ended *v;
	size_t n;
	time_t now = (time_t)(mono_ms() / 1000);

	pthread_mutex_lock(&dm->mu);
	v = dm->ended;
	n = dm->nended;
	dm->ended = NULL;
	dm->nended = dm->capended = 0;
	pthread_mutex_unlock(&dm->mu);
	for (size_t k = 0; k < n; k++) {
		struct cfgref *ref = v[k].ref;

		pthread_join(v[k].tid, NULL);
		dm->running--;
		for (size_t i = 0; i < dm->n; i++) {
			if (strcmp(dm->sc[i].name, v[k].name) != 0)
				continue;
			dm->sc[i].busy = 0;
			/* only a poll that failed as a whole backs off; one
			 * that left some messages or a target behind keeps
			 * its schedule */
			if (!got_term)
				reschedule(dm, i, v[k].hard ? v[k].rc : 0, now);
		}
		if (--ref->refs == 0 && ref != dm->cur) {
			config_free(ref->cfg);
			free(ref->cfg);
			free(ref);
		}
		free(v[k].name);
	}
	free(v);
}

/* Start a poll of every account that is due and not being polled, up to
 * parallel at a time (SIGUSR1 and IDLE mark accounts due at once). */
static void
dispatch(struct daemon *dm)
{
	time_t now = (time_t)(mono_ms() / 1000);
	size_t cap = (size_t)(dm->cfg->parallel > 0 ? dm->cfg->parallel : 1);

	if (got_usr1) {
		got_usr1 = 0;
		for (size_t i = 0; i < dm->n; i++)
			atomic_store(&dm->sc[i].poke, 1);
	}
	for (size_t i = 0; i < dm->n && dm->running < cap; i++) {
		struct sched *sc = &dm->sc[i];
		struct poll_job *j;

		if (sc->busy || (!atomic_load(&sc->poke) && sc->next > now))
			continue;
		for (size_t b = 0; b < dm->n; b++)
			if (dm->sc[b].busy && accounts_conflict(dm->acct[i],
			    dm->acct[b]))
				goto next;      /* its turn comes when b ends */
		atomic_store(&sc->poke, 0);
		j = xcalloc(1, sizeof(*j));
		j->dm = dm;
		j->ref = dm->cur;
		j->a = dm->acct[i];
		j->o = &dm->d->run;
		dm->cur->refs++;
		if (pthread_create(&j->tid, NULL, poll_thread, j) != 0) {
			log_warnx("%s: cannot start a thread; trying again "
			    "later", sc->name);
			dm->cur->refs--;
			free(j);
			sc->next = now + 60;
			continue;
		}
		sc->busy = 1;
		dm->running++;
next:
		;
	}
}

/* Seconds until the next account not being polled is due; polls that end
 * wake the loop through the pipe. */
static long
seconds_to_next(const struct daemon *dm)
{
	size_t cap = (size_t)(dm->cfg->parallel > 0 ? dm->cfg->parallel : 1);
	time_t now = (time_t)(mono_ms() / 1000), next = now + WAIT_MAX;

	if (dm->running >= cap)
		return WAIT_MAX;        /* a slot frees when a poll ends */
	for (size_t i = 0; i < dm->n; i++) {
		int waits = 0;

		if (dm->sc[i].busy)
			continue;
		for (size_t b = 0; b < dm->n && !waits; b++)
			waits = dm->sc[b].busy && accounts_conflict(dm->acct[i],
			    dm->acct[b]);
		if (waits)
			continue;       /* the end of that poll wakes us */
		if (atomic_load(&dm->sc[i].poke))
			return 0;
		if (dm->sc[i].next < next)
			next = dm->sc[i].next;
	}
	return next > now ? (long)(next - now) : 0;
}

int
daemon_run(struct config *cfg, const struct daemon_opts *d)
{
	struct daemon dm;

	memset(&dm, 0, sizeof(dm));
	dm.d = d;
	dm.cfg = xcalloc(1, sizeof(*dm.cfg));
	*dm.cfg = *cfg;                 /* ours now */
	memset(cfg, 0, sizeof(*cfg));
	dm.cur = xcalloc(1, sizeof(*dm.cur));
	dm.cur->cfg = dm.cfg;
	config_cmd_stop = &agent_stop;  /* SIGTERM stops a waiting passcmd */
	if (signals_init() == -1) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		return EX_OSERR;
	}
	if (select_accounts(&dm, dm.cfg) < 0)
		return EX_USAGE;
	log_info("running as a daemon: %zu account%s, every %d s (SIGHUP "
	    "re-reads %s, SIGUSR1 polls now, SIGTERM stops)", dm.n,
	    dm.n == 1 ? "" : "s", d->interval > 0 ? d->interval :
	    dm.cfg->interval, d->config_path);
	pthread_mutex_init(&dm.mu, NULL);
	idlers_start(&dm);
	for (;;) {
		reap(&dm);
		if (got_term) {
			if (dm.running == 0)
				break;
			wait_for(1);    /* the polls stop at their next message */
			continue;
		}
		if (got_hup)
			reload(&dm);    /* running polls keep the old one */
		dispatch(&dm);
		wait_for(seconds_to_next(&dm));
	}
	if (!idlers_stop_at_exit(&dm)) {
		log_info("stopped by a signal; nothing in flight was lost");
		return 0;       /* the process ends; its threads with it */
	}
	pthread_mutex_destroy(&dm.mu);
	log_info("stopped by a signal; nothing in flight was lost");
	for (size_t j = 0; j < dm.n; j++)
		free(dm.sc[j].name);
	free(dm.sc);
	free(dm.acct);
	config_free(dm.cfg);    /* every poll has ended: only cur is left */
	free(dm.cfg);
	free(dm.cur);
	return 0;
}
