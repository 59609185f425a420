"""Will this guest drive its devices?  Guest identification and virtio 1.0 verdicts.

Pure functions on plain dicts (VM, VMI, preference name, override); no I/O but reading the
shipped table `data/guests.json` (made by scripts/gen-guests-table from osinfo-db).
docs/osinfo.md explains the rule, the curated kernel table and their sources.

Public API
  identify(vm, vmi, preference, override) -> dict | None   who the guest is, and from where
  verdict(os_id, kernel_release=None) -> dict               virtio1 yes/no/unknown + evidence
  assess(vm, vmi, preference, override) -> GuestOS | None   identify + verdict
  guest_findings(guest, devices, ...) -> (findings, dict)   explain's guest findings
  kernel_verdict(release) -> (bool | None, evidence)        a Linux kernel release alone
  parse_guest_devices(reply) -> list                        QGA guest-get-devices (Windows)
  parse_driver_check(data) -> list                          must-gather virtio-driver-installed.json
  parse_driver_report(data) -> list                         its virtio-driver-report.json: OUTDATED
  driver_check_guest(guest, devices, where, outdated) -> dict   a fleet row's guest after them
  table() / rows(ids)                                       the shipped table
"""
from __future__ import annotations

import copy
import functools
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from kubectl_virtio.record import Record

# --- Kernel rule -----------------------------------------------------------------------
# Linux 4.0 added the modern (virtio 1.0) virtio-pci driver: drivers/virtio/virtio_pci_modern.c,
# commit 1fcf0512c9c8 "virtio_pci: modern driver" (torvalds/linux, merged for 4.0).  Before it,
# virtio_pci_legacy_probe only claims ids 1af4:1000-103f with revision 0.  docs/osinfo.md.
MODERN_DRIVER = (4, 0)
MODERN_DRIVER_SOURCE = ("Linux 4.0: drivers/virtio/virtio_pci_modern.c, commit 1fcf0512c9c8 "
                        "\"virtio_pci: modern driver\"")
# Known backports into older kernel lines: (pattern, minimum (major, minor, patch, build), evidence)
BACKPORTS: List[Tuple[str, Tuple[int, int, int, int], str]] = [
    (r"^3\.10\.0-\d+(\.\d+)*\.el7(\.|_|$)", (3, 10, 0, 327),
     "RHEL 7.2 (kernel 3.10.0-327.el7) backported the modern virtio-pci driver as a technology preview "
     "(RHEL 7.2 release notes; osinfo-db commit 269118c2)"),
]
_KREL = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-(\d+))?")


def kernel_verdict(release: str) -> Tuple[Optional[bool], str]:
    """Does a Linux kernel release (uname -r) drive virtio 1.0 PCI devices?"""
    rel = str(release or "").strip()[:MAX_ID]
    m = _KREL.match(rel)
    if not m:
        return None, "kernel release %r is not a Linux release" % rel[:64]
    major, minor = int(m.group(1)), int(m.group(2))
    patch, build = int(m.group(3) or 0), int(m.group(4) or 0)
    if (major, minor) >= MODERN_DRIVER:
        return True, "Linux %s >= 4.0, which added the modern virtio-pci driver" % rel
    for pattern, minimum, evidence in BACKPORTS:
        if re.match(pattern, rel):
            if (major, minor, patch, build) >= minimum:
                return True, "kernel %s has the backport: %s" % (rel, evidence)
            return False, "kernel %s predates the backport: %s" % (rel, evidence)
    return False, ("Linux %s predates 4.0's modern virtio-pci driver and has no known backport: only legacy "
                   "virtio (ids 1af4:1000-103f)" % rel)


# --- The shipped table -----------------------------------------------------------------
_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "guests.json")
_cache: Dict[str, Any] = {}


def table() -> Dict[str, Any]:
    """The shipped guest table (made by scripts/gen-guests-table from osinfo-db)."""
    if "table" not in _cache:
        try:
            with open(_DATA, encoding="utf-8") as fh:
                _cache["table"] = json.load(fh)
        except (OSError, ValueError) as e:
            from kubectl_virtio.errors import VirtioError

            raise VirtioError("the guest OS table %s cannot be read (%s)" % (_DATA, getattr(e, "strerror", None) or e),
                              "reinstall kubectl-virtio; from a checkout, scripts/gen-guests-table writes it") from None
    return _cache["table"]


def _index() -> Dict[str, Dict[str, Any]]:
    if "index" not in _cache:
        idx = {}
        for r in table()["items"]:
            for sid in [r["id"]] + list(r.get("aliases") or []):
                idx.setdefault(sid.lower(), r)
        _cache["index"] = idx
    return _cache["index"]


def provenance() -> Dict[str, Any]:
    t = table()
    return {k: t.get(k) for k in ("osinfoDb", "osinfoDbPackage", "osinfoDbVersionFile", "generatedBy", "rule",
                                  "kernelRule", "kernels", "counts")}


# --- Normalising an OS name into osinfo short-ids --------------------------------------
_PREF_SUFFIXES = (".desktop", ".dpdk", ".realtime", ".virtio", ".arm64", ".s390x", ".amd64", ".efi", ".i386")
_FAMILY_ALIASES = {"oraclelinux": "ol", "oracle": "ol", "redhat": "rhel", "opensuse.leap": "opensuse",
                   "opensuse-leap": "opensuse", "opensuse.tumbleweed": "opensusetumbleweed",
                   "opensuse-tumbleweed": "opensusetumbleweed", "alpine": "alpinelinux", "alma": "almalinux",
                   "rockylinux": "rocky", "centos.stream": "centos-stream", "centosstream": "centos-stream"}
_WIN_SERVER = re.compile(r"^(?:20)?(\d\d)(r2)?$")
LEGACY_PREFERENCE = "linux.virtiotransitional"


def normalise(raw: str) -> str:
    """`windows.2k19` -> win2k19, `centos.stream9` -> centos-stream9, `rhel.9` -> rhel9,
    `Windows10` -> win10, `RHEL-8.4` -> rhel8.4."""
    s = str(raw).strip().lower().replace(" ", "")[:MAX_ID]
    for suf in _PREF_SUFFIXES:
        if s.endswith(suf) and len(s) > len(suf):
            s = s[: -len(suf)]
    if s in _FAMILY_ALIASES:
        return _FAMILY_ALIASES[s]
    m = re.match(r"^(?:windows|win)[._-]?(.*)$", s)
    if m:
        rest = m.group(1).replace(".", "") if m.group(1).startswith("2k") else m.group(1)
        return "win" + rest
    m = re.match(r"^centos[._-]?stream[._-]?(\d*)$", s)
    if m:
        return "centos-stream" + m.group(1)
    m = re.match(r"^([a-z][a-z-]*?)[._-]?(\d[\w.]*)$", s)
    if m and m.group(1) not in ("centos-stream",):
        fam = _FAMILY_ALIASES.get(m.group(1), m.group(1))
        return fam + m.group(2)
    return s


def _split(sid: str) -> Tuple[str, Tuple[int, ...]]:
    """rhel7.9 -> ('rhel', (7, 9)); sles12sp5 -> ('sles', (12, 5)); win2k19 -> ('win2k', (19,))."""
    m = re.match(r"^([a-z][a-z-]*?)(\d+(?:\.\d+)*)(?:sp(\d+))?$", sid)
    if not m:
        return sid, ()
    nums = tuple(int(x) for x in m.group(2).split("."))
    if m.group(3):
        nums = nums + (int(m.group(3)),)
    return m.group(1), nums


def _family_rows(fam: str) -> List[Tuple[Tuple[int, ...], Dict[str, Any]]]:
    out = []
    for r in table()["items"]:
        f, v = _split(r["id"])
        if f == fam and v:
            out.append((v, r))
    out.sort(key=lambda x: x[0])
    return out


def _row_verdict(r: Dict[str, Any], os_id: str, source: Optional[str] = None,
                 evidence: Optional[str] = None) -> Dict[str, Any]:
    return {"id": r["id"], "asked": os_id, "name": r.get("name"), "virtio1": r["virtio1"],
            "basis": source or r["source"], "evidence": evidence or r["evidence"],
            "windows": _is_windows_row(r)}


def _is_windows_row(r) -> bool:
    return r.get("family") in ("winnt", "win9x", "win16") or (r.get("distro") or "").startswith("win")


def _is_windows_id(sid: str) -> bool:
    return sid.startswith("win")


def verdict(os_id: Optional[str], kernel_release: Optional[str] = None) -> Dict[str, Any]:
    """{'id', 'name', 'virtio1': True|False|None, 'basis': osinfo-db|kernel|curated|family|unknown,
    'evidence'} for an OS id (any spelling normalise() knows) and/or a Linux kernel release."""
    v = _id_verdict(os_id) if os_id else None
    if not kernel_release:
        return v or {"id": None, "asked": None, "name": None, "virtio1": None, "basis": "unknown",
                     "evidence": "the guest OS is not known", "windows": False}
    ok, why = kernel_verdict(kernel_release)
    if v is None or (ok is None and v is not None):
        if v is not None:
            return v
        return {"id": None, "asked": None, "name": None, "virtio1": ok, "basis": "kernel", "evidence": why,
                "windows": False}
    base = dict(v)
    if ok is True and v["virtio1"] is True and v["basis"] == "osinfo-db":
        base["evidence"] = "%s; the running kernel agrees (%s)" % (v["evidence"], why)
    elif ok is True:
        if v["virtio1"] is not True:
            why += " (the OS id alone said: %s)" % v["evidence"]
        base.update(virtio1=True, basis="kernel", evidence=why)
    elif ok is False:
        from_catalogue = v["virtio1"] is True
        known_line = any(re.match(p, kernel_release.strip()) for p, _, _ in BACKPORTS)
        if from_catalogue and not known_line:
            base.update(virtio1=None, basis="kernel", evidence="%s, but %s: cannot tell which holds for this guest"
                        % (v["evidence"], why))
        else:
            base.update(virtio1=False, basis="kernel", evidence=why)
    return base


def _id_verdict(os_id: str) -> Dict[str, Any]:
    """The verdict for an OS id (a fresh dict: callers may change it).  Cached by id: a
    version-only id scans the whole table, and a fleet asks for the same few ids again and
    again (bench/fleet --live)."""
    return copy.deepcopy(_id_verdict_cached(os_id))


@functools.lru_cache(maxsize=1024)
def _id_verdict_cached(os_id: str) -> Dict[str, Any]:
    sid = normalise(os_id)
    r = _index().get(sid)
    if r is not None:
        return _row_verdict(r, os_id)
    osinfo = table().get("osinfoDb")
    fam, ver = _split(sid)
    if _is_windows_id(sid):
        return {"id": sid, "asked": os_id, "name": None, "virtio1": None, "basis": "curated", "windows": True,
                "evidence": "Windows has no in-box virtio drivers: depends on the virtio-win drivers installed "
                            "(virtio-win 0.1.126, 2016, and later drive virtio 1.0 devices)"}
    # A major release without its minor (rhel9, centos6, ol7): all its releases in the table.
    rows = [r for r in table()["items"] if r["id"].startswith(sid + ".") or
            (re.match(r"^[a-z-]+\d+$", sid) and re.match(re.escape(sid) + r"sp\d+$", r["id"]))]
    if rows:
        return _aggregate(sid, os_id, rows, "releases of %s" % sid)
    fam_rows = _family_rows(fam) if fam else []
    if fam_rows and ver and ver > fam_rows[-1][0]:
        newest = fam_rows[-1][1]
        since = _first_yes_run(fam_rows)
        if newest["virtio1"] is True and since is not None:
            return {"id": sid, "asked": os_id, "name": None, "virtio1": True, "basis": "family", "windows": False,
                    "evidence": "%s is newer than %s, the newest %s release osinfo-db %s knows; every %s release "
                                "since %s drives virtio 1.0, and later releases keep the driver"
                                % (sid, newest["id"], fam, osinfo, fam, since)}
    if fam_rows and not ver:
        # The family alone (fedora, ubuntu, ol): fine when every release that lacks virtio 1.0
        # reached its end of life before the osinfo-db release.
        return _versionless(sid, os_id, fam_rows)
    return {"id": sid, "asked": os_id, "name": None, "virtio1": None, "basis": "unknown", "windows": False,
            "evidence": "%s is not in osinfo-db %s and no rule covers it: cannot tell (give --guest-os ID with an "
                        "osinfo short-id, e.g. rhel9.4, or install the guest agent)" % (sid, osinfo)}


def _first_yes_run(fam_rows) -> Optional[str]:
    """The release from which every later one is yes (None if the newest is not yes)."""
    since = None
    for _, r in reversed(fam_rows):
        if r["virtio1"] is True:
            since = r["id"]
        else:
            break
    return since


def _aggregate(sid, os_id, rows, what) -> Dict[str, Any]:
    vals = {r["virtio1"] for r in rows}
    ids = sorted((r["id"] for r in rows), key=lambda i: _split(i)[1])
    span = ids[0] if len(ids) == 1 else "%s ... %s" % (ids[0], ids[-1])
    if len(vals) == 1:
        val = vals.pop()
        first = rows[0]
        word = {True: "drive virtio 1.0", False: "lack virtio 1.0", None: "cannot be told"}[val]
        return {"id": sid, "asked": os_id, "name": None, "virtio1": val, "basis": "family",
                "windows": _is_windows_row(first),
                "evidence": "all %d %s (%s) %s; e.g. %s" % (len(rows), what, span, word, first["evidence"])}
    no = [r["id"] for r in rows if r["virtio1"] is False]
    yes = [r["id"] for r in rows if r["virtio1"] is True]
    return {"id": sid, "asked": os_id, "name": None, "virtio1": None, "basis": "family", "windows": False,
            "evidence": "%s: ambiguous, %s lack virtio 1.0, %s drive it; name the release (e.g. --guest-os %s)"
                        % (sid, ", ".join(no[:4]) + (" ..." if len(no) > 4 else ""),
                           ", ".join(yes[:3]) + (" ..." if len(yes) > 3 else ""), yes[-1] if yes else ids[-1])}


def _versionless(sid, os_id, fam_rows) -> Dict[str, Any]:
    osinfo = table().get("osinfoDb") or ""
    stamp = re.sub(r"^0\.(\d{4})(\d\d)(\d\d).*$", r"\1-\2-\3", osinfo)
    newest = fam_rows[-1][1]
    not_yes = [r for _, r in fam_rows if r["virtio1"] is not True]
    live = [r["id"] for r in not_yes if not (r.get("eol") and r["eol"] < stamp)]
    if newest["virtio1"] is True and not live:
        since = _first_yes_run(fam_rows)
        return {"id": sid, "asked": os_id, "name": None, "virtio1": True, "basis": "family", "windows": False,
                "evidence": "%s without a release: every %s release since %s drives virtio 1.0, and those "
                            "before it reached end of life by %s (osinfo-db %s)"
                            % (sid, sid, since, max(r["eol"] for r in not_yes) if not_yes else "-", osinfo)}
    return {"id": sid, "asked": os_id, "name": None, "virtio1": None, "basis": "family", "windows": False,
            "evidence": "%s without a release: some releases lack virtio 1.0 (%s); name the release"
                        % (sid, ", ".join((live or [r["id"] for r in not_yes])[:4]))}


def virtio1_support(os_id: str) -> Tuple[Optional[bool], str]:
    """(virtio1, evidence) for an OS id: the older, tuple-shaped entry point."""
    v = verdict(os_id)
    return v["virtio1"], v["evidence"]


# --- Identification ----------------------------------------------------------------------
OS_ANNOTATION = "vm.kubevirt.io/os"  # common-templates: spec.template.metadata.annotations
OS_TEMPLATE_LABEL = "os.template.kubevirt.io/"  # common-templates: os.template.kubevirt.io/<short-id>: "true"
OS_NAME_ANNOTATION = "name.os.template.kubevirt.io/"  # name.os.template.kubevirt.io/<short-id>: display name


def _d(x) -> Dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _meta_maps(obj: Optional[Dict[str, Any]]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """labels and annotations of an object and of its spec.template (a VM's template wins)."""
    labels: Dict[str, str] = {}
    annotations: Dict[str, str] = {}
    if not obj:
        return labels, annotations
    meta = _d(obj.get("metadata"))
    tmeta = _d(_d(_d(obj.get("spec")).get("template")).get("metadata"))
    for src in (meta, tmeta):
        labels.update({str(k): str(v) for k, v in _d(src.get("labels")).items()})
        annotations.update({str(k): str(v) for k, v in _d(src.get("annotations")).items()})
    return labels, annotations


def _preference_name(vm: Optional[Dict[str, Any]]) -> Optional[str]:
    spec = _d(_d(vm).get("spec"))
    name = _d(spec.get("preference")).get("name") or _d(_d(_d(vm).get("status")).get("preferenceRef")).get("name")
    return str(name) if name else None


MAX_ID = 64  # an OS id or kernel release longer than this is not one (bounds regex work and output)


def _clip(v: Any) -> str:
    return str(v).strip()[:MAX_ID]


def hints(vm: Optional[Dict[str, Any]] = None, vmi: Optional[Dict[str, Any]] = None,
          preference: Optional[str] = None, override: Optional[str] = None) -> List[Dict[str, Any]]:
    """Every clue to the guest OS, best evidence first: [{'id', 'source', ...}]."""
    out: List[Dict[str, Any]] = []
    for h in _hints(vm, vmi, preference, override):
        for k in ("id", "kernelRelease"):
            if h.get(k) is not None:
                h[k] = _clip(h[k])
        if h.get("ids"):
            h["ids"] = [_clip(i) for i in h["ids"][:64]]
        out.append(h)
    return out


def _hints(vm, vmi, preference, override) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    if override:
        out.append({"id": str(override), "source": "--guest-os"})
    gi = _d(_d(_d(vmi).get("status")).get("guestOSInfo"))
    if gi and (gi.get("id") or gi.get("kernelRelease")):
        ident = _agent_id(gi)
        linux = str(gi.get("id") or "").lower() != "mswindows"
        h = {"id": ident, "source": "guest agent (VMI status.guestOSInfo: id=%s versionId=%s%s)" % (
            _clip(gi.get("id") or "-"), _clip(gi.get("versionId") or "-"),
            " kernelRelease=%s" % _clip(gi["kernelRelease"]) if gi.get("kernelRelease") else "")}
        if linux and gi.get("kernelRelease"):
            h["kernelRelease"] = str(gi["kernelRelease"])
        if gi.get("prettyName") or gi.get("name"):
            h["name"] = str(gi.get("prettyName") or gi.get("name"))[:128]
        out.append(h)
    for obj, what in ((vm, "VM"), (vmi, "VMI")):
        labels, annotations = _meta_maps(obj)
        tmpl = sorted(_clip(k[len(OS_TEMPLATE_LABEL):]) for k, v in labels.items()
                      if k.startswith(OS_TEMPLATE_LABEL) and v.strip().lower() == "true")
        names = sorted(_clip(k[len(OS_NAME_ANNOTATION):]) for k in annotations if k.startswith(OS_NAME_ANNOTATION))
        if len(tmpl) == 1:
            out.append({"id": tmpl[0], "source": "%s label %s%s" % (what, OS_TEMPLATE_LABEL, tmpl[0])})
        if len(names) == 1:
            out.append({"id": names[0], "source": "%s annotation %s%s" % (what, OS_NAME_ANNOTATION, names[0])})
        for key, kind, m in ((OS_ANNOTATION, "annotation", annotations), (OS_ANNOTATION, "label", labels)):
            if m.get(key):
                out.append({"id": m[key], "source": "%s %s %s" % (what, kind, key)})
        if len(tmpl) > 1:
            out.append({"ids": tmpl, "id": None, "source": "%s labels %s{%s}" % (
                what, OS_TEMPLATE_LABEL, ",".join(tmpl[:3]) + (",..." if len(tmpl) > 3 else ""))})
    pref = preference or _preference_name(vm)
    if pref:
        if pref == LEGACY_PREFERENCE:
            out.append({"id": None, "legacy": True, "source": "preference %s" % pref})
        elif pref not in ("linux", "linux.efi", "legacy"):
            out.append({"id": pref, "source": "preference %s" % pref})
    return [h for h in out if h.get("id") or h.get("ids") or h.get("kernelRelease") or h.get("legacy")]


def _agent_id(gi: Dict[str, Any]) -> Optional[str]:
    """VMI status.guestOSInfo (os-release ID/VERSION_ID; Windows: mswindows + version-id)
    -> an osinfo short-id candidate."""
    oid = str(gi.get("id") or "").strip().lower()
    vid = str(gi.get("versionId") or "").strip().lower().replace(" ", "")
    name = (str(gi.get("name") or "") + " " + str(gi.get("prettyName") or "")).lower()
    if not oid:
        return None
    if oid == "mswindows":
        m = _WIN_SERVER.match(vid)
        if vid.startswith("20") and m:
            return "win2k%d%s" % (int(m.group(1)), m.group(2) or "")
        return "win" + vid if vid else "win"
    if oid == "centos" and "stream" in name:
        return "centos-stream" + vid.split(".")[0]
    fam = {"opensuse-leap": "opensuse", "opensuse-tumbleweed": "opensusetumbleweed", "alpine": "alpinelinux",
           "sled": "sled", "sles": "sles", "sles_sap": "sles"}.get(oid, oid)
    if fam in ("sles", "sled"):
        m = re.match(r"^(\d+)(?:\.(\d+))?", vid)
        if m:
            major, sp = int(m.group(1)), int(m.group(2) or 0)
            base = "sle" if major >= 15 and fam == "sles" else fam
            return "%s%d%s" % (base, major, "sp%d" % sp if sp else "")
    if fam == "opensusetumbleweed":
        return fam
    return fam + vid if vid else fam


def identify(vm: Optional[Dict[str, Any]] = None, vmi: Optional[Dict[str, Any]] = None,
             preference: Optional[str] = None, override: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The best identification: {'id', 'source', 'kernelRelease'?, 'name'?, 'others': [...]},
    or None when nothing names the guest."""
    hs = hints(vm, vmi, preference, override)
    if not hs:
        return None
    best = dict(hs[0])
    best["others"] = [{"id": h.get("id") or h.get("ids"), "source": h["source"]} for h in hs[1:]]
    if not best.get("kernelRelease"):
        for h in hs[1:]:
            if h.get("kernelRelease") and best["source"] == "--guest-os":
                best["kernelRelease"] = h["kernelRelease"]
                break
    return best


class GuestOS(Record):
    __slots__ = _fields = ("id", "source", "virtio1", "evidence", "basis", "name", "kernel_release", "windows",
                           "others", "drivers")

    def __init__(self, id: Optional[str],  # osinfo short-id (normalised), None when only the kernel is known
                 source: str,  # where it was read: --guest-os, guest agent, label ..., preference ...
                 virtio1: Optional[bool],  # None: cannot tell (Windows: depends on the virtio-win drivers)
                 evidence: str,
                 basis: str = "unknown",  # osinfo-db | kernel | curated | family | unknown
                 name: Optional[str] = None, kernel_release: Optional[str] = None, windows: bool = False,
                 others: Optional[List[Dict[str, Any]]] = None,
                 drivers: Optional[List[Dict[str, Any]]] = None):  # --guest-agent: QGA guest-get-devices
        self.id, self.source, self.virtio1, self.evidence, self.basis = id, source, virtio1, evidence, basis
        self.name, self.kernel_release, self.windows = name, kernel_release, windows
        self.others = others if others is not None else []
        self.drivers = drivers

    @property
    def note(self) -> str:  # the older name of evidence
        return self.evidence

    def to_dict(self) -> Dict[str, Any]:
        d = {"id": self.id, "name": self.name, "source": self.source, "virtio1": self.virtio1,
             "basis": self.basis, "evidence": self.evidence}
        if self.kernel_release:
            d["kernelRelease"] = self.kernel_release
        if self.others:
            d["otherEvidence"] = self.others
        if self.drivers is not None:
            d["drivers"] = self.drivers
        return d


def assess(vm: Optional[Dict[str, Any]] = None, vmi: Optional[Dict[str, Any]] = None,
           preference: Optional[str] = None, override: Optional[str] = None) -> Optional[GuestOS]:
    """identify() + verdict(): the guest and whether it drives virtio 1.0 devices."""
    ident = identify(vm, vmi, preference, override)
    if ident is None:
        return None
    krel = ident.get("kernelRelease")
    if ident.get("legacy"):
        return GuestOS(id=None, source=ident["source"], virtio1=None, basis="unknown", others=ident["others"],
                       evidence="the preference is meant for Linux guests that need transitional (legacy) "
                                "devices; it does not name the release")
    if ident.get("ids"):
        # several os.template labels (a template made for a range of releases): all must agree
        known = [r for r in (_index().get(normalise(i)) for i in ident["ids"]) if r is not None]
        if known:
            common = os.path.commonprefix([r["id"] for r in known]).rstrip(".") or known[0]["id"]
            v = _aggregate(common, None, known, "releases the labels name")
        else:
            v = _id_verdict(ident["ids"][0])
    else:
        v = verdict(ident.get("id"), krel)
    return GuestOS(id=v.get("id") or (normalise(ident["id"]) if ident.get("id") else None), source=ident["source"],
                   virtio1=v["virtio1"], evidence=v["evidence"], basis=v["basis"],
                   name=v.get("name") or ident.get("name"), kernel_release=krel, windows=bool(v.get("windows")),
                   others=ident["others"])


def detect(labels: Dict[str, str], annotations: Dict[str, str], preference_name: Optional[str] = None,
           explicit: Optional[str] = None) -> Optional[GuestOS]:
    """The older entry point: labels/annotations of a VM (merged), preference, override."""
    vm = {"metadata": {"labels": labels or {}, "annotations": annotations or {}}}
    return assess(vm, None, preference_name, explicit)


# --- Findings for explain ----------------------------------------------------------------
NT, T = "virtio-non-transitional", "virtio-transitional"


def _modern_only(d: Dict[str, Any]) -> bool:
    return bool(d.get("virtio")) and (d.get("variant") == "modern-only" or
                                      (d.get("variant") is None and (d.get("model") or d.get("expected")) == NT))


def _transitional(d: Dict[str, Any]) -> bool:
    return bool(d.get("virtio")) and (d.get("variant") == "transitional" or
                                      (d.get("variant") is None and (d.get("model") or d.get("expected")) == T))


def _names(devs: Sequence[Dict[str, Any]], limit: int = 6) -> str:
    s = ", ".join("%s %s" % (d["kind"], d["name"]) for d in devs[:limit])
    return s + (" and %d more" % (len(devs) - limit) if len(devs) > limit else "")


def _cmd(name: Optional[str], namespace: Optional[str], *extra: str) -> str:
    parts = ["kubectl virtio set-transitional", name or "NAME"] + list(extra)
    if namespace:
        parts += ["-n", namespace]
    return " ".join(parts)


def guest_findings(guest: Optional[GuestOS], devices: Sequence[Dict[str, Any]], *, name: Optional[str] = None,
                   namespace: Optional[str] = None, origin: str = "default", arch: str = "amd64",
                   agent_devices: Optional[List[Dict[str, Any]]] = None) -> Tuple[List[Tuple[str, str]], Optional[Dict[str, Any]]]:
    """Findings (severity, message) about the guest and its devices, and the `guest` dict.

    devices: plain dicts {kind, name, model, expected, variant, virtio, boot?} -- the live
    model when there is one, else the predicted (expected) model.  s390x (ccw) negotiates
    the revision, so no variant finding there."""
    out: List[Tuple[str, str]] = []
    if guest is None:
        modern = [d for d in devices if _modern_only(d)] if arch != "s390x" else []
        if modern:
            out.append(("info", "guest OS unknown: an old guest (CentOS/RHEL 6, SLES 11, Debian 8, pre-2016 virtio-win "
                                "drivers) would not see the %d virtio 1.0-only device(s); for a verdict, name the guest "
                                "with --guest-os ID (e.g. centos6.10) or the annotation vm.kubevirt.io/os"
                                % len(modern)))
        return out, None
    if agent_devices is not None:
        guest.drivers = agent_devices
    gd = guest.to_dict()
    who = "guest %s (%s)" % (guest.id or "with kernel %s" % guest.kernel_release, guest.source)
    if arch == "s390x":
        out.append(("info", "%s: on s390x (virtio-ccw) the guest negotiates the virtio revision, so "
                            "useVirtioTransitional does not matter (%s)" % (who, guest.evidence)))
        return out, gd
    modern = [d for d in devices if _modern_only(d)]
    trans = [d for d in devices if _transitional(d)]
    if guest.virtio1 is False and modern:
        disks = [d for d in modern if d["kind"] == "disk"]
        boot = next((d for d in disks if d.get("boot")), disks[0] if disks else None)
        consequence = ("the boot disk (disk %s) will not be found and the guest will not boot" % boot["name"]
                       if boot else "those devices stay without a driver")
        if all(d.get("model") and d.get("expected") == T for d in modern):
            fix = ("the spec already asks for %s: restart the VM so it applies (virtctl restart %s%s)"
                   % (T, name or "NAME", " -n %s" % namespace if namespace else ""))
        else:
            fix = "Fix: %s (then restart the VM)" % _cmd(name, namespace)
        out.append(("error", "%s has no virtio 1.0 driver (%s): %s %s virtio 1.0-only (%s), so the guest does not "
                             "see %s; %s. %s"
                    % (who, guest.evidence, _names(modern), "is" if len(modern) == 1 else "are", NT,
                       "it" if len(modern) == 1 else "them", consequence, fix)))
    elif guest.virtio1 is True and trans:
        fix = _cmd(name, namespace, "--off" if origin == "preference" else "--unset")
        out.append(("info", "%s drives virtio 1.0 (%s): useVirtioTransitional is not needed. Its %d transitional "
                            "device(s) (%s) each take an I/O port range from the guest's 64 KiB I/O space and, on "
                            "q35, sit behind a pcie-to-pci-bridge in conventional PCI slots; as %s they would get "
                            "their own PCIe root ports (native hotplug) and no I/O space. To switch: %s (then "
                            "restart the VM)" % (who, guest.evidence, len(trans), _names(trans), NT, fix)))
    elif guest.windows and guest.virtio1 is None:
        check = ("check in the guest: Device Manager > the 'Red Hat VirtIO ...' device > Driver (or "
                 "`pnputil /enum-drivers`), or ask the guest agent: kubectl virtio explain %s%s --guest-agent"
                 % (name or "NAME", " -n %s" % namespace if namespace else ""))
        if modern:
            out.append(("warning", "%s: %s. Its %s %s virtio 1.0-only: with drivers older than virtio-win 0.1.126 "
                                   "the boot disk is not found (STOP 0x7B INACCESSIBLE_BOOT_DEVICE); %s"
                        % (who, guest.evidence, _names(modern), "is" if len(modern) == 1 else "are", check)))
        else:
            out.append(("info", "%s: %s; %s" % (who, guest.evidence, check)))
    else:
        out.append(("info", "%s: virtio 1.0 drivers %s: %s" % (
            who, {True: "yes", False: "no", None: "unknown"}[guest.virtio1], guest.evidence)))
    if agent_devices is not None:
        out.extend(driver_findings(agent_devices, devices))
    return out, gd


# --- QEMU guest agent: guest-get-devices (Windows) ---------------------------------------
# qga/qapi-schema.json (QEMU 5.2+): guest-get-devices returns [GuestDeviceInfo]:
# {driver-name: str, driver-date?: int (ns since the epoch), driver-version?: str,
#  id?: {type: "pci", vendor-id: uint16, device-id: uint16}}.  Windows only.
VIRTIO_VENDOR = 0x1AF4
VIRTIO_KIND = {0x1000: "net", 0x1001: "block", 0x1002: "balloon", 0x1003: "console", 0x1004: "scsi",
               0x1005: "rng", 0x1009: "9p", 0x1041: "net", 0x1042: "block", 0x1043: "console", 0x1044: "rng",
               0x1045: "balloon", 0x1048: "scsi", 0x1049: "9p", 0x1050: "gpu", 0x1052: "input", 0x1053: "vsock",
               0x105A: "fs"}
MAX_AGENT_REPLY = 4 * 1024 * 1024


def parse_guest_devices(reply: str) -> List[Dict[str, Any]]:
    """The virtio PCI devices in a guest-get-devices reply (`virsh qemu-agent-command`
    prints {"return": [...]}), each {pci, kind, modern, driver, version, date}.
    Raises ValueError on a reply that is not one."""
    if len(reply) > MAX_AGENT_REPLY:
        raise ValueError("the guest agent's reply is larger than %d bytes" % MAX_AGENT_REPLY)
    try:
        doc = json.loads(reply)
    except ValueError:
        raise ValueError("the guest agent's reply is not JSON") from None
    if isinstance(doc, dict) and "error" in doc:
        err = _d(doc["error"])
        raise ValueError("the guest agent answered an error: %s" % (err.get("desc") or err.get("class") or "?"))
    items = doc.get("return") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ValueError("the guest agent's reply has no device list")
    out = []
    for it in items[:10000]:
        if not isinstance(it, dict):
            continue
        ident = _d(it.get("id"))
        if ident.get("type") != "pci":
            continue
        try:
            vendor, dev = int(ident.get("vendor-id")), int(ident.get("device-id"))
        except (TypeError, ValueError):
            continue
        date = it.get("driver-date")
        when = None
        if isinstance(date, int) and 0 < date < 2 ** 63:
            import datetime

            when = datetime.datetime.fromtimestamp(date / 1e9, datetime.timezone.utc).date().isoformat()
        entry = _virtio_device(vendor, dev, it.get("driver-name"), it.get("driver-version"), when)
        if entry is not None:
            out.append(entry)
    return out


MAX_DRIVER_TEXT = 200  # a driver name or version longer than this is clipped (bounded output)


def _virtio_device(vendor: int, dev: int, driver: Any, version: Any, date: Optional[str]) -> Optional[Dict[str, Any]]:
    """One virtio PCI device and the driver bound to it, {pci, kind, modern, driver, version,
    date}; None for an id that is not virtio's (vendor 0x1af4, device 0x1000-0x107f).
    Modern (virtio 1.0) ids are 0x1040 + the device type, transitional ones 0x1000-0x103f
    (docs/osinfo.md section 5)."""
    if vendor != VIRTIO_VENDOR or not (0x1000 <= dev <= 0x107F):
        return None
    return {"pci": "%04x:%04x" % (vendor, dev), "kind": VIRTIO_KIND.get(dev, "virtio"), "modern": dev >= 0x1040,
            "driver": str(driver or "")[:MAX_DRIVER_TEXT] or None,
            "version": str(version)[:MAX_DRIVER_TEXT] if version is not None else None, "date": date}


# --- must-gather: the Windows driver check ------------------------------------------------
# kubevirt/must-gather collection-scripts/gather_virtio_driver_check (commit d64e83b): for a
# running guest whose agent answers guest-get-osinfo with kernel-type "nt", it asks
# guest-get-devices, keeps the entries of vendor-id 6900 (0x1af4) and writes
# namespaces/<ns>/vms/<vm>/virtio-driver-installed.json = [{"name": driver-name,
# "version": driver-version, "device_id": device-id as a decimal string}].  docs/osinfo.md section 5.
DRIVER_CHECK_FILE = "virtio-driver-installed.json"
MAX_DRIVER_CHECK = 1024 * 1024
MAX_DRIVER_ENTRIES = 10000


def parse_driver_check(data) -> List[Dict[str, Any]]:
    """The virtio devices in a must-gather's virtio-driver-installed.json (bytes or str), the
    same dicts as parse_guest_devices (date None: the file has none).  Entries that are not
    objects or whose device_id is not a number are skipped; raises ValueError when the file
    is too large, not JSON, or not an array."""
    doc = _driver_json(data, list)
    out = []
    for it in doc[:MAX_DRIVER_ENTRIES]:
        if not isinstance(it, dict):
            continue
        dev = _decimal_id(it.get("device_id"))
        if dev is None:
            continue
        entry = _virtio_device(VIRTIO_VENDOR, dev, it.get("name"), it.get("version"), None)
        if entry is not None:
            out.append(entry)
    return out


def _driver_json(data, kind: type):
    """A driver check file's JSON document, of `kind` (list or dict), bounded in size."""
    if len(data) > MAX_DRIVER_CHECK:
        raise ValueError("larger than %d bytes" % MAX_DRIVER_CHECK)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, kind):
        raise ValueError("not a JSON array of drivers" if kind is list else "not a JSON object")
    return doc


def _decimal_id(v: Any) -> Optional[int]:
    """A PCI device id written in decimal (jq tostring) or as a JSON number; None otherwise."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().isdigit() and len(v.strip()) <= 6:
        return int(v.strip())
    return None


# The same script's virtio-driver-report.json: {vm, namespace, baseline, drivers: [{driver,
# installed, status: OK | OUTDATED | NEWER}]} (each installed version against the newest
# DriverVer of the virtio-win image the cluster ships), or {vm, namespace, error}.
DRIVER_REPORT_FILE = "virtio-driver-report.json"


def parse_driver_report(data) -> List[Dict[str, Any]]:
    """The drivers a must-gather's virtio-driver-report.json marks OUTDATED, each {driver,
    installed, baseline}; [] for a report without drivers (an error report).  Raises
    ValueError when the file is too large, not JSON, or not an object."""
    doc = _driver_json(data, dict)
    drivers = doc.get("drivers")
    baseline = doc.get("baseline")
    out = []
    for it in (drivers if isinstance(drivers, list) else [])[:MAX_DRIVER_ENTRIES]:
        if isinstance(it, dict) and it.get("status") == "OUTDATED":
            out.append({"driver": str(it.get("driver") or "")[:MAX_DRIVER_TEXT] or None,
                        "installed": str(it.get("installed") or "")[:MAX_DRIVER_TEXT] or None,
                        "baseline": str(baseline)[:MAX_DRIVER_TEXT] if baseline is not None else None})
    return out


DRIVER_CHECK_SOURCE = "the must-gather's Windows driver check"
_LISTED = 6


def _listed(devs: Sequence[Dict[str, Any]]) -> str:
    s = ", ".join(" ".join(p for p in (d["driver"] or "(no driver)", d["version"]) if p) +
                  " on %s (%s)" % (d["pci"], d["kind"]) for d in devs[:_LISTED])
    return s + (" and %d more" % (len(devs) - _LISTED) if len(devs) > _LISTED else "")


def driver_check_guest(guest: Optional[Dict[str, Any]], devices: List[Dict[str, Any]],
                       where: str, outdated: Sequence[Dict[str, Any]] = ()) -> Dict[str, Any]:
    """The fleet row's `guest` dict (GuestOS.to_dict's shape) once the must-gather's driver
    check (devices from parse_driver_check, read from `where`) is known.  A new dict.

    A driver bound to a modern (virtio 1.0) id is direct evidence: virtio1 becomes True.
    Drivers on transitional ids only, or no device at all, leave virtio1 as it was and say so
    in the evidence: the file never shows that a guest lacks virtio 1.0.  The check runs only
    for Windows guests, so an unidentified guest becomes Windows.  outdated (from
    parse_driver_report) only adds a note: an old driver may still drive virtio 1.0."""
    where = str(where)[:300]
    if guest is None:
        win = _id_verdict("win")
        g: Dict[str, Any] = {"id": win["id"], "name": "Windows",
                             "source": "%s (%s): it runs only on Windows guests" % (DRIVER_CHECK_SOURCE, where),
                             "virtio1": win["virtio1"], "basis": win["basis"], "evidence": win["evidence"]}
    else:
        g = dict(guest)
    g["drivers"] = list(devices)
    what = "%s (%s)" % (DRIVER_CHECK_SOURCE, where)
    if g.get("id") and not _is_windows_id(normalise(str(g["id"]))):
        what = "%s (%s; it runs only on Windows guests, yet the guest was identified as %s)" % (
            DRIVER_CHECK_SOURCE, where, str(g["id"])[:MAX_ID])
    modern = [d for d in devices if d["modern"] and d["driver"]]
    if modern:
        evidence = "%s: driver%s bound to virtio 1.0 (modern) ids: %s, so the guest drives virtio 1.0 devices" % (
            what, "" if len(modern) == 1 else "s", _listed(modern))
        if guest is not None and g.get("virtio1") is not True:
            evidence += " (without it: %s)" % g.get("evidence")
        g.update(virtio1=True, basis="drivers", evidence=evidence + _outdated_note(outdated))
        return g
    if devices:
        bound = [d for d in devices if d["driver"]]
        unbound = [d for d in devices if not d["driver"]]
        parts = []
        if bound:
            parts.append("drivers only on transitional ids: %s; that does not show whether they drive virtio 1.0 "
                         "devices" % _listed(bound))
        if unbound:
            parts.append("no driver on %s" % ", ".join("%s (%s)" % (d["pci"], d["kind"]) for d in unbound[:_LISTED]))
        note = "%s lists %s" % (what, "; ".join(parts))
    else:
        note = "%s listed no virtio device" % what
    g["evidence"] = "%s; %s%s" % (g.get("evidence") or "no evidence", note, _outdated_note(outdated))
    return g


def _outdated_note(outdated: Sequence[Dict[str, Any]]) -> str:
    if not outdated:
        return ""
    base = outdated[0].get("baseline")
    return "; its report marks %s older than the cluster's virtio-win drivers%s" % (
        ", ".join(" ".join(p for p in (o["driver"] or "(unnamed)", o["installed"]) if p) for o in outdated[:_LISTED])
        + (" and %d more" % (len(outdated) - _LISTED) if len(outdated) > _LISTED else ""),
        " (%s)" % base if base else "")


def driver_findings(agent_devices: List[Dict[str, Any]], devices: Sequence[Dict[str, Any]]) -> List[Tuple[str, str]]:
    """What the guest agent's device list says about the virtio devices."""
    out: List[Tuple[str, str]] = []
    if not agent_devices:
        out.append(("warning", "the guest agent lists no virtio PCI device with a driver: the guest may have no "
                               "virtio-win driver for them"))
        return out
    bound = ["%s %s: %s %s%s" % (a["pci"], a["kind"], a["driver"] or "(no driver)", a["version"] or "",
                                 " (%s)" % a["date"] if a["date"] else "") for a in agent_devices]
    out.append(("info", "guest agent (guest-get-devices): " + "; ".join(bound)))
    unbound = [a for a in agent_devices if not a["driver"]]
    if unbound:
        out.append(("error", "no driver is bound to %s: the guest cannot use %s" % (
            ", ".join("%s (%s)" % (a["pci"], a["kind"]) for a in unbound), "it" if len(unbound) == 1 else "them")))
    kinds = {a["kind"] for a in agent_devices if a["driver"] and a["modern"]}
    missing = [d for d in devices if _modern_only(d) and _kind_of(d) and _kind_of(d) not in kinds]
    if missing:
        out.append(("warning", "the guest agent reports no driver for the virtio 1.0 %s: check the virtio-win "
                               "drivers in the guest" % _names(missing)))
    return out


def _kind_of(d: Dict[str, Any]) -> Optional[str]:
    k = d.get("kind")
    if k == "disk":
        return "block" if d.get("bus") in (None, "virtio") else None
    return {"interface": "net", "memballoon": "balloon", "rng": "rng", "input": "input", "vsock": "vsock",
            "filesystem": "fs"}.get(k) or ("scsi" if k == "controller" and d.get("type") == "scsi" else
                                           "console" if k == "controller" and d.get("type") == "virtio-serial"
                                           else None)


# --- The table for `kubectl virtio guests` -------------------------------------------------

def rows(ids: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """Table rows (all, or the ones asked for; an unknown id gets a row saying why)."""
    if not ids:
        return list(table()["items"])
    out = []
    for raw in ids:
        r = _index().get(normalise(raw))
        if r is not None:
            out.append(r)
            continue
        v = verdict(raw)
        out.append({"id": v.get("id") or raw, "aliases": [], "name": v.get("name"), "vendor": None,
                    "released": None, "eol": None, "osinfo": None, "virtio1": v["virtio1"], "source": v["basis"],
                    "evidence": v["evidence"], "asked": raw})
    return out
