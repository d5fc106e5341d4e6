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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "agent.h"
#include "hdrscan.h"
#include "log.h"
#include "source.h"
#include "xmalloc.h"

#define BATCH_DEFAULT           200
#define BATCH_BYTES_MAX         (64ULL << 20)
#define PRUNE_AFTER             (30L * 24 * 3600)       /* vanished uids kept 30 days */

struct target_run {
	const struct target_spec *spec;
	void *t;
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
	char **msgid;                   /* per message, or NULL */
	unsigned char *done;            /* per message: ended in every target */
	unsigned char *shortened;       /* per message: fewer bytes than announced */
	char **rejected;                /* per message: a target's permanent no */
	int skip_msg;                   /* the message being received was refused */
	size_t cur;                     /* index of the message being received */
	unsigned long long got;         /* bytes of the message being received */
	int in_msg;                     /* targets have a message begun */
	enum fail_kind soft;            /* a failure that did not stop the poll */
	size_t missing;                 /* messages of this folder not taken */
	const struct folder *fo;        /* IMAP: the folder being polled */
	struct folder_status fst;       /* IMAP: its status at SELECT */
	struct hdrscan hs;
	struct poll_result res;
};

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

static enum fail_kind
targets_open(struct agent *ag, const struct folder *fo, struct fail *f)
{
	ag->ntg = ag->a->ndeliver;
	ag->tg = xcalloc(ag->ntg, sizeof(*ag->tg));
	for (size_t i = 0; i < ag->ntg; i++) {
		const struct target_spec *spec = &ag->a->deliver[i];
		char *path = folder_path(spec->path, fo, spec->ops->kind);
		enum fail_kind k;

		ag->tg[i].spec = spec;
		k = spec->ops->open(&ag->tg[i].t, path, f);
		free(path);
		if (k != FAIL_NONE)
			return k;
	}
	return FAIL_NONE;
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
}

static struct target_run *
target_by_text(struct agent *ag, const char *text)
{
	for (size_t i = 0; i < ag->ntg; i++)
		if (strcmp(ag->tg[i].spec->text, text) == 0)
			return &ag->tg[i];
	return NULL;
}

/* --- settling intents ------------------------------------------------------ */

struct intent_row {
	char *uid, *target, *ref;
};

struct intent_list {
	struct intent_row *v;
	size_t n;
};

static int
collect_intent(void *arg, const char *uid, const char *target, const char *ref)
{
	struct intent_list *l = arg;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n].uid = xstrdup(uid);
	l->v[l->n].target = xstrdup(target);
	l->v[l->n].ref = xstrdup(ref);
	l->n++;
	return 0;
}

/* Ask every target holding an intent for uid whether the message got there.
 * All yes: record it delivered. Otherwise forget the intents, so that the
 * message is fetched again (partial copies were removed by settle). */
static enum fail_kind
settle_uid(struct agent *ag, const struct intent_list *l, const char *uid,
    const char *message_id, unsigned long long size, struct fail *f)
{
	int delivered = 1, any = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct target_run *tr;
		int r;

		if (strcmp(l->v[i].uid, uid) != 0)
			continue;
		any = 1;
		tr = target_by_text(ag, l->v[i].target);
		if (tr == NULL) {
			log_warnx("intent for %s in %s, which is no longer "
			    "configured; forgetting it", uid, l->v[i].target);
			delivered = 0;
			continue;
		}
		r = tr->spec->ops->settle(tr->t, l->v[i].ref, f);
		if (r < 0)
			return f->kind;
		if (r == 0)
			delivered = 0;
	}
	if (!any)
		return FAIL_NONE;
	if (delivered) {
		struct outcome o = { uid, size, message_id, "delivered" };

		log_verbose("message %s was delivered before an interruption; "
		    "recorded", uid);
		return state_record(ag->st, ag->key, &o, 1, f);
	}
	return state_drop_intents(ag->st, ag->key, uid, f);
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
			k = settle_uid(ag, &l, l.v[i].uid, NULL, 0, f);
	}
	intent_list_free(&l);
	return k;
}

/* --- the sink the source streams into -------------------------------------- */

/* A target said no for good (SMTP/LMTP 5xx): that message is recorded as
 * rejected with the reply (kept on the server, not tried again unless -a)
 * and the others go on. Any other failure stops the fetch. */
static enum fail_kind
rejected(struct agent *ag, size_t i, struct fail *f)
{
	if (f->kind != FAIL_REJECTED)
		return f->kind;
	log_warnx("%s: message %s refused for good: %s; recorded, left on the "
	    "server, not tried again (-a tries it)", ag->server,
	    ag->batch[i]->uid, f->msg);
	free(ag->rejected[i]);
	ag->rejected[i] = xasprintf("rejected: %.200s", f->msg);
	ag->skip_msg = 1;
	ag->in_msg = 0;
	if (ag->soft == FAIL_NONE || ag->soft == FAIL_TEMP)
		ag->soft = FAIL_REJECTED;
	return FAIL_NONE;
}

static enum fail_kind
sink_begin(void *arg, size_t i, struct fail *f)
{
	struct agent *ag = arg;
	const struct msg *m = ag->batch[i];
	struct msg_meta meta = { m->uid, m->size, m->flags, m->internaldate };

	for (size_t t = 0; t < ag->ntg; t++) {
		const struct target_ops *ops = ag->tg[t].spec->ops;

		if (ops->begin(ag->tg[t].t, ag->refs[i * ag->ntg + t], &meta, f)) {
			while (t-- > 0)
				ag->tg[t].spec->ops->abort(ag->tg[t].t);
			return rejected(ag, i, f);
		}
	}
	ag->skip_msg = 0;
	ag->cur = i;
	ag->in_msg = 1;
	ag->got = 0;
	hdrscan_init(&ag->hs);
	return FAIL_NONE;
}

static void
sink_abort(void *arg, size_t i)
{
	struct agent *ag = arg;

	if (!ag->in_msg)
		return;
	for (size_t t = 0; t < ag->ntg; t++)
		ag->tg[t].spec->ops->abort(ag->tg[t].t);
	ag->in_msg = 0;
}

static enum fail_kind
sink_write(void *arg, const char *p, size_t n, struct fail *f)
{
	struct agent *ag = arg;

	if (ag->skip_msg)
		return FAIL_NONE;       /* refused at begin: let it pass by */
	ag->got += n;
	if (!ag->hs.done)
		hdrscan_feed(&ag->hs, p, n);
	for (size_t t = 0; t < ag->ntg; t++) {
		if (ag->tg[t].spec->ops->write(ag->tg[t].t, p, n, f)) {
			if (f->kind == FAIL_REJECTED)   /* e.g. RCPT 550, read late */
				sink_abort(ag, ag->cur);
			return rejected(ag, ag->cur, f);
		}
	}
	return FAIL_NONE;
}


static enum fail_kind
sink_end(void *arg, size_t i, struct fail *f)
{
	struct agent *ag = arg;
	const char *mid;

	if (ag->skip_msg) {
		ag->skip_msg = 0;
		return FAIL_NONE;
	}
	for (size_t t = 0; t < ag->ntg; t++) {
		if (ag->tg[t].spec->ops->end(ag->tg[t].t, f)) {
			/* Targets before t have ended it; those after are
			 * aborted. settle_uid() sorts out the rest. */
			for (size_t u = t + 1; u < ag->ntg; u++)
				ag->tg[u].spec->ops->abort(ag->tg[u].t);
			ag->in_msg = 0;
			return rejected(ag, i, f);
		}
	}
	ag->in_msg = 0;
	ag->done[i] = 1;
	if (!ag->imap && ag->got < ag->batch[i]->size) {
		/* POP3: cut short on the way (or the server's size is wrong):
		 * keep what came, but never delete the original for it. (An
		 * IMAP literal comes whole or not at all, and some servers'
		 * RFC822.SIZE is an estimate.) */
		log_warnx("%s: message %s: the server announced %llu bytes and "
		    "sent %llu; delivered, and left on the server", ag->server,
		    ag->batch[i]->uid, ag->batch[i]->size, ag->got);
		ag->shortened[i] = 1;
	}
	mid = hdrscan_message_id(&ag->hs);
	ag->msgid[i] = mid ? xstrdup(mid) : NULL;
	return FAIL_NONE;
}

/* --- one batch ------------------------------------------------------------ */

static enum fail_kind
batch_intents(struct agent *ag, struct fail *f)
{
	size_t n = ag->nbatch * ag->ntg;
	struct intent *iv = xcalloc(n, sizeof(*iv));
	enum fail_kind k = FAIL_NONE;

	for (size_t i = 0; i < ag->nbatch && k == FAIL_NONE; i++) {
		for (size_t t = 0; t < ag->ntg && k == FAIL_NONE; t++) {
			size_t j = i * ag->ntg + t;

			k = ag->tg[t].spec->ops->plan(ag->tg[t].t, ag->refs[j],
			    TARGET_REF_MAX, f);
			iv[j].uid = ag->batch[i]->uid;
			iv[j].target = ag->tg[t].spec->text;
			iv[j].ref = ag->refs[j];
		}
	}
	if (k == FAIL_NONE)
		k = state_add_intents(ag->st, ag->key, iv, n, f);
	free(iv);
	return k;
}

/* The batch could not be synced or recorded: ask the targets, message by
 * message, what really got there (a sync may have failed half-way), and
 * record or forget accordingly: nothing is left half-known. */
static enum fail_kind
batch_settle(struct agent *ag, struct fail *f)
{
	enum fail_kind k = FAIL_NONE;

	for (size_t i = 0; i < ag->nbatch; i++) {
		struct intent_list l;
		struct intent_row *rows = xcalloc(ag->ntg, sizeof(*rows));

		for (size_t t = 0; t < ag->ntg; t++) {
			rows[t].uid = (char *)ag->batch[i]->uid;
			rows[t].target = (char *)ag->tg[t].spec->text;
			rows[t].ref = ag->refs[i * ag->ntg + t];
		}
		l.v = rows;
		l.n = ag->ntg;
		k = settle_uid(ag, &l, ag->batch[i]->uid, ag->msgid[i],
		    ag->batch[i]->size, f);
		free(rows);
		if (k != FAIL_NONE)
			break;
	}
	return k;
}

/* IMAP: a message another client already flagged \Deleted is taken (a
 * backup keeps it) but its removal stays that client's business: we never
 * expunge it. Recorded apart, so that it is not deleted later either. */
static int
others_deleted(const struct msg *m)
{
	return strchr(m->flags, 'T') != NULL;
}

static enum fail_kind
batch_record(struct agent *ag, size_t *ndone, struct fail *f)
{
	struct outcome *ov = xcalloc(ag->nbatch, sizeof(*ov));
	const char **drop = xcalloc(ag->nbatch, sizeof(*drop));
	size_t n = 0, nd = 0;
	enum fail_kind k;

	for (size_t i = 0; i < ag->nbatch; i++) {
		if (!ag->done[i] && ag->rejected[i] != NULL) {
			ov[n++] = (struct outcome){ ag->batch[i]->uid,
			    ag->batch[i]->size, NULL, ag->rejected[i] };
			continue;
		}
		if (!ag->done[i]) {
			/* Never begun, or aborted (the target took its partial
			 * copy back): it is in no target. One target per
			 * account for now; fan-out will need per-target
			 * outcomes here. */
			drop[nd++] = ag->batch[i]->uid;
			continue;
		}
		ov[n].uid = ag->batch[i]->uid;
		ov[n].size = ag->batch[i]->size;
		ov[n].message_id = ag->msgid[i];
		ov[n].result = ag->shortened[i] ? "short" :
		    others_deleted(ag->batch[i]) ? "flagged-deleted" :
		    "delivered";
		n++;
	}
	k = n || nd ? state_record_batch(ag->st, ag->key, ov, n, drop, nd, f) :
	    FAIL_NONE;
	free(ov);
	free(drop);
	*ndone = k == FAIL_NONE ? n : 0;
	return k;
}

static enum fail_kind
targets_sync(struct agent *ag, struct fail *f)
{
	for (size_t t = 0; t < ag->ntg; t++)
		if (ag->tg[t].spec->ops->sync(ag->tg[t].t, f))
			return f->kind;
	return FAIL_NONE;
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
		ag->soft = FAIL_TEMP;
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

/* Delete on the server what this batch recorded as delivered whole. */
static enum fail_kind
batch_delete(struct agent *ag, struct fail *f)
{
	const struct msg **del = xcalloc(ag->nbatch, sizeof(*del));
	size_t nd = 0;
	enum fail_kind k;

	for (size_t i = 0; i < ag->nbatch; i++)
		if (ag->done[i] && !ag->shortened[i] &&
		    !others_deleted(ag->batch[i]))
			del[nd++] = ag->batch[i];
	k = delete_msgs(ag, del, nd, f);
	free(del);
	return k;
}

/* IMAP, mark_seen = yes: \Seen on the server for what was delivered. */
static void
batch_mark_seen(struct agent *ag)
{
	const struct msg **v = xcalloc(ag->nbatch, sizeof(*v));
	struct fail f = { FAIL_NONE, "" };
	size_t n = 0;

	for (size_t i = 0; i < ag->nbatch; i++)
		if (ag->done[i])
			v[n++] = ag->batch[i];
	if (n > 0 && ag->src_ops->seen(ag->src, v, n, &f) != FAIL_NONE) {
		log_warnx("%s: %s", ag->server, f.msg);
		ag->soft = FAIL_TEMP;
	}
	free(v);
}

static void
batch_count(struct agent *ag, enum fail_kind fetch_k)
{
	size_t missing = 0;

	for (size_t i = 0; i < ag->nbatch; i++) {
		if (ag->done[i]) {
			ag->res.taken++;
			ag->res.bytes += ag->batch[i]->size;
		} else if (ag->rejected[i] == NULL) {
			missing++;      /* recorded rejections are not missing */
		}
	}
	/* The source said why for each (RETR refused): try again next run. */
	if (missing && fetch_k == FAIL_NONE && ag->soft == FAIL_NONE)
		ag->soft = FAIL_TEMP;
	ag->missing += missing;
}

/* Fetch, deliver, sync, record and (maybe) delete one batch. A failure of
 * the fetch still syncs and records what arrived whole before it; the
 * session is then not trusted with DELE. */
static enum fail_kind
run_batch(struct agent *ag, int delete, struct fail *f)
{
	struct msg_sink sink = { ag, sink_begin, sink_write, sink_end, sink_abort };
	struct fail ff = { FAIL_NONE, "" };
	enum fail_kind fetch_k, k;
	size_t ndone = 0;

	ag->refs = xcalloc(ag->nbatch * ag->ntg, sizeof(*ag->refs));
	ag->msgid = xcalloc(ag->nbatch, sizeof(*ag->msgid));
	ag->done = xcalloc(ag->nbatch, 1);
	ag->shortened = xcalloc(ag->nbatch, 1);
	ag->rejected = xcalloc(ag->nbatch, sizeof(*ag->rejected));
	k = batch_intents(ag, f);
	if (k != FAIL_NONE)
		goto out;

	fetch_k = ag->src_ops->fetch(ag->src, ag->batch, ag->nbatch, &sink, &ff);
	sink_abort(ag, 0);      /* a message begun and never ended */

	k = targets_sync(ag, f);
	if (k == FAIL_NONE)
		k = batch_record(ag, &ndone, f);
	if (k != FAIL_NONE) {
		struct fail f2;

		/* Not recorded: ask the targets what really got there. */
		if (batch_settle(ag, &f2) != FAIL_NONE)
			log_error("%s", f2.msg);
		goto out;
	}
	batch_count(ag, fetch_k);
	if (fetch_k == FAIL_NONE || fetch_k == FAIL_LOCAL) {
		/* The session is sound (a local failure drained the replies). */
		if (ag->a->mark_seen && ndone > 0)
			batch_mark_seen(ag);
		if (delete && ndone > 0 && (k = batch_delete(ag, f)) != FAIL_NONE)
			goto out;
	}
	if (fetch_k != FAIL_NONE) {
		*f = ff;
		k = fetch_k;
	}
out:
	for (size_t i = 0; i < ag->nbatch; i++) {
		free(ag->msgid[i]);
		free(ag->rejected[i]);
	}
	free(ag->rejected);
	ag->rejected = NULL;
	free(ag->msgid);
	free(ag->refs);
	free(ag->done);
	free(ag->shortened);
	ag->msgid = NULL;
	ag->refs = NULL;
	ag->done = NULL;
	ag->shortened = NULL;
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

/* Split the listing into what to take and what to delete only. */
static void
plan_listing(struct agent *ag, const struct msg *v, size_t n,
    const unsigned char *seen, const struct run_opts *o, int delete,
    const struct msg ***take, size_t *ntake, const struct msg ***old,
    size_t *nold)
{
	*take = xcalloc(n, sizeof(**take));
	*old = xcalloc(n, sizeof(**old));
	*ntake = *nold = 0;
	for (size_t i = 0; i < n; i++) {
		if (seen[i] == SEEN_NEW || o->all)
			(*take)[(*ntake)++] = &v[i];
		else if (delete && seen[i] == SEEN_DELIVERED)
			(*old)[(*nold)++] = &v[i];
	}
}

static enum fail_kind
take_all(struct agent *ag, const struct msg **take, size_t ntake,
    const struct run_opts *o, int delete, struct fail *f)
{
	size_t per = o->batch ? o->batch : BATCH_DEFAULT;

	for (size_t i = 0; i < ntake;) {
		unsigned long long bytes = 0;
		size_t n = 0;

		while (i + n < ntake && n < per &&
		    (n == 0 || bytes + take[i + n]->size <= BATCH_BYTES_MAX)) {
			bytes += take[i + n]->size;
			n++;
		}
		ag->batch = take + i;
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

static enum fail_kind
poll_messages(struct agent *ag, uint32_t since, const struct run_opts *o,
    int delete, struct fail *f)
{
	struct msg *v = NULL;
	const char **uids = NULL;
	unsigned char *seen = NULL;
	const struct msg **take = NULL, **old = NULL;
	size_t n = 0, ntake = 0, nold = 0;
	enum fail_kind k;

	k = ag->src_ops->list(ag->src, since, &v, &n, f);
	if (k != FAIL_NONE)
		goto out;
	uids = xcalloc(n, sizeof(*uids));
	seen = xcalloc(n, 1);
	for (size_t i = 0; i < n; i++)
		uids[i] = v[i].uid;
	k = state_classify(ag->st, ag->key, uids, n, seen, PRUNE_AFTER,
	    (o->dry_run ? STATE_READONLY : 0) | (ag->imap ? STATE_PARTIAL : 0),
	    f);
	if (k != FAIL_NONE)
		goto out;
	/* IMAP lists only new mail; what is left to delete comes from the
	 * state (imap_pending_deletes). */
	plan_listing(ag, v, n, seen, o, delete && !ag->imap, &take, &ntake,
	    &old, &nold);
	log_verbose("%s: %zu messages, %zu new%s", ag->server, n, ntake,
	    nold ? ", some taken before and still on the server" : "");
	if (o->dry_run) {
		for (size_t i = 0; i < ntake; i++)
			log_info("would take message %s (%llu bytes)",
			    take[i]->uid, take[i]->size);
		for (size_t i = 0; i < nold; i++)
			log_info("would delete message %s (taken before)",
			    old[i]->uid);
		goto out;
	}
	k = delete_msgs(ag, old, nold, f);
	if (k == FAIL_NONE)
		k = take_all(ag, take, ntake, o, delete, f);
	if (k == FAIL_NONE && ag->imap)
		k = imap_folder_done(ag, v, n, o, f);
out:
	free(take);
	free(old);
	free(seen);
	free(uids);
	free(v);
	return k;
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

/* IMAP, keep = no: messages delivered but not yet expunged (a run cut
 * short between the two) are deleted now. */
static enum fail_kind
imap_pending_deletes(struct agent *ag, struct fail *f)
{
	struct pending p = { NULL, 0, ag->fst.uidvalidity, ag->fst.uidnext };
	const struct msg **ptr;
	enum fail_kind k;

	k = state_delivered(ag->st, ag->key, collect_pending, &p, f);
	if (k == FAIL_NONE && p.n > 0) {
		ptr = xcalloc(p.n, sizeof(*ptr));
		for (size_t i = 0; i < p.n; i++)
			ptr[i] = &p.v[i];
		log_verbose("%s: deleting %zu messages taken before", ag->server,
		    p.n);
		k = delete_msgs(ag, ptr, p.n, f);
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
		    rm.result[i] };
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

struct uid_vec {
	char **v;
	size_t n;
};

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
		ag->soft = FAIL_TEMP;
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
	int found = 0;

	ag->key = key;
	ag->fo = fo;
	ag->missing = 0;
	if (!o->dry_run) {
		k = targets_open(ag, fo, f);
		if (k == FAIL_NONE)
			k = settle_leftovers(ag, f);
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
	if (delete && !o->dry_run && (k = imap_pending_deletes(ag, f)))
		goto out;
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

	k = ag->src_ops->folders(ag->src, (const char *const *)ag->a->folders,
	    ag->a->nfolders, &fv, &nf, f);
	for (size_t i = 0; k == FAIL_NONE && i < nf; i++) {
		k = poll_folder(ag, &fv[i], o, delete, f);
		if (k != FAIL_NONE && folder_failure_is_local(k)) {
			log_error("%s: folder %s: %s", ag->server, fv[i].utf8,
			    f->msg);
			if (worst == FAIL_NONE)
				worst = k;
			k = FAIL_NONE;
		}
	}
	folders_free(fv, nf);
	/* Each folder's failure was reported; the exit status says it once:
	 * a local one as such, a folder the server refused as temporary. */
	if (worst != FAIL_NONE && ag->soft != FAIL_LOCAL)
		ag->soft = worst == FAIL_LOCAL ? FAIL_LOCAL : FAIL_TEMP;
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
		report(ag, f);
		ag->src_ops->close(ag->src, 0, NULL);
		ag->res.deleted = 0;
		return k;
	}
	if (k != FAIL_NONE)
		log_error("%s", f->msg);
	kq = ag->src_ops->close(ag->src, 1, &fq);
	if (kq != FAIL_NONE) {
		report(ag, &fq);
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
	server_name(&ag);
	log_set_context(a->name);

	lockfd = account_lock(cfg, a, &f);
	k = lockfd == -1 ? f.kind : FAIL_NONE;
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
	if (ag.imap)
		k = poll_imap(&ag, o, !a->keep && !o->keep, &f);
	else
		k = poll_pop3(&ag, o, !a->keep && !o->keep, &f);
	k = finish_source(&ag, k, &f);
	ag.src = NULL;
	if (ag.res.taken || ag.res.deleted)
		log_info("%lu message%s (%llu bytes) delivered, %lu deleted on "
		    "the server", ag.res.taken, ag.res.taken == 1 ? "" : "s",
		    ag.res.bytes, ag.res.deleted);
	else if (k == FAIL_NONE && ag.soft == FAIL_NONE)
		log_verbose("no new mail");
	if (k == FAIL_NONE)
		k = ag.soft;
out:
	targets_close(&ag);
	if (lockfd != -1)
		close(lockfd);
	log_set_context(NULL);
	if (res)
		*res = ag.res;
	return fail_exit_code(k);
}
