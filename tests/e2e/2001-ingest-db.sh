#!/bin/bash
# memana ingest: the SQLite database (docs/schema.md) gives the ground-truth
# figures through its documented views, reports exactly like the trace, and
# memana check is the CI gate (exit 1 and one line per breached limit,
# SIZE with K/M/G suffixes = KiB/MiB/GiB).
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_basic
command -v sqlite3 >/dev/null || bail "sqlite3 not installed"

record t.zst "$PROGS/gt_basic"
is "$?" 0 "gt_basic under memrec exits 0"
"$MEMANA" ingest t.zst -o x.db >ingest.out 2>ingest.err
is "$?" 0 "memana ingest -o x.db exits 0"
is "$(cat ingest.err)" "" "ingest prints nothing on stderr"
ok "x.db exists" test -s x.db
is "$(ls x.db.tmp* 2>/dev/null)" "" "no temporary file left behind"

q() { sqlite3 -batch x.db "$1" 2>&1; }
meta() { q "SELECT value FROM meta WHERE key = '$1'"; }
is "$(meta schema_version)" 2 "meta.schema_version = 2"
is "$(meta complete)" 1 "meta.complete = 1"
is "$(meta inconsistent)" 0 "meta.inconsistent = 0"
is "$(meta unmatched_frees)" 0 "meta.unmatched_frees = 0"
is "$(meta late_events)" 0 "meta.late_events = 0"
like "$(meta command)" 'gt_basic' "meta.command names gt_basic"
# edge_cases: malloc(SIZE_MAX / 2) and calloc(SIZE_MAX / 4, 8) fail; bad_memalign's
# posix_memalign(&p, 3, 10) may or may not count as a failed call
bm=$(q "SELECT coalesce(sum(calls), 0) FROM hotspots WHERE node_id IN (SELECT node_id FROM stack_frames WHERE level = 0 AND function = 'bad_memalign')")
is "$(($(meta failed_allocations) - bm))" 2 "meta.failed_allocations: the 2 failing calls of edge_cases"

# per-function figures from the views, joined to the leaf frame
fn_sum() { # VIEW FUNC -> "calls|bytes"
	q "SELECT coalesce(sum(v.calls), 0) || '|' || coalesce(sum(v.bytes), 0) FROM $1 v
	   WHERE v.node_id IN (SELECT node_id FROM stack_frames WHERE level = 0 AND function = '$2')"
}
is "$(fn_sum leaks leak_some)" "7|700" "leaks view: leak_some 7 blocks, 700 bytes"
is "$(fn_sum hotspots churn)" "1000|64000" "hotspots view: churn 1000 calls, 64000 bytes"
is "$(fn_sum temporary churn)" "1000|64000" "temporary view: churn 1000 temporary"
is "$(fn_sum peak build_plateau)" "4096|33554432" "peak view: build_plateau 4096 blocks, 32 MiB"
is "$(fn_sum hotspots realloc_chain)" "6|1008" "hotspots view: realloc_chain 6 calls, 1008 bytes"
is "$(fn_sum hotspots use_pvalloc)" "3|24576" "hotspots view: use_pvalloc 3 calls, 24576 bytes"
is "$(fn_sum leaks churn)" "0|0" "leaks view: churn leaks nothing"
is "$(q "SELECT function FROM stack_frames WHERE node_id = (SELECT node_id FROM peak ORDER BY bytes DESC LIMIT 1) AND level = 0")" \
	build_plateau "peak view: top site's leaf is build_plateau"
is "$(q "SELECT function FROM stack_frames WHERE node_id = (SELECT node_id FROM leaks LIMIT 1) AND level = 1")" \
	main "stack_frames: leak_some's caller (level 1) is main"
like "$(q "SELECT stack FROM stacks WHERE node_id = (SELECT node_id FROM leaks LIMIT 1)")" \
	'leak_some at .*gt_basic\.c:[0-9]+' "stacks view: text stack names leak_some at gt_basic.c:LINE"
ok "sites table: sum of leaked bytes = meta.leaked_bytes" test "$(q 'SELECT sum(leaked_bytes) FROM sites')" = "$(meta leaked_bytes)"
ok "sites table: sum of calls = meta.allocations" test "$(q 'SELECT sum(alloc_calls) FROM sites')" = "$(meta allocations)"
num "$(q 'SELECT count(*) FROM modules')" -ge 2 "modules: the executable and libc at least"
like "$(q "SELECT group_concat(name, ' ') FROM modules")" 'gt_basic' "modules: gt_basic is one"
like "$(q "SELECT build_id FROM modules WHERE name = 'gt_basic'")" '^[0-9a-f]{40}$' "modules: gt_basic's build-id (hex)"
is "$(q "SELECT build_id FROM modules WHERE name = 'gt_basic'")" \
	"$(readelf -n "$PROGS/gt_basic" 2>/dev/null | sed -n 's/.*Build ID: //p')" "modules: build-id matches the file's"
num "$(q 'SELECT count(*) FROM threads')" -ge 1 "threads: at least the main thread"
q "SELECT time_ms, heap_bytes, rss_bytes FROM timeline" >timeline.txt
ok "timeline view readable" test "$(q 'SELECT count(*) FROM ticks')" = "$(wc -l <timeline.txt)"
is "$(q "SELECT count(*) FROM address_frames WHERE function LIKE '%+0x%' AND module LIKE '%gt_basic'")" 0 \
	"every gt_basic address is symbolized"

# the database reports exactly like the trace
report t.zst from-trace.json
is "$?" 0 "report from the trace exits 0"
report x.db from-db.json
is "$?" 0 "report from the database exits 0"
"$PY" - from-trace.json from-db.json >cmp.txt <<'EOP'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
if a == b:
    print("same")
else:
    for k in a:
        if a.get(k) != b.get(k):
            print("differs in", k)
EOP
is "$(cat cmp.txt)" same "report --json from x.db equals the report from the trace"
"$MEMANA" report t.zst >from-trace.txt 2>&1
"$MEMANA" report x.db >from-db.txt 2>&1
ok "text reports equal too" cmp -s from-trace.txt from-db.txt

# default database name: TRACE with .zst replaced by .db; no clobbering
cp t.zst copy.zst
"$MEMANA" ingest copy.zst >/dev/null 2>&1
is "$?" 0 "ingest without -o exits 0"
ok "default database copy.db" test -s copy.db
"$MEMANA" ingest copy.zst >/dev/null 2>clobber.err
is "$?" 3 "ingest refuses to overwrite an existing database"
like "$(cat clobber.err)" "copy\.db" "and says which"
"$MEMANA" ingest --force copy.zst >/dev/null 2>&1
is "$?" 0 "ingest --force overwrites"

# ---- memana check ---------------------------------------------------------------
L=$(jget from-trace.json 'd["totals"]["leaked_bytes"]')
P=$(jget from-trace.json 'd["totals"]["peak_heap_bytes"]')
A=$(jget from-trace.json 'd["totals"]["allocations"]')
diag "leaked $L bytes, peak $P bytes, $A allocations"

check() { # EXPECTED_STATUS EXPECTED_BREACH_LINES DESC ARGS...
	local want=$1 lines=$2 desc=$3
	shift 3
	local input
	for input in t.zst x.db; do
		"$MEMANA" check "$input" "$@" >check.out 2>check.err
		local st=$?
		is "$st" "$want" "check $input $*: exit $want ($desc)"
		local n
		n=$(cat check.out check.err | grep -c 'check failed')
		is "$n" "$lines" "check $input $*: $lines breach line(s)"
		if [ "$want" = 1 ]; then
			is "$(cat check.out check.err | grep -vc 'check failed')" 0 "check $input $*: nothing but the breach lines"
		fi
	done
}
check 1 1 "leaked above the limit" --max-leaked $((L - 1))
check 0 0 "leaked at the limit" --max-leaked "$L"
check 1 1 "peak above 1M" --max-peak 1M
check 1 1 "32M = 33554432 < peak" --max-peak 32M
check 0 0 "33M = 34603008 > peak (M is MiB, not 10^6)" --max-peak 33M
check 0 0 "1G" --max-peak 1G
check 1 1 "0G" --max-peak 0G
check 0 0 "ceil(leaked/1024)K" --max-leaked "$(((L + 1023) / 1024))K"
if [ $((L % 1024)) -ne 0 ]; then
	check 1 1 "floor(leaked/1024)K" --max-leaked "$((L / 1024))K"
fi
check 0 0 "peak at the limit in bytes" --max-peak "$P"
check 1 1 "peak one byte over the limit" --max-peak $((P - 1))
check 0 0 "allocations at the limit" --max-allocations "$A"
check 1 1 "allocations above the limit" --max-allocations $((A - 1))
check 1 3 "three limits breached" --max-leaked 0 --max-peak 1M --max-allocations 1
check 1 1 "one of three breached" --max-leaked 1G --max-peak 1M --max-allocations "$A"
check 0 0 "lowercase suffixes" --max-peak 1g --max-leaked 1k
"$MEMANA" check t.zst --max-peak 1M -q >q.out 2>q.err
is "$?" 1 "check -q still fails"
"$MEMANA" check t.zst --max-peak 1G -q >q.out 2>q.err
is "$(cat q.out q.err)" "" "check -q prints nothing when the check passes"

done_testing
