"""`list --from DIR`: a must-gather-shaped directory (kubevirt/must-gather's layout) and a plain
folder of manifests and dumpxml files, with no cluster at all."""
import json
import os

import yaml

from apiserver import objects

from test_fleet import BALLOON_ON_3, DOMAIN


def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def _must_gather(root):
    """The files kubevirt/must-gather writes for two namespaces (collection-scripts)."""
    old = objects.running_vm("old", "prod", vm_kwargs={"labels": {"vm.kubevirt.io/os": "centos6.10"}})
    pod = old.pod["metadata"]["name"]
    _write(root, "namespaces/prod/kubevirt.io/virtualmachines/custom/old.yaml", yaml.safe_dump(old.vm))
    _write(root, "namespaces/prod/kubevirt.io/virtualmachineinstances/old.yaml", yaml.safe_dump(old.vmi))
    _write(root, "namespaces/prod/pods/%s/%s.yaml" % (pod, pod), yaml.safe_dump(old.pod))
    _write(root, "namespaces/prod/vms/old/%s.dumpxml.xml" % pod, (DOMAIN % BALLOON_ON_3).replace("ns_v", "prod_old"))
    _write(root, "namespaces/prod/vms/old/%s.capabilities.xml" % pod, "<capabilities><host/></capabilities>")
    _write(root, "namespaces/prod/vms/old/%s.domcapabilities.xml" % pod, "<domainCapabilities/>")
    _write(root, "namespaces/prod/vms/old/%s.list.txt" % pod, " Id   Name   State\n")
    # a VM whose cluster preference makes it transitional, and the preference as oc adm inspect writes it
    _write(root, "cluster-scoped-resources/instancetype.kubevirt.io/virtualmachineclusterpreferences/legacy.yaml",
           yaml.safe_dump(objects.cluster_preference("legacy", use_virtio_transitional=True)))
    _write(root, "namespaces/team/kubevirt.io/virtualmachines/centos6/pref.yaml",
           yaml.safe_dump(objects.vm("pref", "team", preference="legacy", run_strategy="Halted",
                                     labels={"vm.kubevirt.io/os": "centos6.10"})))
    _write(root, "namespaces/team/kubevirt.io/virtualmachines/rhel9/waste.yaml",
           yaml.safe_dump(objects.vm("waste", "team", use_virtio_transitional=True, run_strategy="Halted",
                                     labels={"vm.kubevirt.io/os": "rhel9"})))
    # noise a must-gather also holds
    _write(root, "namespaces/team/core/configmaps.yaml", yaml.safe_dump({"kind": "ConfigMapList", "items": []}))
    _write(root, "timestamp", "2026-11-30\n")


def test_must_gather_directory(run_plugin, tmp_path):
    root = str(tmp_path / "must-gather.local.1")
    _must_gather(root)
    env = {"KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}  # proves no cluster is needed
    r = run_plugin("list", "--from", root, "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    items = {"%s/%s" % (i["vm"]["namespace"], i["vm"]["name"]): i for i in json.loads(r.stdout)["items"]}
    assert set(items) == {"prod/old", "team/pref", "team/waste"}
    old = items["prod/old"]
    assert old["running"] is True and old["kubevirtVersion"] == "v1.9.0"
    assert [x["id"] for x in old["risks"]] == ["no-virtio1-driver", "hotplug-exhausted"]
    assert old["hotplugPortsFree"] == 0 and old["error"] is None
    assert items["team/pref"]["useVirtioTransitional"]["origin"] == "preference" and items["team/pref"]["risks"] == []
    assert [x["id"] for x in items["team/waste"]["risks"]] == ["needless-transitional"]
    r = run_plugin("list", "--from", root, "--check", env=env)
    assert r.returncode == 3 and "old" in r.stdout
    r = run_plugin("list", "--from", root, "-n", "team", "--check", env=env)
    assert r.returncode == 0 and "old" not in r.stdout


def test_a_folder_of_manifests_and_dumpxml_files(run_plugin, tmp_path):
    root = tmp_path / "audit"
    vm = objects.vm("web", "shop", labels={"vm.kubevirt.io/os": "rhel9"})
    docs = [vm, objects.vmi("web", "shop", owner_vm=vm), objects.vm("db", "shop", run_strategy="Halted")]
    _write(str(root), "fleet.yaml", yaml.safe_dump_all(docs))
    _write(str(root), "xml/web.xml", (DOMAIN % "").replace("ns_v", "shop_web"))
    _write(str(root), "lonely.xml", (DOMAIN % "").replace("ns_v", "shop_ghost"))
    r = run_plugin("list", "--from", str(root), "-o", "wide")
    assert r.returncode == 0, r.stderr
    lines = {line.split()[1]: line for line in r.stdout.splitlines()[1:]}
    assert set(lines) == {"web", "db", "ghost"}
    assert lines["web"].split()[2] == "yes" and " 1 " in lines["web"]  # one free root port in its XML


def test_hostile_and_oversized_files_are_refused_not_fatal(run_plugin, tmp_path):
    root = tmp_path / "mg"
    _must_gather(str(root))
    bomb = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">]><domain><name>prod_old</name>'
            '<devices/></domain>')
    pod_dir = root / "namespaces/prod/vms/old"
    for f in os.listdir(pod_dir):
        if f.endswith(".dumpxml.xml"):
            (pod_dir / f).write_text(bomb)
    (root / "namespaces/prod/huge.yaml").write_text("kind: VirtualMachine # kubevirt\n" + "#" * (5 * 1024 * 1024))
    (root / "namespaces/prod/broken.yaml").write_text("kind: VirtualMachine\napiVersion: kubevirt.io/v1\n: : :\n")
    os.symlink("/etc", root / "namespaces/etc-link")
    r = run_plugin("list", "--from", str(root), "-o", "json")
    assert r.returncode == 0, r.stderr
    items = {i["vm"]["name"]: i for i in json.loads(r.stdout)["items"]}
    assert "DOCTYPE" in items["old"]["error"]
    assert "huge.yaml skipped" in r.stderr and "broken.yaml" in r.stderr
    r = run_plugin("list", "--from", str(tmp_path / "nope"))
    assert r.returncode == 1 and r.stderr.startswith("error: --from") and "Traceback" not in r.stderr
    r = run_plugin("list", "--from", str(root), "--live")
    assert r.returncode == 2


def test_a_release_the_rules_do_not_know_is_warned_once(run_plugin, tmp_path):
    root = tmp_path / "future"
    docs = []
    for name in ("a", "b"):
        vm = objects.vm(name, "shop")
        docs += [vm, objects.vmi(name, "shop", owner_vm=vm, image=objects.launcher_image("v2.3.0"))]
    _write(str(root), "fleet.yaml", yaml.safe_dump_all(docs))
    r = run_plugin("list", "--from", str(root))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning: KubeVirt v2.3.0") == 1 and "showing the rules of v1.9.0" in r.stderr, r.stderr
