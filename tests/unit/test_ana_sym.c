/* Unit tests for analyzer/ana_sym.c: symbolize this test binary's own code
 * (with its DWARF, a stripped copy plus separate debug info found by
 * .gnu_debuglink and by build-id, and libc with Debian's libc6-dbg when it
 * is installed), and check that bad modules never crash. */
#include <errno.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ana_sym.h"

/* This binary's main module, as the recorder would describe it. */
struct self {
	char path[4096];
	uint64_t base;        /* load bias (dlpi_addr) */
	uint8_t build_id[64]; /* NT_GNU_BUILD_ID descriptor */
	size_t build_id_len;  /* 0: none */
	int found;
};

/* Copy the GNU build-id note of the object described by info into s. */
static void read_build_id(const struct dl_phdr_info *info, uint8_t *out,
			  size_t *len)
{
	*len = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		const uint8_t *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			const uint8_t *name = p + sizeof(*nh);
			const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    !memcmp(name, "GNU", 4) && nh->n_descsz <= 64) {
				memcpy(out, desc, nh->n_descsz);
				*len = nh->n_descsz;
				return;
			}
			p = desc + ((nh->n_descsz + 3) & ~3u);
		}
	}
}

static int self_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct self *s = arg;
	(void)size;
	/* The first object is the main program (empty dlpi_name). */
	s->base = info->dlpi_addr;
	read_build_id(info, s->build_id, &s->build_id_len);
	s->found = 1;
	return 1;
}

static void get_self(struct self *s)
{
	memset(s, 0, sizeof(*s));
	ssize_t n = readlink("/proc/self/exe", s->path, sizeof(s->path) - 1);
	assert_true(n > 0);
	s->path[n] = '\0';
	dl_iterate_phdr(self_cb, s);
	assert_true(s->found);
	assert_true(s->build_id_len > 0);
}

/* snprintf that fails the test instead of truncating. */
static __attribute__((format(printf, 3, 4))) void xfmt(char *buf, size_t cap,
							const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < cap);
}

/* A call whose return address we resolve. */
static __attribute__((noinline, noclone)) uint64_t ret_addr(void)
{
	uint64_t a = (uint64_t)(uintptr_t)__builtin_return_address(0);
	__asm__ volatile("" ::: "memory");
	return a;
}

static inline __attribute__((always_inline)) uint64_t inl_ret_addr(int *line)
{
	*line = __LINE__ + 1;
	return ret_addr();
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* Resolve addr in a fresh symbolizer that knows only the module (path,
 * with self's base and build-id) and expect function/line. */
static void expect_resolved(struct ana_sym *sym, const struct self *s,
			    uint64_t addr, const char *function, int line)
{
	struct ana_frame f[8];
	uint32_t id = 0;
	uint64_t off = 0;
	int n = ana_sym_resolve(sym, addr, f, 8, &id, &off);
	assert_int_equal(n, 1);
	assert_int_equal(id, 7);
	assert_true(off == addr - s->base);
	assert_non_null(f[0].function);
	assert_string_equal(f[0].function, function);
	assert_non_null(f[0].file);
	assert_true(ends_with(f[0].file, "test_ana_sym.c"));
	assert_int_equal(f[0].line, line);
}

static void test_resolve_self(void **state)
{
	(void)state;
	struct self s;
	get_self(&s);
	struct ana_sym *sym;
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_add_module(sym, 7, s.path, s.base, s.build_id,
					    s.build_id_len), 0);
	assert_string_equal(ana_sym_module_path(sym, 7), s.path);
	assert_null(ana_sym_module_path(sym, 8));

	int line = __LINE__ + 1;
	uint64_t addr = ret_addr();
	expect_resolved(sym, &s, addr, "test_resolve_self", line);

	/* Cached: same interned strings the second time. */
	struct ana_frame a[1], b[1];
	assert_int_equal(ana_sym_resolve(sym, addr, a, 1, NULL, NULL), 1);
	assert_int_equal(ana_sym_resolve(sym, addr, b, 1, NULL, NULL), 1);
	assert_ptr_equal(a[0].function, b[0].function);
	assert_ptr_equal(a[0].file, b[0].file);
	assert_int_equal(ana_sym_resolve(sym, addr, a, 0, NULL, NULL), -EINVAL);
	ana_sym_free(sym);
}

static void test_inline_frames(void **state)
{
	(void)state;
	struct self s;
	get_self(&s);
	struct ana_sym *sym;
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_add_module(sym, 1, s.path, s.base, s.build_id,
					    s.build_id_len), 0);
	int inner_line = 0;
	int outer_line = __LINE__ + 1;
	uint64_t addr = inl_ret_addr(&inner_line);

	struct ana_frame f[8];
	int n = ana_sym_resolve(sym, addr, f, 8, NULL, NULL);
	assert_int_equal(n, 2);
	assert_string_equal(f[0].function, "inl_ret_addr");
	assert_int_equal(f[0].line, inner_line);
	assert_true(ends_with(f[0].file, "test_ana_sym.c"));
	assert_string_equal(f[1].function, "test_inline_frames");
	assert_int_equal(f[1].line, outer_line);
	assert_true(ends_with(f[1].file, "test_ana_sym.c"));

	/* cap 1 keeps the real function. */
	n = ana_sym_resolve(sym, addr, f, 1, NULL, NULL);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].function, "test_inline_frames");
	ana_sym_free(sym);
}

static void test_no_module(void **state)
{
	(void)state;
	struct self s;
	get_self(&s);
	struct ana_sym *sym;
	assert_int_equal(ana_sym_new(&sym), 0);
	struct ana_frame f[4];
	uint32_t id = 99;
	assert_int_equal(ana_sym_resolve(sym, (uint64_t)(uintptr_t)&s, f, 4,
					 &id, NULL), 0);
	assert_int_equal(ana_sym_add_module(sym, 1, s.path, s.base, s.build_id,
					    s.build_id_len), 0);
	/* Stack, heap, NULL and the truncation marker. */
	char *heap = malloc(16);
	assert_non_null(heap);
	assert_int_equal(ana_sym_resolve(sym, (uint64_t)(uintptr_t)&s, f, 4,
					 &id, NULL), 0);
	assert_int_equal(ana_sym_resolve(sym, (uint64_t)(uintptr_t)heap, f, 4,
					 &id, NULL), 0);
	free(heap);
	assert_int_equal(ana_sym_resolve(sym, 0, f, 4, &id, NULL), 0);
	assert_int_equal(ana_sym_resolve(sym, 1, f, 4, &id, NULL), 0);
	assert_int_equal(id, 99);
	ana_sym_free(sym);
}

static void test_missing_file(void **state)
{
	(void)state;
	struct ana_sym *sym;
	const uint8_t bid[20] = { 0xde, 0xad, 0xbe, 0xef };
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_add_module(sym, 3, "/nonexistent/libx.so",
					    0x7f0000000000ull, bid, sizeof(bid)),
			 -ENOENT);
	assert_string_equal(ana_sym_module_path(sym, 3), "/nonexistent/libx.so");
	struct ana_frame f[4];
	uint32_t id = 0;
	uint64_t off = 0;
	assert_int_equal(ana_sym_resolve(sym, 0x7f0000001234ull, f, 4, &id, &off),
			 1);
	assert_null(f[0].function);
	assert_null(f[0].file);
	assert_int_equal(f[0].line, 0);
	assert_int_equal(id, 3);
	assert_true(off == 0x1234);
	/* Below its base: no module. */
	assert_int_equal(ana_sym_resolve(sym, 0x7effffffffffull, f, 4, &id,
					 &off), 0);
	ana_sym_free(sym);
}

static void test_bad_files(void **state)
{
	(void)state;
	struct self s;
	get_self(&s);
	char dir[] = "/tmp/test_ana_sym.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char notelf[4200], trunc[4200];
	xfmt(notelf, sizeof(notelf), "%s/notelf", dir);
	xfmt(trunc, sizeof(trunc), "%s/trunc", dir);

	FILE *fp = fopen(notelf, "w");
	assert_non_null(fp);
	fputs("not an ELF file\n", fp);
	fclose(fp);

	/* The first 60% of this binary: headers intact, sections cut. */
	FILE *in = fopen(s.path, "rb");
	assert_non_null(in);
	fseek(in, 0, SEEK_END);
	long size = ftell(in);
	fseek(in, 0, SEEK_SET);
	char *buf = malloc((size_t)size);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, in), (size_t)size);
	fclose(in);
	fp = fopen(trunc, "wb");
	assert_non_null(fp);
	fwrite(buf, 1, (size_t)size * 6 / 10, fp);
	fclose(fp);
	free(buf);

	int line = __LINE__ + 1;
	uint64_t addr = ret_addr();
	struct ana_frame f[4];
	uint32_t id;
	struct ana_sym *sym;

	/* Wrong build-id: the module keeps its range, its symbols are not
	 * trusted. */
	uint8_t wrong[64];
	memcpy(wrong, s.build_id, s.build_id_len);
	wrong[0] ^= 0xff;
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_add_module(sym, 5, s.path, s.base, wrong,
					    s.build_id_len), -ESTALE);
	assert_int_equal(ana_sym_resolve(sym, addr, f, 4, &id, NULL), 1);
	assert_int_equal(id, 5);
	assert_null(f[0].function);
	assert_null(f[0].file);
	ana_sym_free(sym);

	/* Not ELF. */
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_add_module(sym, 5, notelf, s.base, NULL, 0),
			 -ENOEXEC);
	assert_int_equal(ana_sym_resolve(sym, addr, f, 4, &id, NULL), 1);
	assert_null(f[0].function);
	ana_sym_free(sym);

	/* Truncated: whatever survives, no crash. */
	assert_int_equal(ana_sym_new(&sym), 0);
	int rc = ana_sym_add_module(sym, 5, trunc, s.base, NULL, 0);
	assert_true(rc == 0 || rc == -ENOEXEC);
	assert_int_equal(ana_sym_resolve(sym, addr, f, 4, &id, NULL), 1);
	if (f[0].function)
		assert_string_equal(f[0].function, "test_bad_files");
	if (f[0].line)
		assert_int_equal(f[0].line, line);
	ana_sym_free(sym);

	unlink(notelf);
	unlink(trunc);
	rmdir(dir);
}

/* Run a shell command; skip the test when it fails (no objcopy). */
static void run_or_skip(const char *cmd)
{
	if (system(cmd) != 0) {
		print_message("# skipped, failed: %s\n", cmd);
		skip();
	}
}

static void test_separate_debug(void **state)
{
	(void)state;
	struct self s;
	get_self(&s);
	char dir[] = "/tmp/test_ana_sym.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cmd[16384], linked[4200], bare[4200], dbg[4200], bid_dir[4200],
		bid_file[4300], hex[129];
	for (size_t i = 0; i < s.build_id_len; i++)
		xfmt(hex + 2 * i, 3, "%02x", s.build_id[i]);
	xfmt(linked, sizeof(linked), "%s/linked", dir);
	xfmt(bare, sizeof(bare), "%s/bare", dir);
	xfmt(dbg, sizeof(dbg), "%s/linked.debug", dir);
	xfmt(bid_dir, sizeof(bid_dir), "%s/dbg/.build-id/%.2s", dir, hex);
	xfmt(bid_file, sizeof(bid_file), "%s/%s.debug", bid_dir, hex + 2);
	/* linked: no symbols at all, a .gnu_debuglink to linked.debug next to
	 * it; bare: no symbols, no link; its debug info only by build-id. */
	xfmt(cmd, sizeof(cmd),
		 "objcopy --only-keep-debug '%s' '%s' && "
		 "objcopy --strip-all --add-gnu-debuglink='%s' '%s' '%s' && "
		 "objcopy --strip-all '%s' '%s' && mkdir -p '%s' && "
		 "cp '%s' '%s'",
		 s.path, dbg, dbg, s.path, linked, s.path, bare, bid_dir, dbg,
		 bid_file);
	run_or_skip(cmd);

	int line = __LINE__ + 1;
	uint64_t addr = ret_addr();
	struct ana_sym *sym;

	/* .gnu_debuglink, found in the main file's directory (default path). */
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_add_module(sym, 7, linked, s.base, s.build_id,
					    s.build_id_len), 0);
	expect_resolved(sym, &s, addr, "test_separate_debug", line);
	ana_sym_free(sym);

	/* Build-id directory. */
	char debug_path[4200];
	xfmt(debug_path, sizeof(debug_path), "%s/dbg", dir);
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_set_debug_path(sym, debug_path), 0);
	assert_int_equal(ana_sym_add_module(sym, 7, bare, s.base, s.build_id,
					    s.build_id_len), 0);
	expect_resolved(sym, &s, addr, "test_separate_debug", line);
	ana_sym_free(sym);

	/* Main file gone (analysis on another machine): the .debug file
	 * named by the build-id stands in for it. */
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_set_debug_path(sym, debug_path), 0);
	assert_int_equal(ana_sym_add_module(sym, 7, "/nonexistent/exe", s.base,
					    s.build_id, s.build_id_len), 0);
	expect_resolved(sym, &s, addr, "test_separate_debug", line);
	ana_sym_free(sym);

	xfmt(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* libc with Debian's libc6-dbg (build-id files under /usr/lib/debug). */
struct libc_info {
	struct self mod;
};

static int libc_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct libc_info *l = arg;
	(void)size;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "/libc.so"))
		return 0;
	snprintf(l->mod.path, sizeof(l->mod.path), "%s", info->dlpi_name);
	l->mod.base = info->dlpi_addr;
	read_build_id(info, l->mod.build_id, &l->mod.build_id_len);
	l->mod.found = 1;
	return 1;
}

static uint64_t g_cmp_ret; /* return address seen by cmp_ints */

static int cmp_ints(const void *a, const void *b)
{
	g_cmp_ret = (uint64_t)(uintptr_t)__builtin_return_address(0);
	return *(const int *)a - *(const int *)b;
}

static void test_libc_dbgsym(void **state)
{
	(void)state;
	struct libc_info l;
	memset(&l, 0, sizeof(l));
	dl_iterate_phdr(libc_cb, &l);
	if (!l.mod.found || l.mod.build_id_len < 2)
		skip();
	char dbg[512], hex[129];
	for (size_t i = 0; i < l.mod.build_id_len; i++)
		xfmt(hex + 2 * i, 3, "%02x", l.mod.build_id[i]);
	xfmt(dbg, sizeof(dbg), "/usr/lib/debug/.build-id/%.2s/%s.debug", hex,
		 hex + 2);
	struct stat st;
	if (stat(dbg, &st) != 0) {
		print_message("# skipped: no %s (libc6-dbg)\n", dbg);
		skip();
	}
	int v[] = { 3, 1, 2 };
	qsort(v, 3, sizeof(v[0]), cmp_ints);

	struct ana_sym *sym;
	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_add_module(sym, 2, l.mod.path, l.mod.base,
					    l.mod.build_id, l.mod.build_id_len),
			 0);
	struct ana_frame f[8];
	int n = ana_sym_resolve(sym, g_cmp_ret, f, 8, NULL, NULL);
	assert_true(n >= 1);
	for (int i = 0; i < n; i++)
		print_message("# libc frame %d: %s %s:%u\n", i,
			      f[i].function ? f[i].function : "?",
			      f[i].file ? f[i].file : "?", f[i].line);
	assert_non_null(f[0].file);
	assert_true(f[0].line > 0);
	assert_non_null(f[n - 1].function);
	ana_sym_free(sym);
}

static void test_demangle(void **state)
{
	(void)state;
	char *d = ana_sym_demangle("_ZN3app6Parser5parseEi");
	assert_non_null(d);
	assert_string_equal(d, "app::Parser::parse(int)");
	free(d);
	d = ana_sym_demangle("_Znwm");
	assert_non_null(d);
	assert_string_equal(d, "operator new(unsigned long)");
	free(d);
	assert_null(ana_sym_demangle("main"));
	assert_null(ana_sym_demangle("_Z"));
	assert_null(ana_sym_demangle("_Zfoo bar"));
	assert_null(ana_sym_demangle(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_self),
		cmocka_unit_test(test_inline_frames),
		cmocka_unit_test(test_no_module),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_separate_debug),
		cmocka_unit_test(test_libc_dbgsym),
		cmocka_unit_test(test_demangle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
