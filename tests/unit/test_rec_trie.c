/* The recorder's stack trie, compiled in here with small tables (2^8 to 2^15
 * slots: every path of the chain is reached in milliseconds) and a pause
 * hook: ids dense from 1 across the table switches; the races at a switch
 * played step by step (a claim in the old table after the new one took
 * the key; an id taken after the new table began); 8 threads inserting the
 * same keys at once, each key getting one id; the node cap with the
 * outermost nodes' headroom; a table that cannot be mapped; bounded waits;
 * reset. Links rec_prim.o (rec_trie.c's only dependency). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

#define REC_TRIE_TEST 1
#define REC_TRIE_FIRST_LOG2 8
#define REC_TRIE_TABLES 8
#include "rec_trie.c"

#define CAP REC_TRIE_NODE_CAP /* 48 960 */

/* ---- the pause hook ---------------------------------------------------- */

static __thread int t_trap = -1; /* pause point where this thread stops once */
static sem_t g_trapped, g_release;
static _Atomic int g_pause_on; /* random pauses */
static _Atomic unsigned g_pauses;
static __thread uint64_t t_rng;

/* Called by rec_trie.c while walking the tables, before a claim, between a
 * claim and its check, before taking an id, and before a new table is
 * published. A thread with a trap at where stops there until released;
 * with random pauses on, it sometimes lets the other threads run. */
static void rec_trie_test_pause(int where)
{
	static const unsigned one_in[] = {
		[PAUSE_WALK] = 256, [PAUSE_CLAIM] = 16, [PAUSE_CHECK] = 16, [PAUSE_ID] = 16,
		[PAUSE_PUBLISH] = 1,
	};

	if (where == t_trap) {
		t_trap = -1;
		sem_post(&g_trapped);
		while (sem_wait(&g_release) != 0)
			;
		return;
	}
	if (!atomic_load_explicit(&g_pause_on, memory_order_relaxed))
		return;
	if (!t_rng)
		t_rng = (uint64_t)(uintptr_t)&t_rng | 1;
	t_rng ^= t_rng << 13;
	t_rng ^= t_rng >> 7;
	t_rng ^= t_rng << 17;
	if (t_rng % one_in[where] == 0) {
		atomic_fetch_add_explicit(&g_pauses, 1, memory_order_relaxed);
		sched_yield();
	}
}

/* ---- helpers ------------------------------------------------------------ */

/* The keys form a binary tree, as a trie's nodes: key 0 is outermost
 * (parent TF_NODE_ROOT), key i > 0 a child of key (i - 1) / 2, so a key's
 * parent is an id the trie gave (rec_trie_get() requires it). ids[] holds
 * the ids found so far. */
static uint64_t key_addr(uint32_t i)
{
	return 0x400000u + (uint64_t)i * 16;
}

static uint32_t get_key(const uint32_t *ids, uint32_t i, int *inserted)
{
	return rec_trie_get(i ? ids[(i - 1) / 2] : TF_NODE_ROOT, key_addr(i), inserted);
}

static uint32_t g_ids[1u << 16]; /* one thread's ids, key -> id */

/* Dead slots in all tables of the current trie. */
static uint32_t count_dead(void)
{
	uint32_t n = 0;

	for (uint32_t k = 0; k < atomic_load(&g_trie.n_tab); k++) {
		struct slot *tab = atomic_load(&g_trie.tab[k]);
		for (uint32_t i = 0; i < TAB_SLOTS(k); i++)
			n += atomic_load(&tab[i].id) == SLOT_DEAD;
	}
	return n;
}

/* ---- one thread ----------------------------------------------------------- */

#define N_KEYS 30000u /* in table 7: past seven switches */

static void test_dense_ids(void **state)
{
	int inserted;

	(void)state;
	assert_int_equal(rec_trie_reset(1), 0);
	for (uint32_t i = 0; i < N_KEYS; i++) {
		g_ids[i] = get_key(g_ids, i, &inserted);
		assert_int_equal(g_ids[i], i + 1);
		assert_int_equal(inserted, 1);
	}
	assert_int_equal(atomic_load(&g_trie.n_tab), REC_TRIE_TABLES);
	assert_int_equal(rec_trie_count(), N_KEYS);
	for (uint32_t i = 0; i < N_KEYS; i++) {
		assert_int_equal(get_key(g_ids, i, &inserted), i + 1);
		assert_int_equal(inserted, 0);
	}
	assert_int_equal(rec_trie_count(), N_KEYS);
	assert_int_equal(count_dead(), 0);
}

static void test_reset(void **state)
{
	uint32_t gen = rec_trie_gen();
	int inserted;

	(void)state;
	assert_int_not_equal(rec_trie_get(TF_NODE_ROOT, 0x1234, &inserted), 0);
	assert_int_equal(rec_trie_reset(0), 0); /* old tables left mapped */
	assert_int_equal(rec_trie_gen(), gen + 1);
	assert_int_equal(rec_trie_count(), 0);
	assert_int_equal(atomic_load(&g_trie.n_tab), 1);
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x1234, &inserted), 1);
	assert_int_equal(inserted, 1);
	assert_int_equal(rec_trie_reset(1), 0);
	assert_int_equal(rec_trie_gen(), gen + 2);
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x5678, &inserted), 1);
	assert_int_equal(inserted, 1);
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x1234, &inserted), 2);
	assert_int_equal(inserted, 1);
	assert_int_equal(rec_trie_get(1, 0x1234, &inserted), 3);
	assert_int_equal(inserted, 1);
}

/* ---- the switch, step by step ------------------------------------------------ */

/* A thread that looks up one key with a trap set. */
struct trapped {
	pthread_t thread;
	int trap;         /* PAUSE_* */
	uint32_t parent;
	uint64_t addr;
	uint32_t id;      /* result */
	int inserted;
};

static void *trapped_main(void *arg)
{
	struct trapped *a = arg;

	t_trap = a->trap;
	a->id = rec_trie_get(a->parent, a->addr, &a->inserted);
	return NULL;
}

static void trapped_start(struct trapped *a)
{
	assert_int_equal(pthread_create(&a->thread, NULL, trapped_main, a), 0);
	while (sem_wait(&g_trapped) != 0)
		;
}

static void trapped_finish(struct trapped *a)
{
	sem_post(&g_release);
	assert_int_equal(pthread_join(a->thread, NULL), 0);
}

/* An outermost key whose first slot in table 0 is empty and not slot
 * avoid: its walk there ends at once. */
static uint64_t free_root_addr(uint64_t from, uint32_t avoid)
{
	struct slot *t0 = atomic_load(&g_trie.tab[0]);

	for (uint64_t a = from;; a += 16) {
		uint32_t i = (uint32_t)hash(TF_NODE_ROOT, a) & (TAB_SLOTS(0) - 1);
		if (i != avoid && atomic_load(&t0[i].id) == 0)
			return a;
	}
}

/* Fill table 0 up to one node below its limit with outermost nodes. */
static void fill_table0(void)
{
	int inserted;

	assert_int_equal(rec_trie_reset(1), 0);
	for (uint32_t i = 1; i < TAB_LIMIT(0); i++)
		assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x100000 + (uint64_t)i * 16, &inserted), i);
}

/* Thread A walks table 0 for x, finds its slot empty and stops before
 * claiming it. Then table 0 fills, table 1 is added and takes x. A's claim
 * in table 0 must come to nothing (its check sees table 1: a dead slot) and
 * A must find x in table 1: one id for x. */
static void test_switch_claim_race(void **state)
{
	uint32_t lim = TAB_LIMIT(0);
	struct trapped a = {.trap = PAUSE_CLAIM, .parent = TF_NODE_ROOT};
	int inserted;

	(void)state;
	fill_table0();
	a.addr = free_root_addr(0x900000, UINT32_MAX);
	trapped_start(&a);
	/* Table 0 full, table 1 added, x inserted there. */
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, free_root_addr(0xa00000,
		(uint32_t)hash(TF_NODE_ROOT, a.addr) & (TAB_SLOTS(0) - 1)), &inserted), lim);
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, a.addr, &inserted), lim + 1);
	assert_int_equal(inserted, 1);
	assert_int_equal(atomic_load(&g_trie.n_tab), 2);
	trapped_finish(&a);
	assert_int_equal(a.id, lim + 1);
	assert_int_equal(a.inserted, 0);
	assert_int_equal(count_dead(), 1);
	assert_int_equal(rec_trie_count(), lim + 1);
}

/* Thread A claims x's slot in table 0 and stops before taking its id. Then
 * table 0 fills and table 1 begins: A's id comes after table 1's first,
 * though x is in table 0 (a late id). x is still found, and a child of x
 * goes to table 1 and is found there. */
static void test_switch_late_id(void **state)
{
	uint32_t lim = TAB_LIMIT(0);
	struct trapped a = {.trap = PAUSE_ID, .parent = TF_NODE_ROOT};
	uint32_t y, c, x, d;
	int inserted;

	(void)state;
	fill_table0();
	a.addr = free_root_addr(0x900000, UINT32_MAX);
	trapped_start(&a); /* x's slot busy in table 0, no id yet */
	y = rec_trie_get(TF_NODE_ROOT, free_root_addr(0xa00000,
		(uint32_t)hash(TF_NODE_ROOT, a.addr) & (TAB_SLOTS(0) - 1)), &inserted);
	assert_int_equal(y, lim);
	c = rec_trie_get(y, 0x1230, &inserted); /* table 1 begins */
	assert_int_equal(c, lim + 1);
	assert_int_equal(g_trie.id_base[1], lim + 1);
	trapped_finish(&a);
	x = a.id;
	assert_int_equal(x, lim + 2); /* late: >= id_base[1], in table 0 */
	assert_int_equal(a.inserted, 1);
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, a.addr, &inserted), x);
	assert_int_equal(inserted, 0);
	d = rec_trie_get(x, 0x4560, &inserted);
	assert_int_equal(d, lim + 3);
	assert_int_equal(inserted, 1);
	assert_int_equal(rec_trie_get(x, 0x4560, &inserted), d);
	assert_int_equal(inserted, 0);
	assert_int_equal(rec_trie_get(y, 0x1230, &inserted), c);
}

/* Thread A maps table 1 and stops before publishing it; B, needing table 1
 * too, waits for it (not mapping another), then inserts there. */
static void *insert_main(void *arg)
{
	struct trapped *b = arg;

	b->id = rec_trie_get(b->parent, b->addr, &b->inserted);
	return NULL;
}

static void test_switch_wait_for_table(void **state)
{
	uint32_t lim = TAB_LIMIT(0);
	struct trapped a = {.trap = PAUSE_PUBLISH, .parent = TF_NODE_ROOT, .addr = 0x900000};
	struct trapped b = {.parent = TF_NODE_ROOT, .addr = 0x900010};
	int inserted;

	(void)state;
	fill_table0();
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x8ffff0, &inserted), lim); /* full */
	trapped_start(&a); /* table 1 mapped, not published */
	assert_ptr_not_equal(atomic_load(&g_trie.tab[1]), NULL);
	assert_int_equal(pthread_create(&b.thread, NULL, insert_main, &b), 0);
	rec_prim_sleep_ns(20000000); /* b waits for table 1 meanwhile */
	assert_int_equal(atomic_load(&g_trie.n_tab), 1);
	trapped_finish(&a);
	assert_int_equal(pthread_join(b.thread, NULL), 0);
	assert_int_equal(atomic_load(&g_trie.n_tab), 2);
	assert_true(a.inserted && b.inserted);
	assert_true((a.id == lim + 1 && b.id == lim + 2) || (a.id == lim + 2 && b.id == lim + 1));
}

/* ---- many threads, the same keys ------------------------------------------ */

#define N_THREADS 8
#define N_ROUNDS 16 /* a fresh trie each: 7 switches a round */

struct worker {
	pthread_t thread;
	unsigned idx;
	uint32_t ids[N_KEYS]; /* key -> id this thread got, this round */
	uint32_t n_inserted;  /* keys this thread created, this round */
	uint32_t n_zero;      /* lookups that returned 0, this round */
};

static pthread_barrier_t g_round; /* workers + main: a round starts, ends */

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (unsigned r = 0; r < N_ROUNDS; r++) {
		uint32_t stack[64], depth = 0;

		pthread_barrier_wait(&g_round);
		w->n_inserted = w->n_zero = 0;
		/* Six threads take the keys breadth-first, in step: they race
		 * for the same new key at every switch. Two take them depth-
		 * first and meet keys the others put into older tables. */
		if (w->idx % 4 == 3)
			stack[depth++] = 0;
		for (uint32_t n = 0; n < N_KEYS; n++) {
			uint32_t i = n;
			int inserted;
			uint32_t id;

			if (w->idx % 4 == 3) {
				i = stack[--depth];
				if (2 * i + 2 < N_KEYS)
					stack[depth++] = 2 * i + 2;
				if (2 * i + 1 < N_KEYS)
					stack[depth++] = 2 * i + 1;
			}
			id = get_key(w->ids, i, &inserted);
			w->ids[i] = id;
			w->n_inserted += inserted != 0;
			w->n_zero += id == 0;
		}
		pthread_barrier_wait(&g_round);
	}
	return NULL;
}

static void test_threads_one_id_per_key(void **state)
{
	struct worker *w = calloc(N_THREADS, sizeof(*w));
	uint8_t *seen = malloc(N_KEYS + 1);
	uint32_t dead = 0;
	int inserted;

	(void)state;
	assert_non_null(w);
	assert_non_null(seen);
	assert_int_equal(pthread_barrier_init(&g_round, NULL, N_THREADS + 1), 0);
	for (unsigned t = 0; t < N_THREADS; t++) {
		w[t].idx = t;
		assert_int_equal(pthread_create(&w[t].thread, NULL, worker_main, &w[t]), 0);
	}
	atomic_store(&g_pauses, 0);
	for (unsigned r = 0; r < N_ROUNDS; r++) {
		uint32_t n_inserted = 0;

		assert_int_equal(rec_trie_reset(1), 0);
		atomic_store(&g_pause_on, 1);
		pthread_barrier_wait(&g_round); /* go */
		pthread_barrier_wait(&g_round); /* all done */
		atomic_store(&g_pause_on, 0);
		/* Every key created once, by one thread; ids 1 .. N, once
		 * each; every thread got the same id for a key. */
		for (unsigned t = 0; t < N_THREADS; t++) {
			assert_int_equal(w[t].n_zero, 0);
			n_inserted += w[t].n_inserted;
		}
		if (n_inserted != N_KEYS || rec_trie_count() != N_KEYS)
			fail_msg("round %u: %u keys, %u inserted, %u ids", r, N_KEYS, n_inserted,
				 rec_trie_count());
		assert_int_equal(atomic_load(&g_trie.n_tab), REC_TRIE_TABLES);
		memset(seen, 0, N_KEYS + 1);
		for (uint32_t i = 0; i < N_KEYS; i++) {
			uint32_t id = w[0].ids[i];

			for (unsigned t = 1; t < N_THREADS; t++)
				if (w[t].ids[i] != id)
					fail_msg("round %u, key %u: thread 0 got id %u, thread %u id %u",
						 r, i, id, t, w[t].ids[i]);
			assert_in_range(id, 1, N_KEYS);
			if (seen[id])
				fail_msg("round %u: id %u given to two keys", r, id);
			seen[id] = 1;
			assert_int_equal(get_key(w[0].ids, i, &inserted), id);
			assert_int_equal(inserted, 0);
		}
		dead += count_dead();
	}
	for (unsigned t = 0; t < N_THREADS; t++)
		assert_int_equal(pthread_join(w[t].thread, NULL), 0);
	pthread_barrier_destroy(&g_round);
	/* Not asserted (it depends on scheduling), shown for the record. */
	print_message("# %u rounds of %u threads: %u dead slots, %u pauses\n", N_ROUNDS,
		      N_THREADS, dead, atomic_load(&g_pauses));
	free(seen);
	free(w);
}

/* ---- limits ---------------------------------------------------------------- */

static void test_full(void **state)
{
	int inserted;

	(void)state;
	assert_int_equal(rec_trie_reset(1), 0);
	for (uint32_t i = 0; i < CAP; i++) {
		g_ids[i] = get_key(g_ids, i, &inserted);
		assert_int_equal(g_ids[i], i + 1);
		assert_int_equal(inserted, 1);
	}
	/* Ordinary nodes refused; known ones still found. */
	assert_int_equal(get_key(g_ids, CAP, &inserted), 0);
	assert_int_equal(inserted, 0);
	assert_int_equal(get_key(g_ids, CAP - 1, &inserted), CAP);
	assert_int_equal(get_key(g_ids, 0, &inserted), 1);
	/* Outermost nodes: the last table's headroom, then refused. */
	for (uint32_t i = 0; i < REC_TRIE_ROOT_EXTRA; i++) {
		assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x1000 + (uint64_t)i * 8, &inserted),
				 CAP + i + 1);
		assert_int_equal(inserted, 1);
	}
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x10, &inserted), 0);
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x1000, &inserted), CAP + 1);
	assert_int_equal(rec_trie_count(), CAP + REC_TRIE_ROOT_EXTRA);
	/* A fresh trie after a full one. */
	assert_int_equal(rec_trie_reset(1), 0);
	assert_int_equal(get_key(g_ids, 0, &inserted), 1);
	assert_int_equal(inserted, 1);
}

/* Table 2 could not be mapped: the chain ends at table 1 (512 slots),
 * with the last table's limits: 384 ordinary nodes, outermost ones to 448. */
static void test_map_failed(void **state)
{
	uint32_t n1 = TAB_LIMIT(0) + TAB_LIMIT(1);
	int inserted;

	(void)state;
	assert_int_equal(rec_trie_reset(1), 0);
	atomic_store(&g_trie.tab[2], TAB_FAILED);
	for (uint32_t i = 0; i < n1; i++) {
		g_ids[i] = get_key(g_ids, i, &inserted);
		assert_int_equal(g_ids[i], i + 1);
	}
	assert_int_equal(get_key(g_ids, n1, &inserted), 0);
	for (uint32_t i = 0; i < TAB_ROOT_LIMIT(1) - TAB_LIMIT(1); i++)
		assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x1000 + (uint64_t)i * 8, &inserted),
				 n1 + i + 1);
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x10, &inserted), 0);
	assert_int_equal(atomic_load(&g_trie.n_tab), 2);
}

/* A thread began mapping table 1 and never finished: an insert that needs
 * it waits ~1 s, then the chain ends at table 0 (a late mapper would find
 * TAB_FAILED and unmap its table). */
static void test_mapper_vanished(void **state)
{
	uint32_t n0 = TAB_LIMIT(0);
	int inserted;

	(void)state;
	assert_int_equal(rec_trie_reset(1), 0);
	atomic_store(&g_trie.tab[1], TAB_MAKING);
	for (uint32_t i = 0; i < n0; i++) {
		g_ids[i] = get_key(g_ids, i, &inserted);
		assert_int_equal(g_ids[i], i + 1);
	}
	assert_int_equal(get_key(g_ids, n0, &inserted), 0);
	assert_ptr_equal(atomic_load(&g_trie.tab[1]), TAB_FAILED);
	assert_int_equal(get_key(g_ids, n0, &inserted), 0);
	assert_int_equal(get_key(g_ids, 1, &inserted), 2);
}

/* A slot claimed by a thread that never finishes: a lookup passing it waits
 * ~1 s and returns 0 (full); keys before it are still found. */
static void test_busy_slot(void **state)
{
	uint32_t h = (uint32_t)hash(TF_NODE_ROOT, 0x5000) % TAB_SLOTS(0);
	struct slot *tab;
	int inserted;

	(void)state;
	assert_int_equal(rec_trie_reset(1), 0);
	tab = atomic_load(&g_trie.tab[0]);
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x5000, &inserted), 1);
	atomic_store(&tab[(h + 1) % TAB_SLOTS(0)].id, SLOT_BUSY);
	/* Found in its first slot, before the busy one. */
	assert_int_equal(rec_trie_get(TF_NODE_ROOT, 0x5000, &inserted), 1);
	/* A key with the same first slot probes past it: the bounded wait. */
	for (uint64_t a = 0x6000;; a += 8)
		if ((uint32_t)hash(TF_NODE_ROOT, a) % TAB_SLOTS(0) == h) {
			assert_int_equal(rec_trie_get(TF_NODE_ROOT, a, &inserted), 0);
			assert_int_equal(inserted, 0);
			break;
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dense_ids),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_switch_claim_race),
		cmocka_unit_test(test_switch_late_id),
		cmocka_unit_test(test_switch_wait_for_table),
		cmocka_unit_test(test_threads_one_id_per_key),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_map_failed),
		cmocka_unit_test(test_mapper_vanished),
		cmocka_unit_test(test_busy_slot),
	};

	if (rec_trie_init() < 0 || sem_init(&g_trapped, 0, 0) || sem_init(&g_release, 0, 0))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
