/* hdrscan.h - pick header fields out of a message as its bytes stream by.
 *
 * Pure and incremental: feed the message in any pieces; the scanner looks
 * only at the header section (it stops at the first empty line) and keeps
 * the unfolded value of Message-ID, capped in length. Costs nothing once the
 * header has ended.
 */
#ifndef MAILPULL_HDRSCAN_H
#define MAILPULL_HDRSCAN_H

#include <stddef.h>

#define HDRSCAN_LINE_MAX 1000

struct hdrscan {
	int done;                       /* the header section has ended */
	int in_msgid;                   /* the field being read is Message-ID */
	size_t linelen;                 /* bytes of the current line seen */
	char line[HDRSCAN_LINE_MAX];    /* start of the current line (capped) */
	char message_id[HDRSCAN_LINE_MAX];
};

void hdrscan_init(struct hdrscan *h);
void hdrscan_feed(struct hdrscan *h, const char *p, size_t n);
/* The Message-ID value ("<...>"), or NULL if none was seen. */
const char *hdrscan_message_id(const struct hdrscan *h);

#endif
