#!/bin/bash
# Issue 5, acceptance 4: every query of docs/schema.md's SQL cookbook, run as
# written with the sqlite3 shell on `memana ingest --allocations` of
# tests/progs/gt_cookbook.c, returns the answer that program knows. Also
# checks the allocations table itself (one row per successful allocation).
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_cookbook
command -v sqlite3 >/dev/null || bail "sqlite3 not found"

record t.zst "$PROGS/gt_cookbook"
is "$?" 0 "gt_cookbook under memrec exits 0"
"$MEMANA" ingest --allocations t.zst -o t.db 2>err
is "$?" 0 "memana ingest --allocations exits 0"
is "$(cat err)" "" "ingest prints nothing on stderr"

q() { sqlite3 -batch t.db "$1"; }
is "$(q "SELECT value FROM meta WHERE key = 'allocation_rows'")" 1 "meta.allocation_rows = 1"
is "$(q "SELECT (SELECT count(*) FROM allocations) = (SELECT value FROM meta WHERE key = 'allocations') - (SELECT value FROM meta WHERE key = 'failed_allocations')")" 1 \
	"one allocations row per successful allocation call"
is "$(q "SELECT count(*), sum(size) FROM allocations WHERE death_seq IS NULL")" \
	"$(q "SELECT (SELECT value FROM meta WHERE key = 'leaked_allocations') || '|' || (SELECT value FROM meta WHERE key = 'leaked_bytes')")" \
	"rows never freed = the leaks"
is "$(q "SELECT count(*) FROM allocations WHERE temporary")" \
	"$(q "SELECT value FROM meta WHERE key = 'temporary_allocations'")" "temporary rows = temporary allocations"
is "$(q "SELECT count(*) FROM allocations WHERE death_seq IS NOT NULL AND (death_seq <= birth_seq OR lifetime_ns <> death_ns - birth_ns OR lifetime_ns < 0)")" 0 \
	"every freed row dies after its birth, lifetime = death - birth"

# A database without --allocations has the table, empty.
"$MEMANA" ingest t.zst -o plain.db 2>/dev/null
is "$(sqlite3 plain.db "SELECT count(*) FROM allocations; SELECT value FROM meta WHERE key = 'allocation_rows'" | tr '\n' ' ')" "0 0 " \
	"without --allocations: empty table, allocation_rows 0"

# The recipes, extracted from the documentation.
"$PY" - "$SRC/docs/schema.md" <<'EOP' >recipes.txt
import re, sys
doc = open(sys.argv[1]).read()
sec = doc[doc.index("## SQL cookbook"):]
for m in re.finditer(r"^### (\d+)\. .*?```sql\n(.*?)```", sec, re.S | re.M):
    open("recipe%s.sql" % m.group(1), "w").write(m.group(2))
    print(m.group(1))
EOP
is "$(tr '\n' ' ' <recipes.txt)" "1 2 3 4 5 6 7 8 9 10 " "docs/schema.md has recipes 1 to 10"

run() { sqlite3 -batch t.db <"recipe$1.sql" 2>&1; }
leak_line=$(grep -n 'LEAK_LINE \*/' "$SRC/tests/progs/gt_cookbook.c" | head -n 1 | cut -d: -f1)

is "$(run 1 | head -n 3 | tr '\n' ' ')" "parse_request|500|32000 small_jobs|300|38400 build_index|200|204800 " \
	"recipe 1: functions by allocation calls"
is "$(run 1 | sed -n '4,5p' | cut -d'|' -f1,2 | tr '\n' ' ')" "big_jobs|100 make_string|100 " "recipe 1: then big_jobs and make_string"
is "$(run 2 | tr '\n' ' ')" "big_jobs|100|200000 small_jobs|300|38400 parse_request|500|32000 " \
	"recipe 2: largest short-lived sites"
is "$(run 3 | tr '\n' ' ')" "build_index|200|204800 load_table|50|204800 cache_leak|10|3000 " \
	"recipe 3: alive at the peak"
is "$(run 3 | awk -F'|' '{ s += $3 } END { print s }')" "$(q "SELECT value FROM meta WHERE key = 'peak_heap_bytes'")" \
	"recipe 3: the blocks alive at the peak sum to the peak"
is "$(run 4 | tail -n 2 | tr '\n' ' ')" "worker-a|300|38400|300 worker-b|100|200000|100 " "recipe 4: per-thread totals"
is "$(run 4 | wc -l)" 3 "recipe 4: three threads"
is "$(run 5 | tr '\n' ' ')" "64|500|32000 128|300|38400 40|100|4000 " "recipe 5: sizes that churn"
is "$(run 6 | head -n 1)" "cache_leak|tests/progs/gt_cookbook.c|$leak_line|10|3000" "recipe 6: leak with its source line"
r7=$(run 7 | head -n 1)
is "$(echo "$r7" | cut -d'|' -f1,2)" "long_lived|3" "recipe 7: long_lived keeps its blocks longest"
ms=$(echo "$r7" | cut -d'|' -f3)
within "$ms" 200 25 "recipe 7: about 200 ms (tick resolution, loaded machines)"
is "$(run 8)" "grow_buffer|8|6144" "recipe 8: the realloc chain"
is "$(run 9 | tr '\n' ' ')" "handle_cmd|70 config_load|30 " "recipe 9: callers of make_string"
is "$(run 10 | tr '\n' ' ')" "8|15|10 64|127|20 2048|4095|5 " "recipe 10: sizes of one call site"
done_testing
