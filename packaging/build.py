#!/usr/bin/env python3
"""Build the self-contained kubectl-virtio archive for this machine and render the krew
manifest.

    python packaging/build.py [build] [--dist DIR] [--form onedir|onefile] [--python PY]
                              [--max-glibc X.Y]
    python packaging/build.py render [--dist DIR] [-o FILE] [--require-all] [--keep-from FILE]
    python packaging/build.py smoke ARCHIVE [--manifest FILE]
    python packaging/build.py platform

`build` makes a clean virtualenv in build/ (once; it is reused while the dependencies stay
the same) with the runtime dependencies and PyInstaller, freezes packaging/entry.py with
the sources from src/ as a one-folder app (it starts faster than a one-file build, which
unpacks itself to a temp dir on every run: see bench/startup), and packs

    dist/kubectl-virtio_<version>_<os>_<arch>.tar.gz   (.zip on Windows)
        LICENSE
        kubectl-virtio            (kubectl-virtio.exe on Windows)
        _internal/...             (the Python runtime and libraries)

with regular files only (krew refuses symlinks in a tar), exec bits kept, sorted entries,
fixed owners and timestamps.  It writes `<archive>.sha256` and renders dist/virtio.yaml.
On Linux it prints the oldest glibc the archive runs on: the highest GLIBC_x.y version
any bundled ELF file requires (PyInstaller bundles the build host's libpython and
libraries, which need that host's glibc or newer); --max-glibc fails the build above it.

`render` fills krew/virtio.yaml.tmpl: the version from kubectl_virtio/__init__.py and, per
platform, the sha256 of dist/<archive> or of dist/<archive>.sha256.  A platform with
neither gets the value from --keep-from (a manifest of the same version) or the all-zero
placeholder; --require-all (the release) refuses both, and refuses a placeholder from
any source.  The committed krew/virtio.yaml holds placeholders only: see
tests/test_krew.py::test_committed_manifest_is_the_rendered_template.  The result must pass
packaging/krew_rules.py, as krew-index's validator would check it.

`smoke` installs an archive the way `kubectl krew install --manifest --archive` does into
a temp dir and runs `kubectl-virtio table` and `--help` from there with no Python on PATH
(through `kubectl` when it is on PATH).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform as _platform
import re
import shutil
import string
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import krew_rules  # noqa: E402

TEMPLATE = os.path.join(REPO, "krew", "virtio.yaml.tmpl")
COMMITTED = os.path.join(REPO, "krew", "virtio.yaml")
ENTRY = os.path.join(HERE, "entry.py")
PLATFORMS = [("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64"),
             ("windows", "amd64")]
PLACEHOLDER = "0" * 64
NAME = "kubectl-virtio"
CONTENTS = "_internal"


def log(msg: str) -> None:
    print("build: " + msg, file=sys.stderr, flush=True)


# --- facts about this checkout and this machine ------------------------------------------

def version() -> str:
    with open(os.path.join(REPO, "src", "kubectl_virtio", "__init__.py"), encoding="utf-8") as fh:
        m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', fh.read(), re.M)
    if not m:
        raise SystemExit("build: no __version__ in src/kubectl_virtio/__init__.py")
    return "v" + m.group(1)


def this_platform() -> tuple:
    system = {"linux": "linux", "darwin": "darwin", "windows": "windows"}.get(_platform.system().lower())
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if not system or not arch:
        raise SystemExit("build: unsupported platform %s/%s" % (_platform.system(), _platform.machine()))
    return system, arch


def archive_name(ver: str, os_name: str, arch: str) -> str:
    return "%s_%s_%s_%s.%s" % (NAME, ver, os_name, arch, "zip" if os_name == "windows" else "tar.gz")


def exe_name(os_name: str) -> str:
    return NAME + (".exe" if os_name == "windows" else "")


def build_requirements() -> list:
    """[project].dependencies plus the `build` extra (PyInstaller) of pyproject.toml.  The
    build venv gets these, not the package: PyInstaller takes kubectl_virtio from src/, so
    the archive is always the checkout's."""
    path = os.path.join(REPO, "pyproject.toml")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise SystemExit("build: needs Python 3.11+ (tomllib) or the tomli package") from None
    with open(path, "rb") as fh:
        project = tomllib.load(fh)["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"]["build"])


def source_epoch() -> int:
    """Timestamp for every archive entry: SOURCE_DATE_EPOCH, else the last commit's time."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%ct"], capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0 and out.stdout.strip().isdigit():
            return int(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return 1577836800  # 2020-01-01


# --- the build environment -----------------------------------------------------------------

def venv_python(venv: str) -> str:
    return os.path.join(venv, "Scripts", "python.exe") if os.name == "nt" else os.path.join(venv, "bin", "python")


def ensure_build_env(base_python: str, venv: str) -> str:
    """A virtualenv with the runtime dependencies and PyInstaller; rebuilt when they change."""
    reqs = build_requirements()
    probe = subprocess.run([base_python, "-c", "import sys,platform;print(sys.version, platform.machine())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    stamp = hashlib.sha256(json.dumps([reqs, probe]).encode()).hexdigest()
    stamp_file = os.path.join(venv, "kubectl-virtio-build.stamp")
    py = venv_python(venv)
    if os.path.exists(py) and os.path.exists(stamp_file):
        with open(stamp_file) as fh:
            if fh.read().strip() == stamp:
                return py
    log("creating the build environment %s" % os.path.relpath(venv, REPO))
    shutil.rmtree(venv, ignore_errors=True)
    if subprocess.run([base_python, "-m", "venv", venv]).returncode != 0:
        raise SystemExit("build: `%s -m venv` failed (Debian/Ubuntu: apt-get install python3-venv)" % base_python)
    pip = [py, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    if subprocess.run(pip + ["install"] + reqs).returncode != 0:
        raise SystemExit("build: pip could not install %s into %s (offline, or PIP_NO_INDEX set?)"
                         % (", ".join(r.split(";")[0] for r in reqs), os.path.relpath(venv, REPO)))
    with open(stamp_file, "w") as fh:
        fh.write(stamp + "\n")
    return py


def freeze(py: str, form: str, workroot: str) -> str:
    """Run PyInstaller; returns the one-folder directory or the one-file executable."""
    distpath = os.path.join(workroot, "dist")
    shutil.rmtree(distpath, ignore_errors=True)
    cmd = [py, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN", "--console",
           "--name", NAME, "--onedir" if form == "onedir" else "--onefile",
           "--paths", os.path.join(REPO, "src"),
           "--distpath", distpath, "--workpath", os.path.join(workroot, "work"), "--specpath", workroot,
           # lazily imported by the CLI: make sure every command's code is in the bundle
           "--collect-submodules", "kubectl_virtio",
           # package data: the guest OS table (src/kubectl_virtio/data, scripts/gen-guests-table)
           "--add-data", os.pathsep.join([os.path.join(REPO, "src", "kubectl_virtio", "data", "guests.json"),
                                          os.path.join("kubectl_virtio", "data")]),
           "--exclude-module", "tkinter", "--exclude-module", "_tkinter"]
    if form == "onedir":
        cmd += ["--contents-directory", CONTENTS]
    cmd.append(ENTRY)
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    if subprocess.run(cmd, cwd=REPO, env=env).returncode != 0:
        raise SystemExit("build: PyInstaller failed (see its messages above)")
    log("PyInstaller %s build took %.0f s" % (form, time.monotonic() - started))
    out = os.path.join(distpath, NAME)
    if form == "onefile":
        out = os.path.join(distpath, exe_name(this_platform()[0]))
    if not os.path.exists(out):
        raise SystemExit("build: PyInstaller produced no %s" % out)
    return out


# --- the glibc an archive needs ------------------------------------------------------------

SHT_GNU_VERNEED = 0x6FFFFFFE  # .gnu.version_r: the symbol versions a file needs (GNU ELF extension)


def elf_version_needs(path: str) -> list:
    """The version names (GLIBC_2.34, GLIBCXX_3.4.29, ...) an ELF file requires from the
    libraries it links, read from its SHT_GNU_verneed section: the dynamic loader refuses
    to run it on a system whose libraries lack one (`objdump -p` lists the same names under
    "Version References").  [] for a file that is not ELF or has no such section."""
    with open(path, "rb") as fh:
        return elf_data_version_needs(fh.read(), path)


def elf_data_version_needs(data: bytes, label: str) -> list:
    """elf_version_needs of a file's bytes (`label` names it in errors)."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return []
    end = "<" if data[5] == 1 else ">"
    try:
        if data[4] == 2:   # ELF64: e_shoff at 0x28, e_shentsize/e_shnum at 0x3a
            shoff = struct.unpack_from(end + "Q", data, 0x28)[0]
            shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
            shdr = end + "IIQQQQIIQQ"
        else:              # ELF32: e_shoff at 0x20, e_shentsize/e_shnum at 0x2e
            shoff = struct.unpack_from(end + "I", data, 0x20)[0]
            shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
            shdr = end + "IIIIIIIIII"
        # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
        sections = [struct.unpack_from(shdr, data, shoff + i * shentsize) for i in range(shnum)]
        names = []
        for sec in sections:
            if sec[1] != SHT_GNU_VERNEED:
                continue
            strings = sections[sec[6]][4]
            off = sec[4]
            for _ in range(sec[7]):          # sh_info = number of Verneed entries
                _, count, _, aux, nxt = struct.unpack_from(end + "HHIII", data, off)
                a = off + aux
                for _ in range(count):
                    _, _, _, name, anext = struct.unpack_from(end + "IHHII", data, a)
                    start = strings + name
                    names.append(data[start:data.index(b"\0", start)].decode("ascii", "replace"))
                    if not anext:
                        break
                    a += anext
                if not nxt:
                    break
                off += nxt
        return names
    except (struct.error, IndexError, ValueError) as e:
        raise ValueError("%s: unreadable ELF version information (%s)" % (label, e)) from None


def _glibc_tuple(name: str):
    m = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)*)", name)
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def glibc_requirement_of_file(path: str):
    """(highest GLIBC_x.y the ELF file `path` requires, its name), or (None, None)."""
    versions = [v for v in map(_glibc_tuple, elf_version_needs(path)) if v]
    return (max(versions), os.path.basename(path)) if versions else (None, None)


def glibc_requirement(root: str):
    """(highest GLIBC_x.y required by any ELF file under root, that file relative to root),
    or (None, None) when nothing needs glibc symbol versions."""
    best, where = None, None
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            path = os.path.join(dirpath, f)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                needs = elf_version_needs(path)
            except ValueError as e:  # a data file that merely starts like ELF: the loader never sees it
                log("warning: %s" % e)
                continue
            for name in needs:
                v = _glibc_tuple(name)
                if v and (best is None or v > best):
                    best, where = v, os.path.relpath(path, root)
    return best, where


def check_glibc(root: str, limit: str | None = None) -> str | None:
    """Log the glibc floor of the frozen app in root; SystemExit when above `limit`."""
    need, where = glibc_requirement(root)
    if need is None:
        log("no bundled file requires versioned glibc symbols")
        return None
    text = ".".join(map(str, need))
    log("the archive needs glibc %s or newer (GLIBC_%s, required by %s)" % (text, text, where))
    if limit:
        cap = tuple(int(x) for x in limit.split("."))
        if need > cap:
            raise SystemExit("build: the archive needs glibc %s (%s) but --max-glibc is %s: build on an "
                             "older system (release.yml uses a glibc %s container)" % (text, where, limit, limit))
    return text


def archive_glibc(path: str):
    """(highest GLIBC_x.y required by an ELF file in the .tar.gz archive `path`, that
    member's name), or (None, None): the glibc floor measured on what is shipped."""
    best, where = None, None
    with tarfile.open(path, "r:*") as tf:
        for member in tf:
            if not member.isfile():
                continue
            fh = tf.extractfile(member)
            head = fh.read(4)
            if head != b"\x7fELF":
                continue
            try:
                needs = elf_data_version_needs(head + fh.read(), member.name)
            except ValueError as e:
                log("warning: %s" % e)
                continue
            for name in needs:
                v = _glibc_tuple(name)
                if v and (best is None or v > best):
                    best, where = v, member.name
    return best, where


# The floor release.yml enforces (`--max-glibc`) on the Linux archives it builds in
# almalinux:8; render() states it when no Linux archive is at hand to measure.
RELEASE_GLIBC = (2, 28)

# glibc of each release of the distributions the krew description names (their own packages):
# the description lists the oldest release of each that meets the floor.
DISTRO_GLIBC = [
    ("RHEL", [("8", (2, 28)), ("9", (2, 34)), ("10", (2, 39))]),
    ("Ubuntu", [("20.04", (2, 31)), ("22.04", (2, 35)), ("24.04", (2, 39))]),
    ("Debian", [("10", (2, 28)), ("11", (2, 31)), ("12", (2, 36)), ("13", (2, 41))]),
]


def glibc_floor_text(floor: tuple) -> str:
    """'2.28 or newer (RHEL 8, Ubuntu 20.04, Debian 10 and later)' for the description."""
    text = "%s or newer" % ".".join(map(str, floor))
    oldest = []
    for distro, releases in DISTRO_GLIBC:
        fits = [rel for rel, v in releases if v >= floor]
        if fits:
            oldest.append("%s %s" % (distro, fits[0]))
    return text + (" (%s and later)" % ", ".join(oldest) if oldest else "")


# --- the archive ---------------------------------------------------------------------------

def _entries(root: str):
    """(archive name, path on disk, is_dir) under root, sorted, symlinks resolved to what
    they point at (krew takes only directories and regular files)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            out.append((rel.replace(os.sep, "/"), dirpath, True))
        for f in sorted(filenames):
            path = os.path.join(dirpath, f)
            name = os.path.relpath(path, root).replace(os.sep, "/")
            out.append((name, path, False))
    return sorted(out, key=lambda e: e[0])


def _mode(path: str, is_dir: bool) -> int:
    if is_dir or os.access(path, os.X_OK) or path.lower().endswith((".exe", ".dll", ".pyd")):
        return 0o755
    return 0o644


def make_archive(layout: list, out: str, windows: bool) -> None:
    """Pack [(name in archive, path on disk)] (a directory is packed with its contents)."""
    entries = []
    for name, path in layout:
        if os.path.isdir(path):
            entries.append((name, path, True))
            entries += [(name + "/" + n, p, d) for n, p, d in _entries(path)]
        else:
            entries.append((name, path, False))
    entries.sort(key=lambda e: e[0])
    for name, _, _ in entries:
        if ".." in name or name.startswith("/"):  # krew refuses such entries
            raise SystemExit("build: archive entry %r would be refused by krew" % name)
    epoch = source_epoch()
    tmp = out + ".tmp"
    if windows:
        stamp = time.gmtime(max(epoch, 315532800))[:6]  # zip dates start in 1980
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for name, path, is_dir in entries:
                info = zipfile.ZipInfo(name + ("/" if is_dir else ""), date_time=stamp)
                info.external_attr = ((0o040000 if is_dir else 0o100000) | _mode(path, is_dir)) << 16
                info.create_system = 3  # unix, so the mode bits count
                if is_dir:
                    zf.writestr(info, b"")
                else:
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with open(path, "rb") as fh:
                        zf.writestr(info, fh.read())
    else:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                   compresslevel=6) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name, path, is_dir in entries:
                info = tarfile.TarInfo(name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
                info.mode = _mode(path, is_dir)
                if is_dir:
                    info.type = tarfile.DIRTYPE
                    tf.addfile(info)
                else:
                    info.size = os.path.getsize(path)
                    with open(path, "rb") as fh:
                        tf.addfile(info, fh)
    os.replace(tmp, out)


def write_sha256(path: str) -> str:
    digest = krew_rules.sha256_file(path)
    with open(path + ".sha256", "w") as fh:
        fh.write("%s  %s\n" % (digest, os.path.basename(path)))
    return digest


def read_sha256(path: str) -> str:
    with open(path) as fh:
        digest = fh.read().split()[0].lower()
    if not krew_rules.SHA256.match(digest):
        raise SystemExit("build: %s holds no sha256" % path)
    return digest


# --- the manifest --------------------------------------------------------------------------

def linux_glibc_floor(dist: str, ver: str, require_all: bool = False):
    """(floor, where it comes from): the highest glibc any Linux archive in dist needs, as
    measured from its ELF files; without one, RELEASE_GLIBC (refused with require_all)."""
    measured = []
    for os_name, arch in PLATFORMS:
        name = archive_name(ver, os_name, arch)
        path = os.path.join(dist, name)
        if os_name != "linux":
            continue
        if not os.path.exists(path):
            if require_all:
                raise SystemExit("build: no %s in %s: its glibc floor cannot be measured" % (name, dist))
            continue
        need, member = archive_glibc(path)
        if need is None:
            raise SystemExit("build: %s holds no ELF file that needs versioned glibc symbols" % name)
        measured.append((need, "%s/%s: GLIBC_%s, needed by %s" % (os_name, arch, ".".join(map(str, need)), member)))
    if not measured:
        return RELEASE_GLIBC, "not measured (no Linux archive here): the floor release.yml enforces"
    floor = max(need for need, _ in measured)
    return floor, "measured from the archive (" + "; ".join(text for _, text in measured) + ")"


def render(dist: str, require_all: bool = False, keep_from: str | None = None, ver: str | None = None) -> str:
    import yaml

    ver = ver or version()
    kept = {}
    if keep_from and os.path.exists(keep_from):
        with open(keep_from) as fh:
            old = yaml.safe_load(fh)
        if old and old.get("spec", {}).get("version") == ver:
            for os_name, arch in PLATFORMS:
                p = krew_rules.platform_for(old, os_name, arch)
                if p and p.get("sha256") and p["sha256"] != PLACEHOLDER:
                    kept[(os_name, arch)] = p["sha256"]
    values = {"VERSION": ver}
    sources = []
    for os_name, arch in PLATFORMS:
        name = archive_name(ver, os_name, arch)
        path = os.path.join(dist, name)
        if os.path.exists(path):
            digest, where = krew_rules.sha256_file(path), "archive " + name
        elif os.path.exists(path + ".sha256"):
            digest, where = read_sha256(path + ".sha256"), name + ".sha256"
        elif (os_name, arch) in kept:
            digest, where = kept[(os_name, arch)], "kept from " + os.path.basename(keep_from)
        elif require_all:
            raise SystemExit("build: no %s (nor .sha256) in %s: every platform is needed" % (name, dist))
        else:
            digest, where = PLACEHOLDER, "placeholder (no archive here; the release renders the real one)"
        if require_all and digest == PLACEHOLDER:
            raise SystemExit("build: %s has the placeholder sha256 (%s): every platform needs its real one"
                             % (name, where))
        values["SHA256_%s_%s" % (os_name, arch)] = digest
        sources.append("#   %s/%s: %s" % (os_name, arch, where))
    floor, floor_source = linux_glibc_floor(dist, ver, require_all)
    values["GLIBC_FLOOR"] = glibc_floor_text(floor)
    with open(TEMPLATE, encoding="utf-8") as fh:
        template = fh.read()
    body = "\n".join(line for line in template.splitlines() if not line.startswith("#")) + "\n"
    header = ["# krew plugin manifest of kubectl-virtio %s, rendered by packaging/build.py from" % ver,
              "# krew/virtio.yaml.tmpl (edit that, then render).  sha256 values:"] + sources + [
              "# glibc floor %s: %s" % (".".join(map(str, floor)), floor_source)]
    text = "\n".join(header) + "\n" + string.Template(body).substitute(values)
    manifest = yaml.safe_load(text)
    krew_rules.validate(manifest, "virtio.yaml")
    problems = krew_rules.review(manifest)
    if problems:
        raise SystemExit("build: the manifest would not pass review: " + "; ".join(problems))
    return text


# --- smoke test of an archive ----------------------------------------------------------------

MACHO_MAGIC = {b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe",
               b"\xca\xfe\xba\xbe"}  # 32/64-bit either byte order, universal


def verify_signatures(store: str) -> None:
    """macOS: `codesign --verify` every Mach-O file of the installed plugin (PyInstaller
    signs them ad hoc; Apple silicon kills unsigned or broken code).  Skipped without codesign."""
    codesign = shutil.which("codesign")
    if not codesign:
        log("no codesign here: signatures not checked")
        return
    checked = 0
    for dirpath, _, files in os.walk(store):
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                if fh.read(4) not in MACHO_MAGIC:
                    continue
            r = subprocess.run([codesign, "--verify", path], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit("build: codesign --verify failed for %s:\n%s" % (os.path.relpath(path, store),
                                                                                 r.stderr.strip()))
            checked += 1
    log("codesign --verify ok on %d Mach-O files" % checked)


def smoke(archive: str, manifest_path: str, os_name: str, arch: str) -> None:
    import yaml

    with open(manifest_path) as fh:
        manifest = yaml.safe_load(fh)
    krew_rules.validate(manifest, os.path.basename(manifest_path))
    with tempfile.TemporaryDirectory(prefix="krew-root-") as root:
        try:
            link = krew_rules.install(manifest, archive, root, os_name, arch)
        except OSError as e:  # Windows without the symlink privilege krew itself needs
            if os_name != "windows":
                raise
            log("cannot create a symlink here (%s): running the installed binary directly" % e)
            shutil.rmtree(root, ignore_errors=True)
            os.makedirs(root)
            link = krew_rules.install(manifest, archive, root, os_name, arch, make_link=False)
        log("installed as %s -> %s" % (link, os.path.realpath(link)))
        if os_name == "darwin":
            verify_signatures(os.path.dirname(os.path.realpath(link)))
        kubectl = shutil.which("kubectl")
        path_dirs = [os.path.dirname(link)] + ([os.path.dirname(kubectl)] if kubectl else [])
        if os_name != "windows":
            path_dirs += ["/usr/bin", "/bin"]
        else:
            path_dirs += [os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32")]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "KUBECONFIG"))}
        env["PATH"] = os.pathsep.join(path_dirs)
        runs = [[link, "table"], [link, "--help"]]
        if kubectl:
            runs += [[kubectl, "virtio", "table"], [kubectl, "virtio", "--help"]]
        for argv in runs:
            started = time.monotonic()
            r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
            if r.returncode != 0 or not r.stdout:
                raise SystemExit("build: smoke %s failed (%d):\n%s" % (" ".join(argv[1:]), r.returncode, r.stderr))
            log("smoke ok: %s (%.2f s)" % (" ".join([os.path.basename(argv[0])] + argv[1:]), time.monotonic() - started))
        if kubectl and "kubectl virtio" not in subprocess.run([kubectl, "virtio", "--help"], capture_output=True,
                                                              text=True, env=env).stdout:
            raise SystemExit("build: `kubectl virtio --help` does not read `kubectl virtio`")


# --- main ----------------------------------------------------------------------------------------

def cmd_build(args) -> str:
    os_name, arch = this_platform()
    if args.expect_platform and args.expect_platform != "%s_%s" % (os_name, arch):
        raise SystemExit("build: this machine is %s_%s, not %s" % (os_name, arch, args.expect_platform))
    ver = version()
    tag = "py%d%d-%s-%s" % (sys.version_info[0], sys.version_info[1], os_name, arch) if args.python == sys.executable \
        else "custom-%s-%s" % (os_name, arch)
    build_root = os.path.join(REPO, "build")
    py = ensure_build_env(args.python, os.path.join(build_root, "venv-" + tag))
    frozen = freeze(py, args.form, os.path.join(build_root, "pyinstaller-" + args.form))
    os.makedirs(args.dist, exist_ok=True)
    lic = os.path.join(REPO, "LICENSE")
    if os_name == "linux" and args.form == "onedir":
        check_glibc(frozen, args.max_glibc)
    if args.form == "onedir":
        exe = exe_name(os_name)
        layout = [("LICENSE", lic), (exe, os.path.join(frozen, exe)), (CONTENTS, os.path.join(frozen, CONTENTS))]
        extra = sorted(set(os.listdir(frozen)) - {exe, CONTENTS})
        if extra:
            raise SystemExit("build: unexpected files in the PyInstaller output: %s" % ", ".join(extra))
        out = os.path.join(args.dist, archive_name(ver, os_name, arch))
    else:  # for measurements only: the manifest describes the one-folder layout
        layout = [("LICENSE", lic), (exe_name(os_name), frozen)]
        out = os.path.join(args.dist, archive_name(ver, os_name, arch).replace(NAME, NAME + "-onefile"))
    make_archive(layout, out, os_name == "windows")
    digest = write_sha256(out)
    log("%s  %s (%.1f MB)" % (digest, out, os.path.getsize(out) / 1e6))
    if args.form == "onedir":
        manifest = os.path.join(args.dist, "virtio.yaml")
        with open(manifest, "w", encoding="utf-8") as fh:
            fh.write(render(args.dist, keep_from=COMMITTED))
        log("rendered %s" % manifest)
    print(out)
    return out


def _version_arg(text: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)+", text):
        raise argparse.ArgumentTypeError("expected a version like 2.28, not %r" % text)
    return text


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="packaging/build.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    b = sub.add_parser("build", help="build this machine's archive (default)")
    for p in (ap, b):
        p.add_argument("--dist", default=os.path.join(REPO, "dist"), help="output directory (default: dist/)")
        p.add_argument("--form", choices=("onedir", "onefile"), default="onedir",
                       help="PyInstaller form (onefile: for start-up comparisons only)")
        p.add_argument("--python", default=sys.executable, help="interpreter for the build venv")
        p.add_argument("--expect-platform", metavar="OS_ARCH", help="fail unless this machine is OS_ARCH")
        p.add_argument("--max-glibc", metavar="X.Y", type=_version_arg,
                       help="Linux: fail when a bundled file needs a newer glibc than X.Y")
    r = sub.add_parser("render", help="render the krew manifest from the template")
    r.add_argument("--dist", default=os.path.join(REPO, "dist"), help="where the archives / .sha256 files are")
    r.add_argument("-o", "--output", help="write here (default: stdout)")
    r.add_argument("--require-all", action="store_true", help="fail unless every platform has a sha256")
    r.add_argument("--keep-from", metavar="FILE", help="take missing sha256 values from this manifest (same version)")
    s = sub.add_parser("smoke", help="simulated krew install of an archive, then run it")
    s.add_argument("archive", nargs="?", help="default: this machine's archive in dist/")
    s.add_argument("--manifest", help="default: virtio.yaml next to the archive")
    sub.add_parser("platform", help="print this machine's OS_ARCH")
    sub.add_parser("version", help="print the version the archives get (v + kubectl_virtio.__version__)")
    return ap


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    if args.cmd in (None, "build"):
        cmd_build(args)
    elif args.cmd == "render":
        text = render(args.dist, args.require_all, args.keep_from)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            sys.stdout.write(text)
    elif args.cmd == "smoke":
        os_name, arch = this_platform()
        archive = args.archive or os.path.join(REPO, "dist", archive_name(version(), os_name, arch))
        manifest = args.manifest or os.path.join(os.path.dirname(os.path.abspath(archive)), "virtio.yaml")
        smoke(archive, manifest, os_name, arch)
    elif args.cmd == "platform":
        print("%s_%s" % this_platform())
    elif args.cmd == "version":
        print(version())
    return 0


if __name__ == "__main__":
    sys.exit(main())
