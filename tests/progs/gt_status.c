/* A program with known output and exit status, for tests/e2e/1000-memrec-basics.sh.
 * Arguments are processed in order:
 *   lines N      print N numbered lines to stdout and N to stderr (stdio,
 *                unbuffered stderr, line-buffered or full stdout as usual),
 *                allocating a little along the way
 *   sym NAME     print "sym NAME found" or "sym NAME missing" (dlsym in the
 *                global scope: shows whether an LD_PRELOAD library is loaded)
 *   exit S       exit(S)
 *   _exit S      _exit(S) (stdout flushed first)
 *   _Exit S      _Exit(S) (stdout flushed first)
 *   signal N     kill itself with signal N (default action)
 * Without exit/signal it returns 0. */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

NOINLINE static void lines(long n)
{
	for (long i = 1; i <= n; i++) {
		char *buf = malloc(32 + (size_t)i);
		if (!buf)
			exit(1);
		snprintf(buf, 32 + (size_t)i, "line %ld", i);
		printf("stdout %s\n", buf);
		fprintf(stderr, "stderr %s\n", buf);
		free(buf);
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : "";

		if (strcmp(a, "lines") == 0) {
			lines(strtol(v, NULL, 10));
			i++;
		} else if (strcmp(a, "sym") == 0) {
			printf("sym %s %s\n", v, dlsym(RTLD_DEFAULT, v) ? "found" : "missing");
			i++;
		} else if (strcmp(a, "exit") == 0) {
			exit((int)strtol(v, NULL, 10));
		} else if (strcmp(a, "_exit") == 0) {
			fflush(stdout);
			_exit((int)strtol(v, NULL, 10));
		} else if (strcmp(a, "_Exit") == 0) {
			fflush(stdout);
			_Exit((int)strtol(v, NULL, 10));
		} else if (strcmp(a, "signal") == 0) {
			fflush(stdout);
			int sig = (int)strtol(v, NULL, 10);
			signal(sig, SIG_DFL);
			kill(getpid(), sig);
			return 120; /* signal ignored or blocked */
		} else {
			fprintf(stderr, "gt_status: unknown argument '%s'\n", a);
			return 2;
		}
	}
	return 0;
}
