/* Ground truth for tests/e2e/1102-threads-1000.sh: T threads (default 1000)
 * in waves of W = 50; thread g (0 <= g < T, slot s = g % W in its wave):
 *   thr_alloc   10 x malloc(64) into slot s; wait at the wave's barrier;
 *               then free the 10 blocks of slot (s + 1) % W (allocated by
 *               another thread, which may have exited already), except the
 *               last one when that slot's thread g' has g' % 10 == 0:
 *               10 T calls, 640 T bytes; leaked T / 10 blocks, 64 T / 10
 *   tls_alloc   joinable threads only (g % 3 != 0): malloc(48) stored in a
 *               pthread key, freed by the key's destructor tls_free while
 *               the thread exits: T - ceil(T / 3) calls, none leaked
 * Threads with g % 3 == 0 are detached (main waits for their work through a
 * counter, not a join). At the end, when the env. var GT_HWM_FILE is set,
 * writes the VmPeak and VmHWM lines of /proc/self/status (kB) to that file.
 * Prints "threads T leaked L" on stdout. Exits 0, or 10+ on failure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define W 50
#define PER 10

static void *slots[W][PER];
static pthread_barrier_t barrier;
static pthread_key_t key;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int finished;
static int wave_size;
static void *leaked[100000];
static int n_leaked;

NOINLINE void tls_free(void *p)
{
	free(p);
}

NOINLINE void tls_alloc(void)
{
	pthread_setspecific(key, malloc(48));
}

NOINLINE void thr_alloc(int s)
{
	for (int i = 0; i < PER; i++)
		if (!(slots[s][i] = malloc(64)))
			exit(10);
}

NOINLINE void thr_free(int s, int keep_last)
{
	for (int i = 0; i < PER; i++) {
		if (i == PER - 1 && keep_last) {
			pthread_mutex_lock(&mu);
			leaked[n_leaked++] = slots[s][i];
			pthread_mutex_unlock(&mu);
		} else {
			free(slots[s][i]);
		}
	}
}

static void *thread_main(void *arg)
{
	long g = (long)arg;
	int s = (int)(g % W);
	int next = (s + 1) % wave_size;
	long g_next = g - s + next;

	if (g % 3 != 0)
		tls_alloc();
	thr_alloc(s);
	pthread_barrier_wait(&barrier);
	thr_free(next, g_next % 10 == 0);
	pthread_mutex_lock(&mu);
	finished++;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(int argc, char **argv)
{
	int t = argc > 1 ? atoi(argv[1]) : 1000;
	pthread_t th[W];
	pthread_attr_t det;

	if (t < 1 || t > 100000)
		return 2;
	if (pthread_key_create(&key, tls_free) != 0 || pthread_attr_init(&det) != 0 ||
	    pthread_attr_setdetachstate(&det, PTHREAD_CREATE_DETACHED) != 0)
		return 11;
	for (int done = 0; done < t; done += W) {
		wave_size = t - done < W ? t - done : W;
		if (pthread_barrier_init(&barrier, NULL, (unsigned)wave_size) != 0)
			return 12;
		finished = 0;
		for (int i = 0; i < wave_size; i++) {
			long g = done + i;
			if (pthread_create(&th[i], g % 3 == 0 ? &det : NULL, thread_main, (void *)g) != 0)
				return 13;
		}
		pthread_mutex_lock(&mu);
		while (finished < wave_size)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		for (int i = 0; i < wave_size; i++)
			if ((done + i) % 3 != 0 && pthread_join(th[i], NULL) != 0)
				return 14;
		/* a detached thread may still be past its counter; the barrier
		 * is only destroyed once every thread has left it */
		if (pthread_barrier_destroy(&barrier) != 0)
			return 15;
	}
	const char *hwm = getenv("GT_HWM_FILE");
	if (hwm) {
		char line[256];
		FILE *in = fopen("/proc/self/status", "r"), *out = fopen(hwm, "w");
		if (!in || !out)
			return 16;
		while (fgets(line, sizeof line, in))
			if (strncmp(line, "VmHWM:", 6) == 0 || strncmp(line, "VmPeak:", 7) == 0)
				fputs(line, out);
		fclose(in);
		fclose(out);
	}
	printf("threads %d leaked %d\n", t, n_leaked);
	return 0;
}
