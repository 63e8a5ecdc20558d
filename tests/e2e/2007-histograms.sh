#!/bin/bash
# Issue 5, acceptance 5: the histograms of tests/progs/gt_hist.c (sizes,
# lifetimes in ms and in allocations between) match its known distribution,
# for the whole program and per call site, in the JSON report, the text
# report and the database.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_hist

record t.zst "$PROGS/gt_hist"
is "$?" 0 "gt_hist under memrec exits 0"
report t.zst r.json
is "$?" 0 "memana report --json exits 0"

# whole program: "lo-hi:count" per bucket
hist() { # KIND
	jget r.json "' '.join('%d-%d:%d' % (b['lo'], b['hi'], b['count']) for b in d['histograms']['$1'])"
}
is "$(hist sizes)" "1-1:10 8-15:88 16-31:20 32-63:12 64-127:30 256-511:4 512-1023:2 2048-4095:3 4096-8191:40" \
	"sizes: the program's 209 calls by power-of-two bucket"
is "$(jget r.json "sum(b['bytes'] for b in d['histograms']['sizes'])")" "$(jget r.json 'd["totals"]["bytes_allocated"]')" \
	"sizes: bytes sum to bytes allocated"
is "$(hist lifetimes_allocs)" "0-0:194 2-3:8 16-31:4" "lifetimes in allocations: 194 x 0, 8 x 3, 4 x 16"
is "$(jget r.json "sum(b['count'] for b in d['histograms']['lifetimes_allocs'] if b['lo'] == 0)")" \
	"$(jget r.json 'd["totals"]["temporary_allocations"]')" "lifetime 0 allocations between = temporary allocations"
is "$(jget r.json "[d['histograms']['never_freed']['count'], d['histograms']['never_freed']['bytes']]")" "[3, 9000]" \
	"never freed: keep's 3 blocks, 9000 bytes"
# ms: the sleepers in their buckets, everything else within a few ticks
is "$(jget r.json "sum(b['count'] for b in d['histograms']['lifetimes_ms'] if b['lo'] == 64)")" 4 "lifetimes: 4 blocks of 90 ms in [64, 128) ms"
is "$(jget r.json "sum(b['count'] for b in d['histograms']['lifetimes_ms'] if b['lo'] == 256)")" 2 "lifetimes: 2 blocks of 300 ms in [256, 512) ms"
is "$(jget r.json "sum(b['count'] for b in d['histograms']['lifetimes_ms'] if b['hi'] < 64)")" 200 "lifetimes: the 200 others under 64 ms (freed at once; tick resolution)"

# per call site: the site whose caller of xmalloc (frame 1) is FUNC
site_hist() { # FUNC KIND [FRAME2]: buckets of the site(s) whose stack[1] is FUNC
	"$PY" - r.json "$1" "$2" "${3:-}" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
fn, kind, outer = sys.argv[2], sys.argv[3], sys.argv[4]
out = []
for s in d["hotspots"]["allocations"]:
    st = [f["function"] for f in s["stack"]]
    if len(st) > 1 and st[0] == "xmalloc" and st[1] == fn and (not outer or (len(st) > 2 and st[2] == outer)):
        out.append(" ".join("%d-%d:%d" % (b["lo"], b["hi"], b["count"]) for b in s[kind]))
print(" / ".join(out) if out else "<none>")
EOP
}
is "$(site_hist sizes_1 sizes)" "1-1:10" "site sizes_1: 10 x 1 B"
is "$(site_hist sizes_24 sizes)" "16-31:20" "site sizes_24: 20 in [16, 32)"
is "$(site_hist sizes_100 sizes)" "64-127:30" "site sizes_100: 30 in [64, 128)"
is "$(site_hist sizes_5000 sizes)" "4096-8191:40" "site sizes_5000: 40 in [4 KiB, 8 KiB)"
is "$(site_hist gap_3 lifetimes_allocs)" "2-3:8" "site gap_3: 8 blocks with 3 allocations between"
is "$(site_hist gap_16 lifetimes_allocs)" "16-31:4" "site gap_16: 4 blocks with 16 allocations between"
is "$(site_hist filler lifetimes_allocs gap_3)" "0-0:24" "site filler under gap_3: 24 temporary"
is "$(site_hist filler lifetimes_allocs gap_16)" "0-0:64" "site filler under gap_16: 64 temporary"
is "$(site_hist sleep_90 lifetimes_ms)" "64-127:4" "site sleep_90: 4 blocks in [64, 128) ms"
is "$(site_hist sleep_300 lifetimes_ms)" "256-511:2" "site sleep_300: 2 blocks in [256, 512) ms"
is "$(site_hist sleep_300 sizes)" "512-1023:2" "site sleep_300: 2 x 600 B in [512 B, 1 KiB)"
is "$(site_hist keep lifetimes_ms)" "" "site keep: never freed, no lifetimes"

# the text report shows them
"$MEMANA" report t.zst >r.txt 2>&1
like "$(cat r.txt)" 'ALLOCATION SIZES' "text report: size histogram"
like "$(grep -A12 'ALLOCATION SIZES' r.txt)" '\[4 KiB, 8 KiB\) +40 +195.31 KiB' "text report: 40 calls in [4 KiB, 8 KiB)"
like "$(grep -A6 '^LIFETIMES IN ALLOCATIONS' r.txt)" 'never freed +3 +8.79 KiB' "text report: never freed line"
like "$(cat r.txt)" 'sizes: \[4 KiB, 8 KiB\) x40' "text report: per-site sizes line"

# the database holds the same
"$MEMANA" ingest -q t.zst -o t.db 2>/dev/null
is "$(sqlite3 t.db "SELECT group_concat(lo || '-' || hi || ':' || count, ' ') FROM (SELECT * FROM histogram WHERE kind = 'size' ORDER BY bucket)")" \
	"$(hist sizes)" "database: histogram table = report"
is "$(sqlite3 t.db "SELECT sum(count) FROM site_histogram WHERE kind = 'lifetime_allocs' AND lo = 2")" 8 "database: site_histogram rows"
done_testing
