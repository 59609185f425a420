"""Live commands: resolve VM -> VMI -> virt-launcher pod -> `virsh dumpxml`, patch, restart.

Glue between the CLI, the pure core and the cluster adapter; the adapter is imported
lazily so `--help` stays fast.  Facts: kubevirt-facts.md §3-§5.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio import domain as D
from kubectl_virtio import explain as E
from kubectl_virtio import spec as S
from kubectl_virtio.errors import ClusterError, UsageError

NONROOT_URI = "qemu+unix:///session?socket=/var/run/libvirt/virtqemud-sock"
COMPUTE = "compute"
VM_WORDS = {"vm", "vms", "virtualmachine", "virtualmachines", "virtualmachine.kubevirt.io",
            "virtualmachines.kubevirt.io"}
VMI_WORDS = {"vmi", "vmis", "virtualmachineinstance", "virtualmachineinstances",
             "virtualmachineinstance.kubevirt.io", "virtualmachineinstances.kubevirt.io"}


def parse_ref(text: str) -> Tuple[Optional[str], str]:
    """'NAME', 'vm/NAME', 'vmi/NAME', 'virtualmachine/NAME' -> (kind or None, name)."""
    kind = None
    name = text
    if "/" in text:
        word, name = text.split("/", 1)
        w = word.lower()
        if w in VM_WORDS:
            kind = "vm"
        elif w in VMI_WORDS:
            kind = "vmi"
        else:
            raise UsageError("%r: the resource must be vm/NAME or vmi/NAME (or virtualmachine/NAME), not %s"
                             % (text, word))
    if not S.valid_name(name) or len(name) > 253:
        raise UsageError("%r is not a valid VM name (lower-case letters, digits, '-' and '.')" % name)
    return kind, name


def connect(args):
    from kubectl_virtio.cluster import Cluster  # the only import of the kubernetes client

    return Cluster(args.kubeconfig, args.context, getattr(args, "namespace", None), args.request_timeout)


def _meta(obj) -> Dict[str, Any]:
    return (obj or {}).get("metadata") or {}


def _status(obj) -> Dict[str, Any]:
    return (obj or {}).get("status") or {}


# --- Finding the launcher pod and the live XML --------------------------------------------

def choose_pod(pods: List[Dict[str, Any]], vmi: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], List[E.Finding]]:
    """KubeVirt's choice: the launcher on status.nodeName, running, newest; during a live
    migration the source pod stays authoritative until the migration completes."""
    findings: List[E.Finding] = []
    pods = [p for p in pods if (_meta(p).get("labels") or {}).get("kubevirt.io") == "virt-launcher"]
    if not pods:
        return None, findings
    st = _status(vmi)
    mig = st.get("migrationState") or {}
    if mig and not mig.get("completed") and not mig.get("failed"):
        source = next((p for p in pods if _meta(p).get("name") == mig.get("sourcePod")), None) or next(
            (p for p in pods if (p.get("spec") or {}).get("nodeName") == mig.get("sourceNode")), None)
        if source is not None:
            findings.append(E.Finding("warning", "live migration in progress (%s -> %s): reading the source pod %s; "
                                                 "a migration does not change the models" % (
                                          mig.get("sourceNode") or "?", mig.get("targetNode") or "?",
                                          _meta(source).get("name"))))
            return source, findings
    running = [p for p in pods if _status(p).get("phase") == "Running"] or pods
    node = st.get("nodeName")
    on_node = [p for p in running if (p.get("spec") or {}).get("nodeName") == node] or running
    on_node.sort(key=lambda p: _meta(p).get("creationTimestamp") or "", reverse=True)
    return on_node[0], findings


def nonroot(vmi: Dict[str, Any]) -> bool:
    """vmitrait.IsNonRoot: status.runtimeUser != 0, or the deprecated kubevirt.io/nonroot annotation."""
    user = _status(vmi).get("runtimeUser")
    return (user is not None and user != 0) or "kubevirt.io/nonroot" in (_meta(vmi).get("annotations") or {})


def virsh_dumpxml(cluster, ns: str, pod: str, vmi: Dict[str, Any]) -> str:
    """`virsh [-c URI] dumpxml NS_NAME` in the compute container; the URI KubeVirt's launcher
    uses first (virt-launcher.go createLibvirtConnection), the other form if that fails."""
    name = "%s_%s" % (ns, _meta(vmi).get("name"))
    plain = ["virsh", "dumpxml", name]
    session = ["virsh", "-c", NONROOT_URI, "dumpxml", name]
    attempts = [session, plain] if nonroot(vmi) else [plain, session]
    first = None
    for argv in attempts:
        res = cluster.exec(ns, pod, COMPUTE, argv)
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout
        if first is None:
            first = (argv, res)
        if "failed to get domain" in res.stderr or "Domain not found" in res.stderr:
            break  # the connection worked; another URI will not find it either
    argv, res = first
    msg = (res.stderr.strip() or res.stdout.strip() or "exit status %d" % res.returncode).splitlines()
    raise ClusterError("`%s` failed in pod %s (container %s): %s" % (" ".join(argv), pod, COMPUTE, " ".join(msg[:3])),
                       "is the VM still running? `kubectl get vmi %s -n %s`" % (_meta(vmi).get("name"), ns))


# --- explain VM -------------------------------------------------------------------------

def _preference_call(cluster, ns, vm):
    """The preference that decides when the template leaves the flag unset: the revision
    frozen at start (status.preferenceRef.controllerRevisionRef), else the object itself."""
    if vm is None:
        return None
    tmpl_flag = (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("domain", {}) \
        .get("devices", {}).get("useVirtioTransitional")
    ref = (vm.get("spec") or {}).get("preference")
    if not isinstance(ref, dict) or isinstance(tmpl_flag, bool):
        return None
    rev = ((_status(vm).get("preferenceRef") or {}).get("controllerRevisionRef") or {}).get("name")
    if rev:
        return lambda: ("revision", cluster.get_controller_revision(ns, rev))
    cluster_scoped = (ref.get("kind") or "VirtualMachineClusterPreference") == "VirtualMachineClusterPreference"
    return lambda: ("object", cluster.get_preference(ns, ref.get("name"), cluster_scoped))


def explain(args, version) -> E.Explanation:
    kind, name = parse_ref(args.vm)
    cluster = connect(args)
    ns = cluster.namespace
    if kind == "vmi":
        vm, vmi = None, cluster.get_vmi(ns, name)
    else:
        vm, vmi = cluster.parallel(lambda: cluster.get_vm(ns, name), lambda: cluster.get_vmi(ns, name))
    if vm is None and vmi is None:
        what = "VirtualMachineInstance" if kind == "vmi" else "VirtualMachine or VirtualMachineInstance"
        raise ClusterError("no %s %r in namespace %s" % (what, name, ns),
                           "check the name, or pass -n NAMESPACE (`kubectl get vm -A` lists them all)")
    findings: List[E.Finding] = []
    pods_call = (lambda: ("pods", cluster.list_launcher_pods(ns, _meta(vmi).get("uid")))) if vmi else None
    results = cluster.parallel(pods_call, _preference_call(cluster, ns, vm))
    pods, pref_obj = None, None
    for tag, value in results:
        if tag == "pods":
            pods = value
        else:
            pref_obj = (tag, value)

    vm_spec = S.vm_from_object(vm, "VirtualMachine %s" % name) if vm else S.vm_from_object(vmi, "VMI %s" % name)
    if pref_obj is not None and pref_obj[1] is not None:
        try:
            vm_spec.preference = S.preference_from_object(pref_obj[1])
        except Exception:  # noqa: BLE001 - a revision of another shape: say so, explain without it
            findings.append(E.Finding("warning", "could not read the preference %s" % _meta(pref_obj[1]).get("name")))
    elif pref_obj is not None:
        findings.append(E.Finding("warning", "the VM's preference %s was not found: origin may be wrong"
                                  % ((vm.get("spec") or {}).get("preference") or {}).get("name")))
    running_vmi = S.vm_from_object(vmi, "VMI %s" % name) if vmi else None

    dom = None
    if vmi is None:
        findings.append(E.Finding("info", "VM %s is not running (no VMI): this is the prediction for its next start"
                                  % name))
    elif _status(vmi).get("phase") not in (None, "Running") and not pods:
        findings.append(E.Finding("info", "VMI %s is %s: no domain to read yet" % (name, _status(vmi).get("phase"))))
    else:
        pod, pod_findings = choose_pod(pods or [], vmi)
        findings.extend(pod_findings)
        if pod is None:
            findings.append(E.Finding("warning", "no virt-launcher pod found for VMI %s (label kubevirt.io/created-by=%s)"
                                      % (name, _meta(vmi).get("uid"))))
        else:
            from kubectl_virtio.cluster import Forbidden

            try:
                xml = virsh_dumpxml(cluster, ns, _meta(pod)["name"], vmi)
                dom = D.parse(xml, "the live domain XML of %s" % name)
            except Forbidden as e:
                findings.append(E.Finding("warning", "no live XML: %s (%s); showing the prediction" % (e.message, e.hint)))
                print("warning: cannot exec into %s: %s" % (_meta(pod)["name"], e.message), file=sys.stderr)
    conds = _status(vm).get("conditions") or []
    restart_cond = any(c.get("type") == "RestartRequired" and str(c.get("status")) == "True" for c in conds)
    arch = args.arch
    if not arch and dom is None and vmi is not None:
        arch = S.arch_from_go(((vmi.get("spec") or {}).get("architecture")))
    return E.explain(vm_spec, dom, arch=arch, running_vmi=running_vmi if dom is not None or vmi else None,
                     version=version, restart_condition=restart_cond, guest_os=args.guest_os,
                     namespace=ns, name=name, extra_findings=findings, vm_running=vmi is not None)


# --- dumpxml VM -------------------------------------------------------------------------

def dumpxml(args) -> int:
    kind, name = parse_ref(args.vm)
    cluster = connect(args)
    ns = cluster.namespace
    vmi = cluster.get_vmi(ns, name)
    if vmi is None:
        vm = cluster.get_vm(ns, name) if kind != "vmi" else None
        if vm is not None:
            raise ClusterError("VM %s in namespace %s is not running: there is no domain XML" % (name, ns),
                               "start it (`virtctl start %s`) or use `kubectl virtio explain %s` for the prediction"
                               % (name, name))
        raise ClusterError("no VirtualMachineInstance %r in namespace %s" % (name, ns),
                           "check the name, or pass -n NAMESPACE")
    pod, findings = choose_pod(cluster.list_launcher_pods(ns, _meta(vmi).get("uid")), vmi)
    if pod is None:
        raise ClusterError("no virt-launcher pod for VMI %s in namespace %s" % (name, ns))
    for f in findings:
        print("%s: %s" % (f.severity, f.message), file=sys.stderr)
    sys.stdout.write(virsh_dumpxml(cluster, ns, _meta(pod)["name"], vmi))
    return 0


# --- list -------------------------------------------------------------------------------

def list_vms(args) -> int:
    from kubectl_virtio import render

    cluster = connect(args)
    ns = None if args.all_namespaces else cluster.namespace
    vms, vmis = cluster.parallel(lambda: cluster.list_vms(ns, args.selector), lambda: cluster.list_vmis(ns))
    by_name = {(_meta(v).get("namespace"), _meta(v).get("name")): v for v in vmis}
    rows, items, at_risk = [], [], 0
    for vm in vms:
        key = (_meta(vm).get("namespace"), _meta(vm).get("name"))
        vmi = by_name.get(key)
        s = S.vm_from_object(vm)
        effective, origin = s.effective_flag()
        live = S.vm_from_object(vmi).effective_flag()[0] if vmi else None
        g = E.guests.detect(s.labels, s.annotations, (s.preference_ref or {}).get("name"))
        restart = any(c.get("type") == "RestartRequired" and str(c.get("status")) == "True"
                      for c in _status(vm).get("conditions") or []) or (live is not None and live != effective)
        risk = "-"
        if g is not None and g.virtio1 is False and not effective:
            risk = "HIGH: guest lacks virtio 1.0"
        elif g is not None and g.virtio1 is False and live is False:
            risk = "restart to apply"
        if risk != "-":
            at_risk += 1
        item = {"namespace": key[0], "name": key[1], "running": vmi is not None,
                "useVirtioTransitional": {"effective": effective, "origin": origin, "live": live},
                "guestOS": g.to_dict() if g else None, "restartRequired": restart, "risk": risk}
        items.append(item)
        rows.append([key[0], key[1], "yes" if vmi else "no", "%s (%s)" % (str(effective).lower(), origin),
                     g.id if g else "-", {True: "yes", False: "no", None: "?"}[g.virtio1] if g else "?",
                     "yes" if restart else "no", risk])
    if args.output in ("json", "yaml"):
        print(render.dump({"kind": "VirtioList", "items": items}, args.output))
    elif not rows:
        print("No VirtualMachines found%s." % ("" if ns is None else " in %s namespace" % ns), file=sys.stderr)
    else:
        print(render.table(["namespace", "name", "running", "transitional", "guest os", "virtio 1.0", "restart",
                            "risk"], rows, "markdown" if args.output == "markdown" else "table"))
    return 3 if args.check and at_risk else 0
