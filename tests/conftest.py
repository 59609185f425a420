"""Shared pytest fixtures.

`tests/` is on sys.path (pytest's rootdir-relative import), so the test-support packages
(`apiserver`, `libvirt_oracle`) import by their plain names.
"""
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")


def plugin_executable():
    """The installed console script, never the source tree: tests run what users run."""
    candidates = [os.path.join(sysconfig.get_path("scripts"), "kubectl-virtio"),
                  os.path.join(os.path.dirname(sys.executable), "kubectl-virtio")]
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    found = shutil.which("kubectl-virtio")
    if found:
        return found
    pytest.exit("kubectl-virtio is not installed: run the README's install command first", 2)


@pytest.fixture(scope="session")
def plugin_path():
    return plugin_executable()


@pytest.fixture
def run_plugin(plugin_path, tmp_path):
    """Run the installed `kubectl-virtio` as a subprocess; returns CompletedProcess."""

    def run(*args, stdin=None, env=None, timeout=60):
        e = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
        e.setdefault("HOME", str(tmp_path))
        e["NO_COLOR"] = "1"
        if env:
            e.update(env)
        return subprocess.run([plugin_path, *map(str, args)], input=stdin, capture_output=True,
                              text=True, env=e, timeout=timeout)

    return run
from apiserver.pytest_plugin import *  # noqa: F401,F403
from libvirt_fixtures import libvirt  # noqa: F401,E402
