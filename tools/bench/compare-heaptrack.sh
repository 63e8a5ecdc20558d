#!/bin/sh
# Record one deterministic real workload (the sqlite3 shell on an
# insert/index/query script) untraced, under memrec and under heaptrack, and
# print the allocation counts and the wall times side by side. Issue 2's
# acceptance 5: memrec's count within 1% of heaptrack's "calls to allocation
# functions". Usage: tools/bench/compare-heaptrack.sh [ROWS] (default 200000).
set -eu

BUILD=${BUILD:-build}
rows=${1:-200000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/w.sql" <<SQL
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
INSERT INTO t(name, score) SELECT printf('name-%08d', i * 7919 % $rows), (i * 31) % 1000 FROM n;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_score ON t(score);
SELECT count(*), sum(score) FROM t WHERE name > 'name-00025000';
SQL

now_ms() { date +%s%3N; }

t0=$(now_ms); sqlite3 :memory: < "$tmp/w.sql" > "$tmp/plain.out"; t1=$(now_ms)
"$BUILD/bin/memrec" -q -o "$tmp/m.zst" -- sqlite3 :memory: < "$tmp/w.sql" > "$tmp/memrec.out"; t2=$(now_ms)
cmp -s "$tmp/plain.out" "$tmp/memrec.out" || { echo "output differs under memrec" >&2; exit 1; }
m_calls=$("$BUILD/bin/memana" report --json "$tmp/m.zst" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["allocations"])')

echo "workload: sqlite3 :memory: with $rows rows (insert, 2 indexes, query)"
echo "untraced: $((t1 - t0)) ms"
echo "memrec:   $((t2 - t1)) ms, $m_calls allocation calls, trace $(stat -c %s "$tmp/m.zst") bytes"
if command -v heaptrack >/dev/null 2>&1; then
	t3=$(now_ms)
	heaptrack -o "$tmp/h" sqlite3 :memory: < "$tmp/w.sql" > "$tmp/ht.out" 2>"$tmp/ht.err"
	t4=$(now_ms)
	h=$(ls "$tmp"/h*.zst "$tmp"/h*.gz 2>/dev/null | head -n 1)
	h_calls=$(heaptrack_print "$h" 2>/dev/null | sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p')
	echo "heaptrack: $((t4 - t3)) ms, $h_calls allocation calls, trace $(stat -c %s "$h") bytes"
	python3 -c "m, h = $m_calls, $h_calls; print(f'memrec/heaptrack calls: {m / h:.5f} (diff {abs(m - h) / h * 100:.3f}%)')"
fi
