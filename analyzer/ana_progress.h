/* A progress line on stderr for long analyses (ingest, report, html): shown
 * only when stderr is a terminal, not asked to be quiet, and the work has
 * taken more than a second; redrawn at most ten times a second and erased
 * when the work ends. */
#ifndef ANA_PROGRESS_H
#define ANA_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct ana_progress {
	bool enabled;          /* stderr is a terminal and not quiet */
	bool shown;            /* a line is on the screen */
	const char *name;      /* trace path (borrowed) */
	uint64_t total_bytes;  /* file size, 0 = unknown */
	uint64_t start_ns;     /* CLOCK_MONOTONIC at ana_progress_init() */
	uint64_t last_ns;      /* last redraw, 0 = none yet */
	uint64_t delay_ns;     /* shown after this long (1 s; the environment
				* variable MEMANA_PROGRESS_DELAY_MS overrides it) */
};

/* Start timing the analysis of the trace at path (borrowed for p's life).
 * quiet turns the display off. */
void ana_progress_init(struct ana_progress *p, const char *path, bool quiet);

/* An ana_progress_fn (ctx is the struct ana_progress): the decoder has read
 * file_bytes_read bytes of the trace. */
void ana_progress_read(void *ctx, uint64_t file_bytes_read);

/* Say which later stage runs now ("symbolizing", "writing"). */
void ana_progress_stage(struct ana_progress *p, const char *stage);

/* Erase the line, if one is shown. */
void ana_progress_done(struct ana_progress *p);

#endif
