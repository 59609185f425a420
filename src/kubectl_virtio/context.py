"""One resolved VM context for every live command.

`resolve()` asks the cluster adapter once for what a command needs to know about one VM (the
VM, its VMI, the virt-launcher pods, the preference that fills unset fields, the cluster's
KubeVirt release) and returns a `VMContext`: the effective useVirtioTransitional and where it
comes from, the flag the running domain was built with, whether a restart is pending and why,
arch, machine, raw guest OS hints, and the release whose rules apply.  `resolve_many()` builds
the same contexts for a fleet from LIST results, with one read per distinct preference.

`explain`, `dumpxml`, `set-transitional` and `list` consume these contexts; none of them
re-derives a field.  Everything below `build()` is pure (objects in, context out) and is unit
tested without a cluster; only `resolve`, `resolve_many`, `fetch_preference` and
`detect_release` talk to the adapter.  This module imports neither the kubernetes client nor
lxml: the adapter is handed in.

Facts: docs/live-context.md (preference kinds and sources, RestartRequired, launcher image
and KubeVirt CR release fields, with their upstream files).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from kubectl_virtio import spec as S
from kubectl_virtio import versions as V
from kubectl_virtio.errors import ClusterError
from kubectl_virtio.record import Frozen, Record

RUNNING = "Running"  # the only VMI (and launcher pod) phase with a domain to read
GONE = ("Succeeded", "Failed")
DEFAULT_MACHINE = {"amd64": "q35", "arm64": "virt", "s390x": "s390-ccw-virtio"}
# KubeVirt matches spec.preference.kind case-insensitively, singular or plural; "" means the
# cluster-scoped kind (pkg/instancetype/preference/find/spec.go SpecFinder.Find).
NAMESPACED_PREFERENCE = ("virtualmachinepreference", "virtualmachinepreferences")
CLUSTER_PREFERENCE = ("", "virtualmachineclusterpreference", "virtualmachineclusterpreferences")

# Where the release came from (CONTRACT: explain -o json, kubevirtVersion.source).
SOURCE_FLAG = "flag"
SOURCE_VMI = "vmi-launcher-image"
SOURCE_POD = "launcher-pod-image"
SOURCE_CR = "kubevirt-cr"
SOURCE_NEWEST = "newest-known"
SOURCE_TEXT = V.SOURCE_TEXT


def meta(obj) -> Dict[str, Any]:
    m = (obj or {}).get("metadata") if isinstance(obj, dict) else None
    return m if isinstance(m, dict) else {}


def status(obj) -> Dict[str, Any]:
    s = (obj or {}).get("status") if isinstance(obj, dict) else None
    return s if isinstance(s, dict) else {}


def dig(obj, *keys) -> Dict[str, Any]:
    """obj[k1][k2]...; {} where a level is missing, null or not an object."""
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj if isinstance(obj, dict) else {}


class Note(Frozen):
    """Something resolution noticed, for the command to show (explain turns it into a finding)."""

    __slots__ = _fields = ("severity", "message")

    def __init__(self, severity: str, message: str):  # severity: info | warning
        self.severity, self.message = severity, message


# --- the launcher pod ---------------------------------------------------------------------------

def migration_in_progress(vmi) -> Optional[Dict[str, Any]]:
    """status.migrationState while a live migration runs (present, neither completed nor failed),
    with the source/target pod and node from the flat fields or, in newer KubeVirt, from
    sourceState/targetState (staging/src/kubevirt.io/api/core/v1/types.go
    VirtualMachineInstanceMigrationState)."""
    mig = status(vmi).get("migrationState")
    if not isinstance(mig, dict) or not mig or mig.get("completed") or mig.get("failed"):
        return None
    src = mig.get("sourceState") if isinstance(mig.get("sourceState"), dict) else {}
    dst = mig.get("targetState") if isinstance(mig.get("targetState"), dict) else {}
    return {"sourcePod": mig.get("sourcePod") or src.get("pod"), "sourceNode": mig.get("sourceNode") or src.get("node"),
            "targetPod": mig.get("targetPod") or dst.get("pod"), "targetNode": mig.get("targetNode") or dst.get("node")}


def choose_pod(pods: Sequence[Dict[str, Any]], vmi) -> Tuple[Optional[Dict[str, Any]], List[Note]]:
    """KubeVirt's choice: the launcher on status.nodeName, running, newest; during a live
    migration the source pod stays authoritative until the migration completes."""
    notes: List[Note] = []
    pods = [p for p in pods if isinstance(p, dict) and (meta(p).get("labels") or {}).get("kubevirt.io") == "virt-launcher"]
    mig = migration_in_progress(vmi)
    source = None
    if mig is not None:
        source = next((p for p in pods if mig["sourcePod"] and meta(p).get("name") == mig["sourcePod"]), None) or next(
            (p for p in pods if mig["sourceNode"] and dig(p, "spec").get("nodeName") == mig["sourceNode"]), None)
        notes.append(Note("warning", "live migration in progress (%s -> %s): %s; a migration does not change the "
                                     "models" % (
                              mig["sourceNode"] or "?", mig["targetNode"] or "?",
                              "reading the source pod %s" % meta(source).get("name") if source is not None
                              else "its source pod %s was not found among the launcher pods"
                              % (mig["sourcePod"] or "?"))))
    if source is not None:
        return source, notes
    if not pods:
        return None, notes
    running = [p for p in pods if status(p).get("phase") == RUNNING] or pods
    node = status(vmi).get("nodeName")
    on_node = [p for p in running if dig(p, "spec").get("nodeName") == node] or running
    on_node = sorted(on_node, key=lambda p: meta(p).get("creationTimestamp") or "", reverse=True)
    return on_node[0], notes


def nonroot(vmi) -> bool:
    """vmitrait.IsNonRoot: status.runtimeUser != 0, or the deprecated kubevirt.io/nonroot annotation."""
    user = status(vmi).get("runtimeUser")
    return (user is not None and user != 0) or "kubevirt.io/nonroot" in (meta(vmi).get("annotations") or {})


def compute_image(pod) -> Optional[str]:
    """The image of the pod's `compute` container: the running one (status) first, else the spec's."""
    for c in status(pod).get("containerStatuses") or []:
        if isinstance(c, dict) and c.get("name") == "compute" and isinstance(c.get("image"), str):
            return c["image"]
    for c in dig(pod, "spec").get("containers") or []:
        if isinstance(c, dict) and c.get("name") == "compute" and isinstance(c.get("image"), str):
            return c["image"]
    return None


# --- the preference -------------------------------------------------------------------------

class PreferenceSource(Frozen):
    """Where the VM's preference (spec.preference) is read from: the ControllerRevision frozen
    for the VM (status.preferenceRef.controllerRevisionRef, or spec.preference.revisionName in
    older KubeVirt), else the (Cluster)Preference it names.  `infer_from`: only
    `inferFromVolume` and nothing resolved yet; `unknown_kind`: a kind KubeVirt does not know."""

    __slots__ = _fields = ("name", "revision", "cluster_scoped", "infer_from", "unknown_kind")

    def __init__(self, name: Optional[str] = None, revision: Optional[str] = None, cluster_scoped: bool = True,
                 infer_from: Optional[str] = None, unknown_kind: Optional[str] = None):
        self.name, self.revision, self.cluster_scoped = name, revision, cluster_scoped
        self.infer_from, self.unknown_kind = infer_from, unknown_kind

    def without_revision(self) -> "PreferenceSource":
        """The same source read by its object, not its frozen revision."""
        return PreferenceSource(self.name, None, self.cluster_scoped, self.infer_from, self.unknown_kind)

    @property
    def kind(self) -> str:
        return "VirtualMachineClusterPreference" if self.cluster_scoped else "VirtualMachinePreference"

    @property
    def fetchable(self) -> bool:
        return not self.infer_from and not self.unknown_kind and bool(self.revision or self.name)

    def object_key(self, ns: Optional[str]) -> Tuple[str, Optional[str], str]:
        """The preference object, for one read per distinct preference across many VMs."""
        return (self.kind, None if self.cluster_scoped else ns, self.name or "")

    def text(self) -> str:
        if self.revision:
            return "ControllerRevision %s" % self.revision
        return "%s %s" % (self.kind, self.name)


def preference_source(vm) -> Optional[PreferenceSource]:
    """The VM's preference source; None when the VM has no spec.preference."""
    ref = dig(vm, "spec").get("preference")
    if not isinstance(ref, dict) or not ref:
        return None
    sref = status(vm).get("preferenceRef")
    sref = sref if isinstance(sref, dict) else {}
    revision = dig(sref, "controllerRevisionRef").get("name") or ref.get("revisionName")
    name = ref.get("name") or sref.get("name")
    kind = str(ref.get("kind") or sref.get("kind") or "")
    k = kind.lower()
    if k not in NAMESPACED_PREFERENCE + CLUSTER_PREFERENCE:
        return PreferenceSource(name=name, unknown_kind=kind)
    if not revision and not name:
        return PreferenceSource(infer_from=str(ref.get("inferFromVolume") or "?"))
    return PreferenceSource(name=name, revision=revision, cluster_scoped=k not in NAMESPACED_PREFERENCE)


class PreferenceRead(Record):
    """What reading the preference gave: the preference, or why it is unknown."""

    __slots__ = _fields = ("preference", "problem", "severity", "reason")

    def __init__(self, preference: Optional[S.Preference] = None,
                 problem: Optional[str] = None,  # why it could not be read (None: read, or nothing to read)
                 severity: str = "warning",
                 reason: Optional[str] = None):  # the same in a few words ("cannot read X: forbidden ...")
        self.preference, self.problem, self.severity, self.reason = preference, problem, severity, reason


def preference_note(src: Optional[PreferenceSource], read: Optional[PreferenceRead]) -> Optional[Note]:
    """Why the preference that may decide the flag is unknown, as a note; None when known."""
    if src is None:
        return None
    if src.infer_from:
        return Note("info", "spec.preference is inferred from volume %s and the VM has no status.preferenceRef "
                            "yet: the preference is not known until KubeVirt resolves it" % src.infer_from)
    if src.unknown_kind:
        return Note("warning", "spec.preference.kind %r is not a preference kind KubeVirt knows: the preference is "
                               "ignored here" % _clip(src.unknown_kind))
    if read is not None and read.problem:
        return Note(read.severity, read.problem)
    return None


def read_preference(src: PreferenceSource, fetch: Callable[[], Tuple[str, Optional[Dict[str, Any]]]]) -> PreferenceRead:
    """Run `fetch` (-> (tag, object or None)) and turn the answer into a PreferenceRead; a
    forbidden or failed read is a problem to report, never a failure of the command."""
    try:
        tag, obj = fetch()
    except ClusterError as e:
        hint = "; %s" % e.hint if e.hint else ""
        return PreferenceRead(problem="cannot read the VM's preference (%s): %s%s. Its device preferences are "
                                      "left out, and where an unset useVirtioTransitional comes from is unknown"
                                      % (src.text(), e.message, hint),
                              reason="cannot read %s (%s)" % (src.text(), e.message))
    if not obj:
        return PreferenceRead(problem="the VM's preference (%s) was not found: its device preferences are left "
                                      "out and the origin may be wrong" % (src.text()),
                              reason="%s was not found" % src.text())
    try:
        return PreferenceRead(preference=S.preference_from_object(obj))
    except Exception:  # noqa: BLE001 - a revision of another shape: say so, explain without it
        return PreferenceRead(problem="could not read the preference in %s" % src.text(),
                              reason="cannot read the preference in %s" % src.text())


def fetch_preference(cluster, ns: str, src: PreferenceSource, by_object: bool = False) -> PreferenceRead:
    """Read the preference through the adapter: the frozen revision, else the object
    (`by_object`: the object even when a revision exists, as the fleet view does)."""
    if src.revision and not by_object:
        return read_preference(src, lambda: ("revision", cluster.get_controller_revision(ns, src.revision)))
    shown = src if not by_object else src.without_revision()
    return read_preference(shown, lambda: ("object", cluster.get_preference(ns, src.name, src.cluster_scoped)))


# --- the release --------------------------------------------------------------------------------

class Release(Frozen):
    """The KubeVirt release whose rules apply, and where it was read."""

    __slots__ = _fields = ("version", "source", "detail", "notes")

    def __init__(self, version: V.Version, source: str,
                 detail: str = "",  # the image or CR it was read from
                 notes: Tuple[Note, ...] = ()):
        self.version, self.source, self.detail, self.notes = version, source, detail, notes

    def with_note(self, note: Note) -> "Release":
        return Release(self.version, self.source, self.detail, self.notes + (note,))

    @property
    def text(self) -> str:
        return V.show(self.version)

    def describe(self) -> str:
        """`v1.6.4 (from the VMI's launcher image)`."""
        return "%s (from %s)" % (self.text, SOURCE_TEXT.get(self.source, self.source))

    def to_dict(self) -> Dict[str, Any]:
        return {"version": self.text, "source": self.source}


def choose_release(override: Optional[V.Version] = None, vmi_image: Optional[str] = None,
                   pod_image: Optional[str] = None, cr_version: Optional[str] = None,
                   cr_problem: Optional[str] = None) -> Release:
    """The release from the first source that names one: --kubevirt-version, the VMI's
    status.launcherContainerImageVersion (the launcher that built the running domain), the
    launcher pod's compute image, the KubeVirt CR's status.observedKubeVirtVersion; else the
    newest release the rules know.  A source that gives something unreadable (a digest, a
    nightly tag) is said in a note, and the next source is tried."""
    notes: List[Note] = []
    if override is not None:
        return _with_newer_note(Release(override, SOURCE_FLAG, "", ()))
    tried = []
    for source, image in ((SOURCE_VMI, vmi_image), (SOURCE_POD, pod_image)):
        if not image:
            continue
        version, why = V.from_image(image)
        if version is not None:
            return _with_newer_note(Release(version, source, image, tuple(notes)))
        tried.append("%s %s: %s" % (SOURCE_TEXT[source], _clip(image), why))
    if cr_version:
        try:
            return _with_newer_note(Release(V.parse(cr_version), SOURCE_CR, cr_version, tuple(notes)))
        except ValueError:
            tried.append("the KubeVirt CR's observedKubeVirtVersion %r is not a release" % _clip(cr_version))
    if cr_problem:
        notes.append(Note("info", cr_problem))
    if tried:
        notes.append(Note("warning", "cannot tell the cluster's KubeVirt release (%s): applying the rules of %s, "
                                     "the newest these rules know; pass --kubevirt-version to choose"
                          % ("; ".join(tried), V.show(V.NEWEST))))
    return Release(V.NEWEST, SOURCE_NEWEST, "", tuple(notes))


def _with_newer_note(r: Release) -> Release:
    """A release older or newer than the rules know: one warning, the same words as `table`,
    saying which release's rules apply."""
    _, warning = V.rules_release(r.version, SOURCE_TEXT.get(r.source, r.source))
    if warning:
        return r.with_note(Note("warning", warning))
    return r


def read_kubevirt_cr(cluster) -> Tuple[Optional[str], Optional[str]]:
    """(observedKubeVirtVersion, problem).  A user who may not read the cluster's KubeVirt CR
    (403), or a cluster that does not serve it (404), gets (None, None): that is normal for a
    namespace user, not an error.  Another failure is a problem note."""
    try:
        return cluster.kubevirt_version(), None
    except ClusterError as e:
        return None, "the KubeVirt CR could not be read (%s)" % _clip(e.message, 160)


# --- the context ------------------------------------------------------------------------------

class VMContext(Record):
    """A VM (or a VMI without one) as a live command needs it.  Built by `build()`."""

    __slots__ = _fields = ("namespace", "name", "vm", "vmi", "spec", "running_spec", "release", "pods", "pod",
                           "preference_source", "preference", "preference_problem", "preference_reason",
                           "effective", "origin", "live", "restart_pending", "restart_reason", "restart_condition",
                           "arch", "machine_now", "machine_next", "machine_note", "guest_hints", "notes")

    def __init__(self, namespace: str, name: str, vm: Optional[Dict[str, Any]], vmi: Optional[Dict[str, Any]],
                 spec: S.VMSpec,                        # what applies at the next start, preference attached
                 running_spec: Optional[S.VMSpec],      # the running VMI's spec (None: nothing runs)
                 release: Release,
                 pods: Optional[List[Dict[str, Any]]] = None,
                 pod: Optional[Dict[str, Any]] = None,  # the launcher pod the domain is read from
                 preference_source: Optional[PreferenceSource] = None,
                 preference: Optional[S.Preference] = None,   # as read (None: none, or unread)
                 preference_problem: Optional[str] = None,    # why the preference is unknown
                 preference_reason: Optional[str] = None,     # the same in a few words
                 effective: bool = False,  # the flag at the next start (a best guess when origin is unknown)
                 origin: str = "default",               # vm | vmi | preference | default | unknown
                 live: Optional[bool] = None,           # the flag the running domain was built with
                 restart_pending: bool = False,
                 restart_reason: Optional[str] = None,
                 restart_condition: Optional[str] = None,  # the VM's RestartRequired message, when KubeVirt set it
                 arch: str = "amd64",
                 machine_now: Optional[str] = None,     # machine family of the running VMI
                 machine_next: str = "q35",             # machine family at the next start
                 machine_note: str = "",                # how machine_next was found, when not from the template
                 guest_hints: Optional[Dict[str, Any]] = None,
                 notes: Optional[List[Note]] = None):
        self.namespace, self.name, self.vm, self.vmi = namespace, name, vm, vmi
        self.spec, self.running_spec, self.release = spec, running_spec, release
        self.pods = pods if pods is not None else []
        self.pod, self.preference_source, self.preference = pod, preference_source, preference
        self.preference_problem, self.preference_reason = preference_problem, preference_reason
        self.effective, self.origin, self.live = effective, origin, live
        self.restart_pending, self.restart_reason = restart_pending, restart_reason
        self.restart_condition, self.arch = restart_condition, arch
        self.machine_now, self.machine_next, self.machine_note = machine_now, machine_next, machine_note
        self.guest_hints = guest_hints if guest_hints is not None else {}
        self.notes = notes if notes is not None else []

    @property
    def phase(self) -> Optional[str]:
        return status(self.vmi).get("phase") if self.vmi is not None else None

    @property
    def running(self) -> bool:
        """A VMI exists and has not finished (it may still be scheduling)."""
        return self.vmi is not None and self.phase not in GONE

    @property
    def preference_unread(self) -> bool:
        """The preference that decides an unset field is unknown (unreadable, inferred, odd kind)."""
        return self.preference_note is not None

    @property
    def preference_note(self) -> Optional[Note]:
        read = PreferenceRead(self.preference, self.preference_problem) if self.preference_problem else None
        return preference_note(self.preference_source, read)

    @property
    def effective_known(self) -> Optional[bool]:
        """The effective flag, None when it is unknown (origin "unknown")."""
        return None if self.origin == "unknown" else self.effective

    @property
    def running_flag(self) -> Optional[bool]:
        """The running VMI's useVirtioTransitional (its spec is final: unset = false), None when
        nothing runs; unlike `live`, also where the models cannot show it (s390x)."""
        return bool(self.running_spec.declared_flag) if self.running_spec is not None else None

    @property
    def template_flag(self) -> Optional[bool]:
        v = dig(self.vm, "spec", "template", "spec", "domain", "devices").get("useVirtioTransitional")
        return v if isinstance(v, bool) else None

    def flag_with(self, template_value: Optional[bool]) -> Tuple[Optional[bool], str]:
        """(effective, origin) if the VM template's field were `template_value` (None: unset),
        with this context's preference; (None, "unknown") when the preference decides and is
        unknown.  set-transitional's before/after."""
        if isinstance(template_value, bool):
            return template_value, "vm"
        if self.preference_unread:
            return None, "unknown"
        p = self.preference.devices.get("preferredUseVirtioTransitional") if self.preference else None
        if isinstance(p, bool):
            return p, "preference"
        return False, "default"

    @property
    def run_strategy(self) -> str:
        spec = dig(self.vm, "spec")
        return spec.get("runStrategy") or ("Always" if spec.get("running") else "Halted")

    def to_dict(self) -> Dict[str, Any]:
        """The resolved facts, in the keys the reports use."""
        return {"vm": {"namespace": self.namespace, "name": self.name},
                "running": self.running,
                "kubevirtVersion": self.release.to_dict(),
                "useVirtioTransitional": {"effective": self.effective, "origin": self.origin, "live": self.live},
                "restartRequired": self.restart_pending,
                "arch": self.arch, "machine": self.machine_now or self.machine_next}


def restart_condition(vm) -> Optional[str]:
    """The message of the VM's RestartRequired condition when its status is True (the API
    serialises ConditionStatus as the string "True"; a bare boolean is accepted too)."""
    for c in status(vm).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "RestartRequired" and str(c.get("status")) == "True":
            return c.get("message") or "RestartRequired"
    return None


def restart_pending(condition: Optional[str], live: Optional[bool], effective: Optional[bool],
                    has_vm: bool) -> Tuple[bool, Optional[str]]:
    """(pending, why): KubeVirt's RestartRequired condition, or a running VM whose flag differs
    from what its next start gives (KubeVirt sets the condition only after it sees the change)."""
    if condition:
        return True, "KubeVirt's RestartRequired condition: %s" % condition
    if has_vm and live is not None and effective is not None and live != effective:
        return True, ("the running VM has useVirtioTransitional %s; its next start gives %s"
                      % (str(live).lower(), str(effective).lower()))
    return False, None


def effective_flag(spec: S.VMSpec, preference_unread: bool, release: Release) -> Tuple[bool, str]:
    """(value, origin) at the next start: the spec's own value, else the preference's, else
    false; "unknown" when the preference that would decide is unknown; a release without the
    field ignores it (default)."""
    value, origin = spec.effective_flag()
    if preference_unread and origin in ("default", "preference"):
        origin = "unknown"
    if not _has_flag(release.version):
        value, origin = False, "default"
    return value, origin


_HAS_FLAG: Dict[Any, bool] = {}


def _has_flag(version: V.Version) -> bool:
    """versions.has_flag, once per release: a fleet's VMs run a few releases."""
    known = _HAS_FLAG.get(version)
    if known is None:
        known = V.has_flag(version)
        if len(_HAS_FLAG) < 256:
            _HAS_FLAG[version] = known
    return known


def machines(vm, vmi, running: bool, arch: str) -> Tuple[Optional[str], str, str]:
    """(family now, family at the next start, how the latter was found)."""
    now = None
    if running:
        now = _machine_family(dig(vmi, "status", "machine").get("type")
                             or dig(vmi, "spec", "domain", "machine").get("type"))
    tmpl = dig(vm, "spec", "template", "spec", "domain", "machine").get("type")
    if tmpl:
        return now, _machine_family(str(tmpl)) or str(tmpl), ""
    vmi_type = dig(vmi, "spec", "domain", "machine").get("type") if vmi else None
    if vmi_type:  # the mutating webhook filled in the cluster's default when the VMI was made
        return now, _machine_family(str(vmi_type)) or str(vmi_type), " (the cluster default)"
    return now, DEFAULT_MACHINE.get(arch, "q35"), " (assumed: KubeVirt's %s default)" % arch


_FAMILIES: Dict[str, Optional[str]] = {}


def _machine_family(machine: Any) -> Optional[str]:
    """domain.machine_family, once per machine type string: a fleet has a few."""
    if type(machine) is not str:
        from kubectl_virtio.domain import machine_family as family

        return family(machine)
    known = _FAMILIES.get(machine, _FAMILIES)
    if known is _FAMILIES:
        from kubectl_virtio.domain import machine_family as family

        known = family(machine)
        if len(_FAMILIES) < 256:
            _FAMILIES[machine] = known
    return known


def guest_hints(vm, vmi, spec: S.VMSpec, src: Optional[PreferenceSource]) -> Dict[str, Any]:
    """What may tell the guest OS, raw: labels, annotations (VM and template), the preference's
    name, and the running VMI's status.guestOSInfo (from the guest agent)."""
    info = status(vmi).get("guestOSInfo") if vmi is not None else None
    return {"labels": dict(spec.labels), "annotations": dict(spec.annotations),
            "preference": (src.name if src is not None else None) or ((spec.preference_ref or {}).get("name")),
            "guestOSInfo": info if isinstance(info, dict) and info else None}


def with_vm(ctx: VMContext, vm: Dict[str, Any], arch: Optional[str] = None) -> VMContext:
    """The context again for a newer copy of the same VM (after a conflict), reusing what was
    read: VMI, pods, preference, release."""
    pref = PreferenceRead(ctx.preference, ctx.preference_problem, reason=ctx.preference_reason) \
        if (ctx.preference is not None or ctx.preference_problem) else None
    return build(vm, ctx.vmi, release=ctx.release, pods=ctx.pods, pref=pref, arch=arch,
                 name=ctx.name, namespace=ctx.namespace)


def build(vm, vmi, *, release: Release, pods: Sequence[Dict[str, Any]] = (), pref: Optional[PreferenceRead] = None,
          arch: Optional[str] = None, name: Optional[str] = None, namespace: Optional[str] = None,
          preference_skipped: bool = False) -> VMContext:
    """The context from objects already read (pure).  `pref`: the read of the VM's preference
    (None when it has none or it was not read); `arch`: --arch.  `preference_skipped`: the
    caller chose not to read it (dumpxml shows no flag): no note that it "was not read"."""
    if vm is None and vmi is None:
        raise ValueError("build() needs a VM or a VMI")
    obj = vm if vm is not None else vmi
    name = name or meta(obj).get("name") or ""
    namespace = namespace or meta(obj).get("namespace") or ""
    notes: List[Note] = list(release.notes)
    spec = S.vm_from_object(vm, "VirtualMachine %s" % name) if vm is not None else \
        S.vm_from_object(vmi, "VMI %s" % name)
    phase = status(vmi).get("phase") if vmi is not None else None
    gone = phase in GONE
    running_spec = S.vm_from_object(vmi, "VMI %s" % name) if vmi is not None and not gone else None
    src = preference_source(vm) if vm is not None else None
    preference = pref.preference if pref is not None else None
    problem = pref.problem if pref is not None else None
    reason = (pref.reason or pref.problem) if pref is not None else None
    if src is not None and src.fetchable and pref is None and not preference_skipped:
        problem = reason = "the VM's preference (%s) was not read" % src.text()
    note = preference_note(src, PreferenceRead(preference, problem, pref.severity if pref else "warning")
                           if problem else None)
    if note is not None:
        notes.append(note)
    spec.preference = preference
    unread = note is not None
    if unread and vm is not None and spec.declared_flag is None and running_spec is not None:
        # The VMI spec shows what KubeVirt applied from that preference at start: the best
        # guess for an unchanged frozen revision, rather than a made-up drift.
        spec.preference = S.Preference(name=(src.name if src else None) or "", kind="", source="running VMI",
                                       spec={"devices": {"preferredUseVirtioTransitional":
                                                         bool(running_spec.declared_flag)}})
    arch = arch or S.arch_from_go(dig(vmi, "spec").get("architecture")) or spec.architecture and \
        S.arch_from_go(spec.architecture) or "amd64"
    value, origin = effective_flag(spec, unread, release)
    live = None
    if running_spec is not None:
        from kubectl_virtio.rules import effective_arch

        # s390x: virtio-ccw has no transitional variant, the models cannot show the flag.
        live = None if effective_arch(arch, release.version) == "s390x" else running_spec.effective_flag()[0]
    cond = restart_condition(vm) if vm is not None else None
    pending, why = restart_pending(cond, live, value, vm is not None)
    m_now, m_next, m_note = machines(vm, vmi, running_spec is not None, arch)
    chosen = None
    if pods and vmi is not None:
        chosen, pod_notes = choose_pod(pods, vmi)
        notes.extend(pod_notes)
    return VMContext(namespace=namespace, name=name, vm=vm, vmi=vmi, spec=spec, running_spec=running_spec,
                     release=release, pods=list(pods), pod=chosen, preference_source=src, preference=preference,
                     preference_problem=problem, preference_reason=reason, effective=value, origin=origin, live=live,
                     restart_pending=pending, restart_reason=why, restart_condition=cond, arch=arch,
                     machine_now=m_now, machine_next=m_next, machine_note=m_note,
                     guest_hints=guest_hints(vm, vmi, spec, src), notes=notes)


# --- resolution through the adapter ---------------------------------------------------------

class VMNotFound(ClusterError):
    """Neither the VM nor the VMI exists."""


def resolve(cluster, namespace: str, name: str, *, kind: Optional[str] = None,
            override: Optional[V.Version] = None, arch: Optional[str] = None, pods: bool = True,
            preference: bool = True, release: bool = True) -> VMContext:
    """Resolve one VM: GET the VM and the VMI at once, then at once its launcher pods (a
    running VMI only), its preference and, when the VMI does not name the release, the
    KubeVirt CR.  kind "vmi": the VMI alone.  Raises VMNotFound."""
    if kind == "vmi":
        vm, vmi = None, cluster.get_vmi(namespace, name)
    else:
        vm, vmi = cluster.parallel(lambda: cluster.get_vm(namespace, name), lambda: cluster.get_vmi(namespace, name))
    if vm is None and vmi is None:
        what = "VirtualMachineInstance" if kind == "vmi" else "VirtualMachine or VirtualMachineInstance"
        raise VMNotFound("no %s %r in namespace %s" % (what, name, namespace),
                         "check the name, or pass -n NAMESPACE (`kubectl get vm -A` lists them all)")
    want_pods = pods and vmi is not None and status(vmi).get("phase") == RUNNING
    src = preference_source(vm) if (vm is not None and preference) else None
    vmi_version = None
    if vmi is not None:
        vmi_version = V.from_image(status(vmi).get("launcherContainerImageVersion"))[0]
    want_cr = release and override is None and vmi_version is None
    calls = [
        (lambda: cluster.list_launcher_pods(namespace, meta(vmi).get("uid"))) if want_pods else None,
        (lambda: fetch_preference(cluster, namespace, src)) if src is not None and src.fetchable else None,
        (lambda: read_kubevirt_cr(cluster)) if want_cr else None,
    ]
    results = iter(cluster.parallel(*calls))
    got = [next(results) if c is not None else None for c in calls]
    pod_list, pref_read, cr = got[0] or [], got[1], got[2] or (None, None)
    if not release:
        rel = Release(override or V.NEWEST, SOURCE_FLAG if override else SOURCE_NEWEST)
    else:
        chosen, _ = choose_pod(pod_list, vmi) if pod_list else (None, [])
        rel = choose_release(override, status(vmi).get("launcherContainerImageVersion") if vmi else None,
                             compute_image(chosen) if chosen is not None else None, cr[0], cr[1])
    return build(vm, vmi, release=rel, pods=pod_list, pref=pref_read, arch=arch, name=name, namespace=namespace,
                 preference_skipped=not preference)


def resolve_many(cluster, vms: Iterable[Dict[str, Any]], vmis: Iterable[Dict[str, Any]], *,
                 override: Optional[V.Version] = None, arch: Optional[str] = None) -> List[VMContext]:
    """Contexts for many VMs from LIST results (no launcher pods): one read per distinct
    preference object, never one per VM (the per-VM frozen revisions would be one read each),
    and one read of the KubeVirt CR when a VM's VMI does not name the release."""
    vms = [v for v in vms if isinstance(v, dict)]
    by_key = {(meta(v).get("namespace"), meta(v).get("name")): v for v in vmis if isinstance(v, dict)}
    sources = {}
    for vm in vms:
        src = preference_source(vm)
        if src is not None and src.fetchable and src.name:
            sources.setdefault(src.object_key(meta(vm).get("namespace")), (meta(vm).get("namespace"), src))
    need_cr = override is None and any(
        V.from_image(status(by_key.get((meta(v).get("namespace"), meta(v).get("name")))).get(
            "launcherContainerImageVersion"))[0] is None for v in vms)
    keys = list(sources)
    calls = [(lambda ns=ns, src=src: fetch_preference(cluster, ns, src, by_object=True)) for ns, src in
             (sources[k] for k in keys)]
    if need_cr:
        calls.append(lambda: read_kubevirt_cr(cluster))
    results = parallel_bounded(cluster, calls)
    cr = results.pop() if need_cr else (None, None)
    reads = dict(zip(keys, results))
    out = []
    for vm in vms:
        ns, name = meta(vm).get("namespace"), meta(vm).get("name")
        vmi = by_key.get((ns, name))
        src = preference_source(vm)
        pref = None
        if src is not None and src.fetchable:
            pref = reads.get(src.object_key(ns)) if src.name else PreferenceRead(
                problem="the VM's preference (%s) is only known by its revision; not read for a fleet" % src.text())
        rel = choose_release(override, status(vmi).get("launcherContainerImageVersion") if vmi else None,
                             None, cr[0], cr[1])
        out.append(build(vm, vmi, release=rel, pref=pref, arch=arch))
    return out


def parallel_bounded(cluster, calls: List[Callable[[], Any]], width: int = 8) -> List[Any]:
    """Run the reads `width` at a time through the adapter's parallel()."""
    out: List[Any] = []
    for i in range(0, len(calls), width):
        out.extend(cluster.parallel(*calls[i:i + width]))
    return out


def _clip(text: Any, n: int = 80) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 3] + "..."
