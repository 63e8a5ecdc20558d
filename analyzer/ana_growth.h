/* Memory over time: is the heap of a run constant, growing (a possible
 * leak) or spiking? Least-squares fits of heap and RSS over the ticks of a
 * steady window, and the heap at markers. Rules and thresholds are in
 * docs/usage.md "Growth"; the result is stored in the database's meta
 * table at ingest and read back by the report. */
#ifndef ANA_GROWTH_H
#define ANA_GROWTH_H

#include <stdbool.h>
#include <stdint.h>

struct sqlite3;

/* A window needs this many ticks for a verdict (else "unknown"). */
#define ANA_GROWTH_MIN_POINTS 8
/* Growing: the fitted growth over the window is at least this many bytes,
 * at least ANA_GROWTH_MIN_SHARE of the window's mean heap, and the fit
 * explains at least ANA_GROWTH_MIN_R2 of the variance. */
#define ANA_GROWTH_MIN_BYTES 65536.0
#define ANA_GROWTH_MIN_SHARE 0.01
#define ANA_GROWTH_MIN_R2 0.8
/* Spiking (when not growing): the peak heap exceeds the window's median
 * heap by at least max(ANA_SPIKE_MIN_BYTES, the median). */
#define ANA_SPIKE_MIN_BYTES 1048576ull

struct ana_growth {
	const char *verdict;         /* "constant", "growing", "spiking" or
				      * "unknown" (too few ticks); static */
	bool growing, spiking;
	uint64_t window_start_ns;    /* first..last marker, or 10%..90% of the run */
	uint64_t window_end_ns;
	uint64_t n_points;           /* ticks in the window */
	double heap_rate;            /* bytes per second (least squares) */
	double heap_r2;              /* coefficient of determination, 0..1 */
	double rss_rate;             /* bytes per second, over the sampled ticks */
	double rss_r2;
	uint64_t n_markers;
	bool has_per_marker;         /* at least two markers */
	double heap_per_marker;      /* heap change per marker interval, bytes
				      * (last marker's heap - first's) / (n - 1) */
	double rss_per_marker;
	uint64_t baseline_heap;      /* median heap of the window's ticks */
	uint64_t peak_heap;          /* the run's peak heap */
	uint64_t spike_bytes;        /* peak_heap - baseline_heap (0 if below) */
};

/* Compute g from the ticks and markers tables of db and the run's duration
 * and peak (bytes). Returns 0 or -CM_E_SQLITE / -ENOMEM. */
int ana_growth_compute(struct sqlite3 *db, uint64_t duration_ns, uint64_t peak_heap,
		       struct ana_growth *g);

/* Write g into db's meta table (keys growth_*); needs an open write
 * transaction. Returns 0 or -CM_E_SQLITE. */
int ana_growth_store(struct sqlite3 *db, const struct ana_growth *g);

/* Read g back from db's meta table. Returns 0 or -CM_E_SQLITE. */
int ana_growth_load(struct sqlite3 *db, struct ana_growth *g);

#endif
