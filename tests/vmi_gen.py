"""Hypothesis strategies for VM and VMI manifests that vary every device and flag the rules know.

`manifests()` draws a VirtualMachine, VirtualMachinePool, VirtualMachineInstance or
VirtualMachineInstanceReplicaSet whose template varies: disks (disk/lun/cdrom, every bus
and none, with volumes of several kinds, downwardMetrics, volumes without a disk, virtiofs
filesystems), interfaces (virtio/unset/emulated models, SR-IOV, the passt binding, none at
all), every autoattach switch, rng, inputs (virtio/usb/no bus), video type, EFI firmware,
watchdog, sound (ich9/ac97/no model), TPM (persistent or not), panic devices, GPUs and host
devices, clientPassthrough, disableHotplug and useVirtioTransitional.
"""
from __future__ import annotations

from hypothesis import strategies as st

DISK_BUSES = (None, "virtio", "sata", "scsi", "usb")
VOLUME_SOURCES = (
    {"containerDisk": {"image": "quay.io/containerdisks/fedora"}},
    {"persistentVolumeClaim": {"claimName": "pvc"}},
    {"emptyDisk": {"capacity": "1Gi"}},
    {"cloudInitNoCloud": {"userData": "#cloud-config"}},
    {"downwardMetrics": {}},
)
IFACE_MODELS = (None, "virtio", "e1000", "e1000e", "rtl8139")
INPUT_BUSES = (None, "virtio", "usb")
VIDEO_TYPES = ("vga", "virtio", "bochs", "ramfb")
SOUND_MODELS = (None, "ich9", "ac97")
PANIC_MODELS = ("isa", "hyperv", "pvpanic")
KINDS = ("VirtualMachine", "VirtualMachineInstance", "VirtualMachinePool", "VirtualMachineInstanceReplicaSet")

maybe_bool = st.sampled_from((None, True, False))


def _opt(key, strategy):
    """{key: value} or {} (the field unset)."""
    return st.one_of(st.just({}), strategy.map(lambda v: {key: v}))


@st.composite
def disks_and_volumes(draw):
    disks, volumes = [], []
    for i in range(draw(st.integers(0, 4))):
        name = "d%d" % i
        dtype = draw(st.sampled_from(("disk", "disk", "lun", "cdrom")))
        bus = draw(st.sampled_from(DISK_BUSES))
        disks.append({"name": name, dtype: {"bus": bus} if bus else {}})
        volumes.append(dict(draw(st.sampled_from(VOLUME_SOURCES)), name=name))
    # volumes no disk names (the webhook adds disks for them from v0.54.0)
    for i in range(draw(st.integers(0, 2))):
        volumes.append(dict(draw(st.sampled_from(VOLUME_SOURCES[:3])), name="v%d" % i))
    filesystems = []
    for i in range(draw(st.integers(0, 2))):
        filesystems.append({"name": "fs%d" % i, "virtiofs": {}})
        volumes.append({"name": "fs%d" % i, "persistentVolumeClaim": {"claimName": "share%d" % i}})
    return disks, volumes, filesystems


@st.composite
def interfaces_and_networks(draw):
    ifaces, networks = [], []
    for i in range(draw(st.integers(0, 3))):
        name = "n%d" % i
        kind = draw(st.sampled_from(("masquerade", "bridge", "sriov", "slirp", "passt-binding", "other-binding")))
        iface = {"name": name}
        if kind.endswith("-binding"):
            iface["binding"] = {"name": kind[:-len("-binding")]}
        else:
            iface[kind] = {}
        model = draw(st.sampled_from(IFACE_MODELS))
        if model and kind != "sriov":
            iface["model"] = model
        ifaces.append(iface)
        networks.append({"name": name, "pod": {}} if i == 0 else {"name": name, "multus": {"networkName": name}})
    return ifaces, networks


@st.composite
def devices(draw):
    disks, volumes, filesystems = draw(disks_and_volumes())
    ifaces, networks = draw(interfaces_and_networks())
    d = {"disks": disks}
    if filesystems:
        d["filesystems"] = filesystems
    if ifaces:
        d["interfaces"] = ifaces
    for switch in ("useVirtioTransitional", "autoattachPodInterface", "autoattachSerialConsole",
                   "autoattachMemBalloon", "autoattachGraphicsDevice", "autoattachInputDevice", "autoattachVSOCK",
                   "disableHotplug"):
        v = draw(maybe_bool)
        if v is not None:
            d[switch] = v
    d.update(draw(_opt("rng", st.just({}))))
    inputs = []
    for i in range(draw(st.integers(0, 2))):
        bus = draw(st.sampled_from(INPUT_BUSES))
        inputs.append(dict({"name": "in%d" % i, "type": "tablet"}, **({"bus": bus} if bus else {})))
    if inputs:
        d["inputs"] = inputs
    d.update(draw(_opt("video", st.sampled_from(VIDEO_TYPES).map(lambda t: {"type": t}))))
    d.update(draw(_opt("watchdog", st.just({"name": "wd", "i6300esb": {"action": "poweroff"}}))))
    d.update(draw(_opt("sound", st.sampled_from(SOUND_MODELS).map(
        lambda m: {"name": "snd", **({"model": m} if m else {})}))))
    d.update(draw(_opt("tpm", st.sampled_from(({}, {"persistent": True}, {"persistent": False})))))
    panics = draw(st.lists(st.sampled_from(PANIC_MODELS), max_size=2, unique=True))
    if panics:
        d["panicDevices"] = [{"model": m} for m in panics]
    d.update(draw(_opt("gpus", st.just([{"name": "gpu1", "deviceName": "nvidia.com/GP100GL"}]))))
    d.update(draw(_opt("hostDevices", st.just([{"name": "hd1", "deviceName": "intel.com/qat"}]))))
    d.update(draw(_opt("clientPassthrough", st.just({}))))
    return d, volumes, networks


@st.composite
def manifests(draw):
    """A manifest dict (what `kubectl virtio explain -f` reads)."""
    devs, volumes, networks = draw(devices())
    spec = {"domain": {"devices": devs, "resources": {"requests": {"memory": "1Gi"}}}, "volumes": volumes}
    if networks:
        spec["networks"] = networks
    if draw(st.booleans()):
        spec["domain"]["firmware"] = {"bootloader": {"efi": {"secureBoot": draw(st.booleans())}}}
    kind = draw(st.sampled_from(KINDS))
    meta = {"name": "gen"}
    if kind == "VirtualMachineInstance":
        return {"apiVersion": "kubevirt.io/v1", "kind": kind, "metadata": meta, "spec": spec}
    template = {"metadata": {"labels": {"app": "gen"}}, "spec": spec}
    if kind == "VirtualMachine":
        return {"apiVersion": "kubevirt.io/v1", "kind": kind, "metadata": meta,
                "spec": {"runStrategy": "Always", "template": template}}
    if kind == "VirtualMachinePool":
        return {"apiVersion": "pool.kubevirt.io/v1alpha1", "kind": kind, "metadata": meta,
                "spec": {"replicas": 1, "virtualMachineTemplate": {"spec": {"template": template}}}}
    return {"apiVersion": "kubevirt.io/v1", "kind": kind, "metadata": meta, "spec": {"replicas": 1, "template": template}}
