#!/bin/bash
# memrec, the launcher: exit status passthrough (128+N for a signal), the
# program's stdin/stdout/stderr untouched, the one-line summary and -q, -o
# with %p, the default trace name, --help, PATH lookup, an existing
# LD_PRELOAD kept, arguments passed intact.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_status

G="$PROGS/gt_status"

# --help documents the options and exits 0
"$MEMREC" --help >help.out 2>&1
is "$?" 0 "--help exits 0"
for opt in -o --rss-interval -q; do
	if grep -q -- "$opt" help.out; then pass "--help documents $opt"; else fail "--help documents $opt"; diag_file help.out; fi
done

# exit status passthrough
for st in 0 3 77 255; do
	"$MEMREC" -q -o "exit$st.zst" "$G" exit "$st" >/dev/null 2>exit$st.err
	is "$?" "$st" "exit status $st passed through"
done
for sig in 11 6 9 15; do
	"$MEMREC" -q -o "sig$sig.zst" "$G" signal "$sig" >/dev/null 2>sig$sig.err
	is "$?" "$((128 + sig))" "death by signal $sig gives $((128 + sig))"
	[ -s "sig$sig.zst" ] && pass "signal $sig: a trace is left" || fail "signal $sig: a trace is left"
	"$MEMANA" report "sig$sig.zst" --json >"sig$sig.json" 2>"sig$sig.json.err"
	is "$?" 0 "signal $sig: the trace reports (exit 0)"
done
# the trace of a program killed by SIGKILL is readable (exit 0, incomplete)
"$MEMANA" report sig9.zst --json >sig9.json 2>sig9.json.stderr
is "$?" 0 "report of a SIGKILLed program's trace exits 0"
is "$(jget sig9.json 'd["trace"]["complete"]')" false "SIGKILLed trace is incomplete"

# stdout and stderr exactly as without memrec (stdio program, many lines)
"$G" lines 2000 >plain.out 2>plain.err
is "$?" 0 "untraced gt_status runs"
"$MEMREC" -q -o lines.zst "$G" lines 2000 >traced.out 2>traced.err
is "$?" 0 "traced gt_status exits 0"
ok "stdout identical to the untraced run" cmp -s plain.out traced.out
ok "stderr identical to the untraced run (-q)" cmp -s plain.err traced.err
[ -s plain.out ] && [ "$(wc -l <plain.out)" -eq 2000 ] && pass "untraced output has 2000 lines" || fail "untraced output has 2000 lines"

# the program gets the same descriptor numbers as without memrec
"$PROGS/gt_fds" >fds.plain 2>&1
"$MEMREC" -q -o fds.zst "$PROGS/gt_fds" >fds.traced 2>&1
is "$?" 0 "traced gt_fds exits 0"
is "$(cat fds.traced)" "$(cat fds.plain)" "open() and pipe() return the same descriptors as untraced"

# a real program: ls, and stdin passed through (sort)
ls -la /usr/bin >ls.plain 2>&1
"$MEMREC" -q -o ls.zst ls -la /usr/bin >ls.traced 2>&1
is "$?" 0 "traced ls exits 0"
ok "ls -la /usr/bin output identical" cmp -s ls.plain ls.traced
printf 'pear\napple\nfig\n' | "$MEMREC" -q -o sort.zst sort >sort.out 2>sort.err
is "$(tr '\n' ' ' <sort.out)" "apple fig pear " "stdin reaches the program (sort)"

# arguments passed intact (spaces, empty string, leading dash)
"$MEMREC" -q -o args.zst -- "$G" sym "a b" sym "" sym -x >args.out 2>args.err
is "$(cat args.out)" "sym a b missing
sym  missing
sym -x missing" "arguments passed intact"

# the summary line: path, events, size
"$MEMREC" -o sum.zst "$G" lines 10 >sum.out 2>sum.err
is "$?" 0 "run with summary exits 0"
last=$(tail -n 1 sum.err)
like "$last" '^memrec: wrote .+ \([0-9]+ events, [0-9]+ bytes\)$' "summary line format"
ok "summary is the only extra stderr line" cmp -s <(head -n -1 sum.err) <("$G" lines 10 2>&1 >/dev/null)
path=$(printf '%s\n' "$last" | sed -E 's/^memrec: wrote (.+) \([0-9]+ events, [0-9]+ bytes\)$/\1/')
events=$(printf '%s\n' "$last" | sed -E 's/.*\(([0-9]+) events, .*/\1/')
size=$(printf '%s\n' "$last" | sed -E 's/.*events, ([0-9]+) bytes\)$/\1/')
is "$(realpath -m "$path")" "$(realpath sum.zst)" "summary names the trace file"
is "$size" "$(stat -c %s sum.zst)" "summary gives the file size"
"$MEMANA" dump sum.zst >sum.dump 2>sum.dump.err
is "$?" 0 "dump of the trace exits 0"
n_ev=$(grep -cE '^@[0-9]+ (alloc|free) ' sum.dump)
is "$events" "$n_ev" "summary event count = alloc + free records in the trace"
num "$events" -ge 20 "at least the program's 10 mallocs and 10 frees"

# -q: no summary
"$MEMREC" -q -o quiet.zst "$G" >quiet.out 2>quiet.err
is "$(cat quiet.err)" "" "-q prints nothing on stderr"

# -o with %p
"$MEMREC" -q -o 'pid.%p.zst' "$G" >/dev/null 2>pid.err
files=(pid.*.zst)
is "${#files[@]}" 1 "-o with %p writes one file"
pid=$(printf '%s\n' "${files[0]}" | sed -E 's/^pid\.([0-9]+)\.zst$/\1/')
report "${files[0]}" pid.json
is "$?" 0 "report of the %p trace exits 0"
is "$(jget pid.json 'd["trace"]["pid"]')" "$pid" "%p is the traced program's pid"
is "$(jget pid.json 'd["trace"]["complete"]')" true "trace of a clean exit is complete"

# default name memrec.<program>.<pid>.zst in the current directory
mkdir def && (cd def && "$MEMREC" -q "$G" lines 1 >/dev/null 2>&1)
files=(def/memrec.gt_status.*.zst)
if [ "${#files[@]}" = 1 ] && [ -f "${files[0]}" ]; then
	pass "default trace name memrec.gt_status.PID.zst"
	report "${files[0]}" def.json
	is "memrec.gt_status.$(jget def.json 'd["trace"]["pid"]').zst" "$(basename "${files[0]}")" "default name carries the pid"
else
	fail "default trace name memrec.gt_status.PID.zst"
	diag "$(ls -la def)"
fi

# PROGRAM looked up on PATH
PATH="$PROGS:$PATH" "$MEMREC" -q -o path.zst gt_status lines 1 >path.out 2>path.err
is "$?" 0 "program found on PATH"
is "$(head -n 1 path.out)" "stdout line 1" "program from PATH ran"
report path.zst path.json
like "$(jget path.json 'd["trace"]["command"]')" 'gt_status' "trace command names the program"

# a program that does not exist
"$MEMREC" -q -o none.zst no-such-program-here >none.out 2>none.err
is "$?" 127 "a program that cannot be started gives 127"
like "$(cat none.err)" 'no-such-program-here' "and a message naming it"

# an existing LD_PRELOAD is kept
cat >marker.c <<'EOC'
void gt_marker_fn(void);
void gt_marker_fn(void) {}
EOC
if cc -shared -fPIC -o libmarker.so marker.c; then
	"$G" sym gt_marker_fn >pre.plain
	is "$(cat pre.plain)" "sym gt_marker_fn missing" "control: marker absent without LD_PRELOAD"
	LD_PRELOAD="$T_DIR/libmarker.so" "$MEMREC" -q -o pre.zst "$G" sym gt_marker_fn lines 3 >pre.out 2>pre.err
	is "$?" 0 "traced run with LD_PRELOAD exits 0"
	is "$(head -n 1 pre.out)" "sym gt_marker_fn found" "the user's LD_PRELOAD library is loaded"
	report pre.zst pre.json
	is "$?" 0 "and the run is recorded"
	is "$(site_calls pre.json allocations lines)" 3 "recorded the program's 3 allocations in lines()"
else
	skip "cc cannot build a test preload library"
fi

# an existing trace is not clobbered
cp sum.zst keep.zst
sum_before=$(cksum <keep.zst)
"$MEMREC" -q -o keep.zst "$G" >/dev/null 2>keep.err
is "$(cksum <keep.zst)" "$sum_before" "an existing trace file is not overwritten"

done_testing
