/* Modules over time and the replay's memory limits: a module unloaded and
 * another file loaded at the same address, each stack node resolved
 * against the module loaded at its birth (docs/schema.md "Stacks"); UNLOAD
 * records read before their MODULE; the queued-events and module limits
 * (docs/schema.md "Limits"). The two modules are real files: this test
 * binary and the C library, placed so that one return address lies in
 * both. */
#include <errno.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "ana_db.h"
#include "ana_ingest.h"
#include "ana_replay.h"
#include "ana_report.h"
#include "ana_sym.h"
#include "cm_err.h"
#include "tf_enc.h"

/* ---- trace builder (as in test_ana_replay.c) ---------------------------- */

#include "ana_tb.h"

/* A module as the recorder describes it. */
struct mod {
	char path[4096];
	uint64_t base;
	uint8_t build_id[64];
	size_t build_id_len;
	struct tf_segment segs[TF_MAX_SEGMENTS];
	uint32_t n_segs;
	int found;
};

static void mod_record(struct tb *b, int s, uint64_t seq, uint32_t id, const struct mod *m)
{
	tb_module(b, s, seq, id, m->base, m->path, m->build_id, m->build_id_len, m->segs,
		  m->n_segs);
}

/* ---- the two real modules -------------------------------------------------- */

/* The code whose return address module A resolves (an address just past
 * its first instruction's start). */
__attribute__((noinline)) int ana_mod_test_target(int x);
__attribute__((noinline)) int ana_mod_test_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

static void read_module(const struct dl_phdr_info *info, struct mod *m)
{
	m->base = info->dlpi_addr;
	m->build_id_len = 0;
	m->n_segs = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && m->n_segs < TF_MAX_SEGMENTS) {
			m->segs[m->n_segs].vaddr = ph->p_vaddr;
			m->segs[m->n_segs].memsz = ph->p_memsz;
			m->segs[m->n_segs].flags = ph->p_flags;
			m->n_segs++;
		}
		if (ph->p_type != PT_NOTE || m->build_id_len)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		const uint8_t *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			const uint8_t *name = p + sizeof(*nh);
			const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    !memcmp(name, "GNU", 4) && nh->n_descsz <= 64) {
				memcpy(m->build_id, desc, nh->n_descsz);
				m->build_id_len = nh->n_descsz;
				break;
			}
			p = desc + ((nh->n_descsz + 3) & ~3u);
		}
	}
	m->found = 1;
}

struct two {
	struct mod self, libc;
	int first;
};

static int two_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct two *t = arg;
	(void)size;
	if (!t->first) {
		t->first = 1;
		read_module(info, &t->self);
	} else if (info->dlpi_name && strstr(info->dlpi_name, "/libc.so")) {
		read_module(info, &t->libc);
		snprintf(t->libc.path, sizeof(t->libc.path), "%s", info->dlpi_name);
	}
	return 0;
}

/* Module A: this binary at its real base. Module B: libc, placed so that
 * X - 1 is the first byte of getppid. Returns X. */
static uint64_t two_modules(struct mod *a, struct mod *b)
{
	struct two t;
	memset(&t, 0, sizeof(t));
	dl_iterate_phdr(two_cb, &t);
	assert_true(t.self.found);
	assert_true(t.libc.found);
	ssize_t n = readlink("/proc/self/exe", t.self.path, sizeof(t.self.path) - 1);
	assert_true(n > 0);
	t.self.path[n] = 0;
	uint64_t x = (uint64_t)(uintptr_t)&ana_mod_test_target + 1;
	uint64_t getppid_off = (uint64_t)(uintptr_t)&getppid - t.libc.base;
	t.libc.base = x - 1 - getppid_off;
	*a = t.self;
	*b = t.libc;
	return x;
}

/* ---- tests ------------------------------------------------------------------ */

enum { P = 0x1000, Q = 0x2000, R = 0x3000 };

/* Module A (id 1) loaded, used, unloaded; module B (id 2) loaded at the
 * same address, used. Node 2 (born at seq 3, in A's lifetime) and node 4
 * (born at seq 7, in B's) share the return address X. Node 2 allocates
 * again after B is loaded: still A's (its birth counts, not its last use). */
static struct tb *build_reload(const struct mod *a, const struct mod *b, uint64_t x)
{
	struct tb *t = tb_new();

	tb_thread(t, 0, 1, 100);
	mod_record(t, 0, 2, 1, a);
	tb_node(t, 0, 1, 0, 0x10000);
	tb_node(t, 0, 2, 1, x);
	tb_alloc(t, 0, 3, TF_KIND_MALLOC, 2, 10, P);
	tb_free(t, 0, 4, TF_KIND_FREE, P);
	tb_unload(t, 0, 5, 1);
	mod_record(t, 0, 6, 2, b);
	tb_node(t, 0, 3, 0, 0x20000);
	tb_node(t, 0, 4, 3, x);
	tb_alloc(t, 0, 7, TF_KIND_MALLOC, 4, 20, Q);
	tb_alloc(t, 0, 8, TF_KIND_MALLOC, 2, 30, R);
	tb_flush(t, 0);
	tb_tick(t, 9, 1000, 0);
	tb_end(t, 2000, 4);
	tb_finish(t);
	return t;
}

static void test_module_for(void **state)
{
	(void)state;
	struct mod a, b;
	uint64_t x = two_modules(&a, &b);
	struct tb *t = build_reload(&a, &b, x);
	struct ana_profile *p = NULL;
	char err[256] = "";

	assert_int_equal(ana_replay_mem(t->file, t->file_len, "reload", NULL, &p, err,
					sizeof(err)), 0);
	assert_int_equal(p->n_modules, 2);
	assert_int_equal(p->modules[0].load_seq, 2);
	assert_int_equal(p->modules[0].unload_seq, 5);
	assert_int_equal(p->modules[1].load_seq, 6);
	assert_int_equal(p->modules[1].unload_seq, 0);
	/* Births: the first ALLOC naming the node or a descendant. */
	assert_int_equal(ana_profile_node(p, 1)->birth_seq, 3);
	assert_int_equal(ana_profile_node(p, 2)->birth_seq, 3);
	assert_int_equal(ana_profile_node(p, 3)->birth_seq, 7);
	assert_int_equal(ana_profile_node(p, 4)->birth_seq, 7);
	for (int indexed = 0; indexed < 2; indexed++) {
		if (indexed)
			assert_int_equal(ana_profile_index_modules(p), 0);
		/* In A's lifetime [2, 5): A; in B's [6, inf): B. */
		assert_ptr_equal(ana_profile_module_for(p, x, 3), &p->modules[0]);
		assert_ptr_equal(ana_profile_module_for(p, x, 2), &p->modules[0]);
		assert_ptr_equal(ana_profile_module_for(p, x, 6), &p->modules[1]);
		assert_ptr_equal(ana_profile_module_for(p, x, 100), &p->modules[1]);
		/* Nobody's lifetime (before any load, between unload and load):
		 * the latest loaded module holding the address. */
		assert_ptr_equal(ana_profile_module_for(p, x, 1), &p->modules[1]);
		assert_ptr_equal(ana_profile_module_for(p, x, 5), &p->modules[1]);
		/* An address in B only (its last byte, past this small
		 * binary): B, whatever the time. */
		const struct tf_segment *g = &b.segs[b.n_segs - 1];
		uint64_t y = b.base + g->vaddr + g->memsz - 1;
		int in_a = 0;
		for (uint32_t i = 0; i < a.n_segs; i++)
			in_a |= y >= a.base + a.segs[i].vaddr &&
				y - (a.base + a.segs[i].vaddr) < a.segs[i].memsz;
		if (!in_a)
			assert_ptr_equal(ana_profile_module_for(p, y, 3), &p->modules[1]);
		assert_null(ana_profile_module_for(p, 0x10000, 3));
		assert_null(ana_profile_module_for(p, 0, 3));
	}
	ana_profile_free(p);
	tb_free_all(t);
}

/* The (real) function of the address of node id in the database, its
 * module's trace id and path. */
static void node_frame(sqlite3 *db, int node, char *fn, size_t fn_cap, int *trace_id,
		       char *path, size_t path_cap)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT af.function, m.trace_id, af.module FROM nodes n"
		" JOIN addresses a ON a.id = n.address_id"
		" LEFT JOIN modules m ON m.id = a.module_id"
		" JOIN address_frames af ON af.address_id = a.id"
		" WHERE n.id = ? ORDER BY af.depth DESC LIMIT 1", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int(st, 1, node);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(fn, fn_cap, "%s", (const char *)sqlite3_column_text(st, 0));
	*trace_id = sqlite3_column_int(st, 1);
	snprintf(path, path_cap, "%s", (const char *)sqlite3_column_text(st, 2));
	sqlite3_finalize(st);
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void test_reload_db_and_report(void **state)
{
	(void)state;
	struct mod a, b;
	uint64_t x = two_modules(&a, &b);
	struct tb *t = build_reload(&a, &b, x);
	char path[] = "/tmp/test_ana_modules.XXXXXX";
	int fd = mkstemp(path);
	struct ana_db *db = NULL;
	struct ana_report *rep = NULL;
	char err[512] = "", fn[512], mpath[4096];
	int tid = 0;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, t->file, t->file_len), (ssize_t)t->file_len);
	close(fd);
	if (ana_ingest(path, ":memory:", NULL, &db, NULL, err, sizeof(err)) < 0)
		fail_msg("ingest: %s", err);
	unlink(path);
	sqlite3 *s = ana_db_sqlite(db);

	/* Node 2 (born in A's lifetime) and node 4 (in B's): one address,
	 * two rows, two modules. */
	assert_int_equal(query_int(s, "SELECT count(*) FROM addresses"), 4);
	assert_int_equal(query_int(s, "SELECT count(DISTINCT address) FROM addresses"), 3);
	node_frame(s, 2, fn, sizeof(fn), &tid, mpath, sizeof(mpath));
	assert_string_equal(fn, "ana_mod_test_target");
	assert_int_equal(tid, 1);
	assert_string_equal(mpath, a.path);
	node_frame(s, 4, fn, sizeof(fn), &tid, mpath, sizeof(mpath));
	assert_non_null(strstr(fn, "getppid"));
	assert_int_equal(tid, 2);
	assert_string_equal(mpath, b.path);
	assert_int_equal(query_int(s, "SELECT unload_seq FROM modules WHERE trace_id = 1"), 5);
	assert_int_equal(query_int(s, "SELECT load_seq FROM modules WHERE trace_id = 2"), 6);
	assert_int_equal(query_int(s, "SELECT count(*) FROM modules"
				      " WHERE trace_id = 2 AND unload_seq IS NULL"), 1);

	/* The report: site 2 (two calls) first, then site 4. */
	assert_int_equal(ana_report_load(db, "reload", 10, &rep, err, sizeof(err)), 0);
	assert_int_equal(rep->n_sites[ANA_LIST_ALLOCATIONS], 2);
	const struct ana_report_site *s2 = &rep->sites[ANA_LIST_ALLOCATIONS][0];
	const struct ana_report_site *s4 = &rep->sites[ANA_LIST_ALLOCATIONS][1];
	assert_int_equal(s2->node_id, 2);
	assert_int_equal(s2->calls, 2);
	assert_string_equal(s2->frames[0].function, "ana_mod_test_target");
	assert_string_equal(s2->frames[0].module, a.path);
	assert_int_equal(s4->node_id, 4);
	assert_non_null(strstr(s4->frames[0].function, "getppid"));
	assert_string_equal(s4->frames[0].module, b.path);

	char *json = NULL;
	size_t json_len = 0;
	FILE *f = open_memstream(&json, &json_len);
	assert_non_null(f);
	ana_report_print_json(rep, f);
	fclose(f);
	char want[4200];
	snprintf(want, sizeof(want), "\"module\": \"%s\"", a.path);
	assert_non_null(strstr(json, want));
	snprintf(want, sizeof(want), "\"module\": \"%s\"", b.path);
	assert_non_null(strstr(json, want));
	free(json);
	ana_report_free(rep);
	ana_db_free(db);
	tb_free_all(t);
}

/* ana_sym_resolve_in: the caller picks the module; one address resolves
 * differently in each, both cached. */
static void test_sym_resolve_in(void **state)
{
	(void)state;
	struct mod a, b;
	uint64_t x = two_modules(&a, &b);
	struct ana_sym *sym = NULL;
	struct ana_frame f[8];
	uint64_t off = 0;
	uint32_t id = 0;

	assert_int_equal(ana_sym_new(&sym), 0);
	assert_int_equal(ana_sym_add_module(sym, 1, a.path, a.base, a.build_id,
					    a.build_id_len), 0);
	assert_int_equal(ana_sym_add_module(sym, 2, b.path, b.base, b.build_id,
					    b.build_id_len), 0);
	for (int round = 0; round < 2; round++) {
		int n = ana_sym_resolve_in(sym, 1, x, f, 8, &off);
		assert_true(n >= 1);
		assert_string_equal(f[n - 1].function, "ana_mod_test_target");
		assert_true(off == x - a.base);
		n = ana_sym_resolve_in(sym, 2, x, f, 8, &off);
		assert_true(n >= 1);
		assert_non_null(strstr(f[n - 1].function, "getppid"));
		assert_true(off == x - b.base);
		/* Without a module id: the latest registration holding x. */
		n = ana_sym_resolve(sym, x, f, 8, &id, NULL);
		assert_true(n >= 1);
		assert_int_equal(id, 2);
		assert_non_null(strstr(f[n - 1].function, "getppid"));
	}
	assert_int_equal(ana_sym_resolve_in(sym, 3, x, f, 8, NULL), 0);
	assert_int_equal(ana_sym_resolve_in(sym, 1, 1, f, 8, NULL), 0);
	assert_int_equal(ana_sym_resolve_in(sym, 1, x, f, 0, NULL), -EINVAL);
	/* A module id registered again: the new registration wins. */
	assert_int_equal(ana_sym_add_module(sym, 1, b.path, b.base, b.build_id,
					    b.build_id_len), 0);
	int n = ana_sym_resolve_in(sym, 1, x, f, 8, NULL);
	assert_true(n >= 1);
	assert_non_null(strstr(f[n - 1].function, "getppid"));
	assert_string_equal(ana_sym_module_path(sym, 1), b.path);
	assert_string_equal(ana_sym_module_path(sym, 2), b.path);
	assert_int_equal(ana_sym_add_module(sym, UINT32_MAX, a.path, a.base, a.build_id,
					    a.build_id_len), 0);
	n = ana_sym_resolve_in(sym, UINT32_MAX, x, f, 8, NULL);
	assert_true(n >= 1);
	assert_string_equal(f[n - 1].function, "ana_mod_test_target");
	/* The same file loaded again elsewhere (it shares the first
	 * registration's session): the same function at the same offset. */
	if (a.base) {
		uint64_t delta = 0x100000000ull;
		assert_int_equal(ana_sym_add_module(sym, 5, a.path, a.base + delta,
						    a.build_id, a.build_id_len), 0);
		n = ana_sym_resolve_in(sym, 5, x + delta, f, 8, &off);
		assert_true(n >= 1);
		assert_string_equal(f[n - 1].function, "ana_mod_test_target");
		assert_true(off == x - a.base);
		assert_int_equal(ana_sym_resolve(sym, x + delta, f, 8, &id, NULL), n);
		assert_int_equal(id, 5);
	}
	ana_sym_free(sym);
}

/* A fake module: no file, one segment. */
static void fake_mod(struct mod *m, const char *path, uint64_t base)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->base = base;
	m->segs[0].vaddr = 0;
	m->segs[0].memsz = 0x10000;
	m->segs[0].flags = 5;
	m->n_segs = 1;
}

/* A module unloaded on another thread: the UNLOAD's chunk may reach the
 * file before the MODULE's. Module ids reused while loaded end the old
 * one. */
static void test_unload_order(void **state)
{
	(void)state;
	struct tb *t = tb_new();
	struct mod a, b;
	struct ana_profile *p = NULL;
	char err[256] = "";

	fake_mod(&a, "/nonexistent/liba.so", 0x7f0000000000ull);
	fake_mod(&b, "/nonexistent/libb.so", 0x7f0000000000ull);
	tb_unload(t, 1, 5, 1);
	tb_unload(t, 1, 6, 9); /* never loaded: ignored */
	tb_flush(t, 1);
	mod_record(t, 0, 2, 1, &a);
	tb_node(t, 0, 1, 0, 0x7f0000000100ull);
	tb_alloc(t, 0, 3, TF_KIND_MALLOC, 1, 10, P);
	mod_record(t, 0, 7, 2, &b);
	mod_record(t, 0, 8, 2, &a); /* id 2 again while loaded */
	tb_flush(t, 0);
	tb_end(t, 100, 1);
	tb_finish(t);
	assert_int_equal(ana_replay_mem(t->file, t->file_len, "order", NULL, &p, err,
					sizeof(err)), 0);
	assert_int_equal(p->n_modules, 3);
	assert_int_equal(p->modules[0].unload_seq, 5);
	assert_int_equal(p->modules[1].load_seq, 7);
	assert_int_equal(p->modules[1].unload_seq, 8);
	assert_int_equal(p->modules[2].unload_seq, 0);
	assert_ptr_equal(ana_profile_module_for(p, 0x7f0000000100ull, 3), &p->modules[0]);
	ana_profile_free(p);
	tb_free_all(t);
}

/* n events on one stream, a TICK after every `every` events (0: none). */
static struct tb *build_events(unsigned n, unsigned every)
{
	struct tb *t = tb_new();

	tb_node(t, 0, 1, 0, 0x400100);
	for (unsigned i = 1; i <= n; i++) {
		if (i % 2)
			tb_alloc(t, 0, i, TF_KIND_MALLOC, 1, 8, P);
		else
			tb_free(t, 0, i, TF_KIND_FREE, P);
		if (t->clen[0] > TB_CHUNK_CAP / 2)
			tb_flush(t, 0);
		if (every && i % every == 0) {
			tb_flush(t, 0);
			tb_tick(t, i + 1, i, 0);
		}
	}
	tb_flush(t, 0);
	tb_end(t, n + 1, n);
	tb_finish(t);
	return t;
}

static void test_queue_limit(void **state)
{
	(void)state;
	struct ana_replay_opts o = { .max_queued = 100 };
	struct ana_profile *p = NULL;
	char err[256] = "";

	/* Exactly the limit: fine. */
	struct tb *t = build_events(100, 0);
	assert_int_equal(ana_replay_mem(t->file, t->file_len, "ok", &o, &p, err,
					sizeof(err)), 0);
	assert_int_equal(p->totals.allocations, 50);
	ana_profile_free(p);
	tb_free_all(t);

	/* One more without a tick: refused, with the file and the offset. */
	p = NULL;
	t = build_events(101, 0);
	assert_int_equal(ana_replay_mem(t->file, t->file_len, "notick.zst", &o, &p, err,
					sizeof(err)), -CM_E_LIMIT);
	assert_null(p);
	assert_non_null(strstr(err, "'notick.zst'"));
	assert_non_null(strstr(err, "at byte "));
	assert_non_null(strstr(err, "more than 100 events without a tick record"));
	tb_free_all(t);

	/* Many events, ticks in between: the queues drain. */
	t = build_events(10000, 90);
	assert_int_equal(ana_replay_mem(t->file, t->file_len, "ticks", &o, &p, err,
					sizeof(err)), 0);
	assert_int_equal(p->totals.allocations, 5000);
	assert_int_equal(p->totals.frees, 5000);
	ana_profile_free(p);
	tb_free_all(t);
}

static void test_module_limit(void **state)
{
	(void)state;
	struct ana_replay_opts o = { .max_modules = 3 };
	struct ana_profile *p = NULL;
	char err[256] = "";
	struct mod m;
	struct tb *t = tb_new();

	fake_mod(&m, "/nonexistent/lib.so", 0x7f0000000000ull);
	for (uint32_t i = 1; i <= 4; i++)
		mod_record(t, 0, i, i, &m);
	tb_flush(t, 0);
	tb_end(t, 10, 0);
	tb_finish(t);
	assert_int_equal(ana_replay_mem(t->file, t->file_len, "mods", &o, &p, err,
					sizeof(err)), -CM_E_LIMIT);
	assert_non_null(strstr(err, "more than 3 module records"));
	o.max_modules = 4;
	assert_int_equal(ana_replay_mem(t->file, t->file_len, "mods", &o, &p, err,
					sizeof(err)), 0);
	assert_int_equal(p->n_modules, 4);
	ana_profile_free(p);
	tb_free_all(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_module_for),
		cmocka_unit_test(test_reload_db_and_report),
		cmocka_unit_test(test_sym_resolve_in),
		cmocka_unit_test(test_unload_order),
		cmocka_unit_test(test_queue_limit),
		cmocka_unit_test(test_module_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
