/* --mark-signal: a PHASE mark "SIGUSR2 #N" each time the process receives
 * the signal named by MEMREC_MARK_SIGNAL, the program's own disposition of
 * that signal emulated faithfully (docs/usage.md "Marks from a signal"). */
#ifndef REC_SIGNAL_H
#define REC_SIGNAL_H

#include <signal.h>

#include "rec_core.h"

/* The mark signal, 0 when --mark-signal is off. Read by the interposed
 * sigaction() & co. on every call. */
extern int rec_sig_mark_no REC_HIDDEN;

static inline int rec_sig_is_mark(int sig)
{
	return REC_UNLIKELY(sig == rec_sig_mark_no) && sig != 0;
}

/* Constructor, once recording started: read MEMREC_MARK_SIGNAL (a signal
 * number), take the disposition the program inherited as its own, and
 * install the recorder's handler. Logs and does nothing when the variable
 * is unset or names a signal rec_sig_unmarkable() refuses. */
void rec_sig_init(void) REC_HIDDEN;

/* A new trace starts in this process (fork child, failed exec): the marks
 * count from #1 again. */
void rec_sig_new_trace(void) REC_HIDDEN;

/* exec: before (1) the real call, give the signal the program's own
 * disposition when that is SIG_IGN (inherited by the new image, as without
 * memrec); after (0) a failed call, take it back. Keeps errno. */
void rec_sig_exec(int before) REC_HIDDEN;

/* sigaction() for the mark signal: act (may be NULL) becomes the program's
 * disposition and *oact (may be NULL) receives the previous one, exactly as
 * the program would see them without memrec; the kernel keeps the
 * recorder's handler with act's mask and flags. Returns 0, or -1 with
 * errno from the real sigaction(). Async-signal-safe. */
int rec_sig_action(int sig, const struct sigaction *act, struct sigaction *oact) REC_HIDDEN;

/* signal() (how = 0: BSD semantics, SA_RESTART), sysv_signal() (how = 1:
 * SA_RESETHAND | SA_NODEFER), sigset() (how = 2: SIG_HOLD blocks the signal,
 * anything else unblocks it) for the mark signal, over rec_sig_action().
 * Return the previous handler (sigset: SIG_HOLD when the signal was
 * blocked), SIG_ERR with errno on failure. */
sighandler_t rec_sig_signal(int sig, sighandler_t handler, int how) REC_HIDDEN;

#endif
