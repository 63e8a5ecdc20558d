/* Bytes -> records. Validates every field before use: lengths against the
 * limits in tf_records.h, tags, kinds, node ids and sequence numbers. Errors
 * are sticky and carry the byte offset (SQLite errByteOffset). */
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "cm_err.h"
#include "cm_varint.h"
#include "tf_dec.h"

#define DEC_IN_CAP (128u << 10)  /* compressed input buffer, bytes */
#define DEC_OUT_CAP (1u << 20)   /* decompressed window, bytes (> 2x max record) */
#define DEC_WINDOW_LOG_MAX 23    /* zstd window cap: 8 MiB (docs "Limits") */

_Static_assert(DEC_OUT_CAP >= 2 * TF_MAX_RECORD_BYTES, "window must hold a record");

/* Decoder side of the cached events (docs "Cached events"), allocated at a
 * stream's first cached event; the ALLOC ring and the class stacks grow with
 * the records that fill them (up to TF_REF_WINDOW and TF_CLS_DEPTH entries),
 * all streams' together within TF_MAX_CACHE_BYTES. */
struct dec_cls {
	uint8_t n[TF_CLS_COUNT];     /* addresses in each stack */
	uint8_t cap[TF_CLS_COUNT];   /* entries allocated */
	uint64_t *stk[TF_CLS_COUNT]; /* [n-1] is the top */
};

struct dec_cache {
	uint64_t n_alloc;        /* cached ALLOCs of the stream */
	uint32_t ring_cap;       /* power of two, <= TF_REF_WINDOW */
	uint64_t *ring_addr;     /* address of ALLOC k at (k - 1) & (cap - 1) */
	uint8_t *ring_cls;       /* its size class */
	struct dec_cls *cls;     /* NULL until the first push */
	struct tf_recent recent; /* recent frees */
};

struct dec_stream {
	struct tf_stream_state st;
	struct dec_cache *cache; /* NULL until the first cached event */
};

struct tf_dec {
	/* source: either a file descriptor or borrowed memory */
	int fd;                 /* -1 for memory input */
	const uint8_t *mem;     /* memory input */
	size_t mem_len, mem_pos;
	int src_eof;            /* no more compressed input */
	uint64_t file_off;      /* bytes of the file consumed (header + zstd) */

	ZSTD_DStream *zds;
	uint8_t *in;            /* DEC_IN_CAP bytes */
	ZSTD_inBuffer zin;
	int frame_open;         /* zstd is inside a frame (last return != 0) */
	int frame_start;        /* the next input byte starts a zstd frame */

	uint8_t *out;           /* DEC_OUT_CAP bytes: [pos, end) not yet parsed */
	size_t pos, end;
	uint64_t out_base;      /* decompressed offset of out[0] */
	int dstream_eof;        /* decompressed stream fully produced */

	uint32_t version, flags;
	int seen_process, seen_end, done;
	uint32_t chunk_stream;  /* stream of the open chunk */
	uint64_t chunk_left;    /* payload bytes left in the open chunk */

	struct dec_stream *streams; /* indexed by stream id */
	uint64_t cache_bytes;   /* allocated for stream caches */
	uint32_t n_streams;     /* allocated entries */

	int err;                /* sticky error, 0 if none */
	char errmsg[256];
};

static int fail(struct tf_dec *dec, int code, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record a sticky error at decompressed offset off. */
static int fail(struct tf_dec *dec, int code, uint64_t off, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	if (dec->err)
		return dec->err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(dec->errmsg, sizeof(dec->errmsg),
		 "%s at byte %llu of the decompressed stream (file byte %llu): %s",
		 cm_strerror(code), (unsigned long long)off,
		 (unsigned long long)dec->file_off, what);
	dec->err = code;
	return code;
}

static void copy_msg(char errmsg[128], const char *msg)
{
	if (errmsg)
		snprintf(errmsg, 128, "%s", msg);
}

static uint32_t get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Read up to cap bytes of compressed input. Returns bytes, 0 at EOF, -errno. */
static ssize_t src_read(struct tf_dec *dec, uint8_t *buf, size_t cap)
{
	if (dec->fd < 0) {
		size_t n = dec->mem_len - dec->mem_pos;
		if (n > cap)
			n = cap;
		memcpy(buf, dec->mem + dec->mem_pos, n);
		dec->mem_pos += n;
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = read(dec->fd, buf, cap);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static int dec_init(struct tf_dec *dec, char errmsg[128])
{
	uint8_t hdr[TF_HEADER_BYTES];
	size_t got = 0;

	while (got < sizeof(hdr)) {
		ssize_t n = src_read(dec, hdr + got, sizeof(hdr) - got);
		if (n < 0) {
			copy_msg(errmsg, cm_strerror((int)n));
			return (int)n;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got < TF_MAGIC_BYTES || memcmp(hdr, TF_MAGIC, TF_MAGIC_BYTES) != 0) {
		if (got == 0) {
			copy_msg(errmsg, "empty file, not a memrec trace");
			return -CM_E_TRUNCATED;
		}
		copy_msg(errmsg, "not a memrec trace: bad magic at byte 0");
		return -CM_E_MAGIC;
	}
	if (got < TF_HEADER_BYTES) {
		copy_msg(errmsg, "truncated trace: header ends at byte 8");
		return -CM_E_TRUNCATED;
	}
	dec->version = get_u32le(hdr + 8);
	dec->flags = get_u32le(hdr + 12);
	if (dec->version != TF_VERSION) {
		char m[128];
		snprintf(m, sizeof(m), "unsupported trace format version %u at byte 8 (this memana reads %u)",
			 dec->version, TF_VERSION);
		copy_msg(errmsg, m);
		return -CM_E_VERSION;
	}
	dec->file_off = TF_HEADER_BYTES;
	dec->zds = ZSTD_createDStream();
	dec->in = malloc(DEC_IN_CAP);
	dec->out = malloc(DEC_OUT_CAP);
	if (!dec->zds || !dec->in || !dec->out) {
		copy_msg(errmsg, "out of memory");
		return -ENOMEM;
	}
	if (ZSTD_isError(ZSTD_DCtx_setParameter(dec->zds, ZSTD_d_windowLogMax,
						 DEC_WINDOW_LOG_MAX))) {
		copy_msg(errmsg, "zstd: cannot set window limit");
		return -CM_E_ZSTD;
	}
	dec->frame_start = 1;
	dec->zin.src = dec->in;
	dec->zin.size = 0;
	dec->zin.pos = 0;
	return 0;
}

static int dec_open_common(struct tf_dec **out, struct tf_dec *dec, char errmsg[128])
{
	int rc = dec_init(dec, errmsg);

	if (rc < 0) {
		tf_dec_free(dec);
		return rc;
	}
	*out = dec;
	return 0;
}

int tf_dec_open(struct tf_dec **out, const char *path, char errmsg[128])
{
	struct tf_dec *dec = calloc(1, sizeof(*dec));

	if (!dec) {
		copy_msg(errmsg, "out of memory");
		return -ENOMEM;
	}
	dec->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (dec->fd < 0) {
		int e = -errno;
		copy_msg(errmsg, cm_strerror(e));
		free(dec);
		return e;
	}
	return dec_open_common(out, dec, errmsg);
}

int tf_dec_open_mem(struct tf_dec **out, const void *data, size_t len, char errmsg[128])
{
	struct tf_dec *dec = calloc(1, sizeof(*dec));

	if (!dec) {
		copy_msg(errmsg, "out of memory");
		return -ENOMEM;
	}
	dec->fd = -1;
	dec->mem = data;
	dec->mem_len = len;
	return dec_open_common(out, dec, errmsg);
}

void tf_dec_free(struct tf_dec *dec)
{
	if (!dec)
		return;
	if (dec->fd >= 0)
		close(dec->fd);
	ZSTD_freeDStream(dec->zds);
	free(dec->in);
	free(dec->out);
	for (uint32_t i = 0; dec->streams && i < dec->n_streams; i++) {
		struct dec_cache *c = dec->streams[i].cache;
		if (!c)
			continue;
		for (unsigned k = 0; c->cls && k < TF_CLS_COUNT; k++)
			free(c->cls->stk[k]);
		free(c->cls);
		free(c->ring_addr);
		free(c->ring_cls);
		free(c);
	}
	free(dec->streams);
	free(dec);
}

const char *tf_dec_errmsg(const struct tf_dec *dec)
{
	return dec->errmsg;
}

uint32_t tf_dec_version(const struct tf_dec *dec)
{
	return dec->version;
}

uint32_t tf_dec_flags(const struct tf_dec *dec)
{
	return dec->flags;
}

uint64_t tf_dec_file_offset(const struct tf_dec *dec)
{
	return dec->file_off;
}

/* Decompress until at least want bytes are buffered or the stream ends.
 * Returns 0 or a negative error (sticky). */
static int fill(struct tf_dec *dec, size_t want)
{
	if (dec->end - dec->pos >= want || dec->dstream_eof)
		return 0;
	if (dec->pos > 0) {
		memmove(dec->out, dec->out + dec->pos, dec->end - dec->pos);
		dec->out_base += dec->pos;
		dec->end -= dec->pos;
		dec->pos = 0;
	}
	while (dec->end < want) {
		if (dec->zin.pos == dec->zin.size && !dec->src_eof) {
			ssize_t n = src_read(dec, dec->in, DEC_IN_CAP);
			if (n < 0)
				return fail(dec, (int)n, dec->out_base + dec->end, "read error");
			if (n == 0)
				dec->src_eof = 1;
			dec->zin.size = (size_t)n;
			dec->zin.pos = 0;
		}
		if (dec->frame_start) {
			/* Only zstd v1 frames (RFC 8878) and skippable frames: the
			 * library would also decode legacy (v0.x) frames, which
			 * ignore the window limit (35 bytes could claim 128 MiB). */
			size_t have = dec->zin.size - dec->zin.pos;
			if (have < 4 && !dec->src_eof) {
				memmove(dec->in, dec->in + dec->zin.pos, have);
				dec->zin.pos = 0;
				dec->zin.size = have;
				ssize_t n = src_read(dec, dec->in + have, DEC_IN_CAP - have);
				if (n < 0)
					return fail(dec, (int)n, dec->out_base + dec->end,
						    "read error");
				if (n == 0)
					dec->src_eof = 1;
				dec->zin.size += (size_t)n;
				continue;
			}
			if (have >= 4) {
				uint32_t magic = get_u32le(dec->in + dec->zin.pos);
				if (magic != ZSTD_MAGICNUMBER &&
				    (magic & ZSTD_MAGIC_SKIPPABLE_MASK) != ZSTD_MAGIC_SKIPPABLE_START)
					return fail(dec, -CM_E_ZSTD, dec->out_base + dec->end,
						    "not a zstd frame (magic 0x%08x)", magic);
				dec->frame_start = 0;
			}
		}
		ZSTD_outBuffer zout = { dec->out, DEC_OUT_CAP, dec->end };
		size_t before_in = dec->zin.pos;
		size_t r = ZSTD_decompressStream(dec->zds, &zout, &dec->zin);
		if (ZSTD_isError(r))
			return fail(dec, -CM_E_ZSTD, dec->out_base + dec->end,
				    "zstd: %s", ZSTD_getErrorName(r));
		dec->file_off += dec->zin.pos - before_in;
		int progressed = zout.pos != dec->end || dec->zin.pos != before_in;
		dec->end = zout.pos;
		if (progressed) {
			dec->frame_open = r != 0;
			dec->frame_start = r == 0;
		}
		if (!progressed && dec->zin.pos == dec->zin.size && dec->src_eof) {
			dec->dstream_eof = 1;
			break;
		}
	}
	return 0;
}

/* A cursor over [p, end) that records the first failure. */
struct cur {
	const uint8_t *p, *end;
	int short_input; /* ran out of bytes */
	int bad;         /* overlong varint or field beyond limit */
	const char *what;
};

static uint64_t cur_varint_slow(struct cur *c, const char *what);

/* Most varints are one byte: that case inline, the rest out of line. */
static inline uint64_t cur_varint(struct cur *c, const char *what)
{
	if (__builtin_expect(c->p < c->end && *c->p < 0x80 && !(c->short_input | c->bad), 1))
		return *c->p++;
	return cur_varint_slow(c, what);
}

static __attribute__((noinline)) uint64_t cur_varint_slow(struct cur *c, const char *what)
{
	uint64_t v = 0;

	if (c->short_input || c->bad)
		return 0;
	int n = cm_varint_get(c->p, c->end, &v);
	if (n == 0) {
		c->short_input = 1;
		c->what = what;
		return 0;
	}
	if (n < 0) {
		c->bad = 1;
		c->what = what;
		return 0;
	}
	c->p += n;
	return v;
}

static inline uint32_t cur_u32(struct cur *c, const char *what)
{
	uint64_t v = cur_varint(c, what);

	if (v > UINT32_MAX && !c->bad && !c->short_input) {
		c->bad = 1;
		c->what = what;
		return 0;
	}
	return (uint32_t)v;
}

static inline uint8_t cur_byte(struct cur *c, const char *what)
{
	if (c->short_input || c->bad)
		return 0;
	if (c->p >= c->end) {
		c->short_input = 1;
		c->what = what;
		return 0;
	}
	return *c->p++;
}

/* Length-prefixed bytes; the length is checked against limit first. */
static const uint8_t *cur_bytes(struct cur *c, uint32_t *len, uint32_t limit,
				const char *what)
{
	uint64_t n = cur_varint(c, what);

	if (c->short_input || c->bad)
		return NULL;
	if (n > limit) {
		c->bad = 2; /* limit */
		c->what = what;
		return NULL;
	}
	if ((uint64_t)(c->end - c->p) < n) {
		c->short_input = 1;
		c->what = what;
		return NULL;
	}
	const uint8_t *s = c->p;
	c->p += n;
	*len = (uint32_t)n;
	return s;
}

static int stream_state(struct tf_dec *dec, uint32_t id, uint64_t off,
			struct dec_stream **out)
{
	if (id >= TF_MAX_STREAMS)
		return fail(dec, -CM_E_LIMIT, off, "stream id %u over the limit %u",
			    id, TF_MAX_STREAMS);
	if (id >= dec->n_streams) {
		uint32_t n = dec->n_streams ? dec->n_streams : 16;
		while (n <= id)
			n *= 2;
		if (n > TF_MAX_STREAMS)
			n = TF_MAX_STREAMS;
		struct dec_stream *s = realloc(dec->streams, n * sizeof(*s));
		if (!s)
			return fail(dec, -ENOMEM, off, "out of memory for %u streams", n);
		memset(s + dec->n_streams, 0, (n - dec->n_streams) * sizeof(*s));
		dec->streams = s;
		dec->n_streams = n;
	}
	*out = &dec->streams[id];
	return 0;
}

/* The seq of the record of tag at off, as a delta, into *seq. */
static inline int take_seq_at(struct tf_dec *dec, struct cur *c, struct tf_stream_state *st,
			      uint64_t *seq, uint64_t off, enum tf_tag tag)
{
	uint64_t d = cur_varint(c, "seq");

	if (c->short_input || c->bad)
		return 0;
	if (d == 0 || st->prev_seq + d < st->prev_seq)
		return fail(dec, -CM_E_CORRUPT, off,
			    "%s: sequence number does not increase", tf_tag_name(tag));
	st->prev_seq += d;
	*seq = st->prev_seq;
	return 0;
}

static inline int take_seq(struct tf_dec *dec, struct cur *c, struct tf_stream_state *st,
		    struct tf_record *rec)
{
	return take_seq_at(dec, c, st, &rec->seq, rec->off, rec->tag);
}

static inline uint64_t take_addr(struct cur *c, uint64_t *prev)
{
	uint64_t z = cur_varint(c, "address");

	*prev += (uint64_t)cm_unzigzag(z);
	return *prev;
}

/* seq of a cached event: implied 1 by TF_TF_SEQ1, else a varint. */
static inline int take_seq_c(struct tf_dec *dec, struct cur *c, struct tf_stream_state *st,
		      struct tf_event *ev, unsigned tag)
{
	if (!(tag & TF_TF_SEQ1))
		return take_seq_at(dec, c, st, &ev->seq, ev->off, ev->tag);
	st->prev_seq++;
	if (st->prev_seq == 0)
		return fail(dec, -CM_E_CORRUPT, ev->off, "%s: sequence number overflows",
			    tf_tag_name(ev->tag));
	ev->seq = st->prev_seq;
	return 0;
}

/* realloc for a stream cache, within TF_MAX_CACHE_BYTES for all of them. */
static int cache_realloc(struct tf_dec *dec, void *pp, size_t old_bytes, size_t new_bytes,
			 uint64_t off)
{
	void **p = pp;

	if (dec->cache_bytes - old_bytes + new_bytes > TF_MAX_CACHE_BYTES)
		return fail(dec, -CM_E_LIMIT, off, "stream caches over the limit of %u MiB",
			    TF_MAX_CACHE_BYTES >> 20);
	void *q = realloc(*p, new_bytes);
	if (!q)
		return fail(dec, -ENOMEM, off, "out of memory for a stream cache");
	if (new_bytes > old_bytes)
		memset((char *)q + old_bytes, 0, new_bytes - old_bytes);
	*p = q;
	dec->cache_bytes = dec->cache_bytes - old_bytes + new_bytes;
	return 0;
}

static int cache_get(struct tf_dec *dec, struct dec_stream *s, uint64_t off,
		     struct dec_cache **out)
{
	if (!s->cache)
		CM_TRY(cache_realloc(dec, &s->cache, 0, sizeof(*s->cache), off));
	*out = s->cache;
	return 0;
}

/* Append the address of a new ALLOC to the ring (grown up to the window). */
static int ring_put(struct tf_dec *dec, struct dec_cache *c, uint64_t addr, unsigned k,
		    uint64_t off)
{
	if (c->n_alloc >= c->ring_cap && c->ring_cap < TF_REF_WINDOW) {
		uint32_t cap = c->ring_cap ? c->ring_cap * 2 : 16;
		CM_TRY(cache_realloc(dec, &c->ring_addr, c->ring_cap * sizeof(uint64_t),
				     cap * sizeof(uint64_t), off));
		CM_TRY(cache_realloc(dec, &c->ring_cls, c->ring_cap, cap, off));
		c->ring_cap = cap;
	}
	uint32_t i = (uint32_t)(c->n_alloc & (c->ring_cap - 1));
	c->ring_addr[i] = addr;
	c->ring_cls[i] = (uint8_t)k;
	c->n_alloc++;
	return 0;
}

static int cls_push_slow(struct tf_dec *dec, struct dec_cache *c, unsigned k, uint64_t addr,
			 uint64_t off);

/* Push addr onto class stack k (the room is there: inline). */
static inline int cls_push(struct tf_dec *dec, struct dec_cache *c, unsigned k, uint64_t addr,
			   uint64_t off)
{
	struct dec_cls *cl = c->cls;

	if (cl && cl->n[k] < cl->cap[k]) {
		cl->stk[k][cl->n[k]++] = addr;
		return 0;
	}
	return cls_push_slow(dec, c, k, addr, off);
}

/* Push, growing the stack or dropping its bottom entry. */
static __attribute__((noinline)) int cls_push_slow(struct tf_dec *dec, struct dec_cache *c,
						   unsigned k, uint64_t addr, uint64_t off)
{
	if (!c->cls)
		CM_TRY(cache_realloc(dec, &c->cls, 0, sizeof(*c->cls), off));
	struct dec_cls *cl = c->cls;
	unsigned n = cl->n[k];

	if (n == TF_CLS_DEPTH) {
		for (unsigned j = 0; j + 1 < TF_CLS_DEPTH; j++)
			cl->stk[k][j] = cl->stk[k][j + 1];
		n--;
	} else if (n == cl->cap[k]) {
		unsigned cap = n ? n * 2 : 4;
		CM_TRY(cache_realloc(dec, &cl->stk[k], n * sizeof(uint64_t), cap * sizeof(uint64_t),
				     off));
		cl->cap[k] = (uint8_t)cap;
	}
	cl->stk[k][n] = addr;
	cl->n[k] = (uint8_t)(n + 1);
	return 0;
}

/* The previous FREE enters the cache (the encoder's apply_pending). */
static inline int apply_pending(struct tf_dec *dec, struct tf_stream_state *st,
				struct dec_cache *c, uint64_t off)
{
	uint64_t addr = st->pend_addr;

	if (!addr)
		return 0;
	st->pend_addr = 0;
	if (c->recent.n && *tf_recent_at(&c->recent, 0) == addr)
		return 0;
	if (st->pend_cls)
		CM_TRY(cls_push(dec, c, st->pend_cls, addr, off));
	/* Newest first, the oldest dropped when full (the encoder's list,
	 * kept as a ring: no shift per FREE). */
	tf_recent_push(&c->recent, addr);
	return 0;
}

/* A cached ALLOC (tags 0x30..0x3f), returned as TF_TAG_ALLOC. */
static inline __attribute__((always_inline)) int parse_alloc_c(struct tf_dec *dec, struct cur *c, struct dec_stream *s,
				struct tf_event *ev, unsigned tag)
{
	struct tf_stream_state *st = &s->st;
	struct dec_cache *ca = NULL;
	uint64_t addr = 0;

	ev->tag = TF_TAG_ALLOC;
	CM_TRY(cache_get(dec, s, ev->off, &ca));
	CM_TRY(apply_pending(dec, st, ca, ev->off));
	CM_TRY(take_seq_c(dec, c, st, ev, tag));
	ev->kind = (tag & TF_TF_KIND) ? cur_byte(c, "kind") : TF_KIND_MALLOC;
	ev->node = cur_u32(c, "node");
	ev->size = cur_varint(c, "size");
	unsigned k = tf_size_class(ev->size);
	switch (tag & TF_TAG_FORM_MASK) {
	case TF_TAG_ALLOC_ADDR:
		addr = take_addr(c, &st->prev_addr);
		break;
	case TF_TAG_ALLOC_TOP:
	case TF_TAG_ALLOC_CLS: {
		uint64_t i = 0;
		if ((tag & TF_TAG_FORM_MASK) == TF_TAG_ALLOC_CLS) {
			i = cur_varint(c, "class index");
			i = i < TF_CLS_DEPTH ? i + 1 : TF_CLS_DEPTH; /* no wrap */
		}
		if (c->short_input || c->bad)
			return 0;
		unsigned n = ca->cls ? ca->cls->n[k] : 0;
		if (i >= n)
			return fail(dec, -CM_E_CORRUPT, ev->off,
				    "alloc: class %u index %llu beyond its %u addresses", k,
				    (unsigned long long)i, n);
		uint64_t *stk = ca->cls->stk[k];
		unsigned at = n - 1 - (unsigned)i;
		addr = stk[at];
		for (unsigned j = at; j + 1 < n; j++)
			stk[j] = stk[j + 1];
		ca->cls->n[k] = (uint8_t)(n - 1);
		break;
	}
	case TF_TAG_ALLOC_RECENT: {
		uint64_t i = cur_varint(c, "recent index");
		if (c->short_input || c->bad)
			return 0;
		if (i >= ca->recent.n)
			return fail(dec, -CM_E_CORRUPT, ev->off,
				    "alloc: recent free %llu beyond the %u kept",
				    (unsigned long long)i, ca->recent.n);
		addr = *tf_recent_at(&ca->recent, (unsigned)i);
		tf_recent_remove(&ca->recent, (unsigned)i);
		break;
	}
	default:
		return fail(dec, -CM_E_CORRUPT, ev->off, "unknown record tag 0x%02x in a chunk",
			    tag);
	}
	if (c->short_input || c->bad)
		return 0;
	if (ev->kind >= TF_KIND_FREE)
		return fail(dec, -CM_E_CORRUPT, ev->off, "alloc: bad kind %u", ev->kind);
	ev->addr = addr;
	return ring_put(dec, ca, addr, k, ev->off);
}

/* A cached FREE (tags 0x20..0x27), returned as TF_TAG_FREE. */
static inline __attribute__((always_inline)) int parse_free_c(struct tf_dec *dec, struct cur *c, struct dec_stream *s,
			       struct tf_event *ev, unsigned tag)
{
	struct tf_stream_state *st = &s->st;
	struct dec_cache *ca = NULL;
	uint64_t addr;
	unsigned k = 0;

	ev->tag = TF_TAG_FREE;
	ev->size = 0;
	ev->node = 0;
	CM_TRY(cache_get(dec, s, ev->off, &ca));
	CM_TRY(apply_pending(dec, st, ca, ev->off));
	CM_TRY(take_seq_c(dec, c, st, ev, tag));
	ev->kind = (tag & TF_TF_REALLOC) ? TF_KIND_REALLOC : TF_KIND_FREE;
	if ((tag & TF_TAG_FORM_MASK) == TF_TAG_FREE_REF) {
		uint64_t back = cur_varint(c, "back-reference");
		if (c->short_input || c->bad)
			return 0;
		if (back >= ca->n_alloc || back >= TF_REF_WINDOW)
			return fail(dec, -CM_E_CORRUPT, ev->off,
				    "free: back-reference %llu beyond the %llu allocations kept",
				    (unsigned long long)back,
				    (unsigned long long)(ca->n_alloc < TF_REF_WINDOW ? ca->n_alloc
										 : TF_REF_WINDOW));
		uint32_t i = (uint32_t)((ca->n_alloc - 1 - back) & (ca->ring_cap - 1));
		addr = ca->ring_addr[i];
		k = ca->ring_cls[i];
	} else {
		addr = take_addr(c, &st->prev_addr);
		if (c->short_input || c->bad)
			return 0;
	}
	if (addr == 0)
		return fail(dec, -CM_E_CORRUPT, ev->off, "free: null address");
	ev->addr = addr;
	st->pend_addr = addr;
	st->pend_cls = k;
	return 0;
}

/* Is tag (first byte of a stream record) an ALLOC or FREE, cached or not? */
static inline bool is_event_tag(unsigned tag)
{
	return (tag >= TF_TAG_FREE_REF && tag < TF_TAG_FREE_ADDR + 4) ||
	       (tag >= TF_TAG_ALLOC_ADDR && tag < TF_TAG_ALLOC_TOP + 4) || tag == TF_TAG_ALLOC ||
	       tag == TF_TAG_FREE;
}

/* Parse the event record of tag (is_event_tag()) from c into ev, whose off
 * and stream the caller set. The cursor's flags are the caller's to check. */
static inline __attribute__((always_inline)) int parse_event(struct tf_dec *dec, struct cur *c,
							   struct dec_stream *s,
			      struct tf_event *ev, unsigned tag)
{
	struct tf_stream_state *st = &s->st;

	if (tag >= TF_TAG_FREE_REF && tag < TF_TAG_FREE_ADDR + 4)
		return parse_free_c(dec, c, s, ev, tag);
	if (tag >= TF_TAG_ALLOC_ADDR && tag < TF_TAG_ALLOC_TOP + 4)
		return parse_alloc_c(dec, c, s, ev, tag);
	ev->tag = (uint8_t)tag;
	if (tag == TF_TAG_ALLOC) {
		CM_TRY(take_seq_at(dec, c, st, &ev->seq, ev->off, TF_TAG_ALLOC));
		ev->kind = cur_byte(c, "kind");
		ev->node = cur_u32(c, "node");
		ev->size = cur_varint(c, "size");
		ev->addr = take_addr(c, &st->prev_addr);
		if (!c->short_input && !c->bad && ev->kind >= TF_KIND_FREE)
			return fail(dec, -CM_E_CORRUPT, ev->off, "alloc: bad kind %u", ev->kind);
		return 0;
	}
	CM_TRY(take_seq_at(dec, c, st, &ev->seq, ev->off, TF_TAG_FREE));
	ev->size = 0;
	ev->node = 0;
	ev->kind = cur_byte(c, "kind");
	ev->addr = take_addr(c, &st->prev_addr);
	if (!c->short_input && !c->bad && ev->kind != TF_KIND_FREE && ev->kind != TF_KIND_REALLOC)
		return fail(dec, -CM_E_CORRUPT, ev->off, "free: bad kind %u", ev->kind);
	if (!c->short_input && !c->bad && ev->addr == 0)
		return fail(dec, -CM_E_CORRUPT, ev->off, "free: null address");
	return 0;
}

/* A NODE record from c into ev (tf_dec_events()'s form: node = id, addr =
 * parent id, size = return address), ev->off set by the caller. */
static inline int parse_node(struct tf_dec *dec, struct cur *c, struct tf_stream_state *st,
			     struct tf_event *ev)
{
	uint64_t did = cur_varint(c, "node id");
	uint64_t dpar = cur_varint(c, "node parent");

	if (c->short_input || c->bad)
		return 0;
	uint64_t id = st->prev_node_id + did;
	if (did == 0 || id > UINT32_MAX || dpar == 0 || dpar > id)
		return fail(dec, -CM_E_CORRUPT, ev->off,
			    "node: bad id or parent (id delta %llu, parent delta %llu)",
			    (unsigned long long)did, (unsigned long long)dpar);
	ev->tag = TF_TAG_NODE;
	ev->kind = 0;
	ev->seq = 0;
	ev->node = (uint32_t)id;
	ev->addr = (uint32_t)(id - dpar);
	ev->size = take_addr(c, &st->prev_node_addr);
	st->prev_node_id = (uint32_t)id;
	return 0;
}

/* Parse one stream record of the open chunk from c into rec. */
static int parse_stream_record(struct tf_dec *dec, struct cur *c, struct tf_record *rec)
{
	struct dec_stream *s = NULL;
	CM_TRY(stream_state(dec, dec->chunk_stream, rec->off, &s));
	struct tf_stream_state *st = &s->st;
	rec->stream = dec->chunk_stream;

	unsigned tag = (unsigned)rec->tag;
	if (is_event_tag(tag)) {
		struct tf_event ev = { .off = rec->off, .stream = rec->stream };
		CM_TRY(parse_event(dec, c, s, &ev, tag));
		rec->tag = (enum tf_tag)ev.tag;
		rec->seq = ev.seq;
		if (ev.tag == TF_TAG_ALLOC) {
			rec->u.alloc.kind = ev.kind;
			rec->u.alloc.node = ev.node;
			rec->u.alloc.size = ev.size;
			rec->u.alloc.addr = ev.addr;
		} else {
			rec->u.free.kind = ev.kind;
			rec->u.free.addr = ev.addr;
		}
		return 0;
	}

	switch (rec->tag) {
	case TF_TAG_THREAD: {
		CM_TRY(take_seq(dec, c, st, rec));
		rec->u.thread.tid = cur_u32(c, "tid");
		rec->u.thread.name = (const char *)cur_bytes(c, &rec->u.thread.name_len, 16,
							     "thread name");
		break;
	}
	case TF_TAG_NODE: {
		struct tf_event ev = { .off = rec->off };
		CM_TRY(parse_node(dec, c, st, &ev));
		rec->u.node.id = ev.node;
		rec->u.node.parent = (uint32_t)ev.addr;
		rec->u.node.addr = ev.size;
		break;
	}
	case TF_TAG_ALLOC: /* parse_event() */
	case TF_TAG_FREE:
		break;
	case TF_TAG_MODULE: {
		memset(&rec->u.module, 0, sizeof(rec->u.module));
		CM_TRY(take_seq(dec, c, st, rec));
		rec->u.module.id = cur_u32(c, "module id");
		rec->u.module.base = cur_varint(c, "module base");
		rec->u.module.path = (const char *)cur_bytes(c, &rec->u.module.path_len,
							     TF_MAX_STR_BYTES, "module path");
		rec->u.module.build_id = cur_bytes(c, &rec->u.module.build_id_len,
						   TF_MAX_BUILD_ID_BYTES, "build-id");
		uint64_t n = cur_varint(c, "segment count");
		if (c->short_input || c->bad)
			break;
		if (n > TF_MAX_SEGMENTS)
			return fail(dec, -CM_E_LIMIT, rec->off,
				    "module: %llu segments over the limit %u",
				    (unsigned long long)n, TF_MAX_SEGMENTS);
		rec->u.module.n_segs = (uint32_t)n;
		for (uint32_t i = 0; i < n; i++) {
			rec->u.module.segs[i].vaddr = cur_varint(c, "segment vaddr");
			rec->u.module.segs[i].memsz = cur_varint(c, "segment size");
			rec->u.module.segs[i].flags = cur_u32(c, "segment flags");
		}
		break;
	}
	case TF_TAG_UNLOAD:
		CM_TRY(take_seq(dec, c, st, rec));
		rec->u.unload.id = cur_u32(c, "module id");
		break;
	case TF_TAG_PHASE: {
		CM_TRY(take_seq(dec, c, st, rec));
		uint8_t op = cur_byte(c, "phase op");
		if (!c->short_input && !c->bad && op >= TF_PHASE_OP_COUNT)
			return fail(dec, -CM_E_CORRUPT, rec->off, "phase: bad op %u", op);
		rec->u.phase.op = op;
		rec->u.phase.name = (const char *)cur_bytes(c, &rec->u.phase.name_len,
							    TF_MAX_PHASE_NAME_BYTES, "phase name");
		if (!c->short_input && !c->bad && op == TF_PHASE_END && rec->u.phase.name_len)
			return fail(dec, -CM_E_CORRUPT, rec->off,
				    "phase: end with a name (%u bytes)", rec->u.phase.name_len);
		break;
	}
	default:
		return fail(dec, -CM_E_CORRUPT, rec->off,
			    "unknown record tag 0x%02x in a chunk", rec->tag);
	}
	return 0;
}

static int parse_top_record(struct tf_dec *dec, struct cur *c, struct tf_record *rec)
{
	if (!dec->seen_process && rec->tag != TF_TAG_PROCESS)
		return fail(dec, -CM_E_CORRUPT, rec->off,
			    "first record is %s, not process", tf_tag_name(rec->tag));
	switch (rec->tag) {
	case TF_TAG_PROCESS:
		if (dec->seen_process)
			return fail(dec, -CM_E_CORRUPT, rec->off, "second process record");
		rec->u.process.pid = cur_u32(c, "pid");
		rec->u.process.ppid = cur_u32(c, "ppid");
		rec->u.process.start_unix_ns = cur_varint(c, "start time");
		rec->u.process.page_size = cur_u32(c, "page size");
		rec->u.process.exe = (const char *)cur_bytes(c, &rec->u.process.exe_len,
							     TF_MAX_STR_BYTES, "exe");
		rec->u.process.cmdline = (const char *)cur_bytes(
			c, &rec->u.process.cmdline_len, TF_MAX_STR_BYTES, "command line");
		break;
	case TF_TAG_CHUNK: {
		rec->u.chunk.stream = cur_u32(c, "chunk stream");
		uint64_t len = cur_varint(c, "chunk length");
		if (c->short_input || c->bad)
			break;
		if (rec->u.chunk.stream >= TF_MAX_STREAMS)
			return fail(dec, -CM_E_LIMIT, rec->off, "stream id %u over the limit %u",
				    rec->u.chunk.stream, TF_MAX_STREAMS);
		if (len > TF_MAX_CHUNK_BYTES || len == 0)
			return fail(dec, -CM_E_LIMIT, rec->off, "chunk length %llu out of range",
				    (unsigned long long)len);
		rec->u.chunk.len = (uint32_t)len;
		break;
	}
	case TF_TAG_TICK:
		rec->u.tick.watermark = cur_varint(c, "watermark");
		rec->u.tick.time_ns = cur_varint(c, "time");
		rec->u.tick.rss_bytes = cur_varint(c, "rss");
		break;
	case TF_TAG_END:
		rec->u.end.time_ns = cur_varint(c, "time");
		rec->u.end.n_events = cur_varint(c, "event count");
		break;
	default:
		return fail(dec, -CM_E_CORRUPT, rec->off, "unknown record tag 0x%02x",
			    rec->tag);
	}
	return 0;
}

/* The error of a record (tag, at off) whose cursor c ended bad or short. */
static __attribute__((noinline)) int cursor_failed(struct tf_dec *dec, const struct cur *c,
						   enum tf_tag tag, uint64_t off, int in_chunk)
{
	if (c->bad == 2)
		return fail(dec, -CM_E_LIMIT, off, "%s: %s longer than its limit",
			    tf_tag_name(tag), c->what);
	if (c->bad)
		return fail(dec, -CM_E_CORRUPT, off, "%s: bad varint in %s", tf_tag_name(tag),
			    c->what);
	if (in_chunk && c->end < dec->out + dec->end)
		return fail(dec, -CM_E_CORRUPT, off, "%s: record crosses the end of its chunk (%s)",
			    tf_tag_name(tag), c->what);
	if (dec->dstream_eof)
		return fail(dec, -CM_E_TRUNCATED, off, "input ends inside a record (%s)",
			    tf_tag_name(tag));
	return fail(dec, -CM_E_LIMIT, off, "%s record longer than %u bytes", tf_tag_name(tag),
		    TF_MAX_RECORD_BYTES);
}

/* Bytes of an ALLOC or FREE record at most (tag, seq, kind, node, size and
 * an address or an index, each varint cut at CM_VARINT_MAX bytes). */
#define MAX_EVENT_BYTES 64
_Static_assert(MAX_EVENT_BYTES >= 1 + 5 * CM_VARINT_MAX + 1, "event record bound");

/* May tf_dec_events() parse the next record without tf_dec_next()'s
 * refill? Only where tf_dec_next() would not refill either (so records,
 * errors and their offsets are the same whichever is called), and with a
 * whole event record decoded (a short cursor then means the chunk's end). */
static inline bool events_buffered(const struct tf_dec *dec)
{
	size_t have = dec->end - dec->pos;

	return have >= TF_MAX_RECORD_BYTES || (dec->dstream_eof && have >= MAX_EVENT_BYTES);
}

long tf_dec_events(struct tf_dec *dec, struct tf_event *out, size_t cap)
{
	struct dec_stream *s = NULL;
	size_t n = 0;
	int rc;

	if (dec->err)
		return dec->err;
	if (dec->done || dec->seen_end)
		return 0;
	while (n < cap && dec->chunk_left > 0 && events_buffered(dec)) {
		const uint8_t *p = dec->out + dec->pos;
		unsigned tag = *p;
		uint64_t off = dec->out_base + dec->pos;
		if (!is_event_tag(tag) && tag != TF_TAG_NODE)
			break;
		if (!s && (rc = stream_state(dec, dec->chunk_stream, off, &s)) < 0)
			return n ? (long)n : rc;
		size_t avail = dec->end - dec->pos;
		if (dec->chunk_left < avail)
			avail = (size_t)dec->chunk_left;
		struct cur c = { p + 1, p + avail, 0, 0, NULL };
		struct tf_event *ev = &out[n];
		ev->off = off;
		ev->stream = dec->chunk_stream;
		if (tag == TF_TAG_NODE) {
			ev->tag = TF_TAG_NODE;
			rc = parse_node(dec, &c, &s->st, ev);
		} else {
			rc = parse_event(dec, &c, s, ev, tag);
		}
		if (rc == 0 && (c.bad || c.short_input))
			rc = cursor_failed(dec, &c, (enum tf_tag)ev->tag, off, 1);
		if (rc < 0)
			return n ? (long)n : rc;
		size_t used = (size_t)(c.p - p);
		dec->pos += used;
		dec->chunk_left -= used;
		n++;
	}
	return (long)n;
}

int tf_dec_next(struct tf_dec *dec, struct tf_record *rec)
{
	if (dec->err)
		return dec->err;
	if (dec->done)
		return 0;
	if (dec->end - dec->pos < TF_MAX_RECORD_BYTES)
		CM_TRY(fill(dec, TF_MAX_RECORD_BYTES));

	uint64_t off = dec->out_base + dec->pos;
	if (dec->pos == dec->end) {
		/* Clean end of the decompressed stream. */
		if (dec->chunk_left)
			return fail(dec, -CM_E_TRUNCATED, off, "input ends inside a chunk");
		if (dec->seen_end) {
			if (dec->frame_open)
				return fail(dec, -CM_E_TRUNCATED, off,
					    "input ends inside a zstd frame");
			dec->done = 1;
			return 0;
		}
		return fail(dec, -CM_E_TRUNCATED, off, "no end record%s",
			    dec->frame_open ? " (input ends inside a zstd frame)" : "");
	}
	if (dec->seen_end)
		return fail(dec, -CM_E_CORRUPT, off, "data after the end record");

	struct cur c = { dec->out + dec->pos, dec->out + dec->end, 0, 0, NULL };
	int in_chunk = dec->chunk_left > 0;
	if (in_chunk && dec->chunk_left < (uint64_t)(c.end - c.p))
		c.end = c.p + dec->chunk_left;

	/* Zero the header and the small union members, not the whole record
	 * (a MODULE's segment table is most of it: zeroed in its own case). */
	rec->off = off;
	rec->stream = 0;
	rec->seq = 0;
	memset(&rec->u, 0, 64);
	rec->tag = (enum tf_tag)*c.p++;
	if (in_chunk)
		CM_TRY(parse_stream_record(dec, &c, rec));
	else
		CM_TRY(parse_top_record(dec, &c, rec));

	if (c.bad || c.short_input)
		return cursor_failed(dec, &c, rec->tag, off, in_chunk);

	size_t used = (size_t)(c.p - (dec->out + dec->pos));
	dec->pos += used;
	if (in_chunk) {
		dec->chunk_left -= used;
	} else if (rec->tag == TF_TAG_CHUNK) {
		dec->chunk_left = rec->u.chunk.len;
		dec->chunk_stream = rec->u.chunk.stream;
	} else if (rec->tag == TF_TAG_PROCESS) {
		dec->seen_process = 1;
	} else if (rec->tag == TF_TAG_END) {
		dec->seen_end = 1;
	}
	return 1;
}

const char *tf_tag_name(enum tf_tag tag)
{
	switch (tag) {
	case TF_TAG_PROCESS: return "process";
	case TF_TAG_CHUNK: return "chunk";
	case TF_TAG_TICK: return "tick";
	case TF_TAG_END: return "end";
	case TF_TAG_THREAD: return "thread";
	case TF_TAG_NODE: return "node";
	case TF_TAG_ALLOC: return "alloc";
	case TF_TAG_FREE: return "free";
	case TF_TAG_MODULE: return "module";
	case TF_TAG_UNLOAD: return "unload";
	case TF_TAG_PHASE: return "phase";
	}
	return "?";
}

const char *tf_phase_op_name(enum tf_phase_op op)
{
	static const char *const names[TF_PHASE_OP_COUNT] = { "begin", "end", "mark" };

	return (unsigned)op < TF_PHASE_OP_COUNT ? names[op] : "?";
}

const char *tf_kind_name(enum tf_kind kind)
{
	static const char *const names[TF_KIND_COUNT] = {
		"malloc", "calloc", "realloc", "reallocarray", "posix_memalign",
		"aligned_alloc", "memalign", "valloc", "pvalloc", "free",
	};

	return (unsigned)kind < TF_KIND_COUNT ? names[kind] : "?";
}
