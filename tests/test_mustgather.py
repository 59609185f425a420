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


# --- the Windows driver check (collection-scripts/gather_virtio_driver_check) -------------
# virtio-driver-installed.json: the guest agent's guest-get-devices entries of vendor 0x1af4,
# {"name", "version", "device_id": decimal string}; only written for Windows guests.
BLK_MODERN = {"name": "Red Hat VirtIO SCSI controller", "version": "100.95.104.26200", "device_id": "4162"}  # 0x1042
NET_LEGACY = {"name": "Red Hat VirtIO Ethernet Adapter", "version": "62.73.104.11800", "device_id": "4096"}  # 0x1000
BLK_LEGACY = {"name": "Red Hat VirtIO SCSI controller", "version": "62.73.104.11800", "device_id": "4097"}  # 0x1001


def _windows_vm(root, name, ns="desk", drivers=None, raw=None, vmi_kwargs=None, report=None, **vm_kwargs):
    """A running VM as must-gather writes it, its dumpxml, and its driver check file."""
    stack = objects.running_vm(name, ns, vm_kwargs=vm_kwargs, vmi_kwargs=vmi_kwargs)
    pod = stack.pod["metadata"]["name"]
    _write(root, "namespaces/%s/kubevirt.io/virtualmachines/custom/%s.yaml" % (ns, name), yaml.safe_dump(stack.vm))
    _write(root, "namespaces/%s/kubevirt.io/virtualmachineinstances/%s.yaml" % (ns, name), yaml.safe_dump(stack.vmi))
    _write(root, "namespaces/%s/pods/%s/%s.yaml" % (ns, pod, pod), yaml.safe_dump(stack.pod))
    _write(root, "namespaces/%s/vms/%s/%s.dumpxml.xml" % (ns, name, pod),
           (DOMAIN % "").replace("ns_v", "%s_%s" % (ns, name)))
    if drivers is not None or raw is not None:
        _write(root, "namespaces/%s/vms/%s/virtio-driver-installed.json" % (ns, name),
               raw if raw is not None else json.dumps(drivers, indent=2))
    if report is not None:
        _write(root, "namespaces/%s/vms/%s/virtio-driver-report.json" % (ns, name),
               report if isinstance(report, str) else json.dumps(report))


def _rows(run_plugin, root, *args):
    r = run_plugin("list", "--from", root, "-o", "json", *args)
    assert r.returncode == 0, r.stderr
    return {i["vm"]["name"]: i for i in json.loads(r.stdout)["items"]}, r


def test_driver_check_with_a_modern_id_says_the_guest_drives_virtio1(run_plugin, tmp_path):
    root = str(tmp_path / "mg")
    _windows_vm(root, "win", drivers=[NET_LEGACY, BLK_MODERN])      # no OS label: only the file names it
    # started modern (the VMI), since given useVirtioTransitional (the VM): it applies at the next start
    _windows_vm(root, "legacy", drivers=[BLK_MODERN, NET_LEGACY], use_virtio_transitional=True,
                labels={"vm.kubevirt.io/os": "windows2k19"}, vmi_kwargs={"spec": objects.testvm_template_spec()},
                report={"vm": "legacy", "namespace": "desk", "baseline": "100.95.104.26200",
                        "drivers": [{"driver": BLK_MODERN["name"], "installed": BLK_MODERN["version"], "status": "OK"},
                                    {"driver": NET_LEGACY["name"], "installed": NET_LEGACY["version"],
                                     "status": "OUTDATED"}]})
    _windows_vm(root, "unchecked")                                    # no file: stays unknown
    items, r = _rows(run_plugin, root)
    win = items["win"]
    g = win["guest"]
    assert g["id"] == "win" and g["name"] == "Windows" and g["virtio1"] is True and g["basis"] == "drivers"
    assert "virtio-driver-installed.json" in g["source"]
    assert "Red Hat VirtIO SCSI controller 100.95.104.26200 on 1af4:1042 (block)" in g["evidence"]
    assert "namespaces/desk/vms/win/virtio-driver-installed.json" in g["evidence"]
    assert {"pci": "1af4:1042", "kind": "block", "modern": True, "driver": "Red Hat VirtIO SCSI controller",
            "version": "100.95.104.26200", "date": None} in g["drivers"] and len(g["drivers"]) == 2
    assert [x["id"] for x in win["risks"]] == []
    # a Windows guest that drives virtio 1.0 and gets transitional devices: the flag is not needed
    legacy = items["legacy"]
    assert legacy["guest"]["id"] == "win2k19" and legacy["guest"]["virtio1"] is True
    assert "without it: Windows has no in-box virtio drivers" in legacy["guest"]["evidence"]
    assert legacy["guest"]["evidence"].endswith(
        "; its report marks Red Hat VirtIO Ethernet Adapter 62.73.104.11800 older than the cluster's virtio-win "
        "drivers (100.95.104.26200)")
    assert "older than" not in win["guest"]["evidence"]  # no report, no note
    assert legacy["useVirtioTransitional"]["effective"] is True and legacy["useVirtioTransitional"]["live"] is False
    assert "needless-transitional" in [x["id"] for x in legacy["risks"]]
    assert "unknown-guest" not in [x["id"] for x in legacy["risks"]]
    assert [x["id"] for x in items["unchecked"]["risks"]] == ["unknown-guest"]
    r = run_plugin("list", "--from", root)
    lines = {line.split()[1]: line.split() for line in r.stdout.splitlines()[1:]}
    assert lines["win"][5:7] == ["win", "yes"] and lines["unchecked"][5:7] == ["-", "?"], r.stdout
    r = run_plugin("list", "--from", root, "--check", "--fail-on", "unknown-guest", "-n", "desk")
    assert r.returncode == 3 and "unchecked" in r.stdout
    r = run_plugin("list", "--from", root, "--check", "--fail-on", "unknown-guest", "--ignore", "desk/unchecked",
                   "--ignore", "desk/legacy")
    assert r.returncode == 0, r.stdout + r.stderr


def test_driver_check_with_transitional_ids_only_keeps_the_guest_unknown(run_plugin, tmp_path):
    root = str(tmp_path / "mg")
    _windows_vm(root, "old", drivers=[NET_LEGACY, BLK_LEGACY], labels={"vm.kubevirt.io/os": "windows2k19"})
    _windows_vm(root, "anon", drivers=[BLK_LEGACY])
    _windows_vm(root, "empty", drivers=[], labels={"vm.kubevirt.io/os": "windows2k19"})
    items, _ = _rows(run_plugin, root)
    g = items["old"]["guest"]
    assert g["id"] == "win2k19" and g["virtio1"] is None and g["basis"] == "curated"
    assert g["evidence"].startswith("Windows has no in-box virtio drivers")
    assert ("drivers only on transitional ids: Red Hat VirtIO Ethernet Adapter 62.73.104.11800 on 1af4:1000 (net), "
            "Red Hat VirtIO SCSI controller 62.73.104.11800 on 1af4:1001 (block)") in g["evidence"]
    assert [d["modern"] for d in g["drivers"]] == [False, False]
    assert [x["id"] for x in items["old"]["risks"]] == ["unknown-guest"]
    assert "drivers only on transitional ids" in items["old"]["risks"][0]["message"]
    anon = items["anon"]["guest"]  # not identified before: the file says Windows, not whether virtio 1.0
    assert anon["id"] == "win" and anon["virtio1"] is None and "only on Windows guests" in anon["source"]
    assert [x["id"] for x in items["anon"]["risks"]] == ["unknown-guest"]
    empty = items["empty"]["guest"]
    assert empty["virtio1"] is None and "listed no virtio device" in empty["evidence"]


def test_a_malformed_or_huge_driver_check_is_a_warning_not_a_crash(run_plugin, tmp_path):
    root = str(tmp_path / "mg")
    _windows_vm(root, "broken", raw='[{"name": "x", "device_id": ')
    _windows_vm(root, "object", raw=json.dumps({"name": "x", "device_id": "4162"}))
    _windows_vm(root, "huge", raw=json.dumps([BLK_MODERN] * 20000))
    _windows_vm(root, "fine", drivers=[{"device_id": "x41"}, "junk", None, {"name": "ok", "device_id": "4161"}],
                report="[1, 2")
    items, r = _rows(run_plugin, root)
    assert set(items) == {"broken", "object", "huge", "fine"}
    assert "namespaces/desk/vms/broken/virtio-driver-installed.json ignored: not JSON" in r.stderr
    assert "vms/object/virtio-driver-installed.json ignored: not a JSON array" in r.stderr
    assert "vms/huge/virtio-driver-installed.json ignored: cannot be read or larger than" in r.stderr
    assert "vms/fine/virtio-driver-report.json ignored: not JSON" in r.stderr
    assert "Traceback" not in r.stderr
    for name in ("broken", "object", "huge"):
        assert items[name]["guest"] is None and items[name]["error"] is None
        assert [x["id"] for x in items[name]["risks"]] == ["unknown-guest"]
    # bad entries are skipped, the good one still counts
    assert items["fine"]["guest"]["virtio1"] is True and len(items["fine"]["guest"]["drivers"]) == 1


def test_parse_driver_check():
    from kubectl_virtio import guests as G

    devs = G.parse_driver_check(json.dumps([BLK_MODERN, NET_LEGACY, {"name": "viorng", "version": None,
                                                                      "device_id": 4164}]).encode())
    assert devs == [
        {"pci": "1af4:1042", "kind": "block", "modern": True, "driver": "Red Hat VirtIO SCSI controller",
         "version": "100.95.104.26200", "date": None},
        {"pci": "1af4:1000", "kind": "net", "modern": False, "driver": "Red Hat VirtIO Ethernet Adapter",
         "version": "62.73.104.11800", "date": None},
        {"pci": "1af4:1044", "kind": "rng", "modern": True, "driver": "viorng", "version": None, "date": None}]
    # the same device dicts as the guest agent's own reply gives
    reply = json.dumps({"return": [{"driver-name": BLK_MODERN["name"], "driver-version": BLK_MODERN["version"],
                                    "id": {"type": "pci", "vendor-id": 6900, "device-id": 4162}}]})
    assert G.parse_guest_devices(reply) == devs[:1]
    # tolerated: entries that are not objects, ids that are not decimal numbers or not virtio's
    assert G.parse_driver_check('[1, "x", null, {"device_id": "0x1042"}, {"device_id": "-1"}, {"device_id": true},'
                                ' {"device_id": "9999999"}, {"device_id": "4096"}, {"name": "n"}, {"device_id": 16}]') \
        == [{"pci": "1af4:1000", "kind": "net", "modern": False, "driver": None, "version": None, "date": None}]
    assert G.parse_driver_check("[]") == []
    for bad, why in (("{}", "not a JSON array"), ("[", "not JSON"), (b"\xff\xfe\x00", "not JSON"),
                     ("[" * 100000, "not JSON"), (" " * (G.MAX_DRIVER_CHECK + 1), "larger than")):
        try:
            G.parse_driver_check(bad)
        except ValueError as e:
            assert why in str(e)
        else:
            raise AssertionError("accepted %r" % bad[:20])
    # a long name is clipped
    assert len(G.parse_driver_check(json.dumps([{"name": "n" * 5000, "device_id": "4162"}]))[0]["driver"]) == 200


def test_driver_check_guest_evidence():
    from kubectl_virtio import guests as G

    modern = G.parse_driver_check(json.dumps([BLK_MODERN]))
    legacy = G.parse_driver_check(json.dumps([BLK_LEGACY]))
    unbound = G.parse_driver_check(json.dumps([{"name": None, "device_id": "4161"}]))
    win = G.assess(None, None, None, "win2k19").to_dict()
    g = G.driver_check_guest(win, modern, "f.json")
    assert g["virtio1"] is True and g["basis"] == "drivers" and g["source"] == "--guest-os" and g["drivers"] == modern
    assert "f.json" in g["evidence"] and "1af4:1042" in g["evidence"] and win["virtio1"] is None  # a new dict
    g = G.driver_check_guest(win, legacy, "f.json")
    assert g["virtio1"] is None and "transitional ids" in g["evidence"]
    g = G.driver_check_guest(win, unbound, "f.json")  # a modern id with no driver is no evidence of virtio 1.0
    assert g["virtio1"] is None and "no driver on 1af4:1041 (net)" in g["evidence"]
    # never a "no" from the file; a "no" from elsewhere stays unless a modern driver is bound
    old = G.assess(None, None, None, "winxp").to_dict()
    assert old["virtio1"] is False
    assert G.driver_check_guest(old, legacy, "f")["virtio1"] is False
    assert G.driver_check_guest(old, [], "f")["virtio1"] is False
    assert G.driver_check_guest(None, legacy, "f")["virtio1"] is None
    assert G.driver_check_guest(None, [], "f")["id"] == "win"
    # the check only runs on Windows: a Linux identification is named as contradicting it
    rhel = G.assess(None, None, None, "rhel9.4").to_dict()
    assert "yet the guest was identified as rhel9.4" in G.driver_check_guest(rhel, modern, "f")["evidence"]


def test_parse_driver_report():
    from kubectl_virtio import guests as G

    report = {"vm": "w", "namespace": "n", "baseline": "100.95.104.26200",
              "drivers": [{"driver": "a", "installed": "1.2", "status": "OUTDATED"},
                          {"driver": "b", "installed": "100.95.104.26200", "status": "OK"},
                          {"driver": "c", "installed": "200.0", "status": "NEWER"}, "junk"]}
    assert G.parse_driver_report(json.dumps(report)) == [{"driver": "a", "installed": "1.2",
                                                          "baseline": "100.95.104.26200"}]
    assert G.parse_driver_report('{"vm": "w", "namespace": "n", "error": "guest-get-devices returned no data"}') == []
    for bad, why in (("[]", "not a JSON object"), ("{", "not JSON"), (" " * (G.MAX_DRIVER_CHECK + 1), "larger")):
        try:
            G.parse_driver_report(bad)
        except ValueError as e:
            assert why in str(e)
        else:
            raise AssertionError("accepted %r" % bad[:20])
