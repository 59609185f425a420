"""Predict the devices (and their models) KubeVirt's converter writes for a VMI spec.

Applies the defaults that change a device's model or existence (docs/kubevirt.md §1, §3):
the arch's default disk bus, interface model virtio, the autoattach flags, and preference
values that fill only unset fields.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from kubectl_virtio import rules as R
from kubectl_virtio import versions
from kubectl_virtio.rules import Rule
from kubectl_virtio.spec import VMSpec

LITERAL = "(as spec)"


@dataclass
class Expected:
    kind: str
    name: str
    rule: Rule
    why: str  # the spec side of the chain, e.g. "disks[containerdisk].disk.bus = virtio"
    bus: Optional[str] = None
    target: Optional[str] = None
    device: Optional[str] = None  # disk | cdrom | lun
    literal: Optional[str] = None  # the model copied from the spec (e1000, ich9, ...)

    def model(self, flag: bool, arch: str) -> Optional[str]:
        m = self.rule.model(flag, arch)
        return self.literal if m == LITERAL else m


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


def predict(vm: VMSpec, arch: str, version=versions.NEWEST) -> List[Expected]:
    """Every device the converter emits for this spec, in domain order (disks first)."""
    arch = R.effective_arch(arch, version)
    devices = vm.devices
    pref = vm.preference.devices if vm.preference else {}
    volumes = {v.get("name"): v for v in _l(vm.vmi_spec.get("volumes")) if isinstance(v, dict)}
    out: List[Expected] = []

    # Disks.  A volume with no disk entry gets a plain disk (pkg/util SetDefaultVolumeDisk).
    disks = [d for d in _l(devices.get("disks")) if isinstance(d, dict)]
    named = {d.get("name") for d in disks}
    for vname in volumes:
        if vname not in named and vname:
            disks.append({"name": vname, "disk": {}})
    targets: Dict[str, int] = {}
    for disk in disks:
        out.append(_disk(disk, volumes.get(disk.get("name")), pref, arch, version, targets))

    # Interfaces.  No interfaces and no networks: KubeVirt adds the pod interface "default".
    ifaces = [i for i in _l(vm.vmi_spec.get("domain", {}).get("devices", {}).get("interfaces")) if isinstance(i, dict)]
    autoattach_pod, _ = _pref_bool(devices, pref, "autoattachPodInterface", "preferredAutoattachPodInterface", True)
    if not ifaces and not _l(vm.vmi_spec.get("networks")) and autoattach_pod:
        ifaces = [{"name": "default", "masquerade": {}, "_defaulted": True}]
    for iface in ifaces:
        exp = _interface(iface, pref, version)
        if exp:
            out.append(exp)

    # Controllers (compute/controllers.go).  The USB controller is always there; it is an xHCI
    # one when a USB device needs it (arch IsUSBNeeded), which the inputs below decide too.
    inputs = [i for i in _l(devices.get("inputs")) if isinstance(i, dict)]
    auto_input, _ = _pref_bool(devices, pref, "autoattachInputDevice", "preferredAutoattachInputDevice", False)
    if auto_input and not inputs:
        inputs = [{"name": "default-0", "bus": pref.get("preferredInputBus") or "", "_auto": True}]
    out.append(_usb_controller(arch, disks, inputs, devices, pref))
    scsi_disk = any(_d(d.get(t)).get("bus") == "scsi" for d in disks for t in ("disk", "lun", "cdrom"))
    hotplug_off = devices.get("disableHotplug") is True
    why_hp = "disableHotplug unset"
    if isinstance(pref.get("preferredDisableHotplug"), bool):  # this preference overrides the VMI (plain bool)
        hotplug_off = pref["preferredDisableHotplug"]
        why_hp = "preference preferredDisableHotplug = %s" % str(hotplug_off).lower()
    elif hotplug_off:
        why_hp = "disableHotplug = true"
    if not hotplug_off or scsi_disk:
        why = why_hp + (" and a disk on bus scsi" if scsi_disk and hotplug_off else "") + ": SCSI controller for hotplug"
        out.append(Expected("controller", "scsi0", R.pick("controller.scsi", version), why))
    serial_on, why_serial = _pref_bool(devices, pref, "autoattachSerialConsole",
                                       "preferredAutoattachSerialConsole", True)
    if serial_on:
        out.append(Expected("controller", "virtio-serial0", R.pick("controller.virtio-serial", version),
                            why_serial + ": virtio-serial controller emitted"))
    else:
        out.append(Expected("controller", "virtio-serial0", R.rule("controller.virtio-serial.libvirt"),
                            why_serial + ": KubeVirt omits the controller; the guest-agent channel still needs one"))

    # memballoon: always present; model none when switched off.
    balloon_on, why_b = _pref_bool(devices, pref, "autoattachMemBalloon", "preferredAutoattachMemBalloon", True)
    out.append(Expected("memballoon", "memballoon0",
                        R.pick("memballoon.virtio", version) if balloon_on else R.rule("memballoon.none"), why_b))

    # rng: only when asked for.
    if isinstance(devices.get("rng"), dict):
        out.append(Expected("rng", "rng0", R.pick("rng.virtio", version), "spec.domain.devices.rng is set"))
    elif isinstance(pref.get("preferredRng"), dict):
        out.append(Expected("rng", "rng0", R.pick("rng.virtio", version), "preference preferredRng is set"))

    # Inputs.
    for inp in inputs:
        bus = _input_bus(inp, pref)
        name = str(inp.get("name") or "input")
        why = "inputs[%s].bus = %s" % (name, bus) + (" (autoattachInputDevice)" if inp.get("_auto") else "")
        out.append(Expected("input", name, R.rule("input.virtio" if bus == "virtio" else "input.usb"), why, bus=bus))
    graphics_on, why_g = _pref_bool(devices, pref, "autoattachGraphicsDevice",
                                    "preferredAutoattachGraphicsDevice", True)
    if graphics_on and arch == "s390x":
        out.append(Expected("input", "keyboard0", R.rule("input.s390x-keyboard"), why_g + " on s390x", bus="virtio"))

    # Video.
    video = _d(devices.get("video"))
    if graphics_on:
        if video.get("type"):
            out.append(Expected("video", "video0", R.rule("video.type"), "video.type = %s" % video["type"],
                                literal=str(video["type"])))
        elif _efi(vm.vmi_spec):
            out.append(Expected("video", "video0", R.rule("video.efi"),
                                why_g + ": default video for an EFI guest on " + arch))
        else:
            out.append(Expected("video", "video0", R.rule("video.default"), why_g + ": default video for " + arch))

    # vsock (only when the VSOCK feature allocated a CID).
    if devices.get("autoattachVSOCK") is True and version >= (0, 59, 0):
        out.append(Expected("vsock", "vsock0", R.pick("vsock.virtio", version), "autoattachVSOCK = true"))

    for fs in _l(devices.get("filesystems")):
        if isinstance(fs, dict) and isinstance(fs.get("virtiofs"), dict):
            out.append(Expected("filesystem", str(fs.get("name")), R.rule("filesystem.virtiofs"),
                                "filesystems[%s].virtiofs" % fs.get("name")))
    if isinstance(devices.get("watchdog"), dict) and arch != "arm64":  # arm64: the converter refuses it
        w = devices["watchdog"]
        out.append(Expected("watchdog", str(w.get("name") or "watchdog0"), R.rule("watchdog"), "watchdog is set"))
    if isinstance(devices.get("sound"), dict):
        s = devices["sound"]
        out.append(Expected("sound", str(s.get("name") or "sound0"), R.rule("sound"), "sound is set",
                            literal=str(s.get("model") or pref.get("preferredSoundModel") or "ich9")))
    if isinstance(devices.get("tpm"), dict) or isinstance(pref.get("preferredTPM"), dict):
        tpm = _d(devices.get("tpm")) or _d(pref.get("preferredTPM"))
        out.append(Expected("tpm", "tpm0", R.rule("tpm"), "tpm is set"))
        if tpm.get("persistent"):
            out[-1].literal = "tpm-crb"
    for gpu in _l(devices.get("gpus")) + _l(devices.get("hostDevices")):
        if isinstance(gpu, dict):
            out.append(Expected("hostdev", str(gpu.get("name")), R.rule("hostdev"), "host device %s" % gpu.get("name")))
    return out


def _input_bus(inp, pref) -> str:
    return inp.get("bus") or pref.get("preferredInputBus") or "usb"  # API default: usb


def _usb_controller(arch, disks, inputs, devices, pref) -> Expected:
    """compute/controllers.go with arch IsUSBNeeded: amd64 needs xHCI for a usb input, a usb
    disk or clientPassthrough; arm64 always (its USB tablet and keyboard); s390x never."""
    needs = []
    if any(_input_bus(i, pref) == "usb" for i in inputs):
        needs.append("a usb input")
    if any(_d(d.get(t)).get("bus") == "usb" for d in disks for t in ("disk", "lun", "cdrom")):
        needs.append("a usb disk")
    if isinstance(devices.get("clientPassthrough"), dict):
        needs.append("clientPassthrough")
    if arch == "arm64":
        return Expected("controller", "usb0", R.rule("controller.usb"), "USB controller: always xHCI on arm64")
    if needs and arch != "s390x":
        return Expected("controller", "usb0", R.rule("controller.usb.xhci"),
                        "USB controller: %s needs it" % " and ".join(needs))
    return Expected("controller", "usb0", R.rule("controller.usb"),
                    "USB controller: always emitted; no USB device%s" % (" on s390x" if arch == "s390x" else ""))


def _efi(vmi_spec) -> bool:
    """spec.domain.firmware.bootloader.efi (compute/graphics.go picks bochs for EFI guests)."""
    firmware = _d(_d(vmi_spec.get("domain")).get("firmware"))
    return "efi" in _d(firmware.get("bootloader"))


def _disk(disk, volume, pref, arch, version, targets) -> Expected:
    name = str(disk.get("name"))
    dtype = next((t for t in ("disk", "lun", "cdrom") if isinstance(disk.get(t), dict)), "disk")
    body = _d(disk.get(dtype))
    bus = body.get("bus")
    why_bus = "disks[%s].%s.bus = %s" % (name, dtype, bus)
    if not bus:
        pref_field = {"disk": "preferredDiskBus", "lun": "preferredLunBus", "cdrom": "preferredCdromBus"}[dtype]
        if pref.get(pref_field):
            bus = pref[pref_field]
            why_bus = "disks[%s].%s.bus unset; preference %s = %s" % (name, dtype, pref_field, bus)
        else:
            bus = "sata" if arch == "amd64" else "virtio"  # pkg/defaults setDefault<Arch>DisksBus
            why_bus = "disks[%s].%s.bus unset: the %s default is %s" % (name, dtype, arch, bus)
    if isinstance(_d(volume).get("downwardMetrics"), dict):
        rule, why = R.rule("disk.downward-metrics"), "volume %s is downwardMetrics" % name
        bus = "virtio"
    elif dtype == "lun":
        rule, why = R.rule("disk.lun"), why_bus
    elif dtype == "cdrom":
        rule, why = R.rule("disk.cdrom"), why_bus
    elif bus == "virtio":
        rule, why = R.pick("disk.virtio", version), why_bus
    else:
        rule, why = R.rule("disk.non-virtio"), why_bus
    prefix = "vd" if bus == "virtio" else "sd"
    n = targets.get(prefix, 0)
    targets[prefix] = n + 1
    return Expected("disk", name, rule, why, bus=bus, target=prefix + _letters(n), device=dtype)


def _letters(n: int) -> str:
    s = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        s = string.ascii_lowercase[r] + s
    return s


def _interface(iface, pref, version) -> Optional[Expected]:
    name = str(iface.get("name"))
    if isinstance(iface.get("sriov"), dict):
        return Expected("hostdev", name, R.rule("interface.sriov"), "interfaces[%s].sriov" % name)
    if iface.get("state") == "absent":
        return None
    binding = _d(iface.get("binding"))
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
    if binding.get("name") == "passt":
        return Expected("interface", name, R.rule("interface.passt-sidecar"), "interfaces[%s].binding passt" % name)
    if model != "virtio":
        return Expected("interface", name, R.rule("interface.emulated"), why, literal=str(model))
    return Expected("interface", name, R.pick("interface.virtio", version), why)
