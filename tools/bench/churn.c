/* malloc/free churn through call chains 10-20 frames deep; every thread keeps a
 * ring of its RING most recent blocks, so a block lives a little while. Sizes
 * (16..2063 bytes) and depths come from a per-thread xorshift generator, so
 * neither trace is a short repeating pattern that compresses to nothing.
 * churn THREADS ITERATIONS_PER_THREAD (defaults 1, 2000000). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING 256

struct ctx {
	void *ring[RING];
	unsigned pos;
	unsigned long sum;
	unsigned long long rng;
	long iters;
	unsigned id;
};

static unsigned long long next(struct ctx *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

__attribute__((noinline)) static unsigned long leaf(struct ctx *c, unsigned long i)
{
	size_t sz = 16 + (size_t)(next(c) % 2048);
	unsigned char *p = malloc(sz);
	if (!p)
		abort();
	p[0] = (unsigned char)i;
	p[sz - 1] = (unsigned char)(i >> 8);
	unsigned slot = c->pos++ % RING;
	if (c->ring[slot]) {
		c->sum += ((unsigned char *)c->ring[slot])[0];
		free(c->ring[slot]);
	}
	c->ring[slot] = p;
	return p[sz - 1];
}

/* Not a tail call: the add after the call keeps every frame on the stack. */
__attribute__((noinline)) static unsigned long chain(struct ctx *c, unsigned long i, int depth)
{
	if (depth == 0)
		return leaf(c, i);
	unsigned long r = chain(c, i, depth - 1);
	__asm__ volatile("" : "+r"(r));
	return r + (unsigned long)depth;
}

static void *run(void *arg)
{
	struct ctx *c = arg;
	unsigned long acc = 0;
	for (long i = 0; i < c->iters; i++)
		acc += chain(c, (unsigned long)i + c->id, 8 + (int)(next(c) % 11)); /* 10..20 frames with run/leaf */
	for (unsigned k = 0; k < RING; k++)
		free(c->ring[k]);
	c->sum += acc;
	return NULL;
}

int main(int argc, char **argv)
{
	int nt = argc > 1 ? atoi(argv[1]) : 1;
	long iters = argc > 2 ? atol(argv[2]) : 2000000L;
	if (nt < 1 || nt > 64)
		return 2;
	struct ctx *cs = calloc((size_t)nt, sizeof *cs);
	pthread_t th[64];
	for (int t = 0; t < nt; t++) {
		cs[t].iters = iters;
		cs[t].id = (unsigned)t;
		cs[t].rng = 0x9E3779B97F4A7C15ull * (unsigned long long)(t + 1);
		pthread_create(&th[t], NULL, run, &cs[t]);
	}
	for (int t = 0; t < nt; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < nt; t++)
		printf("churn thread %d: %ld iterations, checksum %lu\n", t, iters, cs[t].sum);
	free(cs);
	return 0;
}
