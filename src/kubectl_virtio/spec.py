"""Read KubeVirt manifests: the VMI spec that applies, the effective useVirtioTransitional
and where it comes from.  Pure: callers hand in text or objects, nothing here does I/O.

Facts: docs/kubevirt.md §3 (API fields, preference application) and §1 (defaults).
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio.errors import InputError
from kubectl_virtio.record import Record

VM_KINDS = ("VirtualMachine", "VirtualMachineInstance", "VirtualMachinePool", "VirtualMachineInstanceReplicaSet")
PREFERENCE_KINDS = ("VirtualMachinePreference", "VirtualMachineClusterPreference")
KNOWN_KINDS = VM_KINDS + PREFERENCE_KINDS + ("ControllerRevision",)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def valid_name(name: str) -> bool:
    """A Kubernetes object name (DNS-1123 subdomain), as VMs must have."""
    return bool(name) and len(name) <= 253 and bool(_NAME_RE.match(name))


# --- Loading ------------------------------------------------------------------------------

# Bounds on what a manifest may cost.  A VM manifest nests ~15 levels deep; a List of a few
# hundred VMs has some 10^5 nodes.  Aliases are legitimate YAML, but each one re-uses a whole
# subtree: nine levels of nine aliases (a 500-byte file) stand for 9^9 nodes, which cost
# minutes and gigabytes as soon as anything walks or prints them.
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 200_000
MAX_ECHO = 120


def clip(text, limit: int = MAX_ECHO) -> str:
    """`text` cut to `limit` characters for a message (never echo unbounded input)."""
    text = text if isinstance(text, str) else repr(text) if isinstance(text, (int, float, bool)) else \
        "a %s" % _type_name(text)
    return text if len(text) <= limit else text[:limit] + "... (%d characters)" % len(text)


def _type_name(v) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(v), type(v).__name__)


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
        except RecursionError:
            raise InputError("%s is nested too deeply (more than %d levels); that is not a VM manifest"
                             % (source, MAX_DEPTH)) from None
        except ValueError:
            docs = _load_yaml(text, source)
        else:
            check_depth(parsed, source)
            docs = parsed if isinstance(parsed, list) else [parsed]
    else:
        docs = _load_yaml(text, source)
    out: List[Dict[str, Any]] = []
    for d in docs:
        if d is None:
            continue
        if not isinstance(d, dict):
            raise InputError("%s: a document is a %s, not a Kubernetes object" % (source, _type_name(d)))
        kind = d.get("kind")
        if isinstance(kind, str) and (kind == "List" or (kind.endswith("List") and "items" in d)):
            items = d.get("items") or []
            if not isinstance(items, list):
                raise InputError("%s: `items` of the %s is a %s, not a list" % (source, clip(kind), _type_name(items)))
            out.extend(i for i in items if isinstance(i, dict))
        else:
            out.append(d)
    if not out:
        raise InputError("%s holds no Kubernetes object" % source)
    return out


def check_depth(obj: Any, source: str, limit: int = MAX_DEPTH) -> None:
    """Refuse objects nested deeper than `limit` (iteratively: deep input must not recurse)."""
    stack = [(obj, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > limit:
            raise InputError("%s is nested too deeply (more than %d levels); that is not a VM manifest"
                             % (source, limit))
        stack.extend((c, depth + 1) for c in children)


def _load_yaml(text: str, source: str) -> List[Any]:
    import yaml  # deferred: only manifests need it

    too_deep = "%s is nested too deeply (more than %d levels); that is not a VM manifest" % (source, MAX_DEPTH)

    class Loader(yaml.SafeLoader):
        """SafeLoader with bounded nesting and bounded alias expansion."""

        depth = 0
        aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                self.aliases += 1
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise InputError(too_deep)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def compose_document(self):
            node = super().compose_document()
            if self.aliases:
                _check_expansion(node, source)
            return node

    loader = None
    try:
        loader = Loader(text)  # the reader checks the characters here already
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError("%s is not valid YAML or JSON%s: %s" % (source, where, clip(problem))) from None
    except RecursionError:  # a construct path we did not bound: still no traceback
        raise InputError(too_deep) from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_expansion(root, source: str) -> None:
    """The number of nodes the document stands for once every alias is expanded, counted on
    the node graph (each distinct node once, so this costs as much as the text)."""
    import yaml

    size: Dict[int, int] = {}
    visiting = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        if not done and id(node) in visiting:
            raise InputError("%s uses a YAML alias inside its own anchor (a recursive structure); refused" % source)
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            size[id(node)] = 1
            continue
        if not done:
            visiting.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
            continue
        total = 1 + sum(size.get(id(c), 1) for c in children)
        if total > MAX_EXPANDED_NODES:
            raise InputError("%s uses YAML aliases that expand to more than %d nodes (an alias bomb?); refused"
                             % (source, MAX_EXPANDED_NODES))
        size[id(node)] = total


# --- The spec that applies ----------------------------------------------------------------

class Preference(Record):
    __slots__ = _fields = ("name", "kind", "spec", "source")

    def __init__(self, name: str, kind: str, spec: Dict[str, Any],
                 source: str = "manifest"):  # manifest | revision | cluster object
        self.name, self.kind, self.spec, self.source = name, kind, spec, source

    @property
    def devices(self) -> Dict[str, Any]:
        return _dict(self.spec.get("devices"))


class VMSpec(Record):
    """A VM or VMI as KubeVirt will build it: the VMI spec plus where the flag comes from."""

    __slots__ = _fields = ("kind", "name", "namespace", "vmi_spec", "labels", "annotations", "preference_ref",
                           "preference", "raw", "warnings", "preference_unread")

    def __init__(self, kind: str, name: str, namespace: Optional[str], vmi_spec: Dict[str, Any],
                 labels: Optional[Dict[str, str]] = None, annotations: Optional[Dict[str, str]] = None,
                 preference_ref: Optional[Dict[str, Any]] = None,  # spec.preference of the VM
                 preference: Optional[Preference] = None, raw: Optional[Dict[str, Any]] = None,
                 warnings: Optional[List[str]] = None,  # what reading the manifests noticed
                 # The VM names a preference that was not given (offline: not among the -f
                 # files), so a flag the template leaves unset is a guess.
                 preference_unread: bool = False):
        self.kind, self.name, self.namespace, self.vmi_spec = kind, name, namespace, vmi_spec
        self.labels = labels if labels is not None else {}
        self.annotations = annotations if annotations is not None else {}
        self.preference_ref, self.preference = preference_ref, preference
        self.raw = raw if raw is not None else {}
        self.warnings = warnings if warnings is not None else []
        self.preference_unread = preference_unread

    @property
    def preference_name(self) -> Optional[str]:
        """The preference spec.preference names (kind and name), e.g. `VirtualMachineClusterPreference
        u1.small`, or None."""
        ref = self.preference_ref or {}
        if ref.get("name"):
            return "%s %s" % (ref.get("kind") or "VirtualMachineClusterPreference", clip(ref["name"], 80))
        if ref.get("inferFromVolume"):
            return "inferred from volume %s" % clip(ref["inferFromVolume"], 80)
        return None

    def preference_hint(self) -> str:
        """How to hand the preference to `explain -f` (short names from KubeVirt's CRDs:
        pkg/virt-operator/resource/generate/components/crds.go)."""
        ref = self.preference_ref or {}
        name = ref.get("name")
        if not name:
            return "pass the preference KubeVirt resolved with -f (the VM's status.preferenceRef names it)"
        if str(ref.get("kind") or "").lower() in ("virtualmachinepreference", "vmpref"):
            get = "kubectl get vmpref %s%s -o yaml > pref.yaml" % (
                clip(name, 80), " -n %s" % self.namespace if self.namespace else "")
        else:
            get = "kubectl get vmcp %s -o yaml > pref.yaml" % clip(name, 80)
        return "pass it with -f pref.yaml (`%s`)" % get

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
    k = obj.get("kind")
    return k if isinstance(k, str) else ""


# --- Shapes -------------------------------------------------------------------------------
# The fields the prediction reads, with the types KubeVirt's API gives them
# (staging/src/kubevirt.io/api/core/v1/types.go, schema.go; instancetype/v1beta1/types.go).
# A field of another type is a manifest the API server would refuse: it gets an error
# naming the field, not a crash.  null is the same as absent, as for the API server.
STR, BOOL, DICT = str, bool, dict
_BUS = {"bus": STR}
_NAMED = {"name": STR}
DEVICES_SHAPE: Dict[str, Any] = {
    "useVirtioTransitional": BOOL, "autoattachPodInterface": BOOL, "autoattachInputDevice": BOOL,
    "autoattachSerialConsole": BOOL, "autoattachMemBalloon": BOOL, "autoattachGraphicsDevice": BOOL,
    "autoattachVSOCK": BOOL, "disableHotplug": BOOL,
    "disks": [{"name": STR, "disk": _BUS, "lun": _BUS, "cdrom": _BUS}],
    "interfaces": [{"name": STR, "model": STR, "state": STR, "binding": _NAMED, "sriov": DICT,
                    "masquerade": DICT, "bridge": DICT}],
    "inputs": [{"name": STR, "bus": STR, "type": STR}],
    "filesystems": [{"name": STR, "virtiofs": DICT}],
    "gpus": [_NAMED], "hostDevices": [_NAMED],
    "rng": DICT, "video": {"type": STR}, "watchdog": _NAMED, "sound": {"name": STR, "model": STR},
    "tpm": {"persistent": BOOL}, "clientPassthrough": DICT,
}
VMI_SPEC_SHAPE: Dict[str, Any] = {
    "domain": {"devices": DEVICES_SHAPE, "firmware": {"bootloader": DICT}, "machine": {"type": STR}},
    "volumes": [{"name": STR, "downwardMetrics": DICT}],
    "networks": [DICT],
    "architecture": STR,
}
PREFERENCE_SHAPE: Dict[str, Any] = {"devices": dict(
    {k: BOOL for k in ("preferredUseVirtioTransitional", "preferredAutoattachPodInterface",
                       "preferredAutoattachInputDevice", "preferredAutoattachSerialConsole",
                       "preferredAutoattachMemBalloon", "preferredAutoattachGraphicsDevice",
                       "preferredDisableHotplug")},
    **{k: STR for k in ("preferredDiskBus", "preferredLunBus", "preferredCdromBus", "preferredInterfaceModel",
                        "preferredInputBus", "preferredSoundModel")},
    preferredRng=DICT, preferredTPM=DICT)}
METADATA_SHAPE: Dict[str, Any] = {"name": STR, "generateName": STR, "namespace": STR, "labels": DICT,
                                  "annotations": DICT}
_TYPE_WORD = {str: "a string", bool: "true or false", dict: "a mapping", list: "a list"}


def shaped(value: Any, shape: Any, path: str, source: str) -> Any:
    """`value` checked against `shape` (a type, a dict of field shapes, or [item shape]).
    Returns a copy along the checked paths with null fields dropped; raises InputError
    naming the first field of the wrong type.  (The field's path is spelled out only for
    that error: `list` checks every VM and VMI of a fleet, and formatting the path of each
    field cost more than checking it.)  A first pass (_fast_dict) checks and copies without
    tracking the path at all; only when it meets a wrong type does the path-tracking walk run
    again, which names the same first wrong field as it always has."""
    if type(shape) is dict and isinstance(value, dict):
        try:
            return _fast_dict(value, shape)
        except _Mismatch:
            pass
    return _shaped(value, shape, [path] if path else [], source)


class _Mismatch(Exception):
    """A wrong type met by _fast_dict: the slow walk runs to word the error."""


def _fast_dict(value: Dict[Any, Any], shape: Dict[str, Any]) -> Dict[Any, Any]:
    """_shaped_dict's result for a mapping `value`, or _Mismatch: the copy is made by C code
    and only null fields and the fields the shape names cost a step."""
    out = value.copy()
    for k, v in value.items():
        if v is None:
            del out[k]  # null = absent
            continue
        sub = shape.get(k)  # a key that is not a string matches no field of a shape
        if sub is None or sub is DICT and isinstance(v, dict) or sub is STR and isinstance(v, str) \
                or sub is BOOL and (v is True or v is False):
            continue
        if type(sub) is dict:
            if not isinstance(v, dict):
                raise _Mismatch
            out[k] = _fast_dict(v, sub)
        elif type(sub) is list:
            out[k] = _fast_list(v, sub[0])
        elif sub is DICT or sub is STR or sub is BOOL or not isinstance(v, sub) \
                or (sub is not bool and isinstance(v, bool)):
            raise _Mismatch
    return out


def _fast_list(value: Any, item: Any) -> List[Any]:
    if not isinstance(value, list):
        raise _Mismatch
    if type(item) is dict:
        out = []
        for v in value:
            if v is not None:
                if not isinstance(v, dict):
                    raise _Mismatch
                v = _fast_dict(v, item)
            out.append(v)
        return out
    if item is DICT:
        for v in value:
            if v is not None and not isinstance(v, dict):
                raise _Mismatch
        return list(value)
    return [_fast_item(v, item) for v in value]


def _fast_item(v: Any, shape: Any) -> Any:
    """One list item of any other shape: the path-tracking walk, its error turned into a
    _Mismatch (the top-level walk words it with the full path)."""
    if v is None:
        return v
    try:
        return _shaped(v, shape, [], "")
    except InputError:
        raise _Mismatch from None


def _spelled(at: List[Any]) -> str:
    """The path of _shaped's stack as the errors name it: a.b[2].c"""
    out = ""
    for seg in at:
        out = "%s[%d]" % (out, seg) if isinstance(seg, int) else ("%s.%s" % (out, seg) if out else str(seg))
    return out


def _shaped(value: Any, shape: Any, at: List[Any], source: str) -> Any:
    kind = type(shape)
    if kind is dict:
        return _shaped_dict(value, shape, at, source)
    if kind is list:
        if not isinstance(value, list):
            raise _wrong(_spelled(at), list, value, source)
        item, out = shape[0], []
        for i, v in enumerate(value):
            if v is not None:
                at.append(i)
                v = _shaped_dict(v, item, at, source) if type(item) is dict else _shaped(v, item, at, source)
                at.pop()
            out.append(v)
        return out
    if shape is DICT and isinstance(value, dict):
        return value
    if not isinstance(value, shape) or (shape is not bool and isinstance(value, bool)):
        raise _wrong(_spelled(at), shape, value, source)
    return value


def _shaped_dict(value: Any, shape: Dict[str, Any], at: List[Any], source: str) -> Dict[Any, Any]:
    if not isinstance(value, dict):
        raise _wrong(_spelled(at), dict, value, source)
    out = {}
    for k, v in value.items():
        if v is None:
            continue  # null = absent
        sub = shape.get(k) if isinstance(k, str) else None
        if sub is None or (sub is DICT and isinstance(v, dict)) or (sub is STR and isinstance(v, str)) \
                or (sub is BOOL and isinstance(v, bool)):
            out[k] = v  # not checked, or a common leaf checked without a call
        else:
            at.append(k)
            out[k] = _shaped_dict(v, sub, at, source) if type(sub) is dict else _shaped(v, sub, at, source)
            at.pop()
    return out


def _wrong(path: str, want, value, source: str) -> InputError:
    return InputError("%s: %s is %s, not %s" % (source, clip(path, 200), _a(value), _TYPE_WORD.get(want, want)),
                      "fix the manifest: the API server would refuse this field")


def _a(value) -> str:
    word = _type_name(value)
    return "null" if value is None else ("an " if word[0] in "aeiou" else "a ") + word


def _field(obj: Dict[str, Any], key: str, path: str, source: str) -> Dict[str, Any]:
    """obj[key] as a mapping: {} when absent or null, an error naming the field otherwise."""
    v = obj.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _wrong(path, dict, v, source)
    return v


def _string_map(m: Dict[str, Any], path: str, source: str) -> Dict[str, str]:
    for k, v in m.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InputError("%s: %s[%s] is %s, not a string" % (source, path, clip(k, 60), _a(v)),
                             "quote the value in the manifest (labels and annotations are strings)")
    return dict(m)


def vm_from_object(obj: Dict[str, Any], source: str = "manifest") -> VMSpec:
    if not isinstance(obj, dict):
        raise InputError("%s: the object is %s, not a Kubernetes object" % (source, _a(obj)))
    kind = kind_of(obj)
    if kind not in VM_KINDS:
        raise InputError("%s is a %s; expected a VirtualMachine or VirtualMachineInstance"
                         % (source, clip(kind) or "object without kind"))
    meta = shaped(_field(obj, "metadata", "metadata", source), METADATA_SHAPE, "metadata", source)
    name = meta.get("name") or meta.get("generateName") or ""
    if not name:
        raise InputError("%s: the %s has no metadata.name" % (source, kind))
    if not valid_name(name.rstrip("-")):
        raise InputError("%s: %r is not a valid Kubernetes name" % (source, clip(name)))
    if obj.get("spec") is None:
        raise InputError("%s: %s %s has no spec" % (source, kind, name))
    spec = _field(obj, "spec", "spec", source)
    if kind == "VirtualMachineInstance":
        vmi_spec, tmeta, where = spec, {}, "spec"
    elif kind == "VirtualMachinePool":
        vm_template = _field(spec, "virtualMachineTemplate", "spec.virtualMachineTemplate", source)
        spec = _field(vm_template, "spec", "spec.virtualMachineTemplate.spec", source)
        where = "spec.virtualMachineTemplate.spec.template"
        template = _field(spec, "template", where, source)
        vmi_spec, tmeta, where = _field(template, "spec", where + ".spec", source), template.get("metadata"), \
            where + ".spec"
    else:  # VirtualMachine, VirtualMachineInstanceReplicaSet
        template = _field(spec, "template", "spec.template", source)
        vmi_spec, tmeta, where = _field(template, "spec", "spec.template.spec", source), \
            template.get("metadata"), "spec.template.spec"
    vmi_spec = shaped(vmi_spec, VMI_SPEC_SHAPE, where, source)
    tmeta = shaped(tmeta if tmeta is not None else {}, METADATA_SHAPE, where[:-len("spec")] + "metadata", source)
    labels = _string_map(_dict(meta.get("labels")), "metadata.labels", source)
    labels.update(_string_map(_dict(tmeta.get("labels")), "template metadata.labels", source))
    annotations = _string_map(_dict(meta.get("annotations")), "metadata.annotations", source)
    annotations.update(_string_map(_dict(tmeta.get("annotations")), "template metadata.annotations", source))
    pref_ref = None
    if kind != "VirtualMachineInstance" and spec.get("preference") is not None:
        pref_ref = shaped(spec.get("preference"), {"name": STR, "kind": STR, "inferFromVolume": STR},
                          ("spec.virtualMachineTemplate.spec" if kind == "VirtualMachinePool" else "spec")
                          + ".preference", source)
    return VMSpec(kind=kind, name=name, namespace=meta.get("namespace"), vmi_spec=vmi_spec, labels=labels,
                  annotations=annotations, preference_ref=pref_ref, raw=obj)


def preference_from_object(obj: Dict[str, Any], source: str = "manifest") -> Preference:
    if not isinstance(obj, dict):
        raise InputError("%s: the preference is %s, not a Kubernetes object" % (source, _a(obj)))
    kind = kind_of(obj)
    meta = shaped(_field(obj, "metadata", "metadata", source), METADATA_SHAPE, "metadata", source)
    if kind == "ControllerRevision":
        data = obj.get("data")
        inner = preference_from_object(data, source) if isinstance(data, dict) and \
            kind_of(data) in PREFERENCE_KINDS else None
        if inner is None:
            raise InputError("%s: ControllerRevision %s does not hold a preference"
                             % (source, clip(meta.get("name") or "")))
        inner.source = "revision %s" % clip(meta.get("name") or "")
        return inner
    spec = shaped(_field(obj, "spec", "spec", source), PREFERENCE_SHAPE, "spec", source)
    return Preference(name=clip(meta.get("name") or "", 253), kind=kind, spec=spec)


def select(objects: List[Dict[str, Any]], source: str = "manifest") -> VMSpec:
    """From the documents of -f: the one VM/VMI and, if given, its preference."""
    vms = [o for o in objects if kind_of(o) in VM_KINDS]
    prefs = [o for o in objects if kind_of(o) in PREFERENCE_KINDS or kind_of(o) == "ControllerRevision"]
    others = [clip(kind_of(o), 60) or "(no kind)" for o in objects if kind_of(o) not in KNOWN_KINDS]
    if not vms:
        what = clip(", ".join(sorted(set(others))) or "only preferences", 300)
        raise InputError("%s has no VirtualMachine or VirtualMachineInstance (found: %s)" % (source, what))
    if len(vms) > 1:
        names = clip(", ".join("%s/%s" % (kind_of(v), clip(_dict(v.get("metadata")).get("name"), 60))
                               for v in vms[:10]), 400)
        raise InputError("%s holds %d VMs (%s); explain takes one" % (source, len(vms), names),
                         "split the file, or pass the one VM with -f")
    vm = vm_from_object(vms[0], source)
    if prefs:
        vm.preference = _matching_preference(vm, [preference_from_object(p, source) for p in prefs])
    if vm.preference is None and vm.kind != "VirtualMachineInstance" and vm.preference_name:
        vm.preference_unread = True
        vm.warnings.append("the %s uses preference %s, which was not given with -f: its device preferences are "
                           "left out, and an unset useVirtioTransitional is assumed to be the default; %s"
                           % (vm.kind, vm.preference_name, vm.preference_hint()))
    return vm


def _matching_preference(vm: VMSpec, prefs: List[Preference]) -> Optional[Preference]:
    """The preference KubeVirt applies: the one spec.preference names, of its kind (default
    VirtualMachineClusterPreference; docs/kubevirt.md §3).  Others are ignored, with a warning."""
    names = clip(", ".join("%s %s" % (p.kind, clip(p.name, 60)) for p in prefs[:10]), 300)
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
    vm.warnings.append("the %s uses %s, which is not among the files given (%s): those are ignored" % (
        vm.kind, vm.preference_name, names))
    return None


def arch_from_go(arch: Optional[str]) -> Optional[str]:
    """spec.architecture / node labels use Go names (amd64, arm64, s390x); accept QEMU's too."""
    if not arch:
        return None
    a = arch.lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(a, a)
