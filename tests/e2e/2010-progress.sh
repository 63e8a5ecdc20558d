#!/bin/bash
# Issue 5: the progress line of ingest, report and html. It is drawn on a
# terminal only (here a pseudo-terminal made by script(1)), not when stderr
# is a file, and never with -q; it is erased at the end. The one-second
# delay before it shows is set to 0 here (MEMANA_PROGRESS_DELAY_MS) so that
# a small trace shows it.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_basic
command -v script >/dev/null || bail "script (util-linux) not found"

record t.zst "$PROGS/gt_basic"
is "$?" 0 "gt_basic under memrec exits 0"
export MEMANA_PROGRESS_DELAY_MS=0
# in_pty OUT CMD: run CMD with stdin/stdout/stderr on a pseudo-terminal;
# what it writes there goes to OUT
in_pty() { local out=$1; shift; script -qec "$*" /dev/null >"$out" 2>&1 </dev/null; }

in_pty tty.report "'$MEMANA' report t.zst --top 1 >/dev/null"
like "$(tr '\r' '\n' <tty.report)" "memana: reading 't\.zst' +[0-9]+% \([0-9.]+ of [0-9.]+ MiB\)" "report on a terminal: progress line"
like "$(tr '\r' '\n' <tty.report)" "memana: symbolizing 't\.zst'" "report on a terminal: symbolizing stage"
like "$(od -An -c tty.report | tr -d ' \n')" '\\r033\[K$' "the line is erased at the end"

in_pty tty.ingest "'$MEMANA' ingest t.zst -o t.db"
like "$(tr '\r' '\n' <tty.ingest)" "memana: reading 't\.zst'" "ingest on a terminal: progress line"
in_pty tty.html "'$MEMANA' html t.zst -o t.html"
like "$(tr '\r' '\n' <tty.html)" "memana: reading 't\.zst'" "html on a terminal: progress line"

in_pty tty.quiet "'$MEMANA' report -q t.zst --top 1 >/dev/null"
is "$(cat tty.quiet)" "" "report -q on a terminal: nothing"
in_pty tty.iquiet "'$MEMANA' ingest -q t.zst -o t2.db"
is "$(cat tty.iquiet)" "" "ingest -q on a terminal: nothing"

"$MEMANA" report t.zst --top 1 >/dev/null 2>file.err
is "$(cat file.err)" "" "stderr not a terminal: nothing"
done_testing
