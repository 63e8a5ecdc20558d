#!/bin/bash
# Issue 6, acceptance 1 and 2: the per-phase figures of tests/progs/gt_phases.c
# (three phases of known allocations, one nested, one marker) are exact in
# memana report --json, --phases and the database; and memrec --mark-signal
# on tests/progs/gt_marksig.c (SIGUSR2 raised three times between known
# allocations) gives three markers, in order, each with the live heap the
# program had at that moment.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_phases
need_prog gt_marksig

record t.zst "$PROGS/gt_phases"
is "$?" 0 "gt_phases under memrec exits 0"
report t.zst r.json
is "$?" 0 "memana report --json exits 0"

# id name parent depth calls bytes peak left_blocks left_bytes heap_end
ph() { jget r.json "' '.join('%s %s %d %d %d %d %d %d %d %d' % (p['id'], p['name'], p['parent'], p['depth'], p['alloc_calls'], p['alloc_bytes'], p['peak_heap_bytes'], p['left_blocks'], p['left_bytes'], p['heap_end']) for p in d['phases'] if p['name'] == '$1')"; }
is "$(ph parse)" "1 parse 0 0 1000 64000 64000 100 6400 6400" "parse: 1000 calls, 64000 bytes, peak 64000, left 100 blocks / 6400 bytes"
is "$(ph index)" "2 index 0 0 256 1048576 1054976 56 229376 235776" "index: 256 calls, 1 MiB, peak 1054976, left 56 / 229376"
is "$(ph serve)" "3 serve 0 0 510 17280 237056 0 0 0" "serve: 510 calls (warmup included), 17280 bytes, peak 237056, nothing left"
is "$(ph serve/warmup)" "4 serve/warmup 3 1 10 1280 237056 0 0 235776" "serve/warmup nested in serve: 10 calls, 1280 bytes, peak 237056"
is "$(jget r.json "[p['ended'] for p in d['phases']]")" "[true, true, true, true]" "every phase ended"
# the sites that made each phase's peak
is "$(jget r.json "' '.join('%s:%s:%d' % (p['name'], p['peak_sites'][0]['stack'][0]['function'], p['peak_sites'][0]['bytes']) for p in d['phases'])")" \
	"parse:parse_input:64000 index:build_index:1048576 serve:warm_up:1280 serve/warmup:warm_up:1280" \
	"each phase's peak is named after the site that made it, with its growth"
# durations: each phase sleeps 40 ms (serve twice); RSS sampled
is "$(jget r.json "all(p['duration_ms'] >= 30 for p in d['phases'])")" true "every phase lasts at least about its 40 ms sleep"
is "$(jget r.json "all(p['rss_begin'] > 0 and p['rss_end'] > 0 and p['rss_peak'] >= max(p['rss_begin'], p['rss_end']) for p in d['phases'])")" true \
	"RSS at start, end and peak sampled, peak >= both"
is "$(jget r.json "[(m['name'], m['heap_bytes']) for m in d['markers']]")" '[["checkpoint", 235776]]' "marker checkpoint with the heap at that moment"
is "$(jget r.json "d['markers'][0]['time_ms'] >= [p for p in d['phases'] if p['name'] == 'index'][0]['end_ms']")" true "the marker comes after index ends"

"$MEMANA" report --phases t.zst >p.txt 2>p.err
is "$?" 0 "memana report --phases exits 0"
like "$(grep '^parse ' p.txt)" '^parse  [0-9]+\.[0-9]{2} s  1,000 allocs  peak heap 62\.50 KiB  RSS [0-9.]+ → [0-9.]+ MiB \(Δ[+-][0-9.]+, peak [0-9.]+\)$' \
	"one line per phase: duration, allocs, peak heap, RSS start → end (Δ, peak)"
like "$(grep -A1 '^parse ' p.txt | tail -n 1)" 'allocated 62\.50 KiB, left behind 6\.25 KiB in 100 blocks' "parse: what it left behind"
like "$(cat p.txt)" '^  serve/warmup  ' "nested phase indented"
like "$(sed -n '/^MARKERS/,$p' p.txt)" 'checkpoint +at +[0-9.]+ ms  heap 230\.25 KiB' "markers section"

"$MEMANA" ingest -q t.zst -o t.db
is "$(sqlite3 t.db "SELECT group_concat(name || ':' || alloc_calls || ':' || left_bytes, ' ') FROM (SELECT * FROM phases ORDER BY id)")" \
	"parse:1000:6400 index:256:229376 serve:510:0 serve/warmup:10:0" "database: phases table"
is "$(sqlite3 t.db "SELECT count(*) FROM phase_sites")" 4 "database: phase_sites"
is "$(sqlite3 t.db "SELECT name || ':' || heap_bytes FROM markers")" "checkpoint:235776" "database: markers"

# the same binary without memrec
out=$("$PROGS/gt_phases" 2>&1)
is "$?:$out" "0:" "gt_phases runs without memrec: exit 0, no output"

# --mark-signal: three markers in order, at the heap of their moment
"$MEMREC" -q --mark-signal SIGUSR2 -o s.zst -- "$PROGS/gt_marksig" >s.out 2>s.err
is "$?" 0 "gt_marksig under memrec --mark-signal SIGUSR2 exits 0 (its own handler ran 3 times)"
report s.zst s.json
is "$(jget s.json "[m['name'] for m in d['markers']]")" '["SIGUSR2 #1", "SIGUSR2 #2", "SIGUSR2 #3"]' "three markers, named in order"
is "$(jget s.json "[m['heap_bytes'] for m in d['markers']]")" "[1000, 5000, 14000]" \
	"each at the live heap of its moment: 10 x 100, + 20 x 200, + 30 x 300"
is "$(jget s.json "all(b['time_ms'] - a['time_ms'] >= 20 for a, b in zip(d['markers'], d['markers'][1:]))")" true \
	"30 ms apart on the timeline (tick resolution)"
is "$(jget s.json "all(a['seq'] < b['seq'] for a, b in zip(d['markers'], d['markers'][1:]))")" true "in seq order"
done_testing
