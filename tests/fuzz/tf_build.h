/* Test helpers (fuzz targets and unit tests): a growable byte buffer and the
 * assembly of a trace file (header + zstd frames) from raw record bytes.
 * Tests only: allocation failure aborts. */
#ifndef TF_BUILD_H
#define TF_BUILD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "tf_enc.h"

struct tb {
	uint8_t *p;
	size_t len, cap; /* bytes used, bytes allocated */
};

/* Make room for n more bytes; return where they go. */
static inline uint8_t *tb_room(struct tb *b, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			abort();
		b->p = p;
		b->cap = cap;
	}
	return b->p + b->len;
}

static inline void tb_put(struct tb *b, const void *data, size_t n)
{
	if (n) {
		memcpy(tb_room(b, n), data, n);
		b->len += n;
	}
}

static inline void tb_release(struct tb *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Append a trace file to out: the header, then raw (the decompressed record
 * stream) compressed as one zstd frame per piece, cut at the n_cuts offsets
 * in cuts (ascending, each <= len; empty pieces are skipped). */
static inline void tb_trace(struct tb *out, const uint8_t *raw, size_t len,
			    const size_t *cuts, size_t n_cuts, int level)
{
	uint8_t hdr[TF_HEADER_BYTES];
	size_t from = 0;

	tf_enc_header(hdr, 0);
	tb_put(out, hdr, sizeof(hdr));
	for (size_t i = 0; i <= n_cuts; i++) {
		size_t to = i < n_cuts ? cuts[i] : len;
		if (to > len)
			to = len;
		if (to <= from)
			continue;
		size_t bound = ZSTD_compressBound(to - from);
		uint8_t *dst = tb_room(out, bound);
		size_t n = ZSTD_compress(dst, bound, raw + from, to - from, level);
		if (ZSTD_isError(n))
			abort();
		out->len += n;
		from = to;
	}
}

/* Append a trace file to out whose zstd stream holds raw (stored) blocks
 * only, so each byte of raw appears as is in the file: one frame, blocks of
 * at most block_bytes (1 .. 128 KiB). Lets flips and fuzzers reach the record
 * bytes directly instead of the entropy coder. */
static inline void tb_trace_stored(struct tb *out, const uint8_t *raw, size_t len,
				   size_t block_bytes)
{
	uint8_t hdr[TF_HEADER_BYTES];
	/* frame magic, descriptor 0 (no content size, no checksum), window
	 * descriptor 0x58 (2^21 bytes) */
	static const uint8_t frame[] = { 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58 };
	size_t pos = 0;

	if (block_bytes == 0 || block_bytes > (128u << 10))
		block_bytes = 128u << 10;
	tf_enc_header(hdr, 0);
	tb_put(out, hdr, sizeof(hdr));
	tb_put(out, frame, sizeof(frame));
	do {
		size_t n = len - pos < block_bytes ? len - pos : block_bytes;
		uint32_t last = pos + n == len;
		uint32_t bh = (uint32_t)n << 3 | 0u << 1 | last; /* raw block */
		uint8_t b[3] = { (uint8_t)bh, (uint8_t)(bh >> 8), (uint8_t)(bh >> 16) };
		tb_put(out, b, 3);
		tb_put(out, raw + pos, n);
		pos += n;
	} while (pos < len);
}

#endif
