#!/bin/bash
# Acceptance 1 (fork, exec, vfork, posix_spawn, memrec's list of traces;
# .notes/PLAN3.md decisions 1-4). gt_fork's processes each make a known
# number of allocations from their own functions; every process leaves its
# own complete trace (named by the pattern's %n and %p) holding exactly its
# own allocations — nothing of the parent's pending buffers written twice,
# nothing of its own lost — and memrec lists every trace it produced.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_fork
need_prog gt_exec2
command -v sqlite3 >/dev/null || bail "sqlite3 not found"

E2="$PROGS/gt_exec2"
FNS="parent_before parent_after child1_alloc child2_alloc exec2_alloc"
# figures per function, in FNS order (calls/bytes): see gt_fork.c
zero="parent_before=0/0 parent_after=0/0 child1_alloc=0/0 child2_alloc=0/0 exec2_alloc=0/0"
want_fig() { # FN=C/B ...: zero with those replaced
	local w=$zero kv
	for kv in "$@"; do
		w=$(printf '%s\n' "$w" | sed -E "s#(^| )${kv%%=*}=[0-9]+/[0-9]+#\1$kv#")
	done
	printf '%s\n' "$w"
}

# check_trace TRACE LABEL PID EXPECTED-FIGS: complete, pid, exact figures.
check_trace() {
	local t=$1 label=$2 pid=$3 want=$4
	if [ ! -f "$t" ]; then
		fail "$label: trace $t exists"
		diag "$(ls -la)"
		return
	fi
	report "$t" "$t.json"
	is "$?" 0 "$label: report exits 0"
	is "$(jget "$t.json" 'd["trace"]["complete"]') $(jget "$t.json" 'd["trace"]["pid"]')" "true $pid" "$label: complete, pid $pid"
	# shellcheck disable=SC2086
	is "$(figs "$t.json" allocations $FNS)" "$want" "$label: exactly its own allocations"
}

# ---- fork twice, one child execs: 4 processes, 4 traces ---------------------
"$MEMREC" -o 'tree.%n.%p.zst' -- "$PROGS/gt_fork" tree "$E2" >tree.out 2>tree.err
is "$?" 0 "fork tree: memrec exits 0 (the parent's status)"
P=$(sed -n 's/^parent //p' tree.out)
C=($(sed -n 's/^child //p' tree.out))
like "$P ${C[*]}" '^[0-9]+ [0-9]+ [0-9]+$' "fork tree: the program reports its 3 pids"
is "$(grep -c '^exec2 pid' tree.out)" 1 "fork tree: the exec'd program ran"
is "$(ls tree.*.zst 2>/dev/null | sort | tr '\n' ' ')" \
	"$(printf '%s\n' "tree.gt_exec2.${C[1]}.zst" "tree.gt_fork.$P.zst" "tree.gt_fork.${C[0]}.zst" "tree.gt_fork.${C[1]}.zst" | sort | tr '\n' ' ')" \
	"fork tree: 4 traces named by %n (executable) and %p (pid)"
is "$(wrote_paths tree.err | xargs -r realpath -m | sort | tr '\n' ' ')" \
	"$(ls tree.*.zst 2>/dev/null | xargs -r realpath | sort | tr '\n' ' ')" \
	"fork tree: memrec's summary lists exactly the 4 traces"
is "$(wrote_check tree.err)" "" "fork tree: summary paths absolute, sizes and event counts right"
is "$(grep -vc '^memrec: wrote ' tree.err)" 0 "fork tree: memrec adds only summary lines to stderr"
diag_file tree.err 8 >/dev/null
check_trace "tree.gt_fork.$P.zst" "parent" "$P" "$(want_fig parent_before=7/700 parent_after=3/900)"
is "$(site "tree.gt_fork.$P.zst.json" leaked parent_before | cut -d' ' -f1,2)" "7 700" "parent: its 7 kept blocks leaked"
is "$(replay_meta "tree.gt_fork.$P.zst")" "0 0 0" "parent: no inconsistent, unmatched or late event"
check_trace "tree.gt_fork.${C[0]}.zst" "child 1 (fork, exit)" "${C[0]}" "$(want_fig child1_alloc=11/1210)"
check_trace "tree.gt_fork.${C[1]}.zst" "child 2 before exec" "${C[1]}" "$(want_fig child2_alloc=13/1690)"
check_trace "tree.gt_exec2.${C[1]}.zst" "child 2 after exec (gt_exec2)" "${C[1]}" "$(want_fig exec2_alloc=17/2890)"
is "$(site "tree.gt_exec2.${C[1]}.zst.json" leaked exec2_alloc | cut -d' ' -f1,2)" "1 170" "gt_exec2: its one leak"
for t in "tree.gt_fork.${C[0]}.zst" "tree.gt_fork.${C[1]}.zst" "tree.gt_exec2.${C[1]}.zst"; do
	is "$(ppid_of "$t")" "$P" "$t: PROCESS.ppid is the parent"
	m=$(replay_meta "$t")
	is "$(printf '%s\n' "$m" | cut -d' ' -f1,3)" "0 0" "$t: no inconsistent or late event ($m)"
done

# ---- the same without %n: the exec'd image's trace gets the .1 counter -----
"$MEMREC" -q -o 'c.%p.zst' -- "$PROGS/gt_fork" tree "$E2" >c.out 2>c.err
is "$?" 0 "fork tree, -o c.%p.zst: exits 0"
P=$(sed -n 's/^parent //p' c.out)
C=($(sed -n 's/^child //p' c.out))
is "$(ls c.*.zst 2>/dev/null | sort | tr '\n' ' ')" \
	"$(printf '%s\n' "c.$P.zst" "c.${C[0]}.zst" "c.${C[1]}.zst" "c.${C[1]}.1.zst" | sort | tr '\n' ' ')" \
	"-o c.%p.zst: the exec in the same pid writes c.PID.1.zst"
check_trace "c.${C[1]}.zst" "c.%p: child 2 before exec" "${C[1]}" "$(want_fig child2_alloc=13/1690)"
check_trace "c.${C[1]}.1.zst" "c.%p: child 2 after exec" "${C[1]}" "$(want_fig exec2_alloc=17/2890)"

# ---- --no-follow: only the parent's trace -----------------------------------
"$MEMREC" --no-follow -o 'nf.%n.%p.zst' -- "$PROGS/gt_fork" tree "$E2" >nf.out 2>nf.err
is "$?" 0 "--no-follow: exits 0"
P=$(sed -n 's/^parent //p' nf.out)
is "$(ls nf.*.zst 2>/dev/null | tr '\n' ' ')" "nf.gt_fork.$P.zst " "--no-follow: only the parent's trace"
is "$(wrote_paths nf.err | wc -l)" 1 "--no-follow: one summary line"
check_trace "nf.gt_fork.$P.zst" "--no-follow parent" "$P" "$(want_fig parent_before=7/700 parent_after=3/900)"

# ---- vfork + exec, posix_spawn: the parent's state is not corrupted ---------
for how in vfork:5 spawn:6; do
	m=${how%:*}
	n=${how#*:}
	"$MEMREC" -o "$m.%n.%p.zst" -- "$PROGS/gt_fork" "$m" "$E2" >$m.out 2>$m.err
	is "$?" 0 "$m: exits 0"
	P=$(sed -n 's/^parent //p' $m.out)
	K=$(sed -n 's/^child //p' $m.out)
	is "$(ls $m.*.zst 2>/dev/null | sort | tr '\n' ' ')" "$m.gt_exec2.$K.zst $m.gt_fork.$P.zst " \
		"$m: two traces, the parent's and the spawned program's"
	is "$(wrote_paths $m.err | wc -l)" 2 "$m: two summary lines"
	check_trace "$m.gt_fork.$P.zst" "$m parent" "$P" "$(want_fig parent_before=7/700 parent_after=3/900)"
	is "$(replay_meta "$m.gt_fork.$P.zst")" "0 0 0" "$m parent: no inconsistent, unmatched or late event"
	check_trace "$m.gt_exec2.$K.zst" "$m child" "$K" "$(want_fig exec2_alloc=$n/$((170 * n)))"
done

# ---- a failed exec: the trace is finished, a new one goes on ----------------
"$MEMREC" -o 'ef.%p.zst' -- "$PROGS/gt_fork" execfail >ef.out 2>ef.err
is "$?" 0 "failed exec: exits 0"
P=$(sed -n 's/^parent //p' ef.out)
is "$(ls ef.*.zst 2>/dev/null | sort | tr '\n' ' ')" "ef.$P.1.zst ef.$P.zst " "failed exec: two traces, the second with the .1 counter"
is "$(wrote_paths ef.err | wc -l)" 2 "failed exec: two summary lines"
check_trace "ef.$P.zst" "before the failed exec" "$P" "$(want_fig parent_before=7/700)"
check_trace "ef.$P.1.zst" "after the failed exec" "$P" "$(want_fig parent_after=3/900)"

# ---- memrec sh -c 'prog1; prog2 | prog3': one complete trace per process ----
# Default names memrec.%n.%p.zst. The shell starts each command in a child
# made by fork() or vfork() (dash vforks simple commands), or execs the last
# one itself: a fork()ed child leaves a shell trace (up to its exec), a
# vfork()ed one none (it must not touch the recorder); every program leaves
# its own trace, and so does the shell.
SHN=$(basename "$(readlink -f "$(command -v sh)")")
mkdir sh && cd sh || bail "mkdir"
PATH="$PROGS:$PATH" "$MEMREC" sh -c 'echo sh $$; gt_exec2 3; gt_exec2 4 | gt_exec2 5 cat' >../sh.out 2>../sh.err
is "$?" 0 "sh -c: exits 0"
cd .. || bail "cd"
S=$(sed -n 's/^sh //p' sh.out)
need=("memrec.$SHN.$S.zst")
maybe=()
for n in 3 4 5; do
	pid=$(sed -nE "s/^exec2 pid ([0-9]+) ppid [0-9]+ n $n\$/\1/p" sh.out)
	like "$pid" '^[0-9]+$' "sh -c: gt_exec2 $n ran"
	pids[$n]=$pid
	need+=("memrec.gt_exec2.$pid.zst")
	[ "$pid" != "$S" ] && maybe+=("memrec.$SHN.$pid.zst")
done
have=$(cd sh && ls)
missing=$(printf '%s\n' "${need[@]}" | grep -vxF -f <(printf '%s\n' "$have"))
extra=$(printf '%s\n' "$have" | grep -vxF -f <(printf '%s\n' "${need[@]}" "${maybe[@]}"))
is "$missing" "" "sh -c: a trace for the shell and for each of the 3 programs"
is "$extra" "" "sh -c: no trace but those (and the forked shells')"
diag "sh -c traces: $(printf '%s ' $have)"
is "$(wrote_paths sh.err | xargs -r realpath -m | sort | tr '\n' ' ')" "$(ls sh/*.zst | xargs -r realpath | sort | tr '\n' ' ')" \
	"sh -c: memrec lists every trace"
is "$(wrote_check sh.err)" "" "sh -c: summary paths absolute, sizes and event counts right"
incomplete=
for t in sh/*.zst; do
	"$MEMANA" report "$t" --json >"$t.json" 2>"$t.err"
	[ "$(jget "$t.json" 'd["trace"]["complete"]')" = true ] || incomplete="$incomplete $t"
done
is "$incomplete" "" "sh -c: every trace complete"
for n in 3 4 5; do
	is "$(site "sh/memrec.gt_exec2.${pids[$n]}.zst.json" allocations exec2_alloc | cut -d' ' -f1,2)" "$n $((170 * n))" \
		"sh -c: gt_exec2 $n: exec2_alloc $n calls"
done

done_testing
