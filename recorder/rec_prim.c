/* OS primitives: the only recorder file making system calls. Raw syscalls
 * or thin libc wrappers that never allocate. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rec_prim.h"

void *rec_prim_map(size_t len, int noreserve)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void rec_prim_unmap(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rec_prim_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t rec_prim_real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

uint32_t rec_prim_gettid(void)
{
	return (uint32_t)syscall(SYS_gettid);
}

uint32_t rec_prim_getpid(void)
{
	return (uint32_t)syscall(SYS_getpid);
}

uint32_t rec_prim_getppid(void)
{
	return (uint32_t)getppid();
}

size_t rec_prim_page_size(void)
{
	long n = sysconf(_SC_PAGESIZE);

	return n > 0 ? (size_t)n : 4096;
}

/* Move fd out of the range programs use for their own descriptors (shells
 * dup2() onto small numbers; our fd must never be reused under us). */
static int move_high(int fd)
{
	struct rlimit rl;
	int lo = 800, hi;

	if (fd < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return fd;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1100)
		lo = (int)(rl.rlim_cur * 3 / 4);
	if (lo <= fd)
		return fd;
	hi = fcntl(fd, F_DUPFD_CLOEXEC, lo);
	if (hi < 0)
		return fd;
	close(fd);
	return hi;
}

int rec_prim_fd_high(int fd)
{
	return move_high(fd);
}

int rec_prim_create_excl(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	return fd < 0 ? -errno : move_high(fd);
}

int rec_prim_open_ro(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int rec_prim_open_ro_high(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : move_high(fd);
}

void rec_prim_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

int rec_prim_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t rec_prim_pread(int fd, void *buf, size_t cap, uint64_t off)
{
	ssize_t n;

	do
		n = pread(fd, buf, cap, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

ssize_t rec_prim_read_file(const char *path, void *buf, size_t cap)
{
	int fd = rec_prim_open_ro(path);
	size_t len = 0;

	if (fd < 0)
		return fd;
	while (len < cap) {
		ssize_t n = read(fd, (char *)buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	return (ssize_t)len;
}

ssize_t rec_prim_readlink(const char *path, char *buf, size_t cap)
{
	ssize_t n = readlink(path, buf, cap - 1);

	if (n < 0) {
		buf[0] = 0;
		return -errno;
	}
	buf[n] = 0;
	return n;
}

void rec_prim_futex_wait(uint32_t *word, uint32_t val, uint64_t timeout_ns)
{
	struct timespec ts = { (time_t)(timeout_ns / 1000000000u),
			       (long)(timeout_ns % 1000000000u) };
	int saved = errno;

	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, timeout_ns ? &ts : NULL,
		NULL, 0);
	errno = saved;
}

void rec_prim_futex_wake(uint32_t *word, int n)
{
	int saved = errno;

	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
	errno = saved;
}

void rec_prim_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	int saved = errno;

	nanosleep(&ts, NULL);
	errno = saved;
}

void rec_prim_yield(void)
{
	sched_yield();
}

int rec_prim_thread_alive(uint32_t tid)
{
	int saved = errno;
	long rc = syscall(SYS_tgkill, (pid_t)rec_prim_getpid(), (pid_t)tid, 0);
	int alive = !(rc < 0 && errno == ESRCH);

	errno = saved;
	return alive;
}

size_t rec_prim_thread_name(char buf[16])
{
	int saved = errno;

	memset(buf, 0, 16);
	if (prctl(PR_GET_NAME, buf, 0, 0, 0) < 0)
		buf[0] = 0;
	buf[15] = 0;
	errno = saved;
	return strlen(buf);
}
