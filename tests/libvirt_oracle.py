"""Real libvirt as a test oracle: define a domain, read back what libvirt made of it.

libvirt decides where every device goes (PCI bus, slot, which controllers to add), and the
plugin's explanations depend on those decisions. Instead of guessing them, the tests ask the
real thing: `virsh` with the *embedded* QEMU driver (`qemu:///embed?root=DIR`), which runs
inside the virsh process, needs no daemon, no systemd and touches nothing outside DIR.

- Unprivileged: as root, virsh is run as `nobody` through `setpriv`; as any other user,
  directly. Domains must therefore be `<domain type="qemu">` (no /dev/kvm needed).
- One private root per :class:`Oracle` and guest arch (the pytest fixture makes one Oracle per
  session). Only one process may use a root at a time, so calls are serialised.
- The first virsh call probes QEMU (about 1.6 s, cached in the root); later calls are cheap,
  and :meth:`Oracle.render_many` puts many define + dumpxml pairs into one virsh process.
- Guest architectures: x86_64 (qemu-system-x86) always; s390x (machine s390-ccw-virtio,
  qemu-system-s390x from Debian's qemu-system-misc) when its emulator is installed, see
  ``unavailable_reason("s390x")``. Each architecture has its own root, so the probe of each
  emulator (one per root, about 1.7 s for s390x) runs in parallel with the others when one
  :meth:`Oracle.render_many` call mixes architectures.

Nothing is started: `define` only assigns addresses and adds the implicit devices.
"""
from __future__ import annotations

import glob
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from typing import Dict, List, Optional, Sequence, Tuple

UNAVAILABLE = ("libvirt (virsh with the embedded QEMU driver) is not installed: "
               "run the README's install command")

UNPRIVILEGED_USER = "nobody"
# Guest architecture (libvirt's name, <os><type arch=...>) -> (QEMU binaries, Debian package).
QEMU = {
    "x86_64": (("qemu-system-x86_64", "/usr/libexec/qemu-kvm"), "qemu-system-x86"),
    "s390x": (("qemu-system-s390x",), "qemu-system-misc"),
}
DEFAULT_ARCH = "x86_64"
QEMU_BINARIES = QEMU[DEFAULT_ARCH][0]
_DRIVER = "libvirt_driver_qemu.so"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]*$")  # names virsh's tokenizer takes as is
_MARK = "@@kubectl-virtio-oracle-%d@@"
_MARK_RE = re.compile(r"@@kubectl-virtio-oracle-(\d+)@@")
_TIMEOUT = 300


def _version_of(argv: List[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, out)
    return m.group(1) if m else "?"


class OracleError(RuntimeError):
    """libvirt refused an input, or virsh could not be run."""


# --- Availability ---------------------------------------------------------------------------

def _driver_dirs(virsh: str) -> List[str]:
    dirs = []
    if os.environ.get("LIBVIRT_DRIVER_DIR"):
        dirs.append(os.environ["LIBVIRT_DRIVER_DIR"])
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(virsh)))  # /usr, /opt/homebrew
    for lib in ("lib", "lib64", "lib/*"):
        dirs.extend(glob.glob(os.path.join(prefix, lib, "libvirt", "connection-driver")))
    return dirs


def _qemu_binary(arch: str = DEFAULT_ARCH) -> Optional[str]:
    for b in QEMU.get(arch, ((), ""))[0]:
        found = shutil.which(b) if not os.path.isabs(b) else (b if os.access(b, os.X_OK) else None)
        if found:
            return found
    return None


def _qemu_missing(arch: str) -> Optional[str]:
    if arch not in QEMU:
        return "the oracle has no QEMU for guest arch %r (known: %s)" % (arch, ", ".join(sorted(QEMU)))
    if not _qemu_binary(arch):
        binaries, package = QEMU[arch]
        return "no %s (package %s)" % (binaries[0], package)
    return None


def unavailable_reason(arch: str = DEFAULT_ARCH) -> Optional[str]:
    """None when the oracle can render `arch` domains here, else what is missing (one sentence).

    Every architecture needs the x86_64 set (virsh, its QEMU driver, qemu-system-x86_64);
    another `arch` needs its own emulator too, e.g. "s390x": qemu-system-s390x.
    """
    virsh = shutil.which("virsh")
    if not virsh:
        return "no `virsh` on PATH (package libvirt-clients)"
    if not any(os.path.exists(os.path.join(d, _DRIVER)) for d in _driver_dirs(virsh)):
        return "virsh has no QEMU driver (%s; package libvirt-daemon-driver-qemu)" % _DRIVER
    missing = _qemu_missing(DEFAULT_ARCH) or (_qemu_missing(arch) if arch != DEFAULT_ARCH else None)
    if missing:
        return missing
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            return "running as root needs `setpriv` (util-linux) to drop to %s" % UNPRIVILEGED_USER
        try:
            pwd.getpwnam(UNPRIVILEGED_USER)
        except KeyError:
            return "running as root needs the user %r to run virsh unprivileged" % UNPRIVILEGED_USER
    return None


def available(arch: str = DEFAULT_ARCH) -> bool:
    """True when virsh, its QEMU driver and the QEMU binaries for `arch` are installed."""
    return unavailable_reason(arch) is None


# --- The oracle -----------------------------------------------------------------------------

def _world_traversable(path: str) -> bool:
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _base_tmp() -> str:
    """A temp dir the unprivileged user can reach (TMPDIR may sit under a 0700 home)."""
    for d in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        if os.path.isdir(d) and _world_traversable(d):
            return d
    return tempfile.gettempdir()


def _parse_domain(xml_text: str):
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(xml_text.encode("utf-8"), parser)
    except etree.XMLSyntaxError as e:
        raise OracleError("not well-formed XML: %s" % e) from None
    if root.tag != "domain":
        raise OracleError("not a domain XML with a <name>")
    return root


def domain_name(xml_text: str) -> str:
    """The `<name>` of a domain XML, read without entities or network."""
    name = _parse_domain(xml_text).findtext("name")
    if not name:
        raise OracleError("not a domain XML with a <name>")
    name = name.strip()
    if not _NAME_RE.match(name):
        raise OracleError("domain name %r has characters the oracle does not pass to virsh" % name)
    return name


def domain_arch(xml_text: str) -> str:
    """The guest architecture (`<os><type arch=...>`), x86_64 when not written."""
    try:
        arch = _parse_domain(xml_text).xpath("string(os/type/@arch)").strip()
    except OracleError:
        return DEFAULT_ARCH  # reported by domain_name() with the input's label
    return arch or DEFAULT_ARCH


class Oracle:
    """Private embedded-QEMU libvirt roots; `render(xml) -> virsh dumpxml` output.

    One root per guest architecture, made on first use (`root` is the x86_64 one). Results
    are cached by input text, so rendering the same fixture twice costs nothing. Use as a
    context manager, or call :meth:`close` to delete the roots.
    """

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise OracleError("%s (%s)" % (UNAVAILABLE, reason))
        self._lock = threading.Lock()
        self._cache: Dict[str, str] = {}
        self._versions: Dict[str, Dict[str, str]] = {}
        self._batches = count(1)
        self._roots: Dict[str, Tuple[str, str]] = {}  # arch -> (root, home)
        self.as_root = os.geteuid() == 0
        self.base = tempfile.mkdtemp(prefix="kubectl-virtio-libvirt-", dir=_base_tmp())
        self.inputs = os.path.join(self.base, "xml")
        os.mkdir(self.inputs, 0o700)
        if self.as_root:
            pw = pwd.getpwnam(UNPRIVILEGED_USER)
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
            self._user = pw.pw_name
            self._group = grp.getgrgid(pw.pw_gid).gr_name
            os.chmod(self.base, 0o711)
            os.chmod(self.inputs, 0o755)  # the XML files are read by `nobody`
        self.root, self.home = self._root(DEFAULT_ARCH)  # the embedded driver's whole state

    # -- public API --

    def render(self, xml_text: str, label: str = "domain XML") -> str:
        """Define `xml_text` and return `virsh dumpxml NAME` (the domain is undefined again)."""
        return self.render_many([xml_text], [label])[0]

    def render_many(self, xml_texts: Sequence[str], labels: Optional[Sequence[str]] = None) -> List[str]:
        """Render several domains, one virsh process per guest arch (run in parallel).

        Raises OracleError on the first refusal, or when an input's arch has no emulator here.
        """
        labels = list(labels) if labels is not None else ["domain XML #%d" % i for i in range(len(xml_texts))]
        with self._lock:
            groups: Dict[str, list] = {}
            seen = set()
            for text, label in zip(xml_texts, labels):
                if text not in self._cache and text not in seen:
                    seen.add(text)
                    groups.setdefault(domain_arch(text), []).append((text, label))
            for arch, todo in groups.items():
                missing = _qemu_missing(arch)
                if missing:
                    raise OracleError("%s: cannot render a %s domain: %s" % (todo[0][1], arch, missing))
            if len(groups) > 1:
                with ThreadPoolExecutor(len(groups)) as pool:
                    results = list(pool.map(lambda g: self._render_group(*g), groups.items()))
            else:
                results = [self._render_group(arch, todo) for arch, todo in groups.items()]
            errors = [e for errs in results for e in errs]
            if errors:
                raise OracleError(errors[0])
            return [self._cache[t] for t in xml_texts]

    def versions(self, arch: str = DEFAULT_ARCH) -> Dict[str, str]:
        """{'libvirt': '9.0.0', 'qemu': '7.2.22'}: the virsh library and `arch`'s QEMU binary."""
        with self._lock:
            if arch not in self._versions:
                binary = _qemu_binary(arch) or QEMU.get(arch, QEMU[DEFAULT_ARCH])[0][0]
                self._versions[arch] = {"libvirt": _version_of(["virsh", "--version"], r"(\d+\.\d+\.\d+)"),
                                        "qemu": _version_of([binary, "--version"], r"version (\d+\.\d+\.\d+)")}
            return dict(self._versions[arch])

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "Oracle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --

    def _root(self, arch: str) -> Tuple[str, str]:
        """(root, home) of `arch`, made on first use: an embedded driver probes each emulator
        once per root, and one root serves one virsh process at a time."""
        if arch not in self._roots:
            suffix = "" if arch == DEFAULT_ARCH else "-" + arch
            root, home = os.path.join(self.base, "root" + suffix), os.path.join(self.base, "home" + suffix)
            for d in (root, home, os.path.join(home, "run")):
                os.mkdir(d, 0o700)
                if self.as_root:
                    os.chown(d, self._uid, self._gid)
            self._roots[arch] = (root, home)
        return self._roots[arch]

    def _env(self, home: str) -> Dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": home,
               "XDG_RUNTIME_DIR": os.path.join(home, "run")}
        for k, v in os.environ.items():
            if k == "LIBVIRT_DRIVER_DIR" or k.startswith("LIBVIRT_LOG"):
                env[k] = v
        return env

    def _virsh(self, commands: str, check: bool = True, arch: str = DEFAULT_ARCH) -> subprocess.CompletedProcess:
        root, home = self._root(arch)
        argv = ["virsh", "-q", "-c", "qemu:///embed?root=" + root, commands]
        if self.as_root:
            argv = ["setpriv", "--reuid=" + self._user, "--regid=" + self._group, "--clear-groups"] + argv
        try:
            proc = subprocess.run(argv, cwd=self.inputs, env=self._env(home), capture_output=True, text=True,
                                  timeout=_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise OracleError("could not run virsh: %s" % e) from None
        if check and proc.returncode != 0:
            raise OracleError("virsh failed (exit %d): %s" % (proc.returncode, proc.stderr.strip()))
        return proc

    def _render_group(self, arch: str, todo) -> List[str]:
        """All of one arch's inputs in one virsh process; returns the refusals."""
        errors: List[str] = []
        self._render_batch(todo, arch)
        # Whatever the batch did not produce is redone one by one for a precise error.
        for text, label in todo:
            if text not in self._cache:
                try:
                    self._render_batch([(text, label)], arch)
                except OracleError as e:
                    errors.append(str(e))
        return errors

    def _render_batch(self, items, arch: str = DEFAULT_ARCH) -> None:
        """One virsh process: define, mark, dumpxml, undefine for each item. Fills the cache."""
        batch = next(self._batches)
        script = []
        for k, (text, label) in enumerate(items):
            try:
                name = domain_name(text)
            except Exception as e:  # noqa: BLE001 - reported per input below
                if len(items) == 1:
                    raise OracleError("%s: %s" % (label, e)) from None
                continue
            fname = "b%d-%d.xml" % (batch, k)
            path = os.path.join(self.inputs, fname)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(path, 0o644)
            script.append("define %s; echo %s; dumpxml %s; undefine %s" % (fname, _MARK % k, name, name))
        if not script:
            return
        proc = self._virsh("; ".join(script), check=False, arch=arch)
        parts = _MARK_RE.split(proc.stdout)
        done = set()
        for i in range(1, len(parts) - 1, 2):
            k, xml = int(parts[i]), parts[i + 1]
            if xml.rstrip().endswith("</domain>"):
                self._cache[items[k][0]] = xml.strip() + "\n"
                done.add(k)
        if proc.returncode != 0:
            # virsh goes on after a failing command; make sure no half-done define survives.
            for leftover in glob.glob(os.path.join(self._root(arch)[0], "etc", "qemu", "*.xml")):
                os.remove(leftover)
            if len(items) == 1 and not done:
                # The dumpxml/undefine after a refused define only add "failed to get domain".
                lines = [ln for ln in proc.stderr.splitlines()
                         if ln.strip() and "failed to get domain" not in ln]
                raise OracleError("libvirt refused %s: %s" % (items[0][1], " ".join(lines)))


_default: Optional[Oracle] = None


def render(xml_text: str) -> str:
    """Module-level shortcut with a lazily created, process-wide :class:`Oracle`."""
    global _default
    if _default is None:
        import atexit

        _default = Oracle()
        atexit.register(_default.close)
    return _default.render(xml_text)
