/* Ground truth for tests/e2e/3000-ground-truth.sh: every named function
 * makes a known number of allocation calls of known sizes. No stdio (its
 * buffers allocate); the figures below are what the test asserts.
 *
 *   leak_some        malloc(100) x 7, never freed: leaked 7 blocks, 700 bytes
 *   build_plateau    malloc(8192) x 4096 live together, then freed:
 *                    33554432 bytes live at the peak (32 MiB)
 *   churn            malloc(64)/free x 1000 back to back: 1000 temporary
 *   use_calloc       calloc(10, 24) x 3, freed: 3 calls, 720 bytes
 *   realloc_chain    malloc(16), realloc to 32 64 128 256 512, free:
 *                    6 calls, 1008 bytes (each realloc = one call, new size)
 *   realloc_null_zero realloc(NULL, 40) then realloc(p, 0) (frees p):
 *                    1 call, 40 bytes, nothing leaked
 *   use_reallocarray reallocarray(NULL, 10, 12), reallocarray(p, 20, 12),
 *                    free: 2 calls, 360 bytes
 *   use_posix_memalign posix_memalign(64, 1000) x 4, freed: 4 calls, 4000
 *   use_aligned_alloc aligned_alloc(128, 1024) x 5, freed: 5 calls, 5120
 *   use_memalign     memalign(256, 300) x 6, freed: 6 calls, 1800
 *   use_valloc       valloc(5000) x 2, freed: 2 calls, 10000
 *   use_pvalloc      pvalloc(8192) x 3, freed: 3 calls, 24576
 *   edge_cases       free(NULL) x 3 (not frees), malloc(0) freed at once,
 *                    malloc(SIZE_MAX / 2) and calloc(SIZE_MAX / 4, 8) failing:
 *                    3 calls (2 failed), 0 bytes, 1 temporary; errno must be
 *                    ENOMEM after each failure (the recorder keeps errno)
 *   bad_memalign     posix_memalign(&p, 3, 10) must return EINVAL (a failed
 *                    call; whether it counts as one is not asserted)
 *
 * Exits 0 and prints nothing; exits 1 with a message if an allocation fails. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

/* Keep pointers reachable so the compiler cannot drop the calls. */
void *volatile gt_sink;
static void *leaked[7];
static void *plateau[4096];

static void die(const char *what)
{
	write(2, "gt_basic: allocation failed: ", 29);
	write(2, what, strlen(what));
	write(2, "\n", 1);
	_exit(1);
}

NOINLINE void leak_some(void)
{
	for (int i = 0; i < 7; i++) {
		leaked[i] = malloc(100);
		if (!leaked[i])
			die("leak_some");
	}
}

NOINLINE void build_plateau(void)
{
	for (int i = 0; i < 4096; i++) {
		plateau[i] = malloc(8192);
		if (!plateau[i])
			die("build_plateau");
		memset(plateau[i], i & 0xff, 8192);
	}
	for (int i = 0; i < 4096; i++)
		free(plateau[i]);
}

NOINLINE void churn(void)
{
	for (int i = 0; i < 1000; i++) {
		void *p = malloc(64);
		if (!p)
			die("churn");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void use_calloc(void)
{
	for (int i = 0; i < 3; i++) {
		void *p = calloc(10, 24);
		if (!p)
			die("calloc");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void realloc_chain(void)
{
	char *p = malloc(16);

	if (!p)
		die("realloc_chain");
	for (size_t sz = 32; sz <= 512; sz *= 2) {
		char *q = realloc(p, sz);
		if (!q)
			die("realloc");
		p = q;
	}
	gt_sink = p;
	free(p);
}

NOINLINE void realloc_null_zero(void)
{
	char *p = realloc(NULL, 40);

	if (!p)
		die("realloc(NULL)");
	gt_sink = p;
	p = realloc(p, 0); /* glibc: frees p, returns NULL */
	gt_sink = p;
}

NOINLINE void use_reallocarray(void)
{
	char *p = reallocarray(NULL, 10, 12);

	if (!p)
		die("reallocarray");
	char *q = reallocarray(p, 20, 12);
	if (!q)
		die("reallocarray");
	gt_sink = q;
	free(q);
}

NOINLINE void use_posix_memalign(void)
{
	for (int i = 0; i < 4; i++) {
		void *p = NULL;
		if (posix_memalign(&p, 64, 1000) != 0)
			die("posix_memalign");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void use_aligned_alloc(void)
{
	for (int i = 0; i < 5; i++) {
		void *p = aligned_alloc(128, 1024);
		if (!p)
			die("aligned_alloc");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void use_memalign(void)
{
	for (int i = 0; i < 6; i++) {
		void *p = memalign(256, 300);
		if (!p)
			die("memalign");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void use_valloc(void)
{
	for (int i = 0; i < 2; i++) {
		void *p = valloc(5000);
		if (!p)
			die("valloc");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void use_pvalloc(void)
{
	for (int i = 0; i < 3; i++) {
		void *p = pvalloc(8192);
		if (!p)
			die("pvalloc");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void edge_cases(void)
{
	free(NULL);
	free(NULL);
	free(NULL);
	void *p = malloc(0);
	if (!p)
		die("malloc(0)");
	gt_sink = p;
	free(p);
	volatile size_t huge = SIZE_MAX / 2, n_huge = SIZE_MAX / 4;
	errno = 0;
	p = malloc(huge);
	if (p || errno != ENOMEM)
		die("malloc(SIZE_MAX / 2) did not fail with ENOMEM");
	errno = 0;
	p = calloc(n_huge, 8);
	if (p || errno != ENOMEM)
		die("calloc(SIZE_MAX / 4, 8) did not fail with ENOMEM");
}

NOINLINE void bad_memalign(void)
{
	static char marker;
	void *p = &marker;

	if (posix_memalign(&p, 3, 10) != EINVAL)
		die("posix_memalign(&p, 3, 10) did not return EINVAL");
	if (p != &marker)
		die("posix_memalign changed *p on failure");
}

int main(void)
{
	leak_some(); /* before the plateau, so the peak is 32 MiB + 700 */
	build_plateau();
	churn();
	use_calloc();
	realloc_chain();
	realloc_null_zero();
	use_reallocarray();
	use_posix_memalign();
	use_aligned_alloc();
	use_memalign();
	use_valloc();
	use_pvalloc();
	edge_cases();
	bad_memalign();
	gt_sink = leaked[0];
	return 0;
}
