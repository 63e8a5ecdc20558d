/* The writer thread. Each round: watermark (PLAN.md "Ordering"), drain each
 * ring as CHUNK records, TICK; ZSTD_e_flush and write at least every
 * REC_FLUSH_NS so a killed program leaves a readable prefix. */
#define ZSTD_STATIC_LINKING_ONLY
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <zstd.h>

#include "cm_err.h"
#include "rec_log.h"
#include "rec_prim.h"
#include "rec_writer.h"
#include "tf_enc.h"

/* zstd level: REC_ZSTD_LEVEL (traces of real programs a quarter to a third
 * smaller than level 3, at ~3x the CPU per byte) while the records compress
 * at least 3x and the process leaves a CPU free; REC_ZSTD_LEVEL_FAST when
 * they compress less than 2.5x (level 6 gains little there) or the process
 * used more than (CPUs - 1/2) cores since the last periodic flush. Between
 * the thresholds the level stays. A change ends the zstd frame (the level is
 * set between frames). -D for experiments. */
#ifndef REC_ZSTD_LEVEL
#define REC_ZSTD_LEVEL 6
#endif
#ifndef REC_ZSTD_LEVEL_FAST
#define REC_ZSTD_LEVEL_FAST 3
#endif
#define REC_ZSTD_WINDOW_LOG 22        /* the decoder caps the window at 2^23 */
#define REC_FLUSH_NS (200u * 1000000u) /* ZSTD_e_flush at least this often */
#define REC_STOP_WAIT_NS (5ull * 1000000000u) /* exit: wait for in-flight ops */
#define REC_SWEEP_ROUNDS 100 /* rounds between liveness checks of OWNED slots */

static struct {
	ZSTD_CCtx *cctx;         /* static context over wksp */
	void *wksp;
	size_t wksp_bytes;
	uint8_t *out;            /* compressed output buffer */
	size_t out_cap;          /* bytes */
	int fd;
	const char *path;        /* the trace file (borrowed), to reopen it */
	uint64_t fd_id[2];       /* st_dev, st_ino of the trace file */
	uint64_t statm_id[2];    /* same for g_rec.statm_fd / stat_fd */
	uint64_t stat_id[2];
	unsigned window_log;
	int level;               /* zstd level of the current frame */
	unsigned n_cpus;         /* CPUs the process may run on */
	uint64_t cpu_ns_flush;   /* process CPU time at the last periodic flush */
	uint64_t in_bytes, out_bytes; /* fed to zstd, written by it (monotonic) */
	uint64_t in_bytes_flush, out_bytes_flush; /* the same at that flush */
	int err;                 /* sticky: writing failed, data is dropped */
	uint64_t watermark;      /* last TICK watermark (monotonic) */
	uint64_t last_flush_ns;  /* CLOCK_MONOTONIC of the last flush */
	pthread_t thread;
	_Atomic uint32_t stop;   /* 1: do the final round and exit */
	_Atomic uint32_t done;   /* futex word: 1 when the writer finished */
	_Atomic uint32_t flush_req;  /* flush requests made (rec_writer_flush) */
	_Atomic uint32_t flush_done; /* futex word: requests served */
	struct rec_thread *main_t;   /* the main thread's slot (only_writer_left) */
	int private_fds;         /* the writer has its own descriptor table */
	const void *init_owner;  /* &rec_tls of the thread that set the writer up,
				  * until the writer thread starts */
	uint64_t n_rounds;
	int started;
} g_w = { .fd = -1 };

static int is_ours(int fd, const uint64_t id[2])
{
	uint64_t dev, ino;

	return fd >= 0 && rec_prim_fd_id(fd, &dev, &ino) == 0 && dev == id[0] && ino == id[1];
}

/* The program closed or replaced one of our descriptors (a daemon closing
 * everything, dup2() over all numbers): from now on the writer thread
 * uses a descriptor table of its own (unshare CLONE_FILES) holding only
 * its still-intact files (and stderr for rec_log unless it is a pipe or a
 * socket, whose reader must see EOF when the program closes it), so the
 * program can never take them away again and nothing it opens later is
 * ever at one of our numbers. Not done up front: when the last program
 * thread ends after main() called pthread_exit(), the writer calls exit()
 * and stdio must still reach the program's descriptors. */
static void go_private(void)
{
	int keep[4];

	if (g_w.private_fds)
		return;
	keep[0] = is_ours(g_w.fd, g_w.fd_id) ? g_w.fd : -1;
	keep[1] = is_ours(g_rec.statm_fd, g_w.statm_id) ? g_rec.statm_fd : -1;
	keep[2] = is_ours(g_rec.stat_fd, g_w.stat_id) ? g_rec.stat_fd : -1;
	keep[3] = rec_prim_is_pipe_or_socket(2) ? -1 : 2;
	if (rec_prim_private_fds(keep, 4) == 0) {
		g_w.private_fds = 1;
		g_rec.fds_private = 1;
		rec_log(REC_LOG_INFO, "the program took our descriptors; the writer now has "
				      "its own descriptor table");
	}
}

/* Is *fd still the file identified by id (the program may have closed it
 * or dup2()'d another file over it)? If not, never touch that number again
 * (it is not ours any more): reopen path read-only at a high number. */
static void own_ro(int *fd, uint64_t id[2], const char *path)
{
	if (is_ours(*fd, id))
		return;
	go_private();
	*fd = rec_prim_open_ro_high(path);
	if (*fd < 0 || rec_prim_fd_id(*fd, &id[0], &id[1]) < 0)
		id[0] = id[1] = 0;
}

static void close_if_ours(int *fd, const uint64_t id[2])
{
	uint64_t dev, ino;

	if (*fd >= 0 && rec_prim_fd_id(*fd, &dev, &ino) == 0 && dev == id[0] && ino == id[1])
		rec_prim_close(*fd);
	*fd = -1;
}

static void fd_id(int fd, uint64_t id[2])
{
	if (fd < 0 || rec_prim_fd_id(fd, &id[0], &id[1]) < 0)
		id[0] = id[1] = 0;
}

/* CPUs the process may run on (at least 1). */
static unsigned n_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) < 1)
		return 1;
	return (unsigned)CPU_COUNT(&set);
}

/* CPU time of the whole process, ns (0 when unavailable). */
static uint64_t process_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int rec_writer_init(int fd, const char *path)
{
	if (!g_w.wksp) {
		ZSTD_compressionParameters cp =
			ZSTD_getCParams(REC_ZSTD_LEVEL, ZSTD_CONTENTSIZE_UNKNOWN, 0);
		ZSTD_compressionParameters cf =
			ZSTD_getCParams(REC_ZSTD_LEVEL_FAST, ZSTD_CONTENTSIZE_UNKNOWN, 0);
		if (cp.windowLog > REC_ZSTD_WINDOW_LOG)
			cp.windowLog = REC_ZSTD_WINDOW_LOG;
		if (cf.windowLog > REC_ZSTD_WINDOW_LOG)
			cf.windowLog = REC_ZSTD_WINDOW_LOG;
		g_w.window_log = cp.windowLog > cf.windowLog ? cp.windowLog : cf.windowLog;
		cp.windowLog = cf.windowLog = g_w.window_log;
		size_t bp = ZSTD_estimateCStreamSize_usingCParams(cp);
		size_t bf = ZSTD_estimateCStreamSize_usingCParams(cf);
		g_w.wksp_bytes = (bp > bf ? bp : bf) + (64u << 10);
		g_w.wksp = rec_prim_map(g_w.wksp_bytes, 0);
		g_w.out_cap = ZSTD_CStreamOutSize();
		g_w.out = rec_prim_map(g_w.out_cap, 0);
		if (!g_w.wksp || !g_w.out) {
			rec_prim_unmap(g_w.wksp, g_w.wksp_bytes);
			rec_prim_unmap(g_w.out, g_w.out_cap);
			g_w.wksp = NULL;
			g_w.out = NULL;
			return -ENOMEM;
		}
	}
	/* A new trace (fork child, failed exec): the context may be in the
	 * middle of the previous frame; initStaticCCtx starts it afresh. */
	g_w.cctx = ZSTD_initStaticCCtx(g_w.wksp, g_w.wksp_bytes);
	if (!g_w.cctx)
		return -CM_E_ZSTD;
	g_w.level = REC_ZSTD_LEVEL;
	g_w.n_cpus = n_cpus();
	g_w.cpu_ns_flush = process_cpu_ns();
	g_w.in_bytes = g_w.out_bytes = g_w.in_bytes_flush = g_w.out_bytes_flush = 0;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(g_w.cctx, ZSTD_c_compressionLevel,
						REC_ZSTD_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(g_w.cctx, ZSTD_c_windowLog, (int)g_w.window_log)))
		return -CM_E_ZSTD;
	g_w.fd = fd;
	g_w.path = path;
	fd_id(fd, g_w.fd_id);
	fd_id(g_rec.statm_fd, g_w.statm_id);
	fd_id(g_rec.stat_fd, g_w.stat_id);
	g_w.err = 0;
	g_w.watermark = 0;
	g_w.last_flush_ns = 0;
	g_w.main_t = NULL;
	g_w.started = 0;
	g_w.private_fds = 0;
	atomic_store(&g_w.stop, 0);
	atomic_store(&g_w.done, 0);
	atomic_store(&g_w.flush_req, 0);
	atomic_store(&g_w.flush_done, 0);
	g_w.init_owner = &rec_tls;
	return 0;
}

/* Before each write: is g_w.fd still our trace file? If the program closed
 * it or put another file at its number, reopen the trace by path (O_APPEND,
 * same device and inode required) at a high number; the old number is left
 * alone. Returns 0 or -errno. */
static int out_fd_check(void)
{
	uint64_t dev, ino;
	int fd;

	if (g_w.fd >= 0 && rec_prim_fd_id(g_w.fd, &dev, &ino) == 0 && dev == g_w.fd_id[0] &&
	    ino == g_w.fd_id[1])
		return 0;
	go_private();
	fd = rec_prim_reopen_append(g_w.path, g_w.fd_id[0], g_w.fd_id[1]);
	if (fd < 0)
		return fd;
	rec_log(REC_LOG_INFO, "trace descriptor %d was closed or replaced; reopened as %d",
		g_w.fd, fd);
	g_w.fd = fd;
	g_rec.out_fd = fd;
	return 0;
}

static void write_out(const void *data, size_t len)
{
	int rc;

	if (g_w.err || !len)
		return;
	rc = out_fd_check();
	if (rc == 0)
		rc = rec_prim_write_all(g_w.fd, data, len);
	if (rc < 0) {
		g_w.err = rc;
		rec_log(REC_LOG_ERROR, "cannot write the trace: %s; recording stops",
			cm_strerror(rc));
	}
}

/* Feed len bytes through zstd with mode; write whatever comes out. */
static void zput(const void *data, size_t len, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = { data, len, 0 };

	if (g_w.err)
		return;
	g_w.in_bytes += len;
	for (;;) {
		ZSTD_outBuffer out = { g_w.out, g_w.out_cap, 0 };
		size_t r = ZSTD_compressStream2(g_w.cctx, &out, &in, mode);
		if (ZSTD_isError(r)) {
			g_w.err = -CM_E_ZSTD;
			rec_log(REC_LOG_ERROR, "zstd: %s; recording stops", ZSTD_getErrorName(r));
			return;
		}
		g_w.out_bytes += out.pos;
		write_out(g_w.out, out.pos);
		if (g_w.err)
			return;
		if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0)
			return;
	}
}

/* The periodic flush: pick the zstd level from the cores the process used
 * since the last one (see REC_ZSTD_LEVEL); a change ends the frame, the
 * next starts at the new level. */
static void zlevel_flush(uint64_t now)
{
	uint64_t cpu = process_cpu_ns(), ns = now - g_w.last_flush_ns;
	uint64_t used = cpu - g_w.cpu_ns_flush; /* ns of CPU in ns of wall */
	uint64_t in = g_w.in_bytes - g_w.in_bytes_flush, out = g_w.out_bytes - g_w.out_bytes_flush;
	int want = g_w.level;

	g_w.cpu_ns_flush = cpu;
	g_w.in_bytes_flush = g_w.in_bytes;
	g_w.out_bytes_flush = g_w.out_bytes;
	if (2 * used > (2 * (uint64_t)g_w.n_cpus - 1) * ns || 2 * in < 5 * out)
		want = REC_ZSTD_LEVEL_FAST; /* CPUs busy, or records that compress < 2.5x */
	else if (used < ((uint64_t)g_w.n_cpus - 1) * ns && in >= 3 * out)
		want = REC_ZSTD_LEVEL;
	if (want == g_w.level) {
		zput(NULL, 0, ZSTD_e_flush);
		return;
	}
	zput(NULL, 0, ZSTD_e_end);
	if (!g_w.err && ZSTD_isError(ZSTD_CCtx_setParameter(g_w.cctx, ZSTD_c_compressionLevel,
								want))) {
		zput(NULL, 0, ZSTD_e_flush); /* keeps the old level */
		return;
	}
	g_w.level = want;
}

int rec_writer_put_header(const void *rec, size_t len)
{
	uint8_t hdr[TF_HEADER_BYTES];

	tf_enc_header(hdr, 0);
	write_out(hdr, sizeof(hdr));
	zput(rec, len, ZSTD_e_continue);
	return g_w.err;
}

static uint64_t rss_bytes(void)
{
	char buf[96];
	ssize_t n;
	uint64_t v = 0;
	const char *p;

	own_ro(&g_rec.statm_fd, g_w.statm_id, "/proc/self/statm");
	if (g_rec.statm_fd < 0)
		return 0;
	n = rec_prim_pread(g_rec.statm_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strchr(buf, ' '); /* "size resident shared ..." in pages */
	if (!p)
		return 0;
	for (p++; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	return v * g_rec.page_size;
}

/* Copy the committed bytes of t as one CHUNK (the ring holds whole
 * records only, committed per operation). */
static void drain(struct rec_thread *t)
{
	uint64_t head = atomic_load_explicit(&t->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
	uint8_t hdr[TF_MAX_EVENT_BYTES];

	if (head == tail)
		return;
	uint32_t len = (uint32_t)(head - tail);
	size_t off = (size_t)(tail & (REC_RING_BYTES - 1));
	size_t first = REC_RING_BYTES - off;
	zput(hdr, tf_enc_chunk_head(hdr, t->stream, len), ZSTD_e_continue);
	if (first >= len) {
		zput(t->ring + off, len, ZSTD_e_continue);
	} else {
		zput(t->ring + off, first, ZSTD_e_continue);
		zput(t->ring, len - first, ZSTD_e_continue);
	}
	atomic_store_explicit(&t->tail, head, memory_order_release);
}

/* One round. Returns the number of threads still in flight. */
static unsigned writer_round(int final)
{
	uint64_t w = atomic_load(&g_rec.seq), wm = w;
	unsigned n_busy = 0;
	uint8_t rec[TF_MAX_EVENT_BYTES];
	struct rec_thread *t, *list = atomic_load(&g_rec.threads);

	/* 1. The watermark, before reading any ring. */
	for (t = list; t; t = t->next) {
		if (atomic_load(&t->in_flight)) {
			uint64_t lc = atomic_load_explicit(&t->last_committed, memory_order_acquire);
			if (lc + 1 < wm)
				wm = lc + 1;
			n_busy++;
		}
	}
	if (wm < g_w.watermark)
		wm = g_w.watermark; /* everything below the old one is out already */
	g_w.watermark = wm;

	/* 2. Drain. A slot whose owner is gone is retired after its last drain.
	 * About once a second also look at OWNED slots: a thread whose first
	 * event came from a TSD destructor after the last destructor round
	 * never ran thread_exit_cb. */
	int sweep = ++g_w.n_rounds % REC_SWEEP_ROUNDS == 0;
	for (t = list; t; t = t->next) {
		uint32_t st = atomic_load_explicit(&t->status, memory_order_acquire);
		/* tid 0: a thread is claiming the slot right now. */
		uint32_t tid = __atomic_load_n(&t->tid, __ATOMIC_RELAXED);
		if ((st == REC_THR_EXITING || (sweep && st == REC_THR_OWNED && tid)) &&
		    !t->writer_dead && !rec_prim_thread_alive(tid))
			t->writer_dead = 1;
		drain(t);
		atomic_store_explicit(&t->kick_pending, 0, memory_order_relaxed);
		if (t->writer_dead && !final) {
			/* Drained and the owner is gone: give the touched ring
			 * pages back and restart the ring at 0, so thousands of
			 * short-lived threads do not grow the resident memory. */
			uint64_t used = atomic_load(&t->head);
			rec_prim_discard(t->ring, used < REC_RING_BYTES ? used : REC_RING_BYTES);
			atomic_store(&t->head, 0);
			atomic_store(&t->tail, 0);
			t->local_head = 0;
			t->writer_dead = 0;
			__atomic_store_n(&t->tid, 0, __ATOMIC_RELAXED);
			atomic_store(&t->in_flight, 0);
			atomic_store_explicit(&t->status, REC_THR_FREE, memory_order_release);
		}
	}

	/* 3. TICK. */
	uint64_t now = rec_prim_mono_ns();
	zput(rec, tf_enc_tick(rec, wm, now - g_rec.start_ns, rss_bytes()), ZSTD_e_continue);
	if (now - g_w.last_flush_ns >= REC_FLUSH_NS) {
		zlevel_flush(now);
		g_w.last_flush_ns = now;
	}

	/* 4. Threads waiting for ring room may go on. */
	atomic_fetch_add(&g_rec.round_word, 1);
	rec_prim_futex_wake((uint32_t *)&g_rec.round_word, 1 << 30);
	return n_busy;
}

static void writer_finish(void)
{
	uint64_t deadline = rec_prim_mono_ns() + REC_STOP_WAIT_NS, n_events = 0;
	uint8_t rec[TF_MAX_EVENT_BYTES];
	struct rec_thread *t;

	/* Operations that saw enabled == 1 finish; keep draining meanwhile so
	 * none waits for room forever. */
	while (writer_round(0) && rec_prim_mono_ns() < deadline)
		rec_prim_sleep_ns(1000000);
	writer_round(1);
	for (t = atomic_load(&g_rec.threads); t; t = t->next)
		n_events += atomic_load(&t->n_events);
	zput(rec, tf_enc_end(rec, rec_prim_mono_ns() - g_rec.start_ns, n_events), ZSTD_e_end);
	/* Close only descriptors that are still ours. */
	close_if_ours(&g_w.fd, g_w.fd_id);
	close_if_ours(&g_rec.statm_fd, g_w.statm_id);
	close_if_ours(&g_rec.stat_fd, g_w.stat_id);
	g_rec.out_fd = -1;
}

/* glibc ends the process with exit(0) when its last thread exits, and the
 * writer counts as a thread: after main() called pthread_exit() the process
 * would never end. Returns 1 when every thread but the writer is gone: the
 * main thread (the group leader) ran its TSD destructors and is a zombie,
 * and the group has 2 threads left (it and the writer). */
static int only_writer_left(void)
{
	/* The main thread's slot is never reused while the zombie leader exists. */
	struct rec_thread *main_t = g_w.main_t;
	char buf[1024];
	const char *p;
	ssize_t n;
	unsigned field;
	uint64_t n_threads = 0;

	if (!main_t) {
		for (struct rec_thread *t = atomic_load(&g_rec.threads); t; t = t->next)
			if (t->tid == g_rec.pid)
				main_t = t;
		if (!main_t)
			return 0;
		g_w.main_t = main_t;
	}
	if (atomic_load(&main_t->status) != REC_THR_EXITING)
		return 0;
	own_ro(&g_rec.stat_fd, g_w.stat_id, "/proc/self/stat");
	if (g_rec.stat_fd < 0)
		return 0;
	n = rec_prim_pread(g_rec.stat_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* "pid (comm) S ppid ...": comm may hold ')' */
	if (!p || p[1] != ' ' || p[2] != 'Z')
		return 0;
	/* Field 3 is the state; field 20 num_threads. */
	for (p += 2, field = 3; *p && field < 20; p++)
		if (*p == ' ')
			field++;
	if (field != 20)
		return 0;
	for (; *p >= '0' && *p <= '9'; p++)
		n_threads = n_threads * 10 + (uint64_t)(*p - '0');
	return n_threads == 2;
}

static void *writer_main(void *arg)
{
	(void)arg;
	rec_tls.state = REC_TLS_OFF;
	rec_tls.guard = 1;
	for (;;) {
		uint32_t seen = atomic_load(&g_rec.wake_word);
		if (atomic_load(&g_w.stop))
			break;
		if (atomic_load(&g_w.flush_req) == atomic_load(&g_w.flush_done))
			rec_prim_futex_wait((uint32_t *)&g_rec.wake_word, seen, g_rec.interval_ns);
		if (atomic_load(&g_w.stop))
			break;
		writer_round(0);
		uint32_t req = atomic_load(&g_w.flush_req);
		if (req != atomic_load(&g_w.flush_done)) {
			zput(NULL, 0, ZSTD_e_flush);
			g_w.last_flush_ns = rec_prim_mono_ns();
			atomic_store(&g_w.flush_done, req);
			rec_prim_futex_wake((uint32_t *)&g_w.flush_done, 1 << 30);
		}
		if (REC_UNLIKELY(only_writer_left()) && !atomic_exchange(&g_rec.finished, 1)) {
			/* Do what the last thread would have done: exit(0). The
			 * trace ends first; rec_atexit then sees finished. */
			atomic_store(&g_rec.enabled, 0);
			writer_finish();
			atomic_store(&g_w.done, 1);
			rec_prim_futex_wake((uint32_t *)&g_w.done, 1 << 30);
			exit(0);
		}
	}
	writer_finish();
	atomic_store(&g_w.done, 1);
	rec_prim_futex_wake((uint32_t *)&g_w.done, 1 << 30);
	return NULL;
}

int rec_writer_start(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	int rc;

	/* A first round now, flushed: an image that exec()s at once still
	 * leaves its PROCESS and MODULE records. */
	writer_round(0);
	zput(NULL, 0, ZSTD_e_flush);
	g_w.last_flush_ns = rec_prim_mono_ns();
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256u << 10);
	rc = pthread_create(&g_w.thread, &attr, writer_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	g_w.started = 1;
	g_w.init_owner = NULL;
	return 0;
}

int rec_writer_stop(void)
{
	uint64_t deadline = rec_prim_mono_ns() + REC_STOP_WAIT_NS + 5000000000ull;

	if (!g_w.started)
		return 0;
	atomic_store(&g_w.stop, 1);
	rec_writer_kick();
	while (!atomic_load(&g_w.done) && rec_prim_mono_ns() < deadline)
		rec_prim_futex_wait((uint32_t *)&g_w.done, 0, 100000000);
	return atomic_load(&g_w.done) != 0;
}

void rec_writer_flush(uint64_t timeout_ns)
{
	uint64_t deadline = rec_prim_mono_ns() + timeout_ns;
	uint32_t req, cur;

	if (!g_w.started || atomic_load(&g_w.done))
		return;
	req = atomic_fetch_add(&g_w.flush_req, 1) + 1;
	rec_writer_kick();
	while ((int32_t)((cur = atomic_load(&g_w.flush_done)) - req) < 0 &&
	       !atomic_load(&g_w.done) && rec_prim_mono_ns() < deadline)
		rec_prim_futex_wait((uint32_t *)&g_w.flush_done, cur, 100000000);
}

int rec_writer_drain_now(void)
{
	if (g_w.started || g_w.init_owner != &rec_tls || !g_w.cctx)
		return 0;
	writer_round(0);
	return 1;
}

void rec_writer_kick(void)
{
	atomic_fetch_add(&g_rec.wake_word, 1);
	rec_prim_futex_wake((uint32_t *)&g_rec.wake_word, 1);
}

int rec_writer_is_gone(void)
{
	return atomic_load(&g_w.done) != 0;
}
