#!/bin/bash
# memana dump: one record per line, "@OFFSET tag field=value ...", every tag
# known; for gt_tiny (sizes no libc start-up allocation uses) the exact alloc
# and free records of tiny_work; the END record's event count matches.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_tiny

record t.zst "$PROGS/gt_tiny"
is "$?" 0 "gt_tiny under memrec exits 0"
"$MEMANA" dump t.zst >d.txt 2>d.err
is "$?" 0 "dump exits 0"
is "$(cat d.err)" "" "dump prints nothing on stderr"
like "$(head -n 1 d.txt)" '^# memrec trace format 1 flags 0x0$' "first line: format version and flags"

bad=$(grep -vE '^@[0-9]+ (process|chunk|thread|node|alloc|free|module|unload|tick|end)( |$)' d.txt | grep -v '^#' | head -3)
is "$bad" "" "every line is one known record"
tags() { grep -cE "^@[0-9]+ $1( |\$)" d.txt; }
is "$(tags process)" 1 "one process record"
like "$(grep -E '^@' d.txt | head -n 1)" '^@0 process pid=[0-9]+ ' "process record first, at byte 0"
is "$(tags end)" 1 "one end record"
like "$(tail -n 1 d.txt)" '^@[0-9]+ end ' "end record last"
num "$(tags thread)" -ge 1 "thread records"
num "$(tags module)" -ge 2 "module records (gt_tiny, libc, ...)"
like "$(grep -E '^@[0-9]+ module ' d.txt)" 'path="[^"]*gt_tiny"' "a module record for gt_tiny"
num "$(tags node)" -ge 2 "node records"
num "$(tags chunk)" -ge 1 "chunk records"

# offsets increase
ok "offsets strictly increase" "$PY" -c '
import re, sys
offs = [int(m.group(1)) for m in (re.match(r"@(\d+) ", l) for l in open(sys.argv[1])) if m]
sys.exit(0 if all(a < b for a, b in zip(offs, offs[1:])) else 1)' d.txt

# tiny_work's records, by their distinctive sizes
is "$(grep -cE '^@[0-9]+ alloc .*kind=malloc .*size=12345 ' d.txt)" 3 "3 malloc(12345) allocs"
is "$(grep -cE '^@[0-9]+ alloc .*kind=calloc .*size=21007 ' d.txt)" 1 "1 calloc(7, 3001) alloc of 21007 bytes"
is "$(grep -cE '^@[0-9]+ alloc .*kind=realloc .*size=23456 ' d.txt)" 1 "1 realloc to 23456"
# how each of those blocks ended: the first free record of its address
# after its allocation (by seq), or "leaked"
fate() { # SIZE -> the fates of the blocks of that size, sorted
	"$PY" - d.txt "$1" <<'EOP'
import re, sys
ev = []
for l in open(sys.argv[1]):
    m = re.match(r"@\d+ (alloc|free) stream=\d+ seq=(\d+) kind=(\w+) (?:node=\d+ size=(\d+) )?addr=(0x[0-9a-f]+)", l)
    if m:
        ev.append((int(m.group(2)), m.group(1), m.group(3), m.group(4), m.group(5)))
ev.sort()
out = []
for i, (q, t, kind, size, addr) in enumerate(ev):
    if t == "alloc" and size == sys.argv[2]:
        end = next((k for (_, t2, k, _, a2) in ev[i + 1:] if t2 == "free" and a2 == addr), "leaked")
        out.append(end)
print(" ".join(sorted(out)))
EOP
}
is "$(fate 12345)" "free leaked realloc" "the 12345-byte blocks: one free(), one released by realloc, one leaked"
is "$(fate 21007)" "free" "the calloc block: freed"
is "$(fate 23456)" "free" "the realloc'd block: freed"

# nodes: each defined once, parents defined, every alloc's node defined
ok "node ids unique, parents and alloc nodes defined" "$PY" -c '
import re, sys
ids, parents, used = [], [], []
for l in open(sys.argv[1]):
    m = re.match(r"@\d+ node stream=\d+ id=(\d+) parent=(\d+) ", l)
    if m:
        ids.append(int(m.group(1))); parents.append(int(m.group(2)))
    m = re.match(r"@\d+ alloc .* node=(\d+) ", l)
    if m:
        used.append(int(m.group(1)))
s = set(ids)
ok = len(s) == len(ids) and all(p == 0 or p in s for p in parents) and all(u in s for u in used)
sys.exit(0 if ok else 1)' d.txt

# seq: unique over the trace, increasing within each stream
ok "seq unique, increasing per stream" "$PY" -c '
import re, sys
last, seen = {}, set()
for l in open(sys.argv[1]):
    m = re.match(r"@\d+ \w+ stream=(\d+) seq=(\d+) ", l)
    if m:
        s, q = int(m.group(1)), int(m.group(2))
        if q in seen or q <= last.get(s, 0):
            sys.exit(1)
        seen.add(q); last[s] = q
sys.exit(0)' d.txt

n_events=$(grep -E '^@[0-9]+ end ' d.txt | sed -E 's/.* events=([0-9]+).*/\1/')
is "$n_events" "$(grep -cE '^@[0-9]+ (alloc|free) ' d.txt)" "end record's event count = alloc + free lines"

# dump of a database is refused
"$MEMANA" ingest t.zst -o t.db >/dev/null 2>&1
"$MEMANA" dump t.db >/dev/null 2>db.err
is "$?" 3 "dump of a database exits 3"
like "$(cat db.err)" "t\.db" "and names it"

done_testing
