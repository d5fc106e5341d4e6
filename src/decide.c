/* decide.c - max_size and filters, applied before a message is downloaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "filter.h"
#include "log.h"
#include "xmalloc.h"

#define SHOW_MAX        200     /* bytes of From/Subject kept for reports */

/* The filters of an account as filter.h wants them. */
static struct filter **
filter_list(const struct account *a)
{
	struct filter **v = xcalloc(a->nfilters ? a->nfilters : 1, sizeof(*v));

	for (size_t i = 0; i < a->nfilters; i++)
		v[i] = a->filters[i]->fl;
	return v;
}

static const struct filter_def *
def_of(const struct account *a, const struct filter *fl)
{
	for (size_t i = 0; i < a->nfilters; i++)
		if (a->filters[i]->fl == fl)
			return a->filters[i];
	return NULL;
}

/* Set d from what fl (NULL: none matched) says. */
static void
decide_by(const struct account *a, const struct filter *fl,
    struct decision *d)
{
	const struct filter_def *def = fl != NULL ? def_of(a, fl) : NULL;

	free(d->tag);
	d->tag = NULL;
	d->by = def;
	if (def == NULL) {
		d->what = D_TAKE;
		return;
	}
	switch (filter_action(fl)) {
	case FILTER_SKIP:
		d->what = D_SKIP;
		d->tag = xasprintf("skip:%s", def->name);
		break;
	case FILTER_DELETE:
		d->what = D_DELETE;
		d->tag = xasprintf("delete:%s", def->name);
		break;
	case FILTER_DELIVER:
		d->what = D_ROUTE;
		d->tag = xasprintf("deliver:%s", def->name);
		break;
	}
}

/* A printable copy of a header value for reports, or NULL. */
static char *
show_copy(const char *v)
{
	char *s;
	size_t n;

	if (v == NULL)
		return NULL;
	n = strlen(v);
	if (n > SHOW_MAX)
		n = SHOW_MAX;
	s = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? ' ' : v[i];
	s[n] = '\0';
	return s;
}

static void
judge(const struct account *a, struct filter **fls,
    const struct filter_headers *h, unsigned long long size,
    struct decision *d, int show)
{
	struct filter_msg m = { size, h };

	if (show && h != NULL) {
		free(d->from);
		free(d->subject);
		d->from = show_copy(filter_headers_get(h, "From"));
		d->subject = show_copy(filter_headers_get(h, "Subject"));
	}
	if (d->what == D_BIG)
		return;         /* max_size comes first: never downloaded */
	decide_by(a, a->nfilters ? filter_decide(fls, a->nfilters, &m) : NULL,
	    d);
}

void
decide_from_header(const struct account *a, const char *p, size_t len,
    unsigned long long size, struct decision *d)
{
	struct filter **fls = filter_list(a);
	struct filter_headers *h = filter_headers_parse(p, len);

	d->what = D_TAKE;
	judge(a, fls, h, size, d, 0);
	filter_headers_free(h);
	free(fls);
}

struct hdr_ctx {
	const struct account *a;
	struct filter **fls;
	const struct msg *const *v;
	struct decision *out;
	unsigned char *got;
	int show;
};

static void
got_header(void *arg, size_t i, const char *p, size_t len)
{
	struct hdr_ctx *c = arg;
	struct filter_headers *h = filter_headers_parse(p, len);

	c->got[i] = 1;
	judge(c->a, c->fls, h, c->v[i]->size, &c->out[i], c->show);
	filter_headers_free(h);
}

enum fail_kind
decide_messages(const struct account *a, const struct source_ops *ops,
    void *src, const struct msg *const *v, size_t n, int show,
    struct decision *out, struct fail *f)
{
	struct filter **fls = filter_list(a);
	int need = a->nfilters > 0 && filter_list_needs_headers(fls,
	    a->nfilters);
	struct hdr_ctx c = { a, fls, v, out, NULL, show };
	enum fail_kind k = FAIL_NONE;
	int late = 0;

	memset(out, 0, n * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		if (a->max_size > 0 && v[i]->size > a->max_size) {
			out[i].what = D_BIG;
			out[i].tag = xstrdup("max_size");
		}
	}
	c.got = xcalloc(n ? n : 1, 1);
	if (n > 0 && (need || show) && ops->headers != NULL &&
	    ops->header_first(src))
		k = ops->headers(src, v, n, got_header, &c, f);
	if (k == FAIL_NONE) {
		/* POP3 may learn only now that TOP is not there */
		late = need && (ops->headers == NULL || !ops->header_first(src));
		for (size_t i = 0; i < n; i++) {
			if (c.got[i] || out[i].what == D_BIG)
				continue;
			if (late) {
				out[i].what = D_LATE;
				continue;
			}
			/* no header (too big, refused): judged on size */
			judge(a, fls, NULL, v[i]->size, &out[i], 0);
		}
	}
	if (late)
		log_info("the server cannot send headers alone (no TOP): "
		    "messages are downloaded and then filtered");
	free(c.got);
	free(fls);
	return k;
}

void
decisions_free(struct decision *d, size_t n)
{
	for (size_t i = 0; d != NULL && i < n; i++) {
		free(d[i].tag);
		free(d[i].from);
		free(d[i].subject);
	}
	free(d);
}

const char *
decision_word(const struct decision *d)
{
	switch (d->what) {
	case D_SKIP:
		return "skip";
	case D_DELETE:
		return "delete";
	case D_ROUTE:
		return "deliver";
	case D_BIG:
		return "too big";
	case D_LATE:
		return "take, then filter";
	default:
		return "take";
	}
}
