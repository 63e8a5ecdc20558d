/* Lock-free stack trie. A slot is claimed by CAS on its id word (0 = empty,
 * REC_SLOT_BUSY = being filled); the key is written, then the id published
 * with a release store. Readers that meet a busy slot wait for it. */
#include <errno.h>
#include <stdatomic.h>

#include "rec_prim.h"
#include "rec_trie.h"

#define SLOTS (1u << REC_TRIE_SLOTS_LOG2)
#define MASK (SLOTS - 1)
#define LIMIT (SLOTS / 4 * 3)   /* ordinary nodes */
#define ROOT_LIMIT (SLOTS / 8 * 7) /* outermost nodes may use some headroom */
#define REC_SLOT_BUSY UINT32_MAX

struct slot {
	_Atomic uint32_t id;     /* 0 empty, REC_SLOT_BUSY filling, else node id */
	uint32_t parent;
	uint64_t addr;
};

_Static_assert(sizeof(struct slot) == 16, "slot layout");

static struct {
	struct slot *slots;
	_Atomic uint32_t next_id; /* next node id, from 1 */
	_Atomic uint32_t gen;     /* bumped by every new table (thread memos) */
} g_trie;

uint32_t rec_trie_gen(void)
{
	return atomic_load_explicit(&g_trie.gen, memory_order_relaxed);
}

int rec_trie_reset(int unmap_old)
{
	struct slot *old = g_trie.slots;

	if (rec_trie_init() < 0) {
		g_trie.slots = old;
		return -ENOMEM;
	}
	if (unmap_old)
		rec_prim_unmap(old, (size_t)SLOTS * sizeof(struct slot));
	return 0;
}

int rec_trie_init(void)
{
	g_trie.slots = rec_prim_map((size_t)SLOTS * sizeof(struct slot), 1);
	if (!g_trie.slots)
		return -ENOMEM;
	atomic_store(&g_trie.next_id, 1);
	atomic_fetch_add(&g_trie.gen, 1);
	return 0;
}

static inline uint32_t hash(uint32_t parent, uint64_t addr)
{
	uint64_t h = addr * 0x9e3779b97f4a7c15ull ^ ((uint64_t)parent * 0xc2b2ae3d27d4eb4full);

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return (uint32_t)h & MASK;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

uint32_t rec_trie_get(uint32_t parent, uint64_t addr, int *inserted)
{
	uint32_t i = hash(parent, addr);

	*inserted = 0;
	for (;;) {
		struct slot *s = &g_trie.slots[i];
		uint32_t id = atomic_load_explicit(&s->id, memory_order_acquire);

		if (id == 0) {
			uint32_t limit = parent == TF_NODE_ROOT ? ROOT_LIMIT : LIMIT;
			if (atomic_load_explicit(&g_trie.next_id, memory_order_relaxed) > limit)
				return 0;
			uint32_t expect = 0;
			if (atomic_compare_exchange_strong(&s->id, &expect, REC_SLOT_BUSY)) {
				s->parent = parent;
				s->addr = addr;
				id = atomic_fetch_add(&g_trie.next_id, 1);
				atomic_store_explicit(&s->id, id, memory_order_release);
				*inserted = 1;
				return id;
			}
			continue; /* lost the race: look at the slot again */
		}
		if (id == REC_SLOT_BUSY) {
			/* The filler was preempted, or never finishes (it
			 * longjmp()ed out of a signal handler, or it is a
			 * thread _Fork() did not copy): give up after a while
			 * and treat the table as full. */
			for (unsigned n = 0; atomic_load_explicit(&s->id, memory_order_acquire) ==
					     REC_SLOT_BUSY; n++) {
				if (n > 1000000)
					return 0;
				if (n > 1000)
					rec_prim_yield();
				else
					cpu_relax();
			}
			continue;
		}
		if (s->parent == parent && s->addr == addr)
			return id;
		i = (i + 1) & MASK;
	}
}

uint32_t rec_trie_count(void)
{
	return atomic_load(&g_trie.next_id) - 1;
}
