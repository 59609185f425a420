"""Every translate-table row across arches, flag values and KubeVirt versions.

The expectations are written out here from KubeVirt's source at the tags named
(docs/kubevirt-rules.md, per rule), independently of rules.py, so a wrong row fails.
"""
import pytest

from kubectl_virtio import rules as R
from kubectl_virtio import versions

NT, T = "virtio-non-transitional", "virtio-transitional"

# (rule id, arch) -> (model when unset/false, model when true), at the newest release.
NEWEST = {
    ("disk.virtio", "amd64"): (NT, T), ("disk.virtio", "arm64"): (NT, T), ("disk.virtio", "s390x"): ("virtio", "virtio"),
    ("disk.downward-metrics", "amd64"): (NT, T), ("disk.downward-metrics", "s390x"): ("virtio", "virtio"),
    ("disk.no-bus", "amd64"): (None, None), ("disk.no-bus", "arm64"): (NT, T), ("disk.no-bus", "s390x"): ("virtio", "virtio"),
    ("disk.non-virtio", "amd64"): (None, None), ("disk.lun", "arm64"): (None, None), ("disk.cdrom", "s390x"): (None, None),
    ("interface.virtio", "amd64"): (NT, T), ("interface.virtio", "arm64"): (NT, T),
    ("interface.virtio", "s390x"): ("virtio", "virtio"),
    # the passt sidecar is not arch-aware
    ("interface.passt-sidecar", "s390x"): (NT, T),
    ("interface.sriov", "amd64"): (None, None),
    ("controller.scsi", "amd64"): (NT, T), ("controller.scsi", "arm64"): (NT, T),
    ("controller.scsi", "s390x"): ("virtio-scsi", "virtio-scsi"),
    ("controller.virtio-serial", "amd64"): (NT, T), ("controller.virtio-serial", "s390x"): ("virtio", "virtio"),
    ("controller.virtio-serial.libvirt", "amd64"): (None, None),
    ("memballoon.virtio", "amd64"): (NT, T), ("memballoon.virtio", "arm64"): (NT, T),
    ("memballoon.virtio", "s390x"): ("virtio", "virtio"), ("memballoon.none", "amd64"): ("none", "none"),
    ("rng.virtio", "amd64"): (NT, T), ("rng.virtio", "s390x"): ("virtio", "virtio"),
    ("input.virtio", "amd64"): ("virtio", "virtio"), ("input.virtio", "arm64"): ("virtio", "virtio"),
    ("input.usb", "amd64"): (None, None), ("input.s390x-keyboard", "s390x"): (None, None),
    ("video.default", "amd64"): ("vga", "vga"), ("video.default", "arm64"): ("virtio", "virtio"),
    ("video.default", "s390x"): ("virtio", "virtio"),
    ("vsock.virtio", "amd64"): (NT, NT), ("vsock.virtio", "arm64"): (NT, NT), ("vsock.virtio", "s390x"): (NT, NT),
    ("filesystem.virtiofs", "amd64"): (None, None),
    ("watchdog", "amd64"): ("i6300esb", "i6300esb"), ("watchdog", "s390x"): ("diag288", "diag288"),
    ("memory.virtio-mem", "arm64"): ("virtio-mem", "virtio-mem"),
    ("tpm", "amd64"): ("tpm-tis", "tpm-tis"), ("tpm.persistent", "amd64"): ("tpm-crb", "tpm-crb"),
    # sound: compute/sound.go SoundDomainConfigurator.Configure (v1.9.0) copies the spec's model
    # (ich9 or ac97) and uses ich9 only when it is empty: the row's model is the spec's
    ("sound", "amd64"): ("(as spec)", "(as spec)"),
    ("hostdev", "amd64"): (None, None), ("controller.usb", "arm64"): ("qemu-xhci", "qemu-xhci"),
    # the USB controller: none unless a USB device needs it; never on s390x
    ("controller.usb", "amd64"): ("none", "none"), ("controller.usb", "s390x"): ("none", "none"),
    ("controller.usb.xhci", "amd64"): ("qemu-xhci", "qemu-xhci"), ("controller.usb.xhci", "s390x"): ("none", "none"),
    # EFI guests on amd64 get bochs
    ("video.efi", "amd64"): ("bochs", "bochs"), ("video.efi", "arm64"): ("virtio", "virtio"),
    # arm64 has no watchdog: the converter errors
    ("watchdog", "arm64"): ("(unsupported)", "(unsupported)"),
}


@pytest.mark.parametrize("rule_id,arch", sorted(NEWEST))
@pytest.mark.parametrize("flag", [False, True])
def test_newest_models(rule_id, arch, flag):
    r = R.rule(rule_id)
    assert r.holds_for(versions.NEWEST)
    assert r.model(flag, arch) == NEWEST[(rule_id, arch)][flag]


def test_ids_are_unique_and_every_row_cites_a_source():
    ids = [r.id for r in R.RULES]
    assert len(ids) == len(set(ids))
    for r in R.RULES:
        assert r.source and r.reason and r.condition, r.id
        assert set(r.models) == set(R.ARCHES), r.id


def test_flag_driven_rows_are_exactly_the_virtio_model_ones():
    driven = {r.id for r in R.rules_for(versions.NEWEST) if r.flag_driven}
    assert driven == {"disk.virtio", "disk.downward-metrics", "disk.no-bus", "interface.virtio",
                      "interface.passt-sidecar", "controller.scsi", "controller.virtio-serial", "memballoon.virtio",
                      "rng.virtio"}


# (version, family) -> (rule id that applies, amd64 model unset/false, amd64 model true)
HISTORY = [
    ("v0.36.0", "disk.virtio", "disk.virtio.no-flag", None, None),
    ("v0.36.0", "interface.virtio", "interface.virtio.no-flag", "virtio", "virtio"),
    ("v0.36.0", "memballoon.virtio", "memballoon.legacy", "virtio", "virtio"),
    ("v0.36.0", "controller.scsi", "controller.scsi.legacy", "virtio-scsi", "virtio-scsi"),
    ("v0.36.0", "controller.virtio-serial", "controller.virtio-serial.no-flag", None, None),
    ("v0.36.0", "rng.virtio", "rng.no-flag", "virtio", "virtio"),
    # no flag, no model: the no-bus row follows the flag's history too
    ("v0.36.0", "disk.no-bus", "disk.no-bus.no-flag", None, None),
    ("v0.37.2", "disk.no-bus", "disk.no-bus", None, None),
    # the v0.36.1 backport: balloon stayed virtio, the SCSI controller was translated
    ("v0.36.1", "disk.virtio", "disk.virtio", NT, T),
    # ... but v0.36.1 itself hard-codes virtio-scsi (converter/converter.go@v0.36.1
    # Convert_v1_VirtualMachine_To_api_Domain); v0.36.2 translates it
    ("v0.36.1", "controller.scsi", "controller.scsi.legacy", "virtio-scsi", "virtio-scsi"),
    ("v0.36.2", "controller.scsi", "controller.scsi", NT, T),
    ("v0.36.5", "memballoon.virtio", "memballoon.legacy", "virtio", "virtio"),
    ("v0.36.5", "controller.scsi", "controller.scsi", NT, T),
    # v0.37.0 and v0.37.1 have no flag
    ("v0.37.1", "disk.virtio", "disk.virtio.no-flag", None, None),
    # the v0.37.2 backport: balloon virtio, SCSI virtio-scsi
    ("v0.37.2", "disk.virtio", "disk.virtio", NT, T),
    ("v0.37.3", "memballoon.virtio", "memballoon.legacy", "virtio", "virtio"),
    ("v0.37.3", "controller.scsi", "controller.scsi.legacy", "virtio-scsi", "virtio-scsi"),
    ("v0.38.0", "memballoon.virtio", "memballoon.virtio", NT, T),
    ("v0.38.0", "controller.scsi", "controller.scsi", NT, T),
    # vsock: translated in v0.59.x, forced non-transitional from v1.0.0
    ("v0.59.2", "vsock.virtio", "vsock.translated", NT, T),
    ("v1.0.0", "vsock.virtio", "vsock.virtio", NT, NT),
]


@pytest.mark.parametrize("ver,family,expected_id,m_false,m_true", HISTORY)
def test_history(ver, family, expected_id, m_false, m_true):
    v = versions.parse(ver)
    r = R.pick(family, v)
    assert r.id == expected_id
    assert r.holds_for(v)
    assert (r.model(False, "amd64"), r.model(True, "amd64")) == (m_false, m_true)


def test_rows_of_flagless_releases_never_name_a_transitional_model():
    for ver in ("v0.20.0", "v0.36.0", "v0.37.0", "v0.37.1"):
        for r in R.rules_for(versions.parse(ver)):
            for arch in R.ARCHES:
                assert {r.model(False, arch), r.model(True, arch)}.isdisjoint({NT, T}), (ver, r.id, arch)


def test_passt_sidecar_row_starts_with_the_sidecar():
    # cmd/sidecars/network-passt-binding is absent at v1.1.0 and present at v1.1.1
    # (domain/configurator.go generateInterface): the sidecar, not the binding API (v1.1.0)
    assert not R.rule("interface.passt-sidecar").holds_for(versions.parse("v1.1.0"))
    assert R.rule("interface.passt-sidecar").holds_for(versions.parse("v1.1.1"))


# libvirt/QEMU consequence of a row: (rule, arch, flag) ->
# (QEMU device, {machine: (slot keyword, variant)})
CONSEQUENCES = [
    ("disk.virtio", "amd64", False, "virtio-blk-pci-non-transitional",
     {"q35": ("pcie-root-port", "modern-only"), "i440fx": ("pci-root", "modern-only")}),
    ("disk.virtio", "amd64", True, "virtio-blk-pci-transitional",
     {"q35": ("pcie-to-pci-bridge", "transitional"), "i440fx": ("pci-root", "transitional")}),
    ("interface.virtio", "arm64", True, "virtio-net-pci-transitional", {"virt": ("pcie-to-pci-bridge", "transitional")}),
    ("controller.scsi", "s390x", True, "virtio-scsi-ccw", {"s390-ccw-virtio": ("ccw", "ccw")}),
    # the passt sidecar is not arch-aware: a non-transitional NIC on s390x does not start
    ("interface.passt-sidecar", "s390x", False, "virtio-net-ccw-non-transitional",
     {"s390-ccw-virtio": ("ccw", "invalid-on-ccw")}),
    # always virtio 1.0, even in a conventional slot
    ("input.virtio", "amd64", True, "virtio-tablet-pci",
     {"q35": ("pcie-root-port", "modern-only"), "i440fx": ("pci-root", "modern-only")}),
    ("vsock.translated", "amd64", True, "vhost-vsock-pci-transitional (removed in QEMU 5.1: will not start)",
     {"q35": ("conventional", "does-not-start")}),
    ("rng.no-flag", "amd64", False, "virtio-rng-pci",
     {"q35": ("pcie-root-port", "modern-only"), "i440fx": ("pci-root", "transitional")}),
]


@pytest.mark.parametrize("rule_id,arch,flag,qemu,machines", CONSEQUENCES)
def test_consequence(rule_id, arch, flag, qemu, machines):
    c = R.consequence(R.rule(rule_id), flag, arch)
    assert c["qemuDevice"] == qemu
    for machine, (slot, variant) in machines.items():
        assert slot in c["machines"][machine]["slot"], (machine, c["machines"][machine])
        assert c["machines"][machine]["variant"] == variant
        assert c["machines"][machine]["guestDriver"] == R.GUEST_NEEDS[variant]


def test_non_virtio_rows_have_no_consequence():
    for rule_id in ("disk.non-virtio", "interface.emulated", "controller.usb", "video.default", "watchdog"):
        assert R.consequence(R.rule(rule_id), False, "amd64") is None


def test_model_meaning_of_always_modern_devices_does_not_depend_on_the_slot():
    assert "only as virtio 1.0" in R.model_meaning("virtio", modern_only=True)
    assert "depending on the slot" in R.model_meaning("virtio")


def test_vsock_absent_before_v0_59():
    assert not any(r.kind == "vsock" for r in R.rules_for(versions.parse("v0.58.0")))


def test_s390x_falls_back_to_amd64_before_v1_3():
    assert R.effective_arch("s390x", versions.parse("v1.2.0")) == "amd64"
    assert R.effective_arch("s390x", versions.parse("v1.3.0")) == "s390x"
    assert R.effective_arch("ppc64le", versions.NEWEST) == "amd64"


@pytest.mark.parametrize("text,expected", [("v1.9.0", (1, 9, 0)), ("1.9", (1, 9, 0)), ("v0.36.1-rc.0", (0, 36, 1))])
def test_version_parse(text, expected):
    assert versions.parse(text) == expected


@pytest.mark.parametrize("text", ["", "latest", "v1", "1.x.0"])
def test_version_parse_rejects(text):
    with pytest.raises(ValueError):
        versions.parse(text)


def test_qemu_device_names():
    assert R.qemu_device("virtio-blk-pci", T, "pci") == "virtio-blk-pci-transitional"
    assert R.qemu_device("virtio-blk-pci", NT, "pci") == "virtio-blk-pci-non-transitional"
    assert R.qemu_device("virtio-blk-pci", "virtio", "ccw") == "virtio-blk-ccw"
    assert "will not start" in R.qemu_device("vhost-vsock-pci", T, "pci")


# Rows whose model does not depend on the flag and is copied from the spec or absent.
NEVER_A_MODEL = {"disk.non-virtio", "disk.lun", "disk.cdrom", "interface.sriov", "input.usb", "input.arm64-usb",
                 "input.s390x-keyboard", "filesystem.virtiofs", "channel.guest-agent", "serial.console",
                 "graphics.vnc", "hostdev", "libvirt.pci", "libvirt.sata", "libvirt.ps2", "libvirt.other",
                 "controller.virtio-serial.libvirt"}
FROM_SPEC = {"interface.emulated", "video.type", "panic"}


@pytest.mark.parametrize("arch", R.ARCHES)
@pytest.mark.parametrize("flag", [False, True])
def test_model_free_rows(arch, flag):
    for rule_id in NEVER_A_MODEL:
        assert R.rule(rule_id).model(flag, arch) is None, rule_id
    for rule_id in FROM_SPEC:
        assert R.rule(rule_id).model(flag, arch) == "(as spec)", rule_id


def test_every_row_is_checked_somewhere_in_this_file():
    covered = {k[0] for k in NEWEST} | {h[2] for h in HISTORY} | NEVER_A_MODEL | FROM_SPEC
    assert {r.id for r in R.RULES} <= covered, {r.id for r in R.RULES} - covered


# --- Where the rules disagreed with KubeVirt's converter --------------------------------
# Each case was read in kubevirt/kubevirt at the tags named (docs/kubevirt-rules.md).

from kubectl_virtio import predict as P  # noqa: E402
from kubectl_virtio.spec import vm_from_object  # noqa: E402


def _vmi(devices=None, volumes=None, kind="VirtualMachineInstance", **spec):
    body = dict(spec, domain={"devices": devices or {}}, volumes=volumes or [])
    if kind == "VirtualMachineInstance":
        return vm_from_object({"kind": kind, "metadata": {"name": "t"}, "spec": body})
    return vm_from_object({"kind": kind, "metadata": {"name": "t"}, "spec": {"template": {"spec": body}}})


def _by_kind(vm, arch="amd64", version="v1.9.0"):
    out = {}
    for e in P.predict(vm, arch, versions.parse(version)):
        out.setdefault(e.kind, []).append(e)
    return out


@pytest.mark.parametrize("model,expected", [("ac97", "ac97"), ("ich9", "ich9"), (None, "ich9")])
def test_sound_copies_the_spec_model(model, expected):
    # compute/sound.go Configure @v1.9.0 (and Convert_v1_Sound_To_api_Sound @v0.48.0): ac97
    # stays ac97; ich9 only when the spec names none
    sound = {"name": "s"} if model is None else {"name": "s", "model": model}
    for version in ("v0.48.0", "v1.9.0"):
        (e,) = _by_kind(_vmi({"sound": sound}), version=version)["sound"]
        assert e.rule.id == "sound" and e.model(False, "amd64") == e.model(True, "amd64") == expected


def test_scsi_controller_is_hard_coded_at_v0_36_1():
    # converter/converter.go @v0.36.1 writes Model "virtio-scsi" even with the flag;
    # @v0.36.2 it writes translateModel(c, "virtio")
    def scsi0(version):
        return next(e for e in _by_kind(_vmi({"useVirtioTransitional": True}), version=version)["controller"]
                    if e.name == "scsi0")
    assert scsi0("v0.36.1").model(True, "amd64") == "virtio-scsi"
    assert scsi0("v0.36.2").model(True, "amd64") == T


@pytest.mark.parametrize("version,model", [("v0.36.0", None), ("v0.36.1", "virtio"), ("v0.37.0", None),
                                           ("v0.37.1", None), ("v0.37.2", "virtio"), ("v1.9.0", "virtio")])
def test_virtio_tablet_model_only_with_the_flag_releases(version, model):
    # Convert_v1_Input_To_api_InputDevice: api/converter.go @v0.36.0/@v0.37.0 sets no model,
    # converter/converter.go @v0.36.1/@v0.37.2 sets "virtio"
    vm = _vmi({"inputs": [{"name": "tab", "type": "tablet", "bus": "virtio"}]})
    (e,) = _by_kind(vm, version=version)["input"]
    assert e.rule.id == "input.virtio" and e.model(False, "amd64") == e.model(True, "amd64") == model


@pytest.mark.parametrize("version,model", [("v1.0.1", "vga"), ("v1.1.0", "bochs"), ("v1.9.0", "bochs")])
def test_bochs_for_efi_guests_from_v1_1_0(version, model):
    # v1.0.1 writes vga for every amd64 guest; v1.1.0 adds BochsForEFIGuests
    vm = _vmi({})
    vm.vmi_spec["domain"]["firmware"] = {"bootloader": {"efi": {}}}
    (e,) = _by_kind(vm, version=version)["video"]
    assert e.model(False, "amd64") == model


@pytest.mark.parametrize("arch,version,model", [
    ("s390x", "v1.5.0", "i6300esb"),  # v1.5.0: no diag288 in the API or the converter
    ("s390x", "v1.5.1", "diag288"),  # backport: converter/arch/s390x.go ConvertWatchdog
    ("s390x", "v1.6.0", "diag288"),
    ("arm64", "v0.59.0", "i6300esb"),  # no arm64 check before v1.0.0's webhooks/arm64.go validateWatchdog
    ("arm64", "v1.0.0", None),  # refused: no device, the VM does not start
    ("amd64", "v1.9.0", "i6300esb"),
])
def test_watchdog_per_arch_and_release(arch, version, model):
    vm = _vmi({"watchdog": {"name": "w", "i6300esb": {}}})
    got = _by_kind(vm, arch=arch, version=version).get("watchdog", [])
    assert [e.model(False, arch) for e in got] == ([model] if model else [])
    if not model:
        assert "refuses" in P.prediction(vm, arch, versions.parse(version)).absent["watchdog"]


def test_downward_metrics_disk_from_v0_42_0():
    # the downwardMetrics volume source and Convert_v1_DownwardMetricSource_To_api_Disk are
    # absent at v0.41.4 and present at v0.42.0
    rule = R.rule("disk.downward-metrics")
    assert not rule.holds_for(versions.parse("v0.38.0")) and not rule.holds_for(versions.parse("v0.41.4"))
    assert rule.holds_for(versions.parse("v0.42.0"))
    vm = _vmi({"disks": [{"name": "m", "disk": {"bus": "virtio"}}]}, [{"name": "m", "downwardMetrics": {}}])
    assert _by_kind(vm, version="v0.41.4")["disk"][0].rule.id == "disk.virtio"
    assert _by_kind(vm, version="v0.42.0")["disk"][0].rule.id == "disk.downward-metrics"


def test_filesystem_volume_gets_no_disk():
    # util.SetDefaultVolumeDisk skips names of disks and filesystems
    vm = _vmi({"filesystems": [{"name": "share", "virtiofs": {}}]},
              [{"name": "share", "persistentVolumeClaim": {"claimName": "c"}}])
    for version in ("v0.54.0", "v1.9.0"):
        got = _by_kind(vm, version=version)
        assert "disk" not in got and [e.name for e in got["filesystem"]] == ["share"]


@pytest.mark.parametrize("version,disks", [("v0.53.2", []), ("v0.54.0", ["extra"]), ("v1.9.0", ["extra"])])
def test_volume_without_disk_gets_one_from_v0_54_0(version, disks):
    # vmi-mutator.go setDefaultVolumeDisk: absent at v0.53.2, present at v0.54.0
    vm = _vmi({}, [{"name": "extra", "emptyDisk": {"capacity": "1Gi"}}])
    assert [e.name for e in _by_kind(vm, version=version).get("disk", [])] == disks


@pytest.mark.parametrize("kind,inputs,usb", [("VirtualMachineInstance", [], "none"),
                                             ("VirtualMachine", ["default-0"], "qemu-xhci")])
def test_autoattach_input_only_through_the_vm_controller(kind, inputs, usb):
    # watch/vm.go autoAttachInputDevice (v0.57.0): the VM controller adds the input; a bare
    # VMI gets neither the tablet nor the xHCI controller it would need
    vm = _vmi({"autoattachInputDevice": True}, kind=kind)
    got = _by_kind(vm, version="v1.9.0")
    assert [e.name for e in got.get("input", [])] == inputs
    usb0 = next(e for e in got["controller"] if e.name == "usb0")
    assert usb0.model(False, "amd64") == usb
    pred = P.prediction(vm, "amd64", versions.NEWEST)
    assert ("bare" in pred.origin_text) == (kind == "VirtualMachineInstance")


def test_autoattach_input_before_the_field_existed():
    vm = _vmi({"autoattachInputDevice": True}, kind="VirtualMachine")
    assert "input" not in _by_kind(vm, version="v0.56.1")
    assert [e.name for e in _by_kind(vm, version="v0.57.0")["input"]] == ["default-0"]


# --- The rules' own consistency ----------------------------------------------------------

def test_every_era_cites_the_tags_it_was_read_at():
    for r in R.RULES:
        for e in r.eras:
            assert e.reads, r.id
            if r.added_by == "libvirt" and r.id.startswith("libvirt."):
                continue
            tags = [versions.parse(rd.tag) for rd in e.reads]
            assert all(rd.file and rd.function for rd in e.reads), r.id
            # the first read is the first release of the span (v0.36.0 for an open start)
            assert tags[0] == (e.since or versions.OLDEST), (r.id, e)
            assert all(e.span.holds(t) for t in tags), (r.id, e)
            if e.until is None:
                assert tags[-1] == versions.NEWEST, (r.id, e)


def test_docs_cite_every_rule_and_every_read():
    import pathlib
    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "kubevirt-rules.md").read_text()
    for r in R.RULES:
        assert "### %s\n" % r.id in doc, r.id
        for e in r.eras:
            for rd in e.reads:
                if rd.tag.startswith("v"):
                    assert "`%s` `%s` @%s" % (rd.file, rd.function, rd.tag) in doc, (r.id, rd)


@pytest.mark.parametrize("text,shown,warns", [("v0.30.0", "v0.36.0", "older"), ("v0.36.0", "v0.36.0", None),
                                              ("v1.9.0", "v1.9.0", None), ("v1.9.1", "v1.9.0", "newer"),
                                              ("v2.0.0", "v1.9.0", "newer")])
def test_rules_release_outside_the_read_range(text, shown, warns):
    release, warning = versions.rules_release(versions.parse(text))
    assert versions.show(release) == shown
    if warns:
        assert warns in warning and text in warning and shown in warning
    else:
        assert warning is None


def test_scsi_controller_for_a_preference_scsi_bus_with_hotplug_off():
    # compute/controllers.go requiresSCSIController @v1.9.0: hotplug off still needs the
    # controller when a disk ends up on bus scsi, here through preferredDiskBus
    from kubectl_virtio.spec import preference_from_object
    vm = _vmi({"disableHotplug": True, "disks": [{"name": "d", "disk": {}}]},
              [{"name": "d", "emptyDisk": {"capacity": "1Gi"}}], kind="VirtualMachine")
    names = lambda: [e.name for e in P.predict(vm, "amd64")]  # noqa: E731
    assert "scsi0" not in names()
    vm.preference = preference_from_object({"kind": "VirtualMachineClusterPreference", "metadata": {"name": "p"},
                                            "spec": {"devices": {"preferredDiskBus": "scsi"}}})
    assert "scsi0" in names()


@pytest.mark.parametrize("version,model,rule_id", [("v0.36.0", "e1000", "interface.emulated"),
                                                   ("v1.0.1", "e1000", "interface.emulated"),
                                                   ("v1.1.0", None, None)])
def test_slirp_interface(version, model, rule_id):
    # getInterfaceType @v0.36.0 / GetInterfaceType @v1.0.1: slirp -> e1000 unless e1000/rtl8139;
    # network.go CreateDomainInterfaces @v1.1.0 skips slirp (a binding plugin's job)
    vm = _vmi({"interfaces": [{"name": "default", "slirp": {}}]}, networks=[{"name": "default", "pod": {}}])
    got = _by_kind(vm, version=version).get("interface", [])
    assert [(e.rule.id, e.model(False, "amd64")) for e in got] == ([(rule_id, model)] if rule_id else [])


def test_binding_plugins_are_left_to_their_sidecar():
    # network.go @v1.1.0 skips interfaces with a binding; the passt sidecar exists from v1.1.1
    vm = _vmi({"interfaces": [{"name": "default", "binding": {"name": "passt"}}]},
              networks=[{"name": "default", "pod": {}}])
    assert "interface" not in _by_kind(vm, version="v1.1.0")
    assert [e.rule.id for e in _by_kind(vm, version="v1.1.1")["interface"]] == ["interface.passt-sidecar"]
    assert [e.rule.id for e in _by_kind(vm, version="v1.0.1")["interface"]] == ["interface.virtio"]


@pytest.mark.parametrize("version,video,disk_bus", [("v0.40.1", "vga", "sata"),  # no arm64 yet: amd64 rules
                                                    ("v0.46.1", None, "sata"),  # arm64 webhook: graphics off
                                                    ("v0.47.1", "virtio", "sata"),
                                                    ("v0.57.0", "virtio", "virtio")])
def test_arm64_history(version, video, disk_bus):
    # pkg/virt-api/webhooks/arm64.go: setDefaultDevices (v0.41.0-v0.46.x) turns graphics off;
    # setDefaultDisksBus (v0.57.0) makes virtio the default disk bus; virtio video from v0.47.1
    vm = _vmi({"disks": [{"name": "d", "disk": {}}]}, [{"name": "d", "emptyDisk": {"capacity": "1Gi"}}])
    arch = R.effective_arch("arm64", versions.parse(version))
    got = _by_kind(vm, arch=arch, version=version)
    assert [e.model(False, arch) for e in got.get("video", [])] == ([video] if video else [])
    assert got["disk"][0].bus == disk_bus


def test_table_outside_the_read_releases_warns_and_names_the_rules_shown(run_plugin):
    import json
    r = run_plugin("table", "--kubevirt-version", "v2.3.0", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["kubevirtVersion"] == "v1.9.0"
    assert r.stderr.startswith("warning: KubeVirt v2.3.0 is newer than v1.9.0") and "rules of v1.9.0" in r.stderr
    r = run_plugin("table", "--kubevirt-version", "v0.20.0", "-o", "json")
    assert json.loads(r.stdout)["kubevirtVersion"] == "v0.36.0" and "rules of v0.36.0" in r.stderr
    r = run_plugin("table", "--kubevirt-version", "v1.5.1")
    assert r.returncode == 0 and r.stderr == ""
    # every era in the wide table names the tag it was read at
    r = run_plugin("table", "--all", "-o", "json")
    for row in json.loads(r.stdout)["rows"]:
        for era in row["sources"]:
            assert era["reads"] and all(rd["tag"] for rd in era["reads"]), row["id"]
