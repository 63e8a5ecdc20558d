/* Ingest: replay a trace into a new database (replay + symbolize + store). */
#ifndef ANA_INGEST_H
#define ANA_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ana_db.h"
#include "ana_progress.h"

struct ana_ingest_opts {
	uint64_t temporary_gap;  /* see ana_replay_opts */
	const char *debug_path;  /* ana_sym_set_debug_path(); NULL = default */
	bool report_only;        /* store only what a report of report_top sites
				  * per list reads (ana_db_store()) */
	unsigned report_top;
	bool allocations;        /* one allocations row per block (schema) */
	struct ana_progress *progress; /* may be NULL */
};

struct ana_ingest_info {
	bool complete;          /* the trace has its END record */
	uint64_t truncated_at;  /* file bytes read when the cut was found */
	uint64_t n_nodes;       /* stack nodes in the trace */
};

/* Replay the trace at trace_path into a new database at db_path (":memory:"
 * allowed; the file must not exist). On success *out is the committed
 * database (free with ana_db_free()) and *info says whether the trace was
 * complete. Returns 0, or a negative code with errmsg (cap bytes) naming the
 * file (and the byte offset for a corrupt trace). opts may be NULL. */
int ana_ingest(const char *trace_path, const char *db_path,
	       const struct ana_ingest_opts *opts, struct ana_db **out,
	       struct ana_ingest_info *info, char *errmsg, size_t cap);

#endif
