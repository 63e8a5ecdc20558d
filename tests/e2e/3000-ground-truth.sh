#!/bin/bash
# Acceptance 2: gt_basic allocates known counts and bytes from named
# functions (see tests/progs/gt_basic.c); memana report --json must give
# exactly those figures per call site, and the peak within 1% of the 32 MiB
# plateau, attributed to build_plateau.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_basic

record t.zst "$PROGS/gt_basic"
is "$?" 0 "gt_basic under memrec exits 0"
is "$(cat t.zst.stdout t.zst.stderr)" "" "gt_basic prints nothing"
report t.zst r.json
is "$?" 0 "memana report --json exits 0"
is "$(cat r.json.stderr)" "" "report prints nothing on stderr"
is "$(jget r.json 'd["trace"]["complete"]')" true "trace is complete"
like "$(jget r.json 'd["trace"]["command"]')" 'gt_basic' "command names gt_basic"

# leaks: exactly leak_some's 7 x 100 bytes among the program's own sites
is "$(site r.json leaked leak_some)" "7 700 1" "leaked: leak_some 7 blocks, 700 bytes, one site"
own_leaks=$("$PY" - r.json <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
own = {"leak_some", "build_plateau", "churn", "use_calloc", "realloc_chain",
       "realloc_null_zero", "use_reallocarray", "use_posix_memalign",
       "use_aligned_alloc", "use_memalign", "use_valloc", "use_pvalloc", "main",
       "edge_cases", "bad_memalign"}
print(" ".join(sorted("%s:%d" % (s["stack"][0]["function"], s["calls"])
      for s in d["hotspots"]["leaked"]
      if s["stack"] and s["stack"][0]["function"] in own)))
EOP
)
is "$own_leaks" "leak_some:7" "no other leak in gt_basic's functions (realloc(p, 0) frees)"
num "$(jget r.json 'd["totals"]["leaked_bytes"]')" -ge 700 "totals: leaked bytes include the 700"
num "$(jget r.json 'd["totals"]["leaked_allocations"]')" -ge 7 "totals: leaked count includes the 7"

# allocation calls and bytes per function (realloc: one call of its new size)
check_alloc() { # FUNC CALLS BYTES
	is "$(site r.json allocations "$1" | cut -d' ' -f1,2)" "$2 $3" "allocations: $1 $2 calls, $3 bytes"
}
check_alloc leak_some 7 700
check_alloc build_plateau 4096 33554432
check_alloc churn 1000 64000
check_alloc use_calloc 3 720
check_alloc realloc_chain 6 1008
check_alloc realloc_null_zero 1 40
check_alloc use_reallocarray 2 360
check_alloc use_posix_memalign 4 4000
check_alloc use_aligned_alloc 5 5120
check_alloc use_memalign 6 1800
check_alloc use_valloc 2 10000
check_alloc use_pvalloc 3 24576
# malloc(0) and two failing calls: calls made, no bytes (failed calls count)
check_alloc edge_cases 3 0

# temporary: churn's 1000 back-to-back malloc/free pairs
is "$(site r.json temporary churn | cut -d' ' -f1,2)" "1000 64000" "temporary: churn 1000 calls, 64000 bytes"
# the others, by the definition (docs/schema.md: released with no other
# allocation by the thread in between; as in heaptrack, a block released by
# realloc counts like one released by free): build_plateau's last block is
# freed before any other allocation, so 1; every step of a realloc chain is
check_temp() { # FUNC CALLS BYTES
	is "$(site r.json temporary "$1" | cut -d' ' -f1,2)" "$2 $3" "temporary: $1 $2 calls, $3 bytes"
}
check_temp build_plateau 1 8192
check_temp leak_some 0 0
check_temp use_calloc 3 720
check_temp realloc_chain 6 1008
check_temp realloc_null_zero 1 40
check_temp use_reallocarray 2 360
check_temp use_posix_memalign 4 4000
check_temp use_aligned_alloc 5 5120
check_temp use_memalign 6 1800
check_temp use_valloc 2 10000
check_temp use_pvalloc 3 24576
check_temp edge_cases 1 0
num "$(jget r.json 'd["totals"]["temporary_allocations"]')" -ge 1000 "totals: temporary >= 1000"

# the peak: 32 MiB plateau (+ 700 leaked bytes), build_plateau on top
peak=$(jget r.json 'd["totals"]["peak_heap_bytes"]')
within "$peak" 33554432 1 "peak heap within 1% of 32 MiB"
num "$peak" -ge 33555132 "peak includes the plateau and leak_some's 700 bytes"
is "$(first_fn r.json peak)" build_plateau "top peak site is build_plateau"
is "$(site r.json peak build_plateau | cut -d' ' -f1,2)" "4096 33554432" "peak: build_plateau holds 4096 blocks, 32 MiB"
is "$(site r.json peak leak_some | cut -d' ' -f1,2)" "7 700" "peak: leak_some's blocks are live at the peak"
is "$(site r.json peak churn | cut -d' ' -f1)" 0 "peak: churn holds nothing at the peak"
# RSS is sampled every 10 ms: whether a sample falls on the plateau is timing
num "$(jget r.json 'd["totals"]["peak_rss_bytes"]')" -gt 0 "peak RSS was sampled"
pt=$(jget r.json 'd["totals"]["peak_time_ms"]')
dur=$(jget r.json 'd["trace"]["duration_ms"]')
"$PY" -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if 0 <= a <= b else 1)' "$pt" "$dur" 2>/dev/null &&
	pass "peak time within the run (0 <= $pt <= $dur ms)" || fail "peak time within the run (0 <= '$pt' <= '$dur' ms)"

# totals are consistent with the sites
tot=$(jget r.json 'd["totals"]["allocations"]')
num "$tot" -ge $((7 + 4096 + 1000 + 3 + 6 + 1 + 2 + 4 + 5 + 6 + 2 + 3 + 3)) "totals: allocations cover every known call"
sum=$(jget r.json 'sum(s["calls"] for s in d["hotspots"]["allocations"])')
is "$sum" "$tot" "totals.allocations = sum over allocation sites (--top 1000)"
sumb=$(jget r.json 'sum(s["bytes"] for s in d["hotspots"]["allocations"])')
is "$sumb" "$(jget r.json 'd["totals"]["bytes_allocated"]')" "totals.bytes_allocated = sum over sites"
suml=$(jget r.json 'sum(s["bytes"] for s in d["hotspots"]["leaked"])')
is "$suml" "$(jget r.json 'd["totals"]["leaked_bytes"]')" "totals.leaked_bytes = sum over leaked sites"
frees=$(jget r.json 'd["totals"]["frees"]')
# frees: every block but the 7 leaked ones; realloc's release is not a free
# (nor is realloc(p, 0)'s); free(NULL) is no free, malloc(0)'s block is
known_frees=$((4096 + 1000 + 3 + 1 + 1 + 4 + 5 + 6 + 2 + 3 + 1))
num "$frees" -ge "$known_frees" "totals: frees cover the program's $known_frees frees"
num "$frees" -lt "$tot" "totals: fewer frees than allocations"

# stacks: symbolized, this program's file and lines, main below
frame=$(jget r.json '[s["stack"] for s in d["hotspots"]["leaked"] if s["stack"] and s["stack"][0]["function"] == "leak_some"][0]')
like "$(jget r.json '[s["stack"][0]["file"] for s in d["hotspots"]["leaked"] if s["stack"] and s["stack"][0]["function"] == "leak_some"][0]')" 'gt_basic\.c$' "leak_some frame names gt_basic.c"
num "$(jget r.json '[s["stack"][0]["line"] for s in d["hotspots"]["leaked"] if s["stack"] and s["stack"][0]["function"] == "leak_some"][0]')" -gt 0 "leak_some frame has a line"
like "$(jget r.json '[s["stack"][1]["function"] for s in d["hotspots"]["leaked"] if s["stack"] and s["stack"][0]["function"] == "leak_some"][0]')" '^main$' "leak_some's caller is main"
like "$(jget r.json '[s["stack"][0]["module"] for s in d["hotspots"]["leaked"] if s["stack"] and s["stack"][0]["function"] == "leak_some"][0]')" 'gt_basic$' "leak_some frame's module is gt_basic"
unlike "$frame" 'memrec|rec_|unw_|"malloc"' "no recorder, libunwind or malloc frame in the stack"

# the line of leak_some's malloc call
want_line=$(grep -n 'leaked\[i\] = malloc(100)' "$SRC/tests/progs/gt_basic.c" | cut -d: -f1)
is "$(jget r.json '[s["stack"][0]["line"] for s in d["hotspots"]["leaked"] if s["stack"] and s["stack"][0]["function"] == "leak_some"][0]')" "$want_line" "leak_some frame's line is the malloc call"

# the text report names the same figures
"$MEMANA" report t.zst >r.txt 2>r.txt.stderr
is "$?" 0 "text report exits 0"
ok "text report names leak_some" grep -q leak_some r.txt
ok "text report names build_plateau" grep -q build_plateau r.txt

if [ "$T_FAILED" -gt 0 ]; then
	diag "allocation sites:" "$(sites_summary r.json allocations)"
	diag "leaked sites:" "$(sites_summary r.json leaked)"
	diag "peak sites:" "$(sites_summary r.json peak | head -5)"
	diag "totals: $(jget r.json 'd["totals"]')"
fi
done_testing
