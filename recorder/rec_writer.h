/* Background writer: drains every thread ring into CHUNK records, samples
 * RSS into TICK records, zstd-compresses with a static context (zstd never
 * mallocs) and writes the trace file. */
#ifndef REC_WRITER_H
#define REC_WRITER_H

#include <stddef.h>

#include "rec_core.h"

/* Set up the zstd context over an mmap'd workspace for output fd (owned
 * by the writer from now on: it closes it at the end). Returns 0, -ENOMEM
 * or -CM_E_ZSTD. */
int rec_writer_init(int fd) REC_HIDDEN;

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
 * timeout). */
void rec_writer_stop(void) REC_HIDDEN;

/* Ask the writer for an early round (a ring is full or half full). One
 * futex wake; not for the common path. */
void rec_writer_kick(void) REC_HIDDEN;

/* 1 once the writer has finished for good (records can no longer be written). */
int rec_writer_is_gone(void) REC_HIDDEN;

#endif
