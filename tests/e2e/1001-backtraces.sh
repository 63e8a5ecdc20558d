#!/bin/bash
# Backtraces as the recorder captures them: exact frames for a known call
# chain (no recorder frame, no skipped or doubled frame), the depth limit
# (default 128, MEMREC_MAX_DEPTH) keeping the innermost frames plus a
# "[truncated]" mark; and the launcher finding libmemrec.so at ../lib when
# the tools are moved (installed), or through MEMREC_LIB.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_deep

# stack FILE: the leaked deep_leaf site's functions, innermost first, one line
stack() {
	jget "$1" '" ".join(f["function"] for f in [s for s in d["hotspots"]["leaked"] if s["stack"] and s["stack"][0]["function"] == "deep_leaf"][0]["stack"])'
}
count() { # WORD LINE
	printf '%s\n' $2 | grep -cx -- "$1"
}

record d10.zst "$PROGS/gt_deep" 10
is "$?" 0 "gt_deep 10 exits 0"
report d10.zst d10.json
s=$(stack d10.json)
like "$s" '^deep_leaf( recurse){11} main( |$)' "depth 10: deep_leaf, recurse x 11, main"
is "$(count '\[truncated\]' "$s")" 0 "depth 10: no truncation mark"
like "$s" '_start$' "depth 10: the outermost frame is _start"

record d500.zst "$PROGS/gt_deep" 500
is "$?" 0 "gt_deep 500 exits 0"
report d500.zst d500.json
s=$(stack d500.json)
is "$(printf '%s\n' $s | head -n 1)" deep_leaf "depth 500: innermost frame deep_leaf"
is "$(count recurse "$s")" 127 "depth 500: default limit 128 frames = deep_leaf + 127 recurse"
is "$(printf '%s\n' $s | tail -n 1)" "[truncated]" "depth 500: outermost frame is the truncation mark"
is "$(count main "$s")" 0 "depth 500: main is cut off"

MEMREC_MAX_DEPTH=16 "$MEMREC" -q -o d16.zst "$PROGS/gt_deep" 500 >/dev/null 2>&1
is "$?" 0 "MEMREC_MAX_DEPTH=16 gt_deep 500 exits 0"
report d16.zst d16.json
s=$(stack d16.json)
is "$(count recurse "$s") $(printf '%s\n' $s | tail -n 1)" "15 [truncated]" "MEMREC_MAX_DEPTH=16: deep_leaf + 15 recurse + the mark"

# the launcher finds ../lib/libmemrec.so next to itself (as installed)
mkdir -p inst/bin inst/lib solo/bin
cp "$MEMREC" "$MEMANA" inst/bin/
cp "$MEMREC_BUILD/lib/libmemrec.so" inst/lib/
inst/bin/memrec -q -o inst.zst "$PROGS/gt_deep" 3 >/dev/null 2>inst.err
is "$?" 0 "relocated memrec (bin/ + lib/) runs the program"
inst/bin/memana report inst.zst --json >inst.json 2>/dev/null
is "$?" 0 "relocated memana reports"
like "$(stack inst.json)" '^deep_leaf( recurse){4} main' "the relocated tools record and symbolize"
# without a library next to it: an error, the program not run untraced silently
cp "$MEMREC" solo/bin/
solo/bin/memrec -q -o solo.zst "$PROGS/gt_deep" 3 >/dev/null 2>solo.err
st=$?
isnt "$st" 0 "memrec without ../lib/libmemrec.so fails (status $st)"
like "$(cat solo.err)" 'libmemrec' "and says it cannot find libmemrec.so"
MEMREC_LIB="$MEMREC_BUILD/lib/libmemrec.so" solo/bin/memrec -q -o lib.zst "$PROGS/gt_deep" 3 >/dev/null 2>lib.err
is "$?" 0 "MEMREC_LIB points memrec at the library"
ok "and the trace is written" test -s lib.zst

done_testing
