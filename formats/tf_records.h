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
};

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
	uint64_t seq;   /* global sequence number (THREAD ALLOC FREE MODULE UNLOAD) */
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
	} u;
};

/* Per-stream delta state, identical on both sides: each stream's records
 * are delta-encoded against the previous record of the same stream. */
struct tf_stream_state {
	uint64_t prev_seq;       /* seq of the previous event */
	uint64_t prev_addr;      /* block address of the previous ALLOC/FREE */
	uint64_t prev_node_addr; /* address of the previous NODE */
	uint32_t prev_node_id;   /* id of the previous NODE */
};

#endif
