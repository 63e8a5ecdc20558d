/* Reports, read from the database only (one code path for traces and
 * databases): the summary and the four top lists, as text or JSON. */
#ifndef ANA_REPORT_H
#define ANA_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ana_db.h"
#include "ana_growth.h"

/* The four lists, each ranked by its own measure (docs/schema.md). */
enum ana_list {
	ANA_LIST_ALLOCATIONS = 0, /* calls made, bytes requested; by calls */
	ANA_LIST_PEAK = 1,        /* blocks and bytes live at the peak; by bytes */
	ANA_LIST_LEAKED = 2,      /* blocks and bytes never freed; by bytes */
	ANA_LIST_TEMPORARY = 3,   /* temporary calls and their bytes; by calls */
	ANA_N_LISTS = 4,
};

struct ana_report_frame {
	char *function; /* owned; never NULL ("lib.so+0x12" when unresolved) */
	char *file;     /* owned; "" when unknown */
	uint32_t line;  /* 0 when unknown */
	char *module;   /* owned; module path, "" when unknown */
};

/* One non-empty histogram bucket: values v with lo <= v <= hi (docs/schema.md
 * "Histograms"). */
struct ana_report_bucket {
	uint64_t lo, hi;
	uint64_t count;  /* allocation calls (sizes) or released blocks (lifetimes) */
	uint64_t bytes;  /* their bytes (whole-program histograms only; 0 per site) */
};

/* The three histograms (enum ana_hist_kind order), buckets ascending. */
struct ana_report_hists {
	struct ana_report_bucket *b[ANA_N_HIST]; /* owned */
	size_t n[ANA_N_HIST];
};

struct ana_report_site {
	uint64_t node_id;
	uint64_t calls; /* the list's own count */
	uint64_t bytes; /* the list's own bytes */
	struct ana_report_frame *frames; /* owned; innermost first, starting at
					  * the caller of the allocation function */
	size_t n_frames;
	struct ana_report_hists hist;    /* the site's histograms (counts only) */
};

/* A phase (docs/schema.md "phases"): its figures and the sites whose live
 * bytes grew most up to its peak (site.bytes = that growth, site.calls 0). */
struct ana_report_phase {
	uint32_t id, parent, depth, stream;
	char *name;              /* owned */
	bool ended;
	uint64_t begin_ns, end_ns, alloc_calls, alloc_bytes, left_blocks, left_bytes;
	uint64_t heap_begin, heap_end, peak_heap_bytes, peak_ns;
	uint64_t rss_begin, rss_end, rss_peak; /* 0 = not sampled */
	struct ana_report_site *sites; /* owned */
	size_t n_sites;
};

struct ana_report_marker {
	uint32_t id, stream;
	char *name;              /* owned */
	uint64_t seq, time_ns, heap_bytes, rss_bytes;
};

/* A suggestion with its evidence (docs/usage.md "Insights"). */
struct ana_insight {
	const char *kind;        /* "temporary", "realloc", "pool", "early",
				  * "leak"; static */
	char *text;              /* owned: one sentence with the figures */
	uint64_t bytes;          /* memory at stake (the order) */
	uint64_t calls;          /* calls at stake */
	struct ana_report_site site; /* the site (calls/bytes as in text) */
};

struct ana_report {
	uint32_t pid, ppid;
	char *exe, *command, *trace; /* owned, never NULL */
	bool complete;
	uint64_t duration_ns, start_unix_ns, truncated_at, temporary_gap;
	uint64_t allocations, failed_allocations, bytes_allocated, frees;
	uint64_t temporary, temporary_bytes;
	uint64_t peak_heap_bytes, peak_time_ns, peak_rss_bytes;
	uint64_t leaked_allocations, leaked_bytes;
	uint64_t unmatched_frees, inconsistent;
	struct ana_report_site *sites[ANA_N_LISTS]; /* owned */
	size_t n_sites[ANA_N_LISTS];
	struct ana_report_hists hist;    /* the whole program's */
	struct ana_report_phase *phases; /* owned, by id */
	size_t n_phases;
	struct ana_report_marker *markers; /* owned, in order */
	size_t n_markers;
	uint64_t unmatched_phase_ends;
	uint64_t total_phases, total_markers; /* in the trace (phases/markers
					       * hold at most the first 100000) */
	struct ana_growth growth;
	/* with growth.growing: sites by live-bytes slope (site.bytes = bytes
	 * per second, rounded); with growth.spiking: sites by bytes at the peak
	 * above their mean (site.bytes = that, site.calls = blocks at the peak) */
	struct ana_report_site *growth_sites, *spike_sites; /* owned */
	size_t n_growth_sites, n_spike_sites;
	struct ana_insight *insights;    /* owned, by bytes at stake */
	size_t n_insights;
};

/* Write the JSON members "growth", "insights", "phases" and "markers"
 * (without braces; a comma-separated member list) to f. */
void ana_report_json_extras(const struct ana_report *rep, FILE *f);

/* Print the phases and markers section (memana report --phases). */
void ana_report_print_phases(const struct ana_report *rep, FILE *f);

/* Print the report as CSV (RFC 4180): the summary as key,value rows, a
 * blank line, then one row per site of the four lists, then the phases. */
void ana_report_print_csv(const struct ana_report *rep, FILE *f);

/* Write the program's histograms as the JSON member "histograms": {"sizes",
 * "lifetimes_ms", "lifetimes_allocs" (arrays as ana_report_hist_json(), with
 * bytes), "never_freed": {"count", "bytes"}} (no separator around it). */
void ana_report_hists_json(const struct ana_report *rep, FILE *f);

/* Write the histogram h as a JSON array of {"lo", "hi", "count"[, "bytes"]}
 * objects. */
void ana_report_hist_json(const struct ana_report_bucket *h, size_t n, bool with_bytes,
			  FILE *f);

/* Write one report site as JSON: {"calls", "bytes", "stack": [...], "sizes",
 * "lifetimes_ms", "lifetimes_allocs"}. */
void ana_report_site_json(const struct ana_report_site *s, FILE *f);

/* Read the summary and the top sites of each list (top per list; 0 reads
 * only the summary) from db. Returns 0 and sets *out (free with
 * ana_report_free()), or -CM_E_SQLITE / -ENOMEM with errmsg (cap) set. */
int ana_report_load(struct ana_db *db, const char *name, unsigned top,
		    struct ana_report **out, char *errmsg, size_t cap);

/* Print the human report (sizes in KiB/MiB) to f. */
void ana_report_print_text(const struct ana_report *rep, FILE *f);

/* Print the report as one JSON object (the shape of issue 2) to f. */
void ana_report_print_json(const struct ana_report *rep, FILE *f);

void ana_report_free(struct ana_report *rep);

#endif
