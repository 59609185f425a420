"""KubeVirt's translate table as data: which model each device gets, when, and why.

One `Rule` per (device kind, spec condition).  A rule is the single place that says

- its condition, as prose (`condition`) and as code: `when` decides it for a device of a
  VMI spec (prediction, predict.py) and `seen` for a device of a live domain XML
  (classification, explain.classify);
- the model KubeVirt's converter writes when `useVirtioTransitional` is false/unset and
  when it is true, per converter architecture (`models`, overridden per era when a release
  changed it);
- the releases it holds for, as `eras`, each with the KubeVirt file and function it was
  read from at the first and the last release of the era (`Read`).

Every era boundary was read in kubevirt/kubevirt at the tags on both sides of it; the
evidence, in our own words, is docs/kubevirt-rules.md (one section per rule).
"""
from __future__ import annotations

import functools

from typing import Callable, Dict, Optional, Tuple

from kubectl_virtio import versions
from kubectl_virtio.record import Frozen, Record
from kubectl_virtio.versions import V0_36_1, V0_37_0, V0_37_2, V0_38_0, Span, Version

ARCHES = ("amd64", "arm64", "s390x")
# libvirt/QEMU names of the architectures (domain <os><type arch=...>).
ARCH_FROM_QEMU = {"x86_64": "amd64", "i686": "amd64", "aarch64": "arm64", "s390x": "s390x"}

NT, T, V = "virtio-non-transitional", "virtio-transitional", "virtio"
VIRTIO_MODELS = (NT, T, V)

# s390x support (and its `virtio` model) arrived in v1.3.0 (PR #10490).  Before that the
# converter knew no s390x and fell back to amd64 (arch.NewConverter's default).
S390X_SINCE: Version = (1, 3, 0)
# arm64 support (webhook defaults and the converter's isARM64) arrived in v0.41.0 (absent at
# v0.40.1); before, an arm64 VMI follows the amd64 rules.
ARM64_SINCE: Version = (0, 41, 0)
# arm64 history (docs/kubevirt-rules.md, "arm64"): v0.41.0-v0.46.x the arm64 webhook sets
# autoattachGraphicsDevice false when unset; from v0.47.1 arm64 gets virtio video and a USB
# tablet and keyboard; a disk without a bus gets virtio on arm64 from v0.57.0 (sata before).
ARM64_GRAPHICS_ON_SINCE: Version = (0, 47, 1)
ARM64_VIRTIO_DISK_BUS_SINCE: Version = (0, 57, 0)
# The passt network binding plugin sidecar (cmd/sidecars/network-passt-binding): absent at
# v1.1.0, present at v1.1.1 (docs/kubevirt-rules.md, interface.passt-sidecar).
PASST_SIDECAR_SINCE: Version = (1, 1, 1)
# A model KubeVirt cannot produce on that arch: the converter fails, the VM does not start.
UNSUPPORTED = "(unsupported)"
LITERAL = "(as spec)"

# Spec fields, and the first release whose API has them (staging/.../core/v1/schema.go read
# at the tag and the one before; docs/kubevirt-rules.md "Spec fields").  Before that
# release the field does not exist: KubeVirt drops it and adds no device for it.
FIELD_SINCE: Dict[str, Version] = {
    "volumes.downwardMetrics": (0, 42, 0),
    "devices.clientPassthrough": (0, 44, 0),
    "devices.sound": (0, 48, 0),
    "devices.tpm": (0, 53, 0),
    "devices.autoattachInputDevice": (0, 57, 0),
    "devices.autoattachVSOCK": (0, 59, 0),
    "interfaces.binding": (1, 1, 0),
    "devices.video": (1, 6, 0),
    "devices.panicDevices": (1, 6, 0),
}
# Before v1.1.0 a slirp interface is e1000 unless its model is e1000 or rtl8139 (getInterfaceType
# @v0.36.0, GetInterfaceType @v1.0.1); from v1.1.0 the core converter skips slirp and binding-plugin
# interfaces (network.go CreateDomainInterfaces @v1.1.0): a plugin's sidecar writes them.
PLUGIN_BINDINGS_SINCE: Version = (1, 1, 0)
# The validating webhook accepts bus usb for a disk from v0.57.0 (vmi-create-admitter.go:
# virtio, scsi, sata at v0.56.1; usb added at v0.57.0): earlier releases reject the VMI.
USB_DISK_SINCE: Version = (0, 57, 0)
# What the VM controller and the webhooks add before the converter runs.
# The mutating webhook gives a volume without a disk (or filesystem) a disk: absent at
# v0.53.2, present at v0.54.0 (vmi-mutator.go setDefaultVolumeDisk).
VOLUME_DISKS_SINCE: Version = (0, 54, 0)
# autoattachInputDevice: only the VM controller acts on it (watch/vm.go autoAttachInputDevice,
# first in v0.57.0); a bare VMI gets no input from it.
AUTOATTACH_INPUT_SINCE: Version = FIELD_SINCE["devices.autoattachInputDevice"]
# Manifest kinds whose VMIs the VM controller creates (and so runs autoAttachInputDevice).
THROUGH_VM_CONTROLLER = ("VirtualMachine", "VirtualMachinePool")

Models = Dict[str, Tuple[Optional[str], Optional[str]]]  # arch -> (flag false/unset, flag true)


def _flagged(s390x: str = V) -> Models:
    """The converter's translated virtio model: non-transitional / transitional by the flag;
    s390x (own converter from v1.3.0) always plain virtio (InterpretTransitionalModelType)."""
    return {"amd64": (NT, T), "arm64": (NT, T), "s390x": (s390x, s390x)}


def _fixed(model: Optional[str], **per_arch: Optional[str]) -> Models:
    return {a: (per_arch.get(a, model), per_arch.get(a, model)) for a in ARCHES}


# --- Where a rule was read --------------------------------------------------------------

_LAUNCHER = "pkg/virt-launcher/virtwrap/"
API = _LAUNCHER + "api/converter.go"  # v0.36.0 and older, v0.37.0-v0.37.1
CONV = _LAUNCHER + "converter/converter.go"  # v0.36.1+ and v0.37.2+ (the flag's backports)
COMPUTE = _LAUNCHER + "converter/compute/"


class Read(Frozen):
    """One place a rule was read: kubevirt/kubevirt at `tag`, `file`, `function`."""

    __slots__ = _fields = ("tag", "file", "function")

    def __init__(self, tag: str, file: str, function: str):
        self.tag, self.file, self.function = tag, file, function

    def short(self) -> str:
        f = self.file[len(_LAUNCHER):] if self.file.startswith(_LAUNCHER) else self.file
        if not self.tag.startswith("v"):  # not a KubeVirt release: e.g. libvirt's own defaults
            return "%s (%s)" % (self.tag, f)
        return "%s %s @%s" % (f, self.function, self.tag)

    def to_dict(self):
        return {"tag": self.tag, "file": self.file, "function": self.function}


class Era(Frozen):
    """Releases [since, until) a rule holds for, read at the first and the last release of
    the span (`reads`); `models` when this era's models differ from the rule's."""

    # `span`, computed: the releases as a versions.Span, built once (Rule.era asks it for every
    # device of every domain a fleet explains).
    __slots__ = _fields = ("since", "until", "reads", "models", "span")
    _no_repr = ("span",)

    def __init__(self, since: Optional[Version], until: Optional[Version], reads: Tuple[Read, ...],
                 models: Optional[Models] = None):
        self.since, self.until, self.reads, self.models = since, until, reads, models
        self.span = Span(since, until)

    def describe(self) -> str:
        return "%s: %s" % (self.span, " .. ".join(r.short() for r in self.reads))

    def to_dict(self):
        return {"versions": str(self.span), "reads": [r.to_dict() for r in self.reads]}


def _r(tag: str, file: str, function: str) -> Read:
    return Read(tag, file, function)


def _with_flag(first36: Read, last36: Read, first37: Read, newest: Read, models: Optional[Models] = None):
    """The flag's releases: v0.36.1-v0.36.x (backport) and v0.37.2 on."""
    return (Era(V0_36_1, V0_37_0, (first36, last36), models), Era(V0_37_2, None, (first37, newest), models))


def _without_flag(v036: Read, v037_0: Read, v037_1: Read, models: Optional[Models] = None):
    """The releases without the flag: v0.36.0 and older, v0.37.0-v0.37.1."""
    return (Era(None, V0_36_1, (v036,), models), Era(V0_37_0, V0_37_2, (v037_0, v037_1), models))


def _all(first: Read, newest: Read) -> Tuple[Era, ...]:
    return (Era(None, None, (first, newest)),)


def _libvirt(what: str) -> Tuple[Era, ...]:
    return (Era(None, None, (Read("libvirt", what, ""),)),)


# --- The conditions as code -------------------------------------------------------------

class SpecDevice(Record):
    """One device as the VMI spec describes it after the VM controller and the webhooks
    (predict.py builds these); a rule's `when` decides on it.

    what: disk | interface | controller.scsi | controller.virtio-serial | controller.usb |
    memballoon | rng | input | keyboard | video | vsock | filesystem | watchdog | sound | tpm |
    panic | hostdev."""

    __slots__ = _fields = ("what", "version", "arch", "dtype", "bus", "bus_defaulted", "model", "downward",
                           "passt", "sriov", "efi", "on", "usb", "persistent", "slirp")

    def __init__(self, what: str, version: Version, arch: str,
                 dtype: Optional[str] = None,  # disk: disk | lun | cdrom
                 bus: Optional[str] = None,
                 bus_defaulted: bool = False,  # a disk whose bus the webhook chose
                 model: Optional[str] = None,  # interface model, video type, sound model, as the spec says
                 downward: bool = False,  # a downwardMetrics volume
                 passt: bool = False,  # interface binding plugin passt
                 sriov: bool = False,
                 efi: bool = False,
                 on: bool = True,  # the autoattach switch of this device
                 usb: bool = False,  # controller.usb: a USB device in the spec needs it
                 persistent: bool = False,  # tpm: persistent state
                 slirp: bool = False):  # interface slirp: {} (e1000 before v1.1.0)
        self.what, self.version, self.arch, self.dtype, self.bus = what, version, arch, dtype, bus
        self.bus_defaulted, self.model, self.downward, self.passt = bus_defaulted, model, downward, passt
        self.sriov, self.efi, self.on, self.usb = sriov, efi, on, usb
        self.persistent, self.slirp = persistent, slirp


When = Callable[[SpecDevice], bool]
Seen = Callable[[object, Version], bool]  # (domain.Device, release) -> bool


def _kind(*kinds: str) -> Seen:
    return lambda d, v: d.kind in kinds


def _ctrl(ctype: str) -> Seen:
    return lambda d, v: d.kind == "controller" and d.type == ctype


class Rule(Frozen):
    """One row of the table; `flag_driven`, computed: some arch's model depends on the flag."""

    __slots__ = _fields = ("id", "kind", "condition", "models", "eras", "reason", "when", "seen", "unpredicted",
                           "qemu", "virtio", "added_by", "note", "modern_only", "flag_driven")

    def __init__(self, id: str,  # e.g. disk.virtio
                 kind: str,  # the contract's device kind (disk, controller, interface, ...)
                 condition: str,  # the spec condition, in the user's terms
                 models: Models,
                 eras: Tuple[Era, ...],
                 reason: str,  # one sentence: why this model
                 when: Optional[When] = None,  # the condition on a spec device; None: never predicted
                 seen: Optional[Seen] = None,  # the condition on a live domain device; None: never classified
                 unpredicted: str = "",  # when `when` is None: why the prediction leaves this device out
                 qemu: Optional[str] = None,  # QEMU device base name on PCI, e.g. virtio-blk-pci
                 virtio: bool = True,  # a virtio device at all
                 added_by: str = "kubevirt",  # or "libvirt": not in KubeVirt's converter output
                 note: str = "",  # what libvirt/QEMU/the guest make of it, beyond the generic model text
                 modern_only: bool = False):  # QEMU forces virtio 1.0 whatever the model or slot
        self.id, self.kind, self.condition, self.models, self.eras = id, kind, condition, models, eras
        self.reason, self.when, self.seen, self.unpredicted = reason, when, seen, unpredicted
        self.qemu, self.virtio, self.added_by, self.note = qemu, virtio, added_by, note
        self.modern_only = modern_only
        all_models = [models] + [e.models for e in eras if e.models]
        self.flag_driven = any(f != t for m in all_models for f, t in m.values())

    @property
    def spans(self) -> Tuple[Span, ...]:
        return tuple(e.span for e in self.eras)

    @property
    def source(self) -> str:
        """The newest place this rule was read (file and function)."""
        last = self.eras[-1].reads[-1] if self.eras else None
        if last is None:
            return ""
        return last.file + (" " + last.function if last.function else "")

    def era(self, version: Version) -> Optional[Era]:
        for e in self.eras:
            if e.span.holds(version):
                return e
        return None

    def _models_at(self, version: Version) -> Models:
        e = self.era(version)
        return e.models if e is not None and e.models else self.models

    def models_at(self, version: Optional[Version] = None) -> Models:
        if version is None:
            return self.models
        # A row of the table: its models at this release were worked out once (_at).
        at = _row_at(self, version)
        return at[1] if at is not None else self._models_at(version)

    def model(self, flag: bool, arch: str, version: Optional[Version] = None) -> Optional[str]:
        # models_at(version), written out: this is asked for every device of every domain.
        if version is None:
            models = self.models
        else:
            at = _row_at(self, version)
            models = at[1] if at is not None else self._models_at(version)
        arch = arch if arch in models else "amd64"
        return models[arch][1 if flag else 0]

    def allowed(self, arch: str, version: Optional[Version] = None):
        """Every model this rule can give on the arch at the release (both flag values)."""
        return set(self.model(f, arch, version) for f in (False, True))

    def holds_for(self, version: Version) -> bool:
        at = _row_at(self, version)
        return at[0] if at is not None else self._holds_for(version)

    def _holds_for(self, version: Version) -> bool:
        for e in self.eras:
            if e.span.holds(version):
                return True
        return False

    def _eras_in_order(self):
        return sorted(self.eras, key=lambda e: e.since or (0, 0, 0))

    def sources(self):
        return [e.to_dict() for e in self._eras_in_order()]

    def describe_sources(self) -> str:
        return "; ".join(e.describe() for e in self._eras_in_order())


# --- The rows --------------------------------------------------------------------------
# Ordered as `kubectl virtio table` prints them; classify() takes the first row whose `seen`
# holds, so more specific rows come first within a kind.

_NEWEST = versions.show(versions.NEWEST)
_DISK = "Convert_v1_Disk_To_api_Disk"
_DOMAIN_OLD = "Convert_v1_VirtualMachine_To_api_Domain"  # the domain builder's name at v0.36-v0.38
_DOMAIN = "Convert_v1_VirtualMachineInstance_To_api_Domain"  # its later name (at v0.47.1 already)
_INPUT = "Convert_v1_Input_To_api_InputDevice"


# disk.no-bus rows document the webhook's default bus; once it chose the bus, disk.virtio or
# disk.non-virtio make the device, so these rows claim nothing themselves.
_NO_BUS = "a disk without a bus is made by disk.virtio or disk.non-virtio once the webhook chose its bus"


_OLD_DEFAULTS = "staging/src/kubevirt.io/client-go/api/v1/defaults.go"
# Before v0.57.0 every arch's default disk bus is sata (s390x has none of its own before v1.3.0).
_NO_BUS_SATA: Models = {"amd64": (None, None), "arm64": (None, None), "s390x": (V, V)}


def _disk_is(dtype: str) -> When:
    return lambda s: s.what == "disk" and not s.downward and (s.dtype or "disk") == dtype


RULES: Tuple[Rule, ...] = (
    Rule("disk.virtio", "disk", "disk: {bus: virtio}", _flagged(),
         _with_flag(_r("v0.36.1", CONV, _DISK), _r("v0.36.5", CONV, _DISK), _r("v0.37.2", CONV, _DISK),
                    _r(_NEWEST, CONV, _DISK)),
         when=lambda s: _disk_is("disk")(s) and s.bus == "virtio",
         seen=lambda d, v: d.kind == "disk" and d.device in (None, "disk") and d.bus == "virtio",
         qemu="virtio-blk-pci", reason="a disk on bus virtio gets the VMI's virtio model"),
    Rule("disk.virtio.no-flag", "disk", "disk: {bus: virtio}, KubeVirt without the flag", _fixed(None),
         _without_flag(_r("v0.36.0", API, _DISK), _r("v0.37.0", API, _DISK), _r("v0.37.1", API, _DISK)),
         when=lambda s: _disk_is("disk")(s) and s.bus == "virtio",
         seen=lambda d, v: d.kind == "disk" and d.device in (None, "disk") and d.bus == "virtio",
         qemu="virtio-blk-pci",
         reason="before useVirtioTransitional existed KubeVirt wrote no disk model: libvirt's plain virtio applies"),
    Rule("disk.downward-metrics", "disk", "volume downwardMetrics (any bus)", _flagged(),
         (Era((0, 42, 0), None, (_r("v0.42.0", CONV, "Convert_v1_DownwardMetricSource_To_api_Disk"),
                                 _r(_NEWEST, CONV, "Convert_v1_DownwardMetricSource_To_api_Disk"))),),
         when=lambda s: s.what == "disk" and s.downward, qemu="virtio-blk-pci",
         reason="the downward-metrics disk always gets the virtio model, whatever bus the spec names"),
    Rule("disk.no-bus", "disk", "disk: {} (no bus; no preferredDiskBus)",
         {"amd64": (None, None), "arm64": (NT, T), "s390x": (V, V)},
         (Era(V0_36_1, V0_37_0, (_r("v0.36.1", _OLD_DEFAULTS, "setDefaults_Disk"),
                                 _r("v0.36.5", _OLD_DEFAULTS, "setDefaults_Disk")), models=_NO_BUS_SATA),
          Era(V0_37_2, ARM64_VIRTIO_DISK_BUS_SINCE,
              (_r("v0.37.2", _OLD_DEFAULTS, "setDefaults_Disk"),
               _r("v0.56.1", "staging/src/kubevirt.io/api/core/v1/defaults.go", "setDefaults_Disk")),
              models=_NO_BUS_SATA),
          Era(ARM64_VIRTIO_DISK_BUS_SINCE, None, (_r("v0.57.0", "pkg/virt-api/webhooks/arm64.go", "setDefaultDisksBus"),
                                                  _r(_NEWEST, "pkg/defaults/arm64.go", "setDefaultArm64DisksBus")))),
         unpredicted=_NO_BUS,
         reason="the mutating webhook sets bus sata on amd64 (no model) and virtio on arm64/s390x"),
    Rule("disk.no-bus.no-flag", "disk", "disk: {} (no bus), KubeVirt without the flag", _fixed(None),
         _without_flag(_r("v0.36.0", _OLD_DEFAULTS, "setDefaults_Disk"), _r("v0.37.0", _OLD_DEFAULTS, "setDefaults_Disk"),
                       _r("v0.37.1", _OLD_DEFAULTS, "setDefaults_Disk")),
         unpredicted=_NO_BUS,
         reason="sata on amd64; a virtio disk had no model before the flag, so libvirt's plain virtio applies"),
    Rule("disk.non-virtio", "disk", "disk: {bus: sata|scsi|usb}", _fixed(None),
         _all(_r("v0.36.0", API, _DISK), _r(_NEWEST, CONV, _DISK)),
         when=lambda s: _disk_is("disk")(s) and s.bus != "virtio",
         seen=lambda d, v: d.kind == "disk" and d.device in (None, "disk") and d.bus != "virtio", virtio=False,
         reason="only bus virtio gets a model; sata, scsi and usb disks are emulated, no virtio driver needed"),
    Rule("disk.lun", "disk", "lun: {bus: scsi|virtio}", _fixed(None),
         _all(_r("v0.36.0", API, _DISK), _r(_NEWEST, CONV, _DISK)),
         when=_disk_is("lun"), seen=lambda d, v: d.kind == "disk" and d.device == "lun", virtio=False,
         reason="a LUN never gets a model; on bus virtio libvirt's plain virtio applies (variant follows the slot)"),
    Rule("disk.cdrom", "disk", "cdrom: {bus: sata|scsi}", _fixed(None),
         _all(_r("v0.36.0", API, _DISK), _r(_NEWEST, CONV, _DISK)),
         when=_disk_is("cdrom"), seen=lambda d, v: d.kind == "disk" and d.device == "cdrom", virtio=False,
         reason="a CD-ROM never gets a model (a virtio CD-ROM is rejected by the admitter)"),
    # Interfaces.
    Rule("interface.virtio", "interface", "interface model: virtio or unset", _flagged(),
         _with_flag(_r("v0.36.1", CONV, _DOMAIN_OLD), _r("v0.36.5", CONV, _DOMAIN_OLD),
                    _r("v0.37.2", CONV, _DOMAIN_OLD),
                    _r(_NEWEST, _LAUNCHER + "converter/network/builder.go", "newDomainInterface")),
         when=lambda s: (s.what == "interface" and not s.sriov and s.model == "virtio" and not s.slirp
                         and not (s.passt and s.version >= PASST_SIDECAR_SINCE)),
         seen=lambda d, v: d.kind == "interface" and (not d.model or d.model.startswith("virtio")),
         qemu="virtio-net-pci", reason="an interface of model virtio (the default) gets the VMI's virtio model"),
    Rule("interface.virtio.no-flag", "interface", "interface model: virtio or unset, KubeVirt without the flag",
         _fixed(V), _without_flag(_r("v0.36.0", API, _DOMAIN_OLD), _r("v0.37.0", API, _DOMAIN_OLD),
                                  _r("v0.37.1", API, _DOMAIN_OLD)),
         when=lambda s: s.what == "interface" and not s.sriov and s.model == "virtio" and not s.slirp,
         seen=lambda d, v: d.kind == "interface" and (not d.model or d.model.startswith("virtio")),
         qemu="virtio-net-pci", reason="before the flag KubeVirt wrote plain virtio: the variant follows the PCI slot"),
    Rule("interface.emulated", "interface", "interface model: e1000|e1000e|igb|ne2k_pci|pcnet|rtl8139",
         _fixed(LITERAL), _all(_r("v0.36.0", API, "getInterfaceType"),
                               _r(_NEWEST, _LAUNCHER + "converter/network/configurator.go", "getInterfaceType")),
         when=lambda s: (s.what == "interface" and not s.sriov and (s.model != "virtio" or s.slirp)
                         and not (s.passt and s.version >= PASST_SIDECAR_SINCE)),
         seen=lambda d, v: d.kind == "interface" and bool(d.model) and not d.model.startswith("virtio"),
         virtio=False, reason="any model other than virtio is copied verbatim (a slirp interface before v1.1.0: "
                              "e1000 unless e1000 or rtl8139); the flag does not touch it"),
    Rule("interface.passt-sidecar", "interface", "binding plugin passt (sidecar)",
         {a: (NT, T) for a in ARCHES},
         (Era(PASST_SIDECAR_SINCE, None,
              (_r("v1.1.1", "cmd/sidecars/network-passt-binding/domain/configurator.go", "generateInterface"),
               _r(_NEWEST, "cmd/sidecars/network-passt-binding/domain/configurator.go", "generateInterface"))),),
         when=lambda s: s.what == "interface" and not s.sriov and s.passt, qemu="virtio-net-pci",
         reason="the passt sidecar picks the model itself and is not arch-aware (non-transitional even on s390x)"),
    Rule("interface.sriov", "hostdev", "interface sriov: {}", _fixed(None),
         _all(_r("v0.36.0", API, "popSRIOVPCIAddress"),
              _r(_NEWEST, _LAUNCHER + "device/hostdevice/sriov/hostdev.go", "CreateHostDevices")),
         when=lambda s: s.what == "interface" and s.sriov,
         seen=lambda d, v: d.kind == "hostdev" and (d.alias or "").startswith("ua-sriov-"), virtio=False,
         reason="an SR-IOV interface becomes a PCI hostdev (alias ua-sriov-NAME): the guest sees the VF"),
    # Controllers.
    Rule("controller.scsi", "controller",
         "SCSI controller (unless disableHotplug and no scsi disk)", _flagged(s390x="virtio-scsi"),
         (Era((0, 36, 2), V0_37_0, (_r("v0.36.2", CONV, _DOMAIN_OLD), _r("v0.36.5", CONV, _DOMAIN_OLD))),
          Era(V0_38_0, None, (_r("v0.38.0", CONV, _DOMAIN_OLD), _r(_NEWEST, COMPUTE + "controllers.go",
                                                                  "newSCSIController")))),
         when=lambda s: s.what == "controller.scsi", seen=_ctrl("scsi"), qemu="virtio-scsi-pci",
         reason="the hotplug SCSI controller gets the VMI's virtio model (virtio-scsi on s390x)"),
    Rule("controller.scsi.legacy", "controller",
         "SCSI controller, KubeVirt before v0.38.0 except v0.36.2-v0.36.x", _fixed("virtio-scsi"),
         (Era(None, (0, 36, 2), (_r("v0.36.0", API, _DOMAIN_OLD), _r("v0.36.1", CONV, _DOMAIN_OLD))),
          Era(V0_37_0, V0_38_0, (_r("v0.37.0", API, _DOMAIN_OLD), _r("v0.37.3", CONV, _DOMAIN_OLD)))),
         when=lambda s: s.what == "controller.scsi", seen=_ctrl("scsi"), qemu="virtio-scsi-pci",
         reason="these releases hard-code virtio-scsi, even v0.36.1 and v0.37.2+ with the flag: the variant "
                "follows the PCI slot"),
    Rule("controller.virtio-serial", "controller", "virtio-serial controller (autoattachSerialConsole unset/true)",
         _flagged(), _with_flag(_r("v0.36.1", CONV, _DOMAIN_OLD), _r("v0.36.5", CONV, _DOMAIN_OLD),
                                _r("v0.37.2", CONV, _DOMAIN_OLD),
                                _r(_NEWEST, COMPUTE + "controllers.go", "newVirtioSerialController")),
         when=lambda s: s.what == "controller.virtio-serial" and s.on,
         seen=lambda d, v: d.kind == "controller" and d.type == "virtio-serial" and bool(d.model),
         qemu="virtio-serial-pci",
         reason="the virtio-serial controller (guest agent channel, console) gets the VMI's virtio model"),
    Rule("controller.virtio-serial.no-flag", "controller", "virtio-serial controller, KubeVirt without the flag",
         _fixed(None), _without_flag(_r("v0.36.0", API, _DOMAIN_OLD), _r("v0.37.0", API, _DOMAIN_OLD),
                                     _r("v0.37.1", API, _DOMAIN_OLD)),
         when=lambda s: s.what == "controller.virtio-serial" and s.on, seen=_ctrl("virtio-serial"),
         qemu="virtio-serial-pci", reason="before the flag the controller had no model: libvirt's plain virtio applies"),
    Rule("controller.virtio-serial.libvirt", "controller", "autoattachSerialConsole: false", _fixed(None),
         _all(_r("v0.36.0", API, _DOMAIN_OLD), _r(_NEWEST, COMPUTE + "controllers.go", "newVirtioSerialController")),
         when=lambda s: s.what == "controller.virtio-serial" and not s.on,
         seen=lambda d, v: (d.kind == "controller" and d.type == "virtio-serial" and not d.model
                            and versions.has_flag(v)),
         qemu="virtio-serial-pci", added_by="libvirt",
         reason="KubeVirt writes no virtio-serial controller; libvirt adds one without a model for the agent channel"),
    Rule("controller.usb", "controller", "USB controller, no USB device in the spec",
         _fixed("none", arm64="qemu-xhci"),
         _all(_r("v0.36.0", API, _DOMAIN_OLD), _r(_NEWEST, COMPUTE + "controllers.go", "newUSBController")),
         when=lambda s: s.what == "controller.usb" and not (s.usb and s.arch == "amd64"),
         seen=lambda d, v: d.kind == "controller" and d.type == "usb" and d.model != "qemu-xhci", virtio=False,
         reason="no USB device needs it: model none (arm64 always has qemu-xhci for its USB tablet and keyboard)"),
    Rule("controller.usb.xhci", "controller", "USB controller, a usb input/disk or clientPassthrough",
         _fixed("qemu-xhci", s390x="none"),
         _all(_r("v0.36.0", API, _DOMAIN_OLD), _r(_NEWEST, COMPUTE + "controllers.go", "newUSBController")),
         when=lambda s: s.what == "controller.usb" and s.usb and s.arch == "amd64",
         seen=lambda d, v: d.kind == "controller" and d.type == "usb" and d.model == "qemu-xhci", virtio=False,
         reason="a USB device in the spec makes KubeVirt emit an xHCI controller (never on s390x)"),
    # memballoon.
    Rule("memballoon.virtio", "memballoon", "memballoon (autoattachMemBalloon unset/true)", _flagged(),
         (Era(V0_38_0, None, (_r("v0.38.0", CONV, "ConvertV1ToAPIBalloning"),
                              _r(_NEWEST, COMPUTE + "balloon.go", "Configure"))),),
         when=lambda s: s.what == "memballoon" and s.on,
         seen=lambda d, v: d.kind == "memballoon" and d.model != "none",
         qemu="virtio-balloon-pci", reason="the balloon gets the VMI's virtio model"),
    Rule("memballoon.legacy", "memballoon", "memballoon, KubeVirt before v0.38.0", _fixed(V),
         (Era(None, V0_38_0, (_r("v0.36.0", API, "ConvertV1ToAPIBalloning"),
                              _r("v0.37.3", CONV, "ConvertV1ToAPIBalloning"))),),
         when=lambda s: s.what == "memballoon" and s.on,
         seen=lambda d, v: d.kind == "memballoon" and d.model != "none", qemu="virtio-balloon-pci",
         reason="releases before v0.38.0 (backports included) wrote plain virtio: the variant follows the slot"),
    Rule("memballoon.none", "memballoon", "autoattachMemBalloon: false", _fixed("none"),
         _all(_r("v0.36.0", API, "ConvertV1ToAPIBalloning"), _r(_NEWEST, COMPUTE + "balloon.go", "Configure")),
         when=lambda s: s.what == "memballoon" and not s.on,
         seen=lambda d, v: d.kind == "memballoon" and d.model == "none", virtio=False,
         reason="the balloon is switched off: model none, no device"),
    # rng.
    Rule("rng.virtio", "rng", "rng: {}", _flagged(),
         _with_flag(_r("v0.36.1", CONV, "Convert_v1_Rng_To_api_Rng"), _r("v0.36.5", CONV, "Convert_v1_Rng_To_api_Rng"),
                    _r("v0.37.2", CONV, "Convert_v1_Rng_To_api_Rng"), _r(_NEWEST, COMPUTE + "rng.go", "Configure")),
         when=lambda s: s.what == "rng", seen=_kind("rng"),
         qemu="virtio-rng-pci", reason="the entropy device gets the VMI's virtio model"),
    Rule("rng.no-flag", "rng", "rng: {}, KubeVirt without the flag", _fixed(V),
         _without_flag(_r("v0.36.0", API, "Convert_v1_Rng_To_api_Rng"), _r("v0.37.0", API, "Convert_v1_Rng_To_api_Rng"),
                       _r("v0.37.1", API, "Convert_v1_Rng_To_api_Rng")),
         when=lambda s: s.what == "rng", seen=_kind("rng"), qemu="virtio-rng-pci",
         reason="before the flag KubeVirt wrote plain virtio: the variant follows the slot"),
    # Inputs.  The virtio tablet's model attribute came with the flag's backports.
    Rule("input.virtio", "input", "input bus: virtio (tablet)", _fixed(V),
         _without_flag(_r("v0.36.0", API, _INPUT), _r("v0.37.0", API, _INPUT), _r("v0.37.1", API, _INPUT),
                       models=_fixed(None))
         + _with_flag(_r("v0.36.1", CONV, _INPUT), _r("v0.36.5", CONV, _INPUT), _r("v0.37.2", CONV, _INPUT),
                      _r(_NEWEST, COMPUTE + "input_device.go", "apiInputDeviceFromV1InputDevice")),
         when=lambda s: s.what == "input" and s.bus == "virtio",
         seen=lambda d, v: d.kind == "input" and d.bus == "virtio" and bool(d.alias),
         qemu="virtio-tablet-pci", modern_only=True,
         reason="virtio input devices exist only as virtio 1.0: model virtio (no model attribute before the "
                "flag's releases), whatever the flag",
         note="libvirt rejects (non-)transitional models for input devices"),
    Rule("input.usb", "input", "input bus: usb or unset", _fixed(None),
         _all(_r("v0.36.0", API, _INPUT), _r(_NEWEST, COMPUTE + "input_device.go", "apiInputDeviceFromV1InputDevice")),
         when=lambda s: s.what == "input" and s.bus != "virtio",
         seen=lambda d, v: d.kind == "input" and d.bus not in ("virtio", "ps2"), virtio=False,
         reason="a USB tablet has no model and needs no virtio driver"),
    Rule("input.s390x-keyboard", "input", "s390x keyboard (autoattachGraphicsDevice unset/true)",
         _fixed(None),
         (Era((1, 4, 1), None, (_r("v1.4.1", _LAUNCHER + "converter/s390x.go", "addGraphicsDevice"),
                                _r(_NEWEST, COMPUTE + "input_device.go", "addArchitectureSpecificInputDevices"))),),
         when=lambda s: s.what == "keyboard" and s.arch == "s390x",
         seen=lambda d, v: d.kind == "input" and d.bus == "virtio" and not d.alias,
         qemu="virtio-keyboard-ccw", modern_only=True,
         reason="on s390x KubeVirt adds a virtio keyboard without a model"),
    Rule("input.arm64-usb", "input", "arm64 usb tablet/keyboard (autoattachGraphicsDevice unset/true)",
         _fixed(None),
         (Era((0, 47, 1), None, (_r("v0.47.1", CONV, _DOMAIN),
                                 _r(_NEWEST, COMPUTE + "input_device.go", "addArchitectureSpecificInputDevices"))),),
         unpredicted="arm64's USB tablet and keyboard carry no KubeVirt name to pair them by; classified when seen",
         virtio=False, reason="on arm64 KubeVirt adds a USB tablet and keyboard"),
    # Video: never affected by the flag.
    Rule("video.default", "video", "video (autoattachGraphicsDevice unset/true, no video type; BIOS, or EFI "
                                   "before v1.1.0)",
         _fixed("vga", arm64="virtio", s390x="virtio"),
         (Era(None, ARM64_GRAPHICS_ON_SINCE, (_r("v0.36.0", API, _DOMAIN_OLD), _r("v0.46.1", CONV, _DOMAIN)),
              models=_fixed("vga", s390x="virtio")),
          Era(ARM64_GRAPHICS_ON_SINCE, None, (_r("v0.47.1", CONV, _DOMAIN),
                                              _r(_NEWEST, COMPUTE + "graphics.go", "configureVideoDevice")))),
         when=lambda s: (s.what == "video" and not s.model
                         and not (s.efi and s.version >= (1, 1, 0))),
         seen=lambda d, v: d.kind == "video" and d.model in ("vga", "virtio"),
         virtio=False, reason="vga on amd64 (and arm64 before v0.47.1), virtio-gpu on arm64 and s390x; the flag "
                              "never applies",
         note="video virtio is modern-only (virtio-vga / virtio-gpu-pci)"),
    Rule("video.efi", "video", "video (no video type), EFI firmware",
         _fixed("bochs", arm64="virtio", s390x="virtio"),
         (Era((1, 1, 0), None, (_r("v1.1.0", CONV, _DOMAIN), _r(_NEWEST, COMPUTE + "graphics.go",
                                                                 "configureAMD64VideoDevice"))),),
         when=lambda s: s.what == "video" and not s.model and s.efi and s.version >= (1, 1, 0),
         seen=lambda d, v: d.kind == "video" and d.model == "bochs", virtio=False,
         reason="EFI guests on amd64 get bochs (BochsForEFIGuests, unless the VGADisplayForEFIGuests feature gate "
                "is on: then vga); the flag never applies"),
    Rule("video.type", "video", "video: {type: vga|cirrus|virtio|ramfb|bochs}", _fixed(LITERAL),
         (Era((1, 6, 0), None, (_r("v1.6.0", CONV, _DOMAIN), _r(_NEWEST, COMPUTE + "graphics.go",
                                                                 "configureVideoDevice"))),),
         when=lambda s: s.what == "video" and bool(s.model),
         seen=lambda d, v: d.kind == "video" and d.model not in ("vga", "virtio", "bochs"), virtio=False,
         reason="the video type is copied from the spec; the flag never applies"),
    Rule("graphics.vnc", "graphics", "VNC display (autoattachGraphicsDevice unset/true)", _fixed(None),
         _all(_r("v0.36.0", API, _DOMAIN_OLD), _r(_NEWEST, COMPUTE + "graphics.go", "Configure")),
         seen=_kind("graphics"), unpredicted="not a device with a model; classified when seen", virtio=False,
         reason="the VNC display on a unix socket; not a device the guest drives"),
    # vsock.
    Rule("vsock.virtio", "vsock", "autoattachVSOCK: true", _fixed(NT),
         (Era((1, 0, 0), None, (_r("v1.0.0", CONV, _DOMAIN), _r(_NEWEST, COMPUTE + "vsock.go", "Configure"))),),
         when=lambda s: s.what == "vsock", seen=_kind("vsock"), qemu="vhost-vsock-pci", modern_only=True,
         reason="vsock is always non-transitional: QEMU 5.1 removed vhost-vsock-pci-transitional"),
    Rule("vsock.translated", "vsock", "autoattachVSOCK: true, KubeVirt v0.59.x", _flagged(),
         (Era((0, 59, 0), (1, 0, 0), (_r("v0.59.0", CONV, _DOMAIN), _r("v0.59.2", CONV, _DOMAIN))),),
         when=lambda s: s.what == "vsock", seen=_kind("vsock"), qemu="vhost-vsock-pci", modern_only=True,
         reason="v0.59 translated vsock like other devices; a transitional vsock does not start on QEMU >= 5.1"),
    Rule("filesystem.virtiofs", "filesystem", "filesystems: [{virtiofs: {}}]", _fixed(None),
         _all(_r("v0.36.0", API, _DOMAIN_OLD), _r(_NEWEST, _LAUNCHER + "converter/storage/virtiofs.go", "Configure")),
         when=lambda s: s.what == "filesystem", seen=_kind("filesystem"), qemu="vhost-user-fs-pci", modern_only=True,
         reason="virtiofs never has a model (libvirt refuses one); vhost-user-fs is modern-only"),
    Rule("channel.guest-agent", "channel", "guest agent channel (always)", _fixed(None),
         _all(_r("v0.36.0", API, "Add_Agent_To_api_Channel"), _r(_NEWEST, COMPUTE + "channels.go",
                                                                 "newGuestAgentChannel")),
         seen=_kind("channel"), unpredicted="a port on the virtio-serial controller, not a device with a model",
         virtio=False, reason="a port on the virtio-serial controller; it has no model of its own"),
    Rule("serial.console", "serial", "serial console (autoattachSerialConsole unset/true)", _fixed(None),
         _all(_r("v0.36.0", API, _DOMAIN_OLD), _r(_NEWEST, COMPUTE + "console.go", "Configure")),
         seen=_kind("serial", "console"), unpredicted="an ISA serial port, not a device with a model",
         virtio=False, reason="an ISA serial port; not a virtio device"),
    Rule("memory.virtio-mem", "memory", "memory hotplug (maxGuest)", _fixed("virtio-mem"),
         (Era((1, 1, 0), None, (_r("v1.1.0", CONV, "setupDomainMemory"),
                                _r(_NEWEST, "pkg/liveupdate/memory/memory.go", "BuildMemoryDevice"))),),
         seen=_kind("memory"), qemu="virtio-mem-pci", modern_only=True,
         unpredicted="its size comes from the VMI status (memory at boot), which a manifest does not have",
         reason="hotplugged memory is virtio-mem, modern-only and independent of the flag"),
    Rule("watchdog", "watchdog", "watchdog: {}", _fixed("i6300esb", s390x="diag288", arm64=UNSUPPORTED),
         (Era(None, (1, 0, 0), (_r("v0.36.0", API, "Convert_v1_Watchdog_To_api_Watchdog"),
                                _r("v0.59.2", CONV, "Convert_v1_Watchdog_To_api_Watchdog")),
              models=_fixed("i6300esb")),
          Era((1, 0, 0), (1, 5, 1), (_r("v1.0.0", "pkg/virt-api/webhooks/arm64.go", "validateWatchdog"),
                                     _r("v1.5.0", CONV, "Convert_v1_Watchdog_To_api_Watchdog")),
              models=_fixed("i6300esb", arm64=UNSUPPORTED)),
          Era((1, 5, 1), None, (_r("v1.5.1", _LAUNCHER + "converter/arch/s390x.go", "ConvertWatchdog"),
                                _r(_NEWEST, COMPUTE + "watchdog.go", "Configure")))),
         when=lambda s: s.what == "watchdog", seen=_kind("watchdog"), virtio=False,
         reason="an emulated watchdog (i6300esb; diag288 on s390x from v1.5.1); arm64 has none from v1.0.0: "
                "KubeVirt refuses the VM; the flag never applies"),
    Rule("sound", "sound", "sound: {model: ich9|ac97}", _fixed(LITERAL),
         (Era((0, 48, 0), None, (_r("v0.48.0", CONV, "Convert_v1_Sound_To_api_Sound"),
                                 _r(_NEWEST, COMPUTE + "sound.go", "Configure"))),),
         when=lambda s: s.what == "sound", seen=_kind("sound"), virtio=False,
         reason="an emulated sound card: the spec's model, ich9 when it names none; the flag never applies"),
    Rule("tpm", "tpm", "tpm: {} (not persistent)", _fixed("tpm-tis"),
         (Era((0, 53, 0), None, (_r("v0.53.0", CONV, _DOMAIN), _r(_NEWEST, COMPUTE + "tpm.go", "Configure"))),),
         when=lambda s: s.what == "tpm" and not s.persistent,
         seen=lambda d, v: d.kind == "tpm" and d.model != "tpm-crb", virtio=False,
         reason="an emulated TPM (tpm-tis); the flag never applies"),
    Rule("tpm.persistent", "tpm", "tpm: {persistent: true}", _fixed("tpm-crb"),
         (Era((1, 0, 0), None, (_r("v1.0.0", CONV, _DOMAIN), _r(_NEWEST, COMPUTE + "tpm.go", "Configure"))),),
         when=lambda s: s.what == "tpm" and s.persistent,
         seen=lambda d, v: d.kind == "tpm" and d.model == "tpm-crb", virtio=False,
         reason="a persistent TPM is tpm-crb; the flag never applies"),
    Rule("panic", "panic", "panicDevices: [...]", _fixed(LITERAL),
         (Era((1, 6, 0), None, (_r("v1.6.0", CONV, "convertPanicDevices"),
                                _r(_NEWEST, COMPUTE + "panic_devices.go", "Configure"))),),
         when=lambda s: s.what == "panic", seen=_kind("panic"), virtio=False,
         reason="the model is copied from the spec; the flag never applies"),
    Rule("hostdev", "hostdev", "gpus / hostDevices", _fixed(None),
         _all(_r("v0.36.0", API, "createHostDevicesFromMdevUUIDList"),
              _r(_NEWEST, _LAUNCHER + "device/hostdevice/hostdev.go", "createMDEVHostDevice")),
         when=lambda s: s.what == "hostdev",
         seen=lambda d, v: d.kind == "hostdev" and not (d.alias or "").startswith("ua-sriov-"), virtio=False,
         reason="passed-through host devices carry no virtio model (mdev ones say vfio-pci)"),
    # Devices libvirt adds by itself (never in KubeVirt's converter output).
    Rule("libvirt.pci", "controller", "PCI topology (added by libvirt)", _fixed(None),
         _libvirt("qemu_domain_address.c"),
         seen=lambda d, v: d.kind == "controller" and d.type not in ("scsi", "virtio-serial", "usb", "sata"),
         unpredicted="libvirt adds it, not KubeVirt", virtio=False, added_by="libvirt",
         reason="libvirt builds the PCI topology: a root port per PCIe device, a pcie-to-pci-bridge for transitional ones"),
    Rule("libvirt.sata", "controller", "SATA controller (added by libvirt)", _fixed(None), _libvirt("q35 machine"),
         seen=_ctrl("sata"), unpredicted="libvirt adds it, not KubeVirt",
         virtio=False, added_by="libvirt", reason="q35 always has the ICH9 AHCI controller"),
    Rule("libvirt.ps2", "input", "PS/2 mouse and keyboard (added by libvirt)", _fixed(None), _libvirt("x86 machines"),
         seen=lambda d, v: d.kind == "input" and d.bus == "ps2", unpredicted="libvirt adds it, not KubeVirt",
         virtio=False, added_by="libvirt", reason="every x86 machine has PS/2 input"),
    Rule("libvirt.other", "other", "other device (added by libvirt)", _fixed(None), _libvirt("domain defaults"),
         seen=lambda d, v: True, unpredicted="libvirt adds it, not KubeVirt",
         virtio=False, added_by="libvirt", reason="libvirt adds it by itself (audio backend, console)"),
)

BY_ID = {r.id: r for r in RULES}


@functools.lru_cache(maxsize=64)
def _at(version: Version) -> Dict[int, Tuple[bool, Models]]:
    """Every row of the table at a release: id(row) -> (holds, models).  The rows are fixed at
    import and live as long as the module, so their ids stay theirs; a Rule made elsewhere (a
    test's) is not here and is worked out on each call.  A fleet asks each row's model for
    every device of hundreds of domains of a few releases (bench/core, bench/fleet --live)."""
    return {id(r): (r._holds_for(version), r._models_at(version)) for r in RULES}


def _row_at(rule: "Rule", version: Version) -> Optional[Tuple[bool, Models]]:
    try:
        return _at(version).get(id(rule))
    except TypeError:  # a version that is not a tuple (a list): not cached
        return None


def rule(rule_id: str) -> Rule:
    return BY_ID[rule_id]


def rules_for(version: Version = versions.NEWEST):
    return list(_holding_at(version))


@functools.lru_cache(maxsize=64)
def _holding_at(version: Version):
    """Every row that holds at a release, in table order (computed once a release, as _holding)."""
    return tuple(r for r in RULES if r.holds_for(version))


def select(dev: SpecDevice) -> Optional[Rule]:
    """The one rule that holds at the device's release and whose condition claims it (the
    first: more than one is a defect of the table, which tests/test_rules_property.py checks
    with claims(), so the rest need not be asked).

    A `when` reads only the SpecDevice, so the answer is kept per distinct device (all its
    fields): a fleet's VMs ask the same few devices over and over."""
    key = _spec_key(dev)
    try:
        hit = _SELECTED.get(key, _NONE)
    except TypeError:  # a list or a map from the manifest (as a model): not kept
        return _select(dev)
    if hit is _NONE:
        hit = _select(dev)
        _remember(_SELECTED, key, hit)
    return hit


def _spec_key(dev: SpecDevice) -> tuple:
    """Every field of the device, as Record._values() gives them (written out: faster)."""
    return (dev.what, dev.version, dev.arch, dev.dtype, dev.bus, dev.bus_defaulted, dev.model, dev.downward,
            dev.passt, dev.sriov, dev.efi, dev.on, dev.usb, dev.persistent, dev.slirp)


def _select(dev: SpecDevice) -> Optional[Rule]:
    for r in _holding(dev.version, False):
        if r.when(dev):
            return r
    return None


# Kept answers of select() and classify(); each dict is emptied when it reaches _KEPT entries
# (a fleet has far fewer distinct devices).  Their values come from the fixed table, so a
# thread that reads one while another fills it gets a right answer or none.  The conditions
# only compare their fields with strings and releases or test their truth, so values that are
# equal as keys (1 and True from a manifest) get the same answer.
_NONE = object()
_KEPT = 4096
_SELECTED: Dict[tuple, Optional["Rule"]] = {}
_CLASSIFIED: Dict[tuple, "Rule"] = {}


def _remember(cache: Dict[tuple, object], key: tuple, value) -> None:
    if len(cache) >= _KEPT:
        cache.clear()
    cache[key] = value


@functools.lru_cache(maxsize=64)
def _holding(version: Version, live: bool):
    """The rows that hold at a release and have a spec (`when`) or a live (`seen`) condition,
    in table order.  The table is fixed at import, so this is computed once a release: a fleet
    explains hundreds of domains of the same release (bench/fleet --live)."""
    return tuple(r for r in RULES if (r.seen if live else r.when) is not None and r.holds_for(version))


def claims(dev: SpecDevice):
    """Every rule that claims a spec device (for the tests: it must be exactly one)."""
    return [r for r in _holding(dev.version, False) if r.when(dev)]


# The attributes of a domain device (domain.Device) that the `seen` conditions read: with the
# release they decide classify()'s answer, which is kept per distinct tuple of them.
# tests/test_rules_cache.py checks every `seen` against this list.
SEEN_READS = ("kind", "type", "device", "bus", "model", "alias")


def classify(dev, version: Version) -> Rule:
    """The row that produces a device seen in a domain XML: the first holding row whose
    `seen` condition is true (libvirt.other at the end takes the rest)."""
    key = _seen_key(dev, version)
    try:
        hit = _CLASSIFIED.get(key)
    except TypeError:  # not a value a domain XML gives: not kept
        return _classify(dev, version)
    if hit is None:
        hit = _classify(dev, version)
        _remember(_CLASSIFIED, key, hit)
    return hit


def _seen_key(dev, version: Version) -> tuple:
    """The release and the device's SEEN_READS, in that order (written out: faster)."""
    return version, dev.kind, dev.type, dev.device, dev.bus, dev.model, dev.alias


def _classify(dev, version: Version) -> Rule:
    for r in _holding(version, True):
        if r.seen(dev, version):
            return r
    return BY_ID["libvirt.other"]


def effective_arch(arch: str, version: Version) -> str:
    """The converter arch: s390x before v1.3.0 and arm64 before v0.41.0 had no converter of
    their own and followed amd64."""
    if arch == "s390x" and version < S390X_SINCE:
        return "amd64"
    if arch == "arm64" and version < ARM64_SINCE:
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


def table_rows(version: Version, arch: str, show_all: bool = False):
    """The rows of `kubectl virtio table` (also -o json/yaml): every rule holding at the
    release (all of them with show_all), with its models, releases and sources per era."""
    rows = []
    for r in RULES:
        if not show_all and not r.holds_for(version):
            continue
        models = r.models_at(version)
        rows.append({"id": r.id, "kind": r.kind, "condition": r.condition,
                     "whenFalse": r.model(False, arch, version), "whenTrue": r.model(True, arch, version),
                     "models": {a: {"false": models[a][0], "true": models[a][1]} for a in ARCHES},
                     "flagDriven": r.flag_driven, "virtio": r.virtio, "addedBy": r.added_by,
                     "qemuDevice": r.qemu, "source": r.source, "versions": versions.describe(r.spans),
                     "sources": r.sources(), "sourcesText": r.describe_sources(),
                     "reason": r.reason,
                     "libvirt": {"false": consequence(r, False, arch, version),
                                 "true": consequence(r, True, arch, version)}})
    return rows


# --- What a model means: libvirt placement, QEMU device and guest driver -----------------

VARIANT_TEXT = {
    "transitional": "legacy + modern interface (virtio 0.9 and 1.0), PCI ids 1af4:1000-103f",
    "modern-only": "virtio 1.0 only, PCI ids 1af4:1040+, no I/O BAR",
    "ccw": "virtio-ccw: the guest negotiates the revision, old guests are fine",
    "legacy-only": "virtio 0.9 only (machine type <= 2.6)",
}


def model_meaning(model: Optional[str], modern_only: bool = False) -> str:
    """What a model string asks libvirt for.  `modern_only`: a device QEMU always makes
    virtio 1.0 (virtio input, vsock, virtiofs, virtio-mem)."""
    if modern_only:
        return "%s: this device exists only as virtio 1.0 (modern-only), whatever the slot" % (model or "no model")
    if model == T:
        return "virtio-transitional: legacy + modern (virtio 0.9 + 1.0); libvirt puts it in a conventional PCI slot"
    if model == NT:
        return "virtio-non-transitional: virtio 1.0 only; libvirt puts it on a PCIe root port (q35, arm64 virt)"
    if model == V or model == "virtio-scsi":
        return "plain %s: transitional or modern-only depending on the slot (PCIe root port = modern-only)" % model
    return ""


# What the guest needs for each effective variant.
GUEST_NEEDS = {
    "modern-only": "the guest needs a virtio 1.0 driver (Linux >= 4.0, RHEL/CentOS >= 7.2, virtio-win >= 126); "
                   "CentOS/RHEL 6 cannot drive it",
    "transitional": "any virtio driver works, legacy (virtio 0.9) or virtio 1.0",
    "ccw": "virtio-ccw: the guest negotiates the revision, legacy guests work",
    "legacy-only": "only a legacy virtio driver can use it (machine type <= 2.6)",
    "invalid-on-ccw": "QEMU refuses a (non-)transitional device on s390x: the VM does not start",
    "does-not-start": "QEMU >= 5.1 has no vhost-vsock-pci-transitional: the VM does not start",
}

# The machine types of each converter arch, as libvirt lays them out.
MACHINES = {"amd64": ("q35", "i440fx"), "arm64": ("virt",), "s390x": ("s390-ccw-virtio",)}


def placement(model: Optional[str], machine: str, modern_only: bool = False, vsock: bool = False):
    """(slot, effective variant) libvirt and QEMU give a virtio device of this model on a
    machine type that libvirt addresses itself (qemuDomainDeviceCalculatePCIConnectFlags,
    QEMU virtio_pci_realize)."""
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


def consequence(rule: "Rule", flag: bool, arch: str, version: Optional[Version] = None) -> Optional[Dict[str, object]]:
    """What libvirt and QEMU make of the row's model, per machine type of the arch: the QEMU
    device, the slot, the effective variant and what the guest needs.  None: not virtio."""
    if not rule.virtio or not rule.qemu:
        return None
    model = rule.model(flag, arch, version)
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
