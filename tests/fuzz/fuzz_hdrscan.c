/* fuzz_hdrscan.c - libFuzzer harness: the header scanner on any bytes, in
 * one piece and split in two, must agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdrscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hdrscan a, b;
	size_t cut = size ? data[0] % (size + 1) : 0;
	const char *ma, *mb;

	hdrscan_init(&a);
	hdrscan_feed(&a, (const char *)data, size);
	hdrscan_init(&b);
	hdrscan_feed(&b, (const char *)data, cut);
	hdrscan_feed(&b, (const char *)data + cut, size - cut);
	ma = hdrscan_message_id(&a);
	mb = hdrscan_message_id(&b);
	if ((ma == NULL) != (mb == NULL) || (ma && strcmp(ma, mb) != 0))
		abort();
	return 0;
}
