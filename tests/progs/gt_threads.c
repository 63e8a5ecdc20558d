/* Ground truth for tests/e2e/3001-threads.sh: two threads allocate and free
 * each other's memory under pressure, so glibc hands an address freed on one
 * thread back out on the other (tcache is per thread: the freeing thread's
 * next malloc of that size returns the block the other thread allocated).
 *
 *   thread A (a_alloc):  N blocks, sizes 16 + (i % 8) * 16, sent to B
 *   thread B (b_alloc):  for each block received: free it (b_free), malloc the
 *                        same size at once (usually the same address) and
 *                        send that back to A, which frees it (a_free)
 *   leak_from_thread:    5 x malloc(48) on thread A after the exchange, never
 *                        freed: the only leaks from this program's functions
 *
 * Figures: a_alloc N calls, B_BYTES bytes; b_alloc N calls, B_BYTES bytes;
 * leak_from_thread 5 calls, 240 bytes, leaked 5 / 240. Prints one line,
 * "reuse R of N" (R = times b_alloc returned the address it had just freed,
 * i.e. an address allocated on thread A), with write(2). Argument: N
 * (default 200000). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define RING_CAP 1024 /* power of two */

struct msg {
	void *p;
	size_t size; /* bytes */
};

/* Single-producer single-consumer ring; no allocation, no locks. */
struct ring {
	_Atomic size_t head; /* next slot to read (consumer) */
	_Atomic size_t tail; /* next slot to write (producer) */
	struct msg slot[RING_CAP];
};

static struct ring a_to_b, b_to_a;
static long n_iter = 200000;
static long reuse;
static void *leaked[5];
void *volatile gt_sink;

static int ring_push(struct ring *r, struct msg m)
{
	size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t h = atomic_load_explicit(&r->head, memory_order_acquire);

	if (t - h == RING_CAP)
		return 0;
	r->slot[t & (RING_CAP - 1)] = m;
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return 1;
}

static int ring_pop(struct ring *r, struct msg *m)
{
	size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);

	if (h == t)
		return 0;
	*m = r->slot[h & (RING_CAP - 1)];
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return 1;
}

static void die(const char *what)
{
	write(2, "gt_threads: ", 12);
	write(2, what, strlen(what));
	write(2, "\n", 1);
	_exit(1);
}

NOINLINE void *a_alloc(size_t size)
{
	void *p = malloc(size);

	if (!p)
		die("a_alloc failed");
	memset(p, 0xa, size);
	return p;
}

NOINLINE void a_free(void *p)
{
	free(p);
}

NOINLINE void *b_alloc(size_t size)
{
	void *p = malloc(size);

	if (!p)
		die("b_alloc failed");
	memset(p, 0xb, size);
	return p;
}

NOINLINE void b_free(void *p)
{
	free(p);
}

NOINLINE void leak_from_thread(void)
{
	for (int i = 0; i < 5; i++) {
		leaked[i] = malloc(48);
		if (!leaked[i])
			die("leak_from_thread failed");
	}
}

NOINLINE static void *thread_a(void *arg)
{
	long sent = 0, received = 0;
	struct msg m;

	(void)arg;
	while (sent < n_iter || received < n_iter) {
		int progress = 0;
		if (sent < n_iter) {
			m.size = 16 + (size_t)(sent % 8) * 16;
			m.p = a_alloc(m.size);
			while (!ring_push(&a_to_b, m)) {
				/* Ring full: drain replies meanwhile. */
				struct msg r;
				if (ring_pop(&b_to_a, &r)) {
					a_free(r.p);
					received++;
				} else {
					sched_yield();
				}
			}
			sent++;
			progress = 1;
		}
		while (ring_pop(&b_to_a, &m)) {
			a_free(m.p);
			received++;
			progress = 1;
		}
		if (!progress)
			sched_yield();
	}
	leak_from_thread();
	return NULL;
}

NOINLINE static void *thread_b(void *arg)
{
	long done = 0;
	struct msg m;

	(void)arg;
	while (done < n_iter) {
		if (!ring_pop(&a_to_b, &m)) {
			sched_yield();
			continue;
		}
		uintptr_t was = (uintptr_t)m.p;
		b_free(m.p);
		m.p = b_alloc(m.size);
		if ((uintptr_t)m.p == was)
			reuse++;
		while (!ring_push(&b_to_a, m))
			sched_yield();
		done++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t a, b;
	char line[64];

	if (argc > 1) {
		char *end;
		n_iter = strtol(argv[1], &end, 10);
		if (*end || n_iter <= 0)
			die("usage: gt_threads [N]");
	}
	if (pthread_create(&b, NULL, thread_b, NULL) ||
	    pthread_create(&a, NULL, thread_a, NULL))
		die("pthread_create failed");
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	gt_sink = leaked[0];
	int n = snprintf(line, sizeof(line), "reuse %ld of %ld\n", reuse, n_iter);
	write(1, line, (size_t)n);
	return 0;
}
