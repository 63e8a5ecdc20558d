/* Reports from the database (see ana_report.h). */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "ana_report.h"
#include "cm_err.h"

#define MAX_STACK_FRAMES 4096 /* guards against parent cycles in a bad db */

static const char *const list_view[ANA_N_LISTS] = {
	"hotspots", "peak", "leaks", "temporary",
};

struct loader {
	sqlite3 *db;
	sqlite3_stmt *node, *frames, *site_hist;
};

static const char *const hist_db_kind[ANA_N_HIST] = {
	"size", "lifetime_ms", "lifetime_allocs",
};

static const char *const hist_json_name[ANA_N_HIST] = {
	"sizes", "lifetimes_ms", "lifetimes_allocs",
};

const char *ana_report_hist_name(unsigned k)
{
	return k < ANA_N_HIST ? hist_json_name[k] : "?";
}

static void free_hists(struct ana_report_hists *h)
{
	for (int k = 0; k < ANA_N_HIST; k++)
		free(h->b[k]);
	memset(h, 0, sizeof(*h));
}

/* Read the rows of st (kind, lo, hi, count[, bytes]) into h. */
static int read_hists(sqlite3_stmt *st, struct ana_report_hists *h, bool with_bytes)
{
	size_t cap[ANA_N_HIST] = { 0 };
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(st, 0);
		int k;
		for (k = 0; k < ANA_N_HIST; k++)
			if (kind && !strcmp(kind, hist_db_kind[k]))
				break;
		if (k == ANA_N_HIST)
			continue;
		if (h->n[k] == cap[k]) {
			size_t ncap = cap[k] ? cap[k] * 2 : 8;
			void *nb = realloc(h->b[k], ncap * sizeof(*h->b[k]));
			if (!nb)
				return -ENOMEM;
			h->b[k] = nb;
			cap[k] = ncap;
		}
		struct ana_report_bucket *b = &h->b[k][h->n[k]++];
		b->lo = (uint64_t)sqlite3_column_int64(st, 1);
		b->hi = (uint64_t)sqlite3_column_int64(st, 2);
		if (b->hi == (uint64_t)INT64_MAX)
			b->hi = UINT64_MAX; /* stored clamped (docs/schema.md) */
		b->count = (uint64_t)sqlite3_column_int64(st, 3);
		b->bytes = with_bytes ? (uint64_t)sqlite3_column_int64(st, 4) : 0;
	}
	return rc == SQLITE_DONE ? 0 : -CM_E_SQLITE;
}

static char *dup_col(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	const char *s = t ? (const char *)t : "";

	return ana_strndup(s, strlen(s));
}

static void free_frames(struct ana_report_frame *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].function);
		free(f[i].file);
		free(f[i].module);
	}
	free(f);
}

/* Is this frame inside the C++ allocation function (operator new)? */
static bool is_operator_new(const char *fn)
{
	return !strncmp(fn, "operator new", 12);
}

static int load_stack(struct loader *l, struct ana_report_site *site)
{
	struct ana_report_frame *f = NULL;
	size_t n = 0, cap = 0;
	uint64_t node = site->node_id;
	int rc = 0;

	for (int level = 0; node && level < MAX_STACK_FRAMES; level++) {
		sqlite3_int64 aid;

		sqlite3_bind_int64(l->node, 1, (sqlite3_int64)node);
		rc = sqlite3_step(l->node);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(l->node);
			rc = rc == SQLITE_DONE ? 0 : -CM_E_SQLITE;
			break;
		}
		node = (uint64_t)sqlite3_column_int64(l->node, 0);
		aid = sqlite3_column_int64(l->node, 1);
		sqlite3_reset(l->node);
		rc = 0;

		sqlite3_bind_int64(l->frames, 1, aid);
		while ((rc = sqlite3_step(l->frames)) == SQLITE_ROW) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				void *nf = realloc(f, ncap * sizeof(*f));
				if (!nf) {
					rc = -ENOMEM;
					break;
				}
				f = nf;
				cap = ncap;
			}
			f[n].function = dup_col(l->frames, 0);
			f[n].file = dup_col(l->frames, 1);
			f[n].line = (uint32_t)sqlite3_column_int64(l->frames, 2);
			f[n].module = dup_col(l->frames, 3);
			n++;
			if (!f[n - 1].function || !f[n - 1].file || !f[n - 1].module) {
				rc = -ENOMEM;
				break;
			}
		}
		sqlite3_reset(l->frames);
		if (rc == SQLITE_DONE)
			rc = 0;
		else if (rc > 0)
			rc = -CM_E_SQLITE;
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		free_frames(f, n);
		return rc;
	}
	/* The stack starts at the caller of the allocation function: drop the
	 * frames inside operator new / new[] (libstdc++). */
	size_t skip = 0;
	while (skip < n && is_operator_new(f[skip].function))
		skip++;
	if (skip == n)
		skip = 0;
	if (skip) {
		for (size_t i = 0; i < skip; i++) {
			free(f[i].function);
			free(f[i].file);
			free(f[i].module);
		}
		memmove(f, f + skip, (n - skip) * sizeof(*f));
		n -= skip;
	}
	site->frames = f;
	site->n_frames = n;
	sqlite3_bind_int64(l->site_hist, 1, (sqlite3_int64)site->node_id);
	rc = read_hists(l->site_hist, &site->hist, false);
	sqlite3_reset(l->site_hist);
	return rc;
}

static int load_list(struct loader *l, struct ana_report *rep, enum ana_list which,
		     unsigned top)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	int rc;

	size_t cap = 0;

	snprintf(sql, sizeof(sql), "SELECT node_id, calls, bytes FROM %s LIMIT %u",
		 list_view[which], top);
	if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && rep->n_sites[which] < top) {
		if (rep->n_sites[which] == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			void *ns = realloc(rep->sites[which], ncap * sizeof(*rep->sites[which]));
			if (!ns) {
				rc = -ENOMEM;
				break;
			}
			rep->sites[which] = ns;
			cap = ncap;
		}
		struct ana_report_site *s = &rep->sites[which][rep->n_sites[which]];
		memset(s, 0, sizeof(*s));
		s->node_id = (uint64_t)sqlite3_column_int64(st, 0);
		s->calls = (uint64_t)sqlite3_column_int64(st, 1);
		s->bytes = (uint64_t)sqlite3_column_int64(st, 2);
		rc = load_stack(l, s);
		if (rc < 0)
			break;
		rep->n_sites[which]++;
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -CM_E_SQLITE;
}

static int load_meta(sqlite3 *db, struct ana_report *rep)
{
	static const struct {
		const char *key;
		size_t off;
	} ints[] = {
#define M(k, f) { k, offsetof(struct ana_report, f) }
		M("duration_ns", duration_ns),
		M("start_unix_ns", start_unix_ns),
		M("truncated_at", truncated_at),
		M("temporary_gap", temporary_gap),
		M("allocations", allocations),
		M("failed_allocations", failed_allocations),
		M("bytes_allocated", bytes_allocated),
		M("frees", frees),
		M("temporary_allocations", temporary),
		M("temporary_bytes", temporary_bytes),
		M("peak_heap_bytes", peak_heap_bytes),
		M("peak_time_ns", peak_time_ns),
		M("peak_rss_bytes", peak_rss_bytes),
		M("leaked_allocations", leaked_allocations),
		M("leaked_bytes", leaked_bytes),
		M("unmatched_frees", unmatched_frees),
		M("inconsistent", inconsistent),
#undef M
	};
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT key, value FROM meta", -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		uint64_t v = (uint64_t)sqlite3_column_int64(st, 1);
		char **str = NULL;

		if (!key)
			continue;
		if (!strcmp(key, "pid"))
			rep->pid = (uint32_t)v;
		else if (!strcmp(key, "ppid"))
			rep->ppid = (uint32_t)v;
		else if (!strcmp(key, "complete"))
			rep->complete = v != 0;
		else if (!strcmp(key, "exe"))
			str = &rep->exe;
		else if (!strcmp(key, "command"))
			str = &rep->command;
		else if (!strcmp(key, "trace"))
			str = &rep->trace;
		for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
			if (!strcmp(key, ints[i].key))
				*(uint64_t *)((char *)rep + ints[i].off) = v;
		if (str) {
			free(*str);
			*str = dup_col(st, 1);
			if (!*str) {
				sqlite3_finalize(st);
				return -ENOMEM;
			}
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -CM_E_SQLITE;
	char **strs[] = { &rep->exe, &rep->command, &rep->trace };
	for (size_t i = 0; i < 3; i++)
		if (!*strs[i] && !(*strs[i] = ana_strndup("", 0)))
			return -ENOMEM;
	return 0;
}

int ana_report_load(struct ana_db *adb, const char *name, unsigned top,
		    struct ana_report **out, char *errmsg, size_t cap)
{
	struct loader l = { .db = ana_db_sqlite(adb) };
	struct ana_report *rep = calloc(1, sizeof(*rep));
	int rc = -ENOMEM;

	if (!rep)
		goto out;
	rc = load_meta(l.db, rep);
	if (rc < 0)
		goto out;
	if (sqlite3_prepare_v2(l.db, "SELECT parent, address_id FROM nodes WHERE id = ?",
			       -1, &l.node, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(l.db,
			       "SELECT function, file, line, module FROM address_frames"
			       " WHERE address_id = ? ORDER BY depth",
			       -1, &l.frames, NULL) != SQLITE_OK) {
		rc = -CM_E_SQLITE;
		goto out;
	}
	if (sqlite3_prepare_v2(l.db,
			       "SELECT kind, lo, hi, count FROM site_histogram"
			       " WHERE node_id = ? ORDER BY kind, bucket",
			       -1, &l.site_hist, NULL) != SQLITE_OK) {
		rc = -CM_E_SQLITE;
		goto out;
	}
	for (int i = 0; i < ANA_N_LISTS && top; i++) {
		rc = load_list(&l, rep, (enum ana_list)i, top);
		if (rc < 0)
			goto out;
	}
	sqlite3_stmt *hs = NULL;
	if (sqlite3_prepare_v2(l.db,
			       "SELECT kind, lo, hi, count, bytes FROM histogram"
			       " ORDER BY kind, bucket",
			       -1, &hs, NULL) != SQLITE_OK) {
		rc = -CM_E_SQLITE;
		goto out;
	}
	rc = read_hists(hs, &rep->hist, true);
	sqlite3_finalize(hs);
	if (rc < 0)
		goto out;
	rc = 0;
out:
	if (rc == -CM_E_SQLITE && errmsg && cap)
		snprintf(errmsg, cap, "'%s': cannot read database: %s", name,
			 sqlite3_errmsg(l.db));
	else if (rc == -ENOMEM && errmsg && cap)
		snprintf(errmsg, cap, "'%s': out of memory", name);
	sqlite3_finalize(l.node);
	sqlite3_finalize(l.frames);
	sqlite3_finalize(l.site_hist);
	if (rc < 0) {
		ana_report_free(rep);
		return rc;
	}
	*out = rep;
	return 0;
}

void ana_report_free(struct ana_report *rep)
{
	if (!rep)
		return;
	free(rep->exe);
	free(rep->command);
	free(rep->trace);
	for (int i = 0; i < ANA_N_LISTS; i++) {
		for (size_t j = 0; j < rep->n_sites[i]; j++) {
			free_frames(rep->sites[i][j].frames, rep->sites[i][j].n_frames);
			free_hists(&rep->sites[i][j].hist);
		}
		free(rep->sites[i]);
	}
	free_hists(&rep->hist);
	free(rep);
}

/* ---- text ---------------------------------------------------------------- */

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void print_stack(const struct ana_report_site *s, FILE *f)
{
	for (size_t i = 0; i < s->n_frames; i++) {
		const struct ana_report_frame *fr = &s->frames[i];

		fprintf(f, "    %s\n", fr->function);
		if (fr->file[0]) {
			if (fr->line)
				fprintf(f, "      at %s:%u\n", fr->file, fr->line);
			else
				fprintf(f, "      at %s\n", fr->file);
		}
		if (fr->module[0])
			fprintf(f, "      in %s\n", fr->module);
	}
	if (!s->n_frames)
		fprintf(f, "    <no stack>\n");
}

/* v bytes (0 or a power of two) as "512 B", "4 KiB", "2 GiB". */
static void pow2_size(char *buf, size_t cap, uint64_t v)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	int u = 0;

	while (v >= 1024 && (v & 1023) == 0 && u < 6) {
		v >>= 10;
		u++;
	}
	snprintf(buf, cap, "%" PRIu64 " %s", v, units[u]);
}

/* A bucket's range in the histogram's unit: "[32 B, 64 B)", "16-31 ms". */
static const char *bucket_range(char *buf, size_t cap, unsigned kind,
				const struct ana_report_bucket *b)
{
	char lo[32], hi[32];

	if (kind == ANA_HIST_SIZE) {
		/* Bounds are 0 or powers of two: exact in binary units. */
		pow2_size(lo, sizeof(lo), b->lo);
		if (b->lo == b->hi)
			snprintf(buf, cap, "%s", lo);
		else if (b->hi == UINT64_MAX)
			snprintf(buf, cap, ">= %s", lo);
		else {
			pow2_size(hi, sizeof(hi), b->hi + 1);
			snprintf(buf, cap, "[%s, %s)", lo, hi);
		}
		return buf;
	}
	const char *unit = kind == ANA_HIST_LIFETIME_MS ? " ms" : "";
	if (b->lo == b->hi)
		snprintf(buf, cap, "%" PRIu64 "%s", b->lo, unit);
	else if (b->hi == UINT64_MAX)
		snprintf(buf, cap, ">= %" PRIu64 "%s", b->lo, unit);
	else
		snprintf(buf, cap, "%" PRIu64 "-%" PRIu64 "%s", b->lo, b->hi, unit);
	return buf;
}

/* One line per site: its histograms in short. */
static void print_site_hists(const struct ana_report_site *s, FILE *f)
{
	static const char *const what[ANA_N_HIST] = { "sizes", "lifetimes",
						       "allocations between" };
	char r[96];

	for (unsigned k = 0; k < ANA_N_HIST; k++) {
		if (!s->hist.n[k])
			continue;
		fprintf(f, "    %s:", what[k]);
		for (size_t i = 0; i < s->hist.n[k]; i++)
			fprintf(f, "%s %s x%" PRIu64, i ? "," : "",
				bucket_range(r, sizeof(r), k, &s->hist.b[k][i]), s->hist.b[k][i].count);
		fputc('\n', f);
	}
}

static void print_hist(const struct ana_report *rep, unsigned kind, FILE *f)
{
	static const char *const titles[ANA_N_HIST] = {
		"ALLOCATION SIZES (calls per size, bytes requested)",
		"LIFETIMES (freed blocks per time from allocation to free, tick resolution)",
		"LIFETIMES IN ALLOCATIONS (freed blocks per number of other allocations by"
		" the same thread in between; 0 = temporary)",
	};
	const struct ana_report_bucket *h = rep->hist.b[kind];
	uint64_t max = 0;
	char r[96], b1[32];

	fprintf(f, "\n%s\n", titles[kind]);
	if (!rep->hist.n[kind])
		fprintf(f, "  (none)\n");
	for (size_t i = 0; i < rep->hist.n[kind]; i++)
		if (h[i].count > max)
			max = h[i].count;
	for (size_t i = 0; i < rep->hist.n[kind]; i++) {
		int bar = (int)((h[i].count * 30 + max - 1) / (max ? max : 1));
		fprintf(f, "  %-22s %12" PRIu64 " %12s  %.*s\n",
			bucket_range(r, sizeof(r), kind, &h[i]), h[i].count,
			ana_human_size(b1, sizeof(b1), h[i].bytes), bar,
			"##############################");
	}
	if (kind != ANA_HIST_SIZE && rep->leaked_allocations)
		fprintf(f, "  %-22s %12" PRIu64 " %12s\n", "never freed", rep->leaked_allocations,
			ana_human_size(b1, sizeof(b1), rep->leaked_bytes));
}

void ana_report_print_text(const struct ana_report *rep, FILE *f)
{
	static const char *const titles[ANA_N_LISTS] = {
		"MOST CALLS TO ALLOCATION FUNCTIONS",
		"PEAK MEMORY CONSUMERS",
		"MOST MEMORY LEAKED",
		"MOST TEMPORARY ALLOCATIONS",
	};
	char b1[32];
	double pct = rep->allocations ? 100.0 * (double)rep->temporary /
						(double)rep->allocations
				      : 0.0;

	fprintf(f, "command:               %s\n", rep->command[0] ? rep->command : rep->exe);
	fprintf(f, "pid:                   %u\n", rep->pid);
	fprintf(f, "duration:              %.3f ms\n", ms(rep->duration_ns));
	fprintf(f, "complete:              %s\n", rep->complete ? "yes" : "no (truncated)");
	fprintf(f, "allocation calls:      %" PRIu64 "\n", rep->allocations);
	fprintf(f, "bytes allocated:       %s\n",
		ana_human_size(b1, sizeof(b1), rep->bytes_allocated));
	fprintf(f, "frees:                 %" PRIu64 "\n", rep->frees);
	fprintf(f, "temporary allocations: %" PRIu64 " (%.2f%% of calls)\n", rep->temporary,
		pct);
	fprintf(f, "peak heap:             %s at %.3f ms\n",
		ana_human_size(b1, sizeof(b1), rep->peak_heap_bytes), ms(rep->peak_time_ns));
	fprintf(f, "peak RSS:              %s\n",
		ana_human_size(b1, sizeof(b1), rep->peak_rss_bytes));
	fprintf(f, "leaked:                %s in %" PRIu64 " allocations%s\n",
		ana_human_size(b1, sizeof(b1), rep->leaked_bytes), rep->leaked_allocations,
		rep->complete ? "" : " (still live when the trace ends)");
	if (rep->unmatched_frees)
		fprintf(f, "unmatched frees:       %" PRIu64
			   " (memory allocated before recording started)\n",
			rep->unmatched_frees);

	for (int l = 0; l < ANA_N_LISTS; l++) {
		fprintf(f, "\n%s\n", titles[l]);
		if (!rep->n_sites[l])
			fprintf(f, "  (none)\n");
		for (size_t i = 0; i < rep->n_sites[l]; i++) {
			const struct ana_report_site *s = &rep->sites[l][i];

			ana_human_size(b1, sizeof(b1), s->bytes);
			switch (l) {
			case ANA_LIST_ALLOCATIONS:
				fprintf(f, "%" PRIu64 " calls to allocation functions with %s"
					   " requested from:\n", s->calls, b1);
				break;
			case ANA_LIST_PEAK:
				fprintf(f, "%s live at the peak in %" PRIu64 " blocks from:\n",
					b1, s->calls);
				break;
			case ANA_LIST_LEAKED:
				fprintf(f, "%s leaked in %" PRIu64 " allocations from:\n", b1,
					s->calls);
				break;
			default:
				fprintf(f, "%" PRIu64 " temporary allocations of %s from:\n",
					s->calls, b1);
			}
			print_stack(s, f);
			print_site_hists(s, f);
		}
	}
	for (unsigned k = 0; k < ANA_N_HIST; k++)
		print_hist(rep, k, f);
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_cstr(FILE *f, const char *s)
{
	ana_json_str(f, s, s ? strlen(s) : 0);
}

void ana_report_hist_json(const struct ana_report_bucket *h, size_t n, bool with_bytes,
			  FILE *f)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s{\"lo\": %" PRIu64 ", \"hi\": %" PRIu64 ", \"count\": %" PRIu64,
			i ? ", " : "", h[i].lo, h[i].hi, h[i].count);
		if (with_bytes)
			fprintf(f, ", \"bytes\": %" PRIu64, h[i].bytes);
		fputc('}', f);
	}
	fputc(']', f);
}

void ana_report_site_json(const struct ana_report_site *s, FILE *f)
{
	fprintf(f, "{\"calls\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"stack\": [", s->calls,
		s->bytes);
	for (size_t i = 0; i < s->n_frames; i++) {
		const struct ana_report_frame *fr = &s->frames[i];

		fputs(i ? ", {\"function\": " : "{\"function\": ", f);
		json_cstr(f, fr->function);
		fputs(", \"file\": ", f);
		json_cstr(f, fr->file);
		fprintf(f, ", \"line\": %u, \"module\": ", fr->line);
		json_cstr(f, fr->module);
		fputc('}', f);
	}
	fputc(']', f);
	for (unsigned k = 0; k < ANA_N_HIST; k++) {
		fprintf(f, ", \"%s\": ", hist_json_name[k]);
		ana_report_hist_json(s->hist.b[k], s->hist.n[k], false, f);
	}
	fputc('}', f);
}

void ana_report_print_json(const struct ana_report *rep, FILE *f)
{
	static const char *const names[ANA_N_LISTS] = {
		"allocations", "peak", "leaked", "temporary",
	};

	fprintf(f, "{\"trace\": {\"complete\": %s, \"pid\": %u, \"command\": ",
		rep->complete ? "true" : "false", rep->pid);
	json_cstr(f, rep->command[0] ? rep->command : rep->exe);
	fprintf(f, ", \"duration_ms\": %.3f},\n", ms(rep->duration_ns));
	fprintf(f,
		" \"totals\": {\"allocations\": %" PRIu64 ", \"bytes_allocated\": %" PRIu64
		", \"frees\": %" PRIu64 ", \"temporary_allocations\": %" PRIu64
		", \"peak_heap_bytes\": %" PRIu64 ", \"peak_time_ms\": %.3f"
		", \"peak_rss_bytes\": %" PRIu64 ", \"leaked_allocations\": %" PRIu64
		", \"leaked_bytes\": %" PRIu64 "},\n",
		rep->allocations, rep->bytes_allocated, rep->frees, rep->temporary,
		rep->peak_heap_bytes, ms(rep->peak_time_ns), rep->peak_rss_bytes,
		rep->leaked_allocations, rep->leaked_bytes);
	fputs(" \"hotspots\": {", f);
	for (int l = 0; l < ANA_N_LISTS; l++) {
		fprintf(f, "%s\"%s\": [", l ? ",\n  " : "\n  ", names[l]);
		for (size_t i = 0; i < rep->n_sites[l]; i++) {
			fputs(i ? ",\n    " : "\n    ", f);
			ana_report_site_json(&rep->sites[l][i], f);
		}
		fputc(']', f);
	}
	fputs("},\n \"histograms\": {", f);
	for (unsigned k = 0; k < ANA_N_HIST; k++) {
		fprintf(f, "\"%s\": ", hist_json_name[k]);
		ana_report_hist_json(rep->hist.b[k], rep->hist.n[k], true, f);
		fputs(", ", f);
	}
	fprintf(f, "\"never_freed\": {\"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}}}\n",
		rep->leaked_allocations, rep->leaked_bytes);
}
