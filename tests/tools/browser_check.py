#!/usr/bin/env python3
"""Load an HTML page in headless Chromium and check it (stdlib only).

usage: browser_check.py PAGE.html --screenshot OUT.png [--expect TEXT]...
                        [--chromium /usr/bin/chromium] [--keep-netlog FILE]

One Chromium run (DOM dump + screenshot + NetLog) under a fresh temporary
profile, at most 60 s, then one line per check, "ok: ..." or "FAIL: ...":
  - body has data-ready="1" and no data-error (the report page sets them);
  - each --expect TEXT occurs in the dumped DOM (after HTML-unescaping), outside
    <script> and <style> elements: in text or attributes that were rendered;
  - the screenshot is not blank: >= 2% of pixels differ from the most common
    colour and >= 8 distinct colours (the PNG is decoded here, with zlib);
  - the page made no network request, from Chromium's NetLog (see
    network_check() for what counts as a request and why).
Lines starting with "note:" are information. Exit 0 all ok, 1 a check failed,
2 usage error or Chromium could not run (missing, timed out, no output).
"""
import argparse
import html
import json
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from itertools import accumulate

TIMEOUT_S = 60
WINDOW = "1280,2400"
VIRTUAL_TIME_MS = 5000
MIN_INK_SHARE = 0.02   # of pixels not in the background colour
MIN_COLOURS = 8
ALLOWED_SCHEMES = ("file", "data", "about", "chrome", "devtools", "blob")

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--mute-audio", "--disable-extensions",
    "--disable-features=NetworkTimeServiceQuerying",
    # Every host name resolves to "not found": neither the page nor Chromium's own
    # background requests (update checks, account lookups) leave the machine.
    # Requests are still created and logged, so the NetLog check sees them.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    # Console messages (CSP violations, uncaught errors) on stderr, for the notes.
    "--enable-logging=stderr", "--v=0",
    "--window-size=" + WINDOW, "--virtual-time-budget=%d" % VIRTUAL_TIME_MS,
]


class LaunchError(Exception):
    """Chromium could not be run or gave no usable output (exit status 2)."""


def run_chromium(chromium, page_url, png_path, netlog_path, profile_dir):
    """Run Chromium once; return (dom_text, stderr_text). Kills its whole process
    group on timeout. Raises LaunchError."""
    cmd = [chromium] + CHROMIUM_FLAGS + [
        "--user-data-dir=" + profile_dir, "--log-net-log=" + netlog_path,
        "--screenshot=" + png_path, "--dump-dom", page_url]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise LaunchError("cannot run '%s': %s" % (chromium, e.strerror))
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise LaunchError("chromium timed out after %d s" % TIMEOUT_S)
    finally:
        # the renderer, zygote or crashpad may outlive the browser process
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    dom, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if proc.returncode != 0:
        print("note: chromium exited with status %d" % proc.returncode)
    if "<body" not in dom:
        tail = "\n".join(l for l in err.splitlines() if "dbus" not in l)[-1500:]
        raise LaunchError("chromium printed no DOM (exit status %d); stderr ends:\n%s"
                          % (proc.returncode, tail))
    return dom, err


# ---- PNG ---------------------------------------------------------------------

def _add_bytes(a, b):
    """Bytewise (a + b) mod 256 of two equal-length byte strings, without a Python
    loop: SWAR on big integers (add the low 7 bits, xor in the top bits)."""
    n = len(a)
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    high = int.from_bytes(b"\x80" * n, "big")
    low = high ^ ((1 << (8 * n)) - 1)
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "big")


def _unfilter_row(ftype, raw, prev, bpp):
    """Undo one PNG row filter (RFC 2083 / PNG spec section 9). raw, prev: bytes of
    equal length (prev all zero for the first row). Returns the row's bytes."""
    if ftype == 0:      # None
        return raw
    if ftype == 2:      # Up
        return _add_bytes(raw, prev)
    if ftype == 1:      # Sub: per channel, a running sum mod 256
        out = bytearray(len(raw))
        for c in range(bpp):
            out[c::bpp] = bytes(map((255).__and__, accumulate(raw[c::bpp])))
        return bytes(out)
    out = bytearray(raw)
    n = len(raw)
    if ftype == 3:      # Average
        for i in range(n):
            left = out[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + ((left + prev[i]) >> 1)) & 255
        return bytes(out)
    if ftype == 4:      # Paeth
        for i in range(min(bpp, n)):
            out[i] = (out[i] + prev[i]) & 255
        for i in range(bpp, n):
            a, b, c = out[i - bpp], prev[i], prev[i - bpp]
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - c - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (out[i] + pred) & 255
        return bytes(out)
    raise ValueError("bad PNG filter type %d" % ftype)


def decode_png(data):
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG. Returns (width, height,
    pixels) with pixels a list of one int per pixel (0xRRGGBB or 0xRRGGBBAA)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, hdr = 8, [], None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    if hdr is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = hdr
    if depth != 8 or colour not in (2, 6) or interlace != 0:
        raise ValueError("unsupported PNG (bit depth %d, colour type %d, interlace %d)"
                         % (depth, colour, interlace))
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    if len(raw) < height * (stride + 1):
        raise ValueError("PNG image data too short")
    rows, prev = [], bytes(stride)
    for y in range(height):
        at = y * (stride + 1)
        prev = _unfilter_row(raw[at], raw[at + 1:at + 1 + stride], prev, bpp)
        rows.append(prev)
    img = b"".join(rows)
    if bpp == 3:    # widen to 4 bytes per pixel so the ints come from one cast
        wide = bytearray(len(img) // 3 * 4)
        for c in range(3):
            wide[c::4] = img[c::3]
        img = bytes(wide)
    return width, height, memoryview(img).cast("I").tolist()


def screenshot_check(png_path):
    """Return (ok, message) for the not-blank check of the screenshot."""
    try:
        with open(png_path, "rb") as f:
            width, height, pixels = decode_png(f.read())
    except (OSError, ValueError, zlib.error) as e:
        return False, "screenshot %s unreadable: %s" % (png_path, e)
    counts = Counter(pixels)
    bg, n_bg = counts.most_common(1)[0]
    ink = 1 - n_bg / len(pixels)
    ok = ink >= MIN_INK_SHARE and len(counts) >= MIN_COLOURS
    return ok, ("screenshot %dx%d: %.1f%% of pixels differ from the background, "
                "%d distinct colours (need >= %.0f%% and >= %d)"
                % (width, height, 100 * ink, len(counts), 100 * MIN_INK_SHARE, MIN_COLOURS))


# ---- NetLog ------------------------------------------------------------------

def load_netlog(path):
    """Parse a NetLog JSON file; a log cut short (Chromium killed) is closed first."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(text.rstrip().rstrip(",") + "]}")


def network_check(netlog_path):
    """Return (ok, lines) for the no-network check.

    What counts as a request (found by loading pages that fetch() and load an
    <img> from http://, with and without the report's CSP, in Chromium 156):
      - every URL_REQUEST source (NetLog's record of one URL load by the network
        service) whose url, or redirect location, has a scheme outside
        ALLOWED_SCHEMES. file: pages are served outside the network stack and
        never appear. A request the page made carries an initiator (its origin,
        "null" for a file: page) and a network isolation key naming "file://";
        Chromium's own background requests (update checks, account lookups),
        which no flag fully stops, have initiator "not an origin" and are only
        listed as notes;
      - a host name lookup with a network anonymization key naming "file://":
        <link rel=preconnect> and dns-prefetch resolve names without any
        URL_REQUEST (the name shows as "~notfound" because of the resolver rule).
    A load blocked by the Content-Security-Policy is stopped in the renderer and
    creates no NetLog event at all; the CSP violation shows only on the console
    (reported by console_notes())."""
    try:
        log = load_netlog(netlog_path)
        consts = log["constants"]
        ev_name = {v: k for k, v in consts["logEventTypes"].items()}
        src_name = {v: k for k, v in consts["logSourceType"].items()}
        events = log.get("events", [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return False, ["cannot read the NetLog %s: %s" % (netlog_path, e)]
    reqs = {}       # URL_REQUEST source id -> {"urls": [...], "page": bool or None}
    lookups = 0
    for e in events:
        p = e.get("params") or {}
        src = e.get("source") or {}
        etype, stype = ev_name.get(e.get("type")), src_name.get(src.get("type"))
        if etype == "HOST_RESOLVER_MANAGER_REQUEST" and "file://" in str(p.get("network_anonymization_key", "")):
            lookups += 1
        if stype != "URL_REQUEST":
            continue
        r = reqs.setdefault(src.get("id"), {"urls": [], "page": None})
        for k in ("url", "location"):
            if isinstance(p.get(k), str) and p[k] not in r["urls"]:
                r["urls"].append(p[k])
        if etype == "URL_REQUEST_START_JOB":
            from_page = (p.get("initiator") not in (None, "not an origin")
                         or "file://" in str(p.get("network_isolation_key", "")))
            r["page"] = bool(r["page"]) or from_page
    bad, internal = [], []
    for r in reqs.values():
        urls = [u for u in r["urls"] if u.split(":", 1)[0].lower() not in ALLOWED_SCHEMES]
        if not urls:
            continue
        # a request never started has no START_JOB: counted against the page
        (internal if r["page"] is False else bad).extend(urls)
    hosts = sorted(set(re.sub(r"^\w+://([^/?#:]*).*", r"\1", u) for u in internal))
    lines = ["note: ignored %d request(s) Chromium made on its own, to %s" % (len(internal), ", ".join(hosts))
             ] if internal else []
    if bad or lookups:
        lines += ["page request: " + u for u in bad]
        if lookups:
            lines.append("host name lookups for the page (its requests, preconnect, "
                         "dns-prefetch): %d" % lookups)
        return False, lines
    return True, lines + ["no network request from the page (NetLog: %d URL requests, %d of them "
                          "Chromium's own)" % (len(reqs), len(internal))]


def console_notes(stderr_text):
    """Console lines of the page worth showing: CSP blocks and uncaught errors."""
    notes = []
    for line in stderr_text.splitlines():
        m = re.search(r":CONSOLE[^\]]*\] (.*)", line)
        if m and re.search(r"Content Security Policy|Uncaught|Refused", m.group(1)):
            notes.append("note: console: " + m.group(1)[:300])
    return notes


# ---- main --------------------------------------------------------------------

def dom_checks(dom, expects):
    """Return [(ok, message)] for the body attributes and the --expect texts."""
    res = []
    body = re.search(r"<body\b[^>]*>", dom)
    attrs = body.group(0) if body else ""
    err = re.search(r'\sdata-error="([^"]*)"', attrs)
    ready = re.search(r'\sdata-ready="1"', attrs) is not None
    if err:
        res.append((False, "page reports an error (body data-error): " + html.unescape(err.group(1))))
    elif not ready:
        res.append((False, 'body lacks data-ready="1": ' + (attrs or "no <body> tag")))
    else:
        res.append((True, 'body has data-ready="1" and no data-error'))
    # rendered content only: the page's own script (and the embedded data) would
    # otherwise contain every expected name whether it was drawn or not
    text = html.unescape(re.sub(r"(?is)<(script|style)\b[^>]*>.*?</\1\s*>", " ", dom))
    for t in expects:
        res.append((t in text, ("DOM contains %r" if t in text else "DOM lacks %r") % t))
    return res


def main(argv):
    ap = argparse.ArgumentParser(description="Check an HTML page in headless Chromium.")
    ap.add_argument("page")
    ap.add_argument("--screenshot", required=True, metavar="OUT.png")
    ap.add_argument("--expect", action="append", default=[], metavar="TEXT")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--keep-netlog", metavar="FILE", help="copy the NetLog here (for debugging)")
    args = ap.parse_args(argv[1:])   # exits 2 on usage errors
    if not os.path.isfile(args.page):
        print("browser_check: error: cannot open '%s'" % args.page, file=sys.stderr)
        return 2
    page_url = pathlib.Path(os.path.abspath(args.page)).as_uri()
    png = os.path.abspath(args.screenshot)
    tmp = tempfile.mkdtemp(prefix="browser_check.")
    try:
        if os.path.exists(png):
            os.unlink(png)
        netlog = os.path.join(tmp, "netlog.json")
        try:
            dom, err = run_chromium(args.chromium, page_url, png, netlog, os.path.join(tmp, "profile"))
        except LaunchError as e:
            print("browser_check: error: %s" % e, file=sys.stderr)
            return 2
        if args.keep_netlog and os.path.exists(netlog):
            shutil.copyfile(netlog, args.keep_netlog)
        results = dom_checks(dom, args.expect)
        results.append(screenshot_check(png) if os.path.exists(png)
                       else (False, "no screenshot written to " + png))
        ok, lines = network_check(netlog) if os.path.exists(netlog) else (False, ["no NetLog written"])
        for line in console_notes(err) + [l for l in lines if l.startswith("note:")]:
            print(line)
        results.append((ok, "; ".join(l for l in lines if not l.startswith("note:"))))
        for good, msg in results:
            print(("ok: " if good else "FAIL: ") + msg)
        return 0 if all(good for good, _ in results) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
