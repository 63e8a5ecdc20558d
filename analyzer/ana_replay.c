/* Trace replay (see ana_replay.h). Stream events wait in per-stream FIFO
 * queues until a TICK's watermark releases them; they are then merged by
 * seq with a binary heap over the stream heads (docs/trace-format.md
 * "Ordering"). NODE and MODULE records apply as soon as they are decoded. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ana_replay.h"
#include "cm_err.h"
#include "tf_dec.h"

/* A queued stream event (ALLOC or FREE). */
struct qev {
	uint64_t seq;
	uint64_t off;   /* decompressed byte offset, for messages */
	uint64_t size;  /* ALLOC: bytes */
	uint64_t addr;
	uint32_t node;  /* ALLOC: leaf node id */
	uint8_t tag;
	uint8_t kind;
};

struct rstream {
	struct qev *q; /* ring, cap a power of two */
	size_t head, len, cap;
	bool active;   /* in the active list */
};

/* A live allocation. addr 0 marks an empty slot. */
struct live {
	uint64_t addr;
	uint64_t size;        /* bytes */
	uint64_t alloc_index; /* stream's n_allocs right after this call */
	uint32_t node_idx;
	uint32_t stream_idx;
};

struct replay {
	struct ana_profile *prof;
	const char *name;
	char *errmsg;
	size_t errcap;
	uint64_t gap;
	ana_tick_fn on_tick;
	void *tick_ctx;

	struct rstream *streams;  /* parallel to prof->threads */
	size_t streams_cap;
	struct ana_map32 stream_index; /* stream id + 1 -> index */
	uint32_t *active;         /* stream indices with queued events */
	size_t n_active, active_cap;
	uint32_t *heap;           /* merge heap of stream indices */
	size_t heap_cap;

	struct live *live;        /* open addressing, linear probing */
	size_t live_cap, n_live;  /* slots (power of two), entries */
	unsigned live_shift;      /* 64 - log2(live_cap) */

	uint64_t heap_bytes;      /* live bytes now */
	uint64_t live_blocks;
	uint64_t epoch;           /* bumped at every new peak */
	uint64_t release_ns;      /* time of the tick releasing events */
	uint64_t last_tick_ns;
	uint64_t watermark;       /* highest watermark seen */
	bool seen_tick;
	uint32_t unknown_idx;     /* index of the node-0 site + 1, 0 = none yet */

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

/* ---- live allocation table --------------------------------------------- */

static size_t live_slot(const struct replay *r, uint64_t addr)
{
	return (size_t)((addr * 0x9e3779b97f4a7c15ull) >> r->live_shift);
}

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

static void live_place(struct replay *r, const struct live *e)
{
	size_t i = live_slot(r, e->addr);

	while (r->live[i].addr)
		i = (i + 1) & (r->live_cap - 1);
	r->live[i] = *e;
}

static int live_insert(struct replay *r, const struct live *e)
{
	if ((r->n_live + 1) * 2 > r->live_cap) {
		struct live *old = r->live;
		size_t old_cap = r->live_cap;
		size_t cap = old_cap ? old_cap * 2 : 1024;
		unsigned bits = 0;

		r->live = calloc(cap, sizeof(*r->live));
		if (!r->live) {
			r->live = old;
			return -ENOMEM;
		}
		while (((size_t)1 << bits) < cap)
			bits++;
		r->live_cap = cap;
		r->live_shift = 64 - bits;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i].addr)
				live_place(r, &old[i]);
		free(old);
	}
	live_place(r, e);
	r->n_live++;
	return 0;
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
			i = j;
		}
	}
	r->live[i].addr = 0;
	r->n_live--;
}

/* ---- aggregates -------------------------------------------------------- */

/* Lazy peak snapshot: before a node changes, capture its value if it has not
 * been captured since the current peak was set (then it has not changed
 * since the peak either). */
static inline void node_touch(struct replay *r, struct ana_node *n)
{
	if (n->peak_epoch != r->epoch) {
		n->peak_blocks = n->live_blocks;
		n->peak_bytes = n->live_bytes;
		n->peak_epoch = r->epoch;
	}
}

static void release_block(struct replay *r, struct live *e)
{
	struct ana_node *n = &r->prof->nodes[e->node_idx];

	node_touch(r, n);
	n->live_blocks--;
	n->live_bytes -= e->size;
	r->heap_bytes -= e->size;
	r->live_blocks--;
}

/* Link the ancestors of node idx, which must all be defined by now (NODE
 * records from other streams may precede their parents in the file; the
 * TICK that releases an event guarantees its whole stack is in). */
static int resolve_node(struct replay *r, uint32_t idx, const struct qev *ev)
{
	struct ana_profile *p = r->prof;
	uint32_t i = idx;

	while (i != ANA_NO_PARENT && !p->nodes[i].resolved) {
		struct ana_node *n = &p->nodes[i];
		if (n->parent_idx == ANA_PARENT_PENDING &&
		    !ana_map32_get(&p->node_index, n->parent_id, &n->parent_idx)) {
			n->parent_idx = ANA_PARENT_PENDING;
			return replay_fail(r, -CM_E_CORRUPT, ev->off,
					   "alloc (seq %llu) uses stack node %u whose ancestor %u "
					   "is undefined",
					   (unsigned long long)ev->seq, n->id, n->parent_id);
		}
		i = n->parent_idx;
	}
	/* The chain is complete: mark it. */
	for (i = idx; i != ANA_NO_PARENT && !p->nodes[i].resolved; i = p->nodes[i].parent_idx)
		p->nodes[i].resolved = 1;
	return 0;
}

static int replay_alloc(struct replay *r, uint32_t si, const struct qev *ev)
{
	struct ana_profile *p = r->prof;
	struct ana_thread *t = &p->threads[si];
	uint32_t idx;

	if (ev->node == 0) {
		/* No backtrace could be taken (docs/trace-format.md): one
		 * synthetic site with id 0 and address 0, "[no backtrace]". */
		if (!r->unknown_idx) {
			CM_TRY(grow((void **)&p->nodes, &p->nodes_cap, p->n_nodes + 1,
				    sizeof(*p->nodes)));
			struct ana_node *u = &p->nodes[p->n_nodes];
			memset(u, 0, sizeof(*u));
			u->parent_idx = ANA_NO_PARENT;
			u->resolved = 1;
			r->unknown_idx = (uint32_t)++p->n_nodes;
		}
		idx = r->unknown_idx - 1;
	} else if (!ana_map32_get(&p->node_index, ev->node, &idx))
		return replay_fail(r, -CM_E_CORRUPT, ev->off,
				   "alloc (seq %llu) references undefined stack node %u",
				   (unsigned long long)ev->seq, ev->node);
	struct ana_node *n = &p->nodes[idx];

	if (!n->resolved)
		CM_TRY(resolve_node(r, idx, ev));
	/* Birth of the node and its unborn ancestors: the modules loaded now
	 * are the ones their addresses belong to. An ancestor of a born node
	 * is born, so each node is visited once. */
	for (uint32_t i = idx; i != ANA_NO_PARENT && !p->nodes[i].birth_seq;
	     i = p->nodes[i].parent_idx)
		p->nodes[i].birth_seq = ev->seq;
	p->totals.allocations++;
	t->n_allocs++;
	n->alloc_calls++;
	if (!ev->addr) {
		p->totals.failed_allocations++;
		return 0;
	}
	p->totals.bytes_allocated += ev->size;
	n->alloc_bytes += ev->size;

	struct live *old = live_find(r, ev->addr);
	if (old) {
		/* A free we never saw: drop the old block. */
		p->totals.inconsistent++;
		release_block(r, old);
		live_remove(r, old);
	}
	struct live e = { ev->addr, ev->size, t->n_allocs, idx, si };
	CM_TRY(live_insert(r, &e));
	node_touch(r, n);
	n->live_blocks++;
	n->live_bytes += ev->size;
	r->heap_bytes += ev->size;
	r->live_blocks++;
	if (r->heap_bytes > p->totals.peak_heap_bytes) {
		p->totals.peak_heap_bytes = r->heap_bytes;
		p->totals.peak_time_ns = r->release_ns;
		r->epoch++;
	}
	return 0;
}

static void replay_free(struct replay *r, const struct qev *ev)
{
	struct ana_profile *p = r->prof;
	struct live *e;

	if (ev->kind == TF_KIND_FREE)
		p->totals.frees++;
	e = live_find(r, ev->addr);
	if (!e) {
		p->totals.unmatched_frees++;
		return;
	}
	/* heaptrack's definition: a block released (by free or by realloc) with
	 * no other allocation by its thread in between is temporary. */
	{
		uint64_t between = p->threads[e->stream_idx].n_allocs - e->alloc_index;
		if (between <= r->gap) {
			struct ana_node *n = &p->nodes[e->node_idx];
			n->temp_calls++;
			n->temp_bytes += e->size;
			p->totals.temporary++;
			p->totals.temporary_bytes += e->size;
		}
	}
	release_block(r, e);
	live_remove(r, e);
}

/* ---- streams and merging ---------------------------------------------- */

static int stream_get(struct replay *r, uint32_t stream, uint32_t *out)
{
	struct ana_profile *p = r->prof;
	uint32_t idx;

	if (ana_map32_get(&r->stream_index, stream + 1, &idx)) {
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
	*out = idx;
	return 0;
}

/* Give stream s's ring cap slots (a power of two >= s->len). */
static int ring_resize(struct rstream *s, size_t cap)
{
	struct qev *q = malloc(cap * sizeof(*q));

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

static int queue_push(struct replay *r, const struct tf_record *rec)
{
	uint32_t si;
	struct rstream *s;
	struct qev *ev;

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
	memset(ev, 0, sizeof(*ev));
	ev->seq = rec->seq;
	ev->off = rec->off;
	ev->tag = (uint8_t)rec->tag;
	if (rec->tag == TF_TAG_ALLOC) {
		ev->kind = rec->u.alloc.kind;
		ev->node = rec->u.alloc.node;
		ev->size = rec->u.alloc.size;
		ev->addr = rec->u.alloc.addr;
	} else {
		ev->kind = rec->u.free.kind;
		ev->addr = rec->u.free.addr;
	}
	s->len++;
	r->n_queued++;
	if (!s->active) {
		CM_TRY(grow((void **)&r->active, &r->active_cap, r->n_active + 1,
			    sizeof(*r->active)));
		r->active[r->n_active++] = si;
		s->active = true;
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
			const struct qev *ev = &s->q[s->head];

			if (ev->tag == TF_TAG_ALLOC)
				rc = replay_alloc(r, si, ev);
			else
				replay_free(r, ev);
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
	/* Drop the streams that ran empty from the active list and free
	 * their rings; shrink a ring mostly drained. A ring then never holds
	 * more than 4 slots per queued event (docs/schema.md "Limits"). */
	size_t k = 0;
	for (size_t i = 0; i < r->n_active; i++) {
		uint32_t si = r->active[i];
		struct rstream *s = &r->streams[si];
		if (s->len) {
			r->active[k++] = si;
			if (s->len < s->cap / 4) {
				size_t cap = 4;
				while (cap < 2 * s->len)
					cap *= 2;
				/* Failing to shrink is harmless. */
				(void)ring_resize(s, cap);
			}
		} else {
			s->active = false;
			free(s->q);
			s->q = NULL;
			s->cap = 0;
			s->head = 0;
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
	uint32_t dummy;
	struct ana_node *n;

	if (id == 0 || ana_map32_get(&p->node_index, id, &dummy))
		return replay_fail(r, -CM_E_CORRUPT, rec->off,
				   "stack node %u defined twice", id);
	/* The parent may come later, from another stream: linked at replay. */
	if (parent != TF_NODE_ROOT && !ana_map32_get(&p->node_index, parent, &pidx))
		pidx = ANA_PARENT_PENDING;
	if (p->n_nodes >= UINT32_MAX - 1)
		return replay_fail(r, -CM_E_LIMIT, rec->off, "too many stack nodes");
	CM_TRY(grow((void **)&p->nodes, &p->nodes_cap, p->n_nodes + 1, sizeof(*p->nodes)));
	CM_TRY(ana_map32_put(&p->node_index, id, (uint32_t)p->n_nodes));
	n = &p->nodes[p->n_nodes++];
	memset(n, 0, sizeof(*n));
	n->id = id;
	n->parent_id = parent;
	n->parent_idx = pidx;
	n->resolved = parent == TF_NODE_ROOT ||
		      (pidx != ANA_PARENT_PENDING && p->nodes[pidx].resolved);
	n->addr = rec->u.node.addr;
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

static int tick(struct replay *r, const struct tf_record *rec)
{
	struct ana_profile *p = r->prof;

	if (!r->seen_tick && p->totals.peak_heap_bytes == 0)
		p->totals.peak_time_ns = rec->u.tick.time_ns;
	r->seen_tick = true;
	r->release_ns = rec->u.tick.time_ns;
	r->last_tick_ns = rec->u.tick.time_ns;
	if (rec->u.tick.watermark > r->watermark)
		r->watermark = rec->u.tick.watermark;
	CM_TRY(merge(r, r->watermark));
	p->totals.n_ticks++;
	if (rec->u.tick.rss_bytes > p->totals.peak_rss_bytes)
		p->totals.peak_rss_bytes = rec->u.tick.rss_bytes;
	if (r->on_tick)
		CM_TRY(r->on_tick(r->tick_ctx, rec->u.tick.time_ns, r->heap_bytes,
				  rec->u.tick.rss_bytes));
	return 0;
}

static void finish(struct replay *r)
{
	struct ana_profile *p = r->prof;

	for (size_t i = 0; i < p->n_nodes; i++)
		node_touch(r, &p->nodes[i]);
	p->totals.leaked_allocations = r->live_blocks;
	p->totals.leaked_bytes = r->heap_bytes;
}

static int run(struct replay *r, struct tf_dec *dec)
{
	struct ana_profile *p = r->prof;
	struct tf_record rec;
	int rc;

	p->format_version = tf_dec_version(dec);
	p->format_flags = tf_dec_flags(dec);
	for (;;) {
		rc = tf_dec_next(dec, &rec);
		if (rc == 0)
			break;
		if (rc == -CM_E_TRUNCATED) {
			p->complete = false;
			p->truncated_at = tf_dec_file_offset(dec);
			p->duration_ns = r->last_tick_ns;
			r->release_ns = r->last_tick_ns;
			CM_TRY(merge(r, UINT64_MAX));
			break;
		}
		if (rc < 0) {
			if (r->errmsg && r->errcap)
				snprintf(r->errmsg, r->errcap, "'%s': %s", r->name,
					 tf_dec_errmsg(dec));
			return rc;
		}
		switch (rec.tag) {
		case TF_TAG_PROCESS:
			rc = on_process(r, &rec);
			break;
		case TF_TAG_CHUNK:
			break;
		case TF_TAG_TICK:
			rc = tick(r, &rec);
			break;
		case TF_TAG_END:
			r->release_ns = rec.u.end.time_ns;
			if (!r->seen_tick && p->totals.peak_heap_bytes == 0)
				p->totals.peak_time_ns = rec.u.end.time_ns;
			rc = merge(r, UINT64_MAX);
			p->complete = true;
			p->duration_ns = rec.u.end.time_ns;
			p->end_n_events = rec.u.end.n_events;
			break;
		case TF_TAG_THREAD:
			rc = on_thread(r, &rec);
			break;
		case TF_TAG_NODE:
			rc = on_node(r, &rec);
			break;
		case TF_TAG_ALLOC:
		case TF_TAG_FREE:
			rc = queue_push(r, &rec);
			break;
		case TF_TAG_MODULE:
			rc = on_module(r, &rec);
			break;
		case TF_TAG_UNLOAD:
			rc = on_unload(r, &rec);
			break;
		}
		if (rc < 0)
			return rc;
	}
	finish(r);
	return 0;
}

static void replay_release(struct replay *r)
{
	for (size_t i = 0; r->prof && i < r->prof->n_threads; i++)
		free(r->streams[i].q);
	free(r->streams);
	ana_map32_release(&r->stream_index);
	free(r->active);
	free(r->heap);
	free(r->live);
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
		if (opts->max_queued)
			r.max_queued = opts->max_queued;
		if (opts->max_modules)
			r.max_modules = opts->max_modules;
	}
	r.prof = calloc(1, sizeof(*r.prof));
	if (!r.prof)
		rc = -ENOMEM;
	else {
		r.prof->temporary_gap = r.gap;
		rc = run(&r, dec);
	}
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

	if (!ana_map32_get(&prof->node_index, id, &idx))
		return NULL;
	return &prof->nodes[idx];
}

size_t ana_profile_mark_used(struct ana_profile *prof)
{
	size_t n = 0;

	for (size_t i = 0; i < prof->n_nodes; i++) {
		if (!prof->nodes[i].alloc_calls)
			continue;
		for (uint32_t j = (uint32_t)i;
		     j != ANA_NO_PARENT && j != ANA_PARENT_PENDING && !prof->nodes[j].used;
		     j = prof->nodes[j].parent_idx) {
			prof->nodes[j].used = 1;
			n++;
		}
	}
	return n;
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
	free(prof->nodes);
	ana_map32_release(&prof->node_index);
	for (size_t i = 0; i < prof->n_modules; i++) {
		free(prof->modules[i].path);
		free(prof->modules[i].segs);
	}
	free(prof->modules);
	free(prof->seg_index);
	free(prof->threads);
	free(prof);
}
