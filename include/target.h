/* target.h - a delivery target (Maildir now; mbox, MDA, SMTP/LMTP later).
 *
 * One table of functions per kind; the agent drives them without knowing the
 * kind. A poll opens each target once. For each message: plan() names it
 * (the agent records that name in an intent BEFORE any byte is written),
 * begin(), write()*, end() or abort(). sync() makes every ended message
 * durable at once (group commit: one sync per batch). settle() resolves an
 * intent left by a crash. Bytes arrive in protocol form (CRLF line ends,
 * dot-stuffing already undone); each target converts as its format needs.
 */
#ifndef MAILPULL_TARGET_H
#define MAILPULL_TARGET_H

#include <stddef.h>
#include <time.h>
#include "fail.h"

#define TARGET_REF_MAX 256

struct msg_meta {
	const char *uid;
	unsigned long long size;        /* server's size, a hint */
	const char *flags;              /* Maildir info letters ("FS"), or "" */
	time_t mtime;                   /* the server's date for it, or 0 */
};

struct target_ops {
	const char *kind;               /* "maildir" */
	enum fail_kind (*open)(void **t, const char *path, struct fail *f);
	/* A name unique to this message, chosen before delivery; < TARGET_REF_MAX. */
	enum fail_kind (*plan)(void *t, char *ref, size_t reflen, struct fail *f);
	enum fail_kind (*begin)(void *t, const char *ref, const struct msg_meta *m,
	    struct fail *f);
	enum fail_kind (*write)(void *t, const char *p, size_t n, struct fail *f);
	/* The message is complete; it is durable after the next sync(). On
	 * failure the target has dropped it, as abort() would. */
	enum fail_kind (*end)(void *t, struct fail *f);
	/* Forget the message begun (remove its partial file). */
	void (*abort)(void *t);
	/* Make every message ended since the last sync durable. On failure none
	 * of them may count as delivered (the caller will not record them). */
	enum fail_kind (*sync)(void *t, struct fail *f);
	/* After a crash: 1 if the message named ref is durably delivered, 0 if
	 * not (any partial copy is removed), -1 with *f set on error. */
	int (*settle)(void *t, const char *ref, struct fail *f);
	void (*close)(void *t);
	/* Optional (NULL for kinds that never log in): credentials for the
	 * session, given after open() and before the first message (SMTP
	 * AUTH). The target copies what it keeps and wipes it on close. */
	enum fail_kind (*login)(void *t, const char *user, const char *secret,
	    struct fail *f);
	/* Optional (NULL: a copy handed over is out of our sight, e.g. to an
	 * MDA or relay, or recorded as complete, e.g. an mbox): retention
	 * (keep = DAYS) asks whether the copy delivered as ref is still
	 * there: 1 yes, 0 no, -1 with *f set on error. */
	int (*present)(void *t, const char *ref, struct fail *f);
};

/* A parsed `deliver =` value: "maildir:PATH", "mbox:PATH", "mda:COMMAND",
 * or "smtp://...", "smtps://...", "lmtp://..." (path is then the whole
 * text). */
struct target_spec {
	const struct target_ops *ops;
	char *path;             /* expanded (~, $VAR) */
	char *text;             /* the spec as written, used as the key in the state */
};

/* 1 if two paths name one file or directory as written: equal but for
 * repeated or trailing slashes. */
int target_same_path(const char *a, const char *b);

/* Parse "kind:rest"; 0 ok, -1 with *err set to a static message. */
int target_spec_parse(const char *text, struct target_spec *out, const char **err);

extern const struct target_ops maildir_target;
extern const struct target_ops mda_target;
extern const struct target_ops mbox_target;
/* SMTP/LMTP relay: open() takes the whole spec text, see mailpull.ini(5). */
extern const struct target_ops smtp_target;

/* Tests only: the MDA's time limit in seconds (0: the default, 60). */
void mda_test_set_timeout(int seconds);

#endif
