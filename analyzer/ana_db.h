/* The SQLite database of a replayed, symbolized trace. The schema and its
 * views are documented in docs/schema.md; the database alone is enough to
 * report later. */
#ifndef ANA_DB_H
#define ANA_DB_H

#include <stddef.h>
#include <stdint.h>

#include "ana_replay.h"

#define ANA_DB_SCHEMA_VERSION 2

struct ana_db;
struct sqlite3;

/* Create a new database at path (":memory:" for an in-memory one), write the
 * schema and open the write transaction. The file must not exist or be
 * empty (the caller decides about overwriting). Returns 0 and sets *out (free with
 * ana_db_free()), or -CM_E_SQLITE / -ENOMEM with errmsg (cap bytes) set. */
int ana_db_create(struct ana_db **out, const char *path, char *errmsg, size_t cap);

/* Open an existing database read-only and check its schema version.
 * Returns 0, or -CM_E_SQLITE / -CM_E_VERSION / -ENOMEM with errmsg set. */
int ana_db_open(struct ana_db **out, const char *path, char *errmsg, size_t cap);

/* Append a timeline point; an ana_tick_fn (ctx is the struct ana_db).
 * Returns 0 or -CM_E_SQLITE. */
int ana_db_add_tick(void *ctx, uint64_t time_ns, uint64_t heap_bytes,
		    uint64_t rss_bytes);

/* Store the metadata, modules and threads of prof, then its sites: all of
 * them (sites = ANA_ALL_SITES), or only those among the first sites of
 * any of the four lists in the views' order (ana_profile_mark_sites(): the
 * database of a report of that many sites per list, which then prints the
 * same as the full one).
 * The stored sites' nodes and their ancestors are symbolized with libdw
 * and stored with their addresses and frames (their ANA_USED_* flags set);
 * then commit. trace_path is stored in meta. debug_path is passed to
 * ana_sym_set_debug_path() when not NULL. Returns 0, -ENOMEM or
 * -CM_E_SQLITE with errmsg set. */
int ana_db_store(struct ana_db *db, struct ana_profile *prof, const char *trace_path,
		 const char *debug_path, uint32_t sites, char *errmsg, size_t cap);

struct ana_sym;

/* ana_db_store() with a symbolizer made beforehand (sym, taken over and
 * freed here; debug_path is then not used): the first n_registered modules
 * of prof are already registered in it, as module ids 1..n_registered with
 * their paths, bases and build-ids (what ana_db_store() would register). */
int ana_db_store_with(struct ana_db *db, struct ana_profile *prof,
		      const char *trace_path, struct ana_sym *sym, size_t n_registered,
		      uint32_t sites, char *errmsg, size_t cap);

/* Prepare the allocations table's insert: ana_db_add_block() may be used
 * from now on, and meta.allocation_rows says 1. Returns 0 or -CM_E_SQLITE
 * with errmsg set. */
int ana_db_begin_blocks(struct ana_db *db, char *errmsg, size_t cap);

/* Append one row to the allocations table; an ana_block_fn (ctx is the
 * struct ana_db, after ana_db_begin_blocks()). Returns 0 or -CM_E_SQLITE. */
int ana_db_add_block(void *ctx, const struct ana_block *b);

/* Append a phase (and its sites) / a marker; an ana_phase_fn /
 * ana_marker_fn (ctx is the struct ana_db). Returns 0 or -CM_E_SQLITE. */
int ana_db_add_phase(void *ctx, const struct ana_phase *ph);
int ana_db_add_marker(void *ctx, const struct ana_marker *m);

/* The SQLite handle (borrowed). */
struct sqlite3 *ana_db_sqlite(struct ana_db *db);

/* Close; an open transaction is rolled back. NULL is allowed. */
void ana_db_free(struct ana_db *db);

/* Is the file at path a SQLite database (by its 16-byte magic)? Returns 1,
 * 0 (readable, not SQLite), or -errno. */
int ana_db_is_db_file(const char *path);

#endif
