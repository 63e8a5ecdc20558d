/* Call trees merged by function: the stacks of a database's call sites
 * folded into one tree whose nodes are frames named by function, as a flame
 * graph draws them (Brendan Gregg's flame graphs: frames merged by name, the
 * widths summing the sites' values). One tree can hold two databases (side
 * 0 and side 1): sites whose symbolized backtraces name the same functions
 * end on the same node, which is how `memana diff` matches the call sites
 * of two builds. Memory grows with the database's stack nodes while a
 * database is added, then with the distinct function paths. */
#ifndef ANA_FTREE_H
#define ANA_FTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ana_db.h"

/* The measures a tree carries per node (docs/schema.md "Definitions"). */
enum ana_metric {
	ANA_M_CALLS = 0,     /* allocation calls (sites.alloc_calls) */
	ANA_M_ALLOCATED = 1, /* bytes allocated (sites.alloc_bytes) */
	ANA_M_PEAK = 2,      /* bytes live at the peak (sites.peak_bytes) */
	ANA_M_LEAKED = 3,    /* bytes never freed (sites.leaked_bytes) */
	ANA_M_TEMPORARY = 4, /* temporary allocations (sites.temp_calls) */
	ANA_N_METRICS = 5,
};

/* "calls", "allocated", "peak", "leaked", "temporary". */
const char *ana_metric_name(enum ana_metric m);

/* A sentence-case label ("Allocation calls", "Bytes live at the peak"...). */
const char *ana_metric_label(enum ana_metric m);

/* Is the metric in bytes (else a count of calls)? */
bool ana_metric_is_bytes(enum ana_metric m);

/* The metric named s, or -1. */
int ana_metric_parse(const char *s);

#define ANA_FT_NONE UINT32_MAX

struct ana_ftree_node {
	uint32_t parent;       /* index; ANA_FT_NONE for the root (index 0) */
	uint32_t frame;        /* index in frames; ANA_FT_NONE for the root */
	uint32_t file;         /* index in files of the first frame merged
				* here (ANA_FT_NONE: unknown) */
	uint32_t line;         /* its line, 0 = unknown */
	uint32_t first_child;  /* after ana_ftree_finish(): children by total
				* of the finishing metric, largest first */
	uint32_t next_sibling;
	uint32_t depth;        /* frames from the root (root 0; at most 16384) */
	uint8_t sites;         /* bit s: a call site of side s ends here */
	uint64_t self[2][ANA_N_METRICS];  /* sums over the sites ending here */
	uint64_t total[2][ANA_N_METRICS]; /* self + descendants (finish) */
};

struct ana_ftree_frame {
	const char *function;  /* demangled name, or "lib.so+0x1f" (owned by the tree) */
	const char *module;    /* module basename where the function was first
				* seen, "" when unknown (owned) */
};

struct ana_ftree;

/* A new empty tree (just the root). Returns 0 or -ENOMEM. Free with
 * ana_ftree_free(). */
int ana_ftree_new(struct ana_ftree **out);

/* Add every site of db (a complete database: `memana ingest`, or one made
 * with every site) to side (0 or 1): each site's backtrace, outermost frame
 * first and starting at the caller of the allocation function (frames of
 * operator new skipped, as the report does), with inline frames as frames
 * of their own. Returns 0, -ENOMEM or -CM_E_SQLITE / -CM_E_CORRUPT (a
 * cycle or a dangling parent in the nodes table) with errmsg (cap bytes)
 * set; name is the database's name in messages. */
int ana_ftree_add_db(struct ana_ftree *t, struct ana_db *db, int side, const char *name,
		     char *errmsg, size_t cap);

/* Compute the totals and order every node's children by their total of
 * metric m on side (largest first, then by name). Returns 0 or -ENOMEM. */
int ana_ftree_finish(struct ana_ftree *t, int side, enum ana_metric m);

/* The nodes (index 0 = root) and frames, valid until the tree changes. */
const struct ana_ftree_node *ana_ftree_nodes(const struct ana_ftree *t, size_t *n);
const struct ana_ftree_frame *ana_ftree_frames(const struct ana_ftree *t, size_t *n);

/* The file name of node n ("" when unknown). */
const char *ana_ftree_file(const struct ana_ftree *t, const struct ana_ftree_node *n);

/* Write the folded stacks of metric m on side (flamegraph.pl's input: one
 * line per node with a nonzero own value, "outer;...;inner VALUE"; ';' in a
 * name is written as ':'). The values sum to the metric's total. After
 * ana_ftree_finish(). Returns 0 or -EIO. */
int ana_ftree_write_folded(const struct ana_ftree *t, int side, enum ana_metric m, FILE *f);

/* Write a speedscope file (https://www.speedscope.app/file-format-schema.json,
 * a "sampled" profile: one sample per node with a nonzero own value, its
 * stack root first, weighted by the value; unit "bytes" or "none"). name
 * names the profile. After ana_ftree_finish(). Returns 0 or -EIO. */
int ana_ftree_write_speedscope(const struct ana_ftree *t, int side, enum ana_metric m,
			       const char *name, FILE *f);

/* Write the tree of metric m on side as the HTML report's FLAME object
 * (docs/how-it-works.md "HTML report"): {"label", "unit", "total", "frames",
 * "root"}, keeping at most max_nodes nodes (the widest first; a node is
 * kept only with its parent, and dropped nodes count in their parent's own
 * value). After ana_ftree_finish() with the same side and metric. Returns 0
 * or -ENOMEM. */
int ana_ftree_write_flame_json(const struct ana_ftree *t, int side, enum ana_metric m,
			       size_t max_nodes, FILE *f);

void ana_ftree_free(struct ana_ftree *t);

#endif
