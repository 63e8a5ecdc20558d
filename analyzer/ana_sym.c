/* Symbolizer over elfutils libdwfl: one Dwfl session per module, opened on
 * the first address inside it, so modules may be added at any time and
 * overlapping registrations (dlclose, then dlopen at the same address) do
 * not confuse libdwfl's address map. A file whose build-id differs from the
 * recorded one is never used for symbols: a wrong-binary symbolization is
 * worse than none. Bad ELF or DWARF gives unknown frames, never a crash. */
#include "ana_sym.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libstdc++'s Itanium C++ ABI demangler; cxxabi.h is C++-only. Returns a
 * malloc'd string and *status 0 on success. */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* Addresses below this (the NULL page, TF_ADDR_TRUNCATED) are never code. */
#define ANA_SYM_MIN_ADDR 4096u

/* A module whose file is unusable has no known size: it owns addresses from
 * its base up to the next module's start, at most this many bytes. */
#define ANA_SYM_GUESS_SPAN (1ull << 30)

/* Build-id directory used when no debug path was set: libdwfl's default
 * ":.debug:/usr/lib/debug" (libdwfl.h) minus the relative entries. */
#define ANA_SYM_DEFAULT_DEBUG_DIR "/usr/lib/debug"

/* Deepest nesting of code scopes (functions, inlined instances, blocks)
 * followed at one address, and of DIE containers searched. */
#define ANA_SYM_MAX_DEPTH 128
#define ANA_SYM_MAX_NEST 256

/* An ELF function symbol. dwfl_module_addrinfo scans the whole symbol
 * table per call (most of the time for a library without DWARF), so each
 * module gets this sorted copy instead. */
struct ana_sym_elfsym {
	uint64_t addr;    /* runtime address */
	uint64_t size;    /* bytes; 0 unknown (runs to the next symbol) */
	const char *name; /* borrowed from libelf, valid while the Dwfl is */
	int rank;         /* among aliases the highest wins (binding, no _) */
};

struct ana_sym_mod {
	uint32_t id;         /* trace module id */
	char *path;          /* as registered; owned */
	char *elf_path;      /* file with the symbols (path or a build-id .debug
			      * file); NULL: unresolvable; owned */
	uint64_t base;       /* load bias: runtime address - file vaddr */
	uint64_t start, end; /* runtime range [start, end); end 0: unknown */
	uint32_t owner;      /* index of the first registration of the same
			      * elf_path, whose session and symbol table
			      * serve this one (itself if first) */
	Dwfl *dwfl;          /* this module's session; NULL until opened */
	Dwfl_Module *dwmod;  /* its only module; NULL if opening failed */
	bool tried;          /* opening attempted */
	struct ana_sym_elfsym *syms; /* function symbols by address; owned */
	size_t n_syms;
	bool syms_loaded;    /* syms built (possibly empty) */
};

/* Cache slot: one distinct (module, return address) pair and its frames
 * in the pool. The same address may be code of two modules loaded there at
 * different times (dlclose, then dlopen): each gets its own slot. */
struct ana_sym_slot {
	uint64_t addr;  /* key; 0: empty (addresses < ANA_SYM_MIN_ADDR never
			 * reach the cache) */
	int32_t mod;    /* key: index into sym->mods */
	uint32_t n;     /* frames */
	size_t first;   /* index of the innermost frame in sym->pool */
};

struct ana_sym {
	struct ana_sym_mod *mods; /* in registration order */
	size_t n_mods, mods_cap;
	/* id -> index + 1 of its latest registration (open addressing on
	 * id_keys; key id + 1, 0 = empty; id UINT32_MAX in max_id_mod). */
	uint32_t *id_keys, *id_vals;
	size_t n_ids, ids_cap;
	uint32_t max_id_mod;
	/* elf_path -> index + 1 of its first registration (open addressing):
	 * a library loaded again (dlclose, dlopen) shares one session. */
	uint32_t *files;
	size_t n_files, files_cap;
	Dwfl_Callbacks cb;        /* shared by every module's Dwfl */
	char *debug_path;         /* cb.debuginfo_path points here; NULL:
				   * libdwfl's default */
	struct ana_sym_slot *slots; /* open addressing, power-of-two size */
	size_t n_slots, slots_cap;
	struct ana_frame *pool;   /* frames of the cached addresses */
	size_t n_pool, pool_cap;
	char **strs;              /* interned strings, open addressing */
	size_t n_strs, strs_cap;
	bool oom;                 /* an intern() failed since last checked */
};

static uint64_t hash_u64(uint64_t x)
{
	/* splitmix64 finalizer */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* Grow *arr (element size elem) to hold at least need elements. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 16;
	while (n < need)
		n *= 2;
	void *p = realloc(*arr, n * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

/* Return sym's copy of s (NULL for NULL). On allocation failure returns
 * NULL and sets sym->oom. */
static char *intern(struct ana_sym *sym, const char *s)
{
	if (!s)
		return NULL;
	if ((sym->n_strs + 1) * 4 > sym->strs_cap * 3) {
		size_t cap = sym->strs_cap ? sym->strs_cap * 2 : 1024;
		char **t = calloc(cap, sizeof(*t));
		if (!t) {
			sym->oom = true;
			return NULL;
		}
		for (size_t i = 0; i < sym->strs_cap; i++) {
			if (!sym->strs[i])
				continue;
			size_t j = hash_str(sym->strs[i]) & (cap - 1);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = sym->strs[i];
		}
		free(sym->strs);
		sym->strs = t;
		sym->strs_cap = cap;
	}
	size_t mask = sym->strs_cap - 1, j = hash_str(s) & mask;
	for (; sym->strs[j]; j = (j + 1) & mask)
		if (!strcmp(sym->strs[j], s))
			return sym->strs[j];
	char *copy = strdup(s);
	if (!copy) {
		sym->oom = true;
		return NULL;
	}
	sym->strs[j] = copy;
	sym->n_strs++;
	return copy;
}

char *ana_sym_demangle(const char *name)
{
	if (!name || strncmp(name, "_Z", 2) != 0)
		return NULL;
	int status = -1;
	char *out = __cxa_demangle(name, NULL, NULL, &status);
	if (status != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Intern the demangled form of name, or name itself. */
static char *intern_symbol(struct ana_sym *sym, const char *name)
{
	char *d = ana_sym_demangle(name);
	if (!d)
		return intern(sym, name);
	char *r = intern(sym, d);
	free(d);
	return r;
}

int ana_sym_new(struct ana_sym **out)
{
	struct ana_sym *sym = calloc(1, sizeof(*sym));
	if (!sym)
		return -ENOMEM;
	elf_version(EV_CURRENT);
	sym->cb.find_elf = dwfl_build_id_find_elf;
	sym->cb.find_debuginfo = dwfl_standard_find_debuginfo;
	sym->cb.section_address = dwfl_offline_section_address;
	sym->cb.debuginfo_path = &sym->debug_path;
	*out = sym;
	return 0;
}

void ana_sym_free(struct ana_sym *sym)
{
	if (!sym)
		return;
	for (size_t i = 0; i < sym->n_mods; i++) {
		if (sym->mods[i].dwfl)
			dwfl_end(sym->mods[i].dwfl);
		free(sym->mods[i].path);
		free(sym->mods[i].elf_path);
		free(sym->mods[i].syms);
	}
	free(sym->mods);
	free(sym->id_keys);
	free(sym->id_vals);
	free(sym->files);
	for (size_t i = 0; i < sym->strs_cap; i++)
		free(sym->strs[i]);
	free(sym->strs);
	free(sym->slots);
	free(sym->pool);
	free(sym->debug_path);
	free(sym);
}

int ana_sym_set_debug_path(struct ana_sym *sym, const char *path)
{
	char *copy = NULL;
	if (path && !(copy = strdup(path)))
		return -ENOMEM;
	free(sym->debug_path);
	sym->debug_path = copy;
	return 0;
}

/* Read the runtime range of the ELF file at path when loaded at bias base
 * (computed as libdwfl's dwfl_report_elf does: first PT_LOAD rounded down
 * to its alignment, to the end of the highest PT_LOAD) and compare its
 * build-id with want[0..want_len) unless want_len is 0. Returns 0, -errno
 * from open, -ENOEXEC (not a loadable ELF object) or -ESTALE (build-id
 * differs; the range is still set). */
static int probe_elf(const char *path, uint64_t base, const uint8_t *want,
		     size_t want_len, uint64_t *start, uint64_t *end)
{
	/* O_NONBLOCK and regular files only: a path named by a hostile trace
	 * may be a FIFO or a device, whose open or read would block. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	int rc = -ENOEXEC;
	struct stat st;
	Elf *elf = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	GElf_Ehdr ehdr;
	size_t phnum;
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &ehdr) ||
	    (ehdr.e_type != ET_EXEC && ehdr.e_type != ET_DYN) ||
	    elf_getphdrnum(elf, &phnum) != 0)
		goto out;
	uint64_t bias = ehdr.e_type == ET_EXEC ? 0 : base;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		uint64_t align = ph.p_align ? ph.p_align : 1;
		if (align & (align - 1))
			goto out;
		if (lo == UINT64_MAX)
			lo = ph.p_vaddr & ~(align - 1);
		if (ph.p_vaddr + ph.p_memsz < ph.p_vaddr)
			goto out;
		if (ph.p_vaddr + ph.p_memsz > hi)
			hi = ph.p_vaddr + ph.p_memsz;
	}
	if (lo == UINT64_MAX || hi <= lo || bias + hi < bias)
		goto out;
	*start = bias + lo;
	*end = bias + hi;
	rc = 0;
	if (want_len) {
		const void *id = NULL;
		ssize_t n = dwelf_elf_gnu_build_id(elf, &id);
		if (n <= 0 || (size_t)n != want_len || memcmp(id, want, want_len))
			rc = -ESTALE;
	}
out:
	elf_end(elf);
	close(fd);
	return rc;
}

/* Look for DIR/.build-id/xx/rest.debug with the given build-id in every
 * absolute directory of the debug path. On success sets *out (malloc'd)
 * and the range, returns 0; else -ENOENT or -ENOMEM. */
static int find_by_build_id(struct ana_sym *sym, const uint8_t *id,
			    size_t len, uint64_t base, char **out,
			    uint64_t *start, uint64_t *end)
{
	const char *p = sym->debug_path ? sym->debug_path
					: ANA_SYM_DEFAULT_DEBUG_DIR;
	char hex[2 * 64 + 1];
	if (len < 2 || len > 64)
		return -ENOENT;
	for (size_t i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	while (*p) {
		/* Entries may carry a leading +/- (CRC checking flag). */
		while (*p == '+' || *p == '-')
			p++;
		size_t n = strcspn(p, ":");
		if (n > 0 && p[0] == '/') {
			size_t cap = n + sizeof("/.build-id/xx/.debug") + 2 * len;
			char *path = malloc(cap);
			if (!path)
				return -ENOMEM;
			snprintf(path, cap, "%.*s/.build-id/%.2s/%s.debug", (int)n,
				 p, hex, hex + 2);
			uint64_t s, e;
			if (probe_elf(path, base, id, len, &s, &e) == 0) {
				*out = path;
				*start = s;
				*end = e;
				return 0;
			}
			free(path);
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return -ENOENT;
}

/* Record that module id's latest registration is index idx. Returns 0 or
 * -ENOMEM. */
static int id_put(struct ana_sym *sym, uint32_t id, uint32_t idx)
{
	if (id == UINT32_MAX) {
		sym->max_id_mod = idx + 1;
		return 0;
	}
	if ((sym->n_ids + 1) * 2 > sym->ids_cap) {
		size_t cap = sym->ids_cap ? sym->ids_cap * 2 : 64;
		uint32_t *k = calloc(cap, sizeof(*k)), *v = malloc(cap * sizeof(*v));
		if (!k || !v) {
			free(k);
			free(v);
			return -ENOMEM;
		}
		for (size_t i = 0; i < sym->ids_cap; i++) {
			if (!sym->id_keys[i])
				continue;
			size_t j = hash_u64(sym->id_keys[i]) & (cap - 1);
			while (k[j])
				j = (j + 1) & (cap - 1);
			k[j] = sym->id_keys[i];
			v[j] = sym->id_vals[i];
		}
		free(sym->id_keys);
		free(sym->id_vals);
		sym->id_keys = k;
		sym->id_vals = v;
		sym->ids_cap = cap;
	}
	size_t mask = sym->ids_cap - 1, j = hash_u64(id + 1) & mask;
	while (sym->id_keys[j] && sym->id_keys[j] != id + 1)
		j = (j + 1) & mask;
	if (!sym->id_keys[j])
		sym->n_ids++;
	sym->id_keys[j] = id + 1;
	sym->id_vals[j] = idx + 1;
	return 0;
}

/* Index of the first registration whose elf_path is path; if none, record
 * idx as it and return idx. Returns -ENOMEM on failure. */
static int64_t file_owner(struct ana_sym *sym, const char *path, uint32_t idx)
{
	if ((sym->n_files + 1) * 2 > sym->files_cap) {
		size_t cap = sym->files_cap ? sym->files_cap * 2 : 64;
		uint32_t *t = calloc(cap, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < sym->files_cap; i++) {
			if (!sym->files[i])
				continue;
			size_t j = hash_str(sym->mods[sym->files[i] - 1].elf_path) & (cap - 1);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = sym->files[i];
		}
		free(sym->files);
		sym->files = t;
		sym->files_cap = cap;
	}
	size_t mask = sym->files_cap - 1, j = hash_str(path) & mask;
	for (; sym->files[j]; j = (j + 1) & mask)
		if (!strcmp(sym->mods[sym->files[j] - 1].elf_path, path))
			return sym->files[j] - 1;
	sym->files[j] = idx + 1;
	sym->n_files++;
	return idx;
}

/* Index of the latest registration of module id, or -1. */
static int id_find(const struct ana_sym *sym, uint32_t id)
{
	if (id == UINT32_MAX)
		return (int)sym->max_id_mod - 1;
	if (!sym->ids_cap)
		return -1;
	size_t mask = sym->ids_cap - 1, j = hash_u64(id + 1) & mask;
	for (; sym->id_keys[j]; j = (j + 1) & mask)
		if (sym->id_keys[j] == id + 1)
			return (int)sym->id_vals[j] - 1;
	return -1;
}

int ana_sym_add_module(struct ana_sym *sym, uint32_t id, const char *path,
		       uint64_t base, const uint8_t *build_id,
		       size_t build_id_len)
{
	if (!path)
		return -EINVAL;
	if (!build_id)
		build_id_len = 0;
	if (sym->n_mods >= INT32_MAX ||
	    grow((void **)&sym->mods, &sym->mods_cap, sym->n_mods + 1,
		 sizeof(*sym->mods)))
		return -ENOMEM;
	struct ana_sym_mod m = { .id = id, .base = base };
	if (!(m.path = strdup(path)))
		return -ENOMEM;
	int rc = probe_elf(path, base, build_id, build_id_len, &m.start, &m.end);
	if (rc == 0) {
		m.elf_path = strdup(path);
	} else if (build_id_len) {
		/* Missing or wrong file: the recorded build-id may still name
		 * a debug file, which has the same program headers. */
		int r = find_by_build_id(sym, build_id, build_id_len, base,
					 &m.elf_path, &m.start, &m.end);
		if (r == -ENOMEM) {
			free(m.path);
			return r;
		}
		if (r == 0)
			rc = 0;
	}
	if (rc == 0 && !m.elf_path) {
		free(m.path);
		return -ENOMEM;
	}
	/* Cached results stay valid: they are per (module, address), and
	 * ana_sym_resolve() picks the module before looking in the cache. */
	m.owner = (uint32_t)sym->n_mods;
	if (id_put(sym, id, m.owner) < 0) {
		free(m.path);
		free(m.elf_path);
		return -ENOMEM;
	}
	sym->mods[sym->n_mods++] = m;
	if (m.elf_path) {
		/* Out of memory here only loses the sharing. */
		int64_t o = file_owner(sym, m.elf_path, m.owner);
		if (o >= 0)
			sym->mods[m.owner].owner = (uint32_t)o;
	}
	return rc;
}

const char *ana_sym_module_path(struct ana_sym *sym, uint32_t id)
{
	int i = id_find(sym, id);

	return i >= 0 ? sym->mods[i].path : NULL;
}

/* Index of the module holding addr, or -1. A known range wins, the latest
 * registration first; otherwise an unknown-range module owns addr when its
 * base is the nearest module start at or below addr. */
static int find_mod(const struct ana_sym *sym, uint64_t addr)
{
	for (size_t i = sym->n_mods; i-- > 0;) {
		const struct ana_sym_mod *m = &sym->mods[i];
		if (m->end && addr >= m->start && addr < m->end)
			return (int)i;
	}
	int best = -1;
	uint64_t best_start = 0;
	for (size_t i = 0; i < sym->n_mods; i++) {
		const struct ana_sym_mod *m = &sym->mods[i];
		uint64_t s = m->end ? m->start : m->base;
		if (s <= addr && (best < 0 || s >= best_start)) {
			best = (int)i;
			best_start = s;
		}
	}
	if (best >= 0 && !sym->mods[best].end &&
	    addr - sym->mods[best].base < ANA_SYM_GUESS_SPAN)
		return best;
	return -1;
}

/* Open m's Dwfl session once. Returns whether m can be symbolized. */
static bool mod_open(struct ana_sym *sym, struct ana_sym_mod *m)
{
	if (m->tried)
		return m->dwmod != NULL;
	m->tried = true;
	if (!m->elf_path || !(m->dwfl = dwfl_begin(&sym->cb)))
		return false;
	dwfl_report_begin(m->dwfl);
	/* add_p_vaddr = true: base is the load bias (dlpi_addr), so the file
	 * is placed at base + p_vaddr even for a prelinked object whose first
	 * PT_LOAD is not at vaddr 0. */
	m->dwmod = dwfl_report_elf(m->dwfl, m->path, m->elf_path, -1, m->base,
				   true);
	dwfl_report_end(m->dwfl, NULL, NULL);
	if (!m->dwmod) {
		dwfl_end(m->dwfl);
		m->dwfl = NULL;
	}
	return m->dwmod != NULL;
}

/* Function name of a subprogram or inlined-subroutine DIE: the demangled
 * linkage name (so C++ namespaces and parameters appear), else DW_AT_name.
 * Both are looked up through DW_AT_abstract_origin/DW_AT_specification. */
static char *die_function(struct ana_sym *sym, Dwarf_Die *die,
			  bool *has_linkage_name)
{
	Dwarf_Attribute attr;
	const char *link = dwarf_formstring(
		dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
	if (!link)
		link = dwarf_formstring(
			dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
	*has_linkage_name = link != NULL;
	if (link) {
		char *d = ana_sym_demangle(link);
		if (d) {
			char *r = intern(sym, d);
			free(d);
			return r;
		}
	}
	const char *name = dwarf_diename(die);
	return intern(sym, name ? name : link);
}

/* GCC gives functions with internal linkage (static, anonymous namespace)
 * no DW_AT_linkage_name, so their DWARF name lacks namespace and
 * parameters. When the ELF symbol elf_name of the same code demangles to a
 * name containing *name, use that instead, without a " [clone .cold]"-style
 * suffix (the parts of one function keep one name). */
static void qualify(struct ana_sym *sym, char **name, const char *elf_name)
{
	char *d = ana_sym_demangle(elf_name);
	if (!d)
		return;
	char *clone = strstr(d, " [clone ");
	if (clone)
		*clone = '\0';
	if (strstr(d, *name)) {
		char *r = intern(sym, d);
		if (r)
			*name = r;
	}
	free(d);
}

/* File named by an inlined scope's DW_AT_call_file (an index into its CU's
 * line-table file list), or NULL. */
static const char *call_file(Dwarf_Die *scope)
{
	Dwarf_Attribute attr;
	Dwarf_Word idx;
	Dwarf_Die cu;
	Dwarf_Files *files;
	size_t n_files;
	if (dwarf_formudata(dwarf_attr(scope, DW_AT_call_file, &attr), &idx) ||
	    !dwarf_diecu(scope, &cu, NULL, NULL) ||
	    dwarf_getsrcfiles(&cu, &files, &n_files) || idx >= n_files)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

/* DIE tags with code ranges, possibly holding inlined instances. */
static bool is_code_scope(int tag)
{
	return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
	       tag == DW_TAG_lexical_block || tag == DW_TAG_entry_point ||
	       tag == DW_TAG_try_block || tag == DW_TAG_catch_block ||
	       tag == DW_TAG_with_stmt;
}

/* DIE tags without code ranges that may still hold function definitions
 * (GCC puts them at CU level; other producers may nest them here). */
static bool is_container(int tag)
{
	return tag == DW_TAG_namespace || tag == DW_TAG_module ||
	       tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
	       tag == DW_TAG_union_type || tag == DW_TAG_interface_type;
}

/* Search the children of parent for the nested code scopes containing pc
 * (a DWARF address) and store them in path[depth..], outermost first.
 * Descends only into scopes containing pc (and into containers when deep),
 * so it costs about one pass over the CU's top-level DIEs, where
 * dwarf_getscopes plus dwarf_getscopes_die walk the whole CU up to three
 * times. level bounds the recursion on hostile DWARF. Returns the depth
 * reached, or -1 when no child contains pc. */
static int scope_walk(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *path,
		      int depth, int level, bool deep)
{
	Dwarf_Die child;
	if (depth >= ANA_SYM_MAX_DEPTH || level >= ANA_SYM_MAX_NEST ||
	    dwarf_child(parent, &child) != 0)
		return -1;
	Dwarf_Off prev = 0;
	do {
		/* A corrupt DW_AT_sibling could point backwards: stop. */
		Dwarf_Off off = dwarf_dieoffset(&child);
		if (off <= prev)
			break;
		prev = off;
		int tag = dwarf_tag(&child);
		if (is_code_scope(tag) && dwarf_haspc(&child, pc) == 1) {
			path[depth] = child;
			int d = scope_walk(&path[depth], pc, path, depth + 1,
					   level + 1, deep);
			return d >= 0 ? d : depth + 1;
		}
		if (deep && is_container(tag)) {
			int d = scope_walk(&child, pc, path, depth, level + 1,
					   deep);
			if (d >= 0)
				return d;
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	return -1;
}

static int elfsym_cmp(const void *a, const void *b)
{
	const struct ana_sym_elfsym *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return y->rank - x->rank; /* best alias first */
}

/* Build m->syms from the module's symbol table (.symtab of the file or its
 * debug file, else .dynsym, plus MiniDebugInfo). Keeps defined functions,
 * one per address: global over weak over local, then fewer leading '_'
 * (so "malloc" rather than "__libc_malloc"). Returns 0 or -ENOMEM. */
static int elfsyms_load(struct ana_sym_mod *m)
{
	m->syms_loaded = true;
	int n = dwfl_module_getsymtab(m->dwmod);
	if (n <= 1)
		return 0;
	struct ana_sym_elfsym *v = malloc((size_t)n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	for (int i = 1; i < n; i++) {
		GElf_Sym es;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name = dwfl_module_getsym_info(m->dwmod, i, &es, &addr,
							   &shndx, NULL, NULL);
		int type = GELF_ST_TYPE(es.st_info);
		if (!name || !*name || es.st_shndx == SHN_UNDEF ||
		    (type != STT_FUNC && type != STT_GNU_IFUNC) || !addr)
			continue;
		int bind = GELF_ST_BIND(es.st_info);
		int under = 0;
		while (name[under] == '_' && under < 8)
			under++;
		v[k].addr = addr;
		v[k].size = es.st_size;
		v[k].name = name;
		v[k].rank = (bind == STB_GLOBAL ? 200 : bind == STB_WEAK ? 100 : 0) -
			    under;
		k++;
	}
	qsort(v, k, sizeof(*v), elfsym_cmp);
	size_t out = 0;
	for (size_t i = 0; i < k; i++)
		if (!out || v[out - 1].addr != v[i].addr)
			v[out++] = v[i];
	m->syms = v;
	m->n_syms = out;
	return 0;
}

/* Name of the function symbol containing pc, or NULL. A sized symbol must
 * cover pc (an address in a stripped static function gets no name rather
 * than its neighbour's); a sizeless one runs to the next symbol. */
static const char *elfsym_find(struct ana_sym *sym, struct ana_sym_mod *m,
			       uint64_t pc)
{
	if (!m->syms_loaded && elfsyms_load(m) < 0) {
		m->syms_loaded = false;
		sym->oom = true;
		return NULL;
	}
	size_t lo = 0, hi = m->n_syms; /* first symbol above pc */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->syms[mid].addr <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	const struct ana_sym_elfsym *e = &m->syms[lo - 1];
	if (e->size && pc - e->addr >= e->size)
		return NULL;
	return e->name;
}

/* Frames for pc (a call instruction) in module m into out, innermost
 * first. Returns n in 1..ANA_SYM_MAX_FRAMES or -ENOMEM. */
static int symbolize(struct ana_sym *sym, struct ana_sym_mod *m, uint64_t pc,
		     struct ana_frame *out)
{
	int n = 0;
	sym->oom = false;
	memset(&out[0], 0, sizeof(out[0]));
	if (!mod_open(sym, m))
		return 1;

	/* The innermost frame's position comes from the line table; each
	 * inlined scope's DW_AT_call_file/line is the position in the next
	 * frame out. */
	char *file = NULL;
	uint32_t line = 0;
	bool has_linkage_name = false; /* of the last frame */
	Dwfl_Line *dl = dwfl_module_getsrc(m->dwmod, pc);
	if (dl) {
		int lineno = 0;
		file = intern(sym, dwfl_lineinfo(dl, NULL, &lineno, NULL, NULL,
						 NULL));
		line = lineno > 0 ? (uint32_t)lineno : 0;
	}

	Dwarf_Addr bias = 0;
	Dwarf_Die *cu = dwfl_module_addrdie(m->dwmod, pc, &bias);
	Dwarf_Die path[ANA_SYM_MAX_DEPTH], *scopes = NULL;
	Dwarf_Die *chain[ANA_SYM_MAX_DEPTH]; /* innermost first */
	int n_chain = 0;
	int depth = cu ? scope_walk(cu, pc - bias, path, 0, 0, false) : -1;
	if (cu && depth < 0)
		depth = scope_walk(cu, pc - bias, path, 0, 0, true);
	for (int i = depth - 1; i >= 0; i--)
		chain[n_chain++] = &path[i];
	if (cu && depth < 0 && dwarf_getscopes(cu, pc - bias, &scopes) > 0) {
		/* Slow path for layouts the walk does not know (imported
		 * units). dwarf_getscopes continues from an inlined instance
		 * into its abstract origin's lexical parents; the callers are
		 * the DIE tree around the innermost concrete scope instead
		 * (as eu-addr2line -i does). */
		Dwarf_Die inner = scopes[0];
		free(scopes);
		scopes = NULL;
		int n_sc = dwarf_getscopes_die(&inner, &scopes);
		for (int i = 0; i < n_sc && i < ANA_SYM_MAX_DEPTH; i++)
			chain[n_chain++] = &scopes[i];
	}
	for (int i = 0; i < n_chain; i++) {
		int tag = dwarf_tag(chain[i]);
		if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine &&
		    tag != DW_TAG_entry_point)
			continue;
		/* Past the limit, the outermost frames overwrite the last. */
		int k = n < ANA_SYM_MAX_FRAMES ? n++ : ANA_SYM_MAX_FRAMES - 1;
		out[k].function = die_function(sym, chain[i],
					       &has_linkage_name);
		out[k].file = file;
		out[k].line = line;
		if (tag != DW_TAG_inlined_subroutine)
			break;
		Dwarf_Attribute attr;
		Dwarf_Word cl = 0;
		file = intern(sym, call_file(chain[i]));
		if (dwarf_formudata(dwarf_attr(chain[i], DW_AT_call_line, &attr),
				    &cl) ||
		    cl > UINT32_MAX)
			cl = 0;
		line = (uint32_t)cl;
	}
	free(scopes);
	if (n == 0) {
		/* No DWARF scope (no debug info, or assembly): line table
		 * position if any, name from the ELF symbol table below. */
		out[0].file = file;
		out[0].line = line;
		n = 1;
	}
	if (!out[n - 1].function || !has_linkage_name) {
		/* The ELF symbol containing pc is the real function. */
		const char *name = elfsym_find(sym, m, pc);
		if (!out[n - 1].function)
			out[n - 1].function = intern_symbol(sym, name);
		else
			qualify(sym, &out[n - 1].function, name);
	}
	return sym->oom ? -ENOMEM : n;
}

static uint64_t slot_hash(uint64_t addr, int32_t mod)
{
	return hash_u64(addr ^ ((uint64_t)(uint32_t)mod << 47));
}

/* Find or compute the cache slot of addr in module index mod. Returns it or
 * NULL (-ENOMEM). */
static struct ana_sym_slot *lookup(struct ana_sym *sym, int32_t mod, uint64_t addr)
{
	if ((sym->n_slots + 1) * 4 > sym->slots_cap * 3) {
		size_t cap = sym->slots_cap ? sym->slots_cap * 2 : 4096;
		struct ana_sym_slot *t = calloc(cap, sizeof(*t));
		if (!t)
			return NULL;
		for (size_t i = 0; i < sym->slots_cap; i++) {
			if (!sym->slots[i].addr)
				continue;
			size_t j = slot_hash(sym->slots[i].addr, sym->slots[i].mod) & (cap - 1);
			while (t[j].addr)
				j = (j + 1) & (cap - 1);
			t[j] = sym->slots[i];
		}
		free(sym->slots);
		sym->slots = t;
		sym->slots_cap = cap;
	}
	size_t mask = sym->slots_cap - 1, j = slot_hash(addr, mod) & mask;
	for (; sym->slots[j].addr; j = (j + 1) & mask)
		if (sym->slots[j].addr == addr && sym->slots[j].mod == mod)
			return &sym->slots[j];

	struct ana_sym_slot s = { .addr = addr, .first = sym->n_pool, .mod = mod };
	struct ana_frame tmp[ANA_SYM_MAX_FRAMES];
	/* The same file loaded earlier (maybe elsewhere) serves this one: the
	 * call is at the same offset from its base. */
	const struct ana_sym_mod *m = &sym->mods[mod];
	struct ana_sym_mod *o = &sym->mods[m->owner];
	int n = symbolize(sym, o, addr - 1 - m->base + o->base, tmp);
	if (n < 0 || grow((void **)&sym->pool, &sym->pool_cap,
			  sym->n_pool + (size_t)n, sizeof(*sym->pool)))
		return NULL;
	memcpy(&sym->pool[sym->n_pool], tmp, (size_t)n * sizeof(*tmp));
	sym->n_pool += (size_t)n;
	s.n = (uint32_t)n;
	sym->slots[j] = s;
	sym->n_slots++;
	return &sym->slots[j];
}

/* Copy slot s's frames into frames (cap >= 1). Returns how many. */
static int copy_frames(const struct ana_sym *sym, const struct ana_sym_slot *s,
		       struct ana_frame *frames, int cap)
{
	const struct ana_frame *f = &sym->pool[s->first];
	int n = (int)s->n;
	if (n > cap) {
		/* Keep the innermost frames and the real function. */
		memcpy(frames, f, (size_t)(cap - 1) * sizeof(*f));
		frames[cap - 1] = f[n - 1];
		n = cap;
	} else {
		memcpy(frames, f, (size_t)n * sizeof(*f));
	}
	return n;
}

int ana_sym_resolve(struct ana_sym *sym, uint64_t addr, struct ana_frame *frames,
		    int cap, uint32_t *module_id, uint64_t *module_off)
{
	if (cap < 1)
		return -EINVAL;
	if (addr < ANA_SYM_MIN_ADDR)
		return 0;
	int mod = find_mod(sym, addr);
	if (mod < 0)
		return 0;
	struct ana_sym_slot *s = lookup(sym, mod, addr);
	if (!s)
		return -ENOMEM;
	if (module_id)
		*module_id = sym->mods[mod].id;
	if (module_off)
		*module_off = addr - sym->mods[mod].base;
	return copy_frames(sym, s, frames, cap);
}

int ana_sym_resolve_in(struct ana_sym *sym, uint32_t module_id, uint64_t addr,
		       struct ana_frame *frames, int cap, uint64_t *module_off)
{
	if (cap < 1)
		return -EINVAL;
	int mod = id_find(sym, module_id);
	if (mod < 0 || addr < ANA_SYM_MIN_ADDR)
		return 0;
	struct ana_sym_slot *s = lookup(sym, mod, addr);
	if (!s)
		return -ENOMEM;
	if (module_off)
		*module_off = addr - sym->mods[mod].base;
	return copy_frames(sym, s, frames, cap);
}
