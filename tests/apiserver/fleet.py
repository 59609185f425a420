"""Large, varied fleets of VMs for the fleet tests and bench/fleet, generated cheaply.

Each kind of VM (a "variant": guest OS label, flag, preference, restart pending) is built
once with the factories of :mod:`.objects` under placeholder names; every VM of the fleet is
then that JSON text with the names and UIDs substituted, stored with
:func:`.paging.bulk_put` (no per-object deep copies).  20,000 VMs + 16,000 VMIs and launcher
pods are generated in seconds.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Iterator

from . import objects
from .paging import bulk_put

_NS, _NAME = "tplns0", "tplvm0"


@dataclass
class Variant:
    """One kind of VM in the fleet; `weight` VMs of every sum(weights) are of this kind."""
    weight: int = 1
    vm_kwargs: dict = field(default_factory=dict)
    vmi_kwargs: dict = field(default_factory=dict)
    guest_os_info: dict | None = None


DEFAULT_VARIANTS = (
    Variant(6, {"labels": {"vm.kubevirt.io/os": "rhel9", "app": "web"},
                "template_labels": {"vm.kubevirt.io/os": "rhel9", "app": "web"}}),
    Variant(1, {"labels": {"vm.kubevirt.io/os": "centos6", "app": "legacy"}}),
    Variant(1, {"labels": {"vm.kubevirt.io/os": "rhel9", "app": "db"}, "use_virtio_transitional": True}),
    Variant(1, {"labels": {"app": "db"}, "restart_required": True}),
    Variant(1, {"labels": {"app": "misc"}}),
)


def _template(variant: Variant) -> list[tuple[dict, str]]:
    """[(object, its metadata as JSON text)] for the VM, VMI and launcher pod of a variant."""
    vm = objects.vm(_NAME, _NS, **variant.vm_kwargs)
    vmi = objects.vmi(_NAME, _NS, owner_vm=vm, **variant.vmi_kwargs)
    if variant.guest_os_info:
        vmi["status"]["guestOSInfo"] = dict(variant.guest_os_info)
    pod = objects.launcher_pod(vmi)
    return [(o, json.dumps(o["metadata"])) for o in (vm, vmi, pod)]


def _uids(i: int) -> list[tuple[str, str]]:
    return [(objects.uid_for(kind, _NS, name), str(uuid.UUID(int=(i << 8) | n | (1 << 120))))
            for n, (kind, name) in enumerate((("VirtualMachine", _NAME), ("VirtualMachineInstance", _NAME)))]


def generate(vms: int, running: int, namespaces: int = 20,
             variants: tuple[Variant, ...] = DEFAULT_VARIANTS) -> Iterator[dict]:
    """VMs vm-00000.. spread over ns-000.. namespaces; `running` of them run (with VMI and
    launcher pod), the others are halted VMs.  Only metadata is per object: spec and status
    are shared between the objects of a variant (the store never mutates in place)."""
    templates = [_template(v) for v in variants]
    halted = [_template(Variant(v.weight, {**v.vm_kwargs, "run_strategy": "Halted"}))[:1] for v in variants]
    cycle = [i for i, v in enumerate(variants) for _ in range(v.weight)]
    step = vms / running if running else 0
    run_marks = {int(k * step) for k in range(running)} if running else set()
    for i in range(vms):
        ns, name = "ns-%03d" % (i % namespaces), "vm-%05d" % i
        kind = cycle[i % len(cycle)]
        subst = _uids(i)
        for obj, meta_text in (templates[kind] if i in run_marks else halted[kind]):
            for old, new in subst:
                meta_text = meta_text.replace(old, new)
            meta = json.loads(meta_text.replace(_NAME, name).replace(_NS, ns))
            if obj["kind"] == "Pod":
                meta["uid"] = str(uuid.UUID(int=(i << 8) | 2 | (1 << 120)))
            yield {**obj, "metadata": meta}


def load(server, vms: int, running: int, namespaces: int = 20,
         variants: tuple[Variant, ...] = DEFAULT_VARIANTS) -> int:
    """Store a generated fleet in `server` (an ApiServer); returns the number of objects."""
    pods: list[dict] = []

    def keep_pods(objs):
        for o in objs:
            if o["kind"] == "Pod":
                pods.append(o)
            yield o
    n = bulk_put(server.store, keep_pods(generate(vms, running, namespaces, variants)))
    for pod in pods:  # the simulated virsh of each launcher pod knows its domain, as ApiServer.put does
        server._default_virsh(pod)  # noqa: SLF001 - same package
    return n
