/* json.h - JSON output for the dry run (--json) and --status --json. */
#ifndef MAILPULL_JSON_H
#define MAILPULL_JSON_H

#include <stdio.h>

/* s as a JSON string (null for NULL): quotes, backslashes and control
 * bytes escaped; a byte that is not part of valid UTF-8 (server text may be
 * anything) becomes U+FFFD, so every line is valid JSON. */
void json_put_string(FILE *fp, const char *s);

#endif
