"""Every translate-table row across arches, flag values and KubeVirt versions.

The expectations are written out here from docs/kubevirt.md §0 (translate table) and §2
(history), independently of rules.py, so a wrong row fails.
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
    # the passt sidecar is not arch-aware (docs/kubevirt.md §1.2)
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
    ("tpm", "amd64"): ("tpm-tis", "tpm-tis"), ("sound", "amd64"): ("ich9", "ich9"),
    ("hostdev", "amd64"): (None, None), ("controller.usb", "arm64"): ("qemu-xhci", "qemu-xhci"),
    # the USB controller: none unless a USB device needs it (docs/kubevirt.md §1.3); never on s390x
    ("controller.usb", "amd64"): ("none", "none"), ("controller.usb", "s390x"): ("none", "none"),
    ("controller.usb.xhci", "amd64"): ("qemu-xhci", "qemu-xhci"), ("controller.usb.xhci", "s390x"): ("none", "none"),
    # EFI guests on amd64 get bochs (docs/kubevirt.md §1.7)
    ("video.efi", "amd64"): ("bochs", "bochs"), ("video.efi", "arm64"): ("virtio", "virtio"),
    # arm64 has no watchdog: the converter errors (docs/kubevirt.md §1.10)
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


def test_passt_sidecar_row_starts_with_the_binding_plugins():
    assert not R.rule("interface.passt-sidecar").holds_for(versions.parse("v1.0.1"))
    assert R.rule("interface.passt-sidecar").holds_for(versions.parse("v1.1.0"))


# libvirt/QEMU consequence of a row (docs/libvirt.md §1.3-§1.5, §2): (rule, arch, flag) ->
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
