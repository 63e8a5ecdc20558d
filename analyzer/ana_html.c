/* The HTML report (see ana_html.h). The template is linked in with the
 * assembler's .incbin (the Makefile makes this object depend on it); its
 * one line "/\*@MEMANA_DATA@*\/" becomes "window.MEMANA_DATA = {...};". */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "ana_ftree.h"
#include "ana_html.h"
#include "ana_report.h"
#include "ana_util.h"
#include "cm_err.h"

__asm__(".pushsection .rodata\n"
	".globl ana_html_template\n"
	".type ana_html_template, @object\n"
	"ana_html_template:\n"
	".incbin \"analyzer/html/report.html\"\n"
	".byte 0\n"
	".popsection\n");
extern const char ana_html_template[] __attribute__((visibility("hidden")));

#define PLACEHOLDER "/*@MEMANA_DATA@*/"
#define MAX_POINTS 4000 /* timeline points in the page (the peak is kept) */

/* The timeline, at most MAX_POINTS points: each point stands for a run of
 * consecutive ticks and carries the run's largest heap (at its time) and
 * largest RSS. A tick's heap is the live heap after the events it released,
 * so the peak itself (between two ticks) is added as a point of its own. */
static int write_timeline(sqlite3 *db, const struct ana_report *rep, FILE *f)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 n_ticks = 0;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM ticks", -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	if (sqlite3_step(st) == SQLITE_ROW)
		n_ticks = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT time_ns, heap_bytes, rss_bytes FROM ticks ORDER BY time_ns",
			       -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	sqlite3_int64 per = (n_ticks + MAX_POINTS - 1) / MAX_POINTS;
	if (per < 1)
		per = 1;
	/* Three passes would need three queries; collect the points first. */
	size_t cap = (size_t)(n_ticks / per + 3), n = 0;
	uint64_t *t = malloc(cap * sizeof(*t)), *h = malloc(cap * sizeof(*h)),
		 *r = malloc(cap * sizeof(*r));
	if (!t || !h || !r) {
		rc = -ENOMEM;
		goto out;
	}
	sqlite3_int64 in_run = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t tn = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t hb = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t rb = (uint64_t)sqlite3_column_int64(st, 2);
		if (in_run == 0) {
			if (n == cap - 1)
				break;
			t[n] = tn;
			h[n] = hb;
			r[n] = rb;
			n++;
		} else {
			if (hb > h[n - 1]) {
				h[n - 1] = hb;
				t[n - 1] = tn;
			}
			if (rb > r[n - 1])
				r[n - 1] = rb;
		}
		if (++in_run == per)
			in_run = 0;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		rc = -CM_E_SQLITE;
		goto out;
	}
	rc = 0;
	if (rep->peak_heap_bytes) {
		size_t i = 0;
		while (i < n && t[i] < rep->peak_time_ns)
			i++;
		if (i == n || h[i] < rep->peak_heap_bytes) {
			memmove(t + i + 1, t + i, (n - i) * sizeof(*t));
			memmove(h + i + 1, h + i, (n - i) * sizeof(*h));
			memmove(r + i + 1, r + i, (n - i) * sizeof(*r));
			t[i] = rep->peak_time_ns;
			h[i] = rep->peak_heap_bytes;
			r[i] = 0; /* not sampled there */
			n++;
		}
	}
	fputs("\"timeline\": {\"time_ms\": [", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%.3f", i ? "," : "", ana_ms(t[i]));
	fputs("], \"heap_bytes\": [", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%" PRIu64, i ? "," : "", h[i]);
	fputs("], \"rss_bytes\": [", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%" PRIu64, i ? "," : "", r[i]);
	fputs("]}", f);
out:
	sqlite3_finalize(st);
	free(t);
	free(h);
	free(r);
	return rc;
}

static void write_summary(const struct ana_report *rep, const char *name, FILE *f)
{
	fputs("\"version\": 1,\n\"trace\": {\"path\": ", f);
	ana_json_cstr(f, name);
	fputs(", \"command\": ", f);
	ana_json_cstr(f, rep->command[0] ? rep->command : rep->exe);
	fputs(", \"exe\": ", f);
	ana_json_cstr(f, rep->exe);
	fprintf(f,
		", \"pid\": %u, \"complete\": %s, \"duration_ms\": %.3f, \"start_unix_ns\": %" PRIu64
		"},\n",
		rep->pid, rep->complete ? "true" : "false", ana_ms(rep->duration_ns), rep->start_unix_ns);
	fprintf(f,
		"\"totals\": {\"allocations\": %" PRIu64 ", \"failed_allocations\": %" PRIu64
		", \"bytes_allocated\": %" PRIu64 ", \"frees\": %" PRIu64
		", \"temporary_allocations\": %" PRIu64 ", \"temporary_bytes\": %" PRIu64
		", \"peak_heap_bytes\": %" PRIu64 ", \"peak_time_ms\": %.3f"
		", \"peak_rss_bytes\": %" PRIu64 ", \"leaked_allocations\": %" PRIu64
		", \"leaked_bytes\": %" PRIu64 "},\n",
		rep->allocations, rep->failed_allocations, rep->bytes_allocated, rep->frees,
		rep->temporary, rep->temporary_bytes, rep->peak_heap_bytes, ana_ms(rep->peak_time_ns),
		rep->peak_rss_bytes, rep->leaked_allocations, rep->leaked_bytes);
	fprintf(f, "\"peak\": {\"time_ms\": %.3f, \"heap_bytes\": %" PRIu64 "},\n",
		ana_ms(rep->peak_time_ns), rep->peak_heap_bytes);
}

static void write_sites(const struct ana_report *rep, FILE *f)
{
	static const char *const keys[ANA_N_LISTS] = { "allocations", "peak", "leaked",
							"temporary" };
	static const char *const labels[ANA_N_LISTS] = {
		"Most allocation calls", "Most bytes live at the peak", "Most bytes leaked",
		"Most temporary allocations",
	};
	static const char *const units[ANA_N_LISTS] = { "calls", "blocks", "blocks", "calls" };

	fputs("\"sites\": {", f);
	for (int l = 0; l < ANA_N_LISTS; l++) {
		fprintf(f, "%s\"%s\": {\"label\": \"%s\", \"unit_calls\": \"%s\", \"list\": [",
			l ? ",\n  " : "\n  ", keys[l], labels[l], units[l]);
		for (size_t i = 0; i < rep->n_sites[l]; i++) {
			if (i)
				fputs(",\n   ", f);
			ana_report_site_json(&rep->sites[l][i], f);
		}
		fputs("]}", f);
	}
	fputs("},\n", f);
}

static int write_flames(struct ana_db *db, const char *name, size_t max_nodes, FILE *f,
			char *errmsg, size_t cap)
{
	static const enum ana_metric order[] = { ANA_M_CALLS, ANA_M_PEAK, ANA_M_LEAKED,
						 ANA_M_TEMPORARY, ANA_M_ALLOCATED };
	struct ana_ftree *t = NULL;
	int rc = ana_ftree_new(&t);

	if (rc == 0)
		rc = ana_ftree_add_db(t, db, 0, name, errmsg, cap);
	if (rc < 0)
		goto out;
	fputs("\"flamegraphs\": {", f);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		rc = ana_ftree_finish(t, 0, order[i]);
		if (rc < 0)
			goto out;
		fprintf(f, "%s\"%s\": ", i ? ",\n  " : "\n  ", ana_metric_name(order[i]));
		rc = ana_ftree_write_flame_json(t, 0, order[i], max_nodes, f);
		if (rc < 0)
			goto out;
	}
	fputs("},\n", f);
out:
	if (rc == -ENOMEM && errmsg && cap)
		snprintf(errmsg, cap, "'%s': out of memory", name);
	ana_ftree_free(t);
	return rc;
}

int ana_html_write(struct ana_db *db, const char *name, unsigned top, size_t flame_nodes,
		   FILE *f, char *errmsg, size_t cap)
{
	const char *at = strstr(ana_html_template, PLACEHOLDER);
	struct ana_report *rep = NULL;
	int rc;

	if (!at) {
		snprintf(errmsg, cap, "the HTML template has no data placeholder");
		return -CM_E_CORRUPT;
	}
	rc = ana_report_load(db, name, top, &rep, errmsg, cap);
	if (rc < 0)
		return rc;
	fwrite(ana_html_template, 1, (size_t)(at - ana_html_template), f);
	fputs("window.MEMANA_DATA = {\n", f);
	write_summary(rep, name, f);
	rc = write_timeline(ana_db_sqlite(db), rep, f);
	if (rc < 0) {
		if (rc == -CM_E_SQLITE)
			snprintf(errmsg, cap, "'%s': cannot read the timeline: %s", name,
				 sqlite3_errmsg(ana_db_sqlite(db)));
		else
			snprintf(errmsg, cap, "'%s': out of memory", name);
		goto out;
	}
	fputs(",\n", f);
	rc = write_flames(db, name, flame_nodes, f, errmsg, cap);
	if (rc < 0)
		goto out;
	write_sites(rep, f);
	ana_report_hists_json(rep, f);
	fputs(",\n", f);
	ana_report_json_extras(rep, f);
	fputs("};", f);
	fputs(at + strlen(PLACEHOLDER), f);
	if (ferror(f)) {
		rc = -EIO;
		snprintf(errmsg, cap, "cannot write the page");
	}
out:
	ana_report_free(rep);
	return rc;
}
