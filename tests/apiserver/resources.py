"""The API resources this server knows, and the discovery documents built from them."""
from __future__ import annotations

from dataclasses import dataclass, field

# Verbs as they appear in discovery documents (and in RBAC rules).
CRUD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str                 # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # CRD-backed resources behave differently from built-in ones in a few places
    # (no strategic merge patch, items in lists carry kind/apiVersion, ...).
    custom: bool = False
    # With the status subresource enabled, writes to the main resource leave .status alone.
    status_subresource: bool = False
    # True for resources that only exist in discovery (served elsewhere or not at all).
    stored: bool = True
    verbs: tuple[str, ...] = CRUD_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def qualified(self) -> str:
        """`virtualmachines.kubevirt.io` / `pods`: the name used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


@dataclass(frozen=True)
class Subresource:
    group: str
    version: str
    name: str                  # "pods/exec"
    kind: str
    verbs: tuple[str, ...]
    namespaced: bool = True


@dataclass
class GroupVersion:
    group: str
    version: str
    resources: list[Resource] = field(default_factory=list)
    subresources: list[Subresource] = field(default_factory=list)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


POD = Resource("", "v1", "pods", "Pod", short_names=("po",), categories=("all",), status_subresource=True)
NAMESPACE = Resource("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",),
                     stored=False, verbs=("create", "delete", "get", "list", "patch", "update", "watch"))
CONTROLLER_REVISION = Resource("apps", "v1", "controllerrevisions", "ControllerRevision")
VM = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine", short_names=("vm", "vms"),
              categories=("all",), custom=True, status_subresource=True)
VMI = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance",
               short_names=("vmi", "vmis"), categories=("all",), custom=True, status_subresource=False)
# The KubeVirt install itself (virt-operator's CR), read for status.observedKubeVirtVersion.
KUBEVIRT_CR = Resource("kubevirt.io", "v1", "kubevirts", "KubeVirt", short_names=("kv", "kvs"), custom=True,
                       status_subresource=True)
PREFERENCE = Resource("instancetype.kubevirt.io", "v1beta1", "virtualmachinepreferences",
                      "VirtualMachinePreference", short_names=("vmpref", "vmprefs", "vmp", "vmps"),
                      custom=True)
CLUSTER_PREFERENCE = Resource("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterpreferences",
                              "VirtualMachineClusterPreference", namespaced=False,
                              short_names=("vmcp", "vmcps"), custom=True)

RESOURCES: tuple[Resource, ...] = (POD, NAMESPACE, CONTROLLER_REVISION, VM, VMI, KUBEVIRT_CR, PREFERENCE,
                                   CLUSTER_PREFERENCE)

GROUP_VERSIONS: list[GroupVersion] = [
    GroupVersion("", "v1", [POD, NAMESPACE], [
        Subresource("", "v1", "pods/exec", "PodExecOptions", ("create", "get")),
        Subresource("", "v1", "pods/log", "Pod", ("get",)),
        Subresource("", "v1", "pods/status", "Pod", ("get", "patch", "update")),
    ]),
    GroupVersion("apps", "v1", [CONTROLLER_REVISION]),
    GroupVersion("kubevirt.io", "v1", [VM, VMI, KUBEVIRT_CR], [
        Subresource("kubevirt.io", "v1", "virtualmachines/status", "VirtualMachine",
                    ("get", "patch", "update")),
    ]),
    # KubeVirt's aggregated API (virt-api): only subresources, no stored objects.  The real one
    # also has start/stop/migrate/console/...; only what this server simulates is listed.
    GroupVersion("subresources.kubevirt.io", "v1", [], [
        Subresource("subresources.kubevirt.io", "v1", "virtualmachines/restart", "VirtualMachine", ("update",)),
    ]),
    GroupVersion("instancetype.kubevirt.io", "v1beta1", [PREFERENCE, CLUSTER_PREFERENCE]),
]


def find_group_version(group: str, version: str) -> GroupVersion | None:
    for gv in GROUP_VERSIONS:
        if gv.group == group and gv.version == version:
            return gv
    return None


def find_resource(group: str, plural: str) -> Resource | None:
    for r in RESOURCES:
        if r.group == group and r.plural == plural:
            return r
    return None


def resolve(name: str) -> Resource:
    """Resolve what a test writes (``"vm"``, ``"VirtualMachine"``, ``"virtualmachines"``,
    ``"virtualmachines.kubevirt.io"``) to a stored resource, like kubectl's RESTMapper would."""
    key = name.lower()
    for r in RESOURCES:
        names = {r.plural, r.singular, r.kind.lower(), r.qualified, *r.short_names}
        if key in names and r.stored:
            return r
    raise KeyError(f"unknown resource {name!r}")


def for_object(obj: dict) -> Resource:
    """The resource an object belongs to, from its apiVersion and kind."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group, _, version = api_version.rpartition("/")
    for r in RESOURCES:
        if r.group == group and r.version == version and r.kind == kind and r.stored:
            return r
    raise KeyError(f"no stored resource for apiVersion={api_version!r} kind={kind!r}")


# --- discovery documents (the legacy, non-aggregated format) ---------------------------------

def version_info() -> dict:
    return {"major": "1", "minor": "34", "emulationMajor": "1", "emulationMinor": "34",
            "minCompatibilityMajor": "1", "minCompatibilityMinor": "33",
            "gitVersion": "v1.34.1", "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.6",
            "compiler": "gc", "platform": "linux/amd64"}


def core_versions() -> dict:
    # GET /api: the core group is listed separately from /apis.
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}


def _group_entry(group: str) -> dict:
    versions = [{"groupVersion": gv.group_version, "version": gv.version}
                for gv in GROUP_VERSIONS if gv.group == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def group_list() -> dict:
    groups = []
    for gv in GROUP_VERSIONS:
        if gv.group and gv.group not in [g["name"] for g in groups]:
            groups.append(_group_entry(gv.group))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(group_name: str) -> dict | None:
    if not any(gv.group == group_name for gv in GROUP_VERSIONS if gv.group):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group_name)}


def resource_list(gv: GroupVersion) -> dict:
    items = []
    for r in gv.resources:
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        items.append(entry)
    for s in gv.subresources:
        items.append({"name": s.name, "singularName": "", "namespaced": s.namespaced,
                      "kind": s.kind, "verbs": list(s.verbs)})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv.group_version,
            "resources": items}
