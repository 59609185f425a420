"""Guest verdicts through the installed plugin: `explain -f` (offline), `guests`, and live
`explain` against the test API server (VMI status.guestOSInfo, --guest-agent)."""
import copy
import json
import os

import pytest
import yaml

from test_explain import TESTVM, dumpxml

NT, T = "virtio-non-transitional", "virtio-transitional"
DOMAINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "domains")


def manifest(name="vm1", ns="guests", *, labels=None, annotations=None, tannotations=None, preference=None,
             transitional=None, agent=None):
    """A VM (or, with `agent` = status.guestOSInfo, a running VMI) identified by one source."""
    obj = yaml.safe_load(TESTVM)
    obj["metadata"] = {"name": name, "namespace": ns, "labels": labels or {}, "annotations": annotations or {}}
    tmpl = obj["spec"]["template"]
    tmpl["metadata"] = {"annotations": tannotations or {}}
    if preference:
        obj["spec"]["preference"] = {"kind": "VirtualMachineClusterPreference", "name": preference}
    if transitional is not None:
        tmpl["spec"]["domain"]["devices"]["useVirtioTransitional"] = transitional
    if agent is not None:
        obj = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": obj["metadata"],
               "spec": tmpl["spec"], "status": {"phase": "Running", "guestOSInfo": agent}}
    return obj


@pytest.fixture
def explain(run_plugin, tmp_path):
    def run(obj, *args, fmt="json"):
        p = tmp_path / "vm.yaml"
        p.write_text(yaml.safe_dump(obj))
        r = run_plugin("explain", "-f", str(p), *args, "-o", fmt)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout) if fmt == "json" else r.stdout
    return run


def errors(doc):
    return [f["message"] for f in doc["findings"] if f["severity"] == "error"]


# (case, manifest, id, virtio1, basis, source fragment)
CASES = [
    ("centos6.10 template label", manifest(labels={"os.template.kubevirt.io/centos6.10": "true"}),
     "centos6.10", False, "kernel", "label os.template.kubevirt.io/centos6.10"),
    ("rhel6.10 template name annotation",
     manifest(annotations={"name.os.template.kubevirt.io/rhel6.10": "Red Hat Enterprise Linux 6.10"}),
     "rhel6.10", False, "kernel", "annotation name.os.template.kubevirt.io/rhel6.10"),
    ("sles11sp4 vm.kubevirt.io/os", manifest(tannotations={"vm.kubevirt.io/os": "sles11sp4"}),
     "sles11sp4", False, "kernel", "annotation vm.kubevirt.io/os"),
    ("debian8 agent", manifest(agent={"id": "debian", "versionId": "8", "kernelRelease": "3.16.0-6-amd64"}),
     "debian8", False, "kernel", "status.guestOSInfo"),
    ("windows xp preference", manifest(preference="windows.xp"), "winxp", False, "curated", "preference windows.xp"),
    ("old kernel, agent only", manifest(agent={"kernelRelease": "2.6.32-754.35.1.el6.x86_64"}),
     None, False, "kernel", "kernelRelease=2.6.32"),
]


@pytest.mark.parametrize("case,obj,sid,virtio1,basis,source", CASES, ids=[c[0] for c in CASES])
def test_old_guest_with_default_settings_gets_the_error_and_the_fix(explain, case, obj, sid, virtio1, basis, source):
    doc = explain(obj)
    g = doc["guest"]
    assert (g["id"], g["virtio1"], g["basis"]) == (sid, virtio1, basis), g
    assert source in g["source"] and g["evidence"]
    (err,) = errors(doc)
    assert "disk containerdisk" in err and "interface default" in err
    assert "boot disk (disk containerdisk) will not be found" in err
    assert "kubectl virtio set-transitional vm1 -n guests" in err
    # with the flag set, no error
    fixed = copy.deepcopy(obj)
    spec = fixed["spec"] if fixed["kind"] == "VirtualMachineInstance" else fixed["spec"]["template"]["spec"]
    spec["domain"]["devices"]["useVirtioTransitional"] = True
    assert errors(explain(fixed)) == []


def test_rhel7_0_by_override(explain):
    doc = explain(manifest(tannotations={"vm.kubevirt.io/os": "rhel9"}), "--guest-os", "rhel7.0")
    assert (doc["guest"]["id"], doc["guest"]["virtio1"], doc["guest"]["source"]) == ("rhel7.0", False, "--guest-os")
    assert "3.10.0-327" in doc["guest"]["evidence"] and errors(doc)
    assert doc["guest"]["otherEvidence"][0]["id"] == "rhel9"


MODERN = [
    ("rhel7.9 agent", manifest(agent={"id": "rhel", "versionId": "7.9", "kernelRelease": "3.10.0-1160.el7.x86_64"}),
     "rhel7.9", "osinfo-db"),
    ("debian12 agent", manifest(agent={"id": "debian", "versionId": "12", "kernelRelease": "6.1.0-18-amd64"}),
     "debian12", "kernel"),
    ("ubuntu16.04 label", manifest(labels={"os.template.kubevirt.io/ubuntu16.04": "true"}), "ubuntu16.04", "kernel"),
    ("ubuntu22.04 annotation", manifest(tannotations={"vm.kubevirt.io/os": "ubuntu22.04"}), "ubuntu22.04",
     "osinfo-db"),
    ("almalinux10 agent", manifest(agent={"id": "almalinux", "versionId": "10.0",
                                          "kernelRelease": "6.12.0-55.9.1.el10_0.x86_64"}), "almalinux10.0", "kernel"),
    ("almalinux10 annotation", manifest(tannotations={"vm.kubevirt.io/os": "almalinux10"}), "almalinux10", "family"),
    ("fedora preference", manifest(preference="fedora"), "fedora", "family"),
    ("new kernel, agent only", manifest(agent={"kernelRelease": "5.14.0-427.13.1.el9_4.x86_64"}), None, "kernel"),
]


@pytest.mark.parametrize("case,obj,sid,basis", MODERN, ids=[m[0] for m in MODERN])
def test_modern_guests(explain, case, obj, sid, basis):
    doc = explain(obj)
    assert (doc["guest"]["id"], doc["guest"]["virtio1"], doc["guest"]["basis"]) == (sid, True, basis), doc["guest"]
    assert errors(doc) == []
    # and on transitional devices it is told it does not need them
    t = copy.deepcopy(obj)
    spec = t["spec"] if t["kind"] == "VirtualMachineInstance" else t["spec"]["template"]["spec"]
    spec["domain"]["devices"]["useVirtioTransitional"] = True
    msgs = [f["message"] for f in explain(t)["findings"]]
    assert any("useVirtioTransitional is not needed" in m for m in msgs), msgs


def test_rhel9_with_use_virtio_transitional_is_told_it_does_not_need_it(explain):
    out = explain(manifest("rhel9", preference="rhel.9", transitional=True), fmt="table")
    assert "Guest OS:  rhel9 (preference rhel.9): virtio 1.0 drivers yes" in out
    assert "useVirtioTransitional is not needed" in out and "PCIe root ports" in out and "I/O" in out
    assert "kubectl virtio set-transitional rhel9 --unset -n guests" in out
    assert "error:" not in out


def test_centos6_table_output_prints_the_error_and_the_fix(explain):
    out = explain(manifest("centos6", tannotations={"vm.kubevirt.io/os": "centos6"}), fmt="table")
    assert "Guest OS:  centos6 (VM annotation vm.kubevirt.io/os): virtio 1.0 drivers NO" in out
    assert "error: guest centos6" in out and "will not boot" in out
    assert "Fix: kubectl virtio set-transitional centos6 -n guests" in out


def test_live_models_from_a_dumpxml(explain, tmp_path, run_plugin):
    """With a dumpxml the live models decide: transitional models on a centos6 guest are fine."""
    obj = manifest(name="testvm", ns="default", labels={"os.template.kubevirt.io/centos6.10": "true"})
    (tmp_path / "nt.xml").write_text(dumpxml(NT))
    (tmp_path / "t.xml").write_text(dumpxml(T))
    doc = explain(obj, "--dumpxml", str(tmp_path / "nt.xml"))
    assert errors(doc) and "memballoon memballoon0" in errors(doc)[0]
    doc = explain(obj, "--dumpxml", str(tmp_path / "t.xml"))
    assert errors(doc) == []


def test_windows_says_how_to_check_the_drivers(explain):
    doc = explain(manifest(preference="windows.2k19"))
    assert (doc["guest"]["id"], doc["guest"]["virtio1"]) == ("win2k19", None)
    (w,) = [f["message"] for f in doc["findings"] if f["severity"] == "warning" and "virtio-win" in f["message"]]
    assert "--guest-agent" in w and "Device Manager" in w


def test_modern_guest_on_transitional_devices_by_agent(explain):
    doc = explain(manifest(agent={"id": "ubuntu", "versionId": "22.04", "kernelRelease": "5.15.0-91-generic"},
                           transitional=True))
    assert doc["guest"]["virtio1"] is True
    assert any("not needed" in f["message"] for f in doc["findings"] if f["severity"] == "info")


def test_unknown_guest_stays_unknown(explain):
    doc = explain(manifest())
    assert doc["guest"] is None
    assert any("guest OS unknown" in f["message"] for f in doc["findings"])
    doc = explain(manifest(preference="linux.virtiotransitional"))
    assert doc["guest"]["virtio1"] is None and doc["guest"]["id"] is None


def test_guest_agent_flag_is_live_only(run_plugin, tmp_path):
    p = tmp_path / "vm.yaml"
    p.write_text(yaml.safe_dump(manifest()))
    r = run_plugin("explain", "-f", str(p), "--guest-agent")
    assert r.returncode == 2 and r.stderr.startswith("error: --guest-agent")
    r = run_plugin("explain", "--help")
    assert "custom-ga-command" in r.stdout


# --- guests command --------------------------------------------------------------------

def test_guests_command(run_plugin):
    r = run_plugin("guests", "centos6.10", "rhel.9", "windows.11", "nosuchos1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Guest OS table from osinfo-db 0.")
    rows = {l.split()[0]: l for l in lines if l and l.split()[0] in ("centos6.10", "rhel9", "win11", "nosuchos1")}
    assert " no " in rows["centos6.10"] and " yes " in rows["rhel9"] and " unknown " in rows["win11"]
    assert " unknown " in rows["nosuchos1"]
    doc = json.loads(run_plugin("guests", "-o", "json").stdout)
    assert doc["kind"] == "GuestOSTable" and doc["osinfoDb"].startswith("0.20")
    assert doc["provenance"]["kernels"] and len(doc["items"]) == doc["provenance"]["counts"]["ids"]
    assert all(i["virtio1"] is True for i in doc["items"] if i["osinfo"]["virtio1"])
    assert all(i["source"] in ("kernel", "curated") for i in doc["items"] if i["virtio1"] is False)
    wide = run_plugin("guests", "-o", "wide", "ubuntu16.04").stdout
    assert "Ubuntu 16.04 LTS release notes" in wide and "Curated kernels" in wide
    md = run_plugin("guests", "-o", "markdown", "debian8").stdout
    assert md.startswith("### Guest OS table") and "| debian8" in md
    assert yaml.safe_load(run_plugin("guests", "-o", "yaml", "winxp").stdout)["items"][0]["virtio1"] is False


def test_guests_command_never_loads_the_cluster_adapter(plugin_path):
    import subprocess
    import sys
    code = ("import sys; from kubectl_virtio import cli; sys.argv=['kubectl-virtio']; "
            "import io, contextlib; buf=io.StringIO()\n"
            "with contextlib.redirect_stdout(buf): rc = cli.main(['guests', 'rhel9.0'])\n"
            "assert rc == 0 and 'rhel9.0' in buf.getvalue()\n"
            "print(sorted(m for m in sys.modules if m.startswith(('kubernetes', 'kubectl_virtio.cluster', "
            "'kubectl_virtio.live'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# --- live: the test API server ---------------------------------------------------------

def _xml(name):
    with open(os.path.join(DOMAINS, name)) as fh:
        return fh.read()


def put_running(cluster, name, xml, guest_os_info=None, **vm_kwargs):
    stack = cluster.add_running_vm(name, "default", vm_kwargs=vm_kwargs)
    if guest_os_info is not None:
        vmi = copy.deepcopy(stack.vmi)
        vmi["status"]["guestOSInfo"] = guest_os_info
        cluster.put(vmi)
    pod = stack.pod["metadata"]["name"]
    cluster.set_domain("default", pod, "default_%s" % name, xml)
    return pod


@pytest.mark.cluster
def test_live_guest_os_info_old_kernel_gets_the_error(run_plugin, cluster):
    put_running(cluster, "c6", _xml("testvm-q35-non-transitional.xml"),
                {"id": "centos", "versionId": "6", "kernelRelease": "2.6.32-754.35.1.el6.x86_64",
                 "prettyName": "CentOS release 6.10 (Final)"})
    r = run_plugin("explain", "c6", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["guest"]["virtio1"] is False and doc["guest"]["kernelRelease"].startswith("2.6.32")
    assert "status.guestOSInfo" in doc["guest"]["source"]
    (err,) = errors(doc)
    assert "interface default" in err and "kubectl virtio set-transitional c6 -n default" in err


@pytest.mark.cluster
def test_live_modern_guest_on_transitional_devices(run_plugin, cluster):
    put_running(cluster, "r9", _xml("testvm-q35-transitional.xml"),
                {"id": "rhel", "versionId": "9.4", "kernelRelease": "5.14.0-427.13.1.el9_4.x86_64"},
                use_virtio_transitional=True)
    r = run_plugin("explain", "r9", env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert "Guest OS:  rhel9.4 (guest agent" in r.stdout
    assert "useVirtioTransitional is not needed" in r.stdout and "error:" not in r.stdout


WIN_DEVICES = json.dumps({"return": [
    {"driver-name": "Red Hat VirtIO Ethernet Adapter", "driver-date": 1649808000000000000,
     "driver-version": "100.92.104.22100", "id": {"type": "pci", "vendor-id": 6900, "device-id": 4161}},
    {"driver-name": "", "id": {"type": "pci", "vendor-id": 6900, "device-id": 4162}}]})


@pytest.mark.cluster
def test_live_guest_agent_lists_windows_drivers_only_with_the_flag(run_plugin, cluster):
    pod = put_running(cluster, "win", _xml("testvm-q35-non-transitional.xml"),
                      {"id": "mswindows", "versionId": "2019", "kernelRelease": "17763"})
    cluster.virsh("default", pod).agent_devices["default_win"] = WIN_DEVICES
    r = run_plugin("explain", "win", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert not any("qemu-agent-command" in " ".join(e.argv) for e in cluster.exec_log)
    assert "drivers" not in json.loads(r.stdout)["guest"]
    r = run_plugin("explain", "win", "--guest-agent", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["guest"]["id"] == "win2k19"
    drivers = {d["pci"]: d for d in doc["guest"]["drivers"]}
    assert drivers["1af4:1041"]["driver"] == "Red Hat VirtIO Ethernet Adapter"
    assert drivers["1af4:1042"]["driver"] is None
    assert any("1af4:1042 (block)" in m for m in errors(doc))
    ex = [e for e in cluster.exec_log if "qemu-agent-command" in e.argv][-1]
    assert ex.container == "compute" and ex.argv[-1] == '{"execute":"guest-get-devices"}'


@pytest.mark.cluster
def test_live_guest_agent_without_an_agent_is_a_warning(run_plugin, cluster):
    put_running(cluster, "noagent", _xml("testvm-q35-non-transitional.xml"))
    r = run_plugin("explain", "noagent", "--guest-agent", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stderr
    msgs = [f["message"] for f in json.loads(r.stdout)["findings"] if f["severity"] == "warning"]
    assert any(m.startswith("--guest-agent:") and "not connected" in m for m in msgs), msgs


def test_fixed_spec_still_running_modern_devices_says_restart(explain, tmp_path):
    obj = manifest(name="testvm", ns="default", labels={"os.template.kubevirt.io/centos6.10": "true"},
                   transitional=True)
    (tmp_path / "nt.xml").write_text(dumpxml(NT))
    doc = explain(obj, "--dumpxml", str(tmp_path / "nt.xml"))
    (err,) = errors(doc)
    assert "virtctl restart testvm -n default" in err and "set-transitional" not in err
