/* Module map: every loaded ELF object (dl_iterate_phdr) with its load base,
 * path, GNU build-id and PT_LOAD segments, as MODULE / UNLOAD records. */
#ifndef REC_MODULES_H
#define REC_MODULES_H

#include <stddef.h>

#include "rec_core.h"

/* Path of the main executable (/proc/self/exe), used when dl_iterate_phdr
 * gives an empty name. exe (len bytes) is borrowed for the process life. */
void rec_modules_set_exe(const char *exe, size_t len) REC_HIDDEN;

/* Compare the loaded objects with the last scan; stage and commit a MODULE
 * record for each new object and an UNLOAD for each one gone, into t's
 * stream. t must be inside rec_enter()/rec_leave(). Serialized by a spin
 * lock (not a hot path: start, a new trie node at an unknown address, and
 * after dlclose). */
void rec_modules_scan(struct rec_thread *t) REC_HIDDEN;

/* 1 when addr lies in the address range of a module of the last scan (or
 * no scan happened yet), 0 otherwise: then something new may have been
 * loaded. Lock-free (seqlock); called for new trie nodes only. */
int rec_modules_known(uint64_t addr) REC_HIDDEN;

/* Forget every module (a new trace starts: the next scan emits them all
 * again with ids from 1). No other thread may be scanning. */
void rec_modules_reset(void) REC_HIDDEN;

/* Number of "tainted" address ranges: ranges some module was unloaded
 * from (0 until the first dlclose that unmaps something). */
extern _Atomic uint32_t rec_mod_n_taint REC_HIDDEN;

/* Trie key bits holding the address; the bits above hold a salt. */
#define REC_KEY_ADDR_MASK ((UINT64_C(1) << 48) - 1)
#define REC_KEY_SALT_UNKNOWN 0xffffu /* tainted, but in no known module */

/* The trie key of return address addr: addr itself, or, when addr lies in a
 * tainted range, addr with the id of the module loaded there now in bits
 * 48..63 (so a library mapped where another one was gets its own nodes).
 * Lock-free; call only when rec_mod_n_taint != 0. */
uint64_t rec_modules_key(uint64_t addr) REC_HIDDEN;

#endif
