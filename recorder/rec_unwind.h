/* Backtrace capture with libunwind (raw return addresses; the recorder's
 * own frames skipped). */
#ifndef REC_UNWIND_H
#define REC_UNWIND_H

#include <stddef.h>

#include "rec_core.h"

/* Set libunwind's per-thread cache and find the text ranges to skip
 * (libmemrec.so and libunwind). Returns 0 or -ENOENT when the recorder's
 * own text could not be found. Call once from the constructor. */
int rec_unwind_init(void) REC_HIDDEN;

/* Capture up to cap return addresses of the calling thread into frames,
 * innermost first, starting at the caller of the interposed function.
 * Returns the count (0 when unwinding failed); *truncated is set to 1 when
 * deeper frames were cut. frames must hold cap + REC_FRAME_SLACK + 1
 * entries. May call malloc (libunwind): run under the recursion guard. */
size_t rec_unwind_capture(void **frames, size_t cap, int *truncated) REC_HIDDEN;

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
