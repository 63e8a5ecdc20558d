/* Ground truth for tests/e2e/3103-histograms.sh: allocations of known sizes
 * and lifetimes from named functions. No stdio (its buffers allocate).
 * Power-of-two buckets (docs/schema.md "Histograms"): size [lo, 2 lo),
 * lifetime in other allocations by the same thread in between, lifetime in
 * ms (tick resolution: the test allows a tick either side).
 *
 *   sizes_1      malloc(1) x 10, each freed at once     size 1 B,          between 0
 *   sizes_24     malloc(24) x 20, freed at once         size [16, 32),     between 0
 *   sizes_100    malloc(100) x 30, freed at once        size [64, 128),    between 0
 *   sizes_5000   malloc(5000) x 40, freed at once       size [4 KiB, 8 KiB), between 0
 *   gap_3        8 rounds: malloc(48), 3 x filler(), free: size [32, 64), between 3 ([2, 4))
 *   gap_16       4 rounds: malloc(40), 16 x filler(), free: size [32, 64), between 16 ([16, 32))
 *   filler       malloc(8) freed at once (24 calls under gap_3, 64 under gap_16):
 *                size [8, 16), between 0
 *   sleep_90     4 x: malloc(256), sleep 90 ms, free: size [256, 512),
 *                between 0, lifetime [64, 128) ms (90: 26 ms of tick jitter
 *                either way stays in the bucket)
 *   sleep_300    2 x: malloc(600), sleep 300 ms, free: size [512, 1 KiB),
 *                between 0, lifetime [256, 512) ms
 *   keep         malloc(3000) x 3, never freed: size [2 KiB, 4 KiB), never freed
 *
 * Exits 0, prints nothing. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;
static void *kept[3];

static void die(const char *what)
{
	write(2, "gt_hist: allocation failed: ", 28);
	write(2, what, strlen(what));
	write(2, "\n", 1);
	_exit(1);
}

static void *xmalloc(size_t n, const char *what)
{
	void *p = malloc(n);

	if (!p)
		die(what);
	gt_sink = p;
	return p;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

NOINLINE void sizes_1(void)
{
	for (int i = 0; i < 10; i++)
		free(xmalloc(1, "sizes_1"));
}

NOINLINE void sizes_24(void)
{
	for (int i = 0; i < 20; i++)
		free(xmalloc(24, "sizes_24"));
}

NOINLINE void sizes_100(void)
{
	for (int i = 0; i < 30; i++)
		free(xmalloc(100, "sizes_100"));
}

NOINLINE void sizes_5000(void)
{
	for (int i = 0; i < 40; i++)
		free(xmalloc(5000, "sizes_5000"));
}

NOINLINE void filler(void)
{
	free(xmalloc(8, "filler"));
}

NOINLINE void gap_3(void)
{
	for (int r = 0; r < 8; r++) {
		void *p = xmalloc(48, "gap_3");
		for (int i = 0; i < 3; i++)
			filler();
		free(p);
	}
}

NOINLINE void gap_16(void)
{
	for (int r = 0; r < 4; r++) {
		void *p = xmalloc(40, "gap_16");
		for (int i = 0; i < 16; i++)
			filler();
		free(p);
	}
}

NOINLINE void sleep_90(void)
{
	for (int r = 0; r < 4; r++) {
		void *p = xmalloc(256, "sleep_90");
		sleep_ms(90);
		free(p);
	}
}

NOINLINE void sleep_300(void)
{
	for (int r = 0; r < 2; r++) {
		void *p = xmalloc(600, "sleep_300");
		sleep_ms(300);
		free(p);
	}
}

NOINLINE void keep(void)
{
	for (int i = 0; i < 3; i++)
		kept[i] = xmalloc(3000, "keep");
}

int main(void)
{
	sizes_1();
	sizes_24();
	sizes_100();
	sizes_5000();
	gap_3();
	gap_16();
	sleep_90();
	sleep_300();
	keep();
	return 0;
}
