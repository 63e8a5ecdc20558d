#!/bin/sh
# The README's first command (make demo): record a real program from Debian —
# the sqlite3 shell running an insert/index/query script — and print memana's
# report of it. Run from the top of the repository after `make`.
set -eu

BUILD=${BUILD:-build}
out=${DEMO_DIR:-$BUILD/demo}
mkdir -p "$out"
rm -f "$out"/demo.zst "$out"/demo.db

cat > "$out/demo.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
INSERT INTO t(name, score) SELECT printf('name-%08d', i * 7919 % 50000), (i * 31) % 1000 FROM n;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_score ON t(score);
SELECT count(*), sum(score) FROM t WHERE name > 'name-00025000';
SELECT name FROM t ORDER BY score DESC, name LIMIT 3;
SQL

echo "== memrec sqlite3 :memory: < demo.sql" >&2
"$BUILD/bin/memrec" -o "$out/demo.zst" -- sqlite3 :memory: < "$out/demo.sql"
echo "== memana report $out/demo.zst" >&2
"$BUILD/bin/memana" report --top 5 "$out/demo.zst"
