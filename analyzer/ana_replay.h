/* Replay of a trace: merges the per-thread streams in seq order at every
 * TICK and aggregates allocations per stack node. Memory grows with the
 * live allocations and the distinct stacks, never with the trace length:
 * events waiting for a TICK and module records are bounded by the limits
 * below (docs/schema.md "Limits"). */
#ifndef ANA_REPLAY_H
#define ANA_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ana_util.h"
#include "tf_records.h"

#define ANA_NO_PARENT UINT32_MAX /* parent_idx of an outermost node */
#define ANA_PARENT_PENDING (UINT32_MAX - 1) /* parent not defined yet */

/* Most stream events (ALLOC/FREE) queued at once, waiting for a TICK whose
 * watermark releases them (48 bytes each: 768 MiB). Beyond it the replay
 * fails with -CM_E_LIMIT: "more than N events without a tick record". */
#define ANA_MAX_QUEUED_EVENTS (16u << 20)
/* Most MODULE records in one trace, and most bytes of module paths. */
#define ANA_MAX_MODULES (1u << 18)
#define ANA_MAX_MODULE_PATH_BYTES (64u << 20)

/* One stack trie node (24 bytes: a trace can hold millions). Its trie id
 * and flags are in separate arrays: ana_profile_node_id(),
 * ana_profile_node_flags(). */
struct ana_node {
	uint64_t addr;         /* return address (TF_ADDR_TRUNCATED: cut) */
	uint64_t birth_seq;    /* seq of the first replayed ALLOC naming this
				* node or a descendant (0: none): the modules
				* loaded then are the ones its address is in */
	uint32_t parent_idx;   /* index of the parent in profile->nodes,
				* ANA_NO_PARENT, or ANA_PARENT_PENDING while the
				* parent's NODE record has not been read */
	uint32_t site;         /* index in profile->sites, ANA_NO_SITE if no
				* allocation named this node */
};

#define ANA_NO_SITE UINT32_MAX

/* Histograms (docs/schema.md "Histograms"): power-of-two buckets. Bucket b
 * holds the values v with ana_hist_lo(b) <= v <= ana_hist_hi(b): bucket 0
 * is v = 0, bucket b > 0 the values of bit length b (1: 1, 2: 2-3, 3: 4-7,
 * ..., 64: 2^63 and up). */
#define ANA_HIST_BUCKETS 65
enum ana_hist_kind {
	ANA_HIST_SIZE = 0,            /* bytes requested, per successful call */
	ANA_HIST_LIFETIME_MS = 1,     /* ms from allocation to release, per
				       * released block (tick resolution) */
	ANA_HIST_LIFETIME_ALLOCS = 2, /* other allocation calls by the allocating
				       * thread between allocation and release */
	ANA_N_HIST = 3,
};

/* Most phases open at once (all threads); one more fails the replay with
 * -CM_E_LIMIT. Sites named per phase (ana_phase.sites). */
#define ANA_MAX_OPEN_PHASES 1024
#define ANA_PHASE_SITES 5
/* Open phases whose sites are followed for their peak at once (the first
 * ones to begin); the others report no sites (ana_phase.sites_tracked). */
#define ANA_PHASE_TRACKED 16
/* Most bytes of names of PHASE records waiting for a TICK; one more fails
 * the replay with -CM_E_LIMIT. */
#define ANA_MAX_QUEUED_NAME_BYTES (64u << 20)

static inline unsigned ana_hist_bucket(uint64_t v)
{
	return v ? 64u - (unsigned)__builtin_clzll(v) : 0u;
}

static inline uint64_t ana_hist_lo(unsigned b)
{
	return b ? 1ull << (b - 1) : 0;
}

static inline uint64_t ana_hist_hi(unsigned b)
{
	return b == 0 ? 0 : b >= 64 ? UINT64_MAX : (1ull << b) - 1;
}

/* The kind's name in the database's histogram tables (docs/schema.md
 * "Histograms"): "size", "lifetime_ms", "lifetime_allocs"; "?" out of range. */
static inline const char *ana_hist_kind_name(unsigned kind)
{
	static const char *const names[ANA_N_HIST] = { "size", "lifetime_ms", "lifetime_allocs" };

	return kind < ANA_N_HIST ? names[kind] : "?";
}

/* One histogram bucket of the whole program. */
struct ana_hist_cell {
	uint64_t count; /* allocation calls (sizes) or released blocks (lifetimes) */
	uint64_t bytes; /* their bytes requested */
};

/* The aggregates of the allocations whose leaf is one node (a site). See
 * docs/schema.md "Definitions" for peak, leaked and temporary. */
struct ana_site {
	uint64_t alloc_calls;  /* allocation calls, failed ones included */
	uint64_t alloc_bytes;  /* bytes requested by the calls that succeeded */
	uint64_t temp_calls;   /* temporary allocations */
	uint64_t temp_bytes;   /* their bytes */
	uint64_t live_blocks;  /* live now; at the end of replay: leaked */
	uint64_t live_bytes;
	uint64_t peak_blocks;  /* live at the global heap peak (final after replay) */
	uint64_t peak_bytes;
	uint32_t node;         /* index in profile->nodes */
	uint32_t peak_epoch;   /* internal: epoch of the last peak snapshot */
	/* Per-site histograms (ana_profile_site_hist() reads them): the count
	 * of the first bucket seen of each kind inline, the other buckets in
	 * the profile's spill table. */
	uint32_t hist_n[ANA_N_HIST]; /* count in bucket hist_b - 1 */
	uint32_t fit_k;              /* internal: ticks its least-squares sums
				      * cover */
	uint32_t realloc_calls;      /* allocation calls by realloc (saturating) */
	uint32_t realloc_grow_calls; /* of those, growing a block (saturating) */
	uint32_t early_leaked_blocks; /* leaked blocks born in the first 10% of
				       * the run (after the replay; saturating) */
	uint8_t hist_b[ANA_N_HIST];  /* bucket + 1, 0 = none yet */
	double fit_t;                /* internal: the sum of those ticks' times */
	uint64_t early_leaked_bytes;
	/* During the replay the two below hold the site's least-squares sums
	 * over the ticks (sum of tick time * live bytes, sum of live bytes). */
	double growth_rate;          /* least-squares slope of its live bytes over
				      * the ticks, bytes per second (after the
				      * replay) */
	double mean_live_bytes;      /* its live bytes averaged over the ticks */
};

/* A module (ELF object) as recorded by a MODULE record. */
struct ana_module {
	uint32_t trace_id;        /* id in the trace (unique while loaded) */
	char *path;               /* owned; "" replaced by the executable */
	uint8_t build_id[TF_MAX_BUILD_ID_BYTES];
	uint32_t build_id_len;    /* bytes, 0 = none */
	uint64_t base;            /* load bias */
	uint32_t n_segs;
	struct tf_segment *segs;  /* owned, n_segs entries */
	uint64_t load_seq;        /* seq of the MODULE record */
	uint64_t unload_seq;      /* seq of its UNLOAD record, 0 = still loaded;
				   * loaded over [load_seq, unload_seq) */
};

/* Segments of every module sorted by start address, for
 * ana_profile_module_for() (built by ana_profile_index_modules()). */
struct ana_seg_ref {
	uint64_t lo, hi;          /* runtime range [lo, hi) */
	uint32_t module;          /* index in profile->modules */
};

/* A thread stream. */
struct ana_thread {
	uint32_t stream;       /* stream id */
	uint32_t tid;          /* kernel thread id, 0 if no THREAD record */
	char name[17];         /* NUL-terminated, may be empty */
	uint64_t seq;          /* seq of its THREAD record */
	uint64_t n_allocs;     /* allocation calls made on this stream */
};

struct ana_totals {
	uint64_t allocations;        /* allocation calls (failed included) */
	uint64_t failed_allocations; /* calls that returned NULL */
	uint64_t bytes_allocated;    /* bytes requested by successful calls */
	uint64_t frees;              /* free() records (not realloc's) */
	uint64_t temporary;          /* temporary allocations */
	uint64_t temporary_bytes;
	uint64_t peak_heap_bytes;    /* largest live heap */
	uint64_t peak_time_ns;       /* time of the tick that released the peak */
	uint64_t peak_seq;           /* seq of the allocation that reached it */
	uint64_t peak_rss_bytes;     /* largest RSS sample */
	uint64_t leaked_allocations; /* live at the end */
	uint64_t leaked_bytes;
	uint64_t unmatched_frees;    /* frees of addresses not live (allocated
				      * before recording started) */
	uint64_t inconsistent;       /* alloc at an address already live */
	uint64_t late_events;        /* events below an earlier watermark */
	uint64_t n_ticks;
	uint64_t phases;             /* phases begun */
	uint64_t markers;            /* marker records */
	uint64_t unmatched_phase_ends; /* end records with no open phase */
};

/* The result of a replay. Free with ana_profile_free(). */
struct ana_profile {
	uint32_t format_version, format_flags;
	uint32_t pid, ppid, page_size;
	uint64_t start_unix_ns;    /* ns since the epoch */
	char *exe;                 /* owned, NUL-terminated */
	char *command;             /* owned: arguments joined by spaces */
	bool complete;             /* END record seen */
	uint64_t truncated_at;     /* file bytes read when truncation was seen */
	uint64_t duration_ns;      /* END time, else the last tick's */
	uint64_t end_n_events;     /* from the END record */
	uint64_t temporary_gap;    /* option used */
	struct ana_totals totals;

	struct ana_node *nodes;    /* in definition order */
	size_t n_nodes, nodes_cap;
	/* trie id -> index in nodes: id - 1 while ids_indexed is false (the
	 * ids so far are 1, 2, 3... in definition order: a single-threaded
	 * recorder's trace); else node_dense[id] = index + 1 (0: none) while
	 * the ids stay dense (the array has at most 2 * n_nodes + 64 Ki
	 * entries), else node_index. */
	bool ids_indexed;
	uint32_t *node_ids;        /* index -> trie id, once ids_indexed */
	size_t ids_cap;
	uint8_t *node_flags;       /* index -> ANA_USED_* | ANA_NODE_RESOLVED */
	size_t flags_cap;
	uint32_t *node_dense;
	size_t dense_cap;
	bool dense_off;
	struct ana_map32 node_index;

	struct ana_site *sites;    /* in order of first allocation */
	size_t n_sites, sites_cap;

	struct ana_module *modules; /* in load order */
	size_t n_modules, modules_cap;
	size_t module_path_bytes;   /* sum of the paths' lengths */
	struct ana_seg_ref *seg_index; /* NULL until indexed */
	size_t n_seg_index;
	uint64_t seg_max_span;      /* longest segment in seg_index */

	struct ana_thread *threads; /* in first-seen order */
	size_t n_threads, threads_cap;

	/* Whole-program histograms; the lifetimes count released blocks only
	 * (the others are totals.leaked_*). */
	struct ana_hist_cell hist[ANA_N_HIST][ANA_HIST_BUCKETS];
	/* Per-site buckets beyond each site's inline one, sorted by key
	 * (ana_profile_site_hist()); keys (site + 1) << 9 | kind << 7 | bucket. */
	uint64_t *hist_keys, *hist_counts;
	size_t n_hist;

	/* Trie ids of sites to store in any case (the sites named by phases:
	 * ana_profile_mark_sites()); owned, set by the caller. */
	uint32_t *extra_ids;
	size_t n_extra;
};

/* Called after each TICK's events are replayed: time_ns since the trace
 * started, live heap bytes, rss_bytes (0 = not sampled). Returning < 0 stops
 * the replay with that error. */
typedef int (*ana_tick_fn)(void *ctx, uint64_t time_ns, uint64_t heap_bytes,
			   uint64_t rss_bytes);

/* Called once, on the replay's thread, at the first TICK (before its
 * events are replayed) or at the end when there is none: prof holds the
 * metadata and the modules read so far (not to be kept: they change
 * after). */
typedef void (*ana_start_fn)(void *ctx, const struct ana_profile *prof);

/* One allocated block at its end (ana_block_fn): released by free() or
 * realloc, or still live when the trace ends. Times are those of the TICK
 * (or END) record that released the event: tick resolution. */
struct ana_block {
	uint32_t node_id;        /* trie id of the allocation's leaf node (0: no
				  * backtrace) */
	uint32_t stream;         /* stream id of the allocating thread */
	uint64_t addr;
	uint64_t size;           /* bytes requested */
	uint8_t kind;            /* enum tf_kind of the allocation call */
	uint8_t freed_by;        /* enum tf_kind of the release (TF_KIND_FREE or
				  * TF_KIND_REALLOC), or ANA_FREED_LOST: its
				  * address was handed out again with no free
				  * in the trace (the replay's "inconsistent") */
	bool freed;              /* released before the trace ended */
	bool temporary;          /* counted as a temporary allocation */
	uint64_t birth_seq, birth_ns;  /* ns since the trace started */
	uint64_t death_seq, death_ns;  /* 0 when not freed */
	uint64_t lifetime_allocs; /* allocation calls by the allocating thread
				   * in between (when freed) */
};

#define ANA_FREED_LOST 0xffu

/* Called for every block at its release, and at the end of the replay for
 * every block still live (in no particular order). Returning < 0 stops the
 * replay with that error. */
typedef int (*ana_block_fn)(void *ctx, const struct ana_block *b);

/* A phase at its end (ana_phase_fn), or at the end of the trace for one
 * never ended. Phases belong to the thread that began them and nest there.
 * Times are those of the TICK that released the records (tick resolution);
 * RSS figures are the TICK samples (0 = not sampled). Pointers borrow the
 * replay's memory until the callback returns. */
struct ana_phase {
	uint32_t id;             /* 1, 2, 3... in order of begin */
	uint32_t parent;         /* id of the enclosing phase of the same thread, 0: none */
	uint32_t depth;          /* 0 = outermost */
	uint32_t stream;         /* stream id of its thread */
	const char *name;        /* not NUL-terminated */
	uint32_t name_len;
	bool ended;              /* its end record was replayed */
	uint64_t begin_seq, end_seq;   /* end_seq 0 when not ended */
	uint64_t begin_ns, end_ns;     /* ns since the trace started */
	uint64_t alloc_calls;    /* allocation calls by its thread while inside it
				  * (nested phases included) */
	uint64_t alloc_bytes;    /* their bytes requested */
	uint64_t left_blocks;    /* of those blocks, still live at its end */
	uint64_t left_bytes;
	uint64_t heap_begin, heap_end; /* live heap of the process at begin / end */
	uint64_t peak_heap_bytes; /* largest live heap of the process inside it */
	uint64_t peak_ns;         /* time of the tick that released that moment */
	uint64_t rss_begin, rss_end, rss_peak;
	bool sites_tracked;      /* its sites were followed (else n_sites 0):
				  * at most ANA_PHASE_TRACKED phases at once,
				  * within a budget of site entries */
	size_t n_sites;          /* <= ANA_PHASE_SITES */
	uint32_t site_nodes[ANA_PHASE_SITES]; /* the sites whose live bytes grew the
					       * most from its begin to its peak */
	uint64_t site_growth[ANA_PHASE_SITES]; /* by that many bytes */
};

/* A marker record (memrec_mark(), memrec --mark-signal) when replayed. */
struct ana_marker {
	uint32_t index;          /* 1, 2, 3... in replay order */
	uint32_t stream;
	const char *name;        /* not NUL-terminated; borrowed */
	uint32_t name_len;
	uint64_t seq, time_ns;   /* time of the releasing tick */
	uint64_t heap_bytes;     /* live heap right at the marker (exact) */
	uint64_t rss_bytes;      /* RSS sample of the releasing tick */
};

typedef int (*ana_phase_fn)(void *ctx, const struct ana_phase *ph);
typedef int (*ana_marker_fn)(void *ctx, const struct ana_marker *m);

/* Called after each TICK with the file bytes the decoder has read so far
 * (for a progress display). */
typedef void (*ana_progress_fn)(void *ctx, uint64_t file_bytes_read);

struct ana_replay_opts {
	uint64_t temporary_gap; /* other allocations allowed in between (0) */
	ana_tick_fn on_tick;    /* may be NULL */
	void *tick_ctx;
	ana_start_fn on_start;  /* may be NULL; its ctx is tick_ctx */
	ana_block_fn on_block;  /* may be NULL (costs 8 bytes per live block) */
	void *block_ctx;
	ana_progress_fn on_progress; /* may be NULL */
	void *progress_ctx;
	ana_phase_fn on_phase;  /* may be NULL; ctx phase_ctx */
	ana_marker_fn on_marker; /* may be NULL; ctx phase_ctx */
	void *phase_ctx;
	/* Internal overrides for tests; 0 = the ANA_MAX_* defaults. */
	uint64_t max_queued;    /* ANA_MAX_QUEUED_EVENTS */
	uint64_t max_modules;   /* ANA_MAX_MODULES */
};

/* Replay the trace at path. opts may be NULL (defaults). On success *out is
 * a new profile (caller frees with ana_profile_free()); a truncated trace is
 * a success with complete = false. Returns 0, -errno, or -CM_E_* from the
 * decoder or for an inconsistent trace (-CM_E_CORRUPT); errmsg (cap bytes,
 * may be NULL) then holds one line naming the file and the byte offset. */
int ana_replay_path(const char *path, const struct ana_replay_opts *opts,
		    struct ana_profile **out, char *errmsg, size_t cap);

/* Same over memory (data borrowed during the call); name is used in
 * messages. */
int ana_replay_mem(const void *data, size_t len, const char *name,
		   const struct ana_replay_opts *opts, struct ana_profile **out,
		   char *errmsg, size_t cap);

/* The node with trie id, or NULL. */
const struct ana_node *ana_profile_node(const struct ana_profile *prof, uint32_t id);

/* The trie id of node idx (index in prof->nodes; 0 for the synthetic
 * "[no backtrace]" node). */
uint32_t ana_profile_node_id(const struct ana_profile *prof, size_t idx);

/* The flags of node idx: ANA_USED_NODE, ANA_USED_SITE, ANA_NODE_RESOLVED. */
static inline uint8_t ana_profile_node_flags(const struct ana_profile *prof, size_t idx)
{
	return prof->node_flags[idx];
}

/* The aggregates of the node with trie id; all zero (a shared empty site)
 * when no allocation named it or there is no such node. Never NULL. */
const struct ana_site *ana_profile_site(const struct ana_profile *prof, uint32_t id);

/* The trie id of node n's parent (TF_NODE_ROOT for an outermost node; for
 * a node still waiting for its parent, TF_NODE_ROOT too). */
uint32_t ana_profile_parent_id(const struct ana_profile *prof, const struct ana_node *n);

/* Set the ANA_USED_* flags of every node with allocations and its ancestors
 * (every such node is resolved: its whole chain was checked at replay);
 * returns how many nodes are used. Same as ana_profile_mark_sites(prof,
 * ANA_ALL_SITES). */
size_t ana_profile_mark_used(struct ana_profile *prof);

/* Node flags (ana_profile_node_flags()): the node is stored (a site or an
 * ancestor of one); the node is a stored site (both set by
 * ana_profile_mark_sites()); every ancestor of the node is defined. */
#define ANA_USED_NODE 1
#define ANA_USED_SITE 2
#define ANA_NODE_RESOLVED 4
#define ANA_ALL_SITES UINT32_MAX

/* Clear the ANA_USED_* flags everywhere, then mark the sites (nodes with allocation
 * calls) to store — all of them (top = ANA_ALL_SITES), or those among the
 * first top of any of the lists a report shows (the four lists in the
 * database views' order, by their two measures descending, as signed 64-bit
 * integers, then by trie id; the growth and spike lists; the candidates of
 * the insights), and the sites of prof->extra_ids — with ANA_USED_SITE |
 * ANA_USED_NODE, and their ancestors with ANA_USED_NODE. Returns how many
 * nodes are used, or -ENOMEM. */
long ana_profile_mark_sites(struct ana_profile *prof, uint32_t top);

/* The module whose segment holds addr (the most recently loaded one when
 * several did), or NULL. Linear in the number of modules. */
const struct ana_module *ana_profile_module_at(const struct ana_profile *prof,
					       uint64_t addr);

/* Build prof->seg_index (once; modules must not change after). Returns 0
 * or -ENOMEM. */
int ana_profile_index_modules(struct ana_profile *prof);

/* The module a node born at seq (ana_node.birth_seq) finds at addr: among
 * the modules whose segment holds addr, the most recently loaded one whose
 * lifetime [load_seq, unload_seq) covers seq; when none does, the most
 * recently loaded one holding addr; NULL when none holds it. Uses the index
 * when built, else scans every module. */
const struct ana_module *ana_profile_module_for(const struct ana_profile *prof,
						uint64_t addr, uint64_t seq);

/* The histogram of kind (enum ana_hist_kind) of site site_idx (index in
 * prof->sites): counts[b] = allocation calls (sizes) or released blocks
 * (lifetimes) in bucket b. */
void ana_profile_site_hist(const struct ana_profile *prof, uint32_t site_idx,
			   unsigned kind, uint64_t counts[ANA_HIST_BUCKETS]);

/* Free prof and everything it owns; NULL is allowed. */
void ana_profile_free(struct ana_profile *prof);

#endif
