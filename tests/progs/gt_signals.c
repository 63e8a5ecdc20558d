/* Ground truth for tests/e2e/1104-daemon-fds.sh: a program with its own
 * signal handlers that allocate, and all signals blocked for a while.
 *   handler_alloc  called by the SIGUSR1 and SIGALRM handlers: malloc(77),
 *                  freed (async-signal-unsafe, as real programs do)
 *   main_alloc     5 rounds x 10 malloc(33), freed
 * Each round (5): block every signal; main_alloc; send SIGUSR1 to the
 * process (kill) and SIGALRM to the thread (raise); sleep 0.1 s (a recorder
 * thread with signals unblocked would take the process-directed SIGUSR1
 * here); count how many handlers ran while blocked (must be 0); unblock (both
 * run now, in this thread). handler_alloc: 10 calls, 770 bytes.
 * Prints "round R blocked_runs B handled H foreign F" per round (F = handler
 * runs in a thread other than main) and exits 7. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static volatile sig_atomic_t handled, foreign;
static pid_t main_tid;
void *volatile gt_sink;

NOINLINE void handler_alloc(void)
{
	void *p = malloc(77);
	gt_sink = p;
	free(p);
}

static void on_signal(int sig)
{
	(void)sig;
	if (gettid() != main_tid)
		foreign++;
	handler_alloc();
	handled++;
}

NOINLINE void main_alloc(void)
{
	void *p[10];
	for (int i = 0; i < 10; i++)
		p[i] = malloc(33);
	for (int i = 0; i < 10; i++)
		free(p[i]);
}

int main(void)
{
	struct sigaction sa = { 0 };
	sigset_t all, old;

	main_tid = gettid();
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGALRM, &sa, NULL) != 0)
		return 10;
	sigfillset(&all);
	for (int r = 1; r <= 5; r++) {
		if (sigprocmask(SIG_BLOCK, &all, &old) != 0)
			return 11;
		int before = handled;
		main_alloc();
		kill(getpid(), SIGUSR1);
		raise(SIGALRM);
		struct timespec ts = { 0, 100000000 };
		while (nanosleep(&ts, &ts) != 0)
			;
		int blocked_runs = handled - before;
		if (sigprocmask(SIG_SETMASK, &old, NULL) != 0)
			return 12;
		printf("round %d blocked_runs %d handled %d foreign %d\n", r, blocked_runs,
		       (int)handled, (int)foreign);
	}
	return 7;
}
