"""Pair the devices KubeVirt's rules predict with the devices in the domain XML, and say why.

`explain()` is the one place that produces the contract's JSON model (CONTRACT.md,
"explain -o json"); every output format renders what it returns.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional

from kubectl_virtio import domain as D
from kubectl_virtio import guests, predict as P, rules as R, versions
from kubectl_virtio.record import Record
from kubectl_virtio.rules import NT, T, Rule

STATUSES = ("match", "drift", "unexpected", "predicted", "not-virtio")

GUEST_NEEDS = R.GUEST_NEEDS


class Finding(Record):
    __slots__ = _fields = ("severity", "message", "verdict")

    def __init__(self, severity: str,  # info | warning | error
                 message: str,
                 verdict: bool = False):  # the one-line verdict (renderers print it on its own line)
        self.severity, self.message, self.verdict = severity, message, verdict

    def to_dict(self):
        return {"severity": self.severity, "message": self.message}


class DeviceExplanation(Record):
    __slots__ = _fields = ("kind", "name", "target", "bus", "model", "expected", "status", "rule", "reason",
                           "variant", "address", "parent", "qemu_device", "added_by_libvirt", "virtio", "in_domain")

    def __init__(self, kind: str, name: str, target: Optional[str], bus: Optional[str], model: Optional[str],
                 expected: Optional[str], status: str, rule: Optional[str], reason: str,
                 variant: Optional[str] = None, address: Optional[str] = None, parent: Optional[str] = None,
                 qemu_device: Optional[str] = None, added_by_libvirt: bool = False, virtio: bool = False,
                 in_domain: bool = True):  # False: a spec device the running domain lacks
        self.kind, self.name, self.target, self.bus, self.model = kind, name, target, bus, model
        self.expected, self.status, self.rule, self.reason = expected, status, rule, reason
        self.variant, self.address, self.parent, self.qemu_device = variant, address, parent, qemu_device
        self.added_by_libvirt, self.virtio, self.in_domain = added_by_libvirt, virtio, in_domain

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "target": self.target, "bus": self.bus, "model": self.model,
                "expected": self.expected, "status": self.status, "rule": self.rule, "reason": self.reason,
                "variant": self.variant, "address": self.address, "pciParent": self.parent,
                "qemuDevice": self.qemu_device, "addedByLibvirt": self.added_by_libvirt}


class Explanation(Record):
    __slots__ = _fields = ("namespace", "name", "arch", "machine", "effective", "origin", "live", "restart_required",
                           "devices", "findings", "verdict", "kubevirt_version", "guest", "partial", "domain",
                           "kubevirt_version_source")
    _no_repr = ("domain",)

    def __init__(self, namespace: Optional[str], name: Optional[str], arch: str, machine: Optional[str],
                 effective: bool, origin: str, live: Optional[bool], restart_required: bool,
                 devices: List[DeviceExplanation], findings: List[Finding], verdict: str, kubevirt_version: str,
                 guest: Optional[guests.GuestOS] = None, partial: bool = False, domain: Optional[D.Domain] = None,
                 # Where kubevirt_version was read (CONTRACT: flag | vmi-launcher-image |
                 # launcher-pod-image | kubevirt-cr | newest-known); the live layer sets it from
                 # the resolved VM context.
                 kubevirt_version_source: str = "newest-known"):
        self.namespace, self.name, self.arch, self.machine = namespace, name, arch, machine
        self.effective, self.origin, self.live, self.restart_required = effective, origin, live, restart_required
        self.devices, self.findings, self.verdict = devices, findings, verdict
        self.kubevirt_version, self.guest, self.partial, self.domain = kubevirt_version, guest, partial, domain
        self.kubevirt_version_source = kubevirt_version_source

    def to_dict(self) -> Dict[str, Any]:
        return {
            "kind": "VirtioExplanation",
            "vm": {"namespace": self.namespace, "name": self.name},
            "arch": self.arch,
            "machine": self.machine,
            "useVirtioTransitional": {"effective": self.effective, "origin": self.origin, "live": self.live},
            "restartRequired": self.restart_required,
            "devices": [d.to_dict() for d in self.devices],
            "findings": [f.to_dict() for f in self.findings],
            "verdict": self.verdict,
            "kubevirtVersion": {"version": self.kubevirt_version, "source": self.kubevirt_version_source},
            "guest": self.guest.to_dict() if self.guest else None,
            "partialInput": self.partial,
        }


# --- Classifying a live device without a prediction ----------------------------------------

def classify(dev: D.Device, version) -> Rule:
    """The table row that produces a device seen in the XML (no manifest to go by): the
    rule's own `seen` condition decides (rules.classify), the same object prediction uses."""
    return R.classify(dev, version)


def infer_flag(devices: List[D.Device], arch: str) -> Optional[bool]:
    """The useVirtioTransitional a domain was built with, from its flag-driven models."""
    if arch == "s390x":
        return None
    counts = Counter(d.model for d in devices if d.model in (T, NT) and d.kind != "vsock")
    if not counts:
        return None
    return counts[T] > counts[NT]


def flag_text(value: Optional[bool], origin: str, preference: Optional[str] = None, given: bool = False) -> str:
    """given: offline, the preference was simply not among the -f files (not unreadable)."""
    if value is None:
        return "useVirtioTransitional unknown"
    if origin == "unread-preference":  # shown as origin "unknown" in the JSON model
        return "useVirtioTransitional = %s (assumed: the VM's preference %s%s)" % (
            str(value).lower(), preference + " " if preference else "",
            "was not given with -f" if given else "could not be read")
    if origin == "default":
        return "useVirtioTransitional unset (= false, the default)"
    where = {"vm": "the VM template", "vmi": "the VMI spec", "unknown": "inferred from the live models",
             "preference": "preference %s" % (preference or "")}.get(origin, origin)
    return "useVirtioTransitional = %s (%s)" % (str(value).lower(), where.strip())


# --- The explanation --------------------------------------------------------------------

def explain(vm=None, dom: Optional[D.Domain] = None, *, arch: Optional[str] = None, running_vmi=None,
            version=versions.NEWEST, restart_condition: bool = False, guest_os: Optional[str] = None,
            namespace: Optional[str] = None, name: Optional[str] = None,
            extra_findings: Optional[List[Finding]] = None, vm_running: Optional[bool] = None,
            preference_unread: bool = False, guest_devices: Optional[List[Dict[str, Any]]] = None,
            brief: bool = False) -> Explanation:
    """vm: the spec that applies at the next start (VMSpec of the VM, or the VMI alone);
    dom: the live domain; running_vmi: the VMI the domain was built from (live cluster);
    preference_unread: the VM's preference could not be read, so a flag the template leaves
    unset is a guess (origin "unknown"); guest_devices: the guest agent's virtio devices
    (guests.parse_guest_devices, --guest-agent); brief: each device's status and the flags,
    without the sentences (reasons, findings, verdict) and without the guest, for a caller
    that only reads those (`list --live` judges hundreds of domains: fleet.apply_domain)."""
    findings: List[Finding] = list(extra_findings or [])
    if vm is not None:
        findings.extend(Finding("warning", w) for w in vm.warnings)
    arch = _arch(arch, dom, running_vmi, vm)
    conv_arch = R.effective_arch(arch, version)
    if arch == "s390x" and conv_arch != arch:
        findings.append(Finding("warning", "KubeVirt %s has no s390x converter (s390x arrived in v1.3.0): "
                                           "it used the amd64 rules" % versions.show(version)))
    # Offline (explain -f), spec.select marks a preference the VM names but no file held.
    offline_pref = vm is not None and vm.preference_unread and vm.preference is None
    preference_unread = preference_unread or offline_pref
    pref_name = vm.preference.name if vm is not None and vm.preference else (
        vm.preference_name if vm is not None and preference_unread else None)

    # The flag: what the next start applies (effective), and what the running domain has (live).
    live: Optional[bool] = None
    if running_vmi is not None:
        live = running_vmi.effective_flag()[0]
    elif dom is not None:
        live = infer_flag(dom.devices, conv_arch)
    if conv_arch == "s390x":
        live = None
    if vm is not None:
        effective, origin = vm.effective_flag()
        if preference_unread and origin in ("default", "preference"):
            origin = "unread-preference"
    else:
        effective, origin = (bool(live), "unknown")
    if not versions.has_flag(version):
        findings.append(Finding("info", "KubeVirt %s has no useVirtioTransitional: virtio devices get plain "
                                        "`virtio` and the variant follows the PCI slot" % versions.show(version)))
        if vm is not None and origin != "default":
            findings.append(Finding("warning", "%s sets useVirtioTransitional, which KubeVirt %s does not know: "
                                               "it has no effect there" % (origin, versions.show(version))))
        effective, origin = False, "default"

    pred = P.prediction(vm, conv_arch, version) if vm is not None else None
    expected = pred.devices if pred is not None else []
    if pred is not None:  # VM or bare VMI decides what the VM controller adds (predict.py)
        findings.append(Finding("info", "the manifest is %s" % pred.origin_text))
        findings.extend(Finding("info", n) for n in pred.notes)
    live_devices = list(dom.devices) if dom is not None else []
    out: List[DeviceExplanation] = []
    by_key = {(e.kind, e.name): e for e in expected}
    # What the running VMI gives each device: a device that still follows it is drift (the
    # template changed since the start), not unexpected.
    running = {}
    if running_vmi is not None and running_vmi is not vm and dom is not None:
        running = {(e.kind, e.name): e for e in P.predict(running_vmi, conv_arch, version)}
    used = set()
    run_flag = live if live is not None else effective
    family, assumed = _placement_machine(dom, vm, conv_arch)
    ctx = _Ctx(conv_arch, effective, origin, pref_name, run_flag, live, dom, version, family, assumed,
               vm.preference_hint() if offline_pref else None, brief)

    for dev in live_devices:
        key = dev.key
        exp = by_key.get(key)
        if exp is not None:
            used.add(key)
        out.append(_explain_live(dev, exp, version, ctx, running.get(key), gone=bool(running) and
                                 exp is None and key in running))
    for exp in expected:
        if (exp.kind, exp.name) in used:
            continue
        if dom is not None and dom.partial:
            continue  # a fragment: the device may simply not be in the pasted lines
        out.append(_explain_missing(exp, dom is not None, ctx))

    restart_required = bool(restart_condition)
    if vm is not None and live is not None and live != effective and (dom is not None or running_vmi is not None):
        restart_required = True
    if any(d.status == "drift" for d in out):
        restart_required = True
    if brief:
        return Explanation(namespace=namespace, name=name, arch=arch, machine=_machine(dom, vm), effective=effective,
                           origin="unknown" if origin == "unread-preference" else origin, live=live,
                           restart_required=restart_required, devices=out, findings=findings, verdict="",
                           kubevirt_version=versions.show(version), partial=bool(dom is not None and dom.partial),
                           domain=dom)

    # The guest (guests.py): --guest-os, the agent's status.guestOSInfo, labels, preference.
    vmi_raw = running_vmi.raw if running_vmi is not None else (
        vm.raw if vm is not None and vm.kind == "VirtualMachineInstance" else None)
    # The preference's bare name is a guest hint (guests.py), as list reads it; pref_name is
    # the display text ("VirtualMachineClusterPreference NAME"), never an OS id.
    pref_id = None
    if vm is not None:
        pref_id = (vm.preference_ref or {}).get("name")
    guest = guests.assess(vm.raw if vm is not None else None, vmi_raw, pref_id, guest_os)
    findings.extend(_findings(out, ctx, dom, guest, vm, restart_required, vm_running))
    findings.extend(_guest_findings(out, ctx, guest, vm, namespace, name, guest_devices))
    mismatch = _domain_name_mismatch(vm, dom)
    if mismatch:
        findings.append(Finding("warning", mismatch))
    verdict = _verdict(out, ctx, vm is not None, dom is not None, restart_required)
    if ctx.preference_hint and origin == "unread-preference":
        verdict += " The preference decides an unset useVirtioTransitional: %s." % ctx.preference_hint
    # The verdict leads the findings too, so scripts reading only `findings` see it.
    severity = "info"
    if any(d.status in ("drift", "unexpected") for d in out if d.virtio):
        severity = "warning"
    findings.insert(0, Finding(severity, verdict, verdict=True))
    dom_ns, dom_name = _split_domain_name(dom.name if dom is not None else None)
    return Explanation(namespace=namespace or (vm.namespace if vm else None) or dom_ns,
                       name=name or (vm.name if vm else dom_name),
                       arch=arch, machine=_machine(dom, vm), effective=effective,
                       origin="unknown" if origin == "unread-preference" else origin, live=live,
                       restart_required=restart_required, devices=out, findings=findings, verdict=verdict,
                       kubevirt_version=versions.show(version), guest=guest,
                       partial=bool(dom is not None and dom.partial), domain=dom)


def _split_domain_name(name: Optional[str]):
    """KubeVirt names domains <namespace>_<vmi> (api.VMINamespaceKeyFunc); '_' is not valid
    in a namespace, so the first one splits."""
    if name and "_" in name:
        ns, vm = name.split("_", 1)
        return ns, vm
    return None, name


def _domain_name_mismatch(vm, dom) -> Optional[str]:
    """KubeVirt names the domain <namespace>_<vmi name>: a dumpxml of another VM is worth a
    warning before anything is compared.  VMs of a pool and VMIs of a replica set get
    generated names that start with the owner's name."""
    if vm is None or dom is None or not dom.name or dom.partial:
        return None
    ns, name = _split_domain_name(dom.name)
    generated = vm.kind in ("VirtualMachinePool", "VirtualMachineInstanceReplicaSet")
    same_name = name == vm.name or (generated and bool(name) and name.startswith(vm.name))
    same_ns = not vm.namespace or ns is None or ns == vm.namespace
    if same_name and same_ns:
        return None
    want = "%s_%s" % (vm.namespace, vm.name) if vm.namespace else "<namespace>_%s" % vm.name
    return ("the domain XML is of %s, but the manifest is %s %s%s (KubeVirt would name its domain %s): are "
            "they of the same VM? The comparison below assumes they are"
            % (D.clip(dom.name, 80), vm.kind, (vm.namespace + "/") if vm.namespace else "", vm.name, want))


# KubeVirt's default machine type when the spec names none (pkg/virt-config/virt-config.go,
# DefaultAMD64MachineType, DefaultAARCH64MachineType, DefaultS390XMachineType).
DEFAULT_MACHINE = {"amd64": "q35", "arm64": "virt", "s390x": "s390-ccw-virtio"}


def _placement_machine(dom, vm, arch):
    """(machine family, assumed): the machine every sentence about PCI placement follows."""
    family = _machine(dom, vm)
    if family:
        return family, False
    return DEFAULT_MACHINE.get(arch, "q35"), True


class _Ctx(Record):
    __slots__ = _fields = ("arch", "effective", "origin", "preference", "run_flag", "live", "dom", "version",
                           "machine", "machine_assumed", "preference_hint", "brief")

    def __init__(self, arch: str, effective: bool, origin: str, preference: Optional[str],
                 run_flag: bool,  # the flag the running domain was built with (or effective when unknown)
                 live: Optional[bool], dom: Optional[D.Domain],
                 version: versions.Version = versions.NEWEST,
                 # machine family for placement sentences: q35, virt, i440fx, s390-ccw-virtio
                 machine: Optional[str] = None,
                 # no domain and no spec.domain.machine: KubeVirt's default for the arch
                 machine_assumed: bool = False,
                 preference_hint: Optional[str] = None,  # offline: how to pass the preference the VM names
                 brief: bool = False):  # statuses only, no sentences (explain's `brief`)
        self.arch, self.effective, self.origin, self.preference = arch, effective, origin, preference
        self.run_flag, self.live, self.dom, self.version = run_flag, live, dom, version
        self.machine, self.machine_assumed, self.preference_hint = machine, machine_assumed, preference_hint
        self.brief = brief

    def flag(self, value: Optional[bool] = None, origin: Optional[str] = None) -> str:
        return flag_text(self.effective if value is None else value, origin or self.origin, self.preference,
                         given=self.preference_hint is not None)


def _arch(arch, dom, running_vmi, vm) -> str:
    from kubectl_virtio.spec import arch_from_go

    if arch:
        return arch
    if dom is not None and dom.arch:
        return R.ARCH_FROM_QEMU.get(dom.arch, dom.arch)
    for s in (running_vmi, vm):
        if s is not None and s.architecture:
            return arch_from_go(s.architecture) or "amd64"
    return "amd64"


def _machine(dom, vm) -> Optional[str]:
    if dom is not None and dom.machine:
        return D.machine_family(dom.machine)
    if vm is not None:
        m = (vm.vmi_spec.get("domain") or {}).get("machine") or {}
        if isinstance(m, dict) and m.get("type"):
            return D.machine_family(str(m["type"]))
    return None


def _explain_live(dev: D.Device, exp: Optional[P.Expected], version, ctx: _Ctx,
                  run_exp: Optional[P.Expected] = None, gone: bool = False) -> DeviceExplanation:
    """gone: the running VMI has this device but the spec of the next start does not."""
    rule = exp.rule if exp is not None else (run_exp.rule if gone else classify(dev, version))
    if gone:
        expected_model, running_model = None, run_exp.model(ctx.run_flag, ctx.arch)
    elif exp is None and rule.id == "interface.emulated":
        expected_model, running_model = dev.model, dev.model
    elif exp is not None:
        expected_model = exp.model(ctx.effective, ctx.arch)
        running_model = (run_exp or exp).model(ctx.run_flag, ctx.arch)
    elif rule.added_by == "libvirt" or rule.id in ("channel.guest-agent", "serial.console", "graphics.vnc"):
        expected_model = running_model = dev.model
    else:
        if rule.model(False, ctx.arch, version) == P.LITERAL:
            expected_model = running_model = dev.model
        else:
            expected_model = rule.model(ctx.effective, ctx.arch, version)
            running_model = rule.model(ctx.run_flag, ctx.arch, version)
    if dev.model == expected_model and not gone:
        status = "match" if (dev.virtio or rule.virtio) else "not-virtio"
    elif dev.model == running_model:
        status = "drift"
    else:
        status = "unexpected"
    d = DeviceExplanation(kind=dev.kind, name=dev.name, target=dev.target, bus=dev.bus, model=dev.model,
                          expected=expected_model, status=status, rule=rule.id, reason="",
                          variant=dev.variant, address=str(dev.address) if dev.address else None,
                          parent=dev.parent_model, added_by_libvirt=dev.added_by_libvirt or rule.added_by == "libvirt",
                          virtio=dev.virtio)
    d.qemu_device = R.qemu_device(rule.qemu, dev.model, dev.address.type if dev.address else None) if dev.virtio else None
    d.reason = "" if ctx.brief else _reason(d, dev, exp, rule, ctx)
    return d


def _explain_missing(exp: P.Expected, have_domain: bool, ctx: _Ctx) -> DeviceExplanation:
    model = exp.model(ctx.effective, ctx.arch)
    if ctx.brief:
        status, reason = ("drift" if have_domain else "predicted"), ""
    elif have_domain:
        status = "drift"
        reason = ("%s -> rule %s gives %s, but the running domain has no %s %s: %s"
                  % (exp.why, exp.rule.id, model or "no model", exp.kind, exp.name, MISSING_WHY))
    else:
        status = "predicted"
        reason = "%s -> rule %s (%s): %s -> %s" % (exp.why, exp.rule.id, exp.rule.source,
                                                  _flag_part(exp.rule, ctx), model or "no model attribute")
        meaning = _model_on_machine(model, ctx, exp.rule.modern_only, exp.kind == "vsock") \
            if exp.rule.virtio else ""
        if meaning:
            reason += " (%s)" % meaning
    return DeviceExplanation(kind=exp.kind, name=exp.name, target=exp.target, bus=exp.bus, model=None,
                             expected=model, status=status, rule=exp.rule.id, reason=reason,
                             virtio=exp.rule.virtio, in_domain=not have_domain)


MISSING_WHY = ("it was added to the spec after the VM started (a restart applies it), or it is a hotplug "
               "that is not attached yet")


def _machine_label(ctx: _Ctx) -> str:
    label = {"q35": "q35", "virt": "arm64 virt", "i440fx": "i440fx (pc)",
             "s390-ccw-virtio": "s390x (ccw)"}.get(ctx.machine or "", ctx.machine or "this machine")
    return label + (" (KubeVirt's default machine type)" if ctx.machine_assumed else "")


def _model_on_machine(model: Optional[str], ctx: _Ctx, modern_only: bool = False, vsock: bool = False) -> str:
    """What a model asks for and where libvirt places it on the machine ctx follows:
    q35 / arm64 virt (PCIe: a root port each, transitional behind a pcie-to-pci-bridge),
    i440fx (conventional slots on pci-root), s390x (ccw, no PCI).  QEMU virtio_pci_realize,
    libvirt qemuDomainDeviceCalculatePCIConnectFlags (see rules.placement)."""
    if ctx.machine not in R.MACHINES["amd64"] + R.MACHINES["arm64"] + R.MACHINES["s390x"]:
        return R.model_meaning(model, modern_only)
    slot, variant = R.placement(model, ctx.machine, modern_only, vsock)
    on = _machine_label(ctx)
    if ctx.machine == "s390-ccw-virtio":
        if model in (T, NT):
            return "%s is a PCI model: %s QEMU refuses it (KubeVirt writes plain virtio there)" % (
                model, "on " + on)
        return "%s on the channel subsystem (ccw, no PCI) on %s: %s" % (model or "virtio", on, GUEST_NEEDS["ccw"])
    if modern_only:
        what = "this device exists only as virtio 1.0 (modern-only), whatever the slot"
    elif model == T:
        what = "legacy + modern (virtio 0.9 and 1.0)"
    elif model == NT:
        what = "virtio 1.0 only"
    else:
        what = "plain %s: the slot decides (%s)" % (model or "virtio", variant)
    if slot.startswith("its own"):
        where = "gives it " + slot
    elif slot.startswith("behind"):
        where = "puts it " + slot
    else:
        where = "puts it in a " + slot
    text = "%s: %s; on %s libvirt %s" % (model or "no model", what, on, where)
    if variant == "does-not-start":
        text += "; " + GUEST_NEEDS[variant]
    return text


def _topology(ctx: _Ctx) -> str:
    """The PCI controllers libvirt adds, per machine (libvirt qemuDomainAssignPCIAddresses)."""
    if ctx.machine in ("q35", "virt"):
        return ("libvirt builds the PCI topology of %s: the PCIe root complex, a root port per PCIe device, a "
                "pcie-to-pci-bridge for transitional ones" % _machine_label(ctx))
    if ctx.machine == "i440fx":
        return "libvirt builds the PCI topology of %s: one conventional bus, pci-root, with a slot per device" % (
            _machine_label(ctx))
    if ctx.machine == "s390-ccw-virtio":
        return "libvirt always adds a pci-root on %s; the virtio devices are on the channel subsystem (ccw)" % (
            _machine_label(ctx))
    return "libvirt builds the PCI topology of the machine"


def _flag_part(rule: Rule, ctx: _Ctx) -> str:
    if not rule.flag_driven:
        return "fixed whatever useVirtioTransitional says"
    return ctx.flag()


def _reason(d: DeviceExplanation, dev: D.Device, exp: Optional[P.Expected], rule: Rule, ctx: _Ctx) -> str:
    parts: List[str] = []
    if exp is not None:
        parts.append(exp.why)
    elif rule.added_by == "libvirt":
        return "added by libvirt, not by KubeVirt: " + (_topology(ctx) if rule.id == "libvirt.pci" else rule.reason)
    parts.append("rule %s (%s): %s" % (rule.id, rule.source, rule.reason))
    if rule.flag_driven:
        parts.append(ctx.flag() + " gives " + str(d.expected))
    if d.status == "drift" and d.expected is None and exp is None:
        parts.append("the running VMI has this device but the spec no longer does: it goes away at the next restart")
    elif d.status == "drift":
        parts.append("the running VMI gives %s (useVirtioTransitional = %s when it started): %s until the next "
                     "restart" % (d.model, str(ctx.run_flag).lower(), d.model))
    elif d.status == "unexpected":
        parts.append("neither the spec nor the running VMI gives %s: something else wrote it (a sidecar hook, "
                     "a hand edit, another KubeVirt version)" % (d.model or "no model"))
    if d.virtio:
        where = ""
        if dev.address is not None and dev.address.type == "pci":
            where = " in slot %s on %s" % (dev.address, dev.parent_model or "bus %d" % (dev.address.bus or 0))
        elif dev.address is not None and dev.address.type == "ccw":
            where = " on the ccw bus"
        modern_only = rule.modern_only or D.always_modern(dev)
        if dev.model is None:
            lib = "no model attribute: libvirt's default plain virtio"
        elif where:  # the slot is known: say what the model is, the slot follows
            lib = {T: "virtio-transitional: legacy + modern (virtio 0.9 and 1.0)",
                   NT: "virtio-non-transitional: virtio 1.0 only",
                   "virtio": "plain virtio: the slot decides", "virtio-scsi": "plain virtio-scsi: the slot decides",
                   }.get(dev.model) or R.model_meaning(dev.model, modern_only) or dev.model
            if modern_only:
                lib = "%s: this device exists only as virtio 1.0 (modern-only), whatever the slot" % dev.model
        else:
            lib = _model_on_machine(dev.model, ctx, modern_only, dev.kind == "vsock") or dev.model
        parts.append("libvirt: " + lib + where)
        if d.qemu_device:
            parts.append("QEMU " + d.qemu_device)
        if dev.variant:
            parts.append(GUEST_NEEDS.get(dev.variant, dev.variant))
    return " -> ".join(parts)


# --- Findings and the verdict -----------------------------------------------------------

def _findings(out, ctx: _Ctx, dom, guest, vm, restart_required, vm_running) -> List[Finding]:
    f: List[Finding] = []
    if ctx.arch != "s390x":
        other = not ctx.effective
        would = [d for d in out if d.rule and R.BY_ID[d.rule].flag_driven and d.status != "not-virtio"]
        if would:
            target_model = T if other else NT
            text = ("With useVirtioTransitional: %s, %d device(s) would get %s (%s)"
                    % (str(other).lower(), len(would), target_model, ", ".join("%s %s" % (d.kind, d.name) for d in would)))
            text += _move_sentence(other, ctx)
            fixed = [d for d in out if d.rule in ("vsock.virtio", "input.virtio", "filesystem.virtiofs")]
            if fixed:
                text += ". Unchanged: " + ", ".join("%s %s" % (d.kind, d.name) for d in fixed) + " (always virtio 1.0)"
            f.append(Finding("info", text))
    for d in out:
        if d.status == "unexpected" and not d.virtio and d.rule not in _FLAG_DRIVEN:
            f.append(Finding("warning", "%s %s is %s where KubeVirt's rules give %s: not a virtio device, so "
                                        "useVirtioTransitional is not involved (cluster settings such as feature "
                                        "gates, a hook or another KubeVirt version)" % (
                                            d.kind, d.name, d.model or "no model", d.expected or "no model")))
        if d.virtio and d.model is None and d.in_domain and d.status != "predicted" and d.kind != "channel":
            f.append(Finding("info", "%s %s has no model: libvirt's default plain virtio, effectively %s%s"
                             % (d.kind, d.name, d.variant or "decided by its slot",
                                " (slot on %s)" % d.parent if d.parent else "")))
        if d.kind == "vsock" and d.model == T:
            f.append(Finding("error", "vsock %s is virtio-transitional: QEMU >= 5.1 has no vhost-vsock-pci-transitional "
                                      "and refuses to start" % d.name))
        if d.variant == "invalid-on-ccw":
            f.append(Finding("error", "%s %s is %s on s390x (ccw): QEMU refuses it; KubeVirt writes plain virtio there"
                             % (d.kind, d.name, d.model)))
    if dom is not None:
        added = Counter()
        for d in out:
            if d.added_by_libvirt:
                added[_added_label(d, dom)] += 1
        if added:
            parts = ["%d x %s" % (n, k) if n > 1 else k for k, n in added.items()]
            f.append(Finding("info", "added by libvirt, not by KubeVirt: " + ", ".join(parts)
                             + " (see --pci for the PCI tree)"))
        missing = [d for d in out if not d.in_domain]
        if missing:
            f.append(Finding("warning", "in the spec but not in the running domain: %s: %s" % (
                _names(missing), MISSING_WHY)))
        if dom.partial:
            f.append(Finding("warning", "the input is partial (a fragment, not a whole domain XML): it was read leniently, "
                                        "line by line, and %d device(s) were found; only those are explained, and "
                                        "the machine type and PCI slots may be missing" % len(dom.devices)))
    if restart_required and vm_running is not False and (dom is not None) and ctx.origin == "vmi":
        # docs/kubevirt.md §5: a VMI's spec is immutable and virtctl restart needs a VM
        f.append(Finding("warning", "the domain does not have what this VMI spec asks for, and a VMI cannot be "
                                    "restarted with another spec: delete and recreate the VMI (or run it from a VM)"))
    elif restart_required and vm_running is not False and (dom is not None):
        f.append(Finding("warning", "restart pending: the running domain does not have what the spec asks for; "
                                    "a guest reboot or a live migration does not apply it, a VM restart does "
                                    "(virtctl restart)"))
    return f


def _guest_findings(out, ctx: _Ctx, guest, vm, namespace, name, guest_devices) -> List[Finding]:
    """guests.guest_findings on plain dicts: the guest's verdict against the devices."""
    disks = ((vm.vmi_spec.get("domain") or {}).get("devices") or {}).get("disks") or [] if vm is not None else []
    boot = next((d.get("name") for d in disks if isinstance(d, dict) and d.get("bootOrder") == 1), None)
    if boot is None and disks and isinstance(disks[0], dict):
        boot = disks[0].get("name")
    devs = [{"kind": d.kind, "name": d.name, "model": d.model, "expected": d.expected, "variant": d.variant,
             "virtio": d.virtio, "bus": d.bus, "boot": d.kind == "disk" and d.name == boot} for d in out]
    found, _ = guests.guest_findings(guest, devs, name=name or (vm.name if vm is not None else None),
                                     namespace=namespace or (vm.namespace if vm is not None else None),
                                     origin=ctx.origin, arch=ctx.arch, agent_devices=guest_devices)
    return [Finding(sev, msg) for sev, msg in found]


def _names(devs, limit: int = 6) -> str:
    text = ", ".join("%s %s" % (d.kind, d.name) for d in devs[:limit])
    return text + (" and %d more" % (len(devs) - limit) if len(devs) > limit else "")


def _move_sentence(to_transitional: bool, ctx: _Ctx) -> str:
    """Where the flag-driven devices go when the flag changes, on the machine ctx follows
    (libvirt qemuDomainDeviceCalculatePCIConnectFlags; QEMU virtio_pci_realize)."""
    on = _machine_label(ctx)
    if ctx.machine in ("q35", "virt"):
        if to_transitional:
            return "; on %s libvirt moves them behind a pcie-to-pci-bridge (conventional PCI, I/O ports)" % on
        return "; on %s each gets its own PCIe root port and needs a virtio 1.0 guest driver" % on
    if ctx.machine == "i440fx":
        if to_transitional:
            return ("; on %s they stay in their conventional slots on pci-root: only the device changes (it adds "
                    "the legacy virtio 0.9 interface)" % on)
        return ("; on %s they stay in their conventional slots on pci-root: only the device changes, to virtio 1.0 "
                "only, which needs a virtio 1.0 guest driver" % on)
    return ""


def _added_label(d: DeviceExplanation, dom) -> str:
    if d.kind == "controller" and dom is not None:
        for dev in dom.devices:
            if dev.key == (d.kind, d.name):
                return dev.model or dev.type or "controller"
    if d.kind == "input":
        return "ps2 " + d.name.rstrip("0123456789")
    return d.kind


def _verdict(out, ctx: _Ctx, have_vm: bool, have_dom: bool, restart_required: bool) -> str:
    flagged = [d for d in out if d.rule and R.BY_ID[d.rule].flag_driven and d.status != "not-virtio"]
    drift = [d for d in out if d.status == "drift"]
    # Only a virtio device with a surprising model points at a hook; an emulated device that
    # differs (video, USB controller) comes from cluster settings and gets its own finding.
    unexpected = [d for d in out if d.status == "unexpected" and (d.virtio or d.rule in _FLAG_DRIVEN)]
    models = Counter(d.model for d in flagged if d.model)
    if not have_dom:
        exp_models = Counter(d.expected for d in flagged if d.expected)
        desc = ", ".join("%s on %d device(s)" % (m, n) for m, n in exp_models.items()) or "no virtio model"
        return "Predicted: %s -> %s. No live domain XML to compare." % (ctx.flag(), desc)
    desc = ", ".join("%s on %d device(s)" % (m, n) for m, n in models.items()) or "no flag-driven virtio device"
    if unexpected and all(d.model in ("virtio", "virtio-scsi", None) for d in unexpected) \
            and versions.has_flag(ctx.version) and ctx.arch != "s390x":
        return ("%d device(s) have plain virtio (%s), which KubeVirt writes only in releases without "
                "useVirtioTransitional (before v0.36.1, v0.37.0-v0.37.1) or for a few devices before v0.38: was "
                "this domain made by an older KubeVirt? Try --kubevirt-version; a sidecar hook can also write it."
                % (len(unexpected), ", ".join("%s %s" % (d.kind, d.name) for d in unexpected)))
    if unexpected:
        return ("%d device(s) have models KubeVirt's rules do not give (%s): something other than KubeVirt's "
                "converter wrote them (a sidecar hook or a hand edit); the rest follow %s."
                % (len(unexpected), ", ".join("%s %s=%s" % (d.kind, d.name, d.model) for d in unexpected),
                   ctx.flag(ctx.run_flag, "unknown" if not have_vm or ctx.run_flag != ctx.effective else None)))
    flag_changed = ctx.arch != "s390x" and versions.has_flag(ctx.version) and ctx.run_flag != ctx.effective
    if drift and flag_changed:
        return ("Restart pending: %s asks for %s, but the running domain was built with useVirtioTransitional = %s "
                "(%d device(s) change at the next start)."
                % (ctx.flag(), T if ctx.effective else NT, str(ctx.run_flag).lower(), len(drift)))
    if drift:
        # The flag is the same for the running domain and the next start: say what else changed.
        missing = [d for d in drift if not d.in_domain]
        gone = [d for d in drift if d.in_domain and d.expected is None]
        changed = [d for d in drift if d.in_domain and d.expected is not None]
        parts = []
        if missing:
            parts.append("%s %s not in the running domain (added to the spec after the VM started, or a hotplug "
                         "not attached yet)" % (_names(missing), "is" if len(missing) == 1 else "are"))
        if gone:
            parts.append("%s %s no longer in the spec" % (_names(gone), "is" if len(gone) == 1 else "are"))
        if changed:
            parts.append("%s still %s the spec the VM started with (%s)" % (
                _names(changed), "follows" if len(changed) == 1 else "follow",
                ", ".join("%s %s -> %s" % (d.name, d.model or "no model", d.expected) for d in changed[:6])))
        return ("Restart pending: the spec changed since the VM started: %s. %s is the same for the running "
                "domain, so the virtio models of the other devices stay as they are." % ("; ".join(parts), ctx.flag()))
    meaning = _meaning(models, ctx)
    if ctx.arch == "s390x":
        return "These models are what KubeVirt writes on s390x (always plain virtio; virtio-scsi for SCSI), " \
               "whatever useVirtioTransitional says: %s. libvirt did not invent them." % desc
    if not have_vm:
        return ("These models are what KubeVirt writes when useVirtioTransitional is %s: %s. libvirt keeps "
                "KubeVirt's models verbatim; it did not invent them.%s"
                % ("true" if ctx.live else "unset or false", desc, meaning))
    flag = ctx.flag().replace("useVirtioTransitional ", "useVirtioTransitional is ")
    return "These models are what KubeVirt writes when %s: %s. libvirt keeps KubeVirt's models verbatim; " \
           "it did not invent them.%s" % (flag.replace("is = ", "is "), desc, meaning)


_FLAG_DRIVEN = {r.id for r in R.RULES if r.flag_driven}


def _meaning(models: Counter, ctx: _Ctx) -> str:
    if not models:
        return ""
    top = models.most_common(1)[0][0]
    on = _machine_label(ctx)
    if ctx.machine in ("q35", "virt"):
        where = {NT: ": on %s libvirt gives each device its own PCIe root port" % on,
                 T: ": on %s libvirt puts the devices behind a pcie-to-pci-bridge in conventional PCI slots" % on}
    elif ctx.machine == "i440fx":
        where = {NT: ", even in the conventional PCI slots of %s (pci-root)" % on,
                 T: ": on %s the devices sit in conventional slots on pci-root, as every device there" % on}
    else:
        where = {}
    if top == NT:
        return (" virtio-non-transitional means virtio 1.0 only%s; the guest needs virtio 1.0 drivers "
                "(CentOS/RHEL 6 have none)." % where.get(NT, ""))
    if top == T:
        return (" virtio-transitional means legacy + modern (virtio 0.9 and 1.0)%s; old guests such as "
                "CentOS 6 can drive it." % where.get(T, ""))
    return ""
