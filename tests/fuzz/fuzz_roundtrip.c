/* Encode -> decode roundtrip. The input is a script of events: each step's
 * first byte picks an operation (a record of some stream, plain or cached
 * (docs "Cached events"; also a cached FREE undone by restoring the stream
 * state, as a failed realloc does), a PHASE, a CHUNK boundary, a TICK, a
 * zstd frame boundary) and the following bytes its fields. The
 * script is encoded with tf_enc into a valid trace in memory, decoded with
 * tf_dec, and every decoded field must equal what was encoded; abort()
 * otherwise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"
#include "tf_build.h"
#include "tf_dec.h"
#include "tf_enc.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define N_STREAMS 4
#define MAX_CUTS 8

struct script {
	const uint8_t *p, *end;
};

static uint64_t take(struct script *s, unsigned n_bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n_bytes; i++)
		v = v << 8 | (s->p < s->end ? *s->p++ : 0);
	return v;
}

/* A 64-bit value biased towards edge cases. */
static uint64_t take_u64(struct script *s)
{
	static const uint64_t edge[] = { 0, 1, 127, 128, 0x3fff, 0x4000, UINT32_MAX,
					 (uint64_t)1 << 63, UINT64_MAX, UINT64_MAX - 1 };
	uint8_t sel = (uint8_t)take(s, 1);

	if (sel < 10)
		return edge[sel];
	if (sel < 128)
		return take(s, 2);
	if (sel < 200)
		return 0x7f0000000000u + take(s, 4);
	return take(s, 8);
}

static const uint8_t *take_bytes(struct script *s, uint32_t *len, uint32_t max)
{
	uint32_t n = (uint32_t)(take(s, 2) % (max + 1));

	if (n > (uint32_t)(s->end - s->p))
		n = (uint32_t)(s->end - s->p);
	*len = n;
	const uint8_t *r = s->p;
	s->p += n;
	return r;
}

struct state {
	struct tb raw;                  /* decompressed stream */
	struct tb payload;              /* open chunk payload */
	int open_stream;                /* -1: no chunk open */
	size_t chunk_rec;               /* index of the open chunk's record */
	struct tf_stream_state st[N_STREAMS];
	struct tf_enc_cache *cache;     /* N_STREAMS caches (cached events) */
	uint64_t pool[N_STREAMS][8];    /* addresses seen, to make cache hits */
	struct tf_record *want;         /* expected records, in file order */
	size_t n_want;
	uint64_t seq;                   /* last global seq */
	uint32_t node_id;               /* last node id */
	size_t cuts[MAX_CUTS];
	size_t n_cuts;
};

static void close_chunk(struct state *g)
{
	uint8_t head[TF_MAX_EVENT_BYTES];

	if (g->open_stream < 0)
		return;
	if (g->payload.len == 0) {
		g->n_want--; /* the chunk record is the last one: drop it */
	} else {
		struct tf_record *c = &g->want[g->chunk_rec];
		c->off = g->raw.len;
		c->u.chunk.len = (uint32_t)g->payload.len;
		size_t n = tf_enc_chunk_head(head, c->u.chunk.stream, c->u.chunk.len);
		tb_put(&g->raw, head, n);
		/* stream records' offsets were relative to the payload */
		for (size_t i = g->chunk_rec + 1; i < g->n_want; i++)
			g->want[i].off += g->raw.len;
		tb_put(&g->raw, g->payload.p, g->payload.len);
	}
	g->payload.len = 0;
	g->open_stream = -1;
}

static struct tf_record *stream_rec(struct state *g, uint32_t stream, enum tf_tag tag)
{
	if (g->open_stream != (int)stream) {
		close_chunk(g);
		struct tf_record *c = &g->want[g->n_want++];
		memset(c, 0, sizeof(*c));
		c->tag = TF_TAG_CHUNK;
		c->u.chunk.stream = stream;
		g->chunk_rec = g->n_want - 1;
		g->open_stream = (int)stream;
	}
	struct tf_record *r = &g->want[g->n_want++];
	memset(r, 0, sizeof(*r));
	r->tag = tag;
	r->stream = stream;
	r->off = g->payload.len;
	return r;
}

/* An address for a cached event: mostly one seen before in the stream. */
static uint64_t pool_addr(struct state *g, struct script *s, uint32_t sid)
{
	uint8_t b = (uint8_t)take(s, 1);
	uint64_t a = b < 192 ? g->pool[sid][b % 8] : take_u64(s);

	g->pool[sid][b % 8] = a;
	return a;
}

/* A size: mostly small (size classes), sometimes any. */
static uint64_t take_size(struct script *s)
{
	uint8_t b = (uint8_t)take(s, 1);

	return b < 224 ? b * 9u : take_u64(s);
}

static uint64_t next_seq(struct state *g, struct script *s)
{
	g->seq += 1 + take(s, 1) % 4;
	return g->seq;
}

/* One script step. Returns 0 when the script is over. */
static int step(struct state *g, struct script *s)
{
	if (s->p >= s->end || g->seq > ((uint64_t)1 << 62))
		return 0;
	uint8_t op = (uint8_t)take(s, 1);
	uint32_t sid = op >> 5 & (N_STREAMS - 1);
	struct tf_stream_state *st = &g->st[sid];
	uint8_t *buf;
	struct tf_record *r;
	size_t n = 0;

	switch (op % 13) {
	case 0:
		r = stream_rec(g, sid, TF_TAG_THREAD);
		buf = tb_room(&g->payload, 4096);
		r->seq = next_seq(g, s);
		r->u.thread.tid = (uint32_t)take(s, 4);
		r->u.thread.name = (const char *)take_bytes(s, &r->u.thread.name_len, 16);
		n = tf_enc_thread(buf, st, r->seq, r->u.thread.tid, r->u.thread.name,
				  r->u.thread.name_len);
		break;
	case 1:
		if (g->node_id == UINT32_MAX)
			return 1;
		r = stream_rec(g, sid, TF_TAG_NODE);
		buf = tb_room(&g->payload, 4096);
		uint64_t jump = take(s, 1) == 0xff ? take(s, 4) : 0;
		if (jump > UINT32_MAX - 1 - (uint64_t)g->node_id)
			jump = UINT32_MAX - 1 - (uint64_t)g->node_id;
		g->node_id += 1 + (uint32_t)jump;
		r->u.node.id = g->node_id;
		r->u.node.parent = (uint32_t)(take(s, 4) % g->node_id);
		r->u.node.addr = take_u64(s);
		n = tf_enc_node(buf, st, r->u.node.id, r->u.node.parent, r->u.node.addr);
		break;
	case 2:
		r = stream_rec(g, sid, TF_TAG_ALLOC);
		buf = tb_room(&g->payload, 4096);
		r->seq = next_seq(g, s);
		r->u.alloc.kind = (uint8_t)(take(s, 1) % TF_KIND_FREE);
		r->u.alloc.node = (uint32_t)take_u64(s);
		r->u.alloc.size = take_u64(s);
		r->u.alloc.addr = take_u64(s);
		n = tf_enc_alloc(buf, st, r->seq, r->u.alloc.kind, r->u.alloc.node,
				 r->u.alloc.size, r->u.alloc.addr);
		break;
	case 3:
		r = stream_rec(g, sid, TF_TAG_FREE);
		buf = tb_room(&g->payload, 4096);
		r->seq = next_seq(g, s);
		r->u.free.kind = take(s, 1) & 1 ? TF_KIND_REALLOC : TF_KIND_FREE;
		r->u.free.addr = take_u64(s);
		if (r->u.free.addr == 0)
			r->u.free.addr = 16;
		n = tf_enc_free(buf, st, r->seq, r->u.free.kind, r->u.free.addr);
		break;
	case 4: {
		r = stream_rec(g, sid, TF_TAG_MODULE);
		buf = tb_room(&g->payload, 4096);
		r->seq = next_seq(g, s);
		r->u.module.id = (uint32_t)take(s, 4);
		r->u.module.base = take_u64(s);
		r->u.module.path = (const char *)take_bytes(s, &r->u.module.path_len, 600);
		r->u.module.build_id = take_bytes(s, &r->u.module.build_id_len,
						  TF_MAX_BUILD_ID_BYTES);
		r->u.module.n_segs = (uint32_t)(take(s, 1) % (TF_MAX_SEGMENTS + 1));
		for (uint32_t i = 0; i < r->u.module.n_segs; i++) {
			r->u.module.segs[i].vaddr = take_u64(s);
			r->u.module.segs[i].memsz = take_u64(s);
			r->u.module.segs[i].flags = (uint32_t)take(s, 4);
		}
		int m = tf_enc_module(buf, 4096, st, r->seq, r->u.module.id,
				      r->u.module.base, r->u.module.path,
				      r->u.module.path_len, r->u.module.build_id,
				      r->u.module.build_id_len, r->u.module.segs,
				      r->u.module.n_segs);
		CHECK(m > 0);
		n = (size_t)m;
		break;
	}
	case 5:
		r = stream_rec(g, sid, TF_TAG_UNLOAD);
		buf = tb_room(&g->payload, 4096);
		r->seq = next_seq(g, s);
		r->u.unload.id = (uint32_t)take(s, 4);
		n = tf_enc_unload(buf, st, r->seq, r->u.unload.id);
		break;
	case 6:
		close_chunk(g);
		r = &g->want[g->n_want++];
		memset(r, 0, sizeof(*r));
		r->tag = TF_TAG_TICK;
		r->off = g->raw.len;
		r->u.tick.watermark = take_u64(s);
		r->u.tick.time_ns = take_u64(s);
		r->u.tick.rss_bytes = take_u64(s);
		n = tf_enc_tick(tb_room(&g->raw, TF_MAX_EVENT_BYTES), r->u.tick.watermark,
				r->u.tick.time_ns, r->u.tick.rss_bytes);
		g->raw.len += n;
		return 1;
	case 9: /* cached ALLOC */
		r = stream_rec(g, sid, TF_TAG_ALLOC);
		buf = tb_room(&g->payload, 4096);
		r->seq = next_seq(g, s);
		r->u.alloc.kind = (uint8_t)(take(s, 1) % TF_KIND_FREE);
		r->u.alloc.node = (uint32_t)take(s, 2);
		r->u.alloc.size = take_size(s);
		r->u.alloc.addr = pool_addr(g, s, sid);
		n = tf_enc_alloc_c(buf, st, &g->cache[sid], r->seq, r->u.alloc.kind,
				   r->u.alloc.node, r->u.alloc.size, r->u.alloc.addr);
		break;
	case 10: /* cached FREE */
		r = stream_rec(g, sid, TF_TAG_FREE);
		buf = tb_room(&g->payload, 4096);
		r->seq = next_seq(g, s);
		r->u.free.kind = take(s, 1) & 1 ? TF_KIND_REALLOC : TF_KIND_FREE;
		r->u.free.addr = pool_addr(g, s, sid);
		if (r->u.free.addr == 0)
			r->u.free.addr = 16;
		n = tf_enc_free_c(buf, st, &g->cache[sid], r->seq, r->u.free.kind,
				  r->u.free.addr);
		break;
	case 11: { /* a failed realloc: its FREE is encoded, then undone */
		struct tf_stream_state saved = *st;
		uint64_t a = pool_addr(g, s, sid);
		tf_enc_free_c(tb_room(&g->payload, 4096), st, &g->cache[sid], next_seq(g, s),
			      TF_KIND_REALLOC, a ? a : 16);
		*st = saved;
		return 1;
	}
	case 12: /* PHASE: begin / end / mark, names up to past the limit */
		r = stream_rec(g, sid, TF_TAG_PHASE);
		buf = tb_room(&g->payload, 4096);
		r->seq = next_seq(g, s);
		r->u.phase.op = (uint8_t)(take(s, 1) % TF_PHASE_OP_COUNT);
		{
			uint32_t len;
			const char *name = (const char *)take_bytes(s, &len,
								    TF_MAX_PHASE_NAME_BYTES + 40);
			n = tf_enc_phase(buf, st, r->seq, (enum tf_phase_op)r->u.phase.op, name,
					 len);
			/* what the decoder must return: cut at the limit, none for end */
			if (r->u.phase.op == TF_PHASE_END)
				len = 0;
			r->u.phase.name = name;
			r->u.phase.name_len = len < TF_MAX_PHASE_NAME_BYTES ? len
									  : TF_MAX_PHASE_NAME_BYTES;
		}
		CHECK(n <= TF_MAX_PHASE_BYTES);
		break;
	case 7: /* end the open chunk */
		close_chunk(g);
		return 1;
	default: /* zstd frame boundary after what is in raw so far */
		close_chunk(g);
		if (g->n_cuts < MAX_CUTS)
			g->cuts[g->n_cuts++] = g->raw.len;
		return 1;
	}
	CHECK(n > 0 && n <= 4096);
	g->payload.len += n;
	return 1;
}

static void check_same(const struct tf_record *a, const struct tf_record *b)
{
	CHECK(a->tag == b->tag && a->off == b->off);
	switch (a->tag) {
	case TF_TAG_PROCESS:
		CHECK(a->u.process.pid == b->u.process.pid &&
		      a->u.process.ppid == b->u.process.ppid &&
		      a->u.process.start_unix_ns == b->u.process.start_unix_ns &&
		      a->u.process.page_size == b->u.process.page_size &&
		      a->u.process.exe_len == b->u.process.exe_len &&
		      a->u.process.cmdline_len == b->u.process.cmdline_len);
		CHECK(!a->u.process.exe_len ||
		      !memcmp(a->u.process.exe, b->u.process.exe, a->u.process.exe_len));
		CHECK(!a->u.process.cmdline_len ||
		      !memcmp(a->u.process.cmdline, b->u.process.cmdline,
			      a->u.process.cmdline_len));
		return;
	case TF_TAG_CHUNK:
		CHECK(a->u.chunk.stream == b->u.chunk.stream && a->u.chunk.len == b->u.chunk.len);
		return;
	case TF_TAG_TICK:
		CHECK(a->u.tick.watermark == b->u.tick.watermark &&
		      a->u.tick.time_ns == b->u.tick.time_ns &&
		      a->u.tick.rss_bytes == b->u.tick.rss_bytes);
		return;
	case TF_TAG_END:
		CHECK(a->u.end.time_ns == b->u.end.time_ns &&
		      a->u.end.n_events == b->u.end.n_events);
		return;
	default:
		break;
	}
	CHECK(a->stream == b->stream);
	switch (a->tag) {
	case TF_TAG_THREAD:
		CHECK(a->seq == b->seq && a->u.thread.tid == b->u.thread.tid &&
		      a->u.thread.name_len == b->u.thread.name_len);
		CHECK(!a->u.thread.name_len ||
		      !memcmp(a->u.thread.name, b->u.thread.name, a->u.thread.name_len));
		return;
	case TF_TAG_NODE:
		CHECK(a->u.node.id == b->u.node.id && a->u.node.parent == b->u.node.parent &&
		      a->u.node.addr == b->u.node.addr);
		return;
	case TF_TAG_ALLOC:
		CHECK(a->seq == b->seq && a->u.alloc.kind == b->u.alloc.kind &&
		      a->u.alloc.node == b->u.alloc.node &&
		      a->u.alloc.size == b->u.alloc.size && a->u.alloc.addr == b->u.alloc.addr);
		return;
	case TF_TAG_FREE:
		CHECK(a->seq == b->seq && a->u.free.kind == b->u.free.kind &&
		      a->u.free.addr == b->u.free.addr);
		return;
	case TF_TAG_MODULE:
		CHECK(a->seq == b->seq && a->u.module.id == b->u.module.id &&
		      a->u.module.base == b->u.module.base &&
		      a->u.module.path_len == b->u.module.path_len &&
		      a->u.module.build_id_len == b->u.module.build_id_len &&
		      a->u.module.n_segs == b->u.module.n_segs);
		CHECK(!a->u.module.path_len ||
		      !memcmp(a->u.module.path, b->u.module.path, a->u.module.path_len));
		CHECK(!a->u.module.build_id_len ||
		      !memcmp(a->u.module.build_id, b->u.module.build_id,
			      a->u.module.build_id_len));
		for (uint32_t i = 0; i < a->u.module.n_segs; i++)
			CHECK(a->u.module.segs[i].vaddr == b->u.module.segs[i].vaddr &&
			      a->u.module.segs[i].memsz == b->u.module.segs[i].memsz &&
			      a->u.module.segs[i].flags == b->u.module.segs[i].flags);
		return;
	case TF_TAG_UNLOAD:
		CHECK(a->seq == b->seq && a->u.unload.id == b->u.unload.id);
		return;
	case TF_TAG_PHASE:
		CHECK(a->seq == b->seq && a->u.phase.op == b->u.phase.op &&
		      a->u.phase.name_len == b->u.phase.name_len);
		CHECK(!a->u.phase.name_len ||
		      !memcmp(a->u.phase.name, b->u.phase.name, a->u.phase.name_len));
		return;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct script s = { data, data + size };
	struct state g;
	struct tf_record *r;

	memset(&g, 0, sizeof(g));
	g.open_stream = -1;
	g.want = calloc(2 * size + 8, sizeof(*g.want)); /* <= 2 records per byte */
	g.cache = calloc(N_STREAMS, sizeof(*g.cache));
	CHECK(g.want && g.cache);
	for (int i = 0; i < N_STREAMS; i++)
		tf_enc_cache_reset(&g.cache[i]);

	r = &g.want[g.n_want++];
	r->tag = TF_TAG_PROCESS;
	r->u.process.pid = (uint32_t)take(&s, 4);
	r->u.process.ppid = (uint32_t)take(&s, 4);
	r->u.process.start_unix_ns = take_u64(&s);
	r->u.process.page_size = (uint32_t)take(&s, 4);
	r->u.process.exe = (const char *)take_bytes(&s, &r->u.process.exe_len, 300);
	r->u.process.cmdline = (const char *)take_bytes(&s, &r->u.process.cmdline_len, 300);
	int n = tf_enc_process(tb_room(&g.raw, 1024), 1024, r->u.process.pid,
			       r->u.process.ppid, r->u.process.start_unix_ns,
			       r->u.process.page_size, r->u.process.exe,
			       r->u.process.exe_len, r->u.process.cmdline,
			       r->u.process.cmdline_len);
	CHECK(n > 0);
	g.raw.len += (size_t)n;

	while (step(&g, &s))
		;
	close_chunk(&g);
	r = &g.want[g.n_want++];
	memset(r, 0, sizeof(*r));
	r->tag = TF_TAG_END;
	r->off = g.raw.len;
	r->u.end.time_ns = g.seq * 1000;
	r->u.end.n_events = g.n_want;
	g.raw.len += tf_enc_end(tb_room(&g.raw, TF_MAX_EVENT_BYTES), r->u.end.time_ns,
				r->u.end.n_events);

	struct tb file = { 0 };
	tb_trace(&file, g.raw.p, g.raw.len, g.cuts, g.n_cuts, 1);

	struct tf_dec *dec = NULL;
	struct tf_record got;
	char msg[128];
	CHECK(tf_dec_open_mem(&dec, file.p, file.len, msg) == 0);
	for (size_t i = 0; i < g.n_want; i++) {
		CHECK(tf_dec_next(dec, &got) == 1);
		check_same(&got, &g.want[i]);
	}
	CHECK(tf_dec_next(dec, &got) == 0);
	CHECK(tf_dec_file_offset(dec) == file.len);
	tf_dec_free(dec);
	tb_release(&file);
	tb_release(&g.raw);
	tb_release(&g.payload);
	free(g.want);
	free(g.cache);
	return 0;
}
