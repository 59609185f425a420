"""The cluster adapter against the tests' API server, where a real cluster differs from a
friendly one: kubelet exec failures, split characters, endless output, a cluster without
KubeVirt, RBAC verbs, slow and malformed answers, hostile names, secrets.

Most tests run the installed plugin as a subprocess; the hostile-path test drives
`kubectl_virtio.cluster.Cluster` in-process against the same server (no monkeypatching).
"""
import json
import os
import time

import pytest
import yaml

from apiserver import objects
from apiserver.kubeconfig import PLANTED
from apiserver.rbac import READ, Rule

NONROOT_URI = "qemu+unix:///session?socket=/var/run/libvirt/virtqemud-sock"


def running(cluster, name="testvm", ns="default", xml=None, **kw):
    stack = cluster.add_running_vm(name, ns, **kw)
    pod = stack.pod["metadata"]["name"]
    if xml is not None:
        cluster.set_domain(ns, pod, "%s_%s" % (ns, name), xml)
    return stack, pod


def clean(r):
    """No traceback, no Python exception name, no planted secret."""
    text = r.stdout + r.stderr
    assert "Traceback" not in text and "Error:" not in text.replace("error:", ""), text
    assert "ValueError" not in text and "internal error" not in text, text
    assert PLANTED not in text


def findings(r):
    return " ".join(f["message"] for f in json.loads(r.stdout)["findings"])


# --- exec: the status channel ------------------------------------------------------------------

def test_kubelet_internal_error_is_passed_on(run_plugin, cluster):
    """The runtime cannot start virsh: the status is InternalError with a text cause (the
    client's returncode did int() on it: `ValueError: invalid literal for int()`)."""
    _, pod = running(cluster)
    cluster.exec_outcome = "internal-error"
    r = run_plugin("dumpxml", "testvm", env=cluster.env())
    assert r.returncode == 1 and r.stderr.startswith("error: the kubelet could not run `virsh"), r.stderr
    assert 'exec: "virsh": executable file not found in $PATH' in r.stderr and pod in r.stderr
    clean(r)
    r = run_plugin("explain", "testvm", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert "no live XML: the kubelet could not run" in findings(r)
    assert {d["status"] for d in json.loads(r.stdout)["devices"]} == {"predicted"}
    clean(r)


def test_exec_stream_without_status_is_an_error_not_a_result(run_plugin, cluster):
    running(cluster)
    cluster.exec_outcome = "drop"
    r = run_plugin("dumpxml", "testvm", env=cluster.env())
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert "the exec stream ended before virsh finished" in r.stderr
    clean(r)
    r = run_plugin("explain", "testvm", "-o", "json", env=cluster.env())
    assert r.returncode == 0 and "the exec stream ended before virsh finished" in findings(r)


def test_exit_status_and_the_other_side_of_the_switch(run_plugin, cluster):
    """exec_outcome "exit" (the default): the domain comes back whole, exit 0."""
    stack, pod = running(cluster)
    r = run_plugin("dumpxml", "testvm", env=cluster.env())
    assert r.returncode == 0 and r.stdout == cluster.virsh("default", pod).domains["default_testvm"]


def test_multibyte_text_split_across_4k_frames(run_plugin, cluster):
    """A hook sidecar's German <description>: with 4 KiB frames some 2-byte characters are
    split between two frames; decoding each frame alone turned them into U+FFFD."""
    xml = objects.minimal_domain_xml("default", "testvm")
    head = xml.index("<memory")
    for pad in range(64):     # shift the text until a 4 KiB boundary falls inside a character
        text = "x" * pad + "Prüfumgebung für Übergänge, größer " * 300
        candidate = xml[:head] + "<description>%s</description>\n  " % text + xml[head:]
        data = candidate.encode()
        if data[4096] & 0xC0 == 0x80:
            xml = candidate
            break
    else:
        pytest.fail("the fixture must split characters at the 4 KiB boundaries")
    cluster.exec_chunk_size = 4096
    running(cluster, xml=xml)
    r = run_plugin("dumpxml", "testvm", env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert "\ufffd" not in r.stdout and r.stdout == xml


def test_endless_output_is_capped(run_plugin, cluster):
    running(cluster)
    cluster.exec_outcome = "endless"
    start = time.monotonic()
    r = run_plugin("dumpxml", "testvm", env=cluster.env(), timeout=120)
    assert r.returncode == 1 and "wrote more than 8 MiB: stopped" in r.stderr, r.stderr[-500:]
    assert r.stdout == ""
    clean(r)
    assert time.monotonic() - start < 60


def test_endless_output_in_small_frames_is_stopped_by_the_deadline(run_plugin, cluster):
    """Frames keep coming (16 bytes each, far below the cap within a second): the client's
    run_forever never got back to its deadline; the watchdog does."""
    _, pod = running(cluster)
    cluster.exec_outcome = "endless"
    cluster.exec_chunk_size = 16
    start = time.monotonic()
    r = run_plugin("dumpxml", "testvm", "--request-timeout", "1", env=cluster.env(), timeout=120)
    assert r.returncode == 1, r.stderr
    assert "in pod %s (container compute) did not finish within 1s" % pod in r.stderr, r.stderr
    assert time.monotonic() - start < 30
    clean(r)


def test_half_a_domain_then_success_is_not_printed(run_plugin, cluster):
    xml = objects.minimal_domain_xml("default", "testvm")
    running(cluster, xml=xml[: len(xml) // 2])
    r = run_plugin("dumpxml", "testvm", env=cluster.env())
    assert r.returncode == 1 and r.stdout == "" and "did not return a whole domain XML" in r.stderr, r.stderr
    clean(r)


def test_half_a_domain_then_success_leaves_explain_with_the_prediction(run_plugin, cluster):
    xml = objects.minimal_domain_xml("default", "testvm")
    running(cluster, xml=xml[: len(xml) // 2])
    r = run_plugin("explain", "testvm", "-o", "json", env=cluster.env())
    assert r.returncode == 0 and r.stderr.startswith("warning: "), r.stderr
    doc = json.loads(r.stdout)
    assert any(f["message"].startswith("no live XML: ") and "whole" in f["message"] for f in doc["findings"]), \
        doc["findings"]
    assert {d["status"] for d in doc["devices"]} <= {"predicted", "not-virtio"}, doc["devices"]
    clean(r)


# --- exec: RBAC ------------------------------------------------------------------------------

READER = [Rule(READ, ("kubevirt.io", "apps", "instancetype.kubevirt.io")), Rule(READ, ("",), ("pods",))]


@pytest.mark.parametrize("authz,verbs,ok", [
    ("get", ("get",), True),            # before Kubernetes 1.35: the GET upgrade is authorized as get
    ("get", ("create",), False),
    ("both", ("get",), False),          # from 1.35 on: get and create
    ("both", ("create",), False),
    ("both", ("get", "create"), True),
    ("create", ("create",), True),
])
def test_exec_authorization_verbs(run_plugin, cluster, authz, verbs, ok):
    cluster.exec_authz = authz
    cluster.add_user("execer", READER + [Rule(verbs, ("",), ("pods/exec",))])
    running(cluster)
    r = run_plugin("dumpxml", "testvm", env=cluster.env(user="execer"))
    if ok:
        assert r.returncode == 0 and "<domain" in r.stdout, r.stderr
        return
    assert r.returncode == 1 and "forbidden" in r.stderr
    assert "ask for RBAC permission to get and create pods/exec in namespace default" in r.stderr
    clean(r)


def test_rbac_hints_name_the_verbs_a_cluster_checks(run_plugin, cluster):
    cluster.put(objects.vm("testvm"))
    r = run_plugin("list", "-A", env=cluster.env(user="ns-viewer"))
    assert r.returncode == 1 and "list virtualmachines.kubevirt.io" in r.stderr, r.stderr
    r = run_plugin("set-transitional", "testvm", env=cluster.env(user="viewer"))
    assert r.returncode == 1 and "patch virtualmachines.kubevirt.io" in r.stderr, r.stderr
    running(cluster, "runvm")
    r = run_plugin("set-transitional", "runvm", "--restart", env=cluster.env(user="norestart"))
    assert r.returncode == 1 and "update virtualmachines/restart.subresources.kubevirt.io" in r.stderr, r.stderr


# --- a cluster that does not serve KubeVirt -----------------------------------------------------

KUBEVIRT_GROUPS = {"kubevirt.io", "subresources.kubevirt.io", "instancetype.kubevirt.io"}


@pytest.mark.parametrize("args", [["explain", "testvm"], ["dumpxml", "testvm"], ["list"], ["list", "-A"],
                                  ["set-transitional", "testvm"]])
def test_kubevirt_not_installed(run_plugin, cluster, args):
    cluster.unserved_groups = set(KUBEVIRT_GROUPS)
    r = run_plugin(*args, env=cluster.env())
    assert r.returncode == 1, r.stderr
    assert "does not serve KubeVirt's API (kubevirt.io/v1): is KubeVirt installed? is this the right context?" \
        in r.stderr, r.stderr
    assert "Not Found" not in r.stderr and "check the name" not in r.stderr
    clean(r)
    # the other side: served, and no such VM
    cluster.unserved_groups = set()
    r = run_plugin(*args, env=cluster.env())
    assert "does not serve" not in r.stderr


def test_unserved_group_answers_like_the_real_server(cluster):
    import urllib.request
    import ssl

    cluster.unserved_groups = {"kubevirt.io"}
    ctx = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    req = urllib.request.Request(cluster.url + "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/x",
                                 headers={"Authorization": "Bearer " + cluster.token("admin")})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, context=ctx)
    assert e.value.code == 404 and e.value.headers["Content-Type"].startswith("text/plain")
    assert e.value.read() == b"404 page not found\n"


def test_preferences_not_served_degrade_with_a_warning(run_plugin, cluster):
    cluster.unserved_groups = {"instancetype.kubevirt.io"}
    running(cluster, vm_kwargs={"preference": "linux.virtiotransitional"})
    r = run_plugin("explain", "testvm", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert "does not serve virtualmachineclusterpreferences (instancetype.kubevirt.io/v1beta1)" in findings(r)


# --- retries, malformed and slow answers ---------------------------------------------------------

def test_reads_are_retried_on_429_with_retry_after(run_plugin, cluster):
    running(cluster)
    cluster.inject_error("/virtualmachines/testvm", 429, method="GET", retry_after=1, times=2)
    r = run_plugin("explain", "testvm", env=cluster.env())
    assert r.returncode == 0, r.stderr
    gets = [x for x in cluster.request_log(method="GET") if x.path.endswith("/virtualmachines/testvm")]
    assert [x.status for x in gets] == [429, 429, 200]
    assert gets[2].time - gets[0].time >= 1.9      # Retry-After: 1, honoured twice


def test_retries_are_bounded(run_plugin, cluster):
    running(cluster)
    cluster.inject_error("/virtualmachines/testvm", 503, method="GET", retry_after=1, times=100)
    r = run_plugin("explain", "testvm", env=cluster.env())
    assert r.returncode == 1 and "overloaded or unavailable (HTTP 503)" in r.stderr, r.stderr
    gets = [x for x in cluster.request_log(method="GET") if x.path.endswith("/virtualmachines/testvm")]
    assert len(gets) == 4      # one attempt and three retries
    clean(r)


def test_writes_are_never_retried(run_plugin, cluster):
    cluster.put(objects.vm("testvm"))
    cluster.inject_error("/virtualmachines/testvm", 503, method="PATCH", retry_after=1, times=5)
    r = run_plugin("set-transitional", "testvm", env=cluster.env())
    assert r.returncode == 1, r.stderr
    assert len(cluster.request_log(method="PATCH")) == 1
    clean(r)


@pytest.mark.parametrize("body,ctype,needle", [
    ("<html><body>Please log in</body></html>", "text/html", "with HTML"),
    ('{"kind": "VirtualMachine", "metadata": {"na', "application/json", "not a JSON object (truncated"),
    ('["a", "list"]', "application/json", "not a JSON object"),
])
def test_malformed_answers_name_the_request(run_plugin, cluster, body, ctype, needle):
    running(cluster)
    cluster.inject_raw("/virtualmachines/testvm", 200, body, content_type=ctype, method="GET", times=10)
    r = run_plugin("explain", "vm/testvm", env=cluster.env())
    assert r.returncode == 1 and needle in r.stderr, r.stderr
    assert "`get virtualmachines.kubevirt.io testvm` in namespace default" in r.stderr
    clean(r)


def test_a_trickling_body_is_cut_at_the_request_timeout(run_plugin, cluster):
    running(cluster)
    body = json.dumps(cluster.get("virtualmachines", "testvm"))
    cluster.inject_raw("/virtualmachines/testvm", 200, body, method="GET", trickle=0.5, times=5)
    start = time.monotonic()
    r = run_plugin("explain", "testvm", "--request-timeout", "2", env=cluster.env(), timeout=60)
    took = time.monotonic() - start
    cluster.release_pauses()
    assert r.returncode == 1, r.stderr
    assert "did not finish answering `get virtualmachines.kubevirt.io testvm` in namespace default within 2s" \
        in r.stderr, r.stderr
    assert took < 20


def with_server(cluster, url, **cluster_fields):
    doc = yaml.safe_load(open(cluster.kubeconfig_path))
    for c in doc["clusters"]:
        c["cluster"]["server"] = url
        c["cluster"].update(cluster_fields)
    path = os.path.join(cluster.tmp_path, "kubeconfig-other-server")
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


def test_a_stalled_tls_handshake_is_bounded(run_plugin, cluster, silent_listener):
    start = time.monotonic()
    r = run_plugin("explain", "testvm", "--request-timeout", "1", "--kubeconfig",
                   with_server(cluster, silent_listener.url), timeout=60)
    assert r.returncode == 1 and "did not answer" in r.stderr, r.stderr
    assert time.monotonic() - start < 20
    clean(r)


def test_insecure_skip_tls_verify_warns_once(run_plugin, cluster):
    running(cluster)
    doc = yaml.safe_load(open(cluster.kubeconfig_path))
    for c in doc["clusters"]:
        del c["cluster"]["certificate-authority-data"]
    path = with_server(cluster, cluster.url, **{"insecure-skip-tls-verify": True})
    r = run_plugin("explain", "testvm", "--kubeconfig", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning:") == 1 and "insecure-skip-tls-verify" in r.stderr, r.stderr
    assert "InsecureRequestWarning" not in r.stderr


# --- debug log -----------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["env", "flag"])
def test_debug_logs_each_request_without_headers(run_plugin, cluster, how):
    running(cluster)
    args = ["explain", "testvm"] + (["--debug"] if how == "flag" else [])
    r = run_plugin(*args, env=cluster.env(**({"KUBECTL_VIRTIO_DEBUG": "1"} if how == "env" else {})))
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("kubectl-virtio: ")]
    assert any(x.startswith("kubectl-virtio: GET /apis/kubevirt.io/v1/namespaces/default/virtualmachines/testvm"
                            " -> 200 (") for x in lines), r.stderr
    assert any("/exec -> 101 (" in x for x in lines), r.stderr
    assert len(lines) == cluster.api_request_count()
    assert "Bearer" not in r.stderr and "uthorization" not in r.stderr
    clean(r)
    quiet = run_plugin("explain", "testvm", env=cluster.env())
    assert "kubectl-virtio: GET" not in quiet.stderr


# --- secrets -------------------------------------------------------------------------------------

def test_tokens_with_a_trailing_newline_are_trimmed(run_plugin, cluster, tmp_path):
    """A tokenFile written by `echo` and a YAML block scalar: kubectl trims both and works; the
    header with the newline used to fail and print `Bearer <token>`."""
    running(cluster)
    token = cluster.token("admin")
    doc = yaml.safe_load(open(cluster.kubeconfig_path))
    (tmp_path / "token").write_text(token + "\n")
    for variant in ({"tokenFile": str(tmp_path / "token")}, {"token": token + "\n"}):
        for u in doc["users"]:
            u["user"] = dict(variant)
        path = tmp_path / "kc-trailing-newline"
        path.write_text(yaml.safe_dump(doc))
        r = run_plugin("explain", "testvm", "--kubeconfig", str(path))
        assert r.returncode == 0, r.stderr
        clean(r)


@pytest.mark.parametrize("user", [
    {"token": ["admin-token-" + PLANTED], "password": "pw-" + PLANTED},
    {"token": "x", "exec": "run-me-" + PLANTED, "password": "pw-" + PLANTED},
    {"client-key-data": 12, "password": "pw-" + PLANTED, "username": ["u"]},
    "token-" + PLANTED,
    ["password", "pw-" + PLANTED],
    # the client logs this one (logging.error) naming the entry by its whole dict
    {"exec": {"command": "x", "apiVersion": "client.authentication.k8s.io/v1", "env": [{"name": "a"}]},
     "password": "pw-" + PLANTED},
    {"tokenFile": {"path": "token-" + PLANTED}},
])
def test_invalid_kubeconfig_user_never_prints_its_secrets(run_plugin, cluster, tmp_path, user):
    cluster.put(objects.vm("testvm"))
    doc = yaml.safe_load(open(cluster.kubeconfig_path))
    for u in doc["users"]:
        u["user"] = user
    path = tmp_path / "kc-malformed-user"
    path.write_text(yaml.safe_dump(doc))
    for extra in ([], ["--debug"]):
        r = run_plugin("explain", "testvm", "--kubeconfig", str(path), *extra)
        assert r.returncode == 1, r.stderr
        assert PLANTED not in r.stdout + r.stderr.split("Traceback")[0], r.stderr


def test_the_secret_check_would_catch_a_leak():
    """The session check in conftest.py is real: a record that shows the marker is reported."""
    from conftest import planted_secret_leaks

    records = [("t1", ("explain",), "ok", ""), ("t2", ("explain", "--debug"), "", "Bearer admin-token-" + PLANTED)]
    assert planted_secret_leaks(records, PLANTED) == [("t2", ("explain", "--debug"))]


# --- paths: no value changes which object a request goes to --------------------------------------

HOSTILE = ["../../../../apis/kubevirt.io/v1/namespaces/other/virtualmachines/y-1?x=", "other/virtualmachines/y-1",
           "..", ".", "a b", "x#frag", "x?dryRun=All", "%2e%2e", "other%2Fvirtualmachines%2Fy-1", "Default"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_namespace_or_name_cannot_redirect_a_write(cluster, hostile):
    from kubectl_virtio.cluster import Cluster, ClusterError

    cluster.put(objects.vm("y-1", "other"), objects.vm("x-1", "default"))
    before = {(ns, n): cluster.get("virtualmachines", n, ns)["metadata"]["resourceVersion"]
              for ns, n in (("other", "y-1"), ("default", "x-1"))}
    c = Cluster(kubeconfig=cluster.kubeconfig_path)
    patch = {"spec": {"template": {"spec": {"domain": {"devices": {"useVirtioTransitional": True}}}}}}
    for ns, name in ((hostile, "x-1"), ("default", hostile)):
        start = len(cluster.request_log())
        with pytest.raises(ClusterError):
            c.patch_vm(ns, name, patch)
        with pytest.raises(ClusterError):
            c.restart_vm(ns, name)
        assert c.get_vm(ns, name) is None
        for rec in cluster.request_log()[start:]:
            # the hostile value arrived as exactly one path segment
            assert (rec.namespace, rec.name) == (ns, name), rec
            assert "?" not in rec.raw_path and "#" not in rec.raw_path
            assert rec.query in ("", "dryRun=All") or "dryRun" not in rec.query
    after = {(ns, n): cluster.get("virtualmachines", n, ns)["metadata"]["resourceVersion"]
             for ns, n in (("other", "y-1"), ("default", "x-1"))}
    assert after == before and not cluster.restarts
