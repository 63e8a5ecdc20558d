/* OS primitives for the recorder: the only code that makes system calls
 * (mimalloc's src/prim/). Nothing here allocates with malloc; every
 * function is safe to call inside malloc under the recursion guard. */
#ifndef REC_PRIM_H
#define REC_PRIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Map len bytes of zeroed, private, read-write memory (MAP_NORESERVE when
 * noreserve is set: pages are touched lazily). Returns NULL on failure. */
void *rec_prim_map(size_t len, int noreserve);
void rec_prim_unmap(void *p, size_t len);
/* Give the pages of [p, p + len) back to the kernel (they read as zeros
 * afterwards). p page-aligned; len rounded up to pages. */
void rec_prim_discard(void *p, size_t len);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
uint64_t rec_prim_mono_ns(void);
uint64_t rec_prim_real_ns(void);

uint32_t rec_prim_gettid(void);
uint32_t rec_prim_getpid(void);
uint32_t rec_prim_getppid(void);
size_t rec_prim_page_size(void);

/* Open path for a new trace: O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC|O_NOFOLLOW,
 * mode 0600. Returns the fd or -errno. */
int rec_prim_create_excl(const char *path);
/* Open path read-only with O_CLOEXEC. Returns the fd or -errno. The _high
 * variant (and create_excl) moves the descriptor to a high number (>= 800,
 * or 3/4 of a small RLIMIT_NOFILE) so the program's own dup2() onto low
 * numbers never replaces a descriptor the recorder keeps open. */
int rec_prim_open_ro(const char *path);
/* Move an open descriptor to a high number as above (closing the low one);
 * returns the new fd, or fd unchanged when it cannot be moved. */
int rec_prim_fd_high(int fd);
int rec_prim_open_ro_high(const char *path);
void rec_prim_close(int fd);

/* st_dev and st_ino of open descriptor fd (fstat). Returns 0 or -errno. */
int rec_prim_fd_id(int fd, uint64_t *dev, uint64_t *ino);

/* Reopen the trace file at path for appending (O_WRONLY|O_APPEND|
 * O_NOFOLLOW|O_CLOEXEC) at a high number, only if it is still the file
 * (dev, ino). Returns the fd, -ESTALE when path names another file, or
 * -errno. */
int rec_prim_reopen_append(const char *path, uint64_t dev, uint64_t ino);

/* Append len bytes to the file at path with one write() (O_APPEND; the file
 * must exist). Returns 0 or -errno. */
int rec_prim_append(const char *path, const void *data, size_t len);

/* The current directory into buf (cap bytes). Returns 0 or -errno. */
int rec_prim_getcwd(char *buf, size_t cap);

/* Write all len bytes of data to fd, retrying on EINTR and short writes.
 * Returns 0 or -errno. */
int rec_prim_write_all(int fd, const void *data, size_t len);

/* pread up to cap bytes at offset off. Returns bytes read or -errno. */
ssize_t rec_prim_pread(int fd, void *buf, size_t cap, uint64_t off);

/* Read at most cap bytes of the file at path into buf (not NUL-terminated).
 * Returns bytes read or -errno. */
ssize_t rec_prim_read_file(const char *path, void *buf, size_t cap);

/* readlink(path) into buf (cap bytes), NUL-terminated, cut if too long.
 * Returns the length or -errno. */
ssize_t rec_prim_readlink(const char *path, char *buf, size_t cap);

/* Futex on a 32-bit word (private). wait: sleep while *word == val, at most
 * timeout_ns (0 = no timeout); returns 0 after a wake-up, timeout, or value
 * change. wake: wake up to n waiters. */
void rec_prim_futex_wait(uint32_t *word, uint32_t val, uint64_t timeout_ns);
void rec_prim_futex_wake(uint32_t *word, int n);

/* Sleep for ns nanoseconds (EINTR ends it early). */
void rec_prim_sleep_ns(uint64_t ns);
void rec_prim_yield(void);

/* Give the calling thread its own descriptor table (unshare CLONE_FILES)
 * and close in it every descriptor but the n_keep in keep (up to 8; -1
 * entries ignored). The program's close()/dup2() then never reach them,
 * and the thread holds no reference to the program's files. Returns 0 or
 * -errno (unshare refused: nothing changed). */
int rec_prim_private_fds(const int *keep, size_t n_keep);

/* 1 when fd is a pipe or a socket. */
int rec_prim_is_pipe_or_socket(int fd);

/* exit_group(status): ends the process at once. */
void rec_prim_exit_group(int status) __attribute__((noreturn));

/* 1 when thread tid of this process still exists, 0 when it has exited. */
int rec_prim_thread_alive(uint32_t tid);

/* The calling thread's name (prctl PR_GET_NAME) into buf[16], NUL-terminated.
 * Returns its length. */
size_t rec_prim_thread_name(char buf[16]);

/* Block (block = 1) or unblock (0) signal sig in the calling thread's mask.
 * Returns 1 when it was blocked before, 0 when not, -1 with errno on
 * failure. Async-signal-safe. */
int rec_prim_sig_block(int sig, int block);

/* Send sig to the calling thread (tgkill) with sig unblocked for the time
 * of the call, so that its action happens before this returns (when the
 * action is to end the process, this never returns); then restore the
 * mask. Keeps errno. Async-signal-safe. */
void rec_prim_raise_unblocked(int sig);

#endif
