/* Ground truth for tests/e2e/2006-sql-cookbook.sh: every recipe of the SQL
 * cookbook in docs/schema.md has a known answer here. No stdio. Order of
 * events (main thread unless said):
 *
 *   cache_leak     malloc(300) x 10, never freed (the only leak)     LEAK_LINE
 *   parse_request  malloc(64) x 500, each freed at once (temporary)
 *   config_load    make_string(40) x 30, freed at once
 *   handle_cmd     make_string(40) x 70, freed at once
 *   mixed_sizes    malloc 10 x 8 B, 20 x 100 B, 5 x 3000 B, freed after
 *   build_index    malloc(1024) x 200, kept
 *   load_table     malloc(4096) x 50, kept: the heap peak is reached at its
 *                  last call: 3000 + 204800 + 204800 bytes live
 *   drop_table, drop_index: free them (after the peak)
 *   grow_buffer    malloc(24), then realloc to 48, 96, ..., 6144 (8 reallocs), free
 *   long_lived     malloc(512) x 3 held together for 200 ms, then freed
 *   thread "worker-a": small_jobs  malloc(128) x 300, each freed at once
 *   thread "worker-b": big_jobs    malloc(2000) x 100, each freed at once
 *   (the workers run one after the other, after everything above)
 *
 * Exits 0, prints nothing. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;
static void *leaks[10], *index_blocks[200], *table[50], *held[3], *mixed[35];

static void die(const char *what)
{
	write(2, "gt_cookbook: failed: ", 21);
	write(2, what, strlen(what));
	write(2, "\n", 1);
	_exit(1);
}

NOINLINE void cache_leak(void)
{
	for (int i = 0; i < 10; i++)
		if (!(leaks[i] = malloc(300))) /* LEAK_LINE */
			die("cache_leak");
}

NOINLINE void parse_request(void)
{
	for (int i = 0; i < 500; i++) {
		void *p = malloc(64);
		if (!p)
			die("parse_request");
		gt_sink = p;
		free(p);
	}
}

NOINLINE char *make_string(size_t n)
{
	char *s = malloc(n);

	if (!s)
		die("make_string");
	memset(s, 'x', n - 1);
	s[n - 1] = 0;
	return s;
}

NOINLINE void config_load(void)
{
	for (int i = 0; i < 30; i++)
		free(make_string(40));
}

NOINLINE void handle_cmd(void)
{
	for (int i = 0; i < 70; i++)
		free(make_string(40));
}

NOINLINE void mixed_sizes(void)
{
	int k = 0;

	for (int i = 0; i < 10; i++)
		mixed[k++] = malloc(8);
	for (int i = 0; i < 20; i++)
		mixed[k++] = malloc(100);
	for (int i = 0; i < 5; i++)
		mixed[k++] = malloc(3000);
	for (int i = 0; i < k; i++) {
		if (!mixed[i])
			die("mixed_sizes");
		free(mixed[i]);
	}
}

NOINLINE void build_index(void)
{
	for (int i = 0; i < 200; i++)
		if (!(index_blocks[i] = malloc(1024)))
			die("build_index");
}

NOINLINE void load_table(void)
{
	for (int i = 0; i < 50; i++)
		if (!(table[i] = malloc(4096)))
			die("load_table");
}

NOINLINE void drop_table(void)
{
	for (int i = 0; i < 50; i++)
		free(table[i]);
}

NOINLINE void drop_index(void)
{
	for (int i = 0; i < 200; i++)
		free(index_blocks[i]);
}

NOINLINE void grow_buffer(void)
{
	char *p = malloc(24);

	for (size_t n = 48; n <= 6144; n *= 2) {
		char *q = realloc(p, n);
		if (!q)
			die("grow_buffer");
		p = q;
	}
	free(p);
}

NOINLINE void long_lived(void)
{
	struct timespec ts = { 0, 200 * 1000000L };

	for (int i = 0; i < 3; i++)
		if (!(held[i] = malloc(512)))
			die("long_lived");
	while (nanosleep(&ts, &ts) != 0)
		;
	for (int i = 0; i < 3; i++)
		free(held[i]);
}

NOINLINE void small_jobs(void)
{
	for (int i = 0; i < 300; i++) {
		void *p = malloc(128);
		if (!p)
			die("small_jobs");
		gt_sink = p;
		free(p);
	}
}

NOINLINE void big_jobs(void)
{
	for (int i = 0; i < 100; i++) {
		void *p = malloc(2000);
		if (!p)
			die("big_jobs");
		gt_sink = p;
		free(p);
	}
}

static void *worker_a(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "worker-a");
	small_jobs();
	return NULL;
}

static void *worker_b(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "worker-b");
	big_jobs();
	return NULL;
}

int main(void)
{
	pthread_t t;

	cache_leak();
	parse_request();
	config_load();
	handle_cmd();
	mixed_sizes();
	build_index();
	load_table();
	drop_table();
	drop_index();
	grow_buffer();
	long_lived();
	if (pthread_create(&t, NULL, worker_a, NULL) || pthread_join(t, NULL))
		die("worker-a");
	if (pthread_create(&t, NULL, worker_b, NULL) || pthread_join(t, NULL))
		die("worker-b");
	return 0;
}
