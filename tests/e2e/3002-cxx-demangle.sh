#!/bin/bash
# Acceptance 3 (C++): a member function in a namespace shows its demangled
# name; new/new[] arrive as allocations attributed to it (the operator new
# frames skipped); the leaked object is found with its exact size.
. "$(dirname "$0")/../lib.sh"
need_tools
need_prog gt_cxx

record t.zst "$PROGS/gt_cxx"
is "$?" 0 "gt_cxx under memrec exits 0"
report t.zst r.json
is "$?" 0 "report exits 0"
is "$(jget r.json 'd["trace"]["complete"]')" true "trace complete"

F=app::Parser::parse
is "$(site r.json leaked "$F" | cut -d' ' -f1,2)" "1 64" "leaked: $F leaks 1 object of 64 bytes"
is "$(site r.json allocations "$F" | cut -d' ' -f1,2)" "102 4164" "allocations: $F 102 calls (100 Token, 1 int[25], 1 Node), 4164 bytes"
is "$(site r.json temporary "$F" | cut -d' ' -f1,2)" "101 4100" "temporary: the 100 Tokens and the int[25], deleted at once"

fn=$(jget r.json '[s["stack"][0]["function"] for s in d["hotspots"]["leaked"] if s["stack"] and "Parser" in s["stack"][0]["function"]][0]')
like "$fn" '^app::Parser::parse\(int\)$' "demangled name with its parameters: $fn"
unlike "$(jget r.json 'json.dumps(d["hotspots"])')" '_ZN3app6Parser5parseEi' "no mangled name left"
unlike "$(jget r.json '[f["function"] for s in d["hotspots"]["allocations"] for f in s["stack"][:1]]')" 'operator new' "operator new frames are skipped"
like "$(jget r.json '[s["stack"][1]["function"] for s in d["hotspots"]["leaked"] if s["stack"] and "Parser" in s["stack"][0]["function"]][0]')" '^main$' "parse's caller is main"
like "$(jget r.json '[s["stack"][0]["file"] for s in d["hotspots"]["leaked"] if s["stack"] and "Parser" in s["stack"][0]["function"]][0]')" 'gt_cxx\.cpp$' "frame names gt_cxx.cpp"
want_line=$(grep -n 'kept = new Node();' "$SRC/tests/progs/gt_cxx.cpp" | cut -d: -f1)
is "$(jget r.json '[s["stack"][0]["line"] for s in d["hotspots"]["leaked"] if s["stack"] and "Parser" in s["stack"][0]["function"]][0]')" "$want_line" "leak's line is the new Node() line"

"$MEMANA" report t.zst >r.txt 2>&1
ok "text report shows app::Parser::parse" grep -q 'app::Parser::parse' r.txt

if [ "$T_FAILED" -gt 0 ]; then
	diag "leaked:" "$(sites_summary r.json leaked)"
	diag "allocations:" "$(sites_summary r.json allocations | head)"
fi
done_testing
