/* Ground truth for tests/e2e/2013-insights.sh: one pattern per mode, each
 * the pattern of one insight of memana report (docs/usage.md "Insights"),
 * with known figures; mode "none" has none of them. One thread, no stdio;
 * each function calls malloc itself (its name is the call site's).
 *
 *   temp     tmp_buffers: 2000 x (malloc(256), free): 2000 temporary
 *            allocations of 256 bytes, 100% of its calls
 *   realloc  grow_array: p = malloc(64) (its own site), then 200 reallocs
 *            at one site growing it by 64 bytes each, to 12864 bytes: 200
 *            growing reallocs of 200 realloc calls
 *   pool     make_nodes: 5000 x malloc(48) live together (the peak:
 *            240000 bytes), then freed
 *   early    load_config: malloc(1 MiB) right at the start, never freed;
 *            the program then sleeps 200 ms (the block is in the first 10%
 *            of the run)
 *   leak     sleeps 100 ms, then leak_helper (malloc(100), never freed)
 *            called 3 times from path_a and 5 times from path_b: 800
 *            bytes in 8 blocks from 2 call paths, none early
 *   none     balanced: 100 blocks of 16..1600 bytes kept together and
 *            freed; no insight applies
 *
 * Exits 0; exits 1 with a message on a bad mode or a failed allocation. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;
static void *keep[5000];

static void die(const char *what)
{
	write(2, "gt_insights: ", 13);
	write(2, what, strlen(what));
	write(2, "\n", 1);
	_exit(1);
}

#define CHECK(p) ((p) ? (void)(gt_sink = (p)) : die("allocation failed"))

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

NOINLINE void tmp_buffers(void)
{
	for (int i = 0; i < 2000; i++) {
		void *p = malloc(256);
		CHECK(p);
		free(p);
	}
}

NOINLINE void grow_array(void)
{
	char *p = malloc(64);

	CHECK(p);
	for (size_t n = 128; n <= 64 * 201; n += 64) {
		char *q = realloc(p, n);
		CHECK(q);
		p = q;
	}
	free(p);
}

NOINLINE void make_nodes(void)
{
	for (int i = 0; i < 5000; i++) {
		keep[i] = malloc(48);
		CHECK(keep[i]);
	}
	for (int i = 0; i < 5000; i++)
		free(keep[i]);
}

NOINLINE void load_config(void)
{
	void *p = malloc(1 << 20); /* kept until exit */
	CHECK(p);
	memset(p, 1, 1 << 20);
}

NOINLINE void leak_helper(void)
{
	void *p = malloc(100); /* leaked */
	CHECK(p);
}

NOINLINE void path_a(void)
{
	for (int i = 0; i < 3; i++)
		leak_helper();
}

NOINLINE void path_b(void)
{
	for (int i = 0; i < 5; i++)
		leak_helper();
}

NOINLINE void balanced(void)
{
	for (int i = 0; i < 100; i++) {
		keep[i] = malloc((size_t)(16 * (i + 1)));
		CHECK(keep[i]);
	}
	for (int i = 0; i < 100; i++)
		free(keep[i]);
}

int main(int argc, char **argv)
{
	const char *m = argc > 1 ? argv[1] : "";

	if (!strcmp(m, "temp"))
		tmp_buffers();
	else if (!strcmp(m, "realloc"))
		grow_array();
	else if (!strcmp(m, "pool"))
		make_nodes();
	else if (!strcmp(m, "early")) {
		load_config();
		sleep_ms(200);
	} else if (!strcmp(m, "leak")) {
		sleep_ms(100);
		path_a();
		path_b();
	} else if (!strcmp(m, "none"))
		balanced();
	else
		die("mode: temp, realloc, pool, early, leak or none");
	return 0;
}
