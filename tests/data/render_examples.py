#!/usr/bin/env python3
"""Regenerate the shipped `virsh dumpxml` examples by rendering our fixtures through real libvirt.

    python tests/data/render_examples.py           # rewrite examples/*.dumpxml.xml
    python tests/data/render_examples.py --check   # exit 1 if a committed example is stale

Needs the libvirt packages from the README (see tests/libvirt_oracle.py). Each example starts
with a one-comment header naming its input and the libvirt/QEMU versions that rendered it;
everything after the header is the verbatim `virsh dumpxml` output.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))

# (input fixture, rendered example), both relative to the repository root
EXAMPLES = [
    ("tests/data/domains/testvm-q35-non-transitional.xml", "examples/testvm.dumpxml.xml"),
]

_HEADER_RE = re.compile(r"\A<!-- (?P<body>.*?) -->\n", re.DOTALL)
_VERSIONS_RE = re.compile(r"libvirt (?P<libvirt>\S+) with QEMU (?P<qemu>\S+)")


def header(source: str, versions: dict) -> str:
    return ("<!-- `virsh dumpxml` of %s as defined by libvirt %s with QEMU %s\n"
            "     (embedded QEMU driver). Regenerate: python tests/data/render_examples.py -->\n"
            % (source, versions["libvirt"], versions["qemu"]))


def split_header(text: str):
    """(versions dict or None, dumpxml body) of a committed example."""
    m = _HEADER_RE.match(text)
    if not m:
        return None, text
    v = _VERSIONS_RE.search(m.group("body"))
    return (v.groupdict() if v else None), text[m.end():]


def example_text(oracle, source: str) -> str:
    with open(os.path.join(REPO, source), encoding="utf-8") as f:
        xml = f.read()
    return header(source, oracle.versions()) + oracle.render(xml, label=source)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = ap.parse_args(argv)

    import libvirt_oracle

    reason = libvirt_oracle.unavailable_reason()
    if reason:
        print("%s (%s)" % (libvirt_oracle.UNAVAILABLE, reason), file=sys.stderr)
        return 2
    stale = 0
    with libvirt_oracle.Oracle() as oracle:
        for source, target in EXAMPLES:
            text = example_text(oracle, source)
            path = os.path.join(REPO, target)
            old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
            if old == text:
                print("%s: up to date" % target)
                continue
            stale += 1
            if args.check:
                print("%s: differs from what libvirt renders from %s" % (target, source))
            else:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                print("%s: written" % target)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
