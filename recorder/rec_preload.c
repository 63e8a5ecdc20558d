/* The interposed and exported symbols and nothing else (mimalloc
 * alloc-override.c).
 * Ordering rule (PLAN.md): a FREE takes its seq before the real free, an
 * ALLOC after the real allocation returned. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec_core.h"
#include "rec_prim.h"
#include "rec_signal.h"
#include "rec_unwind.h"

#define REC_EXPORT __attribute__((visibility("default")))

/* Resolve the real functions on first use; when name is still unknown
 * (only possible inside dlsym's bootstrap) fail with ENOSYS. */
#define REQUIRE_REAL(name)                              \
	do {                                            \
		if (REC_UNLIKELY(!rec_real.name)) {     \
			rec_bootstrap();                \
			if (!rec_real.name) {           \
				errno = ENOSYS;         \
				return -1;              \
			}                               \
		}                                       \
	} while (0)

/* Before the real functions are known (inside dlsym): the static arena. */
static inline int booting(void)
{
	if (REC_LIKELY(rec_real.malloc != NULL))
		return 0;
	rec_bootstrap();
	return rec_real.malloc == NULL;
}

static inline void *record_alloc(void *p, enum tf_kind kind, size_t size)
{
	return rec_record_alloc(p, kind, size);
}

REC_EXPORT void *malloc(size_t size)
{
	if (REC_UNLIKELY(booting()))
		return rec_arena_alloc(size, 16);
	return record_alloc(rec_real.malloc(size), TF_KIND_MALLOC, size);
}

REC_EXPORT void free(void *p)
{
	if (!p || REC_UNLIKELY(rec_arena_owns(p)))
		return;
	if (REC_UNLIKELY(!rec_real.free)) {
		rec_bootstrap();
		if (!rec_real.free)
			return; /* cannot happen outside dlsym; leak rather than crash */
	}
	rec_record_free(p);
}

REC_EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total))
		total = SIZE_MAX;
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.calloc))
		return total == SIZE_MAX ? NULL : rec_arena_alloc(total, 16);
	return record_alloc(rec_real.calloc(n, size), TF_KIND_CALLOC, total);
}

static void *do_realloc(void *p, size_t size, size_t n, enum tf_kind kind)
{
	struct rec_thread *t;
	void *q;

	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(rec_arena_owns(p))) {
		/* Arena blocks move to the real heap (or stay in the arena). */
		void *r = rec_real.malloc ? malloc(size) : rec_arena_alloc(size, 16);
		if (r && p) {
			size_t old = rec_arena_owns(p) ? rec_arena_size(p) : 0;
			memcpy(r, p, old < size ? old : size);
		}
		return r;
	}
	t = rec_enter();
	int seq_free_needed = t && p;
	/* The FREE must take its seq before the block can be reused; staged now
	 * and dropped below if the call fails and p stays valid. */
	uint32_t mark = 0;
	struct tf_stream_state saved_st;
	if (seq_free_needed) {
		mark = t->stage_len;
		saved_st = t->st;
		rec_stage_free(t, TF_KIND_REALLOC, (uint64_t)(uintptr_t)p);
	}
	if (kind == TF_KIND_REALLOCARRAY && rec_real.reallocarray)
		q = rec_real.reallocarray(p, n, size / (n ? n : 1));
	else
		q = rec_real.realloc(p, size);
	if (!t)
		return q;
	int saved = errno;
	if (seq_free_needed && !q && size != 0) {
		/* Failed: the old block is still valid, no FREE. */
		t->stage_len = mark;
		t->st = saved_st;
		t->stage_events--;
	}
	if (q || size != 0 || !p)
		rec_stage_alloc(t, kind, size, (uint64_t)(uintptr_t)q);
	rec_leave(t);
	errno = saved;
	return q;
}

REC_EXPORT void *realloc(void *p, size_t size)
{
	return do_realloc(p, size, 1, TF_KIND_REALLOC);
}

REC_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!rec_real.reallocarray || booting())
		return do_realloc(p, total, n, TF_KIND_REALLOC);
	return do_realloc(p, total, n, TF_KIND_REALLOCARRAY);
}

REC_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	int rc;

	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.posix_memalign)) {
		void *p = rec_arena_alloc(size, align);
		if (!p)
			return ENOMEM;
		*out = p;
		return 0;
	}
	rc = rec_real.posix_memalign(out, align, size);
	if (rc == 0)
		record_alloc(*out, TF_KIND_POSIX_MEMALIGN, size);
	return rc;
}

REC_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.aligned_alloc))
		return rec_arena_alloc(size, align);
	return record_alloc(rec_real.aligned_alloc(align, size), TF_KIND_ALIGNED_ALLOC, size);
}

REC_EXPORT void *memalign(size_t align, size_t size)
{
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.memalign))
		return rec_arena_alloc(size, align);
	return record_alloc(rec_real.memalign(align, size), TF_KIND_MEMALIGN, size);
}

REC_EXPORT void *valloc(size_t size)
{
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.valloc))
		return rec_arena_alloc(size, 4096);
	return record_alloc(rec_real.valloc(size), TF_KIND_VALLOC, size);
}

REC_EXPORT void *pvalloc(size_t size)
{
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.pvalloc))
		return rec_arena_alloc((size + 4095) & ~(size_t)4095, 4096);
	return record_alloc(rec_real.pvalloc(size), TF_KIND_PVALLOC, size);
}

REC_EXPORT int dlclose(void *handle)
{
	int rc;

	REQUIRE_REAL(dlclose);
	rc = rec_real.dlclose(handle);
	if (rc == 0) {
		int saved = errno;
		rec_on_dl_change();
		errno = saved;
	}
	return rc;
}

/* ---- exec: the old image's trace ends (END) before the real call; if the
 * call fails a new trace starts. A vfork() child (shared memory) passes
 * straight through (rec_exec_begin checks the pid). ---- */

#define EXECL_STACK_ARGS 256

/* execl*: collect arg0 and the NULL-terminated variadic arguments into buf
 * (cap pointers) or, when they do not fit, an mmap'd array (*mapped bytes,
 * 0 for buf). With envp, also read the pointer after the NULL (execle).
 * Returns the array, or NULL when it cannot be mapped. */
static char **collect_args(const char *arg0, va_list ap, char **buf, size_t cap,
			   size_t *mapped, char *const **envp)
{
	va_list c;
	size_t n = 1;
	char **v = buf;

	va_copy(c, ap);
	while (va_arg(c, char *))
		n++;
	va_end(c);
	*mapped = 0;
	if (n + 1 > cap) {
		*mapped = (n + 1) * sizeof(char *);
		v = rec_prim_map(*mapped, 0);
		if (!v)
			return NULL;
	}
	v[0] = (char *)arg0;
	for (size_t i = 1; i <= n; i++)
		v[i] = va_arg(ap, char *); /* v[n] = the NULL */
	if (envp)
		*envp = va_arg(ap, char *const *);
	return v;
}


REC_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	int token, rc;

	REQUIRE_REAL(execve);
	token = rec_exec_begin();
	rc = rec_real.execve(path, argv, envp);
	rec_exec_failed(token);
	return rc;
}

REC_EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

REC_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	int token, rc;

	REQUIRE_REAL(execvpe);
	token = rec_exec_begin();
	rc = rec_real.execvpe(file, argv, envp);
	rec_exec_failed(token);
	return rc;
}

REC_EXPORT int execvp(const char *file, char *const argv[])
{
	int token, rc;

	REQUIRE_REAL(execvp);
	token = rec_exec_begin();
	rc = rec_real.execvp(file, argv);
	rec_exec_failed(token);
	return rc;
}

REC_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	int token, rc;

	REQUIRE_REAL(fexecve);
	token = rec_exec_begin();
	rc = rec_real.fexecve(fd, argv, envp);
	rec_exec_failed(token);
	return rc;
}

/* The end of every execl-family call: v is the argument vector collect_args()
 * built (NULL: too many arguments); runs execvp(file, v) when search is set,
 * else execve(file, v, envp); unmaps v when it was mapped; keeps errno. */
static int exec_collected(const char *file, char **v, size_t mapped,
			  char *const *envp, int search)
{
	if (!v) {
		errno = E2BIG;
		return -1;
	}
	int rc = search ? execvp(file, v) : execve(file, v, envp);
	int saved = errno;
	if (mapped)
		rec_prim_unmap(v, mapped);
	errno = saved;
	return rc;
}

REC_EXPORT int execl(const char *path, const char *arg, ...)
{
	char *buf[EXECL_STACK_ARGS];
	size_t mapped;
	va_list ap;

	va_start(ap, arg);
	char **v = collect_args(arg, ap, buf, EXECL_STACK_ARGS, &mapped, NULL);
	va_end(ap);
	return exec_collected(path, v, mapped, environ, 0);
}

REC_EXPORT int execlp(const char *file, const char *arg, ...)
{
	char *buf[EXECL_STACK_ARGS];
	size_t mapped;
	va_list ap;

	va_start(ap, arg);
	char **v = collect_args(arg, ap, buf, EXECL_STACK_ARGS, &mapped, NULL);
	va_end(ap);
	return exec_collected(file, v, mapped, NULL, 1);
}

REC_EXPORT int execle(const char *path, const char *arg, ...)
{
	char *buf[EXECL_STACK_ARGS];
	char *const *envp = NULL;
	size_t mapped;
	va_list ap;

	va_start(ap, arg);
	char **v = collect_args(arg, ap, buf, EXECL_STACK_ARGS, &mapped, &envp);
	va_end(ap);
	return exec_collected(path, v, mapped, envp, 0);
}

/* ---- exit paths ---- */

/* _exit/_Exit skip atexit: end the trace here (END written). */
REC_EXPORT void _exit(int status)
{
	rec_exit_now();
	if (!rec_real.exit_)
		rec_bootstrap();
	if (rec_real.exit_)
		rec_real.exit_(status);
	rec_prim_exit_group(status);
}

REC_EXPORT void _Exit(int status)
{
	rec_exit_now();
	if (!rec_real.Exit)
		rec_bootstrap();
	if (rec_real.Exit)
		rec_real.Exit(status);
	rec_prim_exit_group(status);
}

/* abort: write what was recorded so far (no END: the trace stays
 * incomplete, a prefix up to the abort), then abort for real. */
REC_EXPORT void abort(void)
{
	rec_flush_now();
	if (!rec_real.abort)
		rec_bootstrap();
	if (rec_real.abort)
		rec_real.abort();
	__builtin_trap();
}

/* libunwind opens a pipe (to validate memory) at its first unwind, which
 * happens inside the recorder: keep its descriptors away from the numbers
 * the program would get from its own next open(), so a traced program sees
 * the same descriptors as an untraced one. Calls from the program itself
 * pass straight through. */
static int pipe_common(int fds[2], int flags)
{
	REQUIRE_REAL(pipe2);
	int rc = rec_real.pipe2(fds, flags);
	if (rc == 0 && rec_tls.guard) {
		fds[0] = rec_prim_fd_high(fds[0]);
		fds[1] = rec_prim_fd_high(fds[1]);
		rec_unwind_pipe_set(fds);
	}
	return rc;
}

/* libunwind (1.6) validates addresses by read()ing its pipe's read end,
 * then writing one byte of the address to the write end with a raw
 * syscall; when the read fails it close()s both numbers and makes a new
 * pipe. If the program closed those numbers and opened its own files there
 * (or dup2()'d over them), libunwind would read from, write to and close
 * the program's files. Inside the recorder only: a read of a validation
 * pipe number whose pipe is no longer intact fails with EBADF (so libunwind
 * makes a new pipe, which pipe2 above moves high again, before it writes),
 * and its close() of a number that is not ours any more does nothing. */
REC_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	REQUIRE_REAL(read);
	if (REC_UNLIKELY(rec_tls.guard) && rec_unwind_pipe_foreign(fd)) {
		errno = EBADF;
		return -1;
	}
	return rec_real.read(fd, buf, len);
}

REC_EXPORT int close(int fd)
{
	REQUIRE_REAL(close);
	if (REC_UNLIKELY(rec_tls.guard) && rec_unwind_pipe_is(fd) && !rec_unwind_pipe_owned(fd))
		return 0; /* closed already, or the program's file now: leave it */
	return rec_real.close(fd);
}

REC_EXPORT int pipe2(int fds[2], int flags)
{
	return pipe_common(fds, flags);
}

REC_EXPORT int pipe(int fds[2])
{
	return pipe_common(fds, 0);
}

/* ---- phases and marks (include/memrec.h) ---- */

/* The one function include/memrec.h looks up (dlsym) and calls. Not in
 * any header of ours: the program's side is the header's inline code. */
REC_EXPORT void memrec__phase(int op, const char *name);

REC_EXPORT void memrec__phase(int op, const char *name)
{
	rec_record_phase(op, name);
}

/* ---- the mark signal (--mark-signal, rec_signal.c): the program sets and
 * reads its own disposition of it through these; every other signal passes
 * straight through. sigvec (a compatibility symbol) and raw rt_sigaction
 * syscalls are not seen. ---- */

/* Resolve the real function on first use; ENOSYS only inside dlsym. */
#define REQUIRE_REAL_SIG(name)                          \
	do {                                            \
		if (REC_UNLIKELY(!rec_real.name)) {     \
			rec_bootstrap();                \
			if (!rec_real.name) {           \
				errno = ENOSYS;         \
				return SIG_ERR;         \
			}                               \
		}                                       \
	} while (0)

static int sigaction_common(int sig, const struct sigaction *act, struct sigaction *oact)
{
	if (rec_sig_is_mark(sig))
		return rec_sig_action(sig, act, oact);
	REQUIRE_REAL(sigaction);
	return rec_real.sigaction(sig, act, oact);
}

REC_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	return sigaction_common(sig, act, oact);
}

REC_EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *oact);

REC_EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	return sigaction_common(sig, act, oact);
}

static sighandler_t signal_common(int sig, sighandler_t handler)
{
	if (rec_sig_is_mark(sig))
		return rec_sig_signal(sig, handler, 0);
	REQUIRE_REAL_SIG(signal);
	return rec_real.signal(sig, handler);
}

REC_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	return signal_common(sig, handler);
}

REC_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler); /* XSI, not declared here */

REC_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal_common(sig, handler);
}

REC_EXPORT sighandler_t ssignal(int sig, sighandler_t handler)
{
	return signal_common(sig, handler);
}

/* signal() of programs built with a strict -std= (no _DEFAULT_SOURCE):
 * glibc's headers turn it into __sysv_signal (one-shot handlers). */
static sighandler_t sysv_signal_common(int sig, sighandler_t handler)
{
	if (rec_sig_is_mark(sig))
		return rec_sig_signal(sig, handler, 1);
	REQUIRE_REAL_SIG(sysv_signal);
	return rec_real.sysv_signal(sig, handler);
}

REC_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return sysv_signal_common(sig, handler);
}

REC_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	return sysv_signal_common(sig, handler);
}

REC_EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
	if (rec_sig_is_mark(sig))
		return rec_sig_signal(sig, disp, 2);
	REQUIRE_REAL_SIG(sigset);
	return rec_real.sigset(sig, disp);
}

REC_EXPORT int sigignore(int sig)
{
	if (rec_sig_is_mark(sig)) {
		struct sigaction a;
		memset(&a, 0, sizeof(a));
		a.sa_handler = SIG_IGN;
		sigemptyset(&a.sa_mask);
		return rec_sig_action(sig, &a, NULL);
	}
	REQUIRE_REAL(sigignore);
	return rec_real.sigignore(sig);
}
