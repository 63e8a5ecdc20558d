/* Trace decoder: bytes -> records, validating everything it reads. A
 * corrupt, truncated or hostile file gives an error with its byte offset,
 * never a crash, hang or unbounded allocation (docs/trace-format.md
 * "Limits"; fuzzed by tests/fuzz/fuzz_decode.c). */
#ifndef TF_DEC_H
#define TF_DEC_H

#include <stddef.h>
#include <stdint.h>

#include "tf_records.h"

struct tf_dec;

/* Open the trace at path and check its header. On success *out is a new
 * decoder the caller frees with tf_dec_free(). Returns 0, -errno from
 * open/read, -CM_E_MAGIC, -CM_E_VERSION, -CM_E_TRUNCATED (shorter than the
 * header) or -ENOMEM; on error *out is untouched and, when errmsg is not
 * NULL, a message (128 bytes max, with the offset) is copied to errmsg. */
int tf_dec_open(struct tf_dec **out, const char *path, char errmsg[128]);

/* Same over memory: data (len bytes) is borrowed and must outlive dec. */
int tf_dec_open_mem(struct tf_dec **out, const void *data, size_t len,
		    char errmsg[128]);

/* Free dec and everything it owns; NULL is allowed. */
void tf_dec_free(struct tf_dec *dec);

/* Decode the next record into *rec. rec's pointers borrow dec's buffer and
 * stay valid until the next call. Returns 1 (record), 0 (clean end: the END
 * record was returned by the previous call and nothing follows it),
 * -CM_E_TRUNCATED (input ended before an END record; every record before
 * the cut was returned), -CM_E_CORRUPT, -CM_E_LIMIT, -CM_E_ZSTD, -ENOMEM or
 * -errno from reading. Errors are sticky: later calls return the same code.
 * tf_dec_errmsg() gives the text with the byte offset. Not thread-safe. */
int tf_dec_next(struct tf_dec *dec, struct tf_record *rec);

/* An ALLOC, FREE or NODE record in compact form (tf_dec_events()). */
struct tf_event {
	uint64_t seq;    /* global sequence number (NODE: 0) */
	uint64_t off;    /* byte offset of the record in the decompressed stream */
	uint64_t size;   /* ALLOC: bytes requested; FREE: 0; NODE: return address */
	uint64_t addr;   /* the block (ALLOC: 0 when the call failed); NODE: parent id */
	uint32_t node;   /* ALLOC: leaf stack node; FREE: 0; NODE: its id */
	uint32_t stream; /* thread stream id */
	uint8_t tag;     /* TF_TAG_ALLOC, TF_TAG_FREE or TF_TAG_NODE */
	uint8_t kind;    /* enum tf_kind (NODE: 0) */
};

/* Decode the ALLOC, FREE and NODE records that come next, up to cap of
 * them, into out[0..n): the same records, fields, checks and errors as
 * tf_dec_next() (u.alloc, u.free, u.node; cached forms included), for bulk
 * readers (no call and no cleared record per record). Stops before any other record, at the end
 * of a chunk, and where tf_dec_next() would refill its buffer; the caller
 * then calls tf_dec_next(), which goes on from there. Returns n >= 0 (0:
 * the next record is for tf_dec_next()) or a negative code as
 * tf_dec_next() does; when a record fails after n > 0 good ones, n is
 * returned and the (sticky) error comes with the next call. */
long tf_dec_events(struct tf_dec *dec, struct tf_event *out, size_t cap);

/* The last error as one line, e.g. "corrupt trace at byte 1234 of the
 * decompressed stream (file byte 567): unknown record tag 0x7f". Empty when
 * there was none. Borrowed; valid until tf_dec_free(). */
const char *tf_dec_errmsg(const struct tf_dec *dec);

/* Format version and flags from the file header. */
uint32_t tf_dec_version(const struct tf_dec *dec);
uint32_t tf_dec_flags(const struct tf_dec *dec);

/* Bytes of the file consumed so far (header + compressed input). */
uint64_t tf_dec_file_offset(const struct tf_dec *dec);

/* Name of a tag for dump and messages ("alloc", "free", ...); "?" if unknown. */
const char *tf_tag_name(enum tf_tag tag);
/* Name of an allocation function kind ("malloc", "calloc", ...). */
const char *tf_kind_name(enum tf_kind kind);
/* Name of a PHASE record's op ("begin", "end", "mark"); "?" if unknown. */
const char *tf_phase_op_name(enum tf_phase_op op);

#endif
