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
#include "rec_trie.h"
#include "rec_unwind.h"
#include "rec_writer.h"
#include "tf_enc.h"

__thread struct rec_tls rec_tls __attribute__((tls_model("initial-exec")));
struct rec_global g_rec = { .out_fd = -1, .statm_fd = -1, .stat_fd = -1 };
struct rec_real rec_real;

/* ---- bootstrap ---------------------------------------------------------- */

#define ARENA_BYTES (256u << 10)

static struct {
	_Alignas(4096) uint8_t buf[ARENA_BYTES];
	_Atomic size_t used; /* bytes handed out, including headers */
} g_arena;

void *rec_arena_alloc(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	if (align > 4096 || (align & (align - 1)) || size > ARENA_BYTES)
		return NULL;
	for (;;) {
		size_t used = atomic_load(&g_arena.used);
		uintptr_t base = (uintptr_t)g_arena.buf + used + 16; /* room for the header */
		uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
		size_t end = (size_t)(p - (uintptr_t)g_arena.buf) + size;
		if (end > ARENA_BYTES)
			return NULL;
		end = (end + 15) & ~(size_t)15;
		if (atomic_compare_exchange_weak(&g_arena.used, &used, end)) {
			((size_t *)p)[-1] = size;
			return (void *)p;
		}
	}
}

int rec_arena_owns(const void *p)
{
	return (const uint8_t *)p >= g_arena.buf && (const uint8_t *)p < g_arena.buf + ARENA_BYTES;
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
	RESOLVE(dlopen);
	RESOLVE(dlclose);
	RESOLVE(pipe2);
	RESOLVE(malloc);
	rec_tls.boot = 0;
	errno = saved;
}

/* ---- thread streams ----------------------------------------------------- */

#define THREAD_HEAD_BYTES ((sizeof(struct rec_thread) + 4095) & ~(size_t)4095)

/* Claim a free slot or map a new one. Returns NULL when out of memory. */
static struct rec_thread *thread_claim(void)
{
	struct rec_thread *t;

	for (t = atomic_load(&g_rec.threads); t; t = t->next) {
		uint32_t expect = REC_THR_FREE;
		if (atomic_load_explicit(&t->status, memory_order_relaxed) == REC_THR_FREE &&
		    atomic_compare_exchange_strong(&t->status, &expect, REC_THR_OWNED))
			goto claimed;
	}
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
	t->stream = atomic_fetch_add(&g_rec.next_stream, 1);
	t->tid = rec_prim_gettid();
	memset(&t->st, 0, sizeof(t->st));
	t->stage_len = 0;
	t->stage_events = 0;
	t->stage_last_seq = 0;
	t->prev_n = 0;
	t->need_thread_rec = 1;
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

static void stage_thread_rec(struct rec_thread *t)
{
	char name[16];
	size_t len = rec_prim_thread_name(name);
	uint64_t seq = rec_next_seq();

	t->stage_len += (uint32_t)tf_enc_thread(t->stage + t->stage_len, &t->st, seq,
						t->tid, name, len);
	t->stage_last_seq = seq;
	t->need_thread_rec = 0;
}

struct rec_thread *rec_enter_slow(void)
{
	struct rec_tls *tls = &rec_tls;
	struct rec_thread *t;

	if (tls->guard || !atomic_load_explicit(&g_rec.enabled, memory_order_relaxed))
		return NULL;
	if (tls->state == REC_TLS_UNINIT) {
		int saved = errno;
		tls->state = REC_TLS_INITIALIZING;
		tls->guard = 1;
		t = thread_claim();
		errno = saved;
		if (!t) {
			rec_log(REC_LOG_ERROR, "out of memory for a thread buffer; thread not traced");
			tls->state = REC_TLS_OFF;
			tls->guard = 0;
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
	t = rec_enter();
	if (t && REC_UNLIKELY(t->need_thread_rec))
		stage_thread_rec(t);
	return t;
}

/* ---- the event path ----------------------------------------------------- */

void rec_stage_free(struct rec_thread *t, enum tf_kind kind, uint64_t addr)
{
	uint64_t seq = rec_next_seq();

	t->stage_len += (uint32_t)tf_enc_free(t->stage + t->stage_len, &t->st, seq, kind, addr);
	t->stage_last_seq = seq;
	t->stage_events++;
}

/* Unwind, walk the trie root first reusing the previous stack's common
 * prefix, stage NODE records for new nodes. Returns the leaf id; when the
 * trie is full, the deepest node found (0 when none: unknown stack). */
static uint32_t stack_node(struct rec_thread *t)
{
	int trunc;
	size_t n = rec_unwind_capture(t->frames, g_rec.max_depth, &trunc);
	size_t total = n + (size_t)trunc, k = 0, i;
	uint32_t parent = TF_NODE_ROOT;

	if (total == 0) {
		trunc = 1; /* unwinding failed: one "truncated" node */
		total = 1;
	}
	/* Root-first frame i: the truncation mark, then frames[n-1] .. [0]. */
#define FRAME(i) ((trunc && (i) == 0) ? (uint64_t)TF_ADDR_TRUNCATED \
					: (uint64_t)(uintptr_t)t->frames[total - 1 - (i)])
	while (k < total && k < t->prev_n && t->prev_addr[k] == FRAME(k))
		k++;
	if (k)
		parent = t->prev_id[k - 1];
	for (i = k; i < total; i++) {
		uint64_t addr = FRAME(i);
		int inserted;
		uint32_t id = rec_trie_get(parent, addr, &inserted);
		if (REC_UNLIKELY(!id))
			break; /* trie full: keep the deepest node found */
		if (inserted)
			t->stage_len += (uint32_t)tf_enc_node(t->stage + t->stage_len, &t->st,
							      id, parent, addr);
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
	int saved = errno;
	uint32_t node = stack_node(t);
	/* After the trie walk: see .notes/recorder.md "NODE visibility". */
	uint64_t seq = rec_next_seq();

	t->stage_len += (uint32_t)tf_enc_alloc(t->stage + t->stage_len, &t->st, seq, kind,
					       node, size, addr);
	t->stage_last_seq = seq;
	t->stage_events++;
	errno = saved;
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

void rec_commit(struct rec_thread *t)
{
	uint32_t len = t->stage_len;
	uint64_t tail;

	if (!len)
		return;
	tail = atomic_load_explicit(&t->tail, memory_order_acquire);
	if (REC_UNLIKELY(REC_RING_BYTES - (t->local_head - tail) < len)) {
		int saved = errno;
		int rc = ring_wait(t, len);
		errno = saved;
		if (rc < 0) {
			t->stage_len = 0;
			t->stage_events = 0;
			return;
		}
	}
	size_t off = (size_t)(t->local_head & (REC_RING_BYTES - 1));
	size_t first = REC_RING_BYTES - off;
	if (first >= len) {
		memcpy(t->ring + off, t->stage, len);
	} else {
		memcpy(t->ring + off, t->stage, first);
		memcpy(t->ring, t->stage + first, len - first);
	}
	t->local_head += len;
	atomic_store_explicit(&t->head, t->local_head, memory_order_release);
	if (t->stage_events)
		atomic_store_explicit(&t->n_events,
				      atomic_load_explicit(&t->n_events, memory_order_relaxed) +
					      t->stage_events,
				      memory_order_relaxed);
	if (t->stage_last_seq)
		atomic_store_explicit(&t->last_committed, t->stage_last_seq, memory_order_release);
	t->stage_len = 0;
	t->stage_events = 0;
	t->stage_last_seq = 0;
	/* Half full: ask the writer for an early round, once. */
	if (REC_UNLIKELY(t->local_head - tail > REC_RING_BYTES / 2) &&
	    !atomic_load_explicit(&t->kick_pending, memory_order_relaxed)) {
		atomic_store_explicit(&t->kick_pending, 1, memory_order_relaxed);
		rec_writer_kick();
	}
}

void rec_leave(struct rec_thread *t)
{
	rec_commit(t);
	atomic_store_explicit(&t->in_flight, 0, memory_order_release);
	rec_tls.guard = 0;
}

void rec_on_dl_change(void)
{
	struct rec_thread *t = rec_enter();

	if (!t)
		return;
	rec_modules_scan(t);
	rec_leave(t);
}

/* ---- process start and exit --------------------------------------------- */

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

/* Expand %p (pid) and %% in pattern into buf. Returns 0 or -ENAMETOOLONG. */
static int expand_path(const char *pattern, uint32_t pid, char *buf, size_t cap, int *had_pid)
{
	size_t n = 0;

	*had_pid = 0;
	for (const char *p = pattern; *p; p++) {
		char num[16];
		const char *ins = NULL;
		size_t ins_len = 1;
		if (p[0] == '%' && p[1] == 'p') {
			ins_len = cm_fmt(num, sizeof(num), "%u", pid);
			ins = num;
			*had_pid = 1;
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			ins = "%";
			p++;
		} else {
			ins = p;
		}
		if (n + ins_len >= cap)
			return -ENAMETOOLONG;
		memcpy(buf + n, ins, ins_len);
		n += ins_len;
	}
	buf[n] = 0;
	return 0;
}

/* Create the trace file. With %p in the pattern an existing file means this
 * pid already wrote a trace before exec(): use PATH.1, PATH.2, ... */
static int open_output(const char *pattern, char *path, size_t cap)
{
	int had_pid, fd;

	if (expand_path(pattern, g_rec.pid, path, cap, &had_pid) < 0) {
		rec_log(REC_LOG_ERROR, "output path too long: '%s'", pattern);
		return -ENAMETOOLONG;
	}
	fd = rec_prim_create_excl(path);
	if (fd == -EEXIST && had_pid) {
		size_t len = strlen(path);
		for (unsigned i = 1; i < 100 && fd == -EEXIST; i++) {
			if (len + 4 >= cap)
				break;
			cm_fmt(path + len, cap - len, ".%u", i);
			fd = rec_prim_create_excl(path);
		}
		if (fd < 0)
			path[len] = 0;
	}
	if (fd < 0)
		rec_log(REC_LOG_ERROR, "cannot create '%s': %s; running untraced", path,
			cm_strerror(fd));
	return fd;
}

static void rec_atexit(void);

static void atfork_child(void)
{
	/* The child has no writer thread: it runs untraced (issue 3 follows
	 * forks). Close our descriptors so they do not leak into it. */
	atomic_store(&g_rec.enabled, 0);
	rec_prim_close(g_rec.out_fd);
	rec_prim_close(g_rec.statm_fd);
	rec_prim_close(g_rec.stat_fd);
	g_rec.out_fd = -1;
	g_rec.statm_fd = -1;
	g_rec.stat_fd = -1;
}

/* Static buffers used once, by the constructor. */
static struct {
	char path[4096 + 64];
	char exe[4096];
	char cmdline[TF_MAX_STR_BYTES];
	uint8_t rec[TF_MAX_STR_BYTES + 4096 + 64];
} g_init;

static int setup(const char *pattern)
{
	ssize_t exe_len, cmd_len;
	int fd, rc;

	g_rec.pid = rec_prim_getpid();
	g_rec.page_size = rec_prim_page_size();
	g_rec.interval_ns = env_u64("MEMREC_RSS_INTERVAL_MS", 10, 1, 3600000) * 1000000u;
	g_rec.max_depth = (uint32_t)env_u64("MEMREC_MAX_DEPTH", REC_DEFAULT_DEPTH, 1,
					    REC_MAX_DEPTH_CAP);
	atomic_store(&g_rec.seq, 1);

	if (rec_trie_init() < 0 || rec_unwind_init() < 0) {
		rec_log(REC_LOG_ERROR, "cannot set up the recorder; running untraced");
		return -ENOMEM;
	}
	fd = open_output(pattern, g_init.path, sizeof(g_init.path));
	if (fd < 0)
		return fd;
	g_rec.out_fd = fd;
	g_rec.statm_fd = rec_prim_open_ro_high("/proc/self/statm");
	g_rec.stat_fd = rec_prim_open_ro_high("/proc/self/stat");
	g_rec.start_ns = rec_prim_mono_ns();

	exe_len = rec_prim_readlink("/proc/self/exe", g_init.exe, sizeof(g_init.exe));
	if (exe_len < 0)
		exe_len = 0;
	cmd_len = rec_prim_read_file("/proc/self/cmdline", g_init.cmdline, sizeof(g_init.cmdline));
	if (cmd_len < 0)
		cmd_len = 0;
	rec_modules_set_exe(g_init.exe, (size_t)exe_len);

	rc = rec_writer_init(fd);
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
	if (pthread_key_create(&g_rec.key, thread_exit_cb) != 0) {
		rc = -EAGAIN;
		goto fail;
	}
	pthread_atfork(NULL, NULL, atfork_child);
	atexit(rec_atexit);
	rec_log(REC_LOG_INFO, "recording to '%s'", g_init.path);
	return 0;
fail:
	rec_log(REC_LOG_ERROR, "cannot start recording to '%s': %s; running untraced",
		g_init.path, cm_strerror(rc));
	rec_prim_close(fd);
	g_rec.out_fd = -1;
	return rc;
}

__attribute__((constructor)) static void rec_ctor(void)
{
	const char *pattern;
	struct rec_thread *t;

	if (!rec_real.malloc)
		rec_bootstrap();
	rec_log_set_level((int)env_u64("MEMREC_LOG", REC_LOG_ERROR, 0, 3));
	pattern = getenv("MEMREC_OUTPUT");
	if (!pattern || !*pattern || !rec_real.malloc || !rec_real.free)
		return;
	rec_tls.guard = 1;
	int rc = setup(pattern);
	rec_tls.guard = 0;
	if (rc < 0)
		return;
	g_rec.initialized = 1;
	atomic_store(&g_rec.enabled, 1);
	/* The module map goes into the main thread's stream (the ring has room:
	 * no writer yet). */
	t = rec_enter();
	if (t) {
		rec_modules_scan(t);
		rec_leave(t);
	}
	rec_tls.guard = 1;
	rc = rec_writer_start();
	rec_tls.guard = 0;
	if (rc < 0) {
		atomic_store(&g_rec.enabled, 0);
		g_rec.initialized = 0;
		rec_log(REC_LOG_ERROR, "cannot start the writer thread: %s; running untraced",
			cm_strerror(rc));
	}
}

/* atexit: stop recording, let the writer drain every ring, write END and
 * close the file. Later events pass through. */
static void rec_atexit(void)
{
	uint8_t saved_guard = rec_tls.guard;

	if (!g_rec.initialized || rec_prim_getpid() != g_rec.pid)
		return;
	if (atomic_exchange(&g_rec.finished, 1))
		return;
	/* exit() from a signal handler that interrupted this thread inside the
	 * recorder: its operation never completes; do not wait for it. */
	if (saved_guard && rec_tls.thread &&
	    (rec_tls.state == REC_TLS_ACTIVE || rec_tls.state == REC_TLS_EXITING))
		atomic_store(&rec_tls.thread->in_flight, 0);
	rec_tls.guard = 1;
	atomic_store(&g_rec.enabled, 0);
	rec_writer_stop();
	rec_tls.guard = saved_guard;
}
