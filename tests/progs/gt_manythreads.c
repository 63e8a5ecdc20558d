/* Many short-lived threads: T threads (default 300), 8 alive at a time;
 * each runs thread_work: malloc(100) x 10, frees 9, leaks 1; the last free
 * happens as the thread exits (in a TLS destructor, after thread_work).
 *   thread_work   10 T calls, 1000 T bytes; leaked T blocks, 100 T bytes
 *   tls_free      the block freed by the thread-exit destructor
 * Usage: gt_manythreads [T]. Prints nothing. */
#include <pthread.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))
#define BATCH 8

static pthread_key_t key;
static void *leaked[100000];
static int n_threads = 300;

NOINLINE void tls_free(void *p)
{
	free(p);
}

NOINLINE void *thread_work(long id)
{
	void *p[10];

	for (int i = 0; i < 10; i++)
		p[i] = malloc(100);
	for (int i = 1; i < 9; i++)
		free(p[i]);
	leaked[id] = p[0];
	/* p[9] is freed by the key's destructor when the thread exits */
	pthread_setspecific(key, p[9]);
	return NULL;
}

static void *thread_main(void *arg)
{
	return thread_work((long)arg);
}

int main(int argc, char **argv)
{
	pthread_t t[BATCH];

	if (argc > 1)
		n_threads = atoi(argv[1]);
	if (n_threads < 1 || n_threads > 100000)
		return 2;
	if (pthread_key_create(&key, tls_free) != 0)
		return 2;
	for (int done = 0; done < n_threads; done += BATCH) {
		int n = n_threads - done < BATCH ? n_threads - done : BATCH;
		for (int i = 0; i < n; i++)
			if (pthread_create(&t[i], NULL, thread_main, (void *)(long)(done + i)) != 0)
				return 3;
		for (int i = 0; i < n; i++)
			pthread_join(t[i], NULL);
	}
	return 0;
}
