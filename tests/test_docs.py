"""docs/ holds the facts the code relies on, and the code's citations resolve inside the
repository: every `docs/<file>.md §N` a comment cites names a file in docs/ with a section N."""
from __future__ import annotations

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
CODE_DIRS = ("src", "tests", "packaging", "bench", "scripts")
FACT_DOCS = ("kubevirt.md", "libvirt.md", "ecosystem.md")

CITATION = re.compile(r"docs/([\w-]+\.md)")
SECTIONS_AFTER = re.compile(r"\A(?:[\s#]*(?:,|and|-)?[\s#]*§[ \t]*(\d+(?:\.\d+)*))+")  # over comment lines too
SECTION_NUMBER = re.compile(r"§[ \t]*(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.?\s", re.M)


def code_files():
    for top in CODE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.endswith(".egg-info")]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    with open(path, encoding="utf-8") as fh:
                        yield os.path.relpath(path, REPO), fh.read()
                except (UnicodeDecodeError, OSError):
                    continue


def read_doc(name):
    with open(os.path.join(DOCS, name), encoding="utf-8") as fh:
        return fh.read()


def sections(name):
    return set(HEADING.findall(read_doc(name)))


def citations():
    """(file, cited doc, [section numbers]) for every docs/ citation in the code."""
    out = []
    for rel, text in code_files():
        for m in CITATION.finditer(text):
            run = SECTIONS_AFTER.match(text[m.end():m.end() + 80])
            numbers = SECTION_NUMBER.findall(run.group(0)) if run else []
            out.append((rel, m.group(1), numbers))
    return out


def test_the_index_lists_every_docs_file():
    index = read_doc("README.md")
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".md") and name != "README.md":
            assert "(%s)" % name in index, "docs/README.md does not list %s" % name


@pytest.mark.parametrize("name", FACT_DOCS)
def test_fact_docs_name_their_upstream_sources(name):
    """Each numbered top-level section says where its facts come from (a Source line, or a
    pointer to another doc), or that the code does not rely on it; the file names the pinned
    upstream tags."""
    text = read_doc(name)
    assert re.search(r"\bv\d+\.\d+\.\d+\b", text.split("\n## ", 1)[0]), name + ": no pinned tag in its header"
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    numbered = [p for p in parts if re.match(r"\d+\.", p)]
    assert len(numbered) >= 3, name
    for part in numbered:
        title = part.splitlines()[0]
        assert re.search(r"Source|Not relied on|See `docs/", part), "%s: section '%s' cites no source" % (name, title)


def test_section_numbers_are_unique_and_ordered():
    for name in FACT_DOCS:
        numbers = HEADING.findall(read_doc(name))
        assert len(numbers) == len(set(numbers)), name
        keys = [tuple(int(x) for x in n.split(".")) for n in numbers]
        assert keys == sorted(keys), name


def test_every_code_citation_resolves():
    bad = []
    for rel, doc, numbers in citations():
        if not os.path.isfile(os.path.join(DOCS, doc)):
            bad.append("%s cites docs/%s, which does not exist" % (rel, doc))
            continue
        have = sections(doc)
        bad += ["%s cites docs/%s §%s, which has no such section" % (rel, doc, n) for n in numbers if n not in have]
    assert not bad, "\n".join(bad)


def test_the_citation_parser_reads_ranges():
    # the forms the code uses: a single section, a range, a list
    text = "x docs/kubevirt.md §1.3-§1.7, §2 (y) and docs/libvirt.md §0.4 and §3.4. (docs/kubevirt.md\n    # §3)"
    found = []
    for m in CITATION.finditer(text):
        run = SECTIONS_AFTER.match(text[m.end():m.end() + 80])
        found.append((m.group(1), SECTION_NUMBER.findall(run.group(0)) if run else []))
    assert found == [("kubevirt.md", ["1.3", "1.7", "2"]), ("libvirt.md", ["0.4", "3.4"]), ("kubevirt.md", ["3"])]


def test_no_citation_points_outside_the_repository():
    """The repository stands on its own: no comment cites the facts files that lived outside it
    (by a relative path into a shared directory, or by their `<family>-facts` names).
    `python3 scripts/cite-docs` rewrites such citations to docs/."""
    outside = re.compile(r"\.\./shared\b|\b[A-Za-z]+-" + "facts\\b")   # split: this file cites nothing
    bad = ["%s:%d: %s" % (rel, text.count("\n", 0, m.start()) + 1, m.group(0))
           for rel, text in code_files() for m in outside.finditer(text)]
    assert not bad, "citations outside the repository (run python3 scripts/cite-docs):\n" + "\n".join(bad)
