/* Unit-test trace builder shared by the analyzer tests: records are encoded
 * with formats/tf_enc.h into one pending chunk per stream, tb_flush() writes
 * a stream's chunk, tb_finish() compresses header + one zstd frame into
 * (file, file_len). Include after <cmocka.h>, <zstd.h>, <string.h> and
 * <stdlib.h>; every function is static (each test binary has its copy). */
#ifndef ANA_TB_H
#define ANA_TB_H

#include "cm_err.h"
#include "tf_enc.h"

#define TB_STREAMS 4
#define TB_CHUNK_CAP 65536

/* Trace builder: the decompressed stream in raw, one pending chunk per
 * stream, delta state per stream (continuous across chunks). */
struct tb {
	uint8_t *raw;
	size_t len, cap;
	struct tf_stream_state st[TB_STREAMS];
	uint8_t chunk[TB_STREAMS][TB_CHUNK_CAP];
	size_t clen[TB_STREAMS];
	uint8_t *file; /* header + zstd, after tb_finish() */
	size_t file_len;
};

static __attribute__((unused)) void tb_put(struct tb *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 4096;
		b->raw = realloc(b->raw, b->cap);
		assert_non_null(b->raw);
	}
	memcpy(b->raw + b->len, p, n);
	b->len += n;
}

static __attribute__((unused)) struct tb *tb_new(void)
{
	struct tb *b = calloc(1, sizeof(*b));
	uint8_t buf[512];
	static const char cmd[] = "./prog\0arg\0";
	int n;

	assert_non_null(b);
	n = tf_enc_process(buf, sizeof(buf), 4242, 1, 1700000000000000000ull, 4096,
			   "/bin/prog", 9, cmd, sizeof(cmd) - 1);
	assert_true(n > 0);
	tb_put(b, buf, (size_t)n);
	return b;
}

static __attribute__((unused)) uint8_t *tb_room(struct tb *b, int s)
{
	assert_true(b->clen[s] + TF_MAX_EVENT_BYTES <= TB_CHUNK_CAP);
	return b->chunk[s] + b->clen[s];
}

static __attribute__((unused)) void tb_thread(struct tb *b, int s, uint64_t seq, uint32_t tid)
{
	b->clen[s] += tf_enc_thread(tb_room(b, s), &b->st[s], seq, tid, "t", 1);
}

static __attribute__((unused)) void tb_node(struct tb *b, int s, uint32_t id, uint32_t parent, uint64_t addr)
{
	b->clen[s] += tf_enc_node(tb_room(b, s), &b->st[s], id, parent, addr);
}

static __attribute__((unused)) void tb_alloc(struct tb *b, int s, uint64_t seq, enum tf_kind kind, uint32_t node,
		     uint64_t size, uint64_t addr)
{
	b->clen[s] += tf_enc_alloc(tb_room(b, s), &b->st[s], seq, kind, node, size, addr);
}

static __attribute__((unused)) void tb_free(struct tb *b, int s, uint64_t seq, enum tf_kind kind, uint64_t addr)
{
	b->clen[s] += tf_enc_free(tb_room(b, s), &b->st[s], seq, kind, addr);
}

static __attribute__((unused)) void tb_unload(struct tb *b, int s, uint64_t seq, uint32_t id)
{
	b->clen[s] += tf_enc_unload(tb_room(b, s), &b->st[s], seq, id);
}

static __attribute__((unused)) void tb_module(struct tb *b, int s, uint64_t seq, uint32_t id, uint64_t base,
		      const char *path, const uint8_t *build_id, size_t build_id_len,
		      const struct tf_segment *segs, uint32_t n_segs)
{
	int n = tf_enc_module(b->chunk[s] + b->clen[s], TB_CHUNK_CAP - b->clen[s], &b->st[s],
			      seq, id, base, path, strlen(path), build_id, build_id_len, segs,
			      n_segs);
	assert_true(n > 0);
	b->clen[s] += (size_t)n;
}

static __attribute__((unused)) void tb_phase(struct tb *b, int s, uint64_t seq, enum tf_phase_op op,
				     const char *name)
{
	assert_true(b->clen[s] + TF_MAX_PHASE_BYTES <= TB_CHUNK_CAP);
	b->clen[s] += tf_enc_phase(b->chunk[s] + b->clen[s], &b->st[s], seq, op, name,
				   name ? strlen(name) : 0);
}

/* Write stream s's pending records as one CHUNK. */
static __attribute__((unused)) void tb_flush(struct tb *b, int s)
{
	uint8_t head[TF_MAX_EVENT_BYTES];

	if (!b->clen[s])
		return;
	tb_put(b, head, tf_enc_chunk_head(head, (uint32_t)s, (uint32_t)b->clen[s]));
	tb_put(b, b->chunk[s], b->clen[s]);
	b->clen[s] = 0;
}

static __attribute__((unused)) void tb_tick(struct tb *b, uint64_t wm, uint64_t time_ns, uint64_t rss)
{
	uint8_t buf[TF_MAX_EVENT_BYTES];

	tb_put(b, buf, tf_enc_tick(buf, wm, time_ns, rss));
}

static __attribute__((unused)) void tb_end(struct tb *b, uint64_t time_ns, uint64_t n_events)
{
	uint8_t buf[TF_MAX_EVENT_BYTES];

	tb_put(b, buf, tf_enc_end(buf, time_ns, n_events));
}

/* Compress: header + one zstd frame. */
static __attribute__((unused)) void tb_finish(struct tb *b)
{
	size_t bound = ZSTD_compressBound(b->len);

	b->file = malloc(TF_HEADER_BYTES + bound);
	assert_non_null(b->file);
	tf_enc_header(b->file, 0);
	size_t z = ZSTD_compress(b->file + TF_HEADER_BYTES, bound, b->raw, b->len, 3);
	assert_false(ZSTD_isError(z));
	b->file_len = TF_HEADER_BYTES + z;
}

static __attribute__((unused)) void tb_free_all(struct tb *b)
{
	free(b->raw);
	free(b->file);
	free(b);
}

#endif
