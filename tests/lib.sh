# tests/lib.sh — sourced by every tests/e2e/NNNN-name.sh (git t/README style).
# Prints TAP: each check prints "ok N - desc" or "not ok N - desc" (with a
# diagnostic showing got/want), and done_testing prints the plan at the end.
# Each script runs in its own temporary directory, removed on exit (kept when
# MEMREC_TEST_KEEP=1, so a failure can be inspected).
#
# Locations: MEMREC_BUILD (exported by `make check`; defaults to ../build next
# to this file), MEMREC, MEMANA, PROGS (ground-truth programs), SRC (source tree).
# JSON: jget FILE 'python expression over d'; site FILE LIST FUNC.

SRC=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
: "${MEMREC_BUILD:=$SRC/build}"
# MEMREC_BIN / MEMANA_BIN override one tool (e.g. an ASan memana:
# MEMANA_BIN=build-asan/bin/memana tests/e2e/2000-bad-input.sh).
MEMREC=${MEMREC_BIN:-$MEMREC_BUILD/bin/memrec}
MEMANA=${MEMANA_BIN:-$MEMREC_BUILD/bin/memana}
PROGS="$MEMREC_BUILD/tests/progs"
# python3 for JSON checks (outside traced runs): any python3 on PATH.
PY=${PYTHON:-python3}
export MEMREC_LOG=${MEMREC_LOG:-1}

T_N=0
T_FAILED=0
T_PLANNED=

T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/memrec-test.XXXXXX") || exit 1
t_cleanup() {
	if [ "${MEMREC_TEST_KEEP:-0}" = 1 ] || { [ "$T_FAILED" -gt 0 ] && [ "${MEMREC_TEST_KEEP:-0}" = fail ]; }; then
		echo "# kept $T_DIR" >&2
	else
		rm -rf "$T_DIR"
	fi
}
trap t_cleanup EXIT
cd "$T_DIR" || exit 1

# plan N: optional up-front plan (otherwise done_testing prints it).
plan() {
	T_PLANNED=$1
	echo "1..$1"
}

diag() {
	local line
	printf '%s\n' "$@" | while IFS= read -r line; do
		printf '# %s\n' "$line"
	done
}

# Show a file's first lines as diagnostics (for failures).
diag_file() {
	[ -f "$1" ] || { diag "($1 does not exist)"; return; }
	diag "--- $1:"
	diag "$(head -n "${2:-20}" "$1")"
}

pass() {
	T_N=$((T_N + 1))
	echo "ok $T_N - $*"
}

fail() {
	T_N=$((T_N + 1))
	T_FAILED=$((T_FAILED + 1))
	echo "not ok $T_N - $*"
}

# ok DESC CMD [ARGS...]: passes when CMD exits 0.
ok() {
	local desc=$1
	shift
	if "$@"; then
		pass "$desc"
	else
		fail "$desc"
		diag "command failed: $*"
	fi
}

# is GOT WANT DESC: string equality.
is() {
	if [ "$1" = "$2" ]; then
		pass "$3"
	else
		fail "$3"
		diag "     got: '$1'" "expected: '$2'"
	fi
}

# isnt GOT UNWANTED DESC
isnt() {
	if [ "$1" != "$2" ]; then
		pass "$3"
	else
		fail "$3"
		diag "     got: '$1'" "expected anything else"
	fi
}

# like GOT ERE DESC: extended regular expression match (grep -E).
like() {
	if printf '%s\n' "$1" | grep -Eq -- "$2"; then
		pass "$3"
	else
		fail "$3"
		diag "     got: '$1'" "expected to match: /$2/"
	fi
}

unlike() {
	if ! printf '%s\n' "$1" | grep -Eq -- "$2"; then
		pass "$3"
	else
		fail "$3"
		diag "     got: '$1'" "expected not to match: /$2/"
	fi
}

# num GOT OP WANT DESC: integer comparison (OP: -eq -ne -lt -le -gt -ge).
num() {
	if [[ "$1" =~ ^-?[0-9]+$ ]] && test "$1" "$2" "$3"; then
		pass "$4"
	else
		fail "$4"
		diag "     got: '$1'" "expected: $2 $3"
	fi
}

# within GOT WANT PERCENT DESC: |got - want| <= want * percent / 100.
within() {
	if "$PY" -c 'import sys
g, w, p = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
sys.exit(0 if abs(g - w) <= abs(w) * p / 100 else 1)' "$1" "$2" "$3" 2>/dev/null; then
		pass "$4"
	else
		fail "$4"
		diag "     got: '$1'" "expected: $2 within $3%"
	fi
}

# todo_is GOT WANT DESC REASON: a known gap (TAP TODO): reported, not fatal.
todo_is() {
	T_N=$((T_N + 1))
	if [ "$1" = "$2" ]; then
		echo "ok $T_N - $3 # TODO $4"
	else
		echo "not ok $T_N - $3 # TODO $4"
		diag "     got: '$1'" "expected: '$2'"
	fi
}

skip() {
	T_N=$((T_N + 1))
	echo "ok $T_N # skip $*"
}

done_testing() {
	if [ -z "$T_PLANNED" ]; then
		echo "1..$T_N"
	fi
	[ "$T_FAILED" -eq 0 ]
}

# Abort the whole script (missing tool, unusable setup).
bail() {
	echo "Bail out! $*"
	exit 255
}

need_tools() {
	local f
	for f in "$MEMREC" "$MEMANA"; do
		[ -x "$f" ] || bail "$f is not built (run make)"
	done
	command -v "$PY" >/dev/null || bail "python3 not found"
}

need_prog() {
	[ -x "$PROGS/$1" ] || bail "$PROGS/$1 is not built (run make progs)"
}

# ---- JSON helpers -----------------------------------------------------------

# jget FILE EXPR: evaluate a Python expression over d = json.load(FILE) and
# print the result (strings bare; bool/None/list/dict as JSON; numbers as is).
# Prints "<error: ...>" and returns 1 when the file is not JSON or the
# expression fails (so a comparison with it fails visibly).
jget() {
	"$PY" - "$1" "$2" <<'EOF'
import json, sys
try:
    with open(sys.argv[1]) as f:
        d = json.load(f)
    r = eval(sys.argv[2], {"json": json}, {"d": d})
except Exception as e:
    print("<error: %s: %s>" % (type(e).__name__, e))
    sys.exit(1)
if isinstance(r, str):
    print(r)
elif isinstance(r, float) and r.is_integer():
    print(int(r))
elif isinstance(r, (bool, list, dict)) or r is None:
    print(json.dumps(r))
else:
    print(r)
EOF
}

# site FILE LIST FUNC: sum over the sites of hotspots[LIST] whose first stack
# frame's function is FUNC (exactly, or FUNC followed by a demangled "(...)"
# parameter list); print "CALLS BYTES NSITES" ("0 0 0" when none).
site() {
	"$PY" - "$1" "$2" "$3" <<'EOF'
import json, sys
try:
    with open(sys.argv[1]) as f:
        d = json.load(f)
    sites = d["hotspots"][sys.argv[2]]
except Exception as e:
    print("<error: %s: %s>" % (type(e).__name__, e))
    sys.exit(1)
want = sys.argv[3]
def name_is(fn):
    return fn == want or (fn.startswith(want + "(") and fn.endswith(")"))
calls = nbytes = n = 0
for s in sites:
    st = s.get("stack") or []
    if st and name_is(st[0].get("function", "")):
        calls += s["calls"]
        nbytes += s["bytes"]
        n += 1
print(calls, nbytes, n)
EOF
}

# site_calls / site_bytes: one field of `site`.
site_calls() { site "$@" | cut -d' ' -f1; }
site_bytes() { site "$@" | cut -d' ' -f2; }

# first_fn FILE LIST [I]: function of the first stack frame of site I (0).
first_fn() {
	jget "$1" "d['hotspots']['$2'][${3:-0}]['stack'][0]['function']"
}

# sites_summary FILE LIST: one diagnostic line per site (calls, bytes, first
# two frames), for failure output.
sites_summary() {
	"$PY" - "$1" "$2" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    for s in d["hotspots"][sys.argv[2]][:40]:
        fr = " <- ".join("%s (%s)" % (f.get("function"), f.get("module", "").rsplit("/", 1)[-1]) for f in s.get("stack", [])[:3])
        print("%8d calls %10d bytes  %s" % (s["calls"], s["bytes"], fr))
except Exception as e:
    print("<error: %s: %s>" % (type(e).__name__, e))
EOF
}

# record OUT PROG [ARGS...]: run PROG under memrec -q -o OUT; stdout and
# stderr of the run go to OUT.stdout/OUT.stderr; returns memrec's status.
record() {
	local out=$1
	shift
	"$MEMREC" -q -o "$out" -- "$@" >"$out.stdout" 2>"$out.stderr"
}

# report TRACE JSON: memana report --json (large --top) into JSON; stderr to
# JSON.stderr; returns memana's status.
report() {
	"$MEMANA" report "$1" --top 1000 --json >"$2" 2>"$2.stderr"
}

# figs FILE LIST FUNC...: "FUNC=CALLS/BYTES" for each FUNC (site sums), one
# line, space separated: compare a whole trace's figures in one assertion.
figs() {
	local f=$1 l=$2 out= fn
	shift 2
	for fn in "$@"; do
		out="$out${out:+ }$fn=$(site "$f" "$l" "$fn" | cut -d' ' -f1,2 | tr ' ' /)"
	done
	printf '%s\n' "$out"
}

# wrote_paths FILE: the PATHs of memrec's summary lines in FILE (memrec's
# stderr), one per line, in order:
#   memrec: wrote PATH (N events, SIZE bytes[, incomplete])
wrote_paths() {
	sed -nE 's/^memrec: wrote (.+) \([0-9]+ events, [0-9]+ bytes(, incomplete)?\)$/\1/p' "$1"
}

# wrote_check FILE: every summary line of FILE names an existing absolute
# path whose size is the SIZE given, whose N events are its alloc and free
# records, and which says ", incomplete" exactly when the trace has no end
# record; prints the offending lines (nothing when all are right).
wrote_check() {
	local line path size ev inc n_ev has_end
	grep '^memrec: wrote ' "$1" | while IFS= read -r line; do
		path=$(printf '%s\n' "$line" | sed -nE 's/^memrec: wrote (.+) \(([0-9]+) events, ([0-9]+) bytes(, incomplete)?\)$/\1/p')
		ev=$(printf '%s\n' "$line" | sed -nE 's/^memrec: wrote (.+) \(([0-9]+) events, ([0-9]+) bytes(, incomplete)?\)$/\2/p')
		size=$(printf '%s\n' "$line" | sed -nE 's/^memrec: wrote (.+) \(([0-9]+) events, ([0-9]+) bytes(, incomplete)?\)$/\3/p')
		inc=$(printf '%s\n' "$line" | sed -nE 's/^memrec: wrote (.+) \(([0-9]+) events, ([0-9]+) bytes(, incomplete)?\)$/\4/p')
		case $path in
		/*) ;;
		*) echo "not absolute: $line"; continue ;;
		esac
		[ -f "$path" ] || { echo "missing file: $line"; continue; }
		[ "$(stat -c %s "$path")" = "$size" ] || echo "size $(stat -c %s "$path") differs: $line"
		"$MEMANA" dump "$path" >"$T_DIR/wrote_check.dump" 2>/dev/null
		n_ev=$(grep -cE '^@[0-9]+ (alloc|free) ' "$T_DIR/wrote_check.dump")
		[ "$n_ev" = "$ev" ] || echo "$n_ev alloc/free records: $line"
		has_end=$(grep -cE '^@[0-9]+ end ' "$T_DIR/wrote_check.dump")
		if [ -n "$inc" ] && [ "$has_end" != 0 ]; then echo "has an end record: $line"; fi
		if [ -z "$inc" ] && [ "$has_end" = 0 ]; then echo "no end record: $line"; fi
	done
}

# replay_meta TRACE: ingest TRACE and print the replay's consistency
# counters "inconsistent unmatched_frees late_events" (docs/schema.md).
replay_meta() {
	rm -f "$1.db"
	"$MEMANA" ingest "$1" -o "$1.db" >/dev/null 2>"$1.db.err" || { echo "<ingest failed: $(head -n 1 "$1.db.err")>"; return 1; }
	sqlite3 "$1.db" "SELECT group_concat(value, ' ') FROM (SELECT value FROM meta WHERE key IN ('inconsistent', 'unmatched_frees', 'late_events') ORDER BY key)"
}

# ppid_of TRACE: the ppid of the trace's PROCESS record (memana dump).
ppid_of() {
	"$MEMANA" dump "$1" 2>/dev/null | sed -nE 's/.* ppid=([0-9]+) .*/\1/p' | head -n 1
}
