"""What the plugin imports on start-up (each module counts on every run: bench/explain)."""
import argparse
import os
import pkgutil
import subprocess
import sys

import pytest

import kubectl_virtio
from kubectl_virtio import cmdline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTVM = os.path.join(REPO, "examples", "testvm.yaml")

SKIP = {"__main__"}  # it runs the command line when imported


def _loaded_after(code: str, watch) -> list:
    """The modules of `watch` loaded after running `code` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(sorted(m for m in %r if m in sys.modules))" % (tuple(watch),)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_no_module_of_the_plugin_imports_dataclasses_or_inspect():
    """`import dataclasses` costs ~25 ms (it imports inspect, ast, dis, tokenize) and each
    @dataclass ~1.3 ms more: the plugin's records are plain classes (record.py)."""
    names = sorted("kubectl_virtio." + m.name for m in pkgutil.iter_modules(kubectl_virtio.__path__)
                   if m.name not in SKIP)
    assert {"kubectl_virtio.cli", "kubectl_virtio.live", "kubectl_virtio.explain", "kubectl_virtio.context",
            "kubectl_virtio.fleet_list", "kubectl_virtio.set_transitional", "kubectl_virtio.render"} <= set(names)
    code = "import %s\nfrom kubectl_virtio import cli\nassert cli.main(['table']) == 0\n" \
           "assert cli.main(['explain', '-f', %r]) == 0" % (", ".join(names), TESTVM)
    assert _loaded_after(code, ("dataclasses", "inspect")) == "[]"


@pytest.mark.parametrize("argv", [["table"], ["explain", "-f", TESTVM], ["explain", "--help"]])
def test_the_command_line_does_not_import_shutil(argv):
    """argparse's formatter imports shutil (and with it bz2 and lzma) to read the terminal's
    width for every add_argument; cmdline.HelpFormatter reads it without."""
    code = ("from kubectl_virtio import cli\n"
            "try:\n    cli.main(%r)\nexcept SystemExit:\n    pass" % (argv,))
    assert _loaded_after(code, ("shutil", "dataclasses")) == "[]"


def _parsers():
    root = cmdline.build_parser(prog="kubectl virtio")
    return [root] + list(cmdline.subcommands(root).values())


@pytest.mark.parametrize("columns", ["80", "120", None, "junk", "0"])
def test_help_is_as_wide_as_argparse_makes_it(monkeypatch, columns):
    """Every --help is the text argparse's own formatter gives, at any $COLUMNS (unset,
    unreadable or 0: the terminal's width, else 80, as shutil.get_terminal_size)."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    for p in _parsers():
        assert p.formatter_class is cmdline.HelpFormatter, p.prog
        ours = p.format_help()
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        assert ours == p.format_help(), p.prog


def test_help_follows_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    narrow = [p.format_help() for p in _parsers()]
    monkeypatch.setenv("COLUMNS", "120")
    wide = [p.format_help() for p in _parsers()]
    assert narrow != wide
