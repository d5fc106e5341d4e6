/* xmalloc.h - allocation that aborts on failure, and nothing else. */
#ifndef MAILPULL_XMALLOC_H
#define MAILPULL_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Overwrite then free a secret string (explicit_bzero). NULL is fine. */
void free_secret(char *s);

#endif
