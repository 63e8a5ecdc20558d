#!/bin/bash
# How a process ends: allocations in ELF constructors, frees in ELF
# destructors and atexit handlers (after main) are recorded — no false leak;
# exit() from a worker thread, exit() and return from main while 4 threads
# keep allocating: the status passes through, the trace is complete and
# consistent (no event lost before END, nothing after it); _exit() and
# _Exit() finish the trace too.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_ctor
need_prog gt_exit_load
need_prog gt_status

for how in exit return; do
	record ctor-$how.zst "$PROGS/gt_ctor" "$how"
	is "$?" 0 "gt_ctor ($how): exits 0"
	report ctor-$how.zst ctor-$how.json
	is "$(jget ctor-$how.json 'd["trace"]["complete"]')" true "gt_ctor ($how): complete"
	is "$(site ctor-$how.json allocations ctor_alloc | cut -d' ' -f1,2)" "3 2331" "gt_ctor ($how): constructor's 3 allocations recorded"
	is "$(site ctor-$how.json leaked ctor_alloc | cut -d' ' -f1)" 0 "gt_ctor ($how): the destructor's frees are recorded (no leak)"
	is "$(site ctor-$how.json leaked main_alloc | cut -d' ' -f1)" 0 "gt_ctor ($how): the atexit handler's frees are recorded (no leak)"
	is "$(site ctor-$how.json leaked main_leak | cut -d' ' -f1,2)" "1 333" "gt_ctor ($how): the real leak is there"
done

# _exit() and _Exit() are interposed (.notes/PLAN3.md decision 5): the trace
# is finished with its end record, nothing lost (the program calls them
# within the writer's flush interval of its allocations).
for how in _exit:4 _Exit:6; do
	fn=${how%:*}
	st=${how#*:}
	record $fn.zst "$PROGS/gt_status" lines 5 $fn $st
	is "$?" $st "$fn($st): status $st"
	is "$(wc -l <$fn.zst.stdout)" 5 "$fn: the program's flushed output is there"
	report $fn.zst $fn.json
	is "$?" 0 "$fn: the trace reports (exit 0)"
	is "$(site $fn.json allocations lines | cut -d' ' -f1,2)" "5 175" "$fn: the 5 allocations before it are recorded"
	is "$(jget $fn.json 'd["trace"]["complete"]')" true "$fn: trace complete"
	is "$(cat $fn.json.stderr)" "" "$fn: no warning from memana"
done

ROUNDS=${MEMREC_EXIT_ROUNDS:-3}
for round in $(seq 1 "$ROUNDS"); do
	for mode in thread:7 main:8 return:9; do
		m=${mode%:*}
		want=${mode#*:}
		f=el-$m-$round.zst
		timeout -k 5 120 "$MEMREC" -q -o "$f" "$PROGS/gt_exit_load" "$m" >/dev/null 2>"$f.err"
		is "$?" "$want" "round $round, exit from $m: status $want"
		report "$f" "$f.json"
		is "$?" 0 "round $round, $m: report exits 0"
		is "$(jget "$f.json" 'd["trace"]["complete"]')" true "round $round, $m: trace complete"
		num "$(site_calls "$f.json" allocations worker_churn)" -ge 80000 "round $round, $m: the workers' allocations are recorded"
		lw=$(site_calls "$f.json" leaked worker_churn)
		num "$lw" -le 4 "round $round, $m: at most one block in flight per worker at exit ($lw)"
		"$MEMANA" ingest "$f" -o "$f.db" >/dev/null 2>&1
		is "$(sqlite3 "$f.db" "SELECT group_concat(value, ' ') FROM (SELECT value FROM meta WHERE key IN ('inconsistent', 'unmatched_frees', 'late_events') ORDER BY key)")" \
			"0 0 0" "round $round, $m: no inconsistent, unmatched or late event"
	done
done

done_testing
