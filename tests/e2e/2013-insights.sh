#!/bin/bash
# Issue 6, acceptance 4: on tests/progs/gt_insights.c, each mode built for
# one insight makes memana report name that insight with the right site and
# figures; mode "none" gets no insight.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_insights

run() { # MODE: record and report into MODE.json
	record "$1.zst" "$PROGS/gt_insights" "$1"
	is "$?" 0 "gt_insights $1 under memrec exits 0"
	report "$1.zst" "$1.json"
}
# "kind function calls bytes" of each insight, in order
ins() { jget "$1.json" "' / '.join('%s %s %d %d' % (i['kind'], i['site']['stack'][0]['function'], i['calls'], i['bytes']) for i in d['insights'])"; }
text() { jget "$1.json" "d['insights'][${2:-0}]['text']"; }

run temp
is "$(ins temp)" "temporary tmp_buffers 2000 512000" "temp: 2000 temporary allocations, 512000 bytes, at tmp_buffers"
like "$(text temp)" '^tmp_buffers at .*gt_insights\.c:[0-9]+ makes 2000 temporary allocations \(100% of its 2000 calls\), 100% of its calls of 256-511 bytes \(256 on average\): reuse one buffer' \
	"temp: the text names file:line and the figures"

run realloc
is "$(ins realloc)" "realloc grow_array 200 1299200" "realloc: 200 growing reallocs at grow_array (128 + 192 + ... + 12864 = 1299200 bytes requested)"
like "$(text realloc)" 'grows blocks with realloc 200 times \(of 200 realloc calls; .* reserve the final size up front' "realloc: the text"

run pool
is "$(ins pool)" "pool make_nodes 5000 240000" "pool: 5000 blocks, 240000 bytes live at the peak, at make_nodes"
like "$(text pool)" '^5000 blocks from make_nodes at .*gt_insights\.c:[0-9]+ are live at the peak .*\(48 on average\): a pool or arena' "pool: the text"

run early
is "$(ins early | cut -d/ -f1 | sed 's/ $//')" "early load_config 1 1048576" "early: 1 MiB in 1 block at load_config, first"
like "$(text early)" 'in the first 10% of the run .* never freed' "early: the text"

run leak
is "$(ins leak)" "leak leak_helper 8 800" "leak: 800 bytes in 8 blocks grouped at leak_helper"
like "$(text leak)" 'leaks 800 B in 8 blocks, from 2 call paths' "leak: two call paths grouped"

run none
is "$(ins none)" "" "none: no insight"
"$MEMANA" report none.zst >none.txt 2>&1
like "$(sed -n '/^INSIGHTS/,+1p' none.txt | tail -n 1)" '^  \(none\)$' "none: text says (none)"
"$MEMANA" report temp.zst >temp.txt 2>&1
like "$(sed -n '/^INSIGHTS/,+1p' temp.txt | tail -n 1)" '^1\. \[temporary\] tmp_buffers at ' "text report lists the insight"
done_testing
