/* memrec.h: name the phases of a program (and points in time) for the
 * memrec heap profiler; `memana` then reports memory per phase.
 *
 *     #include "memrec.h"
 *     memrec_phase_begin("parse");  ...  memrec_phase_end();
 *     memrec_mark("checkpoint");
 *
 * Header only: nothing to link, and a program built with it runs the same
 * without memrec. Under memrec (libmemrec.so preloaded) each call writes a
 * PHASE record into the trace, ordered exactly among the thread's and the
 * other threads' allocations. Without memrec a call costs a load and a
 * branch (plus one symbol lookup, dlsym, at the first call in each source
 * file). Define MEMREC_DISABLE before including it to compile the calls out.
 *
 * Phases are per thread and nest: memrec_phase_end() ends the calling
 * thread's innermost phase begun and not yet ended. Names are copied at the
 * call (the string may be freed right after) and cut at 255 bytes.
 *
 * Why dlsym and not a weak symbol: a weak undefined reference is bound at
 * run time only in code compiled as position-independent (-fPIE, Debian's
 * default); in an executable compiled with -fno-pie the linker resolves it
 * to 0 for good and the preloaded library is never called. dlsym() is in
 * libc from glibc 2.34 on; with an older glibc link with -ldl.
 *
 * Thread-safe. Not async-signal-safe at the first call in a source file
 * (dlsym); later calls are, but a call from a signal handler that
 * interrupted an allocation on the same thread is not recorded. */
#ifndef MEMREC_H
#define MEMREC_H

#ifndef MEMREC_DISABLE
#include <dlfcn.h>
#include <stdint.h>
#endif

/* Values of op for memrec__phase (the trace format's PHASE op). */
#define MEMREC_PHASE_BEGIN 0
#define MEMREC_PHASE_END 1
#define MEMREC_PHASE_MARK 2

#ifndef MEMREC_DISABLE

#define MEMREC__INLINE static inline __attribute__((always_inline))

/* glibc and musl define RTLD_DEFAULT as 0, the former only with
 * _GNU_SOURCE. */
#ifdef RTLD_DEFAULT
#define MEMREC__RTLD_DEFAULT RTLD_DEFAULT
#else
#define MEMREC__RTLD_DEFAULT ((void *)0)
#endif

/* libmemrec.so's entry point: void memrec__phase(int op, const char *name).
 * Internal: call the functions below. */
typedef void (*memrec__phase_fn)(int op, const char *name);

/* The lookup behind memrec__fn(), once per source file: stores the
 * recorder's function, or cache's own address for "not there", in *cache. */
static __attribute__((noinline, unused)) memrec__phase_fn memrec__lookup(void **cache)
{
	void *p = dlsym(MEMREC__RTLD_DEFAULT, "memrec__phase");

	__atomic_store_n(cache, p ? p : (void *)cache, __ATOMIC_RELAXED);
	return p ? (memrec__phase_fn)(uintptr_t)p : 0;
}

/* The recorder's function, or 0 when memrec is not there: a load and a
 * branch once looked up. */
MEMREC__INLINE memrec__phase_fn memrec__fn(void)
{
	static void *cache; /* 0: not looked up yet */
	void *p = __atomic_load_n(&cache, __ATOMIC_RELAXED);

	if (__builtin_expect(p == (void *)&cache, 1))
		return 0;
	if (__builtin_expect(!p, 0))
		return memrec__lookup(&cache);
	return (memrec__phase_fn)(uintptr_t)p;
}

/* Begin a phase called name (NUL-terminated; NULL or "" allowed) in the
 * calling thread, inside the phase it is in, if any. */
MEMREC__INLINE void memrec_phase_begin(const char *name)
{
	memrec__phase_fn fn = memrec__fn();

	if (fn)
		fn(MEMREC_PHASE_BEGIN, name);
}

/* End the calling thread's innermost open phase. */
MEMREC__INLINE void memrec_phase_end(void)
{
	memrec__phase_fn fn = memrec__fn();

	if (fn)
		fn(MEMREC_PHASE_END, 0);
}

/* Mark this point in time with name (NUL-terminated; NULL or "" allowed). */
MEMREC__INLINE void memrec_mark(const char *name)
{
	memrec__phase_fn fn = memrec__fn();

	if (fn)
		fn(MEMREC_PHASE_MARK, name);
}

#else /* MEMREC_DISABLE */

static inline void memrec_phase_begin(const char *name)
{
	(void)name;
}

static inline void memrec_phase_end(void)
{
}

static inline void memrec_mark(const char *name)
{
	(void)name;
}

#endif
#endif
