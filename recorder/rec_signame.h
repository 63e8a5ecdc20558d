/* Signal names and the rule for --mark-signal, shared by the launcher
 * (parsing the option) and the library (naming the marks). Header-only, no
 * allocation, async-signal-safe. */
#ifndef REC_SIGNAME_H
#define REC_SIGNAME_H

#include <signal.h>
#include <stddef.h>

/* "SIGUSR2" for the standard signals 1..31 (numbers as on this system);
 * NULL for any other number (real-time signals have no fixed name). */
static inline const char *rec_signame(int sig)
{
	static const char *const names[32] = {
		[SIGHUP] = "SIGHUP",     [SIGINT] = "SIGINT",       [SIGQUIT] = "SIGQUIT",
		[SIGILL] = "SIGILL",     [SIGTRAP] = "SIGTRAP",     [SIGABRT] = "SIGABRT",
		[SIGBUS] = "SIGBUS",     [SIGFPE] = "SIGFPE",       [SIGKILL] = "SIGKILL",
		[SIGUSR1] = "SIGUSR1",   [SIGSEGV] = "SIGSEGV",     [SIGUSR2] = "SIGUSR2",
		[SIGPIPE] = "SIGPIPE",   [SIGALRM] = "SIGALRM",     [SIGTERM] = "SIGTERM",
		[SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD",   [SIGCONT] = "SIGCONT",
		[SIGSTOP] = "SIGSTOP",   [SIGTSTP] = "SIGTSTP",     [SIGTTIN] = "SIGTTIN",
		[SIGTTOU] = "SIGTTOU",   [SIGURG] = "SIGURG",       [SIGXCPU] = "SIGXCPU",
		[SIGXFSZ] = "SIGXFSZ",   [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
		[SIGWINCH] = "SIGWINCH", [SIGIO] = "SIGIO",         [SIGPWR] = "SIGPWR",
		[SIGSYS] = "SIGSYS",
	};

	return sig > 0 && sig < 32 ? names[sig] : NULL;
}

/* Why sig cannot be a mark signal, or NULL when it can: one the program or
 * a user sends on purpose, whose handler memrec may own (docs/usage.md). */
static inline const char *rec_sig_unmarkable(int sig)
{
	if (sig < 1 || sig > SIGRTMAX)
		return "not a signal number";
	if (sig == SIGKILL || sig == SIGSTOP)
		return "it cannot be caught";
	if (sig == SIGCHLD)
		return "its disposition decides how children are reaped";
	if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP ||
	    sig == SIGSYS)
		return "it reports a fault of the program";
	if (sig >= 32 && sig < SIGRTMIN)
		return "the C library uses it";
	return NULL;
}

/* The name of sig for a mark: "SIGUSR2", "SIGRTMIN+3", or "signal 40" when
 * it has none, into buf (cap >= 16 bytes), NUL-terminated. Returns its
 * length. */
static inline size_t rec_sig_fullname(int sig, char *buf, size_t cap)
{
	const char *s = rec_signame(sig);
	char digits[12];
	size_t n = 0, nd = 0;
	unsigned v = (unsigned)sig;

	if (!s) {
		s = "signal ";
		if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
			s = "SIGRTMIN+";
			v = (unsigned)(sig - SIGRTMIN);
		}
		do
			digits[nd++] = (char)('0' + v % 10);
		while ((v /= 10) != 0 && nd < sizeof(digits));
	}
	for (; *s && n + 1 < cap; s++)
		buf[n++] = *s;
	while (nd && n + 1 < cap)
		buf[n++] = digits[--nd];
	buf[n] = 0;
	return n;
}

#endif
