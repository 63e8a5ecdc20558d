/* Global lock-free stack trie: (parent id, return address) -> node id. A
 * chain of mmap'd open-addressing tables, each twice the size of the one
 * before, mapped when the one before is 3/4 full; CAS-claimed slots; ids
 * from an atomic counter starting at 1 (TF_NODE_ROOT = 0 is the parent of
 * outermost frames). Nodes are never removed, so a found id stays valid
 * forever, and a key never gets two ids. */
#ifndef REC_TRIE_H
#define REC_TRIE_H

#include <stdint.h>
#include <string.h>

#include "rec_core.h"

#ifndef REC_TRIE_FIRST_LOG2 /* (tests/unit/test_rec_trie.c makes them small) */
#define REC_TRIE_FIRST_LOG2 16 /* table 0: 2^16 slots x 16 bytes = 1 MiB */
#define REC_TRIE_TABLES 8      /* table k: 2^(16 + k) slots; the last 128 MiB */
#endif
/* Nodes the chain takes: 3/4 of the slots of each table (12 533 760).
 * Outermost nodes (parent TF_NODE_ROOT) may also fill the last table to 7/8
 * of its slots: 1 048 576 more. */
#define REC_TRIE_NODE_CAP \
	((((uint32_t)1 << (REC_TRIE_FIRST_LOG2 + REC_TRIE_TABLES)) - \
	  ((uint32_t)1 << REC_TRIE_FIRST_LOG2)) / 4 * 3)
#define REC_TRIE_ROOT_EXTRA ((uint32_t)1 << (REC_TRIE_FIRST_LOG2 + REC_TRIE_TABLES - 4))

/* Map the first table (1 MiB, touched lazily). Returns 0 or -ENOMEM. Call
 * once, before any lookup. */
int rec_trie_init(void) REC_HIDDEN;

/* Start over with an empty trie (a new first table) and ids from 1, for a
 * new trace. unmap_old: release every table of the old trie (only when no
 * other thread can be using them: a fork child); otherwise they are left
 * mapped. No thread may be inside rec_trie_get(). Returns 0 or -ENOMEM (the
 * old trie is kept as it was: the caller runs untraced). */
int rec_trie_reset(int unmap_old) REC_HIDDEN;

/* Find or insert the node (parent, addr). Returns its id, with *inserted
 * set to 1 when this call created it (the caller must then emit the NODE
 * record before any event using it), or 0 when the trie is full
 * (REC_TRIE_NODE_CAP nodes, plus REC_TRIE_ROOT_EXTRA outermost ones; or a
 * next table could not be mapped: -ENOMEM is not reported) -- the caller
 * keeps the deepest node it found. parent: TF_NODE_ROOT or an id this trie
 * returned since the last reset (the walk relies on it). Lock-free, no
 * malloc; the insert that finds the newest table full maps the next one
 * (one mmap). Async-signal-unsafe only in that it may spin briefly on a
 * slot or a table another thread is filling or mapping (bounded: after ~1 s
 * of waiting the slot is treated as a full trie, the table as one that
 * could not be mapped). */
uint32_t rec_trie_get(uint32_t parent, uint64_t addr, int *inserted) REC_HIDDEN;

/* The trie's generation: 1 at start, bumped by every rec_trie_reset(). */
uint32_t rec_trie_gen(void) REC_HIDDEN;

/* rec_trie_get() through the calling thread's memo of earlier lookups
 * (same contract): a hit costs no access to the shared tables. The memo
 * is t's (owner only); it is emptied when the trie generation changed. */
static inline uint32_t rec_trie_get_memo(struct rec_thread *t, uint32_t parent, uint64_t addr,
					 int *inserted)
{
	uint64_t h = (addr * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)parent * 0xd6e8feb86659fd93ull);
	struct rec_trie_memo *m = &t->trie_memo[h >> (64 - REC_TRIE_MEMO_LOG2)];
	uint32_t id;

	if (REC_LIKELY(m->id && m->addr == addr && m->parent == parent)) {
		*inserted = 0;
		return m->id;
	}
	id = rec_trie_get(parent, addr, inserted);
	if (id) {
		m->addr = addr;
		m->parent = parent;
		m->id = id;
	}
	return id;
}

/* Empty t's memo if it belongs to another trie generation. Owner only. */
static inline void rec_trie_memo_check(struct rec_thread *t)
{
	uint32_t gen = rec_trie_gen();

	if (REC_UNLIKELY(t->trie_memo_gen != gen)) {
		if (t->trie_memo_gen) /* a fresh slot's memo is all zeros */
			memset(t->trie_memo, 0, sizeof(t->trie_memo));
		t->trie_memo_gen = gen;
	}
}

/* Nodes created so far (ids 1 .. count are taken). */
uint32_t rec_trie_count(void) REC_HIDDEN;

#endif
