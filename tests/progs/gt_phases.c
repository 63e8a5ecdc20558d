/* Ground truth for phases (include/memrec.h; tests/e2e/1106-phase-records.sh
 * and the analyzer's per-phase figures). One thread; the program allocates
 * nothing but what is listed (no stdio). Heap bytes are bytes requested;
 * "live" counts only this program's blocks (0 before "parse").
 *
 *   phase "parse"      parse_input: malloc(64) x 1000, all live together
 *                      (64000 bytes: the phase's peak), sleep 40 ms, free
 *                      900 of them; 100 blocks (6400 bytes) live at its end,
 *                      freed in "serve". Calls 1000, bytes 64000, frees 900.
 *   phase "index"      build_index: malloc(4096) x 256 live together (peak
 *                      of the phase and of the program: 6400 + 1048576 =
 *                      1054976 live), sleep 40 ms, free 200; 56 blocks
 *                      (229376 bytes) live at its end, freed in "serve".
 *                      Calls 256, bytes 1048576, frees 200. Live at its end
 *                      235776.
 *   mark "checkpoint"  between "index" and "serve", outside any phase: live
 *                      235776.
 *   phase "serve"      contains, first, the nested phase
 *     "serve/warmup"   warm_up: malloc(128) x 10 live together (peak of
 *                      warmup and of serve: 235776 + 1280 = 237056), sleep
 *                      40 ms, all 10 freed. Calls 10, bytes 1280, frees 10.
 *                    then serve_requests: the 100 "parse" and 56 "index"
 *                      blocks freed, 500 x (malloc(32), free) back to back
 *                      (500 temporary), sleep 40 ms. Calls 500, bytes 16000,
 *                      frees 656.
 *                      "serve" as a whole (warmup included): calls 510,
 *                      bytes 17280, frees 666, live 0 at its end.
 *   total              calls 1766, bytes 1129856, frees 1766, leaked 0, peak
 *                      1054976 (in "index").
 *
 * The PHASE records, in order: begin parse, end, begin index, end, mark
 * checkpoint, begin serve, begin serve/warmup (its name overwritten right
 * after the call: names are copied), end, end. Builds and runs
 * (exit 0, no output) without memrec: memrec.h needs no library. Exits 1
 * with a message if an allocation fails. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memrec.h"

#define NOINLINE __attribute__((noinline))

void *volatile gt_sink;
static void *parsed[1000];
static void *indexed[256];

static void die(const char *what)
{
	write(2, "gt_phases: allocation failed: ", 30);
	write(2, what, strlen(what));
	write(2, "\n", 1);
	_exit(1);
}

/* Sleep ms milliseconds (to the end, even if a signal interrupts it). */
static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0)
		;
}

NOINLINE void parse_input(void)
{
	for (int i = 0; i < 1000; i++) {
		parsed[i] = malloc(64);
		if (!parsed[i])
			die("parse_input");
	}
	sleep_ms(40);
	for (int i = 100; i < 1000; i++)
		free(parsed[i]);
}

NOINLINE void build_index(void)
{
	for (int i = 0; i < 256; i++) {
		indexed[i] = malloc(4096);
		if (!indexed[i])
			die("build_index");
	}
	sleep_ms(40);
	for (int i = 56; i < 256; i++)
		free(indexed[i]);
}

NOINLINE void warm_up(void)
{
	void *w[10];

	for (int i = 0; i < 10; i++) {
		w[i] = malloc(128);
		if (!w[i])
			die("warm_up");
	}
	sleep_ms(40);
	for (int i = 0; i < 10; i++)
		free(w[i]);
}

NOINLINE void serve_requests(void)
{
	for (int i = 0; i < 100; i++)
		free(parsed[i]);
	for (int i = 0; i < 56; i++)
		free(indexed[i]);
	for (int i = 0; i < 500; i++) {
		void *p = malloc(32);
		if (!p)
			die("serve_requests");
		gt_sink = p;
		free(p);
	}
	sleep_ms(40);
}

int main(void)
{
	memrec_phase_begin("parse");
	parse_input();
	memrec_phase_end();

	memrec_phase_begin("index");
	build_index();
	memrec_phase_end();

	memrec_mark("checkpoint");

	memrec_phase_begin("serve");
	/* The name is copied at the call: overwriting it at once is fine. */
	char name[16] = "serve/warmup";
	memrec_phase_begin(name);
	memset(name, 'X', sizeof(name) - 1);
	warm_up();
	memrec_phase_end();
	serve_requests();
	memrec_phase_end();
	return 0;
}
