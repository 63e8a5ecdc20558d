/* Ground truth for tests/e2e/1100-fork-exec.sh: fork, exec, vfork,
 * posix_spawn. Every process makes a known number of allocations from its
 * own named functions (sizes differ per function):
 *   parent_before  7 x malloc(100), kept (leaked 7, 700 bytes), made just
 *                  before the first fork (still in the recorder's buffers)
 *   parent_after   3 x malloc(300), freed (after the children are reaped)
 *   child1_alloc   11 x malloc(110), freed; child 1 then exit(0)s
 *   child2_alloc   13 x malloc(130), freed; child 2 then execs
 *                  "EXEC2 17" (gt_exec2: exec2_alloc 17 calls, leaks 1)
 * Usage:
 *   gt_fork tree EXEC2      parent_before, fork child 1, fork child 2,
 *                           reap both, parent_after; 4 processes/traces
 *   gt_fork vfork EXEC2     parent_before, vfork + exec "EXEC2 5", reap,
 *                           parent_after
 *   gt_fork spawn EXEC2     parent_before, posix_spawn "EXEC2 6", reap,
 *                           parent_after
 *   gt_fork execfail        parent_before, execv of a missing file (fails),
 *                           parent_after, exit 0
 * Prints "parent PID" and "child PID" lines (one per child) on stdout after
 * reaping. Exits 0, or 10+ on a failed step. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

extern char **environ;
static void *kept[7];

NOINLINE void parent_before(void)
{
	for (int i = 0; i < 7; i++)
		if (!(kept[i] = malloc(100)))
			exit(10);
}

/* each its own frame calling malloc directly, so the first frame is the name */
NOINLINE void parent_after(void)
{
	void *p[3];
	for (int i = 0; i < 3; i++)
		if (!(p[i] = malloc(300)))
			exit(12);
	for (int i = 0; i < 3; i++)
		free(p[i]);
}

NOINLINE void child1_alloc(void)
{
	void *p[11];
	for (int i = 0; i < 11; i++)
		if (!(p[i] = malloc(110)))
			exit(13);
	for (int i = 0; i < 11; i++)
		free(p[i]);
}

NOINLINE void child2_alloc(void)
{
	void *p[13];
	for (int i = 0; i < 13; i++)
		if (!(p[i] = malloc(130)))
			exit(14);
	for (int i = 0; i < 13; i++)
		free(p[i]);
}

static int reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	const char *exec2 = argc > 2 ? argv[2] : "";
	pid_t c1, c2;

	if (strcmp(mode, "tree") == 0) {
		parent_before();
		c1 = fork();
		if (c1 < 0)
			return 15;
		if (c1 == 0) {
			child1_alloc();
			exit(0);
		}
		c2 = fork();
		if (c2 < 0)
			return 15;
		if (c2 == 0) {
			child2_alloc();
			execl(exec2, exec2, "17", (char *)NULL);
			_exit(127);
		}
		if (reap(c1) != 0 || reap(c2) != 0)
			return 16;
		parent_after();
		printf("parent %ld\nchild %ld\nchild %ld\n", (long)getpid(), (long)c1, (long)c2);
		return 0;
	}
	if (strcmp(mode, "vfork") == 0) {
		parent_before();
		c1 = vfork();
		if (c1 < 0)
			return 15;
		if (c1 == 0) {
			execl(exec2, exec2, "5", (char *)NULL);
			_exit(127);
		}
		if (reap(c1) != 0)
			return 16;
		parent_after();
		printf("parent %ld\nchild %ld\n", (long)getpid(), (long)c1);
		return 0;
	}
	if (strcmp(mode, "spawn") == 0) {
		char *args[] = { (char *)exec2, "6", NULL };
		parent_before();
		if (posix_spawn(&c1, exec2, NULL, NULL, args, environ) != 0)
			return 15;
		if (reap(c1) != 0)
			return 16;
		parent_after();
		printf("parent %ld\nchild %ld\n", (long)getpid(), (long)c1);
		return 0;
	}
	if (strcmp(mode, "execfail") == 0) {
		parent_before();
		execl("/nonexistent/gt_fork_no_such_program", "x", (char *)NULL);
		parent_after();
		printf("parent %ld\n", (long)getpid());
		return 0;
	}
	fprintf(stderr, "usage: gt_fork tree|vfork|spawn EXEC2 | execfail\n");
	return 2;
}
