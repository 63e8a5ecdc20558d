#!/usr/bin/env python3
"""Check a file against speedscope's documented file format.

The format is specified by speedscope's TypeScript definitions
(src/lib/file-format-spec.ts in github.com/jlfwong/speedscope) and the JSON
schema generated from them, https://www.speedscope.app/file-format-schema.json:

  File     {"$schema": "https://www.speedscope.app/file-format-schema.json",
            "shared": {"frames": [Frame]}, "profiles": [Profile],
            "name"?: string, "activeProfileIndex"?: number, "exporter"?: string}
  Frame    {"name": string, "file"?: string, "line"?: number, "col"?: number}
  Profile  SampledProfile | EventedProfile
  SampledProfile {"type": "sampled", "name": string, "unit": ValueUnit,
            "startValue": number, "endValue": number,
            "samples": [[frame index]], "weights": [number]}  (same lengths)
  EventedProfile {"type": "evented", "name", "unit", "startValue", "endValue",
            "events": [{"type": "O"|"C", "at": number, "frame": index}]}
  ValueUnit "none" | "nanoseconds" | "microseconds" | "milliseconds" |
            "seconds" | "bytes"

Usage: speedscope_check.py FILE.  Prints "ok: ..." and, per profile,
"profile NAME unit UNIT samples N weight_sum W"; exits 1 with one line per
violation.
"""
import json
import sys

UNITS = {"none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}
errors = []


def err(msg):
    errors.append(msg)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_keys(obj, where, required, optional):
    if not isinstance(obj, dict):
        err("%s: not an object" % where)
        return False
    for k in required:
        if k not in obj:
            err("%s: missing %r" % (where, k))
    for k in obj:
        if k not in required and k not in optional:
            err("%s: unknown property %r" % (where, k))
    return True


def main():
    if len(sys.argv) != 2:
        print("usage: speedscope_check.py FILE", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1]) as f:
            d = json.load(f)
    except Exception as e:  # noqa: BLE001 - any parse failure is the answer
        print("FAIL: not JSON: %s" % e)
        return 1
    check_keys(d, "file", ["$schema", "shared", "profiles"],
               ["name", "activeProfileIndex", "exporter"])
    if d.get("$schema") != "https://www.speedscope.app/file-format-schema.json":
        err("file: $schema is %r" % d.get("$schema"))
    for k, t in (("name", str), ("exporter", str)):
        if k in d and not isinstance(d[k], t):
            err("file: %s is not a string" % k)
    if "activeProfileIndex" in d and not is_num(d["activeProfileIndex"]):
        err("file: activeProfileIndex is not a number")
    frames = []
    shared = d.get("shared")
    if check_keys(shared, "shared", ["frames"], []):
        frames = shared.get("frames")
        if not isinstance(frames, list):
            err("shared.frames is not an array")
            frames = []
        for i, fr in enumerate(frames):
            w = "shared.frames[%d]" % i
            if check_keys(fr, w, ["name"], ["file", "line", "col"]):
                if not isinstance(fr.get("name"), str):
                    err("%s.name is not a string" % w)
                if "file" in fr and not isinstance(fr["file"], str):
                    err("%s.file is not a string" % w)
                for k in ("line", "col"):
                    if k in fr and not is_num(fr[k]):
                        err("%s.%s is not a number" % (w, k))
    profiles = d.get("profiles")
    if not isinstance(profiles, list):
        err("profiles is not an array")
        profiles = []
    if "activeProfileIndex" in d and is_num(d["activeProfileIndex"]) and \
            not 0 <= d["activeProfileIndex"] < max(len(profiles), 1):
        err("activeProfileIndex out of range")
    summary = []
    for i, p in enumerate(profiles):
        w = "profiles[%d]" % i
        if not isinstance(p, dict):
            err("%s: not an object" % w)
            continue
        typ = p.get("type")
        if typ == "sampled":
            check_keys(p, w, ["type", "name", "unit", "startValue", "endValue",
                              "samples", "weights"], [])
            samples, weights = p.get("samples"), p.get("weights")
            if not isinstance(samples, list) or not isinstance(weights, list):
                err("%s: samples/weights are not arrays" % w)
                continue
            if len(samples) != len(weights):
                err("%s: %d samples but %d weights" % (w, len(samples), len(weights)))
            for j, st in enumerate(samples):
                if not isinstance(st, list) or not all(
                        isinstance(x, int) and not isinstance(x, bool) and 0 <= x < len(frames)
                        for x in st):
                    err("%s.samples[%d]: not a list of frame indices" % (w, j))
                    break
            if not all(is_num(x) for x in weights):
                err("%s.weights: not all numbers" % w)
            total = sum(x for x in weights if is_num(x))
            summary.append("profile %s unit %s samples %d weight_sum %d" % (
                p.get("name"), p.get("unit"), len(samples), total))
        elif typ == "evented":
            check_keys(p, w, ["type", "name", "unit", "startValue", "endValue", "events"], [])
            for j, ev in enumerate(p.get("events") or []):
                if not check_keys(ev, "%s.events[%d]" % (w, j), ["type", "at", "frame"], []):
                    continue
                if ev.get("type") not in ("O", "C") or not is_num(ev.get("at")):
                    err("%s.events[%d]: bad type or at" % (w, j))
            summary.append("profile %s unit %s evented" % (p.get("name"), p.get("unit")))
        else:
            err("%s: type is %r" % (w, typ))
            continue
        if not isinstance(p.get("name"), str):
            err("%s.name is not a string" % w)
        if p.get("unit") not in UNITS:
            err("%s.unit %r is not a ValueUnit" % (w, p.get("unit")))
        sv, ev_ = p.get("startValue"), p.get("endValue")
        if not is_num(sv) or not is_num(ev_) or ev_ < sv:
            err("%s: startValue/endValue %r/%r" % (w, sv, ev_))
    for e in errors:
        print("FAIL: " + e)
    if errors:
        return 1
    print("ok: %s follows the speedscope file format (%d frames, %d profiles)" % (
        sys.argv[1], len(frames), len(profiles)))
    for s in summary:
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
