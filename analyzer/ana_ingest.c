/* Ingest: replay (streaming the timeline into the open transaction), then
 * symbolize and store the aggregates. While the replay runs, a second
 * thread opens the debug information of the modules nearly every stack
 * passes through (the executable and libc: decompressing their DWARF is
 * most of the symbolizer's start-up), in the symbolizer the store then
 * uses. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ana_ingest.h"
#include "ana_replay.h"
#include "ana_sym.h"
#include "cm_err.h"
#include <sqlite3.h>
#include <stdio.h>

/* A module as ana_db_store() registers it, copied for the warm-up thread. */
struct warm_mod {
	char *path;
	uint64_t base;
	uint8_t build_id[TF_MAX_BUILD_ID_BYTES];
	uint32_t build_id_len;
	uint64_t probe; /* an address of its code to resolve first, 0: none */
};

struct warm {
	struct ana_db *db;        /* for the ticks */
	const char *debug_path;
	bool wanted;              /* symbols will be needed */
	struct ana_sym *sym;      /* NULL: none made */
	struct warm_mod *mods;
	size_t n_mods;
	pthread_t thread;
	bool running;
};

/* Phases and markers go to the database as they end; the sites phases
 * name are remembered (at most MAX_PHASE_SITE_IDS) so that a report's
 * database stores them. */
#define MAX_PHASE_SITE_IDS 65536

/* Rows of phases and of markers a report's database keeps (the first
 * ones: ids in order of begin, markers in order). */
#define REPORT_MAX_PHASE_ROWS 100000

struct phases {
	struct ana_db *db;
	uint64_t max_rows;     /* 0: all */
	uint32_t *ids;
	size_t n, cap;
	struct ana_map32 seen; /* id + 1 */
};

static int on_phase(void *ctx, const struct ana_phase *ph)
{
	struct phases *p = ctx;

	if (p->max_rows && ph->id > p->max_rows)
		return 0;
	CM_TRY(ana_db_add_phase(p->db, ph));
	for (size_t i = 0; i < ph->n_sites && p->n < MAX_PHASE_SITE_IDS; i++) {
		uint32_t id = ph->site_nodes[i], v;
		if (id == UINT32_MAX || ana_map32_get(&p->seen, id + 1, &v))
			continue;
		if (p->n == p->cap) {
			size_t cap = p->cap ? p->cap * 2 : 64;
			uint32_t *n = realloc(p->ids, cap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			p->ids = n;
			p->cap = cap;
		}
		CM_TRY(ana_map32_put(&p->seen, id + 1, 1));
		p->ids[p->n++] = id;
	}
	return 0;
}

static int on_marker(void *ctx, const struct ana_marker *m)
{
	struct phases *p = ctx;

	if (p->max_rows && m->index > p->max_rows)
		return 0;
	return ana_db_add_marker(p->db, m);
}

static int warm_tick(void *ctx, uint64_t time_ns, uint64_t heap_bytes, uint64_t rss_bytes)
{
	struct warm *w = ctx;

	return ana_db_add_tick(w->db, time_ns, heap_bytes, rss_bytes);
}

static void *warm_main(void *arg)
{
	struct warm *w = arg;
	struct ana_frame frames[ANA_SYM_MAX_FRAMES];

	for (size_t i = 0; i < w->n_mods; i++) {
		const struct warm_mod *m = &w->mods[i];
		(void)ana_sym_add_module(w->sym, (uint32_t)i + 1, m->path, m->base,
					 m->build_id_len ? m->build_id : NULL, m->build_id_len);
	}
	for (size_t i = 0; i < w->n_mods; i++)
		if (w->mods[i].probe)
			(void)ana_sym_resolve_in(w->sym, (uint32_t)i + 1, w->mods[i].probe, frames,
						 ANA_SYM_MAX_FRAMES, NULL);
	return NULL;
}

static void warm_drop_mods(struct warm *w)
{
	for (size_t i = 0; i < w->n_mods; i++)
		free(w->mods[i].path);
	free(w->mods);
	w->mods = NULL;
	w->n_mods = 0;
}

/* Is m the executable or libc? */
static bool worth_warming(const struct ana_profile *p, size_t i)
{
	const struct ana_module *m = &p->modules[i];
	const char *base = ana_basename(m->path);

	return (p->exe && !strcmp(m->path, p->exe)) || !strncmp(base, "libc.so", 7) ||
	       !strncmp(base, "libc-", 5);
}

/* ana_start_fn: copy the modules known now and start the warm-up. */
static void warm_start(void *ctx, const struct ana_profile *p)
{
	struct warm *w = ctx;

	if (!w->wanted || !p->n_modules)
		return;
	if (ana_sym_new(&w->sym) < 0)
		return;
	if (w->debug_path && ana_sym_set_debug_path(w->sym, w->debug_path) < 0)
		goto fail;
	w->mods = calloc(p->n_modules, sizeof(*w->mods));
	if (!w->mods)
		goto fail;
	for (size_t i = 0; i < p->n_modules; i++) {
		const struct ana_module *m = &p->modules[i];
		struct warm_mod *c = &w->mods[w->n_mods];

		c->path = ana_strndup(m->path, strlen(m->path));
		if (!c->path)
			goto fail;
		w->n_mods++;
		c->base = m->base;
		c->build_id_len = m->build_id_len;
		memcpy(c->build_id, m->build_id, m->build_id_len);
		if (!worth_warming(p, i))
			continue;
		for (uint32_t g = 0; g < m->n_segs; g++)
			if ((m->segs[g].flags & 1) && m->segs[g].memsz) { /* PF_X */
				c->probe = m->base + m->segs[g].vaddr;
				break;
			}
	}
	if (pthread_create(&w->thread, NULL, warm_main, w) == 0) {
		w->running = true;
		return;
	}
fail:
	warm_drop_mods(w);
	ana_sym_free(w->sym);
	w->sym = NULL;
}

/* Wait for the warm-up; keeps w->sym and how many modules it holds. */
static void warm_join(struct warm *w)
{
	if (w->running)
		pthread_join(w->thread, NULL);
	w->running = false;
}

int ana_ingest(const char *trace_path, const char *db_path,
	       const struct ana_ingest_opts *opts, struct ana_db **out,
	       struct ana_ingest_info *info, char *errmsg, size_t cap)
{
	struct ana_replay_opts ro = { 0 };
	struct ana_profile *prof = NULL;
	struct ana_db *db = NULL;
	struct warm w = { 0 };
	struct phases ph = { 0 };
	uint32_t sites = opts && opts->report_only ? opts->report_top : ANA_ALL_SITES;
	int rc;

	rc = ana_db_create(&db, db_path, errmsg, cap);
	if (rc < 0)
		return rc;
	w.db = db;
	w.debug_path = opts ? opts->debug_path : NULL;
	w.wanted = sites > 0;
	ro.temporary_gap = opts ? opts->temporary_gap : 0;
	ro.on_tick = warm_tick;
	ro.on_start = warm_start;
	ro.tick_ctx = &w;
	if (opts && opts->allocations) {
		rc = ana_db_begin_blocks(db, errmsg, cap);
		if (rc < 0)
			goto fail;
		ro.on_block = ana_db_add_block;
		ro.block_ctx = db;
	}
	if (opts && opts->progress) {
		ro.on_progress = ana_progress_read;
		ro.progress_ctx = opts->progress;
	}
	ph.db = db;
	ph.max_rows = opts && opts->report_only ? REPORT_MAX_PHASE_ROWS : 0;
	ro.on_phase = on_phase;
	ro.on_marker = on_marker;
	ro.phase_ctx = &ph;
	rc = ana_replay_path(trace_path, &ro, &prof, errmsg, cap);
	warm_join(&w);
	if (rc == -CM_E_SQLITE && errmsg && cap)
		snprintf(errmsg, cap, "'%s': cannot write database: %s", db_path,
			 sqlite3_errmsg(ana_db_sqlite(db)));
	if (rc < 0)
		goto fail;
	if (opts && opts->progress)
		ana_progress_stage(opts->progress, "symbolizing");
	prof->extra_ids = ph.ids; /* the profile frees them */
	prof->n_extra = ph.n;
	ph.ids = NULL;
	if (w.sym) {
		struct ana_sym *sym = w.sym;
		w.sym = NULL;
		rc = ana_db_store_with(db, prof, trace_path, sym, w.n_mods, sites, errmsg, cap);
	} else {
		rc = ana_db_store(db, prof, trace_path, w.debug_path, sites, errmsg, cap);
	}
	warm_drop_mods(&w);
	if (rc < 0)
		goto fail;
	if (info) {
		info->complete = prof->complete;
		info->truncated_at = prof->truncated_at;
		info->n_nodes = prof->n_nodes;
	}
	ana_profile_free(prof);
	ana_map32_release(&ph.seen);
	*out = db;
	return 0;
fail:
	free(ph.ids);
	ana_map32_release(&ph.seen);
	warm_drop_mods(&w);
	ana_sym_free(w.sym);
	ana_profile_free(prof);
	ana_db_free(db);
	return rc;
}
