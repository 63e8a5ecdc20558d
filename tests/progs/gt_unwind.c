/* Ground truth for tests/e2e/4000-unwind-check.sh: call paths that stress
 * the recorder's own unwinder and its reuse of the previous backtrace.
 * Usage: gt_unwind DIR [THREADS] (DIR: where libunw_plug.so is). Each of
 * the main thread and THREADS extra threads (default 3) runs work():
 *
 *   deep_alloc        N_DEEP x malloc(24), at the bottom of recurse(d), d
 *                     varying pseudo-randomly in 0..40
 *   alt_leaf          2 x N_ALT x malloc(40) through alt_mid <- pad1 <- pad2
 *                     <- via_a or via_b, alternating: two callers with the
 *                     same frame sizes, so only a slot 4 frames out differs
 *                     (N_ALT through via_a, N_ALT through via_b)
 *   opt_chain         N_OPT x malloc(8..15) at the bottom of an optimized
 *                     recursion without frame pointer that keeps values in
 *                     rbp (depth 0..8)
 *   cmp_alloc         one malloc(16) per qsort comparison (count printed)
 *   plug_cb           N_PLUG x malloc(32), called back from the dlopen'd
 *                     libunw_plug.so (unw_plug_run), which is dlclose'd
 *                     and dlopen'd again (main thread only, 2 rounds)
 *   on_signal         N_SIG x malloc(56) in a SIGUSR1 handler (raise() in
 *                     sig_raiser; main thread only)
 *
 * Every block is freed at once. Prints "qsort_cmps N" (all threads),
 * "opt_bytes N" (opt_chain's bytes, all threads) and "threads T". Exits 0, or 10+ when a step fails. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define OPT __attribute__((noipa, optimize("O2", "omit-frame-pointer")))

#define N_DEEP 3000
#define N_ALT 2000
#define N_OPT 3000
#define N_PLUG 500
#define N_SIG 50
#define N_SORT 300

void *volatile gt_sink;
static _Atomic long n_cmps, opt_bytes;

static unsigned next_rand(unsigned *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

NOINLINE void deep_alloc(void)
{
	void *p = malloc(24);
	gt_sink = p;
	free(p);
}

NOINLINE void recurse(int d)
{
	if (d == 0) {
		deep_alloc();
		return;
	}
	recurse(d - 1);
	gt_sink = NULL; /* not a tail call */
}

NOINLINE void alt_leaf(void)
{
	void *p = malloc(40);
	gt_sink = p;
	free(p);
}

NOINLINE void alt_mid(void)
{
	alt_leaf();
	gt_sink = NULL;
}

NOINLINE void pad1(void)
{
	alt_mid();
	gt_sink = NULL;
}

NOINLINE void pad2(void)
{
	pad1();
	gt_sink = NULL;
}

NOINLINE void via_a(void)
{
	pad2();
	gt_sink = NULL;
}

NOINLINE void via_b(void)
{
	pad2();
	gt_sink = NULL;
}

/* Optimized, no frame pointer: a, b, c, d and n live across the call in
 * callee-saved registers (rbp among them). */
OPT long opt_chain(long n, long a, long b, long c, long d)
{
	if (n == 0) {
		void *p = malloc(8 + (size_t)(a & 7));
		atomic_fetch_add(&opt_bytes, 8 + (a & 7));
		gt_sink = p;
		free(p);
		return a;
	}
	long r = opt_chain(n - 1, b + 1, c ^ n, d + a, a * 3);
	return r + a * b + c * d + n;
}

NOINLINE int cmp_alloc(const void *x, const void *y)
{
	void *p = malloc(16);
	gt_sink = p;
	free(p);
	atomic_fetch_add(&n_cmps, 1);
	int a = *(const int *)x, b = *(const int *)y;
	return (a > b) - (a < b);
}

NOINLINE void plug_cb(int i)
{
	void *p = malloc(32);
	gt_sink = p;
	free(p);
	(void)i;
}

NOINLINE void on_signal(int sig)
{
	void *p = malloc(56);
	gt_sink = p;
	free(p);
	(void)sig;
}

NOINLINE void sig_raiser(void)
{
	raise(SIGUSR1);
	gt_sink = NULL;
}

static void *work(void *arg)
{
	unsigned s = 0x9e3779b9u ^ (unsigned)(size_t)arg;
	int v[N_SORT];

	for (int i = 0; i < N_DEEP; i++)
		recurse((int)(next_rand(&s) % 41));
	for (int i = 0; i < N_ALT; i++) {
		via_a();
		via_b();
	}
	for (int i = 0; i < N_OPT; i++)
		gt_sink = (void *)opt_chain(i % 9, i, 2, 3, 4);
	for (int i = 0; i < N_SORT; i++)
		v[i] = (int)(next_rand(&s) % 1000);
	qsort(v, N_SORT, sizeof(v[0]), cmp_alloc);
	return NULL;
}

typedef void (*plug_run_fn)(int n, void (*cb)(int));

static void plugin_round(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/libunw_plug.so", dir);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		exit(10);
	}
	plug_run_fn run = (plug_run_fn)dlsym(h, "unw_plug_run");
	if (!run)
		exit(11);
	run(N_PLUG, plug_cb);
	if (dlclose(h) != 0)
		exit(12);
}

int main(int argc, char **argv)
{
	int nt = argc > 2 ? atoi(argv[2]) : 3;
	pthread_t th[16];
	struct sigaction sa;

	if (argc < 2 || nt < 0 || nt > 16)
		return 2;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return 13;
	for (int i = 0; i < nt; i++)
		if (pthread_create(&th[i], NULL, work, (void *)(size_t)(i + 1)) != 0)
			return 14;
	work(NULL);
	plugin_round(argv[1]);
	plugin_round(argv[1]);
	for (int i = 0; i < N_SIG; i++)
		sig_raiser();
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	printf("qsort_cmps %ld\nopt_bytes %ld\nthreads %d\n", atomic_load(&n_cmps),
	       atomic_load(&opt_bytes), nt + 1);
	return 0;
}
