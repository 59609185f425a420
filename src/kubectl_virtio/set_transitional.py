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
from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio import context as C
from kubectl_virtio import predict as P
from kubectl_virtio import rules as R
from kubectl_virtio import spec as S
from kubectl_virtio.cmdline import ClusterFlags, Options, Streams
from kubectl_virtio.errors import ClusterError, UsageError
from kubectl_virtio.record import Record

FIELD = "spec.template.spec.domain.devices.useVirtioTransitional"
DEVICES_PATH = ("spec", "template", "spec", "domain", "devices")
MAX_CONFLICT_RETRIES = 3
# Machines with a pcie-root: libvirt gives each modern device a PCIe root port and puts
# transitional ones behind a pcie-to-pci-bridge; on i440fx `pc` everything is conventional
# PCI (docs/libvirt.md §1.3, qemuDomainFillDevicePCIConnectFlagsIterInit).
PCIE_ROOT_MACHINES = ("q35", "virt")
VARIANT = {R.NT: "modern-only", R.T: "transitional"}
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

class SetTransitionalOptions(Options):
    vm: Optional[str] = None
    off: bool = False
    unset: bool = False
    selector: Optional[str] = None
    all_namespaces: bool = False
    dry_run: str = "none"
    restart: bool = False
    output: str = "table"
    parallel: int = 8
    flags: Optional[ClusterFlags] = None
    kubevirt_version: Optional[str] = None
    kind: Optional[str] = None
    name: Optional[str] = None
    version: object = None
    needs_cluster = True

    @classmethod
    def complete(cls, args) -> "SetTransitionalOptions":
        return cls(vm=args.vm, off=args.off, unset=args.unset, selector=args.selector,
                   all_namespaces=args.all_namespaces, dry_run=args.dry_run, restart=args.restart,
                   output=args.output, flags=ClusterFlags.from_args(args), kubevirt_version=args.kubevirt_version,
                   parallel=getattr(args, "parallel", 8) or 8)

    @property
    def desired(self) -> Optional[bool]:
        return None if self.unset else (not self.off)

    @property
    def machine_readable(self) -> bool:
        return self.output in ("json", "yaml")

    def validate(self) -> None:
        from kubectl_virtio import validate
        self.version = validate.release(self.kubevirt_version)
        if bool(self.vm) == bool(self.selector):
            raise UsageError("give one VM name or -l SELECTOR")
        if not 1 <= self.parallel <= 64:
            raise UsageError("--parallel must be between 1 and 64")
        if self.all_namespaces and not self.selector:
            raise UsageError("-A/--all-namespaces goes with -l SELECTOR")
        if self.vm:
            self.kind, self.name = validate.vm_ref(self.vm)
        validate.namespace(self.flags.namespace)
        validate.selector(self.selector)

    def run(self, cluster, streams: Streams) -> int:
        from kubectl_virtio import render

        desired = self.desired
        if self.name:
            if self.kind == "vmi":
                vmi = cluster.get_vmi(cluster.namespace, self.name)
                raise ClusterError(*_vmi_only_message(self.name, cluster.namespace, vmi, desired))
            try:
                ctx = C.resolve(cluster, cluster.namespace, self.name, pods=False, override=self.version)
            except C.VMNotFound:
                raise ClusterError("no VirtualMachine %r in namespace %s" % (self.name, cluster.namespace),
                                   "check the name, or pass -n NAMESPACE") from None
            # A release the rules do not know: said once, as explain, list and table say it.
            render.warnings(streams.err, [n.message for n in ctx.release.notes if n.severity == "warning"])
            _, obj = _set_one(cluster, ctx, self, streams)
            if self.machine_readable:
                render.emit(streams.out, render.dump(obj, self.output))
            return 0

        return self.run_selector(cluster, streams)

    def run_selector(self, cluster, streams: Streams) -> int:
        """-l: the VMs stream in page by page (fleet_list.stream_contexts: one read per distinct
        preference), `parallel` VMs are patched at a time, and each gets one result line, in
        list order, then a summary.  `set-transitional VM` shows the per-device preview."""
        import io

        from kubectl_virtio import fleet_list, render

        ns = None if self.all_namespaces else cluster.namespace

        def one(ctx):
            buf = Streams(out=io.StringIO(), err=io.StringIO())
            try:
                outcome, obj = _set_one(cluster, ctx, self, buf)
                return outcome, obj, None, buf
            except RestartFailed as e:
                return "patched", e.obj, e, buf
            except ClusterError as e:
                return "failed", None, e, buf

        summary = {"patched": 0, "unchanged": 0, "failed": 0, "restart failed": 0}
        items, total = [], 0
        contexts = fleet_list.stream_contexts(cluster, ns, self.selector, self.version,
                                              lambda m: render.warnings(streams.err, [m]))
        for ctx, result, exc in fleet_list.ordered_map(contexts, one, self.parallel):
            total += 1
            where = "%s/%s" % (ctx.namespace, ctx.name)
            if exc is not None:  # a bug or transport error outside _set_one's own handling
                result = ("failed", None, exc if isinstance(exc, ClusterError) else ClusterError(str(exc)), None)
            outcome, obj, err, buf = result
            summary[outcome] += 1
            if obj is not None:
                items.append(obj)
            if buf is not None:
                for line in buf.err.getvalue().splitlines():
                    render.emit(streams.err, line if line.startswith(where) else "%s: %s" % (where, line))
            if err is not None:
                if isinstance(err, RestartFailed):
                    summary["restart failed"] += 1
                render.emit(streams.err, render.error_lines(err.message, err.hint, where))
            if outcome != "failed" and buf is not None:
                lines = [x for x in buf.out.getvalue().splitlines() if x.strip()]
                line = next((x for x in lines if x.startswith("virtualmachine.kubevirt.io/")),
                            lines[0] if lines else "%s %s" % (where, outcome))
                out = streams.err if self.machine_readable else streams.out
                render.emit(out, "%s (namespace %s)" % (line, ctx.namespace))
        if not total:
            render.emit(streams.err, "No VirtualMachines match %s%s." % (
                self.selector, "" if ns is None else " in namespace %s" % ns))
        if self.machine_readable:
            # One parseable document, like `kubectl get -l ... -o json`; everything else is on stderr.
            render.emit(streams.out, render.dump({"apiVersion": "v1", "items": items, "kind": "List",
                                                  "metadata": {"resourceVersion": ""}}, self.output))
        if total:
            line = render.patch_summary(total, summary)
            if self.machine_readable:
                render.emit(streams.err, line)
            else:
                render.emit(streams.out, "\n" + line)
        return 1 if summary["failed"] or summary["restart failed"] else 0


# --- refusals -------------------------------------------------------------------------------

def _controller(obj) -> Optional[Dict[str, Any]]:
    refs = [o for o in (C.meta(obj).get("ownerReferences") or []) if isinstance(o, dict)]
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
                % (C.meta(vm).get("name"), o.get("kind"), o.get("name"), o.get("kind")),
                _owner_patch_hint(o.get("kind"), o.get("name"), desired))
    return None


# --- one VM ---------------------------------------------------------------------------------

def _set_one(cluster, ctx: C.VMContext, opts: SetTransitionalOptions, streams: Streams) -> Tuple[str, Dict[str, Any]]:
    from kubectl_virtio import render

    ns, name, desired = ctx.namespace, ctx.name, opts.desired
    vm = ctx.vm
    if vm is None:
        raise ClusterError(*_vmi_only_message(name, ns, ctx.vmi, desired))
    refusal = _owner_refusal(vm, desired)
    if refusal:
        raise ClusterError(*refusal)
    ref = "virtualmachine.kubevirt.io/%s" % name
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(opts.dry_run, "")
    out = streams.out if opts.output == "table" else streams.err  # json/yaml: stdout holds only the object
    from kubectl_virtio.cluster import Conflict

    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        current = ctx.template_flag
        plan = make_plan(ctx, desired, cluster.namespace)
        if current == desired:
            render.emit(out, ref + " unchanged" + suffix)
            _report(opts, plan, out, streams)
            _restart_step(cluster, opts, plan, out)
            return "unchanged", vm
        patch = {"metadata": {"resourceVersion": C.meta(vm).get("resourceVersion")},
                 "spec": {"template": {"spec": {"domain": {"devices": {"useVirtioTransitional": desired}}}}}}
        if opts.dry_run == "client":
            result = _apply_locally(vm, desired)
            render.emit(out, "would send to %s (merge patch):\n  %s" % (ref, _json(patch)))
        else:
            try:
                result = cluster.patch_vm(ns, name, patch, dry_run=opts.dry_run == "server")
            except Conflict:
                if attempt == MAX_CONFLICT_RETRIES:
                    raise ClusterError("VirtualMachine %s/%s kept changing under us (%d conflicts); nothing was "
                                       "overwritten" % (ns, name, attempt + 1), "try again") from None
                render.warnings(streams.err, ["%s was modified concurrently; re-reading and checking again" % ref])
                vm = cluster.get_vm(ns, name)
                if vm is None:
                    raise ClusterError("VirtualMachine %s/%s was deleted meanwhile" % (ns, name)) from None
                ctx = C.with_vm(ctx, vm)
                continue
        render.emit(out, ref + " patched" + suffix)
        _report(opts, plan, out, streams)
        try:
            _restart_step(cluster, opts, plan, out)
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

class Plan(Record):
    __slots__ = _fields = ("ns", "name", "context_ns", "current", "desired", "before", "after", "running", "live",
                           "restart_required", "run_strategy", "arch", "machine_now", "machine_next", "machine_note",
                           "rows", "warnings")

    def __init__(self, ns: str, name: str, context_ns: str,
                 current: Optional[bool],          # the template's field now (None: unset)
                 desired: Optional[bool],          # what the patch asks for
                 before: Tuple[Optional[bool], str],  # (effective value at next start, origin) without the patch
                 after: Tuple[Optional[bool], str],   # ... with it; value None = unknown (preference unreadable)
                 running: bool,
                 live: Optional[bool],             # the running VMI's value (its spec is final)
                 restart_required: Optional[str],  # the VM's RestartRequired condition message, if set
                 run_strategy: str, arch: str, machine_now: Optional[str], machine_next: str, machine_note: str,
                 rows: Optional[List[List[str]]] = None, warnings: Optional[List[str]] = None):
        self.ns, self.name, self.context_ns, self.current, self.desired = ns, name, context_ns, current, desired
        self.before, self.after, self.running, self.live = before, after, running, live
        self.restart_required, self.run_strategy, self.arch = restart_required, run_strategy, arch
        self.machine_now, self.machine_next, self.machine_note = machine_now, machine_next, machine_note
        self.rows = rows if rows is not None else []
        self.warnings = warnings if warnings is not None else []

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


def make_plan(ctx: C.VMContext, desired: Optional[bool], context_ns: Optional[str] = None) -> Plan:
    """What the patch changes, from the VM's resolved context (pure)."""
    current = ctx.template_flag
    running = ctx.running
    plan = Plan(ns=ctx.namespace, name=ctx.name, context_ns=context_ns or ctx.namespace, current=current,
                desired=desired, before=ctx.flag_with(current), after=ctx.flag_with(desired), running=running,
                live=ctx.running_flag if running else None, restart_required=ctx.restart_condition,
                run_strategy=ctx.run_strategy, arch=ctx.arch, machine_now=ctx.machine_now,
                machine_next=ctx.machine_next, machine_note=ctx.machine_note)
    reason = ctx.preference_reason or (ctx.preference_note.message if ctx.preference_note else None)
    if ctx.preference_unread and (plan.after[0] is None or (not running and plan.before[0] is None)):
        plan.warnings.append("%s: the value it gives is unknown (origin \"unknown\"), and so are the models it "
                             "decides" % reason)
    if desired is None and plan.after[1] == "default":
        plan.warnings.append("no preference sets preferredUseVirtioTransitional: after --unset the default "
                             "false applies")
    vm_after = S.vm_from_object(_apply_locally(ctx.vm, desired))
    vm_after.preference = ctx.preference
    now_flag = plan.live if running else plan.before[0]
    plan.rows = [r for r in (_row(exp, now_flag, plan.after[0], plan)
                             for exp in P.predict(vm_after, plan.arch, ctx.release.version)) if r]
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


def next_steps(restart: bool, dry_run: str, plan: Plan) -> List[str]:
    """What to do next, after the preview (pure): restart, or nothing."""
    name, changed = plan.name, plan.changed
    differs = plan.differs
    restarting = restart and dry_run == "none"
    if restart and (not plan.running or not differs):
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


def _report(opts, plan, out, streams: Streams) -> None:
    """The preview: a table on stdout; with -o json|yaml a compact form on stderr."""
    from kubectl_virtio import render

    # -l: run_selector puts "ns/name: " before each line of a VM's output, once.
    render.warnings(streams.err, plan.warnings)
    steps = next_steps(opts.restart, opts.dry_run, plan)
    if opts.output == "table":
        render.emit(out, render.preview(_header(plan), plan.rows, steps, plan.running))
    else:
        render.emit(out, render.preview_compact("%s/%s" % (plan.ns, plan.name), _header(plan), plan.rows, steps))


# --- restart ----------------------------------------------------------------------------------

def _restart_step(cluster, opts, plan, out) -> None:
    if not opts.restart:
        return
    name, ref = plan.name, "virtualmachine.kubevirt.io/%s" % plan.name

    def say(text):
        out.write(text + "\n")

    if not plan.running:
        say("--restart: VM %s is not running: nothing restarted; the value applies when it starts" % name)
        return
    differs = plan.differs
    if differs is False:
        extra = ""
        if plan.restart_required:
            extra = ("; RestartRequired is set for another change (%s): restart it yourself if you want that "
                     "applied" % plan.restart_required)
        if plan.after[0] is None:
            say("--restart: not restarting %s: KubeVirt does not show RestartRequired, so the running VM "
                "(useVirtioTransitional %s) matches its template with the preference applied"
                % (name, _show(plan.live)))
        else:
            say("--restart: not restarting %s: the running VM already has useVirtioTransitional %s%s"
                % (name, _show(plan.live), extra))
        return
    if differs is None:
        say("--restart: not restarting %s: cannot tell whether the running VM differs (the preference could not "
            "be read); if KubeVirt sets RestartRequired on it, restart it: virtctl restart %s" % (name, name))
        return
    if opts.dry_run == "client":
        say("--restart: would restart %s through KubeVirt's restart subresource (dry run): not restarted" % name)
        return
    from kubectl_virtio.cluster import Conflict

    try:
        # kubevirt pkg/virt-api/rest/lifecycle.go RestartVMRequestHandler hands RestartOptions.DryRun
        # to its status patch, so a server dry run checks the runStrategy and changes nothing.
        cluster.restart_vm(plan.ns, name, dry_run=opts.dry_run == "server")
    except Conflict as e:
        raise ClusterError("KubeVirt refused to restart %s (runStrategy %s): %s" % (name, plan.run_strategy, e.message),
                           "restart it by hand: virtctl stop %s && virtctl start %s" % (name, name)) from None
    if opts.dry_run == "server":
        say("%s restart accepted (server dry run): not restarted" % ref)
    else:
        say("%s restart requested: the new models apply when it is back up" % ref)
