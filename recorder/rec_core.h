/* Recorder core: global state g_rec, per-thread state and the event path.
 * Hot path rule: no malloc, no locks, no syscalls, no stdio (see
 * .notes/PLAN.md "Ordering" for the seq / in-flight protocol). */
#ifndef REC_CORE_H
#define REC_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tf_records.h"

#define REC_LIKELY(x) __builtin_expect(!!(x), 1)
#define REC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define REC_HIDDEN __attribute__((visibility("hidden")))

#define REC_RING_BYTES (1u << 20)     /* per-thread SPSC ring, power of two */
#define REC_STAGE_BYTES (24u << 10)   /* per-thread staging for one operation */
#define REC_MAX_DEPTH_CAP 256u        /* hard cap on MEMREC_MAX_DEPTH */
#define REC_DEFAULT_DEPTH 128u
#define REC_FRAME_SLACK 16u           /* room for the recorder's own frames */

/* Per-thread TLS state machine (jemalloc tsd). */
enum rec_tls_state {
	REC_TLS_UNINIT = 0,   /* no event yet */
	REC_TLS_INITIALIZING, /* claiming a rec_thread: events pass through */
	REC_TLS_ACTIVE,       /* recording */
	REC_TLS_EXITING,      /* TSD destructors ran: still recording */
	REC_TLS_OFF,          /* never records (the writer thread) */
};

struct rec_thread;

struct rec_tls {
	uint8_t state;  /* enum rec_tls_state */
	uint8_t guard;  /* nonzero while inside the recorder: pass through */
	uint8_t boot;   /* nonzero inside dlsym bootstrap: static arena */
	struct rec_thread *thread; /* valid in ACTIVE and EXITING */
};

extern __thread struct rec_tls rec_tls REC_HIDDEN;

/* Lifecycle of a rec_thread slot (owned by a thread or free for reuse). */
enum rec_thread_status {
	REC_THR_FREE = 0,    /* drained, owner gone: may be claimed */
	REC_THR_OWNED = 1,   /* a live thread records into it */
	REC_THR_EXITING = 2, /* owner ran its TSD destructor; retired by the
			      * writer once the owner is gone and the ring drained */
};

/* One thread stream: ring and state. Allocated with mmap, never freed,
 * reused (with a new stream id) after its thread exits. */
struct rec_thread {
	/* Written by the owner, read by the writer. */
	_Atomic uint64_t head;           /* bytes committed to the ring (monotonic) */
	_Atomic uint64_t last_committed; /* seq of the last committed event */
	_Atomic uint64_t n_events;       /* ALLOC + FREE records committed */
	_Atomic uint32_t in_flight;      /* 1 during a hooked operation */
	_Atomic uint32_t kick_pending;   /* writer already asked to drain */
	char pad0[64 - 32];
	/* Written by the writer. */
	_Atomic uint64_t tail;           /* bytes consumed (monotonic) */
	char pad1[64 - 8];
	/* Lifecycle. */
	_Atomic uint32_t status;         /* enum rec_thread_status */
	uint32_t stream;                 /* thread stream id, never reused */
	uint32_t tid;
	uint32_t writer_dead;            /* writer: owner confirmed gone */
	uint32_t gen;                    /* owner: trace generation it last
					  * wrote to (g_rec.gen); a mismatch
					  * renews the stream (rec_thread_renew) */
	struct rec_thread *next;         /* registry list; immutable once pushed */
	uint8_t *ring;                   /* REC_RING_BYTES */
	/* Owner only. */
	uint64_t local_head;             /* bytes written, committed or not */
	uint64_t stage_last_seq;         /* highest seq staged in this operation */
	uint32_t stage_len;              /* bytes in stage */
	uint32_t stage_events;           /* ALLOC/FREE records in stage */
	uint32_t prev_n;                 /* frames in the previous stack */
	struct tf_stream_state st;       /* delta state of this stream */
	uint64_t prev_addr[REC_MAX_DEPTH_CAP + 1]; /* previous stack, root first */
	uint32_t prev_id[REC_MAX_DEPTH_CAP + 1];   /* its trie node ids */
	void *frames[REC_MAX_DEPTH_CAP + REC_FRAME_SLACK + 1];
	uint8_t stage[REC_STAGE_BYTES];
};

/* Global recorder state (one struct, SQLite's `g`). */
struct rec_global {
	_Atomic int enabled;              /* g_rec.gen while events are recorded,
					   * 0 when off */
	uint32_t gen;                     /* trace generation, from 1: bumped when
					   * a new trace starts in this process
					   * (fork child, failed exec) */
	_Atomic uint64_t seq;             /* next global sequence number (from 1) */
	_Atomic uint32_t next_stream;     /* next thread stream id (from 0) */
	_Atomic(struct rec_thread *) threads; /* registry, push-only */
	_Atomic uint32_t wake_word;       /* writer futex: bumped to wake it */
	_Atomic uint32_t round_word;      /* bumped after each writer round */
	uint32_t max_depth;               /* frames kept per backtrace */
	uint64_t interval_ns;             /* tick / RSS interval */
	uint64_t start_ns;                /* CLOCK_MONOTONIC at start */
	uint32_t pid;                     /* process that owns the trace */
	int out_fd;                       /* trace file, -1 when off */
	int statm_fd;                     /* /proc/self/statm, -1 when unavailable */
	int stat_fd;                      /* /proc/self/stat, -1 when unavailable */
	int fds_private;                  /* 1: the three above live only in the
					   * writer thread's own descriptor table */
	size_t page_size;                 /* bytes */
	pthread_key_t key;                /* TSD key: marks threads exiting */
	int initialized;                  /* constructor finished setup */
	int follow_fork;                  /* MEMREC_FOLLOW_FORK (default 1) */
	_Atomic int finished;             /* the trace was ended (exit, _exit,
					   * exec); cleared when a new one starts */
};

extern struct rec_global g_rec REC_HIDDEN;

/* Real allocator functions, resolved with dlsym(RTLD_NEXT). */
struct rec_real {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*reallocarray)(void *, size_t, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	int (*dlclose)(void *);
	int (*pipe2)(int[2], int);
	ssize_t (*read)(int, void *, size_t);
	int (*close)(int);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	void (*exit_)(int);   /* _exit */
	void (*Exit)(int);    /* _Exit */
	void (*abort)(void);
};

extern struct rec_real rec_real REC_HIDDEN;

/* Resolve every rec_real pointer (idempotent; reentrant calls from dlsym's
 * own allocations return at once and leave the pointers NULL). */
void rec_bootstrap(void) REC_HIDDEN;

/* Static bootstrap arena for allocations made by dlsym before the real
 * functions are known. alloc returns size bytes aligned to align (a power
 * of two up to 4096) or NULL when the arena is exhausted. Arena blocks are
 * never freed; owns() tells whether p is one; size() gives its size. */
void *rec_arena_alloc(size_t size, size_t align) REC_HIDDEN;
int rec_arena_owns(const void *p) REC_HIDDEN;
size_t rec_arena_size(const void *p) REC_HIDDEN;

/* rec_enter()'s slow path: sets the calling thread up at its first event
 * (claims a stream, stages its THREAD record). Same contract as rec_enter(). */
struct rec_thread *rec_enter_slow(void) REC_HIDDEN;

/* First event of a thread in the current trace generation: new stream id,
 * fresh delta state and stack cache, THREAD record staged. Owner only, in
 * flight, under the guard. */
void rec_thread_renew(struct rec_thread *t, uint32_t gen) REC_HIDDEN;

/* Start a recorded operation on the calling thread: sets the recursion guard
 * and the in-flight flag. Returns the thread's stream, or NULL when the
 * event must pass through unrecorded (inside the recorder, recording off,
 * thread not set up). Every non-NULL return is paired with rec_leave(). */
static inline struct rec_thread *rec_enter(void)
{
	struct rec_tls *tls = &rec_tls;
	struct rec_thread *t;
	int gen;

	if (REC_UNLIKELY(tls->guard || (tls->state != REC_TLS_ACTIVE &&
					tls->state != REC_TLS_EXITING)))
		return rec_enter_slow();
	gen = atomic_load_explicit(&g_rec.enabled, memory_order_relaxed);
	if (REC_UNLIKELY(!gen))
		return NULL;
	tls->guard = 1;
	t = tls->thread;
	/* seq_cst store then load: Dekker with trace_finish()'s enabled = 0. */
	atomic_store(&t->in_flight, 1);
	if (REC_UNLIKELY(atomic_load(&g_rec.enabled) != gen)) {
		atomic_store_explicit(&t->in_flight, 0, memory_order_release);
		tls->guard = 0;
		return NULL;
	}
	if (REC_UNLIKELY(t->gen != (uint32_t)gen))
		rec_thread_renew(t, (uint32_t)gen);
	return t;
}

/* Stage a FREE of addr (nonzero) with a fresh seq. Call BEFORE the real
 * free/realloc releases the block. */
void rec_stage_free(struct rec_thread *t, enum tf_kind kind, uint64_t addr) REC_HIDDEN;

/* Capture the caller's backtrace, stage any new NODE records, then stage an
 * ALLOC (kind, size bytes requested, addr returned or 0) with a fresh seq.
 * Call AFTER the real allocation returned. Preserves errno. */
void rec_stage_alloc(struct rec_thread *t, enum tf_kind kind, uint64_t size,
		     uint64_t addr) REC_HIDDEN;

/* Copy the staged records into the thread's ring (waiting for room if the
 * ring is full, never dropping) and publish them to the writer. */
void rec_commit(struct rec_thread *t) REC_HIDDEN;

/* Commit, clear the in-flight flag and the recursion guard. */
void rec_leave(struct rec_thread *t) REC_HIDDEN;

/* Take the next global sequence number. */
static inline uint64_t rec_next_seq(void)
{
	return atomic_fetch_add(&g_rec.seq, 1);
}

/* Module map changed (after dlclose): emit MODULE/UNLOAD records into the
 * calling thread's stream. */
void rec_on_dl_change(void) REC_HIDDEN;

/* exec family: rec_exec_begin() ends the trace (END written, file closed)
 * when this process records; returns a token for rec_exec_failed(), which
 * (after the real exec failed) starts a new trace and keeps errno. */
int rec_exec_begin(void) REC_HIDDEN;
void rec_exec_failed(int token) REC_HIDDEN;

/* _exit/_Exit: end the trace with END (no-op in a vfork child, after the
 * trace ended, or when not recording). */
void rec_exit_now(void) REC_HIDDEN;

/* abort: write everything recorded so far to the file (drain + zstd flush),
 * without END; waits at most ~2 s for the writer. */
void rec_flush_now(void) REC_HIDDEN;

#endif
