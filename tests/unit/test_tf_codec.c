/* The trace codec: varints, encode -> decode of every record with edge
 * values, header checks, limits, malformed records, and the robustness
 * sweep of STYLE.md: a small valid trace decoded at every prefix length and
 * with every single-byte flip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_err.h"
#include "cm_varint.h"
#include "fuzz/tf_build.h"
#include "tf_dec.h"
#include "tf_enc.h"

#define MAX_RECS 4096

/* ---- helpers --------------------------------------------------------- */

/* Copies of the string fields of stored records: a record's pointers borrow
 * the decoder's buffer, gone once decode_all() returns. */
static uint8_t str_arena[1u << 20];
static size_t str_used;

static const void *keep(const void *p, size_t len)
{
	if (!p || len == 0)
		return p;
	assert_true(str_used + len <= sizeof(str_arena));
	void *q = memcpy(str_arena + str_used, p, len);
	str_used += len;
	return q;
}

static void keep_strings(struct tf_record *r)
{
	switch (r->tag) {
	case TF_TAG_PROCESS:
		r->u.process.exe = keep(r->u.process.exe, r->u.process.exe_len);
		r->u.process.cmdline = keep(r->u.process.cmdline, r->u.process.cmdline_len);
		break;
	case TF_TAG_THREAD:
		r->u.thread.name = keep(r->u.thread.name, r->u.thread.name_len);
		break;
	case TF_TAG_MODULE:
		r->u.module.path = keep(r->u.module.path, r->u.module.path_len);
		r->u.module.build_id = keep(r->u.module.build_id, r->u.module.build_id_len);
		break;
	case TF_TAG_PHASE:
		r->u.phase.name = keep(r->u.phase.name, r->u.phase.name_len);
		break;
	default:
		break;
	}
}

/* Decode a whole file image. Stores up to cap records in recs (may be NULL;
 * their strings are copied, valid until the next decode_all()),
 * *n = records returned. Returns the final tf_dec_next() code (0 or <0), or
 * the open error. Fails the test if decoding does not stop. */
static int decode_all(const uint8_t *file, size_t len, struct tf_record *recs,
		      size_t cap, size_t *n)
{
	struct tf_dec *dec = NULL;
	struct tf_record rec;
	char msg[128] = "";
	int rc;

	*n = 0;
	str_used = 0;
	rc = tf_dec_open_mem(&dec, file, len, msg);
	if (rc < 0) {
		assert_null(dec);
		assert_true(msg[0] != '\0');
		return rc;
	}
	while ((rc = tf_dec_next(dec, &rec)) == 1) {
		if (recs && *n < cap) {
			recs[*n] = rec;
			keep_strings(&recs[*n]);
		}
		(*n)++;
		assert_true(*n < 10u * 1000 * 1000); /* it must stop */
	}
	if (rc < 0) {
		const char *m = tf_dec_errmsg(dec);
		assert_true(m[0] != '\0');
		assert_int_equal(tf_dec_next(dec, &rec), rc); /* sticky */
	} else {
		assert_int_equal(rc, 0);
		assert_int_equal(tf_dec_next(dec, &rec), 0);
	}
	tf_dec_free(dec);
	return rc;
}

/* Decode and return the error message of the first failure ("" if none). */
static int decode_msg(const uint8_t *file, size_t len, char *out, size_t cap)
{
	struct tf_dec *dec = NULL;
	struct tf_record rec;
	char msg[128] = "";
	int rc = tf_dec_open_mem(&dec, file, len, msg);

	if (rc < 0) {
		snprintf(out, cap, "%s", msg);
		return rc;
	}
	while ((rc = tf_dec_next(dec, &rec)) == 1)
		;
	snprintf(out, cap, "%s", tf_dec_errmsg(dec));
	tf_dec_free(dec);
	return rc;
}

static void raw_process(struct tb *raw)
{
	static const char cmd[] = "./app\0--flag\0";
	int n = tf_enc_process(tb_room(raw, 256), 256, 1234, 1, 1700000000000000000ull,
			       4096, "/usr/bin/app", 12, cmd, sizeof(cmd) - 1);
	assert_true(n > 0);
	raw->len += (size_t)n;
}

static void raw_chunk(struct tb *raw, uint32_t stream, const struct tb *payload)
{
	uint8_t head[TF_MAX_EVENT_BYTES];
	size_t n = tf_enc_chunk_head(head, stream, (uint32_t)payload->len);

	tb_put(raw, head, n);
	tb_put(raw, payload->p, payload->len);
}

static void raw_tick(struct tb *raw, uint64_t wm, uint64_t t, uint64_t rss)
{
	raw->len += tf_enc_tick(tb_room(raw, TF_MAX_EVENT_BYTES), wm, t, rss);
}

static void raw_end(struct tb *raw, uint64_t t, uint64_t n)
{
	raw->len += tf_enc_end(tb_room(raw, TF_MAX_EVENT_BYTES), t, n);
}

/* Stream 2 of small_raw(): one event of every cached form (docs "Cached
 * events"); the comments name the form each takes. */
#define CA 0x600000001000ull
#define CB 0x600000002000ull
static void small_cached(struct tb *raw, struct tb *p)
{
	static struct tf_enc_cache c;
	struct tf_stream_state s2 = { 0 };

	memset(&c, 0, sizeof(c));
	tf_enc_cache_reset(&c);
	p->len = 0;
	p->len += tf_enc_thread(tb_room(p, 64), &s2, 12, 102, "cached", 6);
	p->len += tf_enc_alloc_c(tb_room(p, 64), &s2, &c, 13, TF_KIND_MALLOC, 2, 40, CA); /* ADDR */
	p->len += tf_enc_free_c(tb_room(p, 64), &s2, &c, 14, TF_KIND_FREE, CA);        /* REF 0 */
	p->len += tf_enc_alloc_c(tb_room(p, 64), &s2, &c, 15, TF_KIND_MALLOC, 2, 36, CA); /* TOP */
	p->len += tf_enc_free_c(tb_room(p, 64), &s2, &c, 17, TF_KIND_FREE, CB);        /* ADDR */
	p->len += tf_enc_alloc_c(tb_room(p, 64), &s2, &c, 18, TF_KIND_CALLOC, 2, 5000, CB); /* RECENT 0 */
	p->len += tf_enc_free_c(tb_room(p, 64), &s2, &c, 19, TF_KIND_REALLOC, CA);     /* REF 1 */
	p->len += tf_enc_alloc_c(tb_room(p, 64), &s2, &c, 20, TF_KIND_REALLOC, 2, 64, CA); /* RECENT 0 */
	raw_chunk(raw, 2, p);
}

/* A small valid trace: two threads, nodes, allocs, frees, a module, a
 * phase mark, ticks;
 * returns its decompressed record stream in raw. */
static void small_raw(struct tb *raw)
{
	struct tf_stream_state s0 = { 0 }, s1 = { 0 };
	struct tb p = { 0 };
	static const struct tf_segment segs[2] = { { 0, 0x1000, 5 }, { 0x2000, 0x800, 6 } };
	static const uint8_t bid[20] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3 };

	raw_process(raw);
	p.len += tf_enc_thread(tb_room(&p, 64), &s0, 1, 100, "main", 4);
	int m = tf_enc_module(tb_room(&p, 512), 512, &s0, 2, 1, 0x555555554000ull,
			      "/usr/bin/app", 12, bid, sizeof(bid), segs, 2);
	assert_true(m > 0);
	p.len += (size_t)m;
	p.len += tf_enc_node(tb_room(&p, 64), &s0, 1, 0, 0x555555555123ull);
	p.len += tf_enc_node(tb_room(&p, 64), &s0, 2, 1, 0x555555555456ull);
	p.len += tf_enc_alloc(tb_room(&p, 64), &s0, 3, TF_KIND_MALLOC, 2, 100, 0x5555555a0010ull);
	p.len += tf_enc_alloc(tb_room(&p, 64), &s0, 4, TF_KIND_CALLOC, 2, 240, 0x5555555a0080ull);
	raw_chunk(raw, 0, &p);
	p.len = 0;
	p.len += tf_enc_thread(tb_room(&p, 64), &s1, 5, 101, "worker", 6);
	p.len += tf_enc_node(tb_room(&p, 64), &s1, 3, 1, 0x555555555789ull);
	p.len += tf_enc_alloc(tb_room(&p, 64), &s1, 6, TF_KIND_MALLOC, 3, 48, 0x7ffff0000010ull);
	p.len += tf_enc_free(tb_room(&p, 64), &s1, 7, TF_KIND_FREE, 0x5555555a0010ull);
	raw_chunk(raw, 1, &p);
	raw_tick(raw, 8, 10000000, 1 << 20);
	p.len = 0;
	p.len += tf_enc_free(tb_room(&p, 64), &s0, 8, TF_KIND_REALLOC, 0x5555555a0080ull);
	p.len += tf_enc_alloc(tb_room(&p, 64), &s0, 9, TF_KIND_REALLOC, 2, 480, 0x5555555a0200ull);
	p.len += tf_enc_unload(tb_room(&p, 64), &s0, 10, 1);
	p.len += tf_enc_phase(tb_room(&p, TF_MAX_PHASE_BYTES), &s0, 11, TF_PHASE_MARK,
			      "checkpoint", 10);
	raw_chunk(raw, 0, &p);
	small_cached(raw, &p);
	raw_tick(raw, 11, 20000000, 2 << 20);
	raw_end(raw, 25000000, 6);
	tb_release(&p);
}

/* ---- varints --------------------------------------------------------- */

static void test_varint_values(void **state)
{
	static const struct {
		uint64_t v;
		size_t len;
	} cases[] = {
		{ 0, 1 }, { 1, 1 }, { 127, 1 }, { 128, 2 }, { 16383, 2 }, { 16384, 3 },
		{ UINT32_MAX, 5 }, { (uint64_t)1 << 56, 9 }, { ((uint64_t)1 << 63) - 1, 9 },
		{ (uint64_t)1 << 63, 10 }, { UINT64_MAX, 10 },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t buf[CM_VARINT_MAX + 4];
		uint64_t got = 0xabababab;
		size_t n = cm_varint_put(buf, cases[i].v);

		assert_int_equal(n, cases[i].len);
		assert_int_equal(cm_varint_get(buf, buf + n, &got), (int)n);
		assert_true(got == cases[i].v);
		/* every strict prefix is "input ends inside the varint" and
		 * leaves the output untouched */
		for (size_t k = 0; k < n; k++) {
			uint64_t untouched = 77;
			assert_int_equal(cm_varint_get(buf, buf + k, &untouched), 0);
			assert_true(untouched == 77);
		}
	}
	/* 128 is 0x80 0x01; 2^63 ends in 0x01 */
	uint8_t b[CM_VARINT_MAX];
	assert_int_equal(cm_varint_put(b, 128), 2);
	assert_int_equal(b[0], 0x80);
	assert_int_equal(b[1], 0x01);
	assert_int_equal(cm_varint_put(b, (uint64_t)1 << 63), 10);
	assert_int_equal(b[9], 0x01);
}

static void test_varint_overlong(void **state)
{
	uint64_t v = 99;
	(void)state;

	/* 11 bytes: 10 continuation bytes then a terminator */
	uint8_t eleven[11];
	memset(eleven, 0x80, 10);
	eleven[10] = 0;
	assert_int_equal(cm_varint_get(eleven, eleven + 11, &v), -1);
	assert_true(v == 99);

	/* 10 bytes whose last carries bits beyond 64 */
	uint8_t beyond[10];
	memset(beyond, 0xff, 9);
	beyond[9] = 0x02;
	assert_int_equal(cm_varint_get(beyond, beyond + 10, &v), -1);
	beyond[9] = 0x7f;
	assert_int_equal(cm_varint_get(beyond, beyond + 10, &v), -1);
	assert_true(v == 99);
	beyond[9] = 0x01; /* UINT64_MAX: fine */
	assert_int_equal(cm_varint_get(beyond, beyond + 10, &v), 10);
	assert_true(v == UINT64_MAX);

	/* 10 continuation bytes and nothing more: overlong, not "short" */
	uint8_t ten[10];
	memset(ten, 0x80, 10);
	v = 99;
	assert_int_equal(cm_varint_get(ten, ten + 10, &v), -1);
	assert_true(v == 99);
}

static void test_zigzag(void **state)
{
	static const int64_t vals[] = { 0, -1, 1, -2, 2, 63, -64, 64, INT64_MAX, INT64_MIN,
					INT64_MIN + 1 };
	(void)state;

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		assert_true(cm_unzigzag(cm_zigzag(vals[i])) == vals[i]);
	assert_true(cm_zigzag(0) == 0);
	assert_true(cm_zigzag(-1) == 1);
	assert_true(cm_zigzag(1) == 2);
	assert_true(cm_zigzag(INT64_MIN) == UINT64_MAX);
}

/* ---- roundtrip --------------------------------------------------------- */

static void test_roundtrip_every_record(void **state)
{
	struct tb raw = { 0 }, p = { 0 }, file = { 0 };
	struct tf_stream_state s0 = { 0 }, s9 = { 0 };
	static struct tf_record r[64];
	size_t n = 0;
	(void)state;

	/* PROCESS with a string exactly at the limit */
	char *exe = malloc(TF_MAX_STR_BYTES);
	assert_non_null(exe);
	memset(exe, 'x', TF_MAX_STR_BYTES);
	exe[0] = '/';
	static const char cmd[] = "a\0b c\0\0";
	int k = tf_enc_process(tb_room(&raw, TF_MAX_RECORD_BYTES), TF_MAX_RECORD_BYTES,
			       UINT32_MAX, 0, UINT64_MAX, 65536, exe, TF_MAX_STR_BYTES,
			       cmd, sizeof(cmd) - 1);
	assert_true(k > (int)TF_MAX_STR_BYTES);
	raw.len += (size_t)k;

	/* stream 0: every stream record, edge values */
	uint8_t bid[TF_MAX_BUILD_ID_BYTES];
	struct tf_segment segs[TF_MAX_SEGMENTS];
	for (unsigned i = 0; i < sizeof(bid); i++)
		bid[i] = (uint8_t)(i * 7);
	for (unsigned i = 0; i < TF_MAX_SEGMENTS; i++) {
		segs[i].vaddr = i == 0 ? 0 : UINT64_MAX - i;
		segs[i].memsz = (uint64_t)1 << (i * 2);
		segs[i].flags = i == 31 ? UINT32_MAX : i;
	}
	p.len += tf_enc_thread(tb_room(&p, 64), &s0, 1, UINT32_MAX, "0123456789abcdef", 16);
	p.len += tf_enc_thread(tb_room(&p, 64), &s0, 2, 0, "", 0);
	k = tf_enc_module(tb_room(&p, 4096), 4096, &s0, 3, UINT32_MAX, UINT64_MAX,
			  "", 0, bid, sizeof(bid), segs, TF_MAX_SEGMENTS);
	assert_true(k > 0);
	p.len += (size_t)k;
	k = tf_enc_module(tb_room(&p, 4096), 4096, &s0, 4, 0, 0, "/lib/x.so", 9, NULL,
			  0, NULL, 0);
	assert_true(k > 0);
	p.len += (size_t)k;
	p.len += tf_enc_node(tb_room(&p, 64), &s0, 1, 0, UINT64_MAX);
	p.len += tf_enc_node(tb_room(&p, 64), &s0, 2, 1, 0);
	p.len += tf_enc_node(tb_room(&p, 64), &s0, 3, 2, TF_ADDR_TRUNCATED);
	p.len += tf_enc_node(tb_room(&p, 64), &s0, UINT32_MAX, 0, (uint64_t)1 << 63);
	p.len += tf_enc_alloc(tb_room(&p, 64), &s0, 5, TF_KIND_PVALLOC, UINT32_MAX,
			      UINT64_MAX, UINT64_MAX);
	p.len += tf_enc_alloc(tb_room(&p, 64), &s0, 6, TF_KIND_MALLOC, 0, 0, 0);
	p.len += tf_enc_alloc(tb_room(&p, 64), &s0, 7, TF_KIND_MEMALIGN, 3, 1, 1);
	p.len += tf_enc_free(tb_room(&p, 64), &s0, 8, TF_KIND_FREE, UINT64_MAX);
	p.len += tf_enc_free(tb_room(&p, 64), &s0, 9, TF_KIND_REALLOC, 1);
	p.len += tf_enc_unload(tb_room(&p, 64), &s0, (uint64_t)1 << 62, UINT32_MAX);
	p.len += tf_enc_alloc(tb_room(&p, 64), &s0, UINT64_MAX, TF_KIND_REALLOCARRAY, 1,
			      12, 0x7f0000001000ull);
	raw_chunk(&raw, 0, &p);
	size_t p0_len = p.len;
	/* another stream (id 9): its delta state is its own */
	p.len = 0;
	p.len += tf_enc_thread(tb_room(&p, 64), &s9, 10, 42, "worker-with-a-long-name", 23);
	p.len += tf_enc_free(tb_room(&p, 64), &s9, 11, TF_KIND_FREE, 0x7f0000001000ull);
	raw_chunk(&raw, 9, &p);
	raw_tick(&raw, UINT64_MAX, UINT64_MAX, UINT64_MAX);
	raw_tick(&raw, 0, 0, 0);
	raw_end(&raw, UINT64_MAX, UINT64_MAX);

	size_t cut = raw.len / 2;
	tb_trace(&file, raw.p, raw.len, &cut, 1, 3); /* two zstd frames */
	assert_int_equal(decode_all(file.p, file.len, r, 64, &n), 0);
	assert_int_equal(n, 23);

	size_t i = 0;
	assert_int_equal(r[i].tag, TF_TAG_PROCESS);
	assert_int_equal(r[i].off, 0);
	assert_true(r[i].u.process.pid == UINT32_MAX && r[i].u.process.ppid == 0);
	assert_true(r[i].u.process.start_unix_ns == UINT64_MAX);
	assert_int_equal(r[i].u.process.page_size, 65536);
	assert_int_equal(r[i].u.process.exe_len, TF_MAX_STR_BYTES);
	assert_memory_equal(r[i].u.process.exe, exe, TF_MAX_STR_BYTES);
	assert_int_equal(r[i].u.process.cmdline_len, sizeof(cmd) - 1);
	assert_memory_equal(r[i].u.process.cmdline, cmd, sizeof(cmd) - 1);
	i++;
	assert_int_equal(r[i].tag, TF_TAG_CHUNK);
	assert_int_equal(r[i].u.chunk.stream, 0);
	assert_int_equal(r[i].u.chunk.len, p0_len);
	i++;
	assert_int_equal(r[i].tag, TF_TAG_THREAD);
	assert_int_equal(r[i].stream, 0);
	assert_true(r[i].seq == 1 && r[i].u.thread.tid == UINT32_MAX);
	assert_int_equal(r[i].u.thread.name_len, 16);
	assert_memory_equal(r[i].u.thread.name, "0123456789abcdef", 16);
	i++;
	assert_true(r[i].tag == TF_TAG_THREAD && r[i].seq == 2 && r[i].u.thread.tid == 0 &&
		    r[i].u.thread.name_len == 0);
	i++;
	assert_int_equal(r[i].tag, TF_TAG_MODULE);
	assert_true(r[i].seq == 3 && r[i].u.module.id == UINT32_MAX &&
		    r[i].u.module.base == UINT64_MAX && r[i].u.module.path_len == 0);
	assert_int_equal(r[i].u.module.build_id_len, TF_MAX_BUILD_ID_BYTES);
	assert_memory_equal(r[i].u.module.build_id, bid, sizeof(bid));
	assert_int_equal(r[i].u.module.n_segs, TF_MAX_SEGMENTS);
	for (unsigned s = 0; s < TF_MAX_SEGMENTS; s++) {
		assert_true(r[i].u.module.segs[s].vaddr == segs[s].vaddr);
		assert_true(r[i].u.module.segs[s].memsz == segs[s].memsz);
		assert_true(r[i].u.module.segs[s].flags == segs[s].flags);
	}
	i++;
	assert_true(r[i].tag == TF_TAG_MODULE && r[i].seq == 4 && r[i].u.module.id == 0 &&
		    r[i].u.module.base == 0 && r[i].u.module.path_len == 9 &&
		    r[i].u.module.build_id_len == 0 && r[i].u.module.n_segs == 0);
	assert_memory_equal(r[i].u.module.path, "/lib/x.so", 9);
	i++;
	assert_true(r[i].tag == TF_TAG_NODE && r[i].u.node.id == 1 &&
		    r[i].u.node.parent == TF_NODE_ROOT && r[i].u.node.addr == UINT64_MAX);
	i++;
	assert_true(r[i].tag == TF_TAG_NODE && r[i].u.node.id == 2 &&
		    r[i].u.node.parent == 1 && r[i].u.node.addr == 0);
	i++;
	assert_true(r[i].tag == TF_TAG_NODE && r[i].u.node.id == 3 &&
		    r[i].u.node.parent == 2 && r[i].u.node.addr == TF_ADDR_TRUNCATED);
	i++;
	assert_true(r[i].tag == TF_TAG_NODE && r[i].u.node.id == UINT32_MAX &&
		    r[i].u.node.parent == 0 && r[i].u.node.addr == (uint64_t)1 << 63);
	i++;
	assert_true(r[i].tag == TF_TAG_ALLOC && r[i].seq == 5 &&
		    r[i].u.alloc.kind == TF_KIND_PVALLOC && r[i].u.alloc.node == UINT32_MAX &&
		    r[i].u.alloc.size == UINT64_MAX && r[i].u.alloc.addr == UINT64_MAX);
	i++;
	assert_true(r[i].tag == TF_TAG_ALLOC && r[i].seq == 6 &&
		    r[i].u.alloc.kind == TF_KIND_MALLOC && r[i].u.alloc.node == 0 &&
		    r[i].u.alloc.size == 0 && r[i].u.alloc.addr == 0);
	i++;
	assert_true(r[i].tag == TF_TAG_ALLOC && r[i].seq == 7 &&
		    r[i].u.alloc.kind == TF_KIND_MEMALIGN && r[i].u.alloc.node == 3 &&
		    r[i].u.alloc.size == 1 && r[i].u.alloc.addr == 1);
	i++;
	assert_true(r[i].tag == TF_TAG_FREE && r[i].seq == 8 &&
		    r[i].u.free.kind == TF_KIND_FREE && r[i].u.free.addr == UINT64_MAX);
	i++;
	assert_true(r[i].tag == TF_TAG_FREE && r[i].seq == 9 &&
		    r[i].u.free.kind == TF_KIND_REALLOC && r[i].u.free.addr == 1);
	i++;
	assert_true(r[i].tag == TF_TAG_UNLOAD && r[i].seq == (uint64_t)1 << 62 &&
		    r[i].u.unload.id == UINT32_MAX);
	i++;
	assert_true(r[i].tag == TF_TAG_ALLOC && r[i].seq == UINT64_MAX &&
		    r[i].u.alloc.kind == TF_KIND_REALLOCARRAY && r[i].u.alloc.node == 1 &&
		    r[i].u.alloc.size == 12 && r[i].u.alloc.addr == 0x7f0000001000ull);
	i++;
	assert_true(r[i].tag == TF_TAG_CHUNK && r[i].u.chunk.stream == 9 &&
		    r[i].u.chunk.len == p.len);
	i++;
	/* the encoder cuts thread names at 16 bytes (the kernel's comm) */
	assert_true(r[i].tag == TF_TAG_THREAD && r[i].stream == 9 && r[i].seq == 10 &&
		    r[i].u.thread.tid == 42 && r[i].u.thread.name_len == 16);
	assert_memory_equal(r[i].u.thread.name, "worker-with-a-lo", 16);
	i++;
	assert_true(r[i].tag == TF_TAG_FREE && r[i].stream == 9 && r[i].seq == 11 &&
		    r[i].u.free.addr == 0x7f0000001000ull);
	i++;
	assert_true(r[i].tag == TF_TAG_TICK && r[i].u.tick.watermark == UINT64_MAX &&
		    r[i].u.tick.time_ns == UINT64_MAX && r[i].u.tick.rss_bytes == UINT64_MAX);
	i++;
	assert_true(r[i].tag == TF_TAG_TICK && r[i].u.tick.watermark == 0 &&
		    r[i].u.tick.time_ns == 0 && r[i].u.tick.rss_bytes == 0);
	i++;
	assert_true(r[i].tag == TF_TAG_END && r[i].u.end.time_ns == UINT64_MAX &&
		    r[i].u.end.n_events == UINT64_MAX);
	assert_int_equal(r[i].off + 1 + 10 + 10, raw.len);
	/* offsets strictly increase */
	for (size_t j = 1; j < n; j++)
		assert_true(r[j].off > r[j - 1].off);

	free(exe);
	tb_release(&raw);
	tb_release(&p);
	tb_release(&file);
}

/* The same records through stored (uncompressed) zstd blocks, split into
 * tiny blocks so records cross block boundaries. */
static void test_roundtrip_stored_blocks(void **state)
{
	struct tb raw = { 0 }, a = { 0 }, b = { 0 };
	static struct tf_record ra[64], rb[64];
	size_t na, nb;
	(void)state;

	small_raw(&raw);
	tb_trace(&a, raw.p, raw.len, NULL, 0, 1);
	tb_trace_stored(&b, raw.p, raw.len, 7);
	assert_int_equal(decode_all(a.p, a.len, ra, 64, &na), 0);
	assert_int_equal(decode_all(b.p, b.len, rb, 64, &nb), 0);
	assert_int_equal(na, 30);
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_int_equal(ra[i].tag, rb[i].tag);
		assert_int_equal(ra[i].off, rb[i].off);
		assert_true(ra[i].seq == rb[i].seq && ra[i].stream == rb[i].stream);
	}
	tb_release(&raw);
	tb_release(&a);
	tb_release(&b);
}

/* ---- header ---------------------------------------------------------- */

static void test_header(void **state)
{
	struct tb raw = { 0 }, file = { 0 };
	struct tf_dec *sentinel = (struct tf_dec *)(uintptr_t)0x1234;
	struct tf_dec *dec;
	char msg[128];
	(void)state;

	small_raw(&raw);
	tb_trace(&file, raw.p, raw.len, NULL, 0, 1);

	/* good */
	dec = NULL;
	assert_int_equal(tf_dec_open_mem(&dec, file.p, file.len, msg), 0);
	assert_non_null(dec);
	assert_int_equal(tf_dec_version(dec), TF_VERSION);
	assert_int_equal(tf_dec_flags(dec), 0);
	tf_dec_free(dec);
	tf_dec_free(NULL);

	uint8_t *bad = malloc(file.len);
	assert_non_null(bad);

	/* bad magic: each magic byte */
	for (int i = 0; i < TF_MAGIC_BYTES; i++) {
		memcpy(bad, file.p, file.len);
		bad[i] ^= 0x20;
		dec = sentinel;
		msg[0] = '\0';
		assert_int_equal(tf_dec_open_mem(&dec, bad, file.len, msg), -CM_E_MAGIC);
		assert_ptr_equal(dec, sentinel); /* out-param untouched */
		assert_true(msg[0] != '\0');
	}
	/* version 2, version 0 */
	memcpy(bad, file.p, file.len);
	bad[8] = 2;
	dec = sentinel;
	assert_int_equal(tf_dec_open_mem(&dec, bad, file.len, msg), -CM_E_VERSION);
	assert_ptr_equal(dec, sentinel);
	assert_non_null(strstr(msg, "2"));
	bad[8] = 0;
	assert_int_equal(tf_dec_open_mem(&dec, bad, file.len, msg), -CM_E_VERSION);
	bad[8] = 1;
	bad[11] = 1; /* 0x01000001 */
	assert_int_equal(tf_dec_open_mem(&dec, bad, file.len, msg), -CM_E_VERSION);
	/* flags are reserved but readable */
	memcpy(bad, file.p, file.len);
	bad[12] = 0x5a;
	dec = NULL;
	assert_int_equal(tf_dec_open_mem(&dec, bad, file.len, msg), 0);
	assert_int_equal(tf_dec_flags(dec), 0x5a);
	tf_dec_free(dec);

	/* short: a whole magic but not the whole header */
	for (size_t len = TF_MAGIC_BYTES; len < TF_HEADER_BYTES; len++) {
		dec = sentinel;
		assert_int_equal(tf_dec_open_mem(&dec, file.p, len, msg), -CM_E_TRUNCATED);
		assert_ptr_equal(dec, sentinel);
	}
	/* empty */
	dec = sentinel;
	assert_int_equal(tf_dec_open_mem(&dec, file.p, 0, msg), -CM_E_TRUNCATED);
	assert_ptr_equal(dec, sentinel);
	/* a prefix of the magic: not a trace (magic) or truncated, not success */
	for (size_t len = 1; len < TF_MAGIC_BYTES; len++) {
		int rc = tf_dec_open_mem(&dec, file.p, len, msg);
		assert_true(rc == -CM_E_MAGIC || rc == -CM_E_TRUNCATED);
	}
	/* header only: opens, then truncated (no records, no END) */
	size_t n;
	assert_int_equal(decode_all(file.p, TF_HEADER_BYTES, NULL, 0, &n), -CM_E_TRUNCATED);
	assert_int_equal(n, 0);

	free(bad);
	tb_release(&raw);
	tb_release(&file);
}

static void test_open_path(void **state)
{
	struct tb raw = { 0 }, file = { 0 };
	struct tf_dec *dec = NULL;
	struct tf_record rec;
	char msg[128], path[] = "/tmp/test_tf_codec.XXXXXX";
	int n = 0, rc;
	(void)state;

	assert_int_equal(tf_dec_open(&dec, "/nonexistent/dir/x.zst", msg), -ENOENT);
	assert_null(dec);
	assert_true(msg[0] != '\0');
	rc = tf_dec_open(&dec, "/", msg);
	assert_true(rc < 0);
	assert_null(dec);

	small_raw(&raw);
	tb_trace(&file, raw.p, raw.len, NULL, 0, 1);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, file.p, file.len), (ssize_t)file.len);
	close(fd);
	assert_int_equal(tf_dec_open(&dec, path, msg), 0);
	while ((rc = tf_dec_next(dec, &rec)) == 1)
		n++;
	assert_int_equal(rc, 0);
	assert_int_equal(n, 30);
	assert_true(tf_dec_file_offset(dec) == file.len);
	tf_dec_free(dec);
	unlink(path);
	tb_release(&raw);
	tb_release(&file);
}

/* ---- malformed records ------------------------------------------------- */

/* Decode raw (after the header, in one zstd frame) and expect code at the
 * record at byte want_off (or any offset when want_off is -1). */
static void expect_error(const struct tb *raw, int code, long long want_off,
			 const char *want_text)
{
	struct tb file = { 0 };
	char msg[256];
	char off_text[64];

	tb_trace(&file, raw->p, raw->len, NULL, 0, 1);
	int rc = decode_msg(file.p, file.len, msg, sizeof(msg));
	if (rc != code)
		print_error("expected %d (%s), got %d: %s\n", code, cm_strerror(code), rc, msg);
	assert_int_equal(rc, code);
	if (want_off >= 0) {
		snprintf(off_text, sizeof(off_text), "byte %lld ", want_off);
		if (!strstr(msg, off_text))
			print_error("message '%s' lacks '%s'\n", msg, off_text);
		assert_non_null(strstr(msg, off_text));
	}
	if (want_text && !strstr(msg, want_text)) {
		print_error("message '%s' lacks '%s'\n", msg, want_text);
		fail();
	}
	tb_release(&file);
}

/* One bad stream record (len bytes, then pad bytes of 'n': they exist, so
 * a length over its limit is not a cut) after THREAD (seq 1) in an
 * otherwise valid chunk: decoding must fail with code at the record's
 * offset. raw and p are scratch buffers. */
static void expect_bad_record(struct tb *raw, struct tb *p, const char *name,
			      const uint8_t *bytes, size_t len, size_t pad, int code)
{
	struct tf_stream_state st;
	uint8_t head[TF_MAX_EVENT_BYTES];

	raw->len = 0;
	p->len = 0;
	memset(&st, 0, sizeof(st));
	raw_process(raw);
	p->len += tf_enc_thread(tb_room(p, 64), &st, 1, 7, "t", 1);
	size_t rec_off = p->len;
	tb_put(p, bytes, len);
	memset(tb_room(p, (int)pad), 'n', pad);
	p->len += pad;
	size_t hn = tf_enc_chunk_head(head, 0, (uint32_t)p->len);
	size_t at = raw->len + hn + rec_off;
	raw_chunk(raw, 0, p);
	raw_end(raw, 1, 0);
	print_message("# %s\n", name);
	expect_error(raw, code, (long long)at, NULL);
}

static void test_malformed(void **state)
{
	struct tb raw = { 0 }, p = { 0 };
	size_t at;
	(void)state;

	/* unknown top-level tag */
	raw_process(&raw);
	at = raw.len;
	tb_put(&raw, "\x7f\x00\x00", 3);
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_CORRUPT, (long long)at, "0x7f");

	/* first record is not PROCESS */
	raw.len = 0;
	raw_tick(&raw, 1, 1, 1);
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_CORRUPT, 0, NULL);

	/* a second PROCESS */
	raw.len = 0;
	raw_process(&raw);
	at = raw.len;
	raw_process(&raw);
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_CORRUPT, (long long)at, NULL);

	/* data after END */
	raw.len = 0;
	raw_process(&raw);
	raw_end(&raw, 1, 0);
	at = raw.len;
	raw_tick(&raw, 1, 1, 1);
	expect_error(&raw, -CM_E_CORRUPT, (long long)at, NULL);

	/* overlong varint in a TICK */
	raw.len = 0;
	raw_process(&raw);
	at = raw.len;
	tb_put(&raw, "\x03\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00\x00\x00", 14);
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_CORRUPT, (long long)at, NULL);

	/* stream records: each bad one inside an otherwise valid chunk */
	struct {
		const char *name;
		const uint8_t *bytes;
		size_t len;
	} bad[] = {
		{ "unknown stream tag", (const uint8_t *)"\x7e\x01", 2 },
		{ "top-level tag in a chunk", (const uint8_t *)"\x03\x01\x01\x01", 4 },
		{ "seq delta 0", (const uint8_t *)"\x12\x00\x00\x01\x10\x20", 6 },
		{ "alloc kind 9", (const uint8_t *)"\x12\x01\x09\x01\x10\x20", 6 },
		{ "alloc kind 200", (const uint8_t *)"\x12\x01\xc8\x01\x10\x20", 6 },
		{ "free kind malloc", (const uint8_t *)"\x13\x01\x00\x20", 4 },
		{ "free of address 0", (const uint8_t *)"\x13\x01\x09\x00", 4 },
		{ "node id delta 0", (const uint8_t *)"\x11\x00\x01\x02", 4 },
		{ "node parent after itself", (const uint8_t *)"\x11\x01\x02\x02", 4 },
		{ "node parent delta 0", (const uint8_t *)"\x11\x01\x00\x02", 4 },
		{ "node id over 32 bits", (const uint8_t *)"\x11\x80\x80\x80\x80\x10\x01\x02", 8 },
		{ "record crosses the chunk end", (const uint8_t *)"\x12\x01\x00\x01", 4 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_bad_record(&raw, &p, bad[i].name, bad[i].bytes, bad[i].len, 0, -CM_E_CORRUPT);

	/* a zstd stream that is not zstd */
	struct tb file = { 0 };
	uint8_t hdr[TF_HEADER_BYTES];
	char msg[256];
	tf_enc_header(hdr, 0);
	tb_put(&file, hdr, sizeof(hdr));
	tb_put(&file, "this is not a zstd frame at all, not at all", 43);
	assert_int_equal(decode_msg(file.p, file.len, msg, sizeof(msg)), -CM_E_ZSTD);

	/* a zstd frame asking for a 1 GiB window: refused */
	file.len = TF_HEADER_BYTES;
	/* descriptor 0, window descriptor (30 - 10) << 3 */
	tb_put(&file, "\x28\xb5\x2f\xfd\x00\xa0\x01\x00\x00", 9);
	assert_int_equal(decode_msg(file.p, file.len, msg, sizeof(msg)), -CM_E_ZSTD);

	/* garbage after a valid frame */
	raw.len = 0;
	raw_process(&raw);
	raw_end(&raw, 1, 0);
	file.len = 0;
	tb_trace(&file, raw.p, raw.len, NULL, 0, 1);
	tb_put(&file, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	int rc = decode_msg(file.p, file.len, msg, sizeof(msg));
	assert_true(rc == -CM_E_ZSTD || rc == -CM_E_CORRUPT || rc == -CM_E_TRUNCATED);

	tb_release(&file);
	tb_release(&raw);
	tb_release(&p);
}

/* ---- limits ------------------------------------------------------------ */

static void test_limits(void **state)
{
	struct tb raw = { 0 }, p = { 0 };
	struct tf_stream_state st = { 0 };
	uint8_t big[TF_MAX_STR_BYTES + 2];
	uint8_t buf[TF_MAX_RECORD_BYTES];
	uint8_t v[CM_VARINT_MAX];
	size_t at;
	(void)state;
	memset(big, 'a', sizeof(big));

	/* encoder refuses over-limit fields */
	assert_int_equal(tf_enc_process(buf, sizeof(buf), 1, 1, 1, 4096, (const char *)big,
					TF_MAX_STR_BYTES + 1, "", 0), -CM_E_LIMIT);
	assert_int_equal(tf_enc_module(buf, sizeof(buf), &st, 1, 1, 0, (const char *)big,
				       TF_MAX_STR_BYTES + 1, NULL, 0, NULL, 0), -CM_E_LIMIT);
	assert_int_equal(tf_enc_module(buf, sizeof(buf), &st, 1, 1, 0, "x", 1, big,
				       TF_MAX_BUILD_ID_BYTES + 1, NULL, 0), -CM_E_LIMIT);
	struct tf_segment segs[TF_MAX_SEGMENTS + 1];
	memset(segs, 0, sizeof(segs));
	assert_int_equal(tf_enc_module(buf, sizeof(buf), &st, 1, 1, 0, "x", 1, NULL, 0, segs,
				       TF_MAX_SEGMENTS + 1), -CM_E_LIMIT);
	assert_int_equal(tf_enc_process(buf, 10, 1, 1, 1, 4096, "/usr/bin/app", 12, "", 0),
			 -CM_E_LIMIT); /* does not fit in cap */
	assert_true(st.prev_seq == 0); /* a refused record leaves the state */

	/* decoder: exe length one over the limit, the bytes present */
	at = 0;
	tb_put(&raw, "\x01\x01\x01\x01\x80\x20", 6); /* pid ppid start page_size=4096 */
	tb_put(&raw, v, cm_varint_put(v, TF_MAX_STR_BYTES + 1));
	tb_put(&raw, big, TF_MAX_STR_BYTES + 1);
	tb_put(&raw, "\x00", 1);
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_LIMIT, (long long)at, NULL);

	/* decoder: a huge exe length with no bytes behind it: the limit, not a
	 * truncation and not an allocation */
	raw.len = 0;
	tb_put(&raw, "\x01\x01\x01\x01\x80\x20", 6);
	tb_put(&raw, v, cm_varint_put(v, (uint64_t)1 << 40));
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_LIMIT, 0, NULL);

	/* thread name over 16, build-id over 64, 33 segments, module path */
	struct {
		const char *name;
		uint8_t tag;
		uint64_t len; /* the over-limit length or count */
	} cases[] = {
		{ "thread name", TF_TAG_THREAD, 17 },
		{ "build-id", TF_TAG_MODULE, TF_MAX_BUILD_ID_BYTES + 1 },
		{ "segments", TF_TAG_MODULE, TF_MAX_SEGMENTS + 1 },
		{ "module path", TF_TAG_MODULE, TF_MAX_STR_BYTES + 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw.len = 0;
		p.len = 0;
		raw_process(&raw);
		uint8_t *q = tb_room(&p, 64);
		size_t n = 0;
		q[n++] = cases[i].tag;
		q[n++] = 1; /* seq delta */
		if (cases[i].tag == TF_TAG_THREAD) {
			q[n++] = 5; /* tid */
			n += cm_varint_put(q + n, cases[i].len);
		} else {
			q[n++] = 1; /* id */
			q[n++] = 0; /* base */
			if (i == 3) {
				n += cm_varint_put(q + n, cases[i].len);
			} else if (i == 1) {
				q[n++] = 0; /* path */
				n += cm_varint_put(q + n, cases[i].len);
			} else {
				q[n++] = 0; /* path */
				q[n++] = 0; /* build-id */
				n += cm_varint_put(q + n, cases[i].len);
			}
		}
		p.len += n;
		/* pad the chunk so that the bytes "exist" */
		memset(tb_room(&p, 2 * TF_MAX_STR_BYTES), 0, 2 * TF_MAX_STR_BYTES);
		p.len += (i == 3) ? TF_MAX_STR_BYTES + 8 : 64;
		uint8_t head[TF_MAX_EVENT_BYTES];
		at = raw.len + tf_enc_chunk_head(head, 0, (uint32_t)p.len);
		raw_chunk(&raw, 0, &p);
		raw_end(&raw, 1, 0);
		print_message("# %s\n", cases[i].name);
		expect_error(&raw, -CM_E_LIMIT, (long long)at, NULL);
	}

	/* chunk length 0 and over 64 MiB, stream id at the limit */
	raw.len = 0;
	raw_process(&raw);
	at = raw.len;
	tb_put(&raw, "\x02\x00\x00", 3);
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_LIMIT, (long long)at, NULL);

	raw.len = 0;
	raw_process(&raw);
	at = raw.len;
	tb_put(&raw, "\x02\x00", 2);
	tb_put(&raw, v, cm_varint_put(v, (uint64_t)TF_MAX_CHUNK_BYTES + 1));
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_LIMIT, (long long)at, NULL);

	raw.len = 0;
	raw_process(&raw);
	at = raw.len;
	tb_put(&raw, "\x02", 1);
	tb_put(&raw, v, cm_varint_put(v, TF_MAX_STREAMS));
	tb_put(&raw, "\x02\x13\x01", 3);
	raw_end(&raw, 1, 0);
	expect_error(&raw, -CM_E_LIMIT, (long long)at, NULL);

	/* the largest stream id is accepted */
	raw.len = 0;
	p.len = 0;
	memset(&st, 0, sizeof(st));
	raw_process(&raw);
	p.len += tf_enc_thread(tb_room(&p, 64), &st, 1, 7, "t", 1);
	raw_chunk(&raw, TF_MAX_STREAMS - 1, &p);
	raw_end(&raw, 1, 0);
	{
		struct tb file = { 0 };
		size_t n;
		tb_trace(&file, raw.p, raw.len, NULL, 0, 1);
		assert_int_equal(decode_all(file.p, file.len, NULL, 0, &n), 0);
		assert_int_equal(n, 4);
		tb_release(&file);
	}

	tb_release(&raw);
	tb_release(&p);
}

/* ---- robustness sweep (STYLE.md) -------------------------------------- */

/* Every prefix of a valid trace: records that are a prefix of the full
 * decode, then -CM_E_TRUNCATED (or an open error for a cut header); only
 * the whole file ends with 0. */
static void sweep_prefixes(const struct tb *file)
{
	static struct tf_record full[MAX_RECS], part[MAX_RECS];
	size_t n_full, n, prev_n = 0;

	assert_int_equal(decode_all(file->p, file->len, full, MAX_RECS, &n_full), 0);
	for (size_t len = 0; len <= file->len; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, file->p, len);
		int rc = decode_all(copy, len, part, MAX_RECS, &n);
		if (len == file->len) {
			assert_int_equal(rc, 0);
		} else if (len < TF_HEADER_BYTES) {
			assert_true(rc == -CM_E_TRUNCATED || rc == -CM_E_MAGIC);
			assert_int_equal(n, 0);
		} else {
			if (rc != -CM_E_TRUNCATED)
				print_error("prefix %zu of %zu: %d (%s)\n", len, file->len, rc,
					    cm_strerror(rc));
			assert_int_equal(rc, -CM_E_TRUNCATED);
		}
		assert_true(n <= n_full);
		assert_true(n >= prev_n);
		prev_n = n;
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(part[i].tag, full[i].tag);
			assert_int_equal(part[i].off, full[i].off);
			assert_true(part[i].seq == full[i].seq);
		}
		free(copy);
	}
	assert_int_equal(prev_n, n_full);
}

/* ---- cached events ------------------------------------------------------ */

/* Encode a cached event, check its wire tag, decode it back in a trace. */
static void test_cached_events(void **state)
{
	struct tb raw = { 0 }, file = { 0 }, p = { 0 };
	static struct tf_record recs[64];
	static const uint8_t want_tag[] = { TF_TAG_ALLOC_ADDR | TF_TF_SEQ1, TF_TAG_FREE_REF | TF_TF_SEQ1,
		TF_TAG_ALLOC_TOP | TF_TF_SEQ1, TF_TAG_FREE_ADDR, TF_TAG_ALLOC_RECENT | TF_TF_SEQ1 | TF_TF_KIND,
		TF_TAG_FREE_REF | TF_TF_SEQ1 | TF_TF_REALLOC,
		TF_TAG_ALLOC_RECENT | TF_TF_SEQ1 | TF_TF_KIND };
	static const uint64_t want_addr[] = { CA, CA, CA, CB, CB, CA, CA };
	size_t n;
	(void)state;

	/* the forms, by their tags and decoded values (small_raw's stream 2) */
	raw_process(&raw);
	small_cached(&raw, &p);
	raw_end(&raw, 1, 7);
	tb_trace(&file, raw.p, raw.len, NULL, 0, 1);
	assert_int_equal(decode_all(file.p, file.len, recs, 64, &n), 0);
	assert_int_equal(n, 11); /* process, chunk, thread, 7 events, end */
	for (size_t i = 0; i < 7; i++) {
		const struct tf_record *r = &recs[3 + i];
		assert_int_equal(raw.p[r->off], want_tag[i]);
		assert_int_equal(r->stream, 2);
		if (i % 2 == 0) {
			assert_int_equal(r->tag, TF_TAG_ALLOC);
			assert_int_equal(r->u.alloc.addr, want_addr[i]);
			assert_int_equal(r->u.alloc.node, 2);
		} else {
			assert_int_equal(r->tag, TF_TAG_FREE);
			assert_int_equal(r->u.free.addr, want_addr[i]);
		}
	}
	assert_int_equal(recs[3].seq, 13);
	assert_int_equal(recs[6].seq, 17);
	assert_int_equal(recs[6].u.free.kind, TF_KIND_FREE);
	assert_int_equal(recs[7].u.alloc.kind, TF_KIND_CALLOC);
	assert_int_equal(recs[7].u.alloc.size, 5000);
	assert_int_equal(recs[8].u.free.kind, TF_KIND_REALLOC);
	assert_int_equal(recs[9].u.alloc.kind, TF_KIND_REALLOC);
	assert_int_equal(recs[9].u.alloc.size, 64);

	/* the back-reference window: TF_REF_WINDOW + 1 ALLOCs, then a FREE of
	 * the first (beyond: by address) and of the second (back 4095); a
	 * failed realloc's FREE undone by restoring the state; a failed alloc
	 * (address 0) is never referenced */
	static struct tf_enc_cache c;
	struct tf_stream_state st = { 0 };
	uint64_t seq = 1;
	memset(&c, 0, sizeof(c));
	tf_enc_cache_reset(&c);
	raw.len = 0;
	p.len = 0;
	raw_process(&raw);
	p.len += tf_enc_thread(tb_room(&p, 64), &st, seq++, 1, "w", 1);
	p.len += tf_enc_alloc_c(tb_room(&p, 64), &st, &c, seq++, TF_KIND_MALLOC, 0, 8, 0);
	for (uint64_t i = 0; i <= TF_REF_WINDOW; i++) /* 0x10000, 0x11000, 0x20000... */
		p.len += tf_enc_alloc_c(tb_room(&p, 64), &st, &c, seq++, TF_KIND_MALLOC, 1, 2000,
					i < 2 ? 0x10000 + 0x1000 * i : 0x20000);
	size_t at_far = p.len;
	p.len += tf_enc_free_c(tb_room(&p, 64), &st, &c, seq++, TF_KIND_FREE, 0x10000);
	size_t at_edge = p.len;
	p.len += tf_enc_free_c(tb_room(&p, 64), &st, &c, seq++, TF_KIND_FREE, 0x11000);
	struct tf_stream_state saved = st;
	tf_enc_free_c(tb_room(&p, 64), &st, &c, seq++, TF_KIND_REALLOC, 0x12000);
	st = saved;
	size_t at_after = p.len;
	p.len += tf_enc_alloc_c(tb_room(&p, 64), &st, &c, seq++, TF_KIND_MALLOC, 1, 2000, 0x11000);
	p.len += tf_enc_free_c(tb_room(&p, 64), &st, &c, seq++, TF_KIND_FREE, 0x12000);
	assert_int_equal(p.p[at_far] & TF_TAG_FORM_MASK, TF_TAG_FREE_ADDR);
	assert_int_equal(p.p[at_edge] & TF_TAG_FORM_MASK, TF_TAG_FREE_REF);
	assert_int_equal(p.p[at_edge + 1], 0xff); /* back 4095 = ff 1f */
	assert_int_equal(p.p[at_edge + 2], 0x1f);
	assert_int_equal(p.p[at_after] & TF_TAG_FORM_MASK, TF_TAG_ALLOC_TOP);
	raw_chunk(&raw, 0, &p);
	raw_end(&raw, 1, 0);
	file.len = 0;
	tb_trace(&file, raw.p, raw.len, NULL, 0, 1);
	static struct tf_record all[TF_REF_WINDOW + 16];
	assert_int_equal(decode_all(file.p, file.len, all, TF_REF_WINDOW + 16, &n), 0);
	size_t e = 4 + TF_REF_WINDOW + 1; /* process chunk thread alloc(0) 4097 allocs */
	assert_int_equal(all[3].u.alloc.addr, 0);
	assert_int_equal(all[e].u.free.addr, 0x10000);
	assert_int_equal(all[e + 1].u.free.addr, 0x11000);
	assert_int_equal(all[e + 2].u.alloc.addr, 0x11000);
	assert_int_equal(all[e + 3].u.free.addr, 0x12000);
	assert_int_equal(all[e + 3].seq, all[e + 2].seq + 1);

	tb_release(&raw);
	tb_release(&file);
	tb_release(&p);
}

/* Malformed cached events: each inside an otherwise valid chunk, after
 * THREAD and, where given, one ALLOC (ADDR form, size 40, address 0x1000)
 * and its FREE (REF form). */
static void test_cached_malformed(void **state)
{
	struct tb raw = { 0 }, p = { 0 };
	struct {
		const char *name;
		int prefix; /* 0: THREAD only; 1: + ALLOC; 2: + ALLOC + FREE */
		const uint8_t *bytes;
		size_t len;
		int code;
	} bad[] = {
		{ "free back-reference in an empty stream", 0, (const uint8_t *)"\x21\x00", 2, -CM_E_CORRUPT },
		{ "free back-reference beyond the allocs", 1, (const uint8_t *)"\x21\x01", 2, -CM_E_CORRUPT },
		{ "free back-reference beyond the window", 1, (const uint8_t *)"\x21\x80\x20", 3, -CM_E_CORRUPT },
		{ "free of address 0 by delta", 0, (const uint8_t *)"\x25\x00", 2, -CM_E_CORRUPT },
		{ "alloc from an empty class", 0, (const uint8_t *)"\x35\x01\x28\x00", 4, -CM_E_CORRUPT },
		{ "alloc class index beyond", 2, (const uint8_t *)"\x35\x01\x28\x01", 4, -CM_E_CORRUPT },
		{ "alloc from a class of no size", 2, (const uint8_t *)"\x35\x01\x88\x27\x00", 5, -CM_E_CORRUPT },
		{ "alloc recent index beyond", 2, (const uint8_t *)"\x39\x01\x28\x01", 4, -CM_E_CORRUPT },
		{ "alloc kind 9", 0, (const uint8_t *)"\x33\x09\x01\x28\x00", 5, -CM_E_CORRUPT },
		{ "alloc seq delta 0", 0, (const uint8_t *)"\x30\x00\x01\x28\x00", 5, -CM_E_CORRUPT },
		{ "alloc from an empty class's top", 0, (const uint8_t *)"\x3d\x01\x28", 3, -CM_E_CORRUPT },
		{ "class index overflowing", 2, (const uint8_t *)"\x35\x01\x28\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 14, -CM_E_CORRUPT },
		{ "unused tag 0x40", 0, (const uint8_t *)"\x40\x01", 2, -CM_E_CORRUPT },
		{ "unused tag 0x28", 0, (const uint8_t *)"\x28\x01", 2, -CM_E_CORRUPT },
		{ "cached alloc crosses the chunk end", 0, (const uint8_t *)"\x31\x01", 2, -CM_E_CORRUPT },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tf_stream_state st = { 0 };
		static struct tf_enc_cache c;
		memset(&c, 0, sizeof(c));
		tf_enc_cache_reset(&c);
		raw.len = 0;
		p.len = 0;
		raw_process(&raw);
		p.len += tf_enc_thread(tb_room(&p, 64), &st, 1, 7, "t", 1);
		if (bad[i].prefix >= 1)
			p.len += tf_enc_alloc_c(tb_room(&p, 64), &st, &c, 2, TF_KIND_MALLOC, 1, 40,
						0x1000);
		if (bad[i].prefix >= 2)
			p.len += tf_enc_free_c(tb_room(&p, 64), &st, &c, 3, TF_KIND_FREE, 0x1000);
		size_t rec_off = p.len;
		tb_put(&p, bad[i].bytes, bad[i].len);
		uint8_t head[TF_MAX_EVENT_BYTES];
		size_t hn = tf_enc_chunk_head(head, 0, (uint32_t)p.len);
		size_t at = raw.len + hn + rec_off;
		raw_chunk(&raw, 0, &p);
		raw_end(&raw, 1, 0);
		print_message("# %s\n", bad[i].name);
		expect_error(&raw, bad[i].code, (long long)at, NULL);
	}
	tb_release(&raw);
	tb_release(&p);
}

/* ---- phase records ------------------------------------------------------ */

/* PHASE (docs "Stream records"): every op, names empty, at and over the
 * limit (the encoder cuts), an END given a name (not written), between
 * other events of the stream; then the malformed ones. */
static void test_phase_records(void **state)
{
	struct tb raw = { 0 }, p = { 0 }, file = { 0 };
	struct tf_stream_state st = { 0 };
	static struct tf_record r[32];
	char name[300];
	size_t n;
	(void)state;

	for (size_t i = 0; i < sizeof(name); i++)
		name[i] = (char)('a' + i % 26);
	raw_process(&raw);
	p.len += tf_enc_thread(tb_room(&p, 64), &st, 1, 7, "t", 1);
	size_t at_begin = p.len;
	p.len += tf_enc_phase(tb_room(&p, TF_MAX_PHASE_BYTES), &st, 2, TF_PHASE_BEGIN, "parse", 5);
	p.len += tf_enc_alloc(tb_room(&p, 64), &st, 3, TF_KIND_MALLOC, 0, 64, 0x1000);
	p.len += tf_enc_phase(tb_room(&p, TF_MAX_PHASE_BYTES), &st, 4, TF_PHASE_BEGIN, NULL, 0);
	size_t at_end = p.len;
	p.len += tf_enc_phase(tb_room(&p, TF_MAX_PHASE_BYTES), &st, 5, TF_PHASE_END, "ignored", 7);
	p.len += tf_enc_phase(tb_room(&p, TF_MAX_PHASE_BYTES), &st, 6, TF_PHASE_END, NULL, 0);
	size_t at_255 = p.len;
	size_t k = tf_enc_phase(tb_room(&p, TF_MAX_PHASE_BYTES), &st, 200, TF_PHASE_MARK, name,
				TF_MAX_PHASE_NAME_BYTES);
	assert_int_equal(k, 1 + 2 + 1 + 2 + TF_MAX_PHASE_NAME_BYTES);
	p.len += k;
	k = tf_enc_phase(tb_room(&p, TF_MAX_PHASE_BYTES), &st, UINT64_MAX, TF_PHASE_MARK, name,
			 sizeof(name));
	assert_true(k <= TF_MAX_PHASE_BYTES);
	p.len += k;
	raw_chunk(&raw, 3, &p);
	raw_end(&raw, 1, 1);
	/* the wire bytes of the first and of the END */
	size_t base = raw.len - p.len - 3; /* END record: 3 bytes */
	assert_memory_equal(raw.p + base + at_begin, "\x16\x01\x00\x05parse", 9);
	assert_memory_equal(raw.p + base + at_end, "\x16\x01\x01\x00", 4);
	assert_memory_equal(raw.p + base + at_255, "\x16\xc2\x01\x02\xff\x01", 6);

	tb_trace(&file, raw.p, raw.len, NULL, 0, 1);
	assert_int_equal(decode_all(file.p, file.len, r, 32, &n), 0);
	assert_int_equal(n, 11); /* process chunk thread 7 events end */
	const struct tf_record *q = &r[3];
	assert_int_equal(q[0].tag, TF_TAG_PHASE);
	assert_string_equal(tf_tag_name(q[0].tag), "phase");
	assert_true(q[0].stream == 3 && q[0].seq == 2 && q[0].u.phase.op == TF_PHASE_BEGIN);
	assert_int_equal(q[0].u.phase.name_len, 5);
	assert_memory_equal(q[0].u.phase.name, "parse", 5);
	assert_true(q[1].tag == TF_TAG_ALLOC && q[1].seq == 3 && q[1].u.alloc.addr == 0x1000);
	assert_true(q[2].tag == TF_TAG_PHASE && q[2].seq == 4 &&
		    q[2].u.phase.op == TF_PHASE_BEGIN && q[2].u.phase.name_len == 0);
	assert_true(q[3].tag == TF_TAG_PHASE && q[3].seq == 5 &&
		    q[3].u.phase.op == TF_PHASE_END && q[3].u.phase.name_len == 0);
	assert_true(q[4].tag == TF_TAG_PHASE && q[4].seq == 6 &&
		    q[4].u.phase.op == TF_PHASE_END && q[4].u.phase.name_len == 0);
	assert_true(q[5].tag == TF_TAG_PHASE && q[5].seq == 200 &&
		    q[5].u.phase.op == TF_PHASE_MARK &&
		    q[5].u.phase.name_len == TF_MAX_PHASE_NAME_BYTES);
	assert_memory_equal(q[5].u.phase.name, name, TF_MAX_PHASE_NAME_BYTES);
	assert_true(q[6].tag == TF_TAG_PHASE && q[6].seq == UINT64_MAX &&
		    q[6].u.phase.name_len == TF_MAX_PHASE_NAME_BYTES);
	assert_memory_equal(q[6].u.phase.name, name, TF_MAX_PHASE_NAME_BYTES);
	assert_string_equal(tf_phase_op_name(TF_PHASE_BEGIN), "begin");
	assert_string_equal(tf_phase_op_name(TF_PHASE_END), "end");
	assert_string_equal(tf_phase_op_name(TF_PHASE_MARK), "mark");
	assert_string_equal(tf_phase_op_name((enum tf_phase_op)3), "?");

	/* malformed, each after THREAD (seq 1) in an otherwise valid chunk */
	struct {
		const char *name;
		const uint8_t *bytes;
		size_t len;
		int code;
	} bad[] = {
		{ "phase op 3", (const uint8_t *)"\x16\x01\x03\x01x", 5, -CM_E_CORRUPT },
		{ "phase op 255", (const uint8_t *)"\x16\x01\xff\x00", 4, -CM_E_CORRUPT },
		{ "phase end with a name", (const uint8_t *)"\x16\x01\x01\x01x", 5, -CM_E_CORRUPT },
		{ "phase seq delta 0", (const uint8_t *)"\x16\x00\x02\x01x", 5, -CM_E_CORRUPT },
		{ "phase seq overflowing", (const uint8_t *)"\x16\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x02\x00", 13, -CM_E_CORRUPT },
		{ "phase overlong varint", (const uint8_t *)"\x16\x01\x02\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 14, -CM_E_CORRUPT },
		{ "phase name crosses the chunk end", (const uint8_t *)"\x16\x01\x02\x05pa", 6, -CM_E_CORRUPT },
		{ "phase op missing", (const uint8_t *)"\x16\x01", 2, -CM_E_CORRUPT },
		{ "phase name of 256 bytes", (const uint8_t *)"\x16\x01\x02\x80\x02", 5, -CM_E_LIMIT },
		{ "phase name of 2^40 bytes", (const uint8_t *)"\x16\x01\x00\x80\x80\x80\x80\x80\x20", 9, -CM_E_LIMIT },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_bad_record(&raw, &p, bad[i].name, bad[i].bytes, bad[i].len,
				  bad[i].code == -CM_E_LIMIT ? 300 : 0, bad[i].code);

	/* truncated: the input ends inside a PHASE (no chunk boundary in the
	 * way: the chunk claims more bytes than the file has) */
	raw.len = 0;
	p.len = 0;
	memset(&st, 0, sizeof(st));
	raw_process(&raw);
	p.len += tf_enc_thread(tb_room(&p, 64), &st, 1, 7, "t", 1);
	p.len += tf_enc_phase(tb_room(&p, TF_MAX_PHASE_BYTES), &st, 2, TF_PHASE_MARK,
			      "a mark cut short", 16);
	raw_chunk(&raw, 0, &p);
	raw.len -= 4;
	file.len = 0;
	tb_trace(&file, raw.p, raw.len, NULL, 0, 1);
	assert_int_equal(decode_all(file.p, file.len, r, 32, &n), -CM_E_TRUNCATED);
	assert_int_equal(n, 3); /* process chunk thread */

	tb_release(&raw);
	tb_release(&p);
	tb_release(&file);
}

static void test_every_prefix(void **state)
{
	struct tb raw = { 0 }, a = { 0 }, b = { 0 }, c = { 0 };
	size_t cuts[2];
	(void)state;

	small_raw(&raw);
	tb_trace(&a, raw.p, raw.len, NULL, 0, 1);
	cuts[0] = raw.len / 3;
	cuts[1] = 2 * raw.len / 3;
	tb_trace(&b, raw.p, raw.len, cuts, 2, 19);
	tb_trace_stored(&c, raw.p, raw.len, 16);
	sweep_prefixes(&a);
	sweep_prefixes(&b);
	sweep_prefixes(&c);
	tb_release(&raw);
	tb_release(&a);
	tb_release(&b);
	tb_release(&c);
}

/* Every single-byte change: no crash, no hang; records then 0 or an error. */
static void sweep_flips(const struct tb *file)
{
	static const uint8_t xors[] = { 0x01, 0x80, 0xff };
	uint8_t *copy = malloc(file->len);
	size_t n, n_ok = 0, n_err = 0;

	assert_non_null(copy);
	for (size_t i = 0; i < file->len; i++) {
		for (size_t x = 0; x < sizeof(xors); x++) {
			memcpy(copy, file->p, file->len);
			copy[i] ^= xors[x];
			int rc = decode_all(copy, file->len, NULL, 0, &n);
			assert_true(rc <= 0);
			if (rc == 0)
				n_ok++;
			else
				n_err++;
			if (i < TF_HEADER_BYTES - 4)
				assert_true(rc < 0); /* magic or version */
		}
	}
	print_message("# %zu flips: %zu decoded, %zu rejected\n", n_ok + n_err, n_ok, n_err);
	assert_true(n_err > 0);
	free(copy);
}

static void test_every_flip(void **state)
{
	struct tb raw = { 0 }, a = { 0 }, c = { 0 };
	(void)state;

	small_raw(&raw);
	tb_trace(&a, raw.p, raw.len, NULL, 0, 1);
	tb_trace_stored(&c, raw.p, raw.len, 0);
	sweep_flips(&a);
	sweep_flips(&c);
	tb_release(&raw);
	tb_release(&a);
	tb_release(&c);
}

/* A zstd v0.7 ("legacy") frame header, found by fuzz_decode: libzstd decodes
 * legacy frames without ZSTD_d_windowLogMax, so 35 bytes made the decoder
 * allocate 129 MiB (docs/trace-format.md "Limits": about 43 MiB at most).
 * Only zstd1 frames (magic 0xFD2FB528) and skippable frames belong in a trace. */
static void test_legacy_frame_refused(void **state)
{
	static const uint8_t legacy[] = {
		0x4d, 0x45, 0x4d, 0x52, 0x45, 0x43, 0x1a, 0x01, 0x01, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x27, 0xb5, 0x2f, 0xfd, 0x00, 0x88, 0xd1, 0x10,
		0xff, 0x27, 0xb5, 0x2f, 0xfd, 0x00, 0x7d, 0xd1, 0x10, 0x00, 0x5f,
	};
	struct tf_dec *dec = NULL;
	struct tf_record rec;
	char msg[128];
	int rc;
	(void)state;

	struct mallinfo2 before = mallinfo2();
	assert_int_equal(tf_dec_open_mem(&dec, legacy, sizeof(legacy), msg), 0);
	while ((rc = tf_dec_next(dec, &rec)) > 0)
		;
	struct mallinfo2 during = mallinfo2();
	size_t held = (during.hblkhd + during.uordblks) - (before.hblkhd + before.uordblks);
	print_message("# legacy frame: rc %d (%s), decoder holds %zu KiB\n", rc,
		      tf_dec_errmsg(dec), held >> 10);
	tf_dec_free(dec);
	assert_true(held < (48u << 20));
	assert_true(rc == -CM_E_ZSTD || rc == -CM_E_CORRUPT);
}

/* Names used by dump and messages. */
static void test_names(void **state)
{
	(void)state;
	assert_string_equal(tf_tag_name(TF_TAG_ALLOC), "alloc");
	assert_string_equal(tf_tag_name(TF_TAG_FREE), "free");
	assert_string_equal(tf_tag_name(TF_TAG_PROCESS), "process");
	assert_string_equal(tf_tag_name(TF_TAG_PHASE), "phase");
	assert_string_equal(tf_tag_name((enum tf_tag)0x7f), "?");
	assert_string_equal(tf_kind_name(TF_KIND_MALLOC), "malloc");
	assert_string_equal(tf_kind_name(TF_KIND_PVALLOC), "pvalloc");
	assert_string_equal(tf_kind_name(TF_KIND_FREE), "free");
	assert_string_equal(tf_kind_name((enum tf_kind)200), "?");
	assert_string_equal(cm_strerror(-CM_E_TRUNCATED), "truncated trace");
	assert_non_null(cm_strerror(-ENOENT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_values),
		cmocka_unit_test(test_varint_overlong),
		cmocka_unit_test(test_zigzag),
		cmocka_unit_test(test_roundtrip_every_record),
		cmocka_unit_test(test_roundtrip_stored_blocks),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_open_path),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_cached_events),
		cmocka_unit_test(test_cached_malformed),
		cmocka_unit_test(test_phase_records),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_every_flip),
		cmocka_unit_test(test_legacy_frame_refused),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests_name("tf_codec", tests, NULL, NULL);
}
