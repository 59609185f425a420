"""`set-transitional`: a safe merge patch of useVirtioTransitional on VirtualMachines, with
dry runs, a per-device preview of what the next start changes, and an optional restart.

Facts: kubevirt-facts.md §3 (a preference fills only an unset field, so `--unset` sends
null) and §5 (the VMI is immutable; the change needs a VM restart; restart subresource).
"""
from __future__ import annotations

import copy
import sys
from typing import Any, Dict, Optional, Tuple

from kubectl_virtio import predict as P
from kubectl_virtio import rules as R
from kubectl_virtio import spec as S
from kubectl_virtio.errors import ClusterError, UsageError
from kubectl_virtio.live import _meta, _preference_call, connect, parse_ref

FIELD = "spec.template.spec.domain.devices.useVirtioTransitional"
MAX_CONFLICT_RETRIES = 3


def _template_devices(vm) -> Dict[str, Any]:
    return (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("domain", {}).get("devices", {}) or {}


def _desired(args) -> Optional[bool]:
    return None if args.unset else (not args.off)


def _show(v) -> str:
    return "unset" if v is None else str(v).lower()


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
    if name:
        if kind == "vmi":
            vmi = cluster.get_vmi(cluster.namespace, name)
            raise ClusterError(_vmi_only_message(name, cluster.namespace, vmi))
        targets = [(cluster.namespace, name)]
    else:
        ns = None if args.all_namespaces else cluster.namespace
        vms = cluster.list_vms(ns, args.selector)
        targets = [(_meta(v).get("namespace"), _meta(v).get("name")) for v in vms]
        if not targets:
            print("No VirtualMachines match %s%s." % (args.selector, "" if ns is None else " in namespace %s" % ns),
                  file=sys.stderr)
            return 0
    failures = 0
    summary = {"patched": 0, "unchanged": 0, "failed": 0}
    for ns, vm_name in targets:
        try:
            outcome = _set_one(cluster, ns, vm_name, desired, args)
            summary[outcome] += 1
        except ClusterError as e:
            if len(targets) == 1:
                raise
            failures += 1
            summary["failed"] += 1
            print("error: %s/%s: %s" % (ns, vm_name, e.message), file=sys.stderr)
    if len(targets) > 1:
        print("\n%d VM(s): %d patched, %d unchanged, %d failed" % (len(targets), summary["patched"],
                                                                   summary["unchanged"], summary["failed"]))
    return 1 if failures else 0


def _vmi_only_message(name, ns, vmi) -> str:
    if vmi is None:
        return "no VirtualMachineInstance %r in namespace %s" % (name, ns)
    owners = [o for o in (_meta(vmi).get("ownerReferences") or []) if o.get("controller")]
    if owners and owners[0].get("kind") == "VirtualMachine":
        return ("vmi/%s belongs to VirtualMachine %s: patch the VM (`set-transitional vm/%s`), the VMI spec is "
                "immutable" % (name, owners[0].get("name"), owners[0].get("name")))
    return ("vmi/%s has no VirtualMachine, and a VMI spec is immutable: recreate it with "
            "spec.domain.devices.useVirtioTransitional set (kubectl get vmi %s -o yaml, edit, delete, create)"
            % (name, name))


def _owner_refusal(vm) -> Optional[str]:
    for o in _meta(vm).get("ownerReferences") or []:
        if o.get("controller") and o.get("kind") in ("VirtualMachinePool", "VirtualMachineInstanceReplicaSet"):
            return ("VirtualMachine %s is owned by %s %s, which rewrites its template: patch the %s's template "
                    "instead" % (_meta(vm).get("name"), o.get("kind"), o.get("name"), o.get("kind")))
    return None


def _set_one(cluster, ns, name, desired, args) -> str:
    vm, vmi = cluster.parallel(lambda: cluster.get_vm(ns, name), lambda: cluster.get_vmi(ns, name))
    if vm is None:
        raise ClusterError(_vmi_only_message(name, ns, vmi) if vmi is not None else
                           "no VirtualMachine %r in namespace %s" % (name, ns),
                           "" if vmi is not None else "check the name, or pass -n NAMESPACE")
    refusal = _owner_refusal(vm)
    if refusal:
        raise ClusterError(refusal)
    ref = "virtualmachine.kubevirt.io/%s" % name
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        current = _template_devices(vm).get("useVirtioTransitional")
        current = current if isinstance(current, bool) else None
        pref = _load_preference(cluster, ns, vm)
        before, after = _after(vm, pref, current), _after(vm, pref, desired)
        if current == desired:
            _print_result(args, vm, ref + " unchanged" + suffix, None)
            _preview(args, vm, vmi, pref, before, after, current, desired, changed=False)
            return "unchanged"
        patch = {"metadata": {"resourceVersion": _meta(vm).get("resourceVersion")},
                 "spec": {"template": {"spec": {"domain": {"devices": {"useVirtioTransitional": desired}}}}}}
        if args.dry_run == "client":
            result = _apply_locally(vm, desired)
            if args.output == "table":
                print("would send to %s (merge patch):\n  %s" % (ref, _json(patch)))
            _print_result(args, result, ref + " patched" + suffix, None)
            _preview(args, vm, vmi, pref, before, after, current, desired)
            return "patched"
        from kubectl_virtio.cluster import Conflict

        try:
            result = cluster.patch_vm(ns, name, patch, dry_run=args.dry_run == "server")
        except Conflict:
            if attempt == MAX_CONFLICT_RETRIES:
                raise ClusterError("VirtualMachine %s/%s kept changing under us (%d conflicts); nothing was "
                                   "overwritten" % (ns, name, attempt + 1), "try again")
            print("warning: %s was modified concurrently; re-reading and checking again" % ref, file=sys.stderr)
            vm = cluster.get_vm(ns, name)
            if vm is None:
                raise ClusterError("VirtualMachine %s/%s was deleted meanwhile" % (ns, name))
            continue
        _print_result(args, result, ref + " patched" + suffix, None)
        _preview(args, vm, vmi, pref, before, after, current, desired)
        if args.restart and args.dry_run == "none":
            _restart(cluster, ns, name, vm, vmi)
        return "patched"
    raise AssertionError("unreachable")


def _json(obj) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))


def _apply_locally(vm, desired):
    result = copy.deepcopy(vm)
    devices = result.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {}) \
        .setdefault("domain", {}).setdefault("devices", {})
    if desired is None:
        devices.pop("useVirtioTransitional", None)
    else:
        devices["useVirtioTransitional"] = desired
    return result


def _load_preference(cluster, ns, vm):
    call = _preference_call(cluster, ns, _apply_locally(vm, None))
    if call is None:
        return None
    _, obj = call()
    try:
        return S.preference_from_object(obj) if obj else None
    except Exception:  # noqa: BLE001
        return None


def _after(vm, pref, value) -> Tuple[bool, str]:
    s = S.vm_from_object(_apply_locally(vm, value))
    s.preference = pref
    return s.effective_flag()


def _print_result(args, obj, line, _):
    if args.output in ("json", "yaml"):
        from kubectl_virtio import render

        print(render.dump(obj, args.output))
    else:
        print(line)


def _preview(args, vm, vmi, pref, before, after, current, desired, changed=True):
    """Per device: the model now running and the model after the next start."""
    if args.output != "table":
        return
    running_spec = S.vm_from_object(vmi) if vmi else None
    vm_after = S.vm_from_object(_apply_locally(vm, desired))
    vm_after.preference = pref
    arch = S.arch_from_go(((vmi or {}).get("spec") or {}).get("architecture")) or \
        S.arch_from_go((((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("architecture")) or "amd64"
    now_flag = running_spec.effective_flag()[0] if running_spec else before[0]
    new_flag = after[0]
    rows = []
    for exp in P.predict(vm_after, arch):
        now, then = exp.model(now_flag, arch), exp.model(new_flag, arch)
        if not exp.rule.virtio and now == then and exp.kind not in ("disk", "interface", "input"):
            continue  # usb controller, video: nothing to say
        move = ""
        if now != then and R.T in (now, then):
            move = "PCIe root port -> conventional PCI slot" if then == R.T else "conventional PCI slot -> PCIe root port"
        if move:
            note = move
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
        rows.append([exp.kind, exp.name, now or "-", then or "-", note])
    from kubectl_virtio import render

    print()
    print("useVirtioTransitional: %s -> %s (effective at next start: %s, from %s)"
          % (_show(current), _show(desired), str(after[0]).lower(), after[1]))
    print(render.table(["kind", "name", "running now" if vmi else "model now", "after next start", "note"], rows))
    if desired is None and after[1] == "default":
        print("warning: no preference sets preferredUseVirtioTransitional: after --unset the default false applies",
              file=sys.stderr)
    if vmi and changed and now_flag == new_flag:
        print("\nThe running VM already has these models; the spec change itself applies at the next start.")
    elif vmi and changed:
        if not args.restart or args.dry_run != "none":
            print("\nNext: VM %s is running; the change applies at its next start (KubeVirt shows RestartRequired). "
                  "Restart it: kubectl virtio set-transitional %s --restart (or virtctl restart %s). A guest reboot "
                  "or a live migration does not apply it." % (_meta(vm).get("name"), _meta(vm).get("name"),
                                                              _meta(vm).get("name")))
    elif not vmi and changed:
        print("\nNext: VM %s is not running; the change applies when it starts." % _meta(vm).get("name"))


def _restart(cluster, ns, name, vm, vmi):
    if vmi is None:
        print("VM %s is not running: nothing to restart; the change applies when it starts" % name)
        return
    from kubectl_virtio.cluster import Conflict

    try:
        cluster.restart_vm(ns, name)
    except Conflict as e:
        strategy = (vm.get("spec") or {}).get("runStrategy") or (
            "Always" if (vm.get("spec") or {}).get("running") else "Halted")
        raise ClusterError("KubeVirt refused to restart %s (runStrategy %s): %s" % (name, strategy, e.message),
                           "restart it by hand: virtctl stop %s && virtctl start %s" % (name, name)) from None
    print("virtualmachine.kubevirt.io/%s restart requested: the new models apply when it is back up" % name)
