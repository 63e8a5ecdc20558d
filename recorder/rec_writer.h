/* Background writer: drains every thread ring into CHUNK records, samples
 * RSS into TICK records, zstd-compresses with a static context (zstd never
 * mallocs) and writes the trace file. */
#ifndef REC_WRITER_H
#define REC_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "rec_core.h"

/* Set up (or, for a new trace, reset) the zstd context over an mmap'd
 * workspace for output fd, the file at path (borrowed; used to reopen it
 * when the program closed or replaced the descriptor). fd is owned by the
 * writer from now on: it closes it at the end. The previous writer thread,
 * if any, must have finished (or not exist: fork child). Returns 0,
 * -ENOMEM or -CM_E_ZSTD. */
int rec_writer_init(int fd, const char *path) REC_HIDDEN;

/* Write the file header, then the top-level record rec (len bytes; the
 * PROCESS record) into the zstd stream. Before rec_writer_start() only.
 * Returns 0 or -errno / -CM_E_ZSTD. */
int rec_writer_put_header(const void *rec, size_t len) REC_HIDDEN;

/* Do a first round and flush on the calling thread, then start the writer
 * thread with every signal blocked. Returns 0 or -errno. */
int rec_writer_start(void) REC_HIDDEN;

/* Final round: wait (bounded) until no thread is in flight, drain every
 * ring, write TICK, END and the zstd epilogue, close the file. Call after
 * g_rec.enabled was set to 0; returns when the writer finished (or after a
 * timeout). Returns 1 when the writer finished, 0 after the timeout. */
int rec_writer_stop(void) REC_HIDDEN;

/* Ask the writer for a round followed by a zstd flush to the file and wait
 * until it is done (at most timeout_ns). No END: recording goes on. */
void rec_writer_flush(uint64_t timeout_ns) REC_HIDDEN;

/* Before the writer thread is started, on the thread that set the writer up
 * (rec_writer_init): run a round synchronously (drain every ring) and return
 * 1. Otherwise return 0. Lets a full ring make room during start-up. */
int rec_writer_drain_now(void) REC_HIDDEN;

/* Ask the writer for an early round (a ring is full or half full). One
 * futex wake; not for the common path. */
void rec_writer_kick(void) REC_HIDDEN;

/* 1 once the writer has finished for good (records can no longer be written). */
int rec_writer_is_gone(void) REC_HIDDEN;

#endif
