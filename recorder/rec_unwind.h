/* Backtrace capture: our own CFI stepper with libunwind as the fallback
 * (raw return addresses; the recorder's own frames skipped). */
#ifndef REC_UNWIND_H
#define REC_UNWIND_H

#include <stddef.h>
#include <stdint.h>

#include "rec_core.h"

/* Read MEMREC_UNWIND / MEMREC_UNWIND_CHECK, set libunwind's per-thread
 * cache, map the CFI cache and find the text ranges to skip (libmemrec.so
 * and libunwind). Returns 0 or -ENOENT when the recorder's own text could
 * not be found. Call once from the constructor. */
int rec_unwind_init(void) REC_HIDDEN;

/* Capture up to cap return addresses of the calling thread into frames,
 * innermost first, starting at the caller of the interposed function.
 * Returns the count (0 when unwinding failed); *truncated is set to 1 when
 * deeper frames were cut. *same_root is set to how many outermost frames
 * are known (validated) to equal the outermost frames of this thread's
 * previous capture (0: unknown); the outermost min(*same_root,
 * unwritten_max) entries of frames[0, count) may be left unwritten (the
 * caller still has them). frames must hold cap + REC_FRAME_SLACK + 1
 * entries. Owner of t only. May call malloc (libunwind fallback, a
 * thread's first call): run under the recursion guard. */
size_t rec_unwind_capture(struct rec_thread *t, void **frames, size_t cap, int *truncated,
			  size_t *same_root, size_t unwritten_max) REC_HIDDEN;

/* Per thread (not per slot: TLS starts zeroed in every new thread). */
struct rec_unw_tls {
	uintptr_t lo, hi;    /* the thread's stack [lo, hi), learned at its
			      * first backtrace */
	int state;           /* 0 unknown, 1 known, -1 unavailable */
	uint32_t n_captures; /* backtraces so far, counted up to
			      * REC_UNW_REUSE_AFTER */
};

extern __thread struct rec_unw_tls rec_unw_tls REC_HIDDEN;

/* 1 once the calling thread made REC_UNW_REUSE_AFTER backtraces: from then
 * on it keeps per-slot caches (the unwinder's last walk, the trie memo);
 * short-lived threads never touch those pages. */
static inline int rec_unwind_thread_is_busy(void)
{
	return rec_unw_tls.n_captures >= REC_UNW_REUSE_AFTER;
}

/* 1 under MEMREC_UNWIND_CHECK=1: every backtrace is compared with
 * libunwind's, and users of same_root check it. */
extern int rec_unwind_check_on REC_HIDDEN;

/* A module was unloaded (dlclose): forget every cached unwind rule and
 * every thread's previous backtrace. Lock-free; any thread. */
void rec_unwind_dl_change(void) REC_HIDDEN;

/* Check mode: count a difference (what, frame index, our value, the
 * reference value); the first one is logged. */
void rec_unwind_mismatch(const char *what, size_t index, uint64_t got, uint64_t want) REC_HIDDEN;

/* libunwind's memory-validation pipe (created inside the recorder, see
 * rec_preload.c pipe2): remember its two descriptors and their identity. */
void rec_unwind_pipe_set(const int fds[2]) REC_HIDDEN;

/* 1 when fd is one of the validation pipe's numbers and that pipe is no
 * longer intact (the program closed a number or put its own file there):
 * libunwind must then neither read, write nor close that number. Calls
 * with other fds return 0. */
int rec_unwind_pipe_foreign(int fd) REC_HIDDEN;

/* 1 when fd is one of the validation pipe's numbers. */
int rec_unwind_pipe_is(int fd) REC_HIDDEN;

/* 1 when fd is one of the validation pipe's numbers and still that end of
 * the pipe (same device and inode). */
int rec_unwind_pipe_owned(int fd) REC_HIDDEN;

#endif
