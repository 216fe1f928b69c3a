/* SPDX-License-Identifier: MIT */
/* Asymmetric fences: membarrier(2) and the test for private memory. */
#include <errno.h>
#include <inttypes.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "asym.h"

static int membarrier(int cmd)
{
	return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

enum apq_mem_kind apq_mem_kind(const void *mem)
{
	enum apq_mem_kind kind = APQ_MEM_UNKNOWN;
	uintptr_t at = (uintptr_t)mem, lo, hi;
	FILE *f = fopen("/proc/self/maps", "re");
	char perms[8], *line = NULL;
	size_t cap = 0;

	if (!f)
		return APQ_MEM_UNKNOWN;
	/* getline(): a mapping's path may be longer than any fixed line. */
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &lo, &hi,
			   perms) != 3 ||
		    at < lo || at >= hi)
			continue;
		/* "rw-p": private, copied on fork; "rw-s": shared. */
		kind = perms[3] == 'p' ? APQ_MEM_PRIVATE : APQ_MEM_SHARED;
		break;
	}
	free(line);
	fclose(f);
	return kind;
}

static pthread_once_t registered_once = PTHREAD_ONCE_INIT;
static bool registered;

static void asym_register(void)
{
	int cmds = membarrier(MEMBARRIER_CMD_QUERY);

	registered = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
		     membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

bool apq_asym_ready(void)
{
	pthread_once(&registered_once, asym_register);
	return registered;
}

int apq_asym_barrier(void)
{
	return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 ? 0 : -errno;
}
