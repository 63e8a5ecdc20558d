#!/bin/bash
# Issue 6, acceptance 3: memory over time. tests/progs/gt_growth.c leaking a
# fixed amount per loop iteration is flagged as growing at the right rate
# (within 5% of the rate the program measured itself; exactly its leak per
# marker interval) with the leaking site named; a flat steady state is
# constant; one large temporary spike is flagged with the spiking site.
# memana check --max-growth fails and passes accordingly.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_growth

# leak: 40 iterations, 64 KiB each
record leak.zst "$PROGS/gt_growth" leak 40 65536
is "$?" 0 "gt_growth leak under memrec exits 0"
rate=$(sed -nE 's/^rate ([0-9]+) per_marker [0-9]+$/\1/p' leak.zst.stdout)
like "$rate" '^[0-9]+$' "the program measured its own leak rate ($rate bytes/s)"
report leak.zst leak.json
is "$?" 0 "memana report --json exits 0"
is "$(jget leak.json 'd["growth"]["verdict"]')" growing "leak: verdict growing"
within "$(jget leak.json 'd["growth"]["heap_bytes_per_s"]')" "$rate" 5 "leak: heap rate within 5% of the true rate"
is "$(jget leak.json 'd["growth"]["heap_bytes_per_marker"]')" 65536 "leak: exactly 64 KiB per marker interval"
is "$(jget leak.json 'd["growth"]["markers"]')" 40 "leak: 40 markers"
is "$(jget leak.json 'd["growth"]["growing_sites"][0]["stack"][0]["function"]')" leak_step "leak: the leaking site is named first"
within "$(jget leak.json 'd["growth"]["growing_sites"][0]["bytes"]')" "$rate" 10 "leak: the site grows at about the heap's rate"
is "$(jget leak.json 'len(d["growth"]["growing_sites"])')" 1 "leak: no other site grows"
"$MEMANA" report leak.zst >leak.txt 2>&1
like "$(grep '^memory over time' leak.txt)" '^memory over time: +growing \(possible leak\): heap \+3\.[0-9]+ MiB/s' "text: growing (possible leak) in the summary"
like "$(cat leak.txt)" 'growing [0-9.]+ MiB/s: leak_step at ' "text: the growing site"

"$MEMANA" check leak.zst --max-growth 1M/s 2>c1.err
is "$?" 1 "check --max-growth 1M/s fails on a 3 MiB/s leak"
like "$(cat c1.err)" 'check failed: heap growing at [0-9]+ bytes/s > limit 1048576 bytes/s' "check names the growth"
"$MEMANA" check leak.zst --max-growth 10M 2>c2.err
is "$?" 0 "check --max-growth 10M passes"

# flat
record flat.zst "$PROGS/gt_growth" flat 40
is "$?" 0 "gt_growth flat under memrec exits 0"
report flat.zst flat.json
is "$(jget flat.json 'd["growth"]["verdict"]')" constant "flat: verdict constant"
is "$(jget flat.json 'd["growth"]["heap_bytes_per_marker"]')" 0 "flat: no change per marker interval"
is "$(jget flat.json '[len(d["growth"]["growing_sites"]), len(d["growth"]["spike_sites"])]')" "[0, 0]" "flat: no growing or spike site"
"$MEMANA" check flat.zst --max-growth 1K/s 2>c3.err
is "$?" 0 "check --max-growth 1K/s passes on the flat run"

# spike
record spike.zst "$PROGS/gt_growth" spike 40
is "$?" 0 "gt_growth spike under memrec exits 0"
report spike.zst spike.json
is "$(jget spike.json 'd["growth"]["verdict"]')" spiking "spike: verdict spiking"
is "$(jget spike.json 'd["growth"]["spike_sites"][0]["stack"][0]["function"]')" spike_alloc "spike: the spiking site is named first"
is "$(jget spike.json 'd["growth"]["spike_bytes"] >= 50 * 1048576')" true "spike: 50 MiB above the typical heap"
"$MEMANA" check spike.zst --max-growth 1K/s 2>c4.err
is "$?" 0 "check --max-growth passes on a spike (not growth)"
done_testing
