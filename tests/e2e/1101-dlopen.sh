#!/bin/bash
# Acceptance 2 (dlopen/dlclose; .notes/PLAN3.md decisions 6-7): plugin A's
# allocations made by its ELF constructor while dlopen() is still running,
# and by a function of it, resolve to A's function names and A's path; after
# dlclose(A), plugin B loaded at the same address resolves to B's own names.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_dlopen
[ -f "$PROGS/libplug_a.so" ] && [ -f "$PROGS/libplug_b.so" ] || bail "plugins not built (make progs)"

LA=$(realpath "$PROGS/libplug_a.so")
LB=$(realpath "$PROGS/libplug_b.so")

# frames FILE FUNC: "FUNCTION@MODULE-BASENAME ..." of the first frame of every
# allocation site whose first frame is FUNC or lies in a plugin (to show
# misattributions), sorted.
first_frames() {
	"$PY" - "$1" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
out = []
for s in d["hotspots"]["allocations"]:
    st = s["stack"]
    if not st:
        continue
    f = st[0]
    if "plug_" in f["function"] or "libplug_" in f.get("module", ""):
        out.append("%s@%s=%d/%d" % (f["function"], f.get("module", "").rsplit("/", 1)[-1], s["calls"], s["bytes"]))
print(" ".join(sorted(out)))
EOP
}

# module_of FILE FUNC: the module path of FUNC's first frame (first site)
module_of() {
	jget "$1" "[s['stack'][0]['module'] for s in d['hotspots']['allocations'] if s['stack'] and s['stack'][0]['function'] == '$2'][0]"
}

for run in 1 2; do
	record dl$run.zst "$PROGS/gt_dlopen" "$PROGS"
	is "$?" 0 "run $run: gt_dlopen exits 0"
	diag_file dl$run.zst.stderr 5 >/dev/null
	report dl$run.zst dl$run.json
	is "$?" 0 "run $run: report exits 0"
	is "$(jget dl$run.json 'd["trace"]["complete"]')" true "run $run: trace complete"
	# every plugin allocation resolves to its own function and object
	is "$(first_frames dl$run.json)" \
		"plug_a_ctor@libplug_a.so=5/250 plug_a_work@libplug_a.so=3/90 plug_b_ctor@libplug_b.so=2/40 plug_b_work@libplug_b.so=4/160" \
		"run $run: constructor and function allocations of A and B resolve to their own names and objects"
	is "$(module_of dl$run.json plug_a_ctor)" "$LA" "run $run: plug_a_ctor's module is A's path"
	is "$(module_of dl$run.json plug_b_work)" "$LB" "run $run: plug_b_work's module is B's path"
	is "$(site dl$run.json leaked plug_a_ctor | cut -d' ' -f1,2) $(site dl$run.json leaked plug_b_ctor | cut -d' ' -f1,2)" \
		"5 250 2 40" "run $run: the constructors' kept blocks are leaks of A and B (after the unloads)"
	# the frame below the plugin function is main's code (gt_dlopen's run)
	is "$(jget dl$run.json "[s['stack'][1]['function'] for s in d['hotspots']['allocations'] if s['stack'] and s['stack'][0]['function'] == 'plug_b_work'][0]")" \
		run "run $run: plug_b_work is called by run()"
	same=$(sed -n 's/^same_base //p' dl$run.zst.stdout)
	if [ "$same" = yes ]; then
		pass "run $run: B was loaded at A's address ($(sed -n 's/^a_base //p' dl$run.zst.stdout))"
	else
		skip "run $run: the loader did not put B at A's address ($(tr '\n' ' ' <dl$run.zst.stdout)); same-address case not exercised"
	fi
	# the module map: A loaded, A unloaded, then B loaded (a new module id,
	# never A's again) and unloaded
	"$MEMANA" dump dl$run.zst >dl$run.dump 2>&1
	order=$("$PY" - dl$run.dump <<'EOP'
import re, sys
names, ids, out = {}, {}, []
for line in open(sys.argv[1]):
    m = re.match(r'@\d+ module .* id=(\d+) base=\S+ path="[^"]*/(libplug_[ab])\.so"', line)
    if m:
        ids.setdefault(m.group(2), m.group(1))
        names[m.group(1)] = m.group(2)
        out.append("load " + m.group(2))
        continue
    m = re.match(r'@\d+ unload .*id=(\d+)', line)
    if m and m.group(1) in names:
        out.append("unload " + names[m.group(1)])
print(", ".join(out) + ("; distinct ids" if len(set(ids.values())) == len(ids) else "; same id"))
EOP
)
	is "$order" "load libplug_a, unload libplug_a, load libplug_b, unload libplug_b; distinct ids" \
		"run $run: module records: A loaded and unloaded, then B with its own id"
done

done_testing
