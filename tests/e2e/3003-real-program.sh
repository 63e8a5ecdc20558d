#!/bin/bash
# Acceptance 1: real programs installed from Debian, recorded and reported:
# the sqlite3 shell running an insert/index/query script on :memory:, and
# python3 running a small allocation-heavy script. Output identical to the
# untraced run; the top call sites name real functions (symbols of
# libsqlite3 / python3's .dynsym at least, no debug packages needed).
. "$(dirname "$0")/../lib.sh"
need_tools

# named_frames FILE LIST I N: real function names among the first N frames of
# site I ("" when none; unresolved frames look like module+0xOFF)
named_frames() {
	"$PY" - "$1" "$2" "$3" "$4" <<'EOP'
import json, re, sys
d = json.load(open(sys.argv[1]))
sites = d["hotspots"][sys.argv[2]]
i, n = int(sys.argv[3]), int(sys.argv[4])
if i >= len(sites):
    print("<no site %d>" % i); sys.exit(0)
names = [f["function"] for f in sites[i]["stack"][:n]
         if f.get("function") and not re.search(r"\+0x[0-9a-f]+$", f["function"])
         and not f["function"].startswith("0x") and f["function"] != "[truncated]"]
print(" ".join(names))
EOP
}

# ---- sqlite3 ------------------------------------------------------------------
if command -v sqlite3 >/dev/null; then
	cat >script.sql <<'EOS'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
INSERT INTO t(name, v) SELECT printf('name-%05d', x), x * 0.5 FROM c;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(v) FROM t WHERE name LIKE 'name-1%';
SELECT name FROM t ORDER BY v DESC LIMIT 3;
UPDATE t SET name = name || '-x' WHERE id % 3 = 0;
SELECT count(*) FROM t WHERE name LIKE '%-x';
EOS
	sqlite3 :memory: <script.sql >sq.plain 2>&1
	"$MEMREC" -q -o sq.zst sqlite3 :memory: <script.sql >sq.traced 2>&1
	is "$?" 0 "sqlite3 under memrec exits 0"
	ok "sqlite3 output identical to the untraced run" cmp -s sq.plain sq.traced
	is "$(head -n 1 sq.traced)" "10000|74997500.0" "sqlite3 computed the expected result"
	report sq.zst sq.json
	is "$?" 0 "report of the sqlite3 trace exits 0"
	is "$(jget sq.json 'd["trace"]["complete"]')" true "sqlite3 trace complete"
	num "$(jget sq.json 'd["totals"]["allocations"]')" -ge 20000 "sqlite3: at least one allocation per inserted row"
	num "$(jget sq.json 'd["totals"]["peak_heap_bytes"]')" -gt 0 "sqlite3: a peak"
	for i in 0 1 2; do
		names=$(named_frames sq.json allocations $i 4)
		like "$names" '(^| )sqlite3' "sqlite3 allocation site $((i + 1)) names libsqlite3 functions in its first frames: $names"
	done
	like "$(jget sq.json '" ".join(f["function"] for f in d["hotspots"]["allocations"][0]["stack"])')" \
		'sqlite3_(step|exec|prepare)' "top sqlite3 site's stack goes through the public API"
	like "$(jget sq.json 'd["hotspots"]["allocations"][0]["stack"][0]["module"]')" 'libsqlite3' \
		"top sqlite3 site is inside libsqlite3"
	"$MEMANA" report sq.zst >sq.txt 2>sq.txt.err
	is "$?" 0 "text report of sqlite3 exits 0"
	ok "text report names sqlite3 functions" grep -q 'sqlite3_step' sq.txt
else
	skip "sqlite3 not installed"
fi

# ---- python3 ------------------------------------------------------------------
PY3=/usr/bin/python3
if [ -x "$PY3" ]; then
	cat >work.py <<'EOS'
import json
d = {}
for i in range(20000):
    d["k%d" % i] = [i, str(i) * 3, {"x": i}]
s = json.dumps(d)
e = json.loads(s)
big = [bytes(1000 + i) for i in range(2000)]
print(len(s), len(e), sum(v[0] for v in e.values()), sum(map(len, big)))
EOS
	"$PY3" work.py >py.plain 2>&1
	"$MEMREC" -q -o py.zst "$PY3" work.py >py.traced 2>&1
	is "$?" 0 "python3 under memrec exits 0"
	ok "python3 output identical to the untraced run" cmp -s py.plain py.traced
	report py.zst py.json
	is "$?" 0 "report of the python3 trace exits 0"
	is "$(jget py.json 'd["trace"]["complete"]')" true "python3 trace complete"
	num "$(jget py.json 'd["totals"]["allocations"]')" -ge 2000 "python3: at least the 2000 large bytes objects"
	for i in 0 1 2; do
		names=$(named_frames py.json allocations $i 8)
		like "$names" '(^| )_?Py' "python3 allocation site $((i + 1)) names Python functions: $names"
	done
	like "$(jget py.json '" ".join(f["module"] for f in d["hotspots"]["allocations"][0]["stack"])')" 'python3' \
		"top python3 site is in the interpreter"
else
	skip "/usr/bin/python3 not installed"
fi

if [ "$T_FAILED" -gt 0 ]; then
	[ -f sq.json ] && diag "sqlite3 sites:" "$(sites_summary sq.json allocations | head -5)"
	[ -f py.json ] && diag "python3 sites:" "$(sites_summary py.json allocations | head -5)"
fi
done_testing
