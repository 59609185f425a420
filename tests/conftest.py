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


# Every plugin run of the session through run_plugin: (test id, args, stdout, stderr).  At the
# end, none may contain a planted secret (tests/apiserver/kubeconfig.py PLANTED).
PLUGIN_OUTPUTS = []


def planted_secret_leaks(records, marker):
    """The records (test id, args, stdout, stderr) whose output shows the marker."""
    return [(test, args) for test, args, out, err in records if marker in (out or "") or marker in (err or "")]


@pytest.fixture(scope="session", autouse=True)
def no_planted_secret_in_any_output():
    """Session check: no stdout/stderr of any plugin run (--debug runs and error paths
    included) carries a token, password or client key the suite planted."""
    from apiserver.kubeconfig import PLANTED

    yield
    leaks = planted_secret_leaks(PLUGIN_OUTPUTS, PLANTED)
    assert not leaks, "a planted secret reached the output of: %r" % leaks[:5]


@pytest.fixture
def run_plugin(plugin_path, tmp_path, request):
    """Run the installed `kubectl-virtio` as a subprocess; returns CompletedProcess.  Its
    output is recorded for the session's planted-secret check."""

    def run(*args, stdin=None, env=None, timeout=60):
        e = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
        e.setdefault("HOME", str(tmp_path))
        e["NO_COLOR"] = "1"
        if env:
            e.update(env)
        r = subprocess.run([plugin_path, *map(str, args)], input=stdin, capture_output=True,
                           text=True, env=e, timeout=timeout)
        PLUGIN_OUTPUTS.append((request.node.nodeid, tuple(map(str, args)), r.stdout, r.stderr))
        return r

    return run
def interactive_popen(argv, **kwargs):
    """The plugin as a terminal's foreground job runs it, for Ctrl-C tests: SIGINT at its
    default.  A runner that starts the suite in the background (`cmd &` in a shell without job
    control, nohup) hands its children SIGINT ignored, and Python then leaves it ignored, as it
    should: the plugin would never see the test's Ctrl-C."""
    import signal

    return subprocess.Popen(argv, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


class SilentListener:
    """A TCP listener on loopback that accepts and never says a word: a TLS handshake that
    never ends.  `url` is an https URL to it; `held` the connections it accepted."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = "https://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.held, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._thread.join(2)
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture
def silent_listener():
    listener = SilentListener()
    yield listener
    listener.close()


from apiserver.pytest_plugin import *  # noqa: F401,F403
from libvirt_fixtures import libvirt  # noqa: F401,E402
