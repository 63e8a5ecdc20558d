/* Memory over time (see ana_growth.h). */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "ana_growth.h"
#include "cm_err.h"

static const char *const verdicts[] = { "unknown", "constant", "growing", "spiking" };

/* Least squares of y over x: slope and R^2 (0 when y is constant). */
struct fit {
	double n, sx, sy, sxx, sxy, syy;
};

static void fit_add(struct fit *f, double x, double y)
{
	f->n++;
	f->sx += x;
	f->sy += y;
	f->sxx += x * x;
	f->sxy += x * y;
	f->syy += y * y;
}

static void fit_solve(const struct fit *f, double *slope, double *r2)
{
	double vx = f->n * f->sxx - f->sx * f->sx;
	double vy = f->n * f->syy - f->sy * f->sy;
	double cxy = f->n * f->sxy - f->sx * f->sy;

	*slope = f->n >= 2 && vx > 0 ? cxy / vx : 0;
	*r2 = vx > 0 && vy > 0 ? (cxy * cxy) / (vx * vy) : 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The markers: count, first and last time, heap and RSS. */
static int load_markers(sqlite3 *db, struct ana_growth *g, uint64_t *t0, uint64_t *t1)
{
	sqlite3_stmt *st = NULL;
	uint64_t h0 = 0, h1 = 0, r0 = 0, r1 = 0;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT time_ns, heap_bytes, rss_bytes FROM markers ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t t = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t h = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t r = (uint64_t)sqlite3_column_int64(st, 2);
		if (!g->n_markers) {
			*t0 = t;
			h0 = h;
			r0 = r;
		}
		*t1 = t;
		h1 = h;
		r1 = r;
		g->n_markers++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -CM_E_SQLITE;
	if (g->n_markers >= 2) {
		g->has_per_marker = true;
		g->heap_per_marker = ((double)h1 - (double)h0) / (double)(g->n_markers - 1);
		g->rss_per_marker = r0 && r1 ? ((double)r1 - (double)r0) / (double)(g->n_markers - 1)
					     : 0;
	}
	return 0;
}

int ana_growth_compute(sqlite3 *db, uint64_t duration_ns, uint64_t peak_heap,
		       struct ana_growth *g)
{
	sqlite3_stmt *st = NULL;
	struct fit fh = { 0 }, fr = { 0 };
	uint64_t t0 = 0, t1 = 0, *heaps = NULL;
	size_t n = 0, cap = 0;
	int rc;

	memset(g, 0, sizeof(*g));
	g->verdict = verdicts[0];
	g->peak_heap = peak_heap;
	CM_TRY(load_markers(db, g, &t0, &t1));
	if (g->n_markers < 2 || t1 <= t0) {
		t0 = duration_ns / 10;
		t1 = duration_ns - duration_ns / 10;
	}
	g->window_start_ns = t0;
	g->window_end_ns = t1;
	if (sqlite3_prepare_v2(db,
			       "SELECT time_ns, heap_bytes, rss_bytes FROM ticks"
			       " WHERE time_ns BETWEEN ? AND ? ORDER BY time_ns",
			       -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)t0);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)t1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		double x = (double)sqlite3_column_int64(st, 0) / 1e9;
		uint64_t h = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t r = (uint64_t)sqlite3_column_int64(st, 2);
		fit_add(&fh, x, (double)h);
		if (r)
			fit_add(&fr, x, (double)r);
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			uint64_t *nh = realloc(heaps, nc * sizeof(*nh));
			if (!nh) {
				rc = -ENOMEM;
				goto out;
			}
			heaps = nh;
			cap = nc;
		}
		heaps[n++] = h;
	}
	if (rc != SQLITE_DONE) {
		rc = -CM_E_SQLITE;
		goto out;
	}
	rc = 0;
	g->n_points = n;
	fit_solve(&fh, &g->heap_rate, &g->heap_r2);
	fit_solve(&fr, &g->rss_rate, &g->rss_r2);
	if (n) {
		qsort(heaps, n, sizeof(*heaps), u64_cmp);
		g->baseline_heap = heaps[n / 2];
	}
	g->spike_bytes = peak_heap > g->baseline_heap ? peak_heap - g->baseline_heap : 0;
	if (n < ANA_GROWTH_MIN_POINTS)
		goto out;
	double window_s = (double)(t1 - t0) / 1e9;
	double mean = fh.sy / fh.n, grown = g->heap_rate * window_s;
	g->growing = grown >= ANA_GROWTH_MIN_BYTES && grown >= ANA_GROWTH_MIN_SHARE * mean &&
		     g->heap_r2 >= ANA_GROWTH_MIN_R2;
	uint64_t need = g->baseline_heap > ANA_SPIKE_MIN_BYTES ? g->baseline_heap
							       : ANA_SPIKE_MIN_BYTES;
	/* A growing heap peaks at its end: that is not a spike. */
	g->spiking = !g->growing && g->spike_bytes >= need;
	g->verdict = g->growing ? verdicts[2] : g->spiking ? verdicts[3] : verdicts[1];
out:
	sqlite3_finalize(st);
	free(heaps);
	return rc;
}

/* The meta keys of the figures (verdict apart), where they live in struct
 * ana_growth and how they are stored. */
enum fig_type { FIG_U64, FIG_BOOL, FIG_REAL, FIG_REAL_PER_MARKER };
static const struct {
	const char *key;
	size_t off;
	enum fig_type type;
} figs[] = {
#define F(k, f, t) { k, offsetof(struct ana_growth, f), t }
	F("growth_window_start_ns", window_start_ns, FIG_U64),
	F("growth_window_end_ns", window_end_ns, FIG_U64),
	F("growth_points", n_points, FIG_U64),
	F("heap_growth_bytes_per_s", heap_rate, FIG_REAL),
	F("heap_growth_r2", heap_r2, FIG_REAL),
	F("rss_growth_bytes_per_s", rss_rate, FIG_REAL),
	F("rss_growth_r2", rss_r2, FIG_REAL),
	/* NULL with fewer than two markers (has_per_marker) */
	F("heap_growth_per_marker", heap_per_marker, FIG_REAL_PER_MARKER),
	F("rss_growth_per_marker", rss_per_marker, FIG_REAL_PER_MARKER),
	F("heap_baseline_bytes", baseline_heap, FIG_U64),
	F("heap_spike_bytes", spike_bytes, FIG_U64),
	F("growth_growing", growing, FIG_BOOL),
	F("growth_spiking", spiking, FIG_BOOL),
	/* read back only: written by ana_db_store() */
	F("markers", n_markers, FIG_U64),
	F("peak_heap_bytes", peak_heap, FIG_U64),
#undef F
};
#define N_STORED_FIGS (sizeof(figs) / sizeof(figs[0]) - 2)

int ana_growth_store(sqlite3 *db, const struct ana_growth *g)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES(?,?)", -1, &st, NULL) !=
	    SQLITE_OK)
		return -CM_E_SQLITE;
	for (size_t i = 0; rc == 0 && i <= N_STORED_FIGS; i++) {
		const char *p = (const char *)g + (i ? figs[i - 1].off : 0);
		if (i == 0) {
			sqlite3_bind_text(st, 1, "growth_verdict", -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, g->verdict, -1, SQLITE_STATIC);
		} else {
			sqlite3_bind_text(st, 1, figs[i - 1].key, -1, SQLITE_STATIC);
			switch (figs[i - 1].type) {
			case FIG_U64:
				sqlite3_bind_int64(st, 2, (sqlite3_int64) * (const uint64_t *)p);
				break;
			case FIG_BOOL:
				sqlite3_bind_int(st, 2, *(const bool *)p);
				break;
			case FIG_REAL_PER_MARKER:
				if (!g->has_per_marker) {
					sqlite3_bind_null(st, 2);
					break;
				}
				/* fall through */
			case FIG_REAL:
				if (isfinite(*(const double *)p))
					sqlite3_bind_double(st, 2, *(const double *)p);
				else
					sqlite3_bind_null(st, 2);
				break;
			}
		}
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = -CM_E_SQLITE;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return rc;
}

int ana_growth_load(sqlite3 *db, struct ana_growth *g)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(g, 0, sizeof(*g));
	g->verdict = verdicts[0];
	if (sqlite3_prepare_v2(db, "SELECT key, value FROM meta", -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const unsigned char *tv = sqlite3_column_text(st, 1);

		if (!k)
			continue;
		if (!strcmp(k, "growth_verdict") && tv) {
			for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++)
				if (!strcmp((const char *)tv, verdicts[i]))
					g->verdict = verdicts[i];
			continue;
		}
		for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++) {
			if (strcmp(k, figs[i].key))
				continue;
			char *p = (char *)g + figs[i].off;
			switch (figs[i].type) {
			case FIG_U64:
				*(uint64_t *)p = (uint64_t)sqlite3_column_int64(st, 1);
				break;
			case FIG_BOOL:
				*(bool *)p = sqlite3_column_int64(st, 1) != 0;
				break;
			case FIG_REAL_PER_MARKER:
				g->has_per_marker = sqlite3_column_type(st, 1) != SQLITE_NULL;
				/* fall through */
			case FIG_REAL:
				*(double *)p = sqlite3_column_double(st, 1);
				break;
			}
			break;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -CM_E_SQLITE;
}
