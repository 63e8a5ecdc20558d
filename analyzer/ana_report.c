/* Reports from the database (see ana_report.h). */
#include <errno.h>
#include <stdarg.h>
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
	char err[256]; /* SQLite's message, kept before a reset clears it */
};

static const char *const hist_json_name[ANA_N_HIST] = {
	"sizes", "lifetimes_ms", "lifetimes_allocs",
};


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
			if (kind && !strcmp(kind, ana_hist_kind_name(k)))
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

/* Load site's backtrace (site->node_id's frames, innermost first, from the
 * caller of operator new on) into site->frames. */
static int load_frames(struct loader *l, struct ana_report_site *site)
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
	return 0;
}

/* Load site's backtrace and its histograms. */
static int load_stack(struct loader *l, struct ana_report_site *site)
{
	int rc = load_frames(l, site);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(l->site_hist, 1, (sqlite3_int64)site->node_id);
	rc = read_hists(l->site_hist, &site->hist, false);
	if (rc == -CM_E_SQLITE)
		snprintf(l->err, sizeof(l->err), "%s", sqlite3_errmsg(l->db));
	sqlite3_reset(l->site_hist);
	if (rc < 0) {
		free_frames(site->frames, site->n_frames);
		free_hists(&site->hist);
		site->frames = NULL;
		site->n_frames = 0;
	}
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
		M("unmatched_phase_ends", unmatched_phase_ends),
		M("phases", total_phases),
		M("markers", total_markers),
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


/* ---- phases, markers, growth, insights ------------------------------------- */

#define MAX_PHASES_LOADED 100000 /* phases a report reads (the first ones) */
#define N_GROWTH_SITES 5
#define N_INSIGHT_GROUPS 5       /* leak groups shown */
#define LEAK_SITES_GROUPED 10000 /* leaking sites grouped for them */

/* Insight thresholds (docs/usage.md "Insights"). */
#define INS_TEMP_MIN_CALLS 1000      /* temporary allocations at one site */
#define INS_ONE_SIZE_SHARE 0.9       /* of its calls in one size bucket */
#define INS_SMALL_MAX 65536          /* "small": the bucket ends below 64 KiB */
#define INS_REALLOC_MIN_GROW 100     /* growing reallocs at one site */
#define INS_POOL_MIN_BLOCKS 1000     /* blocks of one size live at the peak */
#define INS_POOL_MAX_SIZE 4096       /* of at most this many bytes on average */
#define INS_EARLY_MIN_BYTES 65536    /* early-allocated bytes never freed */
#define STR_(x) #x
#define STR(x) STR_(x)

/* A column's text, with control characters (from a traced program's phase
 * or marker name) shown as '?'. Caller frees; NULL on ENOMEM. */
static char *col_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	char *s = ana_strndup(t ? (const char *)t : "", t ? strlen((const char *)t) : 0);

	for (char *c = s; c && *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return s;
}

/* A site with its stack (node_id, calls, bytes set by the caller). */
static int site_with_stack(struct loader *l, struct ana_report_site *s, uint64_t node,
			   uint64_t calls, uint64_t bytes)
{
	memset(s, 0, sizeof(*s));
	s->node_id = node;
	s->calls = calls;
	s->bytes = bytes;
	return load_stack(l, s);
}

static void free_site(struct ana_report_site *s)
{
	free_frames(s->frames, s->n_frames);
	free_hists(&s->hist);
}

static int load_phases(struct loader *l, struct ana_report *rep)
{
	sqlite3_stmt *st = NULL, *ps = NULL;
	size_t cap = 0;
	int rc;

	if (sqlite3_prepare_v2(l->db,
			       "SELECT id, coalesce(parent, 0), depth, stream, name, ended, begin_ns,"
			       " end_ns, alloc_calls, alloc_bytes, left_blocks, left_bytes,"
			       " heap_begin, heap_end, peak_heap_bytes, peak_ns, rss_begin, rss_end,"
			       " rss_peak FROM phases ORDER BY id LIMIT " STR(MAX_PHASES_LOADED),
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(l->db,
			       "SELECT node_id, bytes FROM phase_sites WHERE phase_id = ?"
			       " ORDER BY rank",
			       -1, &ps, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -CM_E_SQLITE;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (rep->n_phases == cap) {
			size_t nc = cap ? cap * 2 : 16;
			void *np = realloc(rep->phases, nc * sizeof(*rep->phases));
			if (!np) {
				rc = -ENOMEM;
				break;
			}
			rep->phases = np;
			cap = nc;
		}
		struct ana_report_phase *ph = &rep->phases[rep->n_phases];
		uint64_t v[13];
		memset(ph, 0, sizeof(*ph));
		ph->id = (uint32_t)sqlite3_column_int64(st, 0);
		ph->parent = (uint32_t)sqlite3_column_int64(st, 1);
		/* A database is input: the depth indents text, keep it sane. */
		sqlite3_int64 depth = sqlite3_column_int64(st, 2);
		ph->depth = depth < 0 ? 0 : depth > 64 ? 64 : (uint32_t)depth;
		ph->stream = (uint32_t)sqlite3_column_int64(st, 3);
		ph->name = col_dup(st, 4);
		ph->ended = sqlite3_column_int(st, 5) != 0;
		for (int i = 0; i < 13; i++)
			v[i] = (uint64_t)sqlite3_column_int64(st, 6 + i);
		ph->begin_ns = v[0];
		ph->end_ns = v[1];
		ph->alloc_calls = v[2];
		ph->alloc_bytes = v[3];
		ph->left_blocks = v[4];
		ph->left_bytes = v[5];
		ph->heap_begin = v[6];
		ph->heap_end = v[7];
		ph->peak_heap_bytes = v[8];
		ph->peak_ns = v[9];
		ph->rss_begin = v[10];
		ph->rss_end = v[11];
		ph->rss_peak = v[12];
		rep->n_phases++;
		if (!ph->name) {
			rc = -ENOMEM;
			break;
		}
		sqlite3_bind_int64(ps, 1, ph->id);
		while (ph->n_sites < ANA_PHASE_SITES && (rc = sqlite3_step(ps)) == SQLITE_ROW) {
			if (!ph->sites) {
				ph->sites = calloc(ANA_PHASE_SITES, sizeof(*ph->sites));
				if (!ph->sites) {
					rc = -ENOMEM;
					break;
				}
			}
			rc = site_with_stack(l, &ph->sites[ph->n_sites],
					     (uint64_t)sqlite3_column_int64(ps, 0), 0,
					     (uint64_t)sqlite3_column_int64(ps, 1));
			if (rc < 0)
				break;
			ph->n_sites++;
		}
		sqlite3_reset(ps);
		if (rc < 0)
			break;
		if (rc != SQLITE_ROW && rc != SQLITE_DONE && ph->n_sites < ANA_PHASE_SITES) {
			rc = -CM_E_SQLITE;
			break;
		}
		rc = SQLITE_ROW;
	}
	sqlite3_finalize(st);
	sqlite3_finalize(ps);
	if (rc < 0)
		return rc;
	return rc == SQLITE_DONE ? 0 : -CM_E_SQLITE;
}

static int load_markers(struct loader *l, struct ana_report *rep)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc;

	if (sqlite3_prepare_v2(l->db,
			       "SELECT id, stream, name, seq, time_ns, heap_bytes, rss_bytes"
			       " FROM markers ORDER BY seq LIMIT " STR(MAX_PHASES_LOADED),
			       -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (rep->n_markers == cap) {
			size_t nc = cap ? cap * 2 : 16;
			void *nm = realloc(rep->markers, nc * sizeof(*rep->markers));
			if (!nm) {
				rc = -ENOMEM;
				break;
			}
			rep->markers = nm;
			cap = nc;
		}
		struct ana_report_marker *m = &rep->markers[rep->n_markers];
		m->id = (uint32_t)sqlite3_column_int64(st, 0);
		m->stream = (uint32_t)sqlite3_column_int64(st, 1);
		m->name = col_dup(st, 2);
		m->seq = (uint64_t)sqlite3_column_int64(st, 3);
		m->time_ns = (uint64_t)sqlite3_column_int64(st, 4);
		m->heap_bytes = (uint64_t)sqlite3_column_int64(st, 5);
		m->rss_bytes = (uint64_t)sqlite3_column_int64(st, 6);
		rep->n_markers++;
		if (!m->name) {
			rc = -ENOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	return rc == SQLITE_DONE ? 0 : -CM_E_SQLITE;
}

/* Sites from a query of (node_id, calls, bytes) rows, at most n. */
static int load_sites_sql(struct loader *l, const char *sql, size_t n,
			  struct ana_report_site **out, size_t *n_out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	while (*n_out < n && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = site_with_stack(l, &(*out)[*n_out], (uint64_t)sqlite3_column_int64(st, 0),
				     (uint64_t)sqlite3_column_int64(st, 1),
				     (uint64_t)sqlite3_column_int64(st, 2));
		if (rc < 0)
			break;
		(*n_out)++;
		rc = SQLITE_ROW;
	}
	if (*n_out == n)
		rc = SQLITE_DONE;
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	return rc == SQLITE_DONE ? 0 : -CM_E_SQLITE;
}

/* Append one insight (text formatted here). Returns 0 or -ENOMEM. */
/* Append one insight about site (loaded, taken over here: freed on
 * failure) with calls and bytes at stake, its text formatted here. Returns
 * 0 or -ENOMEM. */
static int add_insight(struct ana_report *rep, size_t *cap, const char *kind,
		       struct ana_report_site *site, uint64_t calls, uint64_t bytes,
		       const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static int add_insight(struct ana_report *rep, size_t *cap, const char *kind,
		       struct ana_report_site *site, uint64_t calls, uint64_t bytes,
		       const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (rep->n_insights == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		void *ni = realloc(rep->insights, nc * sizeof(*rep->insights));
		if (!ni) {
			free_site(site);
			return -ENOMEM;
		}
		rep->insights = ni;
		*cap = nc;
	}
	struct ana_insight *in = &rep->insights[rep->n_insights];
	memset(in, 0, sizeof(*in));
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	in->kind = kind;
	in->text = ana_strndup(buf, strlen(buf));
	in->calls = calls;
	in->bytes = bytes;
	if (!in->text) {
		free_site(site);
		return -ENOMEM;
	}
	in->site = *site;
	in->site.calls = calls;
	in->site.bytes = bytes;
	rep->n_insights++;
	return 0;
}

/* "f at file:line" of a loaded site (its innermost frame). */
static const char *where(char *buf, size_t cap, const struct ana_report_site *s)
{
	if (!s->n_frames)
		snprintf(buf, cap, "[no backtrace]");
	else if (s->frames[0].file[0])
		snprintf(buf, cap, "%s at %s:%u", s->frames[0].function, s->frames[0].file,
			 s->frames[0].line);
	else
		snprintf(buf, cap, "%s", s->frames[0].function);
	return buf;
}

/* Load the site at node with its stack into *site (caller frees with
 * free_site(), or hands it to add_insight()) and write "f at file:line"
 * into w (cap bytes). Returns 0 or a negative code from reading it. */
static int site_load(struct loader *l, uint64_t node, struct ana_report_site *site, char *w,
		     size_t cap)
{
	int rc = site_with_stack(l, site, node, 0, 0);

	if (rc == 0)
		where(w, cap, site);
	return rc;
}

/* The site's largest size bucket: its share of calls, and its bounds. */
static double one_size(sqlite3_stmt *hs, uint64_t node, uint64_t calls, uint64_t *lo, uint64_t *hi)
{
	uint64_t best = 0;

	*lo = *hi = 0;
	sqlite3_bind_int64(hs, 1, (sqlite3_int64)node);
	while (sqlite3_step(hs) == SQLITE_ROW) {
		uint64_t c = (uint64_t)sqlite3_column_int64(hs, 2);
		if (c > best) {
			best = c;
			*lo = (uint64_t)sqlite3_column_int64(hs, 0);
			*hi = (uint64_t)sqlite3_column_int64(hs, 1);
		}
	}
	sqlite3_reset(hs);
	return calls ? (double)best / (double)calls : 0;
}

/* Kinds in the order they are found: the tie-break of the insights. */
static int kind_rank(const char *k)
{
	static const char *const kinds[] = { "temporary", "realloc", "pool", "early", "leak" };

	for (int i = 0; i < (int)(sizeof(kinds) / sizeof(kinds[0])); i++)
		if (!strcmp(k, kinds[i]))
			return i;
	return 99;
}

static int insight_cmp(const void *a, const void *b)
{
	const struct ana_insight *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	if (x->calls != y->calls)
		return x->calls > y->calls ? -1 : 1;
	if (kind_rank(x->kind) != kind_rank(y->kind))
		return kind_rank(x->kind) - kind_rank(y->kind);
	return x->site.node_id < y->site.node_id ? -1 : x->site.node_id > y->site.node_id;
}

/* A leaking site and the function that allocated its blocks. */
struct leak_site {
	char *function;
	uint64_t node, blocks, bytes;
};

static int leak_fn_cmp(const void *a, const void *b)
{
	const struct leak_site *x = a, *y = b;
	int c = strcmp(x->function, y->function);

	return c ? c : (x->node < y->node ? -1 : x->node > y->node);
}

/* The leak insights: the largest LEAK_SITES_GROUPED leaking sites grouped
 * by the innermost function of their stacks, the N_INSIGHT_GROUPS largest
 * groups. *cap is the insights array's capacity. Returns 0 or < 0. */
static int leak_groups(struct loader *l, struct ana_report *rep, size_t *cap)
{
	struct leak_site *ls = NULL;
	size_t n = 0, ls_cap = 0;
	sqlite3_stmt *st = NULL;
	char w[512], sz[64];
	int rc = 0;

	if (sqlite3_prepare_v2(l->db,
			       "SELECT node_id, leaked_blocks, leaked_bytes FROM sites"
			       " WHERE leaked_blocks > 0 ORDER BY leaked_bytes DESC, node_id"
			       " LIMIT " STR(LEAK_SITES_GROUPED),
			       -1, &st, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		struct ana_report_site tmp;
		if (n == ls_cap) {
			size_t nc = ls_cap ? ls_cap * 2 : 64;
			void *nl = realloc(ls, nc * sizeof(*ls));
			if (!nl) {
				rc = -ENOMEM;
				break;
			}
			ls = nl;
			ls_cap = nc;
		}
		struct leak_site *e = &ls[n];
		e->node = (uint64_t)sqlite3_column_int64(st, 0);
		e->blocks = (uint64_t)sqlite3_column_int64(st, 1);
		e->bytes = (uint64_t)sqlite3_column_int64(st, 2);
		/* Only the innermost function is wanted: no histograms. */
		memset(&tmp, 0, sizeof(tmp));
		tmp.node_id = e->node;
		if ((rc = load_frames(l, &tmp)) < 0)
			break;
		const char *fn = tmp.n_frames ? tmp.frames[0].function : "[no backtrace]";
		e->function = ana_strndup(fn, strlen(fn));
		free_site(&tmp);
		if (!e->function) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc == 0 && n)
		qsort(ls, n, sizeof(*ls), leak_fn_cmp);
	/* Runs of one function: sum them, keep the N largest (by bytes, then
	 * name; the run's smallest node id stands for it, as its first). */
	struct leak_site best[N_INSIGHT_GROUPS];
	uint64_t best_paths[N_INSIGHT_GROUPS];
	size_t n_best = 0;
	for (size_t a = 0; rc == 0 && a < n;) {
		struct leak_site g = ls[a];
		size_t b = a + 1;
		for (; b < n && !strcmp(ls[b].function, g.function); b++) {
			g.blocks += ls[b].blocks;
			g.bytes += ls[b].bytes;
		}
		uint64_t paths = b - a;
		size_t k = n_best;
		if (k == N_INSIGHT_GROUPS && g.bytes <= best[k - 1].bytes) {
			a = b;
			continue;
		}
		if (k == N_INSIGHT_GROUPS)
			k--;
		else
			n_best++;
		while (k > 0 && best[k - 1].bytes < g.bytes) {
			best[k] = best[k - 1];
			best_paths[k] = best_paths[k - 1];
			k--;
		}
		best[k] = g;
		best_paths[k] = paths;
		a = b;
	}
	for (size_t k = 0; rc == 0 && k < n_best; k++) {
		const struct leak_site *g = &best[k];
		struct ana_report_site site;
		if ((rc = site_load(l, g->node, &site, w, sizeof(w))) < 0)
			break;
		rc = add_insight(rep, cap, "leak", &site, g->blocks, g->bytes,
				 "%s leaks %s in %" PRIu64 " block%s, from %" PRIu64
				 " call path%s: free %s (memana report lists each path"
				 " under MOST MEMORY LEAKED)",
				 w, ana_human_size(sz, sizeof(sz), g->bytes), g->blocks,
				 g->blocks == 1 ? "" : "s", best_paths[k], best_paths[k] == 1 ? "" : "s",
				 g->blocks == 1 ? "it" : "them");
	}
	for (size_t i = 0; i < n; i++)
		free(ls[i].function);
	free(ls);
	return rc;
}

static int load_insights(struct loader *l, struct ana_report *rep)
{
	sqlite3_stmt *st = NULL, *hs = NULL;
	size_t cap = 0;
	char w[512], sz[64], sz2[64];
	uint64_t lo, hi;
	int rc = 0;

	if (sqlite3_prepare_v2(l->db,
			       "SELECT lo, hi, count FROM site_histogram WHERE node_id = ?"
			       " AND kind = 'size'",
			       -1, &hs, NULL) != SQLITE_OK)
		return -CM_E_SQLITE;
	/* 1. Many temporary allocations of one small size: reuse a buffer. */
	if (sqlite3_prepare_v2(l->db,
			       "SELECT node_id, alloc_calls, temp_calls, temp_bytes FROM sites"
			       " WHERE temp_calls >= " STR(INS_TEMP_MIN_CALLS)
			       " AND 2 * temp_calls >= alloc_calls"
			       " ORDER BY temp_calls DESC, node_id LIMIT 20",
			       -1, &st, NULL) != SQLITE_OK)
		goto sql;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t node = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t calls = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t temp = (uint64_t)sqlite3_column_int64(st, 2);
		uint64_t tb = (uint64_t)sqlite3_column_int64(st, 3);
		double share = one_size(hs, node, calls, &lo, &hi);
		if (share < INS_ONE_SIZE_SHARE || hi >= INS_SMALL_MAX)
			continue;
		struct ana_report_site site;
		if ((rc = site_load(l, node, &site, w, sizeof(w))) < 0)
			break;
		rc = add_insight(rep, &cap, "temporary", &site, temp, tb,
				 "%s makes %" PRIu64 " temporary allocations (%.0f%% of its %" PRIu64
				 " calls), %.0f%% of its calls of %" PRIu64 "-%" PRIu64
				 " bytes (%" PRIu64 " on average): reuse one buffer instead of"
				 " allocating and freeing it each time",
				 w, temp, 100.0 * (double)temp / (double)calls, calls, 100.0 * share, lo,
				 hi, temp ? tb / temp : 0);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc < 0)
		goto out;
	/* 2. Realloc growth chains: reserve up front. */
	if (sqlite3_prepare_v2(l->db,
			       "SELECT node_id, realloc_calls, realloc_grow_calls, alloc_bytes FROM sites"
			       " WHERE realloc_grow_calls >= " STR(INS_REALLOC_MIN_GROW)
			       " ORDER BY realloc_grow_calls DESC, node_id LIMIT 20",
			       -1, &st, NULL) != SQLITE_OK)
		goto sql;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t node = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t rcalls = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t grow = (uint64_t)sqlite3_column_int64(st, 2);
		uint64_t bytes = (uint64_t)sqlite3_column_int64(st, 3);
		struct ana_report_site site;
		if ((rc = site_load(l, node, &site, w, sizeof(w))) < 0)
			break;
		uint64_t top_hi = 0;
		for (size_t i = 0; i < site.hist.n[ANA_HIST_SIZE]; i++)
			top_hi = site.hist.b[ANA_HIST_SIZE][i].hi;
		rc = add_insight(rep, &cap, "realloc", &site, grow, bytes,
				 "%s grows blocks with realloc %" PRIu64 " times (of %" PRIu64
				 " realloc calls; %s requested in all, the largest blocks under %s):"
				 " reserve the final size up front, or grow geometrically",
				 w, grow, rcalls, ana_human_size(sz, sizeof(sz), bytes),
				 ana_human_size(sz2, sizeof(sz2), top_hi == UINT64_MAX ? top_hi : top_hi + 1));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc < 0)
		goto out;
	/* 3. Many blocks of one size live at the peak: a pool or arena. */
	if (sqlite3_prepare_v2(l->db,
			       "SELECT node_id, alloc_calls, peak_blocks, peak_bytes FROM sites"
			       " WHERE peak_blocks >= " STR(INS_POOL_MIN_BLOCKS)
			       " ORDER BY peak_bytes DESC, node_id LIMIT 20",
			       -1, &st, NULL) != SQLITE_OK)
		goto sql;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t node = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t calls = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t blocks = (uint64_t)sqlite3_column_int64(st, 2);
		uint64_t bytes = (uint64_t)sqlite3_column_int64(st, 3);
		double share = one_size(hs, node, calls, &lo, &hi);
		if (share < INS_ONE_SIZE_SHARE || bytes / blocks > INS_POOL_MAX_SIZE)
			continue;
		struct ana_report_site site;
		if ((rc = site_load(l, node, &site, w, sizeof(w))) < 0)
			break;
		/* glibc's malloc spends 8 bytes of header per chunk and rounds
		 * up to 16 (malloc(3) notes; the chunk layout of malloc.c). */
		rc = add_insight(rep, &cap, "pool", &site, blocks, bytes,
				 "%" PRIu64 " blocks from %s are live at the peak (%s), %.0f%% of its"
				 " calls of %" PRIu64 "-%" PRIu64 " bytes (%" PRIu64
				 " on average): a pool or arena of such blocks saves the"
				 " allocator's per-block overhead (about %s at 16 bytes each)",
				 blocks, w, ana_human_size(sz, sizeof(sz), bytes), 100.0 * share, lo, hi,
				 blocks ? bytes / blocks : 0,
				 ana_human_size(sz2, sizeof(sz2), blocks * 16));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc < 0)
		goto out;
	/* 4. Allocated early and never freed: release it. */
	if (rep->complete) {
		if (sqlite3_prepare_v2(l->db,
				       "SELECT node_id, early_leaked_blocks, early_leaked_bytes FROM sites"
				       " WHERE early_leaked_bytes >= " STR(INS_EARLY_MIN_BYTES)
				       " ORDER BY early_leaked_bytes DESC, node_id LIMIT 20",
				       -1, &st, NULL) != SQLITE_OK)
			goto sql;
		while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
			uint64_t node = (uint64_t)sqlite3_column_int64(st, 0);
			uint64_t blocks = (uint64_t)sqlite3_column_int64(st, 1);
			uint64_t bytes = (uint64_t)sqlite3_column_int64(st, 2);
			struct ana_report_site site;
			if ((rc = site_load(l, node, &site, w, sizeof(w))) < 0)
				break;
			rc = add_insight(rep, &cap, "early", &site, blocks, bytes,
					 "%s allocates %s in %" PRIu64 " block%s in the first 10%% of"
					 " the run (by %.0f ms) that %s never freed: if it is not"
					 " needed until exit, free it when its work is done",
					 w, ana_human_size(sz, sizeof(sz), bytes), blocks,
					 blocks == 1 ? "" : "s", (double)rep->duration_ns / 1e7,
					 blocks == 1 ? "is" : "are");
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc < 0)
			goto out;
	}
	/* 5. Leaks grouped by the function that allocated them (the largest
	 * leaking sites only, grouped here: the call_sites view walks every
	 * site's stack, too slow on a database of millions). */
	if (rep->complete && rep->leaked_bytes)
		rc = leak_groups(l, rep, &cap);
	goto out;
sql:
	rc = -CM_E_SQLITE;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(hs);
	if (rc == 0 && rep->n_insights > 1)
		qsort(rep->insights, rep->n_insights, sizeof(*rep->insights), insight_cmp);
	return rc;
}

static int load_extras(struct loader *l, struct ana_report *rep)
{
	CM_TRY(load_phases(l, rep));
	CM_TRY(load_markers(l, rep));
	/* The sites growing with the heap: at least 1% of its rate. */
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT node_id, alloc_calls, CAST(growth_rate AS INTEGER) FROM sites"
		 " WHERE growth_rate >= %.0f ORDER BY growth_rate DESC, node_id",
		 rep->growth.heap_rate / 100 > 1 ? rep->growth.heap_rate / 100 : 1);
	if (rep->growth.growing)
		CM_TRY(load_sites_sql(l, sql, N_GROWTH_SITES, &rep->growth_sites,
				      &rep->n_growth_sites));
	/* The sites behind the spike: at least 1% of it above their mean. */
	snprintf(sql, sizeof(sql),
		 "SELECT node_id, peak_blocks, CAST(peak_bytes - mean_live_bytes AS INTEGER)"
		 " FROM sites WHERE peak_bytes - mean_live_bytes >= %.0f"
		 " ORDER BY peak_bytes - mean_live_bytes DESC, node_id",
		 rep->growth.spike_bytes / 100 > 1 ? (double)rep->growth.spike_bytes / 100 : 1.0);
	if (rep->growth.spiking)
		CM_TRY(load_sites_sql(l, sql, N_GROWTH_SITES, &rep->spike_sites,
				      &rep->n_spike_sites));
	return load_insights(l, rep);
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
	rc = ana_growth_load(l.db, &rep->growth);
	if (rc == 0 && top)
		rc = load_extras(&l, rep);
	if (rc < 0)
		goto out;
	rc = 0;
out:
	if (rc == -CM_E_SQLITE && errmsg && cap)
		snprintf(errmsg, cap, "'%s': cannot read database: %s", name,
			 l.err[0] ? l.err : sqlite3_errmsg(l.db));
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
	for (size_t i = 0; i < rep->n_phases; i++) {
		free(rep->phases[i].name);
		for (size_t j = 0; j < rep->phases[i].n_sites; j++)
			free_site(&rep->phases[i].sites[j]);
		free(rep->phases[i].sites);
	}
	free(rep->phases);
	for (size_t i = 0; i < rep->n_markers; i++)
		free(rep->markers[i].name);
	free(rep->markers);
	for (size_t i = 0; i < rep->n_growth_sites; i++)
		free_site(&rep->growth_sites[i]);
	free(rep->growth_sites);
	for (size_t i = 0; i < rep->n_spike_sites; i++)
		free_site(&rep->spike_sites[i]);
	free(rep->spike_sites);
	for (size_t i = 0; i < rep->n_insights; i++) {
		free(rep->insights[i].text);
		free_site(&rep->insights[i].site);
	}
	free(rep->insights);
	free(rep);
}

/* ---- text ---------------------------------------------------------------- */

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

/* n with thousands separators ("412,331"). */
static const char *commas(char *buf, size_t cap, uint64_t n)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof(tmp), "%" PRIu64, n), o = 0;

	for (int i = 0; i < len && o + 2 < (int)cap; i++) {
		if (i && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = 0;
	return buf;
}

static double mib(uint64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

/* "+1.50 MiB" for a signed byte rate or change. */
static const char *signed_size(char *buf, size_t cap, double v)
{
	char h[32];

	double a = v < 0 ? -v : v;

	ana_human_size(h, sizeof(h), a < 1.8e19 ? (uint64_t)a : UINT64_MAX);
	snprintf(buf, cap, "%c%s", v < 0 ? '-' : '+', h);
	return buf;
}

static void print_site_line(const struct ana_report_site *s, const char *prefix, FILE *f)
{
	char w[512];

	fprintf(f, "%s%s\n", prefix, where(w, sizeof(w), s));
}

static void print_growth(const struct ana_report *rep, FILE *f)
{
	const struct ana_growth *g = &rep->growth;
	char a[48], b[48], c[48];

	if (!strcmp(g->verdict, "unknown")) {
		fprintf(f, "memory over time:      unknown (%" PRIu64 " ticks in the window; %d needed)\n",
			g->n_points, ANA_GROWTH_MIN_POINTS);
		return;
	}
	fprintf(f, "memory over time:      %s%s: heap %s/s (R\xc2\xb2 %.2f), RSS %s/s over"
		   " %.0f-%.0f ms\n",
		g->verdict, g->growing ? " (possible leak)" : "",
		signed_size(a, sizeof(a), g->heap_rate), g->heap_r2,
		signed_size(b, sizeof(b), g->rss_rate), (double)g->window_start_ns / 1e6,
		(double)g->window_end_ns / 1e6);
	if (g->has_per_marker)
		fprintf(f, "                       heap %s per marker interval (%" PRIu64
			   " markers)\n",
			signed_size(c, sizeof(c), g->heap_per_marker), g->n_markers);
	if (g->spiking)
		fprintf(f, "                       peak %s is %s above the typical heap (%s)\n",
			ana_human_size(a, sizeof(a), g->peak_heap),
			ana_human_size(b, sizeof(b), g->spike_bytes),
			ana_human_size(c, sizeof(c), g->baseline_heap));
	for (size_t i = 0; i < rep->n_growth_sites; i++) {
		fprintf(f, "  growing %s/s: ", ana_human_size(a, sizeof(a), rep->growth_sites[i].bytes));
		print_site_line(&rep->growth_sites[i], "", f);
	}
	for (size_t i = 0; i < rep->n_spike_sites; i++) {
		fprintf(f, "  spike %s: ", ana_human_size(a, sizeof(a), rep->spike_sites[i].bytes));
		print_site_line(&rep->spike_sites[i], "", f);
	}
}

static void print_insights(const struct ana_report *rep, FILE *f)
{
	fprintf(f, "\nINSIGHTS\n");
	if (!rep->n_insights)
		fprintf(f, "  (none)\n");
	for (size_t i = 0; i < rep->n_insights; i++)
		fprintf(f, "%zu. [%s] %s\n", i + 1, rep->insights[i].kind, rep->insights[i].text);
}

void ana_report_print_phases(const struct ana_report *rep, FILE *f)
{
	char c1[32], a[32], b[32];

	fprintf(f, "\nPHASES (per thread; times and RSS at tick resolution)\n");
	if (!rep->n_phases)
		fprintf(f, "  (none)\n");
	for (size_t i = 0; i < rep->n_phases; i++) {
		const struct ana_report_phase *ph = &rep->phases[i];
		double drss = mib(ph->rss_end) - mib(ph->rss_begin);
		char pk[32];
		fprintf(f, "%*s%s  %.2f s  %s allocs  peak heap %s  RSS %.1f \xe2\x86\x92 %.1f MiB"
			   " (\xce\x94%+.1f, peak %.1f)%s\n",
			(int)(2 * ph->depth), "", ph->name, (double)(ph->end_ns - ph->begin_ns) / 1e9,
			commas(c1, sizeof(c1), ph->alloc_calls),
			ana_human_size(pk, sizeof(pk), ph->peak_heap_bytes),
			mib(ph->rss_begin), mib(ph->rss_end), drss, mib(ph->rss_peak),
			ph->ended ? "" : "  (not ended)");
		fprintf(f, "%*s  allocated %s, left behind %s in %" PRIu64 " blocks\n",
			(int)(2 * ph->depth), "", ana_human_size(a, sizeof(a), ph->alloc_bytes),
			ana_human_size(b, sizeof(b), ph->left_bytes), ph->left_blocks);
		for (size_t j = 0; j < ph->n_sites; j++) {
			fprintf(f, "%*s  peak +%s from ", (int)(2 * ph->depth), "",
				ana_human_size(a, sizeof(a), ph->sites[j].bytes));
			print_site_line(&ph->sites[j], "", f);
		}
	}
	if (rep->unmatched_phase_ends)
		fprintf(f, "  (%" PRIu64 " phase ends with no open phase)\n", rep->unmatched_phase_ends);
	fprintf(f, "\nMARKERS\n");
	if (!rep->n_markers)
		fprintf(f, "  (none)\n");
	for (size_t i = 0; i < rep->n_markers; i++) {
		const struct ana_report_marker *m = &rep->markers[i];
		fprintf(f, "  %-20s at %10.3f ms  heap %s  RSS %s\n", m->name, (double)m->time_ns / 1e6,
			ana_human_size(a, sizeof(a), m->heap_bytes),
			m->rss_bytes ? ana_human_size(b, sizeof(b), m->rss_bytes) : "-");
	}
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
	fprintf(f, "duration:              %.3f ms\n", ana_ms(rep->duration_ns));
	fprintf(f, "complete:              %s\n", rep->complete ? "yes" : "no (truncated)");
	fprintf(f, "allocation calls:      %" PRIu64 "\n", rep->allocations);
	fprintf(f, "bytes allocated:       %s\n",
		ana_human_size(b1, sizeof(b1), rep->bytes_allocated));
	fprintf(f, "frees:                 %" PRIu64 "\n", rep->frees);
	fprintf(f, "temporary allocations: %" PRIu64 " (%.2f%% of calls)\n", rep->temporary,
		pct);
	fprintf(f, "peak heap:             %s at %.3f ms\n",
		ana_human_size(b1, sizeof(b1), rep->peak_heap_bytes), ana_ms(rep->peak_time_ns));
	fprintf(f, "peak RSS:              %s\n",
		ana_human_size(b1, sizeof(b1), rep->peak_rss_bytes));
	fprintf(f, "leaked:                %s in %" PRIu64 " allocations%s\n",
		ana_human_size(b1, sizeof(b1), rep->leaked_bytes), rep->leaked_allocations,
		rep->complete ? "" : " (still live when the trace ends)");
	if (rep->unmatched_frees)
		fprintf(f, "unmatched frees:       %" PRIu64
			   " (memory allocated before recording started)\n",
			rep->unmatched_frees);
	if (rep->total_phases || rep->total_markers)
		fprintf(f, "phases, markers:       %" PRIu64 ", %" PRIu64 " (memana report --phases)\n",
			rep->total_phases, rep->total_markers);
	print_growth(rep, f);
	print_insights(rep, f);

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
		ana_json_cstr(f, fr->function);
		fputs(", \"file\": ", f);
		ana_json_cstr(f, fr->file);
		fprintf(f, ", \"line\": %u, \"module\": ", fr->line);
		ana_json_cstr(f, fr->module);
		fputc('}', f);
	}
	fputc(']', f);
	for (unsigned k = 0; k < ANA_N_HIST; k++) {
		fprintf(f, ", \"%s\": ", hist_json_name[k]);
		ana_report_hist_json(s->hist.b[k], s->hist.n[k], false, f);
	}
	fputc('}', f);
}

void ana_report_hists_json(const struct ana_report *rep, FILE *f)
{
	fputs("\"histograms\": {", f);
	for (unsigned k = 0; k < ANA_N_HIST; k++) {
		fprintf(f, "\"%s\": ", hist_json_name[k]);
		ana_report_hist_json(rep->hist.b[k], rep->hist.n[k], true, f);
		fputs(", ", f);
	}
	fprintf(f, "\"never_freed\": {\"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}}",
		rep->leaked_allocations, rep->leaked_bytes);
}

static void json_num(FILE *f, double v)
{
	if (v != v || v > 1e300 || v < -1e300)
		fputs("null", f);
	else
		fprintf(f, "%.6g", v);
}

static void json_sites(const struct ana_report_site *s, size_t n, FILE *f)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		ana_report_site_json(&s[i], f);
	}
	fputc(']', f);
}

void ana_report_json_extras(const struct ana_report *rep, FILE *f)
{
	const struct ana_growth *g = &rep->growth;

	fprintf(f, " \"growth\": {\"verdict\": \"%s\", \"growing\": %s, \"spiking\": %s,"
		   " \"window_ms\": [%.3f, %.3f], \"ticks\": %" PRIu64 ", \"heap_bytes_per_s\": ",
		g->verdict, g->growing ? "true" : "false", g->spiking ? "true" : "false",
		(double)g->window_start_ns / 1e6, (double)g->window_end_ns / 1e6, g->n_points);
	json_num(f, g->heap_rate);
	fputs(", \"heap_r2\": ", f);
	json_num(f, g->heap_r2);
	fputs(", \"rss_bytes_per_s\": ", f);
	json_num(f, g->rss_rate);
	fprintf(f, ", \"markers\": %" PRIu64 ", \"heap_bytes_per_marker\": ", g->n_markers);
	if (g->has_per_marker)
		json_num(f, g->heap_per_marker);
	else
		fputs("null", f);
	fprintf(f, ", \"baseline_heap_bytes\": %" PRIu64 ", \"spike_bytes\": %" PRIu64
		   ",\n  \"growing_sites\": ",
		g->baseline_heap, g->spike_bytes);
	json_sites(rep->growth_sites, rep->n_growth_sites, f);
	fputs(",\n  \"spike_sites\": ", f);
	json_sites(rep->spike_sites, rep->n_spike_sites, f);
	fputs("},\n \"insights\": [", f);
	for (size_t i = 0; i < rep->n_insights; i++) {
		const struct ana_insight *in = &rep->insights[i];
		fprintf(f, "%s{\"kind\": \"%s\", \"text\": ", i ? ",\n  " : "\n  ", in->kind);
		ana_json_cstr(f, in->text);
		fprintf(f, ", \"calls\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"site\": ", in->calls,
			in->bytes);
		ana_report_site_json(&in->site, f);
		fputc('}', f);
	}
	fputs("],\n \"phases\": [", f);
	for (size_t i = 0; i < rep->n_phases; i++) {
		const struct ana_report_phase *ph = &rep->phases[i];
		fprintf(f, "%s{\"id\": %u, \"parent\": %u, \"depth\": %u, \"stream\": %u, \"name\": ",
			i ? ",\n  " : "\n  ", ph->id, ph->parent, ph->depth, ph->stream);
		ana_json_cstr(f, ph->name);
		fprintf(f,
			", \"ended\": %s, \"begin_ms\": %.3f, \"end_ms\": %.3f, \"duration_ms\": %.3f,"
			" \"alloc_calls\": %" PRIu64 ", \"alloc_bytes\": %" PRIu64
			", \"left_blocks\": %" PRIu64 ", \"left_bytes\": %" PRIu64
			", \"heap_begin\": %" PRIu64 ", \"heap_end\": %" PRIu64
			", \"peak_heap_bytes\": %" PRIu64 ", \"peak_ms\": %.3f"
			", \"rss_begin\": %" PRIu64 ", \"rss_end\": %" PRIu64 ", \"rss_peak\": %" PRIu64
			", \"peak_sites\": ",
			ph->ended ? "true" : "false", (double)ph->begin_ns / 1e6,
			(double)ph->end_ns / 1e6, (double)(ph->end_ns - ph->begin_ns) / 1e6,
			ph->alloc_calls, ph->alloc_bytes, ph->left_blocks, ph->left_bytes,
			ph->heap_begin, ph->heap_end, ph->peak_heap_bytes, (double)ph->peak_ns / 1e6,
			ph->rss_begin, ph->rss_end, ph->rss_peak);
		json_sites(ph->sites, ph->n_sites, f);
		fputc('}', f);
	}
	fputs("],\n \"markers\": [", f);
	for (size_t i = 0; i < rep->n_markers; i++) {
		const struct ana_report_marker *m = &rep->markers[i];
		fprintf(f, "%s{\"id\": %u, \"stream\": %u, \"name\": ", i ? ",\n  " : "\n  ",
			m->id, m->stream);
		ana_json_cstr(f, m->name);
		fprintf(f, ", \"seq\": %" PRIu64 ", \"time_ms\": %.3f, \"heap_bytes\": %" PRIu64
			   ", \"rss_bytes\": %" PRIu64 "}",
			m->seq, (double)m->time_ns / 1e6, m->heap_bytes, m->rss_bytes);
	}
	fputs("]", f);
}

/* ---- CSV (RFC 4180) ------------------------------------------------------- */

static void csv_str(FILE *f, const char *s)
{
	/* A spreadsheet evaluates a cell starting with one of these as a
	 * formula: a name from the traced program must stay text. */
	if (strchr("=+-@\t\r", s[0]) && s[0]) {
		fputc('\'', f);
	}
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void csv_kv(FILE *f, const char *k, uint64_t v)
{
	fprintf(f, "%s,%" PRIu64 "\r\n", k, v);
}

void ana_report_print_csv(const struct ana_report *rep, FILE *f)
{
	static const char *const names[ANA_N_LISTS] = {
		"allocations", "peak", "leaked", "temporary",
	};
	char num[64];

	fputs("key,value\r\n", f);
	fputs("command,", f);
	csv_str(f, rep->command[0] ? rep->command : rep->exe);
	fputs("\r\n", f);
	csv_kv(f, "pid", rep->pid);
	fprintf(f, "complete,%s\r\n", rep->complete ? "yes" : "no");
	snprintf(num, sizeof(num), "%.3f", (double)rep->duration_ns / 1e6);
	fprintf(f, "duration_ms,%s\r\n", num);
	csv_kv(f, "allocations", rep->allocations);
	csv_kv(f, "failed_allocations", rep->failed_allocations);
	csv_kv(f, "bytes_allocated", rep->bytes_allocated);
	csv_kv(f, "frees", rep->frees);
	csv_kv(f, "temporary_allocations", rep->temporary);
	csv_kv(f, "temporary_bytes", rep->temporary_bytes);
	csv_kv(f, "peak_heap_bytes", rep->peak_heap_bytes);
	fprintf(f, "peak_time_ms,%.3f\r\n", (double)rep->peak_time_ns / 1e6);
	csv_kv(f, "peak_rss_bytes", rep->peak_rss_bytes);
	csv_kv(f, "leaked_allocations", rep->leaked_allocations);
	csv_kv(f, "leaked_bytes", rep->leaked_bytes);
	fprintf(f, "growth_verdict,%s\r\n", rep->growth.verdict);
	fprintf(f, "heap_growth_bytes_per_s,%.1f\r\n", rep->growth.heap_rate);
	fputs("\r\nlist,rank,calls,bytes,function,file,line,module,stack\r\n", f);
	for (int l = 0; l < ANA_N_LISTS; l++)
		for (size_t i = 0; i < rep->n_sites[l]; i++) {
			const struct ana_report_site *s = &rep->sites[l][i];
			const struct ana_report_frame *fr = s->n_frames ? &s->frames[0] : NULL;
			fprintf(f, "%s,%zu,%" PRIu64 ",%" PRIu64 ",", names[l], i + 1, s->calls,
				s->bytes);
			csv_str(f, fr ? fr->function : "");
			fputc(',', f);
			csv_str(f, fr ? fr->file : "");
			fprintf(f, ",%u,", fr ? fr->line : 0);
			csv_str(f, fr ? fr->module : "");
			fputc(',', f);
			/* The whole stack in one cell, frames joined by " <- ";
			 * quoted as a whole (a name may hold a comma). */
			fputc('"', f);
			for (size_t j = 0; j < s->n_frames; j++) {
				if (j)
					fputs(" <- ", f);
				for (const char *c = s->frames[j].function; *c; c++) {
					if (*c == '"')
						fputc('"', f);
					fputc(*c, f);
				}
			}
			fputs("\"\r\n", f);
		}
	if (rep->n_phases) {
		fputs("\r\nphase,parent,depth,name,duration_ms,alloc_calls,alloc_bytes,"
		      "left_blocks,left_bytes,peak_heap_bytes,rss_begin,rss_end,rss_peak\r\n", f);
		for (size_t i = 0; i < rep->n_phases; i++) {
			const struct ana_report_phase *ph = &rep->phases[i];
			fprintf(f, "%u,%u,%u,", ph->id, ph->parent, ph->depth);
			csv_str(f, ph->name);
			fprintf(f, ",%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
				   ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\r\n",
				(double)(ph->end_ns - ph->begin_ns) / 1e6, ph->alloc_calls,
				ph->alloc_bytes, ph->left_blocks, ph->left_bytes, ph->peak_heap_bytes,
				ph->rss_begin, ph->rss_end, ph->rss_peak);
		}
	}
}

void ana_report_print_json(const struct ana_report *rep, FILE *f)
{
	static const char *const names[ANA_N_LISTS] = {
		"allocations", "peak", "leaked", "temporary",
	};

	fprintf(f, "{\"trace\": {\"complete\": %s, \"pid\": %u, \"command\": ",
		rep->complete ? "true" : "false", rep->pid);
	ana_json_cstr(f, rep->command[0] ? rep->command : rep->exe);
	fprintf(f, ", \"duration_ms\": %.3f},\n", ana_ms(rep->duration_ns));
	fprintf(f,
		" \"totals\": {\"allocations\": %" PRIu64 ", \"bytes_allocated\": %" PRIu64
		", \"frees\": %" PRIu64 ", \"temporary_allocations\": %" PRIu64
		", \"peak_heap_bytes\": %" PRIu64 ", \"peak_time_ms\": %.3f"
		", \"peak_rss_bytes\": %" PRIu64 ", \"leaked_allocations\": %" PRIu64
		", \"leaked_bytes\": %" PRIu64 "},\n",
		rep->allocations, rep->bytes_allocated, rep->frees, rep->temporary,
		rep->peak_heap_bytes, ana_ms(rep->peak_time_ns), rep->peak_rss_bytes,
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
	fputs("},\n ", f);
	ana_report_hists_json(rep, f);
	fputs(",\n", f);
	ana_report_json_extras(rep, f);
	fputs("}\n", f);
}
