/* libunwind local unwinding with the per-thread cache. Leading frames in
 * libmemrec.so (and in libunwind itself) are dropped, so the first frame is
 * the return address into the caller of malloc/free/... */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <errno.h>
#include <libunwind.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>

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
} g_unw = { .pipe_fd = { -1, -1 } };

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

int rec_unwind_init(void)
{
	unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
	if (find_range((const void *)(uintptr_t)&rec_unwind_init, &g_unw.self) < 0) {
		rec_log(REC_LOG_ERROR, "cannot find the recorder's own text");
		return -ENOENT;
	}
	if (find_range((const void *)(uintptr_t)&unw_backtrace, &g_unw.unwind) < 0)
		g_unw.unwind = (struct range){ 0, 0 };
	return 0;
}

static inline int in_range(const struct range *r, uintptr_t a)
{
	return a >= r->lo && a < r->hi;
}

size_t rec_unwind_capture(void **frames, size_t cap, int *truncated)
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
