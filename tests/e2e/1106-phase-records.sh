#!/bin/bash
# Phases and marks (issue 6, recording side). include/memrec.h: gt_phases
# runs and links without memrec (no undefined symbol, exit 0, nothing
# printed); under memrec its PHASE records (memana dump) are there with the
# right ops and names, in seq order exactly between its known allocations;
# the header works built as PIE and as -no-pie -fno-pie, -O0 and -O2.
# memrec --mark-signal: gt_marksig raises SIGUSR2 three times between
# allocation batches of 10, 20, 30, 40: marks "SIGUSR2 #1..#3" split them
# exactly, the program's own handler runs (sigaction, signal, SA_RESETHAND
# with SA_SIGINFO), an ignored SIGUSR2 stays ignored (also inherited over
# exec), the default action still kills (with and without the option),
# and a signal storm into a thread busy in malloc gives exactly one mark per
# handler run, numbered in seq order.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_phases
need_prog gt_marksig

# phases DUMP: the PHASE records in seq order, "op:name" separated by spaces.
# segments DUMP: the ALLOC and FREE records between consecutive PHASE records
# (all streams, seq order): one "A<allocs>[@<sizes>]/F<frees>" per gap, the
# gap before the first PHASE first; sizes listed when the allocations are
# all of one size.
dump_py() {
	"$PY" - "$1" "$2" <<'EOF'
import json, re, sys
what, path = sys.argv[1], sys.argv[2]
ev = []
for line in open(path):
    m = re.match(r'^@\d+ (alloc|free|phase) stream=(\d+) seq=(\d+) (.*)$', line.rstrip('\n'))
    if not m:
        continue
    kind, seq, rest = m.group(1), int(m.group(3)), m.group(4)
    if kind == 'phase':
        pm = re.match(r'^op=(\w+) name=(".*")$', rest)
        ev.append((seq, 'phase', pm.group(1) + ':' + json.loads(pm.group(2))))
    elif kind == 'alloc':
        ev.append((seq, 'alloc', int(re.search(r'size=(\d+)', rest).group(1))))
    else:
        ev.append((seq, 'free', None))
ev.sort()
if len(set(e[0] for e in ev)) != len(ev):
    print('<duplicate seq>')
    sys.exit(1)
if what == 'phases':
    print(' '.join(e[2] for e in ev if e[1] == 'phase'))
    sys.exit(0)
out, sizes, nf = [], [], 0
def flush():
    s = 'A%d' % len(sizes)
    if sizes and len(set(sizes)) == 1:
        s += '@%d' % sizes[0]
    out.append(s + '/F%d' % nf)
for e in ev:
    if e[1] == 'phase':
        flush()
        sizes, nf = [], 0
    elif e[1] == 'alloc':
        sizes.append(e[2])
    else:
        nf += 1
flush()
print(' '.join(out))
EOF
}

# ---- include/memrec.h: gt_phases --------------------------------------------

"$PROGS/gt_phases" >plain.out 2>plain.err
is "$?:$(cat plain.out plain.err)" "0:" "gt_phases without memrec: exit 0, prints nothing"
is "$(ldd -r "$PROGS/gt_phases" 2>&1 | grep -ci 'undefined')" 0 "gt_phases: no undefined symbol (ldd -r)"
is "$(nm -D "$PROGS/gt_phases" | grep -c memrec)" 0 "gt_phases: no memrec symbol to bind (looked up with dlsym)"

record ph.zst "$PROGS/gt_phases"
is "$?" 0 "gt_phases under memrec: exit 0"
"$MEMANA" dump ph.zst >ph.dump 2>ph.dump.err
is "$?" 0 "dump of gt_phases' trace exits 0"
is "$(dump_py phases ph.dump)" \
	"begin:parse end: begin:index end: mark:checkpoint begin:serve begin:serve/warmup end: end:" \
	"gt_phases: the PHASE records, ops and names, in seq order (the warmup name was copied)"
like "$(grep ' phase ' ph.dump | head -n 1)" '^@[0-9]+ phase stream=0 seq=[0-9]+ op=begin name="parse"$' \
	"dump prints '@OFF phase stream=S seq=Q op=begin name=\"...\"'"
is "$(grep ' phase ' ph.dump | grep -vc ' stream=0 ')" 0 "gt_phases: all PHASE records in the main thread's stream"
# gaps: before parse, parse, parse..index, index, index..checkpoint,
# checkpoint..serve, serve..warmup, warmup, warmup..end of serve, after
is "$(dump_py segments ph.dump)" \
	"A0/F0 A1000@64/F900 A0/F0 A256@4096/F200 A0/F0 A0/F0 A0/F0 A10@128/F10 A500@32/F656 A0/F0" \
	"gt_phases: each phase holds exactly its allocations and frees"
is "$(grep -cE '^@[0-9]+ end ' ph.dump)" 1 "gt_phases: the trace is complete"

# The header's mechanism in the build modes that matter (a weak symbol would
# fail -no-pie -fno-pie): built here from the same source.
command -v cc >/dev/null || bail "cc not found (tools/install-deps.sh installs gcc)"
for mode in "-O0 -pie -fPIE" "-O2 -pie -fPIE" "-O0 -no-pie -fno-pie" "-O2 -no-pie -fno-pie"; do
	rm -f hp hp.zst
	if ! cc -std=gnu11 -Wall -Werror $mode -I"$SRC/include" -o hp "$SRC/tests/progs/gt_phases.c" 2>hp.cc.err; then
		fail "cc $mode: gt_phases builds"
		diag_file hp.cc.err
		continue
	fi
	./hp >hp.out 2>&1
	plain=$?
	"$MEMREC" -q -o hp.zst ./hp >/dev/null 2>&1
	rec=$?
	"$MEMANA" dump hp.zst >hp.dump 2>/dev/null
	is "$plain $rec $(grep -c ' phase ' hp.dump)" "0 0 9" "cc $mode: runs without memrec, and under it writes its 9 PHASE records"
done

# ---- --mark-signal: gt_marksig ----------------------------------------------

"$MEMREC" --help >help.out 2>&1
ok "--help documents --mark-signal" grep -q -- '--mark-signal SIG' help.out
for bad in SIGKILL 17 SIGSEGV 0 65 bogus RTMIN+x; do
	"$MEMREC" -q --mark-signal "$bad" -o bad.zst true >/dev/null 2>bad.err
	st=$?
	is "$st:$(grep -c '^memrec: error: .*--mark-signal' bad.err)" "2:1" "--mark-signal $bad: refused, usage error (2)"
done
[ -e bad.zst ] && fail "a refused --mark-signal runs nothing" || pass "a refused --mark-signal runs nothing"

MARKS3="mark:SIGUSR2 #1 mark:SIGUSR2 #2 mark:SIGUSR2 #3"
SEGS="A10@100/F0 A20@200/F0 A30@300/F0 A40@400/F100"
for run in "handle:SIGUSR2" "handle:12" "signal:usr2" "oneshot:SIGUSR2" "ignore:USR2"; do
	mode=${run%%:*}
	sig=${run#*:}
	"$PROGS/gt_marksig" $mode
	is "$?" 0 "gt_marksig $mode without memrec: exit 0"
	rm -f ms.$mode.zst
	"$MEMREC" -q --mark-signal "$sig" -o ms.$mode.zst "$PROGS/gt_marksig" $mode >ms.$mode.out 2>ms.$mode.err
	is "$?" 0 "gt_marksig $mode, --mark-signal $sig: exit 0 (its own handling of SIGUSR2 kept)"
	is "$(cat ms.$mode.out ms.$mode.err)" "" "gt_marksig $mode: nothing printed"
	"$MEMANA" dump ms.$mode.zst >ms.$mode.dump 2>/dev/null
	is "$(dump_py phases ms.$mode.dump)" "$MARKS3" "gt_marksig $mode: three marks, numbered in seq order"
	is "$(dump_py segments ms.$mode.dump)" "$SEGS" "gt_marksig $mode: the marks split the allocations 10, 20, 30, 40"
done

# SIG_IGN inherited over exec (the shell's trap), kept by the recorder of the
# shell at exec and taken as the program's own by the new image's.
sh -c "trap '' USR2; exec \"$PROGS/gt_marksig\" inherited"
is "$?" 0 "gt_marksig inherited without memrec: SIGUSR2 ignored, exit 0"
rm -f inh.*.zst
"$MEMREC" -q --mark-signal SIGUSR2 -o 'inh.%p.zst' sh -c "trap '' USR2; exec \"$PROGS/gt_marksig\" inherited"
is "$?" 0 "gt_marksig inherited under memrec: still ignored over exec, exit 0"
n=0
for f in inh.*.zst; do
	"$MEMANA" dump "$f" >"$f.dump" 2>/dev/null
	[ "$(dump_py phases "$f.dump")" = "$MARKS3" ] && n=$((n + 1))
done
is "$n" 1 "gt_marksig inherited: its trace has the three marks"

# The default action: the process still dies of SIGUSR2 (128 + 12), with or
# without --mark-signal; with it the mark reaches the trace.
{ "$PROGS/gt_marksig" default; } 2>/dev/null # no "User defined signal 2" from bash
is "$?" 140 "gt_marksig default without memrec: killed by SIGUSR2"
record nomark.zst "$PROGS/gt_marksig" default
is "$?" 140 "gt_marksig default under memrec without --mark-signal: killed by SIGUSR2 (140)"
"$MEMREC" -q --mark-signal SIGUSR2 -o dfl.zst "$PROGS/gt_marksig" default >/dev/null 2>&1
is "$?" 140 "gt_marksig default under memrec --mark-signal: still killed by SIGUSR2 (140)"
"$MEMANA" dump dfl.zst >dfl.dump 2>/dev/null
is "$(dump_py phases dfl.dump)" "mark:SIGUSR2 #1" "gt_marksig default: the mark before the death is in the trace"
is "$(dump_py segments dfl.dump | cut -d' ' -f1)" "A10@100/F0" "gt_marksig default: after the first 10 allocations"
is "$(grep -cE '^@[0-9]+ end ' dfl.dump)" 0 "gt_marksig default: the trace is incomplete (killed)"

# Without --mark-signal nothing changes: the program's handler runs, no mark.
record nomark2.zst "$PROGS/gt_marksig" handle
is "$?" 0 "gt_marksig handle under memrec without --mark-signal: exit 0"
"$MEMANA" dump nomark2.zst >nomark2.dump 2>/dev/null
is "$(grep -c ' phase ' nomark2.dump)" 0 "gt_marksig without --mark-signal: no mark"

# A storm of SIGUSR2 into a thread busy in malloc/free: most land inside the
# recorder (kept pending, written when it leaves). One mark per handler run,
# numbered 1..N in seq order.
for run in 1 2; do
	rm -f st.zst
	timeout -k 5 120 "$MEMREC" -q --mark-signal SIGUSR2 -o st.zst "$PROGS/gt_marksig" stress >st.out 2>st.err
	is "$?" 0 "stress run $run: exit 0"
	handled=$(sed -n 's/^handled //p' st.out)
	"$MEMANA" dump st.zst >st.dump 2>/dev/null
	want=$(seq -f 'mark:SIGUSR2 #%g' 1 "${handled:-0}" | tr '\n' ' ' | sed 's/ $//')
	num "${handled:-0}" -gt 100 "stress run $run: the handler ran many times"
	is "$(dump_py phases st.dump)" "$want" "stress run $run: exactly one mark per handler run ($handled), numbered in seq order"
	is "$(grep -cE '^@[0-9]+ end ' st.dump)" 1 "stress run $run: the trace is complete"
done

done_testing
