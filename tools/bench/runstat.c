/* runstat OUT CMD [ARGS...]: run CMD (stdin/stdout/stderr inherited), then
 * append "WALL_SECONDS MAXRSS_KB STATUS" to OUT. MAXRSS is the largest RSS of
 * any process of the run (wait4: the child and its reaped descendants).
 * Exits with CMD's status. Part of the benchmark kit (tools/bench/run.sh). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: runstat OUT CMD [ARGS...]\n");
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	int st;
	struct rusage ru;
	while (wait4(pid, &st, 0, &ru) < 0)
		;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	FILE *f = fopen(argv[1], "a");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	fprintf(f, "%.6f %ld %d\n", wall, ru.ru_maxrss, code);
	fclose(f);
	return code;
}
