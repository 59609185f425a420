"""`list --from DIR`: fleet rows from a KubeVirt must-gather, or any directory of manifests and
`virsh dumpxml` files.  Pure with respect to the cluster: reads only files under DIR.

Layout written by kubevirt/must-gather (collection-scripts, see docs/fleet.md):
  namespaces/<ns>/kubevirt.io/virtualmachines/<type>/<vm>.yaml        (cmd/vmConvertor)
  namespaces/<ns>/kubevirt.io/virtualmachineinstances/<vmi>.yaml      (oc adm inspect)
  namespaces/<ns>/pods/<pod>/<pod>.yaml                               (oc adm inspect)
  namespaces/<ns>/vms/<vm>/<pod>.dumpxml.xml                          (gather_vms_details)
  namespaces/<ns>/vms/<vm>/virtio-driver-installed.json               (gather_virtio_driver_check, Windows)
  namespaces/<ns>/vms/<vm>/virtio-driver-report.json                  (gather_virtio_driver_check)
  cluster-scoped-resources/instancetype.kubevirt.io/virtualmachineclusterpreferences/<name>.yaml
  namespaces/<ns>/instancetype.kubevirt.io/virtualmachinepreferences/<name>.yaml
Any other directory works too: every *.yaml/*.yml/*.json file is searched for VMs, VMIs,
launcher pods and preferences (multi-document and List files included), every *.xml for
domains (a domain named <ns>_<vm> belongs to that VM, KubeVirt's naming).

Bounded: symlinks are not followed, at most MAX_FILES files are looked at, YAML/JSON files
over spec.MAX_MANIFEST_BYTES, XML over domain.MAX_BYTES and driver-check files over
guests.MAX_DRIVER_CHECK are skipped with a warning, YAML is read with the project's safe
loader, XML with domain.parse (no DTD, no entities).
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

from kubectl_virtio import fleet as F
from kubectl_virtio.errors import InputError, VirtioError

MAX_FILES = 200_000
MAX_DEPTH = 16
_KIND_RE = re.compile(r'^\s*"?kind"?\s*:\s*"?(VirtualMachine|VirtualMachineInstance|VirtualMachineClusterPreference|'
                      r'VirtualMachinePreference|Pod|List|VirtualMachineList|VirtualMachineInstanceList|PodList)"?\s*,?\s*$',
                      re.M)
_DOMAIN_NAME_RE = re.compile(rb"<name>([^<]{1,300})</name>")

Key = Tuple[str, str]


class Index:
    """What the directory holds, by (namespace, name)."""

    def __init__(self) -> None:
        self.vms: Dict[Key, Dict[str, Any]] = {}
        self.vmis: Dict[Key, Dict[str, Any]] = {}
        self.pods: Dict[str, List[Dict[str, Any]]] = {}   # VMI uid -> launcher pods
        self.prefs: Dict[Tuple[bool, str, str], Dict[str, Any]] = {}
        self.domains: Dict[Key, str] = {}                   # (ns, vm) -> dumpxml path
        self.drivers: Dict[Key, str] = {}                   # (ns, vm) -> virtio-driver-installed.json path
        self.reports: Dict[Key, str] = {}                   # (ns, vm) -> virtio-driver-report.json path
        self.warnings: List[str] = []
        self.files = 0


def _walk(root: str) -> Iterator[str]:
    """Files under root, symlinks not followed, depth-bounded, sorted for a stable order."""
    base_depth = root.rstrip(os.sep).count(os.sep)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if dirpath.count(os.sep) - base_depth >= MAX_DEPTH:
            dirnames[:] = []
        dirnames.sort()
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                yield p


def _read(path: str, limit: int) -> Optional[bytes]:
    try:
        if os.path.getsize(path) > limit:
            return None
        with open(path, "rb") as fh:
            return fh.read(limit + 1)
    except OSError:
        return None


def scan(root: str) -> Index:
    from kubectl_virtio import domain as D
    from kubectl_virtio import guests as G
    from kubectl_virtio import spec as S

    if not os.path.isdir(root):
        raise InputError("--from %s: not a directory" % root,
                         "pass the must-gather directory (or a folder of manifests and dumpxml files)")
    idx = Index()
    for path in _walk(root):
        idx.files += 1
        if idx.files > MAX_FILES:
            idx.warnings.append("stopped after %d files" % MAX_FILES)
            break
        low = path.lower()
        rel = os.path.relpath(path, root)
        if low.endswith(".xml"):
            if not (low.endswith(".dumpxml.xml") or "/vms/" not in rel.replace(os.sep, "/")):
                continue  # capabilities/domcapabilities of gather_vms_details
            data = _read(path, D.MAX_BYTES)
            if data is None:
                idx.warnings.append("%s skipped: larger than %d bytes" % (rel, D.MAX_BYTES))
                continue
            if not re.search(rb"<domain[\s>]", data[:4096]):
                continue
            key = _domain_key(rel, data)
            if key:
                idx.domains.setdefault(key, path)
            continue
        if os.path.basename(path) in (G.DRIVER_CHECK_FILE, G.DRIVER_REPORT_FILE):
            key = _vm_dir_key(rel)
            if key:
                (idx.drivers if os.path.basename(path) == G.DRIVER_CHECK_FILE else idx.reports).setdefault(key, path)
            continue
        if not low.endswith((".yaml", ".yml", ".json")):
            continue
        data = _read(path, S.MAX_MANIFEST_BYTES)
        if data is None:
            if os.path.getsize(path) > S.MAX_MANIFEST_BYTES and b"kubevirt" in (_head(path) or b""):
                idx.warnings.append("%s skipped: larger than %d bytes" % (rel, S.MAX_MANIFEST_BYTES))
            continue
        text = data.decode("utf-8", "replace")
        if not _KIND_RE.search(text) or ("kubevirt" not in text):
            continue
        try:
            docs = S.load_documents(text, rel)
        except InputError as e:
            idx.warnings.append(e.message)
            continue
        for d in docs:
            _add(idx, d)
    return idx


def _head(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as fh:
            return fh.read(4096)
    except OSError:
        return None


def _vm_dir_key(rel: str) -> Optional[Key]:
    """(ns, vm) of a file in must-gather's per-VM directory namespaces/<ns>/vms/<vm>/."""
    parts = rel.replace(os.sep, "/").split("/")
    if len(parts) >= 5 and parts[-5] == "namespaces" and parts[-3] == "vms":
        return parts[-4], parts[-2]
    return None


def _domain_key(rel: str, data: bytes) -> Optional[Key]:
    # namespaces/<ns>/vms/<vm>/<pod>.dumpxml.xml
    key = _vm_dir_key(rel)
    if key:
        return key
    m = _DOMAIN_NAME_RE.search(data)
    if m:
        name = m.group(1).decode("utf-8", "replace").strip()
        ns, sep, vm = name.partition("_")
        if sep:
            return ns, vm
    return None


def _add(idx: Index, obj: Dict[str, Any]) -> None:
    kind = obj.get("kind")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    if not key[1]:
        return
    if kind == "VirtualMachine":
        idx.vms[key] = obj
    elif kind == "VirtualMachineInstance":
        idx.vmis[key] = obj
    elif kind == "Pod" and (meta.get("labels") or {}).get("kubevirt.io") == "virt-launcher":
        uid = (meta.get("labels") or {}).get("kubevirt.io/created-by")
        if uid:
            idx.pods.setdefault(str(uid), []).append(obj)
    elif kind == "VirtualMachineClusterPreference":
        idx.prefs[(True, "", key[1])] = obj
    elif kind == "VirtualMachinePreference":
        idx.prefs[(False, key[0], key[1])] = obj


def _preference(idx: Index, vm: Dict[str, Any]):
    """The VM's preference as read from the directory (context.PreferenceRead) or None."""
    from kubectl_virtio import context as C
    from kubectl_virtio import spec as S

    src = C.preference_source(vm)
    if src is None or not src.fetchable:
        return None
    if not src.name:
        return C.PreferenceRead(problem="the VM's preference (%s) is only known by its revision" % src.text())
    ns = "" if src.cluster_scoped else str(C.meta(vm).get("namespace") or "")
    obj = idx.prefs.get((src.cluster_scoped, ns, src.name))
    if obj is None:
        return C.PreferenceRead(problem="the VM's preference (%s) is not in the directory" % src.text(),
                                reason="preference %s not in the directory" % src.name)
    try:
        return C.PreferenceRead(S.preference_from_object(obj))
    except InputError as e:
        return C.PreferenceRead(problem=e.message)


def inputs(root: str, namespace: Optional[str] = None, guest_os: Optional[str] = None,
           err=None, override=None) -> Iterator[Tuple[F.FleetInput, None]]:
    """(input, None) for every VM and standalone VMI found, sorted by namespace/name; each
    resolved into the same VM context as a live cluster gives (context.build)."""
    from kubectl_virtio import context as C
    from kubectl_virtio import domain as D

    err = err or sys.stderr
    idx = scan(root)
    from kubectl_virtio import render

    render.warnings(err, idx.warnings[:20])
    warned: set = set()
    bad_driver_files = 0
    keys = sorted(set(idx.vms) | {k for k in idx.vmis if k not in idx.vms}
                  | {k for k in idx.domains if k not in idx.vms and k not in idx.vmis},
                  key=lambda k: "%s/%s" % k)
    for key in keys:
        if namespace and key[0] != namespace:
            continue
        vm, vmi = idx.vms.get(key), idx.vmis.get(key)
        ctx = None
        if vm is None and vmi is None:
            inp = F.FleetInput(key[0], key[1], kind="Domain", running=True)
        else:
            pods = idx.pods.get(str(C.meta(vmi).get("uid") or ""), []) if vmi is not None else []
            try:
                chosen = C.choose_pod(pods, vmi)[0] if pods else None
                rel = C.choose_release(override, C.status(vmi).get("launcherContainerImageVersion") if vmi else None,
                                       C.compute_image(chosen) if chosen is not None else None)
                for n in rel.notes:  # a release older/newer than the rules know: once a run
                    if n.severity == "warning" and n.message not in warned and len(warned) < 64:
                        warned.add(n.message)
                        render.warnings(err, [n.message])
                ctx = C.build(vm, vmi, release=rel, pods=pods, pref=_preference(idx, vm) if vm is not None else None)
                inp = F.input_from_context(ctx, guest_os)
            except (VirtioError, ValueError) as e:
                inp = F.FleetInput(key[0], key[1], error=getattr(e, "message", None) or str(e))
        path = idx.domains.get(key)
        if path is not None:
            try:
                with open(path, "rb") as fh:
                    dom = D.parse(fh.read(D.MAX_BYTES + 1), os.path.relpath(path, root))
                F.apply_domain(inp, dom, vm, vmi, ctx=ctx)
                inp.running = True
            except VirtioError as e:
                inp.error = e.message
        path = idx.drivers.get(key)
        if path is not None:
            problem = _apply_driver_check(inp, path, idx.reports.get(key), root)
            if problem and bad_driver_files < 20:
                bad_driver_files += 1
                render.warnings(err, [problem])
        yield inp, None


def _apply_driver_check(inp: F.FleetInput, path: str, report: Optional[str], root: str) -> Optional[str]:
    """The VM's Windows driver check (virtio-driver-installed.json and, for its OUTDATED
    note, virtio-driver-report.json; docs/fleet.md) into its row's guest.  A file that cannot
    be read or parsed is left out and the warning to print is returned."""
    from kubectl_virtio import guests as G

    def parsed(p: str, parse):
        data = _read(p, G.MAX_DRIVER_CHECK)
        if data is None:
            raise ValueError("cannot be read or larger than %d bytes" % G.MAX_DRIVER_CHECK)
        return parse(data)

    rel = os.path.relpath(path, root)
    try:
        devices = parsed(path, G.parse_driver_check)
    except ValueError as e:
        return "%s ignored: %s" % (rel, e)
    outdated, problem = [], None
    if report is not None:
        try:
            outdated = parsed(report, G.parse_driver_report)
        except ValueError as e:
            problem = "%s ignored: %s" % (os.path.relpath(report, root), e)
    inp.guest = G.driver_check_guest(inp.guest, devices, rel, outdated)
    return problem
