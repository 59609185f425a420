"""KubeVirt's translate table as data: which model each device gets, and why.

One `Rule` per (device kind, spec condition). A rule gives the model KubeVirt's converter
writes into the domain XML when `useVirtioTransitional` is false/unset and when it is true,
per converter architecture, the KubeVirt source that does it and the releases it holds for.

Facts: docs/kubevirt.md §0-§2 (KubeVirt HEAD d923fdb815 = v1.9.0 logic)
and docs/libvirt.md §0-§1 (libvirt 9.0 / QEMU 7.2).  Paths below are in kubevirt/kubevirt,
relative to pkg/virt-launcher/virtwrap/converter/ unless they start with pkg/ or staging/.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from kubectl_virtio import versions
from kubectl_virtio.versions import ALL, WITH_FLAG, WITHOUT_FLAG, Span, Version

ARCHES = ("amd64", "arm64", "s390x")
# libvirt/QEMU names of the architectures (domain <os><type arch=...>).
ARCH_FROM_QEMU = {"x86_64": "amd64", "i686": "amd64", "aarch64": "arm64", "s390x": "s390x"}

NT, T, V = "virtio-non-transitional", "virtio-transitional", "virtio"
VIRTIO_MODELS = (NT, T, V)

# s390x support (and its `virtio` model) arrived in v1.3.0 (PR #10490).  Before that the
# converter knew no s390x and fell back to amd64 (arch.NewConverter's default).
S390X_SINCE: Version = (1, 3, 0)
# The passt network binding plugin sidecar: kubevirt PR #10425 (2023-09), first in v1.1.0.
PASST_SIDECAR_SINCE: Version = (1, 1, 0)
# A model KubeVirt cannot produce on that arch: the converter fails, the VM does not start.
UNSUPPORTED = "(unsupported)"

Models = Dict[str, Tuple[Optional[str], Optional[str]]]  # arch -> (flag false/unset, flag true)


def _flagged(s390x: str = V) -> Models:
    """The `virtioModel` of converter.go: InterpretTransitionalModelType(flag, arch)."""
    return {"amd64": (NT, T), "arm64": (NT, T), "s390x": (s390x, s390x)}


def _fixed(model: Optional[str], **per_arch: Optional[str]) -> Models:
    return {a: (per_arch.get(a, model), per_arch.get(a, model)) for a in ARCHES}


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str  # the contract's device kind (disk, controller, interface, ...)
    condition: str  # the spec condition, in the user's terms
    models: Models
    source: str  # KubeVirt file and function
    reason: str  # one sentence: why this model
    spans: Tuple[Span, ...] = ALL
    qemu: Optional[str] = None  # QEMU device base name on PCI, e.g. virtio-blk-pci
    virtio: bool = True  # a virtio device at all
    added_by: str = "kubevirt"  # or "libvirt": not in KubeVirt's converter output
    note: str = ""  # what libvirt/QEMU/the guest make of it, beyond the generic model text
    modern_only: bool = False  # QEMU forces virtio 1.0 whatever the model or slot (docs/libvirt.md §0.6)
    flag_driven: bool = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "flag_driven", any(f != t for f, t in self.models.values()))

    def model(self, flag: bool, arch: str) -> Optional[str]:
        arch = arch if arch in self.models else "amd64"
        return self.models[arch][1 if flag else 0]

    def holds_for(self, version: Version) -> bool:
        return versions.holds(self.spans, version)


# --- The rows --------------------------------------------------------------------------
# Ordered as `kubectl virtio table` prints them.

RULES: Tuple[Rule, ...] = (
    # Disks: storage/disk.go convert_v1_Disk_To_api_Disk sets Model only for a `disk` on bus virtio.
    Rule("disk.virtio", "disk", "disk: {bus: virtio}", _flagged(),
         "storage/disk.go convert_v1_Disk_To_api_Disk", spans=WITH_FLAG, qemu="virtio-blk-pci",
         reason="a disk on bus virtio gets the VMI's virtio model"),
    Rule("disk.virtio.no-flag", "disk", "disk: {bus: virtio}, KubeVirt without the flag", _fixed(None),
         "pkg/virt-launcher/virtwrap/api/converter.go (<= v0.36.0)", spans=WITHOUT_FLAG, qemu="virtio-blk-pci",
         reason="before useVirtioTransitional existed KubeVirt wrote no disk model: libvirt's plain virtio applies"),
    Rule("disk.downward-metrics", "disk", "volume downwardMetrics (any bus)", _flagged(),
         "storage/volume.go convert_v1_DownwardMetricSource_To_api_Disk", spans=(Span(versions.V0_38_0),),
         qemu="virtio-blk-pci",
         reason="the downward-metrics disk always gets the virtio model, whatever bus the spec names"),
    Rule("disk.no-bus", "disk", "disk: {} (no bus; no preferredDiskBus)",
         {"amd64": (None, None), "arm64": (NT, T), "s390x": (V, V)},
         "pkg/defaults setDefaultAmd64DisksBus / setDefaultArm64DisksBus", spans=WITH_FLAG, qemu=None,
         reason="the mutating webhook sets bus sata on amd64 (no model) and virtio on arm64/s390x"),
    Rule("disk.no-bus.no-flag", "disk", "disk: {} (no bus), KubeVirt without the flag", _fixed(None),
         "pkg/defaults (<= v0.36.0)", spans=WITHOUT_FLAG, qemu=None,
         reason="sata on amd64; a virtio disk had no model before the flag, so libvirt's plain virtio applies"),
    Rule("disk.non-virtio", "disk", "disk: {bus: sata|scsi|usb}", _fixed(None),
         "storage/disk.go convert_v1_Disk_To_api_Disk", virtio=False,
         reason="only bus virtio gets a model; sata, scsi and usb disks are emulated, no virtio driver needed"),
    Rule("disk.lun", "disk", "lun: {bus: scsi|virtio}", _fixed(None),
         "storage/disk.go convert_v1_Disk_To_api_Disk", virtio=False,
         reason="a LUN never gets a model; on bus virtio libvirt's plain virtio applies (variant follows the slot)"),
    Rule("disk.cdrom", "disk", "cdrom: {bus: sata|scsi}", _fixed(None),
         "storage/disk.go convert_v1_Disk_To_api_Disk", virtio=False,
         reason="a CD-ROM never gets a model (a virtio CD-ROM is rejected by the admitter)"),
    # Interfaces: network/configurator.go configureInterface; getInterfaceType defaults to virtio.
    Rule("interface.virtio", "interface", "interface model: virtio or unset", _flagged(),
         "network/configurator.go configureInterface", spans=WITH_FLAG, qemu="virtio-net-pci",
         reason="an interface of model virtio (the default) gets the VMI's virtio model"),
    Rule("interface.virtio.no-flag", "interface", "interface model: virtio or unset, KubeVirt without the flag",
         _fixed(V), "pkg/virt-launcher/virtwrap/api/converter.go getInterfaceType (<= v0.36.0)",
         spans=WITHOUT_FLAG, qemu="virtio-net-pci",
         reason="before the flag KubeVirt wrote plain virtio: the variant follows the PCI slot"),
    Rule("interface.emulated", "interface", "interface model: e1000|e1000e|igb|ne2k_pci|pcnet|rtl8139",
         _fixed("(as spec)"), "network/configurator.go getInterfaceType", virtio=False,
         reason="any model other than virtio is copied verbatim; the flag does not touch it"),
    Rule("interface.passt-sidecar", "interface", "binding plugin passt (sidecar)",
         {a: (NT, T) for a in ARCHES},
         "cmd/sidecars/network-passt-binding/domain/configurator.go generateInterface", qemu="virtio-net-pci",
         spans=(Span(PASST_SIDECAR_SINCE),),
         reason="the passt sidecar picks the model itself and is not arch-aware (non-transitional even on s390x)"),
    Rule("interface.sriov", "hostdev", "interface sriov: {}", _fixed(None),
         "compute.NewHostDeviceDomainConfigurator (SR-IOV)", virtio=False,
         reason="an SR-IOV interface becomes a PCI hostdev (alias ua-sriov-NAME): the guest sees the VF"),
    # Controllers: compute/controllers.go ControllersDomainConfigurator.Configure.
    Rule("controller.scsi", "controller",
         "SCSI controller (unless disableHotplug and no scsi disk)", _flagged(s390x="virtio-scsi"),
         "compute/controllers.go requiresSCSIController, arch SCSIControllerModel",
         spans=(Span(versions.V0_36_1, versions.V0_37_0), Span(versions.V0_38_0)), qemu="virtio-scsi-pci",
         reason="the hotplug SCSI controller gets the VMI's virtio model (virtio-scsi on s390x)"),
    Rule("controller.scsi.legacy", "controller",
         "SCSI controller, KubeVirt without the flag or v0.37.2-v0.37.x", _fixed("virtio-scsi"),
         "pkg/virt-launcher/virtwrap/api/converter.go (<= v0.37.x)",
         spans=(Span(None, versions.V0_36_1), Span(versions.V0_37_0, versions.V0_38_0)), qemu="virtio-scsi-pci",
         reason="these releases wrote virtio-scsi: the variant follows the PCI slot (PR #4850 changed it in v0.38)"),
    Rule("controller.virtio-serial", "controller", "virtio-serial controller (autoattachSerialConsole unset/true)",
         _flagged(), "compute/controllers.go requiresVirtioSerialController", spans=WITH_FLAG,
         qemu="virtio-serial-pci",
         reason="the virtio-serial controller (guest agent channel, console) gets the VMI's virtio model"),
    Rule("controller.virtio-serial.no-flag", "controller", "virtio-serial controller, KubeVirt without the flag",
         _fixed(None), "pkg/virt-launcher/virtwrap/api/converter.go (<= v0.36.0)", spans=WITHOUT_FLAG,
         qemu="virtio-serial-pci", reason="before the flag the controller had no model: libvirt's plain virtio applies"),
    Rule("controller.virtio-serial.libvirt", "controller", "autoattachSerialConsole: false", _fixed(None),
         "libvirt (KubeVirt omits the controller but keeps the guest-agent channel)", qemu="virtio-serial-pci",
         added_by="libvirt",
         reason="KubeVirt writes no virtio-serial controller; libvirt adds one without a model for the agent channel"),
    # The USB controller is always emitted; its model follows Architecture.IsUSBNeeded (§1.3).
    Rule("controller.usb", "controller", "USB controller, no USB device in the spec",
         _fixed("none", arm64="qemu-xhci"), "compute/controllers.go, arch IsUSBNeeded", virtio=False,
         reason="no USB device needs it: model none (arm64 always has qemu-xhci for its USB tablet and keyboard)"),
    Rule("controller.usb.xhci", "controller",
         "USB controller, a usb input/disk or clientPassthrough",
         _fixed("qemu-xhci", s390x="none"), "compute/controllers.go, arch IsUSBNeeded", virtio=False,
         reason="a USB device in the spec makes KubeVirt emit an xHCI controller (never on s390x)"),
    # memballoon: compute/balloon.go BalloonDomainConfigurator.Configure; always emitted.
    Rule("memballoon.virtio", "memballoon", "memballoon (autoattachMemBalloon unset/true)", _flagged(),
         "compute/balloon.go BalloonDomainConfigurator.Configure", spans=(Span(versions.V0_38_0),),
         qemu="virtio-balloon-pci", reason="the balloon gets the VMI's virtio model"),
    Rule("memballoon.legacy", "memballoon", "memballoon, KubeVirt before v0.38.0", _fixed(V),
         "pkg/virt-launcher/virtwrap/api/converter.go (<= v0.37.x)", spans=(Span(None, versions.V0_38_0),),
         qemu="virtio-balloon-pci",
         reason="releases before v0.38.0 (backports included) wrote plain virtio: the variant follows the slot"),
    Rule("memballoon.none", "memballoon", "autoattachMemBalloon: false", _fixed("none"),
         "compute/balloon.go BalloonDomainConfigurator.Configure", virtio=False,
         reason="the balloon is switched off: model none, no device"),
    # rng: compute/rng.go, only when spec.domain.devices.rng is set (or preferredRng).
    Rule("rng.virtio", "rng", "rng: {}", _flagged(), "compute/rng.go RNGDomainConfigurator.Configure",
         spans=WITH_FLAG, qemu="virtio-rng-pci", reason="the entropy device gets the VMI's virtio model"),
    Rule("rng.no-flag", "rng", "rng: {}, KubeVirt without the flag", _fixed(V),
         "pkg/virt-launcher/virtwrap/api/converter.go (<= v0.36.0)", spans=WITHOUT_FLAG, qemu="virtio-rng-pci",
         reason="before the flag KubeVirt wrote plain virtio: the variant follows the slot"),
    # Inputs: compute/input_device.go apiInputDeviceFromV1InputDevice.
    Rule("input.virtio", "input", "input bus: virtio (tablet)", _fixed(V),
         "compute/input_device.go apiInputDeviceFromV1InputDevice", qemu="virtio-tablet-pci",
         modern_only=True,
         reason="virtio input devices exist only as virtio 1.0: always model virtio, whatever the flag",
         note="libvirt rejects (non-)transitional models for input devices"),
    Rule("input.usb", "input", "input bus: usb or unset", _fixed(None),
         "compute/input_device.go apiInputDeviceFromV1InputDevice", virtio=False,
         reason="a USB tablet has no model and needs no virtio driver"),
    Rule("input.s390x-keyboard", "input", "s390x keyboard (autoattachGraphicsDevice unset/true)",
         _fixed(None), "compute/input_device.go addArchitectureSpecificInputDevices", qemu="virtio-keyboard-ccw",
         modern_only=True,
         reason="on s390x KubeVirt adds a virtio keyboard without a model"),
    Rule("input.arm64-usb", "input", "arm64 usb tablet/keyboard (autoattachGraphicsDevice unset/true)",
         _fixed(None), "compute/input_device.go addArchitectureSpecificInputDevices", virtio=False,
         reason="on arm64 KubeVirt adds a USB tablet and keyboard"),
    # Video: compute/graphics.go configureVideoDevice; never affected by the flag.
    Rule("video.default", "video", "video (autoattachGraphicsDevice unset/true, no video type, BIOS)",
         _fixed("vga", arm64="virtio", s390x="virtio"), "compute/graphics.go configureVideoDevice",
         virtio=False, reason="vga on amd64, virtio-gpu on arm64 and s390x; the flag never applies",
         note="video virtio is modern-only (virtio-vga / virtio-gpu-pci)"),
    Rule("video.efi", "video", "video (no video type), EFI firmware",
         _fixed("bochs", arm64="virtio", s390x="virtio"), "compute/graphics.go configureVideoDevice",
         virtio=False,
         reason="EFI guests on amd64 get bochs (BochsForEFIGuests, unless the VGADisplayForEFIGuests feature gate "
                "is on: then vga); the flag never applies"),
    Rule("video.type", "video", "video: {type: vga|cirrus|virtio|ramfb|bochs}", _fixed("(as spec)"),
         "compute/graphics.go configureVideoDevice", virtio=False,
         reason="the video type is copied from the spec; the flag never applies"),
    # vsock: compute/vsock.go, forced to non-transitional since v1.0.0 (PR #9160).
    Rule("graphics.vnc", "graphics", "VNC display (autoattachGraphicsDevice unset/true)", _fixed(None),
         "compute/graphics.go", virtio=False, reason="the VNC display on a unix socket; not a device the guest drives"),
    Rule("vsock.virtio", "vsock", "autoattachVSOCK: true", _fixed(NT), "compute/vsock.go",
         spans=(Span((1, 0, 0)),), qemu="vhost-vsock-pci",
         modern_only=True,
         reason="vsock is always non-transitional: QEMU 5.1 removed vhost-vsock-pci-transitional"),
    Rule("vsock.translated", "vsock", "autoattachVSOCK: true, KubeVirt v0.59.x", _flagged(),
         "converter.go translateModel (v0.59.x)", spans=(Span((0, 59, 0), (1, 0, 0)),), qemu="vhost-vsock-pci",
         modern_only=True,
         reason="v0.59 translated vsock like other devices; a transitional vsock does not start on QEMU >= 5.1"),
    Rule("filesystem.virtiofs", "filesystem", "filesystems: [{virtiofs: {}}]", _fixed(None),
         "storage/virtiofs.go VirtiofsConfigurator.Configure", qemu="vhost-user-fs-pci",
         modern_only=True,
         reason="virtiofs never has a model (libvirt refuses one); vhost-user-fs is modern-only"),
    Rule("channel.guest-agent", "channel", "guest agent channel (always)", _fixed(None),
         "compute/channels.go", virtio=False,
         reason="a port on the virtio-serial controller; it has no model of its own"),
    Rule("serial.console", "serial", "serial console (autoattachSerialConsole unset/true)", _fixed(None),
         "compute/console.go", virtio=False, reason="an ISA serial port; not a virtio device"),
    Rule("memory.virtio-mem", "memory", "memory hotplug (maxGuest)", _fixed("virtio-mem"),
         "pkg/liveupdate/memory/memory.go BuildMemoryDevice", qemu="virtio-mem-pci",
         modern_only=True,
         reason="hotplugged memory is virtio-mem, modern-only and independent of the flag"),
    Rule("watchdog", "watchdog", "watchdog: {}", _fixed("i6300esb", s390x="diag288", arm64=UNSUPPORTED),
         "compute/watchdog.go", virtio=False,
         reason="an emulated watchdog (i6300esb, diag288 on s390x); arm64 has none: KubeVirt refuses to start the "
                "VM; the flag never applies"),
    Rule("sound", "sound", "sound: {model: ich9|ac97}", _fixed("ich9"), "compute/sound.go", virtio=False,
         reason="an emulated sound card; the flag never applies"),
    Rule("tpm", "tpm", "tpm: {}", _fixed("tpm-tis"), "compute/tpm.go", virtio=False,
         reason="tpm-tis, or tpm-crb when persistent; the flag never applies"),
    Rule("panic", "panic", "panicDevices: [...]", _fixed("(as spec)"), "compute/panic_devices.go", virtio=False,
         reason="the model is copied from the spec; the flag never applies"),
    Rule("hostdev", "hostdev", "gpus / hostDevices", _fixed(None),
         "device/hostdevice/hostdev.go", virtio=False,
         reason="passed-through host devices carry no virtio model (mdev ones say vfio-pci)"),
    # Devices libvirt adds by itself (never in KubeVirt's converter output).
    Rule("libvirt.pci", "controller", "PCI topology (added by libvirt)", _fixed(None), "libvirt qemu_domain_address.c",
         virtio=False, added_by="libvirt",
         reason="libvirt builds the PCI topology: a root port per PCIe device, a pcie-to-pci-bridge for transitional ones"),
    Rule("libvirt.sata", "controller", "SATA controller (added by libvirt)", _fixed(None), "libvirt (q35)",
         virtio=False, added_by="libvirt", reason="q35 always has the ICH9 AHCI controller"),
    Rule("libvirt.ps2", "input", "PS/2 mouse and keyboard (added by libvirt)", _fixed(None), "libvirt (x86)",
         virtio=False, added_by="libvirt", reason="every x86 machine has PS/2 input"),
    Rule("libvirt.other", "other", "other device (added by libvirt)", _fixed(None), "libvirt",
         virtio=False, added_by="libvirt", reason="libvirt adds it by itself (audio backend, console)"),
)

BY_ID = {r.id: r for r in RULES}


def rule(rule_id: str) -> Rule:
    return BY_ID[rule_id]


def rules_for(version: Version = versions.NEWEST):
    return [r for r in RULES if r.holds_for(version)]


def effective_arch(arch: str, version: Version) -> str:
    """The converter arch: s390x before v1.3.0 had no converter and fell back to amd64."""
    if arch == "s390x" and version < S390X_SINCE:
        return "amd64"
    return arch if arch in ARCHES else "amd64"


# Rows that describe the same device under different KubeVirt releases.
FAMILIES = {
    "disk.virtio": ("disk.virtio", "disk.virtio.no-flag"),
    "disk.no-bus": ("disk.no-bus", "disk.no-bus.no-flag"),
    "interface.virtio": ("interface.virtio", "interface.virtio.no-flag"),
    "controller.scsi": ("controller.scsi", "controller.scsi.legacy"),
    "controller.virtio-serial": ("controller.virtio-serial", "controller.virtio-serial.no-flag"),
    "memballoon.virtio": ("memballoon.virtio", "memballoon.legacy"),
    "rng.virtio": ("rng.virtio", "rng.no-flag"),
    "vsock.virtio": ("vsock.virtio", "vsock.translated"),
}


def pick(family: str, version: Version) -> Rule:
    """The row for a device family at a KubeVirt release: `disk.virtio` is
    `disk.virtio.no-flag` before the flag existed, `memballoon.virtio` is `memballoon.legacy`
    before v0.38.0, and so on."""
    for rule_id in FAMILIES.get(family, (family,)):
        if BY_ID[rule_id].holds_for(version):
            return BY_ID[rule_id]
    return BY_ID[family]


# --- What a model means: libvirt placement, QEMU device and guest driver -----------------

VARIANT_TEXT = {
    "transitional": "legacy + modern interface (virtio 0.9 and 1.0), PCI ids 1af4:1000-103f",
    "modern-only": "virtio 1.0 only, PCI ids 1af4:1040+, no I/O BAR",
    "ccw": "virtio-ccw: the guest negotiates the revision, old guests are fine",
    "legacy-only": "virtio 0.9 only (machine type <= 2.6)",
}


def model_meaning(model: Optional[str], modern_only: bool = False) -> str:
    """docs/libvirt.md §0.1: what a model string asks libvirt for.  `modern_only`: a device QEMU
    always makes virtio 1.0 (virtio input, vsock, virtiofs, virtio-mem; §0.6)."""
    if modern_only:
        return "%s: this device exists only as virtio 1.0 (modern-only), whatever the slot" % (model or "no model")
    if model == T:
        return "virtio-transitional: legacy + modern (virtio 0.9 + 1.0); libvirt puts it in a conventional PCI slot"
    if model == NT:
        return "virtio-non-transitional: virtio 1.0 only; libvirt puts it on a PCIe root port (q35, arm64 virt)"
    if model == V or model == "virtio-scsi":
        return "plain %s: transitional or modern-only depending on the slot (PCIe root port = modern-only)" % model
    return ""


# What the guest needs for each effective variant (docs/libvirt.md §0.4-§0.5, §2).
GUEST_NEEDS = {
    "modern-only": "the guest needs a virtio 1.0 driver (Linux >= 4.0, RHEL/CentOS >= 7.2, virtio-win >= 126); "
                   "CentOS/RHEL 6 cannot drive it",
    "transitional": "any virtio driver works, legacy (virtio 0.9) or virtio 1.0",
    "ccw": "virtio-ccw: the guest negotiates the revision, legacy guests work",
    "legacy-only": "only a legacy virtio driver can use it (machine type <= 2.6)",
    "invalid-on-ccw": "QEMU refuses a (non-)transitional device on s390x: the VM does not start",
    "does-not-start": "QEMU >= 5.1 has no vhost-vsock-pci-transitional: the VM does not start",
}

# The machine types of each converter arch, as libvirt lays them out (docs/libvirt.md §1.3, §1.5).
MACHINES = {"amd64": ("q35", "i440fx"), "arm64": ("virt",), "s390x": ("s390-ccw-virtio",)}


def placement(model: Optional[str], machine: str, modern_only: bool = False, vsock: bool = False):
    """(slot, effective variant) libvirt and QEMU give a virtio device of this model on a
    machine type that libvirt addresses itself (qemuDomainDeviceCalculatePCIConnectFlags,
    QEMU virtio_pci_realize; docs/libvirt.md §1.2-§1.5)."""
    if machine == "s390-ccw-virtio":
        if model in (T, NT):
            return "ccw (libvirt writes a -ccw-%s device)" % model[len("virtio-"):], "invalid-on-ccw"
        return "ccw address, no PCI", "ccw"
    if vsock and model == T:
        return "conventional PCI slot", "does-not-start"
    pcie = machine in ("q35", "virt")
    if model == T and not modern_only:
        return ("behind a pcie-to-pci-bridge (conventional PCI, I/O BAR)" if pcie else "pci-root slot (conventional PCI)",
                "transitional")
    if pcie:
        return "its own pcie-root-port", "modern-only"
    if model == NT or modern_only:
        return "pci-root slot (conventional PCI)", "modern-only"
    return "pci-root slot (conventional PCI)", "transitional"  # plain virtio off a PCIe port


def consequence(rule: "Rule", flag: bool, arch: str) -> Optional[Dict[str, object]]:
    """What libvirt and QEMU make of the row's model, per machine type of the arch: the QEMU
    device, the slot, the effective variant and what the guest needs.  None: not virtio."""
    if not rule.virtio or not rule.qemu:
        return None
    model = rule.model(flag, arch)
    if model == UNSUPPORTED:
        return None
    machines = {}
    for machine in MACHINES.get(arch, MACHINES["amd64"]):
        slot, variant = placement(model, machine, rule.modern_only, rule.kind == "vsock")
        machines[machine] = {"slot": slot, "variant": variant, "guestDriver": GUEST_NEEDS[variant]}
    return {"qemuDevice": qemu_device(rule.qemu, model, "ccw" if arch == "s390x" else "pci"), "machines": machines}


def qemu_device(base: Optional[str], model: Optional[str], address_type: Optional[str]) -> Optional[str]:
    """The QEMU device libvirt asks for (qemuBuildVirtioDevGetConfig: base + bus + variant)."""
    if not base:
        return None
    if address_type == "ccw":
        base = base[:-4] + "-ccw" if base.endswith("-pci") else base
    if model == T and not base.startswith("vhost-vsock"):
        return base + "-transitional"
    if model == T:
        return base + "-transitional (removed in QEMU 5.1: will not start)"
    if model == NT:
        return base + "-non-transitional"
    return base
