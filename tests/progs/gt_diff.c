/* Ground truth for tests/e2e/3104-diff.sh: built twice, as gt_diff (FACTOR
 * 1) and gt_diff_v2 (FACTOR 2, see the Makefile): between the two builds
 * only load_items doubles its allocations. No stdio.
 *
 *   load_items   malloc(64) x 1000 * FACTOR, all live together, then freed:
 *                calls 1000 / 2000, peak bytes 64000 / 128000 (the peak is
 *                reached inside it), temporary 0 / 0 (only its last block is
 *                freed before another allocation: 1 / 1)
 *   parse_line   malloc(32) x 500 freed at once: 500 temporary, both builds
 *   remember     malloc(100) x 5, never freed: 500 leaked bytes, both builds
 *
 * Exits 0, prints nothing. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FACTOR
#define FACTOR 1
#endif
#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;
static void *items[1000 * FACTOR];
static void *remembered[5];

static void die(const char *what)
{
	write(2, "gt_diff: allocation failed: ", 28);
	write(2, what, strlen(what));
	write(2, "\n", 1);
	_exit(1);
}

NOINLINE void load_items(void)
{
	for (int i = 0; i < 1000 * FACTOR; i++)
		if (!(items[i] = malloc(64)))
			die("load_items");
	for (int i = 0; i < 1000 * FACTOR; i++)
		free(items[i]);
}

NOINLINE void parse_line(void)
{
	for (int i = 0; i < 500; i++) {
		void *p = malloc(32);
		if (!p)
			die("parse_line");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void remember(void)
{
	for (int i = 0; i < 5; i++)
		if (!(remembered[i] = malloc(100)))
			die("remember");
}

int main(void)
{
	parse_line();
	load_items();
	remember();
	return 0;
}
