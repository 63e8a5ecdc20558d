#!/bin/bash
# Acceptance 3 (threads): two threads allocate and free each other's memory
# under pressure; addresses freed on one thread come back from malloc on the
# other. The replay must not confuse them: exact per-site calls and bytes,
# exactly the 5 intended leaks, no false leak. Repeated to catch races.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_threads
need_prog gt_manythreads

N=200000
# bytes of N blocks of sizes 16 + (i % 8) * 16
B=$("$PY" -c "print(sum(16 + (i % 8) * 16 for i in range($N)))")
RUNS=${MEMREC_THREADS_RUNS:-3}

for run in $(seq 1 "$RUNS"); do
	record t$run.zst "$PROGS/gt_threads" "$N"
	is "$?" 0 "run $run: gt_threads under memrec exits 0"
	out=$(cat t$run.zst.stdout)
	like "$out" "^reuse [0-9]+ of $N\$" "run $run: program finished the exchange"
	reuse=$(printf '%s\n' "$out" | sed -E 's/^reuse ([0-9]+) of .*/\1/')
	num "${reuse:-0}" -gt 0 "run $run: addresses were reused across threads ($reuse times)"
	report t$run.zst r$run.json
	is "$?" 0 "run $run: report exits 0"
	is "$(jget r$run.json 'd["trace"]["complete"]')" true "run $run: trace complete"
	is "$(site r$run.json allocations a_alloc | cut -d' ' -f1,2)" "$N $B" "run $run: a_alloc $N calls, $B bytes"
	is "$(site r$run.json allocations b_alloc | cut -d' ' -f1,2)" "$N $B" "run $run: b_alloc $N calls, $B bytes"
	is "$(site r$run.json allocations leak_from_thread | cut -d' ' -f1,2)" "5 240" "run $run: leak_from_thread 5 calls, 240 bytes"
	is "$(site r$run.json leaked leak_from_thread)" "5 240 1" "run $run: leaked exactly leak_from_thread's 5 blocks, 240 bytes"
	# no false leak: no other leaked site allocated by this program's code
	false_leaks=$("$PY" - r$run.json <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
for s in d["hotspots"]["leaked"]:
    st = s["stack"]
    if not st:
        continue
    f0 = st[0]
    mine = f0["function"] in ("a_alloc", "b_alloc", "a_free", "b_free", "thread_a",
                              "thread_b", "main") or f0.get("module", "").endswith("/gt_threads")
    if mine and f0["function"] != "leak_from_thread":
        bad.append("%s:%d/%d" % (f0["function"], s["calls"], s["bytes"]))
print(" ".join(bad))
EOP
)
	is "$false_leaks" "" "run $run: no false leak in the exchanging functions"
	# the exchange leaves nothing live: totals.leaked minus the 5 blocks is
	# only what libc itself keeps (thread stacks' TLS), a handful of blocks
	lk=$(jget r$run.json 'd["totals"]["leaked_allocations"]')
	num "$lk" -ge 5 "run $run: totals.leaked_allocations >= 5"
	num "$lk" -le 20 "run $run: totals.leaked_allocations is a handful, not thousands ($lk)"
	frees=$(jget r$run.json 'd["totals"]["frees"]')
	num "$frees" -ge $((2 * N)) "run $run: at least the 2N frees recorded"
	# The replay's own consistency counters (docs/schema.md): an alloc at a
	# live address or a free of an unknown one means streams were merged in
	# the wrong order; counts alone cannot show that.
	"$MEMANA" ingest t$run.zst -o t$run.db >/dev/null 2>t$run.db.err
	is "$?" 0 "run $run: ingest exits 0"
	meta() { sqlite3 t$run.db "SELECT value FROM meta WHERE key = '$1'"; }
	is "$(meta inconsistent)" 0 "run $run: no allocation at a live address (meta.inconsistent)"
	is "$(meta unmatched_frees)" 0 "run $run: no free of an unknown address (meta.unmatched_frees)"
	is "$(meta late_events)" 0 "run $run: no event below an earlier watermark (meta.late_events)"
	is "$(sqlite3 t$run.db "SELECT group_concat(allocations, ' ') FROM (SELECT allocations FROM threads WHERE name = 'gt_threads' AND allocations >= $N ORDER BY allocations)")" \
		"$N $((N + 5))" "run $run: per-thread allocations: B $N, A $N + 5"
	# The recorder's stamps, checked without memana's replay: replaying the
	# dump in seq order must never see an address allocated twice or an
	# unknown address freed; the file order alone would (diagnostic).
	"$MEMANA" dump t$run.zst >t$run.dump 2>/dev/null
	order=$("$PY" - t$run.dump <<'EOP'
import re, sys
ev = []
pat = re.compile(r"@\d+ (alloc|free) stream=(\d+) seq=(\d+) kind=\S+ (?:node=\d+ size=\d+ )?addr=(0x[0-9a-f]+)")
for line in open(sys.argv[1]):
    m = pat.match(line)
    if m:
        ev.append((m.group(1), int(m.group(3)), m.group(4)))
def replay(evs):
    live, bad = set(), 0
    for t, q, a in evs:
        if a == "0x0":
            continue
        if t == "alloc":
            bad += a in live
            live.add(a)
        else:
            bad += a not in live
            live.discard(a)
    return bad, len(live)
f = replay(ev)
s = replay(sorted(ev, key=lambda e: e[1]))
seqs = [e[1] for e in ev]
print(s[0], s[1], len(seqs) - len(set(seqs)), f[0], len(ev))
EOP
)
	read -r seq_bad seq_live dup_seq file_bad n_ev <<<"$order"
	is "$seq_bad" 0 "run $run: dump replayed in seq order is consistent"
	is "$dup_seq" 0 "run $run: every event has its own seq"
	is "$seq_live" "$lk" "run $run: blocks live at the end of the seq-order replay = leaked_allocations"
	diag "run $run: $n_ev events; replaying in file order instead would see $file_bad inconsistencies"
	if [ "$T_FAILED" -gt 0 ]; then
		diag "run $run leaked sites:" "$(sites_summary r$run.json leaked)"
		diag "run $run allocation sites:" "$(sites_summary r$run.json allocations | head -8)"
		diag "run $run totals: $(jget r$run.json 'd["totals"]')"
	fi
done

# Many short-lived threads (8 at a time), each leaking 1 of its 10 blocks and
# freeing one in a TLS destructor as it exits: the events of exited threads
# are all there, the destructor's free included.
T=300
record many.zst "$PROGS/gt_manythreads" $T
is "$?" 0 "gt_manythreads $T exits 0"
report many.zst many.json
is "$(jget many.json 'd["trace"]["complete"]')" true "many threads: trace complete"
is "$(site many.json allocations thread_work | cut -d' ' -f1,2)" "$((10 * T)) $((1000 * T))" "many threads: thread_work $((10 * T)) calls"
is "$(site many.json leaked thread_work | cut -d' ' -f1,2)" "$T $((100 * T))" "many threads: exactly one leaked block per thread (the TLS destructor's free recorded)"
"$MEMANA" ingest many.zst -o many.db >/dev/null 2>&1
is "$(sqlite3 many.db "SELECT group_concat(value, ' ') FROM (SELECT value FROM meta WHERE key IN ('inconsistent', 'unmatched_frees', 'late_events') ORDER BY key)")" \
	"0 0 0" "many threads: no inconsistent, unmatched or late event"
num "$(sqlite3 many.db "SELECT count(*) FROM threads")" -ge $((T + 1)) "many threads: one stream per thread"

done_testing
