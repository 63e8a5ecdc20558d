/* A small x86_64 DWARF CFI reader for the recorder's own unwinder: the
 * unwind rule of one code address (CFA = rsp/rbp + offset, return address
 * at CFA - 8, rbp saved at CFA + offset or unchanged), found through
 * _dl_find_object() and the object's .eh_frame_hdr table, and kept in a
 * global lock-free cache. Anything else is REC_CFI_FAIL: the caller falls
 * back to libunwind. */
#ifndef REC_CFI_H
#define REC_CFI_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "rec_core.h"

enum rec_cfi_kind {
	REC_CFI_FAIL = 0, /* no FDE, or a rule this reader does not handle */
	REC_CFI_STEP = 1, /* the rule below applies */
	REC_CFI_END = 2,  /* return address undefined: outermost frame */
};

#define REC_CFI_CFA_RBP 1u   /* CFA = rbp + cfa_off (else rsp + cfa_off) */
#define REC_CFI_RBP_SAVED 2u /* caller's rbp at CFA + rbp_off (else unchanged) */

/* The rule of one address. The return address is always at CFA - 8. */
struct rec_cfi_rule {
	int32_t cfa_off; /* bytes */
	int16_t rbp_off; /* bytes, with REC_CFI_RBP_SAVED */
	uint8_t kind;    /* enum rec_cfi_kind */
	uint8_t flags;   /* REC_CFI_* */
};

_Static_assert(sizeof(struct rec_cfi_rule) == 8, "rule packs into 64 bits");

/* One cache slot, a seqlock: word = generation << 32 | sequence (odd while
 * a writer fills it). Readers never wait; a writer that finds the slot
 * busy leaves it. */
struct rec_cfi_slot {
	_Atomic uint64_t word;
	_Atomic uint64_t pc;
	_Atomic uint64_t rule; /* struct rec_cfi_rule */
};

#define REC_CFI_SLOTS_LOG2 16

struct rec_cfi_cache {
	struct rec_cfi_slot *slots;     /* 2^REC_CFI_SLOTS_LOG2, mmap'd */
	_Atomic uint32_t gen;           /* bumped when code may be unloaded */
};

extern struct rec_cfi_cache rec_cfi_g REC_HIDDEN;

/* Map the cache. Returns 0 or -ENOMEM. Call once from the constructor. */
int rec_cfi_init(void) REC_HIDDEN;

/* Forget every cached rule (after dlclose: other code may be loaded at the
 * same addresses). Lock-free. */
void rec_cfi_invalidate(void) REC_HIDDEN;

/* The current cache generation (also the unwinder's per-thread check). */
static inline uint32_t rec_cfi_gen(void)
{
	return atomic_load_explicit(&rec_cfi_g.gen, memory_order_acquire);
}

/* Interpret the CFI of pc (an address inside the function: a return
 * address minus one for caller frames) without the cache. Never fails
 * other than by returning a REC_CFI_FAIL rule. No malloc, no lock, no
 * system call (_dl_find_object is lock-free). */
struct rec_cfi_rule rec_cfi_parse(uintptr_t pc) REC_HIDDEN;

/* Store rule for pc (generation gen) unless the slot is being written. */
void rec_cfi_store(uintptr_t pc, uint32_t gen, struct rec_cfi_rule rule) REC_HIDDEN;

static inline uint32_t rec_cfi_hash(uintptr_t pc)
{
	return (uint32_t)(((uint64_t)pc * 0x9e3779b97f4a7c15ull) >> (64 - REC_CFI_SLOTS_LOG2));
}

/* The rule of pc, from the cache or parsed (and then cached). gen is
 * rec_cfi_gen() read at the start of the backtrace. */
static inline struct rec_cfi_rule rec_cfi_get(uintptr_t pc, uint32_t gen)
{
	struct rec_cfi_slot *s = &rec_cfi_g.slots[rec_cfi_hash(pc)];
	uint64_t w1 = atomic_load_explicit(&s->word, memory_order_acquire);
	uint64_t p = atomic_load_explicit(&s->pc, memory_order_relaxed);
	uint64_t r = atomic_load_explicit(&s->rule, memory_order_relaxed);
	struct rec_cfi_rule rule;

	atomic_thread_fence(memory_order_acquire);
	if (REC_LIKELY(p == pc && (uint32_t)(w1 >> 32) == gen && !(w1 & 1) &&
		       atomic_load_explicit(&s->word, memory_order_relaxed) == w1)) {
		memcpy(&rule, &r, sizeof(rule));
		return rule;
	}
	rule = rec_cfi_parse(pc);
	rec_cfi_store(pc, gen, rule);
	return rule;
}

#endif
