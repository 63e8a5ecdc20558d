/* Call trees merged by function (see ana_ftree.h). A database's nodes and
 * symbolized frames are read in bulk (two queries), each trie node is
 * mapped to its tree node once (a node's path is its parent's plus its own
 * frames), then every site adds its values where its path ends. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "ana_ftree.h"
#include "ana_util.h"
#include "cm_err.h"

#define MAX_DEPTH 4096 /* trie levels followed (a bad database may loop) */
/* Frames in one path of the tree (inline frames included): deeper fails
 * with -CM_E_CORRUPT; the writers' path arrays hold this many. */
#define MAX_FRAMES (MAX_DEPTH * 4)

/* ---- metrics ------------------------------------------------------------ */

static const struct {
	const char *name, *label;
	bool bytes;
} metrics[ANA_N_METRICS] = {
	[ANA_M_CALLS] = { "calls", "Allocation calls", false },
	[ANA_M_ALLOCATED] = { "allocated", "Bytes allocated", true },
	[ANA_M_PEAK] = { "peak", "Bytes live at the peak", true },
	[ANA_M_LEAKED] = { "leaked", "Leaked bytes", true },
	[ANA_M_TEMPORARY] = { "temporary", "Temporary allocations", false },
};

const char *ana_metric_name(enum ana_metric m)
{
	return m < ANA_N_METRICS ? metrics[m].name : "?";
}

const char *ana_metric_label(enum ana_metric m)
{
	return m < ANA_N_METRICS ? metrics[m].label : "?";
}

bool ana_metric_is_bytes(enum ana_metric m)
{
	return m < ANA_N_METRICS && metrics[m].bytes;
}

int ana_metric_parse(const char *s)
{
	for (int m = 0; m < ANA_N_METRICS; m++)
		if (!strcmp(s, metrics[m].name))
			return m;
	return -1;
}

/* ---- string interning ----------------------------------------------------- */

/* Distinct strings (by content, a NUL-separated pair allowed: the key
 * length is explicit), each an index. */
struct strtab {
	char **strs;       /* owned copies */
	size_t *lens;
	size_t n, cap;
	uint32_t *slots;   /* index + 1, 0 = empty; open addressing */
	size_t n_slots;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int strtab_rehash(struct strtab *t)
{
	size_t n_slots = t->n_slots ? t->n_slots * 2 : 256;
	uint32_t *slots = calloc(n_slots, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++) {
		size_t j = hash_bytes(t->strs[i], t->lens[i]) & (n_slots - 1);
		while (slots[j])
			j = (j + 1) & (n_slots - 1);
		slots[j] = (uint32_t)i + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->n_slots = n_slots;
	return 0;
}

/* The index of the len bytes at s, added when new. Returns 0 with *idx
 * set, or -ENOMEM. */
static int strtab_intern(struct strtab *t, const char *s, size_t len, uint32_t *idx)
{
	if ((t->n + 1) * 2 > t->n_slots)
		CM_TRY(strtab_rehash(t));
	size_t j = hash_bytes(s, len) & (t->n_slots - 1);
	for (; t->slots[j]; j = (j + 1) & (t->n_slots - 1)) {
		uint32_t i = t->slots[j] - 1;
		if (t->lens[i] == len && !memcmp(t->strs[i], s, len)) {
			*idx = i;
			return 0;
		}
	}
	if (t->n >= UINT32_MAX - 1)
		return -ENOMEM;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **strs = realloc(t->strs, cap * sizeof(*strs));
		if (!strs)
			return -ENOMEM;
		t->strs = strs;
		size_t *lens = realloc(t->lens, cap * sizeof(*lens));
		if (!lens)
			return -ENOMEM;
		t->lens = lens;
		t->cap = cap;
	}
	char *c = malloc(len + 1);
	if (!c)
		return -ENOMEM;
	memcpy(c, s, len);
	c[len] = 0;
	t->strs[t->n] = c;
	t->lens[t->n] = len;
	t->slots[j] = (uint32_t)t->n + 1;
	*idx = (uint32_t)t->n++;
	return 0;
}

static void strtab_release(struct strtab *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->strs[i]);
	free(t->strs);
	free(t->lens);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* ---- the tree ------------------------------------------------------------------ */

struct ana_ftree {
	struct ana_ftree_node *nodes;
	size_t n, cap;
	struct ana_ftree_frame *frames; /* parallel to names */
	size_t frames_cap;
	struct strtab names;   /* function names: the frames' identity */
	struct strtab modules; /* module basenames */
	struct strtab files;
	struct ana_map64 children; /* child_key() -> child index + 1 (0: none yet) */
};

/* Nonzero, and no overflow: parent is a node index, below UINT32_MAX - 1. */
static uint64_t child_key(uint32_t parent, uint32_t frame)
{
	return ((uint64_t)parent << 32 | frame) + 1;
}

static int node_add(struct ana_ftree *t, uint32_t parent, uint32_t frame, uint32_t *out)
{
	if (t->n >= UINT32_MAX - 1)
		return -ENOMEM;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct ana_ftree_node *nn = realloc(t->nodes, cap * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		t->nodes = nn;
		t->cap = cap;
	}
	struct ana_ftree_node *n = &t->nodes[t->n];
	memset(n, 0, sizeof(*n));
	n->parent = parent;
	n->frame = frame;
	n->depth = parent == ANA_FT_NONE ? 0 : t->nodes[parent].depth + 1;
	n->file = ANA_FT_NONE;
	n->first_child = n->next_sibling = ANA_FT_NONE;
	*out = (uint32_t)t->n++;
	return 0;
}

/* The child of parent for frame (created when new, with file:line as its
 * location). Returns 0 with *out set, or -ENOMEM. */
static int child_of(struct ana_ftree *t, uint32_t parent, uint32_t frame, uint32_t file,
		    uint32_t line, uint32_t *out)
{
	int fresh;
	uint64_t *v = ana_map64_slot(&t->children, child_key(parent, frame), &fresh);

	if (!v)
		return -ENOMEM;
	if (*v) {
		*out = (uint32_t)(*v - 1);
		return 0;
	}
	uint32_t idx;
	if (t->nodes[parent].depth >= MAX_FRAMES)
		return -CM_E_CORRUPT;
	CM_TRY(node_add(t, parent, frame, &idx));
	t->nodes[idx].file = file;
	t->nodes[idx].line = line;
	*v = (uint64_t)idx + 1;
	*out = idx;
	return 0;
}

int ana_ftree_new(struct ana_ftree **out)
{
	struct ana_ftree *t = calloc(1, sizeof(*t));
	uint32_t root;

	if (!t || node_add(t, ANA_FT_NONE, ANA_FT_NONE, &root) < 0) {
		ana_ftree_free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void ana_ftree_free(struct ana_ftree *t)
{
	if (!t)
		return;
	free(t->nodes);
	free(t->frames);
	strtab_release(&t->names);
	strtab_release(&t->modules);
	strtab_release(&t->files);
	ana_map64_release(&t->children);
	free(t);
}

/* The frame of function (its module basename recorded when the function
 * is first seen: frames are told apart by name alone, so the call sites of
 * two builds with differently named executables still match). Returns 0
 * or -ENOMEM. */
static int frame_of(struct ana_ftree *t, const char *function, const char *module,
		    uint32_t *out)
{
	size_t before = t->names.n;
	uint32_t mod;

	CM_TRY(strtab_intern(&t->names, function, strlen(function), out));
	if (t->names.n == before)
		return 0;
	if (t->names.n > t->frames_cap) {
		size_t cap = t->names.cap;
		struct ana_ftree_frame *fr = realloc(t->frames, cap * sizeof(*fr));
		if (!fr)
			return -ENOMEM;
		t->frames = fr;
		t->frames_cap = cap;
	}
	CM_TRY(strtab_intern(&t->modules, module, strlen(module), &mod));
	t->frames[*out].function = t->names.strs[*out];
	t->frames[*out].module = t->modules.strs[mod];
	return 0;
}

/* ---- reading a database ------------------------------------------------------ */

/* One symbolized frame of an address. */
struct aframe {
	uint32_t frame;   /* tree frame */
	uint32_t file;    /* files index, ANA_FT_NONE: none */
	uint32_t line;
	bool op_new;      /* inside operator new / new[] (skipped at the leaf) */
};

struct loader {
	struct ana_ftree *t;
	sqlite3 *db;
	const char *name;
	char *errmsg;
	size_t cap;
	/* nodes */
	uint32_t *ids, *parents, *addrs; /* trie id, parent trie id, address id */
	size_t n_nodes;
	/* trie id -> index + 1: dense[id] while the ids stay below 2 x nodes +
	 * 64 Ki (a recorder's ids are 1, 2, 3...), node_idx (id + 1 -> index)
	 * for the others */
	uint32_t *dense;
	size_t dense_cap;
	struct ana_map32 node_idx;
	uint32_t *memo;                  /* index -> tree node, ANA_FT_NONE unset */
	/* address id + 1 -> first aframe + 1; frames of an address are
	 * consecutive, innermost (depth 0) first, n_af[first] of them */
	struct ana_map32 addr_first;
	struct aframe *af;
	uint32_t *n_af;
	size_t n_frames, af_cap;
};

static int load_fail(struct loader *l, int rc, const char *what)
{
	if (l->errmsg && l->cap) {
		if (rc == -ENOMEM)
			snprintf(l->errmsg, l->cap, "'%s': out of memory", l->name);
		else if (rc == -CM_E_SQLITE)
			snprintf(l->errmsg, l->cap, "'%s': cannot read %s: %s", l->name, what,
				 sqlite3_errmsg(l->db));
		else
			snprintf(l->errmsg, l->cap, "'%s': %s", l->name, what);
	}
	return rc;
}

/* Remember that trie id is at index idx. Returns 0 or -ENOMEM. */
static int node_put(struct loader *l, uint32_t id, uint32_t idx)
{
	if ((size_t)id < 2 * (l->n_nodes + 1) + 65536) {
		if (id >= l->dense_cap) {
			size_t cap = l->dense_cap ? l->dense_cap : 65536;
			while (cap <= id)
				cap *= 2;
			uint32_t *nd = realloc(l->dense, cap * sizeof(*nd));
			if (!nd)
				return -ENOMEM;
			memset(nd + l->dense_cap, 0, (cap - l->dense_cap) * sizeof(*nd));
			l->dense = nd;
			l->dense_cap = cap;
		}
		if (!l->dense[id]) {
			l->dense[id] = idx + 1;
			return 0;
		}
	}
	return ana_map32_put(&l->node_idx, id + 1, idx);
}

/* The index of trie id: 1 and *idx set, or 0. */
static inline int node_get(const struct loader *l, uint32_t id, uint32_t *idx)
{
	if (id < l->dense_cap && l->dense[id]) {
		*idx = l->dense[id] - 1;
		return 1;
	}
	return ana_map32_get(&l->node_idx, id + 1, idx);
}

static int grow_u32(uint32_t **p, size_t need, size_t *cap)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 1024;
	while (c < need)
		c *= 2;
	uint32_t *np = realloc(*p, c * sizeof(*np));
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = c;
	return 0;
}

static int load_nodes(struct loader *l)
{
	sqlite3_stmt *st = NULL;
	size_t c1 = 0, c2 = 0, c3 = 0;
	int rc;

	if (sqlite3_prepare_v2(l->db, "SELECT id, parent, address_id FROM nodes", -1, &st,
			       NULL) != SQLITE_OK)
		return load_fail(l, -CM_E_SQLITE, "the stack nodes");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 id = sqlite3_column_int64(st, 0);
		sqlite3_int64 parent = sqlite3_column_int64(st, 1);
		sqlite3_int64 aid = sqlite3_column_int64(st, 2);
		if (id < 0 || id >= UINT32_MAX)
			continue; /* not a trie id: unreachable from a site */
		if (parent < 0 || parent >= UINT32_MAX || aid < 0 || aid >= UINT32_MAX) {
			sqlite3_finalize(st);
			return load_fail(l, -CM_E_CORRUPT, "a stack node's parent or address is out of range");
		}
		if (grow_u32(&l->ids, l->n_nodes + 1, &c1) < 0 ||
		    grow_u32(&l->parents, l->n_nodes + 1, &c2) < 0 ||
		    grow_u32(&l->addrs, l->n_nodes + 1, &c3) < 0 ||
		    node_put(l, (uint32_t)id, (uint32_t)l->n_nodes) < 0) {
			sqlite3_finalize(st);
			return load_fail(l, -ENOMEM, NULL);
		}
		l->ids[l->n_nodes] = (uint32_t)id;
		l->parents[l->n_nodes] = (uint32_t)parent;
		l->addrs[l->n_nodes] = (uint32_t)aid;
		l->n_nodes++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return load_fail(l, -CM_E_SQLITE, "the stack nodes");
	l->memo = malloc((l->n_nodes ? l->n_nodes : 1) * sizeof(*l->memo));
	if (!l->memo)
		return load_fail(l, -ENOMEM, NULL);
	memset(l->memo, 0xff, (l->n_nodes ? l->n_nodes : 1) * sizeof(*l->memo));
	return 0;
}

static const char *col_text(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s ? (const char *)s : "";
}

static int load_frames(struct loader *l)
{
	sqlite3_stmt *st = NULL;
	uint32_t cur = UINT32_MAX, first = 0;
	size_t c2 = 0;
	int rc;

	if (sqlite3_prepare_v2(l->db,
			       "SELECT address_id, depth, function, file, line, module"
			       " FROM address_frames ORDER BY address_id, depth",
			       -1, &st, NULL) != SQLITE_OK)
		return load_fail(l, -CM_E_SQLITE, "the frames");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 aid = sqlite3_column_int64(st, 0);
		const char *fn = col_text(st, 2), *file = col_text(st, 3);
		struct aframe a;

		if (aid < 0 || aid >= UINT32_MAX)
			continue;
		if (l->n_frames == l->af_cap) {
			size_t cap = l->af_cap ? l->af_cap * 2 : 1024;
			struct aframe *na = realloc(l->af, cap * sizeof(*na));
			if (!na)
				goto nomem;
			l->af = na;
			l->af_cap = cap;
		}
		if (grow_u32(&l->n_af, l->n_frames + 1, &c2) < 0)
			goto nomem;
		if (frame_of(l->t, fn, ana_basename(col_text(st, 5)), &a.frame) < 0)
			goto nomem;
		a.file = ANA_FT_NONE;
		if (file[0] && strtab_intern(&l->t->files, file, strlen(file), &a.file) < 0)
			goto nomem;
		a.line = (uint32_t)sqlite3_column_int64(st, 4);
		a.op_new = !strncmp(fn, "operator new", 12);
		if ((uint32_t)aid != cur) {
			cur = (uint32_t)aid;
			first = (uint32_t)l->n_frames;
			if (ana_map32_put(&l->addr_first, cur + 1, first + 1) < 0)
				goto nomem;
			l->n_af[first] = 0;
		}
		l->af[l->n_frames++] = a;
		l->n_af[first]++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return load_fail(l, -CM_E_SQLITE, "the frames");
	return 0;
nomem:
	sqlite3_finalize(st);
	return load_fail(l, -ENOMEM, NULL);
}

/* The frames of the node at index idx (innermost first). */
static const struct aframe *node_frames(const struct loader *l, size_t idx, uint32_t *n)
{
	uint32_t first;

	if (!ana_map32_get(&l->addr_first, l->addrs[idx] + 1, &first)) {
		*n = 0;
		return NULL;
	}
	*n = l->n_af[first - 1];
	return &l->af[first - 1];
}

/* Insert frames [0, k) of a node, outermost (k - 1) first, under tree node
 * at; returns the last one's tree node in *out. */
static int insert_frames(struct loader *l, uint32_t at, const struct aframe *f, uint32_t k,
			 uint32_t *out)
{
	while (k-- > 0)
		CM_TRY(child_of(l->t, at, f[k].frame, f[k].file, f[k].line, &at));
	*out = at;
	return 0;
}

/* The tree node of the whole path of the node at index idx. */
static int path_node(struct loader *l, size_t idx, uint32_t *out)
{
	uint32_t chain[MAX_DEPTH];
	size_t depth = 0, i = idx;
	uint32_t at = 0, pidx;

	/* Up to a node already mapped, or the outermost one. */
	while (l->memo[i] == ANA_FT_NONE) {
		if (depth == MAX_DEPTH)
			return load_fail(l, -CM_E_CORRUPT, "stack deeper than 4096 nodes (a cycle?)");
		chain[depth++] = (uint32_t)i;
		uint32_t parent = l->parents[i];
		if (!parent)
			break;
		if (!node_get(l, parent, &pidx))
			return load_fail(l, -CM_E_CORRUPT, "a stack node's parent is missing");
		i = pidx;
	}
	if (l->memo[i] != ANA_FT_NONE)
		at = l->memo[i];
	while (depth--) {
		uint32_t n;
		const struct aframe *f = node_frames(l, chain[depth], &n);
		CM_TRY(insert_frames(l, at, f, n, &at));
		l->memo[chain[depth]] = at;
	}
	*out = at;
	return 0;
}

/* The tree node where the site at node index idx ends: its path without the
 * innermost frames inside operator new. */
static int site_node(struct loader *l, size_t idx, uint32_t *out)
{
	size_t i = idx;
	uint32_t pidx, n, k;

	for (int level = 0; level < MAX_DEPTH; level++) {
		const struct aframe *f = node_frames(l, i, &n);
		for (k = 0; k < n && f[k].op_new; k++)
			;
		if (k < n || n == 0) {
			if (k == 0)
				return path_node(l, i, out);
			/* Keep frames [k, n) of this node under its parent's path. */
			uint32_t at = 0;
			if (l->parents[i]) {
				if (!node_get(l, l->parents[i], &pidx))
					return load_fail(l, -CM_E_CORRUPT,
							 "a stack node's parent is missing");
				CM_TRY(path_node(l, pidx, &at));
			}
			for (uint32_t j = n; j-- > k;)
				CM_TRY(child_of(l->t, at, f[j].frame, f[j].file, f[j].line, &at));
			*out = at;
			return 0;
		}
		/* Every frame of this node is operator new: skip it. */
		if (!l->parents[i] || !node_get(l, l->parents[i], &pidx))
			break;
		i = pidx;
	}
	/* Nothing but operator new: keep the whole stack. */
	return path_node(l, idx, out);
}

static int load_sites(struct loader *l, int side)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(l->db,
			       "SELECT node_id, alloc_calls, alloc_bytes, peak_bytes,"
			       " leaked_bytes, temp_calls FROM sites",
			       -1, &st, NULL) != SQLITE_OK)
		return load_fail(l, -CM_E_SQLITE, "the call sites");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 id = sqlite3_column_int64(st, 0);
		uint32_t idx, at;

		if (id < 0 || id >= UINT32_MAX || !node_get(l, (uint32_t)id, &idx)) {
			sqlite3_finalize(st);
			return load_fail(l, -CM_E_CORRUPT, "a call site names no stack node");
		}
		rc = site_node(l, idx, &at);
		if (rc < 0) {
			sqlite3_finalize(st);
			return rc;
		}
		struct ana_ftree_node *n = &l->t->nodes[at];
		for (int m = 0; m < ANA_N_METRICS; m++) {
			sqlite3_int64 v = sqlite3_column_int64(st, 1 + m);
			if (v < 0) {
				sqlite3_finalize(st);
				return load_fail(l, -CM_E_CORRUPT, "a call site has a negative figure");
			}
			n->self[side][m] += (uint64_t)v;
		}
		n->sites |= (uint8_t)(1u << side);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return load_fail(l, -CM_E_SQLITE, "the call sites");
	return 0;
}

int ana_ftree_add_db(struct ana_ftree *t, struct ana_db *db, int side, const char *name,
		     char *errmsg, size_t cap)
{
	struct loader l = { .t = t, .db = ana_db_sqlite(db), .name = name, .errmsg = errmsg,
			    .cap = cap };
	int rc;

	if (side < 0 || side > 1)
		return -EINVAL;
	rc = load_nodes(&l);
	if (rc == 0)
		rc = load_frames(&l);
	if (rc == 0)
		rc = load_sites(&l, side);
	if (rc == -ENOMEM)
		load_fail(&l, rc, NULL);
	else if (rc == -CM_E_CORRUPT && errmsg && cap && !errmsg[0])
		load_fail(&l, rc, "a stack deeper than 16384 frames");
	free(l.ids);
	free(l.parents);
	free(l.addrs);
	free(l.memo);
	free(l.af);
	free(l.n_af);
	ana_map32_release(&l.node_idx);
	free(l.dense);
	ana_map32_release(&l.addr_first);
	return rc;
}

/* ---- totals and order ----------------------------------------------------- */

static int finish_side, finish_metric; /* qsort has no context argument */
static const struct ana_ftree *finish_tree;

static int child_cmp(const void *a, const void *b)
{
	const struct ana_ftree_node *x = &finish_tree->nodes[*(const uint32_t *)a];
	const struct ana_ftree_node *y = &finish_tree->nodes[*(const uint32_t *)b];
	uint64_t vx = x->total[finish_side][finish_metric];
	uint64_t vy = y->total[finish_side][finish_metric];

	if (vx != vy)
		return vx > vy ? -1 : 1;
	return strcmp(finish_tree->frames[x->frame].function,
		      finish_tree->frames[y->frame].function);
}

int ana_ftree_finish(struct ana_ftree *t, int side, enum ana_metric m)
{
	/* Children are created after their parents: a reverse sweep sums. */
	for (size_t i = 0; i < t->n; i++)
		memcpy(t->nodes[i].total, t->nodes[i].self, sizeof(t->nodes[i].total));
	for (size_t i = t->n; i-- > 1;) {
		struct ana_ftree_node *c = &t->nodes[i], *p = &t->nodes[c->parent];
		for (int s = 0; s < 2; s++)
			for (int k = 0; k < ANA_N_METRICS; k++)
				p->total[s][k] += c->total[s][k];
	}
	/* Children lists: gather each parent's children, sort, link. */
	uint32_t *order = malloc((t->n ? t->n : 1) * sizeof(*order));
	uint32_t *start = calloc(t->n + 1, sizeof(*start));
	if (!order || !start) {
		free(order);
		free(start);
		return -ENOMEM;
	}
	for (size_t i = 1; i < t->n; i++)
		start[t->nodes[i].parent + 1]++;
	for (size_t i = 0; i < t->n; i++)
		start[i + 1] += start[i];
	for (size_t i = 1; i < t->n; i++)
		order[start[t->nodes[i].parent]++] = (uint32_t)i;
	/* start[p] is now the end of p's run; runs are in parent order. */
	finish_tree = t;
	finish_side = side;
	finish_metric = m;
	size_t begin = 0;
	for (size_t p = 0; p < t->n; p++) {
		size_t end = start[p];
		struct ana_ftree_node *pn = &t->nodes[p];
		if (end > begin)
			qsort(order + begin, end - begin, sizeof(*order), child_cmp);
		pn->first_child = end > begin ? order[begin] : ANA_FT_NONE;
		for (size_t j = begin; j < end; j++)
			t->nodes[order[j]].next_sibling = j + 1 < end ? order[j + 1] : ANA_FT_NONE;
		begin = end;
	}
	finish_tree = NULL;
	free(order);
	free(start);
	return 0;
}

const struct ana_ftree_node *ana_ftree_nodes(const struct ana_ftree *t, size_t *n)
{
	*n = t->n;
	return t->nodes;
}

const struct ana_ftree_frame *ana_ftree_frames(const struct ana_ftree *t, size_t *n)
{
	*n = t->names.n;
	return t->frames;
}

const char *ana_ftree_file(const struct ana_ftree *t, const struct ana_ftree_node *n)
{
	return n->file == ANA_FT_NONE ? "" : t->files.strs[n->file];
}

/* ---- output --------------------------------------------------------------------- */

/* Write a frame name for folded stacks: ';' separates frames there. */
static void folded_name(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc(*s == ';' ? ':' : *s == '\n' ? ' ' : *s, f);
}

/* The node after cur in depth-first child order, not entering the subtrees
 * with nothing of metric m on side. path[0..*depth) holds cur's ancestors
 * (no path is deeper than MAX_FRAMES: child_of() refuses it). */
static uint32_t walk_next(const struct ana_ftree *t, int side, enum ana_metric m, uint32_t *path,
			  size_t *depth, uint32_t cur)
{
	const struct ana_ftree_node *n = &t->nodes[cur];

	if (n->total[side][m] && n->first_child != ANA_FT_NONE) {
		path[(*depth)++] = cur;
		return n->first_child;
	}
	/* Next sibling, or climb. */
	while (cur != ANA_FT_NONE && t->nodes[cur].next_sibling == ANA_FT_NONE)
		cur = *depth ? path[--*depth] : ANA_FT_NONE;
	return cur != ANA_FT_NONE ? t->nodes[cur].next_sibling : ANA_FT_NONE;
}

int ana_ftree_write_folded(const struct ana_ftree *t, int side, enum ana_metric m, FILE *f)
{
	uint32_t path[MAX_FRAMES + 1];
	size_t depth = 0;

	for (uint32_t cur = t->nodes[0].first_child; cur != ANA_FT_NONE;
	     cur = walk_next(t, side, m, path, &depth, cur)) {
		const struct ana_ftree_node *n = &t->nodes[cur];
		if (!n->total[side][m] || !n->self[side][m])
			continue;
		for (size_t i = 0; i < depth; i++) {
			folded_name(f, t->frames[t->nodes[path[i]].frame].function);
			fputc(';', f);
		}
		folded_name(f, t->frames[n->frame].function);
		fprintf(f, " %llu\n", (unsigned long long)n->self[side][m]);
	}
	return ferror(f) ? -EIO : 0;
}

int ana_ftree_write_speedscope(const struct ana_ftree *t, int side, enum ana_metric m,
			       const char *name, FILE *f)
{
	uint32_t path[MAX_FRAMES + 1];

	fputs("{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\","
	      "\"exporter\":\"memana\",\"name\":", f);
	ana_json_str(f, name, strlen(name));
	fputs(",\"activeProfileIndex\":0,\"shared\":{\"frames\":[", f);
	for (size_t i = 0; i < t->names.n; i++) {
		const struct ana_ftree_frame *fr = &t->frames[i];
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		ana_json_str(f, fr->function, strlen(fr->function));
		fputc('}', f);
	}
	fputs("]},\"profiles\":[{\"type\":\"sampled\",\"name\":", f);
	ana_json_str(f, ana_metric_label(m), strlen(ana_metric_label(m)));
	fprintf(f, ",\"unit\":\"%s\",\"startValue\":0,\"endValue\":%llu,\"samples\":[",
		ana_metric_is_bytes(m) ? "bytes" : "none",
		(unsigned long long)t->nodes[0].total[side][m]);
	/* Samples, then the weights in the same order (a second walk). */
	for (int pass = 0; pass < 2; pass++) {
		size_t depth = 0;
		bool first = true;
		if (pass == 1)
			fputs("],\"weights\":[", f);
		for (uint32_t cur = t->nodes[0].first_child; cur != ANA_FT_NONE;
		     cur = walk_next(t, side, m, path, &depth, cur)) {
			const struct ana_ftree_node *n = &t->nodes[cur];
			if (!n->total[side][m] || !n->self[side][m])
				continue;
			if (!first)
				fputc(',', f);
			first = false;
			if (pass == 0) {
				fputc('[', f);
				for (size_t i = 0; i < depth; i++)
					fprintf(f, "%u,", t->nodes[path[i]].frame);
				fprintf(f, "%u]", n->frame);
			} else {
				fprintf(f, "%llu", (unsigned long long)n->self[side][m]);
			}
		}
	}
	fputs("]}]}\n", f);
	return ferror(f) ? -EIO : 0;
}

/* A node kept in the HTML flame graph. */
struct keep {
	uint32_t node;
	uint64_t value;
};

static int keep_cmp(const void *a, const void *b)
{
	const struct keep *x = a, *y = b;

	if (x->value != y->value)
		return x->value > y->value ? -1 : 1;
	return x->node < y->node ? -1 : x->node > y->node;
}

static void flame_node(const struct ana_ftree *t, int side, enum ana_metric m, uint32_t i,
		       const bool *kept, uint32_t *frame_idx, FILE *f, size_t depth)
{
	const struct ana_ftree_node *n = &t->nodes[i];

	fprintf(f, "[%d,%llu,[", i == 0 ? -1 : (int)frame_idx[n->frame],
		(unsigned long long)n->total[side][m]);
	bool first = true;
	for (uint32_t c = n->first_child; c != ANA_FT_NONE; c = t->nodes[c].next_sibling) {
		if (!kept[c])
			continue;
		if (!first)
			fputc(',', f);
		first = false;
		flame_node(t, side, m, c, kept, frame_idx, f, depth + 1);
	}
	fputs("]]", f);
}

int ana_ftree_write_flame_json(const struct ana_ftree *t, int side, enum ana_metric m,
			       size_t max_nodes, FILE *f)
{
	/* Choose the nodes: the widest first, each only after its parent
	 * (a node is never wider than its parent, so taking the widest
	 * nonzero nodes in order keeps every kept node's parent). */
	struct keep *cand = malloc(t->n * sizeof(*cand));
	bool *kept = calloc(t->n, sizeof(*kept));
	uint32_t *frame_idx = malloc((t->names.n ? t->names.n : 1) * sizeof(*frame_idx));
	uint32_t *frames_used = malloc((t->names.n ? t->names.n : 1) * sizeof(*frames_used));
	size_t n_cand = 0, n_frames = 0;

	if (!cand || !kept || !frame_idx || !frames_used) {
		free(cand);
		free(kept);
		free(frame_idx);
		free(frames_used);
		return -ENOMEM;
	}
	for (size_t i = 1; i < t->n; i++)
		if (t->nodes[i].total[side][m])
			cand[n_cand++] = (struct keep){ (uint32_t)i, t->nodes[i].total[side][m] };
	qsort(cand, n_cand, sizeof(*cand), keep_cmp);
	kept[0] = true;
	for (size_t i = 0, k = 0; i < n_cand && k < max_nodes; i++) {
		const struct ana_ftree_node *n = &t->nodes[cand[i].node];
		if (!kept[n->parent])
			continue; /* equal values: the parent sorted later */
		kept[cand[i].node] = true;
		k++;
	}
	memset(frame_idx, 0xff, (t->names.n ? t->names.n : 1) * sizeof(*frame_idx));
	for (size_t i = 1; i < t->n; i++) {
		uint32_t fr = t->nodes[i].frame;
		if (kept[i] && frame_idx[fr] == UINT32_MAX) {
			frame_idx[fr] = (uint32_t)n_frames;
			frames_used[n_frames++] = fr;
		}
	}
	fputs("{\"label\":", f);
	ana_json_str(f, ana_metric_label(m), strlen(ana_metric_label(m)));
	fprintf(f, ",\"unit\":\"%s\",\"total\":%llu,\"frames\":[",
		ana_metric_is_bytes(m) ? "bytes" : "calls",
		(unsigned long long)t->nodes[0].total[side][m]);
	for (size_t i = 0; i < n_frames; i++) {
		const struct ana_ftree_frame *fr = &t->frames[frames_used[i]];
		fputs(i ? ",[" : "[", f);
		ana_json_str(f, fr->function, strlen(fr->function));
		fputc(',', f);
		ana_json_str(f, fr->module, strlen(fr->module));
		fputc(']', f);
	}
	fputs("],\"root\":", f);
	flame_node(t, side, m, 0, kept, frame_idx, f, 0);
	fputc('}', f);
	free(cand);
	free(kept);
	free(frame_idx);
	free(frames_used);
	return ferror(f) ? -EIO : 0;
}
