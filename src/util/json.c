/* json.c - JSON strings for machine-readable output. */
#include <stdio.h>

#include "json.h"

void
json_put_string(FILE *fp, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL) {
		fputs("null", fp);
		return;
	}
	fputc('"', fp);
	while (*p) {
		size_t len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 :
		    (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		size_t j;

		for (j = 1; len > 1 && j < len; j++)
			if ((p[j] & 0xc0) != 0x80)
				break;
		if (len == 0 || (len > 1 && j < len) ||
		    (len == 2 && *p < 0xc2)) {
			fputs("\\ufffd", fp);
			p++;
		} else if (len > 1) {
			fwrite(p, 1, len, fp);
			p += len;
		} else {
			if (*p == '"' || *p == '\\')
				fprintf(fp, "\\%c", *p);
			else if (*p < 0x20 || *p == 0x7f)
				fprintf(fp, "\\u%04x", *p);
			else
				fputc(*p, fp);
			p++;
		}
	}
	fputc('"', fp);
}
