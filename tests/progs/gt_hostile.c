/* Ground truth for tests/e2e/1105-hostile-programs.sh.
 *   r0_alloc    malloc(100) x 4: each released by realloc(p, 0) (glibc frees
 *               it and returns NULL): 4 calls, 400 bytes, none leaked
 *   r0_realloc  the 4 realloc(p, 0) calls (whether they count as calls of
 *               size 0 is the analyzer's definition: not asserted)
 *   free_null   free(NULL) x K (default 9): no frees, no calls
 *   huge_alloc  malloc(SIZE_MAX / 2) x 2, both fail (NULL, ENOMEM):
 *               2 failed calls, 0 bytes, nothing live, nothing leaked
 *   keep_alloc  malloc(1000) x 1, kept: the only leak of this program
 * Usage: gt_hostile [K]. Prints nothing; exits 0, or 10+ when libc misbehaves. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;
static void *blocks[4];

NOINLINE void r0_alloc(void)
{
	for (int i = 0; i < 4; i++)
		if (!(blocks[i] = malloc(100)))
			exit(10);
}

NOINLINE void r0_realloc(void)
{
	for (int i = 0; i < 4; i++) {
		void *q = realloc(blocks[i], 0);
		if (q) /* not glibc's behaviour; keep the figures anyway */
			free(q);
		blocks[i] = NULL;
	}
}

NOINLINE void free_null(int k)
{
	for (int i = 0; i < k; i++)
		free(NULL);
}

NOINLINE void huge_alloc(void)
{
	volatile size_t huge = SIZE_MAX / 2;
	for (int i = 0; i < 2; i++) {
		errno = 0;
		void *p = malloc(huge);
		if (p || errno != ENOMEM)
			exit(11);
	}
}

NOINLINE void keep_alloc(void)
{
	gt_sink = malloc(1000);
}

int main(int argc, char **argv)
{
	r0_alloc();
	r0_realloc();
	free_null(argc > 1 ? atoi(argv[1]) : 9);
	huge_alloc();
	keep_alloc();
	return 0;
}
