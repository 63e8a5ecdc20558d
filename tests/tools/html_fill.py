#!/usr/bin/env python3
"""Fill the memana HTML report template with a data object, as `memana html` does.

usage: html_fill.py TEMPLATE DATA.json OUT.html

The template holds one line that is exactly the data placeholder (a C comment
naming MEMANA_DATA, see analyzer/html/report.html); it becomes
`window.MEMANA_DATA = {...};`. Like the C generator, '<', '>' and '&' inside
the JSON are written as \\u003c, \\u003e, \\u0026 (and U+2028/U+2029 escaped),
so no string can close the <script> element. Exit 0 ok, 2 on bad input.
"""
import json
import sys

PLACEHOLDER = "/*@MEMANA_DATA@*/"


def js_json(obj):
    """JSON text safe to paste inside an HTML <script> element."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def fill(template, data):
    """Return the page text; raises ValueError unless the placeholder line occurs once."""
    lines = template.split("\n")
    at = [i for i, line in enumerate(lines) if line.strip() == PLACEHOLDER]
    if len(at) != 1 or template.count(PLACEHOLDER) != 1:
        raise ValueError("template must hold exactly one placeholder line, found %d" % len(at))
    lines[at[0]] = "window.MEMANA_DATA = " + js_json(data) + ";"
    return "\n".join(lines)


def main(argv):
    if len(argv) != 4:
        print("usage: html_fill.py TEMPLATE DATA.json OUT.html", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            template = f.read()
        with open(argv[2], encoding="utf-8") as f:
            data = json.load(f)
        page = fill(template, data)
        with open(argv[3], "w", encoding="utf-8") as f:
            f.write(page)
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        print("html_fill: error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
