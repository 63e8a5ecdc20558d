/* Ground truth for truncated traces (tests/e2e/2000-bad-input.sh).
 *
 *   crash_alloc   malloc(1000) x 10, kept: 10 calls, 10000 bytes
 *   noise         N pseudo-random malloc/free pairs (sizes 1..4096, up to
 *                 64 live): fills the trace so that a cut keeps crash_alloc
 *
 *   late_alloc    malloc(500) x 5, kept: made right before the end (within
 *                 the writer's flush interval)
 *
 * Usage: gt_crash kill        crash_alloc, sleep 1 s (longer than the writer's
 *                             flush interval), then SIGKILL itself
 *        gt_crash MODE        MODE = segv | abort | sigkill | _exit:
 *                             crash_alloc, sleep 0.6 s, late_alloc, then a
 *                             write through a null pointer / abort() /
 *                             SIGKILL itself / _exit(5)
 *        gt_crash exit N      crash_alloc, noise N, exit 0
 * Prints nothing. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *kept[10];
static void *late[5];
int *volatile gt_null;
static void *live[64];
void *volatile gt_sink;

NOINLINE void crash_alloc(void)
{
	for (int i = 0; i < 10; i++) {
		kept[i] = malloc(1000);
		if (!kept[i])
			_exit(1);
	}
}

NOINLINE void late_alloc(void)
{
	for (int i = 0; i < 5; i++) {
		late[i] = malloc(500);
		if (!late[i])
			_exit(1);
	}
}

NOINLINE void *noise_alloc(size_t size)
{
	return malloc(size);
}

NOINLINE void noise(long n)
{
	unsigned x = 12345;

	for (long i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		unsigned slot = (x >> 8) % 64;
		free(live[slot]);
		live[slot] = noise_alloc(1 + (x >> 16) % 4096);
	}
	for (int i = 0; i < 64; i++) {
		free(live[i]);
		live[i] = NULL;
	}
}

int main(int argc, char **argv)
{
	crash_alloc();
	gt_sink = kept[0];
	if (argc > 1 && strcmp(argv[1], "kill") == 0) {
		struct timespec ts = { 1, 0 };
		while (nanosleep(&ts, &ts) != 0)
			;
		kill(getpid(), SIGKILL);
		return 2; /* not reached */
	}
	if (argc > 1 && (strcmp(argv[1], "segv") == 0 || strcmp(argv[1], "abort") == 0 ||
			 strcmp(argv[1], "sigkill") == 0 || strcmp(argv[1], "_exit") == 0)) {
		struct timespec ts = { 0, 600000000 };
		while (nanosleep(&ts, &ts) != 0)
			;
		late_alloc();
		gt_sink = late[0];
		if (strcmp(argv[1], "segv") == 0) {
			signal(SIGSEGV, SIG_DFL);
			*gt_null = 42;
		} else if (strcmp(argv[1], "abort") == 0) {
			abort();
		} else if (strcmp(argv[1], "sigkill") == 0) {
			kill(getpid(), SIGKILL);
		} else {
			_exit(5);
		}
		return 2; /* not reached */
	}
	if (argc > 2 && strcmp(argv[1], "exit") == 0) {
		noise(strtol(argv[2], NULL, 10));
		return 0;
	}
	write(2, "usage: gt_crash kill | segv | abort | sigkill | _exit | exit N\n", 63);
	return 2;
}
