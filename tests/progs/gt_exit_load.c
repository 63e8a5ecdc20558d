/* Exit while other threads allocate: 4 workers malloc/free in a loop
 * (worker_churn: 1 live block each at most) until the process ends. Once
 * every worker has done MIN_ITERS iterations:
 *   gt_exit_load thread   a worker calls exit(7)
 *   gt_exit_load main     main calls exit(8)
 *   gt_exit_load return   main returns 9
 * Prints nothing. The recorder must end the trace cleanly while the others
 * keep allocating. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define N_WORKERS 4
#define MIN_ITERS 20000

static _Atomic long iters[N_WORKERS];
static _Atomic int go_exit;
void *volatile gt_sink;

NOINLINE void *worker_churn(size_t size)
{
	return malloc(size);
}

static int all_busy(void)
{
	for (int i = 0; i < N_WORKERS; i++)
		if (atomic_load(&iters[i]) < MIN_ITERS)
			return 0;
	return 1;
}

static void *worker(void *arg)
{
	int id = (int)(long)arg;

	for (long n = 0;; n++) {
		void *p = worker_churn(16 + (size_t)(n % 64) * 8);
		gt_sink = p;
		free(p);
		atomic_fetch_add(&iters[id], 1);
		if (id == 0 && atomic_load(&go_exit) && all_busy())
			exit(7);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "main";
	pthread_t t;

	if (strcmp(mode, "thread") == 0)
		atomic_store(&go_exit, 1);
	for (long i = 0; i < N_WORKERS; i++)
		if (pthread_create(&t, NULL, worker, (void *)i) != 0)
			return 2;
	if (strcmp(mode, "thread") == 0) {
		for (;;)
			sched_yield();
	}
	while (!all_busy())
		sched_yield();
	if (strcmp(mode, "return") == 0)
		return 9;
	exit(8);
}
