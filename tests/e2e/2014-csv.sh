#!/bin/bash
# Issue 6: memana report --csv writes the summary and the per-site tables
# (and the phases) as RFC 4180 CSV that a spreadsheet (here Python's csv
# module) reads back with the same figures as --json.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_phases

record t.zst "$PROGS/gt_phases"
is "$?" 0 "gt_phases under memrec exits 0"
report t.zst r.json
"$MEMANA" report --csv t.zst >r.csv 2>r.err
is "$?" 0 "memana report --csv exits 0"
is "$(cat r.err)" "" "nothing on stderr"
"$PY" - r.csv r.json <<'EOP' >check.txt
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
d = json.load(open(sys.argv[2]))
# three tables separated by empty rows
tables, cur = [], []
for r in rows:
    if not r:
        tables.append(cur)
        cur = []
    else:
        cur.append(r)
tables.append(cur)
print("tables", len(tables))
summary = {r[0]: r[1] for r in tables[0][1:]}
print("header", ",".join(tables[0][0]))
for k in ("allocations", "bytes_allocated", "frees", "peak_heap_bytes", "leaked_bytes"):
    print(k, "ok" if int(summary[k]) == d["totals"][k] else "DIFF %s %s" % (summary[k], d["totals"][k]))
print("command", "ok" if summary["command"] == d["trace"]["command"] else "DIFF")
sites = tables[1]
print("sites_header", ",".join(sites[0]))
first = [r for r in sites[1:] if r[0] == "allocations"][0]
j = d["hotspots"]["allocations"][0]
print("site1", "ok" if (int(first[2]), int(first[3]), first[4]) == (j["calls"], j["bytes"], j["stack"][0]["function"]) else "DIFF %s" % first)
print("stackcell", "ok" if first[8].startswith(j["stack"][0]["function"] + " <- ") else "DIFF %s" % first[8])
ph = tables[2]
print("phases", " ".join("%s:%s:%s" % (r[3], r[5], r[8]) for r in ph[1:]))
EOP
is "$(sed -n 1p check.txt)" "tables 3" "three tables: summary, sites, phases"
is "$(sed -n 2p check.txt)" "header key,value" "summary as key,value rows"
is "$(sed -n 3,7p check.txt | grep -vc ' ok$')" 0 "summary figures equal the JSON's"
is "$(sed -n 8p check.txt)" "command ok" "the command (with spaces and quotes) reads back"
is "$(sed -n 9p check.txt)" "sites_header list,rank,calls,bytes,function,file,line,module,stack" "sites header"
is "$(sed -n 10p check.txt)" "site1 ok" "first allocation site equals the JSON's"
is "$(sed -n 11p check.txt)" "stackcell ok" "whole stack in one cell"
is "$(sed -n 12p check.txt)" "phases parse:1000:6400 index:256:229376 serve:510:0 serve/warmup:10:0" "phases table: calls and bytes left behind"
"$MEMANA" report --csv --json t.zst >/dev/null 2>err
is "$?" 2 "--csv with --json: usage error"
done_testing
