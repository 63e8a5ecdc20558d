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
#define REC_COLD __attribute__((noinline, cold))

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
	uint8_t sig_dfl; /* the --mark-signal handler interrupted the recorder
			  * and the signal's default action (terminate, stop)
			  * is still to be done (rec_signal.c) */
	uint32_t sig_marks; /* --mark-signal marks that arrived while the
			     * thread was inside the recorder, not yet written */
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

/* One frame of the unwinder's previous backtrace (rec_unwind.c): the
 * frame's registers and the stack words its step read (slot 0: not read). */
struct rec_unw_frame {
	uint64_t pc, sp, bp;       /* pc: return address (the leaf: exact) */
	uint64_t ra_slot, ra_val;  /* return address read from ra_slot */
	uint64_t bp_slot, bp_val;  /* caller's rbp read from bp_slot */
	uint64_t flags;            /* REC_UNW_F_* */
};

#define REC_UNW_F_CFA_RBP 1u   /* its rule computes the CFA from rbp */
#define REC_UNW_F_RBP_SAVED 2u /* its rule reads the caller's rbp */
#define REC_UNW_F_BP_MATTERS 4u /* the walk from here on depends on bp */
#define REC_UNW_F_BP_CHECK 8u   /* bp_slot must hold bp_val for the walk
				 * to stay valid (the caller's bp matters) */
#define REC_UNW_F_END 16u       /* its rule: return address undefined */
/* flags also carries the frame's rule offsets: rbp_off (int16) in bits
 * 16-31, cfa_off (int32) in bits 32-63. */

#define REC_UNW_FRAMES (REC_MAX_DEPTH_CAP + REC_FRAME_SLACK + 2)

/* A thread's memo of trie lookups (rec_trie.h): (parent, addr) -> id,
 * valid for one trie generation; id 0 = empty. */
struct rec_trie_memo {
	uint64_t addr;
	uint32_t parent;
	uint32_t id;
};

#define REC_TRIE_MEMO_LOG2 11
#define REC_UNW_REUSE_AFTER 256 /* backtraces of a thread before it keeps
				 * and reuses its last walk and uses the trie
				 * memo (short-lived threads do not touch
				 * those pages of their slot) */

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
	uint8_t *stage;                  /* where this operation's records are
					  * encoded: the ring at local_head when
					  * REC_STAGE_BYTES fit there without
					  * wrapping, else stage_buf (copied into
					  * the ring at commit). Always has room
					  * for REC_STAGE_BYTES from stage_len 0. */
	uint64_t local_head;             /* bytes written, committed or not */
	uint64_t stage_limit;            /* the next stage may go straight into
					  * the ring while local_head <= this
					  * (set by rec_stage_pick) */
	int *errno_p;                    /* the owner's errno (&errno) */
	uint64_t stage_last_seq;         /* highest seq staged: last_committed
					  * after the next commit */
	uint32_t stage_len;              /* bytes in stage */
	uint32_t stage_events;           /* ALLOC/FREE records in stage */
	uint32_t prev_n;                 /* frames in the previous stack */
	struct tf_stream_state st;       /* delta state of this stream */
	struct tf_enc_cache cache;       /* cached ALLOC/FREE state (tf_enc.h) */
	uint64_t prev_addr[REC_MAX_DEPTH_CAP + 1]; /* previous stack, root first */
	uint32_t prev_id[REC_MAX_DEPTH_CAP + 1];   /* its trie node ids */
	void *frames[REC_MAX_DEPTH_CAP + REC_FRAME_SLACK + 1];
	/* Unwinder (rec_unwind.c), owner only: the previous backtrace's
	 * frames, root first, reused when its stack words are unchanged. */
	const void *unw_owner;           /* thread that made it */
	uint32_t unw_gen;                /* rec_cfi_gen() it was made under */
	uint32_t unw_n;                  /* frames in unw_last (0: none) */
	uint32_t unw_kept;               /* of them returned (recorder's own
					  * leading frames skipped) */
	uint64_t unw_fast, unw_slow;     /* backtraces by rec_cfi / libunwind */
	uint32_t trie_memo_gen;          /* trie generation of trie_memo (0:
					  * never used) */
	uint8_t stage_buf[REC_STAGE_BYTES];
	/* Large per-thread caches last: a thread that makes few allocations
	 * never touches their pages (rec_unwind_thread_is_busy()). */
	struct rec_unw_frame unw_last[REC_UNW_FRAMES];
	struct rec_unw_frame unw_tmp[REC_UNW_FRAMES]; /* scratch, leaf first */
	struct rec_trie_memo trie_memo[1u << REC_TRIE_MEMO_LOG2];
};

/* Global recorder state (one struct, SQLite's `g`). The first cache line
 * is read by every event and written only when recording starts or stops;
 * seq, written by every event, has a line of its own. */
struct rec_global {
	_Alignas(64) _Atomic int enabled; /* g_rec.gen while events are recorded,
					   * 0 when off */
	uint32_t gen;                     /* trace generation, from 1: bumped when
					   * a new trace starts in this process
					   * (fork child, failed exec) */
	uint32_t max_depth;               /* frames kept per backtrace */
	_Alignas(64) _Atomic uint64_t seq; /* next global sequence number (from 1) */
	_Alignas(64) _Atomic uint32_t next_stream; /* next thread stream id (from 0) */
	_Atomic(struct rec_thread *) threads; /* registry, push-only */
	_Atomic uint32_t wake_word;       /* writer futex: bumped to wake it */
	_Atomic uint32_t round_word;      /* bumped after each writer round */
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

struct sigaction;
typedef void (*rec_sig_fn)(int); /* a signal handler (sighandler_t) */

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
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	rec_sig_fn (*signal)(int, rec_sig_fn);
	rec_sig_fn (*sysv_signal)(int, rec_sig_fn); /* __sysv_signal */
	rec_sig_fn (*sigset)(int, rec_sig_fn);
	int (*sigignore)(int);
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
size_t rec_arena_size(const void *p) REC_HIDDEN;
#define REC_ARENA_BYTES (256u << 10)
extern uint8_t rec_arena_buf[REC_ARENA_BYTES] REC_HIDDEN;
static inline int rec_arena_owns(const void *p)
{
	return (uintptr_t)p - (uintptr_t)rec_arena_buf < REC_ARENA_BYTES;
}

/* Write what the --mark-signal handler left pending on this thread while
 * it was inside the recorder (rec_tls.sig_marks, sig_dfl): the marks, then
 * the signal's default action. Called with the guard clear (rec_signal.c). */
void rec_sig_pending_run(void) REC_HIDDEN REC_COLD;

/* Clear the recursion guard, then run what a --mark-signal handler left
 * pending meanwhile. The signal fences keep the compiler from moving the
 * guard's store across the recorder's own stores or the pending check: a
 * handler that sees the guard clear finds the thread's stage consistent. */
static inline void rec_guard_clear(void)
{
	atomic_signal_fence(memory_order_seq_cst);
	rec_tls.guard = 0;
	atomic_signal_fence(memory_order_seq_cst);
	if (REC_UNLIKELY(rec_tls.sig_marks | rec_tls.sig_dfl))
		rec_sig_pending_run();
}

/* rec_enter()'s slow path: sets the calling thread up at its first event
 * (claims a stream, stages its THREAD record). Same contract as rec_enter(). */
struct rec_thread *rec_enter_slow(void) REC_HIDDEN REC_COLD;

/* First event of a thread in the current trace generation: new stream id,
 * fresh delta state and stack cache, THREAD record staged. Owner only, in
 * flight, under the guard. */
void rec_thread_renew(struct rec_thread *t, uint32_t gen) REC_HIDDEN REC_COLD;

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
	atomic_signal_fence(memory_order_seq_cst);
	t = tls->thread;
	/* seq_cst store then load: Dekker with trace_finish()'s enabled = 0. */
	atomic_store(&t->in_flight, 1);
	if (REC_UNLIKELY(atomic_load(&g_rec.enabled) != gen)) {
		atomic_store_explicit(&t->in_flight, 0, memory_order_release);
		rec_guard_clear();
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

/* Point t->stage at the ring when REC_STAGE_BYTES fit there at local_head
 * without wrapping, else at t->stage_buf; kick the writer once when the
 * ring is more than half full; set t->stage_limit. Owner only, nothing
 * staged. */
void rec_stage_pick(struct rec_thread *t) REC_HIDDEN REC_COLD;

/* rec_commit() when the records were staged in stage_buf: copy them into
 * the ring (waiting for room if it is full, never dropping), publish. */
void rec_commit_copy(struct rec_thread *t) REC_HIDDEN REC_COLD;

/* Publish the staged records to the writer (they are in the ring already, or
 * copied there from stage_buf) and pick the next operation's stage. */
static inline void rec_commit(struct rec_thread *t)
{
	if (REC_UNLIKELY(t->stage == t->stage_buf)) {
		rec_commit_copy(t);
		return;
	}
	t->local_head += t->stage_len;
	atomic_store_explicit(&t->head, t->local_head, memory_order_release);
	atomic_store_explicit(&t->n_events,
			      atomic_load_explicit(&t->n_events, memory_order_relaxed) +
				      t->stage_events,
			      memory_order_relaxed);
	atomic_store_explicit(&t->last_committed, t->stage_last_seq, memory_order_release);
	t->stage_len = 0;
	t->stage_events = 0;
	if (REC_LIKELY(t->local_head <= t->stage_limit))
		t->stage = t->ring + (t->local_head & (REC_RING_BYTES - 1));
	else
		rec_stage_pick(t);
}

/* Commit, clear the in-flight flag and the recursion guard (then write
 * the --mark-signal marks that arrived meanwhile: rec_guard_clear()). */
static inline void rec_leave(struct rec_thread *t)
{
	rec_commit(t);
	atomic_store_explicit(&t->in_flight, 0, memory_order_release);
	rec_guard_clear();
}

/* The whole recorded part of malloc & co after the real call returned p
 * (enter, ALLOC staged, commit, leave; passes through when rec_enter()
 * says so). Returns p. Preserves errno. */
void *rec_record_alloc(void *p, enum tf_kind kind, uint64_t size) REC_HIDDEN;

/* free(p) (p not NULL, not an arena block, rec_real.free known): FREE
 * staged with its seq, the real free, commit. */
void rec_record_free(void *p) REC_HIDDEN;

/* Stage a PHASE record (op, name cut at TF_MAX_PHASE_NAME_BYTES, not
 * written for TF_PHASE_END) with sequence number seq, taken by the caller
 * with rec_next_seq(). Owner only, in flight. */
void rec_stage_phase(struct rec_thread *t, uint64_t seq, enum tf_phase_op op,
		     const char *name, size_t name_len) REC_HIDDEN;

/* memrec__phase() (include/memrec.h): a PHASE record of the calling thread
 * with a fresh seq, the name copied now. Nothing when op is out of range,
 * when not recording, or inside the recorder (a signal handler that
 * interrupted an allocation on this thread). Preserves errno. */
void rec_record_phase(int op, const char *name) REC_HIDDEN;

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
