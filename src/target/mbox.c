/* mbox.c - the mbox target (mboxrd).
 *
 * Format. Each message is "From SENDER DATE\n", the message with CRLF turned
 * into LF and every line matching ^>*From  given one more '>' (mboxrd, so
 * that a reader undoes it exactly), a final '\n' if the message lacks one,
 * and one blank line. SENDER is the address of Return-Path (MAILER-DAEMON if
 * there is none, it is <>, or it is not one printable word); DATE is in
 * asctime(3) form: the server's date for the message if it gave one (IMAP
 * INTERNALDATE), else now. To learn Return-Path before the separator line is
 * written, the header section (up to MB_HDR_MAX bytes) is held in memory;
 * the body streams through a small buffer. Bytes are otherwise kept: a lone
 * CR, NULs, 8-bit, a CRLF split across write() calls.
 *
 * Locking, like mutt and procmail: an fcntl write lock on the whole file
 * (an open-file-description lock, F_OFD_SETLK, which conflicts with the
 * F_SETLK locks of other programs and also with another target of this
 * process; plain F_SETLK where OFD locks are missing), then the dotlock
 * PATH.lock, made exclusively (an O_TMPFILE holding "PID\n" linked into
 * place, so that it never exists empty; O_CREAT|O_EXCL where O_TMPFILE is
 * missing); the batch adds "mailpull OFFSET\n" to it. Both are tried
 * without blocking and retried every 100 ms until mbox_lock_timeout_ms
 * (10 s); then plan() (or settle()) fails, FAIL_TEMP, with "mbox PATH:
 * locked by another program (PATH.lock); gave up after 10 s". The fcntl lock is
 * given back while waiting for the dotlock, so a program that takes them in
 * the other order (procmail) cannot deadlock with us. A dotlock is stale,
 * and removed, when the pid written in it is not alive on this host, or when
 * it holds no pid and is older than mbox_lock_stale_secs (5 min), or when it
 * is older than an hour whatever it holds (its pid may have been reused
 * since a reboot). A dead pid counts at once rather than after 5 minutes:
 * otherwise every kill -9 would lock the mailbox for 5 minutes. A directory
 * where a dotlock cannot be made (EACCES/EROFS: /var/mail without setgid)
 * leaves us with the fcntl lock alone, with a warning.
 *
 * A batch. The lock is taken by the first plan() of a batch (not begin():
 * that way nothing can be appended between the moment OFFSET is read and
 * our first byte) and held until sync(), or until close() or settle() gives
 * the batch up. With the lock held, plan() ends the file with '\n' if it
 * does not (so that our separator starts a line) and reads its size: that is
 * OFFSET, shared by every message of the batch. The ref of message SEQ is
 * "OFFSET.SEQ". Messages are appended; a message that fails or is aborted
 * is cut off again (ftruncate to where it began) and the batch goes on, so
 * that the messages ended before it still count after sync(). sync() fsyncs
 * the file once for the batch; if that fails, or if cutting off a message
 * failed, it truncates the file back to OFFSET (nothing of the batch counts)
 * and fails. A file we create is made 0600 (its missing parents 0700) and
 * its directory is fsync'd at once.
 *
 * Exactly once across a crash. The agent records no message of a batch
 * unless the whole batch was synced and recorded in one transaction, so
 * after a crash none of a batch's messages counts: settle("OFFSET.SEQ")
 * never answers 1; it puts the file back as it was before the batch:
 *   - size == OFFSET: nothing of the batch is there: 0.
 *   - size < OFFSET, or the bytes at OFFSET are not "From ": someone
 *     rewrote the mailbox since (a MUA expunging). Nothing is cut (a
 *     possible duplicate is better than destroying a user's mail); a
 *     warning; 0.
 *   - size > OFFSET and "From " at OFFSET: the batch (whole, or cut short by
 *     the crash) starts there: truncate back to OFFSET, fsync, 0.
 * The danger in the last case is mail another program appended after our
 * crash and before this settle: cutting at OFFSET would destroy it. So the
 * cut is proven safe only when (a) the dotlock of the crashed batch itself
 * ("mailpull OFFSET", with a dead pid) was still there when settle took the
 * lock: nobody that honours dotlocks has written since; or (b) the batch was
 * synced by this very target and the file still ends where it ended then.
 * Otherwise (a crash between sync() and the agent's record; a stale lock
 * someone else removed) the bytes cut off are first copied to
 * PATH.mailpull-unrecorded.OFFSET (fsync'd, 0600) and a warning names that
 * file: the mbox holds every message once, and nothing is destroyed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fail.h"
#include "fileutil.h"
#include "log.h"
#include "target.h"
#include "xmalloc.h"

#define MB_BUFSIZE      (64 * 1024)
#define MB_HDR_MAX      (256 * 1024)    /* header held to find Return-Path */
#define MB_SENDER_MAX   256
#define MB_LOCK_POLL_MS 100
#define MB_LOCK_OLD     3600            /* a dotlock this old is stale anyway */

/* Tunable by tests. */
int mbox_lock_timeout_ms = 10000;
int mbox_lock_stale_secs = 300;

struct mbox {
	char            *path, *lockpath;

	/* The lock and the batch. */
	int              fd;            /* open while locked, else -1 */
	int              dotlocked;
	int              in_batch;
	off_t            base;          /* OFFSET: size before the batch */
	unsigned         seq;
	int              broken;        /* a cut-off failed: sync() must fail */
	off_t            stale_base;    /* settle: base of a crashed batch's lock, or -1 */

	/* The last batch this target synced (settle after a failed record). */
	off_t            last_base, last_end;
	dev_t            last_dev;
	ino_t            last_ino;

	/* The message being written. */
	int              in_msg;
	int              failed;        /* a write failed: only abort() now */
	off_t            msg_start;
	time_t           mtime;
	int              cr;            /* last input byte was '\r' (held) */
	int              in_hdr;        /* still holding the header section */
	char            *hdr;
	size_t           hdrlen;
	int              bol;           /* at a line start, matching ^>*From  */
	size_t           gt;            /* '>'s held at the line start */
	size_t           fk;            /* bytes of "From " matched after them */
	unsigned long long msg_bytes;   /* message bytes emitted */
	char             last;          /* last message byte emitted */
	char            *buf;
	size_t           buflen;
};

/* ---- helpers ---------------------------------------------------------- */

static enum fail_kind
mb_errno(struct mbox *mb, const char *what, struct fail *f)
{
	int e = errno;

	if (what == NULL)
		return fail_set(f, FAIL_LOCAL, "mbox %s: %s", mb->path,
		    strerror(e));
	return fail_set(f, FAIL_LOCAL, "mbox %s: %s: %s", mb->path, what,
	    strerror(e));
}

static int
pread_all(int fd, char *p, size_t n, off_t off)
{
	ssize_t r;

	while (n > 0) {
		r = pread(fd, p, n, off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- locking ---------------------------------------------------------- */

/* A non-blocking write lock on the whole file: 0, or -1 (EAGAIN: held). */
static int
fcntl_lock(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

#ifdef F_OFD_SETLK
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno != EINVAL)
		goto held;
#endif
	if (fcntl(fd, F_SETLK, &fl) == 0)
		return 0;
#ifdef F_OFD_SETLK
held:
#endif
	if (errno == EACCES)
		errno = EAGAIN;
	return -1;
}

/* Is the dotlock there stale? Sets *base to the OFFSET a crashed mailpull
 * batch wrote in it, else -1. */
static int
dotlock_stale(struct mbox *mb, off_t *base)
{
	char buf[128];
	struct stat sb;
	ssize_t n;
	long pid = 0;
	char *p;
	int fd, alive;

	*base = -1;
	fd = open(mb->lockpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return errno == ENOENT;         /* gone already: try again */
	if (fstat(fd, &sb) == -1 || (n = read(fd, buf, sizeof(buf) - 1)) < 0) {
		close(fd);
		return 0;
	}
	close(fd);
	buf[n] = '\0';
	pid = strtol(buf, &p, 10);
	if (p == buf || pid <= 0 || pid > INT_MAX)
		pid = 0;
	else if ((p = strstr(p, "\nmailpull ")) != NULL)
		*base = (off_t)strtoll(p + 10, NULL, 10);
	if (time(NULL) - sb.st_mtime > MB_LOCK_OLD)
		return 1;
	if (pid == 0)
		return time(NULL) - sb.st_mtime > mbox_lock_stale_secs;
	alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
	return !alive;
}

/* The dotlock appears with its pid already in it (an unnamed O_TMPFILE
 * linked into place; linkat fails with EEXIST like O_CREAT|O_EXCL), so a
 * kill -9 never leaves an empty lock that only ageing could clear. Where
 * O_TMPFILE is missing: O_CREAT|O_EXCL, then the pid. */
static int
dotlock_create(struct mbox *mb, const char *content, size_t len)
{
	char *dir = xstrdup(mb->lockpath), *slash, proc[64];
	int fd, e;

	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
#ifdef O_TMPFILE
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
#else
	fd = -1;
	errno = EOPNOTSUPP;
#endif
	free(dir);
	if (fd != -1) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (write_all(fd, content, len) == 0 &&
		    linkat(AT_FDCWD, proc, AT_FDCWD, mb->lockpath,
		    AT_SYMLINK_FOLLOW) == 0)
			return close(fd);
		e = errno;
		close(fd);
		errno = e;
		if (e != ENOENT)        /* ENOENT: no /proc; the plain way */
			return -1;
	}
	if (errno == EACCES || errno == EPERM || errno == EROFS)
		return -1;
	fd = open(mb->lockpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	if (write_all(fd, content, len) == -1 || close(fd) == -1) {
		e = errno;
		unlink(mb->lockpath);
		errno = e;
		return -1;
	}
	return 0;
}

/* Make PATH.lock. 1 made (or impossible here: fcntl alone), 0 held by
 * someone else, -1 error (errno). */
static int
dotlock_make(struct mbox *mb)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (dotlock_create(mb, buf, (size_t)n) == -1) {
		if (errno == EEXIST)
			return 0;
		if (errno == EACCES || errno == EPERM || errno == EROFS) {
			log_warnx("mbox %s: cannot make the dotlock %s (%s); "
			    "relying on the fcntl lock alone", mb->path,
			    mb->lockpath, strerror(errno));
			return 1;
		}
		return -1;
	}
	mb->dotlocked = 1;
	return 1;
}

/* Write the batch's OFFSET into our dotlock, for settle after a crash. */
static void
dotlock_note_base(struct mbox *mb)
{
	char buf[64];
	int fd, n;

	if (!mb->dotlocked)
		return;
	fd = open(mb->lockpath, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return;
	n = snprintf(buf, sizeof(buf), "%ld\nmailpull %lld\n", (long)getpid(),
	    (long long)mb->base);
	(void)write_all(fd, buf, (size_t)n);
	close(fd);
}

static void
mb_unlock(struct mbox *mb)
{
	if (mb->dotlocked && unlink(mb->lockpath) == -1 && errno != ENOENT)
		log_warn("mbox %s: cannot remove %s", mb->path, mb->lockpath);
	mb->dotlocked = 0;
	if (mb->fd != -1)
		close(mb->fd);          /* gives back the fcntl lock */
	mb->fd = -1;
}

/* One try at both locks: 1 locked, 0 busy (*who says which), -1 error. */
static int
lock_try(struct mbox *mb, const char **who, struct fail *f)
{
	struct stat a, b;
	off_t sbase;
	int r;

	mb->fd = open(mb->path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (mb->fd == -1 && errno == ENOENT) {
		/* Removed since open(): made again, durably. */
		mb->fd = open(mb->path, O_RDWR | O_APPEND | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600);
		if (mb->fd != -1 && fsync_dir_of(mb->path) == -1) {
			mb_errno(mb, NULL, f);
			mb_unlock(mb);
			return -1;
		}
		if (mb->fd == -1 && errno == EEXIST) {
			*who = "replaced";
			return 0;
		}
	}
	if (mb->fd == -1) {
		mb_errno(mb, NULL, f);
		return -1;
	}
	if (fcntl_lock(mb->fd) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			mb_errno(mb, "fcntl lock", f);
			mb_unlock(mb);
			return -1;
		}
		*who = "fcntl lock";
		mb_unlock(mb);
		return 0;
	}
	while ((r = dotlock_make(mb)) == 0) {
		if (!dotlock_stale(mb, &sbase)) {
			*who = mb->lockpath;
			mb_unlock(mb);
			return 0;
		}
		if (unlink(mb->lockpath) == 0) {
			log_info("mbox %s: removed the stale lock %s", mb->path,
			    mb->lockpath);
			mb->stale_base = sbase;
		} else if (errno != ENOENT) {
			*who = mb->lockpath;    /* cannot remove it: wait */
			mb_unlock(mb);
			return 0;
		}
	}
	if (r == -1) {
		mb_errno(mb, mb->lockpath, f);
		mb_unlock(mb);
		return -1;
	}
	/* Replaced (renamed over) while we waited: lock the new one. */
	if (fstat(mb->fd, &a) == -1 || stat(mb->path, &b) == -1 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		mb_unlock(mb);
		*who = "replaced";
		return 0;
	}
	return 1;
}

static enum fail_kind
mb_lock(struct mbox *mb, struct fail *f)
{
	long long deadline = mono_ms() + mbox_lock_timeout_ms;
	const char *who = "";
	int r;

	for (;;) {
		r = lock_try(mb, &who, f);
		if (r == 1)
			return FAIL_NONE;
		if (r == -1)
			return FAIL_LOCAL;
		if (mono_ms() >= deadline)
			break;
		sleep_ms(MB_LOCK_POLL_MS);
	}
	if (strcmp(who, "fcntl lock") == 0)
		return fail_set(f, FAIL_TEMP, "mbox %s: locked by another program "
		    "(fcntl lock on %s); gave up after %d s", mb->path, mb->path,
		    (mbox_lock_timeout_ms + 999) / 1000);
	return fail_set(f, FAIL_TEMP, "mbox %s: locked by another program (%s); "
	    "gave up after %d s", mb->path, mb->lockpath,
	    (mbox_lock_timeout_ms + 999) / 1000);
}

/* ---- open / close ----------------------------------------------------- */

static void mb_close(void *t);

static enum fail_kind
mb_open(void **t, const char *path, struct fail *f)
{
	struct mbox *mb;
	struct stat sb;
	enum fail_kind k;
	int fd;

	*t = NULL;
	mb = xcalloc(1, sizeof(*mb));
	mb->fd = -1;
	mb->stale_base = mb->last_base = mb->last_end = -1;
	mb->path = xstrdup(path);
	mb->lockpath = xasprintf("%s.lock", path);
	if (path[0] == '\0' || path[strlen(path) - 1] == '/') {
		k = fail_set(f, FAIL_LOCAL, "mbox '%s': not a file name", path);
		goto fail;
	}
	if (mkdirs(path, 0) == -1) {
		k = mb_errno(mb, NULL, f);
		goto fail;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd != -1) {
		if (fsync(fd) == -1 || close(fd) == -1 ||
		    fsync_dir_of(path) == -1) {
			k = mb_errno(mb, NULL, f);
			goto fail;
		}
	} else if (errno != EEXIST) {
		k = mb_errno(mb, NULL, f);
		goto fail;
	}
	if (stat(path, &sb) == -1) {
		k = mb_errno(mb, NULL, f);
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		k = fail_set(f, FAIL_LOCAL, "mbox %s: not a regular file", path);
		goto fail;
	}
	if (access(path, R_OK | W_OK) == -1) {
		k = mb_errno(mb, NULL, f);
		goto fail;
	}
	mb->buf = xmalloc(MB_BUFSIZE);
	*t = mb;
	return FAIL_NONE;
fail:
	mb_close(mb);
	return k;
}

/* Give the batch up: the file back to OFFSET, locks released. */
static void
mb_rollback(struct mbox *mb)
{
	if (!mb->in_batch)
		return;
	if (mb->fd != -1 && (ftruncate(mb->fd, mb->base) == -1 ||
	    fsync(mb->fd) == -1))
		log_warn("mbox %s: cannot truncate back to %lld bytes", mb->path,
		    (long long)mb->base);
	mb->in_batch = 0;
	mb->in_msg = 0;
	mb_unlock(mb);
}

static void
mb_close(void *t)
{
	struct mbox *mb = t;

	if (mb == NULL)
		return;
	mb_rollback(mb);        /* ended but never synced: they do not count */
	mb_unlock(mb);
	free(mb->hdr);
	free(mb->buf);
	free(mb->lockpath);
	free(mb->path);
	free(mb);
}

/* ---- one batch, one message ------------------------------------------- */

/* First plan() of a batch: lock, end the file with '\n', note OFFSET. */
static enum fail_kind
mb_batch_start(struct mbox *mb, struct fail *f)
{
	struct stat sb;
	char c;
	enum fail_kind k;

	if ((k = mb_lock(mb, f)) != FAIL_NONE)
		return k;
	if (fstat(mb->fd, &sb) == -1)
		goto fail;
	if (sb.st_size > 0) {
		if (pread_all(mb->fd, &c, 1, sb.st_size - 1) == -1)
			goto fail;
		if (c != '\n') {
			if (write_all(mb->fd, "\n", 1) == -1 || fsync(mb->fd) == -1)
				goto fail;
			sb.st_size++;
		}
	}
	mb->base = sb.st_size;
	mb->seq = 0;
	mb->broken = 0;
	mb->in_batch = 1;
	dotlock_note_base(mb);
	return FAIL_NONE;
fail:
	mb_errno(mb, NULL, f);
	mb_unlock(mb);
	return FAIL_LOCAL;
}

static enum fail_kind
mb_plan(void *t, char *ref, size_t reflen, struct fail *f)
{
	struct mbox *mb = t;
	enum fail_kind k;
	int n;

	if (!mb->in_batch && (k = mb_batch_start(mb, f)) != FAIL_NONE)
		return k;
	n = snprintf(ref, reflen, "%lld.%u", (long long)mb->base, mb->seq);
	if (n < 0 || (size_t)n >= reflen || (size_t)n >= TARGET_REF_MAX)
		return fail_set(f, FAIL_LOCAL, "mbox %s: ref too long", mb->path);
	mb->seq++;
	return FAIL_NONE;
}

static enum fail_kind
mb_begin(void *t, const char *ref, const struct msg_meta *m, struct fail *f)
{
	struct mbox *mb = t;
	struct stat sb;
	enum fail_kind k;

	if (mb->in_msg)
		return fail_set(f, FAIL_LOCAL, "mbox %s: a message is already "
		    "open", mb->path);
	/* begin() without plan(): a batch of its own. */
	if (!mb->in_batch && (k = mb_batch_start(mb, f)) != FAIL_NONE)
		return k;
	if (fstat(mb->fd, &sb) == -1)
		return mb_errno(mb, NULL, f);
	mb->msg_start = sb.st_size;
	mb->mtime = m != NULL ? m->mtime : 0;
	mb->in_msg = 1;
	mb->failed = 0;
	mb->cr = 0;
	mb->in_hdr = 1;
	mb->hdrlen = 0;
	mb->bol = 1;
	mb->gt = mb->fk = 0;
	mb->msg_bytes = 0;
	mb->last = '\0';
	mb->buflen = 0;
	if (mb->hdr == NULL)
		mb->hdr = xmalloc(MB_HDR_MAX);
	return FAIL_NONE;
}

/* Output buffer -> file. */
static enum fail_kind
mb_flush(struct mbox *mb, struct fail *f)
{
	if (mb->buflen == 0)
		return FAIL_NONE;
	if (write_all(mb->fd, mb->buf, mb->buflen) == -1) {
		mb->buflen = 0;
		mb->failed = 1;
		return mb_errno(mb, NULL, f);
	}
	mb->buflen = 0;
	return FAIL_NONE;
}

static enum fail_kind
mb_out(struct mbox *mb, const char *p, size_t n, struct fail *f)
{
	size_t room;

	while (n > 0) {
		if (mb->buflen == 0 && n >= MB_BUFSIZE) {
			if (write_all(mb->fd, p, n) == -1) {
				mb->failed = 1;
				return mb_errno(mb, NULL, f);
			}
			return FAIL_NONE;
		}
		room = MB_BUFSIZE - mb->buflen;
		if (room > n)
			room = n;
		memcpy(mb->buf + mb->buflen, p, room);
		mb->buflen += room;
		p += room;
		n -= room;
		if (mb->buflen == MB_BUFSIZE && mb_flush(mb, f) != FAIL_NONE)
			return FAIL_LOCAL;
	}
	return FAIL_NONE;
}

/* Message bytes (not the separator) out, remembering the last one. */
static enum fail_kind
mb_msg_out(struct mbox *mb, const char *p, size_t n, struct fail *f)
{
	if (n == 0)
		return FAIL_NONE;
	mb->msg_bytes += n;
	mb->last = p[n - 1];
	return mb_out(mb, p, n, f);
}

static enum fail_kind
mb_gts(struct mbox *mb, size_t n, struct fail *f)
{
	static const char gts[64] =
	    ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>";
	size_t k;

	for (; n > 0; n -= k) {
		k = n < sizeof(gts) ? n : sizeof(gts);
		if (mb_msg_out(mb, gts, k, f) != FAIL_NONE)
			return FAIL_LOCAL;
	}
	return FAIL_NONE;
}

/* What a line start held that turned out not to be ^>*From . */
static enum fail_kind
mb_release_prefix(struct mbox *mb, struct fail *f)
{
	if (mb_gts(mb, mb->gt, f) != FAIL_NONE ||
	    mb_msg_out(mb, "From ", mb->fk, f) != FAIL_NONE)
		return FAIL_LOCAL;
	mb->gt = mb->fk = 0;
	mb->bol = 0;
	return FAIL_NONE;
}

/* mboxrd quoting of LF text, any split: a line matching ^>*From  gets one
 * more '>'. At a line start the '>'s and the "From " matched so far are
 * held (as counts) until the line shows what it is. */
static enum fail_kind
mb_quote(struct mbox *mb, const char *p, size_t n, struct fail *f)
{
	const char *end = p + n, *nl;

	while (p < end) {
		if (!mb->bol) {
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL)
				return mb_msg_out(mb, p, (size_t)(end - p), f);
			if (mb_msg_out(mb, p, (size_t)(nl + 1 - p), f) != FAIL_NONE)
				return FAIL_LOCAL;
			p = nl + 1;
			mb->bol = 1;
			mb->gt = mb->fk = 0;
			continue;
		}
		if (mb->fk == 0 && *p == '>') {
			mb->gt++;
			p++;
		} else if (*p == "From "[mb->fk]) {
			p++;
			if (++mb->fk == 5) {
				mb->gt++;       /* the quoting '>' */
				if (mb_release_prefix(mb, f) != FAIL_NONE)
					return FAIL_LOCAL;
			}
		} else if (mb_release_prefix(mb, f) != FAIL_NONE)
			return FAIL_LOCAL;      /* *p again, mid-line */
	}
	return FAIL_NONE;
}

/* Return-Path's address from the held header, or MAILER-DAEMON. */
static void
mb_sender(const struct mbox *mb, char *out, size_t outlen)
{
	const char *h = mb->hdr, *end = mb->hdr + mb->hdrlen, *p, *v, *ve;
	const char *a = NULL, *ae = NULL;
	size_t len;

	snprintf(out, outlen, "MAILER-DAEMON");
	for (p = h; p < end; ) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		if (le == p)
			return;                 /* end of the header */
		if ((size_t)(le - p) >= 12 && strncasecmp(p, "Return-Path:", 12) == 0) {
			v = p + 12;
			ve = le;
			/* unfold: continuation lines start with SP or HT */
			while (ve < end && ve + 1 < end && (ve[1] == ' ' || ve[1] == '\t')) {
				nl = memchr(ve + 1, '\n', (size_t)(end - ve - 1));
				ve = nl ? nl : end;
			}
			a = memchr(v, '<', (size_t)(ve - v));
			if (a != NULL) {
				a++;
				ae = memchr(a, '>', (size_t)(ve - a));
				if (ae == NULL)
					return;
			} else {
				for (a = v; a < ve && (*a == ' ' || *a == '\t' ||
				    *a == '\n'); a++)
					;
				for (ae = a; ae < ve && *ae != ' ' && *ae != '\t' &&
				    *ae != '\n' && *ae != '\r'; ae++)
					;
			}
			break;
		}
		p = le + 1;
	}
	if (a == NULL || ae <= a)
		return;
	len = (size_t)(ae - a);
	if (len >= outlen || len >= MB_SENDER_MAX)
		return;
	for (p = a; p < ae; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return;
	memcpy(out, a, len);
	out[len] = '\0';
}

/* "From SENDER Www Mmm dd hh:mm:ss yyyy\n", then the held header quoted. */
static enum fail_kind
mb_release_header(struct mbox *mb, struct fail *f)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	char sender[MB_SENDER_MAX], line[MB_SENDER_MAX + 64];
	time_t when = mb->mtime != 0 ? mb->mtime : time(NULL);
	struct tm tm;
	int n;

	mb_sender(mb, sender, sizeof(sender));
	if (localtime_r(&when, &tm) == NULL) {
		when = 0;
		gmtime_r(&when, &tm);
	}
	n = snprintf(line, sizeof(line), "From %s %s %s %2d %02d:%02d:%02d %d\n",
	    sender, days[tm.tm_wday % 7], months[tm.tm_mon % 12], tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
	if (n < 0 || (size_t)n >= sizeof(line))
		return fail_set(f, FAIL_LOCAL, "mbox %s: separator too long",
		    mb->path);
	mb->in_hdr = 0;
	if (mb_out(mb, line, (size_t)n, f) != FAIL_NONE)
		return FAIL_LOCAL;
	return mb_quote(mb, mb->hdr, mb->hdrlen, f);
}

/* LF text in: held while in the header section, else quoted out. */
static enum fail_kind
mb_text(struct mbox *mb, const char *p, size_t n, struct fail *f)
{
	size_t from, take;

	if (!mb->in_hdr)
		return mb_quote(mb, p, n, f);
	while (n > 0 && mb->in_hdr) {
		take = MB_HDR_MAX - mb->hdrlen;
		if (take > n)
			take = n;
		from = mb->hdrlen > 0 ? mb->hdrlen - 1 : 0;
		memcpy(mb->hdr + mb->hdrlen, p, take);
		mb->hdrlen += take;
		p += take;
		n -= take;
		if (mb->hdr[0] == '\n' || mb->hdrlen == MB_HDR_MAX ||
		    memmem(mb->hdr + from, mb->hdrlen - from, "\n\n", 2) != NULL) {
			if (mb_release_header(mb, f) != FAIL_NONE)
				return FAIL_LOCAL;
		}
	}
	return n > 0 ? mb_quote(mb, p, n, f) : FAIL_NONE;
}

/* CRLF -> LF; a lone CR is kept, also across write calls. */
static enum fail_kind
mb_write(void *t, const char *p, size_t n, struct fail *f)
{
	struct mbox *mb = t;
	const char *end = p + n, *cr;

	if (!mb->in_msg)
		return fail_set(f, FAIL_LOCAL, "mbox %s: no message open",
		    mb->path);
	if (mb->failed)
		return fail_set(f, FAIL_LOCAL, "mbox %s: a write failed",
		    mb->path);
	if (n == 0)
		return FAIL_NONE;
	if (mb->cr) {
		mb->cr = 0;
		if (*p != '\n' && mb_text(mb, "\r", 1, f) != FAIL_NONE)
			return FAIL_LOCAL;
	}
	while (p < end) {
		cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL)
			return mb_text(mb, p, (size_t)(end - p), f);
		if (mb_text(mb, p, (size_t)(cr - p), f) != FAIL_NONE)
			return FAIL_LOCAL;
		if (cr + 1 == end) {
			mb->cr = 1;
			break;
		}
		if (cr[1] != '\n' && mb_text(mb, "\r", 1, f) != FAIL_NONE)
			return FAIL_LOCAL;
		p = cr + 1;
	}
	return FAIL_NONE;
}

/* Cut the message begun off again; on failure the batch cannot count. */
static void
mb_abort(void *t)
{
	struct mbox *mb = t;

	if (!mb->in_msg)
		return;
	mb->in_msg = 0;
	mb->buflen = 0;
	if (ftruncate(mb->fd, mb->msg_start) == -1) {
		log_warn("mbox %s: cannot truncate back to %lld bytes", mb->path,
		    (long long)mb->msg_start);
		mb->broken = 1;
	}
}

static enum fail_kind
mb_end(void *t, struct fail *f)
{
	struct mbox *mb = t;

	if (!mb->in_msg)
		return fail_set(f, FAIL_LOCAL, "mbox %s: no message open",
		    mb->path);
	if (mb->failed) {
		fail_set(f, FAIL_LOCAL, "mbox %s: a write failed", mb->path);
		goto fail;
	}
	if (mb->cr) {
		mb->cr = 0;
		if (mb_text(mb, "\r", 1, f) != FAIL_NONE)
			goto fail;
	}
	if (mb->in_hdr && mb_release_header(mb, f) != FAIL_NONE)
		goto fail;
	if (mb->bol && (mb->gt > 0 || mb->fk > 0) &&
	    mb_release_prefix(mb, f) != FAIL_NONE)
		goto fail;
	if (mb->msg_bytes > 0 && mb->last != '\n' &&
	    mb_out(mb, "\n", 1, f) != FAIL_NONE)
		goto fail;
	if (mb_out(mb, "\n", 1, f) != FAIL_NONE || mb_flush(mb, f) != FAIL_NONE)
		goto fail;
	mb->in_msg = 0;
	return FAIL_NONE;
fail:
	mb_abort(mb);   /* the contract: a failed end() drops the message */
	return FAIL_LOCAL;
}

/* ---- group commit ----------------------------------------------------- */

static enum fail_kind
mb_sync(void *t, struct fail *f)
{
	struct mbox *mb = t;
	struct stat sb;

	if (!mb->in_batch)
		return FAIL_NONE;
	if (mb->in_msg)
		mb_abort(mb);
	if (mb->broken) {
		fail_set(f, FAIL_LOCAL, "mbox %s: a failed message could not be "
		    "cut off; the batch is undone", mb->path);
		goto fail;
	}
	if (fsync(mb->fd) == -1 || fstat(mb->fd, &sb) == -1) {
		mb_errno(mb, "fsync", f);
		goto fail;
	}
	mb->last_base = mb->base;
	mb->last_end = sb.st_size;
	mb->last_dev = sb.st_dev;
	mb->last_ino = sb.st_ino;
	mb->in_batch = 0;
	mb_unlock(mb);
	return FAIL_NONE;
fail:
	/* None of the batch counts: back to the size before it. */
	mb_rollback(mb);
	return FAIL_LOCAL;
}

/* ---- settle ----------------------------------------------------------- */

static int
ref_parse(const char *ref, off_t *base)
{
	const char *p = ref;
	long long v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (LLONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (*p++ != '.' || *p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p != '\0')
		return -1;
	*base = (off_t)v;
	return 0;
}

/* Copy [base, size) to PATH.mailpull-unrecorded.BASE before it is cut. */
static int
mb_save_tail(struct mbox *mb, off_t base, off_t size, char **savedp,
    struct fail *f)
{
	char *saved = xasprintf("%s.mailpull-unrecorded.%lld", mb->path,
	    (long long)base);
	char *buf = NULL;
	off_t off;
	size_t n;
	int fd;

	fd = open(saved, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 && errno == EEXIST) {
		free(saved);
		saved = xasprintf("%s.mailpull-unrecorded.%lld.%ld.%lld",
		    mb->path, (long long)base, (long)getpid(),
		    (long long)time(NULL));
		fd = open(saved, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd == -1)
		goto fail;
	buf = xmalloc(MB_BUFSIZE);
	for (off = base; off < size; off += (off_t)n) {
		n = size - off > MB_BUFSIZE ? MB_BUFSIZE : (size_t)(size - off);
		if (pread_all(mb->fd, buf, n, off) == -1 ||
		    write_all(fd, buf, n) == -1)
			goto fail;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (fsync_dir_of(saved) == -1)
		goto fail;
	free(buf);
	*savedp = saved;
	return 0;
fail:
	fail_set(f, FAIL_LOCAL, "mbox %s: cannot save the unrecorded tail to "
	    "%s: %s", mb->path, saved, strerror(errno));
	if (fd != -1) {
		close(fd);
		unlink(saved);
	}
	free(buf);
	free(saved);
	return -1;
}

static int
mb_settle_locked(struct mbox *mb, off_t base, struct fail *f)
{
	char head[5], *saved = NULL;
	struct stat sb;
	int proven;

	if (fstat(mb->fd, &sb) == -1) {
		mb_errno(mb, NULL, f);
		return -1;
	}
	if (sb.st_size == base)
		return 0;
	if (sb.st_size < base || pread_all(mb->fd, head, 5, base) == -1 ||
	    memcmp(head, "From ", 5) != 0) {
		log_warnx("mbox %s: rewritten since a delivery at offset %lld "
		    "was interrupted; nothing is cut, so some messages may be "
		    "there twice", mb->path, (long long)base);
		return 0;
	}
	proven = mb->stale_base == base || (mb->last_base == base &&
	    mb->last_end == sb.st_size && mb->last_dev == sb.st_dev &&
	    mb->last_ino == sb.st_ino);
	if (!proven && mb_save_tail(mb, base, sb.st_size, &saved, f) == -1)
		return -1;
	if (ftruncate(mb->fd, base) == -1 || fsync(mb->fd) == -1) {
		mb_errno(mb, "truncate", f);
		free(saved);
		return -1;
	}
	if (saved != NULL)
		log_warnx("mbox %s: cut an unrecorded delivery off at offset "
		    "%lld (it will be fetched again); the %lld bytes cut are "
		    "kept in %s in case another program appended meanwhile",
		    mb->path, (long long)base, (long long)(sb.st_size - base),
		    saved);
	else
		log_verbose("mbox %s: cut an unrecorded delivery off at offset "
		    "%lld", mb->path, (long long)base);
	free(saved);
	mb->last_base = mb->last_end = -1;
	return 0;
}

static int
mb_settle(void *t, const char *ref, struct fail *f)
{
	struct mbox *mb = t;
	off_t base;
	int r;

	if (ref_parse(ref, &base) == -1) {
		fail_set(f, FAIL_LOCAL, "mbox %s: bad ref '%s'", mb->path, ref);
		return -1;
	}
	/* A batch still open is one the agent gave up on (another target's
	 * sync failed): none of it counts. */
	if (mb->in_msg)
		mb_abort(mb);
	mb_rollback(mb);
	mb->stale_base = -1;
	if (mb_lock(mb, f) != FAIL_NONE)
		return -1;
	r = mb_settle_locked(mb, base, f);
	mb->stale_base = -1;
	mb_unlock(mb);
	return r;
}

const struct target_ops mbox_target = {
	.kind = "mbox",
	.open = mb_open,
	.plan = mb_plan,
	.begin = mb_begin,
	.write = mb_write,
	.end = mb_end,
	.abort = mb_abort,
	.sync = mb_sync,
	.settle = mb_settle,
	.close = mb_close,
};
