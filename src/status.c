/* status.c - mailpull --status: what the state says of each account. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap_parse.h"
#include "json.h"
#include "status.h"
#include "xmalloc.h"

static void
put_time(FILE *fp, time_t t)
{
	struct tm tm;
	char buf[64];

	if (t == 0 || localtime_r(&t, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
		fputs("never", fp);
		return;
	}
	fputs(buf, fp);
}

/* The folder part of a state key ("account\x1fFolder"), as the mail
 * client shows it (the key holds the server's modified UTF-7 name), or
 * NULL. xmalloc'd. */
static char *
key_folder(const char *key)
{
	const char *us = strchr(key, '\x1f');
	char *utf8;

	if (us == NULL)
		return NULL;
	utf8 = imap_mutf7_to_utf8(us + 1, strlen(us + 1));
	return utf8 != NULL ? utf8 : xstrdup(us + 1);
}

struct totals {
	const char *key;
	unsigned long taken, skipped, deleted, routed, rejected, pending;
	unsigned long long bytes;
};

static void
add(struct totals *t, const struct state_count_row *r)
{
	t->taken += r->taken;
	t->skipped += r->skipped;
	t->deleted += r->deleted;
	t->routed += r->routed;
	t->rejected += r->rejected;
	t->pending += r->pending;
	t->bytes += r->bytes;
}

/* The rows of one account summed per key (folder), in key order. */
static struct totals *
per_key(const struct state_status *s, size_t *n)
{
	struct totals *v = xcalloc(s->nrows + 1, sizeof(*v));
	size_t k;

	*n = 0;
	for (size_t i = 0; i < s->nrows; i++) {
		for (k = 0; k < *n; k++)
			if (strcmp(v[k].key, s->rows[i].key) == 0)
				break;
		if (k == *n)
			v[(*n)++].key = s->rows[i].key;
		add(&v[k], &s->rows[i]);        /* filter rows count no taken */
	}
	return v;
}

static void
text_account(FILE *fp, const char *name, const struct state_status *s)
{
	struct totals *v;
	size_t n;

	fprintf(fp, "%s: last poll ", name);
	put_time(fp, s->last_poll);
	fputs(", last success ", fp);
	put_time(fp, s->last_ok);
	fputc('\n', fp);
	if (s->last_error != NULL)
		fprintf(fp, "  last error: %s\n", s->last_error);
	v = per_key(s, &n);
	for (size_t k = 0; k < n; k++) {
		char *folder = key_folder(v[k].key);

		fprintf(fp, "  %s%s%lu taken (%llu bytes), %lu skipped, "
		    "%lu deleted unread, %lu routed, %lu rejected, %lu pending\n",
		    folder ? folder : "", folder ? ": " : "", v[k].taken,
		    v[k].bytes, v[k].skipped, v[k].deleted, v[k].routed,
		    v[k].rejected, v[k].pending);
		for (size_t i = 0; i < s->nrows; i++) {
			const struct state_count_row *r = &s->rows[i];
			const char *colon;

			if (r->filter == NULL || strcmp(r->key, v[k].key) != 0)
				continue;
			colon = strchr(r->filter, ':');
			fprintf(fp, "    %s %s: ", colon ? "filter" : "rule",
			    colon ? colon + 1 : r->filter);
			if (r->skipped)
				fprintf(fp, "%lu skipped", r->skipped);
			else if (r->deleted)
				fprintf(fp, "%lu deleted unread", r->deleted);
			else
				fprintf(fp, "%lu routed", r->routed);
			fputc('\n', fp);
		}
		free(folder);
	}
	if (n == 0)
		fputs("  nothing taken yet\n", fp);
	free(v);
}

static void
json_account(FILE *fp, const char *name, const struct state_status *s)
{
	struct totals *v;
	size_t n;

	fputs("{\"account\":", fp);
	json_put_string(fp, name);
	fprintf(fp, ",\"last_poll\":%lld,\"last_success\":%lld,\"last_error\":",
	    (long long)s->last_poll, (long long)s->last_ok);
	json_put_string(fp, s->last_error);
	fputs(",\"folders\":[", fp);
	v = per_key(s, &n);
	for (size_t k = 0; k < n; k++) {
		char *folder = key_folder(v[k].key);
		int first = 1;

		fputs(k ? ",{\"folder\":" : "{\"folder\":", fp);
		json_put_string(fp, folder);
		free(folder);
		fprintf(fp, ",\"taken\":%lu,\"bytes\":%llu,\"skipped\":%lu,"
		    "\"deleted\":%lu,\"routed\":%lu,\"rejected\":%lu,"
		    "\"pending\":%lu,\"filters\":{", v[k].taken, v[k].bytes,
		    v[k].skipped, v[k].deleted, v[k].routed, v[k].rejected,
		    v[k].pending);
		for (size_t i = 0; i < s->nrows; i++) {
			const struct state_count_row *r = &s->rows[i];
			const char *colon;

			if (r->filter == NULL || strcmp(r->key, v[k].key) != 0)
				continue;
			colon = strchr(r->filter, ':');
			if (!first)
				fputc(',', fp);
			first = 0;
			json_put_string(fp, colon ? colon + 1 : r->filter);
			fprintf(fp, ":{\"skipped\":%lu,\"deleted\":%lu,"
			    "\"routed\":%lu}", r->skipped, r->deleted, r->routed);
		}
		fputs("}}", fp);
	}
	fputs("]}\n", fp);
	free(v);
}

int
status_print(FILE *fp, struct state *st, const struct account *const *accts,
    size_t n, int json)
{
	struct fail f = { FAIL_NONE, "" };

	for (size_t i = 0; i < n; i++) {
		struct state_status s;

		if (state_status(st, accts[i]->name, &s, &f) != FAIL_NONE) {
			fprintf(stderr, "mailpull: %s\n", f.msg);
			return -1;
		}
		if (json)
			json_account(fp, accts[i]->name, &s);
		else
			text_account(fp, accts[i]->name, &s);
		state_status_free(&s);
	}
	return fflush(fp) == 0 ? 0 : -1;
}
