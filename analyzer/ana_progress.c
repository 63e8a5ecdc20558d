/* Progress line (see ana_progress.h). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ana_progress.h"

#define SHOW_AFTER_NS 1000000000ull /* a second; MEMANA_PROGRESS_DELAY_MS overrides */
#define REDRAW_NS 100000000ull      /* ten times a second at most */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ana_progress_init(struct ana_progress *p, const char *path, bool quiet)
{
	struct stat st;

	p->enabled = !quiet && isatty(STDERR_FILENO);
	p->shown = false;
	p->name = path;
	p->total_bytes = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	p->start_ns = now_ns();
	p->last_ns = 0;
	p->delay_ns = SHOW_AFTER_NS;
	const char *d = getenv("MEMANA_PROGRESS_DELAY_MS");
	if (d && *d) {
		char *end;
		unsigned long long v = strtoull(d, &end, 10);
		if (!*end && v < 3600000ull)
			p->delay_ns = v * 1000000ull;
	}
}

/* Is it time to draw? */
static bool due(struct ana_progress *p)
{
	uint64_t t;

	if (!p->enabled)
		return false;
	t = now_ns();
	if (t - p->start_ns < p->delay_ns || (p->last_ns && t - p->last_ns < REDRAW_NS))
		return false;
	p->last_ns = t;
	return true;
}

void ana_progress_read(void *ctx, uint64_t file_bytes_read)
{
	struct ana_progress *p = ctx;
	double mib = 1024.0 * 1024.0;

	if (!due(p))
		return;
	if (p->total_bytes) {
		unsigned pct = (unsigned)(file_bytes_read * 100 / p->total_bytes);
		fprintf(stderr, "\r\033[Kmemana: reading '%s' %3u%% (%.1f of %.1f MiB)", p->name,
			pct > 100 ? 100 : pct, (double)file_bytes_read / mib,
			(double)p->total_bytes / mib);
	} else {
		fprintf(stderr, "\r\033[Kmemana: reading '%s' (%.1f MiB)", p->name,
			(double)file_bytes_read / mib);
	}
	p->shown = true;
}

void ana_progress_stage(struct ana_progress *p, const char *stage)
{
	if (!p->enabled || now_ns() - p->start_ns < p->delay_ns)
		return;
	fprintf(stderr, "\r\033[Kmemana: %s '%s'...", stage, p->name);
	p->shown = true;
}

void ana_progress_done(struct ana_progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}
