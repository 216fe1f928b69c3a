#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""man.py OUT VERSION HEADER... - apq(3), the API reference, from the headers.

The public headers are the reference: each declaration sits under the
comment that says what it returns, who may call it and how it orders
memory.  This renders them, in the order given, as one man page: each
header's opening comment becomes its section's text, and every later
comment and declaration follows as it stands in the header.  Nothing is
written twice, so the page cannot drift from the code.

man.py --check PAGE MAP [PREFIX...] fails unless every symbol that the
linker map exports is declared in the page (those starting with a PREFIX
may be absent: a feature this build leaves out).
"""
import re
import sys


def escape(text):
    """troff-safe text: backslashes doubled, no control char at the start."""
    text = text.replace("\\", "\\e")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def split(source):
    """The header as (kind, lines): 'comment' blocks and 'code' chunks."""
    items, code = [], []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("/*") and "SPDX" not in line:
            if code:
                items.append(("code", code))
                code = []
            block = []
            while True:
                block.append(lines[i])
                if "*/" in lines[i]:
                    break
                i += 1
            inline = block[0].split("/*", 1)[0].strip()
            if inline:  # a declaration with a comment after it
                code.extend(block)
            else:
                items.append(("comment", block))
        elif line.startswith("#") or "SPDX" in line or \
                line.strip() in ("", 'extern "C" {', "}"):
            if code and line.strip() == "":
                items.append(("code", code))
                code = []
        else:
            code.append(line)
        i += 1
    if code:
        items.append(("code", code))
    return items


def comment_text(block):
    """A comment's lines without the comment marks, indentation kept."""
    out = []
    for line in block:
        s = line.strip()
        s = re.sub(r"^/\*+", "", s)
        s = re.sub(r"\*+/$", "", s)
        s = re.sub(r"^\* ?", "", s)
        out.append(s.rstrip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def paragraphs(lines):
    para = []
    for line in lines + [""]:
        if line.strip():
            para.append(line)
        elif para:
            yield para
            para = []


def render_text(lines, out):
    """Prose fills; indented or listed lines stay as they are."""
    for para in paragraphs(lines):
        indent = len(para[0]) - len(para[0].lstrip())
        heading = len(para) > 1 and indent == 0 and \
            len(para[1]) - len(para[1].lstrip()) > 0 and \
            len(para[0].split()) <= 6 and not para[0].rstrip().endswith((".", ":", ";", ","))
        if heading:
            out.append(".SS " + escape(para[0].strip()))
            para = para[1:]
        rest = [len(p) - len(p.lstrip()) for p in para]
        plain = all(r == rest[0] for r in rest) and \
            not any(p.lstrip().startswith(("- ", "@", "0", "1:"))
                    for p in para[1:])
        if plain:
            out.append(".PP")
            out.extend(escape(p.strip()) for p in para)
        else:
            base = min(rest)
            out.append(".PP")
            out.append(".nf")
            out.extend(escape(p[base:]) for p in para)
            out.append(".fi")


def render_code(lines, out):
    out.append(".PP")
    out.append(".nf")
    out.append(".ft B")
    out.extend(escape(line) for line in lines)
    out.append(".ft R")
    out.append(".fi")


def page(version, headers):
    out = [
        '.TH APQ 3 "" "apq %s" "apq API reference"' % version,
        ".SH NAME",
        "apq \\- adaptive poll/notify queues: the API, header by header",
        ".SH SYNOPSIS",
        ".nf",
        ".B #include <apq/apq.h>",
        ".B #include <apq/xen.h>",
        ".PP",
        "Link with \\fIpkg-config --cflags --libs apq\\fR.",
        ".fi",
        ".SH DESCRIPTION",
        "Each section below is one public header, as it stands: its "
        "opening comment, then every declaration under the comment that "
        "documents it.  Errors are negative errno values.",
    ]
    for path in headers:
        with open(path, encoding="utf-8") as f:
            items = split(f.read())
        name = re.sub(r".*include/", "", path)
        name = re.sub(r"^.*/(apq/[^/]+)$", r"\1", name)
        if not name.startswith("apq/"):
            name = "apq/" + path.rsplit("/", 1)[-1]
        out.append(".SH <%s>" % name)
        first = True
        for kind, lines in items:
            if kind == "comment":
                text = comment_text(lines)
                if first and text and " - " in text[0]:
                    out.append(".PP")
                    out.append("\\fB" + escape(text[0]) + "\\fR")
                    text = text[1:]
                first = False
                render_text(text, out)
            else:
                first = False
                render_code(lines, out)
    out += [
        ".SH SEE ALSO",
        "The project's README.md, doc/adaptive.md (the ADAPTIVE policy), "
        "doc/wire-format.md (the shared region), doc/memory-ordering.md "
        "and SECURITY.md.",
    ]
    return "\n".join(out) + "\n"


def check(page_path, map_path, optional):
    with open(page_path, encoding="utf-8") as f:
        text = f.read()
    with open(map_path, encoding="utf-8") as f:
        symbols = re.findall(r"^\s*(apq_[a-z0-9_]+);", f.read(), re.M)
    missing = [s for s in symbols
               if not re.search(r"\b%s\(" % s, text) and
               not any(s.startswith(p) for p in optional)]
    if missing:
        print("not in the API reference: " + " ".join(missing))
        return 1
    print("%d exported symbols, each declared in %s" % (len(symbols),
                                                        page_path))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "--check":
        return check(argv[2], argv[3], argv[4:])
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "w", encoding="utf-8") as f:
        f.write(page(argv[2], argv[3:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
