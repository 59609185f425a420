"""krew's manifest rules and install steps, re-implemented for checks without krew.

Neither krew nor its `validate-krew-manifest` tool can be installed here, so this module
restates what they check, from their source (sigs.k8s.io/krew at db921d5):

* `validate()`   internal/index/validation/validate.go (ValidatePlugin, validatePlatform,
                 validateFiles, validateSelector), internal/installation/semver/version.go,
                 cmd/validate-krew-manifest/main.go (file extension and name, every selector
                 matches a supported os/arch, no os/arch matched twice).
* `review()`     what krew-index reviewers ask for (site/content/docs/developer-guide:
                 shortDescription of at most 50 characters, description wrapped at 80
                 columns without usage lists, caveats only for install steps).
* `install()`    `kubectl krew install --manifest M --archive A`: sha256 check, archive type
                 sniffed from content, extraction (internal/download/downloader.go: only
                 directories and regular files in a tar, no '..' or absolute entries, modes
                 kept), the `files` moves (internal/installation/move.go: an existing path
                 moves directly, anything else is a glob that must match, `to` must be clean
                 and stay inside the install dir), the `bin` link named
                 kubectl-<name with - as _>[.exe] (install.go), and the license file that
                 validate-krew-manifest looks for after installing.

Used by packaging/build.py (it never renders or ships a manifest that fails these) and by
tests/test_krew.py.
"""
from __future__ import annotations

import glob
import hashlib
import io
import os
import posixpath
import re
import shutil
import tarfile
import zipfile
from typing import Dict, List, Optional, Tuple

API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
KIND = "Plugin"
NAME = re.compile(r"^[0-9A-Za-z_-]+$")          # Go's \w is ASCII-only
SHA256 = re.compile(r"^[a-f0-9]{64}$")
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {"COM%d" % i for i in range(1, 10)} | \
    {"LPT%d" % i for i in range(1, 10)}
# semver.org's grammar (k8s.io/apimachinery ParseSemantic), after krew's mandatory "v"
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
                    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
                    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")
SPEC_FIELDS = {"version", "shortDescription", "description", "caveats", "homepage", "platforms"}
PLATFORM_FIELDS = {"uri", "sha256", "selector", "files", "bin"}
# validate-krew-manifest's list of platforms krew runs on
SUPPORTED = [("windows", "386"), ("windows", "amd64"), ("windows", "arm64"),
             ("linux", "386"), ("linux", "amd64"), ("linux", "arm"), ("linux", "arm64"),
             ("linux", "ppc64le"), ("darwin", "386"), ("darwin", "amd64"), ("darwin", "arm64")]
LICENSE_NAMES = {"license", "license.txt", "license.md", "licenses", "licenses.txt", "licenses.md",
                 "copying", "copying.txt"}


class ManifestError(ValueError):
    pass


class InstallError(RuntimeError):
    pass


# --- validation -----------------------------------------------------------------------------

def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ManifestError(message)


def validate(manifest, file_name: str) -> None:
    """Raise ManifestError unless krew and validate-krew-manifest accept the manifest
    stored as `file_name` (the checks that need no download)."""
    base = os.path.basename(file_name)
    stem, ext = os.path.splitext(base)
    _need(ext == ".yaml", "manifest file %s: the extension must be .yaml" % base)
    _need(isinstance(manifest, dict), "the manifest is not a YAML mapping")
    _need(manifest.get("apiVersion") == API_VERSION,
          "apiVersion %r is not supported (only %s)" % (manifest.get("apiVersion"), API_VERSION))
    _need(manifest.get("kind") == KIND, "kind %r: only %s is supported" % (manifest.get("kind"), KIND))
    _need(bool(NAME.match(stem)) and stem.upper() not in WINDOWS_RESERVED,
          "the plugin name %r is not allowed (must match ^[\\w-]+$, not a Windows device name)" % stem)
    meta = manifest.get("metadata")
    _need(isinstance(meta, dict), "metadata is missing")
    _need(meta.get("name") == stem, "the plugin must be named %r after its file, not %r" % (stem, meta.get("name")))
    spec = manifest.get("spec")
    _need(isinstance(spec, dict), "spec is missing")
    unknown = set(spec) - SPEC_FIELDS
    _need(not unknown, "spec has fields krew does not know: %s" % ", ".join(sorted(unknown)))
    for field in ("version", "shortDescription", "description", "caveats", "homepage"):
        _need(spec.get(field) is None or isinstance(spec.get(field), str), "spec.%s must be a string" % field)
    short = spec.get("shortDescription") or ""
    _need(short != "", "spec.shortDescription is required")
    _need("\r" not in short and "\n" not in short, "spec.shortDescription must not contain line breaks")
    platforms = spec.get("platforms")
    _need(isinstance(platforms, list) and len(platforms) > 0, "spec.platforms needs at least one platform")
    version = spec.get("version") or ""
    _need(version != "", "spec.version is required")
    _need(version.startswith("v"), "spec.version %r must start with 'v'" % version)
    _need(bool(SEMVER.match(version[1:])), "spec.version %r is not a semantic version" % version)
    for i, p in enumerate(platforms):
        try:
            _validate_platform(p)
        except ManifestError as e:
            raise ManifestError("spec.platforms[%d]: %s" % (i, e)) from None
    for i, p in enumerate(platforms):
        _need(any(selector_matches(p["selector"], o, a) for o, a in SUPPORTED),
              "spec.platforms[%d]: the selector matches no platform krew supports" % i)
    for o, a in SUPPORTED:
        hits = [i for i, p in enumerate(platforms) if selector_matches(p["selector"], o, a)]
        _need(len(hits) <= 1, "spec.platforms %s overlap: each selects %s/%s" % (hits, o, a))


def _validate_platform(p) -> None:
    _need(isinstance(p, dict), "a platform must be a mapping")
    unknown = set(p) - PLATFORM_FIELDS
    _need(not unknown, "fields krew does not know: %s" % ", ".join(sorted(unknown)))
    _need(isinstance(p.get("uri"), str) and p["uri"] != "", "uri has to be set")
    _need(isinstance(p.get("sha256"), str) and p["sha256"] != "", "sha256 has to be set")
    _need(bool(SHA256.match(p["sha256"])), "sha256 %r must match ^[a-f0-9]{64}$" % p["sha256"])
    _need(isinstance(p.get("bin"), str) and p["bin"] != "", "bin has to be set")
    files = p.get("files", None)
    if "files" in p:
        _need(isinstance(files, list) and len(files) > 0, "files has to be left out or be non-empty")
        for op in files:
            _need(isinstance(op, dict), "each files entry is a mapping with from and to")
            _need(isinstance(op.get("from"), str) and op["from"] != "", "files: from has to be set")
            _need(isinstance(op.get("to"), str) and op["to"] != "", "files: to has to be set")
            # checked by krew at install time, which validate-krew-manifest runs (move.go)
            _need(op["to"] == posixpath.normpath(op["to"]) and not op["to"].startswith(("/", "..")),
                  "files: to %r must be a clean relative path" % op["to"])
    _validate_selector(p.get("selector"))


def _validate_selector(sel) -> None:
    _need(sel is not None, "a selector is required")
    _need(isinstance(sel, dict), "the selector must be a mapping")
    unknown = set(sel) - {"matchLabels", "matchExpressions"}
    _need(not unknown, "selector fields krew does not know: %s" % ", ".join(sorted(unknown)))
    labels, exprs = sel.get("matchLabels"), sel.get("matchExpressions")
    _need(labels is not None or bool(exprs), "an empty selector is not supported")
    keys = list((labels or {}).keys()) + [e.get("key") for e in (exprs or []) if isinstance(e, dict)]
    for k in keys:
        _need(k in ("os", "arch"), "selector key %r is not supported (only os and arch)" % (k,))
    _need(labels is None or (isinstance(labels, dict) and len(labels) > 0), "matchLabels is given but empty")
    _need(exprs is None or (isinstance(exprs, list) and len(exprs) > 0), "matchExpressions is given but empty")
    for e in exprs or []:
        _need(isinstance(e, dict), "a matchExpressions entry must be a mapping")
        op, values = e.get("operator"), e.get("values") or []
        _need(op in ("In", "NotIn", "Exists", "DoesNotExist"), "operator %r is not a label selector operator" % op)
        if op in ("In", "NotIn"):
            _need(len(values) > 0, "operator %s needs values" % op)
        else:
            _need(len(values) == 0, "operator %s takes no values" % op)


def selector_matches(sel, os_name: str, arch: str) -> bool:
    """A Kubernetes label selector against the labels {os, arch}."""
    labels = {"os": os_name, "arch": arch}
    for k, v in ((sel or {}).get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in (sel or {}).get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        have = key in labels
        if op == "In" and not (have and labels[key] in values):
            return False
        if op == "NotIn" and have and labels[key] in values:
            return False
        if op == "Exists" and not have:
            return False
        if op == "DoesNotExist" and have:
            return False
    return True


def platform_for(manifest, os_name: str, arch: str) -> Optional[dict]:
    """The platform krew picks on os/arch: the first whose selector matches."""
    for p in manifest["spec"]["platforms"]:
        if selector_matches(p["selector"], os_name, arch):
            return p
    return None


def review(manifest) -> List[str]:
    """What a krew-index reviewer would flag (not enforced by krew itself)."""
    spec = manifest.get("spec") or {}
    problems = []
    short = spec.get("shortDescription") or ""
    if len(short) > 50:
        problems.append("shortDescription has %d characters (at most 50)" % len(short))
    if short[:1] and not short[:1].isupper():
        problems.append("shortDescription should start with a capital letter")
    desc = spec.get("description") or ""
    if not desc.strip():
        problems.append("description is empty")
    for n, line in enumerate(desc.splitlines(), 1):
        if len(line) > 80:
            problems.append("description line %d has %d columns (wrap at 80)" % (n, len(line)))
        if re.match(r"^\s*(\$ |kubectl |[-*] |\d+\. )", line):
            problems.append("description line %d looks like a usage list or example: %r" % (n, line.strip()))
    if not (spec.get("homepage") or "").startswith("https://"):
        problems.append("homepage should be an https URL")
    return problems


# --- a simulated `kubectl krew install --manifest M --archive A` ----------------------------

def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def link_name(plugin: str, windows: bool) -> str:
    return "kubectl-" + plugin.replace("-", "_") + (".exe" if windows else "")


def _suspicious(name: str) -> None:
    if ".." in name:
        raise InstallError("refusing to unpack archive with suspicious entry %r" % name)
    if name.startswith("/") or name.startswith("\\"):
        raise InstallError("refusing to unpack archive with absolute entry %r" % name)


def extract(archive: str, dest: str) -> None:
    """Unpack as krew does: zip or tar.gz by content, dirs and regular files only."""
    with open(archive, "rb") as fh:
        data = fh.read()
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                _suspicious(info.filename)
                path = os.path.join(dest, *info.filename.rstrip("/").split("/"))
                mode = (info.external_attr >> 16) & 0o7777
                if info.is_dir():
                    os.makedirs(path, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with zf.open(info) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if mode:
                    os.chmod(path, mode)
        return
    if data[:2] != b"\x1f\x8b":
        raise InstallError("%s is neither a zip nor a gzip archive (krew sniffs the content)" % archive)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for member in tf:
            if member.name == "pax_global_header":
                continue
            _suspicious(member.name)
            path = os.path.join(dest, *member.name.rstrip("/").split("/"))
            if member.isdir():
                os.makedirs(path, exist_ok=True)
                os.chmod(path, member.mode & 0o7777 or 0o755)
            elif member.isreg():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                src = tf.extractfile(member)
                with open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.chmod(path, member.mode & 0o7777)
            else:
                raise InstallError("unable to handle file type %r for %r in tar (krew takes only directories "
                                   "and regular files)" % (member.type, member.name))


def _inside(base: str, path: str) -> bool:
    rel = os.path.relpath(path, base)
    return not rel.startswith("..")


def _moves(src: str, dst: str, op: Dict[str, str]) -> List[Tuple[str, str]]:
    to = op["to"]
    if to != posixpath.normpath(to) or to.startswith("/"):
        raise InstallError("files: `to` %r is not a clean relative path (%r)" % (to, posixpath.normpath(to)))
    direct = os.path.normpath(os.path.join(src, op["from"]))
    if os.path.exists(direct):
        target = os.path.basename(direct) if posixpath.normpath(to) == "." else to
        move = (direct, os.path.abspath(os.path.join(dst, target)))
        if not (_inside(src, move[0]) and _inside(dst, move[1])):
            raise InstallError("files: move %s -> %s leaves the archive or the install dir" % move)
        return [move]
    matches = sorted(glob.glob(os.path.join(src, op["from"])))
    if not matches:
        raise InstallError("no files in the plugin archive matched the glob pattern=%s" % op["from"])
    out = []
    for m in matches:
        move = (m, os.path.abspath(os.path.join(dst, to, os.path.basename(m))))
        if not (_inside(src, move[0]) and _inside(dst, move[1])):
            raise InstallError("files: move %s -> %s leaves the archive or the install dir" % move)
        out.append(move)
    return out


def install(manifest, archive: str, krew_root: str, os_name: str, arch: str, make_link: bool = True) -> str:
    """Install `archive` per `manifest` into KREW_ROOT-like `krew_root`; returns the path of
    the link in krew_root/bin (of the installed binary with make_link=False).  Raises
    InstallError where krew would fail."""
    plugin = manifest["metadata"]["name"]
    platform = platform_for(manifest, os_name, arch)
    if platform is None:
        raise InstallError("plugin %r does not offer installation for %s/%s" % (plugin, os_name, arch))
    got = sha256_file(archive)
    if got != platform["sha256"]:
        raise InstallError("checksum does not match, want: %s, got %s" % (platform["sha256"], got))
    staging = os.path.join(krew_root, "staging")
    os.makedirs(staging)
    extract(archive, staging)
    install_dir = os.path.join(krew_root, "store", plugin, manifest["spec"]["version"])
    tmp = os.path.join(krew_root, "move-tmp")
    os.makedirs(tmp)
    for op in platform.get("files") or [{"from": "*", "to": "."}]:
        for frm, to in _moves(staging, tmp, op):
            os.makedirs(os.path.dirname(to), exist_ok=True)
            if os.path.isdir(to):
                shutil.rmtree(to)
            os.rename(frm, to)
    os.makedirs(os.path.dirname(install_dir), exist_ok=True)
    os.rename(tmp, install_dir)
    shutil.rmtree(staging)
    binary = os.path.abspath(os.path.join(install_dir, *platform["bin"].split("/")))
    if not _inside(install_dir, binary):
        raise InstallError("bin %r is outside the install dir" % platform["bin"])
    if not os.path.exists(binary):
        raise InstallError("source binary %r cannot be found in the extracted archive" % platform["bin"])
    licenses = [f for _, _, files in os.walk(install_dir) for f in files if f.lower() in LICENSE_NAMES]
    if not licenses:
        raise InstallError("no LICENSE (or alike) file is installed from the archive")
    if not make_link:
        return binary
    bindir = os.path.join(krew_root, "bin")
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, link_name(plugin, os_name == "windows"))
    os.symlink(binary, link)
    return link


def archive_members(archive: str) -> Dict[str, int]:
    """name -> mode of every file in the archive (dirs end with '/'), for layout checks."""
    out: Dict[str, int] = {}
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                out[info.filename] = (info.external_attr >> 16) & 0o7777
        return out
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf:
            out[m.name + ("/" if m.isdir() else "")] = m.mode if m.isreg() or m.isdir() else -1
    return out
