/* source.c - what the sources share. */
#include <stdlib.h>

#include "source.h"

void
folders_free(struct folder *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].utf8);
	}
	free(v);
}
