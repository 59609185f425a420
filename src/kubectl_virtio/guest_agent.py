"""Ask a Windows guest's QEMU guest agent which driver is bound to each virtio PCI device.

Opt in only (`explain --guest-agent`): it runs
`virsh qemu-agent-command DOMAIN '{"execute":"guest-get-devices"}'` in the virt-launcher
pod's compute container, and libvirt marks a domain that received a raw agent command as
tainted (`custom-ga-command`).  guest-get-devices exists in qemu-ga 5.2+ and only on
Windows (qga/qapi-schema.json).  The reply is parsed by guests.parse_guest_devices (pure).

The cluster adapter is passed in (any object with exec(ns, pod, container, argv) returning
stdout/stderr/returncode), so this module imports nothing from the cluster layer.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio import guests

COMPUTE = "compute"
# virt-launcher's libvirt for non-root launchers (pkg/virt-launcher createLibvirtConnection)
NONROOT_URI = "qemu+unix:///session?socket=/var/run/libvirt/virtqemud-sock"
COMMAND = '{"execute":"guest-get-devices"}'
AGENT_TIMEOUT = 10  # seconds virsh waits for the agent (virsh qemu-agent-command --timeout)


def argv(domain: str, uri: Optional[str] = None) -> List[str]:
    out = ["virsh"]
    if uri:
        out += ["-c", uri]
    return out + ["qemu-agent-command", "--timeout", str(AGENT_TIMEOUT), domain, COMMAND]


def get_devices(cluster: Any, namespace: str, pod: str, vmi_name: str,
                nonroot: bool = True) -> Tuple[Optional[List[Dict[str, Any]]], Optional[str]]:
    """(virtio devices with their drivers, None) or (None, why not).  Never raises for a guest
    that cannot answer (no agent, a Linux guest, an old qemu-ga): that is a finding."""
    domain = "%s_%s" % (namespace, vmi_name)
    attempts = [argv(domain, NONROOT_URI), argv(domain)] if nonroot else [argv(domain), argv(domain, NONROOT_URI)]
    why = None
    for cmd in attempts:
        res = cluster.exec(namespace, pod, COMPUTE, cmd)
        if res.returncode == 0 and res.stdout.strip():
            try:
                return guests.parse_guest_devices(res.stdout), None
            except ValueError as e:
                return None, str(e)
        text = " ".join((res.stderr.strip() or res.stdout.strip() or "exit status %d" % res.returncode).split())
        if why is None or "failed to connect" in why.lower():
            why = text[:300]
        if "failed to connect" not in text.lower():
            break  # the hypervisor answered: another URI will not change the agent's answer
    return None, "the guest agent did not list devices (%s); guest-get-devices needs qemu-ga 5.2+ on Windows" % why
