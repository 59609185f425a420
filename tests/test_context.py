"""The resolved VM context (context.py): its pure parts without a cluster, and resolution
through a fake adapter that records every read."""
import copy

import pytest

from apiserver import objects
from kubectl_virtio import context as C
from kubectl_virtio import versions as V
from kubectl_virtio.errors import ClusterError
from fake_cluster import FakeCluster

NEWEST = C.Release(V.NEWEST, C.SOURCE_NEWEST)


# --- choosing the pod ----------------------------------------------------------------------

def pod_on(vmi, node, created, phase="Running", name=None):
    return objects.launcher_pod(vmi, node, created=created, phase=phase, name=name)


def test_choose_pod_prefers_running_on_the_vmis_node_and_newest():
    vmi = objects.vmi("testvm", node_name="node01")
    old = pod_on(vmi, "node01", "2026-01-01T00:00:00Z", name="virt-launcher-testvm-old")
    new = pod_on(vmi, "node01", "2026-01-02T00:00:00Z", name="virt-launcher-testvm-new")
    other_node = pod_on(vmi, "node02", "2026-01-03T00:00:00Z", name="virt-launcher-testvm-node2")
    pending = pod_on(vmi, "node01", "2026-01-04T00:00:00Z", phase="Pending", name="virt-launcher-testvm-pend")
    stranger = copy.deepcopy(new)
    stranger["metadata"]["labels"]["kubevirt.io"] = "something-else"
    stranger["metadata"]["name"] = "not-a-launcher"
    stranger["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    pod, notes = C.choose_pod([old, other_node, pending, stranger, new], vmi)
    assert pod["metadata"]["name"] == "virt-launcher-testvm-new" and notes == []
    # no running pod: the newest of all, still preferring the node
    pod, _ = C.choose_pod([pending], vmi)
    assert pod["metadata"]["name"] == "virt-launcher-testvm-pend"
    assert C.choose_pod([], vmi) == (None, [])
    assert C.choose_pod([stranger], vmi) == (None, [])


def test_choose_pod_during_a_migration_reads_the_source():
    vmi = objects.vmi("testvm", node_name="node02")
    src = pod_on(vmi, "node01", "2026-01-01T00:00:00Z", name="virt-launcher-testvm-src")
    dst = pod_on(vmi, "node02", "2026-01-02T00:00:00Z", name="virt-launcher-testvm-dst")
    vmi["status"]["migrationState"] = {"sourceState": {"pod": "virt-launcher-testvm-src", "node": "node01"},
                                       "targetState": {"pod": "virt-launcher-testvm-dst", "node": "node02"}}
    pod, notes = C.choose_pod([dst, src], vmi)
    assert pod["metadata"]["name"] == "virt-launcher-testvm-src"
    assert len(notes) == 1 and notes[0].severity == "warning" and "node01 -> node02" in notes[0].message
    vmi["status"]["migrationState"]["completed"] = True
    assert C.choose_pod([dst, src], vmi)[0]["metadata"]["name"] == "virt-launcher-testvm-dst"


# --- the preference source -----------------------------------------------------------------------

@pytest.mark.parametrize("kind,cluster_scoped", [
    (None, True), ("VirtualMachineClusterPreference", True), ("virtualmachineclusterpreferences", True),
    ("VirtualMachineClusterPreferences", True), ("VirtualMachinePreference", False),
    ("virtualmachinepreferences", False), ("virtualmachinepreference", False),
])
def test_preference_kinds_are_matched_case_insensitively_singular_or_plural(kind, cluster_scoped):
    vm = objects.vm("testvm", preference="linux", preference_kind=kind) if kind else objects.vm("testvm", preference="linux")
    src = C.preference_source(vm)
    assert src.name == "linux" and src.cluster_scoped is cluster_scoped and src.fetchable
    assert src.kind == ("VirtualMachineClusterPreference" if cluster_scoped else "VirtualMachinePreference")


def test_preference_source_revision_infer_and_unknown_kind():
    vm = objects.vm("testvm", preference="linux", preference_revision="testvm-linux-1")
    src = C.preference_source(vm)
    assert src.revision == "testvm-linux-1" and src.text() == "ControllerRevision testvm-linux-1"
    vm = objects.vm("testvm")
    vm["spec"]["preference"] = {"revisionName": "old-style-rev", "name": "linux"}   # older KubeVirt
    assert C.preference_source(vm).revision == "old-style-rev"
    vm["spec"]["preference"] = {"inferFromVolume": "rootdisk"}
    src = C.preference_source(vm)
    assert src.infer_from == "rootdisk" and not src.fetchable
    vm["status"]["preferenceRef"] = {"name": "fedora", "kind": "VirtualMachineClusterPreference"}
    assert C.preference_source(vm).name == "fedora"   # KubeVirt resolved it
    vm["spec"]["preference"] = {"name": "x", "kind": "VirtualMachineInstancetype"}
    src = C.preference_source(vm)
    assert src.unknown_kind == "VirtualMachineInstancetype" and not src.fetchable
    assert C.preference_source(objects.vm("plain")) is None


# --- origin, live, restart ------------------------------------------------------------------------

def pref_read(value):
    return C.PreferenceRead(preference=C.S.preference_from_object(
        objects.cluster_preference("linux", use_virtio_transitional=value)))


@pytest.mark.parametrize("template,pref,expected", [
    (True, None, (True, "vm")), (False, True, (False, "vm")), (None, True, (True, "preference")),
    (None, False, (False, "preference")), (None, None, (False, "default")),
])
def test_origin(template, pref, expected):
    kwargs = {"use_virtio_transitional": template} if template is not None else {}
    if pref is not None:
        kwargs["preference"] = "linux"
    vm = objects.vm("testvm", run_strategy="Halted", **kwargs)
    ctx = C.build(vm, None, release=NEWEST, pref=pref_read(pref) if pref is not None else None)
    assert (ctx.effective, ctx.origin) == expected
    assert ctx.live is None and not ctx.restart_pending and not ctx.running


def test_unreadable_preference_gives_unknown_and_guesses_from_the_running_vmi():
    stack = objects.running_vm("testvm", vm_kwargs={"preference": "linux"},
                               vmi_kwargs={"use_virtio_transitional": True})
    read = C.PreferenceRead(problem="cannot read the VM's preference: forbidden", reason="cannot read it")
    ctx = C.build(stack.vm, stack.vmi, release=NEWEST, pref=read)
    assert (ctx.effective, ctx.origin, ctx.live) == (True, "unknown", True)
    assert not ctx.restart_pending and ctx.effective_known is None and ctx.preference_unread
    assert ctx.flag_with(None) == (None, "unknown") and ctx.flag_with(False) == (False, "vm")
    assert any("forbidden" in n.message for n in ctx.notes)


def test_vmi_without_vm_is_origin_vmi():
    vmi = objects.vmi("lonely", use_virtio_transitional=True)
    ctx = C.build(None, vmi, release=NEWEST)
    assert (ctx.effective, ctx.origin, ctx.live, ctx.running) == (True, "vmi", True, True)


def test_restart_pending_and_why():
    assert C.restart_pending(None, None, True, True) == (False, None)
    assert C.restart_pending(None, False, False, True) == (False, None)
    pending, why = C.restart_pending(None, False, True, True)
    assert pending and "running VM has useVirtioTransitional false" in why
    assert C.restart_pending(None, False, True, False) == (False, None)   # a VMI alone has no next start
    pending, why = C.restart_pending("a field changed", True, True, True)
    assert pending and "RestartRequired" in why and "a field changed" in why
    # the condition as the API serialises it ("True"), and a VM whose template now asks for true
    stack = objects.running_vm("testvm", vm_kwargs={"use_virtio_transitional": True, "restart_required": True},
                               vmi_kwargs={"use_virtio_transitional": False})
    ctx = C.build(stack.vm, stack.vmi, release=NEWEST)
    assert ctx.restart_pending and ctx.restart_condition == objects.RESTART_REQUIRED_MESSAGE
    assert (ctx.effective, ctx.live) == (True, False)


def test_machine_and_arch():
    stack = objects.running_vm("armvm", vmi_kwargs={"architecture": "arm64"})
    ctx = C.build(stack.vm, stack.vmi, release=NEWEST)
    assert ctx.arch == "arm64" and ctx.machine_now == "virt" and ctx.machine_next == "virt"
    halted = objects.vm("halted", run_strategy="Halted")
    ctx = C.build(halted, None, release=NEWEST)
    assert ctx.machine_next == "q35" and "assumed" in ctx.machine_note and ctx.machine_now is None


def test_guest_hints_are_raw():
    stack = objects.running_vm("c6", vm_kwargs={"annotations": {"vm.kubevirt.io/os": "centos6"}})
    stack.vmi["status"]["guestOSInfo"] = {"id": "centos", "versionId": "6.10"}
    ctx = C.build(stack.vm, stack.vmi, release=NEWEST)
    assert ctx.guest_hints["annotations"]["vm.kubevirt.io/os"] == "centos6"
    assert ctx.guest_hints["guestOSInfo"] == {"id": "centos", "versionId": "6.10"}


# --- the release ------------------------------------------------------------------------------------

@pytest.mark.parametrize("image,expected", [
    ("quay.io/kubevirt/virt-launcher:v1.6.4", (1, 6, 4)),
    ("registry.local:5000/kubevirt/virt-launcher:v1.6.4@sha256:" + "a" * 64, (1, 6, 4)),
    ("my.registry/prefix-virt-launcher:v1.5.0", (1, 5, 0)),
    ("quay.io/kubevirt/virt-launcher@sha256:" + "b" * 64, None),
    ("quay.io/kubevirt/virt-launcher:latest", None),
    ("quay.io/kubevirt/virt-launcher", None),
    ("registry.example/cnv/virt-launcher-rhel9:v4.16.3", None),
    ("", None), (None, None), ("x" * 5000, None),
])
def test_release_from_image(image, expected):
    version, why = V.from_image(image)
    assert version == expected and (bool(why) == (expected is None))
    assert len(why) < 300


def test_choose_release_order_and_notes():
    img = "quay.io/kubevirt/virt-launcher:%s"
    r = C.choose_release(None, img % "v1.6.4", img % "v1.5.0", "v1.4.0")
    assert (r.text, r.source, r.notes) == ("v1.6.4", C.SOURCE_VMI, ())
    r = C.choose_release(None, None, img % "v1.5.0", "v1.4.0")
    assert (r.text, r.source) == ("v1.5.0", C.SOURCE_POD)
    r = C.choose_release(None, "quay.io/kubevirt/virt-launcher@sha256:" + "c" * 64, None, "v1.4.0")
    assert (r.text, r.source) == ("v1.4.0", C.SOURCE_CR)
    r = C.choose_release(V.parse("v1.2.0"), img % "v1.6.4")
    assert (r.text, r.source) == ("v1.2.0", C.SOURCE_FLAG)
    # a digest and nothing else: the newest rules, and a finding that says why
    r = C.choose_release(None, "quay.io/kubevirt/virt-launcher@sha256:" + "c" * 64)
    assert r.source == C.SOURCE_NEWEST and r.version == V.NEWEST
    assert len(r.notes) == 1 and "digest" in r.notes[0].message and "--kubevirt-version" in r.notes[0].message
    # nothing at all (a namespace user, a stopped VM): newest, silently
    assert C.choose_release() == C.Release(V.NEWEST, C.SOURCE_NEWEST)
    # newer than the rules know: applied, with a warning
    r = C.choose_release(None, img % "v9.1.0")
    assert r.text == "v9.1.0" and any("newer than" in n.message for n in r.notes)
    assert r.describe() == "v9.1.0 (from the VMI's launcher image)"


def test_release_without_the_flag_makes_it_default():
    vm = objects.vm("testvm", use_virtio_transitional=True, run_strategy="Halted")
    ctx = C.build(vm, None, release=C.Release(V.parse("v0.36.0"), C.SOURCE_FLAG))
    assert (ctx.effective, ctx.origin) == (False, "default")


# --- resolution through a fake adapter ----------------------------------------------------------------

def test_resolve_reads_each_thing_once_and_the_cr_only_when_needed():
    stack = objects.running_vm("testvm", vm_kwargs={"preference": "linux"})
    fake = FakeCluster(*stack, objects.cluster_preference("linux", use_virtio_transitional=True))
    ctx = C.resolve(fake, "default", "testvm")
    kinds = sorted(c[0] for c in fake.calls)
    assert kinds == ["VirtualMachine", "VirtualMachineClusterPreference", "VirtualMachineInstance", "pods"]
    assert ctx.pod["metadata"]["name"] == stack.pod["metadata"]["name"]
    assert (ctx.effective, ctx.origin, ctx.live, ctx.restart_pending) == (True, "preference", False, True)
    assert ctx.release.source == C.SOURCE_VMI
    # a stopped VM: no VMI to name the release, so the KubeVirt CR is asked
    fake = FakeCluster(objects.vm("halted", run_strategy="Halted"), cr_version="v1.6.4")
    ctx = C.resolve(fake, "default", "halted")
    assert (ctx.release.text, ctx.release.source) == ("v1.6.4", C.SOURCE_CR)
    assert ("pods", "default", None) not in fake.calls
    # a forbidden CR is silent (the adapter returns None); another failure is a note, not an error
    fake = FakeCluster(objects.vm("halted", run_strategy="Halted"), cr_error=ClusterError("timed out"))
    ctx = C.resolve(fake, "default", "halted")
    assert ctx.release.source == C.SOURCE_NEWEST and any("KubeVirt CR" in n.message for n in ctx.notes)
    with pytest.raises(C.VMNotFound):
        C.resolve(fake, "default", "nope")


def test_resolve_many_reads_one_preference_per_distinct_preference():
    vms, vmis = [], []
    for i in range(6):
        pref = ["linux", "windows"][i % 2]
        vm = objects.vm("vm%d" % i, preference=pref, preference_revision="vm%d-%s-rev" % (i, pref),
                        run_strategy="Halted")
        vms.append(vm)
    vms.append(objects.vm("ns-pref", preference="mine", preference_kind="virtualmachinepreferences",
                          run_strategy="Halted"))
    fake = FakeCluster(objects.cluster_preference("linux", use_virtio_transitional=True),
                       objects.cluster_preference("windows", use_virtio_transitional=False),
                       objects.preference("mine", "default", use_virtio_transitional=True), cr_version="v1.6.4")
    contexts = C.resolve_many(fake, vms, vmis)
    reads = [c for c in fake.calls if c[0] != "KubeVirt"]
    assert sorted(reads) == [("VirtualMachineClusterPreference", None, "linux"),
                             ("VirtualMachineClusterPreference", None, "windows"),
                             ("VirtualMachinePreference", "default", "mine")]
    assert [c for c in fake.calls if c[0] == "KubeVirt"] == [("KubeVirt", None, None)]
    got = {c.name: (c.effective, c.origin) for c in contexts}
    assert got["vm0"] == (True, "preference") and got["vm1"] == (False, "preference")
    assert got["ns-pref"] == (True, "preference")
    assert all(c.release.text == "v1.6.4" for c in contexts)


def in_fresh_interpreter(code: str) -> None:
    """Run `code` in a new interpreter (nothing of the client imported yet); it must succeed."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_deferred_pydantic_names_behave_like_the_real_ones():
    """cluster.py keeps pydantic out of the client's import: api_client's SecretStr and
    ApiResponse are stand-ins that must answer as the real ones would."""
    code = ("import sys; from kubectl_virtio import cluster; cluster._import_client()\n"
            "assert 'pydantic' not in sys.modules, 'pydantic imported'\n"
            "from kubernetes.client import api_client\n"
            "c = api_client.ApiClient()\n"
            "assert c.sanitize_for_serialization({'a': [1, 'x', None]}) == {'a': [1, 'x', None]}\n"
            "import pydantic\n"
            "assert c.sanitize_for_serialization(pydantic.SecretStr('s3')) == 's3'\n"
            "r = api_client.ApiResponse(status_code=200, data=1, raw_data=b'')\n"
            "assert type(r).__module__ == 'kubernetes.client.api_response' and r.status_code == 200\n")
    in_fresh_interpreter(code)


def test_client_subpackages_we_do_not_call_are_not_imported_and_still_work_when_asked():
    """cluster.py defers kubernetes.dynamic/watch/informer/leaderelection/stream, certifi,
    multiprocessing and typing_extensions while the client is imported: none is loaded after
    a start, the client's own uses of them answer as the real modules do, and importing them
    later gives the real modules."""
    code = ("import os, sys; from kubectl_virtio import cluster; cluster._import_client()\n"
            "deferred = ['kubernetes.dynamic', 'kubernetes.watch', 'kubernetes.informer',\n"
            "            'kubernetes.leaderelection', 'kubernetes.stream', 'websocket', 'certifi',\n"
            "            'multiprocessing', 'typing_extensions']\n"
            "loaded = [m for m in deferred if m in sys.modules]\n"
            "assert not loaded, loaded\n"
            "from kubernetes import client\n"
            "assert client.Configuration().connection_pool_maxsize == os.cpu_count() * 5\n"
            "from kubernetes.client.exceptions import ApiException\n"
            "assert ApiException(status=404).status == 404\n"
            "from kubernetes.dynamic import DynamicClient\n"
            "from kubernetes.watch import Watch\n"
            "from kubernetes.stream.ws_client import get_websocket_url, websocket_proxycare\n"
            "import websocket\n"
            "assert get_websocket_url('https://h:1/x') == 'wss://h:1/x' and websocket.WebSocket\n"
            "import certifi, multiprocessing, typing_extensions\n"
            "assert os.path.exists(certifi.where()) and multiprocessing.cpu_count() == os.cpu_count()\n"
            "assert typing_extensions.TypedDict and callable(Watch().stream)\n"
            "assert type(sys.modules['kubernetes.dynamic']).__name__ == 'module'\n")
    in_fresh_interpreter(code)


def test_with_vm_reuses_what_was_read_and_to_dict():
    stack = objects.running_vm("testvm", vm_kwargs={"preference": "linux"})
    ctx = C.build(stack.vm, stack.vmi, release=NEWEST, pref=pref_read(True), pods=[stack.pod])
    assert (ctx.effective, ctx.origin, ctx.restart_pending) == (True, "preference", True)
    newer = copy.deepcopy(stack.vm)
    newer["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] = False
    again = C.with_vm(ctx, newer)
    assert (again.effective, again.origin, again.restart_pending) == (False, "vm", False)
    assert again.pod is not None and again.preference is ctx.preference and again.release is ctx.release
    d = again.to_dict()
    assert d["useVirtioTransitional"] == {"effective": False, "origin": "vm", "live": False}
    assert d["kubevirtVersion"] == {"version": V.show(V.NEWEST), "source": "newest-known"} and d["running"]


def test_fetch_preference_reads_the_revision_else_the_object():
    pref = objects.cluster_preference("linux", use_virtio_transitional=True)
    rev = objects.controller_revision("testvm-linux-1", "default", data=pref)
    fake = FakeCluster(pref, rev)
    src = C.PreferenceSource(name="linux", revision="testvm-linux-1")
    assert C.fetch_preference(fake, "default", src).preference.source == "revision testvm-linux-1"
    assert C.fetch_preference(fake, "default", src, by_object=True).preference.name == "linux"
    missing = C.fetch_preference(fake, "default", C.PreferenceSource(name="gone"))
    assert missing.preference is None and "was not found" in missing.problem


def test_machine_families_and_the_flag_release_asked_again_give_the_same_answers():
    """context keeps domain.machine_family per machine type and versions.has_flag per release:
    asking twice, or in another order, answers as the functions themselves."""
    from kubectl_virtio import context as C
    from kubectl_virtio import domain as D
    from kubectl_virtio import versions as V

    types = ["pc-q35-rhel9.6.0", "q35", "pc", "pc-i440fx-2.6", "pc-1.2", "virt", "virt-8.2", "s390-ccw-virtio",
             "PC-Q35-8.0", "other", ""]
    for order in (types, types[::-1]):
        assert [C._machine_family(t) for t in order] == [D.machine_family(t) for t in order]
    assert C._machine_family(None) is None
    releases = [(0, 36, 0), (0, 36, 1), (0, 37, 0), (0, 37, 1), (0, 37, 2), (1, 9, 0)]
    for order in (releases, releases[::-1]):
        assert [C._has_flag(v) for v in order] == [V.has_flag(v) for v in order]
    assert [C._has_flag(v) for v in releases] == [False, True, False, False, True, True]
