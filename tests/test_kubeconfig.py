"""Cluster access as kubectl resolves it: KUBECONFIG lists, --context, context namespaces,
exec credential plugins, and tokens that never reach the output."""
import json
import os
import stat
import sys

import yaml

from apiserver import objects


def put_vm(cluster, ns="default"):
    cluster.put(objects.vm("testvm", ns, run_strategy="Halted"))


def explain_ns(run_plugin, *args, env):
    r = run_plugin("explain", "testvm", "-o", "json", *args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["vm"]["namespace"]


def test_kubeconfig_list_and_context(run_plugin, cluster, tmp_path):
    put_vm(cluster, "prod")
    put_vm(cluster, "default")
    # file 1: the current context (admin in default); file 2: another context "prod-ctx"
    first = cluster.kubeconfig_for("admin")
    second = yaml.safe_load(open(cluster.kubeconfig_for("admin", namespace="prod")))
    for key in ("contexts", "users", "clusters"):
        for item in second[key]:
            item["name"] = "prod-" + item["name"]
    for c in second["contexts"]:
        c["context"]["cluster"] = "prod-" + c["context"]["cluster"]
        c["context"]["user"] = "prod-" + c["context"]["user"]
    second.pop("current-context", None)
    p2 = tmp_path / "second.yaml"
    p2.write_text(yaml.safe_dump(second))
    ctx = second["contexts"][0]["name"]
    env = cluster.env()
    env["KUBECONFIG"] = os.pathsep.join([first, str(p2)])
    assert explain_ns(run_plugin, env=env) == "default"
    assert explain_ns(run_plugin, "--context", ctx, env=env) == "prod"
    assert explain_ns(run_plugin, "--context", ctx, "-n", "default", env=env) == "default"
    r = run_plugin("explain", "testvm", "--context", "nope", env=env)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "nope" in r.stderr


def test_exec_credential_plugin(run_plugin, cluster, tmp_path):
    """An `exec:` user (EKS/GKE style): the client runs the helper and uses its token."""
    put_vm(cluster)
    helper = tmp_path / "credential-helper"
    helper.write_text("#!%s\nimport json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                      "'kind': 'ExecCredential', 'status': {'token': 'admin-token'}}))\n" % sys.executable)
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    doc = yaml.safe_load(open(cluster.kubeconfig_for("admin")))
    for u in doc["users"]:
        u["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(helper),
                              "interactiveMode": "Never"}}
    path = tmp_path / "exec.yaml"
    path.write_text(yaml.safe_dump(doc))
    r = run_plugin("explain", "testvm", "-o", "json", "--kubeconfig", str(path), env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert [x.user for x in cluster.request_log()][-1] == "admin"


def test_tokens_never_in_output_even_with_debug(run_plugin, cluster):
    put_vm(cluster)
    for args in (["explain", "testvm", "--debug"], ["explain", "nope", "--debug"], ["dumpxml", "testvm", "--debug"]):
        for user in ("admin", "nobody"):
            r = run_plugin(*args, env=cluster.env(user=user))
            assert "-token" not in r.stdout + r.stderr, (args, user)


def test_request_timeout_flag(run_plugin, cluster):
    put_vm(cluster)
    r = run_plugin("explain", "testvm", "--request-timeout", "10s", env=cluster.env())
    assert r.returncode == 0, r.stderr
    r = run_plugin("explain", "testvm", "--request-timeout", "soon", env=cluster.env())
    assert r.returncode == 2 and "invalid duration" in r.stderr


def test_no_kubeconfig_at_all(run_plugin, tmp_path):
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "missing")}
    r = run_plugin("explain", "testvm", env=env)
    assert r.returncode == 1 and r.stderr.startswith("error: no kubeconfig found"), r.stderr
