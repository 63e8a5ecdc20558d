#!/bin/bash
# Hostile programs and a hostile file system: realloc(p, 0) (a release, not
# a leak — heaptrack's mistake), free(NULL) (nothing), failing huge
# allocations (calls, not live, not leaked), a 10 000-deep recursion (the
# stack is truncated, the program unharmed), and the trace file's creation:
# a symlink planted at the trace path is never followed (O_EXCL|O_NOFOLLOW),
# mode 0600 whatever the umask, no clobbering without --force.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_hostile
need_prog gt_deep
need_prog gt_tiny
command -v sqlite3 >/dev/null || bail "sqlite3 not found"

# ---- realloc(p, 0), free(NULL), malloc(SIZE_MAX / 2) ------------------------
for k in 0 9; do
	record h$k.zst "$PROGS/gt_hostile" $k
	is "$?" 0 "gt_hostile $k: exits 0"
	report h$k.zst h$k.json
	is "$(jget h$k.json 'd["trace"]["complete"]')" true "gt_hostile $k: complete"
done
FN="r0_alloc r0_realloc free_null huge_alloc keep_alloc"
is "$(figs h9.json allocations $FN)" "r0_alloc=4/400 r0_realloc=0/0 free_null=0/0 huge_alloc=2/0 keep_alloc=1/1000" \
	"allocations: realloc(p, 0) is no allocation call; failed calls count, 0 bytes"
is "$(figs h9.json leaked $FN)" "r0_alloc=0/0 r0_realloc=0/0 free_null=0/0 huge_alloc=0/0 keep_alloc=1/1000" \
	"leaked: only keep_alloc (realloc(p, 0) released the blocks; failed calls hold nothing)"
is "$(figs h9.json peak $FN)" "r0_alloc=0/0 r0_realloc=0/0 free_null=0/0 huge_alloc=0/0 keep_alloc=1/1000" \
	"peak: the failed calls are not live"
# temporary (heaptrack's definition): only the last r0_alloc block is released
# with no allocation in between
is "$(figs h9.json temporary r0_alloc)" "r0_alloc=1/100" "temporary: the last realloc(p, 0)-released block"
# the program makes no other allocation (no stdio): totals are exact
is "$(jget h9.json '" ".join(map(str, map(d["totals"].get, ("allocations", "bytes_allocated", "frees", "leaked_allocations", "leaked_bytes", "peak_heap_bytes"))))')" \
	"7 1400 0 1 1000 1000" "totals: 7 calls, 1400 bytes, 0 frees (free(NULL) is none), 1 leak, peak 1000"
"$MEMANA" ingest h9.zst -o h9.db >/dev/null 2>&1
is "$(sqlite3 h9.db "SELECT value FROM meta WHERE key = 'failed_allocations'")" 2 "meta: 2 failed allocations"
is "$(replay_meta h9.zst)" "0 0 0" "no inconsistent, unmatched or late event"
is "$(jget h0.json 'd["totals"]["frees"]') $(jget h0.json 'd["totals"]["allocations"]')" \
	"$(jget h9.json 'd["totals"]["frees"]') $(jget h9.json 'd["totals"]["allocations"]')" "9 free(NULL) calls change no figure"

# ---- recursion depth 10 000 -------------------------------------------------
record deep.zst "$PROGS/gt_deep" 10000
is "$?" 0 "depth 10000: the program exits normally"
report deep.zst deep.json
is "$?" 0 "depth 10000: report exits 0"
is "$(jget deep.json 'd["trace"]["complete"]')" true "depth 10000: complete"
st=$(jget deep.json '" ".join(f["function"] for f in [s for s in d["hotspots"]["leaked"] if s["stack"] and s["stack"][0]["function"] == "deep_leaf"][0]["stack"])')
is "$(printf '%s\n' $st | head -n 2 | tr '\n' ' ')$(printf '%s\n' $st | tail -n 1)" "deep_leaf recurse [truncated]" \
	"depth 10000: deep_leaf <- recurse ... ending with the [truncated] frame"
n=$(printf '%s\n' $st | wc -l)
num "$n" -le 257 "depth 10000: the stack is cut (at most 256 frames + the mark: $n)"
is "$(site deep.json leaked deep_leaf | cut -d' ' -f1,2)" "1 4242" "depth 10000: the allocation itself is exact"

# ---- trace creation: O_EXCL|O_NOFOLLOW, 0600, no clobbering ------------------
echo secret >victim
cp victim victim.orig
ln -s victim link.zst
"$MEMREC" -q -o link.zst -- "$PROGS/gt_tiny" >link.out 2>link.err
diag "planted symlink, no --force: status $?, stderr: $(head -n 2 link.err)"
ok "symlink at the trace path: its target is untouched" cmp -s victim victim.orig
is "$(readlink link.zst)" victim "symlink at the trace path: the link itself is left alone"
like "$(cat link.err)" 'link\.zst' "symlink at the trace path: a message names the trace path"
ln -s newvictim dangling.zst
"$MEMREC" -q -o dangling.zst -- "$PROGS/gt_tiny" >dangling.out 2>dangling.err
[ ! -e newvictim ] && pass "dangling symlink: its target is not created" || fail "dangling symlink: its target is not created"
"$MEMREC" -q --force -o link.zst -- "$PROGS/gt_tiny" >force.out 2>force.err
is "$?" 0 "--force over a symlink: exits 0"
ok "--force over a symlink: its target is still untouched" cmp -s victim victim.orig
if [ -f link.zst ] && [ ! -L link.zst ]; then
	pass "--force: the symlink was replaced by a regular file"
	report link.zst link.json
	is "$(jget link.json 'd["trace"]["complete"]')" true "--force: the new trace is complete"
	is "$(stat -c %a link.zst)" 600 "--force: the new trace has mode 0600"
else
	# refusing is acceptable too, as long as nothing was followed
	skip "--force over a symlink: memrec refused ($(head -n 1 force.err))"
fi

for u in 022 000; do
	(umask $u && "$MEMREC" -q -o mode$u.zst -- "$PROGS/gt_tiny" >/dev/null 2>&1)
	is "$(stat -c %a mode$u.zst 2>&1)" 600 "umask $u: the trace has mode 0600"
done

"$MEMREC" -q -o keep.zst -- "$PROGS/gt_status" lines 3 >/dev/null 2>&1
report keep.zst keep1.json
pid1=$(jget keep1.json 'd["trace"]["pid"]')
sum1=$(cksum <keep.zst)
"$MEMREC" -o keep.zst -- "$PROGS/gt_status" lines 4 >keep2.out 2>keep2.err
diag "existing trace, no --force: status $? (memrec refuses, or runs the program untraced)"
is "$(cksum <keep.zst)" "$sum1" "an existing trace is not clobbered without --force"
like "$(cat keep2.err)" 'keep\.zst' "and the refusal names the file"
"$MEMREC" -q --force -o keep.zst -- "$PROGS/gt_status" lines 4 >/dev/null 2>&1
is "$?" 0 "--force: exits 0"
report keep.zst keep3.json
is "$(site keep3.json allocations lines | cut -d' ' -f1) $(jget keep3.json 'd["trace"]["complete"]')" "4 true" "--force: the trace was replaced by the new run's"
isnt "$(jget keep3.json 'd["trace"]["pid"]')" "$pid1" "--force: the new trace is the new process's"

done_testing
