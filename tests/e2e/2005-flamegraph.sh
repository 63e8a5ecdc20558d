#!/bin/bash
# Issue 5, acceptance 2: memana flamegraph of gt_basic (tests/progs/gt_basic.c)
# sums exactly to the program's totals for every metric, in folded and in
# speedscope form (checked against speedscope's documented file format by
# tests/tools/speedscope_check.py), and names the known call sites with
# their known values.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_basic

record t.zst "$PROGS/gt_basic"
is "$?" 0 "gt_basic under memrec exits 0"
report t.zst r.json
is "$?" 0 "memana report --json exits 0"

# metric -> the report's total of the same measure
declare -A total=(
	[calls]="$(jget r.json 'd["totals"]["allocations"]')"
	[allocated]="$(jget r.json 'd["totals"]["bytes_allocated"]')"
	[peak]="$(jget r.json 'd["totals"]["peak_heap_bytes"]')"
	[leaked]="$(jget r.json 'd["totals"]["leaked_bytes"]')"
	[temporary]="$(jget r.json 'd["totals"]["temporary_allocations"]')"
)
# the ground truth of gt_basic's own totals: the plateau is 32 MiB, 700
# bytes leak, 4096 + 1000 + ... calls (tests/e2e/3000-ground-truth.sh)
num "${total[peak]}" -ge 33554432 "peak total holds the 32 MiB plateau"
is "${total[leaked]}" 700 "leaked total is leak_some's 700 bytes"

sum_folded() { awk '{ n = $NF; s += n } END { printf "%d\n", s }' "$1"; }
for m in calls allocated peak leaked temporary; do
	"$MEMANA" flamegraph t.zst --metric "$m" -o "f.$m" 2>"f.$m.err"
	is "$?" 0 "flamegraph --metric $m exits 0"
	is "$(sum_folded "f.$m")" "${total[$m]}" "folded $m sums to the total ${total[$m]}"
	bad=$(grep -cvE '^[^;]+(;[^;]+)* [0-9]+$' "f.$m")
	is "$bad" 0 "folded $m: every line is 'frame;frame;... N'"
	"$MEMANA" flamegraph t.zst --metric "$m" --format speedscope -o "s.$m.json" 2>"s.$m.err"
	is "$?" 0 "flamegraph --format speedscope --metric $m exits 0"
	"$PY" "$SRC/tests/tools/speedscope_check.py" "s.$m.json" >"s.$m.check"
	ok "speedscope $m follows the file format" test $? = 0 || diag_file "s.$m.check"
	like "$(cat "s.$m.check")" "weight_sum ${total[$m]}\$" "speedscope $m weights sum to ${total[$m]}"
	unit=bytes
	case $m in calls | temporary) unit=none ;; esac
	like "$(cat "s.$m.check")" "unit $unit " "speedscope $m unit is $unit"
done

# known sites, outermost frame first, ending in the function that allocates
like "$(cat f.calls)" '(^|;)main;build_plateau 4096$' "calls: main;build_plateau 4096"
like "$(cat f.calls)" '(^|;)main;churn 1000$' "calls: main;churn 1000"
like "$(cat f.peak)" '(^|;)main;build_plateau 33554432$' "peak: main;build_plateau 33554432"
like "$(cat f.leaked)" '(^|;)main;leak_some 700$' "leaked: main;leak_some 700"
like "$(cat f.temporary)" '(^|;)main;churn 1000$' "temporary: main;churn 1000"
like "$(head -n 1 f.calls)" '^_start;' "stacks start at the outermost frame (_start)"

# a database gives the same output as the trace
"$MEMANA" ingest -q t.zst -o t.db 2>/dev/null
"$MEMANA" flamegraph t.db --metric peak >db.peak
is "$(cmp -s db.peak f.peak && echo same)" same "flamegraph of the database equals that of the trace"

# usage errors
"$MEMANA" flamegraph t.zst --metric bogus >/dev/null 2>err
is "$?" 2 "unknown metric: exit 2"
like "$(cat err)" "error: --metric expects" "unknown metric: message"
"$MEMANA" flamegraph t.zst --format svg >/dev/null 2>err
is "$?" 2 "unknown format: exit 2"
done_testing
