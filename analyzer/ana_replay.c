/* Trace replay (see ana_replay.h). Stream events wait in per-stream FIFO
 * queues until a TICK's watermark releases them; they are then merged by
 * seq with a binary heap over the stream heads (docs/trace-format.md
 * "Ordering"). NODE and MODULE records apply as soon as they are decoded. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ana_feed.h"
#include "ana_replay.h"
#include "cm_err.h"
#include "tf_dec.h"

struct rstream {
	struct tf_event *q;  /* ring, cap a power of two */
	size_t head, len, cap;
	size_t pushed;  /* events queued since the last merge */
	bool active;    /* in the active list */
	bool realloc_pending; /* the last event released a block by realloc */
	uint64_t realloc_old; /* that block's size (bytes) */
	uint64_t bytes;       /* bytes requested by the stream's successful calls */
	struct rphase **stack; /* its open phases, outermost first */
	uint32_t depth, stack_cap;
};

/* A site's figures in an open phase's peak tracking (lazy snapshot, as for
 * the global peak). */
struct psite {
	uint32_t site;     /* index + 1; 0 = empty slot */
	uint32_t epoch;    /* the phase's epoch when at_peak was taken */
	uint64_t begin;    /* live bytes when the phase began */
	uint64_t at_peak;  /* live bytes at the phase's peak of that epoch */
};

/* An open phase. Its left-behind figures are kept for the blocks of which
 * it is the innermost open phase of their thread (a child's are added when
 * the child closes): a free decrements one phase, not all of them. */
struct rphase {
	struct ana_phase ph;    /* figures so far (ph.name owned here) */
	uint32_t si;            /* stream index */
	uint64_t begin_index;   /* the stream's n_allocs at its begin */
	uint64_t begin_bytes;   /* the stream's bytes at its begin */
	uint64_t own_blocks, own_bytes; /* live blocks born inside it and in
					 * its closed children */
	uint32_t epoch;         /* bumped at each new peak inside it */
	bool tracked;           /* its sites are followed (r->tracked) */
	struct psite *sites;    /* open addressing, at most half full */
	size_t sites_cap, n_sites;
};

/* A live allocation (40 bytes). addr 0 marks an empty slot. */
struct live {
	uint64_t addr;
	uint64_t size;        /* bytes requested */
	uint64_t index_kind;  /* the stream's n_allocs right after this call
			       * (low 56 bits: no thread makes 2^56 calls) |
			       * enum tf_kind of the call << 56 */
	uint32_t site;        /* index in prof->sites */
	uint32_t stream_idx;
	uint64_t birth_ns;    /* time of the tick that released it */
};

#define LIVE_INDEX_BITS 56
#define LIVE_INDEX_MASK ((1ull << LIVE_INDEX_BITS) - 1)

static inline uint64_t live_size(const struct live *e)
{
	return e->size;
}

/* The allocating stream's n_allocs right after the call, modulo 2^56
 * (differences are taken modulo 2^56 too). */
static inline uint64_t live_index(const struct live *e)
{
	return e->index_kind & LIVE_INDEX_MASK;
}

static inline uint8_t live_kind(const struct live *e)
{
	return (uint8_t)(e->index_kind >> LIVE_INDEX_BITS);
}

struct replay {
	struct ana_profile *prof;
	const char *name;
	char *errmsg;
	size_t errcap;
	uint64_t gap;
	ana_tick_fn on_tick;
	void *tick_ctx;
	ana_start_fn on_start;    /* called once (then cleared) */

	struct rstream *streams;  /* parallel to prof->threads */
	size_t streams_cap;
	struct ana_map32 stream_index; /* stream id + 1 -> index */
	uint32_t last_stream;     /* stream id + 1 of the last lookup (0: none) */
	uint32_t last_si;         /* its index */
	uint32_t *active;         /* stream indices with queued events */
	size_t n_active, active_cap;
	uint32_t *heap;           /* merge heap of stream indices */
	size_t heap_cap;

	struct live *live;        /* open addressing, linear probing, at most
				   * 3/4 full */
	size_t live_cap, n_live;  /* slots (power of two), entries */
	unsigned live_shift;      /* 64 - log2(live_cap) */
	uint64_t *live_seq;       /* with on_block: birth seq of each slot */
	struct ana_map64 spill;   /* per-site histogram buckets beyond the inline
				   * one: hist_key() -> count */
	ana_block_fn on_block;
	void *block_ctx;
	ana_progress_fn on_progress;
	void *progress_ctx;
	struct ana_feed *feed;

	struct rphase *open[ANA_MAX_OPEN_PHASES]; /* open phases, begin order:
						   * their peaks never increase
						   * along it */
	size_t n_open;
	/* The open phases whose sites are followed for their peak, at most
	 * ANA_PHASE_TRACKED, with a budget of site entries for all of them. */
	struct rphase *tracked[ANA_PHASE_TRACKED];
	size_t n_tracked;
	size_t psite_entries;     /* in all tracked phases' tables */
	uint64_t queued_name_bytes; /* names of queued PHASE records */
	double tick_tsum;         /* sum of the times of the ticks so far (ns) */
	double tick_tsum2;        /* sum of their squares */
	ana_phase_fn on_phase;
	ana_marker_fn on_marker;
	void *phase_ctx;
	uint64_t release_rss;     /* RSS of the tick releasing events (0: none) */

	uint64_t heap_bytes;      /* live bytes now */
	uint64_t live_blocks;
	uint32_t epoch;           /* bumped at every new peak (from 1) */
	uint64_t release_ns;      /* time of the tick releasing events */
	uint64_t last_tick_ns;
	uint64_t watermark;       /* highest watermark seen */
	bool seen_tick;
	uint32_t unknown_idx;     /* index of the node-0 site + 1, 0 = none yet */
	/* node index + 1 -> parent id, for nodes read before their parent */
	struct ana_map32 pending_parent;

	uint64_t n_queued;        /* events in all the stream queues */
	uint64_t max_queued;      /* limit on n_queued */
	uint64_t max_modules;     /* limit on MODULE records */
	struct ana_map32 module_by_id; /* trace id + 1 -> latest index + 1 */
	uint32_t module_max_id;   /* same for trace id UINT32_MAX (index + 1) */
	/* UNLOAD records read before their MODULE record (streams reach the
	 * file out of order): trace id + 1 -> index in unload_seqs + 1. */
	struct ana_map32 pending_unload;
	uint64_t *unload_seqs;    /* 0: applied */
	size_t n_unloads, unloads_cap;
};

static int replay_fail(struct replay *r, int code, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Format "'name': corrupt trace at byte OFF ...: what" into r->errmsg. */
static int replay_fail(struct replay *r, int code, uint64_t off, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (r->errmsg && r->errcap)
		snprintf(r->errmsg, r->errcap,
			 "'%s': %s at byte %llu of the decompressed stream: %s", r->name,
			 cm_strerror(code), (unsigned long long)off, what);
	return code;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 16;
	void *np;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	np = realloc(*p, n * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = n;
	return 0;
}

/* ---- big arrays ------------------------------------------------------------ */

/* The arrays that grow with the trace (nodes, sites, the id index, the live
 * table) are mappings of their own: growing one moves pages instead of
 * copying them, and a freed one goes back to the kernel (the malloc heap
 * would keep the old copies resident). Fresh pages read as zero. */
static size_t vm_round(size_t bytes)
{
	return (bytes + 4095) & ~(size_t)4095;
}

/* Resize the mapping p of old_bytes (p NULL: none yet) to new_bytes. NULL
 * when out of memory (p is still valid then). */
#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer: the heap, where accesses are checked. */
static void *vm_resize(void *p, size_t old_bytes, size_t new_bytes)
{
	char *q = realloc(p, new_bytes);

	if (q && new_bytes > old_bytes)
		memset(q + old_bytes, 0, new_bytes - old_bytes);
	return q;
}

static void vm_free(void *p, size_t bytes)
{
	(void)bytes;
	free(p);
}

static void vm_release(void *p, size_t bytes)
{
	(void)p;
	(void)bytes;
}
#else
static void *vm_resize(void *p, size_t old_bytes, size_t new_bytes)
{
	void *q;

	if (!p)
		q = mmap(NULL, vm_round(new_bytes), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		q = mremap(p, vm_round(old_bytes), vm_round(new_bytes), MREMAP_MAYMOVE);
	return q == MAP_FAILED ? NULL : q;
}

static void vm_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, vm_round(bytes));
}

/* Give back the pages of [p, p + bytes) (a page-aligned part of a mapping
 * that will not be read again). */
static void vm_release(void *p, size_t bytes)
{
	(void)madvise(p, bytes, MADV_DONTNEED);
}
#endif

/* grow() for a mapped array. */
static int vm_grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 1024;
	void *np;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	np = vm_resize(*p, *cap * elem, n * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = n;
	return 0;
}

/* ---- live allocation table --------------------------------------------- */


static inline size_t live_slot(const struct replay *r, uint64_t addr)
{
	return (size_t)((addr * 0x9e3779b97f4a7c15ull) >> r->live_shift);
}

/* The entry of addr, or NULL. */
static struct live *live_find(struct replay *r, uint64_t addr)
{
	if (!r->live_cap)
		return NULL;
	for (size_t i = live_slot(r, addr);; i = (i + 1) & (r->live_cap - 1)) {
		if (r->live[i].addr == addr)
			return &r->live[i];
		if (!r->live[i].addr)
			return NULL;
	}
}

/* Slots of the old table given back at a time while growing (80 KiB: a
 * whole number of pages and of 40-byte slots). */
#define LIVE_RELEASE_SLOTS 2048
_Static_assert(LIVE_RELEASE_SLOTS * sizeof(struct live) % 4096 == 0,
	       "released slots must be whole pages");

/* Double the table (from 1024 slots). Returns 0 or -ENOMEM. */
static int live_grow(struct replay *r)
{
	struct live *old = r->live;
	uint64_t *old_seq = r->live_seq;
	size_t old_cap = r->live_cap;
	size_t cap = old_cap ? old_cap * 2 : 1024;
	unsigned bits = 0;

	r->live = vm_resize(NULL, 0, cap * sizeof(*r->live));
	if (!r->live) {
		r->live = old;
		return -ENOMEM;
	}
	if (r->on_block) {
		r->live_seq = vm_resize(NULL, 0, cap * sizeof(*r->live_seq));
		if (!r->live_seq) {
			vm_free(r->live, cap * sizeof(*r->live));
			r->live = old;
			r->live_seq = old_seq;
			return -ENOMEM;
		}
	}
	while (((size_t)1 << bits) < cap)
		bits++;
	r->live_cap = cap;
	r->live_shift = 64 - bits;
	/* The home slot is the hash's top bits: old slot i's entries go to
	 * about slot 2i, so the new table fills in the order the old one is
	 * read, and the old one's pages are given back as soon as they are
	 * read: the copy never holds both tables whole. */
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].addr) {
			size_t j = live_slot(r, old[i].addr);
			while (r->live[j].addr)
				j = (j + 1) & (cap - 1);
			r->live[j] = old[i];
			if (old_seq)
				r->live_seq[j] = old_seq[i];
		}
		if ((i + 1) % LIVE_RELEASE_SLOTS == 0)
			vm_release(old + i + 1 - LIVE_RELEASE_SLOTS,
				   LIVE_RELEASE_SLOTS * sizeof(*old));
	}
	vm_free(old, old_cap * sizeof(*old));
	vm_free(old_seq, old_cap * sizeof(*old_seq));
	return 0;
}

/* The entry of addr if live (*found = true), else the empty slot where it
 * goes (*found = false; the caller fills it and counts it). The table must
 * have room for one more entry. */
static struct live *live_slot_for(struct replay *r, uint64_t addr, bool *found)
{
	for (size_t i = live_slot(r, addr);; i = (i + 1) & (r->live_cap - 1)) {
		if (r->live[i].addr == addr) {
			*found = true;
			return &r->live[i];
		}
		if (!r->live[i].addr) {
			*found = false;
			return &r->live[i];
		}
	}
}

/* Remove the entry at e (backward-shift deletion: no tombstones). */
static void live_remove(struct replay *r, struct live *e)
{
	size_t mask = r->live_cap - 1;
	size_t i = (size_t)(e - r->live), j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (!r->live[j].addr)
			break;
		size_t k = live_slot(r, r->live[j].addr);
		/* Move j back to i unless its home k lies cyclically in (i, j]. */
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			r->live[i] = r->live[j];
			if (r->live_seq)
				r->live_seq[i] = r->live_seq[j];
			i = j;
		}
	}
	r->live[i].addr = 0;
	r->n_live--;
}

/* ---- nodes and sites ----------------------------------------------------- */

/* Index of the node with trie id: id - 1 while the ids are 1, 2, 3... in
 * definition order (a single-threaded recorder's trace), else through
 * prof->node_dense or node_index. */
static inline bool node_find(const struct ana_profile *p, uint32_t id, uint32_t *idx)
{
	if (!p->ids_indexed) {
		if (id == 0 || id > p->n_nodes)
			return false;
		*idx = id - 1;
		return true;
	}
	if (!p->dense_off) {
		if (id >= p->dense_cap || !p->node_dense[id])
			return false;
		*idx = p->node_dense[id] - 1;
		return true;
	}
	return ana_map32_get(&p->node_index, id, idx) != 0;
}

static int dense_put(struct ana_profile *p, uint32_t id, uint32_t idx);

/* The ids stop being 1, 2, 3...: keep every node's id from now on and
 * index the nodes so far. */
static int ids_index(struct ana_profile *p)
{
	CM_TRY(vm_grow((void **)&p->node_ids, &p->ids_cap, p->n_nodes + 1,
		       sizeof(*p->node_ids)));
	for (size_t i = 0; i < p->n_nodes; i++)
		p->node_ids[i] = (uint32_t)i + 1;
	p->ids_indexed = true;
	for (size_t i = 0; i < p->n_nodes; i++)
		CM_TRY(dense_put(p, (uint32_t)i + 1, (uint32_t)i));
	return 0;
}

/* Append a node with trie id (already indexed by the caller, or 0);
 * returns its index through *idx. */
static int node_append(struct ana_profile *p, uint32_t id, uint32_t parent_idx, uint64_t addr,
		       bool resolved, uint32_t *idx)
{
	size_t i = p->n_nodes;

	CM_TRY(vm_grow((void **)&p->nodes, &p->nodes_cap, i + 1, sizeof(*p->nodes)));
	CM_TRY(vm_grow((void **)&p->node_flags, &p->flags_cap, i + 1, sizeof(*p->node_flags)));
	if (p->ids_indexed) {
		CM_TRY(vm_grow((void **)&p->node_ids, &p->ids_cap, i + 1, sizeof(*p->node_ids)));
		p->node_ids[i] = id;
	}
	p->nodes[i].addr = addr;
	p->nodes[i].birth_seq = 0;
	p->nodes[i].parent_idx = parent_idx;
	p->nodes[i].site = ANA_NO_SITE;
	p->node_flags[i] = resolved ? ANA_NODE_RESOLVED : 0;
	p->n_nodes++;
	*idx = (uint32_t)i;
	return 0;
}

static inline bool node_resolved(const struct ana_profile *p, uint32_t idx)
{
	return p->node_flags[idx] & ANA_NODE_RESOLVED;
}

/* Record trie id (not yet present) -> idx, the index of the node being
 * appended. Returns 0 or -ENOMEM. */
static int node_put(struct ana_profile *p, uint32_t id, uint32_t idx)
{
	if (!p->ids_indexed) {
		if (id == idx + 1)
			return 0;
		CM_TRY(ids_index(p));
	}
	return dense_put(p, id, idx);
}

static int dense_put(struct ana_profile *p, uint32_t id, uint32_t idx)
{
	if (!p->dense_off) {
		if (id < p->dense_cap) {
			p->node_dense[id] = idx + 1;
			return 0;
		}
		if ((uint64_t)id <= 2 * (uint64_t)p->n_nodes + (64u << 10)) {
			size_t cap = p->dense_cap ? p->dense_cap : 1024;
			while (cap <= id)
				cap *= 2;
			uint32_t *d = vm_resize(p->node_dense, p->dense_cap * sizeof(*d),
						cap * sizeof(*d));
			if (!d)
				return -ENOMEM;
			p->node_dense = d;
			p->dense_cap = cap;
			p->node_dense[id] = idx + 1;
			return 0;
		}
		/* Sparse ids: move to the hash map for good. */
		for (size_t i = 0; i < p->dense_cap; i++)
			if (p->node_dense[i])
				CM_TRY(ana_map32_put(&p->node_index, (uint32_t)i,
						     p->node_dense[i] - 1));
		vm_free(p->node_dense, p->dense_cap * sizeof(*p->node_dense));
		p->node_dense = NULL;
		p->dense_cap = 0;
		p->dense_off = true;
	}
	return ana_map32_put(&p->node_index, id, idx);
}

static int phase_site_touch(struct replay *r, struct rphase *ph, uint32_t si, uint64_t live);

/* Lazy peak snapshot: before a site changes, capture its value if it has not
 * been captured since the current peak was set (then it has not changed
 * since the peak either). The same for the open phases' peaks, and the
 * site's least-squares sums for the ticks it held its value. */
static __attribute__((noinline)) int phases_site_touch(struct replay *r, struct ana_site *s)
{
	for (size_t i = 0; i < r->n_tracked;) {
		int rc = phase_site_touch(r, r->tracked[i], (uint32_t)(s - r->prof->sites),
					  s->live_bytes);
		if (rc < 0)
			return rc;
		i += rc == 0; /* 1: the phase stopped being tracked */
	}
	return 0;
}

static inline __attribute__((always_inline)) int site_touch(struct replay *r, struct ana_site *s)
{
	if (s->peak_epoch != r->epoch) {
		s->peak_blocks = s->live_blocks;
		s->peak_bytes = s->live_bytes;
		s->peak_epoch = r->epoch;
	}
	/* Least squares over the ticks (x = tick time t, y = live bytes after
	 * the tick's events), kept lazily: the value is added for the ticks
	 * it was held. mean_live_bytes holds the sum of y, growth_rate the
	 * sum of t * y until finish(); fit_t is the sum of the tick times
	 * before fit_k. */
	uint32_t k = (uint32_t)r->prof->totals.n_ticks;
	if (s->fit_k != k) {
		double y = (double)s->live_bytes;
		s->mean_live_bytes += y * (double)(k - s->fit_k);
		s->growth_rate += y * (r->tick_tsum - s->fit_t);
		s->fit_k = k;
		s->fit_t = r->tick_tsum;
	}
	if (__builtin_expect(r->n_tracked != 0, 0))
		return phases_site_touch(r, s);
	return 0;
}

/* A new global peak: every site's live figures are its peak figures from
 * now until it changes. */
static void new_peak(struct replay *r)
{
	struct ana_profile *p = r->prof;

	if (++r->epoch == UINT32_MAX) {
		/* The epoch wraps (once per 4 Gi peaks): snapshot every site
		 * now and restart the count. */
		r->epoch = 2;
		for (size_t i = 0; i < p->n_sites; i++) {
			p->sites[i].peak_blocks = p->sites[i].live_blocks;
			p->sites[i].peak_bytes = p->sites[i].live_bytes;
			p->sites[i].peak_epoch = 2;
		}
	}
}

/* The site of node idx, created on its first allocation. */
static int site_of(struct replay *r, uint32_t idx, struct ana_site **out)
{
	struct ana_profile *p = r->prof;
	struct ana_node *n = &p->nodes[idx];

	if (n->site == ANA_NO_SITE) {
		if (p->n_sites >= UINT32_MAX - 1)
			return -CM_E_LIMIT;
		CM_TRY(vm_grow((void **)&p->sites, &p->sites_cap, p->n_sites + 1,
			    sizeof(*p->sites)));
		struct ana_site *s = &p->sites[p->n_sites];
		memset(s, 0, sizeof(*s));
		/* A new site held 0 bytes so far: nothing to add before now. */
		s->fit_k = (uint32_t)p->totals.n_ticks;
		s->fit_t = r->tick_tsum;
		s->node = idx;
		s->peak_epoch = r->epoch; /* nothing live at the current peak */
		n->site = (uint32_t)p->n_sites++;
	}
	*out = &p->sites[n->site];
	return 0;
}

static inline int release_block(struct replay *r, const struct live *e)
{
	struct ana_site *s = &r->prof->sites[e->site];
	uint64_t size = live_size(e);

	CM_TRY(site_touch(r, s));
	s->live_blocks--;
	s->live_bytes -= size;
	r->heap_bytes -= size;
	r->live_blocks--;
	/* The innermost open phase of its thread that was open at its birth
	 * holds it (in own_*): phases nest, so their begin indices increase
	 * along the thread's stack. */
	const struct rstream *rs = &r->streams[e->stream_idx];
	if (rs->depth) {
		uint64_t n = r->prof->threads[e->stream_idx].n_allocs, idx = live_index(e);
		uint32_t lo = 0, hi = rs->depth; /* find the last one born before it */
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			uint64_t b = rs->stack[mid]->begin_index;
			if (((idx - b - 1) & LIVE_INDEX_MASK) < ((n - b) & LIVE_INDEX_MASK))
				lo = mid + 1; /* born after this one began */
			else
				hi = mid;
		}
		if (lo) {
			rs->stack[lo - 1]->own_blocks--;
			rs->stack[lo - 1]->own_bytes -= size;
		}
	}
	return 0;
}

/* ---- histograms -------------------------------------------------------- */

static inline uint64_t hist_key(uint32_t site, unsigned kind, unsigned bucket)
{
	return ((uint64_t)site + 1) << 9 | (uint64_t)kind << 7 | bucket;
}

/* Count one value of kind in bucket b, for the program and for site s
 * (index si). Returns 0 or -ENOMEM. */
static inline int hist_add(struct replay *r, struct ana_site *s, uint32_t si, unsigned kind,
			   unsigned b, uint64_t bytes)
{
	r->prof->hist[kind][b].count++;
	r->prof->hist[kind][b].bytes += bytes;
	if (s->hist_b[kind] == b + 1 && s->hist_n[kind] != UINT32_MAX) {
		s->hist_n[kind]++;
		return 0;
	}
	if (!s->hist_b[kind]) {
		s->hist_b[kind] = (uint8_t)(b + 1);
		s->hist_n[kind] = 1;
		return 0;
	}
	int fresh;
	uint64_t *count = ana_map64_slot(&r->spill, hist_key(si, kind, b), &fresh);
	if (!count)
		return -ENOMEM;
	++*count;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Move the spill table into the profile, sorted by key. */
static int spill_finish(struct replay *r)
{
	struct ana_profile *p = r->prof;
	struct ana_map64 *t = &r->spill;
	size_t n = 0;

	if (!t->n)
		return 0;
	/* Pack (key, count) pairs into keys[] as 2 words each, sort, split. */
	uint64_t *pairs = malloc(t->n * 2 * sizeof(*pairs));
	if (!pairs)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (t->keys[i]) {
			pairs[2 * n] = t->keys[i];
			pairs[2 * n + 1] = t->vals[i];
			n++;
		}
	qsort(pairs, n, 2 * sizeof(*pairs), u64_cmp);
	p->hist_keys = t->keys; /* reuse the arrays */
	p->hist_counts = t->vals;
	for (size_t i = 0; i < n; i++) {
		p->hist_keys[i] = pairs[2 * i];
		p->hist_counts[i] = pairs[2 * i + 1];
	}
	p->n_hist = n;
	memset(t, 0, sizeof(*t));
	free(pairs);
	return 0;
}

void ana_profile_site_hist(const struct ana_profile *prof, uint32_t site_idx,
			   unsigned kind, uint64_t counts[ANA_HIST_BUCKETS])
{
	const struct ana_site *s = &prof->sites[site_idx];
	uint64_t lo = hist_key(site_idx, kind, 0);
	size_t a = 0, b = prof->n_hist;

	memset(counts, 0, ANA_HIST_BUCKETS * sizeof(*counts));
	if (kind >= ANA_N_HIST)
		return;
	if (s->hist_b[kind])
		counts[s->hist_b[kind] - 1] += s->hist_n[kind];
	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (prof->hist_keys[m] < lo)
			a = m + 1;
		else
			b = m;
	}
	for (; a < prof->n_hist && prof->hist_keys[a] < lo + ANA_HIST_BUCKETS; a++)
		counts[prof->hist_keys[a] - lo] += prof->hist_counts[a];
}

/* Link the ancestors of node idx, which must all be defined by now (NODE
 * records from other streams may precede their parents in the file; the
 * TICK that releases an event guarantees its whole stack is in). */
static int resolve_node(struct replay *r, uint32_t idx, const struct tf_event *ev)
{
	struct ana_profile *p = r->prof;
	uint32_t i = idx, pid;

	while (i != ANA_NO_PARENT && !node_resolved(p, i)) {
		struct ana_node *n = &p->nodes[i];
		if (n->parent_idx == ANA_PARENT_PENDING) {
			pid = 0;
			(void)ana_map32_get(&r->pending_parent, i + 1, &pid);
			if (!node_find(p, pid, &n->parent_idx)) {
				n->parent_idx = ANA_PARENT_PENDING;
				return replay_fail(r, -CM_E_CORRUPT, ev->off,
						   "alloc (seq %llu) uses stack node %u whose "
						   "ancestor %u is undefined",
						   (unsigned long long)ev->seq,
						   ana_profile_node_id(p, i), pid);
			}
		}
		i = n->parent_idx;
	}
	/* The chain is complete: mark it. */
	for (i = idx; i != ANA_NO_PARENT && !node_resolved(p, i); i = p->nodes[i].parent_idx)
		p->node_flags[i] |= ANA_NODE_RESOLVED;
	return 0;
}

static void block_of(const struct replay *r, const struct live *e, struct ana_block *b);
static void phases_alloc(struct replay *r, struct rstream *rs, uint64_t size);

static int replay_alloc(struct replay *r, uint32_t si, const struct tf_event *ev)
{
	struct ana_profile *p = r->prof;
	struct ana_thread *t = &p->threads[si];
	struct ana_site *site;
	uint32_t idx;

	if (ev->node == 0) {
		/* No backtrace could be taken (docs/trace-format.md): one
		 * synthetic site with id 0 and address 0, "[no backtrace]". */
		if (!r->unknown_idx) {
			if (p->n_nodes >= UINT32_MAX - 1)
				return replay_fail(r, -CM_E_LIMIT, ev->off,
						   "too many stack nodes");
			/* Its id 0 ends the ids' 1, 2, 3... order. */
			if (!p->ids_indexed)
				CM_TRY(ids_index(p));
			CM_TRY(node_append(p, 0, ANA_NO_PARENT, 0, true, &idx));
			r->unknown_idx = idx + 1;
		}
		idx = r->unknown_idx - 1;
	} else if (!node_find(p, ev->node, &idx))
		return replay_fail(r, -CM_E_CORRUPT, ev->off,
				   "alloc (seq %llu) references undefined stack node %u",
				   (unsigned long long)ev->seq, ev->node);
	struct ana_node *n = &p->nodes[idx];

	if (!node_resolved(p, idx))
		CM_TRY(resolve_node(r, idx, ev));
	/* Birth of the node and its unborn ancestors: the modules loaded now
	 * are the ones their addresses belong to. An ancestor of a born node
	 * is born, so each node is visited once. */
	for (uint32_t i = idx; i != ANA_NO_PARENT && !p->nodes[i].birth_seq;
	     i = p->nodes[i].parent_idx)
		p->nodes[i].birth_seq = ev->seq;
	if (site_of(r, idx, &site) < 0)
		return replay_fail(r, -CM_E_LIMIT, ev->off, "too many allocation sites");
	p->totals.allocations++;
	t->n_allocs++;
	site->alloc_calls++;
	struct rstream *rs = &r->streams[si];
	if (ev->kind == TF_KIND_REALLOC) {
		if (site->realloc_calls != UINT32_MAX)
			site->realloc_calls++;
		if (rs->realloc_pending && ev->addr && ev->size > rs->realloc_old &&
		    site->realloc_grow_calls != UINT32_MAX)
			site->realloc_grow_calls++;
	}
	rs->realloc_pending = false;
	if (!ev->addr) {
		p->totals.failed_allocations++;
		return 0;
	}
	p->totals.bytes_allocated += ev->size;
	site->alloc_bytes += ev->size;
	rs->bytes += ev->size;

	if ((r->n_live + 1) * 4 > r->live_cap * 3)
		CM_TRY(live_grow(r));
	bool found;
	struct live *e = live_slot_for(r, ev->addr, &found);
	if (found) {
		/* A free we never saw: drop the old block. */
		p->totals.inconsistent++;
		if (r->on_block) {
			struct ana_block b;
			block_of(r, e, &b);
			b.freed = true;
			b.freed_by = ANA_FREED_LOST;
			b.death_seq = ev->seq;
			b.death_ns = r->release_ns;
			b.lifetime_allocs = (p->threads[e->stream_idx].n_allocs - live_index(e) -
					     (e->stream_idx == si)) & LIVE_INDEX_MASK;
			CM_TRY(r->on_block(r->block_ctx, &b));
		}
		CM_TRY(release_block(r, e));
	} else {
		r->n_live++;
	}
	e->addr = ev->addr;
	e->size = ev->size;
	e->index_kind = (t->n_allocs & LIVE_INDEX_MASK) | (uint64_t)ev->kind << LIVE_INDEX_BITS;
	e->site = n->site;
	e->stream_idx = si;
	e->birth_ns = r->release_ns;
	if (r->live_seq)
		r->live_seq[e - r->live] = ev->seq;
	if (hist_add(r, site, n->site, ANA_HIST_SIZE, ana_hist_bucket(ev->size), ev->size) < 0)
		return -ENOMEM;
	CM_TRY(site_touch(r, site));
	site->live_blocks++;
	site->live_bytes += ev->size;
	r->heap_bytes += ev->size;
	r->live_blocks++;
	if (r->heap_bytes > p->totals.peak_heap_bytes) {
		p->totals.peak_heap_bytes = r->heap_bytes;
		p->totals.peak_time_ns = r->release_ns;
		p->totals.peak_seq = ev->seq;
		new_peak(r);
	}
	if (__builtin_expect(r->n_open != 0, 0))
		phases_alloc(r, rs, ev->size);
	return 0;
}

/* Describe the live block e for on_block. */
static void block_of(const struct replay *r, const struct live *e, struct ana_block *b)
{
	const struct ana_profile *p = r->prof;

	memset(b, 0, sizeof(*b));
	b->node_id = ana_profile_node_id(p, p->sites[e->site].node);
	b->stream = p->threads[e->stream_idx].stream;
	b->addr = e->addr;
	b->size = live_size(e);
	b->kind = live_kind(e);
	b->birth_seq = r->live_seq[e - r->live];
	b->birth_ns = e->birth_ns;
}

static int replay_free(struct replay *r, uint32_t si, const struct tf_event *ev)
{
	struct ana_profile *p = r->prof;
	struct live *e;

	if (ev->kind == TF_KIND_FREE)
		p->totals.frees++;
	e = live_find(r, ev->addr);
	r->streams[si].realloc_pending = false;
	if (!e) {
		p->totals.unmatched_frees++;
		return 0;
	}
	uint64_t birth_ns = e->birth_ns, size = live_size(e);
	if (ev->kind == TF_KIND_REALLOC) {
		r->streams[si].realloc_pending = true;
		r->streams[si].realloc_old = size;
	}
	struct ana_site *s = &p->sites[e->site];
	uint64_t allocs = (p->threads[e->stream_idx].n_allocs - live_index(e)) & LIVE_INDEX_MASK;
	uint64_t life_ns = r->release_ns > birth_ns ? r->release_ns - birth_ns : 0;
	/* heaptrack's definition: a block released (by free or by realloc) with
	 * no other allocation by its thread in between is temporary. */
	bool temp = allocs <= r->gap;
	if (temp) {
		s->temp_calls++;
		s->temp_bytes += size;
		p->totals.temporary++;
		p->totals.temporary_bytes += size;
	}
	if (hist_add(r, s, e->site, ANA_HIST_LIFETIME_MS, ana_hist_bucket(life_ns / 1000000),
		     size) < 0 ||
	    hist_add(r, s, e->site, ANA_HIST_LIFETIME_ALLOCS, ana_hist_bucket(allocs),
		     size) < 0)
		return -ENOMEM;
	if (r->on_block) {
		struct ana_block b;
		block_of(r, e, &b);
		b.freed = true;
		b.freed_by = ev->kind;
		b.temporary = temp;
		b.death_seq = ev->seq;
		b.death_ns = r->release_ns;
		b.lifetime_allocs = allocs;
		CM_TRY(r->on_block(r->block_ctx, &b));
	}
	CM_TRY(release_block(r, e));
	live_remove(r, e);
	return 0;
}

/* ---- phases and markers --------------------------------------------------- */

/* Site entries all tracked phases may hold together: a few per site, and
 * a floor for small traces (a trace must not make them grow without
 * bound: 1024 phases open over every site would be 1024 x sites). */
static size_t psite_budget(const struct replay *r)
{
	return 4 * r->prof->n_sites + 65536;
}

/* Stop following phase ph's sites (it reports none). */
static void phase_untrack(struct replay *r, struct rphase *ph)
{
	for (size_t i = 0; i < r->n_tracked; i++)
		if (r->tracked[i] == ph) {
			memmove(&r->tracked[i], &r->tracked[i + 1],
				(r->n_tracked - i - 1) * sizeof(r->tracked[0]));
			r->n_tracked--;
			break;
		}
	r->psite_entries -= ph->n_sites;
	free(ph->sites);
	ph->sites = NULL;
	ph->sites_cap = ph->n_sites = 0;
	ph->tracked = false;
}

/* Before site si (live bytes live) changes inside the tracked phase ph:
 * remember its live bytes at the phase's begin (first change) and at the
 * phase's current peak (first change since that peak). Returns 0, 1 when
 * the budget ran out (ph is no longer tracked), or -ENOMEM. */
static int phase_site_touch(struct replay *r, struct rphase *ph, uint32_t si, uint64_t live)
{
	if ((ph->n_sites + 1) * 2 > ph->sites_cap) {
		size_t cap = ph->sites_cap ? ph->sites_cap * 2 : 64;
		if (r->psite_entries + 1 > psite_budget(r)) {
			phase_untrack(r, ph);
			return 1;
		}
		struct psite *ns = calloc(cap, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < ph->sites_cap; i++) {
			if (!ph->sites[i].site)
				continue;
			size_t j = (ph->sites[i].site * 0x9e3779b1u) & (cap - 1);
			while (ns[j].site)
				j = (j + 1) & (cap - 1);
			ns[j] = ph->sites[i];
		}
		free(ph->sites);
		ph->sites = ns;
		ph->sites_cap = cap;
	}
	size_t j = ((si + 1) * 0x9e3779b1u) & (ph->sites_cap - 1);
	while (ph->sites[j].site && ph->sites[j].site != si + 1)
		j = (j + 1) & (ph->sites_cap - 1);
	struct psite *e = &ph->sites[j];
	if (!e->site) {
		if (r->psite_entries + 1 > psite_budget(r)) {
			phase_untrack(r, ph);
			return 1;
		}
		/* Unchanged since the phase began: live now is its value then,
		 * and at every peak of the phase so far. */
		e->site = si + 1;
		e->begin = e->at_peak = live;
		e->epoch = ph->epoch;
		ph->n_sites++;
		r->psite_entries++;
	} else if (e->epoch != ph->epoch) {
		e->at_peak = live;
		e->epoch = ph->epoch;
	}
	return 0;
}

/* A new peak inside phase ph: its epoch moves on (the sites' lazy
 * snapshots, as for the global peak). Before the epoch would wrap, every
 * site entry is brought to the current peak's value. */
static void phase_new_peak(struct replay *r, struct rphase *ph)
{
	if (ph->epoch == UINT32_MAX - 1) {
		for (size_t i = 0; i < ph->sites_cap; i++) {
			struct psite *e = &ph->sites[i];
			if (!e->site)
				continue;
			if (e->epoch != ph->epoch)
				e->at_peak = r->prof->sites[e->site - 1].live_bytes;
			e->epoch = 1;
		}
		ph->epoch = 1;
	}
	ph->epoch++;
}

/* After an allocation of size bytes on stream rs (the heap already
 * counts it): the innermost open phase of the stream holds it, and the
 * phases whose peak it passes follow. Their peaks never increase along
 * the open list (a later phase saw less of the run), so those are a tail
 * of it. */
static void phases_alloc(struct replay *r, struct rstream *rs, uint64_t size)
{
	if (rs->depth) {
		rs->stack[rs->depth - 1]->own_blocks++;
		rs->stack[rs->depth - 1]->own_bytes += size;
	}
	for (size_t i = r->n_open; i-- > 0;) {
		struct rphase *ph = r->open[i];
		if (r->heap_bytes <= ph->ph.peak_heap_bytes)
			break;
		ph->ph.peak_heap_bytes = r->heap_bytes;
		ph->ph.peak_ns = r->release_ns;
		phase_new_peak(r, ph);
	}
}

static void phase_free(struct rphase *ph)
{
	if (!ph)
		return;
	free((char *)ph->ph.name);
	free(ph->sites);
	free(ph);
}

/* Finish the innermost open phase of stream si (ended by its record, or at
 * the end of the trace), report it and remove it. */
static int phase_close(struct replay *r, uint32_t si, bool ended, uint64_t seq)
{
	struct rstream *rs = &r->streams[si];
	struct rphase *rp = rs->stack[rs->depth - 1];
	struct ana_phase *ph = &rp->ph;
	const struct ana_site *sites = r->prof->sites;
	size_t i;
	int rc = 0;

	ph->ended = ended;
	ph->end_seq = ended ? seq : 0;
	ph->end_ns = r->release_ns;
	ph->heap_end = r->heap_bytes;
	ph->rss_end = r->release_rss;
	if (r->release_rss > ph->rss_peak)
		ph->rss_peak = r->release_rss;
	ph->alloc_calls = r->prof->threads[si].n_allocs - rp->begin_index;
	ph->alloc_bytes = rs->bytes - rp->begin_bytes;
	ph->left_blocks = rp->own_blocks;
	ph->left_bytes = rp->own_bytes;
	ph->sites_tracked = rp->tracked;
	/* The sites that grew most from the begin to the phase's peak. */
	for (size_t j = 0; j < rp->sites_cap; j++) {
		const struct psite *e = &rp->sites[j];
		if (!e->site)
			continue;
		uint64_t at = e->epoch == rp->epoch ? e->at_peak : sites[e->site - 1].live_bytes;
		if (at <= e->begin)
			continue;
		uint64_t g = at - e->begin;
		uint32_t node = ana_profile_node_id(r->prof, sites[e->site - 1].node);
		size_t k = ph->n_sites;
		if (k == ANA_PHASE_SITES) {
			if (g <= ph->site_growth[k - 1])
				continue;
			k--;
		} else {
			ph->n_sites++;
		}
		while (k > 0 && (ph->site_growth[k - 1] < g ||
				 (ph->site_growth[k - 1] == g && ph->site_nodes[k - 1] > node))) {
			ph->site_growth[k] = ph->site_growth[k - 1];
			ph->site_nodes[k] = ph->site_nodes[k - 1];
			k--;
		}
		ph->site_growth[k] = g;
		ph->site_nodes[k] = node;
	}
	if (r->on_phase)
		rc = r->on_phase(r->phase_ctx, ph);
	/* What it holds is its parent's now. */
	rs->depth--;
	if (rs->depth) {
		rs->stack[rs->depth - 1]->own_blocks += rp->own_blocks;
		rs->stack[rs->depth - 1]->own_bytes += rp->own_bytes;
	}
	if (rp->tracked)
		phase_untrack(r, rp);
	for (i = 0; i < r->n_open && r->open[i] != rp; i++)
		;
	memmove(&r->open[i], &r->open[i + 1], (r->n_open - i - 1) * sizeof(r->open[0]));
	r->n_open--;
	phase_free(rp);
	return rc;
}

/* A PHASE record in seq order: ev->kind is the op, ev->addr the name
 * (owned by the caller's copy; taken over here), ev->size its length. */
static int replay_phase(struct replay *r, uint32_t si, const struct tf_event *ev)
{
	struct ana_profile *p = r->prof;
	struct rstream *rs = &r->streams[si];
	char *name = (char *)(uintptr_t)ev->addr;
	int rc = 0;

	switch (ev->kind) {
	case TF_PHASE_BEGIN: {
		if (r->n_open == ANA_MAX_OPEN_PHASES) {
			free(name);
			return replay_fail(r, -CM_E_LIMIT, ev->off, "more than %u open phases",
					   ANA_MAX_OPEN_PHASES);
		}
		struct rphase *rp = calloc(1, sizeof(*rp));
		size_t cap = rs->stack_cap;
		if (!rp || grow((void **)&rs->stack, &cap, rs->depth + 1, sizeof(*rs->stack)) < 0) {
			free(rp);
			free(name);
			return -ENOMEM;
		}
		rs->stack_cap = (uint32_t)cap;
		struct ana_phase *ph = &rp->ph;
		ph->id = (uint32_t)++p->totals.phases;
		if (rs->depth) {
			ph->parent = rs->stack[rs->depth - 1]->ph.id;
			ph->depth = rs->stack[rs->depth - 1]->ph.depth + 1;
		}
		ph->stream = p->threads[si].stream;
		ph->name = name;
		ph->name_len = (uint32_t)ev->size;
		ph->begin_seq = ev->seq;
		ph->begin_ns = r->release_ns;
		ph->heap_begin = ph->peak_heap_bytes = r->heap_bytes;
		ph->peak_ns = r->release_ns;
		ph->rss_begin = ph->rss_peak = r->release_rss;
		rp->si = si;
		rp->begin_index = p->threads[si].n_allocs;
		rp->begin_bytes = rs->bytes;
		rp->epoch = 1;
		if (r->n_tracked < ANA_PHASE_TRACKED) {
			rp->tracked = true;
			r->tracked[r->n_tracked++] = rp;
		}
		rs->stack[rs->depth++] = rp;
		r->open[r->n_open++] = rp;
		return 0;
	}
	case TF_PHASE_END:
		free(name);
		if (rs->depth)
			return phase_close(r, si, true, ev->seq);
		p->totals.unmatched_phase_ends++;
		return 0;
	default: {
		struct ana_marker m = {
			.index = (uint32_t)++p->totals.markers,
			.stream = p->threads[si].stream,
			.name = name ? name : "",
			.name_len = (uint32_t)ev->size,
			.seq = ev->seq,
			.time_ns = r->release_ns,
			.heap_bytes = r->heap_bytes,
			.rss_bytes = r->release_rss,
		};
		if (r->on_marker)
			rc = r->on_marker(r->phase_ctx, &m);
		free(name);
		return rc;
	}
	}
}

/* ---- streams and merging ---------------------------------------------- */

/* Events between the prefetch of a live-table slot and its use. */
#define PREFETCH_AHEAD 16
/* ... when the live table is larger than the caches hold (slots; 40 bytes
 * each: 2.5 MiB). */
#define PREFETCH_MIN_SLOTS 65536

static int stream_get(struct replay *r, uint32_t stream, uint32_t *out)
{
	struct ana_profile *p = r->prof;
	uint32_t idx;

	if (r->last_stream == stream + 1) {
		*out = r->last_si;
		return 0;
	}
	if (ana_map32_get(&r->stream_index, stream + 1, &idx)) {
		r->last_stream = stream + 1;
		r->last_si = idx;
		*out = idx;
		return 0;
	}
	idx = (uint32_t)p->n_threads;
	CM_TRY(grow((void **)&p->threads, &p->threads_cap, p->n_threads + 1,
		    sizeof(*p->threads)));
	/* streams[] grows in step with threads[] (only when threads[] did:
	 * a realloc per stream would copy the array once per thread) */
	if (r->streams_cap < p->threads_cap) {
		struct rstream *ns = realloc(r->streams, p->threads_cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		r->streams = ns;
		r->streams_cap = p->threads_cap;
	}
	CM_TRY(ana_map32_put(&r->stream_index, stream + 1, idx));
	memset(&p->threads[idx], 0, sizeof(p->threads[idx]));
	memset(&r->streams[idx], 0, sizeof(r->streams[idx]));
	p->threads[idx].stream = stream;
	p->n_threads++;
	r->last_stream = stream + 1;
	r->last_si = idx;
	*out = idx;
	return 0;
}

/* Give stream s's ring cap slots (a power of two >= s->len). */
static int ring_resize(struct rstream *s, size_t cap)
{
	struct tf_event *q = malloc(cap * sizeof(*q));

	if (!q)
		return -ENOMEM;
	for (size_t i = 0; i < s->len; i++)
		q[i] = s->q[(s->head + i) & (s->cap - 1)];
	free(s->q);
	s->q = q;
	s->cap = cap;
	s->head = 0;
	return 0;
}

static int queue_push(struct replay *r, const struct tf_event *rec)
{
	uint32_t si;
	struct rstream *s;
	struct tf_event *ev;

	CM_TRY(stream_get(r, rec->stream, &si));
	s = &r->streams[si];
	if (rec->seq < r->watermark)
		r->prof->totals.late_events++;
	if (r->n_queued >= r->max_queued)
		return replay_fail(r, -CM_E_LIMIT, rec->off,
				   "more than %llu events without a tick record "
				   "releasing them",
				   (unsigned long long)r->max_queued);
	if (s->len == s->cap)
		CM_TRY(ring_resize(s, s->cap ? s->cap * 2 : 4));
	ev = &s->q[(s->head + s->len) & (s->cap - 1)];
	*ev = *rec;
	s->len++;
	s->pushed++;
	r->n_queued++;
	if (!s->active) {
		CM_TRY(grow((void **)&r->active, &r->active_cap, r->n_active + 1,
			    sizeof(*r->active)));
		r->active[r->n_active++] = si;
		s->active = true;
	}
	return 0;
}

/* Queue a run of n ALLOC and FREE events (ana_feed_events()): each
 * stream's part copied at once, as queue_push() would one by one. */
static int queue_push_run(struct replay *r, const struct tf_event *evs, size_t n)
{
	while (n) {
		uint32_t si;
		size_t k = 1;
		while (k < n && evs[k].stream == evs[0].stream)
			k++;
		if (r->n_queued + k > r->max_queued) {
			/* The limit is reached inside: one by one, for its error. */
			for (size_t j = 0; j < k; j++)
				CM_TRY(queue_push(r, &evs[j]));
			evs += k;
			n -= k;
			continue;
		}
		CM_TRY(stream_get(r, evs[0].stream, &si));
		struct rstream *s = &r->streams[si];
		/* A stream's seqs increase: the late ones come first. */
		for (size_t j = 0; j < k && evs[j].seq < r->watermark; j++)
			r->prof->totals.late_events++;
		if (s->cap - s->len < k) {
			size_t cap = s->cap ? s->cap : 4;
			while (cap - s->len < k)
				cap *= 2;
			CM_TRY(ring_resize(s, cap));
		}
		size_t t = (s->head + s->len) & (s->cap - 1), first = s->cap - t;
		if (first > k)
			first = k;
		memcpy(&s->q[t], evs, first * sizeof(*evs));
		memcpy(s->q, evs + first, (k - first) * sizeof(*evs));
		s->len += k;
		s->pushed += k;
		r->n_queued += k;
		if (!s->active) {
			CM_TRY(grow((void **)&r->active, &r->active_cap, r->n_active + 1,
				    sizeof(*r->active)));
			r->active[r->n_active++] = si;
			s->active = true;
		}
		evs += k;
		n -= k;
	}
	return 0;
}

static uint64_t head_seq(const struct replay *r, uint32_t si)
{
	const struct rstream *s = &r->streams[si];

	return s->q[s->head].seq;
}

static void heap_down(struct replay *r, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && head_seq(r, r->heap[l]) < head_seq(r, r->heap[m]))
			m = l;
		if (l + 1 < n && head_seq(r, r->heap[l + 1]) < head_seq(r, r->heap[m]))
			m = l + 1;
		if (m == i)
			return;
		uint32_t t = r->heap[i];
		r->heap[i] = r->heap[m];
		r->heap[m] = t;
		i = m;
	}
}

/* Replay every queued event with seq < limit, in seq order. */
static int merge(struct replay *r, uint64_t limit)
{
	size_t n = 0;
	int rc = 0;

	CM_TRY(grow((void **)&r->heap, &r->heap_cap, r->n_active, sizeof(*r->heap)));
	for (size_t i = 0; i < r->n_active; i++) {
		uint32_t si = r->active[i];
		if (r->streams[si].len && head_seq(r, si) < limit)
			r->heap[n++] = si;
	}
	for (size_t i = n / 2; i-- > 0;)
		heap_down(r, n, i);
	while (n) {
		uint32_t si = r->heap[0];
		struct rstream *s = &r->streams[si];
		/* Drain this stream while it holds the smallest seq: up to the
		 * next stream's head (the smaller child of the root). */
		uint64_t bound = limit;
		if (n > 1 && head_seq(r, r->heap[1]) < bound)
			bound = head_seq(r, r->heap[1]);
		if (n > 2 && head_seq(r, r->heap[2]) < bound)
			bound = head_seq(r, r->heap[2]);
		do {
			const struct tf_event *ev = &s->q[s->head];

			/* The live table is far bigger than the caches: ask
			 * for the slot of an event a little ahead now. */
			if (r->live_cap >= PREFETCH_MIN_SLOTS && s->len > PREFETCH_AHEAD)
				__builtin_prefetch(
					&r->live[live_slot(r, s->q[(s->head + PREFETCH_AHEAD) &
								   (s->cap - 1)].addr)],
					1);
			if (ev->tag == TF_TAG_ALLOC)
				rc = replay_alloc(r, si, ev);
			else if (ev->tag == TF_TAG_FREE)
				rc = replay_free(r, si, ev);
			else {
				/* The name is replay_phase()'s from here on. */
				struct tf_event pev = *ev;
				s->q[s->head].addr = 0;
				r->queued_name_bytes -= pev.size;
				rc = replay_phase(r, si, &pev);
			}
			if (rc < 0)
				return rc;
			s->head = (s->head + 1) & (s->cap - 1);
			s->len--;
			r->n_queued--;
		} while (s->len && s->q[s->head].seq < bound);
		if (!s->len || head_seq(r, si) >= limit)
			r->heap[0] = r->heap[--n];
		heap_down(r, n, 0);
	}
	/* Drop the streams that ran empty from the active list. A ring keeps
	 * its slots for the next round while it was at least a quarter full
	 * in this one (events queued since the last merge, or still queued);
	 * otherwise it shrinks (freed when empty). A ring then never holds
	 * more than 4 slots per event queued in one round, which the queue
	 * limit bounds (docs/schema.md "Limits"). */
	size_t k = 0;
	for (size_t i = 0; i < r->n_active; i++) {
		uint32_t si = r->active[i];
		struct rstream *s = &r->streams[si];
		size_t want = s->len > s->pushed ? s->len : s->pushed;
		s->pushed = 0;
		if (s->len)
			r->active[k++] = si;
		else
			s->active = false;
		if (want >= s->cap / 4)
			continue;
		if (!s->len) {
			free(s->q);
			s->q = NULL;
			s->cap = 0;
			s->head = 0;
		} else {
			size_t cap = 4;
			while (cap < 2 * s->len)
				cap *= 2;
			/* Failing to shrink is harmless. */
			(void)ring_resize(s, cap);
		}
	}
	r->n_active = k;
	return 0;
}

/* ---- metadata records -------------------------------------------------- */

static int on_process(struct replay *r, const struct tf_record *rec)
{
	struct ana_profile *p = r->prof;
	const char *cl = rec->u.process.cmdline;
	uint32_t len = rec->u.process.cmdline_len;

	p->pid = rec->u.process.pid;
	p->ppid = rec->u.process.ppid;
	p->start_unix_ns = rec->u.process.start_unix_ns;
	p->page_size = rec->u.process.page_size;
	free(p->exe);
	free(p->command);
	p->exe = ana_strndup(rec->u.process.exe, rec->u.process.exe_len);
	/* Arguments end with NUL each: join them with spaces. */
	while (len && cl[len - 1] == 0)
		len--;
	p->command = ana_strndup(cl, len);
	if (!p->exe || !p->command)
		return -ENOMEM;
	for (uint32_t i = 0; i < len; i++)
		if (p->command[i] == 0)
			p->command[i] = ' ';
	return 0;
}

static int on_node(struct replay *r, const struct tf_record *rec)
{
	struct ana_profile *p = r->prof;
	uint32_t id = rec->u.node.id, parent = rec->u.node.parent, pidx = ANA_NO_PARENT;
	uint32_t dummy, idx;

	if (id == 0 || node_find(p, id, &dummy))
		return replay_fail(r, -CM_E_CORRUPT, rec->off,
				   "stack node %u defined twice", id);
	/* The parent may come later, from another stream: linked at replay. */
	if (parent != TF_NODE_ROOT && !node_find(p, parent, &pidx))
		pidx = ANA_PARENT_PENDING;
	if (p->n_nodes >= UINT32_MAX - 1)
		return replay_fail(r, -CM_E_LIMIT, rec->off, "too many stack nodes");
	CM_TRY(node_put(p, id, (uint32_t)p->n_nodes));
	CM_TRY(node_append(p, id, pidx, rec->u.node.addr,
			   parent == TF_NODE_ROOT ||
				   (pidx != ANA_PARENT_PENDING && node_resolved(p, pidx)),
			   &idx));
	if (pidx == ANA_PARENT_PENDING)
		CM_TRY(ana_map32_put(&r->pending_parent, idx + 1, parent));
	return 0;
}

/* Index + 1 of the latest module with trace id, 0 if none. */
static uint32_t module_lookup(const struct replay *r, uint32_t id)
{
	uint32_t v = 0;

	if (id == UINT32_MAX)
		return r->module_max_id;
	return ana_map32_get(&r->module_by_id, id + 1, &v) ? v : 0;
}

static int on_module(struct replay *r, const struct tf_record *rec)
{
	struct ana_profile *p = r->prof;
	struct ana_module *m;
	uint32_t id = rec->u.module.id, prev = module_lookup(r, id), pend;

	if (p->n_modules >= r->max_modules)
		return replay_fail(r, -CM_E_LIMIT, rec->off, "more than %llu module records",
				   (unsigned long long)r->max_modules);
	if (p->module_path_bytes + rec->u.module.path_len > ANA_MAX_MODULE_PATH_BYTES)
		return replay_fail(r, -CM_E_LIMIT, rec->off,
				   "more than %u bytes of module paths",
				   ANA_MAX_MODULE_PATH_BYTES);
	/* A module id reused while loaded: the old one is gone. (Only the
	 * latest module with an id can still be loaded.) */
	if (prev && !p->modules[prev - 1].unload_seq)
		p->modules[prev - 1].unload_seq = rec->seq;
	CM_TRY(grow((void **)&p->modules, &p->modules_cap, p->n_modules + 1,
		    sizeof(*p->modules)));
	if (id == UINT32_MAX)
		r->module_max_id = (uint32_t)p->n_modules + 1;
	else
		CM_TRY(ana_map32_put(&r->module_by_id, id + 1, (uint32_t)p->n_modules + 1));
	m = &p->modules[p->n_modules];
	memset(m, 0, sizeof(*m));
	if (rec->u.module.path_len)
		m->path = ana_strndup(rec->u.module.path, rec->u.module.path_len);
	else
		m->path = ana_strndup(p->exe ? p->exe : "", p->exe ? strlen(p->exe) : 0);
	m->segs = calloc(rec->u.module.n_segs ? rec->u.module.n_segs : 1, sizeof(*m->segs));
	if (!m->path || !m->segs) {
		free(m->path);
		free(m->segs);
		return -ENOMEM;
	}
	p->module_path_bytes += rec->u.module.path_len;
	m->trace_id = id;
	m->base = rec->u.module.base;
	m->build_id_len = rec->u.module.build_id_len;
	if (m->build_id_len > TF_MAX_BUILD_ID_BYTES)
		m->build_id_len = TF_MAX_BUILD_ID_BYTES;
	if (m->build_id_len)
		memcpy(m->build_id, rec->u.module.build_id, m->build_id_len);
	m->n_segs = rec->u.module.n_segs;
	if (m->n_segs)
		memcpy(m->segs, rec->u.module.segs, m->n_segs * sizeof(*m->segs));
	m->load_seq = rec->seq;
	p->n_modules++;
	/* Its UNLOAD may have come first, from another stream. */
	if (id != UINT32_MAX && ana_map32_get(&r->pending_unload, id + 1, &pend) &&
	    r->unload_seqs[pend - 1] > rec->seq) {
		m->unload_seq = r->unload_seqs[pend - 1];
		r->unload_seqs[pend - 1] = 0;
	}
	return 0;
}

static int on_unload(struct replay *r, const struct tf_record *rec)
{
	struct ana_profile *p = r->prof;
	uint32_t id = rec->u.unload.id, i = module_lookup(r, id), pend;

	if (i && !p->modules[i - 1].unload_seq && p->modules[i - 1].load_seq < rec->seq) {
		p->modules[i - 1].unload_seq = rec->seq;
		return 0;
	}
	/* No loaded module with this id yet: remember the first such UNLOAD
	 * for a MODULE record still to come (bounded like the modules). */
	if (id == UINT32_MAX || ana_map32_get(&r->pending_unload, id + 1, &pend) ||
	    r->n_unloads >= r->max_modules)
		return 0;
	CM_TRY(grow((void **)&r->unload_seqs, &r->unloads_cap, r->n_unloads + 1,
		    sizeof(*r->unload_seqs)));
	r->unload_seqs[r->n_unloads++] = rec->seq;
	return ana_map32_put(&r->pending_unload, id + 1, (uint32_t)r->n_unloads);
}

static int on_thread(struct replay *r, const struct tf_record *rec)
{
	uint32_t si;
	struct ana_thread *t;
	size_t n = rec->u.thread.name_len;

	CM_TRY(stream_get(r, rec->stream, &si));
	t = &r->prof->threads[si];
	t->tid = rec->u.thread.tid;
	t->seq = rec->seq;
	if (n > sizeof(t->name) - 1)
		n = sizeof(t->name) - 1;
	if (n)
		memcpy(t->name, rec->u.thread.name, n);
	t->name[n] = 0;
	return 0;
}

/* ---- driver -------------------------------------------------------------- */

static void started(struct replay *r)
{
	if (r->on_start) {
		r->on_start(r->tick_ctx, r->prof);
		r->on_start = NULL;
	}
}

static int tick(struct replay *r, const struct tf_record *rec)
{
	struct ana_profile *p = r->prof;

	started(r);
	if (!r->seen_tick && p->totals.peak_heap_bytes == 0)
		p->totals.peak_time_ns = rec->u.tick.time_ns;
	r->seen_tick = true;
	r->release_ns = rec->u.tick.time_ns;
	r->release_rss = rec->u.tick.rss_bytes;
	r->last_tick_ns = rec->u.tick.time_ns;
	if (rec->u.tick.watermark > r->watermark)
		r->watermark = rec->u.tick.watermark;
	CM_TRY(merge(r, r->watermark));
	for (size_t i = 0; i < r->n_open; i++)
		if (rec->u.tick.rss_bytes > r->open[i]->ph.rss_peak)
			r->open[i]->ph.rss_peak = rec->u.tick.rss_bytes;
	p->totals.n_ticks++;
	r->tick_tsum += (double)rec->u.tick.time_ns;
	r->tick_tsum2 += (double)rec->u.tick.time_ns * (double)rec->u.tick.time_ns;
	if (rec->u.tick.rss_bytes > p->totals.peak_rss_bytes)
		p->totals.peak_rss_bytes = rec->u.tick.rss_bytes;
	if (r->on_tick)
		CM_TRY(r->on_tick(r->tick_ctx, rec->u.tick.time_ns, r->heap_bytes,
				  rec->u.tick.rss_bytes));
	if (r->on_progress)
		r->on_progress(r->progress_ctx, ana_feed_progress(r->feed));
	return 0;
}

static int finish(struct replay *r)
{
	struct ana_profile *p = r->prof;

	started(r);
	/* Phases never ended close with the trace, the latest begun first
	 * (innermost first on each thread). */
	while (r->n_open)
		CM_TRY(phase_close(r, r->open[r->n_open - 1]->si, false, 0));
	for (size_t i = 0; i < p->n_sites; i++)
		CM_TRY(site_touch(r, &p->sites[i]));
	p->totals.leaked_allocations = r->live_blocks;
	p->totals.leaked_bytes = r->heap_bytes;
	/* Each site's least-squares slope of live bytes over the ticks' times,
	 * in bytes per second. */
	double n = (double)p->totals.n_ticks, st_ = r->tick_tsum;
	double den = n * r->tick_tsum2 - st_ * st_;
	for (size_t i = 0; i < p->n_sites; i++) {
		struct ana_site *st = &p->sites[i];
		double sy = st->mean_live_bytes, sty = st->growth_rate;
		st->mean_live_bytes = n > 0 ? sy / n : 0;
		st->growth_rate = n >= 3 && den > 0 ? (n * sty - st_ * sy) / den * 1e9 : 0;
	}
	/* Blocks never freed that were born in the first 10% of the run. */
	for (size_t i = 0; r->live && i < r->live_cap; i++) {
		const struct live *e = &r->live[i];
		if (e->addr && e->birth_ns <= p->duration_ns / 10) {
			if (p->sites[e->site].early_leaked_blocks != UINT32_MAX)
				p->sites[e->site].early_leaked_blocks++;
			p->sites[e->site].early_leaked_bytes += live_size(e);
		}
	}
	for (size_t i = 0; r->on_block && i < r->live_cap; i++) {
		struct ana_block b;
		if (!r->live[i].addr)
			continue;
		block_of(r, &r->live[i], &b);
		CM_TRY(r->on_block(r->block_ctx, &b));
	}
	return spill_finish(r);
}

static int run(struct replay *r, struct tf_dec *dec, struct ana_feed *feed)
{
	struct ana_profile *p = r->prof;
	const struct tf_event *fr;
	const struct tf_record *recp;
	int rc;

	p->format_version = tf_dec_version(dec);
	p->format_flags = tf_dec_flags(dec);
	for (;;) {
		size_t k = ana_feed_events(feed, &fr);
		if (k) {
			CM_TRY(queue_push_run(r, fr, k));
			continue;
		}
		rc = ana_feed_next(feed, &fr);
		if (rc > 0 && (fr->tag == TF_TAG_ALLOC || fr->tag == TF_TAG_FREE)) {
			CM_TRY(queue_push(r, fr));
			continue;
		}
		if (rc == 0)
			break;
		if (rc == -CM_E_TRUNCATED) {
			p->complete = false;
			p->truncated_at = ana_feed_file_offset(feed);
			p->duration_ns = r->last_tick_ns;
			r->release_ns = r->last_tick_ns;
			started(r);
			CM_TRY(merge(r, UINT64_MAX));
			break;
		}
		if (rc < 0) {
			if (r->errmsg && r->errcap)
				snprintf(r->errmsg, r->errcap, "'%s': %s", r->name,
					 tf_dec_errmsg(dec));
			return rc;
		}
		recp = ana_feed_record(feed, fr);
		if (recp->tag == TF_TAG_PHASE) {
			/* A stream event with a name: queued like ALLOC and FREE,
			 * the name copied (the batch is reused). */
			struct tf_event ev = *fr;
			char *name = NULL;
			if (r->queued_name_bytes + recp->u.phase.name_len > ANA_MAX_QUEUED_NAME_BYTES)
				return replay_fail(r, -CM_E_LIMIT, recp->off,
						   "more than %u bytes of phase names without a tick"
						   " record releasing them",
						   ANA_MAX_QUEUED_NAME_BYTES);
			if (recp->u.phase.op != TF_PHASE_END &&
			    !(name = ana_strndup(recp->u.phase.name, recp->u.phase.name_len)))
				return -ENOMEM;
			r->queued_name_bytes += recp->u.phase.name_len;
			ev.tag = TF_TAG_PHASE;
			ev.kind = recp->u.phase.op;
			ev.addr = (uint64_t)(uintptr_t)name;
			ev.size = recp->u.phase.name_len;
			ev.seq = recp->seq;
			ev.stream = recp->stream;
			rc = queue_push(r, &ev);
			if (rc < 0) {
				free(name);
				return rc;
			}
			continue;
		}
		switch (recp->tag) {
		case TF_TAG_PROCESS:
			rc = on_process(r, recp);
			break;
		case TF_TAG_CHUNK:
			break;
		case TF_TAG_TICK:
			rc = tick(r, recp);
			break;
		case TF_TAG_END:
			started(r);
			r->release_ns = recp->u.end.time_ns;
			if (!r->seen_tick && p->totals.peak_heap_bytes == 0)
				p->totals.peak_time_ns = recp->u.end.time_ns;
			rc = merge(r, UINT64_MAX);
			p->complete = true;
			p->duration_ns = recp->u.end.time_ns;
			p->end_n_events = recp->u.end.n_events;
			break;
		case TF_TAG_THREAD:
			rc = on_thread(r, recp);
			break;
		case TF_TAG_NODE:
			rc = on_node(r, recp);
			break;
		case TF_TAG_MODULE:
			rc = on_module(r, recp);
			break;
		case TF_TAG_UNLOAD:
			rc = on_unload(r, recp);
			break;
		case TF_TAG_ALLOC: /* queued above */
		case TF_TAG_FREE:
		case TF_TAG_PHASE:
			break;
		}
		if (rc < 0)
			return rc;
	}
	return finish(r);
}

static void replay_release(struct replay *r)
{
	for (size_t i = 0; r->prof && i < r->prof->n_threads; i++) {
		struct rstream *s = &r->streams[i];
		/* Queued PHASE records own their names. */
		for (size_t j = 0; j < s->len; j++) {
			const struct tf_event *ev = &s->q[(s->head + j) & (s->cap - 1)];
			if (ev->tag == TF_TAG_PHASE)
				free((char *)(uintptr_t)ev->addr);
		}
		free(s->q);
		free(s->stack);
	}
	for (size_t i = 0; i < r->n_open; i++)
		phase_free(r->open[i]);

	free(r->streams);
	ana_map32_release(&r->stream_index);
	free(r->active);
	free(r->heap);
	vm_free(r->live, r->live_cap * sizeof(*r->live));
	vm_free(r->live_seq, r->live_cap * sizeof(*r->live_seq));
	ana_map64_release(&r->spill);
	ana_map32_release(&r->pending_parent);
	ana_map32_release(&r->module_by_id);
	ana_map32_release(&r->pending_unload);
	free(r->unload_seqs);
}

static int replay_dec(struct tf_dec *dec, const char *name,
		      const struct ana_replay_opts *opts, struct ana_profile **out,
		      char *errmsg, size_t cap)
{
	struct replay r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.name = name;
	r.errmsg = errmsg;
	r.errcap = cap;
	r.max_queued = ANA_MAX_QUEUED_EVENTS;
	r.max_modules = ANA_MAX_MODULES;
	if (opts) {
		r.gap = opts->temporary_gap;
		r.on_tick = opts->on_tick;
		r.tick_ctx = opts->tick_ctx;
		r.on_start = opts->on_start;
		r.on_block = opts->on_block;
		r.block_ctx = opts->block_ctx;
		r.on_progress = opts->on_progress;
		r.progress_ctx = opts->progress_ctx;
		r.on_phase = opts->on_phase;
		r.on_marker = opts->on_marker;
		r.phase_ctx = opts->phase_ctx;
		if (opts->max_queued)
			r.max_queued = opts->max_queued;
		if (opts->max_modules)
			r.max_modules = opts->max_modules;
	}
	struct ana_feed *feed = NULL;
	r.prof = calloc(1, sizeof(*r.prof));
	if (!r.prof || ana_feed_new(&feed, dec) < 0)
		rc = -ENOMEM;
	else {
		r.prof->temporary_gap = r.gap;
		r.feed = feed;
		rc = run(&r, dec, feed);
	}
	ana_feed_free(feed);
	if (rc == -ENOMEM && errmsg && cap)
		snprintf(errmsg, cap, "'%s': out of memory", name);
	else if (rc < 0 && errmsg && cap && !errmsg[0])
		snprintf(errmsg, cap, "'%s': %s", name, cm_strerror(rc));
	replay_release(&r);
	if (rc < 0) {
		ana_profile_free(r.prof);
		return rc;
	}
	*out = r.prof;
	return 0;
}

static int open_failed(int rc, const char *name, const char *decmsg, char *errmsg,
		       size_t cap)
{
	if (!errmsg || !cap)
		return rc;
	if (rc == -CM_E_MAGIC)
		snprintf(errmsg, cap, "'%s' is not a memrec trace", name);
	else if (rc > -CM_E_FIRST)
		snprintf(errmsg, cap, "cannot open '%s': %s", name, cm_strerror(rc));
	else
		snprintf(errmsg, cap, "'%s': %s", name, decmsg[0] ? decmsg : cm_strerror(rc));
	return rc;
}

int ana_replay_path(const char *path, const struct ana_replay_opts *opts,
		    struct ana_profile **out, char *errmsg, size_t cap)
{
	char decmsg[128] = "";
	struct tf_dec *dec = NULL;
	int rc;

	if (errmsg && cap)
		errmsg[0] = 0;
	rc = tf_dec_open(&dec, path, decmsg);
	if (rc < 0)
		return open_failed(rc, path, decmsg, errmsg, cap);
	rc = replay_dec(dec, path, opts, out, errmsg, cap);
	tf_dec_free(dec);
	return rc;
}

int ana_replay_mem(const void *data, size_t len, const char *name,
		   const struct ana_replay_opts *opts, struct ana_profile **out,
		   char *errmsg, size_t cap)
{
	char decmsg[128] = "";
	struct tf_dec *dec = NULL;
	int rc;

	if (errmsg && cap)
		errmsg[0] = 0;
	rc = tf_dec_open_mem(&dec, data, len, decmsg);
	if (rc < 0)
		return open_failed(rc, name, decmsg, errmsg, cap);
	rc = replay_dec(dec, name, opts, out, errmsg, cap);
	tf_dec_free(dec);
	return rc;
}

const struct ana_node *ana_profile_node(const struct ana_profile *prof, uint32_t id)
{
	uint32_t idx;

	if (!node_find(prof, id, &idx))
		return NULL;
	return &prof->nodes[idx];
}

const struct ana_site *ana_profile_site(const struct ana_profile *prof, uint32_t id)
{
	static const struct ana_site none;
	const struct ana_node *n = ana_profile_node(prof, id);

	return n && n->site != ANA_NO_SITE ? &prof->sites[n->site] : &none;
}

uint32_t ana_profile_node_id(const struct ana_profile *prof, size_t idx)
{
	return prof->ids_indexed ? prof->node_ids[idx] : (uint32_t)idx + 1;
}

uint32_t ana_profile_parent_id(const struct ana_profile *prof, const struct ana_node *n)
{
	if (n->parent_idx == ANA_NO_PARENT || n->parent_idx == ANA_PARENT_PENDING)
		return TF_NODE_ROOT;
	return ana_profile_node_id(prof, n->parent_idx);
}

/* Mark node idx a stored site and its ancestors stored nodes; returns how
 * many nodes became used. */
static size_t mark_site(struct ana_profile *prof, uint32_t idx)
{
	uint8_t *f = prof->node_flags;
	size_t n = f[idx] & ANA_USED_NODE ? 0 : 1;

	f[idx] |= ANA_USED_SITE | ANA_USED_NODE;
	for (uint32_t j = prof->nodes[idx].parent_idx;
	     j != ANA_NO_PARENT && j != ANA_PARENT_PENDING && !(f[j] & ANA_USED_NODE);
	     j = prof->nodes[j].parent_idx) {
		f[j] |= ANA_USED_NODE;
		n++;
	}
	return n;
}

/* Lists a report may show sites of: the four of enum ana_list, then the
 * growth and spike lists (docs/usage.md "Growth") and the insights'
 * candidates (realloc growth, blocks live at the peak, early leaks). */
#define N_MARK_LISTS 9

static int64_t dbl_key(double v)
{
	return v >= 9.2e18 ? INT64_MAX : v <= 0 ? 0 : (int64_t)(v + 0.5);
}

/* The count and bytes a site ranks by in list l (enum ana_list order:
 * allocations, peak, leaked, temporary, then the lists above) and the
 * measure ranked first; count <= 0: not in the list. */
static void list_keys(const struct ana_site *n, int l, int64_t *first, int64_t *second,
		      int64_t *count)
{
	switch (l) {
	case 4: /* growth: bytes per second */
		*count = *first = dbl_key(n->growth_rate);
		*second = (int64_t)n->alloc_bytes;
		return;
	case 5: /* spike: bytes at the peak above the site's mean */
		*count = *first = dbl_key((double)n->peak_bytes - n->mean_live_bytes);
		*second = (int64_t)n->peak_bytes;
		return;
	case 6:
		*count = *first = (int64_t)n->realloc_grow_calls;
		*second = (int64_t)n->alloc_bytes;
		return;
	case 7:
		*count = *first = (int64_t)n->peak_blocks;
		*second = (int64_t)n->peak_bytes;
		return;
	case 8:
		*count = *first = (int64_t)n->early_leaked_bytes;
		*second = (int64_t)n->early_leaked_blocks;
		return;
	}
	switch (l) {
	case 0:
		*count = *first = (int64_t)n->alloc_calls;
		*second = (int64_t)n->alloc_bytes;
		break;
	case 1:
		*count = *second = (int64_t)n->peak_blocks;
		*first = (int64_t)n->peak_bytes;
		break;
	case 2:
		*count = *second = (int64_t)n->live_blocks;
		*first = (int64_t)n->live_bytes;
		break;
	default:
		*count = *first = (int64_t)n->temp_calls;
		*second = (int64_t)n->temp_bytes;
	}
}

/* A candidate of a list: its two measures and trie id, copied once. */
struct cand {
	int64_t k1, k2;
	uint32_t id;   /* trie id (the last tie-break) */
	uint32_t site; /* index in prof->sites */
};

/* Does candidate a rank before b? */
static inline bool ranks_before(const struct cand *a, const struct cand *b)
{
	if (a->k1 != b->k1)
		return a->k1 > b->k1;
	if (a->k2 != b->k2)
		return a->k2 > b->k2;
	return a->id < b->id;
}

/* Sift heap[i] down in a heap of n whose root ranks last. */
static void worst_down(struct cand *heap, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;
		if (c < n && ranks_before(&heap[m], &heap[c]))
			m = c;
		if (c + 1 < n && ranks_before(&heap[m], &heap[c + 1]))
			m = c + 1;
		if (m == i)
			return;
		struct cand t = heap[i];
		heap[i] = heap[m];
		heap[m] = t;
		i = m;
	}
}

long ana_profile_mark_sites(struct ana_profile *prof, uint32_t top)
{
	size_t used = 0;

	for (size_t i = 0; i < prof->n_nodes; i++)
		prof->node_flags[i] &= (uint8_t)~(ANA_USED_NODE | ANA_USED_SITE);
	if (top == ANA_ALL_SITES) {
		for (size_t i = 0; i < prof->n_sites; i++)
			used += mark_site(prof, prof->sites[i].node);
		return (long)used;
	}
	if (!top || !prof->n_sites)
		return 0;
	size_t cap = top < prof->n_sites ? top : prof->n_sites;
	/* One heap per list, filled in one pass over the sites (a site array
	 * of millions is read once, not once per list). */
	struct cand *heaps = malloc((size_t)N_MARK_LISTS * cap * sizeof(*heaps));
	size_t fill[N_MARK_LISTS] = { 0 };
	if (!heaps)
		return -ENOMEM;
	for (size_t i = 0; i < prof->n_extra; i++) {
		uint32_t idx;
		if (node_find(prof, prof->extra_ids[i], &idx) && prof->nodes[idx].site != ANA_NO_SITE)
			used += mark_site(prof, idx);
	}
	for (size_t i = 0; i < prof->n_sites; i++) {
		const struct ana_site *site = &prof->sites[i];
		uint32_t id = 0;
		bool have_id = false;
		for (int l = 0; l < N_MARK_LISTS; l++) {
			struct cand c, *heap = heaps + (size_t)l * cap;
			size_t n = fill[l];
			int64_t count;
			list_keys(site, l, &c.k1, &c.k2, &count);
			if (count <= 0)
				continue;
			/* Most sites rank below the root of a full heap: decide on
			 * the measures before looking up the trie id. */
			if (n == cap && (c.k1 < heap[0].k1 || (c.k1 == heap[0].k1 && c.k2 < heap[0].k2)))
				continue;
			if (!have_id) {
				id = ana_profile_node_id(prof, site->node);
				have_id = true;
			}
			c.site = (uint32_t)i;
			c.id = id;
			if (n < cap) {
				heap[n++] = c;
				fill[l] = n;
				/* sift up: the worst-ranked goes to the root */
				for (size_t j = n - 1; j > 0;) {
					size_t par = (j - 1) / 2;
					if (!ranks_before(&heap[par], &heap[j]))
						break;
					struct cand t = heap[par];
					heap[par] = heap[j];
					heap[j] = t;
					j = par;
				}
			} else if (ranks_before(&c, &heap[0])) {
				heap[0] = c;
				worst_down(heap, n, 0);
			}
		}
	}
	for (int l = 0; l < N_MARK_LISTS; l++)
		for (size_t i = 0; i < fill[l]; i++)
			used += mark_site(prof, prof->sites[heaps[(size_t)l * cap + i].site].node);
	free(heaps);
	return (long)used;
}

size_t ana_profile_mark_used(struct ana_profile *prof)
{
	return (size_t)ana_profile_mark_sites(prof, ANA_ALL_SITES);
}

const struct ana_module *ana_profile_module_at(const struct ana_profile *prof,
					       uint64_t addr)
{
	for (size_t i = prof->n_modules; i-- > 0;) {
		const struct ana_module *m = &prof->modules[i];
		for (uint32_t s = 0; s < m->n_segs; s++) {
			uint64_t lo = m->base + m->segs[s].vaddr;
			if (addr >= lo && addr - lo < m->segs[s].memsz)
				return m;
		}
	}
	return NULL;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct ana_seg_ref *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->module < y->module ? -1 : x->module > y->module;
}

int ana_profile_index_modules(struct ana_profile *prof)
{
	size_t n = 0;

	if (prof->seg_index)
		return 0;
	for (size_t i = 0; i < prof->n_modules; i++)
		n += prof->modules[i].n_segs;
	prof->seg_index = malloc((n ? n : 1) * sizeof(*prof->seg_index));
	if (!prof->seg_index)
		return -ENOMEM;
	n = 0;
	prof->seg_max_span = 0;
	for (size_t i = 0; i < prof->n_modules; i++) {
		const struct ana_module *m = &prof->modules[i];
		for (uint32_t s = 0; s < m->n_segs; s++) {
			uint64_t lo = m->base + m->segs[s].vaddr, len = m->segs[s].memsz;
			/* Empty or wrapping segments hold nothing (as in
			 * ana_profile_module_at(), which never matches them
			 * past the top of the address space). */
			if (!len || lo + len < lo)
				continue;
			prof->seg_index[n++] = (struct ana_seg_ref){ lo, lo + len, (uint32_t)i };
			if (len > prof->seg_max_span)
				prof->seg_max_span = len;
		}
	}
	qsort(prof->seg_index, n, sizeof(*prof->seg_index), seg_cmp);
	prof->n_seg_index = n;
	return 0;
}

static bool module_covers(const struct ana_module *m, uint64_t seq)
{
	return m->load_seq <= seq && (!m->unload_seq || seq < m->unload_seq);
}

/* Is module a loaded after module b? */
static bool module_later(const struct ana_profile *prof, size_t a, size_t b)
{
	const struct ana_module *x = &prof->modules[a], *y = &prof->modules[b];

	if (x->load_seq != y->load_seq)
		return x->load_seq > y->load_seq;
	return a > b;
}

/* Consider module i (holding the address) for ana_profile_module_for. */
static void module_pick(const struct ana_profile *prof, size_t i, uint64_t seq,
			size_t *cover, size_t *any)
{
	if (*any == SIZE_MAX || module_later(prof, i, *any))
		*any = i;
	if (module_covers(&prof->modules[i], seq) &&
	    (*cover == SIZE_MAX || module_later(prof, i, *cover)))
		*cover = i;
}

const struct ana_module *ana_profile_module_for(const struct ana_profile *prof,
						uint64_t addr, uint64_t seq)
{
	size_t cover = SIZE_MAX, any = SIZE_MAX;

	if (prof->seg_index) {
		/* First segment starting above addr; scan down while a
		 * segment starting there could still reach addr. */
		size_t lo = 0, hi = prof->n_seg_index;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (prof->seg_index[mid].lo <= addr)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t i = lo; i-- > 0;) {
			const struct ana_seg_ref *g = &prof->seg_index[i];
			if (addr - g->lo >= prof->seg_max_span)
				break;
			if (addr < g->hi)
				module_pick(prof, g->module, seq, &cover, &any);
		}
	} else {
		for (size_t i = 0; i < prof->n_modules; i++) {
			const struct ana_module *m = &prof->modules[i];
			for (uint32_t s = 0; s < m->n_segs; s++) {
				uint64_t a = m->base + m->segs[s].vaddr;
				uint64_t len = m->segs[s].memsz;
				if (a + len >= a && addr >= a && addr - a < len) {
					module_pick(prof, i, seq, &cover, &any);
					break;
				}
			}
		}
	}
	if (cover != SIZE_MAX)
		return &prof->modules[cover];
	return any != SIZE_MAX ? &prof->modules[any] : NULL;
}

void ana_profile_free(struct ana_profile *prof)
{
	if (!prof)
		return;
	free(prof->exe);
	free(prof->command);
	vm_free(prof->nodes, prof->nodes_cap * sizeof(*prof->nodes));
	vm_free(prof->node_dense, prof->dense_cap * sizeof(*prof->node_dense));
	vm_free(prof->node_ids, prof->ids_cap * sizeof(*prof->node_ids));
	vm_free(prof->node_flags, prof->flags_cap * sizeof(*prof->node_flags));
	ana_map32_release(&prof->node_index);
	vm_free(prof->sites, prof->sites_cap * sizeof(*prof->sites));
	for (size_t i = 0; i < prof->n_modules; i++) {
		free(prof->modules[i].path);
		free(prof->modules[i].segs);
	}
	free(prof->modules);
	free(prof->seg_index);
	free(prof->threads);
	free(prof->hist_keys);
	free(prof->hist_counts);
	free(prof->extra_ids);
	free(prof);
}
