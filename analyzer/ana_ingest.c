/* Ingest: replay (streaming the timeline into the open transaction), then
 * symbolize and store the aggregates. */
#include "ana_ingest.h"
#include "ana_replay.h"

int ana_ingest(const char *trace_path, const char *db_path,
	       const struct ana_ingest_opts *opts, struct ana_db **out,
	       struct ana_ingest_info *info, char *errmsg, size_t cap)
{
	struct ana_replay_opts ro = { 0 };
	struct ana_profile *prof = NULL;
	struct ana_db *db = NULL;
	int rc;

	rc = ana_db_create(&db, db_path, errmsg, cap);
	if (rc < 0)
		return rc;
	ro.temporary_gap = opts ? opts->temporary_gap : 0;
	ro.on_tick = ana_db_add_tick;
	ro.tick_ctx = db;
	rc = ana_replay_path(trace_path, &ro, &prof, errmsg, cap);
	if (rc < 0)
		goto fail;
	rc = ana_db_store(db, prof, trace_path, opts ? opts->debug_path : NULL, errmsg, cap);
	if (rc < 0)
		goto fail;
	if (info) {
		info->complete = prof->complete;
		info->truncated_at = prof->truncated_at;
		info->n_nodes = prof->n_nodes;
	}
	ana_profile_free(prof);
	*out = db;
	return 0;
fail:
	ana_profile_free(prof);
	ana_db_free(db);
	return rc;
}
