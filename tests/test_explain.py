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
    warnings = [f.message for f in exp.findings if f.severity == "warning" and not f.verdict]
    assert any("recreate the VMI" in w for w in warnings) and not any("virtctl restart" in w for w in warnings)


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


def test_usb_controller_follows_the_usb_devices():
    # docs/kubevirt.md §1.3: qemu-xhci when a USB device needs it (a usb or unset-bus input), else none
    tablet = vm_with({"inputs": [{"name": "tablet", "type": "tablet"}]})
    xml = dumpxml(NT).replace("<controller type='usb' index='0' model='none'/>",
                              "<controller type='usb' index='0' model='qemu-xhci'/>")
    usb = {d.name: d for d in run(tablet, xml).devices}["usb0"]
    assert (usb.expected, usb.status, usb.rule) == ("qemu-xhci", "not-virtio", "controller.usb.xhci")
    usb = {d.name: d for d in run(vm_with(), xml).devices}["usb0"]
    assert usb.expected == "none" and usb.status == "unexpected"
    virtio_tablet = vm_with({"inputs": [{"name": "tablet", "type": "tablet", "bus": "virtio"}]})
    assert {d.name: d for d in run(virtio_tablet).devices}["usb0"].expected == "none"
    assert {d.name: d for d in run(vm_with(), arch="arm64").devices}["usb0"].expected == "qemu-xhci"


def test_a_surprising_emulated_device_is_not_blamed_on_a_hook():
    # the USB controller above: unexpected, but not virtio, so the verdict still says KubeVirt wrote the models
    xml = dumpxml(NT).replace("<controller type='usb' index='0' model='none'/>",
                              "<controller type='usb' index='0' model='qemu-xhci'/>")
    exp = run(vm_with(), xml)
    assert "not invent" in exp.verdict and "hook" not in exp.verdict
    assert any(f.severity == "warning" and "usb0" in f.message and "not a virtio device" in f.message
               for f in exp.findings)


def test_efi_guests_get_bochs_on_amd64():
    efi = vm_with(template_extra={})
    efi["spec"]["template"]["spec"]["domain"]["firmware"] = {"bootloader": {"efi": {"secureBoot": False}}}
    xml = dumpxml(NT).replace("<model type='vga'", "<model type='bochs'")
    video = {d.name: d for d in run(efi, xml).devices}["video0"]
    assert (video.expected, video.status, video.rule) == ("bochs", "not-virtio", "video.efi")
    assert {d.name: d for d in run(vm_with(), xml).devices}["video0"].expected == "vga"
    assert {d.name: d for d in run(efi, arch="arm64").devices}["video0"].expected == "virtio"


def test_no_watchdog_is_predicted_on_arm64():
    obj = vm_with({"watchdog": {"name": "wd", "i6300esb": {}}})
    assert [d.expected for d in run(obj).devices if d.kind == "watchdog"] == ["i6300esb"]
    assert not [d for d in run(obj, arch="arm64").devices if d.kind == "watchdog"]


def test_verdict_leads_the_findings():
    d = run(vm_with({"useVirtioTransitional": True}), dumpxml(NT)).to_dict()
    assert d["findings"][0]["message"] == d["verdict"]
    assert d["findings"][0]["severity"] == "warning"  # drift
    d = run(vm_with(), dumpxml(NT)).to_dict()
    assert d["findings"][0] == {"severity": "info", "message": d["verdict"]}


def test_only_the_referenced_preference_applies():
    pref = {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineClusterPreference",
            "metadata": {"name": "other"}, "spec": {"devices": {"preferredUseVirtioTransitional": True}}}
    vm = vm_with()
    vm["spec"]["preference"] = {"name": "legacy"}
    v = spec.select([vm, pref])
    assert v.preference is None and v.effective_flag() == (False, "default")
    assert "legacy" in v.warnings[0] and "other" in v.warnings[0]
    exp = explain.explain(v, None)
    assert any(f.severity == "warning" and "legacy" in f.message for f in exp.findings)
    # the kind counts too: a namespaced preference of that name is another object
    pref["metadata"]["name"] = "legacy"
    assert spec.select([vm, pref]).preference is not None
    vm["spec"]["preference"]["kind"] = "VirtualMachinePreference"
    assert spec.select([vm, pref]).preference is None
    pref["kind"] = "VirtualMachinePreference"
    assert spec.select([vm, pref]).effective_flag() == (True, "preference")


def test_flag_is_ignored_by_releases_without_it():
    from kubectl_virtio import versions

    exp = run(vm_with({"useVirtioTransitional": True}), version=versions.parse("v0.20.0"))
    assert (exp.effective, exp.origin) == (False, "default")
    assert any("does not know" in f.message for f in exp.findings)
    assert {d.expected for d in exp.devices if d.kind == "disk"} == {None}


def test_device_that_follows_the_running_vmi_is_drift_not_unexpected():
    # the template switched the NIC from e1000 to virtio after the start; the running VMI still says e1000
    running = vm_with({"interfaces": [{"name": "default", "masquerade": {}, "model": "e1000"}]},
                      kind="VirtualMachineInstance")
    xml = dumpxml(NT).replace("<model type='virtio-non-transitional'/><alias name='ua-default'/>",
                              "<model type='e1000'/><alias name='ua-default'/>")
    exp = explain.explain(spec.select([vm_with()]), domain.parse(xml),
                          running_vmi=spec.vm_from_object(running))
    nic = {d.name: d for d in exp.devices}["default"]
    assert (nic.model, nic.expected, nic.status) == ("e1000", NT, "drift")
    assert exp.restart_required
    # a model neither the template nor the running VMI gives stays unexpected
    exp = explain.explain(spec.select([vm_with()]), domain.parse(xml.replace("'e1000'", "'rtl8139'")),
                          running_vmi=spec.vm_from_object(running))
    assert {d.name: d for d in exp.devices}["default"].status == "unexpected"


def test_device_the_template_dropped_is_drift_with_nothing_expected():
    running = vm_with({"rng": {}}, kind="VirtualMachineInstance")
    xml = dumpxml(NT, extra="<rng model='virtio-non-transitional'><backend model='random'>/dev/urandom</backend></rng>")
    exp = explain.explain(spec.select([vm_with()]), domain.parse(xml), running_vmi=spec.vm_from_object(running))
    rng = {d.name: d for d in exp.devices}["rng0"]
    assert (rng.model, rng.expected, rng.status) == (NT, None, "drift")
    assert "no longer" in rng.reason


def test_s390x_fragment_without_addresses_is_ccw():
    frag = ("<type arch='s390x' machine='s390-ccw-virtio-rhel9.2.0'>hvm</type>\n"
            "<disk type='file' device='disk' model='virtio'>\n<target dev='vda' bus='virtio'/>\n")
    dom = domain.parse(frag, fragment=True)
    assert dom.partial and [d.variant for d in dom.devices] == ["ccw"]


def test_virtio_tablet_reason_does_not_depend_on_the_slot():
    xml = dumpxml(NT, extra="<input type='tablet' bus='virtio' model='virtio'><alias name='ua-tablet'/>"
                            "<address type='pci' domain='0x0000' bus='0x00' slot='0x09' function='0x0'/></input>")
    tablet = {d.name: d for d in run(None, xml).devices}["tablet"]
    assert tablet.variant == "modern-only"
    assert "only as virtio 1.0" in tablet.reason and "depending on the slot" not in tablet.reason


def test_plain_virtio_everywhere_points_at_an_older_kubevirt():
    exp = run(vm_with(), dumpxml("virtio"))
    assert "older KubeVirt" in exp.verdict and "--kubevirt-version" in exp.verdict
    assert {d.status for d in flagged(exp).values()} == {"unexpected"}


def test_an_unread_preference_makes_the_origin_unknown_and_the_verdict_says_assumed():
    exp = explain.explain(spec.select([vm_with()]), domain.parse(dumpxml(NT)), preference_unread=True)
    assert exp.to_dict()["useVirtioTransitional"]["origin"] == "unknown"
    assert "assumed: the VM's preference could not be read" in exp.verdict
    # an explicit template value does not depend on any preference
    exp = explain.explain(spec.select([vm_with({"useVirtioTransitional": False})]), domain.parse(dumpxml(NT)),
                          preference_unread=True)
    assert exp.origin == "vm"


# --- Classifying a live device with no manifest (explain.classify -> the rules' `seen`) ----

from kubectl_virtio import domain as _D  # noqa: E402
from kubectl_virtio import explain as E  # noqa: E402
from kubectl_virtio import rules as R  # noqa: E402
from kubectl_virtio import versions as _V  # noqa: E402


def _dev(kind, **kw):
    return _D.Device(kind=kind, name=kw.pop("name", kind + "0"), **kw)


CLASSIFIED = [
    # (device, release, rule)
    (_dev("controller", type="virtio-serial"), "v1.9.0", "controller.virtio-serial.libvirt"),
    (_dev("controller", type="virtio-serial"), "v0.36.0", "controller.virtio-serial.no-flag"),
    (_dev("controller", type="virtio-serial", model="virtio-transitional"), "v1.9.0", "controller.virtio-serial"),
    # converter/converter.go @v0.36.1 hard-codes virtio-scsi; @v0.36.2 translates it
    (_dev("controller", type="scsi", model="virtio-scsi"), "v0.36.1", "controller.scsi.legacy"),
    (_dev("controller", type="scsi", model="virtio-non-transitional"), "v0.36.2", "controller.scsi"),
    (_dev("controller", type="usb", model="qemu-xhci"), "v1.9.0", "controller.usb.xhci"),
    (_dev("controller", type="pcie-root-port", index=1), "v1.9.0", "libvirt.pci"),
    (_dev("input", type="tablet", bus="virtio", alias="ua-tab"), "v0.36.0", "input.virtio"),
    (_dev("input", type="keyboard", bus="virtio"), "v1.9.0", "input.s390x-keyboard"),
    (_dev("input", type="mouse", bus="ps2"), "v1.9.0", "libvirt.ps2"),
    (_dev("video", model="bochs"), "v1.1.0", "video.efi"),
    (_dev("video", model="vga"), "v1.0.1", "video.default"),
    (_dev("video", model="cirrus"), "v1.6.0", "video.type"),
    (_dev("tpm", model="tpm-crb"), "v1.9.0", "tpm.persistent"),
    (_dev("tpm", model="tpm-tis"), "v1.9.0", "tpm"),
    (_dev("vsock", model="virtio-transitional"), "v0.59.0", "vsock.translated"),
    (_dev("hostdev", alias="ua-sriov-net1", name="net1"), "v1.9.0", "interface.sriov"),
    (_dev("interface", model="e1000"), "v1.9.0", "interface.emulated"),
    (_dev("disk", device="disk", bus="virtio", model="virtio-non-transitional"), "v1.9.0", "disk.virtio"),
    (_dev("disk", device="disk", bus="virtio"), "v0.37.1", "disk.virtio.no-flag"),
    (_dev("memballoon", model="virtio"), "v0.37.3", "memballoon.legacy"),
    (_dev("memballoon", model="none"), "v1.9.0", "memballoon.none"),
]


@pytest.mark.parametrize("dev,version,rule_id", CLASSIFIED, ids=[c[2] + "@" + c[1] for c in CLASSIFIED])
def test_classify_by_the_rules_seen_condition(dev, version, rule_id):
    v = _V.parse(version)
    r = E.classify(dev, v)
    assert r.id == rule_id and r.holds_for(v)


@pytest.mark.parametrize("version", ["v0.36.0", "v0.36.1", "v0.37.1", "v0.38.0", "v1.0.0", "v1.5.0", "v1.9.0"])
def test_live_conditions_do_not_overlap(version):
    """At most one holding rule (besides the libvirt.other fallback) recognises a device."""
    v = _V.parse(version)
    for dev, _, _ in CLASSIFIED:
        hits = [r.id for r in R.RULES if r.seen is not None and r.holds_for(v) and r.seen(dev, v)
                and r.id != "libvirt.other"]
        assert len(hits) <= 1, (dev, hits)
# --- Offline parity (explain -f / --dumpxml) ------------------------------------------------

def all_text(exp):
    return [exp.verdict] + [f.message for f in exp.findings] + [d.reason for d in exp.devices]


def test_offline_unread_preference_is_assumed_and_says_how_to_pass_it():
    obj = vm_with()
    obj["spec"]["preference"] = {"name": "centos.6"}
    for xml in (None, dumpxml(NT)):
        exp = run(obj, xml)
        assert exp.to_dict()["useVirtioTransitional"]["origin"] == "unknown"
        assert "assumed" in exp.verdict and "VirtualMachineClusterPreference centos.6" in exp.verdict
        assert "-f pref.yaml" in exp.verdict and "kubectl get vmcp centos.6 -o yaml" in exp.verdict
        assert "from default" not in exp.verdict and "(= false, the default)" not in exp.verdict
    obj["spec"]["preference"] = {"name": "legacy", "kind": "VirtualMachinePreference"}
    exp = run(obj)
    assert "kubectl get vmpref legacy -n default -o yaml" in exp.verdict
    # given with -f, the preference decides and nothing is assumed
    pref = {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachinePreference",
            "metadata": {"name": "legacy"}, "spec": {"devices": {"preferredUseVirtioTransitional": True}}}
    exp = explain.explain(spec.select([obj, pref]), None)
    assert exp.origin == "preference" and "assumed" not in exp.verdict and exp.effective is True


def test_a_domain_of_another_vm_gets_a_warning_naming_both():
    xml = dumpxml(NT).replace("<name>default_testvm</name>", "<name>default_windows</name>")
    warnings = [f.message for f in run(vm_with(), xml).findings if f.severity == "warning"]
    assert any("default_windows" in w and "default/testvm" in w and "default_testvm" in w for w in warnings)
    other_ns = dumpxml(NT).replace("<name>default_testvm</name>", "<name>prod_testvm</name>")
    assert any("prod_testvm" in f.message for f in run(vm_with(), other_ns).findings)
    assert not any("are they of the same VM" in f.message for f in run(vm_with(), dumpxml(NT)).findings)


def test_a_spec_device_absent_from_the_domain_says_so_and_never_has_no_model():
    obj = vm_with({"disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}},
                             {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                             {"name": "extra", "disk": {"bus": "virtio"}}]})
    obj["spec"]["template"]["spec"]["volumes"].append({"name": "extra", "persistentVolumeClaim": {"claimName": "x"}})
    exp = run(obj, dumpxml(NT))
    texts = all_text(exp)
    assert not any("has no model" in t for t in texts)
    extra = {d.name: d for d in exp.devices}["extra"]
    assert extra.status == "drift" and extra.model is None and "hotplug" in extra.reason
    assert any("not in the running domain: disk extra" in f.message for f in exp.findings)
    assert "disk extra is not in the running domain" in exp.verdict and "hotplug" in exp.verdict
    assert exp.restart_required


BUT_RE = __import__("re").compile(r"useVirtioTransitional[^.]*?= (true|false)[^.]*?\bbut\b[^.]*?"
                                  r"useVirtioTransitional = (true|false)")


@pytest.mark.parametrize("flag,model", [(None, NT), (False, NT), (True, T), (True, NT), (None, T)])
def test_no_verdict_states_the_same_flag_value_on_both_sides_of_but(flag, model):
    devices = {"useVirtioTransitional": flag} if flag is not None else {}
    obj = vm_with(devices)
    obj["spec"]["template"]["spec"]["domain"]["devices"].setdefault("disks", []).append(
        {"name": "extra", "disk": {"bus": "virtio"}})
    exp = run(obj, dumpxml(model))
    for m in BUT_RE.finditer(exp.verdict):
        assert m.group(1) != m.group(2), exp.verdict
    assert "unset (= false, the default) asks for virtio-non-transitional, but" not in exp.verdict or model == T


def i440fx(model):
    """dumpxml() on an i440fx `pc` machine: every device in a conventional slot on pci-root."""
    return (dumpxml(T).replace(T, model).replace("pc-q35-7.2", "pc-i440fx-7.2")
            .replace("model='pcie-root'", "model='pci-root'"))


@pytest.mark.parametrize("model,flag", [(NT, None), (T, True), (NT, True), (T, None), ("virtio", None)])
def test_i440fx_sentences_follow_the_machine(model, flag):
    exp = run(vm_with({"useVirtioTransitional": flag} if flag is not None else {}), i440fx(model))
    assert exp.machine == "i440fx"
    for text in all_text(exp):
        assert "pcie-to-pci-bridge" not in text and "root port" not in text.lower() and "q35" not in text, text
    assert any("pci-root" in f.message and "only the device changes" in f.message for f in exp.findings)


def test_q35_and_arm64_virt_sentences_name_root_ports_and_the_bridge():
    exp = run(vm_with(), dumpxml(NT))
    assert any("on q35 libvirt moves them behind a pcie-to-pci-bridge" in f.message for f in exp.findings)
    assert "PCIe root port" in exp.verdict
    arm = run(vm_with(template_extra={"architecture": "arm64"}))
    assert arm.arch == "arm64" and arm.machine is None
    texts = all_text(arm)
    assert any("on arm64 virt (KubeVirt's default machine type) libvirt moves them behind a pcie-to-pci-bridge"
               in t for t in texts)
    assert not any("q35" in t or "pci-root" in t for t in texts)
    # an amd64 prediction without a machine type follows KubeVirt's default, q35, and says it is assumed
    assert any("on q35 (KubeVirt's default machine type)" in t for t in all_text(run(vm_with())))
    pc = vm_with(template_extra={"domain": dict(vm_with()["spec"]["template"]["spec"]["domain"],
                                                machine={"type": "pc-i440fx-7.2"})})
    assert not any("bridge" in t or "root port" in t for t in all_text(run(pc)))


def test_s390x_sentences_are_ccw_without_pci():
    exp = run(vm_with(template_extra={"architecture": "s390x"}))
    for text in all_text(exp):
        assert "pcie" not in text.lower() and "pci-root" not in text and "root port" not in text, text
    assert any("ccw" in d.reason for d in exp.devices if d.virtio)
