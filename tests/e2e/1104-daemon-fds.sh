#!/bin/bash
# Acceptance 5 (hostile environments; .notes/PLAN3.md decision 8): a program
# that closes every descriptor (close() loop, or the close_range system call
# behind libc's back) or dup2()s /dev/null over all of them, then keeps
# allocating across a flush interval: its trace holds those allocations
# exactly and is complete, and the recorder never writes into the program's
# own descriptors (the program's file holds exactly what it wrote). A
# program with its own allocating SIGUSR1/SIGALRM handlers that blocks every
# signal for a while: the recorder's thread does not take the signals meant
# for it (same output and status as untraced), no deadlock.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_daemon
need_prog gt_signals
command -v sqlite3 >/dev/null || bail "sqlite3 not found"

WANT_TXT=$(printf 'daemon line 1\ndaemon line 2')
for m in close closerange dup2; do
	"$PROGS/gt_daemon" $m "$T_DIR/plain.$m.txt" >/dev/null 2>&1
	is "$?:$(cat plain.$m.txt 2>/dev/null)" "0:$WANT_TXT" "$m: control (untraced) run exits 0 and writes its two lines"
	timeout -k 5 60 "$MEMREC" -o d.$m.zst -- "$PROGS/gt_daemon" $m "$T_DIR/d.$m.txt" >d.$m.out 2>d.$m.err
	is "$?" 0 "$m: traced run exits 0"
	is "$(cat d.$m.txt 2>/dev/null)" "$WANT_TXT" "$m: the program's own file holds exactly its two lines"
	like "$(cat d.$m.err)" '^memrec: wrote .+ \([0-9]+ events, [0-9]+ bytes\)$' "$m: memrec prints only its summary, not incomplete"
	report d.$m.zst d.$m.json
	is "$?" 0 "$m: report exits 0"
	is "$(jget d.$m.json 'd["trace"]["complete"]')" true "$m: trace complete"
	is "$(figs d.$m.json allocations after_a after_b)" "after_a=20/4000 after_b=30/9000" \
		"$m: the allocations after the closing (before and after a flush interval) are all there"
	is "$(figs d.$m.json leaked after_a after_b)" "after_a=0/0 after_b=1/300" "$m: leaks exact"
	is "$(replay_meta d.$m.zst)" "0 0 0" "$m: no inconsistent, unmatched or late event"
done

"$PROGS/gt_signals" >sig.plain 2>&1
is "$?" 7 "signals: control run exits 7"
want=$(for r in 1 2 3 4 5; do echo "round $r blocked_runs 0 handled $((2 * r)) foreign 0"; done)
is "$(cat sig.plain)" "$want" "signals: control output (no handler while blocked, all in main)"
for run in 1 2; do
	timeout -k 5 60 "$MEMREC" -q -o sig$run.zst -- "$PROGS/gt_signals" >sig$run.out 2>sig$run.err
	is "$?" 7 "signals run $run: exits 7 (no deadlock: timeout gives 124)"
	is "$(cat sig$run.out)" "$want" "signals run $run: output identical (no handler ran in the recorder's thread or while blocked)"
	is "$(cat sig$run.err)" "" "signals run $run: nothing on stderr"
	report sig$run.zst sig$run.json
	is "$(jget sig$run.json 'd["trace"]["complete"]')" true "signals run $run: trace complete"
	is "$(figs sig$run.json allocations handler_alloc main_alloc)" "handler_alloc=10/770 main_alloc=50/1650" \
		"signals run $run: the handlers' and main's allocations exact"
	is "$(replay_meta sig$run.zst)" "0 0 0" "signals run $run: no inconsistent, unmatched or late event"
done

done_testing
