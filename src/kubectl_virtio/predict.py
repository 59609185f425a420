"""Predict the devices (and their models) KubeVirt's converter writes for a VMI spec.

This module only walks the spec: it turns every device the spec asks for (after what the VM
controller and the webhooks add or skip, per release) into a `rules.SpecDevice`, and the
rule whose condition claims it (`rules.select`) gives the model.  The conditions themselves
live in rules.py, beside the models and the sources, so prediction and the classification
of live devices (explain.classify -> rules.classify) cannot drift apart.

What happens before the converter, per release (docs/kubevirt-rules.md, "Before the
converter"):
- the mutating webhook sets each disk's default bus, and (from v0.54.0) gives every volume
  that no disk and no filesystem names a disk of its own;
- the VM controller (VirtualMachine, VirtualMachinePool; not a bare VMI or a replica set)
  adds the input `default-0` for autoattachInputDevice (from v0.57.0);
- spec fields a release does not know are dropped (rules.FIELD_SINCE).
"""
from __future__ import annotations

import functools
import string
from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio import rules as R
from kubectl_virtio import versions
from kubectl_virtio.record import Record
from kubectl_virtio.rules import Rule, SpecDevice
from kubectl_virtio.spec import VMSpec

LITERAL = R.LITERAL


class Expected(Record):
    __slots__ = _fields = ("kind", "name", "rule", "why", "bus", "target", "device", "literal", "version", "spec")
    _no_repr = ("spec",)

    def __init__(self, kind: str, name: str, rule: Rule,
                 why: str,  # the spec side of the chain, e.g. "disks[containerdisk].disk.bus = virtio"
                 bus: Optional[str] = None, target: Optional[str] = None,
                 device: Optional[str] = None,  # disk | cdrom | lun
                 literal: Optional[str] = None,  # the model copied from the spec (e1000, ich9, ...)
                 version: versions.Version = versions.NEWEST,
                 spec: Optional[SpecDevice] = None):  # what the rule's `when` claimed
        self.kind, self.name, self.rule, self.why = kind, name, rule, why
        self.bus, self.target, self.device, self.literal = bus, target, device, literal
        self.version, self.spec = version, spec

    def model(self, flag: bool, arch: str) -> Optional[str]:
        m = self.rule.model(flag, arch, self.version)
        return self.literal if m == LITERAL else m


class Prediction(Record):
    """`absent`: rule id -> why the prediction has no device of that rule (every rule holding
    at the release that no predicted device uses is here); `manifest`: the manifest's kind;
    `through_vm_controller`: a VM (or pool), whose VMI the VM controller builds; `notes`: what
    the controller/webhooks added or skipped."""

    __slots__ = _fields = ("devices", "absent", "manifest", "through_vm_controller", "notes")

    def __init__(self, devices: List[Expected], absent: Dict[str, str], manifest: str, through_vm_controller: bool,
                 notes: Optional[List[str]] = None):
        self.devices, self.absent, self.manifest = devices, absent, manifest
        self.through_vm_controller = through_vm_controller
        self.notes = notes if notes is not None else []

    @property
    def origin_text(self) -> str:
        if self.through_vm_controller:
            return ("a %s: its VMI comes from the VM controller, then the webhooks, then the converter"
                    % self.manifest)
        return ("a bare %s: only the webhooks and the converter apply (no VM controller)"
                % (self.manifest or "VirtualMachineInstance"))


def _d(v) -> Dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _l(v) -> List[Any]:
    return v if isinstance(v, list) else []


def _pref_bool(devices: Dict[str, Any], pref: Dict[str, Any], field: str, pref_field: str, default: bool):
    v = devices.get(field)
    if isinstance(v, bool):
        return v, "spec.domain.devices.%s = %s" % (field, str(v).lower())
    p = pref.get(pref_field)
    if isinstance(p, bool):
        return p, "preference %s = %s" % (pref_field, str(p).lower())
    return default, "%s unset (default %s)" % (field, str(default).lower())


def _known(field_name: str, version) -> bool:
    return version >= R.FIELD_SINCE[field_name]


def predict(vm: VMSpec, arch: str, version=versions.NEWEST) -> List[Expected]:
    """Every device the converter emits for this spec, in domain order (disks first)."""
    return _walk(vm, arch, version)[0].out  # the devices only: no reasons for absent rules


def prediction(vm: VMSpec, arch: str, version=versions.NEWEST) -> Prediction:
    """The devices, and for every rule without a device, why."""
    p, notes, through_vm = _walk(vm, arch, version)
    return Prediction(p.out, p.finish(), vm.kind, through_vm, notes + p.skipped)


def _walk(vm: VMSpec, arch: str, version):
    """(the predictor with every device added, the notes, whether the VM controller builds
    the VMI): the spec walked once, for prediction() and predict()."""
    arch = R.effective_arch(arch, version)
    through_vm = vm.kind in R.THROUGH_VM_CONTROLLER
    p = _Predictor(arch, version)
    devices = vm.devices
    pref = vm.preference.devices if vm.preference else {}
    notes: List[str] = []
    volumes = {v.get("name"): v for v in _l(vm.vmi_spec.get("volumes")) if isinstance(v, dict)}

    def skip(field_name: str, present: bool, rule_ids):
        if present and not _known(field_name, version):
            why = "spec.%s does not exist in KubeVirt %s (it arrived in %s): no device" % (
                field_name, versions.show(version), versions.show(R.FIELD_SINCE[field_name]))
            notes.append(why)
            for rid in rule_ids:
                p.absent.setdefault(rid, why)
            return True
        return False

    # Disks.  The webhook gives a volume that no disk and no filesystem names a disk
    # (util.SetDefaultVolumeDisk), from v0.54.0; filesystem (virtiofs) volumes never get one.
    disks = [d for d in _l(devices.get("disks")) if isinstance(d, dict)]
    named = {d.get("name") for d in disks}
    fs_names = {f.get("name") for f in _l(devices.get("filesystems")) if isinstance(f, dict)}
    for vname in volumes:
        if not vname or vname in named:
            continue
        if vname in fs_names:
            notes.append("volume %s is a filesystem's: it gets no disk" % vname)
        elif version >= R.VOLUME_DISKS_SINCE:
            disks.append({"name": vname, "disk": {}, "_volume_only": True})
        else:
            notes.append("volume %s has no disk: KubeVirt %s adds none (the webhook adds one from %s)"
                         % (vname, versions.show(version), versions.show(R.VOLUME_DISKS_SINCE)))
    targets: Dict[str, int] = {}
    for disk in disks:
        p.disk(disk, volumes.get(disk.get("name")), pref, targets)

    # Interfaces.  No interfaces and no networks: KubeVirt adds the pod interface "default".
    ifaces = [i for i in _l(devices.get("interfaces")) if isinstance(i, dict)]
    autoattach_pod, _ = _pref_bool(devices, pref, "autoattachPodInterface", "preferredAutoattachPodInterface", True)
    if not ifaces and not _l(vm.vmi_spec.get("networks")) and autoattach_pod:
        ifaces = [{"name": "default", "masquerade": {}, "_defaulted": True}]
    skip("interfaces.binding", any(isinstance(i.get("binding"), dict) for i in ifaces), ["interface.passt-sidecar"])
    for iface in ifaces:
        p.interface(iface, pref)

    # Inputs: autoattachInputDevice is the VM controller's (autoAttachInputDevice).
    inputs = [i for i in _l(devices.get("inputs")) if isinstance(i, dict)]
    auto_input, why_auto = _pref_bool(devices, pref, "autoattachInputDevice", "preferredAutoattachInputDevice",
                                      False)
    if auto_input and not inputs:
        if not _known("devices.autoattachInputDevice", version):
            skip("devices.autoattachInputDevice", True, [])
        elif not through_vm:
            notes.append("%s, but this is a bare %s: only the VM controller adds that input, so there is none"
                         % (why_auto, vm.kind or "VirtualMachineInstance"))
        else:
            inputs = [{"name": "default-0", "bus": pref.get("preferredInputBus") or "", "_auto": True}]

    # Controllers (the USB one is always there; a USB device makes it xHCI on amd64).
    usb_needs = []
    if any(_input_bus(i, pref) == "usb" for i in inputs):
        usb_needs.append("a usb input")
    if version < R.USB_DISK_SINCE and any(e.bus == "usb" for e in p.out if e.kind == "disk"):
        notes.append("KubeVirt %s rejects a disk on bus usb (accepted from %s): the VMI is not created"
                     % (versions.show(version), versions.show(R.USB_DISK_SINCE)))
    # the buses as the webhook/preference resolved them; only a `disk` on usb counts (arch IsUSBNeeded)
    if any(e.bus == "usb" and e.device == "disk" for e in p.out if e.kind == "disk"):
        usb_needs.append("a usb disk")
    if isinstance(devices.get("clientPassthrough"), dict) and not skip(
            "devices.clientPassthrough", True, []):
        usb_needs.append("clientPassthrough")
    if arch == "arm64":
        why_usb = "USB controller: always xHCI on arm64"
    elif usb_needs and arch == "amd64":
        why_usb = "USB controller: %s needs it" % " and ".join(usb_needs)
    else:
        why_usb = "USB controller: always emitted; no USB device%s" % (" on s390x" if arch == "s390x" else "")
    p.add("controller", "usb0", SpecDevice("controller.usb", version, arch, usb=bool(usb_needs)), why_usb)

    scsi_disk = any(e.bus == "scsi" for e in p.out if e.kind == "disk")  # compute/controllers.go requiresSCSIController
    hotplug_off = devices.get("disableHotplug") is True
    why_hp = "disableHotplug unset"
    if isinstance(pref.get("preferredDisableHotplug"), bool):  # this preference overrides the VMI (plain bool)
        hotplug_off = pref["preferredDisableHotplug"]
        why_hp = "preference preferredDisableHotplug = %s" % str(hotplug_off).lower()
    elif hotplug_off:
        why_hp = "disableHotplug = true"
    if not hotplug_off or scsi_disk:
        why = why_hp + (" and a disk on bus scsi" if scsi_disk and hotplug_off else "") + ": SCSI controller for hotplug"
        p.add("controller", "scsi0", SpecDevice("controller.scsi", version, arch), why)
    else:
        p.absent_for(["controller.scsi", "controller.scsi.legacy"], why_hp + " and no disk on bus scsi: no SCSI controller")
    serial_on, why_serial = _pref_bool(devices, pref, "autoattachSerialConsole",
                                       "preferredAutoattachSerialConsole", True)
    p.add("controller", "virtio-serial0", SpecDevice("controller.virtio-serial", version, arch, on=serial_on),
          why_serial + (": virtio-serial controller emitted" if serial_on else
                        ": KubeVirt omits the controller; the guest-agent channel still needs one"))

    # memballoon: always present; model none when switched off.
    balloon_on, why_b = _pref_bool(devices, pref, "autoattachMemBalloon", "preferredAutoattachMemBalloon", True)
    p.add("memballoon", "memballoon0", SpecDevice("memballoon", version, arch, on=balloon_on), why_b)

    # rng: only when asked for.
    if isinstance(devices.get("rng"), dict):
        p.add("rng", "rng0", SpecDevice("rng", version, arch), "spec.domain.devices.rng is set")
    elif isinstance(pref.get("preferredRng"), dict):
        p.add("rng", "rng0", SpecDevice("rng", version, arch), "preference preferredRng is set")

    for inp in inputs:
        bus = _input_bus(inp, pref)
        name = str(inp.get("name") or "input")
        why = "inputs[%s].bus = %s" % (name, bus) + (
            " (autoattachInputDevice: the VM controller added it)" if inp.get("_auto") else "")
        p.add("input", name, SpecDevice("input", version, arch, bus=bus), why, bus=bus)
    # arm64 v0.41.0-v0.46.x: the arm64 webhook turns graphics off when the spec leaves it unset
    arm64_off = arch == "arm64" and version < R.ARM64_GRAPHICS_ON_SINCE
    graphics_on, why_g = _pref_bool(devices, pref, "autoattachGraphicsDevice",
                                    "preferredAutoattachGraphicsDevice", not arm64_off)
    if arm64_off and "unset" in why_g:
        why_g = "autoattachGraphicsDevice unset: KubeVirt %s's arm64 webhook sets it false" % versions.show(version)
    if graphics_on and arch == "s390x":
        p.add("input", "keyboard0", SpecDevice("keyboard", version, arch), why_g + " on s390x", bus="virtio",
              none_why="KubeVirt %s adds no keyboard on s390x (from v1.4.1 it does)" % versions.show(version))

    # Video.
    video = _d(devices.get("video"))
    if graphics_on:
        vtype = str(video["type"]) if video.get("type") else None
        if vtype and skip("devices.video", True, ["video.type"]):
            vtype = None
        efi = _efi(vm.vmi_spec)
        if vtype:
            why = "video.type = %s" % vtype
        elif efi:
            why = why_g + ": default video for an EFI guest on " + arch
        else:
            why = why_g + ": default video for " + arch
        p.add("video", "video0", SpecDevice("video", version, arch, model=vtype, efi=efi), why, literal=vtype)
    else:
        p.absent_for(["video.default", "video.efi", "video.type", "input.s390x-keyboard"], why_g + ": no video")

    # vsock (only when the VSOCK feature allocated a CID).
    if devices.get("autoattachVSOCK") is True and not skip("devices.autoattachVSOCK", True, []):
        p.add("vsock", "vsock0", SpecDevice("vsock", version, arch), "autoattachVSOCK = true")

    for fs in _l(devices.get("filesystems")):
        if isinstance(fs, dict) and isinstance(fs.get("virtiofs"), dict):
            p.add("filesystem", str(fs.get("name")), SpecDevice("filesystem", version, arch),
                  "filesystems[%s].virtiofs" % fs.get("name"))
    if isinstance(devices.get("watchdog"), dict):
        w = devices["watchdog"]
        p.add("watchdog", str(w.get("name") or "watchdog0"), SpecDevice("watchdog", version, arch),
              "watchdog is set")
    if isinstance(devices.get("sound"), dict) and not skip("devices.sound", True, ["sound"]):
        s = devices["sound"]
        model = s.get("model") or pref.get("preferredSoundModel") or ""
        # The converter copies ich9/ac97 and uses ich9 when the spec names none (compute/sound.go).
        literal = str(model) if model in ("ich9", "ac97") else "ich9"
        why = "sound.model = %s" % model if model else "sound.model unset (ich9)"
        p.add("sound", str(s.get("name") or "sound0"), SpecDevice("sound", version, arch, model=model or None),
              why, literal=literal)
    if isinstance(devices.get("tpm"), dict) or isinstance(pref.get("preferredTPM"), dict):
        if not skip("devices.tpm", True, ["tpm"]):
            tpm = _d(devices.get("tpm")) or _d(pref.get("preferredTPM"))
            persistent = tpm.get("persistent") is True and version >= (1, 0, 0)
            p.add("tpm", "tpm0", SpecDevice("tpm", version, arch, persistent=persistent),
                  "tpm is set" + (" (persistent)" if persistent else ""))
    panics = [x for x in _l(devices.get("panicDevices")) if isinstance(x, dict)]
    if panics and not skip("devices.panicDevices", True, ["panic"]):
        for i, pd in enumerate(panics):
            p.add("panic", "panic%d" % i, SpecDevice("panic", version, arch, model=pd.get("model")),
                  "panicDevices[%d].model = %s" % (i, pd.get("model")), literal=pd.get("model"))
    for gpu in _l(devices.get("gpus")) + _l(devices.get("hostDevices")):
        if isinstance(gpu, dict):
            p.add("hostdev", str(gpu.get("name")), SpecDevice("hostdev", version, arch),
                  "host device %s" % gpu.get("name"))
    return p, notes, through_vm


class _Predictor:
    def __init__(self, arch, version):
        self.arch, self.version = arch, version
        self.out: List[Expected] = []
        self.absent: Dict[str, str] = {}
        self.skipped: List[str] = []  # spec devices the converter leaves to someone else

    def add(self, kind, name, dev: SpecDevice, why, none_why: Optional[str] = None, **kw) -> Optional[Expected]:
        rule = R.select(dev)
        if rule is None:
            self.absent.setdefault("%s:%s" % (kind, name), none_why or "no rule of KubeVirt %s makes a %s from %s"
                                   % (versions.show(self.version), dev.what, why))
            return None
        if rule.model(False, self.arch, self.version) == R.UNSUPPORTED:
            self.absent.setdefault(rule.id, "%s: KubeVirt %s refuses it on %s, the VM does not start"
                                   % (why, versions.show(self.version), self.arch))
            return None
        exp = Expected(kind, name, rule, why, version=self.version, spec=dev, **kw)
        self.out.append(exp)
        return exp

    def absent_for(self, rule_ids, why):
        for rid in rule_ids:
            self.absent.setdefault(rid, why)

    def finish(self) -> Dict[str, str]:
        # Every rule holding at the release, in table order, minus those a device uses; what
        # the spec said about a rule replaces the generic text in place (the order stays).
        out = dict(_absent_texts(self.version))
        for e in self.out:
            out.pop(e.rule.id, None)
        for k, v in self.absent.items():
            if ":" in k:  # a spec device no rule makes at this release: after the rules
                out[k] = v
            elif v and k in out:
                out[k] = v
        return out

    def disk(self, disk, volume, pref, targets) -> None:
        name = str(disk.get("name"))
        dtype = next((t for t in ("disk", "lun", "cdrom") if isinstance(disk.get(t), dict)), "disk")
        body = _d(disk.get(dtype))
        bus = body.get("bus")
        defaulted = False
        why = "disks[%s].%s.bus = %s" % (name, dtype, bus)
        if not bus:
            pref_field = {"disk": "preferredDiskBus", "lun": "preferredLunBus", "cdrom": "preferredCdromBus"}[dtype]
            if pref.get(pref_field):
                bus = pref[pref_field]
                why = "disks[%s].%s.bus unset; preference %s = %s" % (name, dtype, pref_field, bus)
            else:
                # pkg/defaults setDefault<Arch>DisksBus; arm64's virtio default from v0.57.0
                virtio_default = self.arch == "s390x" or (
                    self.arch == "arm64" and self.version >= R.ARM64_VIRTIO_DISK_BUS_SINCE)
                bus = "virtio" if virtio_default else "sata"
                defaulted = True
                why = "disks[%s].%s.bus unset: the %s default is %s" % (name, dtype, self.arch, bus)
        if disk.get("_volume_only"):
            why = "volume %s has no disk: the webhook adds one (%s)" % (name, why)
        downward = isinstance(_d(volume).get("downwardMetrics"), dict) and _known("volumes.downwardMetrics",
                                                                                   self.version)
        if downward:
            why, bus = "volume %s is downwardMetrics" % name, "virtio"
        prefix = "vd" if bus == "virtio" else "sd"
        n = targets.get(prefix, 0)
        targets[prefix] = n + 1
        self.add("disk", name, SpecDevice("disk", self.version, self.arch, dtype=dtype, bus=bus,
                                          bus_defaulted=defaulted and not downward, downward=downward),
                 why, bus=bus, target=prefix + _letters(n), device=dtype)

    def interface(self, iface, pref) -> None:
        name = str(iface.get("name"))
        if isinstance(iface.get("sriov"), dict):
            self.add("hostdev", name, SpecDevice("interface", self.version, self.arch, sriov=True),
                     "interfaces[%s].sriov" % name)
            return
        if iface.get("state") == "absent":
            return
        binding = _d(iface.get("binding")) if _known("interfaces.binding", self.version) else {}
        model = iface.get("model")
        why = "interfaces[%s].model = %s" % (name, model)
        if not model:
            if pref.get("preferredInterfaceModel"):
                model = pref["preferredInterfaceModel"]
                why = "interfaces[%s].model unset; preference preferredInterfaceModel = %s" % (name, model)
            else:
                model = "virtio"
                why = "interfaces[%s].model unset (default virtio)" % name
        if iface.get("_defaulted"):
            why = "no interfaces in the spec: KubeVirt adds the pod interface 'default' (model virtio)"
        passt = binding.get("name") == "passt"
        slirp = isinstance(iface.get("slirp"), dict)
        plugins = self.version >= R.PLUGIN_BINDINGS_SINCE
        if passt and self.version >= R.PASST_SIDECAR_SINCE:
            why = "interfaces[%s].binding passt" % name
        elif plugins and (slirp or binding):
            self.skipped.append(
                "interface %s uses %s: KubeVirt %s's converter skips it and that plugin's sidecar writes it "
                "(not predicted)" % (name, "slirp" if slirp else "the binding plugin %s" % binding.get("name"),
                                     versions.show(self.version)))
            return
        literal = None if model == "virtio" and not slirp else str(model)
        if slirp:  # getInterfaceType: slirp works only with e1000 or rtl8139
            literal = str(model) if model in ("e1000", "rtl8139") else "e1000"
            why = "interfaces[%s].slirp with model %s -> %s" % (name, model, literal)
        self.add("interface", name, SpecDevice("interface", self.version, self.arch, model=str(model), passt=passt,
                                               slirp=slirp), why, literal=literal)


@functools.lru_cache(maxsize=64)
def _absent_texts(version) -> Tuple[Tuple[str, str], ...]:
    """(rule id, why a prediction has no device of it) for every rule holding at the release,
    in table order, when the spec says nothing more: the same for every VM of a release."""
    return tuple((r.id, r.unpredicted or "nothing in the spec meets its condition (%s)" % r.condition)
                 for r in R.rules_for(version))


def _input_bus(inp, pref) -> str:
    return inp.get("bus") or pref.get("preferredInputBus") or "usb"  # API default: usb


def _efi(vmi_spec) -> bool:
    """spec.domain.firmware.bootloader.efi (EFI guests get bochs from v1.1.0)."""
    firmware = _d(_d(vmi_spec.get("domain")).get("firmware"))
    return "efi" in _d(firmware.get("bootloader"))


def _letters(n: int) -> str:
    s = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        s = string.ascii_lowercase[r] + s
    return s
