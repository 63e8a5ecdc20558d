/* Replays a fuzz target over its stored corpus as a plain regression test
 * (zstd's libregression), printing TAP: "ok N - FILE" per corpus file. A
 * crash or abort in the target fails the run.
 *
 * Usage: fuzz_<target>_replay [FILE|DIR...]. Without arguments the corpus is
 * tests/fuzz/corpus/<target>/, found through $MEMREC_SRC (the source tree),
 * else relative to this file's compiled-in path, else relative to the
 * binary (BUILD/tests/fuzz/ inside the source tree). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FILES 100000

static char **files;
static size_t n_files, files_cap;

static void add_file(const char *path)
{
	if (n_files == files_cap) {
		files_cap = files_cap ? 2 * files_cap : 64;
		files = realloc(files, files_cap * sizeof(*files));
		if (!files)
			abort();
	}
	files[n_files] = strdup(path);
	if (!files[n_files])
		abort();
	n_files++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add path (a file, or every regular file in a directory). Returns 0 or -1. */
static int add_path(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return -1;
	if (!S_ISDIR(sb.st_mode)) {
		add_file(path);
		return 0;
	}
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	size_t first = n_files;
	while ((e = readdir(d)) != NULL && n_files < MAX_FILES) {
		char p[PATH_MAX];
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p))
			continue;
		if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
			add_file(p);
	}
	closedir(d);
	qsort(files + first, n_files - first, sizeof(*files), cmp_str);
	return 0;
}

static int is_dir(const char *p)
{
	struct stat sb;

	return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The corpus directory for target name; 0 on success. */
static int find_corpus(const char *target, char *out, size_t cap)
{
	const char *src = getenv("MEMREC_SRC");
	char self[PATH_MAX];
	char dir[PATH_MAX];

	if (src && *src) {
		if (snprintf(out, cap, "%s/tests/fuzz/corpus/%s", src, target) < (int)cap &&
		    is_dir(out))
			return 0;
	}
	/* __FILE__ is tests/fuzz/replay_main.c (relative to the source tree
	 * when built by the Makefile, which runs there). */
	snprintf(dir, sizeof(dir), "%s", __FILE__);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		if (snprintf(out, cap, "%s/corpus/%s", dir, target) < (int)cap &&
		    is_dir(out))
			return 0;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		/* SRC/BUILD/tests/fuzz/fuzz_x_replay -> SRC */
		for (int up = 0; up < 4; up++) {
			slash = strrchr(self, '/');
			if (!slash)
				break;
			*slash = '\0';
		}
		if (snprintf(out, cap, "%s/tests/fuzz/corpus/%s", self, target) < (int)cap &&
		    is_dir(out))
			return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	char target[128];
	const char *base = strrchr(argv[0], '/');

	base = base ? base + 1 : argv[0];
	/* fuzz_<target>_replay -> <target> */
	if (strncmp(base, "fuzz_", 5) == 0)
		base += 5;
	snprintf(target, sizeof(target), "%s", base);
	char *suffix = strstr(target, "_replay");
	if (suffix)
		*suffix = '\0';

	if (argc > 1) {
		for (int i = 1; i < argc; i++) {
			if (add_path(argv[i]) != 0) {
				printf("1..0 # SKIP cannot read '%s': %s\n", argv[i], strerror(errno));
				return 1;
			}
		}
	} else {
		char dir[PATH_MAX];
		if (find_corpus(target, dir, sizeof(dir)) != 0 || add_path(dir) != 0) {
			printf("1..1\nnot ok 1 - corpus directory tests/fuzz/corpus/%s not found "
			       "(set MEMREC_SRC)\n", target);
			return 1;
		}
	}
	if (n_files == 0) {
		printf("1..0 # SKIP empty corpus for %s\n", target);
		return 0;
	}
	printf("1..%zu\n", n_files);
	fflush(stdout);
	for (size_t i = 0; i < n_files; i++) {
		FILE *f = fopen(files[i], "rb");
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0;
		int ok = f != NULL;

		while (ok) {
			if (len == cap) {
				cap = cap ? 2 * cap : 4096;
				uint8_t *nb = realloc(buf, cap);
				if (!nb)
					abort();
				buf = nb;
			}
			size_t n = fread(buf + len, 1, cap - len, f);
			len += n;
			if (n == 0) {
				ok = !ferror(f);
				break;
			}
		}
		if (f)
			fclose(f);
		if (ok) {
			/* Exact size, so out-of-bounds reads hit the end of the block. */
			uint8_t *exact = malloc(len ? len : 1);
			if (!exact)
				abort();
			if (len)
				memcpy(exact, buf, len);
			LLVMFuzzerTestOneInput(exact, len);
			free(exact);
			printf("ok %zu - %s\n", i + 1, files[i]);
		} else {
			printf("not ok %zu - %s: cannot read\n", i + 1, files[i]);
		}
		fflush(stdout);
		free(buf);
		free(files[i]);
	}
	free(files);
	return 0;
}
