/* Recorder core: bootstrap, per-thread streams, the event path, process
 * start and exit. Hot path (rec_stage_*, rec_commit, rec_leave): no
 * malloc, no locks, no syscalls except when a ring is full or half full. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"
#include "cm_fmt.h"
#include "rec_core.h"
#include "rec_log.h"
#include "rec_modules.h"
#include "rec_prim.h"
#include "rec_signal.h"
#include "rec_trie.h"
#include "rec_unwind.h"
#include "rec_writer.h"
#include "tf_enc.h"

__thread struct rec_tls rec_tls __attribute__((tls_model("initial-exec")));
struct rec_global g_rec = { .out_fd = -1, .statm_fd = -1, .stat_fd = -1 };
struct rec_real rec_real;

/* ---- bootstrap ---------------------------------------------------------- */

_Alignas(4096) uint8_t rec_arena_buf[REC_ARENA_BYTES];
static _Atomic size_t g_arena_used; /* bytes handed out, including headers */

void *rec_arena_alloc(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	if (align > 4096 || (align & (align - 1)) || size > REC_ARENA_BYTES)
		return NULL;
	for (;;) {
		size_t used = atomic_load(&g_arena_used);
		uintptr_t base = (uintptr_t)rec_arena_buf + used + 16; /* room for the header */
		uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
		size_t end = (size_t)(p - (uintptr_t)rec_arena_buf) + size;
		if (end > REC_ARENA_BYTES)
			return NULL;
		end = (end + 15) & ~(size_t)15;
		if (atomic_compare_exchange_weak(&g_arena_used, &used, end)) {
			((size_t *)p)[-1] = size;
			return (void *)p;
		}
	}
}

size_t rec_arena_size(const void *p)
{
	return ((const size_t *)p)[-1];
}

#define RESOLVE(name) \
	rec_real.name = (__typeof__(rec_real.name))dlsym(RTLD_NEXT, #name)

void rec_bootstrap(void)
{
	int saved = errno;

	if (rec_tls.boot)
		return; /* dlsym allocating: the caller uses the arena */
	rec_tls.boot = 1;
	RESOLVE(free);
	RESOLVE(calloc);
	RESOLVE(realloc);
	RESOLVE(reallocarray);
	RESOLVE(posix_memalign);
	RESOLVE(aligned_alloc);
	RESOLVE(memalign);
	RESOLVE(valloc);
	RESOLVE(pvalloc);
	RESOLVE(dlclose);
	RESOLVE(pipe2);
	RESOLVE(read);
	RESOLVE(close);
	RESOLVE(execve);
	RESOLVE(execvp);
	RESOLVE(execvpe);
	RESOLVE(fexecve);
	rec_real.exit_ = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
	rec_real.Exit = (void (*)(int))dlsym(RTLD_NEXT, "_Exit");
	RESOLVE(abort);
	RESOLVE(sigaction);
	RESOLVE(signal);
	rec_real.sysv_signal = (rec_sig_fn (*)(int, rec_sig_fn))dlsym(RTLD_NEXT, "__sysv_signal");
	RESOLVE(sigset);
	RESOLVE(sigignore);
	RESOLVE(malloc);
	rec_tls.boot = 0;
	errno = saved;
}

/* ---- thread streams ----------------------------------------------------- */

#define THREAD_HEAD_BYTES ((sizeof(struct rec_thread) + 4095) & ~(size_t)4095)

/* Writer rounds a thread's first allocation waits for, at most, for the
 * slot of an exited thread to be retired, and the longest wait of one. */
#define CLAIM_WAIT_ROUNDS 2
#define CLAIM_WAIT_NS 2000000u

/* A free slot, claimed; NULL when none. *n_dead counts the slots whose
 * owner ran its exit path and is gone (the writer frees those once
 * drained): an owner still alive (in later TSD destructors, or a main
 * thread that called pthread_exit()) is not worth waiting for. */
static struct rec_thread *claim_free(unsigned *n_dead)
{
	*n_dead = 0;
	for (struct rec_thread *t = atomic_load(&g_rec.threads); t; t = t->next) {
		uint32_t expect = REC_THR_FREE;
		uint32_t st = atomic_load_explicit(&t->status, memory_order_relaxed);
		if (st == REC_THR_FREE &&
		    atomic_compare_exchange_strong(&t->status, &expect, REC_THR_OWNED))
			return t;
		if (st == REC_THR_EXITING) {
			uint32_t tid = __atomic_load_n(&t->tid, __ATOMIC_RELAXED);
			if (tid && !rec_prim_thread_alive(tid))
				(*n_dead)++;
		}
	}
	return NULL;
}

/* Claim a free slot or map a new one. Returns NULL when out of memory.
 * When no slot is free but some belong to threads that are gone (a wave of
 * short-lived threads: the next wave starts before the writer's round
 * retires the last one's slots), the writer is woken and one or two of its
 * rounds awaited first: else every wave maps new slots and resident memory
 * grows with the number of threads the program ever ran
 * (tests/e2e/1102-threads-1000.sh). */
static struct rec_thread *thread_claim(void)
{
	struct rec_thread *t;
	unsigned n_dead;

	t = claim_free(&n_dead);
	for (int i = 0; !t && n_dead && i < CLAIM_WAIT_ROUNDS; i++) {
		uint32_t round = atomic_load(&g_rec.round_word);
		rec_writer_kick();
		rec_prim_futex_wait((uint32_t *)&g_rec.round_word, round, CLAIM_WAIT_NS);
		t = claim_free(&n_dead);
	}
	if (t)
		goto claimed;
	t = rec_prim_map(THREAD_HEAD_BYTES + REC_RING_BYTES, 1);
	if (!t)
		return NULL;
	t->ring = (uint8_t *)t + THREAD_HEAD_BYTES;
	atomic_store(&t->status, REC_THR_OWNED);
	struct rec_thread *head = atomic_load(&g_rec.threads);
	do
		t->next = head;
	while (!atomic_compare_exchange_weak(&g_rec.threads, &head, t));
claimed:
	t->errno_p = &errno;
	t->stage_len = 0;
	rec_stage_pick(t); /* the writer may have reset a reused ring */
	t->gen = 0; /* rec_enter() renews it: stream id, THREAD record */
	__atomic_store_n(&t->tid, rec_prim_gettid(), __ATOMIC_RELAXED);
	return t;
}

/* TSD destructor: the thread is exiting. It keeps recording (frees from
 * later destructors still count); the writer retires the slot once the
 * thread is gone and its ring is drained. */
static void thread_exit_cb(void *arg)
{
	struct rec_thread *t = arg;

	if (rec_tls.thread == t)
		rec_tls.state = REC_TLS_EXITING;
	atomic_store_explicit(&t->status, REC_THR_EXITING, memory_order_release);
}

void rec_thread_renew(struct rec_thread *t, uint32_t gen)
{
	char name[16];
	size_t len;
	uint64_t seq;
	int saved = errno;

	t->gen = gen;
	t->stream = atomic_fetch_add(&g_rec.next_stream, 1);
	__atomic_store_n(&t->tid, rec_prim_gettid(), __ATOMIC_RELAXED);
	memset(&t->st, 0, sizeof(t->st));
	tf_enc_cache_reset(&t->cache);
	t->stage_len = 0;
	t->stage_events = 0;
	t->stage_last_seq = 0;
	t->prev_n = 0;
	len = rec_prim_thread_name(name);
	seq = rec_next_seq();
	t->stage_len = (uint32_t)tf_enc_thread(t->stage, &t->st, seq, t->tid, name, len);
	t->stage_last_seq = seq;
	errno = saved;
}

struct rec_thread *rec_enter_slow(void)
{
	struct rec_tls *tls = &rec_tls;
	struct rec_thread *t;

	if (tls->guard || !atomic_load_explicit(&g_rec.enabled, memory_order_relaxed))
		return NULL;
	if (tls->state == REC_TLS_UNINIT) {
		int saved = errno;
		/* The guard first: a --mark-signal handler in between leaves
		 * its mark pending instead of finding a half set-up thread. */
		tls->guard = 1;
		atomic_signal_fence(memory_order_seq_cst);
		tls->state = REC_TLS_INITIALIZING;
		t = thread_claim();
		errno = saved;
		if (!t) {
			rec_log(REC_LOG_ERROR, "out of memory for a thread buffer; thread not traced");
			tls->state = REC_TLS_OFF;
			rec_guard_clear();
			return NULL;
		}
		pthread_setspecific(g_rec.key, t);
		errno = saved;
		tls->thread = t;
		tls->state = REC_TLS_ACTIVE;
		tls->guard = 0;
	}
	if (tls->state != REC_TLS_ACTIVE && tls->state != REC_TLS_EXITING)
		return NULL;
	return rec_enter();
}

/* ---- the event path ----------------------------------------------------- */

void rec_stage_free(struct rec_thread *t, enum tf_kind kind, uint64_t addr)
{
	uint64_t seq = rec_next_seq();

	t->stage_len += (uint32_t)tf_enc_free_c(t->stage + t->stage_len, &t->st, &t->cache, seq,
						kind, addr);
	t->stage_last_seq = seq;
	t->stage_events++;
}

void rec_stage_phase(struct rec_thread *t, uint64_t seq, enum tf_phase_op op,
		     const char *name, size_t name_len)
{
	t->stage_len += (uint32_t)tf_enc_phase(t->stage + t->stage_len, &t->st, seq, op, name,
					       name_len);
	t->stage_last_seq = seq;
}

void rec_record_phase(int op, const char *name)
{
	int saved = errno;
	struct rec_thread *t;
	size_t len = 0;

	if (op < 0 || op >= TF_PHASE_OP_COUNT)
		return;
	t = rec_enter();
	if (!t)
		return;
	/* Copied into the stage now: the caller may free name on return. */
	if (op != TF_PHASE_END && name)
		len = strnlen(name, TF_MAX_PHASE_NAME_BYTES);
	rec_stage_phase(t, rec_next_seq(), (enum tf_phase_op)op, name, len);
	rec_leave(t);
	errno = saved;
}

/* Unwind, walk the trie root first reusing the previous stack's common
 * prefix, stage NODE records for new nodes. Returns the leaf id; when the
 * trie is full, the deepest node found (0 when none: unknown stack). */
static uint32_t stack_node(struct rec_thread *t)
{
	int trunc;
	size_t same;
	uint32_t taint = atomic_load_explicit(&rec_mod_n_taint, memory_order_acquire);
	/* Salting below needs every frame; otherwise the outer frames equal
	 * to prev_addr's need not be written. */
	size_t n = rec_unwind_capture(t, t->frames, g_rec.max_depth, &trunc, &same,
				      taint ? 0 : t->prev_n);
	size_t total = n + (size_t)trunc, k = 0, i;
	uint32_t parent = TF_NODE_ROOT;

	/* After a dlclose: frames in address ranges a module was unloaded
	 * from get keys salted with the id of the module there now, so code
	 * loaded later at the same addresses gets new nodes (born after its
	 * MODULE record); every other frame keeps its nodes. */
	if (REC_UNLIKELY(taint)) {
		int rescanned = 0;
		same = 0; /* keys may be salted differently from the last stack's */
		for (i = 0; i < n; i++) {
			uint64_t a = (uint64_t)(uintptr_t)t->frames[i];
			uint64_t key = rec_modules_key(a);
			if (REC_UNLIKELY(key >> 48 == REC_KEY_SALT_UNKNOWN) && !rescanned) {
				/* In a tainted range but no known module: a new
				 * one (dlopen running): learn it first, so the key
				 * carries its id. */
				rec_modules_scan(t);
				rescanned = 1;
				key = rec_modules_key(a);
			}
			t->frames[i] = (void *)(uintptr_t)key;
		}
	}

	if (total == 0) {
		trunc = 1; /* unwinding failed: one "truncated" node */
		total = 1;
	}
	/* Root-first frame i: the truncation mark, then frames[n-1] .. [0]. */
#define FRAME(i) ((trunc && (i) == 0) ? (uint64_t)TF_ADDR_TRUNCATED \
					: (uint64_t)(uintptr_t)t->frames[total - 1 - (i)])
	/* The unwinder vouches for the outermost `same` frames (equal to the
	 * last stack's): no need to compare them. */
	k = same < t->prev_n ? same : t->prev_n;
	if (k > total)
		k = total;
	if (REC_UNLIKELY(rec_unwind_check_on)) {
		for (i = 0; i < k; i++)
			if (t->prev_addr[i] != FRAME(i)) {
				rec_unwind_mismatch("reused outer frame", i, FRAME(i), t->prev_addr[i]);
				k = i;
				break;
			}
	}
	while (k < total && k < t->prev_n && t->prev_addr[k] == FRAME(k))
		k++;
	if (k)
		parent = t->prev_id[k - 1];
	/* The lookup memo only for a slot past its first allocations: a
	 * short-lived thread does not touch its pages. */
	int memo = rec_unwind_thread_is_busy();
	if (memo && k < total)
		rec_trie_memo_check(t);
	for (i = k; i < total; i++) {
		uint64_t addr = FRAME(i);
		int inserted;
		uint32_t id = memo ? rec_trie_get_memo(t, parent, addr, &inserted)
				   : rec_trie_get(parent, addr, &inserted);
		if (REC_UNLIKELY(!id))
			break; /* trie full: keep the deepest node found */
		if (inserted) {
			uint64_t real = addr == TF_ADDR_TRUNCATED ? addr : addr & REC_KEY_ADDR_MASK;
			/* A frame in no known module: something was loaded
			 * (dlopen, maybe still running its constructors). The
			 * MODULE records take their seq now, before the ALLOC. */
			if (real != TF_ADDR_TRUNCATED && !rec_modules_known(real))
				rec_modules_scan(t);
			t->stage_len += (uint32_t)tf_enc_node(t->stage + t->stage_len, &t->st,
							      id, parent, real);
		}
		t->prev_addr[i] = addr;
		t->prev_id[i] = id;
		parent = id;
	}
#undef FRAME
	t->prev_n = (uint32_t)i;
	return parent;
}

void rec_stage_alloc(struct rec_thread *t, enum tf_kind kind, uint64_t size, uint64_t addr)
{
	int saved = *t->errno_p; /* errno without a call */
	uint32_t node = stack_node(t);
	/* After the trie walk: see .notes/recorder.md "NODE visibility". */
	uint64_t seq = rec_next_seq();

	t->stage_len += (uint32_t)tf_enc_alloc_c(t->stage + t->stage_len, &t->st, &t->cache,
						 seq, kind, node, size, addr);
	t->stage_last_seq = seq;
	t->stage_events++;
	*t->errno_p = saved;
}

/* Wait until the ring has need free bytes. Returns 0, or -1 when the writer
 * is gone (the records are then dropped: only after the trace ended). */
static int ring_wait(struct rec_thread *t, size_t need)
{
	unsigned idle = 0;

	for (;;) {
		uint64_t tail = atomic_load_explicit(&t->tail, memory_order_acquire);
		if (REC_RING_BYTES - (t->local_head - tail) >= need)
			return 0;
		if (rec_writer_is_gone())
			return -1;
		if (rec_writer_drain_now())
			continue; /* writer not started yet: we drained */
		uint32_t r = atomic_load(&g_rec.round_word);
		rec_writer_kick();
		tail = atomic_load_explicit(&t->tail, memory_order_acquire);
		if (REC_RING_BYTES - (t->local_head - tail) >= need)
			return 0;
		rec_prim_futex_wait((uint32_t *)&g_rec.round_word, r, 2000000);
		/* A child made by _Fork() or a raw clone() skipped atfork_child
		 * and has no writer: stop recording there instead of waiting
		 * forever. (A vfork() child shares the parent's memory and
		 * writer, whose rounds go on: keep waiting there.) */
		if (atomic_load(&g_rec.round_word) != r)
			idle = 0;
		else if (++idle >= 50 && rec_prim_getpid() != g_rec.pid) {
			atomic_store(&g_rec.enabled, 0);
			return -1;
		}
	}
}

void rec_stage_pick(struct rec_thread *t)
{
	uint64_t tail = atomic_load_explicit(&t->tail, memory_order_acquire);
	uint64_t head = t->local_head, used = head - tail, limit;
	size_t off = (size_t)(head & (REC_RING_BYTES - 1));

	/* Half full: ask the writer for an early round, once per round. */
	if (REC_UNLIKELY(used > REC_RING_BYTES / 2) &&
	    !atomic_load_explicit(&t->kick_pending, memory_order_relaxed)) {
		atomic_store_explicit(&t->kick_pending, 1, memory_order_relaxed);
		rec_writer_kick();
	}
	if (REC_RING_BYTES - used < REC_STAGE_BYTES || REC_RING_BYTES - off < REC_STAGE_BYTES) {
		t->stage = t->stage_buf;
		t->stage_limit = 0;
		return;
	}
	t->stage = t->ring + off;
	/* Later stages go into the ring without calling here while they fit
	 * before the end of the ring and before the tail read now, up to the
	 * next half-full check (when half full already: every RING/16 bytes,
	 * in case the writer's round cleared kick_pending). */
	limit = head + (REC_RING_BYTES - off - REC_STAGE_BYTES);
	if (limit > tail + REC_RING_BYTES - REC_STAGE_BYTES)
		limit = tail + REC_RING_BYTES - REC_STAGE_BYTES;
	if (used <= REC_RING_BYTES / 2) {
		if (limit > tail + REC_RING_BYTES / 2)
			limit = tail + REC_RING_BYTES / 2;
	} else if (limit > head + REC_RING_BYTES / 16) {
		limit = head + REC_RING_BYTES / 16;
	}
	t->stage_limit = limit;
}

void rec_commit_copy(struct rec_thread *t)
{
	uint32_t len = t->stage_len;
	uint64_t tail;

	if (!len) {
		rec_stage_pick(t);
		return;
	}
	tail = atomic_load_explicit(&t->tail, memory_order_acquire);
	if (REC_UNLIKELY(REC_RING_BYTES - (t->local_head - tail) < len)) {
		int saved = errno;
		int rc = ring_wait(t, len);
		errno = saved;
		if (rc < 0) {
			t->stage_len = 0;
			t->stage_events = 0;
			t->stage_last_seq = 0;
			return;
		}
	}
	size_t off = (size_t)(t->local_head & (REC_RING_BYTES - 1));
	size_t first = REC_RING_BYTES - off;
	if (first >= len) {
		memcpy(t->ring + off, t->stage_buf, len);
	} else {
		memcpy(t->ring + off, t->stage_buf, first);
		memcpy(t->ring, t->stage_buf + first, len - first);
	}
	t->local_head += len;
	atomic_store_explicit(&t->head, t->local_head, memory_order_release);
	atomic_store_explicit(&t->n_events,
			      atomic_load_explicit(&t->n_events, memory_order_relaxed) +
				      t->stage_events,
			      memory_order_relaxed);
	atomic_store_explicit(&t->last_committed, t->stage_last_seq, memory_order_release);
	t->stage_len = 0;
	t->stage_events = 0;
	rec_stage_pick(t);
}

/* flatten: one frame for the whole operation (the cold paths are noinline). */
__attribute__((flatten)) void *rec_record_alloc(void *p, enum tf_kind kind, uint64_t size)
{
	struct rec_thread *t = rec_enter();

	if (t) {
		rec_stage_alloc(t, kind, size, (uint64_t)(uintptr_t)p);
		rec_leave(t);
	}
	return p;
}

__attribute__((flatten)) void rec_record_free(void *p)
{
	struct rec_thread *t = rec_enter();

	if (!t) {
		rec_real.free(p);
		return;
	}
	rec_stage_free(t, TF_KIND_FREE, (uint64_t)(uintptr_t)p);
	rec_real.free(p);
	rec_leave(t);
}

void rec_on_dl_change(void)
{
	struct rec_thread *t;

	rec_unwind_dl_change(); /* code may be gone: forget its unwind rules */
	t = rec_enter();

	if (!t)
		return;
	rec_modules_scan(t);
	rec_leave(t);
}

/* ---- process start and exit --------------------------------------------- */

/* Put the recursion guard back to saved; when that clears it, run what a
 * --mark-signal handler left pending (rec_guard_clear()). */
static void guard_restore(uint8_t saved)
{
	if (saved)
		rec_tls.guard = saved;
	else
		rec_guard_clear();
}

/* Parse a decimal environment variable in [lo, hi]; def when unset or bad. */
static uint64_t env_u64(const char *name, uint64_t def, uint64_t lo, uint64_t hi)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi) {
		rec_log(REC_LOG_ERROR, "ignoring bad %s='%s'", name, s);
		return def;
	}
	return v;
}

/* Static buffers (no malloc in the recorder). Written by the constructor,
 * and by trace_start() when a fork child or a failed exec starts a new
 * trace (single-threaded then, or with every other thread quiescent). */
static struct {
	char pattern[4096];     /* MEMREC_OUTPUT, copied: the program may unset it */
	char registry[4096];    /* MEMREC_REGISTRY ("" = none) */
	char path[4096 + 64];   /* the current trace */
	char abs[8192 + 128];   /* absolute path + newline for the registry */
	char exe[4096];
	char cmdline[TF_MAX_STR_BYTES];
	uint8_t rec[TF_MAX_STR_BYTES + 4096 + 64];
} g_init;

/* Expand %p (pid), %n (basename of the executable) and %% in pattern into
 * buf. Returns 0 or -ENAMETOOLONG. */
static int expand_path(const char *pattern, uint32_t pid, const char *exe, char *buf, size_t cap)
{
	const char *slash = strrchr(exe, '/');
	const char *name = slash ? slash + 1 : exe;
	size_t n = 0;

	if (!*name)
		name = "unknown";
	for (const char *p = pattern; *p; p++) {
		char num[16];
		const char *ins = p;
		size_t ins_len = 1;
		if (p[0] == '%' && p[1] == 'p') {
			ins_len = cm_fmt(num, sizeof(num), "%u", pid);
			ins = num;
			p++;
		} else if (p[0] == '%' && p[1] == 'n') {
			ins = name;
			ins_len = strlen(name);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			ins = "%";
			p++;
		}
		if (n + ins_len >= cap)
			return -ENAMETOOLONG;
		memcpy(buf + n, ins, ins_len);
		n += ins_len;
	}
	buf[n] = 0;
	return 0;
}

/* Create the trace file from the pattern. When the file exists (an exec in
 * the same pid, a fork child of a pattern without %p, an old trace), try
 * NAME.1.zst ... NAME.99.zst (".N" goes before a trailing ".zst"). */
static int open_output(char *path, size_t cap)
{
	int fd;

	if (expand_path(g_init.pattern, g_rec.pid, g_init.exe, path, cap) < 0) {
		rec_log(REC_LOG_ERROR, "output path too long: '%s'", g_init.pattern);
		return -ENAMETOOLONG;
	}
	fd = rec_prim_create_excl(path);
	if (fd == -EEXIST) {
		size_t len = strlen(path);
		size_t stem = len >= 4 && !strcmp(path + len - 4, ".zst") ? len - 4 : len;
		char ext[8];
		memcpy(ext, path + stem, len - stem + 1);
		for (unsigned i = 1; i < 100 && fd == -EEXIST; i++) {
			if (stem + 4 + strlen(ext) >= cap)
				break;
			cm_fmt(path + stem, cap - stem, ".%u%s", i, ext);
			fd = rec_prim_create_excl(path);
		}
		if (fd < 0)
			memcpy(path + stem, ext, len - stem + 1);
	}
	if (fd < 0)
		rec_log(REC_LOG_ERROR, "cannot create '%s': %s; running untraced", path,
			cm_strerror(fd));
	return fd;
}

/* Append the trace's absolute path to the registry memrec reads at the end
 * (one write of one line, O_APPEND: lines of concurrent processes never mix). */
static void registry_add(const char *path)
{
	size_t n = 0, len = strlen(path);

	if (!g_init.registry[0])
		return;
	if (path[0] != '/') {
		if (rec_prim_getcwd(g_init.abs, sizeof(g_init.abs) - len - 2) < 0)
			return;
		n = strlen(g_init.abs);
		if (n > 1)
			g_init.abs[n++] = '/';
	}
	if (n + len + 2 > sizeof(g_init.abs))
		return;
	memcpy(g_init.abs + n, path, len);
	n += len;
	g_init.abs[n++] = '\n';
	if (rec_prim_append(g_init.registry, g_init.abs, n) < 0)
		rec_log(REC_LOG_ERROR, "cannot append to the registry '%s'", g_init.registry);
}

/* Open a new trace for this process (g_rec.gen already set), write its
 * header, PROCESS and module map, start the writer and recording. The
 * caller is the only recording-capable thread (constructor, fork child) or
 * every other thread is quiescent (failed exec). Returns 0 or -errno. */
static int trace_start(void)
{
	uint8_t saved_guard = rec_tls.guard;
	ssize_t exe_len, cmd_len;
	struct rec_thread *t;
	int fd, rc;

	rec_tls.guard = 1;
	exe_len = rec_prim_readlink("/proc/self/exe", g_init.exe, sizeof(g_init.exe));
	if (exe_len < 0)
		exe_len = 0;
	cmd_len = rec_prim_read_file("/proc/self/cmdline", g_init.cmdline, sizeof(g_init.cmdline));
	if (cmd_len < 0)
		cmd_len = 0;
	fd = open_output(g_init.path, sizeof(g_init.path));
	if (fd < 0) {
		g_rec.initialized = 0; /* exit hooks: nothing to finish */
		guard_restore(saved_guard);
		return fd;
	}
	g_rec.fds_private = 0;
	g_rec.out_fd = fd;
	g_rec.statm_fd = rec_prim_open_ro_high("/proc/self/statm");
	g_rec.stat_fd = rec_prim_open_ro_high("/proc/self/stat");
	g_rec.start_ns = rec_prim_mono_ns();
	rec_modules_set_exe(g_init.exe, (size_t)exe_len);

	rc = rec_writer_init(fd, g_init.path);
	if (rc < 0)
		goto fail;
	rc = tf_enc_process(g_init.rec, sizeof(g_init.rec), g_rec.pid, rec_prim_getppid(),
			    rec_prim_real_ns(), (uint32_t)g_rec.page_size, g_init.exe,
			    (size_t)exe_len, g_init.cmdline, (size_t)cmd_len);
	if (rc < 0)
		goto fail;
	rc = rec_writer_put_header(g_init.rec, (size_t)rc);
	if (rc < 0)
		goto fail;
	registry_add(g_init.path);
	rec_log(REC_LOG_INFO, "recording to '%s'", g_init.path);
	rec_tls.guard = saved_guard;

	g_rec.initialized = 1;
	atomic_store(&g_rec.finished, 0);
	atomic_store(&g_rec.enabled, (int)g_rec.gen);
	/* The module map goes into this thread's stream; the writer is not
	 * running yet: a full ring is drained synchronously (ring_wait). */
	t = rec_enter();
	if (t) {
		rec_modules_scan(t);
		rec_leave(t);
	}
	rec_tls.guard = 1;
	rc = rec_writer_start();
	guard_restore(saved_guard);
	if (rc < 0) {
		atomic_store(&g_rec.enabled, 0);
		g_rec.initialized = 0;
		rec_log(REC_LOG_ERROR, "cannot start the writer thread: %s; running untraced",
			cm_strerror(rc));
	}
	return rc;
fail:
	rec_log(REC_LOG_ERROR, "cannot start recording to '%s': %s; running untraced",
		g_init.path, cm_strerror(rc));
	rec_prim_close(fd);
	g_rec.out_fd = -1;
	g_rec.initialized = 0;
	guard_restore(saved_guard);
	return rc;
}

/* Stop recording and let the writer drain every ring, write END and close
 * the file. Returns 1 when the writer finished, 0 after its timeout. */
static int trace_finish(void)
{
	uint8_t saved_guard = rec_tls.guard;
	int done;

	/* Called from a signal handler that interrupted this thread inside the
	 * recorder: its operation never completes; do not wait for it. */
	if (saved_guard && rec_tls.thread &&
	    (rec_tls.state == REC_TLS_ACTIVE || rec_tls.state == REC_TLS_EXITING))
		atomic_store(&rec_tls.thread->in_flight, 0);
	rec_tls.guard = 1;
	atomic_store(&g_rec.enabled, 0);
	done = rec_writer_stop();
	guard_restore(saved_guard);
	return done;
}

/* 1 when this process owns the current trace: not a vfork()/_Fork() child
 * (which shares or copied the state without the atfork handlers). */
static int owns_trace(void)
{
	return g_rec.initialized && rec_prim_getpid() == g_rec.pid;
}

/* Fresh state for a new trace in this process: sequence numbers, stream
 * ids, trie and module map start over; END counts restart. Returns 0, or
 * -ENOMEM when no new trie could be mapped (the process then runs
 * untraced: the old trie's nodes are not in the new trace). */
static int new_generation(int unmap_trie)
{
	for (struct rec_thread *t = atomic_load(&g_rec.threads); t; t = t->next) {
		atomic_store(&t->n_events, 0);
		atomic_store(&t->last_committed, 0);
	}
	if (rec_trie_reset(unmap_trie) < 0) {
		g_rec.initialized = 0;
		rec_log(REC_LOG_ERROR, "out of memory for a new stack trie; running untraced");
		return -ENOMEM;
	}
	rec_modules_reset();
	rec_sig_new_trace();
	atomic_store(&g_rec.seq, 1);
	atomic_store(&g_rec.next_stream, 0);
	g_rec.gen++;
	return 0;
}

static void rec_atexit(void);

/* fork() child (pthread_atfork). Only the forking thread exists here.
 * Following: a new trace named with the child's pid; the other threads'
 * slots are freed, every ring emptied (the parent writes its own pending
 * data), the trie starts fresh, a new writer thread. Not following: the
 * child runs untraced. */
static void atfork_child(void)
{
	struct rec_thread *self = NULL;
	int was_on = atomic_load(&g_rec.enabled) != 0;

	if (rec_tls.state == REC_TLS_ACTIVE || rec_tls.state == REC_TLS_EXITING)
		self = rec_tls.thread;
	atomic_store(&g_rec.enabled, 0);
	if (!g_rec.fds_private) { /* our copies of the parent's files */
		rec_prim_close(g_rec.out_fd);
		rec_prim_close(g_rec.statm_fd);
		rec_prim_close(g_rec.stat_fd);
	} /* else they were in the parent's writer's table, not here */
	g_rec.fds_private = 0;
	g_rec.out_fd = -1;
	g_rec.statm_fd = -1;
	g_rec.stat_fd = -1;
	if (!g_rec.initialized)
		return;
	/* Not following, or fork() from a signal handler that interrupted the
	 * recorder (its staged operation belongs to the parent's trace). */
	if (!g_rec.follow_fork || !was_on || atomic_load(&g_rec.finished) || rec_tls.guard) {
		g_rec.initialized = 0;
		return;
	}
	g_rec.pid = rec_prim_getpid();
	for (struct rec_thread *t = atomic_load(&g_rec.threads); t; t = t->next) {
		uint64_t head = atomic_load(&t->head);
		if (t != self) {
			/* The owner does not exist here (it may have been
			 * between a local and a published head). */
			t->local_head = head;
			atomic_store(&t->status, REC_THR_FREE);
		}
		atomic_store(&t->tail, head);
		t->stage_len = 0;
		if (t == self)
			rec_stage_pick(t);
		atomic_store(&t->in_flight, 0);
		atomic_store(&t->kick_pending, 0);
		t->writer_dead = 0;
		t->gen = 0;
	}
	if (self)
		self->tid = rec_prim_gettid();
	if (new_generation(1) == 0)
		trace_start();
}

int rec_exec_begin(void)
{
	rec_sig_exec(1);
	if (!owns_trace() || !atomic_load(&g_rec.enabled) || rec_tls.guard)
		return 0;
	if (atomic_exchange(&g_rec.finished, 1))
		return 0;
	return trace_finish();
}

void rec_exec_failed(int token)
{
	int saved = errno;

	rec_sig_exec(0);
	errno = saved;
	if (!token)
		return;
	/* Every other thread is quiescent: recording was off and the writer
	 * waited until none was in flight. */
	if (new_generation(0) == 0)
		trace_start();
	errno = saved;
}

void rec_exit_now(void)
{
	if (!owns_trace() || atomic_exchange(&g_rec.finished, 1))
		return;
	trace_finish();
}

void rec_flush_now(void)
{
	uint8_t saved_guard = rec_tls.guard;

	if (!owns_trace() || !atomic_load(&g_rec.enabled))
		return;
	rec_tls.guard = 1;
	rec_writer_flush(2000000000u);
	guard_restore(saved_guard);
}

/* One-time setup by the constructor. Returns 0 or -errno. */
static int setup(void)
{
	g_rec.pid = rec_prim_getpid();
	g_rec.page_size = rec_prim_page_size();
	g_rec.interval_ns = env_u64("MEMREC_RSS_INTERVAL_MS", 10, 1, 3600000) * 1000000u;
	g_rec.max_depth = (uint32_t)env_u64("MEMREC_MAX_DEPTH", REC_DEFAULT_DEPTH, 1,
					    REC_MAX_DEPTH_CAP);
	g_rec.follow_fork = (int)env_u64("MEMREC_FOLLOW_FORK", 1, 0, 1);
	/* Not following: a program executed by an (untraced) child inherits
	 * the preload; only the root process records. */
	if (!g_rec.follow_fork &&
	    env_u64("MEMREC_ROOT_PID", g_rec.pid, 1, UINT32_MAX) != g_rec.pid)
		return -ESRCH;
	g_rec.gen = 1;
	atomic_store(&g_rec.seq, 1);

	if (rec_trie_init() < 0 || rec_unwind_init() < 0) {
		rec_log(REC_LOG_ERROR, "cannot set up the recorder; running untraced");
		return -ENOMEM;
	}
	if (pthread_key_create(&g_rec.key, thread_exit_cb) != 0) {
		rec_log(REC_LOG_ERROR, "cannot create a thread key; running untraced");
		return -EAGAIN;
	}
	pthread_atfork(NULL, NULL, atfork_child);
	atexit(rec_atexit);
	return 0;
}

/* Copy environment variable name into buf (cap bytes). Returns 0, or -1
 * when it is unset/empty or too long (logged). */
static int env_copy(const char *name, char *buf, size_t cap)
{
	const char *v = getenv(name);
	size_t len;

	buf[0] = 0;
	if (!v || !*v)
		return -1;
	len = strlen(v);
	if (len >= cap) {
		rec_log(REC_LOG_ERROR, "%s is too long; ignored", name);
		return -1;
	}
	memcpy(buf, v, len + 1);
	return 0;
}

__attribute__((constructor)) static void rec_ctor(void)
{
	int rc;

	if (!rec_real.malloc)
		rec_bootstrap();
	rec_log_set_level((int)env_u64("MEMREC_LOG", REC_LOG_ERROR, 0, 3));
	if (env_copy("MEMREC_OUTPUT", g_init.pattern, sizeof(g_init.pattern)) < 0 ||
	    !rec_real.malloc || !rec_real.free)
		return;
	env_copy("MEMREC_REGISTRY", g_init.registry, sizeof(g_init.registry));
	rec_tls.guard = 1;
	rc = setup();
	rec_tls.guard = 0;
	if (rc < 0)
		return;
	if (trace_start() == 0)
		rec_sig_init();
}

/* atexit: end the trace. Later events pass through. */
static void rec_atexit(void)
{
	if (!owns_trace() || atomic_exchange(&g_rec.finished, 1))
		return;
	trace_finish();
}
