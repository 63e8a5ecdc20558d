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
 * lock (not a hot path: start and dlopen/dlclose only). */
void rec_modules_scan(struct rec_thread *t) REC_HIDDEN;

#endif
