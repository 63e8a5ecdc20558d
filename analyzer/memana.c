/* memana: subcommand dispatch (report, ingest, check, flamegraph, diff,
 * html, dump). Results go to
 * stdout, diagnostics to stderr in git's wording; exit 0 ok, 1 check
 * breach, 2 usage, 3 bad input or runtime error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ana_db.h"
#include "ana_diff.h"
#include "ana_ftree.h"
#include "ana_html.h"
#include "ana_ingest.h"
#include "ana_progress.h"
#include "ana_replay.h"
#include "ana_report.h"
#include "ana_util.h"
#include "cm_err.h"
#include "tf_dec.h"

#ifndef MEMANA_VERSION
#define MEMANA_VERSION "0.1"
#endif

#define EXIT_BREACH 1
#define EXIT_USAGE 2
#define EXIT_ERROR 3
#define ERRMSG_CAP 512

static const char usage_main[] =
	"usage: memana <command> [<args>]\n"
	"\n"
	"Analyze a heap trace written by memrec.\n"
	"\n"
	"commands:\n"
	"  report TRACE|DB [--top N] [--json] [--temporary-gap N]\n"
	"                  summary, top call sites (allocations, peak, leaks,\n"
	"                  temporary allocations) and histograms, as text or JSON\n"
	"  ingest TRACE [-o DB] [--force] [--allocations] [--temporary-gap N]\n"
	"                  replay, symbolize and store in a SQLite database\n"
	"                  (schema: docs/schema.md)\n"
	"  check TRACE|DB [--max-leaked SIZE] [--max-peak SIZE] [--max-allocations N]\n"
	"                 [--baseline TRACE|DB [--max-increase PCT]]\n"
	"                  exit status 1 when a limit is exceeded (CI gate)\n"
	"  flamegraph TRACE|DB [--metric M] [--format folded|speedscope] [-o FILE]\n"
	"                  call stacks weighted by a metric, for flame graph tools\n"
	"  diff BASE NEW [--json] [--top N]\n"
	"                  compare two traces or databases call site by call site\n"
	"  html TRACE|DB [-o FILE]\n"
	"                  one self-contained HTML page: timeline, flame graphs,\n"
	"                  top call sites, histograms\n"
	"  dump TRACE      print every record of the trace, one per line\n"
	"\n"
	"options:\n"
	"  -h, --help      show help (also: memana <command> --help)\n"
	"  --version       show the version\n"
	"\n"
	"exit status: 0 ok, 1 check limit exceeded, 2 usage error, 3 bad input or\n"
	"runtime error\n";

static const char definitions[] =
	"definitions:\n"
	"  peak       the moment the total live heap (bytes requested and not yet\n"
	"             freed) is largest, in the true order of events across threads;\n"
	"             its time is that of the tick that released the event (ms since\n"
	"             the start). The peak list ranks the call sites by the bytes they\n"
	"             held live at that moment. Peak RSS is the largest RSS sample.\n"
	"  leaked     allocated and never freed by the end of a complete trace (for a\n"
	"             truncated trace: still live where the trace ends).\n"
	"  temporary  freed (by free() or by a realloc that moves or resizes it)\n"
	"             with no other allocation by the allocating thread in between\n"
	"             (heaptrack's definition); --temporary-gap N allows up to N\n"
	"             allocations in between.\n"
	"  churn      call sites with many temporary allocations: the temporary list,\n"
	"             ranked by calls.\n"
	"  In each list, \"calls\" and \"bytes\" measure the list's own thing: calls\n"
	"  made and bytes requested (allocations), blocks and bytes live at the peak\n"
	"  (peak), blocks and bytes never freed (leaked), temporary calls and their\n"
	"  bytes (temporary). Allocation calls include failed ones (no bytes); frees\n"
	"  count free() calls, not realloc's release of the old block.\n";

static const char usage_report[] =
	"usage: memana report TRACE|DB [--top N] [--json] [--temporary-gap N]\n"
	"\n"
	"Print the summary (command, duration, allocation calls, bytes allocated,\n"
	"frees, temporary allocations, peak heap and its time, peak RSS, leaks,\n"
	"whether the trace is complete) and the top call sites of four lists, each\n"
	"with its symbolized backtrace starting at the caller of the allocation\n"
	"function. A trace is ingested into an in-memory database first; a database\n"
	"written by `memana ingest` is read as is.\n"
	"\n"
	"  --top N            sites per list (default 10)\n"
	"  --json             one JSON object (sizes exact, in bytes)\n"
	"  --csv              CSV for spreadsheets: the summary, then the sites of\n"
	"                     the four lists, then the phases\n"
	"  --phases           also the phases (memrec_phase_begin/end) and markers\n"
	"                     (memrec_mark, memrec --mark-signal), one line per phase\n"
	"  --temporary-gap N  allocations allowed between a temporary allocation\n"
	"                     and its free (default 0; traces only)\n"
	"  --debug-path P     separate debug info search path (elfutils syntax)\n"
	"  -q, --quiet        no progress line on stderr\n"
	"\n"
	"The summary says whether memory over time is constant, growing (a possible\n"
	"leak: a steady least-squares slope of the heap) or spiking (a peak far\n"
	"above the typical heap), with the sites behind it, and INSIGHTS lists\n"
	"suggestions with their evidence (docs/usage.md).\n"
	"\n"
	"The histograms count allocation calls by requested size, and freed blocks\n"
	"by lifetime: in ms (the time of the ticks that released the allocation and\n"
	"the free: 10 ms resolution by default) and in other allocations made by the\n"
	"same thread in between (0 = temporary). Buckets are powers of two.\n"
	"\n";

static const char usage_ingest[] =
	"usage: memana ingest TRACE [-o DB] [--force] [--allocations] [--temporary-gap N]\n"
	"\n"
	"Replay TRACE, symbolize every distinct address once (libdw) and write a\n"
	"SQLite database (default: TRACE with .zst replaced by .db). The database\n"
	"alone is enough to report later. Schema: docs/schema.md.\n"
	"\n"
	"  -o, --output DB    database to write\n"
	"  -f, --force        overwrite an existing database\n"
	"  --allocations      also one row per allocation (table allocations: size,\n"
	"                     stack, thread, birth, death, lifetime)\n"
	"  --temporary-gap N  see memana report --help (default 0)\n"
	"  --debug-path P     separate debug info search path (elfutils syntax)\n"
	"  -q, --quiet        no progress line on stderr\n";

static const char usage_check[] =
	"usage: memana check TRACE|DB [--max-leaked SIZE] [--max-peak SIZE]\n"
	"                             [--max-allocations N] [--max-growth RATE]\n"
	"                             [--baseline TRACE|DB [--max-increase PCT]] [-q]\n"
	"\n"
	"Exit with status 1 and one line per exceeded limit, 0 when all hold.\n"
	"SIZE is bytes or a number with K, M, G (KiB, MiB, GiB; 1024 multiples).\n"
	"\n"
	"  --max-leaked SIZE     leaked bytes\n"
	"  --max-peak SIZE       peak heap bytes\n"
	"  --max-allocations N   allocation calls\n"
	"  --max-growth RATE     heap growth of a run found growing, bytes per second\n"
	"                        (a SIZE, optionally followed by /s: 1M/s)\n"
	"  --baseline B          compare with the trace or database B: fail when any\n"
	"                        of allocation calls, peak heap bytes, leaked bytes\n"
	"                        and temporary allocations grew by more than\n"
	"                        --max-increase (default 0%: any growth), naming the\n"
	"                        call sites that grew most (matched by backtrace)\n"
	"  --max-increase PCT    allowed growth over the baseline, e.g. 10%\n"
	"  --temporary-gap N     see memana report --help\n"
	"  -q, --quiet           print nothing when the check passes\n";

static const char usage_flamegraph[] =
	"usage: memana flamegraph TRACE|DB [--metric M] [--format folded|speedscope]\n"
	"                                  [-o FILE]\n"
	"\n"
	"Write the call stacks of every call site, outermost frame first and merged\n"
	"by function, weighted by metric M:\n"
	"  calls       allocation calls (default)\n"
	"  allocated   bytes allocated\n"
	"  peak        bytes live at the peak heap\n"
	"  leaked      bytes never freed\n"
	"  temporary   temporary allocations\n"
	"The weights sum to the report's total for the metric.\n"
	"\n"
	"  --format folded      one line per stack: frames joined by ';', a space\n"
	"                       and the weight (flamegraph.pl, inferno) (default)\n"
	"  --format speedscope  a speedscope JSON file (www.speedscope.app)\n"
	"  -o, --output FILE    write to FILE instead of stdout\n"
	"  -q, --quiet          no progress line on stderr\n";

static const char usage_diff[] =
	"usage: memana diff BASE NEW [--json] [--top N]\n"
	"\n"
	"Compare two traces or databases (for instance two builds of a program):\n"
	"the totals, then every call site whose allocation calls, peak bytes,\n"
	"leaked bytes or temporary allocations changed, sorted by the largest\n"
	"change (as a share of that measure's total). Call sites are matched by\n"
	"their symbolized backtraces (function and module names), not by address.\n"
	"\n"
	"  --json        one JSON object\n"
	"  --top N       call sites shown (default 20)\n"
	"  -q, --quiet   no progress line on stderr\n";

static const char usage_html[] =
	"usage: memana html TRACE|DB [-o FILE] [--top N]\n"
	"\n"
	"Write one self-contained HTML page (no network access, no external file):\n"
	"the summary, heap and RSS over time with the peak marked, flame graphs of\n"
	"allocation calls, peak bytes, leaked bytes, temporary allocations and bytes\n"
	"allocated (zoom and search), the top call sites with their backtraces and\n"
	"histograms of allocation sizes and lifetimes.\n"
	"\n"
	"  -o, --output FILE  page to write (default: TRACE or DB with its suffix\n"
	"                     replaced by .html)\n"
	"  --top N            call sites per table (default 10)\n"
	"  -q, --quiet        no progress line on stderr\n";

static const char usage_dump[] =
	"usage: memana dump TRACE\n"
	"\n"
	"Print every record of TRACE as one line, in file order:\n"
	"@OFFSET TAG field=value ... (OFFSET: byte in the decompressed stream).\n"
	"A corrupt trace ends with the decoder's error (exit 3); a truncated one\n"
	"with a warning (exit 0).\n";

static void err_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err_msg(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("memana: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("memana: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* The first line of the usage text. */
	const char *nl = strchr(usage, '\n');
	fprintf(stderr, "%.*s\n", (int)(nl ? nl - usage : (long)strlen(usage)), usage);
	return EXIT_USAGE;
}

static int bad_option(const char *usage, char **argv)
{
	if (optopt)
		return usage_error(usage, "unknown or incomplete option '-%c'", optopt);
	return usage_error(usage, "unknown or incomplete option '%s'", argv[optind - 1]);
}

/* ---- input ------------------------------------------------------------- */

enum input_kind { INPUT_TRACE, INPUT_DB };

/* Is path a trace or a database? Prints the error and returns -1 when it is
 * neither or cannot be read. */
static int detect_input(const char *path, enum input_kind *kind)
{
	unsigned char buf[16];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat stt;

	if (fd < 0) {
		err_msg("cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &stt) == 0 && S_ISDIR(stt.st_mode)) {
		close(fd);
		err_msg("cannot read '%s': %s", path, strerror(EISDIR));
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		err_msg("cannot read '%s': %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (n == 16 && !memcmp(buf, "SQLite format 3", 16)) {
		*kind = INPUT_DB;
		return 0;
	}
	if (n >= TF_MAGIC_BYTES && !memcmp(buf, TF_MAGIC, TF_MAGIC_BYTES)) {
		*kind = INPUT_TRACE;
		return 0;
	}
	err_msg("'%s' is not a memrec trace or database", path);
	return -1;
}

static void warn_truncated(const char *path, uint64_t at)
{
	fflush(stdout);
	fprintf(stderr,
		"memana: warning: '%s' is truncated at byte %" PRIu64
		": the program did not finish recording\n",
		path, at);
}

struct input_opts {
	uint64_t temporary_gap;
	bool gap_set;
	const char *debug_path;
	bool quiet;             /* no progress line */
};

/* Open path as a database: read it, or ingest a trace into memory (with
 * what a report of top sites per list needs; every site when top is
 * ANA_ALL_SITES). Prints errors; returns 0 or -1. */
static int open_input(const char *path, const struct input_opts *io, unsigned top,
		      struct ana_db **db)
{
	char errmsg[ERRMSG_CAP] = "";
	enum input_kind kind;
	int rc;

	if (detect_input(path, &kind) < 0)
		return -1;
	if (kind == INPUT_DB) {
		rc = ana_db_open(db, path, errmsg, sizeof(errmsg));
		if (rc < 0) {
			err_msg("%s", errmsg[0] ? errmsg : cm_strerror(rc));
			return -1;
		}
		if (io->gap_set)
			fprintf(stderr, "memana: warning: --temporary-gap is ignored for a "
					"database ('%s' keeps the value it was ingested with)\n",
				path);
		return 0;
	}
	/* The in-memory database holds what the report of top sites per
	 * list reads: it prints the same as a database of every site. */
	struct ana_progress prog;
	struct ana_ingest_opts o = { .temporary_gap = io->temporary_gap,
				     .debug_path = io->debug_path,
				     .report_only = top != ANA_ALL_SITES,
				     .report_top = top,
				     .progress = &prog };
	struct ana_ingest_info info;

	ana_progress_init(&prog, path, io->quiet);
	rc = ana_ingest(path, ":memory:", &o, db, &info, errmsg, sizeof(errmsg));
	ana_progress_done(&prog);
	if (rc < 0) {
		err_msg("%s", errmsg[0] ? errmsg : cm_strerror(rc));
		return -1;
	}
	if (!info.complete)
		warn_truncated(path, info.truncated_at);
	return 0;
}

static int parse_u64_opt(const char *usage, const char *opt, const char *arg,
			 uint64_t *out)
{
	if (ana_parse_u64(arg, out) < 0) {
		usage_error(usage, "%s expects a non-negative integer, not '%s'", opt, arg);
		return -1;
	}
	return 0;
}

/* ---- report -------------------------------------------------------------- */

enum {
	OPT_TOP = 256,
	OPT_JSON,
	OPT_GAP,
	OPT_DEBUG_PATH,
	OPT_MAX_LEAKED,
	OPT_MAX_PEAK,
	OPT_MAX_ALLOCS,
	OPT_ALLOCATIONS,
	OPT_BASELINE,
	OPT_MAX_INCREASE,
	OPT_METRIC,
	OPT_FORMAT,
	OPT_CSV,
	OPT_PHASES,
	OPT_MAX_GROWTH,
};

/* The end of the option table of every TRACE|DB command (see input_opt()). */
#define INPUT_OPTIONS                                                        \
	{ "temporary-gap", required_argument, NULL, OPT_GAP },               \
		{ "debug-path", required_argument, NULL, OPT_DEBUG_PATH },   \
		{ "quiet", no_argument, NULL, 'q' },                         \
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }

/* The options every TRACE|DB command takes (--temporary-gap, --debug-path,
 * -q) into io. Returns 1 (c was one of them), 0 (it was not) or -1 (bad
 * value; the usage error is printed). */
static int input_opt(int c, const char *usage, struct input_opts *io)
{
	switch (c) {
	case OPT_GAP:
		if (parse_u64_opt(usage, "--temporary-gap", optarg, &io->temporary_gap) < 0)
			return -1;
		io->gap_set = true;
		return 1;
	case OPT_DEBUG_PATH:
		io->debug_path = optarg;
		return 1;
	case 'q':
		io->quiet = true;
		return 1;
	default:
		return 0;
	}
}

/* The single TRACE|DB operand of report and check: open it (ingesting a trace
 * into memory with the top ingest_top sites per list) and load the report
 * with the top top sites per list (0: totals and growth only). Returns 0
 * with *db and *rep set (caller frees both), or the exit status to return
 * (usage error or bad input, the message already printed). */
static int load_operand(int argc, char **argv, const char *usage,
			const struct input_opts *io, unsigned ingest_top, unsigned top,
			struct ana_db **db, struct ana_report **rep)
{
	char errmsg[ERRMSG_CAP] = "";

	if (argc - optind != 1)
		return usage_error(usage, argc - optind ? "too many arguments"
							: "missing TRACE or DB");
	const char *path = argv[optind];
	if (open_input(path, io, ingest_top, db) < 0)
		return EXIT_ERROR;
	if (ana_report_load(*db, path, top, rep, errmsg, sizeof(errmsg)) < 0) {
		err_msg("%s", errmsg);
		ana_db_free(*db);
		*db = NULL;
		return EXIT_ERROR;
	}
	return 0;
}

static int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "top", required_argument, NULL, OPT_TOP },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "phases", no_argument, NULL, OPT_PHASES },
		INPUT_OPTIONS,
	};
	struct input_opts io = { 0 };
	uint64_t top = 10;
	bool json = false, csv = false, phases = false;
	struct ana_db *db = NULL;
	struct ana_report *rep = NULL;
	int c;
	int st;

	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_TOP:
			if (parse_u64_opt(usage_report, "--top", optarg, &top) < 0)
				return EXIT_USAGE;
			if (top > 1000000)
				top = 1000000;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_CSV:
			csv = true;
			break;
		case OPT_PHASES:
			phases = true;
			break;
		case 'h':
			fputs(usage_report, stdout);
			fputs(definitions, stdout);
			return 0;
		default:
			if ((st = input_opt(c, usage_report, &io)) < 0)
				return EXIT_USAGE;
			if (!st)
				return bad_option(usage_report, argv);
		}
	}
	if (json && csv)
		return usage_error(usage_report, "--json and --csv exclude each other");
	st = load_operand(argc, argv, usage_report, &io, (unsigned)top, (unsigned)top, &db, &rep);
	if (st)
		return st;
	if (json)
		ana_report_print_json(rep, stdout);
	else if (csv)
		ana_report_print_csv(rep, stdout);
	else {
		ana_report_print_text(rep, stdout);
		if (phases)
			ana_report_print_phases(rep, stdout);
	}
	ana_report_free(rep);
	ana_db_free(db);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		err_msg("cannot write the report: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

/* ---- ingest ------------------------------------------------------------------ */

/* path with a trailing .zst (and, when strip_db, a trailing .db) replaced
 * by ext, else with ext appended (caller frees; NULL on ENOMEM). */
static char *swap_suffix(const char *path, bool strip_db, const char *ext)
{
	size_t len = strlen(path), n = strlen(ext);
	char *p;

	if (len > 4 && !strcmp(path + len - 4, ".zst"))
		len -= 4;
	else if (strip_db && len > 3 && !strcmp(path + len - 3, ".db"))
		len -= 3;
	p = malloc(len + n + 1);
	if (!p)
		return NULL;
	memcpy(p, path, len);
	memcpy(p + len, ext, n + 1);
	return p;
}

/* The single TRACE operand of ingest and dump, which must be a trace (not a
 * database). Returns 0 and sets *path, or the exit status to return (usage
 * error or bad input, the message already printed). */
static int one_trace_operand(int argc, char **argv, const char *usage, const char **path)
{
	enum input_kind kind;

	if (argc - optind != 1)
		return usage_error(usage, argc - optind ? "too many arguments" : "missing TRACE");
	if (detect_input(argv[optind], &kind) < 0)
		return EXIT_ERROR;
	if (kind != INPUT_TRACE) {
		err_msg("'%s' is a database, not a trace", argv[optind]);
		return EXIT_ERROR;
	}
	*path = argv[optind];
	return 0;
}

static int cmd_ingest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ "allocations", no_argument, NULL, OPT_ALLOCATIONS },
		INPUT_OPTIONS,
	};
	struct ana_ingest_opts o = { 0 };
	struct input_opts io = { 0 };
	struct ana_progress prog;
	struct ana_ingest_info info;
	const char *out = NULL;
	char *def = NULL, *tmp = NULL;
	bool force = false;
	char errmsg[ERRMSG_CAP] = "";
	struct ana_db *db = NULL;
	int c, st, status = EXIT_ERROR;

	while ((c = getopt_long(argc, argv, "o:fqh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case OPT_ALLOCATIONS:
			o.allocations = true;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			fputs(usage_ingest, stdout);
			return 0;
		default:
			if ((st = input_opt(c, usage_ingest, &io)) < 0)
				return EXIT_USAGE;
			if (!st)
				return bad_option(usage_ingest, argv);
		}
	}
	o.temporary_gap = io.temporary_gap;
	o.debug_path = io.debug_path;
	bool quiet = io.quiet;
	const char *trace;
	st = one_trace_operand(argc, argv, usage_ingest, &trace);
	if (st)
		return st;
	if (!out) {
		def = swap_suffix(trace, false, ".db");
		if (!def) {
			err_msg("out of memory");
			return EXIT_ERROR;
		}
		out = def;
	}
	if (!force && access(out, F_OK) == 0) {
		err_msg("'%s' already exists (use --force to overwrite)", out);
		goto out;
	}
	/* Write next to the target, then rename: no half-written database. */
	size_t tlen = strlen(out) + 32;
	tmp = malloc(tlen);
	if (!tmp) {
		err_msg("out of memory");
		goto out;
	}
	snprintf(tmp, tlen, "%s.tmp%ld", out, (long)getpid());
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		err_msg("cannot create '%s': %s", out, strerror(errno));
		goto out;
	}
	close(fd);
	ana_progress_init(&prog, trace, quiet);
	o.progress = &prog;
	int irc = ana_ingest(trace, tmp, &o, &db, &info, errmsg, sizeof(errmsg));
	ana_progress_done(&prog);
	if (irc < 0) {
		err_msg("%s", errmsg);
		unlink(tmp);
		goto out;
	}
	ana_db_free(db);
	if (rename(tmp, out) < 0) {
		err_msg("cannot write '%s': %s", out, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (!info.complete)
		warn_truncated(trace, info.truncated_at);
	status = 0;
out:
	free(def);
	free(tmp);
	return status;
}

/* ---- check ------------------------------------------------------------------ */

/* Parse "10%", "10", "2.5%": a non-negative percentage. */
static int parse_percent(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || v < 0 || v != v)
		return -1;
	if (*end == '%')
		end++;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/* memana check --baseline: compare the totals of db (path) with those of
 * the baseline; print one line per measure that grew by more than pct %,
 * with the call sites that grew most. Returns 0 (holds), EXIT_BREACH or
 * EXIT_ERROR. */
static int check_baseline(const char *base_path, const char *path, struct ana_db *db,
			  const struct input_opts *io, double pct)
{
	char errmsg[ERRMSG_CAP] = "";
	struct ana_db *base = NULL;
	struct ana_diff *d = NULL;
	int status = 0;

	if (open_input(base_path, io, ANA_ALL_SITES, &base) < 0)
		return EXIT_ERROR;
	if (ana_diff_new(base, base_path, db, path, &d, errmsg, sizeof(errmsg)) < 0) {
		err_msg("%s", errmsg);
		ana_db_free(base);
		return EXIT_ERROR;
	}
	for (int m = 0; m < ANA_N_DMETRICS; m++) {
		uint64_t b = d->base_total[m], n = d->new_total[m];
		double limit = (double)b * (1.0 + pct / 100.0);
		if ((double)n <= limit || n <= b)
			continue;
		fprintf(stderr,
			"memana: check failed: %s %" PRIu64 " > baseline %" PRIu64 " + %g%%",
			ana_dmetric_label((enum ana_dmetric)m), n, b, pct);
		if (b)
			fprintf(stderr, " (%+.1f%%)\n", 100.0 * ((double)n - (double)b) / (double)b);
		else
			fputs(" (new)\n", stderr);
		/* The sites that grew most in this measure. */
		for (int shown = 0; shown < 3; shown++) {
			const struct ana_diff_site *best = NULL;
			for (size_t i = 0; i < d->n_sites; i++) {
				const struct ana_diff_site *s = &d->sites[i];
				if (s->new_[m] <= s->base[m] || s->score < 0)
					continue;
				if (!best || s->new_[m] - s->base[m] > best->new_[m] - best->base[m])
					best = s;
			}
			if (!best)
				break;
			fprintf(stderr, "  +%" PRIu64 " (%" PRIu64 " -> %" PRIu64 ") from:\n",
				best->new_[m] - best->base[m], best->base[m], best->new_[m]);
			ana_diff_print_stack(d, best, 4, 4, stderr);
			((struct ana_diff_site *)best)->score = -1; /* shown */
		}
		for (size_t i = 0; i < d->n_sites; i++)
			if (d->sites[i].score < 0)
				d->sites[i].score = 0;
		status = EXIT_BREACH;
	}
	ana_diff_free(d);
	ana_db_free(base);
	return status;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max-leaked", required_argument, NULL, OPT_MAX_LEAKED },
		{ "max-peak", required_argument, NULL, OPT_MAX_PEAK },
		{ "max-allocations", required_argument, NULL, OPT_MAX_ALLOCS },
		{ "max-growth", required_argument, NULL, OPT_MAX_GROWTH },
		{ "baseline", required_argument, NULL, OPT_BASELINE },
		{ "max-increase", required_argument, NULL, OPT_MAX_INCREASE },
		INPUT_OPTIONS,
	};
	struct input_opts io = { 0 };
	uint64_t max_leaked = 0, max_peak = 0, max_allocs = 0;
	bool has_leaked = false, has_peak = false, has_allocs = false, quiet = false;
	bool has_increase = false, has_growth = false;
	uint64_t max_growth = 0;
	const char *baseline = NULL;
	double max_increase = 0;
	struct ana_db *db = NULL;
	struct ana_report *rep = NULL;
	int c, status = 0;
	int st;

	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_MAX_LEAKED:
		case OPT_MAX_PEAK:
			if (ana_parse_size(optarg, c == OPT_MAX_PEAK ? &max_peak : &max_leaked) < 0)
				return usage_error(usage_check,
						   "%s expects a size (bytes, or K/M/G), not '%s'",
						   c == OPT_MAX_PEAK ? "--max-peak" : "--max-leaked",
						   optarg);
			if (c == OPT_MAX_PEAK)
				has_peak = true;
			else
				has_leaked = true;
			break;
		case OPT_MAX_ALLOCS:
			if (parse_u64_opt(usage_check, "--max-allocations", optarg, &max_allocs) < 0)
				return EXIT_USAGE;
			has_allocs = true;
			break;
		case OPT_BASELINE:
			baseline = optarg;
			break;
		case OPT_MAX_GROWTH: {
			char buf[64];
			size_t len = strlen(optarg);
			if (len >= sizeof(buf))
				len = sizeof(buf) - 1;
			memcpy(buf, optarg, len);
			buf[len] = 0;
			if (len > 2 && !strcmp(buf + len - 2, "/s"))
				buf[len - 2] = 0;
			if (ana_parse_size(buf, &max_growth) < 0)
				return usage_error(usage_check,
						   "--max-growth expects a rate such as 1M/s, not '%s'",
						   optarg);
			has_growth = true;
			break;
		}
		case OPT_MAX_INCREASE:
			if (parse_percent(optarg, &max_increase) < 0)
				return usage_error(usage_check,
						   "--max-increase expects a percentage such as 10%%,"
						   " not '%s'",
						   optarg);
			has_increase = true;
			break;
		case 'q':
			quiet = true;
			io.quiet = true;
			break;
		case 'h':
			fputs(usage_check, stdout);
			return 0;
		default:
			if ((st = input_opt(c, usage_check, &io)) < 0)
				return EXIT_USAGE;
			if (!st)
				return bad_option(usage_check, argv);
		}
	}
	if (has_increase && !baseline)
		return usage_error(usage_check, "--max-increase needs --baseline");
	/* A comparison needs every call site in the database; the limits read
	 * only the totals and the growth verdict, not the site lists. */
	st = load_operand(argc, argv, usage_check, &io, baseline ? ANA_ALL_SITES : 0, 0, &db,
			      &rep);
	if (st)
		return st;
	if (has_leaked && rep->leaked_bytes > max_leaked) {
		fprintf(stderr,
			"memana: check failed: leaked %" PRIu64 " bytes > limit %" PRIu64
			" bytes\n",
			rep->leaked_bytes, max_leaked);
		status = EXIT_BREACH;
	}
	if (has_peak && rep->peak_heap_bytes > max_peak) {
		fprintf(stderr,
			"memana: check failed: peak heap %" PRIu64 " bytes > limit %" PRIu64
			" bytes\n",
			rep->peak_heap_bytes, max_peak);
		status = EXIT_BREACH;
	}
	if (has_allocs && rep->allocations > max_allocs) {
		fprintf(stderr,
			"memana: check failed: %" PRIu64 " allocations > limit %" PRIu64 "\n",
			rep->allocations, max_allocs);
		status = EXIT_BREACH;
	}
	if (has_growth && rep->growth.growing && rep->growth.heap_rate > (double)max_growth) {
		fprintf(stderr,
			"memana: check failed: heap growing at %.0f bytes/s > limit %" PRIu64
			" bytes/s\n",
			rep->growth.heap_rate, max_growth);
		status = EXIT_BREACH;
	}
	if (baseline) {
		int bs = check_baseline(baseline, argv[optind], db, &io, max_increase);
		if (bs == EXIT_ERROR)
			status = EXIT_ERROR;
		else if (bs && !status)
			status = bs;
	}
	if (!status && !quiet)
		fprintf(stderr, "memana: check passed\n");
	ana_report_free(rep);
	ana_db_free(db);
	return status;
}

/* ---- flamegraph, diff, html --------------------------------------------------- */

/* Open -o FILE (or stdout for NULL / "-"). Prints errors; NULL on failure. */
static FILE *open_output(const char *path)
{
	FILE *f;

	if (!path || !strcmp(path, "-"))
		return stdout;
	f = fopen(path, "w");
	if (!f)
		err_msg("cannot create '%s': %s", path, strerror(errno));
	return f;
}

/* Close an output of open_output(); prints the error and returns -1 when
 * writing failed. */
static int close_output(FILE *f, const char *path)
{
	int bad = fflush(f) != 0 || ferror(f);

	if (f != stdout && fclose(f) != 0)
		bad = 1;
	if (bad) {
		err_msg("cannot write '%s': %s", path && strcmp(path, "-") ? path : "stdout",
			strerror(errno ? errno : EIO));
		return -1;
	}
	return 0;
}

static int cmd_flamegraph(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "metric", required_argument, NULL, OPT_METRIC },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "output", required_argument, NULL, 'o' },
		INPUT_OPTIONS,
	};
	struct input_opts io = { 0 };
	enum ana_metric metric = ANA_M_CALLS;
	bool speedscope = false;
	const char *out = NULL;
	char errmsg[ERRMSG_CAP] = "";
	struct ana_db *db = NULL;
	struct ana_ftree *t = NULL;
	int c, m, status = EXIT_ERROR;
	int st;

	while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_METRIC:
			m = ana_metric_parse(optarg);
			if (m < 0)
				return usage_error(usage_flamegraph,
						   "--metric expects calls, allocated, peak, leaked"
						   " or temporary, not '%s'",
						   optarg);
			metric = (enum ana_metric)m;
			break;
		case OPT_FORMAT:
			if (!strcmp(optarg, "speedscope"))
				speedscope = true;
			else if (!strcmp(optarg, "folded"))
				speedscope = false;
			else
				return usage_error(usage_flamegraph,
						   "--format expects folded or speedscope, not '%s'",
						   optarg);
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			fputs(usage_flamegraph, stdout);
			return 0;
		default:
			if ((st = input_opt(c, usage_flamegraph, &io)) < 0)
				return EXIT_USAGE;
			if (!st)
				return bad_option(usage_flamegraph, argv);
		}
	}
	if (argc - optind != 1)
		return usage_error(usage_flamegraph, argc - optind ? "too many arguments"
								   : "missing TRACE or DB");
	const char *path = argv[optind];
	if (open_input(path, &io, ANA_ALL_SITES, &db) < 0)
		return EXIT_ERROR;
	int rc = ana_ftree_new(&t);
	if (rc == 0)
		rc = ana_ftree_add_db(t, db, 0, path, errmsg, sizeof(errmsg));
	if (rc == 0)
		rc = ana_ftree_finish(t, 0, metric);
	if (rc < 0) {
		err_msg("%s", errmsg[0] ? errmsg : cm_strerror(rc));
		goto out;
	}
	FILE *f = open_output(out);
	if (!f)
		goto out;
	if (speedscope)
		ana_ftree_write_speedscope(t, 0, metric, ana_basename(path), f);
	else
		ana_ftree_write_folded(t, 0, metric, f);
	if (close_output(f, out) == 0)
		status = 0;
out:
	ana_ftree_free(t);
	ana_db_free(db);
	return status;
}

static int cmd_diff(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "top", required_argument, NULL, OPT_TOP },
		INPUT_OPTIONS,
	};
	struct input_opts io = { 0 };
	uint64_t top = 20;
	bool json = false;
	char errmsg[ERRMSG_CAP] = "";
	struct ana_db *base = NULL, *new_db = NULL;
	struct ana_diff *d = NULL;
	int c, status = EXIT_ERROR;
	int st;

	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = true;
			break;
		case OPT_TOP:
			if (parse_u64_opt(usage_diff, "--top", optarg, &top) < 0)
				return EXIT_USAGE;
			break;
		case 'h':
			fputs(usage_diff, stdout);
			return 0;
		default:
			if ((st = input_opt(c, usage_diff, &io)) < 0)
				return EXIT_USAGE;
			if (!st)
				return bad_option(usage_diff, argv);
		}
	}
	if (argc - optind != 2)
		return usage_error(usage_diff, argc - optind > 2 ? "too many arguments"
								 : "expected BASE and NEW");
	const char *bp = argv[optind], *np = argv[optind + 1];
	if (open_input(bp, &io, ANA_ALL_SITES, &base) < 0 ||
	    open_input(np, &io, ANA_ALL_SITES, &new_db) < 0)
		goto out;
	if (ana_diff_new(base, bp, new_db, np, &d, errmsg, sizeof(errmsg)) < 0) {
		err_msg("%s", errmsg);
		goto out;
	}
	if (json)
		ana_diff_print_json(d, (size_t)top, stdout);
	else
		ana_diff_print_text(d, (size_t)top, stdout);
	if (close_output(stdout, NULL) == 0)
		status = 0;
out:
	ana_diff_free(d);
	ana_db_free(base);
	ana_db_free(new_db);
	return status;
}

static int cmd_html(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "top", required_argument, NULL, OPT_TOP },
		INPUT_OPTIONS,
	};
	struct input_opts io = { 0 };
	uint64_t top = 10;
	const char *out = NULL;
	char *def = NULL;
	char errmsg[ERRMSG_CAP] = "";
	struct ana_db *db = NULL;
	int c, status = EXIT_ERROR;
	int st;

	while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case OPT_TOP:
			if (parse_u64_opt(usage_html, "--top", optarg, &top) < 0)
				return EXIT_USAGE;
			if (top > 10000)
				top = 10000;
			break;
		case 'h':
			fputs(usage_html, stdout);
			return 0;
		default:
			if ((st = input_opt(c, usage_html, &io)) < 0)
				return EXIT_USAGE;
			if (!st)
				return bad_option(usage_html, argv);
		}
	}
	if (argc - optind != 1)
		return usage_error(usage_html, argc - optind ? "too many arguments"
							     : "missing TRACE or DB");
	const char *path = argv[optind];
	if (!out) {
		def = swap_suffix(path, true, ".html");
		if (!def) {
			err_msg("out of memory");
			return EXIT_ERROR;
		}
		out = def;
	}
	if (open_input(path, &io, ANA_ALL_SITES, &db) < 0)
		goto out;
	FILE *f = open_output(out);
	if (!f)
		goto out;
	int rc = ana_html_write(db, path, (unsigned)top, 5000, f, errmsg, sizeof(errmsg));
	if (close_output(f, out) < 0)
		rc = rc < 0 ? rc : -EIO;
	else if (rc < 0)
		err_msg("%s", errmsg[0] ? errmsg : cm_strerror(rc));
	if (rc < 0) {
		if (strcmp(out, "-"))
			unlink(out);
		goto out;
	}
	status = 0;
out:
	ana_db_free(db);
	free(def);
	return status;
}

/* ---- dump ------------------------------------------------------------------- */

static void dump_str(const char *s, size_t len)
{
	ana_json_str(stdout, s, len);
}

static void dump_record(const struct tf_record *r)
{
	printf("@%" PRIu64 " %s", r->off, tf_tag_name(r->tag));
	switch (r->tag) {
	case TF_TAG_PROCESS:
		printf(" pid=%u ppid=%u start_unix_ns=%" PRIu64 " page_size=%u exe=",
		       r->u.process.pid, r->u.process.ppid, r->u.process.start_unix_ns,
		       r->u.process.page_size);
		dump_str(r->u.process.exe, r->u.process.exe_len);
		fputs(" cmdline=", stdout);
		dump_str(r->u.process.cmdline, r->u.process.cmdline_len);
		break;
	case TF_TAG_CHUNK:
		printf(" stream=%u len=%u", r->u.chunk.stream, r->u.chunk.len);
		break;
	case TF_TAG_TICK:
		printf(" watermark=%" PRIu64 " time_ns=%" PRIu64 " rss=%" PRIu64,
		       r->u.tick.watermark, r->u.tick.time_ns, r->u.tick.rss_bytes);
		break;
	case TF_TAG_END:
		printf(" time_ns=%" PRIu64 " events=%" PRIu64, r->u.end.time_ns,
		       r->u.end.n_events);
		break;
	case TF_TAG_THREAD:
		printf(" stream=%u seq=%" PRIu64 " tid=%u name=", r->stream, r->seq,
		       r->u.thread.tid);
		dump_str(r->u.thread.name, r->u.thread.name_len);
		break;
	case TF_TAG_NODE:
		printf(" stream=%u id=%u parent=%u addr=0x%" PRIx64, r->stream, r->u.node.id,
		       r->u.node.parent, r->u.node.addr);
		break;
	case TF_TAG_ALLOC:
		printf(" stream=%u seq=%" PRIu64 " kind=%s node=%u size=%" PRIu64
		       " addr=0x%" PRIx64,
		       r->stream, r->seq, tf_kind_name((enum tf_kind)r->u.alloc.kind),
		       r->u.alloc.node, r->u.alloc.size, r->u.alloc.addr);
		break;
	case TF_TAG_FREE:
		printf(" stream=%u seq=%" PRIu64 " kind=%s addr=0x%" PRIx64, r->stream, r->seq,
		       tf_kind_name((enum tf_kind)r->u.free.kind), r->u.free.addr);
		break;
	case TF_TAG_MODULE:
		printf(" stream=%u seq=%" PRIu64 " id=%u base=0x%" PRIx64 " path=", r->stream,
		       r->seq, r->u.module.id, r->u.module.base);
		dump_str(r->u.module.path, r->u.module.path_len);
		fputs(" build_id=", stdout);
		for (uint32_t i = 0; i < r->u.module.build_id_len; i++)
			printf("%02x", r->u.module.build_id[i]);
		if (!r->u.module.build_id_len)
			fputs("-", stdout);
		fputs(" segs=", stdout);
		for (uint32_t i = 0; i < r->u.module.n_segs; i++) {
			const struct tf_segment *s = &r->u.module.segs[i];
			printf("%s0x%" PRIx64 "+0x%" PRIx64 ":%c%c%c", i ? "," : "", s->vaddr,
			       s->memsz, (s->flags & 4) ? 'r' : '-', (s->flags & 2) ? 'w' : '-',
			       (s->flags & 1) ? 'x' : '-');
		}
		if (!r->u.module.n_segs)
			fputs("-", stdout);
		break;
	case TF_TAG_UNLOAD:
		printf(" stream=%u seq=%" PRIu64 " id=%u", r->stream, r->seq, r->u.unload.id);
		break;
	case TF_TAG_PHASE:
		printf(" stream=%u seq=%" PRIu64 " op=%s name=", r->stream, r->seq,
		       tf_phase_op_name((enum tf_phase_op)r->u.phase.op));
		dump_str(r->u.phase.name, r->u.phase.name_len);
		break;
	}
	putchar('\n');
}

static int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char decmsg[128] = "";
	struct tf_dec *dec = NULL;
	struct tf_record rec;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_dump, stdout);
			return 0;
		default:
			return bad_option(usage_dump, argv);
		}
	}
	const char *path;
	int st = one_trace_operand(argc, argv, usage_dump, &path);
	if (st)
		return st;
	rc = tf_dec_open(&dec, path, decmsg);
	if (rc < 0) {
		if (rc > -CM_E_FIRST)
			err_msg("cannot open '%s': %s", path, cm_strerror(rc));
		else
			err_msg("'%s': %s", path, decmsg[0] ? decmsg : cm_strerror(rc));
		return EXIT_ERROR;
	}
	printf("# memrec trace format %u flags 0x%x\n", tf_dec_version(dec), tf_dec_flags(dec));
	while ((rc = tf_dec_next(dec, &rec)) > 0)
		dump_record(&rec);
	if (rc == -CM_E_TRUNCATED) {
		printf("# %s\n", tf_dec_errmsg(dec));
		warn_truncated(path, tf_dec_file_offset(dec));
		rc = 0;
	} else if (rc < 0) {
		printf("# %s\n", tf_dec_errmsg(dec));
		err_msg("'%s': %s", path, tf_dec_errmsg(dec));
	}
	tf_dec_free(dec);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		err_msg("cannot write the dump: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return rc < 0 ? EXIT_ERROR : 0;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "report", cmd_report },
		{ "ingest", cmd_ingest },
		{ "check", cmd_check },
		{ "flamegraph", cmd_flamegraph },
		{ "diff", cmd_diff },
		{ "html", cmd_html },
		{ "dump", cmd_dump },
	};

	opterr = 0;
	if (argc < 2)
		return usage_error(usage_main, "missing command");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(usage_main, stdout);
		fputc('\n', stdout);
		fputs(definitions, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("memana %s (trace format %d, database schema %d)\n", MEMANA_VERSION,
		       (int)TF_VERSION, ANA_DB_SCHEMA_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		optind = 1;
		return cmds[i].fn(argc - 1, argv + 1);
	}
	if (argv[1][0] == '-')
		return usage_error(usage_main, "unknown option '%s'", argv[1]);
	return usage_error(usage_main, "'%s' is not a memana command (see memana --help)",
			   argv[1]);
}
