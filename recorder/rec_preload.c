/* The interposed symbols and nothing else (mimalloc alloc-override.c).
 * Ordering rule (PLAN.md): a FREE takes its seq before the real free, an
 * ALLOC after the real allocation returned. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec_core.h"
#include "rec_prim.h"

#define REC_EXPORT __attribute__((visibility("default")))

/* Before the real functions are known (inside dlsym): the static arena. */
static inline int booting(void)
{
	if (REC_LIKELY(rec_real.malloc != NULL))
		return 0;
	rec_bootstrap();
	return rec_real.malloc == NULL;
}

static inline void *record_alloc(void *p, enum tf_kind kind, size_t size)
{
	struct rec_thread *t = rec_enter();

	if (t) {
		rec_stage_alloc(t, kind, size, (uint64_t)(uintptr_t)p);
		rec_leave(t);
	}
	return p;
}

REC_EXPORT void *malloc(size_t size)
{
	if (REC_UNLIKELY(booting()))
		return rec_arena_alloc(size, 16);
	return record_alloc(rec_real.malloc(size), TF_KIND_MALLOC, size);
}

REC_EXPORT void free(void *p)
{
	struct rec_thread *t;

	if (!p || REC_UNLIKELY(rec_arena_owns(p)))
		return;
	if (REC_UNLIKELY(!rec_real.free)) {
		rec_bootstrap();
		if (!rec_real.free)
			return; /* cannot happen outside dlsym; leak rather than crash */
	}
	t = rec_enter();
	if (t)
		rec_stage_free(t, TF_KIND_FREE, (uint64_t)(uintptr_t)p);
	rec_real.free(p);
	if (t)
		rec_leave(t);
}

REC_EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total))
		total = SIZE_MAX;
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.calloc))
		return total == SIZE_MAX ? NULL : rec_arena_alloc(total, 16);
	return record_alloc(rec_real.calloc(n, size), TF_KIND_CALLOC, total);
}

static void *do_realloc(void *p, size_t size, size_t n, enum tf_kind kind)
{
	struct rec_thread *t;
	void *q;

	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(rec_arena_owns(p))) {
		/* Arena blocks move to the real heap (or stay in the arena). */
		void *r = rec_real.malloc ? malloc(size) : rec_arena_alloc(size, 16);
		if (r && p) {
			size_t old = rec_arena_owns(p) ? rec_arena_size(p) : 0;
			memcpy(r, p, old < size ? old : size);
		}
		return r;
	}
	t = rec_enter();
	int seq_free_needed = t && p;
	/* The FREE must take its seq before the block can be reused; staged now
	 * and dropped below if the call fails and p stays valid. */
	uint32_t mark = 0;
	struct tf_stream_state saved_st;
	if (seq_free_needed) {
		mark = t->stage_len;
		saved_st = t->st;
		rec_stage_free(t, TF_KIND_REALLOC, (uint64_t)(uintptr_t)p);
	}
	if (kind == TF_KIND_REALLOCARRAY && rec_real.reallocarray)
		q = rec_real.reallocarray(p, n, size / (n ? n : 1));
	else
		q = rec_real.realloc(p, size);
	if (!t)
		return q;
	int saved = errno;
	if (seq_free_needed && !q && size != 0) {
		/* Failed: the old block is still valid, no FREE. */
		t->stage_len = mark;
		t->st = saved_st;
		t->stage_events--;
	}
	if (q || size != 0 || !p)
		rec_stage_alloc(t, kind, size, (uint64_t)(uintptr_t)q);
	rec_leave(t);
	errno = saved;
	return q;
}

REC_EXPORT void *realloc(void *p, size_t size)
{
	return do_realloc(p, size, 1, TF_KIND_REALLOC);
}

REC_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!rec_real.reallocarray || booting())
		return do_realloc(p, total, n, TF_KIND_REALLOC);
	return do_realloc(p, total, n, TF_KIND_REALLOCARRAY);
}

REC_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	int rc;

	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.posix_memalign)) {
		void *p = rec_arena_alloc(size, align);
		if (!p)
			return ENOMEM;
		*out = p;
		return 0;
	}
	rc = rec_real.posix_memalign(out, align, size);
	if (rc == 0)
		record_alloc(*out, TF_KIND_POSIX_MEMALIGN, size);
	return rc;
}

REC_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.aligned_alloc))
		return rec_arena_alloc(size, align);
	return record_alloc(rec_real.aligned_alloc(align, size), TF_KIND_ALIGNED_ALLOC, size);
}

REC_EXPORT void *memalign(size_t align, size_t size)
{
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.memalign))
		return rec_arena_alloc(size, align);
	return record_alloc(rec_real.memalign(align, size), TF_KIND_MEMALIGN, size);
}

REC_EXPORT void *valloc(size_t size)
{
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.valloc))
		return rec_arena_alloc(size, 4096);
	return record_alloc(rec_real.valloc(size), TF_KIND_VALLOC, size);
}

REC_EXPORT void *pvalloc(size_t size)
{
	if (REC_UNLIKELY(booting()) || REC_UNLIKELY(!rec_real.pvalloc))
		return rec_arena_alloc((size + 4095) & ~(size_t)4095, 4096);
	return record_alloc(rec_real.pvalloc(size), TF_KIND_PVALLOC, size);
}

REC_EXPORT void *dlopen(const char *file, int mode)
{
	void *h;

	if (REC_UNLIKELY(!rec_real.dlopen)) {
		rec_bootstrap();
		if (!rec_real.dlopen)
			return NULL;
	}
	h = rec_real.dlopen(file, mode);
	if (h) {
		int saved = errno;
		rec_on_dl_change();
		errno = saved;
	}
	return h;
}

REC_EXPORT int dlclose(void *handle)
{
	int rc;

	if (REC_UNLIKELY(!rec_real.dlclose)) {
		rec_bootstrap();
		if (!rec_real.dlclose)
			return -1;
	}
	rc = rec_real.dlclose(handle);
	if (rc == 0) {
		int saved = errno;
		rec_on_dl_change();
		errno = saved;
	}
	return rc;
}

/* libunwind opens a pipe (to validate memory) at its first unwind, which
 * happens inside the recorder: keep its descriptors away from the numbers
 * the program would get from its own next open(), so a traced program sees
 * the same descriptors as an untraced one. Calls from the program itself
 * pass straight through. */
static int pipe_common(int fds[2], int flags)
{
	if (REC_UNLIKELY(!rec_real.pipe2)) {
		rec_bootstrap();
		if (!rec_real.pipe2) {
			errno = ENOSYS;
			return -1;
		}
	}
	int rc = rec_real.pipe2(fds, flags);
	if (rc == 0 && rec_tls.guard) {
		fds[0] = rec_prim_fd_high(fds[0]);
		fds[1] = rec_prim_fd_high(fds[1]);
	}
	return rc;
}

REC_EXPORT int pipe2(int fds[2], int flags)
{
	return pipe_common(fds, flags);
}

REC_EXPORT int pipe(int fds[2])
{
	return pipe_common(fds, 0);
}
