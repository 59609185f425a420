"""Which guest operating systems have virtio 1.0 (modern-only) drivers.

Data: docs/libvirt.md §2-§3.4 (osinfo-db 0.20221130: an OS supports virtio 1.0 iff its
device set holds 1af4:1041, virt-manager's test in virtinst/osdict.py supports_virtio1).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional

# Where KubeVirt objects name the guest OS: common-templates labels and annotations.
OS_LABEL_KEYS = ("vm.kubevirt.io/os", "kubevirt.io/os", "os.kubevirt.io")
OS_TEMPLATE_LABEL = "os.template.kubevirt.io/"


@dataclass
class GuestOS:
    id: str  # normalised short id, e.g. centos6.10, rhel7.2, windows10
    source: str  # where it was read: --guest-os, label vm.kubevirt.io/os, preference ...
    virtio1: Optional[bool]  # None: cannot tell (Windows: depends on the virtio-win drivers)
    note: str

    def to_dict(self):
        return {"id": self.id, "source": self.source, "virtio1": self.virtio1, "note": self.note}


_OS_RE = re.compile(r"^([a-z]+)[-_.]?(\d+(?:\.\d+)?)?(?:[-_.]?(sp\d+|stream\d*))?")


def virtio1_support(os_id: str):
    """(virtio1, note) for an osinfo-like short id."""
    s = os_id.lower().replace(" ", "")
    if s.startswith("centos-stream") or s.startswith("centosstream") or s.startswith("centos.stream"):
        return True, "CentOS Stream: virtio 1.0 drivers in the kernel"
    m = _OS_RE.match(s)
    family = m.group(1) if m else s
    ver = m.group(2) if m else None
    sp = m.group(3) if m else None
    major = int(ver.split(".")[0]) if ver else None
    minor = int(ver.split(".")[1]) if ver and "." in ver else 0
    if family in ("rhel", "centos", "ol", "oraclelinux", "redhat"):
        if major is None:
            return None, "no version: RHEL/CentOS <= 7.1 lack virtio 1.0"
        if major <= 6:
            return False, "RHEL/CentOS %d has legacy virtio drivers only (kernel 2.6.32)" % major
        if major == 7 and minor < 2 and family != "centos":
            return False, "RHEL 7.0/7.1 lack virtio 1.0 (tech preview from 7.2)"
        return True, "virtio 1.0 drivers since RHEL 7.2"
    if family in ("rocky", "almalinux", "alma"):
        return True, "virtio 1.0 drivers in the kernel"
    if family == "fedora":
        return (major is None or major >= 23), "virtio 1.0 since Fedora 23"
    if family == "ubuntu":
        if major is None:
            return True, "assumed a current release"
        return (major, minor) >= (17, 4), "virtio 1.0 from 17.04 per osinfo-db (16.04's kernel 4.4 works in practice)"
    if family == "debian":
        return (major is None or major >= 9), "virtio 1.0 from Debian 9"
    if family in ("sles", "sled", "sle"):
        if major is None:
            return None, "no version"
        if major <= 11 or (major == 12 and (not sp or sp in ("sp1",))):
            return False, "SLES 11 and SLES 12 GA/SP1 lack virtio 1.0"
        return True, "virtio 1.0 from SLES 12 SP2"
    if family in ("opensuse",):
        return (major is None or not (major <= 13 or (major == 42 and minor < 2))), "virtio 1.0 from openSUSE 42.2"
    if family == "alpine":
        return (major is None or (major, minor) >= (3, 11)), "virtio 1.0 listed from Alpine 3.11"
    if family == "cirros":
        return (major is None or (major, minor) >= (0, 4)), "virtio 1.0 from CirrOS 0.4"
    if family.startswith("win"):
        if s.startswith(("winxp", "win2k3", "win2003", "winxp64")):
            return False, "XP/2003 virtio-win drivers know only the legacy ids"
        return None, "Windows has no in-box virtio drivers; virtio-win 126 (2016) and later drive virtio 1.0"
    if family in ("freebsd", "openbsd", "netbsd"):
        return None, "osinfo-db lists legacy virtio only (a data gap, not checked against the kernel)"
    return None, "unknown OS: cannot tell"


def normalise(raw: str) -> str:
    s = raw.strip().lower()
    s = s.replace("windows", "win") if re.match(r"windows\d", s) else s
    return s


def detect(labels: Dict[str, str], annotations: Dict[str, str], preference_name: Optional[str] = None,
           explicit: Optional[str] = None) -> Optional[GuestOS]:
    """The guest OS from --guest-os, common-templates labels/annotations, or the preference name."""
    found = None
    if explicit:
        found = (explicit, "--guest-os")
    if not found:
        for key in OS_LABEL_KEYS:
            v = annotations.get(key) or labels.get(key)
            if v:
                found = (str(v), "label %s" % key)
                break
    if not found:
        for key, v in labels.items():
            if key.startswith(OS_TEMPLATE_LABEL) and str(v).lower() == "true":
                found = (key[len(OS_TEMPLATE_LABEL):], "label %s" % key)
                break
    if not found and preference_name and preference_name != "linux.virtiotransitional":
        found = (preference_name, "preference %s" % preference_name)
    if not found:
        return None
    os_id = normalise(found[0])
    ok, note = virtio1_support(os_id)
    return GuestOS(id=os_id, source=found[1], virtio1=ok, note=note)
