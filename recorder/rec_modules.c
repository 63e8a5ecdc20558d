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
	uint32_t id;
	uint32_t gen;   /* scan generation that last saw it */
};

static struct {
	atomic_flag lock;
	struct mod *mods;    /* mmap'd, MAX_MODULES */
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

void rec_modules_scan(struct rec_thread *t)
{
	struct scan_arg a = { t, 0 };
	unsigned long long c[2] = { 0, 0 };

	while (atomic_flag_test_and_set_explicit(&g_mod.lock, memory_order_acquire))
		rec_prim_yield();
	if (!g_mod.mods) {
		g_mod.mods = rec_prim_map(MAX_MODULES * sizeof(struct mod), 1);
		if (!g_mod.mods)
			goto out;
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
		memmove(&g_mod.mods[i], &g_mod.mods[i + 1],
			(g_mod.n_mods - i - 1) * sizeof(struct mod));
		g_mod.n_mods--;
	}
out:
	atomic_flag_clear_explicit(&g_mod.lock, memory_order_release);
}
