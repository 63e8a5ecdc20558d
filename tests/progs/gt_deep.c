/* Backtrace depth: deep_leaf() mallocs 4242 bytes (kept, so it shows as a
 * leak) at the bottom of recurse(N) .. recurse(0) called from main.
 * Usage: gt_deep N. The stack of the allocation, innermost first:
 *   deep_leaf, recurse x (N + 1), main, libc start-up frames.
 * Prints nothing. */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;
volatile int gt_depth_seen;

NOINLINE void deep_leaf(void)
{
	gt_sink = malloc(4242);
}

NOINLINE void recurse(int n)
{
	if (n == 0)
		deep_leaf();
	else
		recurse(n - 1);
	gt_depth_seen++; /* not a tail call */
}

int main(int argc, char **argv)
{
	recurse(argc > 1 ? atoi(argv[1]) : 10);
	return gt_sink ? 0 : 1;
}
