/* Lock-free stack trie: a chain of open-addressing tables, oldest (smallest)
 * first. A slot is claimed by CAS on its id word (0 = empty, SLOT_BUSY =
 * being filled); the key is written, then the id published with a release
 * store, or the slot is left dead (SLOT_DEAD) when a newer table appeared
 * meanwhile. Lookups probe the tables that may hold the key (those from
 * its parent's on); inserts go to the newest only.
 * Hot path: no malloc, no lock; one mmap per new table. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

#include "rec_prim.h"
#include "rec_trie.h"

/*
 * Sizes. Table k has 2^(16 + k) slots and takes ordinary inserts while it
 * holds fewer nodes than 3/4 of its slots; then table k + 1 is mapped. Why
 * (peak RSS measured with build/bin/memrec on the tools/bench programs):
 * - A table gets all its pages touched once it holds a few nodes per 4 KiB
 *   page (256 slots; with transparent huge pages, per 2 MiB), so resident
 *   memory is the size of the tables in use: 16 / load bytes a node when
 *   the newest is full, twice that just after a switch (with growth by 4:
 *   four times). cc1plus's 215 162 nodes fit tables 0-2 (7 MiB; the single
 *   2^22-slot table touched all of its 64 MiB); the 6.0M nodes of
 *   tools/bench/tree 3000000 fit tables 0-6 (127 MiB) at load 3/4, but
 *   need table 7 too at load 1/2 (255 MiB: 128 MB more peak RSS, measured).
 * - Load 3/4 costs longer probes (linear probing: an unsuccessful one reads
 *   8.5 slots on average, 2.5 at 1/2; a successful one 2.5, 1.5), but they
 *   run over adjacent 64-byte lines after the first miss, and neither
 *   cc1plus nor tree measured slower than at 1/2.
 * - Doubling needs 8 tables for an 8M-node cap. Growth by 4 would need 5:
 *   cc1plus would fit tables 0-1 (2 MB less peak RSS), but tree would need
 *   the 256 MiB table 4 (214 MB more). A walk skips the tables older than
 *   the parent's (first_table()) and prefetches the first slots of the
 *   others, so the many tables cost the deep new nodes of a large trie
 *   about one miss.
 * - Outermost nodes may fill the last table (or the last one that could be
 *   mapped) to 7/8: a new thread still gets its outermost frame when the
 *   trie refuses everything else (the single table's ROOT_LIMIT before).
 * Mapped in all (MAP_NORESERVE, touched lazily): 255 MiB at most.
 */
#define N_TAB REC_TRIE_TABLES
#define TAB_LOG2(k) (REC_TRIE_FIRST_LOG2 + (k))
#define TAB_SLOTS(k) ((uint32_t)1 << TAB_LOG2(k))
#define TAB_BYTES(k) ((size_t)TAB_SLOTS(k) * sizeof(struct slot))
#define TAB_LIMIT(k) (TAB_SLOTS(k) / 4 * 3)      /* ordinary nodes */
#define TAB_ROOT_LIMIT(k) (TAB_SLOTS(k) / 8 * 7) /* outermost, last table */

#define SLOT_BUSY UINT32_MAX       /* claimed, being filled */
#define SLOT_DEAD (UINT32_MAX - 1) /* claimed, then given up: lookups skip it */

/* Table pointer values that are not a table (g_trie.tab[k]). */
#define TAB_MAKING ((struct slot *)1) /* one thread is mapping it */
#define TAB_FAILED ((struct slot *)2) /* could not be mapped (or its mapper
				       * never finished): the chain ends */
#define TAB_IS_REAL(p) ((uintptr_t)(p) > 2)

/* Test builds (tests/unit/test_rec_trie.c) pause at these points now and
 * then to widen the race windows; nothing in the library. */
enum { PAUSE_WALK, PAUSE_CLAIM, PAUSE_CHECK, PAUSE_ID, PAUSE_PUBLISH };
#ifdef REC_TRIE_TEST
static void rec_trie_test_pause(int where);
#define TEST_PAUSE(where) rec_trie_test_pause(where)
#else
#define TEST_PAUSE(where) ((void)0)
#endif

_Static_assert(REC_TRIE_TABLES >= 1 && TAB_LOG2(REC_TRIE_TABLES - 1) <= 30, "trie sizes");
_Static_assert((uint64_t)REC_TRIE_NODE_CAP + REC_TRIE_ROOT_EXTRA < SLOT_DEAD, "ids below markers");

struct slot {
	_Atomic uint32_t id; /* 0 empty, SLOT_BUSY filling, SLOT_DEAD, else node id */
	uint32_t parent;
	uint64_t addr;
};

_Static_assert(sizeof(struct slot) == 16, "slot layout");

static struct {
	/* Read by every lookup, written when a table is added. */
	_Atomic uint32_t n_tab; /* tables published: tab[0 .. n_tab - 1] are real */
	_Atomic uint32_t gen;   /* bumped by every new trie (thread memos) */
	uint32_t id_base[N_TAB]; /* next_id when table k was begun (written
				  * before the table is published) */
	_Atomic(struct slot *) tab[N_TAB]; /* NULL (not yet), TAB_MAKING, TAB_FAILED or a table */
	/* Written by every insert. */
	_Alignas(64) _Atomic uint32_t next_id; /* next node id, from 1 */
} g_trie;

uint32_t rec_trie_gen(void)
{
	return atomic_load_explicit(&g_trie.gen, memory_order_relaxed);
}

/* Make t0 the first and only table of a new trie. No thread may be inside
 * rec_trie_get(). */
static void start(struct slot *t0)
{
	atomic_store(&g_trie.tab[0], t0);
	for (uint32_t k = 1; k < N_TAB; k++)
		atomic_store(&g_trie.tab[k], NULL);
	g_trie.id_base[0] = 1;
	atomic_store(&g_trie.next_id, 1);
	atomic_store(&g_trie.n_tab, 1);
	atomic_fetch_add(&g_trie.gen, 1);
}

int rec_trie_init(void)
{
	struct slot *t0 = rec_prim_map(TAB_BYTES(0), 1);

	if (!t0)
		return -ENOMEM;
	start(t0);
	return 0;
}

int rec_trie_reset(int unmap_old)
{
	struct slot *old[N_TAB];
	struct slot *t0 = rec_prim_map(TAB_BYTES(0), 1);

	if (!t0)
		return -ENOMEM;
	for (uint32_t k = 0; k < N_TAB; k++)
		old[k] = atomic_load(&g_trie.tab[k]);
	start(t0);
	if (unmap_old)
		for (uint32_t k = 0; k < N_TAB; k++)
			if (TAB_IS_REAL(old[k]))
				rec_prim_unmap(old[k], TAB_BYTES(k));
	return 0;
}

static inline uint64_t hash(uint32_t parent, uint64_t addr)
{
	uint64_t h = addr * 0x9e3779b97f4a7c15ull ^ ((uint64_t)parent * 0xc2b2ae3d27d4eb4full);

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* One round of a bounded wait: spin, then yield. Returns 0 after ~1 s of
 * rounds (n counts them), else 1. The awaited thread was preempted, or it
 * never finishes (it longjmp()ed out of a signal handler, or it is a
 * thread _Fork() did not copy). */
static int wait_round(unsigned *n)
{
	if (++*n > 1000000)
		return 0;
	if (*n > 1000)
		rec_prim_yield();
	else
		cpu_relax();
	return 1;
}

/* Walk table tab (mask + 1 slots) from *pos for (parent, addr). Returns its
 * id; 0 when an empty slot ends the walk, with *pos set to that slot; or
 * SLOT_BUSY when a slot stayed busy for ~1 s (or no slot is empty). */
static uint32_t probe(struct slot *tab, uint32_t mask, uint32_t parent, uint64_t addr,
		      uint32_t *pos)
{
	uint32_t i = *pos;

	for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
		struct slot *s = &tab[i];
		/* seq_cst: a read of 0 here must be ordered (see rec_trie_get) */
		uint32_t id = atomic_load(&s->id);

		for (unsigned w = 0; id == SLOT_BUSY; id = atomic_load(&s->id))
			if (!wait_round(&w))
				return SLOT_BUSY;
		if (id == 0) {
			*pos = i;
			return 0;
		}
		if (id != SLOT_DEAD && s->parent == parent && s->addr == addr)
			return id;
	}
	return SLOT_BUSY;
}

/* Table k (the newest) is full: see that table k + 1 exists, mapping it or
 * waiting for the thread that does. Returns 1 when it exists, 0 when the
 * chain ends at k (the last size, no memory, or its mapper vanished). */
static int grow(uint32_t k)
{
	struct slot *t = NULL;
	unsigned w = 0;

	if (k + 1 >= N_TAB)
		return 0;
	if (atomic_compare_exchange_strong(&g_trie.tab[k + 1], &t, TAB_MAKING)) {
		struct slot *making = TAB_MAKING;

		t = rec_prim_map(TAB_BYTES(k + 1), 1);
		if (!t) {
			atomic_store(&g_trie.tab[k + 1], TAB_FAILED);
			return 0;
		}
		g_trie.id_base[k + 1] = atomic_load(&g_trie.next_id);
		TEST_PAUSE(PAUSE_PUBLISH);
		if (!atomic_compare_exchange_strong(&g_trie.tab[k + 1], &making, t)) {
			rec_prim_unmap(t, TAB_BYTES(k + 1)); /* waiters gave up on us */
			return 0;
		}
	}
	for (;;) {
		uint32_t n = k + 1;

		t = atomic_load(&g_trie.tab[k + 1]);
		if (TAB_IS_REAL(t)) {
			/* Publish it: its mapper, or any thread that sees it
			 * (the mapper may have stopped right here). */
			atomic_compare_exchange_strong(&g_trie.n_tab, &n, k + 2);
			return 1;
		}
		if (t == TAB_FAILED)
			return 0;
		if (!wait_round(&w)) {
			struct slot *making = TAB_MAKING;
			/* Give up on the mapper: the chain ends here, unless
			 * it finished meanwhile (then the loop sees it). */
			atomic_compare_exchange_strong(&g_trie.tab[k + 1], &making, TAB_FAILED);
			w = 0;
		}
	}
}

/*
 * The oldest of the n published tables that may hold a child of parent
 * (TF_NODE_ROOT or an id of this trie): the newest whose id_base is at most
 * parent. A table k is begun only after table k - 1 is full (TAB_LIMIT),
 * and id_base[k] is read after that. A child of parent is inserted by a
 * thread that found parent, so the next_id it reads is above parent (its
 * fetch_add happened before; coherence); if parent >= id_base[k], that
 * next_id says table k - 1, or any older one, is full: the child goes to
 * table k or a newer one (the headroom of a full last table is for
 * outermost nodes, which have no parent). So the walk skips the older
 * tables for the deep, new nodes of a large trie.
 */
static inline uint32_t first_table(uint32_t parent, uint32_t n)
{
	uint32_t j = 0;

	while (j + 1 < n && parent >= g_trie.id_base[j + 1])
		j++;
	return j;
}

/*
 * No key gets two ids. Within one table, every thread inserting a key walks
 * the same probe sequence, and only one can claim its first empty slot; the
 * others wait while it is busy and then find the key (or skip it if dead).
 * Across tables: a pass reads n_tab (L) before walking any table, walks
 * tables first_table() .. n_tab - 1 (the key is in none before), and
 * inserts only into table n_tab - 1 (= k); after claiming a slot there (C)
 * it reads n_tab again (K) and leaves the slot dead and starts over if table
 * k + 1 has been added (P: n_tab k + 1 -> k + 2) meanwhile. Suppose thread A
 * publishes a key in table k and thread B the same key in table j > k. B's
 * L saw P (tables are added in order); then B's walk of table k read 0 (Z)
 * in some slot of the key's sequence up to A's slot (past it, B would have
 * found the key). All of these are seq_cst, so one total order S holds
 * them, consistent with program order and with each location's coherence
 * order (C++20 [atomics.order]; what compilers implement): P < L_B < Z_B in
 * S; Z_B < C_A, as Z_B read the 0 that A's claim, or an earlier claim of a
 * slot A's walk found filled, overwrote (a slot never becomes 0 again);
 * C_A < K_A. So P < K_A, K_A reads n_tab >= k + 2 and A does not publish: a
 * contradiction. A dead slot takes no id, so ids stay dense: 1 ..
 * rec_trie_count().
 */
uint32_t rec_trie_get(uint32_t parent, uint64_t addr, int *inserted)
{
	uint64_t h = hash(parent, addr);

	*inserted = 0;
	for (;;) {
		uint32_t n = atomic_load(&g_trie.n_tab); /* L (seq_cst) */
		uint32_t j, k, id, pos = 0, mask = 0;
		struct slot *tab = NULL;
		int claimed = 0;

		if (REC_UNLIKELY(n == 0))
			return 0; /* before rec_trie_init() */
		j = first_table(parent, n);
		/* The first slot of every table at once: their cache misses
		 * overlap instead of adding up. */
		for (k = j + 1; k < n; k++)
			__builtin_prefetch(&atomic_load_explicit(&g_trie.tab[k], memory_order_relaxed)
						    [(uint32_t)h & (TAB_SLOTS(k) - 1)]);
		for (k = j; k < n; k++) {
			TEST_PAUSE(PAUSE_WALK);
			tab = atomic_load_explicit(&g_trie.tab[k], memory_order_relaxed);
			mask = TAB_SLOTS(k) - 1;
			pos = (uint32_t)h & mask;
			id = probe(tab, mask, parent, addr, &pos);
			if (id)
				return id == SLOT_BUSY ? 0 : id;
		}
		/* Not found: claim the empty slot pos of the newest table. */
		k = n - 1;
		for (;;) {
			uint32_t used = atomic_load_explicit(&g_trie.next_id, memory_order_relaxed) -
					g_trie.id_base[k];
			uint32_t expect = 0;

			if (REC_UNLIKELY(used >= TAB_LIMIT(k))) {
				if (grow(k))
					break; /* walk again, insert into the new table */
				if (parent != TF_NODE_ROOT || used >= TAB_ROOT_LIMIT(k))
					return 0;
			}
			TEST_PAUSE(PAUSE_CLAIM);
			if (atomic_compare_exchange_strong(&tab[pos].id, &expect, SLOT_BUSY)) {
				claimed = 1; /* C */
				break;
			}
			id = probe(tab, mask, parent, addr, &pos); /* lost the race: go on */
			if (id)
				return id == SLOT_BUSY ? 0 : id;
		}
		if (!claimed)
			continue; /* grow() added a table: start over */
		TEST_PAUSE(PAUSE_CHECK);
		if (atomic_load(&g_trie.n_tab) != n) { /* K (seq_cst) */
			atomic_store_explicit(&tab[pos].id, SLOT_DEAD, memory_order_release);
			continue;
		}
		tab[pos].parent = parent;
		tab[pos].addr = addr;
		TEST_PAUSE(PAUSE_ID);
		id = atomic_fetch_add(&g_trie.next_id, 1);
		atomic_store_explicit(&tab[pos].id, id, memory_order_release);
		*inserted = 1;
		return id;
	}
}

uint32_t rec_trie_count(void)
{
	return atomic_load(&g_trie.next_id) - 1;
}
