/* fileutil.c - file operations shared by the targets and the state. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "xmalloc.h"

int
write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
fsync_dir_of(const char *path)
{
	char *dir = xstrdup(path), *p;
	int fd, ret = -1;

	p = strrchr(dir, '/');
	if (p == NULL)
		strcpy(dir, ".");
	else if (p == dir)
		p[1] = '\0';
	else
		*p = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		goto out;
	if (fsync(fd) == -1) {
		close(fd);
		goto out;
	}
	ret = close(fd);
out:
	free(dir);
	return ret;
}

static int
mkdir_one(const char *path)
{
	if (mkdir(path, 0700) == -1)
		return errno == EEXIST ? 0 : -1;
	return fsync_dir_of(path);
}

int
mkdirs(const char *path, int last)
{
	char *dir = xstrdup(path), *p;
	int ret = -1;

	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir_one(dir) == -1)
			goto out;
		*p = '/';
	}
	ret = last ? mkdir_one(dir) : 0;
out:
	free(dir);
	return ret;
}
