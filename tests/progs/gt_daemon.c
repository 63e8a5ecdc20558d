/* Ground truth for tests/e2e/1104-daemon-fds.sh: a program that takes every
 * descriptor away from under the recorder, then keeps allocating.
 * Usage: gt_daemon MODE OUTFILE, MODE:
 *   close       close() every fd from 0 to max(1023, RLIMIT_NOFILE - 1)
 *   closerange  the close_range(0, ~0U, 0) system call (no libc close())
 *   dup2        open OUTFILE first, then dup2() /dev/null over every other
 *               fd from 3 to 1023 (to the limit would leave the recorder no
 *               descriptor at all)
 * then:
 *   after_a     20 x malloc(200), freed
 *   (sleep 0.5 s: longer than the recorder's flush interval)
 *   after_b     30 x malloc(300), 29 freed, 1 kept (leaked 1, 300 bytes)
 * After the closing it opens OUTFILE (O_CREAT|O_TRUNC) — the lowest free
 * descriptor, where a confused recorder might write — and writes two known
 * lines to it, one before and one after the sleep; the test compares the
 * file with them. Exits 0, or 10+ on failure (no stdout/stderr left). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;

NOINLINE void after_a(void)
{
	void *p[20];
	for (int i = 0; i < 20; i++)
		if (!(p[i] = malloc(200)))
			_exit(10);
	for (int i = 0; i < 20; i++)
		free(p[i]);
}

NOINLINE void after_b(void)
{
	void *p[30];
	for (int i = 0; i < 30; i++)
		if (!(p[i] = malloc(300)))
			_exit(11);
	gt_sink = p[0];
	for (int i = 1; i < 30; i++)
		free(p[i]);
}

static void put(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		_exit(12);
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	long max = 1023;

	if (argc < 3)
		return 2;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (long)rl.rlim_cur - 1 > max)
		max = (long)rl.rlim_cur - 1;
	if (max > 65535)
		max = 65535;
	int out = -1;
	if (strcmp(argv[1], "close") == 0) {
		for (long fd = 0; fd <= max; fd++)
			close((int)fd);
	} else if (strcmp(argv[1], "closerange") == 0) {
		if (syscall(SYS_close_range, 0U, ~0U, 0) != 0)
			return 13;
	} else if (strcmp(argv[1], "dup2") == 0) {
		out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int null = open("/dev/null", O_RDWR);
		if (out < 0 || null < 0)
			return 14;
		for (long fd = 3; fd <= 1023; fd++)
			if (fd != null && fd != out)
				dup2(null, (int)fd);
	} else {
		return 2;
	}
	if (out < 0)
		out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0)
		_exit(15);
	put(out, "daemon line 1\n");
	after_a();
	struct timespec ts = { 0, 500000000 };
	while (nanosleep(&ts, &ts) != 0)
		;
	put(out, "daemon line 2\n");
	after_b();
	close(out);
	return 0;
}
