/* Global lock-free stack trie: (parent id, return address) -> node id. An
 * mmap'd open-addressing table with CAS-claimed slots; ids from an atomic
 * counter starting at 1 (TF_NODE_ROOT = 0 is the parent of outermost
 * frames). Nodes are never removed, so a found id stays valid forever. */
#ifndef REC_TRIE_H
#define REC_TRIE_H

#include <stdint.h>

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

/* Nodes created so far. */
uint32_t rec_trie_count(void) REC_HIDDEN;

#endif
