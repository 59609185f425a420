"""The fleet view: one row a VM, its risks, sorting, filtering and `--check`.  Pure: no I/O.

A row is computed from a small input (:class:`FleetInput`), whatever produced it: LIST
pages from a cluster, a must-gather directory, or (later) the resolved VM context.
The risks, their order and the hotplug-port rule are described in docs/fleet.md.
"""
from __future__ import annotations

import operator
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from kubectl_virtio.record import Record

# id -> (severity, rank); `--fail-on X` fails on every risk whose rank is >= X's.
RISKS: Dict[str, Tuple[str, int]] = {
    "no-virtio1-driver": ("error", 60),
    "unexpected-model": ("warning", 50),
    "hotplug-exhausted": ("warning", 40),
    "restart-pending": ("warning", 30),
    "needless-transitional": ("info", 20),
    "unknown-guest": ("info", 10),
}
SEVERITY_RANK = {"error": 60, "warning": 30, "info": 10}
ACCEPT_ANNOTATION = "virtio.kubectl.io/accept-risks"
TOPOLOGY_ANNOTATION = "kubevirt.io/pci-topology-version"
ROOT_COMPLEX_ANNOTATION = "kubevirt.io/placePCIDevicesOnRootComplex"
SLOT_COUNT_ANNOTATION = "kubevirt.io/pci-interface-slot-count"
EXIT_AT_RISK = 3
SORT_KEYS = ("name", "namespace", "risk", "guest", "flag")

# KubeVirt's hotplug port sizing (pkg/virt-launcher/virtwrap/manager.go, see docs/fleet.md).
V1_RESERVED_INTERFACES = 4          # ReservedInterfaces, v1.5.0 nichotplug.go
V2_TOTAL, V2_MIN_FREE = 8, 3         # hotplugDefaultTotalPorts, hotplugMinRequiredFreePorts
V2_TOTAL_BIG, V2_MIN_FREE_BIG = 16, 6  # above hotplugLargeMemoryThreshold (2 GiB)


class FleetInput(Record):
    """What a fleet row needs to know about one VM (or standalone VMI)."""

    __slots__ = _fields = ("namespace", "name", "kind", "running", "effective", "origin", "live", "restart_required",
                           "restart_reason", "kubevirt_version", "release_guessed", "guest", "arch", "machine",
                           "annotations", "topology_version", "interfaces", "root_complex", "free_root_ports",
                           "live_checked", "unexpected", "error")

    def __init__(self, namespace: str, name: str,
                 kind: str = "VirtualMachine",            # or VirtualMachineInstance (standalone)
                 running: bool = False,
                 effective: Optional[bool] = None,        # useVirtioTransitional at the next start
                 origin: str = "unknown",                 # vm | vmi | preference | default | unknown
                 live: Optional[bool] = None,             # what the running domain was built with
                 restart_required: bool = False,
                 restart_reason: Optional[str] = None,
                 kubevirt_version: Optional[str] = None,
                 release_guessed: bool = False,           # kubevirt_version is only the newest the rules know
                 guest: Optional[Dict[str, Any]] = None,  # {"id", "source", "virtio1", "evidence"}
                 arch: str = "amd64",
                 machine: Optional[str] = None,           # machine type as written (q35, pc-q35-rhel9.6.0, ...)
                 annotations: Optional[Dict[str, str]] = None,
                 topology_version: Optional[str] = None,  # kubevirt.io/pci-topology-version of the VMI/template
                 interfaces: int = 0,
                 root_complex: bool = False,              # kubevirt.io/placePCIDevicesOnRootComplex: "true"
                 free_root_ports: Optional[int] = None,   # counted in the live domain XML
                 live_checked: bool = False,              # the live domain was read (--live, must-gather dumpxml)
                 unexpected: Optional[List[str]] = None,  # devices no rule explains (live)
                 error: Optional[str] = None):
        self.namespace, self.name, self.kind, self.running = namespace, name, kind, running
        self.effective, self.origin, self.live = effective, origin, live
        self.restart_required, self.restart_reason = restart_required, restart_reason
        self.kubevirt_version, self.release_guessed, self.guest = kubevirt_version, release_guessed, guest
        self.arch, self.machine = arch, machine
        self.annotations = annotations if annotations is not None else {}
        self.topology_version, self.interfaces, self.root_complex = topology_version, interfaces, root_complex
        self.free_root_ports, self.live_checked = free_root_ports, live_checked
        self.unexpected = unexpected if unexpected is not None else []
        self.error = error


class Risk(Record):
    __slots__ = _fields = ("id", "message", "accepted")

    def __init__(self, id: str, message: str, accepted: bool = False):
        self.id, self.message, self.accepted = id, message, accepted

    @property
    def severity(self) -> str:
        return RISKS[self.id][0]

    @property
    def rank(self) -> int:
        return RISKS[self.id][1]

    def to_dict(self) -> Dict[str, Any]:
        d = {"id": self.id, "severity": self.severity, "message": self.message}
        if self.accepted:
            d["accepted"] = True
        return d


class Row(Record):
    __slots__ = _fields = ("input", "risks", "hotplug_free", "hotplug_source", "ignored")

    def __init__(self, input: FleetInput, risks: List[Risk], hotplug_free: Optional[int],
                 hotplug_source: Optional[str],  # live | predicted | None
                 ignored: bool = False):
        self.input, self.risks, self.hotplug_free, self.hotplug_source = input, risks, hotplug_free, hotplug_source
        self.ignored = ignored

    @property
    def open_risks(self) -> List[Risk]:
        return [] if self.ignored else [r for r in self.risks if not r.accepted]

    @property
    def top_rank(self) -> int:
        return max((r.rank for r in self.open_risks), default=0)

    def to_dict(self) -> Dict[str, Any]:
        i = self.input
        d: Dict[str, Any] = {
            "vm": {"namespace": i.namespace, "name": i.name},
            "kind": i.kind,
            "running": i.running,
            "kubevirtVersion": i.kubevirt_version,
            "useVirtioTransitional": {"effective": i.effective, "origin": i.origin, "live": i.live},
            "guest": dict(i.guest) if i.guest else None,
            "restartRequired": i.restart_required,
            "hotplugPortsFree": self.hotplug_free,
            "risks": [r.to_dict() for r in self.risks],
            "error": i.error,
        }
        if self.ignored:
            d["ignored"] = True
        return d


# --- hotplug ports ------------------------------------------------------------------------

def q35(inp: FleetInput) -> bool:
    m = (inp.machine or "").lower()
    return inp.arch in ("amd64", "x86_64") and (not m or "q35" in m)


def free_root_ports(dom) -> Optional[int]:
    """Empty pcie-root-port controllers in a domain (domain.Domain): the hotplug capacity.
    A device sits on a root port when its PCI address bus is the port's index.  None when the
    XML lists no pcie-root controller (not libvirt's full live XML: nothing to count)."""
    if not any(d.kind == "controller" and d.model == "pcie-root" for d in dom.devices):
        return None
    ports = {d.index for d in dom.devices if d.kind == "controller" and d.type == "pci"
             and d.model == "pcie-root-port" and d.index is not None}
    used = {d.address.bus for d in dom.devices if d.address is not None and d.address.type == "pci"}
    return len(ports - used)


def predicted_free_ports(inp: FleetInput) -> Tuple[Optional[int], str]:
    """(free root ports at start, why) from KubeVirt's sizing rule, for a q35 VM without a
    live domain.  None when the rule needs what we cannot see (v2/v3: the PCI device count)."""
    if inp.root_complex:
        return 0, "%s is set: devices sit on the root complex and no hotplug ports are added" % \
            ROOT_COMPLEX_ANNOTATION
    version = (inp.topology_version or "").lower()
    release = None if inp.release_guessed else inp.kubevirt_version
    if version in ("v2", "v3") or _release_at_least(release, (1, 6)):
        # max(total - ports in use, minimum free) >= 3: never zero at start
        return None, "topology %s keeps at least %d ports free at start" % (version or ">= v1.6", V2_MIN_FREE)
    if version and version not in ("v1",):
        return None, "unknown PCI topology version %r" % inp.topology_version
    if not version and release and not _release_at_least(release, (1, 0)):
        # The placeholder interfaces arrived in v1.0.0 (nichotplug.go ReservedInterfaces; not
        # in v0.59.0): before, KubeVirt reserved no root port, and hotplugged disks went on
        # the SCSI controller.  No count to predict.
        return None, "KubeVirt %s reserves no hotplug ports (placeholder interfaces arrived in v1.0.0)" % release
    if not version and not release:
        return None, "no %s annotation and the KubeVirt release is unknown" % TOPOLOGY_ANNOTATION
    if inp.interfaces == 0:
        return 0, "v1 PCI topology (no %s annotation) reserves ports only through placeholder interfaces, " \
                  "and the VM has no interface" % TOPOLOGY_ANNOTATION
    if inp.effective:
        return 0, "v1 PCI topology: the placeholder interfaces that reserve hotplug ports are virtio-transitional " \
                  "(useVirtioTransitional) and go to the PCI bridge, so no root port stays free"
    free = max(0, V1_RESERVED_INTERFACES - inp.interfaces)
    return free, "v1 PCI topology: %d reserved interface slots - %d interfaces" % (V1_RESERVED_INTERFACES,
                                                                                   inp.interfaces)


def _release_at_least(version: Optional[str], minimum: Tuple[int, int]) -> bool:
    major_minor = _MAJOR_MINOR.get(version)
    if major_minor is None:
        m = re.match(r"^v?(\d+)\.(\d+)", version or "")
        major_minor = (int(m.group(1)), int(m.group(2))) if m else ()
        if len(_MAJOR_MINOR) < 256:  # a fleet runs a few releases; every row asks
            _MAJOR_MINOR[version] = major_minor
    return bool(major_minor) and major_minor >= minimum


_MAJOR_MINOR: Dict[Optional[str], Tuple[int, ...]] = {}


# --- risks --------------------------------------------------------------------------------

def accepted_risks(annotations: Dict[str, str]) -> set:
    """The risks a VM's owner accepted: `virtio.kubectl.io/accept-risks: "id,id"` ("*" = all)."""
    raw = str((annotations or {}).get(ACCEPT_ANNOTATION) or "")
    if not raw:
        return set()
    ids = {p.strip() for p in raw.split(",") if p.strip()}
    return set(RISKS) if "*" in ids or "all" in ids else ids & set(RISKS)


def evaluate(inp: FleetInput, ignore: Iterable[str] = ()) -> Row:
    risks: List[Risk] = []
    g = inp.guest or {}
    gid = g.get("id") or "the guest"
    v1 = g.get("virtio1") if inp.guest else None
    runs_modern = inp.running and inp.live is False
    if v1 is False and (inp.effective is False or runs_modern):
        when = "runs modern-only virtio devices" if runs_modern else \
            "gets modern-only virtio devices at its next start"
        fix = "restart it to apply useVirtioTransitional" if inp.effective else \
            "`kubectl virtio set-transitional %s -n %s`" % (inp.name, inp.namespace)
        risks.append(Risk("no-virtio1-driver", "%s has no virtio 1.0 driver (%s) but %s: its virtio disks and NICs "
                                               "are not found; %s" % (gid, g.get("evidence") or "no evidence",
                                                                      when, fix)))
    if inp.unexpected:
        risks.append(Risk("unexpected-model", "the running domain has models KubeVirt's rules do not give: %s"
                          % ", ".join(inp.unexpected[:4]) + (" (+%d)" % (len(inp.unexpected) - 4)
                                                             if len(inp.unexpected) > 4 else "")))
    hot_free, hot_src = None, None
    if q35(inp):
        if inp.free_root_ports is not None:
            hot_free, hot_src = inp.free_root_ports, "live"
            if hot_free == 0:
                risks.append(Risk("hotplug-exhausted", "no free PCIe root port in the running domain: hotplugging a "
                                                       "disk or NIC needs one"))
        else:
            free, why = predicted_free_ports(inp)
            if free is not None:
                hot_free, hot_src = free, "predicted"
                if free == 0:
                    risks.append(Risk("hotplug-exhausted", "no free PCIe root port expected: " + why))
    if inp.restart_required:
        risks.append(Risk("restart-pending", inp.restart_reason or "the running VM does not have what its spec "
                                                                   "asks for yet: restart it to apply"))
    if v1 is True and (inp.effective or (inp.running and inp.live)):
        risks.append(Risk("needless-transitional", "%s drives virtio 1.0 (%s): transitional devices only spend "
                                                   "legacy PCI slots and I/O space; `kubectl virtio set-transitional "
                                                   "%s %s -n %s` frees them at next start"
                          % (gid, g.get("evidence") or "", inp.name,
                             # as explain advises (guests.guest_findings): a preference that sets
                             # the flag needs an explicit false; the VM's own field is removed
                             "--off" if inp.origin == "preference" else "--unset", inp.namespace)))
    if v1 is None:
        risks.append(Risk("unknown-guest", "guest OS not identified: label the VM (vm.kubevirt.io/os) or pass "
                                           "--guest-os" if not inp.guest else
                          "%s: cannot tell whether it drives virtio 1.0 (%s)" % (gid, g.get("evidence") or "")))
    if risks:
        accepted = accepted_risks(inp.annotations)
        for r in risks:
            r.accepted = r.id in accepted
        risks.sort(key=lambda r: -r.rank)
    ignored = bool(ignore) and "%s/%s" % (inp.namespace, inp.name) in set(ignore)  # () by default: no key to make
    return Row(inp, risks, hot_free, hot_src, ignored=ignored)


# --- selection, order, check --------------------------------------------------------------

def parse_fail_on(text: str) -> int:
    """`--fail-on`: a risk id or a severity; the rank at or above which --check fails."""
    t = (text or "").strip().lower()
    if t in RISKS:
        return RISKS[t][1]
    if t in SEVERITY_RANK:
        return SEVERITY_RANK[t]
    raise ValueError("unknown risk or severity %r (one of: %s, error, warning, info)" % (text, ", ".join(RISKS)))


def check_failed(row: Row, fail_rank: int) -> bool:
    return row.top_rank >= fail_rank and not row.ignored


def wanted(row: Row, risks: Sequence[str]) -> bool:
    """`--risk` filter: rows with any of these risks (open or accepted)."""
    return not risks or any(r.id in risks for r in row.risks)


def sort_key(name: str):
    if name == "risk":
        return lambda r: (-r.top_rank, r.input.namespace, r.input.name)
    if name == "guest":
        return lambda r: ((r.input.guest or {}).get("id") or "~", r.input.namespace, r.input.name)
    if name == "flag":
        return lambda r: (str(r.input.effective), r.input.origin, r.input.namespace, r.input.name)
    if name == "namespace":
        return lambda r: (r.input.namespace, r.input.name)
    return lambda r: (r.input.name, r.input.namespace)


class Summary:
    def __init__(self, fail_rank: int):
        self.fail_rank = fail_rank
        self.vms = 0
        self.at_risk = 0
        self.failed = 0
        self.errors = 0
        self.by_risk: Dict[str, int] = {}

    def add(self, row: Row) -> None:
        self.vms += 1
        open_risks = row.open_risks  # computed once: check_failed's top_rank, inlined
        if open_risks:
            self.at_risk += 1
            for r in open_risks:
                self.by_risk[r.id] = self.by_risk.get(r.id, 0) + 1
            if max(r.rank for r in open_risks) >= self.fail_rank:  # open_risks is [] when ignored
                self.failed += 1
        elif 0 >= self.fail_rank and not row.ignored:
            self.failed += 1
        if row.input.error:
            self.errors += 1

    def to_dict(self) -> Dict[str, Any]:
        d = {"vms": self.vms, "atRisk": self.at_risk, "byRisk": {k: self.by_risk[k] for k in RISKS if k in self.by_risk}}
        if self.errors:
            d["errors"] = self.errors
        return d


# --- table cells --------------------------------------------------------------------------

HEADERS = ["namespace", "name", "running", "transitional", "guest", "virtio 1.0", "restart", "hotplug", "risks"]
WIDE_HEADERS = HEADERS[:3] + ["kubevirt", "live"] + HEADERS[3:] + ["reasons"]


def cells(row: Row, wide: bool = False) -> List[str]:
    i = row.input
    g = i.guest or {}
    flag = "?" if i.effective is None else "%s (%s)" % (str(i.effective).lower(), i.origin)
    risks = ",".join(r.id + ("(accepted)" if r.accepted else "") for r in row.risks) or "-"
    if row.ignored and row.risks:
        risks += " (ignored)"
    if i.error:
        risks = risks + " error" if risks != "-" else "error"
    hot = "-" if row.hotplug_free is None else str(row.hotplug_free)
    base = [i.namespace, i.name, "yes" if i.running else "no", flag, g.get("id") or "-",
            {True: "yes", False: "no"}.get(g.get("virtio1"), "?") if i.guest else "?",
            "yes" if i.restart_required else "no", hot, risks]
    if not wide:
        return base
    reasons = "; ".join("%s: %s" % (r.id, r.message) for r in row.risks)
    if i.error:
        reasons = (reasons + "; " if reasons else "") + "error: " + i.error
    live = "-" if i.live is None else str(i.live).lower()
    return base[:3] + [i.kubevirt_version or "?", live] + base[3:] + [reasons or "-"]


# --- from API objects ---------------------------------------------------------------------

def _meta(o) -> Dict[str, Any]:
    m = (o or {}).get("metadata")
    return m if isinstance(m, dict) else {}


def _status(o) -> Dict[str, Any]:
    st = (o or {}).get("status")
    return st if isinstance(st, dict) else {}


def image_tag(image: Optional[str]) -> Optional[str]:
    """`quay.io/kubevirt/virt-launcher:v1.9.0` -> v1.9.0; a digest or no tag -> None."""
    if not image or "@" in image:
        return None
    tail = image.rsplit("/", 1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else None


_GUEST_CACHE: Dict[Any, Any] = {}


def _guest_key(vm, vmi, guest_os):
    """Everything guests.hints() reads, as a hashable key: the override, the agent's
    guestOSInfo, the OS labels and annotations of the VM, its template and the VMI (with the
    object each sits on: the evidence names it), and the preference name."""
    info = _status(vmi).get("guestOSInfo") if vmi is not None else None
    parts: List[Any] = [guest_os, (tuple(sorted((str(k), str(v)) for k, v in info.items())) if info else ())
                        if isinstance(info, dict) else None]
    for what, obj in (("VM", vm), ("VMI", vmi)):
        if not isinstance(obj, dict):
            parts.append(None)
            continue
        spec = obj.get("spec")
        tmeta = ((spec.get("template") or {}).get("metadata") or {}) if isinstance(spec, dict) else {}
        for m in (_meta(obj), tmeta if isinstance(tmeta, dict) else {}):
            labels, annotations = m.get("labels"), m.get("annotations")
            if isinstance(labels, dict):
                parts.append((what, "labels", _os_items(labels)))
            if isinstance(annotations, dict):
                parts.append((what, "annotations", _os_items(annotations)))
    spec = (vm or {}).get("spec") if isinstance(vm, dict) else None
    pref = (spec.get("preference") or {}) if isinstance(spec, dict) else {}
    parts.append(str(pref.get("name")) if isinstance(pref, dict) and pref.get("name") else
                 ((_status(vm).get("preferenceRef") or {}).get("name") if vm is not None else None))
    return tuple(parts)


# guests.OS_ANNOTATION, OS_TEMPLATE_LABEL and OS_NAME_ANNOTATION (guests is imported lazily:
# test_fleet checks that they agree).
_OS_KEY = "vm.kubevirt.io/os"
_OS_PREFIXES = ("os.template.kubevirt.io/", "name.os.template.kubevirt.io/")
_HAS_OS_PREFIX = operator.methodcaller("startswith", _OS_PREFIXES)


def _os_items(d: Dict[Any, Any]) -> Tuple[Tuple[str, str], ...]:
    """The sorted (key, value) pairs of a labels or annotations map that guests.hints() reads:
    the OS label/annotation and the common-templates OS prefixes; () when there are none."""
    try:  # most maps hold no prefixed key: asked of every key by C code (map, any), no Python loop
        if not any(map(_HAS_OS_PREFIX, d)):
            return ((_OS_KEY, str(d[_OS_KEY])),) if _OS_KEY in d else ()
    except (TypeError, AttributeError):
        pass  # a key that is not a string: the loop below reads it as str(key)
    found = None
    for k, v in d.items():
        if k.__class__ is not str:
            k = str(k)
        if k == _OS_KEY or k.startswith(_OS_PREFIXES):
            if found is None:
                found = []
            found.append((k, str(v)))
    if found is None:
        return ()
    if len(found) > 1:
        found.sort()
    return tuple(found)


def assess_guest(vm, vmi, guest_os=None):
    """guests.assess, computed once per distinct set of the clues it reads: a fleet has
    thousands of VMs but few distinct guests, and a verdict scans the OS table."""
    try:
        key = _guest_key(vm, vmi, guest_os)
        hit = _GUEST_CACHE.get(key, _GUEST_CACHE)
    except TypeError:  # an unhashable preference name (a mapping in status.preferenceRef.name)
        from kubectl_virtio import guests

        return guests.assess(vm, vmi, None, guest_os)
    if hit is not _GUEST_CACHE:
        return hit
    from kubectl_virtio import guests

    g = guests.assess(vm, vmi, None, guest_os)
    if len(_GUEST_CACHE) < 4096:
        _GUEST_CACHE[key] = g
    return g


def input_from_objects(vm: Optional[Dict[str, Any]], vmi: Optional[Dict[str, Any]], *,
                       preference: Optional[Dict[str, Any]] = None, preference_error: Optional[str] = None,
                       pod: Optional[Dict[str, Any]] = None, guest_os: Optional[str] = None,
                       vmi_expected: bool = True) -> FleetInput:
    """A FleetInput from a VM and/or its VMI (and the preference object or revision the VM
    names, when read).  `vmi_expected`: False when VMIs were not listed for this VM (a label
    selector that their template labels do not carry): running then comes from the VM's status."""
    from kubectl_virtio import guests
    from kubectl_virtio import spec as S

    obj = vm if vm is not None else vmi
    meta = _meta(obj)
    s = S.vm_from_object(obj, "%s %s" % (obj.get("kind"), meta.get("name")))
    inp = FleetInput(namespace=str(meta.get("namespace") or ""), name=s.name,
                     kind="VirtualMachine" if vm is not None else "VirtualMachineInstance")
    if preference is not None:
        try:
            s.preference = S.preference_from_object(preference)
        except Exception as e:  # noqa: BLE001 - another shape of revision: say so in the row
            preference_error = "cannot read the preference: %s" % e
    inp.effective, inp.origin = s.effective_flag()
    if preference_error and s.declared_flag is None and vm is not None:
        inp.effective, inp.origin = None, "unknown"
    phase = _status(vmi).get("phase") if vmi else None
    gone = phase in ("Succeeded", "Failed")
    run_vmi = vmi if vmi is not None and not gone else None
    if run_vmi is not None:
        inp.running = True
        inp.live = bool(S.vm_from_object(run_vmi, "VMI %s" % s.name).declared_flag)
    elif vm is not None and not vmi_expected:
        inp.running = bool(_status(vm).get("created")) or _status(vm).get("printableStatus") == "Running"
    conds = _status(vm).get("conditions") or [] if vm is not None else []
    cond = next((c for c in conds if isinstance(c, dict) and c.get("type") == "RestartRequired"
                 and str(c.get("status")) == "True"), None)
    if cond is not None:
        inp.restart_required = True
        inp.restart_reason = "KubeVirt's RestartRequired condition: %s" % (cond.get("message") or "set")
    elif inp.live is not None and inp.effective is not None and inp.live != inp.effective:
        inp.restart_required = True
        inp.restart_reason = "running with useVirtioTransitional %s, the spec asks for %s: restart to apply" % (
            str(inp.live).lower(), str(inp.effective).lower())
    inp.kubevirt_version = image_tag(_status(vmi).get("launcherContainerImageVersion")) if vmi else None
    if not inp.kubevirt_version and pod is not None:
        for c in ((pod.get("spec") or {}).get("containers") or []):
            if isinstance(c, dict) and c.get("name") == "compute":
                inp.kubevirt_version = image_tag(c.get("image"))
    spec_src = S.vm_from_object(run_vmi, "VMI") if run_vmi is not None else s
    inp.arch = S.arch_from_go(spec_src.architecture) or "amd64" if spec_src.architecture else "amd64"
    machine = ((spec_src.vmi_spec.get("domain") or {}).get("machine") or {}).get("type")
    inp.machine = (_status(vmi).get("machine") or {}).get("type") if run_vmi is not None else None
    inp.machine = inp.machine or machine
    ann = dict(spec_src.annotations)
    if run_vmi is not None:
        ann.update(_meta(run_vmi).get("annotations") or {})
    inp.annotations = dict(s.annotations)
    inp.topology_version = ann.get(TOPOLOGY_ANNOTATION)
    inp.root_complex = str(ann.get(ROOT_COMPLEX_ANNOTATION, "")).lower() == "true"
    inp.interfaces = len(spec_src.devices.get("interfaces") or [])
    g = assess_guest(vm, vmi, guest_os)  # best evidence first: agent, labels, preference
    if g is not None:
        inp.guest = g.to_dict()
    if preference_error:
        inp.error = preference_error
    return inp


def apply_domain(inp: FleetInput, dom, vm: Optional[Dict[str, Any]] = None,
                 vmi: Optional[Dict[str, Any]] = None, ctx=None) -> None:
    """Add what a live domain XML (domain.Domain) shows: free root ports, models that no rule
    explains (explain's `unexpected`), the machine, and the live flag when no VMI said it.
    With the VM's context (context.VMContext) the domain is explained as `explain` explains
    it: the same specs (its preference applied) at the same KubeVirt release."""
    from kubectl_virtio import explain as E

    inp.live_checked = True
    inp.free_root_ports = free_root_ports(dom)
    if dom.machine:
        inp.machine = dom.machine
    if ctx is not None:
        exp = E.explain(ctx.spec, dom, running_vmi=ctx.running_spec, version=ctx.release.version,
                        namespace=inp.namespace, name=inp.name, vm_running=True,
                        preference_unread=ctx.preference_unread, brief=True)
    else:  # a domain with no VM or VMI beside it (a must-gather's orphan dumpxml)
        from kubectl_virtio import spec as S

        obj = vm if vm is not None else vmi
        vm_spec = S.vm_from_object(obj, "%s %s" % ((obj or {}).get("kind"), inp.name)) if obj is not None else None
        vmi_spec = S.vm_from_object(vmi, "VMI %s" % inp.name) if vmi is not None else None
        exp = E.explain(vm_spec, dom, running_vmi=vmi_spec, namespace=inp.namespace, name=inp.name,
                        vm_running=True, brief=True)
    inp.unexpected = ["%s %s: %s" % (d.kind, d.name, d.model) for d in exp.devices if d.status == "unexpected"]
    if inp.live is None:
        inp.live = exp.live
        if inp.live is not None and inp.effective is not None and inp.live != inp.effective \
                and not inp.restart_required:
            inp.restart_required = True
            inp.restart_reason = "the running domain has useVirtioTransitional %s models, the spec asks for %s: " \
                                 "restart to apply" % (str(inp.live).lower(), str(inp.effective).lower())


def input_from_context(ctx, guest_os: Optional[str] = None) -> FleetInput:
    """A FleetInput from a resolved VM context (context.VMContext): the same flag, origin,
    live flag, restart and release as `explain` shows for that VM."""
    from kubectl_virtio import context as C

    inp = FleetInput(namespace=ctx.namespace, name=ctx.name,
                     kind="VirtualMachine" if ctx.vm is not None else "VirtualMachineInstance")
    inp.running = ctx.running
    inp.effective, inp.origin, inp.live = ctx.effective_known, ctx.origin, ctx.live
    inp.restart_required, inp.restart_reason = ctx.restart_pending, ctx.restart_reason
    # The release whose rules apply, as explain says it; a guess (the newest the rules know) does
    # not decide the hotplug-port prediction.
    inp.kubevirt_version = ctx.release.text
    inp.release_guessed = ctx.release.source == C.SOURCE_NEWEST
    inp.arch = ctx.arch
    inp.machine = ctx.machine_now or ctx.machine_next
    inp.annotations = dict(C.meta(ctx.vm if ctx.vm is not None else ctx.vmi).get("annotations") or {})
    running = ctx.running_spec
    spec = running if running is not None else ctx.spec
    ann = dict(spec.annotations)
    if running is not None:
        ann.update(C.meta(ctx.vmi).get("annotations") or {})
    inp.topology_version = ann.get(TOPOLOGY_ANNOTATION)
    inp.root_complex = str(ann.get(ROOT_COMPLEX_ANNOTATION, "")).lower() == "true"
    inp.interfaces = len(spec.devices.get("interfaces") or [])
    g = assess_guest(ctx.vm, ctx.vmi, guest_os)
    if g is not None:
        inp.guest = g.to_dict()
    return inp
