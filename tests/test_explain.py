"""Spec reading, prediction and the explanation model (pure core, no I/O)."""
import pytest
import yaml

from kubectl_virtio import domain, explain, spec
from kubectl_virtio.errors import InputError

NT, T = "virtio-non-transitional", "virtio-transitional"

TESTVM = """
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: testvm, namespace: default}
spec:
  running: false
  template:
    metadata: {labels: {kubevirt.io/size: small}}
    spec:
      domain:
        devices:
          disks:
            - {name: containerdisk, disk: {bus: virtio}}
            - {name: cloudinitdisk, disk: {bus: virtio}}
          interfaces:
            - {name: default, masquerade: {}}
      networks: [{name: default, pod: {}}]
      volumes:
        - {name: containerdisk, containerDisk: {image: x}}
        - {name: cloudinitdisk, cloudInitNoCloud: {userDataBase64: SGkuXG4=}}
"""


def vm_with(devices_extra=None, template_extra=None, kind="VirtualMachine", text=TESTVM):
    obj = yaml.safe_load(text)
    t = obj["spec"]["template"]["spec"]
    t["domain"]["devices"].update(devices_extra or {})
    t.update(template_extra or {})
    if kind == "VirtualMachineInstance":
        obj = {"apiVersion": "kubevirt.io/v1", "kind": kind, "metadata": obj["metadata"], "spec": t}
    return obj


def dumpxml(model, arch="x86_64", machine="pc-q35-7.2", extra=""):
    """A small domain as libvirt would show it: every flag-driven device with `model`."""
    bus = "0x00" if model == T else "0x01"
    parent = "<controller type='pci' index='1' model='pcie-root-port'/>" if model != T else ""
    def dev(alias):
        return "<address type='pci' domain='0x0000' bus='%s' slot='0x00' function='0x0'/>" % bus
    return f"""<domain type='kvm'><name>default_testvm</name>
<os><type arch='{arch}' machine='{machine}'>hvm</type></os><devices>
<disk type='file' device='disk' model='{model}'><target dev='vda' bus='virtio'/><alias name='ua-containerdisk'/>{dev(1)}</disk>
<disk type='file' device='disk' model='{model}'><target dev='vdb' bus='virtio'/><alias name='ua-cloudinitdisk'/>{dev(2)}</disk>
<controller type='usb' index='0' model='none'/>
<controller type='virtio-serial' index='0' model='{model}'>{dev(3)}</controller>
<controller type='scsi' index='0' model='{model if model != "virtio" else "virtio-scsi"}'>{dev(4)}</controller>
<controller type='pci' index='0' model='pcie-root'/>{parent}
<interface type='ethernet'><model type='{model}'/><alias name='ua-default'/>{dev(5)}</interface>
<video><model type='vga' vram='16384' heads='1' primary='yes'/></video>
<memballoon model='{model}'>{dev(6)}</memballoon>{extra}
</devices></domain>"""


def run(vm_obj=None, xml=None, **kw):
    vm = spec.select([vm_obj]) if vm_obj is not None else None
    dom = domain.parse(xml) if xml is not None else None
    return explain.explain(vm, dom, **kw)


FLAGGED = {("disk", "containerdisk"), ("disk", "cloudinitdisk"), ("controller", "virtio-serial0"),
           ("controller", "scsi0"), ("interface", "default"), ("memballoon", "memballoon0")}


def flagged(exp):
    return {(d.kind, d.name): d for d in exp.devices if (d.kind, d.name) in FLAGGED}


def test_unset_flag_and_non_transitional_xml_all_match():
    exp = run(vm_with(), dumpxml(NT))
    d = exp.to_dict()
    assert d["useVirtioTransitional"] == {"effective": False, "origin": "default", "live": False}
    assert d["restartRequired"] is False
    fl = flagged(exp)
    assert set(fl) == FLAGGED
    assert all(x.status == "match" and x.expected == NT and x.model == NT for x in fl.values())
    assert fl[("disk", "containerdisk")].rule == "disk.virtio"
    assert "not invent" in exp.verdict and "unset" in exp.verdict
    assert any("With useVirtioTransitional: true" in f.message for f in exp.findings)


def test_flag_true_and_non_transitional_xml_is_drift():
    exp = run(vm_with({"useVirtioTransitional": True}), dumpxml(NT))
    fl = flagged(exp)
    assert all(x.status == "drift" and x.expected == T for x in fl.values())
    assert exp.restart_required and exp.origin == "vm" and exp.live is False
    assert "Restart pending" in exp.verdict


def test_hooked_model_is_unexpected():
    xml = dumpxml(NT).replace("model='virtio-non-transitional'><target dev='vdb'", "model='virtio-transitional'><target dev='vdb'")
    exp = run(vm_with(), xml)
    by = flagged(exp)
    assert by[("disk", "cloudinitdisk")].status == "unexpected"
    assert by[("disk", "containerdisk")].status == "match"
    assert "cloudinitdisk" in exp.verdict
    # the same with no manifest: the majority tells the flag, the outlier stays unexpected
    exp2 = run(None, xml)
    assert {d.name: d.status for d in exp2.devices if d.kind == "disk"} == {"containerdisk": "match",
                                                                            "cloudinitdisk": "unexpected"}


def test_dumpxml_only_infers_the_flag():
    exp = run(None, dumpxml(T))
    assert (exp.effective, exp.origin, exp.live) == (True, "unknown", True)
    assert all(x.status == "match" for x in flagged(exp).values())
    assert "true" in exp.verdict


def test_manifest_only_predicts():
    exp = run(vm_with({"rng": {}, "autoattachMemBalloon": False}))
    st = {(d.kind, d.name): (d.status, d.expected) for d in exp.devices}
    assert st[("disk", "containerdisk")] == ("predicted", NT)
    assert st[("rng", "rng0")] == ("predicted", NT)
    assert st[("memballoon", "memballoon0")] == ("predicted", "none")
    assert exp.live is None and "Predicted" in exp.verdict


def test_preference_origin_and_explicit_false_wins():
    pref = {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineClusterPreference",
            "metadata": {"name": "linux.virtiotransitional"},
            "spec": {"devices": {"preferredUseVirtioTransitional": True, "preferredDiskBus": "virtio"}}}
    vm = vm_with(template_extra={})
    vm["spec"]["preference"] = {"name": "linux.virtiotransitional"}
    v = spec.select([vm, pref])
    assert v.effective_flag() == (True, "preference")
    vm["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] = False
    assert spec.select([vm, pref]).effective_flag() == (False, "vm")


def test_defaults_amd64_sata_arm64_virtio_and_interface_models():
    obj = vm_with({"disks": [{"name": "containerdisk"}, {"name": "cloudinitdisk", "cdrom": {}}],
                   "interfaces": [{"name": "default", "masquerade": {}, "model": "e1000"}]})
    exp = run(obj)
    st = {(d.kind, d.name): (d.bus, d.expected, d.rule) for d in exp.devices}
    assert st[("disk", "containerdisk")] == ("sata", None, "disk.non-virtio")
    assert st[("disk", "cloudinitdisk")] == ("sata", None, "disk.cdrom")
    assert st[("interface", "default")] == (None, "e1000", "interface.emulated")
    exp = run(obj, arch="arm64")
    st = {(d.kind, d.name): (d.bus, d.expected) for d in exp.devices}
    assert st[("disk", "containerdisk")] == ("virtio", NT)


def test_s390x_is_plain_virtio_and_live_flag_unknown():
    exp = run(vm_with({"useVirtioTransitional": True}), dumpxml("virtio", arch="s390x", machine="s390-ccw-virtio"))
    assert exp.arch == "s390x" and exp.live is None
    fl = flagged(exp)
    assert fl[("controller", "scsi0")].expected == "virtio-scsi"
    assert all(x.status == "match" for x in fl.values())


def test_guest_without_virtio1_is_an_error_finding():
    obj = vm_with()
    obj["spec"]["template"]["metadata"]["annotations"] = {"vm.kubevirt.io/os": "centos6.10"}
    exp = run(obj, dumpxml(NT))
    errors = [f.message for f in exp.findings if f.severity == "error"]
    assert errors and "centos6.10" in errors[0] and "set-transitional" in errors[0]
    exp = run(obj, dumpxml(T))
    assert not [f for f in exp.findings if f.severity == "error"]


def test_vmi_origin_and_missing_device_is_drift():
    exp = run(vm_with({"rng": {}}, kind="VirtualMachineInstance"), dumpxml(NT))
    assert exp.origin == "vmi"
    rng = [d for d in exp.devices if d.kind == "rng"][0]
    assert rng.status == "drift" and rng.model is None


def test_contract_keys():
    d = run(vm_with(), dumpxml(NT)).to_dict()
    assert d["kind"] == "VirtioExplanation"
    assert set(d) >= {"kind", "vm", "arch", "machine", "useVirtioTransitional", "restartRequired", "devices", "findings"}
    for dev in d["devices"]:
        assert set(dev) >= {"kind", "name", "target", "bus", "model", "expected", "status", "rule", "reason"}
        assert dev["status"] in explain.STATUSES
    assert d["machine"] == "q35" and d["vm"] == {"namespace": "default", "name": "testvm"}


@pytest.mark.parametrize("docs,message", [
    ([{"kind": "Pod", "metadata": {"name": "x"}, "spec": {}}], "no VirtualMachine"),
    ([{"kind": "VirtualMachine", "metadata": {"name": "Bad_Name"}, "spec": {"template": {"spec": {}}}}], "not a valid"),
    ([{"kind": "VirtualMachine", "metadata": {"name": "a"}}], "no spec"),
])
def test_select_refuses(docs, message):
    with pytest.raises(InputError) as e:
        spec.select(docs)
    assert message in e.value.message


def test_load_documents():
    assert len(spec.load_documents("a: 1\n---\nb: 2\n")) == 2
    assert spec.load_documents('{"kind": "List", "items": [{"kind": "VirtualMachine"}]}') == [{"kind": "VirtualMachine"}]
    with pytest.raises(InputError) as e:
        spec.load_documents("a: [1, 2\nb: c")
    assert "line" in e.value.message
    with pytest.raises(InputError):
        spec.load_documents("- 1\n- 2\n")
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n" % ((chr(98 + i), chr(98 + i)) + (chr(97 + i),) * 9) for i in range(12))
    with pytest.raises(InputError):
        spec.load_documents(bomb)
