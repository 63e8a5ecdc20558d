/* memrec: run a program with libmemrec.so preloaded and report the trace it
 * wrote. Exits with the program's status (128+N when signal N killed it),
 * 127 when it could not be started, 2 on a usage error. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_err.h"
#include "rec_signame.h"
#include "tf_dec.h"

#define EXIT_USAGE 2
#define EXIT_CANNOT_RUN 127

static const char usage_text[] =
	"usage: memrec [-o FILE] [--rss-interval MS] [--no-follow] [--mark-signal SIG]\n"
	"              [-q] [--force] [--] PROGRAM [ARGS...]\n"
	"\n"
	"Run PROGRAM (looked up on PATH) with the memrec recorder preloaded. Every\n"
	"allocation and deallocation with its backtrace, the module map and periodic\n"
	"RSS samples go into one zstd-compressed trace; read it with `memana report`.\n"
	"\n"
	"options:\n"
	"  -o, --output FILE     trace file pattern (default: memrec.%n.%p.zst in the\n"
	"                        current directory); %p becomes the process id, %n\n"
	"                        the executable's file name, %% a literal %. Made\n"
	"                        absolute before the program starts. Every process\n"
	"                        (forked children, executed programs) writes its\n"
	"                        own trace; when the name is taken, .1, .2, ... go\n"
	"                        before a trailing .zst\n"
	"  --no-follow           record only PROGRAM's process (and the programs it\n"
	"                        executes in place), not its children\n"
	"  --rss-interval MS     RSS sampling and time tick interval in milliseconds\n"
	"                        (default 10)\n"
	"  --mark-signal SIG     each time a process receives signal SIG (a name such\n"
	"                        as SIGUSR2 or USR2, RTMIN+N, or a number), write a\n"
	"                        mark \"SIGUSR2 #N\" (N = 1, 2, ...) into its trace; the\n"
	"                        program's own handling of SIG stays as it is (its\n"
	"                        handler runs; with the default action it still ends\n"
	"                        or stops). Not SIGKILL SIGSTOP SIGCHLD or the fault\n"
	"                        signals (SIGSEGV SIGBUS SIGILL SIGFPE SIGTRAP SIGSYS)\n"
	"  -q, --quiet           do not print the summary line\n"
	"  --force               remove an existing FILE first (without --force an\n"
	"                        -o FILE with neither %p nor %n that exists is an\n"
	"                        error)\n"
	"  -h, --help            show this help\n"
	"\n"
	"When the program exits memrec prints one line on stderr per trace written\n"
	"(the program's and its descendants', in creation order):\n"
	"  memrec: wrote PATH (N events, SIZE bytes)\n"
	"where N counts allocation and deallocation records; \", incomplete\" is added\n"
	"when the trace has no end record (the process was killed, aborted, or is\n"
	"still running).\n"
	"\n"
	"exit status: the program's own; 128+N when it died of signal N; 127 when it\n"
	"could not be executed; 2 on a usage error.\n"
	"\n"
	"environment:\n"
	"  MEMREC_LIB              path of libmemrec.so (default: ../lib/libmemrec.so\n"
	"                          next to the memrec binary)\n"
	"  LD_PRELOAD              kept; the recorder is put first\n"
	"  TMPDIR                  where the temporary trace registry is created\n"
	"read by the recorder library (memrec sets them, except the last two):\n"
	"  MEMREC_OUTPUT           trace path pattern; unset = the library does nothing\n"
	"  MEMREC_REGISTRY         file the library appends each trace's path to\n"
	"  MEMREC_FOLLOW_FORK      1 (default) records forked children, 0 does not\n"
	"  MEMREC_ROOT_PID         with MEMREC_FOLLOW_FORK=0: only this pid records\n"
	"  MEMREC_RSS_INTERVAL_MS  tick / RSS interval in ms (default 10)\n"
	"  MEMREC_MARK_SIGNAL      --mark-signal's signal, as a number\n"
	"  MEMREC_MAX_DEPTH        backtrace depth limit in frames (default 128, max 256)\n"
	"  MEMREC_LOG              recorder log level: 0 quiet, 1 errors (default),\n"
	"                          2 info, 3 debug\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(int status, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "memrec: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: memrec [-o FILE] [--rss-interval MS] [--no-follow] "
			"[--mark-signal SIG] [-q] [--force] [--] PROGRAM [ARGS...]\n"
			"(see memrec --help)\n");
	exit(EXIT_USAGE);
}

/* Print "memrec: error: MESSAGE[: strerror(err)]" and exit with status. */
static void die(int status, int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "memrec: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(status);
}

/* Concatenate a, b and c into a new string; exits on allocation failure. */
static char *concat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	if (!s)
		die(EXIT_CANNOT_RUN, 0, "out of memory");
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

/* The library: $MEMREC_LIB, else dirname(realpath(/proc/self/exe))/../lib.
 * Returns a new absolute path; exits when it does not exist. */
static char *find_library(void)
{
	const char *env = getenv("MEMREC_LIB");
	char exe[PATH_MAX], *lib, *abs;

	if (env && *env) {
		lib = concat3(env, "", "");
	} else {
		if (!realpath("/proc/self/exe", exe))
			die(EXIT_CANNOT_RUN, errno, "cannot resolve '%s'", "/proc/self/exe");
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
		lib = concat3(exe, "/../lib/", "libmemrec.so");
	}
	abs = realpath(lib, NULL);
	if (!abs)
		die(EXIT_CANNOT_RUN, errno, "cannot find the recorder library '%s'", lib);
	free(lib);
	if (strchr(abs, ':') || strchr(abs, ' '))
		die(EXIT_CANNOT_RUN, 0, "recorder library path '%s' contains ':' or a space "
			"(LD_PRELOAD cannot hold it)", abs);
	return abs;
}

/* Replace %p by pid and %% by % (as the library does). New string. */
static char *expand_pid(const char *pattern, pid_t pid)
{
	size_t cap = strlen(pattern) + 32, n = 0;
	char *s = malloc(cap);

	if (!s)
		die(EXIT_CANNOT_RUN, 0, "out of memory");
	for (const char *p = pattern; *p; p++) {
		if (p[0] == '%' && p[1] == 'p') {
			char num[24];
			int len = snprintf(num, sizeof(num), "%ld", (long)pid);
			if (n + (size_t)len + 1 > cap) {
				cap = cap * 2 + (size_t)len;
				char *t = realloc(s, cap);
				if (!t)
					die(EXIT_CANNOT_RUN, 0, "out of memory");
				s = t;
			}
			memcpy(s + n, num, (size_t)len);
			n += (size_t)len;
			p++;
			continue;
		}
		if (p[0] == '%' && p[1] == '%')
			p++;
		if (n + 2 > cap) {
			cap *= 2;
			char *t = realloc(s, cap);
			if (!t)
				die(EXIT_CANNOT_RUN, 0, "out of memory");
			s = t;
		}
		s[n++] = *p;
	}
	s[n] = 0;
	return s;
}

/* Absolute output pattern: relative ones are taken from the cwd. */
static char *absolute_pattern(const char *pattern)
{
	char cwd[PATH_MAX];

	if (pattern[0] == '/')
		return concat3(pattern, "", "");
	if (!getcwd(cwd, sizeof(cwd)))
		die(EXIT_CANNOT_RUN, errno, "cannot get the current directory");
	return concat3(cwd, strcmp(cwd, "/") ? "/" : "", pattern);
}

/* "+N" / "-N" after RTMIN / RTMAX (sign is the one allowed): N, 0 for
 * nothing, -1 when malformed. */
static long rt_offset(const char *s, char sign)
{
	char *end;
	long k;

	if (!*s)
		return 0;
	if (*s != sign || s[1] < '0' || s[1] > '9')
		return -1;
	errno = 0;
	k = strtol(s + 1, &end, 10);
	return errno || *end || k > 64 ? -1 : k;
}

/* Parse --mark-signal's argument: a number, a name with or without "SIG"
 * (any case), RTMIN, RTMIN+N, RTMAX, RTMAX-N. Exits with a usage error when
 * it is not a signal memrec can mark (rec_sig_unmarkable()). */
static int parse_mark_signal(const char *arg)
{
	const char *s = arg, *why;
	long sig = -1, k;
	char *end;

	if (*s >= '0' && *s <= '9') {
		errno = 0;
		sig = strtol(s, &end, 10);
		if (errno || *end)
			sig = -1;
	} else {
		if (!strncasecmp(s, "SIG", 3))
			s += 3;
		for (int i = 1; i < 32 && sig < 0; i++) {
			const char *name = rec_signame(i);
			if (name && !strcasecmp(s, name + 3))
				sig = i;
		}
		if (sig < 0 && !strncasecmp(s, "RTMIN", 5) && (k = rt_offset(s + 5, '+')) >= 0)
			sig = SIGRTMIN + k;
		else if (sig < 0 && !strncasecmp(s, "RTMAX", 5) && (k = rt_offset(s + 5, '-')) >= 0)
			sig = SIGRTMAX - k < SIGRTMIN ? -1 : SIGRTMAX - k;
	}
	if (sig < 1 || sig > SIGRTMAX)
		usage_error("bad --mark-signal '%s' (a signal name such as SIGUSR2, or a number "
			    "1 to %d)", arg, SIGRTMAX);
	why = rec_sig_unmarkable((int)sig);
	if (why)
		usage_error("--mark-signal '%s': signal %ld cannot mark: %s", arg, sig, why);
	return (int)sig;
}

static void format_exit(int status, int *code)
{
	if (WIFEXITED(status))
		*code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		*code = 128 + WTERMSIG(status);
	else
		*code = 1;
}

/* Print the summary line for the trace at path. */
static void summarize(const char *path)
{
	struct stat st;
	struct tf_dec *dec;
	struct tf_record rec;
	char errmsg[128];
	unsigned long long n = 0, end_n = 0;
	int rc, complete = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "memrec: error: cannot read '%s': %s\n", path, strerror(errno));
		return;
	}
	rc = tf_dec_open(&dec, path, errmsg);
	if (rc < 0) {
		fprintf(stderr, "memrec: error: cannot read '%s': %s\n", path, errmsg);
		return;
	}
	while ((rc = tf_dec_next(dec, &rec)) > 0) {
		if (rec.tag == TF_TAG_ALLOC || rec.tag == TF_TAG_FREE)
			n++;
		else if (rec.tag == TF_TAG_END) {
			end_n = rec.u.end.n_events;
			complete = 1;
		}
	}
	if (rc < 0)
		complete = 0;
	tf_dec_free(dec);
	fprintf(stderr, "memrec: wrote %s (%llu events, %llu bytes%s)\n", path,
		complete ? end_n : n, (unsigned long long)st.st_size,
		complete ? "" : ", incomplete");
}

/* Print one summary line per path listed in the registry file, in order. */
static void summarize_registry(const char *registry)
{
	FILE *f = fopen(registry, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int n = 0;

	if (!f) {
		fprintf(stderr, "memrec: error: cannot read '%s': %s\n", registry, strerror(errno));
		return;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = 0;
		if (!len)
			continue;
		summarize(line);
		n++;
	}
	free(line);
	fclose(f);
	if (!n)
		fprintf(stderr, "memrec: error: no trace written\n");
}

/* Create the registry file in $TMPDIR (or /tmp). Returns a new path. */
static char *make_registry(void)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	path = concat3(dir, "/", "memrec-registry.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		die(EXIT_CANNOT_RUN, errno, "cannot create a file in '%s'", dir);
	close(fd);
	return path;
}

int main(int argc, char **argv)
{
	const char *output = NULL, *interval = NULL;
	int quiet = 0, force = 0, no_follow = 0, mark_sig = 0, i;
	char mark_num[16];
	char *lib, *pattern, *preload, *registry;
	int sync_pipe[2], err_pipe[2];
	pid_t pid;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == 0)
			break;
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			quiet = 1;
		} else if (!strcmp(a, "--force")) {
			force = 1;
		} else if (!strcmp(a, "--no-follow")) {
			no_follow = 1;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (++i == argc)
				usage_error("option '%s' needs a file name", a);
			output = argv[i];
		} else if (!strncmp(a, "--output=", 9)) {
			output = a + 9;
		} else if (!strncmp(a, "-o", 2)) {
			output = a + 2;
		} else if (!strcmp(a, "--rss-interval")) {
			if (++i == argc)
				usage_error("option '%s' needs a number of milliseconds", a);
			interval = argv[i];
		} else if (!strncmp(a, "--rss-interval=", 15)) {
			interval = a + 15;
		} else if (!strcmp(a, "--mark-signal")) {
			if (++i == argc)
				usage_error("option '%s' needs a signal", a);
			mark_sig = parse_mark_signal(argv[i]);
		} else if (!strncmp(a, "--mark-signal=", 14)) {
			mark_sig = parse_mark_signal(a + 14);
		} else {
			usage_error("unknown option '%s'", a);
		}
	}
	if (i == argc)
		usage_error("%s", "no program given");
	if (output && !*output)
		usage_error("%s", "empty output file name");
	if (interval) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(interval, &end, 10);
		if (errno || *end || !*interval || v == 0 || v > 3600000 || interval[0] == '-')
			usage_error("bad --rss-interval '%s' (milliseconds, 1 to 3600000)",
				    interval);
	}

	lib = find_library();
	pattern = absolute_pattern(output ? output : "memrec.%n.%p.zst");
	/* Without %p or %n the first trace's name is known: never clobber it. */
	int fixed_name = !strstr(pattern, "%p") && !strstr(pattern, "%n");
	char *fixed = fixed_name ? expand_pid(pattern, 0) : NULL;
	/* An existing FILE is never overwritten without --force: the program
	 * then runs untraced. */
	int untraced = fixed && !force && access(fixed, F_OK) == 0;
	if (untraced)
		fprintf(stderr, "memrec: error: '%s' already exists (use --force to replace "
				"it); running the program untraced\n", fixed);
	registry = make_registry();
	const char *old = getenv("LD_PRELOAD");
	preload = old && *old ? concat3(lib, ":", old) : concat3(lib, "", "");
	if (!untraced &&
	    (setenv("LD_PRELOAD", preload, 1) || setenv("MEMREC_OUTPUT", pattern, 1) ||
	     setenv("MEMREC_REGISTRY", registry, 1) ||
	     (no_follow && setenv("MEMREC_FOLLOW_FORK", "0", 1)) ||
	     (interval && setenv("MEMREC_RSS_INTERVAL_MS", interval, 1)) ||
	     (mark_sig && (snprintf(mark_num, sizeof(mark_num), "%d", mark_sig) < 0 ||
			   setenv("MEMREC_MARK_SIGNAL", mark_num, 1))) ||
	     (!mark_sig && unsetenv("MEMREC_MARK_SIGNAL"))))
		die(EXIT_CANNOT_RUN, errno, "cannot set the environment");

	/* sync: the child waits until --force removed the old file; err: the
	 * child reports an exec failure (closed on a successful exec). */
	if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0)
		die(EXIT_CANNOT_RUN, errno, "cannot create a pipe");
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die(EXIT_CANNOT_RUN, errno, "cannot fork");
	if (pid == 0) {
		char go;
		close(sync_pipe[1]);
		close(err_pipe[0]);
		while (read(sync_pipe[0], &go, 1) < 0 && errno == EINTR)
			;
		if (no_follow) {
			/* Programs executed by forked children are not recorded
			 * either: only this pid's images are. */
			char num[24];
			snprintf(num, sizeof(num), "%ld", (long)getpid());
			setenv("MEMREC_ROOT_PID", num, 1);
		}
		execvp(argv[i], argv + i);
		int e = errno;
		while (write(err_pipe[1], &e, sizeof(e)) < 0 && errno == EINTR)
			;
		_exit(EXIT_CANNOT_RUN);
	}

	/* Like system(): the terminal's SIGINT/SIGQUIT are for the program. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	close(sync_pipe[0]);
	close(err_pipe[1]);
	if (force && !strstr(pattern, "%n")) {
		char *path = fixed ? fixed : expand_pid(pattern, pid);
		if (unlink(path) < 0 && errno != ENOENT)
			fprintf(stderr, "memrec: warning: cannot remove '%s': %s\n", path,
				strerror(errno));
		if (path != fixed)
			free(path);
	}
	close(sync_pipe[1]); /* go */

	int exec_errno = 0;
	ssize_t got;
	while ((got = read(err_pipe[0], &exec_errno, sizeof(exec_errno))) < 0 && errno == EINTR)
		;
	close(err_pipe[0]);

	int status, code;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			die(EXIT_CANNOT_RUN, errno, "waitpid failed");
	}
	if (got == (ssize_t)sizeof(exec_errno)) {
		fprintf(stderr, "memrec: error: cannot execute '%s': %s\n", argv[i],
			strerror(exec_errno));
		code = EXIT_CANNOT_RUN;
	} else {
		format_exit(status, &code);
		if (!quiet && !untraced)
			summarize_registry(registry);
	}
	unlink(registry);
	free(registry);
	free(fixed);
	free(pattern);
	free(preload);
	free(lib);
	return code;
}
