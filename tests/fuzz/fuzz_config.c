/* fuzz_config.c - libFuzzer harness: any bytes as a config file. Loading
 * must end in a config or in errors (never a crash, a leak or a read out
 * of bounds); a loaded one must free cleanly. Inputs go through a file, as
 * config_load reads one; log lines are silenced. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	FILE *fp;

	if (path[0] == '\0') {
		int fd;

		snprintf(path, sizeof(path), "/tmp/mailpull-fuzz-config-XXXXXX");
		if ((fd = mkstemp(path)) == -1)
			abort();
		close(fd);
		setenv("HOME", "/nonexistent-home", 1);
		setenv("MAILPULL_FUZZ", "x", 1);
		log_init(0, (enum log_level)-1);        /* nothing is logged */
	}
	if ((fp = fopen(path, "w")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, fp) != size)
		abort();
	fclose(fp);
	chmod(path, 0600);
	memset(&cfg, 0, sizeof(cfg));
	if (config_load(&cfg, path) == 0)
		config_free(&cfg);
	return 0;
}
