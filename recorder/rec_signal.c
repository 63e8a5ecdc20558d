/* --mark-signal (docs/usage.md "Marks from a signal"). The kernel runs the
 * recorder's handler for the mark signal; the program's own disposition
 * (its "view": what sigaction() would show without memrec) is kept here and
 * emulated after the mark is written: its handler is called with the
 * kernel's siginfo and context, SIG_IGN does nothing more, SIG_DFL does the
 * default action (the process dies or stops of that very signal).
 *
 * The handler is async-signal-safe: no malloc, no locks. When it interrupts
 * the recorder on its thread (the recursion guard is set), the mark is only
 * counted in rec_tls.sig_marks and written, exactly once, when the recorder
 * clears the guard (rec_guard_clear); a default action that kills or stops
 * the process waits for that moment too (rec_tls.sig_dfl). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cm_fmt.h"
#include "rec_core.h"
#include "rec_log.h"
#include "rec_prim.h"
#include "rec_signal.h"
#include "rec_signame.h"

#define VIEW_SLOTS 16u /* dispositions kept while a handler may read one */

int rec_sig_mark_no;

static struct {
	char name[24];              /* "SIGUSR2" */
	_Atomic uint32_t n_marks;   /* marks written in this trace */
	/* The program's disposition: an immutable slot, published by pointer
	 * so that a handler never reads a half-written one (a slot is reused
	 * only VIEW_SLOTS changes later). */
	_Atomic(struct sigaction *) view;
	struct sigaction slots[VIEW_SLOTS];
	_Atomic uint32_t next_slot;
	struct sigaction dfl;       /* SIG_DFL, after an SA_RESETHAND handler ran */
} g_sig;

static int view_is_handler(const struct sigaction *v)
{
	return v->sa_handler != SIG_DFL && v->sa_handler != SIG_IGN;
}

/* Default actions of signals rec_sig_unmarkable() allows: ignore, stop, or
 * (any other) terminate, with or without a core dump. */
static int default_ignores(int sig)
{
	return sig == SIGCONT || sig == SIGURG || sig == SIGWINCH;
}

static int default_stops(int sig)
{
	return sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

static void on_mark(int sig, siginfo_t *si, void *uc);

/* Give the kernel the recorder's handler for the mark signal, with the
 * mask and flags of the program's disposition v when that is a handler
 * (SA_RESETHAND emulated in on_mark), else SA_RESTART and no mask: the
 * handler then interrupts as little as it can. Returns 0 or -1 (errno). */
static int install(const struct sigaction *v)
{
	struct sigaction r;

	memset(&r, 0, sizeof(r));
	r.sa_sigaction = on_mark;
	if (view_is_handler(v)) {
		r.sa_mask = v->sa_mask;
		r.sa_flags = (v->sa_flags & ~SA_RESETHAND) | SA_SIGINFO;
	} else {
		sigemptyset(&r.sa_mask);
		r.sa_flags = SA_SIGINFO | SA_RESTART;
	}
	return rec_real.sigaction(rec_sig_mark_no, &r, NULL);
}

/* Write n marks "SIGUSR2 #k" into the calling thread's stream (nothing
 * when not recording). k and seq are taken together: a k is final only
 * when no other mark took k in between, so marks numbered k < k' always
 * have seq < seq' (a seq given up on a retry is never written: seq may
 * have gaps, never reorders). */
static void write_marks(uint32_t n)
{
	char name[48];

	while (n) {
		struct rec_thread *t = rec_enter();
		uint32_t batch = n < 256 ? n : 256; /* stays far below REC_STAGE_BYTES */

		if (!t)
			return;
		for (uint32_t i = 0; i < batch; i++) {
			uint32_t k;
			uint64_t seq;
			do {
				k = atomic_load(&g_sig.n_marks);
				seq = rec_next_seq();
			} while (!atomic_compare_exchange_strong(&g_sig.n_marks, &k, k + 1));
			size_t len = cm_fmt(name, sizeof(name), "%s #%u", g_sig.name, k + 1);
			rec_stage_phase(t, seq, TF_PHASE_MARK, name, len);
		}
		n -= batch;
		rec_leave(t);
	}
}

/* The default action of a signal whose default is to stop or end the
 * process, for a program whose disposition is SIG_DFL: the trace so far
 * reaches the file (a terminated trace has no END, like any program killed
 * by a signal), then the signal is raised again with SIG_DFL and unblocked,
 * so the process ends (or stops) of it. After a stop the recorder's handler
 * comes back. */
static void default_action(int sig)
{
	struct sigaction dfl;

	if (!default_stops(sig))
		rec_flush_now();
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	rec_real.sigaction(sig, &dfl, NULL);
	rec_prim_raise_unblocked(sig);
	/* Still here: stopped and continued. */
	install(atomic_load(&g_sig.view));
}

void rec_sig_pending_run(void)
{
	int saved = errno;

	for (;;) {
		uint32_t n = __atomic_exchange_n(&rec_tls.sig_marks, 0, __ATOMIC_RELAXED);
		if (n)
			write_marks(n);
		if (__atomic_load_n(&rec_tls.sig_marks, __ATOMIC_RELAXED))
			continue; /* more arrived meanwhile */
		if (!rec_tls.sig_dfl)
			break;
		rec_tls.sig_dfl = 0;
		default_action(rec_sig_mark_no);
	}
	errno = saved;
}

static void on_mark(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	struct sigaction *vp = atomic_load(&g_sig.view);
	struct sigaction v = *vp;
	int dfl_action = v.sa_handler == SIG_DFL && !default_ignores(sig);

	if (view_is_handler(&v) && (v.sa_flags & SA_RESETHAND)) {
		/* One-shot handler: the program's disposition becomes SIG_DFL
		 * as the kernel would make it on entry. */
		if (atomic_compare_exchange_strong(&g_sig.view, &vp, &g_sig.dfl))
			install(&g_sig.dfl);
	}
	__atomic_add_fetch(&rec_tls.sig_marks, 1, __ATOMIC_RELAXED);
	if (rec_tls.guard) {
		/* Inside the recorder: written when it leaves (rec_guard_clear);
		 * the default action waits for that too. */
		if (dfl_action)
			rec_tls.sig_dfl = 1;
		dfl_action = 0;
	} else {
		rec_sig_pending_run();
	}
	errno = saved;
	if (dfl_action) {
		default_action(sig);
		errno = saved;
		return;
	}
	if (!view_is_handler(&v))
		return;
	if (v.sa_flags & SA_SIGINFO)
		v.sa_sigaction(sig, si, uc);
	else
		v.sa_handler(sig);
}

int rec_sig_action(int sig, const struct sigaction *act, struct sigaction *oact)
{
	struct sigaction *old;

	if (act) {
		uint32_t i = atomic_fetch_add(&g_sig.next_slot, 1) % VIEW_SLOTS;
		struct sigaction *slot = &g_sig.slots[i];
		*slot = *act;
		if (install(slot) < 0)
			return -1;
		old = atomic_exchange(&g_sig.view, slot);
	} else {
		old = atomic_load(&g_sig.view);
	}
	(void)sig;
	if (oact)
		*oact = *old;
	return 0;
}

sighandler_t rec_sig_signal(int sig, sighandler_t handler, int how)
{
	struct sigaction a, o;
	int was_blocked;

	if (handler == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	if (how == 2 && handler == SIG_HOLD) {
		/* sigset(SIG_HOLD): block it; the disposition stays. */
		was_blocked = rec_prim_sig_block(sig, 1);
		if (was_blocked < 0)
			return SIG_ERR;
		if (was_blocked)
			return SIG_HOLD;
		rec_sig_action(sig, NULL, &o);
		return o.sa_handler;
	}
	memset(&a, 0, sizeof(a));
	a.sa_handler = handler;
	sigemptyset(&a.sa_mask);
	if (how == 0) {
		sigaddset(&a.sa_mask, sig);
		a.sa_flags = SA_RESTART;
	} else if (how == 1) {
		a.sa_flags = SA_RESETHAND | SA_NODEFER;
	}
	if (rec_sig_action(sig, &a, &o) < 0)
		return SIG_ERR;
	if (how == 2) {
		was_blocked = rec_prim_sig_block(sig, 0);
		if (was_blocked < 0)
			return SIG_ERR;
		if (was_blocked)
			return SIG_HOLD;
	}
	return o.sa_handler;
}

void rec_sig_init(void)
{
	const char *s = getenv("MEMREC_MARK_SIGNAL");
	const char *why;
	struct sigaction cur;
	char *end;
	long sig;

	if (!s || !*s)
		return;
	errno = 0;
	sig = strtol(s, &end, 10);
	if (errno || *end || end == s || sig < 1 || sig > SIGRTMAX)
		why = "not a signal number";
	else
		why = rec_sig_unmarkable((int)sig);
	if (why) {
		rec_log(REC_LOG_ERROR, "ignoring MEMREC_MARK_SIGNAL='%s': %s", s, why);
		return;
	}
	if (!rec_real.sigaction)
		rec_bootstrap();
	if (!rec_real.sigaction || rec_real.sigaction((int)sig, NULL, &cur) < 0) {
		rec_log(REC_LOG_ERROR, "cannot read the disposition of signal %d; no marks", (int)sig);
		return;
	}
	rec_sig_fullname((int)sig, g_sig.name, sizeof(g_sig.name));
	memset(&g_sig.dfl, 0, sizeof(g_sig.dfl));
	g_sig.dfl.sa_handler = SIG_DFL;
	sigemptyset(&g_sig.dfl.sa_mask);
	g_sig.slots[0] = cur;
	atomic_store(&g_sig.next_slot, 1);
	atomic_store(&g_sig.view, &g_sig.slots[0]);
	rec_sig_mark_no = (int)sig;
	if (install(&g_sig.slots[0]) < 0) {
		rec_sig_mark_no = 0;
		rec_log(REC_LOG_ERROR, "cannot install a handler for %s; no marks", g_sig.name);
		return;
	}
	rec_log(REC_LOG_INFO, "%s writes a mark", g_sig.name);
}

void rec_sig_new_trace(void)
{
	atomic_store(&g_sig.n_marks, 0);
}

void rec_sig_exec(int before)
{
	int saved = errno;
	struct sigaction ign;

	if (!rec_sig_mark_no || atomic_load(&g_sig.view)->sa_handler != SIG_IGN)
		return;
	if (before) {
		memset(&ign, 0, sizeof(ign));
		ign.sa_handler = SIG_IGN;
		sigemptyset(&ign.sa_mask);
		rec_real.sigaction(rec_sig_mark_no, &ign, NULL);
	} else {
		install(atomic_load(&g_sig.view));
	}
	errno = saved;
}
