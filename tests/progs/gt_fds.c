/* Ground truth for "the traced program behaves exactly as without the
 * recorder": the descriptors a program gets from open() and pipe() must be
 * the same numbers with and without memrec (libunwind's own pipe and the
 * trace file must not take the low numbers). Prints them, one per line,
 * after allocating (so the recorder has unwound at least once). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static __attribute__((noinline)) void *alloc_some(void)
{
	return malloc(100);
}

int main(void)
{
	void *p = alloc_some();
	int a = open("/dev/null", O_RDONLY);
	int fds[2];
	int rc = pipe(fds);
	int b = open("/dev/null", O_RDONLY);

	printf("open %d\npipe %d %d %d\nopen %d\n", a, rc, fds[0], fds[1], b);
	free(p);
	return 0;
}
