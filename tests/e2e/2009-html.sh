#!/bin/bash
# Issue 5, acceptance 1: memana html of gt_basic (tests/progs/gt_basic.c),
# opened in headless Chromium by tests/tools/browser_check.py: the page
# renders without error, its screenshot is not blank, the plot and the flame
# graph are drawn and the peak site's function (build_plateau) is in the
# DOM, and the page makes no network request. A control page that does make
# one proves the network check fails when it should.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_basic
need_prog gt_phases
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || bail "$CHROMIUM not found (tools/install-deps.sh installs Debian's chromium)"
check() { "$PY" "$SRC/tests/tools/browser_check.py" --chromium "$CHROMIUM" "$@"; }

record t.zst "$PROGS/gt_basic"
is "$?" 0 "gt_basic under memrec exits 0"
"$MEMANA" html t.zst -o report.html 2>err
is "$?" 0 "memana html exits 0"
is "$(cat err)" "" "memana html prints nothing on stderr"
ok "report.html is written" test -s report.html
is "$(grep -c '^window.MEMANA_DATA = {$' report.html)" 1 "the data object is in the page"
is "$(grep -Eic '<(script|link|img|iframe)[^>]* (src|href)="(https?:)?//' report.html)" 0 "no external script, style or image"

check report.html --screenshot shot.png --expect build_plateau --expect "Heap and RSS over time" \
	--expect "peak 32.0 MiB" --expect "Flame graph" --expect "Allocation sizes" >check.out 2>&1
st=$?
is "$st" 0 "the page passes the browser check"
[ "$st" = 0 ] || diag_file check.out 40
like "$(cat check.out)" '^ok: body has data-ready="1" and no data-error' "rendered without a JavaScript error"
like "$(cat check.out)" "^ok: DOM contains 'build_plateau'" "the peak site's function is in the DOM"
like "$(cat check.out)" '^ok: screenshot [0-9]+x[0-9]+: ' "the screenshot is not blank"
like "$(cat check.out)" '^ok: no network request from the page' "no network request"
# the plot and the flame graph in the DOM: an SVG path for the heap line, a
# flame frame named after the peak site
"$MEMANA" html t.zst -o - 2>/dev/null >stdout.html
is "$(cmp -s stdout.html report.html && echo same)" same "-o - writes the same page to stdout"

# issue 6: phases, markers, memory over time and insights on the page
record p.zst "$PROGS/gt_phases"
"$MEMANA" html -q p.zst -o phases.html 2>perr
is "$?" 0 "memana html of gt_phases exits 0"
check phases.html --screenshot phases.png --expect "serve/warmup" --expect "checkpoint" \
	--expect "constant" --expect "Phases" --expect "build_index" >pcheck.out 2>&1
st=$?
is "$st" 0 "phases page: the nested phase, the marker, the verdict and the phase's peak site are drawn"
[ "$st" = 0 ] || diag_file pcheck.out 40
check report.html --screenshot shot2.png \
	--expect "churn at tests/progs/gt_basic.c:" --expect "makes 1000 temporary allocations" >icheck.out 2>&1
is "$?" 0 "gt_basic page: the insight about churn is drawn"

# a database gives the page too
"$MEMANA" ingest -q t.zst -o t.db 2>/dev/null && "$MEMANA" html t.db 2>/dev/null
ok "memana html DB writes DB's name with .html" test -s t.html

# control: a page that fetches from the network must fail the check
cat >control.html <<'HTML'
<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head>
<body data-ready="1"><p>control page with an image from the network</p>
<img src="http://127.0.0.1:9/x.png" width="100" height="100">
<p style="background:#c33;color:#fff;height:400px">colour</p>
<p style="background:#3c3;height:400px">colour</p><p style="background:#33c;height:400px">c</p>
<p style="background:#cc3;height:100px">c</p><p style="background:#3cc;height:100px">c</p>
<p style="background:#c3c;height:100px">c</p><p style="background:#888;height:100px">c</p>
</body></html>
HTML
check control.html --screenshot control.png >control.out 2>&1
is "$?" 1 "control page with a network request: the check fails"
like "$(cat control.out)" 'FAIL: .*127\.0\.0\.1:9/x\.png' "control: the request is named"

# errors
"$MEMANA" html missing.zst -o x.html 2>err
is "$?" 3 "missing trace: exit 3"
like "$(cat err)" "cannot open 'missing.zst'" "missing trace: message"
"$MEMANA" html t.zst -o /nonexistent-dir/x.html 2>err
is "$?" 3 "unwritable output: exit 3"
like "$(cat err)" "cannot create '/nonexistent-dir/x.html'" "unwritable output: message"
done_testing
