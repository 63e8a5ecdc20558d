/* Replay tests: traces built in memory with tf_enc + zstd, with known
 * interleavings across streams, checked for exact totals, peak, leaks and
 * temporary counts; then through the database and the report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include <cmocka.h>

#include "ana_db.h"
#include "ana_ingest.h"
#include "ana_replay.h"
#include "ana_report.h"
#include "cm_err.h"
#include "tf_enc.h"

#include "ana_tb.h"

static struct ana_profile *replay(struct tb *b, uint64_t gap)
{
	struct ana_replay_opts o = { .temporary_gap = gap };
	struct ana_profile *p = NULL;
	char err[256] = "";
	int rc = ana_replay_mem(b->file, b->file_len, "mem", &o, &p, err, sizeof(err));

	if (rc < 0)
		fail_msg("replay failed: %d %s", rc, err);
	return p;
}

enum { P = 0x1000, Q = 0x2000, R = 0x3000 };

/* The interleaving of DESIGN.md point 6: P freed on stream 1 and handed out
 * again on stream 0, with stream 0's chunk written before stream 1's. */
static struct tb *build_cross_thread(void)
{
	struct tb *b = tb_new();

	tb_thread(b, 0, 1, 100);
	tb_thread(b, 1, 2, 101);
	tb_node(b, 0, 1, 0, 0x400100);
	tb_node(b, 0, 2, 1, 0x400200);
	tb_node(b, 1, 3, 1, 0x400300);
	/* true order: 3 s1 alloc P | 4 s1 free P | 5 s0 alloc P | 6 s1 alloc Q
	 * | 7 s0 alloc R | 8 s0 free P | 9 s1 free Q */
	tb_alloc(b, 0, 5, TF_KIND_MALLOC, 2, 200, P);
	tb_alloc(b, 0, 7, TF_KIND_MALLOC, 2, 10, R);
	tb_free(b, 0, 8, TF_KIND_FREE, P);
	tb_flush(b, 0);
	tb_alloc(b, 1, 3, TF_KIND_MALLOC, 3, 100, P);
	tb_free(b, 1, 4, TF_KIND_FREE, P);
	tb_alloc(b, 1, 6, TF_KIND_MALLOC, 3, 50, Q);
	tb_free(b, 1, 9, TF_KIND_FREE, Q);
	tb_flush(b, 1);
	tb_tick(b, 10, 5000000, 1 << 20);
	tb_end(b, 6000000, 7);
	tb_finish(b);
	return b;
}

static void test_cross_thread(void **state)
{
	(void)state;
	struct tb *b = build_cross_thread();
	struct ana_profile *p = replay(b, 0);

	assert_true(p->complete);
	assert_int_equal(p->pid, 4242);
	assert_string_equal(p->command, "./prog arg");
	assert_string_equal(p->exe, "/bin/prog");
	assert_int_equal(p->duration_ns, 6000000);
	assert_int_equal(p->totals.allocations, 4);
	assert_int_equal(p->totals.bytes_allocated, 360);
	assert_int_equal(p->totals.frees, 3);
	assert_int_equal(p->totals.temporary, 2);
	assert_int_equal(p->totals.temporary_bytes, 150);
	assert_int_equal(p->totals.peak_heap_bytes, 260);
	assert_int_equal(p->totals.peak_time_ns, 5000000);
	assert_int_equal(p->totals.peak_rss_bytes, 1 << 20);
	assert_int_equal(p->totals.leaked_allocations, 1);
	assert_int_equal(p->totals.leaked_bytes, 10);
	assert_int_equal(p->totals.unmatched_frees, 0);
	assert_int_equal(p->totals.inconsistent, 0);
	assert_int_equal(p->totals.late_events, 0);

	assert_non_null(ana_profile_node(p, 2));
	assert_non_null(ana_profile_node(p, 3));
	const struct ana_site *n2 = ana_profile_site(p, 2), *n3 = ana_profile_site(p, 3);
	assert_int_equal(n2->alloc_calls, 2);
	assert_int_equal(n2->alloc_bytes, 210);
	assert_int_equal(n2->temp_calls, 0);
	assert_int_equal(n2->peak_blocks, 2);
	assert_int_equal(n2->peak_bytes, 210);
	assert_int_equal(n2->live_blocks, 1);
	assert_int_equal(n2->live_bytes, 10);
	assert_int_equal(n3->alloc_calls, 2);
	assert_int_equal(n3->temp_calls, 2);
	assert_int_equal(n3->temp_bytes, 150);
	assert_int_equal(n3->peak_blocks, 1);
	assert_int_equal(n3->peak_bytes, 50);
	assert_int_equal(n3->live_blocks, 0);
	assert_int_equal(ana_profile_site(p, 1)->alloc_calls, 0);
	assert_int_equal(ana_profile_mark_used(p), 3);
	ana_profile_free(p);
	tb_free_all(b);
}

/* Events are released only below the watermark; the rest waits. */
static void test_watermark(void **state)
{
	(void)state;
	struct tb *b = tb_new();

	tb_node(b, 0, 1, 0, 0x500000);
	tb_node(b, 1, 2, 0, 0x500100);
	tb_alloc(b, 0, 1, TF_KIND_MALLOC, 1, 1000, P);
	tb_flush(b, 0);
	tb_alloc(b, 1, 2, TF_KIND_MALLOC, 2, 24, Q);
	tb_flush(b, 1);
	/* seq 3 (stream 0 frees P) is not yet written: watermark 3. */
	tb_tick(b, 3, 1000000, 4096);
	tb_free(b, 0, 3, TF_KIND_FREE, P);
	tb_alloc(b, 0, 5, TF_KIND_MALLOC, 1, 8, R);
	tb_flush(b, 0);
	/* Stream 1 frees Q at seq 4 but writes it late. */
	tb_tick(b, 4, 2000000, 8192);
	tb_free(b, 1, 4, TF_KIND_FREE, Q);
	tb_flush(b, 1);
	tb_tick(b, 6, 3000000, 0);
	tb_end(b, 3500000, 5);
	tb_finish(b);

	struct ana_profile *p = replay(b, 0);
	assert_int_equal(p->totals.peak_heap_bytes, 1024);
	assert_int_equal(p->totals.peak_time_ns, 1000000);
	assert_int_equal(p->totals.peak_rss_bytes, 8192);
	assert_int_equal(p->totals.n_ticks, 3);
	assert_int_equal(p->totals.leaked_bytes, 8);
	assert_int_equal(p->totals.leaked_allocations, 1);
	/* P: stream 0 made no other allocation before its free (R is seq 5). */
	assert_int_equal(p->totals.temporary, 2);
	assert_int_equal(ana_profile_site(p, 1)->peak_bytes, 1000);
	assert_int_equal(ana_profile_site(p, 2)->peak_bytes, 24);
	ana_profile_free(p);
	tb_free_all(b);
}

/* realloc halves, failed allocations, unmatched frees, lost frees. */
static void test_realloc_and_oddities(void **state)
{
	(void)state;
	struct tb *b = tb_new();

	tb_node(b, 0, 1, 0, 0x600000);
	tb_node(b, 0, 2, 1, 0x600010);
	tb_alloc(b, 0, 1, TF_KIND_MALLOC, 2, 16, P);
	tb_free(b, 0, 2, TF_KIND_REALLOC, P);
	tb_alloc(b, 0, 3, TF_KIND_REALLOC, 2, 64, Q);
	tb_alloc(b, 0, 4, TF_KIND_CALLOC, 2, 32, 0); /* failed */
	tb_free(b, 0, 5, TF_KIND_FREE, 0xdead0);     /* before recording */
	tb_alloc(b, 0, 6, TF_KIND_MALLOC, 2, 8, R);
	tb_alloc(b, 0, 7, TF_KIND_MALLOC, 2, 4, R);  /* lost free of R */
	tb_free(b, 0, 8, TF_KIND_FREE, Q);
	tb_flush(b, 0);
	tb_end(b, 100, 8);
	tb_finish(b);

	struct ana_profile *p = replay(b, 0);
	assert_int_equal(p->totals.allocations, 5);
	assert_int_equal(p->totals.failed_allocations, 1);
	assert_int_equal(p->totals.bytes_allocated, 16 + 64 + 8 + 4);
	assert_int_equal(p->totals.frees, 2);
	assert_int_equal(p->totals.unmatched_frees, 1);
	assert_int_equal(p->totals.inconsistent, 1);
	/* P is released by the realloc right after it was allocated. */
	assert_int_equal(p->totals.temporary, 1);
	assert_int_equal(p->totals.temporary_bytes, 16);
	assert_int_equal(p->totals.peak_heap_bytes, 72);
	assert_int_equal(p->totals.leaked_allocations, 1);
	assert_int_equal(p->totals.leaked_bytes, 4);
	assert_int_equal(p->totals.peak_time_ns, 100);
	ana_profile_free(p);

	/* With a gap of 3, Q's free (3 allocations after it) is temporary too. */
	p = replay(b, 3);
	assert_int_equal(p->totals.temporary, 2);
	assert_int_equal(p->totals.temporary_bytes, 16 + 64);
	ana_profile_free(p);
	tb_free_all(b);
}

/* A thread reuses a node another thread inserted: its child NODE can be
 * in the file before the parent's; linked when the event is replayed. */
static void test_node_order(void **state)
{
	(void)state;
	struct tb *b = tb_new();
	struct ana_profile *p = NULL;
	char err[256] = "";

	tb_node(b, 1, 3, 2, 0x800300);
	tb_alloc(b, 1, 2, TF_KIND_MALLOC, 3, 10, Q);
	tb_flush(b, 1);
	tb_node(b, 0, 1, 0, 0x800100);
	tb_node(b, 0, 2, 1, 0x800200);
	tb_alloc(b, 0, 1, TF_KIND_MALLOC, 2, 20, P);
	tb_flush(b, 0);
	tb_tick(b, 3, 1, 0);
	tb_end(b, 2, 2);
	tb_finish(b);
	p = replay(b, 0);
	assert_int_equal(p->totals.allocations, 2);
	assert_int_equal(ana_profile_mark_used(p), 3);
	assert_int_equal(ana_profile_node(p, 3)->parent_idx, 2); /* definition order */
	ana_profile_free(p);
	tb_free_all(b);

	/* A parent that never comes is an error when the event is replayed. */
	b = tb_new();
	tb_node(b, 1, 3, 2, 0x800300);
	tb_alloc(b, 1, 1, TF_KIND_MALLOC, 3, 10, Q);
	tb_flush(b, 1);
	tb_end(b, 2, 1);
	tb_finish(b);
	assert_int_equal(ana_replay_mem(b->file, b->file_len, "orphan", NULL, &p, err,
					sizeof(err)), -CM_E_CORRUPT);
	assert_non_null(strstr(err, "ancestor 2 is undefined"));
	tb_free_all(b);
}

/* A trace cut short: what was read is replayed, complete = false. */
static void test_truncated(void **state)
{
	(void)state;
	struct tb *b = tb_new();
	struct ana_profile *p = NULL;
	char err[256];

	tb_node(b, 0, 1, 0, 0x700000);
	tb_alloc(b, 0, 1, TF_KIND_MALLOC, 1, 100, P);
	tb_alloc(b, 0, 2, TF_KIND_MALLOC, 1, 200, Q);
	tb_flush(b, 0);
	tb_tick(b, 2, 10, 0);
	tb_free(b, 0, 3, TF_KIND_FREE, P);
	tb_flush(b, 0);
	tb_tick(b, 4, 20, 0);
	tb_finish(b);

	assert_int_equal(ana_replay_mem(b->file, b->file_len, "cut", NULL, &p, err,
					sizeof(err)), 0);
	assert_false(p->complete);
	assert_int_equal(p->totals.allocations, 2);
	assert_int_equal(p->totals.frees, 1);
	assert_int_equal(p->totals.peak_heap_bytes, 300);
	assert_int_equal(p->totals.leaked_bytes, 200);
	assert_int_equal(p->duration_ns, 20);
	ana_profile_free(p);

	/* Every prefix either replays or fails cleanly. */
	for (size_t len = 0; len < b->file_len; len++) {
		p = NULL;
		int rc = ana_replay_mem(b->file, len, "cut", NULL, &p, err, sizeof(err));
		if (rc == 0) {
			assert_false(p->complete);
			ana_profile_free(p);
		} else {
			assert_true(rc < 0);
			assert_true(err[0] != 0);
		}
	}
	tb_free_all(b);
}

/* An event naming an undefined node is a corrupt trace, with the offset. */
static void test_undefined_node(void **state)
{
	(void)state;
	struct tb *b = tb_new();
	struct ana_profile *p = NULL;
	char err[256] = "";

	tb_node(b, 0, 1, 0, 0x700000);
	tb_alloc(b, 0, 1, TF_KIND_MALLOC, 7, 100, P);
	tb_flush(b, 0);
	tb_end(b, 1, 1);
	tb_finish(b);
	assert_int_equal(ana_replay_mem(b->file, b->file_len, "bad", NULL, &p, err,
					sizeof(err)), -CM_E_CORRUPT);
	assert_null(p);
	assert_non_null(strstr(err, "'bad'"));
	assert_non_null(strstr(err, "at byte"));
	assert_non_null(strstr(err, "undefined stack node 7"));
	tb_free_all(b);
}

/* Random bytes after a valid header, flipped bytes: never a crash. */
static void test_garbage(void **state)
{
	(void)state;
	struct tb *b = build_cross_thread();
	struct ana_profile *p;
	char err[256];
	uint8_t *copy = malloc(b->file_len);

	assert_non_null(copy);
	for (size_t i = 0; i < b->file_len; i++) {
		memcpy(copy, b->file, b->file_len);
		copy[i] ^= 0x5a;
		p = NULL;
		if (ana_replay_mem(copy, b->file_len, "flip", NULL, &p, err, sizeof(err)) == 0)
			ana_profile_free(p);
	}
	/* Not a trace at all. */
	p = NULL;
	assert_true(ana_replay_mem("hello world, not a trace", 24, "txt", NULL, &p, err,
				   sizeof(err)) < 0);
	assert_true(ana_replay_mem("", 0, "empty", NULL, &p, err, sizeof(err)) < 0);
	free(copy);
	tb_free_all(b);
}

/* Through the database: ingest a file, report from the database. */
static void test_ingest_report(void **state)
{
	(void)state;
	struct tb *b = build_cross_thread();
	char path[] = "/tmp/test_ana_replay.XXXXXX";
	int fd = mkstemp(path);
	struct ana_db *db = NULL;
	struct ana_ingest_info info;
	struct ana_report *rep = NULL;
	char err[512] = "";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b->file, b->file_len), (ssize_t)b->file_len);
	close(fd);
	if (ana_ingest(path, ":memory:", NULL, &db, &info, err, sizeof(err)) < 0)
		fail_msg("ingest: %s", err);
	unlink(path);
	assert_true(info.complete);
	assert_int_equal(ana_report_load(db, "mem", 10, &rep, err, sizeof(err)), 0);
	assert_int_equal(rep->allocations, 4);
	assert_int_equal(rep->frees, 3);
	assert_int_equal(rep->temporary, 2);
	assert_int_equal(rep->peak_heap_bytes, 260);
	assert_int_equal(rep->leaked_bytes, 10);
	assert_int_equal(rep->n_sites[ANA_LIST_ALLOCATIONS], 2);
	assert_int_equal(rep->n_sites[ANA_LIST_PEAK], 2);
	assert_int_equal(rep->sites[ANA_LIST_PEAK][0].bytes, 210);
	assert_int_equal(rep->sites[ANA_LIST_PEAK][0].calls, 2);
	assert_int_equal(rep->n_sites[ANA_LIST_LEAKED], 1);
	assert_int_equal(rep->sites[ANA_LIST_LEAKED][0].bytes, 10);
	assert_int_equal(rep->n_sites[ANA_LIST_TEMPORARY], 1);
	assert_int_equal(rep->sites[ANA_LIST_TEMPORARY][0].calls, 2);
	/* No modules: frames fall back to raw addresses, leaf first. */
	assert_int_equal(rep->sites[ANA_LIST_LEAKED][0].n_frames, 2);
	assert_string_equal(rep->sites[ANA_LIST_LEAKED][0].frames[0].function, "0x400200");
	assert_string_equal(rep->sites[ANA_LIST_LEAKED][0].frames[1].function, "0x400100");
	ana_report_free(rep);
	ana_db_free(db);
	tb_free_all(b);
}

/* Random events over three streams, chunks flushed at random points and
 * ticks at the largest safe watermark, against a straightforward model
 * replayed in seq order (full peak snapshot copies, linear lookups). */
#define RND_NODES 8
#define RND_ADDRS 64
#define RND_EVENTS 20000

struct model_block {
	int live, node, stream;
	uint64_t size, alloc_index;
};

static void test_random_model(void **state)
{
	(void)state;
	struct model_block blk[RND_ADDRS];
	uint64_t live_b[RND_NODES + 1] = { 0 }, peak_b[RND_NODES + 1] = { 0 };
	uint64_t live_n[RND_NODES + 1] = { 0 }, peak_n[RND_NODES + 1] = { 0 };
	uint64_t temp[RND_NODES + 1] = { 0 }, calls[RND_NODES + 1] = { 0 };
	uint64_t n_allocs[3] = { 0 }, pending_first[3] = { 0 };
	uint64_t heap = 0, peak = 0, allocs = 0, frees = 0, temps = 0;
	unsigned seed = 12345;
	struct tb *b = tb_new();

	memset(blk, 0, sizeof(blk));
	for (int n = 1; n <= RND_NODES; n++)
		tb_node(b, n % 3, (uint32_t)n, 0, 0x900000 + (uint64_t)n * 16);
	for (int s = 0; s < 3; s++)
		tb_flush(b, s);
	for (uint64_t seq = 1; seq <= RND_EVENTS; seq++) {
		int s = rand_r(&seed) % 3;
		int a = rand_r(&seed) % RND_ADDRS;
		uint64_t addr = 0x10000 + (uint64_t)a * 0x40;

		if (!pending_first[s])
			pending_first[s] = seq;
		if (blk[a].live) {
			struct model_block *k = &blk[a];
			tb_free(b, s, seq, TF_KIND_FREE, addr);
			frees++;
			if (n_allocs[k->stream] == k->alloc_index) {
				temp[k->node]++;
				temps++;
			}
			k->live = 0;
			live_b[k->node]--;
			live_n[k->node] -= k->size;
			heap -= k->size;
		} else {
			int node = 1 + rand_r(&seed) % RND_NODES;
			uint64_t size = 1 + (uint64_t)(rand_r(&seed) % 1000);
			tb_alloc(b, s, seq, TF_KIND_MALLOC, (uint32_t)node, size, addr);
			allocs++;
			calls[node]++;
			n_allocs[s]++;
			blk[a] = (struct model_block){ 1, node, s, size, n_allocs[s] };
			live_b[node]++;
			live_n[node] += size;
			heap += size;
			if (heap > peak) {
				peak = heap;
				memcpy(peak_b, live_b, sizeof(peak_b));
				memcpy(peak_n, live_n, sizeof(peak_n));
			}
		}
		if (rand_r(&seed) % 7 == 0) {
			tb_flush(b, s);
			pending_first[s] = 0;
		}
		if (rand_r(&seed) % 11 == 0) {
			uint64_t wm = seq + 1;
			for (int k = 0; k < 3; k++)
				if (pending_first[k] && pending_first[k] < wm)
					wm = pending_first[k];
			tb_tick(b, wm, seq, 0);
		}
	}
	for (int s = 0; s < 3; s++)
		tb_flush(b, s);
	tb_end(b, RND_EVENTS + 1, RND_EVENTS);
	tb_finish(b);

	struct ana_profile *p = replay(b, 0);
	assert_int_equal(p->totals.allocations, allocs);
	assert_int_equal(p->totals.frees, frees);
	assert_int_equal(p->totals.temporary, temps);
	assert_int_equal(p->totals.peak_heap_bytes, peak);
	assert_int_equal(p->totals.leaked_bytes, heap);
	assert_int_equal(p->totals.unmatched_frees, 0);
	assert_int_equal(p->totals.inconsistent, 0);
	assert_int_equal(p->totals.late_events, 0);
	for (uint32_t n = 1; n <= RND_NODES; n++) {
		const struct ana_site *nd = ana_profile_site(p, n);
		assert_int_equal(nd->alloc_calls, calls[n]);
		assert_int_equal(nd->temp_calls, temp[n]);
		assert_int_equal(nd->peak_blocks, peak_b[n]);
		assert_int_equal(nd->peak_bytes, peak_n[n]);
		assert_int_equal(nd->live_blocks, live_b[n]);
		assert_int_equal(nd->live_bytes, live_n[n]);
	}
	ana_profile_free(p);
	tb_free_all(b);
}

/* Node ids: 1, 2, 3... need no index until an allocation without a
 * backtrace (synthetic node, id 0) or an id out of order arrives; lookups
 * stay right across both switches. */
static void test_node_ids(void **state)
{
	(void)state;
	struct tb *b = tb_new();

	tb_node(b, 0, 1, 0, 0x400100);
	tb_node(b, 0, 2, 1, 0x400200);
	tb_alloc(b, 0, 1, TF_KIND_MALLOC, 2, 10, P);
	tb_alloc(b, 0, 2, TF_KIND_MALLOC, 0, 20, Q); /* no backtrace */
	tb_flush(b, 0);
	tb_tick(b, 3, 10, 0);
	tb_node(b, 0, 3, 2, 0x400300);
	tb_node(b, 0, 9, 3, 0x400900);               /* out of order */
	tb_alloc(b, 0, 3, TF_KIND_MALLOC, 3, 30, R);
	tb_alloc(b, 0, 4, TF_KIND_MALLOC, 9, 40, R + 0x100);
	tb_flush(b, 0);
	tb_end(b, 5, 4);
	tb_finish(b);

	struct ana_profile *p = replay(b, 0);
	assert_true(p->ids_indexed);
	assert_int_equal(ana_profile_site(p, 2)->alloc_bytes, 10);
	assert_int_equal(ana_profile_site(p, 3)->alloc_bytes, 30);
	assert_int_equal(ana_profile_site(p, 9)->alloc_bytes, 40);
	assert_int_equal(ana_profile_site(p, 1)->alloc_calls, 0);
	assert_null(ana_profile_node(p, 4));
	const struct ana_node *n9 = ana_profile_node(p, 9);
	assert_non_null(n9);
	assert_int_equal(n9->addr, 0x400900);
	assert_int_equal(ana_profile_parent_id(p, n9), 3);
	assert_int_equal(ana_profile_node_id(p, (size_t)(n9 - p->nodes)), 9);
	/* the synthetic node sits between 2 and 3, with id 0 */
	assert_int_equal(ana_profile_node_id(p, 2), 0);
	assert_int_equal(p->sites[p->nodes[2].site].alloc_bytes, 20);
	assert_int_equal(ana_profile_mark_used(p), 5);
	ana_profile_free(p);
	tb_free_all(b);
}

/* Many live blocks (the live table grows by doubling and deletes by
 * backward shift), addresses that collide in the low bits, node ids that
 * start dense and turn sparse (the id index moves to the hash map), and a
 * trace long enough for several decoding batches (the decoding thread):
 * against a model. */
#define ML_BLOCKS 150000
#define ML_NODES 40

static void test_many_live(void **state)
{
	(void)state;
	static uint8_t live[ML_BLOCKS];
	static uint64_t size_of[ML_BLOCKS];
	static uint8_t node_of[ML_BLOCKS];
	uint64_t live_b[ML_NODES] = { 0 }, live_n[ML_NODES] = { 0 };
	uint64_t peak_b[ML_NODES] = { 0 }, peak_n[ML_NODES] = { 0 }, calls[ML_NODES] = { 0 };
	uint64_t heap = 0, peak = 0, seq = 0, frees = 0;
	uint32_t ids[ML_NODES];
	unsigned seed = 777;
	struct tb *b = tb_new();

	/* Half the ids dense from 1, then far apart. */
	for (int n = 0; n < ML_NODES; n++) {
		ids[n] = n < ML_NODES / 2 ? (uint32_t)n + 1 : 1000000u * (uint32_t)n;
		tb_node(b, 0, ids[n], 0, 0x400000 + (uint64_t)n * 16);
	}
	memset(live, 0, sizeof(live));
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < ML_BLOCKS; i++) {
			int k = round ? rand_r(&seed) % ML_BLOCKS : i;
			/* Two address families that agree in their low 20 bits. */
			uint64_t addr = (k & 1 ? 0x7f0000000000ull : 0x550000000000ull) +
					(uint64_t)(k >> 1) * 0x100000 + 0x10;
			seq++;
			if (live[k]) {
				tb_free(b, 0, seq, TF_KIND_FREE, addr);
				frees++;
				live[k] = 0;
				live_b[node_of[k]]--;
				live_n[node_of[k]] -= size_of[k];
				heap -= size_of[k];
			} else {
				int n = rand_r(&seed) % ML_NODES;
				uint64_t sz = 16 + (uint64_t)(rand_r(&seed) % 500);
				tb_alloc(b, 0, seq, TF_KIND_MALLOC, ids[n], sz, addr);
				calls[n]++;
				live[k] = 1;
				node_of[k] = (uint8_t)n;
				size_of[k] = sz;
				live_b[n]++;
				live_n[n] += sz;
				heap += sz;
				if (heap > peak) {
					peak = heap;
					memcpy(peak_b, live_b, sizeof(peak_b));
					memcpy(peak_n, live_n, sizeof(peak_n));
				}
			}
			if (b->clen[0] + 64 > TB_CHUNK_CAP)
				tb_flush(b, 0);
			if (seq % 5000 == 0) {
				tb_flush(b, 0);
				tb_tick(b, seq + 1, seq, 0);
			}
		}
	}
	tb_flush(b, 0);
	tb_end(b, seq + 1, seq);
	tb_finish(b);

	struct ana_profile *p = replay(b, 0);
	assert_true(p->complete);
	assert_int_equal(p->totals.frees, frees);
	assert_int_equal(p->totals.allocations, seq - frees);
	assert_int_equal(p->totals.peak_heap_bytes, peak);
	assert_int_equal(p->totals.leaked_bytes, heap);
	assert_int_equal(p->totals.unmatched_frees, 0);
	assert_int_equal(p->totals.inconsistent, 0);
	assert_true(p->dense_off);
	for (int n = 0; n < ML_NODES; n++) {
		const struct ana_site *st = ana_profile_site(p, ids[n]);
		assert_int_equal(st->alloc_calls, calls[n]);
		assert_int_equal(st->live_blocks, live_b[n]);
		assert_int_equal(st->live_bytes, live_n[n]);
		assert_int_equal(st->peak_blocks, peak_b[n]);
		assert_int_equal(st->peak_bytes, peak_n[n]);
		assert_int_equal(ana_profile_node(p, ids[n])->addr, 0x400000 + (uint64_t)n * 16);
	}
	ana_profile_free(p);

	/* Cut anywhere after the first batches: a clean truncated replay. */
	for (size_t len = b->file_len / 3; len < b->file_len; len += b->file_len / 3) {
		char err[256] = "";
		p = NULL;
		int rc = ana_replay_mem(b->file, len, "cut", NULL, &p, err, sizeof(err));
		assert_int_equal(rc, 0);
		assert_false(p->complete);
		assert_true(p->totals.allocations > 0);
		ana_profile_free(p);
	}
	tb_free_all(b);
}

/* The database of `memana report TRACE` (only the top sites of each list)
 * reads like the database of every site, ties included. */
static void test_report_subset(void **state)
{
	(void)state;
	struct tb *b = tb_new();
	char path[] = "/tmp/test_ana_replay.XXXXXX";
	int fd = mkstemp(path);
	char err[512] = "";
	uint64_t seq = 0;

	/* 30 sites with equal and different counts and bytes, under a
	 * shared parent. */
	tb_node(b, 0, 1, 0, 0x400000);
	for (uint32_t n = 2; n <= 31; n++)
		tb_node(b, 0, n, 1, 0x400100 + n);
	for (uint32_t n = 2; n <= 31; n++)
		for (uint32_t k = 0; k < n % 4 + 1; k++) {
			uint64_t addr = 0x10000 + (uint64_t)n * 0x1000 + k * 0x40;
			tb_alloc(b, 0, ++seq, TF_KIND_MALLOC, n, 8 * (n % 3 + 1), addr);
			if ((n + k) % 3 == 0)
				tb_free(b, 0, ++seq, TF_KIND_FREE, addr);
		}
	tb_flush(b, 0);
	tb_end(b, seq + 1, seq);
	tb_finish(b);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b->file, b->file_len), (ssize_t)b->file_len);
	close(fd);

	for (unsigned top = 0; top <= 12; top += 3) {
		struct ana_ingest_opts sub = { .report_only = true, .report_top = top };
		struct ana_db *db_all = NULL, *db_sub = NULL;
		struct ana_report *all = NULL, *part = NULL;

		if (ana_ingest(path, ":memory:", NULL, &db_all, NULL, err, sizeof(err)) < 0 ||
		    ana_ingest(path, ":memory:", &sub, &db_sub, NULL, err, sizeof(err)) < 0)
			fail_msg("ingest: %s", err);
		assert_int_equal(ana_report_load(db_all, "all", top, &all, err, sizeof(err)), 0);
		assert_int_equal(ana_report_load(db_sub, "sub", top, &part, err, sizeof(err)), 0);
		for (int l = 0; l < ANA_N_LISTS; l++) {
			assert_int_equal(all->n_sites[l], part->n_sites[l]);
			assert_true(all->n_sites[l] <= top);
			for (size_t i = 0; i < all->n_sites[l]; i++) {
				assert_int_equal(all->sites[l][i].node_id, part->sites[l][i].node_id);
				assert_int_equal(all->sites[l][i].calls, part->sites[l][i].calls);
				assert_int_equal(all->sites[l][i].bytes, part->sites[l][i].bytes);
				assert_int_equal(all->sites[l][i].n_frames, part->sites[l][i].n_frames);
			}
		}
		assert_int_equal(all->peak_heap_bytes, part->peak_heap_bytes);
		assert_int_equal(all->leaked_bytes, part->leaked_bytes);
		ana_report_free(all);
		ana_report_free(part);
		ana_db_free(db_all);
		ana_db_free(db_sub);
	}
	unlink(path);
	tb_free_all(b);
}

/* Histograms and the block callback: one stream, ticks at known times. Site
 * node 2 allocates sizes 10, 10, 100 and 0 (buckets 4, 4, 7, 0: the inline
 * bucket and the spill table); lifetimes 0 ms / 1 allocation between,
 * 50 ms / 1 between, 1000 ms / 0 between; one block never freed. */
struct blocks_seen {
	int n, n_freed;
	struct ana_block b[8];
};

static int on_block(void *ctx, const struct ana_block *b)
{
	struct blocks_seen *s = ctx;

	if (s->n < 8)
		s->b[s->n] = *b;
	s->n++;
	s->n_freed += b->freed;
	return 0;
}

static void test_histograms(void **state)
{
	(void)state;
	struct tb *b = tb_new();
	struct blocks_seen seen = { 0 };
	struct ana_replay_opts o = { .on_block = on_block, .block_ctx = &seen };
	struct ana_profile *p = NULL;
	uint64_t c[ANA_HIST_BUCKETS];
	char err[256] = "";

	tb_thread(b, 0, 1, 100);
	tb_node(b, 0, 1, 0, 0x400100);
	tb_node(b, 0, 2, 1, 0x400200);
	tb_alloc(b, 0, 2, TF_KIND_MALLOC, 2, 10, P);  /* freed at 3: 1 between, 0 ms */
	tb_alloc(b, 0, 3, TF_KIND_CALLOC, 2, 10, Q);  /* freed at 6: 1 between, 50 ms */
	tb_free(b, 0, 4, TF_KIND_FREE, P);
	tb_flush(b, 0);
	tb_tick(b, 5, 5000000, 0);
	tb_alloc(b, 0, 5, TF_KIND_MALLOC, 2, 100, R); /* freed at 7: 0 between, 1000 ms */
	tb_free(b, 0, 6, TF_KIND_REALLOC, Q);
	tb_flush(b, 0);
	tb_tick(b, 7, 55000000, 0);
	tb_free(b, 0, 7, TF_KIND_FREE, R);
	tb_alloc(b, 0, 8, TF_KIND_MALLOC, 2, 0, P);   /* never freed */
	tb_flush(b, 0);
	tb_tick(b, 9, 1055000000, 0);
	tb_end(b, 1056000000, 7);
	tb_finish(b);
	if (ana_replay_mem(b->file, b->file_len, "mem", &o, &p, err, sizeof(err)) < 0)
		fail_msg("replay: %s", err);

	/* the program */
	assert_int_equal(p->hist[ANA_HIST_SIZE][0].count, 1);
	assert_int_equal(p->hist[ANA_HIST_SIZE][4].count, 2);
	assert_int_equal(p->hist[ANA_HIST_SIZE][4].bytes, 20);
	assert_int_equal(p->hist[ANA_HIST_SIZE][7].count, 1);
	assert_int_equal(p->hist[ANA_HIST_LIFETIME_MS][0].count, 1);
	assert_int_equal(p->hist[ANA_HIST_LIFETIME_MS][ana_hist_bucket(50)].count, 1);
	assert_int_equal(p->hist[ANA_HIST_LIFETIME_MS][ana_hist_bucket(1000)].count, 1);
	assert_int_equal(p->hist[ANA_HIST_LIFETIME_MS][ana_hist_bucket(1000)].bytes, 100);
	assert_int_equal(p->hist[ANA_HIST_LIFETIME_ALLOCS][1].count, 2);
	assert_int_equal(p->hist[ANA_HIST_LIFETIME_ALLOCS][0].count, 1);
	/* the site, inline bucket and spill together */
	const struct ana_node *n = ana_profile_node(p, 2);
	assert_non_null(n);
	ana_profile_site_hist(p, n->site, ANA_HIST_SIZE, c);
	assert_int_equal(c[4], 2);
	assert_int_equal(c[7], 1);
	assert_int_equal(c[0], 1);
	assert_int_equal(c[1] + c[2] + c[3] + c[5] + c[6], 0);
	ana_profile_site_hist(p, n->site, ANA_HIST_LIFETIME_ALLOCS, c);
	assert_int_equal(c[1], 2);
	assert_int_equal(c[0], 1);
	/* the blocks: three released in order, then the live one */
	assert_int_equal(seen.n, 4);
	assert_int_equal(seen.n_freed, 3);
	assert_int_equal(seen.b[0].addr, P);
	assert_int_equal(seen.b[0].birth_seq, 2);
	assert_int_equal(seen.b[0].death_seq, 4);
	assert_int_equal(seen.b[0].lifetime_allocs, 1);
	assert_int_equal(seen.b[0].birth_ns, 5000000);
	assert_int_equal(seen.b[0].death_ns, 5000000);
	assert_true(!seen.b[0].temporary);
	assert_int_equal(seen.b[1].addr, Q);
	assert_int_equal(seen.b[1].kind, TF_KIND_CALLOC);
	assert_int_equal(seen.b[1].freed_by, TF_KIND_REALLOC);
	assert_int_equal(seen.b[1].death_ns - seen.b[1].birth_ns, 50000000);
	assert_int_equal(seen.b[2].addr, R);
	assert_true(seen.b[2].temporary);
	assert_int_equal(seen.b[2].death_ns - seen.b[2].birth_ns, 1000000000);
	assert_int_equal(seen.b[3].addr, P);
	assert_true(!seen.b[3].freed);
	assert_int_equal(seen.b[3].birth_seq, 8);
	assert_int_equal(seen.b[3].node_id, 2);
	assert_int_equal(p->totals.peak_seq, 5); /* 10 + 100 live after seq 5 */
	ana_profile_free(p);
	tb_free_all(b);
}

/* Many sites with several size buckets each (the spill table grows and is
 * sorted), checked against counts kept here. */
static void test_site_hist_spill(void **state)
{
	(void)state;
	enum { SITES = 600, PER = 6 };
	struct tb *b = tb_new();
	static uint64_t want[SITES + 1][ANA_HIST_BUCKETS];
	uint64_t seq = 1, c[ANA_HIST_BUCKETS];
	struct ana_profile *p;

	memset(want, 0, sizeof(want));
	tb_thread(b, 0, seq++, 100);
	for (uint32_t id = 1; id <= SITES; id++) {
		tb_node(b, 0, id, 0, 0x400000 + id * 16);
		for (int k = 0; k < PER; k++) {
			uint64_t size = (uint64_t)1 << ((id + (uint32_t)k * 7) % 20);
			uint64_t addr = 0x10000000 + ((uint64_t)id * PER + (uint64_t)k) * 64;
			tb_alloc(b, 0, seq++, TF_KIND_MALLOC, id, size, addr);
			tb_free(b, 0, seq++, TF_KIND_FREE, addr);
			want[id][ana_hist_bucket(size)]++;
		}
		if (id % 50 == 0)
			tb_flush(b, 0);
	}
	tb_flush(b, 0);
	tb_end(b, 1000, seq);
	tb_finish(b);
	p = replay(b, 0);
	assert_true(p->n_hist > 0);
	for (size_t i = 1; i < p->n_hist; i++)
		assert_true(p->hist_keys[i - 1] < p->hist_keys[i]);
	for (uint32_t id = 1; id <= SITES; id++) {
		const struct ana_node *n = ana_profile_node(p, id);
		assert_non_null(n);
		ana_profile_site_hist(p, n->site, ANA_HIST_SIZE, c);
		for (unsigned k = 0; k < ANA_HIST_BUCKETS; k++)
			if (c[k] != want[id][k])
				fail_msg("site %u bucket %u: %llu, want %llu", id, k,
					 (unsigned long long)c[k], (unsigned long long)want[id][k]);
		ana_profile_site_hist(p, n->site, ANA_HIST_LIFETIME_ALLOCS, c);
		assert_int_equal(c[0], PER);
	}
	ana_profile_free(p);
	tb_free_all(b);
}

/* Phases: two threads, nested phases, a block born in a child phase and
 * freed after the child closed (its parent's "left behind"), a block born
 * before a phase freed inside it (nobody's), a marker, an unmatched end. */
struct phases_seen {
	int n;
	struct ana_phase ph[8];
	char names[8][16];
	int n_marks;
	uint64_t mark_heap;
};

static int on_phase_cb(void *ctx, const struct ana_phase *ph)
{
	struct phases_seen *s = ctx;

	if (s->n < 8) {
		s->ph[s->n] = *ph;
		snprintf(s->names[s->n], sizeof(s->names[0]), "%.*s", (int)ph->name_len, ph->name);
		s->ph[s->n].name = s->names[s->n];
	}
	s->n++;
	return 0;
}

static int on_marker_cb(void *ctx, const struct ana_marker *m)
{
	struct phases_seen *s = ctx;

	s->n_marks++;
	s->mark_heap = m->heap_bytes;
	return 0;
}

static const struct ana_phase *phase_named(struct phases_seen *s, const char *name)
{
	for (int i = 0; i < s->n && i < 8; i++)
		if (!strcmp(s->names[i], name))
			return &s->ph[i];
	fail_msg("no phase %s", name);
	return NULL;
}

static void test_phases(void **state)
{
	(void)state;
	struct tb *b = tb_new();
	struct phases_seen seen = { 0 };
	struct ana_replay_opts o = { .on_phase = on_phase_cb, .on_marker = on_marker_cb,
				     .phase_ctx = &seen };
	struct ana_profile *p = NULL;
	char err[256] = "";

	tb_thread(b, 0, 1, 100);
	tb_thread(b, 1, 2, 101);
	tb_node(b, 0, 1, 0, 0x400100);
	tb_alloc(b, 0, 3, TF_KIND_MALLOC, 1, 1000, 0x10000);  /* before any phase */
	tb_phase(b, 0, 4, TF_PHASE_BEGIN, "outer");
	tb_alloc(b, 0, 5, TF_KIND_MALLOC, 1, 100, 0x20000);   /* outer: left behind */
	tb_phase(b, 0, 6, TF_PHASE_BEGIN, "inner");
	tb_alloc(b, 0, 7, TF_KIND_MALLOC, 1, 10, 0x30000);    /* inner, freed in outer */
	tb_alloc(b, 0, 8, TF_KIND_MALLOC, 1, 20, 0x40000);    /* inner, freed in inner */
	tb_free(b, 0, 9, TF_KIND_FREE, 0x40000);
	tb_free(b, 0, 10, TF_KIND_FREE, 0x10000);             /* born before: nobody's */
	tb_phase(b, 0, 11, TF_PHASE_END, NULL);               /* inner */
	tb_phase(b, 1, 12, TF_PHASE_BEGIN, "other");          /* thread 1, not nested */
	tb_alloc(b, 1, 13, TF_KIND_MALLOC, 1, 5000, 0x50000); /* other: heap peak */
	tb_free(b, 1, 14, TF_KIND_FREE, 0x50000);
	tb_phase(b, 1, 15, TF_PHASE_END, NULL);
	tb_phase(b, 1, 16, TF_PHASE_END, NULL);               /* unmatched */
	tb_free(b, 0, 17, TF_KIND_FREE, 0x30000);
	tb_phase(b, 0, 18, TF_PHASE_MARK, "m");
	tb_phase(b, 0, 19, TF_PHASE_END, NULL);               /* outer */
	tb_flush(b, 0);
	tb_flush(b, 1);
	tb_end(b, 1000, 9);
	tb_finish(b);
	if (ana_replay_mem(b->file, b->file_len, "mem", &o, &p, err, sizeof(err)) < 0)
		fail_msg("replay: %s", err);
	assert_int_equal(seen.n, 3);
	const struct ana_phase *in = phase_named(&seen, "inner");
	assert_int_equal(in->alloc_calls, 2);
	assert_int_equal(in->alloc_bytes, 30);
	assert_int_equal(in->left_blocks, 1);
	assert_int_equal(in->left_bytes, 10);
	assert_int_equal(in->depth, 1);
	assert_int_equal(in->heap_begin, 1100);
	assert_int_equal(in->peak_heap_bytes, 1130);
	assert_int_equal(in->n_sites, 1);
	assert_int_equal(in->site_growth[0], 30);
	const struct ana_phase *out = phase_named(&seen, "outer");
	assert_int_equal(out->alloc_calls, 3);
	assert_int_equal(out->alloc_bytes, 130);
	assert_int_equal(out->left_blocks, 1); /* the 100; inner's 10 freed in outer */
	assert_int_equal(out->left_bytes, 100);
	assert_int_equal(out->peak_heap_bytes, 5110); /* other's block, on thread 1 */
	assert_int_equal(out->parent, 0);
	assert_int_equal(in->parent, out->id);
	assert_true(out->ended && in->ended);
	const struct ana_phase *oth = phase_named(&seen, "other");
	assert_int_equal(oth->alloc_calls, 1);
	assert_int_equal(oth->left_bytes, 0);
	assert_int_equal(oth->peak_heap_bytes, 5110);
	assert_int_equal(oth->depth, 0);
	assert_int_equal(seen.n_marks, 1);
	assert_int_equal(seen.mark_heap, 100);
	assert_int_equal(p->totals.unmatched_phase_ends, 1);
	ana_profile_free(p);
	tb_free_all(b);
}

/* More open phases than the limit: a clear error, every name freed once
 * (ASan), nothing else. */
static void test_phase_limit(void **state)
{
	(void)state;
	struct tb *b = tb_new();
	struct ana_profile *p = NULL;
	char err[256] = "";
	uint64_t seq = 2;

	tb_thread(b, 0, 1, 100);
	for (int i = 0; i < ANA_MAX_OPEN_PHASES + 1; i++) {
		tb_phase(b, 0, seq++, TF_PHASE_BEGIN, "p");
		if (i % 200 == 199)
			tb_flush(b, 0);
	}
	tb_flush(b, 0);
	tb_end(b, 1000, 0);
	tb_finish(b);
	assert_int_equal(ana_replay_mem(b->file, b->file_len, "mem", NULL, &p, err, sizeof(err)),
			 -CM_E_LIMIT);
	assert_non_null(strstr(err, "more than 1024 open phases"));
	assert_null(p);
	tb_free_all(b);
}

static void test_util(void **state)
{
	(void)state;
	uint64_t v = 0;

	assert_int_equal(ana_parse_size("1000", &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(ana_parse_size("4K", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(ana_parse_size("256M", &v), 0);
	assert_int_equal(v, 256u << 20);
	assert_int_equal(ana_parse_size("2GiB", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(ana_parse_size("3mib", &v), 0);
	assert_int_equal(v, 3u << 20);
	assert_true(ana_parse_size("", &v) < 0);
	assert_true(ana_parse_size("12X", &v) < 0);
	assert_true(ana_parse_size("-1", &v) < 0);
	assert_true(ana_parse_size("99999999999999999999", &v) < 0);
	assert_true(ana_parse_u64("18446744073709551616", &v) < 0);
	assert_int_equal(ana_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	ana_json_str(f, "a\"b\\c\n\x01\xff\xc3\xa9", 10);
	fclose(f);
	assert_string_equal(buf, "\"a\\\"b\\\\c\\n\\u0001\\u00ff\xc3\xa9\"");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cross_thread),
		cmocka_unit_test(test_watermark),
		cmocka_unit_test(test_realloc_and_oddities),
		cmocka_unit_test(test_node_order),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_undefined_node),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_ingest_report),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_node_ids),
		cmocka_unit_test(test_many_live),
		cmocka_unit_test(test_report_subset),
		cmocka_unit_test(test_histograms),
		cmocka_unit_test(test_site_hist_spill),
		cmocka_unit_test(test_phases),
		cmocka_unit_test(test_phase_limit),
		cmocka_unit_test(test_util),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
