#!/bin/bash
# Acceptance 4, exhaustively on a small real trace: every byte of gt_tiny's
# trace (re-stored as uncompressed zstd blocks, so each flip hits a record
# byte, not the entropy coder) changed once, and every 8th prefix; memana
# report --json must exit 0 with valid JSON or 3 with one line naming the
# file, never crash or hang.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_tiny
command -v zstd >/dev/null || bail "zstd not installed"

record t.zst "$PROGS/gt_tiny"
is "$?" 0 "gt_tiny under memrec exits 0"
"$PY" - t.zst stored.zst <<'EOP'
import subprocess, sys
data = open(sys.argv[1], "rb").read()
raw = subprocess.run(["zstd", "-dcq"], input=data[16:], stdout=subprocess.PIPE, check=True).stdout
out = bytearray(data[:16]) + bytes([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])
for pos in range(0, len(raw), 256):   # stored blocks of 256 bytes
    blk = raw[pos:pos + 256]
    bh = len(blk) << 3 | (1 if pos + 256 >= len(raw) else 0)
    out += bytes([bh & 255, bh >> 8 & 255, bh >> 16 & 255]) + blk
open(sys.argv[2], "wb").write(out)
EOP
report stored.zst stored.json
is "$?" 0 "the re-stored trace reports (exit 0)"
is "$(jget stored.json 'd["totals"]')" "$(report t.zst t.json; jget t.json 'd["totals"]')" "and gives the same totals as the original"

"$PY" - "$MEMANA" stored.zst "${MEMREC_TEST_JOBS:-$(nproc)}" >sweep.txt <<'EOP'
import concurrent.futures, json, os, subprocess, sys
memana, src, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
cases = []
for i in range(len(data)):
    b = bytearray(data)
    b[i] ^= (0xff, 0x01, 0x80)[i % 3]
    cases.append(("flip-%d" % i, bytes(b)))
for n in range(0, len(data), 8):
    cases.append(("cut-%d" % n, data[:n]))

def run(case):
    name, blob = case
    path = "case-%s.zst" % name
    with open(path, "wb") as f:
        f.write(blob)
    try:
        p = subprocess.run([memana, "report", path, "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
    except subprocess.TimeoutExpired:
        return "%s hang" % name
    except OSError as e:
        return "%s cannot run memana: %s" % (name, e)
    finally:
        os.unlink(path)
    err = p.stderr.decode(errors="replace").strip().splitlines()
    if p.returncode == 0:
        try:
            json.loads(p.stdout)
        except ValueError:
            return "%s exit 0 with invalid JSON" % name
        bad = [l for l in err if not l.startswith("memana: warning: ")]
        if bad:
            return "%s exit 0 with stderr %r" % (name, bad[:2])
        return None
    if p.returncode == 3:
        if len(err) != 1 or not err[0].startswith("memana: error: ") or path not in err[0]:
            return "%s exit 3 without one error line naming the file: %r" % (name, err[:3])
        return None
    return "%s exit %d: %r" % (name, p.returncode, err[-3:])

with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
    results = list(ex.map(run, cases))
bad = [r for r in results if r]
print(len(cases), len(bad))
for r in bad[:20]:
    print(r)
EOP
read -r n_cases n_bad <<<"$(head -n 1 sweep.txt)"
num "$n_cases" -gt 100 "swept $n_cases damaged traces"
is "$n_bad" 0 "every damaged trace: exit 0 with valid JSON, or 3 with one error line naming the file"
[ "$n_bad" != 0 ] && diag "$(tail -n +2 sweep.txt)"

done_testing
