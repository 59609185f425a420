"""pytest fixtures `libvirt` (a session-wide :class:`libvirt_oracle.Oracle`) and `libvirt_s390x`.

Without libvirt the tests that use them are skipped, unless KUBECTL_VIRTIO_REQUIRE_LIBVIRT=1
(set in CI), where a missing libvirt is an error: the oracle tests must not go quietly green.
The same holds for `libvirt_s390x` and its emulator (qemu-system-s390x, Debian's qemu-system-misc).
Register them in conftest.py, or import them into the test module that uses them:
`from libvirt_fixtures import libvirt, libvirt_s390x  # noqa: F401`.
"""
import os
from typing import List, NamedTuple, Optional, Sequence

import pytest

import libvirt_oracle

REQUIRE_ENV = "KUBECTL_VIRTIO_REQUIRE_LIBVIRT"


def libvirt_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def _skip_or_fail(reason: Optional[str], what: str = libvirt_oracle.UNAVAILABLE) -> None:
    if reason:
        if libvirt_required():
            pytest.fail("%s=1 but %s (%s)" % (REQUIRE_ENV, what, reason), pytrace=False)
        pytest.skip("%s (%s)" % (what, reason))


# One Oracle per test process. conftest's registration and a module's explicit import are two
# session fixtures in pytest's eyes; sharing the Oracle keeps them from probing QEMU twice.
_shared: Optional[libvirt_oracle.Oracle] = None
_users = 0


@pytest.fixture(scope="session")
def libvirt():
    global _shared, _users
    _skip_or_fail(libvirt_oracle.unavailable_reason())
    if _shared is None:
        _shared = libvirt_oracle.Oracle()
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0:
            _shared.close()
            _shared = None


# --- s390x -----------------------------------------------------------------------------------

# What KubeVirt's converter writes for the seed VM (containerdisk + cloudinitdisk, one
# masquerade NIC) on an s390x node (docs/kubevirt.md §0, §1.3-§1.7): plain `virtio` models whatever
# useVirtioTransitional says, SCSI controller `virtio-scsi`, no USB, a virtio keyboard without
# model, virtio video, balloon `virtio`, and no `<rom>` on the NIC (libvirt: "ROM tuning is only
# supported for PCI devices"; KubeVirt leaves it out on s390x). `type="qemu"` because the oracle has no /dev/kvm (a
# real launcher writes kvm and a versioned machine); libvirt adds the ccw addresses.
S390X_DOMAIN = """<domain type="qemu">
  <name>default_testvm</name>
  <uuid>6f1e3b2a-7c4d-4e59-8a10-2b3c4d5e6f70</uuid>
  <metadata>
    <kubevirt xmlns="http://kubevirt.io">
      <uid>9d2c4e61-0b3a-4f7e-8c15-3a6b7d9e0f12</uid>
    </kubevirt>
  </metadata>
  <memory unit="b">134217728</memory>
  <os>
    <type arch="s390x" machine="s390-ccw-virtio">hvm</type>
  </os>
  <cpu mode="host-model">
    <topology sockets="1" cores="1" threads="1"/>
  </cpu>
  <vcpu placement="static">1</vcpu>
  <devices>
    <interface type="ethernet">
      <mac address="02:5a:11:00:00:02"/>
      <target dev="tap0" managed="no"/>
      <model type="virtio"/>
      <alias name="ua-default"/>
    </interface>
    <channel type="unix">
      <target name="org.qemu.guest_agent.0" type="virtio"/>
    </channel>
    <controller type="usb" index="0" model="none"/>
    <controller type="scsi" index="0" model="virtio-scsi"/>
    <controller type="virtio-serial" index="0" model="virtio"/>
    <input type="keyboard" bus="virtio"/>
    <video>
      <model type="virtio" heads="1"/>
    </video>
    <graphics type="vnc">
      <listen type="socket" socket="/var/run/kubevirt-private/9d2c4e61-0b3a-4f7e-8c15-3a6b7d9e0f12/virt-vnc"/>
    </graphics>
    <memballoon model="virtio" freePageReporting="on">
      <stats period="10"/>
    </memballoon>
    <disk device="disk" type="file" model="virtio">
      <source file="/var/run/kubevirt-ephemeral-disks/disk-data/containerdisk/disk.qcow2"/>
      <target bus="virtio" dev="vda"/>
      <driver cache="none" error_policy="stop" name="qemu" type="qcow2" discard="unmap"/>
      <alias name="ua-containerdisk"/>
    </disk>
    <disk device="disk" type="file" model="virtio">
      <source file="/var/run/kubevirt-ephemeral-disks/cloud-init-data/default/testvm/noCloud.iso"/>
      <target bus="virtio" dev="vdb"/>
      <driver error_policy="stop" name="qemu" type="raw" discard="unmap"/>
      <alias name="ua-cloudinitdisk"/>
    </disk>
  </devices>
</domain>
"""
S390X_LABEL = "S390X_DOMAIN (tests/libvirt_fixtures.py)"


class Rendered(NamedTuple):
    input: str
    output: str  # virsh dumpxml


def render_with_s390x(oracle: libvirt_oracle.Oracle, texts: Sequence[str],
                      labels: Optional[Sequence[str]] = None) -> List[str]:
    """`oracle.render_many(texts, labels)`, with S390X_DOMAIN rendered alongside when its
    emulator is here: its QEMU probe (about 1.7 s, once per session) then runs in parallel
    with the x86_64 one instead of after it. Returns the outputs for `texts` only."""
    texts = list(texts)
    labels = list(labels) if labels is not None else ["domain XML #%d" % i for i in range(len(texts))]
    if libvirt_oracle.unavailable_reason("s390x") is None:
        return oracle.render_many(texts + [S390X_DOMAIN], labels + [S390X_LABEL])[:len(texts)]
    return oracle.render_many(texts, labels)


@pytest.fixture(scope="session")
def libvirt_s390x(libvirt):  # noqa: F811
    """S390X_DOMAIN and what libvirt (qemu-system-s390x, s390-ccw-virtio) made of it."""
    _skip_or_fail(libvirt_oracle.unavailable_reason("s390x"),
                  "libvirt cannot render s390x domains: run the README's install command")
    return Rendered(S390X_DOMAIN, libvirt.render(S390X_DOMAIN, label=S390X_LABEL))
