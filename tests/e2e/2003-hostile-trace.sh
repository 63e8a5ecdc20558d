#!/bin/bash
# Traces that are well-formed but hostile or unusual, written by a small
# Python encoder (docs/trace-format.md): memana must finish (no hang on a
# module path that is a FIFO or a device, no stack overflow on a very deep
# stack), exit 0 or 3 (never crash), and accept what the format allows
# (node 0 = no backtrace, addresses 0/1/max, empty paths).
. "$(dirname "$0")/../lib.sh"
need_tools
command -v zstd >/dev/null || bail "zstd not installed"
TO=${MEMREC_TEST_TIMEOUT:-20}

cat >tw.py <<'EOP'
# Minimal trace writer: records -> header + zstd (via the zstd CLI).
import struct, subprocess, sys

def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)

def zz(v):
    v &= (1 << 64) - 1
    s = v - (1 << 64) if v >> 63 else v
    return ((s << 1) ^ (s >> 63)) & ((1 << 64) - 1)

def bstr(b):
    if isinstance(b, str):
        b = b.encode()
    return varint(len(b)) + b

class Stream:
    def __init__(self, sid):
        self.sid, self.seq, self.addr, self.naddr, self.nid = sid, 0, 0, 0, 0
        self.buf = bytearray()
    def _seq(self, seq):
        d = seq - self.seq; self.seq = seq; return varint(d)
    def thread(self, seq, tid, name=b"t"):
        self.buf += b"\x10" + self._seq(seq) + varint(tid) + bstr(name)
    def node(self, nid, parent, addr):
        self.buf += b"\x11" + varint(nid - self.nid) + varint(nid - parent) + varint(zz(addr - self.naddr))
        self.nid, self.naddr = nid, addr & ((1 << 64) - 1)
    def alloc(self, seq, node, size, addr, kind=0):
        self.buf += b"\x12" + self._seq(seq) + bytes([kind]) + varint(node) + varint(size) + varint(zz(addr - self.addr))
        self.addr = addr
    def free(self, seq, addr, kind=9):
        self.buf += b"\x13" + self._seq(seq) + bytes([kind]) + varint(zz(addr - self.addr))
        self.addr = addr
    def module(self, seq, mid, base, path, build_id=b"", segs=()):
        r = b"\x14" + self._seq(seq) + varint(mid) + varint(base) + bstr(path) + bstr(build_id) + varint(len(segs))
        for v, m, f in segs:
            r += varint(v) + varint(m) + varint(f)
        self.buf += r
    def unload(self, seq, mid):
        self.buf += b"\x15" + self._seq(seq) + varint(mid)

class Trace:
    def __init__(self, exe="/bin/hostile"):
        self.raw = bytearray(b"\x01" + varint(4242) + varint(1) + varint(1) + varint(4096)
                             + bstr(exe) + bstr(b"hostile\0"))
        self.streams = {}
    def stream(self, sid):
        return self.streams.setdefault(sid, Stream(sid))
    def flush(self, sid):
        s = self.streams[sid]
        if s.buf:
            self.raw += b"\x02" + varint(sid) + varint(len(s.buf)) + s.buf
            s.buf = bytearray()
    def flush_all(self):
        for sid in list(self.streams):
            self.flush(sid)
    def tick(self, wm, t, rss=0):
        self.flush_all()
        self.raw += b"\x03" + varint(wm) + varint(t) + varint(rss)
    def end(self, t, n):
        self.flush_all()
        self.raw += b"\x04" + varint(t) + varint(n)
    def write(self, path):
        z = subprocess.run(["zstd", "-q", "-c", "--no-check"], input=bytes(self.raw),
                           stdout=subprocess.PIPE, check=True).stdout
        with open(path, "wb") as f:
            f.write(b"MEMREC\x1a\x01" + struct.pack("<II", 1, 0) + z)
EOP

run_memana() { # DESC FILE: report --json within the timeout; sets ST
	timeout -k 5 "$TO" "$MEMANA" report "$2" --json >"$2.json" 2>"$2.err"
	ST=$?
	if [ "$ST" = 124 ] || [ "$ST" = 137 ]; then
		fail "$1: memana finishes (timed out after ${TO}s)"
	elif [ "$ST" -ge 128 ]; then
		fail "$1: memana does not crash (status $ST)"
		diag "$(head -c 400 "$2.err")"
	else
		pass "$1: memana finishes without crashing (status $ST)"
	fi
}

# 1. ALLOC with node 0: "no backtrace could be taken" (trace-format.md)
"$PY" - <<'EOP'
import sys; sys.path.insert(0, ".")
from tw import Trace
t = Trace(); s = t.stream(0)
s.thread(1, 100)
s.node(1, 0, 0x401000)
s.alloc(2, 1, 100, 0x10000)
s.alloc(3, 0, 200, 0x20000)      # no backtrace
s.free(4, 0x10000)
t.tick(5, 1000)
t.end(2000, 3)
t.write("node0.zst")
EOP
run_memana "alloc with node 0 (no backtrace)" node0.zst
is "$ST" 0 "alloc with node 0: report exits 0 (node 0 is allowed by the format)"
is "$(jget node0.zst.json 'd["totals"]["allocations"]')" 2 "alloc with node 0: counted"
is "$(jget node0.zst.json 'd["totals"]["leaked_bytes"]')" 200 "alloc with node 0: its block leaks"
[ "$ST" != 0 ] && diag "$(cat node0.zst.err)"

# 2. a very deep stack (200000 frames, beyond any recorder limit)
"$PY" - <<'EOP'
import sys; sys.path.insert(0, ".")
from tw import Trace
t = Trace(); s = t.stream(0)
s.thread(1, 100)
N = 200000
for i in range(1, N + 1):
    s.node(i, i - 1, 0x401000 + 16 * i)
s.alloc(2, N, 64, 0x10000)
t.end(1000, 1)
t.write("deep.zst")
EOP
run_memana "a 200000-frame stack" deep.zst
is "$ST" 0 "a 200000-frame stack: report exits 0"
is "$(jget deep.zst.json 'd["totals"]["leaked_allocations"]')" 1 "a 200000-frame stack: the block is counted"
timeout -k 5 "$TO" "$MEMANA" ingest deep.zst -o deep.db >/dev/null 2>deep.ingest.err
st=$?
is "$st" 0 "a 200000-frame stack: ingest exits 0"
if [ -s deep.db ]; then
	timeout -k 5 "$TO" sqlite3 deep.db "SELECT count(*) FROM stack_frames" >deep.q 2>&1
	st=$?
	ok "a 200000-frame stack: the stack_frames view answers (status $st)" test "$st" = 0
fi

# 3. module paths that are not ELF files: a FIFO, a device, a directory, a
# text file, an empty path; addresses inside them
mkfifo fifo
echo "not an elf file" >text.txt
"$PY" - "$T_DIR" <<'EOP'
import sys; sys.path.insert(0, ".")
from tw import Trace
d = sys.argv[1]
t = Trace(exe=d + "/text.txt"); s = t.stream(0)
s.thread(1, 100)
paths = [d + "/fifo", "/dev/zero", "/dev/stdin", d, d + "/text.txt", "", "/nonexistent/lib.so"]
seq = 2
for i, p in enumerate(paths):
    base = 0x10000000 * (i + 1)
    s.module(seq, i + 1, base, p, b"\x01\x02\x03\x04", [(0, 0x100000, 5)]); seq += 1
    s.node(i + 1, 0, base + 0x1234)
    s.alloc(seq, i + 1, 10 + i, 0x100000 + 0x100 * i); seq += 1
t.end(1000, len(paths))
t.write("paths.zst")
EOP
run_memana "module paths: FIFO, /dev/zero, /dev/stdin, directory, text, empty, missing" paths.zst </dev/null
is "$ST" 0 "odd module paths: report exits 0"
is "$(jget paths.zst.json 'd["totals"]["allocations"]')" 7 "odd module paths: all 7 allocations counted"
like "$(jget paths.zst.json '[s["stack"][0]["function"] for s in d["hotspots"]["allocations"]]')" '\+0x1234' \
	"odd module paths: frames stay module+offset"

# 4. extreme values: addresses 0, 1 (truncation mark), 2^64-1; sizes 0 and huge
"$PY" - <<'EOP'
import sys; sys.path.insert(0, ".")
from tw import Trace
t = Trace(); s = t.stream(0)
s.thread(1, 100)
s.node(1, 0, 1)                    # truncation mark as outermost frame
s.node(2, 1, (1 << 64) - 1)
s.node(3, 2, 0)
s.alloc(2, 3, 0, 0x1000)           # malloc(0)
s.alloc(3, 2, (1 << 62), 0x2000)   # a huge request
s.alloc(4, 1, 5, 0)                # failed call
s.alloc(5, 3, 7, (1 << 64) - 16)
s.free(6, 0x2000)
s.free(7, (1 << 64) - 16)
s.free(8, 0xdead0)                 # never allocated
t.tick(9, 10, (1 << 63))
t.end(20, 8)
t.write("extreme.zst")
EOP
run_memana "extreme addresses and sizes" extreme.zst
is "$ST" 0 "extreme values: report exits 0"
is "$(jget extreme.zst.json 'd["totals"]["allocations"]')" 4 "extreme values: 4 allocation calls (one failed)"
is "$(jget extreme.zst.json 'd["totals"]["peak_heap_bytes"]')" $(((1 << 62) + 7)) "extreme values: peak = the huge block + 7 + 0 bytes"
is "$(jget extreme.zst.json 'd["totals"]["leaked_allocations"]')" 1 "extreme values: malloc(0)'s block leaks"

# 5. many threads: 50000 streams with one allocation each, freed by stream 0
"$PY" - <<'EOP'
import sys; sys.path.insert(0, ".")
from tw import Trace
t = Trace(); s0 = t.stream(0)
s0.thread(1, 100); s0.node(1, 0, 0x401000)
t.flush(0)
N = 50000
seq = 2
for i in range(1, N + 1):
    s = t.stream(i)
    s.thread(seq, 1000 + i); seq += 1
    s.alloc(seq, 1, 32, 0x100000 + 64 * i); seq += 1
    t.flush(i)
for i in range(1, N + 1):
    s0.free(seq, 0x100000 + 64 * i); seq += 1
t.end(1000, 2 * N)
t.write("streams.zst")
EOP
run_memana "50000 thread streams" streams.zst
is "$ST" 0 "50000 streams: report exits 0"
is "$(jget streams.zst.json 'd["totals"]["allocations"]') $(jget streams.zst.json 'd["totals"]["leaked_allocations"]')" "50000 0" \
	"50000 streams: every block allocated and freed"

# 6. a node whose parent comes later, from another stream, before the tick
"$PY" - <<'EOP'
import sys; sys.path.insert(0, ".")
from tw import Trace
t = Trace(); a = t.stream(0); b = t.stream(1)
a.thread(1, 100); b.thread(2, 101)
a.node(2, 1, 0x401100)          # parent 1 not yet defined
a.alloc(3, 2, 50, 0x5000)
t.flush(0)
b.node(1, 0, 0x401000)
t.flush(1)
t.tick(4, 10)
t.end(20, 1)
t.write("parent-later.zst")
EOP
run_memana "a parent node defined later by another stream" parent-later.zst
is "$ST" 0 "parent defined later (before the tick): report exits 0"

# 7. an event below an earlier watermark (a recorder bug): reported, no crash
"$PY" - <<'EOP'
import sys; sys.path.insert(0, ".")
from tw import Trace
t = Trace(); a = t.stream(0); b = t.stream(1)
a.thread(1, 100); a.node(1, 0, 0x401000)
a.alloc(5, 1, 10, 0x5000)
t.tick(10, 10)
b.thread(2, 101)
b.free(3, 0x5000)               # seq 3 < watermark 10: late
t.end(20, 2)
t.write("late.zst")
EOP
run_memana "an event below an earlier watermark" late.zst
"$MEMANA" ingest late.zst -o late.db >/dev/null 2>&1
if [ -s late.db ]; then
	is "$(sqlite3 late.db "SELECT value FROM meta WHERE key = 'late_events'")" 1 "late event counted in meta.late_events"
fi

done_testing
