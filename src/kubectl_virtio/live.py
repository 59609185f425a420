"""Live commands: resolve VM -> VMI -> virt-launcher pod -> `virsh dumpxml`, patch, restart.

Glue between the CLI, the pure core and the cluster adapter; the adapter is imported
lazily so `--help` stays fast.  Facts: docs/kubevirt.md §3-§5.
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
RUNNING = "Running"  # the only VMI (and launcher pod) phase with a domain to read
GONE = ("Succeeded", "Failed")
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

def migration_in_progress(vmi: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """status.migrationState while a live migration runs (present, neither completed nor failed),
    with the source/target pod and node from the flat fields or, in newer KubeVirt, from
    sourceState/targetState (docs/kubevirt.md §4, VirtualMachineInstanceStatus)."""
    mig = _status(vmi).get("migrationState")
    if not isinstance(mig, dict) or not mig or mig.get("completed") or mig.get("failed"):
        return None
    src = mig.get("sourceState") if isinstance(mig.get("sourceState"), dict) else {}
    dst = mig.get("targetState") if isinstance(mig.get("targetState"), dict) else {}
    return {"sourcePod": mig.get("sourcePod") or src.get("pod"), "sourceNode": mig.get("sourceNode") or src.get("node"),
            "targetPod": mig.get("targetPod") or dst.get("pod"), "targetNode": mig.get("targetNode") or dst.get("node")}


def choose_pod(pods: List[Dict[str, Any]], vmi: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], List[E.Finding]]:
    """KubeVirt's choice: the launcher on status.nodeName, running, newest; during a live
    migration the source pod stays authoritative until the migration completes."""
    findings: List[E.Finding] = []
    pods = [p for p in pods if (_meta(p).get("labels") or {}).get("kubevirt.io") == "virt-launcher"]
    mig = migration_in_progress(vmi)
    source = None
    if mig is not None:
        source = next((p for p in pods if mig["sourcePod"] and _meta(p).get("name") == mig["sourcePod"]), None) or next(
            (p for p in pods if mig["sourceNode"] and (p.get("spec") or {}).get("nodeName") == mig["sourceNode"]), None)
        findings.append(E.Finding("warning", "live migration in progress (%s -> %s): %s; a migration does not change "
                                             "the models" % (
                                      mig["sourceNode"] or "?", mig["targetNode"] or "?",
                                      "reading the source pod %s" % _meta(source).get("name") if source is not None
                                      else "its source pod %s was not found among the launcher pods"
                                      % (mig["sourcePod"] or "?"))))
    if source is not None:
        return source, findings
    if not pods:
        return None, findings
    running = [p for p in pods if _status(p).get("phase") == "Running"] or pods
    node = _status(vmi).get("nodeName")
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

def _preference_source(vm) -> Optional[Dict[str, Any]]:
    """Where the VM's preference (spec.preference) is read from: the revision frozen for the
    VM (status.preferenceRef.controllerRevisionRef, or spec.preference.revisionName in older
    KubeVirt), else the (Cluster)Preference it names.  None: the VM has no preference.
    {"infer": volume}: only `inferFromVolume`, not resolved yet (nothing to GET, and never a LIST)."""
    spec_ref = ((vm or {}).get("spec") or {}).get("preference")
    if not isinstance(spec_ref, dict) or not spec_ref:
        return None
    status_ref = _status(vm).get("preferenceRef")
    status_ref = status_ref if isinstance(status_ref, dict) else {}
    revision = (status_ref.get("controllerRevisionRef") or {}).get("name") or spec_ref.get("revisionName")
    name = spec_ref.get("name") or status_ref.get("name")
    kind = spec_ref.get("kind") or status_ref.get("kind") or ""
    # KubeVirt matches the kind case-insensitively, singular or plural; "" = cluster-scoped
    # (pkg/instancetype/preference/find/spec.go SpecFinder.Find).
    k = kind.lower()
    cluster_scoped = k not in ("virtualmachinepreference", "virtualmachinepreferences")
    if k not in ("", "virtualmachinepreference", "virtualmachinepreferences", "virtualmachineclusterpreference",
                 "virtualmachineclusterpreferences"):
        return {"unknown_kind": kind, "name": name}
    if not revision and not name:
        return {"infer": spec_ref.get("inferFromVolume") or "?"}
    return {"revision": revision, "name": name, "cluster_scoped": cluster_scoped,
            "kind": "VirtualMachineClusterPreference" if cluster_scoped else "VirtualMachinePreference"}


def _preference_call(cluster, ns, vm):
    """A zero-arg callable fetching the preference that applies to the VM (docs/kubevirt.md §3:
    it fills every device preference the template leaves unset, not only the flag), returning
    (tag, object or None); None when there is nothing to fetch."""
    src = _preference_source(vm)
    if not src or "infer" in src or "unknown_kind" in src:
        return None
    if src["revision"]:
        return lambda: ("revision", cluster.get_controller_revision(ns, src["revision"]))
    return lambda: ("object", cluster.get_preference(ns, src["name"], src["cluster_scoped"]))


def _preference_text(vm) -> str:
    src = _preference_source(vm) or {}
    if src.get("revision"):
        return "ControllerRevision %s" % src["revision"]
    return "%s %s" % (src.get("kind") or "preference", src.get("name"))


def explain(args, version) -> E.Explanation:
    from kubectl_virtio.cluster import Forbidden

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
    phase = _status(vmi).get("phase") if vmi else None
    # Only a Running VMI has a domain to read; other phases get the prediction (no pod list).
    pods_call = (lambda: ("pods", cluster.list_launcher_pods(ns, _meta(vmi).get("uid")))) \
        if vmi and phase == RUNNING else None
    pref_call = _preference_call(cluster, ns, vm)

    def guarded_pref():
        try:
            return pref_call()
        except Forbidden as e:  # explain without it, and say which permission is missing
            return ("forbidden", e)

    results = cluster.parallel(pods_call, guarded_pref if pref_call else None)
    pods, pref = None, None
    for tag, value in results:
        if tag == "pods":
            pods = value
        else:
            pref = (tag, value)

    vm_spec = S.vm_from_object(vm, "VirtualMachine %s" % name) if vm else S.vm_from_object(vmi, "VMI %s" % name)
    pref_unknown = _note_preference(vm, vm_spec, pref, findings)
    gone = phase in GONE
    running_vmi = S.vm_from_object(vmi, "VMI %s" % name) if vmi and not gone else None
    if pref_unknown and vm is not None and vm_spec.declared_flag is None and running_vmi is not None:
        # The VMI spec shows what KubeVirt applied from that preference at start (docs/kubevirt.md
        # §3): the best guess for an unchanged frozen revision, rather than a made-up drift.
        flag = bool(running_vmi.declared_flag)
        vm_spec.preference = S.Preference(name=(_preference_source(vm) or {}).get("name") or "", kind="",
                                          spec={"devices": {"preferredUseVirtioTransitional": flag}},
                                          source="running VMI")

    dom = None
    if vmi is None:
        findings.append(E.Finding("info", "VM %s is not running (no VMI): this is the prediction for its next start"
                                  % name))
    elif gone:
        findings.append(E.Finding("info", "VMI %s is %s: its domain is gone; this is the prediction for the next start"
                                  % (name, phase)))
    elif phase != RUNNING:
        findings.append(E.Finding("info", "VMI %s is %s: no domain yet; this is the prediction" % (name, phase or
                                                                                                   "without a phase")))
    else:
        pod, pod_findings = choose_pod(pods or [], vmi)
        findings.extend(pod_findings)
        if pod is None:
            findings.append(E.Finding("warning", "no virt-launcher pod found for VMI %s (label kubevirt.io/created-by=%s)"
                                      % (name, _meta(vmi).get("uid"))))
        elif _status(pod).get("phase") != RUNNING:
            findings.append(E.Finding("info", "virt-launcher pod %s is %s: no domain to read yet; this is the prediction"
                                      % (_meta(pod).get("name"), _status(pod).get("phase") or "without a phase")))
        else:
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
    exp = E.explain(vm_spec, dom, arch=arch, running_vmi=running_vmi,
                    version=version, restart_condition=restart_cond, guest_os=args.guest_os,
                    namespace=ns, name=name, extra_findings=findings, vm_running=vmi is not None and not gone,
                    preference_unread=pref_unknown)
    return exp


def _note_preference(vm, vm_spec, pref, findings) -> bool:
    """Attach the fetched preference to vm_spec; add a finding when it could not be read.
    Returns True when the preference that may decide the flag is unknown."""
    src = _preference_source(vm) if vm is not None else None
    if not src:
        return False
    if "infer" in src:
        findings.append(E.Finding("info", "spec.preference is inferred from volume %s and the VM has no "
                                          "status.preferenceRef yet: the preference is not known until KubeVirt "
                                          "resolves it" % src["infer"]))
        return True
    if "unknown_kind" in src:
        findings.append(E.Finding("warning", "spec.preference.kind %r is not a preference kind KubeVirt knows: "
                                             "the preference is ignored here" % src["unknown_kind"]))
        return True
    tag, obj = pref if pref is not None else (None, None)
    if tag == "forbidden":
        findings.append(E.Finding("warning", "cannot read the VM's preference (%s): %s; %s. Its device preferences "
                                             "are left out, and where an unset useVirtioTransitional comes from is "
                                             "unknown" % (_preference_text(vm), obj.message, obj.hint)))
        return True
    if obj is None:
        findings.append(E.Finding("warning", "the VM's preference (%s) was not found: its device preferences are "
                                             "left out and the origin may be wrong" % _preference_text(vm)))
        return True
    try:
        vm_spec.preference = S.preference_from_object(obj)
    except Exception:  # noqa: BLE001 - a revision of another shape: say so, explain without it
        findings.append(E.Finding("warning", "could not read the preference in %s" % _preference_text(vm)))
        return True
    return False


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
    phase = _status(vmi).get("phase")
    if phase != RUNNING:
        raise ClusterError("VMI %s in namespace %s is %s: there is no domain XML %s" % (
            name, ns, phase or "without a phase", "any more" if phase in GONE else "yet"),
            "`kubectl get vmi %s -n %s -w` shows when it runs; `kubectl virtio explain %s` predicts the models"
            % (name, ns, name))
    pod, findings = choose_pod(cluster.list_launcher_pods(ns, _meta(vmi).get("uid")), vmi)
    if pod is None:
        raise ClusterError("no virt-launcher pod for VMI %s in namespace %s" % (name, ns))
    if _status(pod).get("phase") != RUNNING:
        raise ClusterError("virt-launcher pod %s is %s: there is no domain XML yet"
                           % (_meta(pod).get("name"), _status(pod).get("phase") or "without a phase"),
                           "`kubectl get pod %s -n %s` shows why" % (_meta(pod).get("name"), ns))
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
