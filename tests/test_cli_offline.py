"""The installed `kubectl-virtio` run as a subprocess, offline commands only."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from test_explain import TESTVM, dumpxml

NT, T = "virtio-non-transitional", "virtio-transitional"


@pytest.fixture
def files(tmp_path):
    def write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return str(p)
    return write


def test_table_json_covers_every_device_kind_for_all_arches(run_plugin):
    kinds = {"disk", "interface", "hostdev", "controller", "memballoon", "rng", "input", "video", "vsock",
             "filesystem", "watchdog", "sound", "tpm", "panic", "memory"}
    for arch in ("amd64", "arm64", "s390x"):
        r = run_plugin("table", "--arch", arch, "-o", "json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["arch"] == arch and doc["kind"] == "VirtioTranslateTable"
        assert kinds <= {row["kind"] for row in doc["rows"]}
        disk = next(row for row in doc["rows"] if row["id"] == "disk.virtio")
        want = ("virtio", "virtio") if arch == "s390x" else (NT, T)
        assert (disk["whenFalse"], disk["whenTrue"]) == want
        assert set(disk["models"]) == {"amd64", "arm64", "s390x"}


def test_table_formats_and_versions(run_plugin):
    r = run_plugin("table", "-o", "wide")
    # the disk rule is read in converter/converter.go Convert_v1_Disk_To_api_Disk at v1.9.0
    # (there is no storage/disk.go at that tag)
    assert r.returncode == 0 and "KUBEVIRT SOURCE" in r.stdout
    assert "converter/converter.go Convert_v1_Disk_To_api_Disk @v1.9.0" in r.stdout
    r = run_plugin("table", "-o", "markdown")
    assert r.stdout.count("|") > 50
    r = run_plugin("table", "--kubevirt-version", "v0.37.2", "-o", "yaml")
    rows = {row["id"]: row for row in yaml.safe_load(r.stdout)["rows"]}
    assert rows["memballoon.legacy"]["whenTrue"] == "virtio" and "memballoon.virtio" not in rows
    r = run_plugin("table", "--kubevirt-version", "latest")
    assert r.returncode == 2 and r.stderr.startswith("error: invalid KubeVirt version")


def test_motivating_case_unset_then_true(run_plugin, files):
    vm = files("testvm.yaml", TESTVM)
    xml = files("dump.xml", dumpxml(NT))
    r = run_plugin("explain", "-f", vm, "--dumpxml", xml)
    assert r.returncode == 0, r.stderr
    assert "not invent" in r.stdout and "virtio 1.0 only" in r.stdout
    doc = json.loads(run_plugin("explain", "-f", vm, "--dumpxml", xml, "-o", "json").stdout)
    assert {d["status"] for d in doc["devices"] if d["model"] == NT} == {"match"}
    obj = yaml.safe_load(TESTVM)
    obj["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] = True
    vm_true = files("testvm-true.yaml", yaml.safe_dump(obj))
    doc = json.loads(run_plugin("explain", "-f", vm_true, "--dumpxml", xml, "-o", "json").stdout)
    nt_devices = [d for d in doc["devices"] if d["model"] == NT]
    assert len(nt_devices) == 6
    assert all(d["status"] == "drift" and d["expected"] == T for d in nt_devices)
    assert doc["restartRequired"] is True


def test_stdin_and_partial_grep(run_plugin):
    grep = "\n".join(l for l in dumpxml(NT).splitlines() if "virtio" in l)
    r = run_plugin("explain", "--dumpxml", "-", stdin=grep)
    assert r.returncode == 0, r.stderr
    assert "partial" in r.stdout
    r = run_plugin("explain", "-f", "-", "-o", "yaml", stdin=TESTVM)
    assert yaml.safe_load(r.stdout)["devices"][0]["status"] == "predicted"


@pytest.mark.parametrize("args,code,needle", [
    (["explain"], 2, "needs a VM name"),
    (["explain", "vm1", "-f", "x.yaml"], 2, "not both"),
    (["explain", "-f", "/nonexistent.yaml"], 1, "does not exist"),
    (["explain", "-o", "xml", "-f", "x"], 2, "invalid choice"),
    (["bogus"], 2, "invalid choice"),
])
def test_usage_and_input_errors(run_plugin, args, code, needle):
    r = run_plugin(*args)
    assert r.returncode == code
    assert r.stderr.startswith("error: ") and needle in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content,needle", [
    ("a: [1, 2\n", "not valid YAML"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {}\n", "no VirtualMachine"),
    ("\x00\x01binary", "not"),
])
def test_bad_manifests(run_plugin, files, content, needle):
    r = run_plugin("explain", "-f", files("bad.yaml", content))
    assert r.returncode == 1 and r.stderr.startswith("error: ") and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_xxe_is_refused_and_file_not_read(run_plugin, files, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    xml = files("x.xml", "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY s SYSTEM 'file://%s'>]><domain><name>&s;</name>"
                         "</domain>" % secret)
    r = run_plugin("explain", "--dumpxml", xml)
    assert r.returncode == 1 and "DOCTYPE" in r.stderr and "TOPSECRET" not in r.stdout + r.stderr


def test_offline_commands_never_import_kubernetes(tmp_path, files):
    vm, xml = files("vm.yaml", TESTVM), files("d.xml", dumpxml(NT))
    code = ("import sys; from kubectl_virtio import cli; cli.main(%r); cli.main(%r); "
            "print('kubernetes' in sys.modules)") % (["table"], ["explain", "-f", vm, "--dumpxml", xml])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_help_reads_kubectl_virtio_when_run_by_kubectl(plugin_path, tmp_path):
    link = tmp_path / "kubectl-virtio"
    link.symlink_to(plugin_path)
    out = subprocess.run([str(link), "explain", "--help"], capture_output=True, text=True).stdout
    assert out.startswith("usage: kubectl virtio explain")
    assert "Examples:" in out


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def test_motivating_case_on_the_shipped_libvirt_rendered_example(run_plugin, files):
    """The README's case, exactly: KubeVirt's lab VM and libvirt's own dumpxml of its domain."""
    vm, xml = os.path.join(EXAMPLES, "testvm.yaml"), os.path.join(EXAMPLES, "testvm.dumpxml.xml")
    r = run_plugin("explain", "-f", vm, "--dumpxml", xml)
    assert r.returncode == 0, r.stderr
    verdict = next(line for line in r.stdout.splitlines() if line.startswith("Verdict:"))
    assert "useVirtioTransitional is unset (= false" in verdict and "did not invent" in verdict
    assert "virtio 1.0 only" in verdict and "PCIe root port" in verdict
    assert "With useVirtioTransitional: true" in r.stdout
    doc = json.loads(run_plugin("explain", "-f", vm, "--dumpxml", xml, "-o", "json").stdout)
    nt = {(d["kind"], d["name"]) for d in doc["devices"] if d["model"] == NT}
    assert nt == {("disk", "containerdisk"), ("disk", "cloudinitdisk"), ("controller", "scsi0"),
                  ("controller", "virtio-serial0"), ("interface", "default"), ("memballoon", "memballoon0")}
    assert all(d["status"] == "match" and d["variant"] == "modern-only" and d["pciParent"] == "pcie-root-port"
               for d in doc["devices"] if d["model"] == NT)
    obj = yaml.safe_load(open(vm))
    obj["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] = True
    doc = json.loads(run_plugin("explain", "-f", files("t.yaml", yaml.safe_dump(obj)), "--dumpxml", xml,
                                "-o", "json").stdout)
    assert all(d["status"] == "drift" and d["expected"] == T for d in doc["devices"] if d["model"] == NT)


def test_colors_only_on_a_terminal_without_no_color(monkeypatch):
    from kubectl_virtio import domain, explain, render, spec

    exp = explain.explain(spec.select(spec.load_documents(TESTVM)), domain.parse(dumpxml(NT)))
    assert "\033[32mmatch" in render.explanation(exp, "table", color=True)
    assert "\033[" not in render.explanation(exp, "table", color=False)

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert render.use_color(Tty()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert render.use_color(Tty()) is False


def test_markdown_and_wide(run_plugin, files):
    vm, xml = files("vm.yaml", TESTVM), files("d.xml", dumpxml(NT))
    r = run_plugin("explain", "-f", vm, "--dumpxml", xml, "-o", "markdown")
    assert "| kind" in r.stdout and "**Verdict:**" in r.stdout
    r = run_plugin("explain", "-f", vm, "--dumpxml", xml, "-o", "wide")
    assert "QEMU DEVICE" in r.stdout and "virtio-blk-pci-non-transitional" in r.stdout and "Why:" in r.stdout


def test_table_rows_carry_the_libvirt_and_qemu_consequence(run_plugin):
    rows = {r["id"]: r for r in json.loads(run_plugin("table", "-o", "json").stdout)["rows"]}
    disk = rows["disk.virtio"]["libvirt"]
    assert disk["false"]["qemuDevice"] == "virtio-blk-pci-non-transitional"
    assert disk["true"]["machines"]["q35"]["variant"] == "transitional"
    assert "pcie-to-pci-bridge" in disk["true"]["machines"]["q35"]["slot"]
    assert "virtio 1.0 driver" in disk["false"]["machines"]["i440fx"]["guestDriver"]
    assert rows["video.default"]["libvirt"] == {"false": None, "true": None}
    s390 = {r["id"]: r for r in json.loads(run_plugin("table", "--arch", "s390x", "-o", "json").stdout)["rows"]}
    assert s390["disk.virtio"]["libvirt"]["true"]["qemuDevice"] == "virtio-blk-ccw"
    wide = run_plugin("table", "-o", "wide").stdout
    assert "q35: root port -> modern-only" in wide and "q35: pci bridge -> transitional" in wide


def test_stdin_is_read_bounded(plugin_path):
    # 20 MB of zeros on stdin: a clear error, not a MemoryError or a hang
    proc = subprocess.run([plugin_path, "explain", "--dumpxml", "-"], input=b"\0" * (20 * 1024 * 1024),
                          capture_output=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("error: dumpxml stdin is larger than 16 MiB")


def test_markdown_header_is_clean(run_plugin, files):
    vm, xml = files("vm.yaml", TESTVM), files("d.xml", dumpxml(NT))
    out = run_plugin("explain", "-f", vm, "--dumpxml", xml, "-o", "markdown").stdout
    assert out.startswith("- VM: default/testvm\n- Arch: amd64; Machine: q35; KubeVirt rules: ")


def test_pci_without_a_domain_says_why_there_is_no_tree(run_plugin, files):
    r = run_plugin("explain", "-f", files("vm.yaml", TESTVM), "--pci")
    assert r.returncode == 0 and "PCI topology: none to draw without a domain XML" in r.stdout


def test_kubectl_table_layout():
    from kubectl_virtio import render

    text = render.table(["kind", "name", "status"], [["disk", "containerdisk", "\033[32mmatch\033[0m"],
                                                     ["controller", None, "drift"]])
    assert text.splitlines() == ["KIND         NAME            STATUS",
                                 "disk         containerdisk   \033[32mmatch\033[0m",
                                 "controller                   drift"]
    md = render.table(["a", "b"], [["1", "2"]], "markdown")
    assert md.splitlines()[:2] == ["|   a |   b |", "|-----|-----|"]
