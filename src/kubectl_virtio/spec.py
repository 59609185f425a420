"""Read KubeVirt manifests: the VMI spec that applies, the effective useVirtioTransitional
and where it comes from.  Pure: callers hand in text or objects, nothing here does I/O.

Facts: docs/kubevirt.md §3 (API fields, preference application) and §1 (defaults).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio.errors import InputError

VM_KINDS = ("VirtualMachine", "VirtualMachineInstance", "VirtualMachinePool", "VirtualMachineInstanceReplicaSet")
PREFERENCE_KINDS = ("VirtualMachinePreference", "VirtualMachineClusterPreference")
KNOWN_KINDS = VM_KINDS + PREFERENCE_KINDS + ("ControllerRevision",)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def valid_name(name: str) -> bool:
    """A Kubernetes object name (DNS-1123 subdomain), as VMs must have."""
    return bool(name) and len(name) <= 253 and bool(_NAME_RE.match(name))


# --- Loading ------------------------------------------------------------------------------

def load_documents(text: str, source: str = "manifest") -> List[Dict[str, Any]]:
    """YAML (multi-document) or JSON text -> objects; a `List` is flattened."""
    if len(text.encode("utf-8", errors="replace")) > MAX_MANIFEST_BYTES:
        raise InputError("%s is larger than %d bytes; that is not a VM manifest" % (source, MAX_MANIFEST_BYTES))
    stripped = text.lstrip()
    if not stripped:
        raise InputError("%s is empty" % source)
    docs: List[Any]
    if stripped.startswith(("{", "[")):
        try:
            parsed = json.loads(text)
            docs = parsed if isinstance(parsed, list) else [parsed]
        except ValueError:
            docs = _load_yaml(text, source)
    else:
        docs = _load_yaml(text, source)
    out: List[Dict[str, Any]] = []
    for d in docs:
        if d is None:
            continue
        if not isinstance(d, dict):
            raise InputError("%s: a document is a %s, not a Kubernetes object" % (source, type(d).__name__))
        if d.get("kind") == "List" or (str(d.get("kind", "")).endswith("List") and "items" in d):
            items = d.get("items") or []
            if not isinstance(items, list):
                raise InputError("%s: `items` of the %s is not a list" % (source, d.get("kind")))
            out.extend(i for i in items if isinstance(i, dict))
        else:
            out.append(d)
    if not out:
        raise InputError("%s holds no Kubernetes object" % source)
    return out


def _load_yaml(text: str, source: str) -> List[Any]:
    import yaml  # deferred: only manifests need it

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses alias bombs (a few aliases are legitimate YAML)."""

        aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                Loader.aliases += 1
                if Loader.aliases > 100:
                    raise InputError("%s uses more than 100 YAML aliases; refused" % source)
            return super().compose_node(parent, index)

    try:
        return list(yaml.load_all(text, Loader=Loader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError("%s is not valid YAML or JSON%s: %s" % (source, where, problem)) from None


# --- The spec that applies ----------------------------------------------------------------

@dataclass
class Preference:
    name: str
    kind: str
    spec: Dict[str, Any]
    source: str = "manifest"  # manifest | revision | cluster object

    @property
    def devices(self) -> Dict[str, Any]:
        return _dict(self.spec.get("devices"))


@dataclass
class VMSpec:
    """A VM or VMI as KubeVirt will build it: the VMI spec plus where the flag comes from."""

    kind: str
    name: str
    namespace: Optional[str]
    vmi_spec: Dict[str, Any]
    labels: Dict[str, str] = field(default_factory=dict)
    annotations: Dict[str, str] = field(default_factory=dict)
    preference_ref: Optional[Dict[str, Any]] = None  # spec.preference of the VM
    preference: Optional[Preference] = None
    raw: Dict[str, Any] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)  # what reading the manifests noticed

    @property
    def devices(self) -> Dict[str, Any]:
        return _dict(_dict(self.vmi_spec.get("domain")).get("devices"))

    @property
    def declared_flag(self) -> Optional[bool]:
        v = self.devices.get("useVirtioTransitional")
        return v if isinstance(v, bool) else None

    @property
    def architecture(self) -> Optional[str]:
        a = self.vmi_spec.get("architecture")
        return a if isinstance(a, str) and a else None

    def effective_flag(self) -> Tuple[bool, str]:
        """(value, origin): the template's/VMI's own value wins, even an explicit false; else
        the preference's preferredUseVirtioTransitional; else the default false
        (pkg/instancetype/preference/apply/device.go ApplyDevicePreferences)."""
        if self.kind == "VirtualMachineInstance":
            # A VMI's spec is final: virt-controller already applied the preference to it.
            return bool(self.declared_flag), "vmi"
        if self.declared_flag is not None:
            return self.declared_flag, "vm"
        if self.preference is not None:
            p = self.preference.devices.get("preferredUseVirtioTransitional")
            if isinstance(p, bool):
                return p, "preference"
        return False, "default"


def _dict(v) -> Dict[str, Any]:
    return v if isinstance(v, dict) else {}


def kind_of(obj: Dict[str, Any]) -> str:
    return str(obj.get("kind") or "")


def vm_from_object(obj: Dict[str, Any], source: str = "manifest") -> VMSpec:
    kind = kind_of(obj)
    meta = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    name = meta.get("name") or meta.get("generateName") or ""
    if kind == "VirtualMachineInstance":
        vmi_spec, tmeta = spec, meta
    elif kind == "VirtualMachine":
        template = _dict(spec.get("template"))
        vmi_spec, tmeta = _dict(template.get("spec")), _dict(template.get("metadata"))
    elif kind == "VirtualMachinePool":
        vm_template = _dict(spec.get("virtualMachineTemplate"))
        template = _dict(_dict(vm_template.get("spec")).get("template"))
        vmi_spec, tmeta = _dict(template.get("spec")), _dict(template.get("metadata"))
        spec = _dict(vm_template.get("spec"))
    elif kind == "VirtualMachineInstanceReplicaSet":
        template = _dict(spec.get("template"))
        vmi_spec, tmeta = _dict(template.get("spec")), _dict(template.get("metadata"))
    else:
        raise InputError("%s is a %s; expected a VirtualMachine or VirtualMachineInstance" % (source, kind or "object without kind"))
    if not isinstance(obj.get("spec"), dict):
        raise InputError("%s: %s %r has no spec" % (source, kind, name))
    if not name:
        raise InputError("%s: the %s has no metadata.name" % (source, kind))
    if not valid_name(str(name).rstrip("-")):
        raise InputError("%s: %r is not a valid Kubernetes name" % (source, name))
    labels = dict(_dict(meta.get("labels")))
    labels.update(_dict(tmeta.get("labels")))
    annotations = dict(_dict(meta.get("annotations")))
    annotations.update(_dict(tmeta.get("annotations")))
    pref_ref = spec.get("preference") if kind != "VirtualMachineInstance" else None
    return VMSpec(kind=kind, name=str(name), namespace=meta.get("namespace"), vmi_spec=vmi_spec, labels=labels,
                  annotations=annotations, preference_ref=pref_ref if isinstance(pref_ref, dict) else None, raw=obj)


def preference_from_object(obj: Dict[str, Any]) -> Preference:
    kind = kind_of(obj)
    meta = _dict(obj.get("metadata"))
    if kind == "ControllerRevision":
        data = _dict(obj.get("data"))
        inner = preference_from_object(data) if kind_of(data) in PREFERENCE_KINDS else None
        if inner is None:
            raise InputError("ControllerRevision %r does not hold a preference" % meta.get("name"))
        inner.source = "revision %s" % meta.get("name")
        return inner
    return Preference(name=str(meta.get("name") or ""), kind=kind, spec=_dict(obj.get("spec")))


def select(objects: List[Dict[str, Any]], source: str = "manifest") -> VMSpec:
    """From the documents of -f: the one VM/VMI and, if given, its preference."""
    vms = [o for o in objects if kind_of(o) in VM_KINDS]
    prefs = [o for o in objects if kind_of(o) in PREFERENCE_KINDS or kind_of(o) == "ControllerRevision"]
    others = [kind_of(o) or "(no kind)" for o in objects if kind_of(o) not in KNOWN_KINDS]
    if not vms:
        what = ", ".join(sorted(set(others))) or "only preferences"
        raise InputError("%s has no VirtualMachine or VirtualMachineInstance (found: %s)" % (source, what))
    if len(vms) > 1:
        names = ", ".join("%s/%s" % (kind_of(v), _dict(v.get("metadata")).get("name")) for v in vms)
        raise InputError("%s holds %d VMs (%s); explain takes one" % (source, len(vms), names),
                         "split the file, or pass the one VM with -f")
    vm = vm_from_object(vms[0], source)
    if prefs:
        vm.preference = _matching_preference(vm, [preference_from_object(p) for p in prefs])
    return vm


def _matching_preference(vm: VMSpec, prefs: List[Preference]) -> Optional[Preference]:
    """The preference KubeVirt applies: the one spec.preference names, of its kind (default
    VirtualMachineClusterPreference; docs/kubevirt.md §3).  Others are ignored, with a warning."""
    names = ", ".join("%s %s" % (p.kind, p.name) for p in prefs)
    if vm.kind == "VirtualMachineInstance":
        vm.warnings.append("a VMI's spec already has its preference applied: ignoring %s" % names)
        return None
    ref = vm.preference_ref
    if not ref or not ref.get("name"):
        vm.warnings.append("the %s references no preference by name (spec.preference.name): ignoring %s"
                           % (vm.kind, names))
        return None
    kind = str(ref.get("kind") or "VirtualMachineClusterPreference").lower()
    for p in prefs:
        if p.name == ref["name"] and p.kind.lower() == kind:
            return p
    vm.warnings.append("the %s uses %s %s, which is not among the files given (%s): ignoring it; the origin "
                       "may be wrong" % (vm.kind, ref.get("kind") or "VirtualMachineClusterPreference",
                                         ref["name"], names))
    return None


def arch_from_go(arch: Optional[str]) -> Optional[str]:
    """spec.architecture / node labels use Go names (amd64, arm64, s390x); accept QEMU's too."""
    if not arch:
        return None
    a = arch.lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(a, a)
