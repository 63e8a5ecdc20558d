/* The second program of tests/e2e/1100-fork-exec.sh (exec'd by gt_fork, or
 * run by sh). Usage: gt_exec2 N [cat]
 *   cat          first copy stdin to stdout (a pipeline's reader)
 *   exec2_alloc  N calls of malloc(170); all freed but the first (leaked 1
 *                block, 170 bytes) when N > 0
 * Prints "exec2 pid PID ppid PPID n N" on stdout. Exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;

NOINLINE void exec2_alloc(long n)
{
	void *first = NULL;

	for (long i = 0; i < n; i++) {
		void *p = malloc(170);
		if (!p)
			exit(1);
		if (i == 0)
			first = p;
		else
			free(p);
	}
	gt_sink = first;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
	char buf[4096];
	ssize_t r;

	if (argc > 2 && strcmp(argv[2], "cat") == 0)
		while ((r = read(0, buf, sizeof buf)) > 0)
			if (write(1, buf, (size_t)r) != r)
				return 3;
	exec2_alloc(n);
	printf("exec2 pid %ld ppid %ld n %ld\n", (long)getpid(), (long)getppid(), n);
	return 0;
}
