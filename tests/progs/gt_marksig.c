/* Ground truth for memrec --mark-signal (tests/e2e/1106-phase-records.sh).
 * One thread raises SIGUSR2 to itself (raise: delivered before raise()
 * returns) three times between known allocations, all kept live until
 * the end, then freed:
 *
 *   malloc(100) x 10, raise (mark "SIGUSR2 #1"), sleep 30 ms,
 *   malloc(200) x 20, raise (#2), sleep 30 ms,
 *   malloc(300) x 30, raise (#3), sleep 30 ms,
 *   malloc(400) x 40, the 100 blocks freed.
 *
 * So between the marks (by seq) the ALLOC records number 10, 20, 30, 40.
 * No stdio and no allocation in the measured part. Modes (argv[1]):
 *
 *   handle    (default) its own SIGUSR2 handler, installed with sigaction()
 *             (no flags), counts its calls; sigaction() must report that
 *             handler back. Exits 0 when it ran exactly 3 times.
 *   signal    the same with signal() (BSD semantics).
 *   oneshot   sigaction() with SA_SIGINFO | SA_RESETHAND: the handler must
 *             get si_signo SIGUSR2 and si_code SI_TKILL, must find the
 *             disposition reset to SIG_DFL (as the kernel does), and
 *             installs itself again. Exits 0 after 3 correct calls.
 *   ignore    signal(SIGUSR2, SIG_IGN), which must return SIG_DFL; the
 *             process survives, and sigaction() reports SIG_IGN at the end.
 *   inherited no change: SIGUSR2 must already be ignored (inherited over
 *             exec from a shell's `trap "" USR2`) and stay so; survives.
 *   default   SIGUSR2 left at SIG_DFL: the first raise ends the process
 *             (status 128 + 12 from a shell). Exits 3 if it survives.
 *   stress    a second thread allocates and frees in a loop while the
 *             main thread sends it SIGUSR2 (pthread_kill) 2000 times, 20 us
 *             apart, so that many land inside the recorder; the handler
 *             counts its calls (signals sent while one is pending merge).
 *             Prints "handled N" (N: calls) and exits 0.
 *
 * Any failed check prints nothing and exits 1 (2 for a bad argument). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static volatile sig_atomic_t n_handled;
static volatile sig_atomic_t bad_call;
static void *blocks[100];
static atomic_int stop_churn;
void *volatile gt_sink;

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static void on_usr2(int sig)
{
	if (sig != SIGUSR2)
		bad_call = 1;
	n_handled++;
}

static void on_usr2_oneshot(int sig, siginfo_t *si, void *uc)
{
	struct sigaction cur, again;

	(void)uc;
	if (sig != SIGUSR2 || si->si_signo != SIGUSR2 || si->si_code != SI_TKILL)
		bad_call = 1;
	if (sigaction(SIGUSR2, NULL, &cur) != 0 || cur.sa_handler != SIG_DFL)
		bad_call = 1;
	memset(&again, 0, sizeof(again));
	again.sa_sigaction = on_usr2_oneshot;
	again.sa_flags = SA_SIGINFO | SA_RESETHAND;
	sigemptyset(&again.sa_mask);
	if (sigaction(SIGUSR2, &again, NULL) != 0)
		bad_call = 1;
	n_handled++;
}

NOINLINE void alloc_batch(int first, int n, size_t size)
{
	for (int i = first; i < first + n; i++) {
		blocks[i] = malloc(size);
		if (!blocks[i])
			_exit(1);
	}
}

static void marked_run(void)
{
	alloc_batch(0, 10, 100);
	raise(SIGUSR2);
	sleep_us(30000);
	alloc_batch(10, 20, 200);
	raise(SIGUSR2);
	sleep_us(30000);
	alloc_batch(30, 30, 300);
	raise(SIGUSR2);
	sleep_us(30000);
	alloc_batch(60, 40, 400);
	for (int i = 0; i < 100; i++)
		free(blocks[i]);
}

static void *churn(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_churn)) {
		void *p = malloc(48);
		gt_sink = p;
		free(p);
	}
	return NULL;
}

static int stress(void)
{
	pthread_t th;

	if (pthread_create(&th, NULL, churn, NULL) != 0)
		return 1;
	for (int i = 0; i < 2000; i++) {
		pthread_kill(th, SIGUSR2);
		sleep_us(20);
	}
	sleep_us(10000); /* the last one handled */
	atomic_store(&stop_churn, 1);
	pthread_join(th, NULL);
	printf("handled %d\n", (int)n_handled);
	return bad_call;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "handle";
	struct sigaction sa, cur;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	if (!strcmp(mode, "handle") || !strcmp(mode, "stress")) {
		sa.sa_handler = on_usr2;
		if (sigaction(SIGUSR2, &sa, NULL) != 0)
			return 1;
		if (sigaction(SIGUSR2, NULL, &cur) != 0 || cur.sa_handler != on_usr2)
			return 1;
		if (!strcmp(mode, "stress"))
			return stress();
	} else if (!strcmp(mode, "signal")) {
		if (signal(SIGUSR2, on_usr2) != SIG_DFL || signal(SIGUSR2, on_usr2) != on_usr2)
			return 1;
	} else if (!strcmp(mode, "oneshot")) {
		sa.sa_sigaction = on_usr2_oneshot;
		sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
		if (sigaction(SIGUSR2, &sa, NULL) != 0)
			return 1;
	} else if (!strcmp(mode, "ignore")) {
		if (signal(SIGUSR2, SIG_IGN) != SIG_DFL)
			return 1;
	} else if (!strcmp(mode, "inherited")) {
		if (sigaction(SIGUSR2, NULL, &cur) != 0 || cur.sa_handler != SIG_IGN)
			return 1;
	} else if (strcmp(mode, "default") != 0) {
		return 2;
	}
	marked_run();
	if (!strcmp(mode, "default"))
		return 3;
	if (!strcmp(mode, "ignore") || !strcmp(mode, "inherited"))
		return sigaction(SIGUSR2, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN ? 0 : 1;
	return n_handled == 3 && !bad_call ? 0 : 1;
}
