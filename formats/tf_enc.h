/* Trace encoder: records -> caller buffer. Never allocates, never calls into
 * libc beyond memcpy, so the recorder can use it inside malloc. Encodings
 * are specified in docs/trace-format.md. */
#ifndef TF_ENC_H
#define TF_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "tf_records.h"

/* Write the 16-byte file header into buf (TF_HEADER_BYTES). */
void tf_enc_header(uint8_t buf[TF_HEADER_BYTES], uint32_t flags);

/* Event records. buf must have room for TF_MAX_EVENT_BYTES; st is the
 * stream's delta state (zero-initialized for a new stream) and is updated.
 * seq must be greater than the stream's previous seq. Return bytes written. */
size_t tf_enc_thread(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		     uint32_t tid, const char *name, size_t name_len);
size_t tf_enc_node(uint8_t *buf, struct tf_stream_state *st, uint32_t id,
		   uint32_t parent, uint64_t addr);
size_t tf_enc_alloc(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		    enum tf_kind kind, uint32_t node, uint64_t size, uint64_t addr);
size_t tf_enc_free(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		   enum tf_kind kind, uint64_t addr);
size_t tf_enc_unload(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		     uint32_t id);

/* PHASE record (docs "Stream records"): op is TF_PHASE_BEGIN, _END or
 * _MARK; name (name_len bytes, copied, not NUL-terminated; NULL when
 * name_len is 0) is cut at TF_MAX_PHASE_NAME_BYTES and not written for
 * TF_PHASE_END. buf must have room for TF_MAX_PHASE_BYTES; st and seq as
 * for the event records above. Returns bytes written. */
size_t tf_enc_phase(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		    enum tf_phase_op op, const char *name, size_t name_len);

/* Start a new stream with cache c (before its first ALLOC/FREE; with a
 * zeroed tf_stream_state). Cheap: the hash table is not cleared. */
void tf_enc_cache_reset(struct tf_enc_cache *c);

/* ALLOC and FREE as cached events: like tf_enc_alloc/tf_enc_free (same
 * buffer rule, TF_MAX_EVENT_BYTES), with cache c of this stream. The FREE
 * changes only st and what the previous event left pending in st, so a
 * caller may undo the last FREE by restoring st as it was before it. */
size_t tf_enc_alloc_c(uint8_t *buf, struct tf_stream_state *st, struct tf_enc_cache *c,
		      uint64_t seq, enum tf_kind kind, uint32_t node, uint64_t size,
		      uint64_t addr);
size_t tf_enc_free_c(uint8_t *buf, struct tf_stream_state *st, struct tf_enc_cache *c,
		     uint64_t seq, enum tf_kind kind, uint64_t addr);

/* Records with strings: write into (buf, cap). Return bytes written, or
 * -CM_E_LIMIT when a field exceeds its limit in tf_records.h or the record
 * does not fit in cap. Strings are cut by the caller, not here. */
int tf_enc_module(uint8_t *buf, size_t cap, struct tf_stream_state *st,
		  uint64_t seq, uint32_t id, uint64_t base, const char *path,
		  size_t path_len, const uint8_t *build_id, size_t build_id_len,
		  const struct tf_segment *segs, uint32_t n_segs);
int tf_enc_process(uint8_t *buf, size_t cap, uint32_t pid, uint32_t ppid,
		   uint64_t start_unix_ns, uint32_t page_size, const char *exe,
		   size_t exe_len, const char *cmdline, size_t cmdline_len);

/* Top-level fixed records; buf needs TF_MAX_EVENT_BYTES. Return bytes. */
size_t tf_enc_chunk_head(uint8_t *buf, uint32_t stream, uint32_t len);
size_t tf_enc_tick(uint8_t *buf, uint64_t watermark, uint64_t time_ns,
		   uint64_t rss_bytes);
size_t tf_enc_end(uint8_t *buf, uint64_t time_ns, uint64_t n_events);

#endif
