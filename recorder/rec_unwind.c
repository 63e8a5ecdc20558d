/* Backtrace capture. The default is our own x86_64 CFI stepper (rec_cfi.c)
 * started from this function's own registers, with a per-thread copy of
 * the previous backtrace whose outer part is reused when the stack words it
 * read still hold the same values; anything it does not handle falls back
 * to libunwind's unw_backtrace for the whole backtrace. Leading frames in
 * libmemrec.so (and in libunwind itself) are dropped, so the first frame is
 * the return address into the caller of malloc/free/... See
 * docs/how-it-works.md "Backtraces". */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <errno.h>
#include <libunwind.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rec_cfi.h"
#include "rec_log.h"
#include "rec_prim.h"
#include "rec_unwind.h"

struct range {
	uintptr_t lo, hi; /* [lo, hi) executable addresses */
};

static struct {
	struct range self;
	struct range unwind;
	_Atomic int pipe_fd[2];  /* libunwind's validation pipe, -1: none */
	uint64_t pipe_id[2][2];  /* st_dev, st_ino of each end */
	int use_libunwind;       /* MEMREC_UNWIND=libunwind, or rec_cfi unusable */
	int no_reuse;            /* MEMREC_UNWIND=cfi-noreuse: always step afresh */
	_Atomic uint64_t n_checked, n_mismatch; /* MEMREC_UNWIND_CHECK=1 */
	_Atomic int logged;      /* first mismatch logged */
} g_unw = { .pipe_fd = { -1, -1 } };

int rec_unwind_check_on;

__thread struct rec_unw_tls rec_unw_tls __attribute__((tls_model("initial-exec")));
#define unw_stack rec_unw_tls

void rec_unwind_pipe_set(const int fds[2])
{
	for (int i = 0; i < 2; i++) {
		if (rec_prim_fd_id(fds[i], &g_unw.pipe_id[i][0], &g_unw.pipe_id[i][1]) < 0)
			g_unw.pipe_id[i][0] = g_unw.pipe_id[i][1] = 0;
		atomic_store(&g_unw.pipe_fd[i], fds[i]);
	}
}

int rec_unwind_pipe_is(int fd)
{
	return fd >= 0 && (fd == atomic_load(&g_unw.pipe_fd[0]) ||
			   fd == atomic_load(&g_unw.pipe_fd[1]));
}

int rec_unwind_pipe_owned(int fd)
{
	for (int i = 0; i < 2; i++) {
		uint64_t dev, ino;
		if (fd >= 0 && fd == atomic_load(&g_unw.pipe_fd[i]))
			return rec_prim_fd_id(fd, &dev, &ino) == 0 && dev == g_unw.pipe_id[i][0] &&
			       ino == g_unw.pipe_id[i][1];
	}
	return 0;
}

int rec_unwind_pipe_foreign(int fd)
{
	if (!rec_unwind_pipe_is(fd))
		return 0;
	for (int i = 0; i < 2; i++) {
		uint64_t dev, ino;
		int f = atomic_load(&g_unw.pipe_fd[i]);
		if (rec_prim_fd_id(f, &dev, &ino) < 0 || dev != g_unw.pipe_id[i][0] ||
		    ino != g_unw.pipe_id[i][1])
			return 1;
	}
	return 0;
}

struct find_arg {
	uintptr_t addr;
	struct range *out;
	int found;
};

static int find_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct find_arg *a = data;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	int contains = 0;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
		if (a->addr >= s && a->addr < e)
			contains = 1;
		if (ph->p_flags & PF_X) {
			if (s < lo)
				lo = s;
			if (e > hi)
				hi = e;
		}
	}
	if (!contains || lo >= hi)
		return 0;
	a->out->lo = lo;
	a->out->hi = hi;
	a->found = 1;
	return 1;
}

static int find_range(const void *addr, struct range *out)
{
	struct find_arg a = { (uintptr_t)addr, out, 0 };

	dl_iterate_phdr(find_cb, &a);
	return a.found ? 0 : -ENOENT;
}

static void check_summary(void)
{
	uint64_t fast = 0, slow = 0;

	for (struct rec_thread *t = atomic_load(&g_rec.threads); t; t = t->next) {
		fast += __atomic_load_n(&t->unw_fast, __ATOMIC_RELAXED);
		slow += __atomic_load_n(&t->unw_slow, __ATOMIC_RELAXED);
	}
	rec_log(REC_LOG_INFO, "unwind check: %zu backtraces compared, %zu mismatches, %zu own, %zu by libunwind",
		(size_t)atomic_load(&g_unw.n_checked), (size_t)atomic_load(&g_unw.n_mismatch),
		(size_t)fast, (size_t)slow);
}

int rec_unwind_init(void)
{
	const char *mode = getenv("MEMREC_UNWIND");
	const char *check = getenv("MEMREC_UNWIND_CHECK");

	unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
	if (find_range((const void *)(uintptr_t)&rec_unwind_init, &g_unw.self) < 0) {
		rec_log(REC_LOG_ERROR, "cannot find the recorder's own text");
		return -ENOENT;
	}
	if (find_range((const void *)(uintptr_t)&unw_backtrace, &g_unw.unwind) < 0)
		g_unw.unwind = (struct range){ 0, 0 };
	if (mode && *mode && strcmp(mode, "libunwind") != 0 && strcmp(mode, "cfi") != 0 &&
	    strcmp(mode, "cfi-noreuse") != 0)
		rec_log(REC_LOG_ERROR, "ignoring bad MEMREC_UNWIND='%s'", mode);
	g_unw.use_libunwind = mode && !strcmp(mode, "libunwind");
	g_unw.no_reuse = mode && !strcmp(mode, "cfi-noreuse");
	if (!g_unw.use_libunwind && rec_cfi_init() < 0) {
		rec_log(REC_LOG_ERROR, "no memory for the unwind cache; using libunwind");
		g_unw.use_libunwind = 1;
	}
	rec_unwind_check_on = check && !strcmp(check, "1") && !g_unw.use_libunwind;
	if (rec_unwind_check_on)
		atexit(check_summary);
	return 0;
}

static inline int in_range(const struct range *r, uintptr_t a)
{
	return a >= r->lo && a < r->hi;
}

/* unw_backtrace, then the leading frames of the recorder and libunwind
 * dropped. Same contract as rec_unwind_capture(). */
static size_t capture_libunwind(void **frames, size_t cap, int *truncated)
{
	int want = (int)(cap + REC_FRAME_SLACK + 1);
	int n = unw_backtrace(frames, want);
	int skip = 0;

	*truncated = 0;
	if (n <= 0)
		return 0;
	while (skip < n && (in_range(&g_unw.self, (uintptr_t)frames[skip]) ||
			    in_range(&g_unw.unwind, (uintptr_t)frames[skip])))
		skip++;
	n -= skip;
	if ((size_t)n > cap) {
		n = (int)cap;
		*truncated = 1;
	} else if (n + skip == want) {
		*truncated = 1; /* filled the buffer: deeper frames were cut */
	}
	if (skip)
		memmove(frames, frames + skip, (size_t)n * sizeof(*frames));
	return (size_t)n;
}

/* Learn the calling thread's stack bounds (once per thread; may allocate:
 * runs under the recursion guard). Returns 1 when known. */
static int stack_bounds(void)
{
	pthread_attr_t attr;
	void *addr;
	size_t size;

	if (REC_LIKELY(unw_stack.state))
		return unw_stack.state > 0;
	unw_stack.state = -1;
	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return 0;
	if (pthread_attr_getstack(&attr, &addr, &size) == 0 && size) {
		unw_stack.lo = (uintptr_t)addr;
		unw_stack.hi = (uintptr_t)addr + size;
		unw_stack.state = 1;
	}
	pthread_attr_destroy(&attr);
	return unw_stack.state > 0;
}

static inline uint64_t load_word(uint64_t addr)
{
	uint64_t v;

	memcpy(&v, (const void *)(uintptr_t)addr, sizeof(v));
	return v;
}

/* 1 when the stack words the previous walk's step from frame f read still
 * hold their values (the saved rbp only when the caller's walk needs it). */
static inline int step_still_valid(const struct rec_unw_frame *f)
{
	return (!f->ra_slot || load_word(f->ra_slot) == f->ra_val) &&
	       (!(f->flags & REC_UNW_F_BP_CHECK) || load_word(f->bp_slot) == f->bp_val);
}

/* The walk without reuse (a young slot, MEMREC_UNWIND=cfi-noreuse): step
 * every frame, write the kept ones straight to frames, touch nothing of
 * t's unwinder state. Same contract as walk() (*same_root untouched). */
static long walk_fresh(uint64_t pc, uint64_t sp, uint64_t bp, void **frames, size_t cap,
		       int *truncated)
{
	uint64_t memo_pc = 0, hi;
	struct rec_cfi_rule memo = { 0, 0, REC_CFI_FAIL, 0 }, r;
	uint32_t gen = rec_cfi_gen();
	size_t i, kept = 0;

	if (!stack_bounds())
		return -1;
	hi = unw_stack.hi;
	if (sp < unw_stack.lo || sp >= hi)
		return -1;
	*truncated = 0;
	for (i = 0;; i++) {
		uint64_t target = i ? pc - 1 : pc;
		if (i == REC_UNW_FRAMES)
			return -1;
		if (target == memo_pc) {
			r = memo;
		} else {
			r = memo = rec_cfi_get(target, gen);
			memo_pc = target;
		}
		if (kept || !in_range(&g_unw.self, pc)) {
			if (kept == cap) {
				*truncated = 1;
				break;
			}
			frames[kept++] = (void *)(uintptr_t)pc;
		}
		if (r.kind == REC_CFI_END)
			break;
		if (REC_UNLIKELY(r.kind != REC_CFI_STEP))
			return -1;
		uint64_t cfa = ((r.flags & REC_CFI_CFA_RBP) ? bp : sp) + (uint64_t)(int64_t)r.cfa_off;
		if (cfa < sp + 8 || cfa > hi)
			return -1;
		pc = load_word(cfa - 8);
		if (r.flags & REC_CFI_RBP_SAVED) {
			uint64_t s = cfa + (uint64_t)(int64_t)r.rbp_off;
			if (s < sp || s > hi - 8)
				return -1;
			bp = load_word(s);
		}
		sp = cfa;
		if (!pc)
			break;
	}
	return (long)kept;
}

/* A frame's rule packed into its flags (REC_UNW_F_*), and back. */
static inline uint64_t rule_pack(struct rec_cfi_rule r)
{
	if (r.kind == REC_CFI_END)
		return REC_UNW_F_END;
	return (uint64_t)(uint32_t)r.cfa_off << 32 | (uint64_t)(uint16_t)r.rbp_off << 16 |
	       (r.flags & (REC_UNW_F_CFA_RBP | REC_UNW_F_RBP_SAVED));
}

static inline struct rec_cfi_rule rule_unpack(uint64_t flags)
{
	struct rec_cfi_rule r = { (int32_t)(uint32_t)(flags >> 32), (int16_t)(uint16_t)(flags >> 16),
				  REC_CFI_STEP, (uint8_t)(flags & (REC_CFI_CFA_RBP | REC_CFI_RBP_SAVED)) };

	if (flags & REC_UNW_F_END)
		r = (struct rec_cfi_rule){ 0, 0, REC_CFI_END, 0 };
	return r;
}

/* Walk the stack from the registers (pc exact, sp, bp) of the caller's
 * frame, reusing the previous walk's outer part when it is validated.
 * Returns the frames kept (written to frames, innermost first) and sets
 * *truncated and *same_root as rec_unwind_capture(); -1 when this walker
 * cannot do it (the caller uses libunwind). */
static long walk(struct rec_thread *t, uint64_t pc, uint64_t sp, uint64_t bp, void **frames,
		 size_t cap, int *truncated, size_t *same_root, size_t unwritten_max)
{
	uint64_t memo_pc = 0;
	struct rec_cfi_rule memo = { 0, 0, REC_CFI_FAIL, 0 };
	struct rec_unw_frame *last = t->unw_last, *tmp = t->unw_tmp;
	uint32_t gen = rec_cfi_gen();
	uint64_t lo, hi;
	long ci = -1, splice = -1; /* index into last (root first) */
	size_t i = 0, skip = 0, kept, total, k;
	int cut = 0;

	if (!stack_bounds())
		return -1;
	lo = unw_stack.lo;
	hi = unw_stack.hi;
	if (sp < lo || sp >= hi)
		return -1; /* another stack (sigaltstack, coroutine) */
	if (t->unw_n && t->unw_gen == gen && t->unw_owner == (const void *)&unw_stack)
		ci = (long)t->unw_n - 1;
	long old_n = ci + 1; /* frames of the last walk usable (0: none) */
	for (;;) {
		/* A frame of the previous walk in the same state (and both
		 * leaves or both callers): if every word its walk read from
		 * here on is unchanged, the rest is that walk's. Otherwise
		 * the validated part is taken and stepping goes on from the
		 * first frame whose words changed. */
		while (ci >= 0 && last[ci].sp < sp)
			ci--;
		if (ci >= 0 && last[ci].sp == sp && last[ci].pc == pc &&
		    (last[ci].bp == bp || !(last[ci].flags & REC_UNW_F_BP_MATTERS)) &&
		    (ci == (long)t->unw_n - 1) == (i == 0)) {
			long m = ci;
			while (m >= 0 && step_still_valid(&last[m]))
				m--;
			if (m < 0) {
				splice = ci;
				break;
			}
			/* Frames ci .. m+1 are the last walk's (with their
			 * true bp, which may differ where it did not matter);
			 * frame m is stepped afresh below. */
			for (; ci > m; ci--) {
				if (i == REC_UNW_FRAMES)
					return -1;
				tmp[i] = last[ci];
				tmp[i].bp = bp;
				if (last[ci].bp_slot)
					bp = load_word(last[ci].bp_slot);
				if (i == skip && in_range(&g_unw.self, tmp[i].pc))
					skip++;
				i++;
				if (i - skip > cap) {
					cut = 1;
					goto out;
				}
			}
			pc = last[m].pc;
			sp = last[m].sp;
			ci = m - 1;
		}
		if (i == REC_UNW_FRAMES)
			return -1;
		struct rec_unw_frame *f = &tmp[i];
		uint64_t target = i ? pc - 1 : pc;
		struct rec_cfi_rule r;
		long oi = old_n - 1 - (long)i; /* the last walk's frame i */
		if (oi >= 0 && last[oi].pc == pc) {
			/* Same address at the same depth (so both leaves or
			 * both callers), same generation: same rule. */
			r = rule_unpack(last[oi].flags);
		} else if (target == memo_pc) {
			r = memo; /* recursion: the same function again */
		} else {
			r = memo = rec_cfi_get(target, gen);
			memo_pc = target;
		}
		f->pc = pc;
		f->sp = sp;
		f->bp = bp;
		f->ra_slot = f->bp_slot = 0;
		f->flags = 0;
		if (i == skip && in_range(&g_unw.self, pc))
			skip++;
		i++;
		if (i - skip > cap) {
			cut = 1;
			goto out;
		}
		_Static_assert(REC_CFI_CFA_RBP == REC_UNW_F_CFA_RBP &&
				       REC_CFI_RBP_SAVED == REC_UNW_F_RBP_SAVED, "flag values");
		f->flags = rule_pack(r);
		if (r.kind == REC_CFI_END)
			break;
		if (REC_UNLIKELY(r.kind != REC_CFI_STEP))
			return -1;
		uint64_t cfa = ((r.flags & REC_CFI_CFA_RBP) ? bp : sp) + (uint64_t)(int64_t)r.cfa_off;
		/* Every word read lies between this frame's rsp (at or above
		 * ours) and the top of the stack: mapped memory. */
		if (cfa < sp + 8 || cfa > hi)
			return -1;
		f->ra_slot = cfa - 8;
		f->ra_val = pc = load_word(cfa - 8);
		if (r.flags & REC_CFI_RBP_SAVED) {
			uint64_t s = cfa + (uint64_t)(int64_t)r.rbp_off;
			if (s < sp || s > hi - 8)
				return -1;
			f->bp_slot = s;
			f->bp_val = bp = load_word(s);
		}
		sp = cfa;
		if (!pc)
			break;
	}
out:
	/* Frames: tmp[0, i) then last[splice] .. last[0]. */
	total = i + (size_t)(splice + 1);
	for (k = i; skip == k && k < total && in_range(&g_unw.self, last[splice - (long)(k - i)].pc); k++)
		skip++;
	kept = total - skip;
	*same_root = 0;
	*truncated = cut;
	if (kept > cap) {
		kept = cap;
		*truncated = 1;
	}
	if (splice >= 0 && t->unw_kept && !*truncated && total <= REC_UNW_FRAMES) {
		size_t same = (size_t)splice + 1;
		if (same > kept)
			same = kept;
		if (same > t->unw_kept)
			same = t->unw_kept;
		*same_root = same;
	}
	{
		/* The outermost frames the caller already has need not be
		 * written. */
		size_t j = skip, unwritten = *same_root < unwritten_max ? *same_root : unwritten_max;
		size_t end = skip + kept - unwritten, mid = end < i ? end : i;
		void **o = frames;
		for (; j < mid; j++)
			*o++ = (void *)(uintptr_t)tmp[j].pc;
		if (j < end) {
			const struct rec_unw_frame *lf = &last[splice - (long)(j - i)];
			for (; j < end; j++, lf--)
				*o++ = (void *)(uintptr_t)lf->pc;
		}
	}
	if (*truncated || total > REC_UNW_FRAMES) {
		t->unw_n = 0;
		return (long)kept;
	}
	/* Whether each new frame's walk depends on its bp: a frame that
	 * computes its CFA from rbp does; one that reads the caller's rbp
	 * from the stack makes the value below it irrelevant. */
	uint64_t matters = splice >= 0 ? last[splice].flags & REC_UNW_F_BP_MATTERS : 0;
	for (k = 0; k < i; k++) {
		const struct rec_unw_frame *src = &tmp[i - 1 - k];
		struct rec_unw_frame *f = &last[splice + 1 + (long)k];
		uint64_t flags = src->flags & ~(uint64_t)(REC_UNW_F_BP_MATTERS | REC_UNW_F_BP_CHECK);
		if (src->bp_slot && matters) /* matters: the caller's */
			flags |= REC_UNW_F_BP_CHECK;
		if (flags & REC_UNW_F_CFA_RBP)
			matters = REC_UNW_F_BP_MATTERS;
		else if (flags & REC_UNW_F_RBP_SAVED)
			matters = 0;
		*f = *src;
		f->flags = flags | matters;
	}
	t->unw_n = (uint32_t)total;
	t->unw_kept = (uint32_t)kept;
	t->unw_gen = gen;
	t->unw_owner = (const void *)&unw_stack;
	return (long)kept;
}

void rec_unwind_mismatch(const char *what, size_t index, uint64_t got, uint64_t want)
{
	atomic_fetch_add(&g_unw.n_mismatch, 1);
	if (!atomic_exchange(&g_unw.logged, 1))
		rec_log(REC_LOG_ERROR, "unwind check: %s differs at frame %zu: %p, libunwind %p", what,
			index, (void *)(uintptr_t)got, (void *)(uintptr_t)want);
}

/* Log both backtraces (object + offset of each frame), for the first
 * mismatch only. */
static void log_both(void **frames, size_t n, void **ref, size_t m)
{
	for (size_t j = 0; j < n || j < m; j++) {
		Dl_info a = { 0 }, b = { 0 };
		void *x = j < n ? frames[j] : NULL, *y = j < m ? ref[j] : NULL;
		if (!x || !dladdr(x, &a) || !a.dli_fname)
			a = (Dl_info){ .dli_fname = "?", .dli_fbase = NULL };
		if (!y || !dladdr(y, &b) || !b.dli_fname)
			b = (Dl_info){ .dli_fname = "?", .dli_fbase = NULL };
		rec_log(REC_LOG_INFO, "unwind check: frame %zu: %s+%p, libunwind %s+%p", j, a.dli_fname,
			(void *)((uintptr_t)x - (uintptr_t)a.dli_fbase), b.dli_fname,
			(void *)((uintptr_t)y - (uintptr_t)b.dli_fbase));
	}
}

/* MEMREC_UNWIND_CHECK=1: the same backtrace by libunwind, compared. */
static __attribute__((noinline)) void check_against_libunwind(void **frames, size_t n, size_t cap,
							      int truncated)
{
	void *ref[REC_MAX_DEPTH_CAP + REC_FRAME_SLACK + 1];
	int ref_trunc;
	size_t m = capture_libunwind(ref, cap, &ref_trunc);

	atomic_fetch_add(&g_unw.n_checked, 1);
	for (size_t k = 0; k < n || k < m; k++) {
		if (k >= n || k >= m || frames[k] != ref[k]) {
			if (!atomic_load(&g_unw.logged))
				log_both(frames, n, ref, m);
			rec_unwind_mismatch("backtrace", k, k < n ? (uint64_t)(uintptr_t)frames[k] : 0,
					    k < m ? (uint64_t)(uintptr_t)ref[k] : 0);
			return;
		}
	}
	if (truncated != ref_trunc)
		rec_unwind_mismatch("truncation mark", n, (uint64_t)truncated, (uint64_t)ref_trunc);
}

__attribute__((noinline)) size_t rec_unwind_capture(struct rec_thread *t, void **frames, size_t cap,
						    int *truncated, size_t *same_root,
						    size_t unwritten_max)
{
	uint64_t pc, sp, bp;
	long n;

	*same_root = 0;
	if (REC_UNLIKELY(g_unw.use_libunwind))
		return capture_libunwind(frames, cap, truncated);
	/* This frame's own registers: the CFI of this very address says
	 * where its caller's are. */
	__asm__ volatile("leaq 0(%%rip), %0\n\t"
			 "movq %%rsp, %1\n\t"
			 "movq %%rbp, %2"
			 : "=r"(pc), "=r"(sp), "=r"(bp));
	if (REC_UNLIKELY(unw_stack.n_captures < REC_UNW_REUSE_AFTER)) {
		unw_stack.n_captures++;
		n = walk_fresh(pc, sp, bp, frames, cap, truncated);
	} else if (REC_UNLIKELY(g_unw.no_reuse))
		n = walk_fresh(pc, sp, bp, frames, cap, truncated);
	else
		n = walk(t, pc, sp, bp, frames, cap, truncated, same_root,
			 REC_UNLIKELY(rec_unwind_check_on) ? 0 : unwritten_max);
	if (REC_UNLIKELY(n < 0)) {
		t->unw_slow++;
		t->unw_n = 0;
		*same_root = 0;
		return capture_libunwind(frames, cap, truncated);
	}
	t->unw_fast++;
	if (REC_UNLIKELY(rec_unwind_check_on))
		check_against_libunwind(frames, (size_t)n, cap, *truncated);
	return (size_t)n;
}

void rec_unwind_dl_change(void)
{
	if (!g_unw.use_libunwind)
		rec_cfi_invalidate();
}
