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
#include <sys/stat.h>
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

void rec_prim_discard(void *p, size_t len)
{
	int saved = errno;

	len = (len + 4095) & ~(size_t)4095;
	if (p && len)
		madvise(p, len, MADV_DONTNEED);
	errno = saved;
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

/* open(); when every descriptor below the soft RLIMIT_NOFILE is taken (a
 * program that dup2()'d something over all of them), raise the soft limit
 * by a few for the one open and put it back: our descriptor then lies above
 * the limit, where the program's own loops do not reach. Returns fd or
 * -errno. */
static int open_anyway(const char *path, int flags)
{
	struct rlimit rl, raised;
	int fd = open(path, flags), e;

	if (fd >= 0)
		return fd;
	e = errno;
	if (e != EMFILE || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur + 8 > rl.rlim_max))
		return -e;
	raised = rl;
	raised.rlim_cur += 8;
	if (setrlimit(RLIMIT_NOFILE, &raised) < 0)
		return -e;
	fd = open(path, flags);
	e = errno;
	setrlimit(RLIMIT_NOFILE, &rl);
	return fd < 0 ? -e : fd;
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
	int saved = errno;
	int fd = open_anyway(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0)
		fd = move_high(fd);
	errno = saved;
	return fd;
}

void rec_prim_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

int rec_prim_fd_id(int fd, uint64_t *dev, uint64_t *ino)
{
	struct stat st;
	int saved = errno, rc = 0;

	if (fstat(fd, &st) < 0)
		rc = -errno;
	else {
		*dev = (uint64_t)st.st_dev;
		*ino = (uint64_t)st.st_ino;
	}
	errno = saved;
	return rc;
}

int rec_prim_reopen_append(const char *path, uint64_t dev, uint64_t ino)
{
	int saved = errno;
	int fd = open_anyway(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	uint64_t d = 0, i = 0;

	if (fd < 0) {
		errno = saved;
		return fd;
	}
	if (rec_prim_fd_id(fd, &d, &i) < 0 || d != dev || i != ino) {
		close(fd);
		errno = saved;
		return -ESTALE;
	}
	fd = move_high(fd);
	errno = saved;
	return fd;
}

int rec_prim_append(const char *path, const void *data, size_t len)
{
	int saved = errno, rc = 0;
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0) {
		rc = -errno;
		errno = saved;
		return rc;
	}
	do
		n = write(fd, data, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		rc = -errno;
	else if ((size_t)n != len)
		rc = -EIO;
	close(fd);
	errno = saved;
	return rc;
}

int rec_prim_getcwd(char *buf, size_t cap)
{
	int saved = errno, rc = 0;

	if (!getcwd(buf, cap))
		rc = -errno;
	errno = saved;
	return rc;
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

int rec_prim_private_fds(const int *keep, size_t n_keep)
{
	int k[8];
	size_t n = 0;
	unsigned lo = 0;
	int saved = errno;

	if (unshare(CLONE_FILES) < 0) {
		int rc = -errno;
		errno = saved;
		return rc;
	}
	for (size_t i = 0; i < n_keep && n < 8; i++) {
		size_t j = n;
		if (keep[i] < 0)
			continue;
		while (j > 0 && k[j - 1] > keep[i]) {
			k[j] = k[j - 1];
			j--;
		}
		k[j] = keep[i];
		n++;
	}
	for (size_t i = 0; i <= n; i++) {
		unsigned hi = i < n ? (unsigned)k[i] : ~0u;
		if (i < n && (unsigned)k[i] < lo)
			continue; /* duplicate */
		if (hi > lo && syscall(SYS_close_range, lo, hi - 1, 0) < 0) {
			/* No close_range (Linux < 5.9): one by one. */
			struct rlimit rl;
			unsigned max = 65536;
			if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
			    rl.rlim_cur < max)
				max = (unsigned)rl.rlim_cur;
			for (unsigned fd = lo; fd < hi && fd < max; fd++)
				close((int)fd);
		}
		if (i < n)
			lo = (unsigned)k[i] + 1;
	}
	errno = saved;
	return 0;
}

int rec_prim_is_pipe_or_socket(int fd)
{
	struct stat st;
	int saved = errno, rc;

	rc = fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
	errno = saved;
	return rc;
}

void rec_prim_exit_group(int status)
{
	for (;;)
		syscall(SYS_exit_group, status);
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

int rec_prim_sig_block(int sig, int block)
{
	sigset_t one, old;
	int rc;

	sigemptyset(&one);
	sigaddset(&one, sig);
	rc = pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &one, &old);
	if (rc) {
		errno = rc;
		return -1;
	}
	return sigismember(&old, sig) == 1;
}

void rec_prim_raise_unblocked(int sig)
{
	int saved = errno;
	sigset_t one, old;

	sigemptyset(&one);
	sigaddset(&one, sig);
	pthread_sigmask(SIG_UNBLOCK, &one, &old);
	syscall(SYS_tgkill, (pid_t)rec_prim_getpid(), (pid_t)rec_prim_gettid(), sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
}
