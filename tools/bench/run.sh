#!/bin/bash
# The benchmark kit (`make bench`): every workload untraced, under memrec and
# under heaptrack (when installed), alternately BENCH_RUNS times, then the
# analysis of the last trace of each (`memana report` and `heaptrack_print`),
# alternately BENCH_RUNS times (medians are printed).
# Prints Markdown tables on stdout (progress on stderr).
#
#   BENCH_RUNS=N        runs per tool and workload (default 3)
#   BENCH_QUICK=1       tiny sizes (a smoke test, a minute or so)
#   BENCH_ONLY="a b"    only these workloads (names as in the table)
#   BENCH_TREE_NODES=N  nodes of the tree builder (default 3000000)
#   BENCH_NO_HEAPTRACK=1  skip heaptrack even when installed
#   BUILD=dir           where memrec/memana are (default build)
#
# Timing and peak RSS come from build/bench/runstat (tools/bench/runstat.c):
# wall time around fork/exec/wait4, and the ru_maxrss wait4 reports, i.e. the
# largest RSS of any process of that run (for a traced run: the program, or a
# helper of the profiler, such as heaptrack_interpret, if that is larger).
# No hyperfine or /usr/bin/time needed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
BUILD=${BUILD:-build}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
B=$BUILD/bench
MEMREC=$root/$BUILD/bin/memrec
MEMANA=$root/$BUILD/bin/memana
CC=${CC:-cc}

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

{ [ -x "$MEMREC" ] && [ -x "$MEMANA" ]; } || die "build first: make all (missing $MEMREC or $MEMANA)"
case $RUNS in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a positive integer" ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/memrec-bench.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

load0=$(cut -d' ' -f1-3 /proc/loadavg 2> /dev/null || echo unknown)
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

# ---- build the workloads and the timer -----------------------------------
mkdir -p "$B"
for p in runstat tight churn tree; do
	if [ ! -x "$B/$p" ] || [ "$here/$p.c" -nt "$B/$p" ]; then
		log "bench: building $B/$p"
		$CC -std=gnu11 -O2 -g -Wall -pthread -o "$B/$p" "$here/$p.c"
	fi
done
RS=$root/$B/runstat

# ---- sizes ---------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
	N_TIGHT=200000 N_CHURN=50000 N_TREE=${BENCH_TREE_NODES:-100000}
	N_SQL=5000 N_PY=5000 N_PERL=3000
else
	N_TIGHT=10000000 N_CHURN=2000000 N_TREE=${BENCH_TREE_NODES:-3000000}
	N_SQL=200000 N_PY=200000 N_PERL=100000
fi

# ---- the real programs ---------------------------------------------------
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=$(command -v python3 || true); fi
SQLITE3=$(command -v sqlite3 || true)
PERL=$(command -v perl || true)
CC1PLUS=""
if command -v g++ >/dev/null 2>&1; then
	CC1PLUS=$(g++ -print-prog-name=cc1plus)
	case $CC1PLUS in /*) ;; *) CC1PLUS=$(command -v "$CC1PLUS" || true) ;; esac
	[ -x "$CC1PLUS" ] || CC1PLUS=""
fi
[ -n "$SQLITE3" ] && sed "s/@ROWS@/$N_SQL/g" "$here/sqlite.sql.in" > "$tmp/w.sql"
[ -n "$CC1PLUS" ] && g++ -E "$here/unit.cpp" -o "$tmp/unit.ii"

ALL="tight churn1 churn2 tree sqlite3 python3 cc1plus perl"
WORKLOADS=${BENCH_ONLY:-$ALL}

# wl NAME PREFIX...: run workload NAME behind PREFIX (the timer, the profiler).
wl() {
	local w=$1
	shift
	case $w in
	tight) "$@" "$root/$B/tight" "$N_TIGHT" < /dev/null ;;
	churn1) "$@" "$root/$B/churn" 1 "$N_CHURN" < /dev/null ;;
	churn2) "$@" "$root/$B/churn" 2 "$N_CHURN" < /dev/null ;;
	tree) "$@" "$root/$B/tree" "$N_TREE" < /dev/null ;;
	sqlite3) "$@" "$SQLITE3" :memory: < "$tmp/w.sql" ;;
	python3) "$@" "$PY" "$here/alloc.py" "$N_PY" < /dev/null ;;
	cc1plus) "$@" "$CC1PLUS" -quiet -O2 -frandom-seed=1 "$tmp/unit.ii" -o - < /dev/null ;;
	perl) "$@" "$PERL" "$here/text.pl" "$N_PERL" < /dev/null ;;
	*) die "unknown workload $w" ;;
	esac
}
available() {
	case $1 in
	sqlite3) [ -n "$SQLITE3" ] ;;
	python3) [ -n "$PY" ] ;;
	cc1plus) [ -n "$CC1PLUS" ] ;;
	perl) [ -n "$PERL" ] ;;
	*) true ;;
	esac
}
describe() {
	case $1 in
	tight) echo "tight malloc+free loop, $N_TIGHT pairs" ;;
	churn1) echo "churn 10-20 frames deep, ring of 256 blocks, 1 thread x $N_CHURN" ;;
	churn2) echo "the same churn on 2 threads x $N_CHURN" ;;
	tree) echo "balanced tree of $N_TREE 96-byte nodes, freed but every 1000th (leaks)" ;;
	sqlite3) echo "sqlite3 shell, :memory:, $N_SQL rows: insert, 2 indexes, queries, update, delete" ;;
	python3) echo "$PY tools/bench/alloc.py $N_PY (objects, dicts, lists, strings)" ;;
	cc1plus) echo "cc1plus -O2 on unit.cpp preprocessed ($(wc -l < "$tmp/unit.ii") lines: map, string, vector)" ;;
	perl) echo "perl tools/bench/text.pl $N_PERL (split, regex, hashes, sort)" ;;
	esac
}

HT=""
if [ "${BENCH_NO_HEAPTRACK:-0}" != 1 ] && command -v heaptrack > /dev/null 2>&1 &&
	command -v heaptrack_print > /dev/null 2>&1; then
	HT=$(command -v heaptrack)
fi
TOOLS="untraced memrec"
[ -n "$HT" ] && TOOLS="$TOOLS heaptrack"

# heaptrack writes its banner to the program's stdout: drop it to compare.
strip_heaptrack() {
	sed -e '/^heaptrack output will be written to /d' \
		-e '/^[^ ]*libheaptrack_preload\.so$/d' \
		-e '/^[^ ]*libheaptrack_inject\.so$/d' \
		-e '/^starting application, this might take some time\.\.\.$/d' \
		-e '/^Heaptrack finished! Now run the following to investigate the data:$/,$d' "$1"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# json_num FILE KEY: the first "KEY": NUMBER in memana's JSON
json_num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -n 1 | sed 's/.*: *//'; }
fmt() { awk -v x="$1" -v f="$2" 'BEGIN { if (x == "" || x == "nan") print "–"; else printf f, x }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.6g", a / b }'; }
mb() { awk -v k="$1" 'BEGIN { if (k == "") print "–"; else printf "%.1f", k / 1024 }'; }

# ---- run -----------------------------------------------------------------
for w in $WORKLOADS; do
	available "$w" || { log "bench: $w: program not found, skipped"; continue; }
	log "bench: $w: $(describe "$w")"
	for t in $TOOLS; do echo OK > "$tmp/$w.$t.ok"; done
	for i in $(seq 1 "$RUNS"); do
		for t in $TOOLS; do
			st=0
			case $t in
			untraced)
				wl "$w" "$RS" "$tmp/$w.$t.stat" > "$tmp/$w.$t.out" 2> "$tmp/$w.$t.err" || st=$?
				;;
			memrec)
				rm -f "$tmp/$w.m.zst"
				wl "$w" "$RS" "$tmp/$w.$t.stat" "$MEMREC" -q --force -o "$tmp/$w.m.zst" -- \
					> "$tmp/$w.$t.out" 2> "$tmp/$w.$t.err" || st=$?
				[ -f "$tmp/$w.m.zst" ] && stat -c %s "$tmp/$w.m.zst" >> "$tmp/$w.$t.bytes"
				;;
			heaptrack)
				rm -f "$tmp/$w.h".*
				wl "$w" "$RS" "$tmp/$w.$t.stat" "$HT" -o "$tmp/$w.h" \
					> "$tmp/$w.$t.raw" 2> "$tmp/$w.$t.err" || st=$?
				strip_heaptrack "$tmp/$w.$t.raw" > "$tmp/$w.$t.out"
				for f in "$tmp/$w.h".*; do [ -f "$f" ] && stat -c %s "$f" >> "$tmp/$w.$t.bytes"; done
				;;
			esac
			if [ "$st" != 0 ]; then
				echo "FAIL($st)" > "$tmp/$w.$t.ok"
				log "bench: $w: $t run $i exited $st; stderr:"
				tail -n 5 "$tmp/$w.$t.err" >&2 || true
			elif [ "$t" != untraced ] && ! cmp -s "$tmp/$w.untraced.out" "$tmp/$w.$t.out"; then
				echo DIFF > "$tmp/$w.$t.ok"
				log "bench: $w: $t output differs from the untraced output (run $i)"
				diff "$tmp/$w.untraced.out" "$tmp/$w.$t.out" | head -n 6 >&2 || true
			fi
			log "bench:   run $i $t $(tail -n 1 "$tmp/$w.$t.stat" | awk '{ printf "%.3f s", $1 }')"
		done
	done
	# the analysis of the last trace of each profiler, RUNS times, alternately
	h=""
	if [ -n "$HT" ]; then
		# shellcheck disable=SC2012 # our own file names
		h=$(ls "$tmp/$w.h".* 2> /dev/null | head -n 1 || true)
	fi
	for i in $(seq 1 "$RUNS"); do
		if [ -f "$tmp/$w.m.zst" ]; then
			"$RS" "$tmp/$w.ana.memrec" "$MEMANA" report "$tmp/$w.m.zst" > /dev/null 2> "$tmp/$w.ana.err" ||
				log "bench: $w: memana report failed"
		fi
		if [ -n "$h" ]; then
			"$RS" "$tmp/$w.ana.heaptrack" heaptrack_print "$h" > "$tmp/$w.hp.txt" 2> "$tmp/$w.hp.err" ||
				log "bench: $w: heaptrack_print failed"
		fi
	done
	if [ -f "$tmp/$w.m.zst" ]; then
		"$MEMANA" report --json "$tmp/$w.m.zst" > "$tmp/$w.json" 2>> "$tmp/$w.ana.err" || true
	fi
	rm -f "$tmp/$w.m.zst" "$tmp/$w.h".* "$tmp/$w.hp.err"
done

# ---- machine -------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2> /dev/null | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2> /dev/null)
os=$(. /etc/os-release 2> /dev/null && echo "$PRETTY_NAME" || uname -s)
rev=$(git -C "$root" describe --always --dirty 2> /dev/null || echo unknown)
ver() { "$@" 2> /dev/null | head -n 1 || true; }
echo "## Machine"
echo
echo "- started $started, finished the runs $(date -u '+%H:%M:%S UTC'); memrec at \`$rev\`; BENCH_RUNS=$RUNS, BENCH_QUICK=$QUICK"
echo "- CPU: ${cpu:-unknown}, $(nproc) online CPUs; memory: ${mem:-unknown}"
echo "- OS: $os, kernel $(uname -r)"
echo "- load average (1/5/15 min) at the start: $load0; at the end: $(cut -d' ' -f1-3 /proc/loadavg 2> /dev/null || echo unknown) (anything else running on the machine skews the times)"
# shellcheck disable=SC2086 # CC may be a command with arguments
echo "- cc: $(ver $CC --version)"
[ -n "$HT" ] && echo "- heaptrack: $(ver heaptrack --version)" || echo "- heaptrack: not installed (its rows are omitted)"
[ -n "$SQLITE3" ] && echo "- sqlite3: $(ver "$SQLITE3" --version | cut -d' ' -f1)"
[ -n "$PY" ] && echo "- python3: $(ver "$PY" --version)"
[ -n "$PERL" ] && echo "- perl: $(ver "$PERL" -e 'print "$^V\n"')"
[ -n "$CC1PLUS" ] && echo "- cc1plus: $CC1PLUS ($(ver g++ -dumpfullversion))"
echo

# ---- tables --------------------------------------------------------------
echo "## Workloads"
echo
for w in $WORKLOADS; do available "$w" && echo "- **$w**: $(describe "$w")"; done
echo
echo "## Results"
echo
echo "Wall time: median of $RUNS runs. Events = memrec's allocations + frees (memana report --json totals);"
echo "for heaptrack: its \"calls to allocation functions\" + memrec's frees count. Program RSS: largest"
echo "process of the run (median). Analysis: \`memana report\` / \`heaptrack_print\` (text, to /dev/null), median of $RUNS alternating runs"
echo "on the last run's trace. Output: stdout equal to the untraced run's on every run."
echo
echo "| workload | tool | wall s | slowdown | trace bytes | events | bytes/event | analysis s | analyzer RSS MB | program RSS MB | output |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for w in $WORKLOADS; do
	available "$w" || continue
	base=$(awk '{ print $1 }' "$tmp/$w.untraced.stat" | median)
	frees=""
	allocs=""
	if [ -s "$tmp/$w.json" ]; then
		allocs=$(json_num "$tmp/$w.json" allocations)
		frees=$(json_num "$tmp/$w.json" frees)
	fi
	for t in $TOOLS; do
		wall=$(awk '{ print $1 }' "$tmp/$w.$t.stat" | median)
		rss=$(awk '{ print $2 }' "$tmp/$w.$t.stat" | median)
		slow=$(div "$wall" "$base")
		bytes="" ev="" bpe="" ana="" arss=""
		case $t in
		memrec)
			[ -f "$tmp/$w.$t.bytes" ] && bytes=$(median < "$tmp/$w.$t.bytes")
			[ -n "$allocs" ] && ev=$((allocs + frees))
			;;
		heaptrack)
			[ -f "$tmp/$w.$t.bytes" ] && bytes=$(median < "$tmp/$w.$t.bytes")
			hc=$(sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p' "$tmp/$w.hp.txt" 2> /dev/null || true)
			[ -n "$hc" ] && [ -n "$frees" ] && ev=$((hc + frees))
			;;
		esac
		[ -n "$bytes" ] && [ -n "$ev" ] && bpe=$(div "$bytes" "$ev")
		if [ -f "$tmp/$w.ana.$t" ]; then
			ana=$(awk '{ print $1 }' "$tmp/$w.ana.$t" | median)
			arss=$(awk '{ print $2 }' "$tmp/$w.ana.$t" | median)
		fi
		ok=$(cat "$tmp/$w.$t.ok")
		[ "$t" = untraced ] && ok="(reference)"
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$w" "$t" \
			"$(fmt "$wall" %.3f)" "$(fmt "$slow" '%.2f×')" "$(fmt "$bytes" %.0f)" "$(fmt "$ev" %.0f)" \
			"$(fmt "$bpe" %.2f)" "$(fmt "$ana" %.3f)" "$(mb "$arss")" "$(mb "$rss")" "$ok"
		eval "S_${w}_$t=\$slow B_${w}_$t=\$bytes A_${w}_$t=\$ana R_${w}_$t=\$arss"
	done
done
echo

# the tree builder's known peak and leaks against what the analyzers found
if [ -s "$tmp/tree.json" ]; then
	echo "Tree builder ground truth: peak $((N_TREE * 96)) bytes (the nodes; stdout's 4096-byte buffer comes after the peak and is never freed),"
	echo "leaks $((N_TREE / 1000 + 1)) blocks ($((N_TREE / 1000 * 96 + 4096)) bytes). memana: peak_heap_bytes $(json_num "$tmp/tree.json" peak_heap_bytes),"
	printf '%s' "leaked_allocations $(json_num "$tmp/tree.json" leaked_allocations) ($(json_num "$tmp/tree.json" leaked_bytes) bytes)"
	if [ -s "$tmp/tree.hp.txt" ]; then
		printf '; heaptrack_print: %s, %s' \
			"$(sed -n 's/^peak heap memory consumption: /peak /p' "$tmp/tree.hp.txt")" \
			"$(sed -n 's/^total memory leaked: /leaked /p' "$tmp/tree.hp.txt")"
	fi
	echo "."
	echo
fi

# memana's memory against the trace length (issue 4, acceptance 4): the
# 1-thread churn keeps 256 blocks live at any time, so two lengths have the
# same live set; memana's peak RSS should not grow with the length.
if [ "${BENCH_NO_LENGTHS:-0}" != 1 ]; then
	if [ "$QUICK" = 1 ]; then lens="50000 250000"; else lens="2000000 10000000"; fi
	echo "## memana against the trace length"
	echo
	echo "The 1-thread churn (256 blocks live at any time) at two lengths: one \`memana report\` and one"
	echo "\`memana ingest\` of each trace."
	echo
	echo "| churn iterations | events | trace bytes | report s | report RSS MB | ingest s | ingest RSS MB | database bytes |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
	for n in $lens; do
		log "bench: trace length: churn 1 x $n"
		rm -f "$tmp/len.zst" "$tmp/len.db"
		"$MEMREC" -q --force -o "$tmp/len.zst" -- "$root/$B/churn" 1 "$n" > /dev/null < /dev/null || true
		[ -f "$tmp/len.zst" ] || { log "bench: no trace for churn 1 x $n"; continue; }
		"$RS" "$tmp/len.rep" "$MEMANA" report "$tmp/len.zst" > /dev/null 2>&1 || true
		"$RS" "$tmp/len.ing" "$MEMANA" ingest "$tmp/len.zst" -o "$tmp/len.db" > /dev/null 2>&1 || true
		"$MEMANA" report --json "$tmp/len.zst" > "$tmp/len.json" 2> /dev/null || true
		ev=""
		a=$(json_num "$tmp/len.json" allocations) f=$(json_num "$tmp/len.json" frees)
		[ -n "$a" ] && [ -n "$f" ] && ev=$((a + f))
		dbb=""
		[ -f "$tmp/len.db" ] && dbb=$(stat -c %s "$tmp/len.db")
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$(fmt "$ev" %.0f)" "$(stat -c %s "$tmp/len.zst")" \
			"$(fmt "$(tail -n 1 "$tmp/len.rep" 2> /dev/null | awk '{ print $1 }')" %.3f)" \
			"$(mb "$(tail -n 1 "$tmp/len.rep" 2> /dev/null | awk '{ print $2 }')")" \
			"$(fmt "$(tail -n 1 "$tmp/len.ing" 2> /dev/null | awk '{ print $1 }')" %.3f)" \
			"$(mb "$(tail -n 1 "$tmp/len.ing" 2> /dev/null | awk '{ print $2 }')")" "$(fmt "$dbb" %.0f)"
		rm -f "$tmp/len.zst" "$tmp/len.db" "$tmp/len.rep" "$tmp/len.ing"
	done
	echo
fi

# memrec against the issue's targets (issue 4, acceptance 1-3)
if [ -n "$HT" ]; then
	echo "## memrec against heaptrack and the targets"
	echo
	echo "| workload | memrec slowdown (target) | heaptrack slowdown | trace memrec/heaptrack (target ≤ 0.5) | report/heaptrack_print time (target ≤ 0.33) | analyzer RSS memana/heaptrack_print |"
	echo "|---|---:|---:|---:|---:|---:|"
	for w in $WORKLOADS; do
		available "$w" || continue
		case $w in churn1 | churn2) tg=2 ;; tight | tree) tg=3 ;; *) tg=1.15 ;; esac
		sm="" sh="" bm="" bh="" am="" ah="" rm="" rh=""
		eval "sm=\$S_${w}_memrec sh=\$S_${w}_heaptrack bm=\$B_${w}_memrec bh=\$B_${w}_heaptrack am=\$A_${w}_memrec ah=\$A_${w}_heaptrack rm=\$R_${w}_memrec rh=\$R_${w}_heaptrack"
		mark() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "") print ""; else if (v + 0 <= t + 0) print " ✓"; else print " ✗" }'; }
		printf '| %s | %s (≤ %s)%s | %s | %s%s | %s%s | %s |\n' "$w" \
			"$(fmt "$sm" '%.2f×')" "$tg" "$(mark "$sm" "$tg")" "$(fmt "$sh" '%.2f×')" \
			"$(fmt "$(div "$bm" "$bh")" %.2f)" "$(mark "$(div "$bm" "$bh")" 0.5)" \
			"$(fmt "$(div "$am" "$ah")" %.2f)" "$(mark "$(div "$am" "$ah")" 0.3333)" \
			"$(fmt "$(div "$rm" "$rh")" %.2f)"
	done
	echo
	echo "✓/✗: within the target or not. The slowdown target also requires memrec below heaptrack on every row."
fi
