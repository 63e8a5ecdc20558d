/* Comparing two profiles (memana diff, memana check --baseline): call sites
 * are matched by their symbolized backtraces (function and module names,
 * not addresses or lines), so two builds of a program compare. */
#ifndef ANA_DIFF_H
#define ANA_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ana_db.h"
#include "ana_ftree.h"
#include "ana_report.h"

/* The four measures compared (docs/usage.md "memana diff"). */
enum ana_dmetric {
	ANA_D_CALLS = 0,     /* allocation calls */
	ANA_D_PEAK = 1,      /* bytes live at the peak */
	ANA_D_LEAKED = 2,    /* leaked bytes */
	ANA_D_TEMPORARY = 3, /* temporary allocations */
	ANA_N_DMETRICS = 4,
};

/* One matched call site (a function path ending a site in either profile). */
struct ana_diff_site {
	uint32_t node;                    /* tree node (ana_ftree_nodes()) */
	uint64_t base[ANA_N_DMETRICS];
	uint64_t new_[ANA_N_DMETRICS];
	double score;                     /* largest |change| as a share of its total */
};

struct ana_diff {
	struct ana_ftree *tree;           /* owned: side 0 = base, 1 = new (added
					   * first: locations are the new build's) */
	uint64_t base_total[ANA_N_DMETRICS], new_total[ANA_N_DMETRICS];
	char *base_name, *new_name;       /* owned */
	struct ana_diff_site *sites;      /* owned: changed sites, by score (desc) */
	size_t n_sites;
	size_t n_matched;                 /* distinct site paths in either profile */
};

/* Compare the databases base and new (each complete, with every site; the
 * names are used in messages and output). Returns 0 with *out set (free
 * with ana_diff_free()), or a negative code with errmsg (cap) set. */
int ana_diff_new(struct ana_db *base, const char *base_name, struct ana_db *new_db,
		 const char *new_name, struct ana_diff **out, char *errmsg, size_t cap);

/* Print the comparison for people: totals, then at most top changed
 * sites with their backtraces. */
void ana_diff_print_text(const struct ana_diff *d, size_t top, FILE *f);

/* Print it as one JSON object: {"base": {...}, "new": {...}, "sites": [...]}
 * (docs/usage.md). */
void ana_diff_print_json(const struct ana_diff *d, size_t top, FILE *f);

/* The label of measure m ("allocation calls", "peak heap bytes", ...). */
const char *ana_dmetric_label(enum ana_dmetric m);

/* Print the innermost frames (at most max) of the site's path, one line
 * each, indented by indent spaces. */
void ana_diff_print_stack(const struct ana_diff *d, const struct ana_diff_site *s,
			  size_t max, int indent, FILE *f);

void ana_diff_free(struct ana_diff *d);

#endif
