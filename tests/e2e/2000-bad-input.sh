#!/bin/bash
# Acceptance 4: memana on bad input — an empty file, random bytes, a wrong
# magic, an unsupported version, a corrupt record, a damaged zstd block, a
# nonexistent file, a directory — exits 3 with one line on stderr naming the
# file (and the byte offset for a corrupt trace), never crashes. A truncated
# trace (cut at 60%, or left by a SIGKILLed program) is not an error: exit 0,
# "complete": false, a warning, and what was recorded before the cut.
# Usage errors exit 2.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_crash
need_prog gt_tiny

record good.zst "$PROGS/gt_crash" exit 100000
is "$?" 0 "gt_crash exit 100000 under memrec exits 0"
report good.zst good.json
is "$?" 0 "report of the good trace exits 0"
is "$(jget good.json 'd["trace"]["complete"]')" true "good trace is complete"
is "$(site good.json allocations crash_alloc | cut -d' ' -f1,2)" "10 10000" "good trace: crash_alloc 10 calls, 10000 bytes"
full_noise=$(site_calls good.json allocations noise_alloc)
is "$full_noise" 100000 "good trace: noise_alloc 100000 calls"

# ---- bad files ---------------------------------------------------------------
: >empty.zst
head -c 4096 /dev/urandom >random.zst
# random bytes that start with the magic and a good header
{ head -c 16 good.zst; head -c 4096 /dev/urandom; } >random-after-header.zst
{ printf 'X'; tail -c +2 good.zst; } >magic.zst
{ head -c 8 good.zst; printf '\002\000\000\000'; tail -c +13 good.zst; } >version.zst
mkdir dir.zst

# A corrupt record: the decompressed stream with the tag of a record in the
# middle replaced by 0x7f, recompressed (deterministic: the decoder must
# name that byte offset).
"$MEMANA" dump good.zst >good.dump 2>good.dump.err
is "$?" 0 "dump of the good trace exits 0"
n_lines=$(grep -c '^@' good.dump)
mid_off=$(grep '^@' good.dump | sed -n "$((n_lines / 2))p" | sed -E 's/^@([0-9]+) .*/\1/')
"$PY" - good.zst badtag.zst "$mid_off" <<'EOP'
import subprocess, sys
data = open(sys.argv[1], "rb").read()
raw = bytearray(subprocess.run(["zstd", "-dcq"], input=data[16:], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL).stdout)
off = int(sys.argv[3])
raw[off] = 0x7f
z = subprocess.run(["zstd", "-cq"], input=bytes(raw), stdout=subprocess.PIPE, check=True).stdout
open(sys.argv[2], "wb").write(data[:16] + z)
EOP

# A damaged zstd block: the block type of a block in the middle of the first
# frame set to "reserved" (deterministically invalid).
"$PY" - good.zst badblock.zst <<'EOP'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
p = 16
assert data[p:p + 4] == b"\x28\xb5\x2f\xfd", "not a zstd frame"
fhd = data[p + 4]
fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
p += 5 + (0 if single else 1) + [0, 1, 2, 4][dict_flag] + [1 if single else 0, 2, 4, 8][fcs_flag]
blocks = []
while p + 3 <= len(data):
    bh = data[p] | data[p + 1] << 8 | data[p + 2] << 16
    last, btype, size = bh & 1, (bh >> 1) & 3, bh >> 3
    blocks.append(p)
    p += 3 + (1 if btype == 1 else size)
    if last:
        break
victim = blocks[len(blocks) // 2]
data[victim] |= 0x6  # block type 3: reserved
open(sys.argv[2], "wb").write(bytes(data))
print("# zstd blocks in the first frame: %d" % len(blocks))
EOP

# Bytes flipped in the middle of the zstd data: an error or, by chance, a
# decodable stream — never a crash.
"$PY" - good.zst flipped.zst <<'EOP'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
mid = 16 + (len(data) - 16) // 2
for i in range(mid, min(mid + 64, len(data))):
    data[i] ^= 0xff
open(sys.argv[2], "wb").write(bytes(data))
EOP

# A file that claims to be a database but is not
{ printf 'SQLite format 3\000'; head -c 4096 /dev/urandom; } >fake.db

check_bad() { # FILE WHAT [REGEX for the message]
	local f=$1 what=$2 re=${3:-}
	local cmd
	for cmd in report "report --json" dump ingest check; do
		local out=$T_DIR/out.$$ err=$T_DIR/err.$$
		rm -f x.db
		# shellcheck disable=SC2086,SC2046
		"$MEMANA" $cmd "$f" $([ "$cmd" = ingest ] && echo "-o x.db") >"$out" 2>"$err"
		local st=$?
		is "$st" 3 "$what: memana $cmd exits 3"
		if [ "$st" -ge 128 ]; then
			diag "memana $cmd crashed on $what (status $st)"
		fi
		local lines
		lines=$(wc -l <"$err")
		local msg
		msg=$(cat "$err")
		if [ "$lines" -eq 1 ] && [[ "$msg" == "memana: error: "* ]] && [[ "$msg" == *"$f"* ]]; then
			pass "$what: memana $cmd prints one error line naming the file"
		else
			fail "$what: memana $cmd prints one error line naming the file"
			diag "stderr: $msg"
		fi
		if [ -n "$re" ]; then
			like "$msg" "$re" "$what: memana $cmd message"
		fi
		[ "$cmd" = ingest ] && { [ -e x.db ] && fail "$what: ingest leaves no database" || pass "$what: ingest leaves no database"; }
	done
}

check_bad empty.zst "empty file"
check_bad random.zst "random bytes" "not a memrec trace"
check_bad random-after-header.zst "random bytes after a good header" "byte [0-9]+"
check_bad magic.zst "wrong magic" "not a memrec trace"
check_bad version.zst "format version 2" "version"
check_bad badtag.zst "corrupt record" "byte $mid_off .*0x7f"
check_bad badblock.zst "damaged zstd block" "byte [0-9]+"
check_bad no-such-file.zst "nonexistent file" "cannot open 'no-such-file.zst': No such file or directory"
check_bad dir.zst "a directory" "Is a directory"
for cmd in report check; do
	"$MEMANA" $cmd fake.db >out 2>err
	st=$?
	is "$st" 3 "a fake database: memana $cmd exits 3"
	is "$(wc -l <err)" 1 "a fake database: memana $cmd prints one line"
done

for cmd in report dump; do
	"$MEMANA" $cmd flipped.zst >out 2>err
	st=$?
	if [ "$st" = 0 ] || [ "$st" = 3 ]; then
		pass "flipped bytes: memana $cmd exits 0 or 3 ($st), no crash"
	else
		fail "flipped bytes: memana $cmd exits 0 or 3, no crash"
		diag "status $st: $(head -c 500 err)"
	fi
done

# ---- truncated traces --------------------------------------------------------
check_truncated() { # FILE WHAT MIN_NOISE MAX_NOISE
	local f=$1 what=$2
	"$MEMANA" report "$f" --json --top 1000 >"$f.json" 2>"$f.err"
	is "$?" 0 "$what: report exits 0"
	is "$(jget "$f.json" 'd["trace"]["complete"]')" false "$what: \"complete\": false"
	like "$(cat "$f.err")" "^memana: warning: .*'$f'.*truncated" "$what: warning on stderr naming the file"
	is "$(site "$f.json" allocations crash_alloc | cut -d' ' -f1,2)" "10 10000" "$what: crash_alloc's 10 calls, 10000 bytes are there"
	is "$(site "$f.json" leaked crash_alloc | cut -d' ' -f1,2)" "10 10000" "$what: crash_alloc's blocks live at the cut"
	"$MEMANA" report "$f" >"$f.txt" 2>"$f.txt.err"
	is "$?" 0 "$what: text report exits 0"
	ok "$what: text report says the trace is incomplete" grep -qiE 'truncated|incomplete|complete: *(no|false)' "$f.txt"
	"$MEMANA" dump "$f" >"$f.dump" 2>"$f.dump.err"
	is "$?" 0 "$what: dump exits 0"
	like "$(cat "$f.dump.err")" "warning: .*truncated" "$what: dump warns"
	"$MEMANA" ingest "$f" -o "$f.db" >/dev/null 2>"$f.ingest.err"
	is "$?" 0 "$what: ingest exits 0"
	like "$(cat "$f.ingest.err")" "warning: .*truncated" "$what: ingest warns"
	is "$(sqlite3 "$f.db" "SELECT value FROM meta WHERE key = 'complete'")" 0 "$what: meta.complete = 0 in the database"
	"$MEMANA" check "$f" --max-leaked 1G >/dev/null 2>&1
	is "$?" 0 "$what: check runs on it"
}

size=$(stat -c %s good.zst)
head -c $((size * 60 / 100)) good.zst >cut60.zst
check_truncated cut60.zst "trace cut at 60%"
noise=$(site_calls cut60.zst.json allocations noise_alloc)
num "$noise" -lt "$full_noise" "trace cut at 60%: fewer noise allocations than the full trace ($noise)"

record killed.zst "$PROGS/gt_crash" kill
is "$?" 137 "gt_crash kill: memrec exits 137 (SIGKILL)"
check_truncated killed.zst "SIGKILLed program"
is "$(site_calls killed.zst.json allocations noise_alloc)" 0 "SIGKILLed program: nothing after the kill"

# every cut of a small trace: exit 0 (truncated) or 3 (cut inside the header), never a crash
record tiny.zst "$PROGS/gt_tiny"
tsize=$(stat -c %s tiny.zst)
bad_cuts=""
for cut in $(seq 0 $((tsize / 40 + 1)) "$tsize"); do
	head -c "$cut" tiny.zst >cut.zst
	"$MEMANA" report cut.zst --json >cut.json 2>cut.err
	st=$?
	if [ "$cut" -lt 16 ]; then want=3; else want=0; fi
	[ "$cut" = "$tsize" ] && want=0
	if [ "$st" != "$want" ]; then
		bad_cuts="$bad_cuts $cut:$st"
		diag "cut at $cut of $tsize: status $st (want $want): $(head -c 300 cut.err)"
	elif [ "$st" = 0 ] && [ "$cut" != "$tsize" ] && [ "$(jget cut.json 'd["trace"]["complete"]')" != false ]; then
		bad_cuts="$bad_cuts $cut:complete"
	fi
done
is "$bad_cuts" "" "every cut of a small trace: truncated report (0) or bad header (3)"

# ---- usage errors --------------------------------------------------------------
"$MEMANA" >out 2>err
is "$?" 2 "memana without a command exits 2"
"$MEMANA" frobnicate good.zst >out 2>err
is "$?" 2 "unknown command exits 2"
"$MEMANA" report >out 2>err
is "$?" 2 "report without a file exits 2"
"$MEMANA" report good.zst --top x >out 2>err
is "$?" 2 "report --top x exits 2"
"$MEMANA" report good.zst --no-such-option >out 2>err
is "$?" 2 "report with an unknown option exits 2"
"$MEMANA" check good.zst --max-peak 12X >out 2>err
is "$?" 2 "check --max-peak 12X exits 2"
"$MEMANA" check good.zst --max-leaked -1 >out 2>err
is "$?" 2 "check --max-leaked -1 exits 2"
"$MEMANA" dump >out 2>err
is "$?" 2 "dump without a file exits 2"
"$MEMANA" --help >out 2>err
is "$?" 0 "memana --help exits 0"
"$MEMANA" report --help >out 2>err
is "$?" 0 "memana report --help exits 0"
ok "report --help explains the definitions" grep -q 'temporary' out

done_testing
