/* Records -> caller buffer (docs/trace-format.md). Runs inside malloc: no
 * allocation, no locks, no syscalls. */
#include <string.h>

#include "cm_err.h"
#include "cm_varint.h"
#include "tf_enc.h"

static void put_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void tf_enc_header(uint8_t buf[TF_HEADER_BYTES], uint32_t flags)
{
	memcpy(buf, TF_MAGIC, TF_MAGIC_BYTES);
	put_u32le(buf + 8, TF_VERSION);
	put_u32le(buf + 12, flags);
}

static size_t put_seq(uint8_t *p, struct tf_stream_state *st, uint64_t seq)
{
	size_t n = cm_varint_put(p, seq - st->prev_seq);

	st->prev_seq = seq;
	return n;
}

static size_t put_addr(uint8_t *p, struct tf_stream_state *st, uint64_t addr)
{
	size_t n = cm_varint_put(p, cm_zigzag((int64_t)(addr - st->prev_addr)));

	st->prev_addr = addr;
	return n;
}

size_t tf_enc_thread(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		     uint32_t tid, const char *name, size_t name_len)
{
	size_t n = 0;

	if (name_len > 16)
		name_len = 16;
	buf[n++] = TF_TAG_THREAD;
	n += put_seq(buf + n, st, seq);
	n += cm_varint_put(buf + n, tid);
	n += cm_varint_put(buf + n, name_len);
	memcpy(buf + n, name, name_len);
	return n + name_len;
}

size_t tf_enc_node(uint8_t *buf, struct tf_stream_state *st, uint32_t id,
		   uint32_t parent, uint64_t addr)
{
	size_t n = 0;

	buf[n++] = TF_TAG_NODE;
	n += cm_varint_put(buf + n, id - st->prev_node_id);
	n += cm_varint_put(buf + n, id - parent);
	n += cm_varint_put(buf + n, cm_zigzag((int64_t)(addr - st->prev_node_addr)));
	st->prev_node_id = id;
	st->prev_node_addr = addr;
	return n;
}

size_t tf_enc_alloc(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		    enum tf_kind kind, uint32_t node, uint64_t size, uint64_t addr)
{
	size_t n = 0;

	buf[n++] = TF_TAG_ALLOC;
	n += put_seq(buf + n, st, seq);
	buf[n++] = (uint8_t)kind;
	n += cm_varint_put(buf + n, node);
	n += cm_varint_put(buf + n, size);
	n += put_addr(buf + n, st, addr);
	return n;
}

size_t tf_enc_free(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		   enum tf_kind kind, uint64_t addr)
{
	size_t n = 0;

	buf[n++] = TF_TAG_FREE;
	n += put_seq(buf + n, st, seq);
	buf[n++] = (uint8_t)kind;
	n += put_addr(buf + n, st, addr);
	return n;
}

_Static_assert(1 + CM_VARINT_MAX + 1 + 2 + TF_MAX_PHASE_NAME_BYTES <= TF_MAX_PHASE_BYTES,
	       "a PHASE record fits in TF_MAX_PHASE_BYTES");

size_t tf_enc_phase(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		    enum tf_phase_op op, const char *name, size_t name_len)
{
	size_t n = 0;

	if (op == TF_PHASE_END)
		name_len = 0;
	if (name_len > TF_MAX_PHASE_NAME_BYTES)
		name_len = TF_MAX_PHASE_NAME_BYTES;
	buf[n++] = TF_TAG_PHASE;
	n += put_seq(buf + n, st, seq);
	buf[n++] = (uint8_t)op;
	n += cm_varint_put(buf + n, name_len);
	if (name_len)
		memcpy(buf + n, name, name_len);
	return n + name_len;
}

/* ---- cached events (docs "Cached events") ------------------------------ */

void tf_enc_cache_reset(struct tf_enc_cache *c)
{
	c->start = c->n_alloc;
	c->recent.n = 0;
	memset(c->cls_n, 0, sizeof(c->cls_n));
	memset(c->cls_base, 0, sizeof(c->cls_base));
}

static inline uint32_t cache_slot(uint64_t addr)
{
	return (uint32_t)((addr * 0x9E3779B97F4A7C15ull) >> (64 - TF_ENC_HASH_BITS));
}

#define CLS_MASK (TF_CLS_DEPTH - 1)
_Static_assert((TF_CLS_DEPTH & CLS_MASK) == 0, "class stack depth: a power of two");

/* Remove entry i (0 = top) of class stack k: the entries above it move
 * down one slot. */
static inline void cls_remove(struct tf_enc_cache *c, unsigned k, unsigned i)
{
	unsigned n = c->cls_n[k], base = c->cls_base[k];

	for (unsigned j = n - 1 - i; j + 1 < n; j++)
		c->cls[k][(base + j) & CLS_MASK] = c->cls[k][(base + j + 1) & CLS_MASK];
	c->cls_n[k] = (uint8_t)(n - 1);
}

static inline void cls_push(struct tf_enc_cache *c, unsigned k, uint64_t addr)
{
	unsigned n = c->cls_n[k], base = c->cls_base[k];

	if (n == TF_CLS_DEPTH) { /* drop the bottom */
		base = (base + 1) & CLS_MASK;
		c->cls_base[k] = (uint8_t)base;
		n--;
	}
	c->cls[k][(base + n) & CLS_MASK] = addr;
	c->cls_n[k] = (uint8_t)(n + 1);
}

/* Position from the top (0 = top) of the topmost addr in class stack k, or
 * -1 when it holds none. */
static inline int cls_find(const struct tf_enc_cache *c, unsigned k, uint64_t addr)
{
	const uint64_t *s = c->cls[k];
	unsigned n = c->cls_n[k], top = c->cls_base[k] + n - 1u;

	for (unsigned i = 0; i < n; i++)
		if (s[(top - i) & CLS_MASK] == addr)
			return (int)i;
	return -1;
}

/* Writes the tag at buf[0] later; returns the bytes of the seq part. */
static inline size_t put_seq_c(uint8_t *p, struct tf_stream_state *st, uint64_t seq,
			       unsigned *tag)
{
	uint64_t d = seq - st->prev_seq;

	st->prev_seq = seq;
	if (d == 1) {
		*tag |= TF_TF_SEQ1;
		return 0;
	}
	return cm_varint_put(p, d);
}

/* The previous FREE enters the cache when the next cached event begins,
 * unless it is already the newest recent free: so a FREE undone by
 * restoring st, whose pending FREE is then applied twice, changes nothing. */
static inline void apply_pending(struct tf_stream_state *st, struct tf_enc_cache *c)
{
	uint64_t addr = st->pend_addr;

	if (!addr)
		return;
	st->pend_addr = 0;
	if (c->recent.n && *tf_recent_at(&c->recent, 0) == addr)
		return;
	if (st->pend_cls)
		cls_push(c, st->pend_cls, addr);
	tf_recent_push(&c->recent, addr);
}

size_t tf_enc_alloc_c(uint8_t *buf, struct tf_stream_state *st, struct tf_enc_cache *c,
		      uint64_t seq, enum tf_kind kind, uint32_t node, uint64_t size,
		      uint64_t addr)
{
	unsigned tag = 0, k = tf_size_class(size);
	size_t n = 1;

	apply_pending(st, c);
	n += put_seq_c(buf + n, st, seq, &tag);
	if (kind != TF_KIND_MALLOC) {
		tag |= TF_TF_KIND;
		buf[n++] = (uint8_t)kind;
	}
	n += cm_varint_put(buf + n, node);
	n += cm_varint_put(buf + n, size);
	/* The address: from its class stack, else the recent frees, else as a
	 * delta (the stack never holds addr after this). */
	if (addr && k) {
		int i = cls_find(c, k, addr);
		if (i >= 0) {
			cls_remove(c, k, (unsigned)i);
			if (i == 0) {
				tag |= TF_TAG_ALLOC_TOP;
			} else {
				tag |= TF_TAG_ALLOC_CLS;
				n += cm_varint_put(buf + n, (unsigned)i - 1);
			}
		}
	}
	if (!(tag & TF_TAG_FORM_MASK) && addr) {
		for (unsigned i = 0; i < c->recent.n; i++) {
			if (*tf_recent_at(&c->recent, i) == addr) {
				tf_recent_remove(&c->recent, i);
				tag |= TF_TAG_ALLOC_RECENT;
				n += cm_varint_put(buf + n, i);
				break;
			}
		}
	}
	if (!(tag & TF_TAG_FORM_MASK)) {
		tag |= TF_TAG_ALLOC_ADDR;
		n += put_addr(buf + n, st, addr);
	}
	buf[0] = (uint8_t)tag;
	/* Remember which ALLOC returned addr (FREE_REF). */
	uint32_t h = cache_slot(addr);
	c->n_alloc++;
	c->hkey[h] = addr;
	c->hval[h] = c->n_alloc << 8 | k;
	return n;
}

size_t tf_enc_free_c(uint8_t *buf, struct tf_stream_state *st, struct tf_enc_cache *c,
		     uint64_t seq, enum tf_kind kind, uint64_t addr)
{
	unsigned tag = 0;
	size_t n = 1;
	uint32_t h = cache_slot(addr);
	uint64_t no = c->hval[h] >> 8, back = c->n_alloc - no;

	apply_pending(st, c);
	n += put_seq_c(buf + n, st, seq, &tag);
	if (kind == TF_KIND_REALLOC)
		tag |= TF_TF_REALLOC;
	if (addr && c->hkey[h] == addr && no > c->start && back < TF_REF_WINDOW) {
		tag |= TF_TAG_FREE_REF;
		n += cm_varint_put(buf + n, back);
		st->pend_cls = (uint32_t)(c->hval[h] & 0xff);
	} else {
		st->pend_cls = 0;
		tag |= TF_TAG_FREE_ADDR;
		n += put_addr(buf + n, st, addr);
	}
	st->pend_addr = addr;
	buf[0] = (uint8_t)tag;
	return n;
}

size_t tf_enc_unload(uint8_t *buf, struct tf_stream_state *st, uint64_t seq,
		     uint32_t id)
{
	size_t n = 0;

	buf[n++] = TF_TAG_UNLOAD;
	n += put_seq(buf + n, st, seq);
	n += cm_varint_put(buf + n, id);
	return n;
}

/* Bounded writer for the variable-size records. */
struct enc_out {
	uint8_t *buf;
	size_t cap, len;
	int err;
};

static void out_varint(struct enc_out *o, uint64_t v)
{
	if (o->len + CM_VARINT_MAX > o->cap) {
		o->err = -CM_E_LIMIT;
		return;
	}
	o->len += cm_varint_put(o->buf + o->len, v);
}

static void out_bytes(struct enc_out *o, const void *p, size_t len, size_t limit)
{
	if (len > limit) {
		o->err = -CM_E_LIMIT;
		return;
	}
	out_varint(o, len);
	if (o->err || o->len + len > o->cap) {
		o->err = -CM_E_LIMIT;
		return;
	}
	if (len)
		memcpy(o->buf + o->len, p, len);
	o->len += len;
}

int tf_enc_module(uint8_t *buf, size_t cap, struct tf_stream_state *st,
		  uint64_t seq, uint32_t id, uint64_t base, const char *path,
		  size_t path_len, const uint8_t *build_id, size_t build_id_len,
		  const struct tf_segment *segs, uint32_t n_segs)
{
	struct enc_out o = { buf, cap, 0, 0 };
	uint64_t prev_seq = st->prev_seq;

	if (cap < 1 || n_segs > TF_MAX_SEGMENTS)
		return -CM_E_LIMIT;
	buf[o.len++] = TF_TAG_MODULE;
	out_varint(&o, seq - st->prev_seq);
	out_varint(&o, id);
	out_varint(&o, base);
	out_bytes(&o, path, path_len, TF_MAX_STR_BYTES);
	out_bytes(&o, build_id, build_id_len, TF_MAX_BUILD_ID_BYTES);
	out_varint(&o, n_segs);
	for (uint32_t i = 0; i < n_segs; i++) {
		out_varint(&o, segs[i].vaddr);
		out_varint(&o, segs[i].memsz);
		out_varint(&o, segs[i].flags);
	}
	if (o.err || o.len > TF_MAX_RECORD_BYTES) {
		st->prev_seq = prev_seq;
		return -CM_E_LIMIT;
	}
	st->prev_seq = seq;
	return (int)o.len;
}

int tf_enc_process(uint8_t *buf, size_t cap, uint32_t pid, uint32_t ppid,
		   uint64_t start_unix_ns, uint32_t page_size, const char *exe,
		   size_t exe_len, const char *cmdline, size_t cmdline_len)
{
	struct enc_out o = { buf, cap, 0, 0 };

	if (cap < 1)
		return -CM_E_LIMIT;
	buf[o.len++] = TF_TAG_PROCESS;
	out_varint(&o, pid);
	out_varint(&o, ppid);
	out_varint(&o, start_unix_ns);
	out_varint(&o, page_size);
	out_bytes(&o, exe, exe_len, TF_MAX_STR_BYTES);
	out_bytes(&o, cmdline, cmdline_len, TF_MAX_STR_BYTES);
	if (o.err || o.len > TF_MAX_RECORD_BYTES)
		return -CM_E_LIMIT;
	return (int)o.len;
}

size_t tf_enc_chunk_head(uint8_t *buf, uint32_t stream, uint32_t len)
{
	size_t n = 0;

	buf[n++] = TF_TAG_CHUNK;
	n += cm_varint_put(buf + n, stream);
	n += cm_varint_put(buf + n, len);
	return n;
}

size_t tf_enc_tick(uint8_t *buf, uint64_t watermark, uint64_t time_ns,
		   uint64_t rss_bytes)
{
	size_t n = 0;

	buf[n++] = TF_TAG_TICK;
	n += cm_varint_put(buf + n, watermark);
	n += cm_varint_put(buf + n, time_ns);
	n += cm_varint_put(buf + n, rss_bytes);
	return n;
}

size_t tf_enc_end(uint8_t *buf, uint64_t time_ns, uint64_t n_events)
{
	size_t n = 0;

	buf[n++] = TF_TAG_END;
	n += cm_varint_put(buf + n, time_ns);
	n += cm_varint_put(buf + n, n_events);
	return n;
}
