/* Comparing two profiles (see ana_diff.h): both databases go into one
 * function tree, side 0 and side 1; each node where a site of either ends
 * is a matched call site. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ana_diff.h"
#include "ana_util.h"

static const enum ana_metric dmetric_of[ANA_N_DMETRICS] = {
	ANA_M_CALLS, ANA_M_PEAK, ANA_M_LEAKED, ANA_M_TEMPORARY,
};

static const char *const dlabel[ANA_N_DMETRICS] = {
	"allocation calls", "peak heap bytes", "leaked bytes", "temporary allocations",
};

static const char *const djson[ANA_N_DMETRICS] = {
	"calls", "peak_bytes", "leaked_bytes", "temporary",
};

const char *ana_dmetric_label(enum ana_dmetric m)
{
	return m < ANA_N_DMETRICS ? dlabel[m] : "?";
}

/* The totals of a database from its meta table. */
static int load_totals(struct ana_db *db, const char *name, uint64_t tot[ANA_N_DMETRICS],
		       char *errmsg, size_t cap)
{
	struct ana_report *rep = NULL;
	int rc = ana_report_load(db, name, 0, &rep, errmsg, cap);

	if (rc < 0)
		return rc;
	tot[ANA_D_CALLS] = rep->allocations;
	tot[ANA_D_PEAK] = rep->peak_heap_bytes;
	tot[ANA_D_LEAKED] = rep->leaked_bytes;
	tot[ANA_D_TEMPORARY] = rep->temporary;
	ana_report_free(rep);
	return 0;
}

static int site_cmp(const void *a, const void *b)
{
	const struct ana_diff_site *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	uint64_t dx = x->new_[0] > x->base[0] ? x->new_[0] - x->base[0] : x->base[0] - x->new_[0];
	uint64_t dy = y->new_[0] > y->base[0] ? y->new_[0] - y->base[0] : y->base[0] - y->new_[0];
	if (dx != dy)
		return dx > dy ? -1 : 1;
	return x->node < y->node ? -1 : x->node > y->node;
}

int ana_diff_new(struct ana_db *base, const char *base_name, struct ana_db *new_db,
		 const char *new_name, struct ana_diff **out, char *errmsg, size_t cap)
{
	struct ana_diff *d = calloc(1, sizeof(*d));
	const struct ana_ftree_node *nodes;
	size_t n, cap_sites = 0;
	int rc = -ENOMEM;

	if (!d)
		goto fail;
	d->base_name = ana_strndup(base_name, strlen(base_name));
	d->new_name = ana_strndup(new_name, strlen(new_name));
	if (!d->base_name || !d->new_name || ana_ftree_new(&d->tree) < 0)
		goto fail;
	rc = load_totals(base, base_name, d->base_total, errmsg, cap);
	if (rc == 0)
		rc = load_totals(new_db, new_name, d->new_total, errmsg, cap);
	/* The new build first: a merged frame shows the file and line where
	 * it was first seen. */
	if (rc == 0)
		rc = ana_ftree_add_db(d->tree, new_db, 1, new_name, errmsg, cap);
	if (rc == 0)
		rc = ana_ftree_add_db(d->tree, base, 0, base_name, errmsg, cap);
	/* No ana_ftree_finish(): the sites' own figures (self) and paths
	 * (parent links) are all a diff reads. */
	if (rc < 0)
		goto fail;
	nodes = ana_ftree_nodes(d->tree, &n);
	for (size_t i = 0; i < n; i++) {
		const struct ana_ftree_node *nd = &nodes[i];
		struct ana_diff_site s = { .node = (uint32_t)i };
		bool changed = false;

		if (!nd->sites)
			continue;
		d->n_matched++;
		for (int m = 0; m < ANA_N_DMETRICS; m++) {
			s.base[m] = nd->self[0][dmetric_of[m]];
			s.new_[m] = nd->self[1][dmetric_of[m]];
			if (s.base[m] == s.new_[m])
				continue;
			changed = true;
			uint64_t tot = d->base_total[m] > d->new_total[m] ? d->base_total[m]
									  : d->new_total[m];
			double delta = fabs((double)s.new_[m] - (double)s.base[m]);
			double sc = delta / (double)(tot ? tot : 1);
			if (sc > s.score)
				s.score = sc;
		}
		if (!changed)
			continue;
		if (d->n_sites == cap_sites) {
			size_t nc = cap_sites ? cap_sites * 2 : 64;
			struct ana_diff_site *ns = realloc(d->sites, nc * sizeof(*ns));
			if (!ns) {
				rc = -ENOMEM;
				goto fail;
			}
			d->sites = ns;
			cap_sites = nc;
		}
		d->sites[d->n_sites++] = s;
	}
	if (d->n_sites)
		qsort(d->sites, d->n_sites, sizeof(*d->sites), site_cmp);
	*out = d;
	return 0;
fail:
	if (rc == -ENOMEM && errmsg && cap)
		snprintf(errmsg, cap, "out of memory");
	ana_diff_free(d);
	return rc;
}

void ana_diff_free(struct ana_diff *d)
{
	if (!d)
		return;
	ana_ftree_free(d->tree);
	free(d->sites);
	free(d->base_name);
	free(d->new_name);
	free(d);
}

/* ", +12.5%", ", -100.0%", ", new" (from 0), "" (no change). */
static const char *pct(char *buf, size_t cap, uint64_t base, uint64_t new_)
{
	if (base == new_)
		buf[0] = 0;
	else if (!base)
		snprintf(buf, cap, ", new");
	else
		snprintf(buf, cap, ", %+.1f%%", 100.0 * ((double)new_ - (double)base) / (double)base);
	return buf;
}

static const char *fmt_val(char *buf, size_t cap, int m, uint64_t v)
{
	if (m == ANA_D_PEAK || m == ANA_D_LEAKED)
		return ana_human_size(buf, cap, v);
	snprintf(buf, cap, "%" PRIu64, v);
	return buf;
}

static const char *fmt_delta(char *buf, size_t cap, int m, uint64_t base, uint64_t new_)
{
	bool neg = new_ < base;
	uint64_t d = neg ? base - new_ : new_ - base;

	if (cap < 2)
		return "";
	buf[0] = neg ? '-' : '+';
	fmt_val(buf + 1, cap - 1, m, d);
	return buf;
}

void ana_diff_print_stack(const struct ana_diff *d, const struct ana_diff_site *s,
			  size_t max, int indent, FILE *f)
{
	size_t n, nf;
	const struct ana_ftree_node *nodes = ana_ftree_nodes(d->tree, &n);
	const struct ana_ftree_frame *frames = ana_ftree_frames(d->tree, &nf);
	size_t k = 0;

	for (uint32_t i = s->node; i != 0 && i != ANA_FT_NONE && k < max; i = nodes[i].parent, k++) {
		const struct ana_ftree_node *nd = &nodes[i];
		const char *file = ana_ftree_file(d->tree, nd);
		fprintf(f, "%*s%s", indent, "", frames[nd->frame].function);
		if (file[0])
			fprintf(f, " at %s:%u", file, nd->line);
		if (frames[nd->frame].module[0])
			fprintf(f, " in %s", frames[nd->frame].module);
		fputc('\n', f);
	}
}

void ana_diff_print_text(const struct ana_diff *d, size_t top, FILE *f)
{
	char a[32], b[32], c[32], p[32];

	fprintf(f, "base: %s\nnew:  %s\n\n", d->base_name, d->new_name);
	fprintf(f, "%-22s %14s %14s  %s\n", "totals", "base", "new", "change");
	for (int m = 0; m < ANA_N_DMETRICS; m++)
		fprintf(f, "%-22s %14s %14s  %s%s\n", dlabel[m],
			fmt_val(a, sizeof(a), m, d->base_total[m]),
			fmt_val(b, sizeof(b), m, d->new_total[m]),
			fmt_delta(c, sizeof(c), m, d->base_total[m], d->new_total[m]),
			pct(p, sizeof(p), d->base_total[m], d->new_total[m]));
	fprintf(f, "\nCALL SITES BY CHANGE (%zu of %zu matched sites changed", d->n_sites,
		d->n_matched);
	if (top < d->n_sites)
		fprintf(f, "; the first %zu", top);
	fputs(")\n", f);
	if (!d->n_sites)
		fputs("  (none)\n", f);
	for (size_t i = 0; i < d->n_sites && i < top; i++) {
		const struct ana_diff_site *s = &d->sites[i];
		const char *sep = "";
		for (int m = 0; m < ANA_N_DMETRICS; m++) {
			if (s->base[m] == s->new_[m])
				continue;
			fprintf(f, "%s%s %s -> %s (%s%s)", sep, dlabel[m],
				fmt_val(a, sizeof(a), m, s->base[m]),
				fmt_val(b, sizeof(b), m, s->new_[m]),
				fmt_delta(c, sizeof(c), m, s->base[m], s->new_[m]),
				pct(p, sizeof(p), s->base[m], s->new_[m]));
			sep = ", ";
		}
		fputs(":\n", f);
		ana_diff_print_stack(d, s, SIZE_MAX, 4, f);
	}
}

static void json_totals(const char *key, const char *name, const uint64_t *tot, FILE *f)
{
	fprintf(f, "\"%s\": {\"path\": ", key);
	ana_json_str(f, name, strlen(name));
	fprintf(f, ", \"totals\": {\"allocations\": %" PRIu64 ", \"peak_heap_bytes\": %" PRIu64
		   ", \"leaked_bytes\": %" PRIu64 ", \"temporary_allocations\": %" PRIu64 "}}",
		tot[0], tot[1], tot[2], tot[3]);
}

static void json_vals(const char *key, const uint64_t *v, FILE *f)
{
	fprintf(f, "\"%s\": {", key);
	for (int m = 0; m < ANA_N_DMETRICS; m++)
		fprintf(f, "%s\"%s\": %" PRIu64, m ? ", " : "", djson[m], v[m]);
	fputc('}', f);
}

void ana_diff_print_json(const struct ana_diff *d, size_t top, FILE *f)
{
	size_t n, nf;
	const struct ana_ftree_node *nodes = ana_ftree_nodes(d->tree, &n);
	const struct ana_ftree_frame *frames = ana_ftree_frames(d->tree, &nf);

	fputc('{', f);
	json_totals("base", d->base_name, d->base_total, f);
	fputs(",\n ", f);
	json_totals("new", d->new_name, d->new_total, f);
	fprintf(f, ",\n \"matched_sites\": %zu, \"changed_sites\": %zu,\n \"sites\": [",
		d->n_matched, d->n_sites);
	for (size_t i = 0; i < d->n_sites && i < top; i++) {
		const struct ana_diff_site *s = &d->sites[i];
		fputs(i ? ",\n  {\"stack\": [" : "\n  {\"stack\": [", f);
		size_t k = 0;
		for (uint32_t j = s->node; j != 0 && j != ANA_FT_NONE; j = nodes[j].parent, k++) {
			const struct ana_ftree_frame *fr = &frames[nodes[j].frame];
			const char *file = ana_ftree_file(d->tree, &nodes[j]);
			fputs(k ? ", {\"function\": " : "{\"function\": ", f);
			ana_json_str(f, fr->function, strlen(fr->function));
			fputs(", \"file\": ", f);
			ana_json_str(f, file, strlen(file));
			fprintf(f, ", \"line\": %u, \"module\": ", nodes[j].line);
			ana_json_str(f, fr->module, strlen(fr->module));
			fputc('}', f);
		}
		fputs("], ", f);
		json_vals("base", s->base, f);
		fputs(", ", f);
		json_vals("new", s->new_, f);
		fputs(", \"change\": {", f);
		for (int m = 0; m < ANA_N_DMETRICS; m++)
			fprintf(f, "%s\"%s\": %s%" PRIu64, m ? ", " : "", djson[m],
				s->new_[m] < s->base[m] ? "-" : "",
				s->new_[m] < s->base[m] ? s->base[m] - s->new_[m]
							: s->new_[m] - s->base[m]);
		fputs("}}", f);
	}
	fputs("]}\n", f);
}
