"""Live `explain` and `dumpxml`: the installed plugin as a subprocess against the local API
server (real HTTP/TLS, KubeVirt JSON, WebSocket exec), with domain XML rendered by libvirt."""
import copy
import json
import os
import pathlib
import time

import pytest

from apiserver import objects
from apiserver.rbac import READ, Rule
from apiserver.server import V4_PROTOCOL
from libvirt_fixtures import libvirt_s390x  # noqa: F401  (s390x emulator: skip/fail like `libvirt`)

NT, T = "virtio-non-transitional", "virtio-transitional"
DOMAINS = pathlib.Path(__file__).parent / "data" / "domains"
NONROOT_URI = "qemu+unix:///session?socket=/var/run/libvirt/virtqemud-sock"
FLAGGED = {("disk", "containerdisk"), ("disk", "cloudinitdisk"), ("controller", "virtio-serial0"),
           ("controller", "scsi0"), ("interface", "default"), ("memballoon", "memballoon0")}


@pytest.fixture(scope="module")
def rendered(libvirt):
    """Our fixture domains as libvirt renders them (the "live" XML)."""
    names = ["testvm-q35-non-transitional", "testvm-q35-transitional", "windows-q35"]
    inputs = [(DOMAINS / (n + ".xml")).read_text() for n in names]
    hooked = inputs[0].replace('model="virtio-non-transitional"', 'model="virtio-transitional"', 1)
    out = libvirt.render_many(inputs + [hooked])
    return dict(zip(names + ["hooked"], out))


def explain_json(run_plugin, cluster, *args, user="admin", **kw):
    r = run_plugin("explain", *args, "-o", "json", env=cluster.env(user=user, **kw))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r


def statuses(doc):
    return {(d["kind"], d["name"]): d for d in doc["devices"]}


def put_running(cluster, xml, name="testvm", ns="default", **kw):
    stack = cluster.add_running_vm(name, ns, **kw)
    cluster.set_domain(ns, stack.pod["metadata"]["name"], "%s_%s" % (ns, name), xml)
    return stack


def template_spec(vm):
    return copy.deepcopy(vm["spec"]["template"]["spec"])


def test_running_seed_vm(run_plugin, cluster, rendered):
    stack = put_running(cluster, rendered["testvm-q35-non-transitional"])
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert doc["vm"] == {"namespace": "default", "name": "testvm"}
    assert doc["useVirtioTransitional"] == {"effective": False, "origin": "default", "live": False}
    assert doc["restartRequired"] is False and doc["machine"] == "q35"
    st = statuses(doc)
    assert FLAGGED <= set(st)
    for key in FLAGGED:
        assert (st[key]["model"], st[key]["expected"], st[key]["status"]) == (NT, NT, "match"), key
    # non-root launcher: the session URI first, argv only, in the compute container
    ex = cluster.exec_log[-1]
    assert ex.container == "compute" and ex.pod == stack.pod["metadata"]["name"]
    assert list(ex.argv) == ["virsh", "-c", NONROOT_URI, "dumpxml", "default_testvm"]
    # economy: at most 5 API requests plus one exec
    log = cluster.request_log()
    assert sum(1 for r in log if r.is_exec) == 1
    assert sum(1 for r in log if not r.is_exec) <= 5, [(r.method, r.path) for r in log]


def test_table_output_and_kubectl_plugin_discovery(cluster, rendered, plugin_path, kubectl_path, tmp_path):
    put_running(cluster, rendered["testvm-q35-non-transitional"])
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kubectl-virtio").symlink_to(plugin_path)
    import subprocess
    env = cluster.env()
    env["PATH"] = "%s:%s:/usr/bin:/bin" % (bindir, os.path.dirname(kubectl_path))
    r = subprocess.run([kubectl_path, "virtio", "explain", "testvm"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "not invent" in r.stdout and "containerdisk" in r.stdout
    # the same server answers real kubectl's own get and exec
    r = cluster.kubectl("get", "vm", "-n", "default")
    assert r.returncode == 0 and "testvm" in r.stdout, r.stderr
    pod = cluster.list("pods", "default")[0]["metadata"]["name"]
    r = cluster.kubectl("exec", "-n", "default", pod, "-c", "compute", "--", "virsh", "-c", NONROOT_URI,
                        "dumpxml", "default_testvm")
    assert r.returncode == 0 and "<domain" in r.stdout and "virtio-non-transitional" in r.stdout, r.stderr


def test_transitional_vm(run_plugin, cluster, rendered):
    put_running(cluster, rendered["testvm-q35-transitional"], vm_kwargs={"use_virtio_transitional": True})
    doc, _ = explain_json(run_plugin, cluster, "vm/testvm")
    assert doc["useVirtioTransitional"] == {"effective": True, "origin": "vm", "live": True}
    st = statuses(doc)
    assert all(st[k]["status"] == "match" and st[k]["model"] == T for k in FLAGGED)
    assert st[("disk", "containerdisk")]["pciParent"] == "pcie-to-pci-bridge"


def test_drift_with_restart_required(run_plugin, cluster, rendered):
    vm = objects.vm("testvm", use_virtio_transitional=True, restart_required=True)
    spec = template_spec(vm)
    spec["domain"]["devices"].pop("useVirtioTransitional")
    put_running(cluster, rendered["testvm-q35-non-transitional"],
                vm_kwargs={"use_virtio_transitional": True, "restart_required": True}, vmi_kwargs={"spec": spec})
    doc, r = explain_json(run_plugin, cluster, "testvm")
    assert doc["restartRequired"] is True
    assert doc["useVirtioTransitional"] == {"effective": True, "origin": "vm", "live": False}
    st = statuses(doc)
    assert all(st[k]["status"] == "drift" and st[k]["expected"] == T and st[k]["model"] == NT for k in FLAGGED)


def test_preference_origin_from_controller_revision(run_plugin, cluster, rendered):
    pref = objects.cluster_preference("linux.virtiotransitional", use_virtio_transitional=True)
    rev_name = objects.preference_revision_name("testvm", pref)
    stack = put_running(cluster, rendered["testvm-q35-transitional"],
                        vm_kwargs={"preference": "linux.virtiotransitional", "preference_revision": rev_name},
                        vmi_kwargs={"use_virtio_transitional": True})
    cluster.put(objects.controller_revision(rev_name, "default", data=pref, owner_vm=stack.vm))
    # the live cluster preference was edited after the VM started: the frozen revision decides
    edited = copy.deepcopy(pref)
    edited["spec"]["devices"]["preferredUseVirtioTransitional"] = False
    cluster.put(edited)
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert doc["useVirtioTransitional"] == {"effective": True, "origin": "preference", "live": True}
    assert all(statuses(doc)[k]["status"] == "match" for k in FLAGGED)
    assert any(r.resource == "controllerrevisions" for r in cluster.request_log())


def test_live_migration_reads_the_source_pod(run_plugin, cluster, rendered):
    stack = put_running(cluster, rendered["testvm-q35-non-transitional"], node="node01")
    target = objects.launcher_pod(stack.vmi, "node02", name="virt-launcher-testvm-target")
    cluster.put(target)
    cluster.set_domain("default", "virt-launcher-testvm-target", "default_testvm", "<domain/>")
    cluster.mutate("vmi", "testvm", lambda o: o["status"].update(migrationState={
        "sourceNode": "node01", "targetNode": "node02", "sourcePod": stack.pod["metadata"]["name"],
        "targetPod": "virt-launcher-testvm-target", "completed": False}), "default")
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert cluster.exec_log[-1].pod == stack.pod["metadata"]["name"]
    assert any("migration" in f["message"] for f in doc["findings"])
    assert statuses(doc)[("disk", "containerdisk")]["status"] == "match"


def test_root_launcher_uses_plain_virsh_and_falls_back(run_plugin, cluster, rendered):
    stack = put_running(cluster, rendered["testvm-q35-non-transitional"], root=True)
    explain_json(run_plugin, cluster, "testvm")
    assert list(cluster.exec_log[-1].argv) == ["virsh", "dumpxml", "default_testvm"]
    # a non-root VMI whose launcher only answers the plain URI: the second form is tried
    cluster.mutate("vmi", "testvm", lambda o: o["status"].update(runtimeUser=107), "default")
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert [list(e.argv[:2]) for e in cluster.exec_log[-2:]] == [["virsh", "-c"], ["virsh", "dumpxml"]]
    assert statuses(doc)[("disk", "containerdisk")]["model"] == NT


def test_halted_vm_is_predicted(run_plugin, cluster):
    cluster.put(objects.vm("testvm", run_strategy="Halted"))
    doc, r = explain_json(run_plugin, cluster, "testvm")
    st = statuses(doc)
    assert st[("disk", "containerdisk")]["status"] == "predicted" and st[("disk", "containerdisk")]["expected"] == NT
    assert any("not running" in f["message"] for f in doc["findings"])
    assert not cluster.exec_log


def test_vmi_without_vm(run_plugin, cluster, rendered):
    vmi = cluster.put(objects.vmi("lonely", "default", use_virtio_transitional=True))
    pod = cluster.put(objects.launcher_pod(vmi))
    cluster.set_domain("default", pod["metadata"]["name"], "default_lonely", rendered["testvm-q35-transitional"])
    doc, _ = explain_json(run_plugin, cluster, "vmi/lonely")
    assert doc["useVirtioTransitional"]["origin"] == "vmi" and doc["useVirtioTransitional"]["effective"] is True
    assert statuses(doc)[("disk", "containerdisk")]["status"] == "match"


def test_s390x_node(run_plugin, cluster, libvirt_s390x):
    # the launcher answers with what libvirt (qemu-system-s390x) made of KubeVirt's s390x XML
    put_running(cluster, libvirt_s390x.output, vm_kwargs={"use_virtio_transitional": True},
                vmi_kwargs={"architecture": "s390x"})
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert doc["arch"] == "s390x" and doc["useVirtioTransitional"]["live"] is None
    st = statuses(doc)
    assert st[("controller", "scsi0")]["expected"] == "virtio-scsi"
    assert all(st[k]["status"] == "match" and st[k]["variant"] == "ccw" for k in FLAGGED)
    assert all(st[k]["address"].startswith("ccw 0x") for k in FLAGGED)
    assert st[("input", "keyboard0")]["rule"] == "input.s390x-keyboard"


def test_windows_vm_with_e1000_and_sata(run_plugin, cluster, rendered):
    tmpl = {"domain": {"devices": {
        "disks": [{"name": "pvcdisk", "disk": {"bus": "sata"}}, {"name": "winiso", "cdrom": {"bus": "sata"}}],
        "interfaces": [{"name": "default", "masquerade": {}, "model": "e1000"}],
        "inputs": [{"name": "tablet", "type": "tablet", "bus": "usb"}]}},
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [{"name": "pvcdisk", "persistentVolumeClaim": {"claimName": "win"}},
                    {"name": "winiso", "winiso": {"configMap": {"name": "winiso"}}}]}
    stack = cluster.add_running_vm("win", "default", vm_kwargs={"template_spec": tmpl})
    cluster.set_domain("default", stack.pod["metadata"]["name"], "default_win", rendered["windows-q35"])
    doc, _ = explain_json(run_plugin, cluster, "win")
    st = statuses(doc)
    assert st[("interface", "default")]["status"] == "not-virtio" and st[("interface", "default")]["model"] == "e1000"
    assert st[("disk", "pvcdisk")]["status"] == "not-virtio" and st[("disk", "pvcdisk")]["bus"] == "sata"
    assert st[("controller", "scsi0")]["status"] == "match"


def test_hooked_model_is_unexpected(run_plugin, cluster, rendered):
    put_running(cluster, rendered["hooked"])
    doc, r = explain_json(run_plugin, cluster, "testvm")
    st = statuses(doc)
    changed = [k for k in FLAGGED if st[k]["model"] == T]
    assert len(changed) == 1 and st[changed[0]]["status"] == "unexpected"
    assert all(st[k]["status"] == "match" for k in FLAGGED - set(changed))
    assert "hook" in doc["verdict"]


def test_exec_forbidden_still_predicts(run_plugin, cluster, rendered):
    put_running(cluster, rendered["testvm-q35-non-transitional"])
    r = run_plugin("explain", "testvm", "-o", "json", env=cluster.env(user="noexec"))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert statuses(doc)[("disk", "containerdisk")]["status"] == "predicted"
    msg = " ".join(f["message"] for f in doc["findings"])
    assert "pods/exec" in msg and "create" in msg
    assert "warning:" in r.stderr and "Traceback" not in r.stderr


def test_v4_only_server(run_plugin, cluster, rendered):
    cluster.exec_protocols = (V4_PROTOCOL,)
    put_running(cluster, rendered["testvm-q35-non-transitional"])
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert cluster.exec_log[-1].protocol == V4_PROTOCOL
    assert statuses(doc)[("disk", "containerdisk")]["status"] == "match"


def test_dumpxml_prints_the_live_xml(run_plugin, cluster, rendered):
    put_running(cluster, rendered["testvm-q35-transitional"], vm_kwargs={"use_virtio_transitional": True})
    r = run_plugin("dumpxml", "testvm", env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert r.stdout == rendered["testvm-q35-transitional"]


@pytest.mark.parametrize("args,user,needles", [
    (["explain", "nope"], "admin", ["nope", "namespace default"]),
    (["explain", "testvm", "-n", "other"], "admin", ["namespace other"]),
    (["explain", "testvm"], "nobody", ["forbidden", "get virtualmachines.kubevirt.io"]),
    # the server's own Status message, not "HTTP 403" (the handshake error carries it last)
    (["dumpxml", "testvm"], "noexec", ["forbidden", "create pods/exec",
                                        'User "noexec" cannot create resource "pods/exec"']),
    (["explain", "Bad_Name"], "admin", ["not a valid"]),
])
def test_errors(run_plugin, cluster, rendered, args, user, needles):
    put_running(cluster, rendered["testvm-q35-non-transitional"])
    before = cluster.api_request_count()
    r = run_plugin(*args, env=cluster.env(user=user))
    assert r.returncode in (1, 2) and r.stderr.startswith("error: "), r.stderr
    for n in needles:
        assert n in r.stderr
    assert "Traceback" not in r.stderr and "-token" not in r.stderr
    if "not a valid" in needles:
        assert r.returncode == 2 and cluster.api_request_count() == before


def test_401_tls_and_refused(run_plugin, cluster, tmp_path):
    cluster.put(objects.vm("testvm"))
    bad_token = pathlib.Path(cluster.kubeconfig_path).read_text().replace("admin-token", "stolen-token")
    p = tmp_path / "bad-token"
    p.write_text(bad_token)
    r = run_plugin("explain", "testvm", "--kubeconfig", str(p))
    assert r.returncode == 1 and "401" in r.stderr and "stolen-token" not in r.stderr
    r = run_plugin("explain", "testvm", "--kubeconfig", cluster.kubeconfig_for("admin", bad_ca=True))
    assert r.returncode == 1 and "TLS" in r.stderr, r.stderr
    refused = pathlib.Path(cluster.kubeconfig_path).read_text().replace(cluster.url.rsplit(":", 1)[1], "1")
    p = tmp_path / "refused"
    p.write_text(refused)
    r = run_plugin("explain", "testvm", "--kubeconfig", str(p), "--request-timeout", "5")
    assert r.returncode == 1 and "connection refused" in r.stderr, r.stderr


def test_context_and_namespace_from_kubeconfig(run_plugin, cluster, rendered):
    put_running(cluster, rendered["testvm-q35-non-transitional"], ns="prod")
    path = cluster.kubeconfig_for("admin", namespace="prod")
    r = run_plugin("explain", "testvm", "-o", "json", "--kubeconfig", path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["vm"]["namespace"] == "prod"


def economy(cluster, max_requests=5, max_execs=1):
    log = cluster.request_log()
    assert sum(1 for r in log if r.is_exec) <= max_execs, [(r.method, r.path) for r in log]
    assert sum(1 for r in log if not r.is_exec) <= max_requests, [(r.method, r.path) for r in log]
    return log


# --- live migration: newer KubeVirt describes it only in sourceState/targetState ------------------

def test_live_migration_described_by_source_and_target_state(run_plugin, cluster, rendered):
    stack = put_running(cluster, rendered["testvm-q35-non-transitional"], node="node01")
    cluster.put(objects.launcher_pod(stack.vmi, "node02", name="virt-launcher-testvm-target"))
    cluster.set_domain("default", "virt-launcher-testvm-target", "default_testvm", "<domain/>")
    cluster.mutate("vmi", "testvm", lambda o: o["status"].update(migrationState={
        "sourceState": {"pod": stack.pod["metadata"]["name"], "node": "node01"},
        "targetState": {"pod": "virt-launcher-testvm-target", "node": "node02"}, "completed": False}), "default")
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert cluster.exec_log[-1].pod == stack.pod["metadata"]["name"]
    warn = [f["message"] for f in doc["findings"] if f["severity"] == "warning" and "migration" in f["message"]]
    assert warn and "node01 -> node02" in warn[0] and stack.pod["metadata"]["name"] in warn[0]


def test_live_migration_warns_even_when_the_source_pod_is_gone(run_plugin, cluster, rendered):
    put_running(cluster, rendered["testvm-q35-non-transitional"], node="node01")
    cluster.mutate("vmi", "testvm", lambda o: o["status"].update(migrationState={
        "sourceState": {"pod": "virt-launcher-testvm-vanished", "node": "node07"},
        "targetState": {"node": "node02"}}), "default")
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert any(f["severity"] == "warning" and "migration in progress (node07 -> node02)" in f["message"]
               and "not found" in f["message"] for f in doc["findings"])
    assert statuses(doc)[("disk", "containerdisk")]["status"] == "match"


# --- VMI and pod phases without a domain: a prediction, exit 0, no exec -------------------------

@pytest.mark.parametrize("vmi_phase,pod_phase,needle", [
    ("Scheduling", "Pending", "VMI testvm is Scheduling: no domain yet"),
    ("Scheduled", "Running", "VMI testvm is Scheduled: no domain yet"),
    ("Succeeded", "Succeeded", "VMI testvm is Succeeded: its domain is gone"),
    ("Failed", "Failed", "VMI testvm is Failed: its domain is gone"),
    ("Running", "Pending", "is Pending: no domain to read yet"),
])
def test_transitional_phases_are_predicted(run_plugin, cluster, rendered, vmi_phase, pod_phase, needle):
    put_running(cluster, rendered["testvm-q35-non-transitional"], vmi_kwargs={"phase": vmi_phase},
                pod_kwargs={"phase": pod_phase})
    doc, r = explain_json(run_plugin, cluster, "testvm")
    assert not cluster.exec_log and not [x for x in cluster.request_log() if x.is_exec]
    assert any(needle in f["message"] for f in doc["findings"]), doc["findings"]
    st = statuses(doc)
    assert st[("disk", "containerdisk")]["status"] == "predicted" and st[("disk", "containerdisk")]["expected"] == NT
    if vmi_phase in ("Succeeded", "Failed"):
        assert doc["useVirtioTransitional"]["live"] is None and doc["restartRequired"] is False
    if vmi_phase != "Running":
        assert not [x for x in cluster.request_log() if x.resource == "pods"]   # nothing to list
    r = run_plugin("dumpxml", "testvm", env=cluster.env())
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "no domain XML" in r.stderr, r.stderr
    assert not cluster.exec_log


# --- virsh's own message --------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["explain", "dumpxml"])
def test_virsh_failure_is_reported_with_its_own_message(run_plugin, cluster, rendered, command):
    stack = put_running(cluster, rendered["testvm-q35-non-transitional"])
    cluster.virsh("default", stack.pod["metadata"]["name"]).domains.clear()   # the domain is not there
    r = run_plugin(command, "testvm", env=cluster.env())
    # dumpxml fails; explain degrades to the prediction and says why, as for a forbidden exec
    lead = "error: " if command == "dumpxml" else "warning: "
    assert r.returncode == (1 if command == "dumpxml" else 0) and r.stderr.startswith(lead), r.stderr
    assert "error: failed to get domain 'default_testvm'" in r.stderr
    assert "dumpxml default_testvm" in r.stderr and stack.pod["metadata"]["name"] in r.stderr
    assert len(cluster.exec_log) == 1   # the connection worked: the other URI is not tried


# --- timeouts: --request-timeout bounds REST requests, the exec handshake and the exec ------------

def timed(run_plugin, *args, env):
    start = time.monotonic()
    r = run_plugin(*args, env=env, timeout=30)
    return r, time.monotonic() - start


def test_slow_api_answer_times_out_naming_the_request(run_plugin, cluster, rendered):
    put_running(cluster, rendered["testvm-q35-non-transitional"])
    cluster.inject_delay("/virtualmachineinstances/testvm", 20, method="GET", times=3)
    r, took = timed(run_plugin, "explain", "testvm", "--request-timeout", "1", env=cluster.env())
    assert r.returncode == 1 and r.stderr.startswith("error: "), r.stderr
    assert "did not answer `get virtualmachineinstances.kubevirt.io testvm` in namespace default within 1s" \
        in r.stderr, r.stderr
    assert "--request-timeout" in r.stderr and "Traceback" not in r.stderr
    assert took < 10
    cluster.release_pauses()
    # one attempt only: a retry would double the wall time of every timeout
    assert len(cluster.request_log(path_prefix="/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances")) == 1


def test_exec_handshake_that_hangs_times_out(run_plugin, cluster, rendered):
    stack = put_running(cluster, rendered["testvm-q35-non-transitional"])
    cluster.exec_handshake_delay = 20
    r, took = timed(run_plugin, "explain", "testvm", "--request-timeout", "1", "-o", "json", env=cluster.env())
    # the prediction still stands: a warning, the reason in the findings, exit 0
    assert r.returncode == 0 and r.stderr.startswith("warning: "), r.stderr
    doc = json.loads(r.stdout)
    assert statuses(doc)[("disk", "containerdisk")]["status"] == "predicted"
    assert any("WebSocket handshake" in f["message"] for f in doc["findings"])
    r, took = timed(run_plugin, "dumpxml", "testvm", "--request-timeout", "1", env=cluster.env())
    assert r.returncode == 1 and r.stderr.startswith("error: "), r.stderr
    assert "did not complete the exec WebSocket handshake (create pods/exec for pod %s in namespace default) " \
           "within 1s" % stack.pod["metadata"]["name"] in r.stderr, r.stderr
    assert took < 10


@pytest.mark.parametrize("command", ["explain", "dumpxml"])
def test_exec_that_hangs_times_out(run_plugin, cluster, rendered, command):
    stack = put_running(cluster, rendered["testvm-q35-non-transitional"])
    cluster.exec_delay = 20
    r, took = timed(run_plugin, command, "testvm", "--request-timeout", "1.5", env=cluster.env())
    if command == "dumpxml":
        assert r.returncode == 1 and r.stderr.startswith("error: "), r.stderr
    else:  # explain: the prediction, with a warning that names what did not finish
        assert r.returncode == 0 and r.stderr.startswith("warning: ") and "predicted" in r.stdout, r.stderr
    # explain degrades to the prediction with a warning that says why; dumpxml fails
    assert r.returncode == (0 if command == "explain" else 1), r.stderr
    assert r.stderr.startswith("warning: " if command == "explain" else "error: "), r.stderr
    assert "`virsh -c %s dumpxml default_testvm` in pod %s (container compute) did not finish within 1.5s" % (
        NONROOT_URI, stack.pod["metadata"]["name"]) in r.stderr, r.stderr
    assert took < 10
    assert len(cluster.exec_log) == 1   # a timeout is not retried with the other URI


def test_handshake_body_is_the_status_after_the_last_separator():
    from kubectl_virtio.cluster import _handshake_body

    status = '{"kind":"Status","message":"pods \\"p\\" is forbidden: User \\"u\\" cannot create"}'
    headers = "{'content-type': 'application/json', 'x-id': '1'}"
    # websocket-client >= 1.8 decodes the body; older releases print a bytes literal
    assert json.loads(_handshake_body("Handshake status 403 Forbidden -+-+- %s -+-+- %s" % (headers, status)))[
        "message"].startswith('pods "p" is forbidden')
    old = _handshake_body("Handshake status 403 Forbidden -+-+- %s -+-+- %r" % (headers, status.encode()))
    assert json.loads(old)["message"].startswith('pods "p" is forbidden')
    assert _handshake_body("Handshake status 500 Internal Server Error -+-+- %s -+-+- None" % headers) == ""


# --- preferences ----------------------------------------------------------------------------------

def template_with_busless_disk():
    spec = objects.testvm_template_spec()
    spec["domain"]["devices"]["disks"].append({"name": "datadisk", "disk": {}})   # bus from the preference
    spec["volumes"].append({"name": "datadisk", "emptyDisk": {"capacity": "1Gi"}})
    return spec


def test_preference_applies_even_when_the_template_sets_the_flag(run_plugin, cluster):
    """The template's explicit flag wins, but the preference still decides preferredDiskBus."""
    pref = objects.cluster_preference("linux.virtio", disk_bus="virtio", use_virtio_transitional=False)
    rev = objects.preference_revision_name("testvm", pref)
    vm = cluster.put(objects.vm("testvm", run_strategy="Halted", template_spec=template_with_busless_disk(),
                                use_virtio_transitional=True, preference="linux.virtio", preference_revision=rev))
    cluster.put(pref, objects.controller_revision(rev, "default", data=pref, owner_vm=vm))
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert doc["useVirtioTransitional"] == {"effective": True, "origin": "vm", "live": None}
    d = statuses(doc)[("disk", "datadisk")]
    assert (d["bus"], d["expected"], d["status"]) == ("virtio", T, "predicted"), d
    assert any(r.resource == "controllerrevisions" for r in economy(cluster))


def test_preference_from_the_cluster_preference_object(run_plugin, cluster, rendered):
    """No revision recorded: the VirtualMachineClusterPreference itself (kind in any case)."""
    pref = cluster.put(objects.cluster_preference("linux.virtiotransitional", use_virtio_transitional=True))
    put_running(cluster, rendered["testvm-q35-transitional"],
                vm_kwargs={"preference": "linux.virtiotransitional",
                           "preference_kind": "virtualmachineclusterpreference"},
                vmi_kwargs={"use_virtio_transitional": True})
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    assert doc["useVirtioTransitional"] == {"effective": True, "origin": "preference", "live": True}
    assert all(statuses(doc)[k]["status"] == "match" for k in FLAGGED)
    log = economy(cluster)
    assert [r.path for r in log if "preferences" in r.path] == [
        "/apis/instancetype.kubevirt.io/v1beta1/virtualmachineclusterpreferences/" + pref["metadata"]["name"]]


def test_namespaced_preference(run_plugin, cluster, rendered):
    cluster.put(objects.preference("legacy", "prod", use_virtio_transitional=True, interface_model="virtio"),
                objects.cluster_preference("legacy", use_virtio_transitional=False))   # same name, other scope
    put_running(cluster, rendered["testvm-q35-transitional"], ns="prod",
                vm_kwargs={"preference": "legacy", "preference_kind": "VirtualMachinePreference"},
                vmi_kwargs={"use_virtio_transitional": True})
    doc, _ = explain_json(run_plugin, cluster, "testvm", "-n", "prod")
    assert doc["useVirtioTransitional"] == {"effective": True, "origin": "preference", "live": True}
    log = economy(cluster)
    assert [r.path for r in log if "preferences" in r.path] == [
        "/apis/instancetype.kubevirt.io/v1beta1/namespaces/prod/virtualmachinepreferences/legacy"]


def test_preference_forbidden_degrades_with_a_warning(run_plugin, cluster, rendered):
    cluster.add_user("no-revisions", [Rule(READ, ("kubevirt.io",)), Rule(READ, ("",), ("pods",)),
                                      Rule(("create", "get"), ("",), ("pods/exec",))])
    pref = objects.cluster_preference("linux.virtiotransitional", use_virtio_transitional=True)
    rev = objects.preference_revision_name("testvm", pref)
    stack = put_running(cluster, rendered["testvm-q35-transitional"],
                        vm_kwargs={"preference": "linux.virtiotransitional", "preference_revision": rev},
                        vmi_kwargs={"use_virtio_transitional": True})
    cluster.put(pref, objects.controller_revision(rev, "default", data=pref, owner_vm=stack.vm))
    doc, r = explain_json(run_plugin, cluster, "testvm", user="no-revisions")
    # the running VMI's value (what KubeVirt applied from that preference) is the best guess: no made-up drift
    assert doc["useVirtioTransitional"] == {"effective": True, "origin": "unknown", "live": True}
    assert doc["restartRequired"] is False
    warn = " ".join(f["message"] for f in doc["findings"] if f["severity"] == "warning")
    assert "ControllerRevision %s" % rev in warn and "get controllerrevisions.apps in namespace default" in warn
    assert statuses(doc)[("disk", "containerdisk")]["model"] == T     # the live XML is still read
    economy(cluster)


def test_infer_from_volume_without_a_name_lists_nothing(run_plugin, cluster):
    vm = objects.vm("testvm", run_strategy="Halted")
    vm["spec"]["preference"] = {"inferFromVolume": "containerdisk"}
    cluster.put(vm)
    doc, _ = explain_json(run_plugin, cluster, "testvm")
    # no preference is read, and nothing is listed but the KubeVirt CR (for the release)
    assert not [r for r in cluster.request_log()
                if "preference" in r.path or (r.verb == "list" and r.resource != "kubevirts")]
    assert any("inferred from volume containerdisk" in f["message"] for f in doc["findings"])
    assert doc["useVirtioTransitional"]["origin"] == "unknown"


def test_rare_auth_path_modules_are_not_imported(run_plugin, cluster, rendered):
    """bench/explain: `kubernetes` imports requests, requests_oauthlib, oauthlib.oauth2,
    dateutil.parser and websocket-client at module level for OIDC refresh, typed models and
    its own exec only; the plugin defers them (cluster._import_client) and the live path
    never needs them."""
    put_running(cluster, rendered["testvm-q35-non-transitional"])
    r = run_plugin("explain", "testvm", env=cluster.env(PYTHONPROFILEIMPORTTIME="1"))
    assert r.returncode == 0, r.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "kubernetes.config.kube_config" in imported
    # the exec speaks its WebSocket itself: websocket-client only for an exec through a proxy
    assert not imported & {"requests", "requests_oauthlib", "oauthlib.oauth2", "charset_normalizer",
                           "dateutil.parser", "websocket", "kubernetes.stream.ws_client"}


# --- explain's Run with a fake adapter (no subprocess) --------------------------------------------

def run_explain(fake, *args):
    import io

    from kubectl_virtio import cli
    from kubectl_virtio.cmdline import Streams, build_parser

    opts = cli.ExplainOptions.complete(build_parser().parse_args(["explain", *args, "-o", "json"]))
    opts.validate()
    out, err = io.StringIO(), io.StringIO()
    assert opts.run(fake, Streams(out, err)) == 0
    return json.loads(out.getvalue()), err.getvalue()


def test_explain_run_with_a_fake_adapter():
    from fake_cluster import ExecFake

    stack = objects.running_vm("testvm", vmi_kwargs={"image": objects.launcher_image("v1.6.4")})
    xml = (pathlib.Path(__file__).parent.parent / "examples" / "testvm.dumpxml.xml").read_text()
    fake = ExecFake(*stack, xml=xml)
    doc, err = run_explain(fake, "testvm")
    assert doc["kubevirtVersion"] == {"version": "v1.6.4", "source": "vmi-launcher-image"} and err == ""
    assert statuses(doc)[("disk", "containerdisk")]["status"] == "match"
    assert [c for c in fake.calls if c[0] == "exec"][0][3][:3] == ("virsh", "-c", NONROOT_URI)
    # any adapter error from the exec: the prediction, a warning finding and a warning line
    from kubectl_virtio.cluster import Timeout

    fake = ExecFake(*stack, error=Timeout("`virsh` did not finish within 1s", "raise --request-timeout"))
    doc, err = run_explain(fake, "testvm")
    assert statuses(doc)[("disk", "containerdisk")]["status"] == "predicted"
    assert err.startswith("warning: ") and "did not finish" in err
    assert any("no live XML" in f["message"] and f["severity"] == "warning" for f in doc["findings"])
