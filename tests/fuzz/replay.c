/* SPDX-License-Identifier: MIT */
/*
 * replay.c - feed files to the fuzz target without libFuzzer, so that any
 * compiler's build replays the corpus (meson suite fuzz).
 *
 * usage: fuzz-replay FILE_OR_DIR...
 * Exit 0 after every file ran (the target aborts on a finding), 1 if a
 * file could not be read, 2 on a usage error.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		perror(path);
		if (f)
			fclose(f);
		return -1;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned int files = 0;
	int failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
		return 2;
	}
	for (int a = 1; a < argc; a++) {
		struct stat st;
		DIR *d;
		struct dirent *e;

		if (stat(argv[a], &st)) {
			perror(argv[a]);
			failed = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed |= replay_file(argv[a]) != 0;
			files++;
			continue;
		}
		d = opendir(argv[a]);
		while (d && (e = readdir(d))) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[a], e->d_name);
			failed |= replay_file(path) != 0;
			files++;
		}
		if (d)
			closedir(d);
	}
	printf("fuzz-replay: %u inputs replayed%s\n", files,
	       failed ? ", some unreadable" : ", no finding");
	return failed || files == 0;
}
