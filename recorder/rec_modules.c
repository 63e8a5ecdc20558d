/* Module map via dl_iterate_phdr. A loaded object is identified by its
 * program header address and load base; ids start at 1 and are never
 * reused. Runs under the recursion guard; never allocates. */
#include <elf.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>

#include "rec_log.h"
#include "rec_modules.h"
#include "rec_prim.h"
#include "tf_enc.h"

#define MAX_MODULES 65536u
#define MAX_PATH_BYTES 8192u /* MODULE records must fit in the stage buffer */

struct mod {
	uintptr_t phdr; /* dlpi_phdr: identifies the loaded object */
	uintptr_t base; /* dlpi_addr */
	uintptr_t lo, hi; /* [lo, hi): addresses of its PT_LOAD segments */
	uint32_t id;
	uint32_t gen;   /* scan generation that last saw it */
};

struct range {
	uintptr_t lo, hi;
	uint32_t id; /* module id (0 in the taint list) */
};

#define MAX_TAINT 64u

_Atomic uint32_t rec_mod_n_taint;

static struct {
	atomic_flag lock;
	struct mod *mods;    /* mmap'd, MAX_MODULES */
	struct range *ranges; /* mmap'd, MAX_MODULES, sorted by lo; seqlock */
	_Atomic uint32_t n_ranges;
	_Atomic uint32_t seqv; /* odd while ranges or taint are rewritten */
	struct range taint[MAX_TAINT]; /* ranges modules were unloaded from */
	uint32_t n_mods;
	uint32_t next_id;    /* from 1 */
	uint32_t gen;
	unsigned long long adds, subs; /* dlpi_adds / dlpi_subs at the last scan */
	int scanned;
	const char *exe;
	size_t exe_len;
} g_mod = { .lock = ATOMIC_FLAG_INIT, .next_id = 1 };

void rec_modules_set_exe(const char *exe, size_t len)
{
	g_mod.exe = exe;
	g_mod.exe_len = len;
}

/* Find the GNU build-id note of an object. Returns its length (0: none). */
static size_t find_build_id(const struct dl_phdr_info *info, const uint8_t **out)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		const uint8_t *end = p + ph->p_memsz;
		size_t align = ph->p_align == 8 ? 8 : 4;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			const uint8_t *name = p + sizeof(*nh);
			size_t name_sz = (nh->n_namesz + align - 1) & ~(align - 1);
			const uint8_t *desc = name + name_sz;
			size_t desc_sz = (nh->n_descsz + align - 1) & ~(align - 1);
			if (desc + nh->n_descsz > end)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0 && nh->n_descsz <= TF_MAX_BUILD_ID_BYTES &&
			    nh->n_descsz > 0) {
				*out = desc;
				return nh->n_descsz;
			}
			p = desc + desc_sz;
		}
	}
	return 0;
}

static void emit_module(struct rec_thread *t, const struct dl_phdr_info *info, uint32_t id)
{
	struct tf_segment segs[TF_MAX_SEGMENTS];
	uint32_t n_segs = 0;
	const uint8_t *bid = NULL;
	size_t bid_len = find_build_id(info, &bid);
	const char *path = info->dlpi_name ? info->dlpi_name : "";
	size_t path_len = strlen(path);
	uint64_t seq;
	int n;

	if (path_len == 0 && g_mod.scanned == 0 && g_mod.n_mods == 0) {
		path = g_mod.exe; /* the first object is the main executable */
		path_len = g_mod.exe_len;
	}
	if (path_len > MAX_PATH_BYTES)
		path_len = MAX_PATH_BYTES;
	for (int i = 0; i < info->dlpi_phnum && n_segs < TF_MAX_SEGMENTS; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		segs[n_segs].vaddr = ph->p_vaddr;
		segs[n_segs].memsz = ph->p_memsz;
		segs[n_segs].flags = ph->p_flags;
		n_segs++;
	}
	rec_commit(t); /* empty the stage: a MODULE record may be large */
	seq = rec_next_seq();
	n = tf_enc_module(t->stage, REC_STAGE_BYTES, &t->st, seq, id, info->dlpi_addr, path,
			  path_len, bid, bid_len, segs, n_segs);
	if (n < 0) {
		rec_log(REC_LOG_ERROR, "module '%s' does not fit a record; skipped", path);
		return;
	}
	t->stage_len = (uint32_t)n;
	t->stage_last_seq = seq;
	rec_commit(t);
}

struct scan_arg {
	struct rec_thread *t;
	uint32_t cursor; /* where the next object probably is in g_mod.mods */
};

static int scan_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct scan_arg *a = data;
	uintptr_t phdr = (uintptr_t)info->dlpi_phdr;
	uint32_t i;

	(void)size;
	/* Objects come in load order, mostly as in the last scan: look at the
	 * cursor first, then everywhere. */
	if (a->cursor < g_mod.n_mods && g_mod.mods[a->cursor].phdr == phdr &&
	    g_mod.mods[a->cursor].base == info->dlpi_addr) {
		i = a->cursor;
	} else {
		for (i = 0; i < g_mod.n_mods; i++)
			if (g_mod.mods[i].phdr == phdr && g_mod.mods[i].base == info->dlpi_addr)
				break;
	}
	if (i < g_mod.n_mods) {
		g_mod.mods[i].gen = g_mod.gen;
		a->cursor = i + 1;
		return 0;
	}
	if (g_mod.n_mods == MAX_MODULES)
		return 0;
	struct mod *m = &g_mod.mods[g_mod.n_mods];
	m->phdr = phdr;
	m->base = info->dlpi_addr;
	m->lo = UINTPTR_MAX;
	m->hi = 0;
	for (int k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t s = info->dlpi_addr + ph->p_vaddr;
		if (s < m->lo)
			m->lo = s;
		if (s + ph->p_memsz > m->hi)
			m->hi = s + ph->p_memsz;
	}
	m->id = g_mod.next_id++;
	m->gen = g_mod.gen;
	emit_module(a->t, info, m->id);
	g_mod.n_mods++;
	a->cursor = g_mod.n_mods;
	return 0;
}

static int counts_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	unsigned long long *c = data;

	if (size < offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
		c[0] = c[1] = ~0ull; /* unknown: always rescan */
		return 1;
	}
	c[0] = info->dlpi_adds;
	c[1] = info->dlpi_subs;
	return 1;
}

static void taint_add(uintptr_t lo, uintptr_t hi);

/* Rewrite the sorted range table from g_mod.mods and add the n_gone ranges
 * in gone to the taint list (under g_mod.lock). */
static void ranges_rebuild(const struct range *gone, uint32_t n_gone)
{
	uint32_t n = 0;

	atomic_store_explicit(&g_mod.seqv, atomic_load(&g_mod.seqv) + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (uint32_t i = 0; i < n_gone; i++)
		taint_add(gone[i].lo, gone[i].hi);
	for (uint32_t i = 0; i < g_mod.n_mods; i++) {
		struct range r = { g_mod.mods[i].lo, g_mod.mods[i].hi, g_mod.mods[i].id };
		uint32_t j = n;
		if (r.lo >= r.hi)
			continue;
		while (j > 0 && g_mod.ranges[j - 1].lo > r.lo) {
			g_mod.ranges[j] = g_mod.ranges[j - 1];
			j--;
		}
		g_mod.ranges[j] = r;
		n++;
	}
	atomic_store_explicit(&g_mod.n_ranges, n, memory_order_relaxed);
	atomic_store_explicit(&g_mod.seqv, atomic_load(&g_mod.seqv) + 1, memory_order_release);
}

/* Index of the last range with lo <= addr in the sorted ranges, n if none
 * (reader side of the seqlock). */
static uint32_t range_find(uint64_t addr, uint32_t n)
{
	uint32_t lo = 0, hi = n < MAX_MODULES ? n : MAX_MODULES;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (g_mod.ranges[mid].lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && addr < g_mod.ranges[lo - 1].hi ? lo - 1 : UINT32_MAX;
}

uint64_t rec_modules_key(uint64_t addr)
{
	if (addr > REC_KEY_ADDR_MASK || !g_mod.ranges)
		return addr;
	for (;;) {
		uint32_t s1 = atomic_load_explicit(&g_mod.seqv, memory_order_acquire);
		if (s1 & 1) {
			rec_prim_yield();
			continue;
		}
		uint32_t nt = atomic_load_explicit(&rec_mod_n_taint, memory_order_relaxed);
		uint64_t salt = 0;
		for (uint32_t i = 0; i < nt && i < MAX_TAINT; i++) {
			if (addr >= g_mod.taint[i].lo && addr < g_mod.taint[i].hi) {
				uint32_t n = atomic_load_explicit(&g_mod.n_ranges, memory_order_relaxed);
				uint32_t r = range_find(addr, n);
				salt = r == UINT32_MAX ? REC_KEY_SALT_UNKNOWN
						       : 1 + (g_mod.ranges[r].id - 1) % 0xfffeu;
				break;
			}
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&g_mod.seqv, memory_order_relaxed) == s1)
			return addr | salt << 48;
	}
}

/* Remember [lo, hi) as a range a module was unloaded from (under the lock,
 * inside the seqlock's write section). When the list is full the last
 * entry grows to cover the range: salting more frames than needed only
 * splits call sites, never merges two libraries. */
static void taint_add(uintptr_t lo, uintptr_t hi)
{
	uint32_t n = atomic_load_explicit(&rec_mod_n_taint, memory_order_relaxed);

	if (lo >= hi)
		return;
	for (uint32_t i = 0; i < n; i++)
		if (g_mod.taint[i].lo <= lo && hi <= g_mod.taint[i].hi)
			return;
	if (n == MAX_TAINT) {
		struct range *r = &g_mod.taint[MAX_TAINT - 1];
		if (lo < r->lo)
			r->lo = lo;
		if (hi > r->hi)
			r->hi = hi;
		return;
	}
	g_mod.taint[n] = (struct range){ lo, hi, 0 };
	atomic_store_explicit(&rec_mod_n_taint, n + 1, memory_order_release);
}

int rec_modules_known(uint64_t addr)
{
	if (!g_mod.ranges)
		return 1;
	for (;;) {
		uint32_t s1 = atomic_load_explicit(&g_mod.seqv, memory_order_acquire);
		if (s1 & 1) {
			rec_prim_yield();
			continue;
		}
		uint32_t n = atomic_load_explicit(&g_mod.n_ranges, memory_order_relaxed);
		int found = range_find(addr, n) != UINT32_MAX;
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&g_mod.seqv, memory_order_relaxed) == s1)
			return found;
	}
}

void rec_modules_reset(void)
{
	atomic_flag_clear(&g_mod.lock); /* a fork child: the holder is gone */
	g_mod.n_mods = 0;
	g_mod.next_id = 1;
	g_mod.gen = 0;
	g_mod.scanned = 0;
	g_mod.adds = g_mod.subs = 0;
	atomic_store(&g_mod.n_ranges, 0);
	atomic_store(&rec_mod_n_taint, 0);
	atomic_store(&g_mod.seqv, 0);
}

void rec_modules_scan(struct rec_thread *t)
{
	struct range gone[16]; /* ranges unloaded in this scan */
	uint32_t n_gone = 0;
	struct scan_arg a = { t, 0 };
	unsigned long long c[2] = { 0, 0 };

	while (atomic_flag_test_and_set_explicit(&g_mod.lock, memory_order_acquire))
		rec_prim_yield();
	if (!g_mod.mods) {
		g_mod.mods = rec_prim_map(MAX_MODULES * sizeof(struct mod), 1);
		if (!g_mod.mods)
			goto out;
	}
	if (!g_mod.ranges) {
		struct range *r = rec_prim_map(MAX_MODULES * sizeof(struct range), 1);
		if (!r)
			goto out;
		g_mod.ranges = r;
	}
	dl_iterate_phdr(counts_cb, c);
	if (g_mod.scanned && c[0] == g_mod.adds && c[1] == g_mod.subs && c[0] != ~0ull)
		goto out; /* nothing loaded or unloaded since the last scan */
	g_mod.gen++;
	dl_iterate_phdr(scan_cb, &a);
	g_mod.scanned = 1;
	g_mod.adds = c[0];
	g_mod.subs = c[1];
	/* Objects not seen any more were unloaded. */
	for (uint32_t i = 0; i < g_mod.n_mods;) {
		if (g_mod.mods[i].gen == g_mod.gen) {
			i++;
			continue;
		}
		rec_commit(t);
		uint64_t seq = rec_next_seq();
		t->stage_len = (uint32_t)tf_enc_unload(t->stage, &t->st, seq, g_mod.mods[i].id);
		t->stage_last_seq = seq;
		rec_commit(t);
		struct range r = { g_mod.mods[i].lo, g_mod.mods[i].hi, 0 };
		if (n_gone < 16) {
			gone[n_gone++] = r;
		} else { /* widen the last one: see taint_add */
			if (r.lo < gone[15].lo)
				gone[15].lo = r.lo;
			if (r.hi > gone[15].hi)
				gone[15].hi = r.hi;
		}
		memmove(&g_mod.mods[i], &g_mod.mods[i + 1],
			(g_mod.n_mods - i - 1) * sizeof(struct mod));
		g_mod.n_mods--;
	}
	ranges_rebuild(gone, n_gone);
out:
	atomic_flag_clear_explicit(&g_mod.lock, memory_order_release);
}
