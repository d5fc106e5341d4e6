/* maildir.c - the Maildir target.
 *
 * A message is written to tmp/REF with CRLF turned into LF, and stays there
 * until sync(): the pending files are made durable together (syncfs(2) for
 * a big batch, fdatasync each for a few), then each is renamed to
 * new/REF,S=SIZE and new/ is fsync'd once (group commit).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include "fail.h"
#include "fileutil.h"
#include "log.h"
#include "target.h"
#include "xmalloc.h"

#define MD_BUFSIZE      (64 * 1024)
#define MD_HOST_MAX     128
#define MD_SYNCFS_MIN   16      /* pending files that make syncfs worth it */

struct md_pending {
	char                    ref[TARGET_REF_MAX];
	unsigned long long      size;
	char                    flags[8];       /* info letters; "" = new/ */
	int                     in_new;         /* renamed already (during sync) */
};

struct maildir {
	char            *path;
	int              dirfd, tmpfd, newfd, curfd;
	char             host[MD_HOST_MAX];

	/* The message being written. */
	int              fd;
	char             ref[TARGET_REF_MAX];
	unsigned long long size;
	int              cr;                    /* last write ended in '\r' */
	char             flags[8];
	time_t           mtime;
	char            *buf;
	size_t           buflen;

	struct md_pending *pend;
	size_t           npend, cappend;
	int              cur_used;              /* this sync renamed into cur/ */

	/* present(): the names in new/ and cur/, sorted, read once */
	char           **names;
	size_t           nnames;
	int              names_read;
};

static atomic_ulong md_seq;

/* ---- helpers ---------------------------------------------------------- */

static enum fail_kind
md_errno(struct maildir *md, const char *sub, struct fail *f)
{
	int e = errno;

	if (sub == NULL)
		return fail_set(f, FAIL_LOCAL, "Maildir %s: %s", md->path,
		    strerror(e));
	return fail_set(f, FAIL_LOCAL, "Maildir %s/%s: %s", md->path, sub,
	    strerror(e));
}

/* Maildir host part: '/' and ':' are written as octal escapes. */
static void
md_hostname(char *out, size_t outlen)
{
	char host[256];
	size_t o = 0;
	const char *p;

	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	for (p = host; *p != '\0' && o + 5 < outlen; p++) {
		if (*p == '/') {
			memcpy(out + o, "\\057", 4);
			o += 4;
		} else if (*p == ':') {
			memcpy(out + o, "\\072", 4);
			o += 4;
		} else
			out[o++] = *p;
	}
	out[o] = '\0';
}

static int
ref_valid(const char *ref)
{
	size_t len = strlen(ref);

	return len > 0 && len < TARGET_REF_MAX && strchr(ref, '/') == NULL &&
	    strcmp(ref, ".") != 0 && strcmp(ref, "..") != 0;
}

/* ---- open / close ----------------------------------------------------- */

static int
open_subdir(struct maildir *md, const char *sub, int *fdp, struct fail *f)
{
	*fdp = openat(md->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fdp == -1) {
		md_errno(md, sub, f);
		return -1;
	}
	if (faccessat(md->dirfd, sub, W_OK | X_OK, AT_EACCESS) == -1) {
		md_errno(md, sub, f);
		return -1;
	}
	return 0;
}

static enum fail_kind
md_make(struct maildir *md, struct fail *f)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	struct stat sb;
	size_t i;

	if (stat(md->path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return md_errno(md, NULL, f);
	}
	if (mkdirs(md->path, 1) == -1)
		return md_errno(md, NULL, f);
	md->dirfd = open(md->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (md->dirfd == -1)
		return md_errno(md, NULL, f);
	if (faccessat(md->dirfd, ".", W_OK | X_OK, AT_EACCESS) == -1)
		return md_errno(md, NULL, f);
	for (i = 0; i < 3; i++) {
		if (mkdirat(md->dirfd, subs[i], 0700) == -1) {
			if (errno != EEXIST)
				return md_errno(md, subs[i], f);
		} else if (fsync(md->dirfd) == -1)
			return md_errno(md, NULL, f);
	}
	if (open_subdir(md, "tmp", &md->tmpfd, f) == -1 ||
	    open_subdir(md, "new", &md->newfd, f) == -1 ||
	    open_subdir(md, "cur", &md->curfd, f) == -1)
		return FAIL_LOCAL;
	return FAIL_NONE;
}

static void md_close(void *t);

static enum fail_kind
md_open(void **t, const char *path, struct fail *f)
{
	struct maildir *md;
	size_t len;
	enum fail_kind k;

	*t = NULL;
	md = xcalloc(1, sizeof(*md));
	md->dirfd = md->tmpfd = md->newfd = md->curfd = md->fd = -1;
	md->path = xstrdup(path);
	len = strlen(md->path);
	while (len > 1 && md->path[len - 1] == '/')
		md->path[--len] = '\0';
	if (len == 0) {
		k = fail_set(f, FAIL_LOCAL, "Maildir: empty path");
		goto fail;
	}
	if ((k = md_make(md, f)) != FAIL_NONE)
		goto fail;
	md_hostname(md->host, sizeof(md->host));
	md->buf = xmalloc(MD_BUFSIZE);
	*t = md;
	return FAIL_NONE;
fail:
	md_close(md);
	return k;
}

static void
md_abort(void *t)
{
	struct maildir *md = t;

	if (md->fd == -1)
		return;
	close(md->fd);
	md->fd = -1;
	if (unlinkat(md->tmpfd, md->ref, 0) == -1 && errno != ENOENT)
		log_warn("Maildir %s/tmp/%s: cannot remove", md->path, md->ref);
	md->ref[0] = '\0';
	md->buflen = 0;
}

/* Remove every pending message, wherever it is now. */
/* Where a message goes: new/REF,S=SIZE, or with flags (a message the
 * mailbox had already seen, answered...) cur/REF,S=SIZE:2,FLAGS. Returns
 * the directory's fd and its name. */
static int
md_final_name(const struct maildir *md, const struct md_pending *p,
    char *name, size_t size, const char **sub)
{
	if (p->flags[0] == '\0') {
		snprintf(name, size, "%s,S=%llu", p->ref, p->size);
		*sub = "new";
		return md->newfd;
	}
	snprintf(name, size, "%s,S=%llu:2,%s", p->ref, p->size, p->flags);
	*sub = "cur";
	return md->curfd;
}

static void
md_drop_pending(struct maildir *md)
{
	char name[TARGET_REF_MAX + 32];
	const char *sub;
	size_t i;

	for (i = 0; i < md->npend; i++) {
		struct md_pending *p = &md->pend[i];

		if (p->in_new) {
			int dfd = md_final_name(md, p, name, sizeof(name), &sub);

			if (unlinkat(dfd, name, 0) == -1 && errno != ENOENT)
				log_warn("Maildir %s/%s/%s: cannot remove",
				    md->path, sub, name);
		} else if (unlinkat(md->tmpfd, p->ref, 0) == -1 &&
		    errno != ENOENT)
			log_warn("Maildir %s/tmp/%s: cannot remove", md->path,
			    p->ref);
	}
	md->npend = 0;
}

static void
md_close(void *t)
{
	struct maildir *md = t;

	if (md == NULL)
		return;
	if (md->tmpfd != -1) {
		md_abort(md);
		md_drop_pending(md);
	}
	if (md->curfd != -1)
		close(md->curfd);
	if (md->newfd != -1)
		close(md->newfd);
	if (md->tmpfd != -1)
		close(md->tmpfd);
	if (md->dirfd != -1)
		close(md->dirfd);
	for (size_t i = 0; i < md->nnames; i++)
		free(md->names[i]);
	free(md->names);
	free(md->pend);
	free(md->buf);
	free(md->path);
	free(md);
}

/* ---- one message ------------------------------------------------------ */

static enum fail_kind
md_plan(void *t, char *ref, size_t reflen, struct fail *f)
{
	struct maildir *md = t;
	struct timeval tv;
	unsigned long seq;
	int n;

	gettimeofday(&tv, NULL);
	seq = atomic_fetch_add(&md_seq, 1);
	n = snprintf(ref, reflen, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), seq, md->host);
	if (n < 0 || (size_t)n >= reflen || (size_t)n >= TARGET_REF_MAX)
		return fail_set(f, FAIL_LOCAL, "Maildir %s: file name too long",
		    md->path);
	return FAIL_NONE;
}

static enum fail_kind
md_begin(void *t, const char *ref, const struct msg_meta *m, struct fail *f)
{
	struct maildir *md = t;

	if (md->fd != -1)
		return fail_set(f, FAIL_LOCAL, "Maildir %s: a message is already "
		    "open", md->path);
	if (!ref_valid(ref))
		return fail_set(f, FAIL_LOCAL, "Maildir %s: bad file name '%s'",
		    md->path, ref);
	md->fd = openat(md->tmpfd, ref, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
	    0600);
	if (md->fd == -1)
		return fail_set(f, FAIL_LOCAL, "Maildir %s/tmp/%s: %s", md->path,
		    ref, strerror(errno));
	snprintf(md->ref, sizeof(md->ref), "%s", ref);
	md->size = 0;
	md->cr = 0;
	md->buflen = 0;
	snprintf(md->flags, sizeof(md->flags), "%s", m->flags ? m->flags : "");
	md->mtime = m->mtime;
	return FAIL_NONE;
}

static enum fail_kind
md_flush(struct maildir *md, struct fail *f)
{
	if (md->buflen == 0)
		return FAIL_NONE;
	if (write_all(md->fd, md->buf, md->buflen) == -1)
		return fail_set(f, FAIL_LOCAL, "Maildir %s/tmp/%s: %s", md->path,
		    md->ref, strerror(errno));
	md->buflen = 0;
	return FAIL_NONE;
}

/* Append converted bytes: through the buffer, or straight out if large. */
static enum fail_kind
md_emit(struct maildir *md, const char *p, size_t n, struct fail *f)
{
	size_t room;

	md->size += n;
	while (n > 0) {
		if (md->buflen == 0 && n >= MD_BUFSIZE) {
			if (write_all(md->fd, p, n) == -1)
				return fail_set(f, FAIL_LOCAL, "Maildir %s/tmp/%s: "
				    "%s", md->path, md->ref, strerror(errno));
			return FAIL_NONE;
		}
		room = MD_BUFSIZE - md->buflen;
		if (room > n)
			room = n;
		memcpy(md->buf + md->buflen, p, room);
		md->buflen += room;
		p += room;
		n -= room;
		if (md->buflen == MD_BUFSIZE && md_flush(md, f) != FAIL_NONE)
			return FAIL_LOCAL;
	}
	return FAIL_NONE;
}

/* CRLF -> LF; a lone CR is kept, also across write calls. */
static enum fail_kind
md_write(void *t, const char *p, size_t n, struct fail *f)
{
	struct maildir *md = t;
	const char *end = p + n, *cr;

	if (md->fd == -1)
		return fail_set(f, FAIL_LOCAL, "Maildir %s: no message open",
		    md->path);
	if (n == 0)
		return FAIL_NONE;
	if (md->cr) {
		md->cr = 0;
		if (*p != '\n' && md_emit(md, "\r", 1, f) != FAIL_NONE)
			return FAIL_LOCAL;
	}
	while (p < end) {
		cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL)
			return md_emit(md, p, (size_t)(end - p), f);
		if (md_emit(md, p, (size_t)(cr - p), f) != FAIL_NONE)
			return FAIL_LOCAL;
		if (cr + 1 == end) {
			md->cr = 1;
			break;
		}
		/* Drop the CR of a CRLF; keep a lone one. */
		if (cr[1] != '\n' && md_emit(md, "\r", 1, f) != FAIL_NONE)
			return FAIL_LOCAL;
		p = cr + 1;
	}
	return FAIL_NONE;
}

static enum fail_kind
md_end(void *t, struct fail *f)
{
	struct maildir *md = t;
	struct md_pending *pd;
	int fd;

	if (md->fd == -1)
		return fail_set(f, FAIL_LOCAL, "Maildir %s: no message open",
		    md->path);
	if (md->cr) {
		md->cr = 0;
		if (md_emit(md, "\r", 1, f) != FAIL_NONE)
			goto fail;
	}
	if (md_flush(md, f) != FAIL_NONE)
		goto fail;
	if (md->mtime > 0) {
		/* A backup keeps the date the mailbox showed (INTERNALDATE). */
		struct timespec ts[2] = { { md->mtime, 0 }, { md->mtime, 0 } };

		if (futimens(md->fd, ts) == -1)
			log_warn("Maildir %s/tmp/%s: cannot set its time",
			    md->path, md->ref);
	}
	fd = md->fd;
	md->fd = -1;
	/* Start writing it out now; sync() then waits for less. */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	if (close(fd) == -1) {
		fail_set(f, FAIL_LOCAL, "Maildir %s/tmp/%s: %s", md->path,
		    md->ref, strerror(errno));
		if (unlinkat(md->tmpfd, md->ref, 0) == -1 && errno != ENOENT)
			log_warn("Maildir %s/tmp/%s: cannot remove", md->path,
			    md->ref);
		return FAIL_LOCAL;
	}
	if (md->npend == md->cappend) {
		md->cappend = md->cappend ? md->cappend * 2 : 16;
		md->pend = xreallocarray(md->pend, md->cappend,
		    sizeof(*md->pend));
	}
	pd = &md->pend[md->npend++];
	memcpy(pd->ref, md->ref, sizeof(pd->ref));
	pd->size = md->size;
	memcpy(pd->flags, md->flags, sizeof(pd->flags));
	pd->in_new = 0;
	md->ref[0] = '\0';
	return FAIL_NONE;
fail:
	md_abort(md);   /* the contract: a failed end() drops the message */
	return FAIL_LOCAL;
}

/* ---- group commit ----------------------------------------------------- */

/* fdatasync each pending file (their writeback began at end()). */
static enum fail_kind
md_fsync_each(struct maildir *md, struct fail *f)
{
	size_t i;
	int fd;

	for (i = 0; i < md->npend; i++) {
		fd = openat(md->tmpfd, md->pend[i].ref, O_RDONLY | O_CLOEXEC);
		if (fd == -1)
			goto fail;
		if (fdatasync(fd) == -1) {
			close(fd);
			goto fail;
		}
		if (close(fd) == -1)
			goto fail;
	}
	return FAIL_NONE;
fail:
	return fail_set(f, FAIL_LOCAL, "Maildir %s/tmp/%s: %s", md->path,
	    md->pend[i].ref, strerror(errno));
}

static enum fail_kind
md_rename_all(struct maildir *md, struct fail *f)
{
	char name[TARGET_REF_MAX + 32];
	const char *sub;
	size_t i;

	for (i = 0; i < md->npend; i++) {
		struct md_pending *p = &md->pend[i];
		int dfd = md_final_name(md, p, name, sizeof(name), &sub);

		if (renameat(md->tmpfd, p->ref, dfd, name) == -1)
			return fail_set(f, FAIL_LOCAL, "Maildir %s: rename "
			    "tmp/%s to %s/%s: %s", md->path, p->ref, sub, name,
			    strerror(errno));
		p->in_new = 1;
		if (p->flags[0])
			md->cur_used = 1;
	}
	return FAIL_NONE;
}

static enum fail_kind
md_sync(void *t, struct fail *f)
{
	struct maildir *md = t;

	if (md->npend == 0)
		return FAIL_NONE;
	/* Few files: fdatasync each (cheap, and touches nothing else). Many:
	 * one syncfs(2) commits them all at once, far cheaper than one journal
	 * commit per file; fall back to each file if syncfs fails. */
	if (md->npend < MD_SYNCFS_MIN || syncfs(md->tmpfd) == -1) {
		if (md_fsync_each(md, f) != FAIL_NONE)
			goto fail;
	}
	md->cur_used = 0;
	if (md_rename_all(md, f) != FAIL_NONE)
		goto fail;
	if (fsync(md->newfd) == -1) {
		md_errno(md, "new", f);
		goto fail;
	}
	if (md->cur_used && fsync(md->curfd) == -1) {
		md_errno(md, "cur", f);
		goto fail;
	}
	md->npend = 0;
	return FAIL_NONE;
fail:
	/* None of them counts: take them all back out. */
	md_drop_pending(md);
	(void)fsync(md->newfd);
	(void)fsync(md->curfd);
	return FAIL_LOCAL;
}

/* ---- settle ----------------------------------------------------------- */

static int
name_matches(const char *name, const char *ref, size_t reflen)
{
	return strncmp(name, ref, reflen) == 0 && (name[reflen] == '\0' ||
	    name[reflen] == ',' || name[reflen] == ':');
}

/* Make a found entry durable (a kill -9 may have come before the fsync of
 * new/), then say it is there. */
static int
sync_found(struct maildir *md, int dfd, const char *sub, const char *name,
    struct fail *f)
{
	int fd;

	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd == -1 || fsync(fd) == -1 || close(fd) == -1 || fsync(dfd) == -1) {
		fail_set(f, FAIL_LOCAL, "Maildir %s/%s/%s: %s", md->path, sub,
		    name, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return 1;
}

/* 1 if sub/ holds ref, 0 if not, -1 on error. */
static int
md_find(struct maildir *md, int subfd, const char *sub, const char *ref,
    struct fail *f)
{
	size_t reflen = strlen(ref);
	struct dirent *de;
	DIR *d = NULL;
	int fd, ret = -1;

	fd = openat(subfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		md_errno(md, sub, f);
		if (fd != -1)
			close(fd);
		return -1;
	}
	ret = 0;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (name_matches(de->d_name, ref, reflen)) {
			ret = sync_found(md, subfd, sub, de->d_name, f);
			break;
		}
	}
	if (de == NULL && errno != 0) {
		md_errno(md, sub, f);
		ret = -1;
	}
	closedir(d);
	return ret;
}

static int
md_settle(void *t, const char *ref, struct fail *f)
{
	struct maildir *md = t;
	int r;

	if (!ref_valid(ref)) {
		fail_set(f, FAIL_LOCAL, "Maildir %s: bad file name '%s'",
		    md->path, ref);
		return -1;
	}
	if ((r = md_find(md, md->newfd, "new", ref, f)) != 0)
		return r;
	if ((r = md_find(md, md->curfd, "cur", ref, f)) != 0)
		return r;
	if (unlinkat(md->tmpfd, ref, 0) == -1 && errno != ENOENT) {
		fail_set(f, FAIL_LOCAL, "Maildir %s/tmp/%s: %s", md->path, ref,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
read_names(struct maildir *md, int subfd, const char *sub, size_t *cap)
{
	struct dirent *de;
	DIR *d;
	int fd = openat(subfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (md->nnames == *cap) {
			*cap = *cap ? *cap * 2 : 256;
			md->names = xreallocarray(md->names, *cap,
			    sizeof(*md->names));
		}
		md->names[md->nnames++] = xstrdup(de->d_name);
	}
	closedir(d);
	(void)sub;
	return 0;
}

/* Retention: is the message delivered as ref still in new/ or cur/ (a mail
 * reader may have renamed it with flags)? The directories are read once
 * per open, so that checking many messages costs one listing. */
static int
md_present(void *t, const char *ref, struct fail *f)
{
	struct maildir *md = t;
	size_t lo = 0, hi, reflen = strlen(ref);

	if (!md->names_read) {
		size_t cap = 0;

		if (read_names(md, md->newfd, "new", &cap) == -1 ||
		    read_names(md, md->curfd, "cur", &cap) == -1) {
			md_errno(md, "new", f);
			return -1;
		}
		qsort(md->names, md->nnames, sizeof(*md->names), name_cmp);
		md->names_read = 1;
	}
	hi = md->nnames;
	while (lo < hi) {               /* the first name >= ref */
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(md->names[mid], ref) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < md->nnames && strncmp(md->names[lo], ref, reflen) == 0; lo++)
		if (name_matches(md->names[lo], ref, reflen))
			return 1;
	return 0;
}

const struct target_ops maildir_target = {
	.kind = "maildir",
	.open = md_open,
	.plan = md_plan,
	.begin = md_begin,
	.write = md_write,
	.end = md_end,
	.abort = md_abort,
	.sync = md_sync,
	.settle = md_settle,
	.close = md_close,
	.present = md_present,
};
