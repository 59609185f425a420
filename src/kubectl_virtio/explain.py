"""Pair the devices KubeVirt's rules predict with the devices in the domain XML, and say why.

`explain()` is the one place that produces the contract's JSON model (CONTRACT.md,
"explain -o json"); every output format renders what it returns.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from kubectl_virtio import domain as D
from kubectl_virtio import guests, predict as P, rules as R, versions
from kubectl_virtio.rules import NT, T, Rule

STATUSES = ("match", "drift", "unexpected", "predicted", "not-virtio")

GUEST_NEEDS = R.GUEST_NEEDS


@dataclass
class Finding:
    severity: str  # info | warning | error
    message: str
    verdict: bool = False  # the one-line verdict (renderers print it on its own line)

    def to_dict(self):
        return {"severity": self.severity, "message": self.message}


@dataclass
class DeviceExplanation:
    kind: str
    name: str
    target: Optional[str]
    bus: Optional[str]
    model: Optional[str]
    expected: Optional[str]
    status: str
    rule: Optional[str]
    reason: str
    variant: Optional[str] = None
    address: Optional[str] = None
    parent: Optional[str] = None
    qemu_device: Optional[str] = None
    added_by_libvirt: bool = False
    virtio: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "target": self.target, "bus": self.bus, "model": self.model,
                "expected": self.expected, "status": self.status, "rule": self.rule, "reason": self.reason,
                "variant": self.variant, "address": self.address, "pciParent": self.parent,
                "qemuDevice": self.qemu_device, "addedByLibvirt": self.added_by_libvirt}


@dataclass
class Explanation:
    namespace: Optional[str]
    name: Optional[str]
    arch: str
    machine: Optional[str]
    effective: bool
    origin: str
    live: Optional[bool]
    restart_required: bool
    devices: List[DeviceExplanation]
    findings: List[Finding]
    verdict: str
    kubevirt_version: str
    guest: Optional[guests.GuestOS] = None
    partial: bool = False
    domain: Optional[D.Domain] = field(default=None, repr=False)

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
            "kubevirtVersion": self.kubevirt_version,
            "guestOS": self.guest.to_dict() if self.guest else None,
            "partialInput": self.partial,
        }


# --- Classifying a live device without a prediction ----------------------------------------

def classify(dev: D.Device, version) -> Rule:
    """The table row that produces a device seen in the XML (no manifest to go by)."""
    k, m = dev.kind, dev.model
    if k == "disk":
        if dev.device == "lun":
            return R.rule("disk.lun")
        if dev.device == "cdrom":
            return R.rule("disk.cdrom")
        return R.pick("disk.virtio", version) if dev.bus == "virtio" else R.rule("disk.non-virtio")
    if k == "interface":
        if m and not m.startswith("virtio"):
            return R.rule("interface.emulated")
        return R.pick("interface.virtio", version)
    if k == "controller":
        if dev.type == "scsi":
            return R.pick("controller.scsi", version)
        if dev.type == "virtio-serial":
            if not m and versions.has_flag(version):
                return R.rule("controller.virtio-serial.libvirt")
            return R.pick("controller.virtio-serial", version)
        if dev.type == "usb":
            return R.rule("controller.usb.xhci" if m == "qemu-xhci" else "controller.usb")
        if dev.type == "sata":
            return R.rule("libvirt.sata")
        return R.rule("libvirt.pci")
    if k == "memballoon":
        return R.rule("memballoon.none") if m == "none" else R.pick("memballoon.virtio", version)
    if k == "rng":
        return R.pick("rng.virtio", version)
    if k == "input":
        if dev.bus == "virtio":
            return R.rule("input.virtio") if dev.alias else R.rule("input.s390x-keyboard")
        if dev.bus == "ps2":
            return R.rule("libvirt.ps2")
        return R.rule("input.usb")
    if k == "video":
        if m == "bochs":
            return R.rule("video.efi")
        return R.rule("video.type") if m not in ("vga", "virtio") else R.rule("video.default")
    if k == "vsock":
        return R.pick("vsock.virtio", version)
    if k == "filesystem":
        return R.rule("filesystem.virtiofs")
    if k == "channel":
        return R.rule("channel.guest-agent")
    if k in ("serial", "console"):
        return R.rule("serial.console")
    if k == "graphics":
        return R.rule("graphics.vnc")
    if k == "memory":
        return R.rule("memory.virtio-mem")
    if k in ("watchdog", "sound", "tpm", "panic", "hostdev"):
        return R.rule(k if k != "hostdev" or not (dev.alias or "").startswith("ua-sriov-") else "interface.sriov")
    return R.rule("libvirt.other")


def infer_flag(devices: List[D.Device], arch: str) -> Optional[bool]:
    """The useVirtioTransitional a domain was built with, from its flag-driven models."""
    if arch == "s390x":
        return None
    counts = Counter(d.model for d in devices if d.model in (T, NT) and d.kind != "vsock")
    if not counts:
        return None
    return counts[T] > counts[NT]


def flag_text(value: Optional[bool], origin: str, preference: Optional[str] = None) -> str:
    if value is None:
        return "useVirtioTransitional unknown"
    if origin == "unread-preference":  # shown as origin "unknown" in the JSON model
        return "useVirtioTransitional = %s (assumed: the VM's preference %scould not be read)" % (
            str(value).lower(), preference + " " if preference else "")
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
            preference_unread: bool = False) -> Explanation:
    """vm: the spec that applies at the next start (VMSpec of the VM, or the VMI alone);
    dom: the live domain; running_vmi: the VMI the domain was built from (live cluster);
    preference_unread: the VM's preference could not be read, so a flag the template leaves
    unset is a guess (origin "unknown")."""
    findings: List[Finding] = list(extra_findings or [])
    if vm is not None:
        findings.extend(Finding("warning", w) for w in vm.warnings)
    arch = _arch(arch, dom, running_vmi, vm)
    conv_arch = R.effective_arch(arch, version)
    if arch == "s390x" and conv_arch != arch:
        findings.append(Finding("warning", "KubeVirt %s has no s390x converter (s390x arrived in v1.3.0): "
                                           "it used the amd64 rules" % versions.show(version)))
    pref_name = vm.preference.name if vm is not None and vm.preference else None

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

    expected = P.predict(vm, conv_arch, version) if vm is not None else []
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
    ctx = _Ctx(conv_arch, effective, origin, pref_name, run_flag, live, dom, version)

    for dev in live_devices:
        exp = by_key.get(dev.key)
        if exp is not None:
            used.add(dev.key)
        out.append(_explain_live(dev, exp, version, ctx, running.get(dev.key), gone=bool(running) and
                                 exp is None and dev.key in running))
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

    guest = guests.detect(vm.labels, vm.annotations, pref_name, guest_os) if vm is not None else (
        guests.detect({}, {}, None, guest_os) if guest_os else None)
    findings.extend(_findings(out, ctx, dom, guest, vm, restart_required, vm_running))
    verdict = _verdict(out, ctx, vm is not None, dom is not None, restart_required)
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


@dataclass
class _Ctx:
    arch: str
    effective: bool
    origin: str
    preference: Optional[str]
    run_flag: bool  # the flag the running domain was built with (or effective when unknown)
    live: Optional[bool]
    dom: Optional[D.Domain]
    version: versions.Version = versions.NEWEST


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
        lit = rule.models.get(ctx.arch, rule.models["amd64"])[0]
        if lit == P.LITERAL:
            expected_model = running_model = dev.model
        else:
            expected_model, running_model = rule.model(ctx.effective, ctx.arch), rule.model(ctx.run_flag, ctx.arch)
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
    d.reason = _reason(d, dev, exp, rule, ctx)
    return d


def _explain_missing(exp: P.Expected, have_domain: bool, ctx: _Ctx) -> DeviceExplanation:
    model = exp.model(ctx.effective, ctx.arch)
    if have_domain:
        status = "drift"
        reason = "%s -> rule %s gives %s, but the running domain has no such device: the spec changed after " \
                 "the VM started (a restart applies it) or a hook removed it" % (exp.why, exp.rule.id, model or "no model")
    else:
        status = "predicted"
        reason = "%s -> rule %s (%s): %s -> %s" % (exp.why, exp.rule.id, exp.rule.source,
                                                  _flag_part(exp.rule, ctx), model or "no model attribute")
        meaning = R.model_meaning(model, exp.rule.modern_only)
        if meaning:
            reason += " (%s)" % meaning
    return DeviceExplanation(kind=exp.kind, name=exp.name, target=exp.target, bus=exp.bus, model=None,
                             expected=model, status=status, rule=exp.rule.id, reason=reason,
                             virtio=exp.rule.virtio)


def _flag_part(rule: Rule, ctx: _Ctx) -> str:
    if not rule.flag_driven:
        return "fixed whatever useVirtioTransitional says"
    return flag_text(ctx.effective, ctx.origin, ctx.preference)


def _reason(d: DeviceExplanation, dev: D.Device, exp: Optional[P.Expected], rule: Rule, ctx: _Ctx) -> str:
    parts: List[str] = []
    if exp is not None:
        parts.append(exp.why)
    elif rule.added_by == "libvirt":
        return "added by libvirt, not by KubeVirt: " + rule.reason
    parts.append("rule %s (%s): %s" % (rule.id, rule.source, rule.reason))
    if rule.flag_driven:
        parts.append(flag_text(ctx.effective, ctx.origin, ctx.preference) + " gives " + str(d.expected))
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
        if dev.model is None:
            lib = "no model attribute: libvirt's default plain virtio"
        else:
            lib = R.model_meaning(dev.model, rule.modern_only or D.always_modern(dev)) or dev.model
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
            if other:
                text += "; on q35 libvirt moves them behind a pcie-to-pci-bridge (conventional PCI, I/O ports)"
            else:
                text += "; each gets its own PCIe root port and needs a virtio 1.0 guest driver"
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
        if d.virtio and d.model is None and d.status != "predicted" and d.kind != "channel":
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
        if dom.partial:
            f.append(Finding("warning", "the input was partial (not a whole domain XML): %d device line(s) read; "
                                        "only those devices are explained" % len(dom.devices)))
    if guest is not None:
        modern = [d for d in out if d.virtio and (d.variant == "modern-only" or (d.variant is None and d.expected == NT))]
        if guest.virtio1 is False and modern:
            f.append(Finding("error", "guest %s (%s) has no virtio 1.0 drivers: %s cannot be driven by it; set "
                                      "useVirtioTransitional: true (kubectl virtio set-transitional %s)"
                             % (guest.id, guest.source, ", ".join("%s %s" % (d.kind, d.name) for d in modern[:6])
                                + (" and %d more" % (len(modern) - 6) if len(modern) > 6 else ""),
                                vm.name if vm is not None else "VM")))
        elif guest.virtio1 is None:
            f.append(Finding("info", "guest %s (%s): %s" % (guest.id, guest.source, guest.note)))
        else:
            f.append(Finding("info", "guest %s (%s): %s" % (guest.id, guest.source, guest.note)))
    if restart_required and vm_running is not False and (dom is not None) and ctx.origin == "vmi":
        # docs/kubevirt.md §5: a VMI's spec is immutable and virtctl restart needs a VM
        f.append(Finding("warning", "the domain does not have what this VMI spec asks for, and a VMI cannot be "
                                    "restarted with another spec: delete and recreate the VMI (or run it from a VM)"))
    elif restart_required and vm_running is not False and (dom is not None):
        f.append(Finding("warning", "restart pending: the running domain does not have what the spec asks for; "
                                    "a guest reboot or a live migration does not apply it, a VM restart does "
                                    "(virtctl restart)"))
    return f


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
        return "Predicted: %s -> %s. No live domain XML to compare." % (
            flag_text(ctx.effective, ctx.origin, ctx.preference), desc)
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
                   flag_text(ctx.run_flag, "unknown" if not have_vm else ctx.origin, ctx.preference)))
    if drift:
        return ("Restart pending: %s asks for %s, but the running domain was built with useVirtioTransitional = %s "
                "(%d device(s) change at the next start)."
                % (flag_text(ctx.effective, ctx.origin, ctx.preference),
                   (T if ctx.effective else NT) if ctx.arch != "s390x" else "virtio",
                   str(ctx.run_flag).lower(), len(drift)))
    meaning = _meaning(models, ctx)
    if ctx.arch == "s390x":
        return "These models are what KubeVirt writes on s390x (always plain virtio; virtio-scsi for SCSI), " \
               "whatever useVirtioTransitional says: %s. libvirt did not invent them." % desc
    if not have_vm:
        return ("These models are what KubeVirt writes when useVirtioTransitional is %s: %s. libvirt keeps "
                "KubeVirt's models verbatim; it did not invent them.%s"
                % ("true" if ctx.live else "unset or false", desc, meaning))
    flag = flag_text(ctx.effective, ctx.origin, ctx.preference).replace("useVirtioTransitional ", "useVirtioTransitional is ")
    return "These models are what KubeVirt writes when %s: %s. libvirt keeps KubeVirt's models verbatim; " \
           "it did not invent them.%s" % (flag.replace("is = ", "is "), desc, meaning)


_FLAG_DRIVEN = {r.id for r in R.RULES if r.flag_driven}


def _meaning(models: Counter, ctx: _Ctx) -> str:
    if not models:
        return ""
    top = models.most_common(1)[0][0]
    q35 = ctx.dom is not None and ctx.dom.machine_family in ("q35", "virt")
    if top == NT:
        return (" virtio-non-transitional means virtio 1.0 only%s; the guest needs virtio 1.0 drivers "
                "(CentOS/RHEL 6 have none)." % (": libvirt gives each device its own PCIe root port" if q35 else ""))
    if top == T:
        return (" virtio-transitional means legacy + modern (virtio 0.9 and 1.0)%s; old guests such as "
                "CentOS 6 can drive it." % (": libvirt puts the devices behind a pcie-to-pci-bridge in conventional "
                                            "PCI slots" if q35 else ""))
    return ""
