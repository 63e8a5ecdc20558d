/* Ground truth for tests/e2e/2012-growth.sh: memory over time. One thread,
 * no stdio in the measured part. Every iteration begins with
 * memrec_mark("iter") and ends with a 20 ms sleep. Modes:
 *
 *   leak N BYTES  steady growth: N iterations; each leaks one block of
 *                 BYTES from leak_step (never freed) and makes 50 temporary
 *                 malloc(512)/free pairs (churn). The heap grows by exactly
 *                 BYTES per marker interval; the rate in bytes per second is
 *                 BYTES / (mean time between marks), which the program
 *                 measures itself (CLOCK_MONOTONIC at each mark) and prints
 *                 at the end: "rate R per_marker BYTES".
 *   flat N        a steady state: 100 x malloc(1024) kept from the start
 *                 (steady_set), then N iterations of 50 x malloc(512) kept
 *                 together and freed (work_batch). Constant.
 *   spike N       flat, plus, in iteration N / 2, spike_alloc: 50 x
 *                 malloc(1 MiB) held for 60 ms, then freed: one large
 *                 temporary spike of 52428800 bytes above the steady heap.
 *
 * Exits 0; exits 1 with a message on a bad argument or a failed allocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memrec.h"

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;
static void *steady[100];
static void *batch[50];
static void *spike[50];

static void die(const char *what)
{
	write(2, "gt_growth: ", 11);
	write(2, what, strlen(what));
	write(2, "\n", 1);
	_exit(1);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Each function calls malloc itself: its name is the call site's. */
#define CHECK(p) ((p) ? (void)(gt_sink = (p)) : die("allocation failed"))

NOINLINE void leak_step(size_t bytes)
{
	void *p = malloc(bytes); /* leaked on purpose */
	CHECK(p);
}

NOINLINE void churn(void)
{
	for (int i = 0; i < 50; i++) {
		void *p = malloc(512);
		CHECK(p);
		free(p);
	}
}

NOINLINE void steady_set(void)
{
	for (int i = 0; i < 100; i++) {
		steady[i] = malloc(1024);
		CHECK(steady[i]);
	}
}

NOINLINE void work_batch(void)
{
	for (int i = 0; i < 50; i++) {
		batch[i] = malloc(512);
		CHECK(batch[i]);
	}
	for (int i = 0; i < 50; i++)
		free(batch[i]);
}

NOINLINE void spike_alloc(void)
{
	for (int i = 0; i < 50; i++) {
		spike[i] = malloc(1 << 20);
		CHECK(spike[i]);
	}
	sleep_ms(60);
	for (int i = 0; i < 50; i++)
		free(spike[i]);
}

static long arg(char **argv, int i, long dflt)
{
	char *end;
	long v;

	if (!argv[i])
		return dflt;
	v = strtol(argv[i], &end, 10);
	if (*end || v <= 0)
		die("bad argument");
	return v;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "leak";
	long n = arg(argv, argc > 2 ? 2 : argc, 40);

	if (!strcmp(mode, "leak")) {
		long bytes = arg(argv, argc > 3 ? 3 : argc, 65536);
		double first = 0, last = 0;
		for (long i = 0; i < n; i++) {
			double t = now_s();
			memrec_mark("iter");
			if (i == 0)
				first = t;
			last = t;
			leak_step((size_t)bytes);
			churn();
			sleep_ms(20);
		}
		/* The rate between the first and the last mark. */
		printf("rate %.0f per_marker %ld\n", n > 1 ? (double)bytes * (double)(n - 1) / (last - first) : 0.0,
		       bytes);
		return 0;
	}
	if (strcmp(mode, "flat") && strcmp(mode, "spike"))
		die("mode: leak, flat or spike");
	steady_set();
	for (long i = 0; i < n; i++) {
		memrec_mark("iter");
		work_batch();
		if (!strcmp(mode, "spike") && i == n / 2)
			spike_alloc();
		sleep_ms(20);
	}
	for (int i = 0; i < 100; i++)
		free(steady[i]);
	return 0;
}
