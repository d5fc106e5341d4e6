/* agent.c - one poll of one account: the pipeline and its ordering.
 *
 *   settle old intents -> open source -> list -> classify
 *   -> delete what was delivered before (keep = no)
 *   -> per batch: intents, fetch into targets, sync, record, delete
 *   -> close (QUIT applies the deletions)
 *
 * The agent never speaks a protocol and never writes a message file: it
 * drives a source and targets through their tables of functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "agent.h"
#include "decide.h"
#include "hdrscan.h"
#include "json.h"
#include "log.h"
#include "source.h"
#include "xmalloc.h"

#define BATCH_DEFAULT           200
#define BATCH_BYTES_MAX         (64ULL << 20)
#define PRUNE_AFTER             (30L * 24 * 3600)       /* vanished uids kept 30 days */
#define HOLD_MAX                (64 * 1024)     /* header held to filter late */

struct uid_vec {
	char **v;
	size_t n;
};

struct target_run {
	const struct target_spec *spec;
	void *t;
	enum fail_kind broken;          /* out of this poll after a failure */
};

struct agent {
	const struct account *a;
	struct state *st;
	const char *key;                /* state rows: the account, or for IMAP
	                                 * "account\x1ffolder" */
	int imap;
	const struct source_ops *src_ops;
	void *src;
	char server[300];
	struct target_run *tg;
	size_t ntg;
	/* the batch being fetched */
	const struct msg **batch;
	size_t nbatch;
	char (*refs)[TARGET_REF_MAX];   /* nbatch * ntg */
	unsigned char *ts;              /* nbatch * ntg: enum tstate */
	char **tres;                    /* nbatch * ntg: a result text, or NULL */
	char **msgid;                   /* per message, or NULL */
	unsigned char *shortened;       /* per message: fewer bytes than announced */
	const char **result;            /* per message: as recorded, or NULL
	                                 * while some target lacks it */
	size_t *fidx;                   /* fetch index -> batch index */
	struct fail stop;               /* every target failed (at sync) */
	struct decision *bdec;          /* per message of the batch */
	char *hold;                     /* D_LATE: the header so far */
	size_t nhold;
	int holding;                    /* D_LATE: targets not begun yet */
	const struct run_opts *o;
	int del_now;                    /* keep = no, and not -k */
	int target_err;                 /* the poll stopped for a target */
	unsigned long budget;           /* taken this poll (max_messages) */
	struct uid_vec blocked;         /* intents that cannot be settled now */
	struct progress *progress;      /* on a terminal, or NULL */
	size_t cur;                     /* index of the message being received */
	unsigned long long got;         /* bytes of the message being received */
	int in_msg;                     /* targets have a message begun */
	enum fail_kind soft;            /* a failure that did not stop the poll */
	char soft_msg[512];             /* and what it was, for --status */
	size_t missing;                 /* messages of this folder not taken */
	const struct folder *fo;        /* IMAP: the folder being polled */
	struct folder_status fst;       /* IMAP: its status at SELECT */
	struct hdrscan hs;
	struct poll_result res;
};

volatile sig_atomic_t agent_stop;

/* A failure that did not stop the poll: the worst one is the exit status. */
static void
soft_fail(struct agent *ag, enum fail_kind k, const char *msg)
{
	if (fail_exit_rank(fail_exit_code(k)) <=
	    fail_exit_rank(fail_exit_code(ag->soft)))
		return;
	ag->soft = k;
	if (msg != NULL)
		snprintf(ag->soft_msg, sizeof(ag->soft_msg), "%s", msg);
}

/* --- the progress line ------------------------------------------------------ *
 * On a terminal: account, messages done/total, bytes, rate, ETA; redrawn at
 * most ten times a second. With several polls at once, one account owns the
 * line until its fetch ends. */
static pthread_mutex_t progress_mu = PTHREAD_MUTEX_INITIALIZER;
static const void *progress_owner;

struct progress {
	size_t total, done;
	unsigned long long bytes_total, bytes_done;
	long long t0, last;             /* ms */
};

static void
human_bytes(char *buf, size_t len, double b)
{
	const char *unit[] = { "B", "kB", "MB", "GB", "TB" };
	int u = 0;

	while (b >= 1000 && u < 4) {
		b /= 1000;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

static void
progress_draw(const void *owner, const char *name, struct progress *p,
    int final)
{
	long long now = mono_ms();
	double secs, rate;
	char done[32], r[32], eta[32] = "";

	if (!final && now - p->last < 100)
		return;
	pthread_mutex_lock(&progress_mu);
	if (progress_owner == NULL)
		progress_owner = owner;
	if (progress_owner != owner) {
		pthread_mutex_unlock(&progress_mu);
		return;
	}
	p->last = now;
	secs = (double)(now - p->t0) / 1000.0;
	rate = secs > 0.05 ? (double)p->bytes_done / secs : 0;
	human_bytes(done, sizeof(done), (double)p->bytes_done);
	human_bytes(r, sizeof(r), rate);
	if (rate > 0 && p->bytes_done < p->bytes_total) {
		long left = (long)((double)(p->bytes_total - p->bytes_done) /
		    rate + 0.5);

		snprintf(eta, sizeof(eta), ", ETA %ld:%02ld", left / 60,
		    left % 60);
	}
	/* the last state stays on its own line */
	printf("\r\033[K%s: %zu/%zu messages, %s, %s/s%s%s", name, p->done,
	    p->total, done, r, final ? "" : eta, final ? "\n" : "");
	if (final)
		progress_owner = NULL;
	fflush(stdout);
	pthread_mutex_unlock(&progress_mu);
}

static void
report(struct agent *ag, const struct fail *f)
{
	log_error("%s: %s", ag->server, f->msg);
}

/* --- targets ------------------------------------------------------------ */

/* Where a folder goes. INBOX goes to the target itself; "Archive/2024"
 * to the Maildir++ folder BASE/.Archive.2024, or for an mbox to the file
 * BASE.Archive.2024 beside it; other kinds take every folder as it is (the server's delimiter becomes '.'; a '.' or
 * '/' that is part of a name becomes '_'). */
static char *
folder_path(const char *base, const struct folder *fo, const char *kind)
{
	char *sub, *path;

	if (fo == NULL || strcasecmp(fo->name, "INBOX") == 0 ||
	    (strcmp(kind, "maildir") != 0 && strcmp(kind, "mbox") != 0))
		return xstrdup(base);   /* an MDA or relay gets every folder */
	sub = xstrdup(fo->utf8);
	for (char *p = sub; *p; p++) {
		if (fo->delim != '\0' && *p == fo->delim)
			*p = '.';
		else if (*p == '.' || *p == '/')
			*p = '_';
	}
	if (strcmp(kind, "mbox") == 0)
		path = xasprintf("%s.%s", base, sub);
	else
		path = xasprintf("%s/.%s", base, sub);
	free(sub);
	return path;
}

/* Credentials for a target that logs in (smtp_user: SMTP AUTH). */
static enum fail_kind
target_login(struct agent *ag, struct target_run *tr, struct fail *f)
{
	char *secret = config_smtp_secret(ag->a, f);
	enum fail_kind k;

	if (secret == NULL)
		return f->kind;
	k = tr->spec->ops->login(tr->t, ag->a->smtp_user, secret, f);
	free_secret(secret);
	return k;
}

/* The target of spec's text among those open, or -1. */
static long
target_index(const struct agent *ag, const char *text)
{
	struct target_spec sp;
	const char *err;
	char *path = NULL;
	long found = -1;

	for (size_t t = 0; t < ag->ntg; t++)
		if (strcmp(ag->tg[t].spec->text, text) == 0)
			return (long)t;
	/* recorded under another spelling of the same file (a filter's route
	 * merged into an account target, or a deliver line rewritten) */
	if (target_spec_parse(text, &sp, &err) < 0)
		return -1;
	if (sp.ops != &smtp_target && sp.ops != &mda_target)
		path = config_expand(sp.path, &err);
	for (size_t t = 0; path != NULL && t < ag->ntg && found < 0; t++)
		if (ag->tg[t].spec->ops == sp.ops &&
		    target_same_path(ag->tg[t].spec->path, path))
			found = (long)t;
	free(path);
	free(sp.path);
	free(sp.text);
	return found;
}

/* The open target a filter routes to: the same text, or the same kind and
 * path written another way (one file is opened once). -1 if none. */
static long
route_index(const struct agent *ag, const struct target_spec *r)
{
	for (size_t t = 0; t < ag->ntg; t++) {
		const struct target_spec *sp = ag->tg[t].spec;

		if (strcmp(sp->text, r->text) == 0 || (sp->ops == r->ops &&
		    sp->ops != &smtp_target && target_same_path(sp->path,
		    r->path)))
			return (long)t;
	}
	return -1;
}

/* The account's targets, then those its filters route to (deliver:TARGET)
 * that are not among them. A target that cannot be opened is out of the
 * poll (its messages stay on the server) while the others go on; when none
 * of the account's own targets opens, that is the poll's failure. */
static enum fail_kind
targets_open(struct agent *ag, const struct folder *fo, struct fail *f)
{
	const struct account *a = ag->a;
	struct fail first = { FAIL_NONE, "" };
	size_t nbroken = 0;

	ag->tg = xcalloc(a->ndeliver + a->nfilters, sizeof(*ag->tg));
	ag->ntg = 0;
	for (size_t i = 0; i < a->ndeliver; i++)
		ag->tg[ag->ntg++].spec = &a->deliver[i];
	for (size_t i = 0; i < a->nfilters; i++) {
		const struct target_spec *r = &a->filters[i]->route;

		if (r->ops != NULL && route_index(ag, r) < 0)
			ag->tg[ag->ntg++].spec = r;
	}
	for (size_t i = 0; i < ag->ntg; i++) {
		const struct target_spec *spec = ag->tg[i].spec;
		char *path = folder_path(spec->path, fo, spec->ops->kind);
		struct fail fo1 = { FAIL_NONE, "" };
		enum fail_kind k;

		k = spec->ops->open(&ag->tg[i].t, path, &fo1);
		free(path);
		/* the account's relay credentials are for its own targets,
		 * not for a filter's (which carry theirs in no key) */
		if (k == FAIL_NONE && spec->ops->login != NULL &&
		    ag->a->smtp_user != NULL && i < a->ndeliver)
			k = target_login(ag, &ag->tg[i], &fo1);
		if (k == FAIL_NONE)
			continue;
		ag->tg[i].broken = k;
		if (ag->tg[i].t != NULL) {
			spec->ops->close(ag->tg[i].t);
			ag->tg[i].t = NULL;
		}
		if (i < a->ndeliver)
			nbroken++;
		if (first.kind == FAIL_NONE)
			first = fo1;
	}
	if (first.kind == FAIL_NONE)
		return FAIL_NONE;
	if (nbroken == a->ndeliver) {
		*f = first;
		return first.kind;
	}
	for (size_t i = 0; i < ag->ntg; i++)
		if (ag->tg[i].broken != FAIL_NONE)
			log_error("%s: cannot be opened; messages for it stay on "
			    "the server", ag->tg[i].spec->text);
	log_error("%s", first.msg);
	soft_fail(ag, first.kind == FAIL_CONFIG ? FAIL_CONFIG : first.kind ==
	    FAIL_LOCAL ? FAIL_LOCAL : FAIL_TEMP, first.msg);
	return FAIL_NONE;
}

/* A dry run creates nothing, but keep = DAYS must look at the local copies:
 * the targets are opened when every file target is already there (else no
 * copy can be, and none is opened). */
static enum fail_kind
dry_targets_open(struct agent *ag, const struct folder *fo, struct fail *f)
{
	const struct account *a = ag->a;

	if (a->keep_days == 0)
		return FAIL_NONE;
	for (size_t i = 0; i < a->ndeliver + a->nfilters; i++) {
		const struct target_spec *spec = i < a->ndeliver ?
		    &a->deliver[i] : &a->filters[i - a->ndeliver]->route;
		struct stat sb;
		char *path;
		int there;

		if (spec->ops == NULL)
			continue;       /* a filter that does not route */
		if (strcmp(spec->ops->kind, "maildir") != 0 &&
		    strcmp(spec->ops->kind, "mbox") != 0)
			continue;
		path = folder_path(spec->path, fo, spec->ops->kind);
		there = stat(path, &sb) == 0;
		free(path);
		if (!there)
			return FAIL_NONE;
	}
	return targets_open(ag, fo, f);
}

static void
targets_close(struct agent *ag)
{
	for (size_t i = 0; i < ag->ntg; i++)
		if (ag->tg[i].t)
			ag->tg[i].spec->ops->close(ag->tg[i].t);
	free(ag->tg);
	ag->tg = NULL;
	ag->ntg = 0;
	for (size_t i = 0; i < ag->blocked.n; i++)
		free(ag->blocked.v[i]);
	free(ag->blocked.v);
	ag->blocked.v = NULL;
	ag->blocked.n = 0;
}


/* IMAP: a message another client already flagged \Deleted is taken (a
 * backup keeps it) but its removal stays that client's business: we never
 * expunge it. Recorded apart, so that it is not deleted later either. */
static int
others_deleted(const struct msg *m)
{
	return strchr(m->flags, 'T') != NULL;
}

/* --- what each target holds ------------------------------------------------ *
 * Per message and target, the state of this run (fan-out: several targets
 * per account). A message is recorded as taken once every target has an
 * outcome; what each target holds is kept per target (state_deliveries), so
 * a retry goes only to the targets that do not have it yet.
 */
enum tstate {
	TS_IDLE = 0,    /* nothing this run (its target broke before) */
	TS_HAVE,        /* the target holds it from an earlier run (tres) */
	TS_PLANNED,     /* intent written; to be delivered */
	TS_BEGUN,       /* begun in the target */
	TS_ENDED,       /* ended: durable after the target's sync */
	TS_DONE,        /* synced */
	TS_REJECTED,    /* refused for good this run (tres: "rejected: ...") */
	TS_FAILED,      /* failed this run: tried again next poll */
	TS_NA,          /* not meant for this target (a filter routed it) */
};

#define TS(ag, i, t)    ((ag)->ts[(i) * (ag)->ntg + (t)])
#define TRES(ag, i, t)  ((ag)->tres[(i) * (ag)->ntg + (t)])

static int
ts_final(unsigned char s)
{
	return s == TS_HAVE || s == TS_DONE || s == TS_REJECTED || s == TS_NA;
}

/* A target failed. A permanent refusal of this one message (SMTP/LMTP 5xx)
 * is its outcome there; anything else takes the target out of this poll
 * (the message is kept on the server for it) while the other targets go on.
 * Returns the failure when no target is left to go on with. */
static enum fail_kind
target_broke(struct agent *ag, size_t t, struct fail *f)
{
	struct target_run *tr = &ag->tg[t];

	if (tr->broken == FAIL_NONE)
		tr->broken = f->kind;
	for (size_t u = 0; u < ag->ntg; u++)
		if (ag->tg[u].broken == FAIL_NONE) {
			log_error("%s; messages stay on the server for %s, the "
			    "other targets go on", f->msg, tr->spec->text);
			soft_fail(ag, f->kind == FAIL_LOCAL ? FAIL_LOCAL :
			    f->kind == FAIL_CONFIG ? FAIL_CONFIG : FAIL_TEMP,
			    f->msg);
			return FAIL_NONE;
		}
	ag->target_err = 1;     /* the failure is the target's, not the server's */
	return f->kind;
}

static enum fail_kind
target_failed(struct agent *ag, size_t i, size_t t, struct fail *f)
{
	if (f->kind == FAIL_REJECTED) {
		log_warnx("%s: message %s refused for good: %s; recorded, left "
		    "on the server, not tried again (mailpull -a takes it again, "
		    "with every message taken before)", ag->server,
		    ag->batch[i]->uid, f->msg);
		free(TRES(ag, i, t));
		TRES(ag, i, t) = xasprintf("rejected: %.200s", f->msg);
		TS(ag, i, t) = TS_REJECTED;
		soft_fail(ag, FAIL_REJECTED, f->msg);
		return FAIL_NONE;
	}
	TS(ag, i, t) = TS_FAILED;
	return target_broke(ag, t, f);
}

/* Is any target still taking message i? */
static int
msg_begun(struct agent *ag, size_t i)
{
	for (size_t t = 0; t < ag->ntg; t++)
		if (TS(ag, i, t) == TS_BEGUN)
			return 1;
	return 0;
}

/* Message i's outcome once every target has one: NULL while some target
 * still lacks it. */
static const char *
msg_result(struct agent *ag, size_t i)
{
	const char *rej = NULL;
	int shortened = 0, any = 0;

	for (size_t t = 0; t < ag->ntg; t++) {
		unsigned char s = TS(ag, i, t);
		const char *r = TRES(ag, i, t);

		if (!ts_final(s))
			return NULL;
		any |= s != TS_NA;
		if (s == TS_REJECTED || (s == TS_HAVE && r != NULL &&
		    strncmp(r, "rejected", 8) == 0)) {
			if (rej == NULL)
				rej = r;
		} else if ((s == TS_DONE && ag->shortened[i]) ||
		    (s == TS_HAVE && r != NULL && strcmp(r, "short") == 0)) {
			shortened = 1;
		}
	}
	/* filtered once its header arrived (D_LATE) */
	if (!any || ag->bdec[i].what == D_SKIP || ag->bdec[i].what == D_DELETE)
		return ag->bdec[i].what == D_DELETE ? "deleted" : "skipped";
	if (rej != NULL)
		return rej;
	if (shortened)
		return "short";
	return others_deleted(ag->batch[i]) ? "flagged-deleted" : "delivered";
}

/* Is target t meant for message i? The account's targets, unless a filter
 * routed the message to its own; every target while the decision waits for
 * the header (D_LATE: the ones not meant are dropped then). */
static int
meant_for(const struct agent *ag, size_t i, size_t t)
{
	const struct decision *d = &ag->bdec[i];

	if (d->what == D_LATE)
		return 1;
	if (d->what == D_ROUTE)
		return (long)t == route_index(ag, &d->by->route);
	return t < ag->a->ndeliver;
}

/* --- settling intents ------------------------------------------------------ */

struct intent_row {
	char *uid, *target, *ref;
	int shortened;
};

struct intent_list {
	struct intent_row *v;
	size_t n;
};

static int
collect_intent(void *arg, const char *uid, const char *target, const char *ref,
    int shortened)
{
	struct intent_list *l = arg;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n].uid = xstrdup(uid);
	l->v[l->n].target = xstrdup(target);
	l->v[l->n].ref = xstrdup(ref);
	l->v[l->n].shortened = shortened;
	l->n++;
	return 0;
}

static void
intent_list_free(struct intent_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].uid);
		free(l->v[i].target);
		free(l->v[i].ref);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

struct held {
	struct agent *ag;
	char **res;             /* per configured target: its result, or NULL */
};

static int
collect_held(void *arg, const char *target, const char *ref, const char *result)
{
	struct held *h = arg;

	long t = target_index(h->ag, target);

	if (t >= 0 && h->res[t] == NULL)
		h->res[t] = xstrdup(result);
	return 0;
}

/* Ask each target holding an intent for uid whether the message got there,
 * record what each holds, and the message itself once every target has it.
 * The other intents are forgotten: the message is delivered again to the
 * targets that lack it (settle removed any partial copy). */
static enum fail_kind
settle_uid(struct agent *ag, const struct intent_list *l, const char *uid,
    struct fail *f)
{
	struct held h = { ag, xcalloc(ag->ntg, sizeof(char *)) };
	struct delivery *dv = xcalloc(l->n, sizeof(*dv));
	struct outcome o = { uid, 0, NULL, "delivered", NULL, NULL };
	size_t nd = 0, t;
	enum fail_kind k;
	int complete = 1;

	/* A target that cannot be opened cannot be asked: every intent of
	 * the message stays, nothing is settled, and the message waits for a
	 * poll where it opens. An mbox holding one of its intents waits too:
	 * appending after the offset it recorded would put this poll's
	 * messages where that settle may later cut. */
	for (size_t i = 0; i < l->n; i++) {
		long ti;

		if (strcmp(l->v[i].uid, uid) != 0 ||
		    (ti = target_index(ag, l->v[i].target)) < 0 ||
		    ag->tg[ti].broken == FAIL_NONE)
			continue;
		log_warnx("message %s: a delivery to %s interrupted earlier "
		    "cannot be settled while it cannot be opened; the message "
		    "waits", uid, l->v[i].target);
		for (size_t j = 0; j < l->n; j++) {
			long tj;

			if (strcmp(l->v[j].uid, uid) != 0 ||
			    (tj = target_index(ag, l->v[j].target)) < 0 ||
			    ag->tg[tj].broken != FAIL_NONE ||
			    strcmp(ag->tg[tj].spec->ops->kind, "mbox") != 0)
				continue;
			ag->tg[tj].broken = FAIL_TEMP;
			log_warnx("%s waits for that message too (nothing is "
			    "appended to it this poll)", l->v[j].target);
			soft_fail(ag, FAIL_TEMP, "an interrupted delivery waits "
			    "for its target");
		}
		ag->blocked.v = xreallocarray(ag->blocked.v, ag->blocked.n + 1,
		    sizeof(*ag->blocked.v));
		ag->blocked.v[ag->blocked.n++] = xstrdup(uid);
		for (t = 0; t < ag->ntg; t++)
			free(h.res[t]);
		free(h.res);
		free(dv);
		return FAIL_NONE;
	}
	k = state_deliveries(ag->st, ag->key, uid, collect_held, &h, f);
	for (size_t i = 0; k == FAIL_NONE && i < l->n; i++) {
		long ti;
		int r;

		if (strcmp(l->v[i].uid, uid) != 0)
			continue;
		ti = target_index(ag, l->v[i].target);
		t = ti >= 0 ? (size_t)ti : ag->ntg;
		if (t == ag->ntg) {
			log_warnx("intent for %s in %s, which is no longer "
			    "configured; forgetting it", uid, l->v[i].target);
			continue;
		}
		r = ag->tg[t].spec->ops->settle(ag->tg[t].t, l->v[i].ref, f);
		if (r < 0)
			k = f->kind;
		else if (r > 0) {
			/* a short copy stays "short": its original is kept */
			const char *res = l->v[i].shortened ? "short" :
			    "delivered";

			dv[nd++] = (struct delivery){ uid, l->v[i].target,
			    l->v[i].ref, res };
			if (h.res[t] == NULL)
				h.res[t] = xstrdup(res);
		}
	}
	for (t = 0; t < ag->ntg; t++) {
		if (h.res[t] == NULL)
			complete = 0;
		else if (strncmp(h.res[t], "rejected", 8) == 0)
			o.result = h.res[t];
		else if (strcmp(h.res[t], "short") == 0 &&
		    strcmp(o.result, "delivered") == 0)
			o.result = "short";
	}
	if (k == FAIL_NONE) {
		if (complete)
			log_verbose("message %s was delivered before an "
			    "interruption; recorded", uid);
		k = state_record_batch(ag->st, ag->key, &o, complete ? 1 : 0,
		    dv, nd, &uid, 1, f);
	}
	for (t = 0; t < ag->ntg; t++)
		free(h.res[t]);
	free(h.res);
	free(dv);
	return k;
}

/* Intents left by a run that did not finish. */
static enum fail_kind
settle_leftovers(struct agent *ag, struct fail *f)
{
	struct intent_list l = { NULL, 0 };
	enum fail_kind k;

	k = state_intents(ag->st, ag->key, collect_intent, &l, f);
	for (size_t i = 0; k == FAIL_NONE && i < l.n; i++) {
		/* first row of each uid settles all of that uid's rows */
		size_t j;

		for (j = 0; j < i; j++)
			if (strcmp(l.v[j].uid, l.v[i].uid) == 0)
				break;
		if (j == i)
			k = settle_uid(ag, &l, l.v[i].uid, f);
	}
	intent_list_free(&l);
	return k;
}

/* --- the sink the source streams into -------------------------------------- */

static void sink_abort(void *arg, size_t fi);

/* Begin message i in every target planned for it. */
static enum fail_kind
begin_targets(struct agent *ag, size_t i, struct fail *f)
{
	const struct msg *m = ag->batch[i];
	struct msg_meta meta = { m->uid, m->size, m->flags, m->internaldate };
	enum fail_kind k = FAIL_NONE;

	for (size_t t = 0; t < ag->ntg && k == FAIL_NONE; t++) {
		const struct target_ops *ops = ag->tg[t].spec->ops;

		if (TS(ag, i, t) != TS_PLANNED)
			continue;
		if (ag->tg[t].broken != FAIL_NONE)
			TS(ag, i, t) = TS_FAILED;
		else if (ops->begin(ag->tg[t].t, ag->refs[i * ag->ntg + t],
		    &meta, f) == FAIL_NONE)
			TS(ag, i, t) = TS_BEGUN;
		else
			k = target_failed(ag, i, t, f);
	}
	ag->in_msg = msg_begun(ag, i);
	if (k != FAIL_NONE)
		sink_abort(ag, 0);
	return k;
}

static enum fail_kind
sink_begin(void *arg, size_t fi, struct fail *f)
{
	struct agent *ag = arg;
	size_t i = ag->fidx[fi];

	ag->cur = i;
	ag->got = 0;
	hdrscan_init(&ag->hs);
	if (agent_stop)
		return fail_set(f, FAIL_TEMP, "stopping (signal): the rest is "
		    "left for the next poll");
	if (ag->bdec[i].what == D_LATE) {
		/* the filters decide once the header is in */
		ag->holding = 1;
		ag->nhold = 0;
		ag->in_msg = 1;
		return FAIL_NONE;
	}
	return begin_targets(ag, i, f);
}

static enum fail_kind write_targets(struct agent *ag, const char *p, size_t n,
    struct fail *f);

/* D_LATE: the header has arrived (or HOLD_MAX of it): decide, drop the
 * targets not meant, begin the others and hand them what was held. */
static enum fail_kind
late_start(struct agent *ag, struct fail *f)
{
	size_t i = ag->cur;
	enum fail_kind k;

	decide_from_header(ag->a, ag->hold, ag->nhold, ag->batch[i]->size,
	    &ag->bdec[i]);
	ag->holding = 0;
	if (ag->bdec[i].what != D_TAKE)
		log_verbose("message %s: %s (filter %s)", ag->batch[i]->uid,
		    decision_word(&ag->bdec[i]), ag->bdec[i].by->name);
	/* what targets held from an earlier poll counts no more either:
	 * the decision is the filters' now */
	for (size_t t = 0; t < ag->ntg; t++)
		if ((TS(ag, i, t) == TS_PLANNED || TS(ag, i, t) == TS_HAVE) &&
		    (ag->bdec[i].what == D_SKIP || ag->bdec[i].what == D_DELETE ||
		    !meant_for(ag, i, t)))
			TS(ag, i, t) = TS_NA;
	if ((k = begin_targets(ag, i, f)) != FAIL_NONE)
		return k;
	if (ag->in_msg && ag->nhold > 0)
		return write_targets(ag, ag->hold, ag->nhold, f);
	return FAIL_NONE;
}

static void
sink_abort(void *arg, size_t fi)
{
	struct agent *ag = arg;
	size_t i = ag->cur;

	if (!ag->in_msg)
		return;
	for (size_t t = 0; t < ag->ntg; t++) {
		if (TS(ag, i, t) == TS_BEGUN) {
			ag->tg[t].spec->ops->abort(ag->tg[t].t);
			TS(ag, i, t) = TS_FAILED;
		}
	}
	ag->in_msg = 0;
	ag->holding = 0;
}

static enum fail_kind
sink_write(void *arg, const char *p, size_t n, struct fail *f)
{
	struct agent *ag = arg;
	enum fail_kind k;

	if (!ag->in_msg)
		return FAIL_NONE;       /* no target takes it: let it pass by */
	ag->got += n;
	if (!ag->hs.done)
		hdrscan_feed(&ag->hs, p, n);
	if (ag->holding) {
		size_t room = HOLD_MAX - ag->nhold, take = n < room ? n : room;

		if (ag->hold == NULL)
			ag->hold = xmalloc(HOLD_MAX);
		memcpy(ag->hold + ag->nhold, p, take);
		ag->nhold += take;
		if (!ag->hs.done && ag->nhold < HOLD_MAX)
			return FAIL_NONE;
		if ((k = late_start(ag, f)) != FAIL_NONE || !ag->in_msg)
			return k;
		p += take;
		n -= take;
		if (n == 0)
			return FAIL_NONE;
	}
	return write_targets(ag, p, n, f);
}

static enum fail_kind
write_targets(struct agent *ag, const char *p, size_t n, struct fail *f)
{
	size_t i = ag->cur;
	enum fail_kind k = FAIL_NONE;

	for (size_t t = 0; t < ag->ntg && k == FAIL_NONE; t++) {
		const struct target_ops *ops = ag->tg[t].spec->ops;

		if (TS(ag, i, t) != TS_BEGUN ||
		    ops->write(ag->tg[t].t, p, n, f) == FAIL_NONE)
			continue;
		ops->abort(ag->tg[t].t);        /* e.g. RCPT 550, read late */
		k = target_failed(ag, i, t, f);
	}
	ag->in_msg = msg_begun(ag, i);
	if (k != FAIL_NONE) {
		sink_abort(ag, 0);
		return k;
	}
	return FAIL_NONE;
}

static enum fail_kind
sink_end(void *arg, size_t fi, struct fail *f)
{
	struct agent *ag = arg;
	size_t i = ag->fidx[fi];
	enum fail_kind k = FAIL_NONE;
	const char *mid;

	if (!ag->in_msg)
		return FAIL_NONE;
	if (ag->holding && ((k = late_start(ag, f)) != FAIL_NONE ||
	    !ag->in_msg))
		return k;       /* a message all header, filtered out */
	for (size_t t = 0; t < ag->ntg; t++) {
		if (TS(ag, i, t) != TS_BEGUN)
			continue;
		if (k != FAIL_NONE) {
			ag->tg[t].spec->ops->abort(ag->tg[t].t);
			TS(ag, i, t) = TS_FAILED;
		} else if (ag->tg[t].spec->ops->end(ag->tg[t].t, f) ==
		    FAIL_NONE) {
			TS(ag, i, t) = TS_ENDED;
		} else {
			/* the target has dropped it, as abort() would */
			k = target_failed(ag, i, t, f);
		}
	}
	ag->in_msg = 0;
	if (!ag->imap && ag->got < ag->batch[i]->size) {
		/* POP3: cut short on the way (or the server's size is wrong):
		 * keep what came, but never delete the original for it. (An
		 * IMAP literal comes whole or not at all, and some servers'
		 * RFC822.SIZE is an estimate.) */
		log_warnx("%s: message %s: the server announced %llu bytes and "
		    "sent %llu; delivered, and left on the server", ag->server,
		    ag->batch[i]->uid, ag->batch[i]->size, ag->got);
		ag->shortened[i] = 1;
		/* durable now, so that a crash before the record keeps it so */
		if (k == FAIL_NONE && state_intent_short(ag->st, ag->key,
		    ag->batch[i]->uid, f) != FAIL_NONE)
			k = f->kind;    /* the state is failing: stop here */
	}
	if (ag->progress != NULL) {
		ag->progress->done++;
		ag->progress->bytes_done += ag->batch[i]->size;
		progress_draw(ag, ag->a->name, ag->progress, 0);
	}
	mid = hdrscan_message_id(&ag->hs);
	free(ag->msgid[i]);
	ag->msgid[i] = mid ? xstrdup(mid) : NULL;
	return k;
}

/* --- one batch ------------------------------------------------------------ */

struct have_arg {
	struct agent *ag;
	size_t i;
};

static int
collect_have(void *arg, const char *target, const char *ref,
    const char *result)
{
	struct have_arg *h = arg;
	struct agent *ag = h->ag;

	long t = target_index(ag, target);

	if (t >= 0 && TS(ag, h->i, t) == TS_IDLE) {
		TS(ag, h->i, t) = TS_HAVE;
		TRES(ag, h->i, t) = xstrdup(result);
	}
	return 0;
}

/* What the targets hold from earlier runs (a retry after one of several
 * targets failed); then, for the rest, the names the message will have,
 * recorded as intents (one transaction) before any byte is written. */
static enum fail_kind
batch_plan(struct agent *ag, struct fail *f)
{
	size_t n = ag->nbatch * ag->ntg, ni = 0;
	struct intent *iv = xcalloc(n, sizeof(*iv));
	enum fail_kind k = FAIL_NONE;

	for (size_t i = 0; i < ag->nbatch && k == FAIL_NONE; i++) {
		struct have_arg h = { ag, i };

		for (size_t t = 0; t < ag->ntg; t++)
			if (!meant_for(ag, i, t))
				TS(ag, i, t) = TS_NA;
		if (!ag->o->all && ag->ntg > 0)
			k = state_deliveries(ag->st, ag->key, ag->batch[i]->uid,
			    collect_have, &h, f);
		for (size_t t = 0; t < ag->ntg && k == FAIL_NONE; t++) {
			size_t j = i * ag->ntg + t;

			if (TS(ag, i, t) != TS_IDLE ||
			    ag->tg[t].broken != FAIL_NONE)
				continue;
			if (ag->tg[t].spec->ops->plan(ag->tg[t].t, ag->refs[j],
			    TARGET_REF_MAX, f) != FAIL_NONE) {
				/* e.g. an mbox whose lock cannot be had */
				TS(ag, i, t) = TS_FAILED;
				k = target_broke(ag, t, f);
				continue;
			}
			TS(ag, i, t) = TS_PLANNED;
			iv[ni].uid = ag->batch[i]->uid;
			iv[ni].target = ag->tg[t].spec->text;
			iv[ni].ref = ag->refs[j];
			ni++;
		}
	}
	if (k == FAIL_NONE && ni > 0)
		k = state_add_intents(ag->st, ag->key, iv, ni, f);
	free(iv);
	return k;
}

/* Make what each target ended durable. A target whose sync fails is asked,
 * message by message, what really got there (a sync may fail half-way), and
 * is out of this poll. -1: a target could not tell (the intents stay for the
 * next run to settle). */
static enum fail_kind
batch_sync(struct agent *ag, struct fail *f)
{
	for (size_t t = 0; t < ag->ntg; t++) {
		const struct target_ops *ops = ag->tg[t].spec->ops;
		struct fail fs = { FAIL_NONE, "" };
		int any = 0, failed;

		for (size_t i = 0; i < ag->nbatch; i++)
			any |= TS(ag, i, t) == TS_ENDED;
		if (!any)
			continue;
		failed = ops->sync(ag->tg[t].t, &fs) != FAIL_NONE;
		for (size_t i = 0; i < ag->nbatch; i++) {
			int r;

			if (TS(ag, i, t) != TS_ENDED)
				continue;
			if (!failed) {
				TS(ag, i, t) = TS_DONE;
				continue;
			}
			r = ops->settle(ag->tg[t].t, ag->refs[i * ag->ntg + t],
			    f);
			if (r < 0)
				return f->kind;
			TS(ag, i, t) = r > 0 ? TS_DONE : TS_FAILED;
		}
		if (failed && target_broke(ag, t, &fs) != FAIL_NONE)
			ag->stop = fs;  /* no target left */
	}
	return FAIL_NONE;
}

static enum fail_kind
batch_record(struct agent *ag, size_t *ndone, struct fail *f)
{
	struct outcome *ov = xcalloc(ag->nbatch, sizeof(*ov));
	struct delivery *dv = xcalloc(ag->nbatch * ag->ntg, sizeof(*dv));
	const char **drop = xcalloc(ag->nbatch, sizeof(*drop));
	size_t n = 0, nd = 0, ndrop = 0;
	enum fail_kind k;

	*ndone = 0;
	for (size_t i = 0; i < ag->nbatch; i++) {
		const char *uid = ag->batch[i]->uid;
		const char *res;

		for (size_t t = 0; t < ag->ntg; t++) {
			if (TS(ag, i, t) == TS_DONE)
				dv[nd++] = (struct delivery){ uid,
				    ag->tg[t].spec->text,
				    ag->refs[i * ag->ntg + t],
				    ag->shortened[i] ? "short" : "delivered" };
			else if (TS(ag, i, t) == TS_REJECTED)
				dv[nd++] = (struct delivery){ uid,
				    ag->tg[t].spec->text, "", TRES(ag, i, t) };
		}
		drop[ndrop++] = uid;
		if ((res = msg_result(ag, i)) == NULL)
			continue;       /* some target still lacks it */
		ov[n++] = (struct outcome){ uid, ag->batch[i]->size,
		    ag->msgid[i], res, ag->bdec[i].tag,
		    strcmp(res, "skipped") == 0 || strcmp(res, "deleted") == 0 ?
		    ag->a->digest : NULL };
		ag->result[i] = res;
	}
	k = state_record_batch(ag->st, ag->key, ov, n, dv, nd, drop, ndrop, f);
	for (size_t i = 0; k == FAIL_NONE && i < ag->nbatch; i++)
		if (ag->result[i] != NULL)
			(*ndone)++;
	if (k != FAIL_NONE)
		memset(ag->result, 0, ag->nbatch * sizeof(*ag->result));
	free(ov);
	free(dv);
	free(drop);
	return k;
}

/* IMAP: the server has expunged these; they need no deleting again. */
static enum fail_kind
record_expunged(struct agent *ag, const struct msg **v, size_t n,
    struct fail *f)
{
	const char **uids = xcalloc(n, sizeof(*uids));
	enum fail_kind k;

	for (size_t i = 0; i < n; i++)
		uids[i] = v[i]->uid;
	k = state_set_result(ag->st, ag->key, uids, n, "expunged", f);
	free(uids);
	return k;
}

static enum fail_kind
delete_msgs(struct agent *ag, const struct msg **v, size_t n, struct fail *f)
{
	enum fail_kind k;
	size_t refused = 0;

	if (n == 0)
		return FAIL_NONE;
	k = ag->src_ops->del(ag->src, v, n, &refused, f);
	if (k == FAIL_TEMP) {
		/* Some refused (each named in a warning); the rest stand. */
		log_warnx("%s: %s", ag->server, f->msg);
		soft_fail(ag, FAIL_TEMP, f->msg);
		ag->res.deleted += n - refused;
		return FAIL_NONE;
	}
	if (k == FAIL_NONE) {
		ag->res.deleted += n;
		if (ag->imap)
			k = record_expunged(ag, v, n, f);
	}
	return k;
}

/* Delete on the server what this batch recorded as delivered whole (in
 * every target). */
static enum fail_kind
batch_delete(struct agent *ag, struct fail *f)
{
	const struct msg **del = xcalloc(ag->nbatch, sizeof(*del));
	size_t nd = 0;
	enum fail_kind k;

	for (size_t i = 0; i < ag->nbatch; i++)
		if (ag->result[i] != NULL &&
		    ((ag->del_now && strcmp(ag->result[i], "delivered") == 0) ||
		    (!ag->o->keep && strcmp(ag->result[i], "deleted") == 0)))
			del[nd++] = ag->batch[i];
	k = delete_msgs(ag, del, nd, f);
	free(del);
	return k;
}

static int
msg_taken(const struct agent *ag, size_t i)
{
	const char *r = ag->result[i];

	return r != NULL && (strcmp(r, "delivered") == 0 ||
	    strcmp(r, "short") == 0 || strcmp(r, "flagged-deleted") == 0);
}

/* IMAP, mark_seen = yes: \Seen on the server for what was delivered. */
static void
batch_mark_seen(struct agent *ag)
{
	const struct msg **v = xcalloc(ag->nbatch, sizeof(*v));
	struct fail f = { FAIL_NONE, "" };
	size_t n = 0;

	for (size_t i = 0; i < ag->nbatch; i++)
		if (msg_taken(ag, i))
			v[n++] = ag->batch[i];
	if (n > 0 && ag->src_ops->seen(ag->src, v, n, &f) != FAIL_NONE) {
		log_warnx("%s: %s", ag->server, f.msg);
		soft_fail(ag, FAIL_TEMP, f.msg);
	}
	free(v);
}

static void
batch_count(struct agent *ag, enum fail_kind fetch_k)
{
	size_t missing = 0;

	for (size_t i = 0; i < ag->nbatch; i++) {
		if (msg_taken(ag, i)) {
			ag->res.taken++;
			ag->res.bytes += ag->batch[i]->size;
			if (ag->bdec[i].what == D_ROUTE)
				ag->res.routed++;
		} else if (ag->result[i] != NULL &&
		    strcmp(ag->result[i], "skipped") == 0) {
			ag->res.skipped++;
		} else if (ag->result[i] != NULL &&
		    strcmp(ag->result[i], "deleted") == 0) {
			ag->res.filtered_out++;
		} else if (ag->result[i] == NULL) {
			missing++;      /* recorded rejections are not missing */
		}
	}
	/* The source said why for each (RETR refused): try again next run. */
	if (missing && fetch_k == FAIL_NONE)
		soft_fail(ag, FAIL_TEMP, "some messages were left for the next "
		    "poll (see the log)");
	ag->missing += missing;
}

static void
batch_free(struct agent *ag)
{
	size_t n = ag->nbatch * ag->ntg;

	for (size_t i = 0; i < ag->nbatch; i++)
		free(ag->msgid[i]);
	for (size_t j = 0; j < n; j++)
		free(ag->tres[j]);
	free(ag->tres);
	free(ag->ts);
	free(ag->msgid);
	free(ag->refs);
	free(ag->shortened);
	free(ag->result);
	free(ag->fidx);
	ag->tres = NULL;
	ag->ts = NULL;
	ag->msgid = NULL;
	ag->refs = NULL;
	ag->shortened = NULL;
	ag->result = NULL;
	ag->fidx = NULL;
}

/* Fetch, deliver, sync, record and (maybe) delete one batch. A failure of
 * the fetch still syncs and records what arrived whole before it; the
 * session is then not trusted with DELE. */
static enum fail_kind
run_batch(struct agent *ag, int delete, struct fail *f)
{
	struct msg_sink sink = { ag, sink_begin, sink_write, sink_end, sink_abort };
	struct fail ff = { FAIL_NONE, "" };
	enum fail_kind fetch_k = FAIL_NONE, k;
	const struct msg **fv;
	size_t ndone = 0, nf = 0, n = ag->nbatch * ag->ntg;

	ag->ts = xcalloc(n, 1);
	ag->tres = xcalloc(n, sizeof(*ag->tres));
	ag->refs = xcalloc(n, sizeof(*ag->refs));
	ag->msgid = xcalloc(ag->nbatch, sizeof(*ag->msgid));
	ag->shortened = xcalloc(ag->nbatch, 1);
	ag->result = xcalloc(ag->nbatch, sizeof(*ag->result));
	ag->fidx = xcalloc(ag->nbatch, sizeof(*ag->fidx));
	ag->stop = (struct fail){ FAIL_NONE, "" };
	ag->in_msg = 0;
	k = batch_plan(ag, f);
	if (k != FAIL_NONE)
		goto out;

	/* only what some target still needs is fetched */
	fv = xcalloc(ag->nbatch, sizeof(*fv));
	for (size_t i = 0; i < ag->nbatch; i++) {
		for (size_t t = 0; t < ag->ntg; t++) {
			if (TS(ag, i, t) == TS_PLANNED) {
				ag->fidx[nf] = i;
				fv[nf++] = ag->batch[i];
				break;
			}
		}
	}
	if (nf > 0) {
		fetch_k = ag->src_ops->fetch(ag->src, fv, nf, &sink, &ff);
		sink_abort(ag, 0);      /* a message begun and never ended */
	}
	free(fv);

	k = batch_sync(ag, f);
	if (k == FAIL_NONE)
		k = batch_record(ag, &ndone, f);
	if (k != FAIL_NONE)
		goto out;       /* the intents stay: the next run settles them */
	batch_count(ag, fetch_k);
	if (fetch_k == FAIL_NONE || fetch_k == FAIL_LOCAL) {
		/* The session is sound (a local failure drained the replies). */
		if (ag->a->mark_seen && ndone > 0)
			batch_mark_seen(ag);
		if (ndone > 0 && (k = batch_delete(ag, f)) != FAIL_NONE)
			goto out;
	}
	if (fetch_k != FAIL_NONE) {
		*f = ff;
		k = fetch_k;
	} else if (ag->stop.kind != FAIL_NONE) {
		*f = ag->stop;          /* every target is out of this poll */
		k = ag->stop.kind;
	}
out:
	batch_free(ag);
	return k;
}

/* --- the poll ------------------------------------------------------------- */

static void
server_name(struct agent *ag)
{
	const struct account *a = ag->a;

	if (strchr(a->host, ':'))
		snprintf(ag->server, sizeof(ag->server), "[%s]:%s", a->host, a->port);
	else
		snprintf(ag->server, sizeof(ag->server), "%s:%s", a->host, a->port);
}

static enum fail_kind
source_open(struct agent *ag, const struct config *cfg, char *secret,
    struct fail *f)
{
	const struct account *a = ag->a;
	struct source_params sp;

	memset(&sp, 0, sizeof(sp));
	sp.account = a->name;
	sp.conn.host = a->host;
	sp.conn.port = a->port;
	sp.conn.timeout = cfg->timeout;
	sp.conn.tls_verify = a->tls_verify;
	sp.conn.ca_file = a->ca_file;
	sp.conn.fingerprint = a->fingerprint;
	sp.tls = a->tls;
	sp.user = a->user;
	sp.secret = secret;
	sp.auth = a->auth;
	sp.allow_plaintext = a->allow_plaintext;
	if (a->tls != TLS_NONE && !a->tls_verify && a->fingerprint == NULL)
		log_warnx("WARNING: tls_verify = no: the server's certificate "
		    "is NOT checked; anyone on the path can read the password");
	ag->src_ops = ag->imap ? &imap_source : &pop3_source;
	return ag->src_ops->open(&ag->src, &sp, f);
}

static char *
account_secret(const struct account *a, struct fail *f)
{
	if (a->password)
		return xstrdup(a->password);
	return config_run_passcmd(a, f);
}

/* Split the listing into what to take and what to delete only: what a
 * filter said to delete (unless -k), and what was delivered, when keep = no
 * (POP3: the listing is the whole mailbox; IMAP asks the state instead). */
static void
plan_listing(struct agent *ag, const struct msg *v, size_t n,
    const unsigned char *seen, const struct run_opts *o, int delete,
    const struct msg ***take, size_t *ntake, const struct msg ***old,
    size_t *nold)
{
	*take = xcalloc(n ? n : 1, sizeof(**take));
	*old = xcalloc(n ? n : 1, sizeof(**old));
	*ntake = *nold = 0;
	for (size_t i = 0; i < n; i++) {
		int blocked = 0;

		for (size_t b = 0; b < ag->blocked.n && !blocked; b++)
			blocked = strcmp(ag->blocked.v[b], v[i].uid) == 0;
		if (blocked) {
			ag->missing++;  /* listed again next time */
			continue;
		}
		if (seen[i] == SEEN_NEW || o->all)
			(*take)[(*ntake)++] = &v[i];
		else if ((delete && seen[i] == SEEN_DELIVERED) ||
		    (!o->keep && seen[i] == SEEN_DOOMED))
			(*old)[(*nold)++] = &v[i];
	}
}

static enum fail_kind take_batches(struct agent *ag, const struct msg **take,
    struct decision *dec, size_t ntake, size_t per, int delete,
    struct fail *f);

static enum fail_kind
take_all(struct agent *ag, const struct msg **take, struct decision *dec,
    size_t ntake, const struct run_opts *o, int delete, struct fail *f)
{
	size_t per = o->batch ? o->batch : BATCH_DEFAULT;
	struct progress pr;
	enum fail_kind k = FAIL_NONE;

	memset(&pr, 0, sizeof(pr));
	pr.total = ntake;
	for (size_t i = 0; i < ntake; i++)
		pr.bytes_total += take[i]->size;
	pr.t0 = mono_ms();
	ag->progress = o->progress && ntake > 0 ? &pr : NULL;
	k = take_batches(ag, take, dec, ntake, per, delete, f);
	if (ag->progress != NULL)
		progress_draw(ag, ag->a->name, &pr, 1);
	ag->progress = NULL;
	return k;
}

static enum fail_kind
take_batches(struct agent *ag, const struct msg **take, struct decision *dec,
    size_t ntake, size_t per, int delete, struct fail *f)
{
	for (size_t i = 0; i < ntake;) {
		unsigned long long bytes = 0;
		size_t n = 0;

		while (i + n < ntake && n < per &&
		    (n == 0 || bytes + take[i + n]->size <= BATCH_BYTES_MAX)) {
			bytes += take[i + n]->size;
			n++;
		}
		if (agent_stop)
			return fail_set(f, FAIL_TEMP, "stopping (signal): the "
			    "rest is left for the next poll");
		ag->batch = take + i;
		ag->bdec = dec + i;
		ag->nbatch = n;
		if (run_batch(ag, delete, f) != FAIL_NONE)
			return f->kind;
		i += n;
	}
	return FAIL_NONE;
}

/* IMAP: a folder is done; remember its UIDVALIDITY and where new mail
 * starts, so that the next poll of an unchanged folder costs no FETCH.
 * Not when a message was left behind: it must be listed again. */
static enum fail_kind
imap_folder_done(struct agent *ag, const struct msg *v, size_t n,
    const struct run_opts *o, struct fail *f)
{
	uint32_t next = ag->fst.uidnext;

	if (o->dry_run || ag->missing > 0)
		return FAIL_NONE;
	for (size_t i = 0; i < n; i++)
		if (v[i].imap_uid >= next)
			next = v[i].imap_uid + 1;
	return state_folder_set(ag->st, ag->a->name, ag->fo->name,
	    ag->fst.uidvalidity, next, f);
}

/* --- the dry run's report ------------------------------------------------- */

/* One message of the dry run: what would happen to it and why, on stdout
 * (a line of text, or with --json a JSON object). */
static void
report_one(struct agent *ag, const struct msg *m, const struct decision *d,
    const char *word, const char *why)
{
	const char *folder = ag->fo != NULL ? ag->fo->utf8 : NULL;

	if (word == NULL)
		word = d != NULL ? decision_word(d) : "delete";
	const char *filter = d != NULL && d->by != NULL ? d->by->name : NULL;
	const char *target = d != NULL && d->what == D_ROUTE ?
	    d->by->route.text : NULL;
	char *line = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&line, &len);

	if (fp == NULL)
		return;
	if (ag->o->json) {
		fputs("{\"account\":", fp);
		json_put_string(fp, ag->a->name);
		fputs(",\"folder\":", fp);
		json_put_string(fp, folder);
		fputs(",\"uid\":", fp);
		json_put_string(fp, m->uid);
		fprintf(fp, ",\"size\":%llu,\"from\":", m->size);
		json_put_string(fp, d != NULL ? d->from : NULL);
		fputs(",\"subject\":", fp);
		json_put_string(fp, d != NULL ? d->subject : NULL);
		fputs(",\"decision\":", fp);
		json_put_string(fp, word);
		fputs(",\"filter\":", fp);
		json_put_string(fp, filter);
		fputs(",\"target\":", fp);
		json_put_string(fp, target);
		fputs(",\"why\":", fp);
		json_put_string(fp, why);
		fputs("}\n", fp);
	} else {
		fprintf(fp, "%s%s%s uid %s (%llu bytes) From: %s Subject: %s: "
		    "%s", ag->a->name, folder ? " " : "", folder ? folder : "",
		    m->uid, m->size, d && d->from ? d->from : "-",
		    d && d->subject ? d->subject : "-", word);
		if (target != NULL)
			fprintf(fp, " to %s", target);
		if (why != NULL)
			fprintf(fp, " (%s)", why);
		fputc('\n', fp);
	}
	if (fclose(fp) == 0 && line != NULL)
		fputs(line, stdout);
	free(line);
}

static void
report_all(struct agent *ag, const struct msg **take,
    const struct decision *dec, size_t ntake, const struct msg **old,
    size_t nold)
{
	for (size_t i = 0; i < ntake; i++) {
		const struct decision *d = &dec[i];
		char why[300];

		if (d->by != NULL)
			snprintf(why, sizeof(why), "filter %s", d->by->name);
		else if (d->what == D_BIG)
			snprintf(why, sizeof(why), "larger than max_size %llu",
			    ag->a->max_size);
		else if (d->what == D_LATE)
			snprintf(why, sizeof(why), "no TOP: filtered after "
			    "download");
		else
			snprintf(why, sizeof(why), "new");
		/* as compact_takes() will: max_messages per poll */
		if ((d->what == D_TAKE || d->what == D_ROUTE ||
		    d->what == D_LATE) && ag->a->max_messages > 0 &&
		    ag->budget++ >= ag->a->max_messages) {
			report_one(ag, take[i], d, "wait", "max_messages: left "
			    "for the next poll");
			continue;
		}
		report_one(ag, take[i], d, NULL, why);
	}
	for (size_t i = 0; i < nold; i++)
		report_one(ag, old[i], NULL, NULL, "taken before, or a filter said "
		    "delete");
	fflush(stdout);
}

/* --- filters' outcomes -------------------------------------------------------- */

/* Record what the filters and max_size keep off the targets, and delete on
 * the server what a filter said to delete (unless -k: then a later run
 * does). */
static enum fail_kind
record_filtered(struct agent *ag, const struct msg **v, struct decision *d,
    size_t n, struct fail *f)
{
	struct outcome *ov = xcalloc(n ? n : 1, sizeof(*ov));
	const struct msg **del = xcalloc(n ? n : 1, sizeof(*del));
	size_t no = 0, nd = 0;
	enum fail_kind k = FAIL_NONE;

	for (size_t i = 0; i < n; i++) {
		switch (d[i].what) {
		case D_SKIP:
		case D_BIG:
			ov[no++] = (struct outcome){ v[i]->uid, v[i]->size, NULL,
			    "skipped", d[i].tag, ag->a->digest };
			log_verbose("message %s (%llu bytes) left on the "
			    "server: %s%s", v[i]->uid, v[i]->size,
			    d[i].by ? "filter " : "larger than max_size",
			    d[i].by ? d[i].by->name : "");
			ag->res.skipped++;
			break;
		case D_DELETE:
			ov[no++] = (struct outcome){ v[i]->uid, v[i]->size, NULL,
			    "deleted", d[i].tag, ag->a->digest };
			log_verbose("message %s (%llu bytes) deleted unread: "
			    "filter %s", v[i]->uid, v[i]->size, d[i].by->name);
			del[nd++] = v[i];
			ag->res.filtered_out++;
			break;
		default:
			break;
		}
	}
	if (no > 0)
		k = state_record(ag->st, ag->key, ov, no, f);
	if (k == FAIL_NONE && !ag->o->keep)
		k = delete_msgs(ag, del, nd, f);
	free(ov);
	free(del);
	return k;
}

/* What is left to download: the messages the filters let through (or
 * routed, or could not judge yet), at most max_messages per poll. */
static size_t
compact_takes(struct agent *ag, const struct msg **v, struct decision *d,
    size_t n)
{
	size_t m = 0, left = 0;

	for (size_t i = 0; i < n; i++) {
		if (d[i].what != D_TAKE && d[i].what != D_ROUTE &&
		    d[i].what != D_LATE) {
			free(d[i].tag);
			free(d[i].from);
			free(d[i].subject);
			continue;
		}
		if (ag->a->max_messages > 0 &&
		    ag->budget >= ag->a->max_messages) {
			left++;
			free(d[i].tag);
			free(d[i].from);
			free(d[i].subject);
			continue;
		}
		ag->budget++;
		v[m] = v[i];
		d[m++] = d[i];
	}
	if (left > 0) {
		log_verbose("max_messages = %lu reached: %zu message%s left for "
		    "the next poll", ag->a->max_messages, left,
		    left == 1 ? "" : "s");
		ag->missing += left;
	}
	return m;
}

/* keep = DAYS: which of the messages delivered at least that long ago
 * still have their local copies (a Maildir file removed or moved away by
 * its reader means: keep the original). */
static int
copies_present(struct agent *ag, const char *uid);

static int
uid_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
collect_due(void *arg, const char *uid, const char *result)
{
	struct uid_vec *u = arg;

	if (strcmp(result, "delivered") != 0)
		return 0;       /* a filter's "deleted": in the listing already */
	u->v = xreallocarray(u->v, u->n + 1, sizeof(*u->v));
	u->v[u->n++] = xstrdup(uid);
	return 0;
}

static time_t
retention_cutoff(const struct agent *ag)
{
	return time(NULL) - (time_t)ag->a->keep_days * 24 * 3600;
}

/* POP3, keep = DAYS: the delivered messages of the listing taken at least
 * that long ago whose local copies are all still there join old[]. */
static enum fail_kind
retention_pop3(struct agent *ag, const struct msg *v, size_t n,
    const unsigned char *seen, const struct msg **old, size_t *nold,
    struct fail *f)
{
	struct uid_vec due = { NULL, 0 };
	enum fail_kind k;

	k = state_due(ag->st, ag->key, retention_cutoff(ag), ag->a->digest,
	    collect_due, &due, f);
	if (k == FAIL_NONE && due.n > 0) {
		qsort(due.v, due.n, sizeof(*due.v), uid_cmp);
		for (size_t i = 0; i < n; i++) {
			const char *uid = v[i].uid;

			if (seen[i] != SEEN_DELIVERED || bsearch(&uid, due.v,
			    due.n, sizeof(*due.v), uid_cmp) == NULL)
				continue;
			if (copies_present(ag, uid))
				old[(*nold)++] = &v[i];
		}
	}
	for (size_t i = 0; i < due.n; i++)
		free(due.v[i]);
	free(due.v);
	return k;
}

static enum fail_kind
poll_messages(struct agent *ag, uint32_t since, const struct run_opts *o,
    int delete, struct fail *f)
{
	struct msg *v = NULL;
	const char **uids = NULL;
	unsigned char *seen = NULL;
	const struct msg **take = NULL, **old = NULL;
	struct decision *dec = NULL;
	size_t n = 0, ntake = 0, nold = 0, ndec = 0;
	enum fail_kind k;

	k = ag->src_ops->list(ag->src, since, &v, &n, f);
	if (k != FAIL_NONE)
		goto out;
	uids = xcalloc(n ? n : 1, sizeof(*uids));
	seen = xcalloc(n ? n : 1, 1);
	for (size_t i = 0; i < n; i++)
		uids[i] = v[i].uid;
	k = state_classify(ag->st, ag->key, uids, n, seen, PRUNE_AFTER,
	    (o->dry_run ? STATE_READONLY : 0) | (ag->imap ? STATE_PARTIAL : 0),
	    ag->a->digest, f);
	if (k != FAIL_NONE)
		goto out;
	/* IMAP lists only new mail; what is left to delete comes from the
	 * state (imap_pending_deletes). */
	plan_listing(ag, v, n, seen, o, delete && !ag->imap, &take, &ntake,
	    &old, &nold);
	if (!ag->imap && ag->a->keep_days > 0 && !o->keep &&
	    (k = retention_pop3(ag, v, n, seen, old, &nold, f)) != FAIL_NONE)
		goto out;
	log_verbose("%s: %zu messages, %zu new%s", ag->server, n, ntake,
	    nold ? ", some to delete" : "");
	dec = xcalloc(ntake ? ntake : 1, sizeof(*dec));
	ndec = ntake;
	k = decide_messages(ag->a, ag->src_ops, ag->src, take, ntake,
	    o->dry_run, dec, f);
	if (k != FAIL_NONE)
		goto out;
	if (o->dry_run) {
		report_all(ag, take, dec, ntake, old, nold);
		goto out;
	}
	k = delete_msgs(ag, old, nold, f);
	if (k == FAIL_NONE)
		k = record_filtered(ag, take, dec, ntake, f);
	if (k != FAIL_NONE)
		goto out;
	ndec = ntake = compact_takes(ag, take, dec, ntake);
	k = take_all(ag, take, dec, ntake, o, delete, f);
	if (k == FAIL_NONE && ag->imap)
		k = imap_folder_done(ag, v, n, o, f);
out:
	decisions_free(dec, ndec);
	free(take);
	free(old);
	free(seen);
	free(uids);
	free(v);
	return k;
}

/* Are the local copies of uid all still there? Only what can be checked
 * counts: a Maildir file (renamed by a reader is fine; removed or moved to
 * another folder is not); an mbox, an MDA or a relay took it for good. A
 * message recorded before per-target rows existed cannot be checked and
 * is kept. */
struct copies {
	struct agent *ag;
	int rows, missing;
	struct fail *f;
};

static int
check_copy(void *arg, const char *target, const char *ref, const char *result)
{
	struct copies *c = arg;
	long t = target_index(c->ag, target);
	const struct target_ops *ops;
	int r;

	c->rows++;
	if (t < 0) {
		c->missing = 1;         /* a target no longer configured */
		return 1;
	}
	if (c->ag->tg[t].broken != FAIL_NONE) {
		c->missing = 1;         /* cannot look: keep the original */
		return 1;
	}
	ops = c->ag->tg[t].spec->ops;
	if (ops->present == NULL)
		return 0;
	r = ops->present(c->ag->tg[t].t, ref, c->f);
	if (r != 1)
		c->missing = 1;
	return r != 1;
}

static int
copies_present(struct agent *ag, const char *uid)
{
	struct fail f = { FAIL_NONE, "" };
	struct copies c = { ag, 0, 0, &f };

	if (state_deliveries(ag->st, ag->key, uid, check_copy, &c, &f) !=
	    FAIL_NONE || f.kind != FAIL_NONE) {
		log_warnx("%s", f.msg);
		return 0;
	}
	if (c.rows == 0 || c.missing) {
		log_verbose("message %s: %s; kept on the server", uid,
		    c.rows == 0 ? "taken before its local copy was recorded" :
		    "its local copy is gone");
		return 0;
	}
	return 1;
}

struct pending {
	struct msg *v;
	size_t n;
	uint32_t uidvalidity;
	uint32_t uidnext;               /* no UID of ours is at or above it */
};

static int
collect_pending(void *arg, const char *uid)
{
	struct pending *p = arg;
	unsigned long v, u;
	char *end;

	v = strtoul(uid, &end, 10);
	if (*end != ':' || v != p->uidvalidity)
		return 0;       /* from before a UIDVALIDITY change: gone */
	u = strtoul(end + 1, &end, 10);
	if (*end != '\0' || u == 0 || u > UINT32_MAX ||
	    (p->uidnext != 0 && u >= p->uidnext))
		return 0;
	p->v = xreallocarray(p->v, p->n + 1, sizeof(*p->v));
	memset(&p->v[p->n], 0, sizeof(p->v[p->n]));
	snprintf(p->v[p->n].uid, sizeof(p->v[p->n].uid), "%s", uid);
	p->v[p->n].imap_uid = (uint32_t)u;
	p->n++;
	return 0;
}

struct due_imap {
	struct pending *p;
	struct agent *ag;
	int check;                      /* keep = DAYS: check local copies */
};

static int
collect_due_imap(void *arg, const char *uid, const char *result)
{
	struct due_imap *d = arg;

	if (d->check && strcmp(result, "delivered") == 0 &&
	    !copies_present(d->ag, uid))
		return 0;
	return collect_pending(d->p, uid);
}

/* IMAP: what is due for deletion: what a filter said to delete, and with
 * keep = no what was delivered but not yet expunged (a run cut short
 * between the two), with keep = DAYS what was delivered that long ago and
 * is still there locally. */
static enum fail_kind
imap_pending_deletes(struct agent *ag, struct fail *f)
{
	struct pending p = { NULL, 0, ag->fst.uidvalidity, ag->fst.uidnext };
	struct due_imap d = { &p, ag, 0 };
	const struct msg **ptr;
	time_t before = 0;
	enum fail_kind k;

	if (ag->del_now)
		before = time(NULL) + 1;
	else if (ag->a->keep_days > 0) {
		before = retention_cutoff(ag);
		d.check = 1;
	}
	k = state_due(ag->st, ag->key, before, ag->a->digest, collect_due_imap,
	    &d, f);
	if (k == FAIL_NONE && p.n > 0) {
		ptr = xcalloc(p.n, sizeof(*ptr));
		for (size_t i = 0; i < p.n; i++)
			ptr[i] = &p.v[i];
		if (ag->o->dry_run) {
			for (size_t i = 0; i < p.n; i++)
				report_one(ag, ptr[i], NULL, NULL, "taken before, "
				    "or a filter said delete");
			fflush(stdout);
		} else {
			log_verbose("%s: deleting %zu messages taken before",
			    ag->server, p.n);
			k = delete_msgs(ag, ptr, p.n, f);
		}
		free(ptr);
	}
	free(p.v);
	return k;
}

struct rematch {
	char **mid;                     /* Message-ID per listed message */
	char (*result)[STATE_RESULT_MAX];
};

/* Is message i's Message-ID (and size) one of an earlier listed message? */
static int
mid_seen_before(char *const *mid, size_t i, const struct msg *v)
{
	for (size_t j = 0; j < i; j++)
		if (mid[j] != NULL && v[j].size == v[i].size &&
		    strcmp(mid[j], mid[i]) == 0)
			return 1;
	return 0;
}

static void
rematch_header(void *arg, size_t i, const char *p, size_t len)
{
	struct rematch *rm = arg;
	struct hdrscan hs;
	const char *mid;

	hdrscan_init(&hs);
	hdrscan_feed(&hs, p, len);
	if (!hs.done)
		hdrscan_feed(&hs, "\r\n\r\n", 4);  /* a header without its end */
	mid = hdrscan_message_id(&hs);
	if (mid != NULL && rm->mid[i] == NULL)
		rm->mid[i] = xstrdup(mid);
}

/* IMAP: the folder's UIDVALIDITY changed, so its UIDs say nothing. Match
 * its messages to what was taken by Message-ID and size (headers only) and
 * record the matches under their new UIDs; the rest is then taken. */
static enum fail_kind
imap_rematch(struct agent *ag, uint32_t old, const struct run_opts *o,
    struct fail *f)
{
	struct msg *v = NULL;
	const struct msg **ptr = NULL;
	struct outcome *ov = NULL;
	struct rematch rm = { NULL, NULL };
	size_t n = 0, nm = 0, nomid = 0;
	enum fail_kind k;

	k = ag->src_ops->list(ag->src, 1, &v, &n, f);
	if (k != FAIL_NONE || n == 0)
		goto out;
	ptr = xcalloc(n, sizeof(*ptr));
	rm.mid = xcalloc(n, sizeof(*rm.mid));
	for (size_t i = 0; i < n; i++)
		ptr[i] = &v[i];
	k = ag->src_ops->headers(ag->src, ptr, n, rematch_header, &rm, f);
	if (k != FAIL_NONE)
		goto out;
	ov = xcalloc(n, sizeof(*ov));
	rm.result = xcalloc(n, sizeof(*rm.result));
	for (size_t i = 0; i < n && k == FAIL_NONE; i++) {
		int found = 0;

		if (rm.mid[i] == NULL) {
			nomid++;
			continue;
		}
		/* one old message matches one new one: a second copy with the
		 * same Message-ID and size is taken as new */
		if (mid_seen_before(rm.mid, i, v))
			continue;
		k = state_find_message(ag->st, ag->key, rm.mid[i], v[i].size,
		    rm.result[i], &found, f);
		if (!found)
			continue;
		/* What was recorded travels with it: a message kept on the
		 * server ("short", "flagged-deleted", "stale") stays kept. */
		if (others_deleted(&v[i]) &&
		    strcmp(rm.result[i], "delivered") == 0)
			snprintf(rm.result[i], STATE_RESULT_MAX, "flagged-deleted");
		ov[nm++] = (struct outcome){ v[i].uid, v[i].size, rm.mid[i],
		    rm.result[i], NULL, NULL };
	}
	if (k == FAIL_NONE && nm > 0 && !o->dry_run)
		k = state_record(ag->st, ag->key, ov, nm, f);
	log_info("%s: folder %s: UIDVALIDITY changed (%u, now %u): %zu of %zu "
	    "messages matched what was taken before by Message-ID and size%s",
	    ag->server, ag->fo->utf8, old, ag->fst.uidvalidity, nm, n,
	    nomid ? "; some have no Message-ID and are taken again" : "");
out:
	for (size_t i = 0; rm.mid != NULL && i < n; i++)
		free(rm.mid[i]);
	free(rm.mid);
	free(rm.result);
	free(ov);
	free(ptr);
	free(v);
	return k;
}

static int
collect_all(void *arg, const char *uid)
{
	struct uid_vec *u = arg;

	u->v = xreallocarray(u->v, u->n + 1, sizeof(*u->v));
	u->v[u->n++] = xstrdup(uid);
	return 0;
}

/* UIDNEXT went down under the same UIDVALIDITY: the server gave out UIDs
 * again (RFC 3501 forbids it; a restored backup does it). Recorded UIDs may
 * now name other messages, so none of them is ever deleted ("stale"), and
 * the folder is left alone unless -a takes it all again. */
static enum fail_kind
imap_uids_reused(struct agent *ag, uint32_t old, const struct run_opts *o,
    struct fail *f)
{
	struct uid_vec u = { NULL, 0 };
	enum fail_kind k;

	log_warnx("%s: folder %s: UIDNEXT went down (%u, now %u) under the same "
	    "UIDVALIDITY: the server reused UIDs; %s", ag->server, ag->fo->utf8,
	    old, ag->fst.uidnext, o->all ? "taking it all again (-a)" :
	    "leaving the folder alone (nothing deleted; -a takes it all again)");
	k = state_delivered(ag->st, ag->key, collect_all, &u, f);
	if (k == FAIL_NONE && u.n > 0 && !o->dry_run)
		k = state_set_result(ag->st, ag->key, (const char *const *)u.v,
		    u.n, "stale", f);
	for (size_t i = 0; i < u.n; i++)
		free(u.v[i]);
	free(u.v);
	if (k == FAIL_NONE && !o->all)
		soft_fail(ag, FAIL_TEMP, "UIDNEXT went down: folder left alone");
	return k;
}

/* IMAP: one folder: select, skip it if unchanged, else take what is new. */
static enum fail_kind
poll_folder(struct agent *ag, const struct folder *fo, const struct run_opts *o,
    int delete, struct fail *f)
{
	char *key = xasprintf("%s\x1f%s", ag->a->name, fo->name);
	uint32_t pv = 0, pn = 0, since = 1;
	enum fail_kind k = FAIL_NONE;
	int found = 0, stale = 0;

	ag->key = key;
	ag->fo = fo;
	ag->missing = 0;
	if (!o->dry_run) {
		k = targets_open(ag, fo, f);
		if (k == FAIL_NONE)
			k = settle_leftovers(ag, f);
	} else {
		k = dry_targets_open(ag, fo, f);
	}
	if (k == FAIL_NONE)
		k = ag->src_ops->select(ag->src, fo, &ag->fst, f);
	if (k == FAIL_NONE)
		k = state_folder_get(ag->st, ag->a->name, fo->name, &pv, &pn,
		    &found, f);
	if (k != FAIL_NONE)
		goto out;
	if (found && pv != ag->fst.uidvalidity) {
		/* The old UIDs say nothing now: all of it is listed again. */
		if (!o->all)
			k = imap_rematch(ag, pv, o, f);
		if (k != FAIL_NONE || o->dry_run)
			goto out;
		found = 0;
	}
	if (found && pv == ag->fst.uidvalidity && ag->fst.uidnext != 0 &&
	    ag->fst.uidnext < pn) {
		k = imap_uids_reused(ag, pn, o, f);
		if (k != FAIL_NONE || !o->all)
			goto out;
		found = 0;
	}
	if (!o->keep && (k = imap_pending_deletes(ag, f)))
		goto out;
	if (found && !o->all && (k = state_stale_skips(ag->st, ag->key,
	    ag->a->digest, &stale, f)) != FAIL_NONE)
		goto out;
	if (stale) {
		log_verbose("%s: folder %s: the filters changed: what they "
		    "skipped is examined again", ag->server, fo->utf8);
		found = 0;
	}
	if (found && !o->all && pn != 0 && pn == ag->fst.uidnext) {
		log_verbose("%s: folder %s unchanged", ag->server, fo->utf8);
		goto out;
	}
	if (found && !o->all && pn != 0)
		since = pn;
	log_verbose("%s: folder %s: new mail from UID %u", ag->server,
	    fo->utf8, since);
	k = poll_messages(ag, since, o, delete, f);
out:
	targets_close(ag);
	ag->key = NULL;
	ag->fo = NULL;
	free(key);
	return k;
}

/* The session survives a failure that was only one folder's: a local one
 * (its Maildir), or the server refusing that folder (a NO to SELECT). */
static int
folder_failure_is_local(enum fail_kind k)
{
	return k == FAIL_LOCAL || k == FAIL_REJECTED || k == FAIL_CONFIG;
}

static enum fail_kind
poll_imap(struct agent *ag, const struct run_opts *o, int delete,
    struct fail *f)
{
	struct folder *fv = NULL;
	size_t nf = 0;
	enum fail_kind k, worst = FAIL_NONE;
	char worst_msg[600] = "";

	k = ag->src_ops->folders(ag->src, (const char *const *)ag->a->folders,
	    ag->a->nfolders, &fv, &nf, f);
	for (size_t i = 0; k == FAIL_NONE && i < nf; i++) {
		k = poll_folder(ag, &fv[i], o, delete, f);
		if (k != FAIL_NONE && folder_failure_is_local(k)) {
			log_error("%s: folder %s: %s", ag->server, fv[i].utf8,
			    f->msg);
			if (fail_exit_rank(fail_exit_code(k)) >
			    fail_exit_rank(fail_exit_code(worst))) {
				worst = k;
				snprintf(worst_msg, sizeof(worst_msg), "folder "
				    "%s: %s", fv[i].utf8, f->msg);
			}
			k = FAIL_NONE;
		}
	}
	folders_free(fv, nf);
	/* Each folder's failure was reported; the exit status says it once:
	 * a local one as such, a folder the server refused as temporary. */
	if (worst != FAIL_NONE)
		soft_fail(ag, worst == FAIL_LOCAL || worst == FAIL_CONFIG ? worst :
		    FAIL_TEMP, worst_msg);
	return k;
}

static enum fail_kind
poll_pop3(struct agent *ag, const struct run_opts *o, int delete,
    struct fail *f)
{
	enum fail_kind k = FAIL_NONE;

	ag->key = ag->a->name;
	if (!o->dry_run) {              /* a dry run creates nothing */
		k = targets_open(ag, NULL, f);
		if (k == FAIL_NONE)
			k = settle_leftovers(ag, f);
	} else {
		k = dry_targets_open(ag, NULL, f);
	}
	if (k == FAIL_NONE)
		k = poll_messages(ag, 0, o, delete, f);
	targets_close(ag);
	return k;
}

/* One poll of an account at a time, across processes: flock on a file
 * beside the state database. -1 (and *f) if it cannot be had. */
static int
account_lock(const struct config *cfg, const struct account *a, struct fail *f)
{
	char *path = xasprintf("%s.%s.lock", cfg->state, a->name);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd == -1) {
		fail_set(f, FAIL_LOCAL, "lock file %s: %s", path, strerror(errno));
	} else if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			fail_set(f, FAIL_TEMP, "another mailpull is polling this "
			    "account; skipped this time");
		else
			fail_set(f, FAIL_LOCAL, "lock file %s: %s", path,
			    strerror(errno));
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

/* End the session: QUIT when it is sound, so that the deletions take
 * effect; otherwise just drop it (nothing is deleted then). */
static enum fail_kind
finish_source(struct agent *ag, enum fail_kind k, struct fail *f)
{
	struct fail fq = { FAIL_NONE, "" };
	enum fail_kind kq;

	if (k != FAIL_NONE && k != FAIL_LOCAL && k != FAIL_REJECTED) {
		if (ag->target_err)
			log_error("%s", f->msg);
		else
			report(ag, f);
		ag->src_ops->close(ag->src, 0, NULL);
		if (!ag->imap)
			ag->res.deleted = 0;    /* POP3: only QUIT deletes */
		return k;
	}
	if (k != FAIL_NONE)
		log_error("%s", f->msg);
	kq = ag->src_ops->close(ag->src, 1, &fq);
	if (kq != FAIL_NONE) {
		report(ag, &fq);
		if (!ag->imap)
			ag->res.deleted = 0;
		if (k == FAIL_NONE)
			k = kq;
	}
	return k;
}

int
agent_poll(const struct config *cfg, const struct account *a, struct state *st,
    const struct run_opts *o, struct poll_result *res)
{
	struct agent ag;
	struct fail f = { FAIL_NONE, "" };
	enum fail_kind k;
	char *secret = NULL;
	int lockfd;

	memset(&ag, 0, sizeof(ag));
	ag.a = a;
	ag.st = st;
	ag.imap = a->protocol == PROTO_IMAP;
	ag.o = o;
	ag.res.hard = 1;        /* until the poll gets through */
	server_name(&ag);
	log_set_context(a->name);

	lockfd = account_lock(cfg, a, &f);
	k = lockfd == -1 ? f.kind : FAIL_NONE;
	if (lockfd == -1 && k == FAIL_TEMP)
		ag.res.hard = 0;        /* busy elsewhere: not this account's fault */
	if (k == FAIL_NONE && (secret = account_secret(a, &f)) == NULL)
		k = f.kind;
	if (k != FAIL_NONE) {
		log_error("%s", f.msg);
		goto out;
	}
	k = source_open(&ag, cfg, secret, &f);
	free_secret(secret);
	if (k != FAIL_NONE) {
		report(&ag, &f);
		goto out;
	}
	ag.del_now = !a->keep && a->keep_days == 0 && !o->keep;
	if (ag.imap)
		k = poll_imap(&ag, o, ag.del_now, &f);
	else
		k = poll_pop3(&ag, o, ag.del_now, &f);
	k = finish_source(&ag, k, &f);
	ag.src = NULL;
	if (ag.res.taken || ag.res.deleted || ag.res.skipped) {
		char more[160] = "";

		if (ag.res.skipped || ag.res.filtered_out || ag.res.routed)
			snprintf(more, sizeof(more), "; filters: %lu skipped, "
			    "%lu deleted unread, %lu routed", ag.res.skipped,
			    ag.res.filtered_out, ag.res.routed);
		log_info("%lu message%s (%llu bytes) delivered, %lu deleted on "
		    "the server%s", ag.res.taken, ag.res.taken == 1 ? "" : "s",
		    ag.res.bytes, ag.res.deleted, more);
	}
	else if (k == FAIL_NONE && ag.soft == FAIL_NONE)
		log_verbose("no new mail");
	ag.res.hard = k != FAIL_NONE;
	if (k == FAIL_NONE)
		k = ag.soft;
out:
	/* --status: when, and how it went (not for a run that found the
	 * account busy: that one's own record stands) */
	if (!o->dry_run && lockfd != -1) {
		struct fail fs = { FAIL_NONE, "" };
		const char *err = k == FAIL_NONE ? NULL :
		    !ag.res.hard && ag.soft_msg[0] != '\0' ? ag.soft_msg :
		    f.kind != FAIL_NONE ? f.msg :
		    "some messages were left for the next poll (see the log)";

		if (state_poll_done(st, a->name, err, &fs) != FAIL_NONE)
			log_warnx("%s", fs.msg);
	}
	targets_close(&ag);
	free(ag.hold);
	if (lockfd != -1)
		close(lockfd);
	log_set_context(NULL);
	if (res)
		*res = ag.res;
	return fail_exit_code(k);
}

int
agent_check(const struct config *cfg, const struct account *a)
{
	struct agent ag;
	struct fail f = { FAIL_NONE, "" }, ft = { FAIL_NONE, "" };
	enum fail_kind k, kt;
	char *secret;

	memset(&ag, 0, sizeof(ag));
	ag.a = a;
	ag.imap = a->protocol == PROTO_IMAP;
	server_name(&ag);
	log_set_context(a->name);
	if ((secret = account_secret(a, &f)) == NULL) {
		k = f.kind;
		log_error("%s", f.msg);
	} else {
		k = source_open(&ag, cfg, secret, &f);
		free_secret(secret);
		if (k != FAIL_NONE)
			report(&ag, &f);
		else
			k = ag.src_ops->close(ag.src, 1, &f);
		if (k == FAIL_NONE)
			log_info("%s: login ok", ag.server);
	}
	kt = targets_open(&ag, NULL, &ft);
	if (kt != FAIL_NONE) {
		log_error("%s", ft.msg);
	} else {
		size_t ok = 0;

		for (size_t i = 0; i < ag.ntg; i++)
			ok += ag.tg[i].broken == FAIL_NONE;
		log_info("%zu target%s ready%s", ok, ok == 1 ? "" : "s",
		    ok < ag.ntg ? " (see above for the others)" : "");
		kt = ag.soft;   /* a target that did not open */
	}
	targets_close(&ag);
	log_set_context(NULL);
	if (fail_exit_rank(fail_exit_code(kt)) > fail_exit_rank(fail_exit_code(k)))
		k = kt;
	return fail_exit_code(k);
}

#define IDLE_SECONDS    (25 * 60)       /* IDLE re-issued before 29 minutes */

int
agent_idle(const struct config *cfg, const struct account *a,
    const char *folder, volatile sig_atomic_t *stop,
    void (*news)(void *arg), void *arg)
{
	struct agent ag;
	struct fail f = { FAIL_NONE, "" }, fc = { FAIL_NONE, "" };
	struct folder *fv = NULL;
	struct folder_status fst;
	size_t nf = 0;
	enum fail_kind k;
	char *secret;
	int n = 0, unsupported = 0, quick = 0;

	memset(&ag, 0, sizeof(ag));
	ag.a = a;
	ag.imap = 1;
	server_name(&ag);
	log_set_context(a->name);
	if ((secret = account_secret(a, &f)) == NULL) {
		log_error("%s", f.msg);
		log_set_context(NULL);
		return fail_exit_code(f.kind);
	}
	k = source_open(&ag, cfg, secret, &f);
	free_secret(secret);
	if (k != FAIL_NONE) {
		report(&ag, &f);
		log_set_context(NULL);
		return fail_exit_code(k);
	}
	k = ag.src_ops->folders(ag.src, &folder, 1, &fv, &nf, &f);
	if (k == FAIL_NONE && nf == 0)
		k = fail_set(&f, FAIL_PROTO, "no folder %s to IDLE on", folder);
	if (k == FAIL_NONE)
		k = ag.src_ops->select(ag.src, &fv[0], &fst, &f);
	if (k == FAIL_NONE)
		log_verbose("%s: IDLE on %s", ag.server, folder);
	while (k == FAIL_NONE && !*stop) {
		time_t t0 = time(NULL);

		if (ag.src_ops->idle == NULL)
			n = -1;
		else
			k = ag.src_ops->idle(ag.src, IDLE_SECONDS, stop, &n, &f);
		/* a server that ends IDLE at once, again and again, without
		 * news, is not idling: poll it instead */
		if (k == FAIL_NONE && n == 0 && !*stop && time(NULL) - t0 < 2) {
			if (++quick >= 5) {
				log_info("%s: the server keeps ending IDLE at once; "
				    "polled every interval instead", ag.server);
				unsupported = 1;
				break;
			}
		} else {
			quick = 0;
		}
		if (k != FAIL_NONE)
			break;
		if (n < 0) {
			log_info("%s: the server has no IDLE; polled every "
			    "interval instead", ag.server);
			unsupported = 1;
			break;
		}
		if (n > 0) {
			log_verbose("%s: new mail (IDLE)", ag.server);
			news(arg);
		}
	}
	if (k != FAIL_NONE)
		report(&ag, &f);
	ag.src_ops->close(ag.src, k == FAIL_NONE, &fc);
	folders_free(fv, nf);
	log_set_context(NULL);
	if (k != FAIL_NONE)
		return fail_exit_code(k);
	return unsupported ? -1 : 0;
}
