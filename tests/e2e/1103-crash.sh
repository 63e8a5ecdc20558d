#!/bin/bash
# Acceptance 4 (crashes; .notes/PLAN3.md decision 5): a program killed by
# SIGSEGV, abort() or SIGKILL after known allocations and a sleep longer than
# the writer's 200 ms flush interval leaves a readable trace: memana reports
# it (exit 0) with complete:false and a warning, and every allocation made
# before the sleep is there, exactly. abort() flushes everything (also the
# allocations made just before it). _exit() finishes the trace: complete.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_crash

# MODE:STATUS:COMPLETE:LATE (LATE: late_alloc's figures that must be there,
# "-" when they may be lost — made within the last flush interval)
for c in segv:139:false:- abort:134:false:5/2500 sigkill:137:false:- _exit:5:true:5/2500; do
	IFS=: read -r mode st complete late <<<"$c"
	"$MEMREC" -o $mode.zst -- "$PROGS/gt_crash" $mode >$mode.out 2>$mode.err
	is "$?" "$st" "$mode: memrec exits $st"
	if [ "$complete" = true ]; then
		like "$(tail -n 1 $mode.err)" '^memrec: wrote .+ \([0-9]+ events, [0-9]+ bytes\)$' "$mode: summary line, not incomplete"
	else
		like "$(tail -n 1 $mode.err)" '^memrec: wrote .+ \([0-9]+ events, [0-9]+ bytes, incomplete\)$' "$mode: summary line says incomplete"
	fi
	is "$(wrote_check $mode.err)" "" "$mode: the summary's path, size, event count and end agree with the trace"
	report $mode.zst $mode.json
	is "$?" 0 "$mode: memana reads the trace (exit 0)"
	is "$(jget $mode.json 'd["trace"]["complete"]')" "$complete" "$mode: complete: $complete"
	if [ "$complete" = true ]; then
		is "$(cat $mode.json.stderr)" "" "$mode: no warning"
	else
		like "$(cat $mode.json.stderr)" "^memana: warning: '$mode.zst' is truncated" "$mode: warning on stderr"
	fi
	is "$(figs $mode.json allocations crash_alloc)" "crash_alloc=10/10000" "$mode: the 10 allocations made before the sleep are there"
	is "$(figs $mode.json leaked crash_alloc)" "crash_alloc=10/10000" "$mode: and still live where the trace ends"
	if [ "$late" != - ]; then
		is "$(figs $mode.json allocations late_alloc)" "late_alloc=$late" "$mode: the allocations made right before the end are there too"
	else
		diag "$mode: late_alloc (within the last flush interval): $(figs $mode.json allocations late_alloc)"
	fi
	"$MEMANA" ingest $mode.zst -o $mode.db >/dev/null 2>$mode.db.err
	is "$?" 0 "$mode: ingest exits 0"
	is "$(sqlite3 $mode.db "SELECT value FROM meta WHERE key = 'complete'")" "$([ "$complete" = true ] && echo 1 || echo 0)" "$mode: database meta complete"
done

done_testing
