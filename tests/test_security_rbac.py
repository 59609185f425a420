"""SECURITY.md's RBAC, tested: the installed plugin runs on the test API server as a user
bound to exactly the Roles and ClusterRoles that SECURITY.md prints (read from the file, so
the document and the test cannot drift apart), and then with each verb taken away in turn.

- With exactly those permissions every command works and nothing says "forbidden".
- With one verb fewer, some command of that role reports the missing permission by verb and
  resource (an `error:` line, or the warning with which `explain` falls back to the
  prediction), never a traceback.  A verb no command needs would fail this test: the roles
  stay minimal.
"""
import os
import re

import pytest
import yaml

from apiserver import objects
from apiserver.rbac import Rule

pytestmark = pytest.mark.cluster

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = "default"


def security_roles():
    """{(kind, name): role} from the ```yaml blocks of SECURITY.md."""
    with open(os.path.join(REPO, "SECURITY.md"), encoding="utf-8") as fh:
        text = fh.read()
    roles = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        for doc in yaml.safe_load_all(block):
            if doc and doc.get("kind") in ("Role", "ClusterRole"):
                roles[(doc["kind"], doc["metadata"]["name"])] = doc
    return roles


ROLES = security_roles()


def server_rules(role, drop=None):
    """The role as the test server's rules (a Role applies in its namespace only, as bound by a
    RoleBinding); `drop` = (rule index, verb, resource) leaves that one verb on that one
    resource out."""
    namespaces = (role["metadata"].get("namespace", NS),) if role["kind"] == "Role" else None
    rules = []
    for i, r in enumerate(role["rules"]):
        groups, resources, verbs = tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])
        if drop is not None and drop[0] == i:
            others = tuple(x for x in resources if x != drop[2])
            if others:
                rules.append(Rule(verbs, groups, others, namespaces=namespaces))
            resources, verbs = (drop[2],), tuple(v for v in verbs if v != drop[1])
        if verbs:
            rules.append(Rule(verbs, groups, resources, namespaces=namespaces))
    return rules


def one_verb_fewer(role):
    """[(rule index, verb, api group, resource)] for every verb of every resource."""
    out = []
    for i, r in enumerate(role["rules"]):
        for verb in r["verbs"]:
            for group in r["apiGroups"]:
                for resource in r["resources"]:
                    out.append((i, verb, group, resource))
    return out


def setup_scenario(cluster):
    """testvm runs (its preference frozen in a ControllerRevision, label app=legacy); vm2 is
    stopped and names a namespaced preference with no revision yet; vm3 likewise a cluster
    preference; another namespace holds a VM for `list -A`."""
    pref = cluster.put(objects.cluster_preference("legacy"))
    rev = objects.preference_revision_name("testvm", pref)
    stack = objects.running_vm("testvm", NS, vm_kwargs={"preference": "legacy", "preference_revision": rev,
                                                          "labels": {"app": "legacy"}})
    for o in stack:
        cluster.put(o)
    cluster.put(objects.controller_revision(rev, NS, pref, owner_vm=stack.vm))
    cluster.set_domain(NS, stack.pod["metadata"]["name"], "%s_testvm" % NS,
                       objects.minimal_domain_xml(NS, "testvm"))
    cluster.put(objects.preference("np", NS))
    # labelled as testvm: `set-transitional -l app=legacy -A --unset` reads both preference kinds
    cluster.put(objects.vm("vm2", NS, run_strategy="Halted", preference="np", preference_kind="VirtualMachinePreference",
                           labels={"app": "legacy"}))
    cluster.put(objects.cluster_preference("cp"))
    cluster.put(objects.vm("vm3", NS, run_strategy="Halted", preference="cp"))
    cluster.put(objects.vm("other", "prod", run_strategy="Halted"))


VIEW = ["explain testvm", "explain vm2", "dumpxml testvm", "list"]
# --unset: the value after it comes from the preference, so its preview must read it.
SET = ["set-transitional testvm --restart", "set-transitional -l app=legacy --off --dry-run=server",
       "set-transitional testvm --unset --dry-run=client"]
COMMANDS = {
    ("Role", "kubectl-virtio-view"): VIEW,
    ("ClusterRole", "kubectl-virtio-view"): VIEW + ["explain vm3", "list -A"],
    ("Role", "kubectl-virtio-set-transitional"): SET,
    ("ClusterRole", "kubectl-virtio-set-transitional"): SET + ["set-transitional -l app=legacy -A --unset"],
}
DENIED = re.compile(r"forbidden|cannot (get|list|watch|create|patch|update)\b|permission denied|not allowed", re.I)


def test_security_md_has_the_four_roles():
    assert set(ROLES) == set(COMMANDS)
    for role in ROLES.values():
        for r in role["rules"]:
            assert "*" not in r["verbs"] + r["resources"] + r["apiGroups"], r
    view = ROLES[("ClusterRole", "kubectl-virtio-view")]
    exec_rule = [r for r in view["rules"] if "pods/exec" in r["resources"]]
    assert exec_rule and set(exec_rule[0]["verbs"]) == {"get", "create"}


def run_as(run_plugin, cluster, rules, commands):
    """Yields (command, CompletedProcess) for each command, run as a user with `rules`."""
    cluster.reset()
    setup_scenario(cluster)
    cluster.add_user("rbac-user", rules)
    env = cluster.env(user="rbac-user", namespace=NS)
    for command in commands:
        r = run_plugin(*command.split(), env=env)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (command, r.stderr)
        assert "rbac-user-token" not in r.stdout + r.stderr
        yield command, r


@pytest.mark.parametrize("key", sorted(COMMANDS), ids=lambda k: "%s-%s" % k)
def test_exactly_the_documented_permissions_suffice(run_plugin, cluster, key):
    for command, r in run_as(run_plugin, cluster, server_rules(ROLES[key]), COMMANDS[key]):
        assert r.returncode == 0, (command, r.stderr)
        assert not DENIED.search(r.stderr + r.stdout), (command, r.stderr, r.stdout[-600:])
    if key[1] == "kubectl-virtio-set-transitional":
        assert any(q.resource == "virtualmachines/restart" for q in cluster.request_log())


# The test server authorizes a WebSocket exec as `get` and `create` on pods/exec (Kubernetes
# 1.35 on; exec_authz), so a role without `get pods/exec` is refused as on a real cluster.
CASES = [pytest.param(key, case, id="%s-%s-%s-%s" % (key[0], key[1].replace("kubectl-virtio-", ""), case[1],
                                                      case[3].replace("/", "-")))
         for key in sorted(COMMANDS) for case in one_verb_fewer(ROLES[key])]


@pytest.mark.parametrize("key,case", CASES)
def test_each_missing_verb_is_named(run_plugin, cluster, key, case):
    index, verb, group, resource = case
    rules = server_rules(ROLES[key], drop=(index, verb, resource))
    reported = []
    for command, r in run_as(run_plugin, cluster, rules, COMMANDS[key]):
        out = r.stderr + r.stdout
        if DENIED.search(out):
            assert r.returncode == 0 or r.stderr.startswith("error: ") or "\nerror: " in r.stderr, r.stderr
            if verb in out and resource in out:
                reported.append(command)
                break  # the later commands of the role need not run
    assert reported, "no command said that %s %s%s is missing" % (verb, resource, "." + group if group else "")
