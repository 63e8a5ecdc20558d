#!/bin/bash
# Issue 4: the recorder's own unwinder (rec_cfi.c + rec_unwind.c) against
# libunwind. MEMREC_UNWIND_CHECK=1 runs unw_backtrace next to every
# backtrace and counts differences (and checks the outer frames the trie
# walk is told to skip); the ground-truth programs must show none, and
# memana must give the exact per-site figures, the same as with
# MEMREC_UNWIND=libunwind (the old path).
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_unwind
need_prog gt_unwind_cxx
[ -f "$PROGS/libunw_plug.so" ] || bail "libunw_plug.so not built (make progs)"

# checked OUT PROG [ARGS...]: record under check mode (MEMREC_LOG=2 for the
# summary line); returns memrec's status.
checked() {
	MEMREC_UNWIND_CHECK=1 MEMREC_LOG=2 record "$@"
}

# summary FILE: "COMPARED MISMATCHES OWN LIBUNWIND" summed over the
# "unwind check:" summary lines of FILE (one per process).
summary() {
	sed -nE 's/.*unwind check: ([0-9]+) backtraces compared, ([0-9]+) mismatches, ([0-9]+) own, ([0-9]+) by libunwind$/\1 \2 \3 \4/p' "$1" |
		awk '{ c += $1; m += $2; o += $3; l += $4; n++ } END { if (n) print c, m, o, l; else print "none" }'
}

# sig FILE: every allocation site as "FRAME<FRAME<...=CALLS/BYTES", sorted:
# the whole stacks, to compare two runs.
sig() {
	"$PY" - "$1" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
out = ["<".join(f["function"] for f in s["stack"]) + "=%d/%d" % (s["calls"], s["bytes"])
       for s in d["hotspots"]["allocations"]]
print("\n".join(sorted(out)))
EOP
}

# via FILE CALLER: calls of alt_leaf's sites whose stack holds CALLER
via() {
	jget "$1" "sum(s['calls'] for s in d['hotspots']['allocations'] if s['stack'] and s['stack'][0]['function'] == 'alt_leaf' and any(f['function'] == '$2' for f in s['stack']))"
}

# ---- gt_unwind: recursion, alternating callers, optimized code, qsort,
# a dlopen'd plugin, a signal handler, 4 threads
checked u.zst "$PROGS/gt_unwind" "$PROGS" 3
is "$?" 0 "gt_unwind under check mode exits 0"
set -- $(summary u.zst.stderr)
is "${2:-none}" 0 "gt_unwind: no backtrace differs from libunwind's"
num "${1:-0}" -ge 40000 "gt_unwind: ${1:-0} backtraces compared"
num "${4:-0}" -ge 50 "gt_unwind: the 50 through a signal frame went to libunwind (${4:-0})"
num "${3:-0}" -ge $(( (${3:-0} + ${4:-0}) * 9 / 10 )) "gt_unwind: most backtraces by our own unwinder (${3:-0})"
unlike "$(cat u.zst.stderr)" 'differs' "gt_unwind: no mismatch logged"
report u.zst u.json
is "$?" 0 "report of gt_unwind exits 0"
cmps=$(sed -n 's/^qsort_cmps //p' u.zst.stdout)
opt_bytes=$(sed -n 's/^opt_bytes //p' u.zst.stdout)
is "$(figs u.json allocations deep_alloc opt_chain cmp_alloc plug_cb on_signal)" \
	"deep_alloc=12000/288000 opt_chain=12000/$opt_bytes cmp_alloc=$cmps/$((cmps * 16)) plug_cb=1000/32000 on_signal=50/2800" \
	"gt_unwind: exact calls and bytes per site"
is "$(via u.json via_a) $(via u.json via_b)" "8000 8000" "alternating callers: 8000 through via_a, 8000 through via_b"
is "$(jget u.json "sorted(set(len(s['stack']) - [f['function'] for f in s['stack']].index('main') for s in d['hotspots']['allocations'] if s['stack'] and s['stack'][0]['function'] == 'deep_alloc' and 'main' in [f['function'] for f in s['stack']]))")" \
	"[4]" "deep_alloc on the main thread: main then the same libc start frames below"

# the old path gives the very same stacks
MEMREC_UNWIND=libunwind record l.zst "$PROGS/gt_unwind" "$PROGS" 3
is "$?" 0 "gt_unwind with MEMREC_UNWIND=libunwind exits 0"
report l.zst l.json
sig u.json >u.sig
sig l.json >l.sig
if cmp -s u.sig l.sig; then
	pass "same stacks and figures as with MEMREC_UNWIND=libunwind ($(wc -l <u.sig) sites)"
else
	fail "same stacks and figures as with MEMREC_UNWIND=libunwind"
	diag "$(diff u.sig l.sig | head -n 20)"
fi

# ---- C++: exceptions through frames whose destructors allocate
checked x.zst "$PROGS/gt_unwind_cxx"
is "$?" 0 "gt_unwind_cxx under check mode exits 0"
set -- $(summary x.zst.stderr)
is "${2:-none}" 0 "gt_unwind_cxx: no backtrace differs from libunwind's"
num "${1:-0}" -ge 18000 "gt_unwind_cxx: ${1:-0} backtraces compared"
report x.zst x.json
guards=$(sed -n 's/^guards //p' x.zst.stdout)
is "$(figs x.json allocations Guard::~Guard after_catch __cxa_allocate_exception | sed 's#/[0-9]*##g')" \
	"Guard::~Guard=$guards after_catch=2000 __cxa_allocate_exception=2000" \
	"gt_unwind_cxx: destructors run by the unwinder, catches and throws counted exactly"

# ---- the other ground-truth programs: threads, dlopen/dlclose, truncation
checked t.zst "$PROGS/gt_threads" 50000
is "$?" 0 "gt_threads under check mode exits 0"
is "$(summary t.zst.stderr | cut -d' ' -f2)" 0 "gt_threads: no difference"
checked d.zst "$PROGS/gt_dlopen" "$PROGS"
is "$?" 0 "gt_dlopen under check mode exits 0"
is "$(summary d.zst.stderr | cut -d' ' -f2)" 0 "gt_dlopen: no difference"
MEMREC_MAX_DEPTH=16 checked deep.zst "$PROGS/gt_deep" 500
is "$?" 0 "gt_deep 500 (MEMREC_MAX_DEPTH=16) under check mode exits 0"
is "$(summary deep.zst.stderr | cut -d' ' -f2)" 0 "gt_deep 500: same cut and truncation mark"

# ---- a real program
if command -v perl >/dev/null 2>&1; then
	checked p.zst perl -e 'my %h; $h{$_} = [$_, "x" x ($_ % 50)] for 1 .. 20000; print scalar(keys %h), "\n"'
	is "$?" 0 "perl under check mode exits 0"
	set -- $(summary p.zst.stderr)
	is "${2:-none}" 0 "perl: no difference (${1:-0} backtraces)"
else
	skip "perl not installed"
	skip "perl not installed"
fi

# ---- a bad MEMREC_UNWIND value: logged, default unwinder
MEMREC_UNWIND=bogus record b.zst "$PROGS/gt_deep" 3
is "$?" 0 "MEMREC_UNWIND=bogus: the program runs"
like "$(cat b.zst.stderr)" "ignoring bad MEMREC_UNWIND='bogus'" "and the bad value is reported"

done_testing
