"""guests.py: the shipped osinfo table, identification, verdicts, findings, QGA parsing."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from kubectl_virtio import guests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN = os.path.join(REPO, "scripts", "gen-guests-table")
OSINFO = "/usr/share/osinfo"
NT, T = "virtio-non-transitional", "virtio-transitional"


# --- The shipped table against the installed osinfo-db -----------------------------------

@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    if not os.path.isdir(os.path.join(OSINFO, "os")):
        pytest.skip("osinfo-db is not installed (%s/os missing): apt-get install osinfo-db; CI installs it" % OSINFO)
    out = tmp_path_factory.mktemp("gen") / "guests.json"
    r = subprocess.run([sys.executable, GEN, "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text()), out.read_text()


def test_shipped_table_is_what_the_installed_osinfo_db_gives(regenerated):
    table, text = regenerated
    shipped = guests.table()
    if table["osinfoDb"] != shipped["osinfoDb"]:
        pytest.skip("the installed osinfo-db %s is not the %s the shipped table came from: rerun "
                    "scripts/gen-guests-table to move it" % (table["osinfoDb"], shipped["osinfoDb"]))
    with open(os.path.join(REPO, "src", "kubectl_virtio", "data", "guests.json")) as fh:
        assert fh.read() == text, "rerun scripts/gen-guests-table: the shipped table is stale"


def test_every_os_osinfo_lists_with_virtio1_gets_yes(regenerated):
    table, _ = regenerated
    listed = [r for r in table["items"] if r["osinfo"]["virtio1"]]
    assert len(listed) > 150  # Debian's 0.20221130 lists 202
    assert [r["id"] for r in listed if r["virtio1"] is not True] == []
    assert table["counts"]["osinfoVirtio1"] == len(listed)


def test_every_no_names_direct_evidence(regenerated):
    table, _ = regenerated
    nos = [r for r in table["items"] if r["virtio1"] is False]
    assert nos
    for r in nos:
        assert r["source"] in ("kernel", "curated"), r
        if r["source"] == "kernel":
            assert r["kernel"] and "predates" in r["evidence"] and "[source: " in r["evidence"], r
        else:
            assert r["id"] in ("winxp", "win2k3", "win2k3r2") and "legacy" in r["evidence"], r
    ids = {r["id"] for r in nos}
    assert {"centos6.10", "rhel6.10", "rhel7.0", "rhel7.1", "sles11sp4", "sles12", "sles12sp1", "debian8",
            "winxp", "win2k3", "rhel5.11", "ol6.10"} <= ids
    # osinfo-db says no virtio 1.0 for these, their kernels say yes (docs/osinfo.md)
    yes = {r["id"]: r for r in table["items"] if r["virtio1"] is True}
    for sid, kernel in (("ubuntu16.04", "4.4"), ("opensuse42.1", "4.1"), ("fedora22", "4.0")):
        assert yes[sid]["source"] == "kernel" and yes[sid]["kernel"] == kernel and not yes[sid]["osinfo"]["virtio1"]


def test_provenance_names_the_osinfo_db_version():
    p = guests.provenance()
    assert p["osinfoDb"].startswith("0.20") and p["kernelRule"]["linux"] == "4.0"
    assert any(k["ids"] == "ubuntu16.04" and k["source"] for k in p["kernels"])
    assert "1fcf0512c9c8" in p["kernelRule"]["source"]


def test_generator_refuses_a_directory_without_osinfo(tmp_path):
    r = subprocess.run([sys.executable, GEN, "--osinfo", str(tmp_path), "-o", str(tmp_path / "x.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "osinfo-db" in r.stderr and not (tmp_path / "x.json").exists()


def test_generator_reads_no_entities(tmp_path):
    """A DTD entity in an osinfo file is not expanded (bounded parsing)."""
    d = tmp_path / "os" / "x.org"
    d.mkdir(parents=True)
    (d / "x.xml").write_text('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY e "EXPANDED">]><libosinfo>'
                             '<os id="http://x.org/x/1"><short-id>x1</short-id><name>&e;</name></os></libosinfo>')
    out = tmp_path / "g.json"
    r = subprocess.run([sys.executable, GEN, "--osinfo", str(tmp_path), "-o", str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "EXPANDED" not in out.read_text()


# --- Verdicts by id -----------------------------------------------------------------------

CASES = [
    ("centos6.10", False, "kernel"), ("rhel6.10", False, "kernel"), ("rhel7.0", False, "kernel"),
    ("rhel7.1", False, "kernel"), ("rhel7.2", True, "osinfo-db"), ("rhel7.9", True, "osinfo-db"),
    ("centos7.0", True, "osinfo-db"), ("sles11sp4", False, "kernel"), ("sles12sp1", False, "kernel"),
    ("sles12sp2", True, "osinfo-db"), ("debian8", False, "kernel"), ("debian9", True, "osinfo-db"),
    ("debian12", True, "family"), ("ubuntu16.04", True, "kernel"), ("ubuntu22.04", True, "osinfo-db"),
    ("almalinux10", True, "family"), ("almalinux9", True, "osinfo-db"), ("fedora", True, "family"),
    ("fedora38", True, "family"), ("fedora22", True, "kernel"), ("fedora21", False, "kernel"),
    ("opensuse42.1", True, "kernel"), ("winxp", False, "curated"), ("windows.2k3", False, "curated"),
    ("win10", None, "curated"), ("windows2k19", None, "curated"), ("win2k25", None, "curated"),
    ("centos.stream9", True, "osinfo-db"), ("rhel.9", True, "family"), ("rhel.7", None, "family"),
    ("centos6", False, "family"), ("plan9", None, "unknown"), ("freebsd13.0", None, "osinfo-db"),
]


@pytest.mark.parametrize("os_id,virtio1,basis", CASES)
def test_verdict(os_id, virtio1, basis):
    v = guests.verdict(os_id)
    assert (v["virtio1"], v["basis"]) == (virtio1, basis), v
    assert v["evidence"]


def test_normalise_spellings():
    assert guests.normalise("windows.2k19.virtio") == "win2k19"
    assert guests.normalise("Windows10") == "win10"
    assert guests.normalise("centos.stream9.desktop") == "centos-stream9"
    assert guests.normalise("rhel.9.dpdk") == "rhel9"
    assert guests.normalise("RHEL-8.4") == "rhel8.4"
    assert guests.normalise("oraclelinux") == "ol"
    assert guests.normalise("fedora.arm64") == "fedora"


@pytest.mark.parametrize("release,ok", [
    ("2.6.32-754.35.1.el6.x86_64", False), ("3.10.0-123.el7.x86_64", False), ("3.10.0-229.el7.x86_64", False),
    ("3.10.0-327.el7.x86_64", True), ("3.10.0-1160.119.1.el7.x86_64", True), ("3.16.0-6-amd64", False),
    ("4.0.4-301.fc22.x86_64", True), ("4.4.0-21-generic", True), ("6.12.0-55.el10.x86_64", True),
    ("17763", None), ("", None)])
def test_kernel_verdict(release, ok):
    assert guests.kernel_verdict(release)[0] is ok


def test_kernel_decides_when_the_id_is_unknown_or_osinfo_silent():
    assert guests.verdict(None, "3.10.0-1160.el7.x86_64")["virtio1"] is True
    assert guests.verdict("plan9", "2.6.32-754.el6.x86_64")["virtio1"] is False
    # ubuntu14.04's GA kernel lacks it; a 4.4 HWE kernel has it
    assert guests.verdict("ubuntu14.04")["virtio1"] is False
    v = guests.verdict("ubuntu14.04", "4.4.0-148-generic")
    assert v["virtio1"] is True and v["basis"] == "kernel" and "the OS id alone said" in v["evidence"]
    # a real CentOS 7.0 kernel: the el7 line is known, so the kernel wins over osinfo's centos7.0
    assert guests.verdict("centos7.0", "3.10.0-123.el7.x86_64")["virtio1"] is False
    # an unknown kernel line against osinfo's yes: cannot tell, both named
    v = guests.verdict("ol7.9", "3.8.13-118.el7uek.x86_64")
    assert v["virtio1"] is None and "osinfo-db" in v["evidence"] and "3.8.13" in v["evidence"]


# --- Identification -----------------------------------------------------------------------

def vm(labels=None, annotations=None, tlabels=None, tannotations=None, preference=None, name="vm1"):
    obj = {"kind": "VirtualMachine", "metadata": {"name": name, "labels": labels or {},
                                                  "annotations": annotations or {}},
           "spec": {"template": {"metadata": {"labels": tlabels or {}, "annotations": tannotations or {}},
                                 "spec": {}}}}
    if preference:
        obj["spec"]["preference"] = {"name": preference}
    return obj


def vmi_with(**gi):
    return {"kind": "VirtualMachineInstance", "metadata": {"name": "vm1"}, "status": {"guestOSInfo": gi}}


def test_identify_each_source_and_its_order():
    g = guests.assess(vm(tannotations={"vm.kubevirt.io/os": "centos6"}))
    assert (g.id, g.virtio1, g.source) == ("centos6", False, "VM annotation vm.kubevirt.io/os")
    g = guests.assess(vm(labels={"os.template.kubevirt.io/rhel7.9": "true"}))
    assert (g.id, g.virtio1, g.basis) == ("rhel7.9", True, "osinfo-db")
    assert g.source == "VM label os.template.kubevirt.io/rhel7.9"
    g = guests.assess(vm(annotations={"name.os.template.kubevirt.io/sles11sp4": "SUSE 11 SP4 or higher"}))
    assert (g.id, g.virtio1) == ("sles11sp4", False) and "name.os.template.kubevirt.io/sles11sp4" in g.source
    g = guests.assess(vm(preference="centos.stream9"))
    assert (g.id, g.virtio1, g.source) == ("centos-stream9", True, "preference centos.stream9")
    g = guests.assess(vm(preference="windows.11"))
    assert (g.id, g.virtio1, g.windows) == ("win11", None, True)
    # the override beats everything; the agent beats labels
    g = guests.assess(vm(tannotations={"vm.kubevirt.io/os": "rhel9"}), vmi_with(id="debian", versionId="8"),
                      override="win2k3")
    assert (g.id, g.virtio1, g.source) == ("win2k3", False, "--guest-os")
    g = guests.assess(vm(tannotations={"vm.kubevirt.io/os": "rhel9"}), vmi_with(id="debian", versionId="8"))
    assert (g.id, g.virtio1) == ("debian8", False) and g.source.startswith("guest agent")
    assert g.others and g.others[0]["source"] == "VM annotation vm.kubevirt.io/os"


def test_template_label_range_is_aggregated():
    labels = {"os.template.kubevirt.io/centos6.%d" % i: "true" for i in range(11)}
    g = guests.assess(vm(labels=labels))
    assert g.virtio1 is False and "centos6.0" in g.source
    labels = {"os.template.kubevirt.io/rhel7.%d" % i: "true" for i in range(10)}
    assert guests.assess(vm(labels=labels)).virtio1 is None


def test_unknown_stays_unknown():
    assert guests.assess(vm()) is None
    assert guests.assess(vm(preference="linux")) is None
    g = guests.assess(vm(preference="linux.virtiotransitional"))
    assert g.virtio1 is None and g.id is None and "legacy" in g.evidence
    g = guests.assess(vm(tannotations={"vm.kubevirt.io/os": "haiku-r9"}))
    assert g.virtio1 is None


@pytest.mark.parametrize("gi,sid,virtio1", [
    ({"id": "almalinux", "versionId": "10.0", "kernelRelease": "6.12.0-55.el10.x86_64"}, "almalinux10.0", True),
    ({"id": "rhel", "versionId": "7.9", "kernelRelease": "3.10.0-1160.el7.x86_64"}, "rhel7.9", True),
    ({"id": "centos", "versionId": "6", "kernelRelease": "2.6.32-754.el6.x86_64"}, "centos6", False),
    ({"id": "centos", "versionId": "9", "name": "CentOS Stream"}, "centos-stream9", True),
    ({"id": "sles", "versionId": "11.4"}, "sles11sp4", False),
    ({"id": "sles", "versionId": "15.4"}, "sle15sp4", True),
    ({"id": "ubuntu", "versionId": "16.04", "kernelRelease": "4.4.0-21-generic"}, "ubuntu16.04", True),
    ({"id": "mswindows", "versionId": "2019", "kernelRelease": "17763"}, "win2k19", None),
    ({"id": "mswindows", "versionId": "10"}, "win10", None),
    ({"id": "gentoo-like", "kernelRelease": "3.2.0-4-amd64"}, "gentoo-like", False),
    ({"id": "gentoo-like", "kernelRelease": "5.15.0-1-amd64"}, "gentoo-like", True),
])
def test_guest_agent_os_info(gi, sid, virtio1):
    g = guests.assess(None, vmi_with(**gi))
    assert (g.id, g.virtio1) == (sid, virtio1), g
    assert "status.guestOSInfo" in g.source
    if gi["id"] == "mswindows":
        assert g.kernel_release is None  # a Windows build number is not a Linux release


def test_detect_keeps_the_older_signature():
    g = guests.detect({"os.template.kubevirt.io/centos6.10": "true"}, {})
    assert (g.id, g.virtio1) == ("centos6.10", False)
    assert guests.virtio1_support("rhel7.2")[0] is True


# --- Findings -----------------------------------------------------------------------------

def devs(model, variant=None):
    return [{"kind": "disk", "name": "rootdisk", "model": None, "expected": model, "variant": variant,
             "virtio": True, "boot": True},
            {"kind": "interface", "name": "default", "model": None, "expected": model, "variant": variant,
             "virtio": True},
            {"kind": "video", "name": "video0", "model": None, "expected": "vga", "variant": None, "virtio": False}]


def test_findings_old_guest_on_modern_devices_is_an_error_with_the_fix():
    g = guests.assess(vm(tannotations={"vm.kubevirt.io/os": "centos6.10"}))
    found, d = guests.guest_findings(g, devs(NT), name="c6", namespace="legacy")
    errors = [m for s, m in found if s == "error"]
    assert len(errors) == 1
    assert "disk rootdisk, interface default" in errors[0] and "boot disk (disk rootdisk) will not be found" in errors[0]
    assert "kubectl virtio set-transitional c6 -n legacy" in errors[0]
    assert d["virtio1"] is False and d["id"] == "centos6.10" and d["evidence"]
    found, _ = guests.guest_findings(g, devs(T), name="c6")
    assert not [m for s, m in found if s == "error"]
    # running modern-only, the spec already fixed: restart, not set-transitional
    pending = [dict(d, model=NT if d["virtio"] else d["expected"], expected=T if d["virtio"] else d["expected"])
               for d in devs(NT)]
    found, _ = guests.guest_findings(g, pending, name="c6", namespace="legacy")
    (err,) = [m for s, m in found if s == "error"]
    assert "virtctl restart c6 -n legacy" in err and "set-transitional" not in err


def test_findings_modern_guest_on_transitional_devices():
    g = guests.assess(vm(preference="rhel.9"))
    found, _ = guests.guest_findings(g, devs(T), name="r9", namespace="prod")
    info = [m for s, m in found if s == "info"]
    assert any("not needed" in m and "PCIe root ports" in m and "I/O" in m and
               "kubectl virtio set-transitional r9 --unset -n prod" in m for m in info), info
    found, _ = guests.guest_findings(g, devs(T), name="r9", origin="preference")
    assert any("set-transitional r9 --off" in m for _, m in found)


def test_findings_windows_say_how_to_check():
    g = guests.assess(vm(preference="windows.10"))
    found, _ = guests.guest_findings(g, devs(NT), name="w")
    assert found[0][0] == "warning" and "virtio-win" in found[0][1] and "--guest-agent" in found[0][1]
    assert "0x7B" in found[0][1]


def test_findings_s390x_and_unknown():
    g = guests.assess(vm(tannotations={"vm.kubevirt.io/os": "rhel6.10"}))
    found, _ = guests.guest_findings(g, devs("virtio"), arch="s390x")
    assert [s for s, _ in found] == ["info"]
    found, d = guests.guest_findings(None, devs(NT))
    assert d is None and found and "--guest-os" in found[0][1]


# --- QEMU guest agent: guest-get-devices --------------------------------------------------

AGENT_REPLY = json.dumps({"return": [
    {"driver-name": "Red Hat VirtIO SCSI controller", "driver-date": 1649808000000000000,
     "driver-version": "100.92.104.22100", "id": {"type": "pci", "vendor-id": 6900, "device-id": 4162}},
    {"driver-name": "Red Hat VirtIO Ethernet Adapter", "driver-version": "100.92.104.22100",
     "id": {"type": "pci", "vendor-id": 6900, "device-id": 4161}},
    {"driver-name": "", "id": {"type": "pci", "vendor-id": 6900, "device-id": 4165}},
    {"driver-name": "Intel(R) 82574L", "id": {"type": "pci", "vendor-id": 32902, "device-id": 4307}},
    {"driver-name": "no id"},
]})


def test_parse_guest_devices():
    got = guests.parse_guest_devices(AGENT_REPLY)
    assert [(d["pci"], d["kind"], d["modern"]) for d in got] == [
        ("1af4:1042", "block", True), ("1af4:1041", "net", True), ("1af4:1045", "balloon", True)]
    assert got[0]["driver"] == "Red Hat VirtIO SCSI controller" and got[0]["date"] == "2022-04-13"
    assert got[2]["driver"] is None
    for bad in ("not json", "[]x", json.dumps({"error": {"class": "GenericError", "desc": "Command not found"}}),
                json.dumps({"return": 3})):
        with pytest.raises(ValueError):
            guests.parse_guest_devices(bad)
    with pytest.raises(ValueError):
        guests.parse_guest_devices(" " * (guests.MAX_AGENT_REPLY + 1))


def test_agent_findings_name_unbound_devices():
    g = guests.assess(vm(preference="windows.2k19"))
    found, d = guests.guest_findings(g, devs(NT), name="w", agent_devices=guests.parse_guest_devices(AGENT_REPLY))
    assert d["drivers"][0]["version"] == "100.92.104.22100"
    assert any(s == "error" and "1af4:1045 (balloon)" in m for s, m in found)
    assert any(s == "info" and "guest-get-devices" in m and "viostor" not in m for s, m in found)


def test_identification_is_bounded_on_bad_input():
    huge = "a" * 200000
    obj = {"metadata": {"labels": {"os.template.kubevirt.io/" + huge: "true", "os.template.kubevirt.io/rhel7.1": "true"},
                        "annotations": {"vm.kubevirt.io/os": huge + "9"}}}
    g = guests.assess(obj, {"status": {"guestOSInfo": {"id": ["x"], "versionId": {"a": 1}, "kernelRelease": "9" * 99999}}})
    assert len(repr(g)) < 4000 and g.virtio1 is None
    assert guests.assess({"metadata": "nope", "spec": ["x"]}, {"status": "x"}) is None


def test_a_missing_table_is_a_clear_error(monkeypatch, tmp_path):
    from kubectl_virtio.errors import VirtioError
    monkeypatch.setattr(guests, "_DATA", str(tmp_path / "absent.json"))
    monkeypatch.setattr(guests, "_cache", {})
    guests._id_verdict_cached.cache_clear()  # verdicts are cached by id: read the (absent) table anew
    try:
        with pytest.raises(VirtioError) as e:
            guests.verdict("rhel9.0")
    finally:
        guests._id_verdict_cached.cache_clear()
    assert "guest OS table" in e.value.message and "gen-guests-table" in e.value.hint
