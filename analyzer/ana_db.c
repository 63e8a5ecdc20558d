/* SQLite storage of a profile (schema: docs/schema.md). Everything is
 * written in one transaction with prepared statements. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ana_db.h"
#include "ana_growth.h"
#include "ana_sym.h"
#include "cm_err.h"
#include "tf_dec.h"

#ifndef MEMANA_VERSION
#define MEMANA_VERSION "0.1"
#endif

struct ana_db {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *tick;   /* INSERT INTO ticks */
	sqlite3_stmt *block;  /* INSERT INTO allocations (ana_db_begin_blocks()) */
	sqlite3_stmt *phase, *phase_site, *marker; /* INSERT INTO phases... */
	int in_txn;
	int tick_err;
	int blocks_on;        /* allocation rows are written */
};

static const char schema_sql[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value);\n"
	"CREATE TABLE modules(id INTEGER PRIMARY KEY, trace_id INTEGER NOT NULL,\n"
	"  path TEXT NOT NULL, name TEXT NOT NULL, build_id TEXT, base INTEGER NOT NULL,\n"
	"  load_seq INTEGER, unload_seq INTEGER);\n"
	"CREATE TABLE segments(module_id INTEGER NOT NULL REFERENCES modules(id),\n"
	"  vaddr INTEGER NOT NULL, memsz INTEGER NOT NULL, flags INTEGER NOT NULL);\n"
	"CREATE TABLE threads(stream INTEGER PRIMARY KEY, tid INTEGER, name TEXT,\n"
	"  seq INTEGER, allocations INTEGER);\n"
	"CREATE TABLE addresses(id INTEGER PRIMARY KEY, address INTEGER NOT NULL,\n"
	"  module_id INTEGER REFERENCES modules(id), module_offset INTEGER);\n"
	"CREATE TABLE frames(address_id INTEGER NOT NULL REFERENCES addresses(id),\n"
	"  depth INTEGER NOT NULL, function TEXT, file TEXT, line INTEGER NOT NULL,\n"
	"  PRIMARY KEY(address_id, depth)) WITHOUT ROWID;\n"
	"CREATE TABLE nodes(id INTEGER PRIMARY KEY, parent INTEGER NOT NULL,\n"
	"  address_id INTEGER NOT NULL REFERENCES addresses(id));\n"
	"CREATE TABLE sites(node_id INTEGER PRIMARY KEY REFERENCES nodes(id),\n"
	"  alloc_calls INTEGER NOT NULL, alloc_bytes INTEGER NOT NULL,\n"
	"  temp_calls INTEGER NOT NULL, temp_bytes INTEGER NOT NULL,\n"
	"  peak_blocks INTEGER NOT NULL, peak_bytes INTEGER NOT NULL,\n"
	"  leaked_blocks INTEGER NOT NULL, leaked_bytes INTEGER NOT NULL,\n"
	"  realloc_calls INTEGER NOT NULL, realloc_grow_calls INTEGER NOT NULL,\n"
	"  early_leaked_blocks INTEGER NOT NULL, early_leaked_bytes INTEGER NOT NULL,\n"
	"  growth_rate REAL NOT NULL, mean_live_bytes REAL NOT NULL);\n"
	"CREATE TABLE ticks(time_ns INTEGER NOT NULL, heap_bytes INTEGER NOT NULL,\n"
	"  rss_bytes INTEGER NOT NULL);\n"
	"CREATE TABLE histogram(kind TEXT NOT NULL, bucket INTEGER NOT NULL,\n"
	"  lo INTEGER NOT NULL, hi INTEGER NOT NULL, count INTEGER NOT NULL,\n"
	"  bytes INTEGER NOT NULL, PRIMARY KEY(kind, bucket)) WITHOUT ROWID;\n"
	"CREATE TABLE site_histogram(node_id INTEGER NOT NULL REFERENCES sites(node_id),\n"
	"  kind TEXT NOT NULL, bucket INTEGER NOT NULL, lo INTEGER NOT NULL,\n"
	"  hi INTEGER NOT NULL, count INTEGER NOT NULL,\n"
	"  PRIMARY KEY(node_id, kind, bucket)) WITHOUT ROWID;\n"
	"CREATE TABLE allocations(id INTEGER PRIMARY KEY, node_id INTEGER NOT NULL,\n"
	"  stream INTEGER NOT NULL, address INTEGER NOT NULL, size INTEGER NOT NULL,\n"
	"  kind TEXT NOT NULL, birth_seq INTEGER NOT NULL, birth_ns INTEGER NOT NULL,\n"
	"  death_seq INTEGER, death_ns INTEGER, lifetime_ns INTEGER,\n"
	"  lifetime_allocs INTEGER, freed_by TEXT, temporary INTEGER NOT NULL);\n"
	"CREATE TABLE phases(id INTEGER PRIMARY KEY, parent INTEGER, depth INTEGER NOT NULL,\n"
	"  stream INTEGER NOT NULL, name TEXT NOT NULL, ended INTEGER NOT NULL,\n"
	"  begin_seq INTEGER NOT NULL, end_seq INTEGER, begin_ns INTEGER NOT NULL,\n"
	"  end_ns INTEGER NOT NULL, alloc_calls INTEGER NOT NULL,\n"
	"  alloc_bytes INTEGER NOT NULL, left_blocks INTEGER NOT NULL,\n"
	"  left_bytes INTEGER NOT NULL, heap_begin INTEGER NOT NULL,\n"
	"  heap_end INTEGER NOT NULL, peak_heap_bytes INTEGER NOT NULL,\n"
	"  peak_ns INTEGER NOT NULL, rss_begin INTEGER NOT NULL, rss_end INTEGER NOT NULL,\n"
	"  rss_peak INTEGER NOT NULL);\n"
	"CREATE TABLE phase_sites(phase_id INTEGER NOT NULL REFERENCES phases(id),\n"
	"  rank INTEGER NOT NULL, node_id INTEGER NOT NULL, bytes INTEGER NOT NULL,\n"
	"  PRIMARY KEY(phase_id, rank)) WITHOUT ROWID;\n"
	"CREATE TABLE markers(id INTEGER PRIMARY KEY, stream INTEGER NOT NULL,\n"
	"  name TEXT NOT NULL, seq INTEGER NOT NULL, time_ns INTEGER NOT NULL,\n"
	"  heap_bytes INTEGER NOT NULL, rss_bytes INTEGER NOT NULL);\n"
	"CREATE VIEW hotspots AS SELECT node_id, alloc_calls AS calls,\n"
	"  alloc_bytes AS bytes FROM sites WHERE alloc_calls > 0\n"
	"  ORDER BY calls DESC, bytes DESC, node_id;\n"
	"CREATE VIEW peak AS SELECT node_id, peak_blocks AS calls, peak_bytes AS bytes\n"
	"  FROM sites WHERE peak_blocks > 0 ORDER BY bytes DESC, calls DESC, node_id;\n"
	"CREATE VIEW leaks AS SELECT node_id, leaked_blocks AS calls,\n"
	"  leaked_bytes AS bytes FROM sites WHERE leaked_blocks > 0\n"
	"  ORDER BY bytes DESC, calls DESC, node_id;\n"
	"CREATE VIEW temporary AS SELECT node_id, temp_calls AS calls,\n"
	"  temp_bytes AS bytes FROM sites WHERE temp_calls > 0\n"
	"  ORDER BY calls DESC, bytes DESC, node_id;\n"
	"CREATE VIEW timeline AS SELECT time_ns / 1e6 AS time_ms, heap_bytes,\n"
	"  rss_bytes FROM ticks ORDER BY time_ns;\n"
	"CREATE VIEW address_frames AS SELECT a.id AS address_id,\n"
	"  coalesce(f.depth, 0) AS depth,\n"
	"  coalesce(f.function, CASE WHEN a.address = 1 THEN '[truncated]'\n"
	"    WHEN a.address = 0 THEN '[no backtrace]'\n"
	"    WHEN m.id IS NOT NULL THEN m.name || '+0x' || printf('%x', a.module_offset)\n"
	"    ELSE printf('0x%x', a.address) END) AS function,\n"
	"  coalesce(f.file, '') AS file, coalesce(f.line, 0) AS line,\n"
	"  coalesce(m.path, '') AS module\n"
	"  FROM addresses a LEFT JOIN modules m ON m.id = a.module_id\n"
	"  LEFT JOIN frames f ON f.address_id = a.id;\n"
	"CREATE VIEW stack_frames AS WITH RECURSIVE\n"
	"  walk(site, node, level) AS (SELECT node_id, node_id, 0 FROM sites\n"
	"    UNION ALL SELECT walk.site, nodes.parent, walk.level + 1 FROM walk\n"
	"    JOIN nodes ON nodes.id = walk.node WHERE nodes.parent <> 0 AND walk.level < 4096)\n"
	"  SELECT walk.site AS node_id, walk.level AS level, af.depth AS inline_depth,\n"
	"    af.function, af.file, af.line, af.module\n"
	"  FROM walk JOIN nodes n ON n.id = walk.node\n"
	"  JOIN address_frames af ON af.address_id = n.address_id;\n"
	"CREATE VIEW call_sites AS SELECT node_id, function, file, line, module\n"
	"  FROM (SELECT *, row_number() OVER (PARTITION BY node_id\n"
	"    ORDER BY function GLOB 'operator new*', level, inline_depth) AS rn\n"
	"    FROM stack_frames) WHERE rn = 1;\n"
	"CREATE VIEW stacks AS SELECT node_id, group_concat(function ||\n"
	"  CASE WHEN file <> '' THEN ' at ' || file || ':' || line ELSE '' END ||\n"
	"  CASE WHEN module <> '' THEN ' in ' || module ELSE '' END, char(10)) AS stack\n"
	"  FROM (SELECT * FROM stack_frames ORDER BY node_id, level, inline_depth)\n"
	"  GROUP BY node_id;\n";

static int db_fail(struct ana_db *db, char *errmsg, size_t cap, const char *what)
{
	if (errmsg && cap)
		snprintf(errmsg, cap, "'%s': %s: %s", db->path, what,
			 db->db ? sqlite3_errmsg(db->db) : "out of memory");
	return -CM_E_SQLITE;
}

static void db_close(struct ana_db *db)
{
	if (db->tick)
		sqlite3_finalize(db->tick);
	db->tick = NULL;
	if (db->block)
		sqlite3_finalize(db->block);
	db->block = NULL;
	sqlite3_finalize(db->phase);
	sqlite3_finalize(db->phase_site);
	sqlite3_finalize(db->marker);
	db->phase = db->phase_site = db->marker = NULL;
	if (db->db) {
		if (db->in_txn)
			sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(db->db);
	}
	db->db = NULL;
}

void ana_db_free(struct ana_db *db)
{
	if (!db)
		return;
	db_close(db);
	free(db->path);
	free(db);
}

static struct ana_db *db_alloc(const char *path)
{
	struct ana_db *db = calloc(1, sizeof(*db));

	if (!db)
		return NULL;
	db->path = ana_strndup(path, strlen(path));
	if (!db->path) {
		free(db);
		return NULL;
	}
	return db;
}

int ana_db_create(struct ana_db **out, const char *path, char *errmsg, size_t cap)
{
	struct ana_db *db = db_alloc(path);
	int rc;

	if (!db)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &db->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	/* The file is new and written once: no journal needed. */
	if (sqlite3_exec(db->db,
			 "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
			 "PRAGMA page_size=8192; BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	db->in_txn = 1;
	if (sqlite3_exec(db->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(db->db, "INSERT INTO ticks VALUES(?,?,?)", -1, &db->tick,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->db,
			       "INSERT INTO phases VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &db->phase, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->db, "INSERT INTO phase_sites VALUES(?,?,?,?)", -1,
			       &db->phase_site, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->db, "INSERT INTO markers VALUES(?,?,?,?,?,?,?)", -1,
			       &db->marker, NULL) != SQLITE_OK)
		goto fail;
	*out = db;
	return 0;
fail:
	rc = db_fail(db, errmsg, cap, "cannot create database");
	ana_db_free(db);
	return rc;
}

/* Compare every table and view of schema_sql with the one stored in db
 * (same type, same statement). Returns NULL when all match, else the first
 * differing object's name (static storage, overwritten by the next call). */
static const char *check_schema(sqlite3 *db)
{
	static char name[64];
	const char *p = schema_sql;
	sqlite3_stmt *st = NULL;
	const char *bad = NULL;

	if (sqlite3_prepare_v2(db, "SELECT type, sql FROM sqlite_master WHERE name = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return "sqlite_master";
	while (!bad && *p) {
		const char *end = strstr(p, ";\n");
		bool view = !strncmp(p, "CREATE VIEW ", 12);
		const char *ns = p + (view ? 12 : 13), *ne = ns;
		if (!end || (!view && strncmp(p, "CREATE TABLE ", 13)))
			break;
		while (ne < end && *ne != ' ' && *ne != '(')
			ne++;
		if ((size_t)(ne - ns) >= sizeof(name))
			break;
		memcpy(name, ns, (size_t)(ne - ns));
		name[ne - ns] = 0;
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		const unsigned char *type = NULL, *sql = NULL;
		if (sqlite3_step(st) == SQLITE_ROW) {
			type = sqlite3_column_text(st, 0);
			sql = sqlite3_column_text(st, 1);
		}
		if (!type || strcmp((const char *)type, view ? "view" : "table") || !sql ||
		    strlen((const char *)sql) != (size_t)(end - p) || memcmp(sql, p, (size_t)(end - p)))
			bad = name;
		sqlite3_reset(st);
		p = end + 2;
	}
	sqlite3_finalize(st);
	return bad;
}

int ana_db_open(struct ana_db **out, const char *path, char *errmsg, size_t cap)
{
	struct ana_db *db = db_alloc(path);
	sqlite3_stmt *st = NULL;
	int rc, version = -1;

	if (!db)
		return -ENOMEM;
	if (sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(db->db, "SELECT value FROM meta WHERE key='schema_version'",
			       -1, &st, NULL) != SQLITE_OK) {
		if (errmsg && cap)
			snprintf(errmsg, cap, "'%s' is not a memana database (%s)", path,
				 sqlite3_errmsg(db->db));
		ana_db_free(db);
		return -CM_E_SQLITE;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version != ANA_DB_SCHEMA_VERSION) {
		if (errmsg && cap)
			snprintf(errmsg, cap,
				 "'%s': not a memana database (schema version %d, expected %d)",
				 path, version, ANA_DB_SCHEMA_VERSION);
		ana_db_free(db);
		return -CM_E_VERSION;
	}
	/* memana reads its tables and views: they must be its own (a database
	 * file is untrusted input; a view, or a table replaced by a view, can
	 * be any query). */
	const char *bad = check_schema(db->db);
	if (bad) {
		if (errmsg && cap)
			snprintf(errmsg, cap,
				 "'%s': not a memana database ('%s' differs from memana's schema)",
				 path, bad);
		ana_db_free(db);
		return -CM_E_CORRUPT;
	}
	*out = db;
	return 0;
fail:
	rc = db_fail(db, errmsg, cap, "cannot read database");
	ana_db_free(db);
	return rc;
}

int ana_db_add_tick(void *ctx, uint64_t time_ns, uint64_t heap_bytes, uint64_t rss_bytes)
{
	struct ana_db *db = ctx;

	sqlite3_bind_int64(db->tick, 1, (sqlite3_int64)time_ns);
	sqlite3_bind_int64(db->tick, 2, (sqlite3_int64)heap_bytes);
	sqlite3_bind_int64(db->tick, 3, (sqlite3_int64)rss_bytes);
	if (sqlite3_step(db->tick) != SQLITE_DONE) {
		sqlite3_reset(db->tick);
		db->tick_err = 1;
		return -CM_E_SQLITE;
	}
	sqlite3_reset(db->tick);
	return 0;
}

int ana_db_begin_blocks(struct ana_db *db, char *errmsg, size_t cap)
{
	if (sqlite3_prepare_v2(db->db,
			       "INSERT INTO allocations(node_id, stream, address, size, kind,"
			       " birth_seq, birth_ns, death_seq, death_ns, lifetime_ns,"
			       " lifetime_allocs, freed_by, temporary)"
			       " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &db->block, NULL) != SQLITE_OK)
		return db_fail(db, errmsg, cap, "cannot prepare statement");
	db->blocks_on = 1;
	return 0;
}

/* Run an INSERT (every parameter bound), then make it ready for the next
 * row. Returns 0 or -CM_E_SQLITE. */
static int step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -CM_E_SQLITE;
}

int ana_db_add_block(void *ctx, const struct ana_block *b)
{
	struct ana_db *db = ctx;
	sqlite3_stmt *st = db->block;

	sqlite3_bind_int64(st, 1, b->node_id);
	sqlite3_bind_int64(st, 2, b->stream);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)b->addr);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)b->size);
	sqlite3_bind_text(st, 5, tf_kind_name((enum tf_kind)b->kind), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)b->birth_seq);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)b->birth_ns);
	if (b->freed) {
		sqlite3_bind_int64(st, 8, (sqlite3_int64)b->death_seq);
		sqlite3_bind_int64(st, 9, (sqlite3_int64)b->death_ns);
		sqlite3_bind_int64(st, 10,
				   b->death_ns > b->birth_ns ? (sqlite3_int64)(b->death_ns - b->birth_ns)
							     : 0);
		sqlite3_bind_int64(st, 11, (sqlite3_int64)b->lifetime_allocs);
		sqlite3_bind_text(st, 12,
				  b->freed_by == ANA_FREED_LOST ? "lost"
								: tf_kind_name((enum tf_kind)b->freed_by),
				  -1, SQLITE_STATIC);
	} else {
		for (int i = 8; i <= 12; i++)
			sqlite3_bind_null(st, i);
	}
	sqlite3_bind_int(st, 13, b->temporary);
	return step(st);
}

int ana_db_add_phase(void *ctx, const struct ana_phase *ph)
{
	struct ana_db *db = ctx;
	sqlite3_stmt *st = db->phase;
	const uint64_t v[] = {
		ph->begin_seq, ph->end_seq, ph->begin_ns, ph->end_ns, ph->alloc_calls,
		ph->alloc_bytes, ph->left_blocks, ph->left_bytes, ph->heap_begin, ph->heap_end,
		ph->peak_heap_bytes, ph->peak_ns, ph->rss_begin, ph->rss_end, ph->rss_peak,
	};

	sqlite3_bind_int64(st, 1, ph->id);
	if (ph->parent)
		sqlite3_bind_int64(st, 2, ph->parent);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_int64(st, 3, ph->depth);
	sqlite3_bind_int64(st, 4, ph->stream);
	sqlite3_bind_text(st, 5, ph->name, (int)ph->name_len, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 6, ph->ended);
	for (int i = 0; i < (int)(sizeof(v) / sizeof(v[0])); i++)
		sqlite3_bind_int64(st, 7 + i, (sqlite3_int64)v[i]);
	if (!ph->ended)
		sqlite3_bind_null(st, 8);
	CM_TRY(step(st));
	for (size_t i = 0; i < ph->n_sites; i++) {
		sqlite3_bind_int64(db->phase_site, 1, ph->id);
		sqlite3_bind_int64(db->phase_site, 2, (sqlite3_int64)i + 1);
		sqlite3_bind_int64(db->phase_site, 3, ph->site_nodes[i]);
		sqlite3_bind_int64(db->phase_site, 4, (sqlite3_int64)ph->site_growth[i]);
		CM_TRY(step(db->phase_site));
	}
	return 0;
}

int ana_db_add_marker(void *ctx, const struct ana_marker *m)
{
	struct ana_db *db = ctx;
	sqlite3_stmt *st = db->marker;

	sqlite3_bind_int64(st, 1, m->index);
	sqlite3_bind_int64(st, 2, m->stream);
	sqlite3_bind_text(st, 3, m->name, (int)m->name_len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)m->seq);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)m->time_ns);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)m->heap_bytes);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)m->rss_bytes);
	return step(st);
}

struct sqlite3 *ana_db_sqlite(struct ana_db *db)
{
	return db->db;
}

int ana_db_is_db_file(const char *path)
{
	static const char magic[16] = "SQLite format 3";
	char buf[16];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	close(fd);
	return n == (ssize_t)sizeof(buf) && !memcmp(buf, magic, sizeof(buf));
}

/* ---- storing a profile ------------------------------------------------- */

/* (module row id, address) -> address row id (open addressing; id 0 =
 * empty slot). Module 0: the address lies in no module's segments. */
struct addr_map {
	uint64_t *keys;
	uint32_t *mods;
	uint32_t *ids;
	size_t cap, n;
};

static size_t addr_slot(uint64_t a, uint32_t mod, size_t cap)
{
	return (size_t)(((a ^ ((uint64_t)mod << 40)) * 0x9e3779b97f4a7c15ull) >> 17) &
	       (cap - 1);
}

static uint32_t addr_map_get(const struct addr_map *m, uint64_t a, uint32_t mod)
{
	for (size_t i = addr_slot(a, mod, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->ids[i])
			return 0;
		if (m->keys[i] == a && m->mods[i] == mod)
			return m->ids[i];
	}
}

static void addr_map_put(struct addr_map *m, uint64_t a, uint32_t mod, uint32_t id)
{
	size_t i = addr_slot(a, mod, m->cap);

	while (m->ids[i])
		i = (i + 1) & (m->cap - 1);
	m->keys[i] = a;
	m->mods[i] = mod;
	m->ids[i] = id;
	m->n++;
}

struct store {
	struct ana_db *db;
	struct ana_profile *prof;
	struct ana_sym *sym;
	sqlite3_stmt *meta, *module, *segment, *thread, *address, *frame, *node, *site;
	sqlite3_stmt *hist, *site_hist;
	uint32_t sites; /* ana_db_store()'s */
	size_t n_registered; /* modules already in sym */
};

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static int meta_int(struct store *s, const char *key, uint64_t v)
{
	sqlite3_bind_text(s->meta, 1, key, -1, SQLITE_STATIC);
	bind_u64(s->meta, 2, v);
	return step(s->meta);
}

static int meta_text(struct store *s, const char *key, const char *v)
{
	sqlite3_bind_text(s->meta, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->meta, 2, v ? v : "", -1, SQLITE_TRANSIENT);
	return step(s->meta);
}

static int store_meta(struct store *s, const char *trace_path)
{
	const struct ana_profile *p = s->prof;
	const struct ana_totals *t = &p->totals;

	CM_TRY(meta_int(s, "schema_version", ANA_DB_SCHEMA_VERSION));
	CM_TRY(meta_text(s, "memana_version", MEMANA_VERSION));
	CM_TRY(meta_text(s, "trace", trace_path));
	CM_TRY(meta_int(s, "format_version", p->format_version));
	CM_TRY(meta_int(s, "format_flags", p->format_flags));
	CM_TRY(meta_int(s, "pid", p->pid));
	CM_TRY(meta_int(s, "ppid", p->ppid));
	CM_TRY(meta_text(s, "exe", p->exe));
	CM_TRY(meta_text(s, "command", p->command));
	CM_TRY(meta_int(s, "page_size", p->page_size));
	CM_TRY(meta_int(s, "start_unix_ns", p->start_unix_ns));
	CM_TRY(meta_int(s, "duration_ns", p->duration_ns));
	CM_TRY(meta_int(s, "complete", p->complete));
	CM_TRY(meta_int(s, "truncated_at", p->truncated_at));
	CM_TRY(meta_int(s, "end_n_events", p->end_n_events));
	CM_TRY(meta_int(s, "temporary_gap", p->temporary_gap));
	CM_TRY(meta_int(s, "allocations", t->allocations));
	CM_TRY(meta_int(s, "failed_allocations", t->failed_allocations));
	CM_TRY(meta_int(s, "bytes_allocated", t->bytes_allocated));
	CM_TRY(meta_int(s, "frees", t->frees));
	CM_TRY(meta_int(s, "temporary_allocations", t->temporary));
	CM_TRY(meta_int(s, "temporary_bytes", t->temporary_bytes));
	CM_TRY(meta_int(s, "peak_heap_bytes", t->peak_heap_bytes));
	CM_TRY(meta_int(s, "peak_time_ns", t->peak_time_ns));
	CM_TRY(meta_int(s, "peak_seq", t->peak_seq));
	CM_TRY(meta_int(s, "peak_rss_bytes", t->peak_rss_bytes));
	CM_TRY(meta_int(s, "leaked_allocations", t->leaked_allocations));
	CM_TRY(meta_int(s, "leaked_bytes", t->leaked_bytes));
	CM_TRY(meta_int(s, "unmatched_frees", t->unmatched_frees));
	CM_TRY(meta_int(s, "inconsistent", t->inconsistent));
	CM_TRY(meta_int(s, "late_events", t->late_events));
	CM_TRY(meta_int(s, "ticks", t->n_ticks));
	CM_TRY(meta_int(s, "allocation_rows", (uint64_t)s->db->blocks_on));
	CM_TRY(meta_int(s, "phases", t->phases));
	CM_TRY(meta_int(s, "markers", t->markers));
	CM_TRY(meta_int(s, "unmatched_phase_ends", t->unmatched_phase_ends));
	return 0;
}

/* The last bucket's upper bound does not fit a signed 64-bit integer. */
static sqlite3_int64 hist_hi(unsigned b)
{
	uint64_t hi = ana_hist_hi(b);

	return hi > INT64_MAX ? INT64_MAX : (sqlite3_int64)hi;
}

static int store_histograms(struct store *s)
{
	for (unsigned k = 0; k < ANA_N_HIST; k++)
		for (unsigned b = 0; b < ANA_HIST_BUCKETS; b++) {
			const struct ana_hist_cell *c = &s->prof->hist[k][b];
			if (!c->count)
				continue;
			sqlite3_bind_text(s->hist, 1, ana_hist_kind_name(k), -1, SQLITE_STATIC);
			bind_u64(s->hist, 2, b);
			bind_u64(s->hist, 3, ana_hist_lo(b));
			sqlite3_bind_int64(s->hist, 4, hist_hi(b));
			bind_u64(s->hist, 5, c->count);
			bind_u64(s->hist, 6, c->bytes);
			CM_TRY(step(s->hist));
		}
	return 0;
}

static int store_site_histograms(struct store *s, uint32_t node_id, uint32_t site_idx)
{
	uint64_t counts[ANA_HIST_BUCKETS];

	for (unsigned k = 0; k < ANA_N_HIST; k++) {
		ana_profile_site_hist(s->prof, site_idx, k, counts);
		for (unsigned b = 0; b < ANA_HIST_BUCKETS; b++) {
			if (!counts[b])
				continue;
			bind_u64(s->site_hist, 1, node_id);
			sqlite3_bind_text(s->site_hist, 2, ana_hist_kind_name(k), -1, SQLITE_STATIC);
			bind_u64(s->site_hist, 3, b);
			bind_u64(s->site_hist, 4, ana_hist_lo(b));
			sqlite3_bind_int64(s->site_hist, 5, hist_hi(b));
			bind_u64(s->site_hist, 6, counts[b]);
			CM_TRY(step(s->site_hist));
		}
	}
	return 0;
}

static int store_modules(struct store *s)
{
	const struct ana_profile *p = s->prof;

	for (size_t i = 0; i < p->n_modules; i++) {
		const struct ana_module *m = &p->modules[i];
		char hex[2 * TF_MAX_BUILD_ID_BYTES + 1];
		uint32_t id = (uint32_t)i + 1;

		for (uint32_t b = 0; b < m->build_id_len; b++)
			snprintf(hex + 2 * b, 3, "%02x", m->build_id[b]);
		hex[2 * m->build_id_len] = 0;
		bind_u64(s->module, 1, id);
		bind_u64(s->module, 2, m->trace_id);
		sqlite3_bind_text(s->module, 3, m->path, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->module, 4, ana_basename(m->path), -1, SQLITE_STATIC);
		if (m->build_id_len)
			sqlite3_bind_text(s->module, 5, hex, -1, SQLITE_TRANSIENT);
		bind_u64(s->module, 6, m->base);
		bind_u64(s->module, 7, m->load_seq);
		if (m->unload_seq)
			bind_u64(s->module, 8, m->unload_seq);
		CM_TRY(step(s->module));
		for (uint32_t g = 0; g < m->n_segs; g++) {
			bind_u64(s->segment, 1, id);
			bind_u64(s->segment, 2, m->segs[g].vaddr);
			bind_u64(s->segment, 3, m->segs[g].memsz);
			bind_u64(s->segment, 4, m->segs[g].flags);
			CM_TRY(step(s->segment));
		}
		if (s->sym && i >= s->n_registered)
			/* An unresolvable module still maps addresses; ignore. */
			(void)ana_sym_add_module(s->sym, id, m->path, m->base,
						 m->build_id_len ? m->build_id : NULL,
						 m->build_id_len);
	}
	for (size_t i = 0; i < p->n_threads; i++) {
		const struct ana_thread *t = &p->threads[i];
		bind_u64(s->thread, 1, t->stream);
		bind_u64(s->thread, 2, t->tid);
		sqlite3_bind_text(s->thread, 3, t->name, -1, SQLITE_STATIC);
		bind_u64(s->thread, 4, t->seq);
		bind_u64(s->thread, 5, t->n_allocs);
		CM_TRY(step(s->thread));
	}
	return 0;
}

/* Module row id (0: none) whose code addr is for a node born at seq: the
 * module loaded there at that moment (docs/schema.md "Stacks"). */
static uint32_t module_row(const struct store *s, uint64_t addr, uint64_t seq)
{
	const struct ana_module *m;

	if (addr == TF_ADDR_TRUNCATED)
		return 0;
	m = ana_profile_module_for(s->prof, addr, seq);
	return m ? (uint32_t)(m - s->prof->modules) + 1 : 0;
}

/* Insert the address row of addr (id) as code of module row mod_id (0: in
 * no recorded segment) and its symbolized frames. */
static int store_address(struct store *s, uint32_t id, uint64_t addr, uint32_t mod_id)
{
	struct ana_frame frames[ANA_SYM_MAX_FRAMES];
	uint64_t mod_off = 0;
	int n = 0;

	if (mod_id) {
		mod_off = addr - s->prof->modules[mod_id - 1].base;
		if (s->sym)
			n = ana_sym_resolve_in(s->sym, mod_id, addr, frames,
					       ANA_SYM_MAX_FRAMES, NULL);
	} else if (addr != TF_ADDR_TRUNCATED && s->sym) {
		/* No recorded segment holds it: the ELF file's own range may
		 * (its program headers, or the guess for an unusable file). */
		n = ana_sym_resolve(s->sym, addr, frames, ANA_SYM_MAX_FRAMES, &mod_id, &mod_off);
	}
	if (n == -ENOMEM)
		return -ENOMEM;
	if (n < 0)
		n = 0;
	bind_u64(s->address, 1, id);
	bind_u64(s->address, 2, addr);
	if (mod_id) {
		bind_u64(s->address, 3, mod_id);
		bind_u64(s->address, 4, mod_off);
	}
	CM_TRY(step(s->address));
	/* Frames that carry nothing are left out: the address is unresolved. */
	if (n == 1 && !frames[0].function && !frames[0].file)
		n = 0;
	for (int i = 0; i < n; i++) {
		bind_u64(s->frame, 1, id);
		bind_u64(s->frame, 2, (uint64_t)i);
		if (frames[i].function)
			sqlite3_bind_text(s->frame, 3, frames[i].function, -1, SQLITE_STATIC);
		if (frames[i].file)
			sqlite3_bind_text(s->frame, 4, frames[i].file, -1, SQLITE_STATIC);
		bind_u64(s->frame, 5, frames[i].line);
		CM_TRY(step(s->frame));
	}
	return 0;
}

static int store_nodes(struct store *s)
{
	struct ana_profile *p = s->prof;
	struct addr_map am = { 0 };
	long n_used = ana_profile_mark_sites(p, s->sites);
	uint32_t next_id = 1;
	int rc = 0;

	if (n_used < 0)
		return -ENOMEM;

	am.cap = 64;
	while (am.cap < 2 * (size_t)n_used + 2)
		am.cap *= 2;
	am.keys = malloc(am.cap * sizeof(*am.keys));
	am.mods = malloc(am.cap * sizeof(*am.mods));
	am.ids = calloc(am.cap, sizeof(*am.ids));
	if (!am.keys || !am.mods || !am.ids || ana_profile_index_modules(p) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < p->n_nodes; i++) {
		const struct ana_node *n = &p->nodes[i];
		uint32_t aid, mod;

		uint8_t used = ana_profile_node_flags(p, i);
		uint32_t id = ana_profile_node_id(p, i);

		if (!(used & ANA_USED_NODE))
			continue;
		/* The same address is another row when another module was
		 * loaded there at the node's birth. */
		mod = module_row(s, n->addr, n->birth_seq);
		aid = addr_map_get(&am, n->addr, mod);
		if (!aid) {
			aid = next_id++;
			addr_map_put(&am, n->addr, mod, aid);
			rc = store_address(s, aid, n->addr, mod);
			if (rc < 0)
				goto out;
		}
		bind_u64(s->node, 1, id);
		bind_u64(s->node, 2, ana_profile_parent_id(p, n));
		bind_u64(s->node, 3, aid);
		if ((rc = step(s->node)) < 0)
			goto out;
		if (!(used & ANA_USED_SITE))
			continue;
		const struct ana_site *st = &p->sites[n->site];
		bind_u64(s->site, 1, id);
		bind_u64(s->site, 2, st->alloc_calls);
		bind_u64(s->site, 3, st->alloc_bytes);
		bind_u64(s->site, 4, st->temp_calls);
		bind_u64(s->site, 5, st->temp_bytes);
		bind_u64(s->site, 6, st->peak_blocks);
		bind_u64(s->site, 7, st->peak_bytes);
		bind_u64(s->site, 8, st->live_blocks);
		bind_u64(s->site, 9, st->live_bytes);
		bind_u64(s->site, 10, st->realloc_calls);
		bind_u64(s->site, 11, st->realloc_grow_calls);
		bind_u64(s->site, 12, st->early_leaked_blocks);
		bind_u64(s->site, 13, st->early_leaked_bytes);
		sqlite3_bind_double(s->site, 14, st->growth_rate);
		sqlite3_bind_double(s->site, 15, st->mean_live_bytes);
		if ((rc = step(s->site)) < 0)
			goto out;
		if ((rc = store_site_histograms(s, id, n->site)) < 0)
			goto out;
	}
out:
	free(am.keys);
	free(am.mods);
	free(am.ids);
	return rc;
}

int ana_db_store(struct ana_db *db, struct ana_profile *prof, const char *trace_path,
		 const char *debug_path, uint32_t sites, char *errmsg, size_t cap)
{
	struct ana_sym *sym = NULL;
	int rc = ana_sym_new(&sym);

	if (rc == 0 && debug_path)
		rc = ana_sym_set_debug_path(sym, debug_path);
	if (rc < 0) {
		ana_sym_free(sym);
		if (errmsg && cap)
			snprintf(errmsg, cap, "'%s': out of memory", db->path);
		return rc;
	}
	return ana_db_store_with(db, prof, trace_path, sym, 0, sites, errmsg, cap);
}

int ana_db_store_with(struct ana_db *db, struct ana_profile *prof,
		      const char *trace_path, struct ana_sym *sym, size_t n_registered,
		      uint32_t sites, char *errmsg, size_t cap)
{
	struct store s = { .db = db, .prof = prof, .sym = sym, .sites = sites,
			   .n_registered = n_registered };
	static const struct {
		size_t off;
		const char *sql;
	} stmts[] = {
		{ offsetof(struct store, meta), "INSERT OR REPLACE INTO meta VALUES(?,?)" },
		{ offsetof(struct store, module),
		  "INSERT INTO modules VALUES(?,?,?,?,?,?,?,?)" },
		{ offsetof(struct store, segment), "INSERT INTO segments VALUES(?,?,?,?)" },
		{ offsetof(struct store, thread),
		  "INSERT OR REPLACE INTO threads VALUES(?,?,?,?,?)" },
		{ offsetof(struct store, address), "INSERT INTO addresses VALUES(?,?,?,?)" },
		{ offsetof(struct store, frame), "INSERT INTO frames VALUES(?,?,?,?,?)" },
		{ offsetof(struct store, node), "INSERT INTO nodes VALUES(?,?,?)" },
		{ offsetof(struct store, site),
		  "INSERT INTO sites VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)" },
		{ offsetof(struct store, hist), "INSERT INTO histogram VALUES(?,?,?,?,?,?)" },
		{ offsetof(struct store, site_hist),
		  "INSERT INTO site_histogram VALUES(?,?,?,?,?,?)" },
	};
	int rc = 0;

	if (db->tick_err) {
		ana_sym_free(sym);
		return db_fail(db, errmsg, cap, "cannot store the timeline");
	}
	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		sqlite3_stmt **st = (sqlite3_stmt **)((char *)&s + stmts[i].off);
		if (sqlite3_prepare_v2(db->db, stmts[i].sql, -1, st, NULL) != SQLITE_OK) {
			rc = db_fail(db, errmsg, cap, "cannot prepare statement");
			goto out;
		}
	}
	rc = store_meta(&s, trace_path);
	if (rc == 0)
		rc = store_histograms(&s);
	if (rc == 0)
		rc = store_modules(&s);
	if (rc == 0)
		rc = store_nodes(&s);
	if (rc == 0) {
		struct ana_growth g;
		rc = ana_growth_compute(db->db, prof->duration_ns, prof->totals.peak_heap_bytes, &g);
		if (rc == 0)
			rc = ana_growth_store(db->db, &g);
	}
	if (rc == -CM_E_SQLITE) {
		rc = db_fail(db, errmsg, cap, "cannot write database");
		goto out;
	}
	if (rc < 0)
		goto out;
	if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_fail(db, errmsg, cap, "cannot commit");
		goto out;
	}
	db->in_txn = 0;
out:
	if (rc == -ENOMEM && errmsg && cap)
		snprintf(errmsg, cap, "'%s': out of memory", db->path);
	sqlite3_finalize(s.meta);
	sqlite3_finalize(s.module);
	sqlite3_finalize(s.segment);
	sqlite3_finalize(s.thread);
	sqlite3_finalize(s.address);
	sqlite3_finalize(s.frame);
	sqlite3_finalize(s.node);
	sqlite3_finalize(s.site);
	sqlite3_finalize(s.hist);
	sqlite3_finalize(s.site_hist);
	ana_sym_free(s.sym);
	return rc;
}
