# Allocation-heavy pure-Python workload: dicts, lists, strings, small objects.
# python3 alloc.py SCALE (default 200000). Deterministic output.
import sys

class Rec:
    __slots__ = ("k", "name", "tags")
    def __init__(self, k, name, tags):
        self.k = k
        self.name = name
        self.tags = tags

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    recs = [Rec(i, "item-%d" % (i * 7919 % n), [str(i % 7), str(i % 11)]) for i in range(n)]
    index = {}
    for r in recs:
        index.setdefault(r.name[-2:], []).append(r.k)
    words = {}
    for r in recs:
        for t in r.tags:
            words[t] = words.get(t, 0) + 1
    recs.sort(key=lambda r: (r.name, r.k))
    joined = ",".join(r.name for r in recs[: n // 10])
    pairs = sorted((len(v), k) for k, v in index.items())
    total = 0
    for rnd in range(5):
        tmp = {i: (i, str(i), [i] * 3) for i in range(n // 5)}
        total += sum(len(v[1]) for v in tmp.values())
        del tmp
    print("recs", len(recs), "keys", len(index), "words", sorted(words.items())[:5])
    print("joined", len(joined), "pairs", pairs[:3], pairs[-3:], "total", total)

main()
