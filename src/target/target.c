/* target.c - parse a `deliver =` value into a target kind and its path. */
#include <stdio.h>
#include <string.h>

#include "target.h"
#include "xmalloc.h"

struct target_kind {
	const char              *prefix;        /* up to and including ':' */
	const struct target_ops *ops;           /* NULL: not supported yet */
};

static const struct target_kind target_kinds[] = {
	{ "maildir:", &maildir_target },
	{ "mbox:", &mbox_target },
	{ "mda:", &mda_target },
	{ "smtp://", &smtp_target },
	{ "smtps://", &smtp_target },
	{ "lmtp:", &smtp_target },
};

/* Messages that name the kind live here until the next call in this thread. */
static _Thread_local char target_err[256];

/* The kind as written ("smtp" for "smtp://..."), printable, shortened. */
static void
kind_name(const char *text, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; i + 1 < outlen && i < 32 && text[i] != '\0' &&
	    text[i] != ':'; i++)
		out[i] = text[i] > 0x20 && text[i] < 0x7f ? text[i] : '?';
	out[i] = '\0';
}

int
target_spec_parse(const char *text, struct target_spec *out, const char **err)
{
	const struct target_kind *k = NULL;
	const char *path;
	char kind[40];
	size_t i, len;

	out->ops = NULL;
	out->path = out->text = NULL;
	for (i = 0; i < sizeof(target_kinds) / sizeof(target_kinds[0]); i++) {
		len = strlen(target_kinds[i].prefix);
		if (strncmp(text, target_kinds[i].prefix, len) == 0) {
			k = &target_kinds[i];
			break;
		}
	}
	kind_name(text, kind, sizeof(kind));
	if (k == NULL) {
		snprintf(target_err, sizeof(target_err), "unknown delivery target "
		    "kind '%s' (expected maildir:PATH, mbox:PATH, mda:COMMAND, smtp://HOST?to=ADDR or lmtp://HOST:PORT?to=ADDR)", kind);
		*err = target_err;
		return -1;
	}
	if (k->ops == NULL) {
		snprintf(target_err, sizeof(target_err), "delivery target kind "
		    "'%s' is not supported yet (expected maildir:PATH, "
		    "mbox:PATH or mda:COMMAND)", kind);
		*err = target_err;
		return -1;
	}
	path = text + strlen(k->prefix);
	if (*path == '\0') {
		snprintf(target_err, sizeof(target_err), "delivery target '%s' "
		    "has no path (expected %sPATH)", kind, k->prefix);
		*err = target_err;
		return -1;
	}
	out->ops = k->ops;
	/* A relay parses its URL itself, scheme and all. */
	out->path = xstrdup(k->ops == &smtp_target ? text : path);
	out->text = xstrdup(text);
	return 0;
}

/* Two paths that name one file or directory: equal but for repeated or
 * trailing slashes. */
int
target_same_path(const char *a, const char *b)
{
	while (*a != '\0' || *b != '\0') {
		if (*a == '/' && *b == '/') {
			while (*a == '/')
				a++;
			while (*b == '/')
				b++;
			continue;
		}
		if (*a == '/' && a[strspn(a, "/")] == '\0')
			a += strlen(a);
		else if (*b == '/' && b[strspn(b, "/")] == '\0')
			b += strlen(b);
		else if (*a++ != *b++)
			return 0;
	}
	return 1;
}
