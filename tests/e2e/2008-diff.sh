#!/bin/bash
# Issue 5, acceptance 3: two builds of tests/progs/gt_diff.c (gt_diff and
# gt_diff_v2, whose load_items makes twice the allocations): memana diff
# names load_items first with the right figures, matching the call sites of
# the two executables by backtrace, and memana check --baseline fails on
# the regression and passes without it.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_diff
need_prog gt_diff_v2

record base.zst "$PROGS/gt_diff"
is "$?" 0 "gt_diff under memrec exits 0"
record new.zst "$PROGS/gt_diff_v2"
is "$?" 0 "gt_diff_v2 under memrec exits 0"

"$MEMANA" diff base.zst new.zst --json >d.json 2>d.err
is "$?" 0 "memana diff --json exits 0"
is "$(cat d.err)" "" "diff prints nothing on stderr"
is "$(jget d.json 'd["sites"][0]["stack"][0]["function"]')" load_items "the first changed site is load_items"
is "$(jget d.json 'd["sites"][0]["stack"][1]["function"]')" main "... called from main"
is "$(jget d.json 'd["sites"][0]["base"]')" '{"calls": 1000, "peak_bytes": 64000, "leaked_bytes": 0, "temporary": 1}' \
	"load_items in the base build: 1000 calls, 64000 peak bytes"
is "$(jget d.json 'd["sites"][0]["new"]')" '{"calls": 2000, "peak_bytes": 128000, "leaked_bytes": 0, "temporary": 1}' \
	"load_items in the new build: 2000 calls, 128000 peak bytes"
is "$(jget d.json 'd["sites"][0]["change"]')" '{"calls": 1000, "peak_bytes": 64000, "leaked_bytes": 0, "temporary": 0}' \
	"load_items changed by +1000 calls, +64000 peak bytes"
is "$(jget d.json 'd["changed_sites"]')" 1 "no other site changed (parse_line, remember match across the builds)"
is "$(jget d.json 'd["matched_sites"]')" 3 "three sites matched"
is "$(jget d.json 'd["new"]["totals"]["allocations"] - d["base"]["totals"]["allocations"]')" 1000 "totals: +1000 allocation calls"
is "$(jget d.json 'd["new"]["totals"]["peak_heap_bytes"]')" "$(jget d.json '2 * d["base"]["totals"]["peak_heap_bytes"]')" \
	"totals: the peak doubles"

"$MEMANA" diff base.zst new.zst >d.txt 2>&1
is "$?" 0 "memana diff (text) exits 0"
like "$(sed -n '/^CALL SITES BY CHANGE/,$p' d.txt | sed -n 2,3p | tr '\n' ' ')" \
	'^allocation calls 1000 -> 2000 \(\+1000, \+100\.0%\).* +load_items at .*gt_diff\.c:[0-9]+' \
	"text: load_items first, 1000 -> 2000"

# the reverse direction: a decrease
"$MEMANA" diff new.zst base.zst --json >r.json 2>/dev/null
is "$(jget r.json 'd["sites"][0]["change"]["calls"]')" -1000 "reversed: -1000 calls"

# databases compare like traces
"$MEMANA" ingest -q base.zst -o base.db && "$MEMANA" ingest -q new.zst -o new.db
"$MEMANA" diff base.db new.db --json >db.json 2>/dev/null
is "$(jget db.json 'd["sites"][0]["change"]')" "$(jget d.json 'd["sites"][0]["change"]')" "databases: same change"

# the CI gate
"$MEMANA" check new.zst --baseline base.zst --max-increase 10% >c.out 2>c.err
is "$?" 1 "check --baseline --max-increase 10%: exit 1 on the regression"
like "$(cat c.err)" 'check failed: allocation calls 2505 > baseline 1505 \+ 10%' "check names the calls regression"
like "$(cat c.err)" 'check failed: peak heap bytes 128[0-9]{3} > baseline 64[0-9]{3} \+ 10% \(\+100\.0%\)' "check names the peak regression"
like "$(sed -n '2,3p' c.err | tr '\n' ' ')" '\+1000 \(1000 -> 2000\) from: +load_items' "check names load_items as the cause"
"$MEMANA" check new.zst --baseline base.zst --max-increase 200% >/dev/null 2>c2.err
is "$?" 0 "check --max-increase 200%: passes"
"$MEMANA" check base.zst --baseline base.db >/dev/null 2>c3.err
is "$?" 0 "check of a build against itself (default 0%): passes"
"$MEMANA" check base.zst --baseline new.zst -q >/dev/null 2>c4.err
is "$?" 0 "a decrease passes"
is "$(cat c4.err)" "" "-q: nothing printed"
"$MEMANA" check new.zst --max-increase 10% >/dev/null 2>c5.err
is "$?" 2 "--max-increase without --baseline: usage error"
"$MEMANA" check new.zst --baseline base.zst --max-increase ten >/dev/null 2>c6.err
is "$?" 2 "--max-increase ten: usage error"
"$MEMANA" diff base.zst >/dev/null 2>c7.err
is "$?" 2 "diff with one operand: usage error"
"$MEMANA" diff base.zst missing.zst >/dev/null 2>c8.err
is "$?" 3 "diff with a missing file: exit 3"
like "$(cat c8.err)" "cannot open 'missing.zst'" "missing file named"
done_testing
