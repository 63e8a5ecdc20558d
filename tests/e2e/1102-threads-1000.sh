#!/bin/bash
# Acceptance 3 (threads): 1000 threads in waves of 50, a third of them
# detached, each freeing another thread's blocks (often after that thread has
# exited), frees in TLS destructors during thread teardown: exact figures and
# leak count, a complete and consistent trace, and the recorder's memory
# bounded — it does not grow with the number of threads.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_threads1000
command -v sqlite3 >/dev/null || bail "sqlite3 not found"

G="$PROGS/gt_threads1000"
# kB value of a /proc/self/status line written by gt_threads1000
kb() { sed -nE "s/^$2:[[:space:]]+([0-9]+) kB\$/\1/p" "$1"; }

GT_HWM_FILE=$T_DIR/plain.hwm "$G" 1000 >plain.out 2>&1
is "$?" 0 "untraced run exits 0"
GT_HWM_FILE=$T_DIR/t.hwm timeout -k 5 120 "$MEMREC" -q -o t.zst -- "$G" 1000 >t.out 2>t.err
is "$?" 0 "traced run exits 0"
is "$(cat t.out)" "threads 1000 leaked 100" "the program ran all 1000 threads"
report t.zst t.json
is "$?" 0 "report exits 0"
is "$(jget t.json 'd["trace"]["complete"]')" true "trace complete"
# thr_alloc: 10 x 64 per thread; tls_alloc: joinable threads (g % 3 != 0)
is "$(figs t.json allocations thr_alloc tls_alloc)" "thr_alloc=10000/640000 tls_alloc=666/31968" \
	"allocations: thr_alloc 10000 calls, tls_alloc 666 (one per joinable thread)"
is "$(figs t.json leaked thr_alloc tls_alloc)" "thr_alloc=100/6400 tls_alloc=0/0" \
	"leaked: exactly the 100 kept blocks; the TLS destructors' frees are recorded"
is "$(site t.json allocations tls_free | cut -d' ' -f1) $(site t.json allocations thr_free | cut -d' ' -f1)" "0 0" \
	"no allocation attributed to the freeing functions"
frees=$(jget t.json 'd["totals"]["frees"]')
num "$frees" -ge $((9900 + 666)) "frees: at least the 9900 cross-thread frees and 666 TLS frees ($frees)"
is "$(replay_meta t.zst)" "0 0 0" "no inconsistent, unmatched or late event"

# Memory: the traced run's peak RSS over the untraced one's (rings, trie,
# buffers), and its growth from 300 to 3000 threads (per-thread state that
# is never given back would grow RSS and the address space with the count).
hu=$(kb plain.hwm VmHWM)
ht=$(kb t.hwm VmHWM)
diag "VmHWM: untraced $hu kB, traced $ht kB, recorder overhead $((ht - hu)) kB (bound 32 MiB)"
num "$((ht - hu))" -lt $((32 * 1024)) "recorder's extra peak RSS with 1000 threads < 32 MiB ($((ht - hu)) kB)"
for n in 300 3000; do
	# one malloc arena: arenas (64 MiB of address space each) come and go
	# with thread contention and would drown the figure
	MALLOC_ARENA_MAX=1 GT_HWM_FILE=$T_DIR/g$n.hwm timeout -k 5 120 "$MEMREC" -q -o g$n.zst -- "$G" $n >g$n.out 2>g$n.err
	is "$?" 0 "traced run with $n threads exits 0"
done
report g3000.zst g3000.json
is "$(figs g3000.json leaked thr_alloc)" \
	"thr_alloc=300/19200" "3000 threads: exactly 300 leaked blocks"
dh=$(($(kb g3000.hwm VmHWM) - $(kb g300.hwm VmHWM)))
dp=$(($(kb g3000.hwm VmPeak) - $(kb g300.hwm VmPeak)))
diag "300 -> 3000 threads traced: VmHWM +$dh kB (bound 8 MiB), VmPeak +$dp kB (bound 256 MiB)"
num "$dh" -lt $((8 * 1024)) "peak RSS grows < 8 MiB from 300 to 3000 threads ($dh kB)"
num "$dp" -lt $((256 * 1024)) "address space grows < 256 MiB from 300 to 3000 threads ($dp kB; a 1 MiB ring per thread kept would be 2.7 GiB)"

done_testing
