"""`set-transitional`: a safe merge patch of useVirtioTransitional on VirtualMachines, with
dry runs, a per-device preview of what the next start changes, and an optional restart.

Facts: docs/kubevirt.md §3 (a preference fills only an unset field, so `--unset` sends
null; the VMI spec shows the value in effect) and §5 (the VMI is immutable; the change needs
a VM restart; restart subresource; pools and replica sets are patched in their template);
docs/libvirt.md §1.3 (PCI placement per machine type); docs/ecosystem.md §2.5 (kubectl's
mutation messages, dry runs, `List` output).
"""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio import domain as D
from kubectl_virtio import predict as P
from kubectl_virtio import rules as R
from kubectl_virtio import spec as S
from kubectl_virtio.errors import ClusterError, UsageError
from kubectl_virtio.live import _meta, _preference_call, _status, connect, parse_ref

FIELD = "spec.template.spec.domain.devices.useVirtioTransitional"
DEVICES_PATH = ("spec", "template", "spec", "domain", "devices")
MAX_CONFLICT_RETRIES = 3
# Machines with a pcie-root: libvirt gives each modern device a PCIe root port and puts
# transitional ones behind a pcie-to-pci-bridge; on i440fx `pc` everything is conventional
# PCI (docs/libvirt.md §1.3, qemuDomainFillDevicePCIConnectFlagsIterInit).
PCIE_ROOT_MACHINES = ("q35", "virt")
DEFAULT_MACHINE = {"amd64": "q35", "arm64": "virt", "s390x": "s390-ccw-virtio"}
VARIANT = {R.NT: "modern-only", R.T: "transitional"}
GONE = ("Succeeded", "Failed")
OWNER_TEMPLATE_PATHS = {  # docs/kubevirt.md §5: "patch the owner's template"
    "VirtualMachinePool": ("vmpool", ("spec", "virtualMachineTemplate", "spec", "template", "spec", "domain",
                                      "devices")),
    "VirtualMachineInstanceReplicaSet": ("vmirs", ("spec", "template", "spec", "domain", "devices")),
}


class RestartFailed(ClusterError):
    """The patch went through; the restart did not. `obj` is the patched VM."""

    def __init__(self, message: str, hint: str, obj: Dict[str, Any]):
        super().__init__(message, hint)
        self.obj = obj


def _dig(obj, *keys) -> Dict[str, Any]:
    """obj[k1][k2]...; {} where a level is missing, null or not an object."""
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj if isinstance(obj, dict) else {}


def _template_devices(vm) -> Dict[str, Any]:
    return _dig(vm, *DEVICES_PATH)


def _desired(args) -> Optional[bool]:
    return None if args.unset else (not args.off)


def _show(v) -> str:
    return "unset" if v is None else ("unknown" if v == "?" else str(v).lower())


def _json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _nested(path, value) -> Dict[str, Any]:
    doc: Dict[str, Any] = {"useVirtioTransitional": value}
    for k in reversed(path):
        doc = {k: doc}
    return doc


# --- the command ----------------------------------------------------------------------------

def set_transitional(args) -> int:
    if bool(args.vm) == bool(args.selector):
        raise UsageError("give one VM name or -l SELECTOR")
    if args.all_namespaces and not args.selector:
        raise UsageError("-A/--all-namespaces goes with -l SELECTOR")
    kind = name = None
    if args.vm:
        kind, name = parse_ref(args.vm)
    cluster = connect(args)
    desired = _desired(args)
    machine_readable = args.output in ("json", "yaml")
    if name:
        if kind == "vmi":
            vmi = cluster.get_vmi(cluster.namespace, name)
            raise ClusterError(*_vmi_only_message(name, cluster.namespace, vmi, desired))
        _, obj = _set_one(cluster, cluster.namespace, name, desired, args)
        if machine_readable:
            _print_object(args, obj)
        return 0

    ns = None if args.all_namespaces else cluster.namespace
    vms = cluster.list_vms(ns, args.selector)
    targets = [(_meta(v).get("namespace"), _meta(v).get("name")) for v in vms]
    if not targets:
        print("No VirtualMachines match %s%s." % (args.selector, "" if ns is None else " in namespace %s" % ns),
              file=sys.stderr)
    summary = {"patched": 0, "unchanged": 0, "failed": 0, "restart failed": 0}
    items = []
    for i, (vm_ns, vm_name) in enumerate(targets):
        if i and not machine_readable:
            print()
        try:
            outcome, obj = _set_one(cluster, vm_ns, vm_name, desired, args)
            summary[outcome] += 1
            items.append(obj)
        except RestartFailed as e:
            summary["patched"] += 1
            summary["restart failed"] += 1
            items.append(e.obj)
            _print_error(vm_ns, vm_name, e)
        except ClusterError as e:
            summary["failed"] += 1
            _print_error(vm_ns, vm_name, e)
    if machine_readable:
        # One parseable document, like `kubectl get -l ... -o json`; everything else is on stderr.
        _print_object(args, {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
    if targets:
        line = "%d VM(s): %d patched, %d unchanged, %d failed" % (len(targets), summary["patched"],
                                                                  summary["unchanged"], summary["failed"])
        if summary["restart failed"]:
            line += ", %d restart(s) failed" % summary["restart failed"]
        print(line if machine_readable else "\n" + line, file=sys.stderr if machine_readable else sys.stdout)
    return 1 if summary["failed"] or summary["restart failed"] else 0


def _print_error(ns, name, e) -> None:
    print("error: %s/%s: %s" % (ns, name, e.message), file=sys.stderr)
    if e.hint:
        print(e.hint, file=sys.stderr)


def _print_object(args, obj) -> None:
    from kubectl_virtio import render

    print(render.dump(obj, args.output))


# --- refusals -------------------------------------------------------------------------------

def _controller(obj) -> Optional[Dict[str, Any]]:
    refs = [o for o in (_meta(obj).get("ownerReferences") or []) if isinstance(o, dict)]
    return next((o for o in refs if o.get("controller")), None)


def _owner_patch_hint(owner_kind, owner_name, desired) -> str:
    short, path = OWNER_TEMPLATE_PATHS[owner_kind]
    return "kubectl patch %s %s --type merge -p '%s'" % (short, owner_name, _json(_nested(path, desired)))


def _vmi_only_message(name, ns, vmi, desired) -> Tuple[str, str]:
    if vmi is None:
        return "no VirtualMachineInstance %r in namespace %s" % (name, ns), "check the name, or pass -n NAMESPACE"
    owner = _controller(vmi)
    okind, oname = (owner or {}).get("kind"), (owner or {}).get("name")
    if okind == "VirtualMachine":
        return ("vmi/%s belongs to VirtualMachine %s: patch the VM (`set-transitional vm/%s`), the VMI spec is "
                "immutable" % (name, oname, oname)), ""
    if okind in OWNER_TEMPLATE_PATHS:
        return ("vmi/%s is owned by %s %s and a VMI spec is immutable: patch the %s's template; its VMIs keep "
                "their value until it replaces them" % (name, okind, oname, okind),
                _owner_patch_hint(okind, oname, desired))
    if okind:
        return ("vmi/%s is owned by %s %s and a VMI spec is immutable: change useVirtioTransitional where %s %s "
                "builds its VMIs" % (name, okind, oname, okind, oname)), ""
    return ("vmi/%s has no VirtualMachine, and a VMI spec is immutable: recreate it with "
            "spec.domain.devices.useVirtioTransitional set" % name,
            "kubectl get vmi %s -n %s -o yaml > vmi.yaml; edit it; kubectl delete vmi %s -n %s; kubectl create -f "
            "vmi.yaml" % (name, ns, name, ns))


def _owner_refusal(vm, desired) -> Optional[Tuple[str, str]]:
    o = _controller(vm)
    if o and o.get("kind") in OWNER_TEMPLATE_PATHS:
        return ("VirtualMachine %s is owned by %s %s, which manages its spec: patch the %s's template instead"
                % (_meta(vm).get("name"), o.get("kind"), o.get("name"), o.get("kind")),
                _owner_patch_hint(o.get("kind"), o.get("name"), desired))
    return None


# --- one VM ---------------------------------------------------------------------------------

def _set_one(cluster, ns, name, desired, args) -> Tuple[str, Dict[str, Any]]:
    vm, vmi = cluster.parallel(lambda: cluster.get_vm(ns, name), lambda: cluster.get_vmi(ns, name))
    if vm is None:
        if vmi is not None:
            raise ClusterError(*_vmi_only_message(name, ns, vmi, desired))
        raise ClusterError("no VirtualMachine %r in namespace %s" % (name, ns), "check the name, or pass -n NAMESPACE")
    refusal = _owner_refusal(vm, desired)
    if refusal:
        raise ClusterError(*refusal)
    ref = "virtualmachine.kubevirt.io/%s" % name
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
    out = sys.stdout if args.output == "table" else sys.stderr  # json/yaml: stdout holds only the object
    from kubectl_virtio.cluster import Conflict

    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        current = _template_devices(vm).get("useVirtioTransitional")
        current = current if isinstance(current, bool) else None
        plan = _plan(cluster, ns, vm, vmi, current, desired)
        if current == desired:
            print(ref + " unchanged" + suffix, file=out)
            _report(args, plan, out)
            _restart_step(cluster, args, plan, out)
            return "unchanged", vm
        patch = {"metadata": {"resourceVersion": _meta(vm).get("resourceVersion")},
                 "spec": {"template": {"spec": {"domain": {"devices": {"useVirtioTransitional": desired}}}}}}
        if args.dry_run == "client":
            result = _apply_locally(vm, desired)
            print("would send to %s (merge patch):\n  %s" % (ref, _json(patch)), file=out)
        else:
            try:
                result = cluster.patch_vm(ns, name, patch, dry_run=args.dry_run == "server")
            except Conflict:
                if attempt == MAX_CONFLICT_RETRIES:
                    raise ClusterError("VirtualMachine %s/%s kept changing under us (%d conflicts); nothing was "
                                       "overwritten" % (ns, name, attempt + 1), "try again") from None
                print("warning: %s was modified concurrently; re-reading and checking again" % ref, file=sys.stderr)
                vm = cluster.get_vm(ns, name)
                if vm is None:
                    raise ClusterError("VirtualMachine %s/%s was deleted meanwhile" % (ns, name)) from None
                continue
        print(ref + " patched" + suffix, file=out)
        _report(args, plan, out)
        try:
            _restart_step(cluster, args, plan, out)
        except ClusterError as e:
            raise RestartFailed("%s was patched%s, but %s" % (ref, suffix, e.message), e.hint, result) from None
        return "patched", result
    raise AssertionError("unreachable")


def _apply_locally(vm, desired):
    """The VM with the field set (None: removed); a missing or null level on the way becomes {}."""
    result = copy.deepcopy(vm)
    node = result
    for k in DEVICES_PATH:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    if desired is None:
        node.pop("useVirtioTransitional", None)
    else:
        node["useVirtioTransitional"] = desired
    return result


# --- what changes: the plan and its report --------------------------------------------------

@dataclass
class Plan:
    ns: str
    name: str
    context_ns: str
    current: Optional[bool]          # the template's field now (None: unset)
    desired: Optional[bool]          # what the patch asks for
    before: Tuple[Optional[bool], str]  # (effective value at next start, origin) without the patch
    after: Tuple[Optional[bool], str]   # ... with it; value None = unknown (preference unreadable)
    running: bool
    live: Optional[bool]             # the running VMI's value (its spec is final)
    restart_required: Optional[str]  # the VM's RestartRequired condition message, if set
    run_strategy: str
    arch: str
    machine_now: Optional[str]
    machine_next: str
    machine_note: str
    rows: List[List[str]] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.current != self.desired

    @property
    def differs(self) -> Optional[bool]:
        """Does the running VM differ from what its next start gives? None: cannot tell."""
        if not self.running:
            return False
        if self.after[0] is not None:
            return self.live != self.after[0]
        if not self.changed:
            # The preference is unreadable, but KubeVirt compared the template with the preference
            # expanded against the running VM's spec (docs/kubevirt.md §5 syncRestartRequired).
            return bool(self.restart_required)
        return None  # our patch just changed the template: the condition is not updated yet


def _load_preference(cluster, ns, vm) -> Tuple[Optional[S.Preference], Optional[str]]:
    """(preference, problem): problem says why the preference that decides an unset field could
    not be read; the caller then treats its value as unknown instead of failing."""
    call = _preference_call(cluster, ns, _apply_locally(vm, None))
    if call is None:
        return None, None
    ref = (vm.get("spec") or {}).get("preference") or {}
    what = "%s %s" % (ref.get("kind") or "VirtualMachineClusterPreference", ref.get("name"))
    try:
        source, obj = call()
    except ClusterError as e:
        return None, "cannot read %s (%s)" % (what, e.message)
    if not obj:
        return None, "%s %s was not found" % (what, "revision" if source == "revision" else "object")
    try:
        return S.preference_from_object(obj), None
    except Exception as e:  # noqa: BLE001 - a malformed revision must not stop the patch
        return None, "cannot read %s: %s" % (what, getattr(e, "message", e))


def _effective(vm, pref, problem, value) -> Tuple[Optional[bool], str]:
    if isinstance(value, bool):
        return value, "vm"
    if problem:
        return None, "unknown"
    s = S.vm_from_object(_apply_locally(vm, None))
    s.preference = pref
    return s.effective_flag()


def _restart_required(vm) -> Optional[str]:
    for c in _status(vm).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "RestartRequired" and c.get("status") == "True":
            return c.get("message") or "RestartRequired"
    return None


def _run_strategy(vm) -> str:
    spec = vm.get("spec") or {}
    return spec.get("runStrategy") or ("Always" if spec.get("running") else "Halted")


def _machines(vm, vmi, running, arch) -> Tuple[Optional[str], str, str]:
    """(family now, family at the next start, how the latter was found)."""
    now = None
    if running:
        now = D.machine_family(_dig(vmi, "status", "machine").get("type")
                               or _dig(vmi, "spec", "domain", "machine").get("type"))
    tmpl = _dig(vm, "spec", "template", "spec", "domain", "machine").get("type")
    if tmpl:
        return now, D.machine_family(str(tmpl)), ""
    vmi_type = _dig(vmi, "spec", "domain", "machine").get("type") if vmi else None
    if vmi_type:  # the mutating webhook filled in the cluster's default when the VMI was made
        return now, D.machine_family(str(vmi_type)), " (the cluster default)"
    return now, DEFAULT_MACHINE.get(arch, "q35"), " (assumed: KubeVirt's %s default)" % arch


def _plan(cluster, ns, vm, vmi, current, desired) -> Plan:
    pref, problem = _load_preference(cluster, ns, vm)
    running = vmi is not None and _status(vmi).get("phase") not in GONE
    arch = S.arch_from_go(_dig(vmi, "spec").get("architecture")) or \
        S.arch_from_go(_dig(vm, "spec", "template", "spec").get("architecture")) or "amd64"
    # The VMI spec holds the value in effect, a preference's included (docs/kubevirt.md §3); nil = false.
    live = _dig(vmi, "spec", "domain", "devices").get("useVirtioTransitional") is True if running else None
    m_now, m_next, m_note = _machines(vm, vmi, running, arch)
    plan = Plan(ns=ns, name=_meta(vm).get("name"), context_ns=cluster.namespace, current=current, desired=desired,
                before=_effective(vm, pref, problem, current), after=_effective(vm, pref, problem, desired),
                running=running, live=live, restart_required=_restart_required(vm), run_strategy=_run_strategy(vm),
                arch=arch, machine_now=m_now, machine_next=m_next, machine_note=m_note)
    if problem and (plan.after[0] is None or (not running and plan.before[0] is None)):
        plan.warnings.append("%s: the value it gives is unknown (origin \"unknown\"), and so are the models it "
                             "decides" % problem)
    if desired is None and plan.after[1] == "default":
        plan.warnings.append("no preference sets preferredUseVirtioTransitional: after --unset the default "
                             "false applies")
    vm_after = S.vm_from_object(_apply_locally(vm, desired))
    vm_after.preference = pref
    now_flag = live if running else plan.before[0]
    plan.rows = [r for r in (_row(exp, now_flag, plan.after[0], plan) for exp in P.predict(vm_after, arch)) if r]
    return plan


def _slot(model, family) -> Optional[str]:
    if family in PCIE_ROOT_MACHINES:
        return "conventional PCI slot" if model == R.T else "PCIe root port"
    if family == "i440fx":
        return "conventional PCI slot"
    return None


def _move(now, then, plan) -> str:
    """Where libvirt puts the device before and after (docs/libvirt.md §1.3): on q35 / arm64 virt
    a modern device gets a PCIe root port and a transitional one a conventional PCI slot behind
    a pcie-to-pci-bridge; on i440fx both are conventional PCI, and non-transitional there is
    still modern-only (docs/libvirt.md §1.3 guest view: "pc + non-transitional: modern IDs")."""
    change = "%s -> %s" % (VARIANT[now], VARIANT[then])
    a = _slot(now, plan.machine_now or plan.machine_next)
    b = _slot(then, plan.machine_next)
    if a and b and a != b:
        return "%s -> %s" % (a, b)  # the model columns already say modern-only / transitional
    if a and a == b:
        return "stays in a %s; %s" % (a, change)
    return change


def _row(exp, now_flag, new_flag, plan) -> Optional[List[str]]:
    arch = plan.arch
    unknown = None in (now_flag, new_flag)
    if unknown and exp.model(False, arch) == exp.model(True, arch):
        now_flag, new_flag, unknown = False, False, False  # the flag does not decide this one
    now = exp.model(now_flag, arch) if now_flag is not None else "?"
    then = exp.model(new_flag, arch) if new_flag is not None else "?"
    if not exp.rule.virtio and now == then and exp.kind not in ("disk", "interface", "input"):
        return None  # usb controller, video: nothing to say
    note = "depends on the preference, which could not be read" if unknown else None
    if note is None:
        if now != then and now in VARIANT and then in VARIANT:
            note = _move(now, then, plan)
        elif now != then:
            note = "changes"
        elif exp.rule.id in ("vsock.virtio", "input.virtio", "filesystem.virtiofs"):
            note = "unchanged: always virtio 1.0"
        elif not exp.rule.virtio:
            note = "unchanged: not virtio (bus %s), the flag does not apply" % (exp.bus or exp.literal or "-")
        elif arch == "s390x":
            note = "unchanged: s390x always uses plain virtio (ccw)"
        elif not exp.rule.flag_driven:
            note = "unchanged: not driven by the flag"
        else:
            note = "unchanged"
    return [exp.kind, exp.name, now or "-", then or "-", note]


def _cmd(plan) -> str:
    ns = "" if plan.ns == plan.context_ns else " -n %s" % plan.ns
    return "kubectl virtio set-transitional %s%s" % (plan.name, ns)


def _header(plan) -> List[str]:
    after, origin = plan.after
    lines = ["useVirtioTransitional: %s -> %s (effective at next start: %s, from %s)"
             % (_show(plan.current), _show(plan.desired), _show("?" if after is None else after), origin)]
    machine = "machine: %s%s" % (plan.machine_next, plan.machine_note)
    if plan.running:
        if plan.machine_now and plan.machine_now != plan.machine_next:
            machine = "machine: %s now, %s at next start%s" % (plan.machine_now, plan.machine_next, plan.machine_note)
        lines.append("running VM: useVirtioTransitional %s   %s" % (_show(plan.live), machine))
    else:
        lines.append("not running   %s" % machine)
    return lines


def _next_steps(args, plan) -> List[str]:
    name, changed = plan.name, plan.changed
    differs = plan.differs
    restarting = args.restart and args.dry_run == "none"
    if args.restart and (not plan.running or not differs):
        return []  # _restart_step says why nothing is restarted
    if not plan.running:
        return ["Next: VM %s is not running; the change applies when it starts." % name] if changed else []
    if differs is None:
        return ["Next: cannot tell whether VM %s (running with useVirtioTransitional %s) differs from its next "
                "start: the preference could not be read." % (name, _show(plan.live))]
    if not differs:
        if changed:
            return ["The running VM already has useVirtioTransitional %s, which the next start keeps: no restart "
                    "needed." % _show(plan.live)]
        return []
    if plan.after[0] is None:
        text = ("Next: KubeVirt shows RestartRequired on VM %s: the running VM (useVirtioTransitional %s) differs "
                "from its template with the preference applied." % (name, _show(plan.live)))
    else:
        shown = " (KubeVirt shows RestartRequired)" if plan.restart_required else \
            " (KubeVirt will show RestartRequired)"
        text = ("Next: VM %s runs with useVirtioTransitional %s; its next start gives %s%s."
                % (name, _show(plan.live), _show(plan.after[0]), shown))
    if not restarting:
        text += " Restart it: %s --restart (or virtctl restart %s)." % (_cmd(plan), name)
    text += " A guest reboot or a live migration does not apply it."
    return [text]


def _report(args, plan, out) -> None:
    """The preview: a table on stdout; with -o json|yaml a compact form on stderr."""
    for w in plan.warnings:
        print("warning: %s/%s: %s" % (plan.ns, plan.name, w) if args.selector else "warning: " + w,
              file=sys.stderr)
    steps = _next_steps(args, plan)
    if args.output == "table":
        from kubectl_virtio import render

        print()
        print("\n".join(_header(plan)))
        print(render.table(["kind", "name", "running now" if plan.running else "model now", "after next start",
                            "note"], plan.rows))
        for s in steps:
            print("\n" + s)
        return
    moved = [r for r in plan.rows if r[2] != r[3] or r[4].startswith("depends")]
    print("preview %s/%s: %s" % (plan.ns, plan.name, "; ".join(_header(plan))), file=out)
    for r in moved:
        print("  %s %s: %s -> %s (%s)" % tuple(r), file=out)
    print("  %d device(s) change at the next start, %d do not" % (len(moved), len(plan.rows) - len(moved)), file=out)
    for s in steps:
        print(s, file=out)


# --- restart ----------------------------------------------------------------------------------

def _restart_step(cluster, args, plan, out) -> None:
    if not args.restart:
        return
    name, ref = plan.name, "virtualmachine.kubevirt.io/%s" % plan.name
    if not plan.running:
        print("--restart: VM %s is not running: nothing restarted; the value applies when it starts" % name, file=out)
        return
    differs = plan.differs
    if differs is False:
        extra = ""
        if plan.restart_required:
            extra = ("; RestartRequired is set for another change (%s): restart it yourself if you want that "
                     "applied" % plan.restart_required)
        if plan.after[0] is None:
            print("--restart: not restarting %s: KubeVirt does not show RestartRequired, so the running VM "
                  "(useVirtioTransitional %s) matches its template with the preference applied"
                  % (name, _show(plan.live)), file=out)
        else:
            print("--restart: not restarting %s: the running VM already has useVirtioTransitional %s%s"
                  % (name, _show(plan.live), extra), file=out)
        return
    if differs is None:
        print("--restart: not restarting %s: cannot tell whether the running VM differs (the preference could not "
              "be read); if KubeVirt sets RestartRequired on it, restart it: virtctl restart %s" % (name, name),
              file=out)
        return
    if args.dry_run == "client":
        print("--restart: would restart %s through KubeVirt's restart subresource (dry run): not restarted" % name,
              file=out)
        return
    from kubectl_virtio.cluster import Conflict

    try:
        # kubevirt pkg/virt-api/rest/lifecycle.go RestartVMRequestHandler hands RestartOptions.DryRun
        # to its status patch, so a server dry run checks the runStrategy and changes nothing.
        cluster.restart_vm(plan.ns, name, dry_run=args.dry_run == "server")
    except Conflict as e:
        raise ClusterError("KubeVirt refused to restart %s (runStrategy %s): %s" % (name, plan.run_strategy, e.message),
                           "restart it by hand: virtctl stop %s && virtctl start %s" % (name, name)) from None
    if args.dry_run == "server":
        print("%s restart accepted (server dry run): not restarted" % ref, file=out)
    else:
        print("%s restart requested: the new models apply when it is back up" % ref, file=out)
