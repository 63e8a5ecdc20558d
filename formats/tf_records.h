/* The memrec trace format: tags, fields, encodings and limits. The
 * specification is docs/trace-format.md; this header is its only
 * implementation-side copy, shared by tf_enc.c and tf_dec.c (zstd rule). */
#ifndef TF_RECORDS_H
#define TF_RECORDS_H

#include <stddef.h>
#include <stdint.h>

/* File header (docs/trace-format.md "File header"): 8 magic bytes, u32 LE
 * format version, u32 LE flags; then one zstd stream (one or more frames). */
#define TF_MAGIC "MEMREC\x1a\x01"
#define TF_MAGIC_BYTES 8
#define TF_VERSION 1
#define TF_HEADER_BYTES 16

/* Record tags (docs/trace-format.md "Records"). Never reuse or reinterpret a
 * tag; add new ones. Top-level tags appear in the decompressed stream;
 * stream tags appear only inside a CHUNK payload. */
enum tf_tag {
	TF_TAG_PROCESS = 0x01, /* top level: process info, first record */
	TF_TAG_CHUNK = 0x02,   /* top level: a piece of one thread's stream */
	TF_TAG_TICK = 0x03,    /* top level: time, RSS and merge watermark */
	TF_TAG_END = 0x04,     /* top level: the trace is complete */
	TF_TAG_THREAD = 0x10,  /* stream: thread start (tid, name) */
	TF_TAG_NODE = 0x11,    /* stream: stack trie node definition */
	TF_TAG_ALLOC = 0x12,   /* stream: allocation */
	TF_TAG_FREE = 0x13,    /* stream: deallocation */
	TF_TAG_MODULE = 0x14,  /* stream: module (ELF object) loaded */
	TF_TAG_UNLOAD = 0x15,  /* stream: module unloaded */
	TF_TAG_PHASE = 0x16,   /* stream: phase begin/end or mark (include/memrec.h) */
};

/* Wire tags of the cached encodings of FREE and ALLOC (docs "Cached
 * events"). Not enum tf_tag values: the decoder returns these records as
 * TF_TAG_FREE / TF_TAG_ALLOC. Each is the first of 4 tags whose low bits
 * are flags: TF_TF_SEQ1 (seq delta 1, not written) and, for FREE,
 * TF_TF_REALLOC (kind realloc, else free) or, for ALLOC, TF_TF_KIND (a kind
 * byte follows, else malloc). Bits 0x3c select the form. */
#define TF_TAG_FREE_REF 0x20u     /* 0x20..0x23: free by back-reference */
#define TF_TAG_FREE_ADDR 0x24u    /* 0x24..0x27: free by address delta */
#define TF_TAG_ALLOC_ADDR 0x30u   /* 0x30..0x33: alloc, address delta */
#define TF_TAG_ALLOC_CLS 0x34u    /* 0x34..0x37: alloc from a class stack */
#define TF_TAG_ALLOC_RECENT 0x38u /* 0x38..0x3b: alloc of a recent free */
#define TF_TAG_ALLOC_TOP 0x3cu    /* 0x3c..0x3f: alloc from a class stack's top */
#define TF_TAG_FORM_MASK 0x3cu

/* Flag bits in the cached-event tags above. */
#define TF_TF_SEQ1 0x01u
#define TF_TF_REALLOC 0x02u /* FREE_* tags */
#define TF_TF_KIND 0x02u    /* ALLOC_* tags */

/* Cache geometry of the cached events (docs "Cached events"); both sides
 * mirror it exactly, so changing a value changes the format. */
#define TF_REF_WINDOW 4096u  /* FREE_REF reaches the last this many ALLOCs */
#define TF_CLS_COUNT 128u    /* size classes 2..127 (0: none) */
#define TF_CLS_DEPTH 32u     /* addresses kept per size class */
#define TF_RECENT 8u         /* recent frees kept */

/* Size class of an allocation of size bytes: (max(size, 9) + 23) / 16 for
 * sizes up to 984 bytes (2..62: glibc's chunk size / 16), 0 (no class)
 * above. */
static inline unsigned tf_size_class(uint64_t size)
{
	if (size > 2024)
		return 0;
	return (unsigned)(((size < 9 ? 9 : size) + 23) >> 4);
}

/* Allocation function that made an ALLOC or FREE record. */
enum tf_kind {
	TF_KIND_MALLOC = 0,
	TF_KIND_CALLOC = 1,
	TF_KIND_REALLOC = 2,
	TF_KIND_REALLOCARRAY = 3,
	TF_KIND_POSIX_MEMALIGN = 4,
	TF_KIND_ALIGNED_ALLOC = 5,
	TF_KIND_MEMALIGN = 6,
	TF_KIND_VALLOC = 7,
	TF_KIND_PVALLOC = 8,
	TF_KIND_FREE = 9,  /* FREE record from free() */
	TF_KIND_COUNT = 10,
};

/* What a PHASE record says (docs "Stream records"): a named phase of the
 * thread begins, the thread's innermost open phase ends (no name), or a
 * named point in time (memrec_mark(), --mark-signal). */
enum tf_phase_op {
	TF_PHASE_BEGIN = 0,
	TF_PHASE_END = 1,
	TF_PHASE_MARK = 2,
	TF_PHASE_OP_COUNT = 3,
};

/* Special stack trie addresses: a frame whose address is TF_ADDR_TRUNCATED
 * marks a backtrace cut at the depth limit (it is the outermost node). */
#define TF_ADDR_TRUNCATED 1u
#define TF_NODE_ROOT 0u /* parent id of an outermost frame */

/* Limits the decoder enforces before allocating (docs "Limits"). */
#define TF_MAX_STR_BYTES 32768u      /* any string field */
#define TF_MAX_BUILD_ID_BYTES 64u    /* build-id note descriptor */
#define TF_MAX_SEGMENTS 32u          /* loadable segments per module */
#define TF_MAX_RECORD_BYTES 131072u  /* any record except a CHUNK payload */
#define TF_MAX_CHUNK_BYTES (64u << 20) /* one CHUNK payload */
#define TF_MAX_STREAMS (1u << 20)    /* distinct thread streams */
#define TF_MAX_EVENT_BYTES 64u       /* THREAD/ALLOC/FREE/NODE/UNLOAD record */
#define TF_MAX_PHASE_NAME_BYTES 255u /* name of a PHASE record */
#define TF_MAX_PHASE_BYTES 272u      /* a whole PHASE record: tag, seq (10),
				      * op, name length (2), name */
#define TF_MAX_CACHE_BYTES (512u << 20) /* decoder: all streams' caches */

struct tf_segment {
	uint64_t vaddr; /* start, bytes from the module's load base */
	uint64_t memsz; /* bytes */
	uint32_t flags; /* PF_R/PF_W/PF_X of the program header */
};

/* A decoded record. Pointer fields borrow the decoder's buffer and stay
 * valid until the next tf_dec_next(). seq is the global event order (see
 * docs "Ordering"); stream and seq are set for stream records only. */
struct tf_record {
	enum tf_tag tag;
	uint64_t off;   /* byte offset of the record in the decompressed stream */
	uint32_t stream; /* thread stream id (stream records) */
	uint64_t seq;   /* global sequence number (THREAD ALLOC FREE MODULE UNLOAD
			 * PHASE) */
	union {
		struct {
			uint32_t pid, ppid;
			uint64_t start_unix_ns; /* ns since the epoch (CLOCK_REALTIME) */
			uint32_t page_size;     /* bytes */
			const char *exe;        /* not NUL-terminated */
			uint32_t exe_len;       /* bytes */
			const char *cmdline;    /* arguments, each ended by NUL */
			uint32_t cmdline_len;   /* bytes */
		} process;
		struct {
			uint32_t stream;  /* thread stream id of the payload */
			uint32_t len;     /* payload bytes that follow */
		} chunk;
		struct {
			uint64_t watermark; /* every event with seq < watermark is in
					     * the trace before this record */
			uint64_t time_ns;   /* ns since the trace started (monotonic) */
			uint64_t rss_bytes; /* resident set size; 0 = not sampled */
		} tick;
		struct {
			uint64_t time_ns;  /* ns since the trace started */
			uint64_t n_events; /* ALLOC + FREE records written */
		} end;
		struct {
			uint32_t tid;
			const char *name; /* not NUL-terminated, may be empty */
			uint32_t name_len;
		} thread;
		struct {
			uint32_t id;     /* > 0, unique in the trace */
			uint32_t parent; /* TF_NODE_ROOT or an earlier id */
			uint64_t addr;   /* return address (TF_ADDR_TRUNCATED: cut) */
		} node;
		struct {
			uint8_t kind;   /* enum tf_kind */
			uint32_t node;  /* leaf stack node (innermost frame) */
			uint64_t size;  /* bytes requested */
			uint64_t addr;  /* returned block; 0 = the call failed */
		} alloc;
		struct {
			uint8_t kind;   /* TF_KIND_FREE or TF_KIND_REALLOC */
			uint64_t addr;  /* block released (never 0) */
		} free;
		struct {
			uint32_t id;            /* module id, unique while loaded */
			uint64_t base;          /* load bias (l_addr) */
			const char *path;       /* not NUL-terminated */
			uint32_t path_len;
			const uint8_t *build_id;
			uint32_t build_id_len;  /* bytes, 0 = none */
			uint32_t n_segs;
			struct tf_segment segs[TF_MAX_SEGMENTS];
		} module;
		struct {
			uint32_t id;
		} unload;
		struct {
			uint8_t op;       /* enum tf_phase_op */
			const char *name; /* not NUL-terminated; empty for
					   * TF_PHASE_END, may be empty otherwise */
			uint32_t name_len; /* bytes, <= TF_MAX_PHASE_NAME_BYTES */
		} phase;
	} u;
};

/* Per-stream delta state, identical on both sides: each stream's records
 * are delta-encoded against the previous record of the same stream. */
struct tf_stream_state {
	uint64_t prev_seq;       /* seq of the previous event */
	uint64_t prev_addr;      /* block address of the previous ALLOC/FREE */
	uint64_t prev_node_addr; /* address of the previous NODE */
	uint32_t prev_node_id;   /* id of the previous NODE */
	uint64_t pend_addr;      /* cached FREE not yet in the cache (0: none) */
	uint32_t pend_cls;       /* its size class (0: none) */
};

/* The recent frees of a stream (docs "Cached events"), newest first, as
 * the encoder and the decoder both keep them: a ring of TF_RECENT slots
 * (no shift per FREE). */
struct tf_recent {
	uint64_t addr[TF_RECENT]; /* the i-th newest in tf_recent_at(r, i) */
	uint32_t head;            /* slot of the newest */
	uint32_t n;               /* kept, <= TF_RECENT */
};

_Static_assert((TF_RECENT & (TF_RECENT - 1)) == 0, "the recent frees ring needs a power of two");

/* The i-th newest (0 = newest, i < r->n). */
static inline uint64_t *tf_recent_at(struct tf_recent *r, unsigned i)
{
	return &r->addr[(r->head - i) & (TF_RECENT - 1)];
}

/* Add addr as the newest; the oldest is dropped when TF_RECENT are kept. */
static inline void tf_recent_push(struct tf_recent *r, uint64_t addr)
{
	r->head = (r->head + 1) & (TF_RECENT - 1);
	r->addr[r->head] = addr;
	if (r->n < TF_RECENT)
		r->n++;
}

/* Remove the i-th newest (i < r->n): the newer ones move one place older. */
static inline void tf_recent_remove(struct tf_recent *r, unsigned i)
{
	for (unsigned j = i; j > 0; j--)
		*tf_recent_at(r, j) = *tf_recent_at(r, j - 1);
	r->head = (r->head - 1) & (TF_RECENT - 1);
	r->n--;
}

/* Encoder side of the cached events (docs "Cached events"): which recent
 * ALLOC returned an address, and the free-address stacks the decoder
 * mirrors. Owned by one stream's writer; about 96 KiB; never allocates. */
#define TF_ENC_HASH_BITS 12
struct tf_enc_cache {
	uint64_t n_alloc;        /* ALLOCs encoded with this cache, ever */
	uint64_t start;          /* n_alloc when the current stream began */
	uint64_t hkey[1u << TF_ENC_HASH_BITS]; /* block address */
	uint64_t hval[1u << TF_ENC_HASH_BITS]; /* ALLOC number << 8 | class */
	struct tf_recent recent;    /* recent frees */
	uint8_t cls_n[TF_CLS_COUNT];  /* addresses in each class stack */
	uint8_t cls_base[TF_CLS_COUNT]; /* slot of its bottom entry */
	uint64_t cls[TF_CLS_COUNT][TF_CLS_DEPTH]; /* circular: entry j (0 =
					   * bottom) in slot (base + j) % depth */
};

#endif
