/* fileutil.h - the few file operations the targets and the state share.
 * Each returns 0 or -1 with errno set. */
#ifndef MAILPULL_FILEUTIL_H
#define MAILPULL_FILEUTIL_H

#include <stddef.h>

/* write(2) all of p, retrying on EINTR and short writes. */
int write_all(int fd, const void *p, size_t n);

/* fsync the directory holding path (a new entry in it becomes durable). */
int fsync_dir_of(const char *path);

/* Create the directories leading to path (and path itself if last), mode
 * 0700, each new one made durable in its parent; existing ones are fine. */
int mkdirs(const char *path, int last);

#endif
