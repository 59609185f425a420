"""The installed plugin against tests/apiserver: `list` and `explain` read one resolved
context (same flag, origin, live flag and restart for every VM), the cluster's KubeVirt
release decides the rules, input is checked before any request, kubectl's flag conventions,
and Ctrl-C."""
import json
import signal
import subprocess
import time

import pytest

from conftest import interactive_popen
from apiserver import objects
from test_live import rendered  # noqa: F401 - the fixture: domains as real libvirt renders them


def explain_json(run_plugin, cluster, name, *args, user="admin"):
    r = run_plugin("explain", name, "-o", "json", *args, env=cluster.env(user=user))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout), r


def running(cluster, domains, name, **kw):
    """A running VM whose domain XML is the one libvirt renders for its VMI's flag."""
    stack = cluster.add_running_vm(name, **kw)
    flag = bool(stack.vmi["spec"]["domain"]["devices"].get("useVirtioTransitional"))
    xml = domains["testvm-q35-transitional" if flag else "testvm-q35-non-transitional"]
    cluster.set_domain("default", stack.pod["metadata"]["name"], "default_" + name,
                       xml.replace("<name>default_testvm</name>", "<name>default_%s</name>" % name))
    return stack


def mixed_fleet(cluster, domains):
    """VM-set, preference-set (plural and lower-case kinds, a frozen revision), default and
    restart-pending VMs, running and not."""
    legacy = objects.cluster_preference("legacy", use_virtio_transitional=True)
    modern = objects.cluster_preference("modern", use_virtio_transitional=False)
    mine = objects.preference("mine", "default", use_virtio_transitional=True)
    cluster.put(legacy, modern, mine)
    halted = {"run_strategy": "Halted"}
    cluster.put(objects.vm("vm-true", use_virtio_transitional=True, **halted))
    cluster.put(objects.vm("vm-false", use_virtio_transitional=False, preference="legacy", **halted))
    cluster.put(objects.vm("pref-plural", preference="legacy", preference_kind="virtualmachineclusterpreferences",
                           **halted))
    cluster.put(objects.vm("pref-lower-ns", preference="mine", preference_kind="virtualmachinepreference",
                           **halted))
    cluster.put(objects.vm("pref-false", preference="modern", preference_kind="VirtualMachineClusterPreferences",
                           **halted))
    cluster.put(objects.vm("default-vm", **halted))
    # running, its preference frozen in a revision; the VMI has what the preference gave
    rev = objects.preference_revision_name("pref-running", legacy)
    stack = running(cluster, domains, "pref-running", vm_kwargs={"preference": "legacy", "preference_revision": rev},
                                   vmi_kwargs={"use_virtio_transitional": True})
    cluster.put(objects.controller_revision(rev, "default", data=legacy, owner_vm=stack.vm))
    # running with false, the template now asks for true: KubeVirt says RestartRequired
    running(cluster, domains, "restart-cond", vm_kwargs={"use_virtio_transitional": True, "restart_required": True},
                           vmi_kwargs={"use_virtio_transitional": False})
    # the same before KubeVirt noticed (no condition yet)
    running(cluster, domains, "restart-fresh", vm_kwargs={"use_virtio_transitional": True},
                           vmi_kwargs={"use_virtio_transitional": False})
    # running as its template says
    running(cluster, domains, "steady", vm_kwargs={"preference": "legacy",
                                                "preference_kind": "VirtualMachineClusterPreference"},
                           vmi_kwargs={"use_virtio_transitional": True})


EXPECTED = {  # name: (effective, origin, live, restartRequired)
    "vm-true": (True, "vm", None, False),
    "vm-false": (False, "vm", None, False),
    "pref-plural": (True, "preference", None, False),
    "pref-lower-ns": (True, "preference", None, False),
    "pref-false": (False, "preference", None, False),
    "default-vm": (False, "default", None, False),
    "pref-running": (True, "preference", True, False),
    "restart-cond": (True, "vm", False, True),
    "restart-fresh": (True, "vm", False, True),
    "steady": (True, "preference", True, False),
}


def test_list_and_explain_agree_on_every_vm_of_a_mixed_fleet(run_plugin, cluster, rendered):
    mixed_fleet(cluster, rendered)
    r = run_plugin("list", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stderr
    listed = {i["vm"]["name"]: i for i in json.loads(r.stdout)["items"]}
    assert set(listed) == set(EXPECTED)
    # one read per distinct preference object, never one per VM (and no revision reads)
    reads = [x for x in cluster.request_log() if "preference" in x.path or x.resource == "controllerrevisions"]
    assert sorted(x.path.rsplit("/", 1)[-1] for x in reads) == ["legacy", "mine", "modern"]
    for name, want in EXPECTED.items():
        doc, _ = explain_json(run_plugin, cluster, name)
        explained = doc["useVirtioTransitional"]
        flag = listed[name]["useVirtioTransitional"]
        got_list = (flag["effective"], flag["origin"], flag["live"], listed[name]["restartRequired"])
        got_explain = (explained["effective"], explained["origin"], explained["live"], doc["restartRequired"])
        assert got_list == got_explain == want, name
        assert listed[name]["kubevirtVersion"] == doc["kubevirtVersion"]["version"]


def test_the_centos6_preference_vm_is_not_at_risk_in_list(run_plugin, cluster, rendered):
    """The issue's case: a CentOS 6 VM whose cluster preference sets the flag is healthy."""
    cluster.put(objects.cluster_preference("centos.6", use_virtio_transitional=True))
    running(cluster, rendered, "centos6", vm_kwargs={"preference": "centos.6", "preference_kind":
                                                 "virtualmachineclusterpreferences",
                                                 "annotations": {"vm.kubevirt.io/os": "centos6.10"}},
                           vmi_kwargs={"use_virtio_transitional": True})
    r = run_plugin("list", "--check", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stdout + r.stderr
    item = json.loads(r.stdout)["items"][0]
    assert item["useVirtioTransitional"] == {"effective": True, "origin": "preference", "live": True}
    assert item["restartRequired"] is False and item["risks"] == []


# --- the cluster's KubeVirt release ----------------------------------------------------------------

def test_a_vm_on_a_v1_6_4_cluster_is_explained_with_v1_6_4s_rules(run_plugin, cluster):
    image = objects.launcher_image("v1.6.4")
    cluster.add_running_vm("old", vmi_kwargs={"image": image})
    cluster.put(objects.kubevirt_cr("v1.9.0"))   # the VMI's own launcher decides, not the CR
    doc, r = explain_json(run_plugin, cluster, "old")
    assert doc["kubevirtVersion"] == {"version": "v1.6.4", "source": "vmi-launcher-image"}
    assert not [x for x in cluster.request_log() if x.resource == "kubevirts"]
    r = run_plugin("explain", "old", env=cluster.env())
    assert r.returncode == 0 and "KubeVirt rules: v1.6.4 (from the VMI's launcher image)" in r.stdout, r.stdout
    r = run_plugin("list", "-o", "json", env=cluster.env())
    assert json.loads(r.stdout)["items"][0]["kubevirtVersion"] == "v1.6.4"
    # --kubevirt-version overrides
    doc, _ = explain_json(run_plugin, cluster, "old", "--kubevirt-version", "v1.2.0")
    assert doc["kubevirtVersion"] == {"version": "v1.2.0", "source": "flag"}
    r = run_plugin("list", "-o", "json", "--kubevirt-version", "v1.2.0", env=cluster.env())
    assert json.loads(r.stdout)["items"][0]["kubevirtVersion"] == "v1.2.0"


def test_a_stopped_vm_reads_the_kubevirt_cr_where_readable(run_plugin, cluster):
    cluster.put(objects.vm("halted", run_strategy="Halted"), objects.kubevirt_cr("v1.6.4"))
    doc, _ = explain_json(run_plugin, cluster, "halted")
    assert doc["kubevirtVersion"] == {"version": "v1.6.4", "source": "kubevirt-cr"}
    # a namespace user may not list KubeVirt CRs: silent, the newest rules, no error
    doc, r = explain_json(run_plugin, cluster, "halted", user="ns-viewer")
    assert doc["kubevirtVersion"]["source"] == "newest-known"
    assert any(x.resource == "kubevirts" and x.status == 403 for x in cluster.request_log())
    assert "kubevirts" not in r.stderr and not any("KubeVirt CR" in f["message"] for f in doc["findings"])


def test_a_digest_names_no_release_and_a_newer_release_is_warned(run_plugin, cluster):
    digest = "quay.io/kubevirt/virt-launcher@sha256:" + "ab" * 32
    cluster.add_running_vm("pinned", vmi_kwargs={"image": digest})
    doc, _ = explain_json(run_plugin, cluster, "pinned")
    assert doc["kubevirtVersion"]["source"] == "newest-known"
    assert any("digest" in f["message"] and f["severity"] == "warning" for f in doc["findings"])
    cluster.add_running_vm("future", vmi_kwargs={"image": objects.launcher_image("v1.42.0")})
    doc, _ = explain_json(run_plugin, cluster, "future")
    assert doc["kubevirtVersion"] == {"version": "v1.42.0", "source": "vmi-launcher-image"}
    assert any("newer than" in f["message"] for f in doc["findings"])
    r = run_plugin("table", "--kubevirt-version", "v1.42.0")
    assert r.returncode == 0 and "warning: KubeVirt v1.42.0 is newer than" in r.stderr


# --- input checked before any request ------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["explain", "testvm", "-n", "Bad_NS"], "not a valid namespace"),
    (["dumpxml", "testvm", "-n", "x" * 64], "not a valid namespace"),
    (["list", "-l", "app in (a"], "not a valid label selector"),
    (["list", "-l", "=web"], "not a valid label selector"),
    (["set-transitional", "-l", "tier notin db"], "not a valid label selector"),
    (["set-transitional", "vm/Bad.Name"], "not a valid VM name"),
    (["explain", "testvm", "--request-timeout", "nan"], "invalid duration"),
    (["list", "--request-timeout=-5s"], "cannot be negative"),
    (["list", "--request-timeout", "inf"], "invalid duration"),
])
def test_bad_input_is_a_usage_error_before_any_request(run_plugin, cluster, args, needle):
    cluster.add_running_vm("testvm")
    before = cluster.api_request_count()
    r = run_plugin(*args, env=cluster.env())
    assert r.returncode == 2 and r.stderr.startswith("error: ") and needle in r.stderr, r.stderr
    assert cluster.api_request_count() == before and "Traceback" not in r.stderr


def test_huge_input_is_not_echoed_whole(run_plugin, cluster):
    before = cluster.api_request_count()
    for args in (["list", "-l", "a=" + "b" * 50000], ["explain", "x" * 50000], ["list", "-n", "N" * 50000]):
        r = run_plugin(*args, env=cluster.env())
        assert r.returncode == 2 and len(r.stderr) < 600, (args[:2], len(r.stderr))
    assert cluster.api_request_count() == before


def test_kubectl_verbosity_and_go_durations_are_accepted(run_plugin, cluster):
    cluster.put(objects.vm("halted", run_strategy="Halted"))
    for extra in (["-v=6"], ["--v=2"], ["-v", "4"], ["--request-timeout", "1m30s"], ["--request-timeout", "0"],
                  ["--request-timeout", "500ms"], ["--request-timeout", "2h0m0s"], ["--request-timeout", "10"]):
        r = run_plugin("explain", "halted", "-o", "json", *extra, env=cluster.env())
        assert r.returncode == 0, (extra, r.stderr)
        assert json.loads(r.stdout)["vm"]["name"] == "halted"
    # -v is no longer --debug: an error stays one line without a traceback
    r = run_plugin("explain", "nope", "-v=9", env=cluster.env())
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.startswith("error: ")


# --- Ctrl-C ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,path", [
    (["list", "-A"], "/virtualmachineinstances"),
    (["explain", "testvm"], "/virtualmachineinstances/testvm"),
    (["set-transitional", "-l", "app=web", "-A"], "/virtualmachineinstances"),
])
def test_ctrl_c_stops_at_once_with_130(plugin_path, cluster, args, path):
    stack = cluster.add_running_vm("testvm", vm_kwargs={"labels": {"app": "web"}})
    cluster.inject_delay(path, 60, method="GET")
    env = cluster.env()
    proc = interactive_popen([plugin_path, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while cluster.delays_left(path) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert cluster.delays_left(path) == 0, "the plugin never sent the held request"
        proc.send_signal(signal.SIGINT)
        # the held request answers only after 60 s: exiting within the bound means it was abandoned
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        cluster.release_pauses()
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err
    assert cluster.get("vm", "testvm")["metadata"]["resourceVersion"] == stack.vm["metadata"]["resourceVersion"]


def test_the_launcher_pods_image_when_the_vmi_does_not_say(run_plugin, cluster):
    cluster.add_running_vm("older", vmi_kwargs={"image": None},
                           pod_kwargs={"image": objects.launcher_image("v1.5.2")})
    cluster.put(objects.kubevirt_cr("v1.9.0"))
    doc, _ = explain_json(run_plugin, cluster, "older")
    assert doc["kubevirtVersion"] == {"version": "v1.5.2", "source": "launcher-pod-image"}


# --- seams between explain and list (the merged branches' audit) ---------------------------------

def test_a_preference_name_is_the_same_guest_hint_in_explain_and_list(run_plugin, cluster):
    """An unread cluster preference named like an OS id: explain and list name the same guest
    (the preference's name, not "virtualmachineclusterpreference<name>")."""
    cluster.put(objects.vm("halted", preference="centos6.10", run_strategy="Halted"))
    doc, _ = explain_json(run_plugin, cluster, "halted")
    r = run_plugin("list", "-o", "json", env=cluster.env())
    item = json.loads(r.stdout)["items"][0]
    assert doc["guest"]["id"] == item["guest"]["id"] == "centos6.10"
    assert doc["guest"]["virtio1"] is item["guest"]["virtio1"] is False


def test_dumpxml_does_not_warn_about_the_preference_it_never_reads(run_plugin, cluster):
    cluster.put(objects.cluster_preference("legacy", use_virtio_transitional=True))
    cluster.add_running_vm("pref", vm_kwargs={"preference": "legacy"},
                                   vmi_kwargs={"use_virtio_transitional": True})
    r = run_plugin("dumpxml", "pref", env=cluster.env())
    assert r.returncode == 0 and "<domain" in r.stdout, r.stderr
    assert r.stderr == ""
    assert not [x for x in cluster.request_log() if "preference" in x.path]


def test_a_release_the_rules_do_not_know_is_warned_once_naming_the_rules_applied(run_plugin, cluster):
    """explain, list, set-transitional and table say the same: which rules apply, once."""
    for name in ("future-a", "future-b"):
        cluster.add_running_vm(name, vmi_kwargs={"image": objects.launcher_image("v2.3.0")})
    cluster.add_running_vm("ancient", vmi_kwargs={"image": objects.launcher_image("v0.20.0")})
    newer = "KubeVirt v2.3.0 (from the VMI's launcher image) is newer than v1.9.0, the newest release these " \
            "rules were read against: showing the rules of v1.9.0"
    older = "KubeVirt v0.20.0 (from the VMI's launcher image) is older than v0.36.0, the oldest release these " \
            "rules were read against: showing the rules of v0.36.0"
    doc, _ = explain_json(run_plugin, cluster, "future-a")
    assert [f["message"] for f in doc["findings"] if "newer than" in f["message"]] == [newer]
    r = run_plugin("explain", "future-a", env=cluster.env())
    assert "KubeVirt rules: v1.9.0 (for KubeVirt v2.3.0, from the VMI's launcher image)" in r.stdout, r.stdout
    assert r.stdout.count("newer than") == 1
    r = run_plugin("explain", "ancient", env=cluster.env())
    assert "KubeVirt rules: v0.36.0 (for KubeVirt v0.20.0, from the VMI's launcher image)" in r.stdout, r.stdout
    assert r.stdout.count("older than") == 1
    for args in (["list"], ["list", "-o", "json"]):
        r = run_plugin(*args, env=cluster.env())
        assert r.returncode == 0, r.stderr
        assert r.stderr.splitlines() == ["warning: " + newer, "warning: " + older] or \
            r.stderr.splitlines() == ["warning: " + older, "warning: " + newer], r.stderr
    r = run_plugin("list", "--kubevirt-version", "v0.20.0", env=cluster.env())
    assert r.stderr.count("older than v0.36.0") == 1 and "(from --kubevirt-version)" in r.stderr, r.stderr
    r = run_plugin("set-transitional", "future-a", "--dry-run=client", env=cluster.env())
    assert r.returncode == 0 and r.stderr.count(newer) == 1, r.stderr
    r = run_plugin("table", "--kubevirt-version", "v2.3.0")
    assert r.stderr.count("showing the rules of v1.9.0") == 1


def test_set_transitional_l_names_each_vm_once_in_its_warnings(run_plugin, cluster):
    cluster.put(objects.vm("lost", preference="gone", run_strategy="Halted", labels={"app": "x"}))
    r = run_plugin("set-transitional", "-l", "app=x", "--unset", "--dry-run=client", env=cluster.env())
    assert r.returncode == 0, r.stderr
    warned = [x for x in r.stderr.splitlines() if "gone" in x]
    assert warned and all(x.startswith("default/lost: warning: ") and x.count("default/lost") == 1
                          for x in warned), r.stderr


def test_an_unread_preference_is_unknown_in_explains_header_as_in_list(run_plugin, cluster):
    cluster.put(objects.vm("lost", preference="gone", run_strategy="Halted"))
    r = run_plugin("explain", "lost", env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert "useVirtioTransitional: unknown (assumed false)" in r.stdout, r.stdout
    r = run_plugin("list", "-o", "json", env=cluster.env())
    assert json.loads(r.stdout)["items"][0]["useVirtioTransitional"]["effective"] is None


@pytest.mark.parametrize("release", ["v0.20.0", "v2.3.0"])
def test_offline_and_live_explain_say_the_same_of_an_unknown_release(run_plugin, cluster, tmp_path, release):
    vm = objects.vm("testvm", run_strategy="Halted")
    cluster.put(vm)
    live_doc, _ = explain_json(run_plugin, cluster, "testvm", "--kubevirt-version", release)
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(vm))
    r = run_plugin("explain", "-f", str(path), "--kubevirt-version", release, "-o", "json")
    assert r.returncode == 0, r.stderr
    offline_doc = json.loads(r.stdout)
    assert offline_doc["kubevirtVersion"] == live_doc["kubevirtVersion"] == {"version": release, "source": "flag"}

    def warned(doc):
        return [f["message"] for f in doc["findings"] if "these rules were read against" in f["message"]]
    assert warned(offline_doc) == warned(live_doc) and len(warned(live_doc)) == 1
    assert "(from --kubevirt-version)" in warned(live_doc)[0]
    r = run_plugin("explain", "-f", str(path), "--kubevirt-version", release)
    assert "KubeVirt rules: v%s (for KubeVirt %s, from --kubevirt-version)" % (
        "0.36.0" if release == "v0.20.0" else "1.9.0", release) in r.stdout, r.stdout


def test_a_server_error_on_a_list_is_one_clean_error_line(run_plugin, cluster):
    cluster.inject_error("virtualmachines", 500, message="etcd is sad", times=10)
    r = run_plugin("list", "-A", env=cluster.env())
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert r.stderr.splitlines()[0] == "error: list virtualmachines.kubevirt.io: etcd is sad (HTTP 500)", r.stderr
    assert "Traceback" not in r.stderr and "Error" not in r.stderr.replace("error:", "")
