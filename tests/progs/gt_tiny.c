/* A tiny program for tests/e2e/2002-dump.sh: sizes no libc start-up
 * allocation uses, so their alloc records can be counted in a dump.
 *
 *   tiny_work   malloc(12345) x 3 (2 freed, 1 leaked),
 *               calloc(7, 3001) x 1 (21007 bytes, freed),
 *               realloc of one 12345 block to 23456 (then freed)
 *   => alloc records with size 12345: 3, 21007: 1, 23456: 1
 *      free records: kind free 3 (12345, 21007, 23456), kind realloc 1
 * Prints nothing. */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;

NOINLINE void tiny_work(void)
{
	char *a = malloc(12345);
	char *b = malloc(12345);
	char *c = malloc(12345);
	char *d = calloc(7, 3001);

	if (!a || !b || !c || !d)
		exit(1);
	gt_sink = c;
	free(d);
	free(a);
	char *e = realloc(b, 23456);
	if (!e)
		exit(1);
	free(e);
}

int main(void)
{
	tiny_work();
	return 0;
}
