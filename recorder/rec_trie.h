/* Global lock-free stack trie: (parent id, return address) -> node id. An
 * mmap'd open-addressing table with CAS-claimed slots; ids from an atomic
 * counter starting at 1 (TF_NODE_ROOT = 0 is the parent of outermost
 * frames). Nodes are never removed, so a found id stays valid forever. */
#ifndef REC_TRIE_H
#define REC_TRIE_H

#include <stdint.h>
#include <string.h>

#include "rec_core.h"

#define REC_TRIE_SLOTS_LOG2 22 /* 4M slots x 16 bytes = 64 MiB, lazily touched */

/* Map the table. Returns 0 or -ENOMEM. Call once, before any lookup. */
int rec_trie_init(void) REC_HIDDEN;

/* Start over with an empty table (new mapping) and ids from 1, for a new
 * trace. unmap_old: release the old table (only when no other thread can
 * be using it: a fork child); otherwise it is left mapped. No thread may be
 * inside rec_trie_get(). Returns 0 or -ENOMEM (the old table is kept and
 * cleared of nothing: the caller runs untraced). */
int rec_trie_reset(int unmap_old) REC_HIDDEN;

/* Find or insert the node (parent, addr). Returns its id, with *inserted
 * set to 1 when this call created it (the caller must then emit the NODE
 * record before any event using it), or 0 when the table is full (3/4 of the
 * slots used; the caller keeps the deepest node it found). Lock-free;
 * async-signal-unsafe only in that it may spin briefly on a slot another
 * thread is filling (bounded: after ~1 s of waiting the slot is treated as
 * a full table). */
uint32_t rec_trie_get(uint32_t parent, uint64_t addr, int *inserted) REC_HIDDEN;

/* The table's generation: 1 at start, bumped by every rec_trie_reset(). */
uint32_t rec_trie_gen(void) REC_HIDDEN;

/* rec_trie_get() through the calling thread's memo of earlier lookups
 * (same contract): a hit costs no access to the shared table. The memo
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

/* Nodes created so far. */
uint32_t rec_trie_count(void) REC_HIDDEN;

#endif
