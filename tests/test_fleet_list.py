"""`kubectl virtio list` against the test API server: paging, selectors, risks, --check,
--live (partial failures, Ctrl-C), and the request count.  Runs the installed plugin."""
import json
import os
import signal
import subprocess
import time

from conftest import interactive_popen
from apiserver import VirshConfig, fleet, objects

from test_fleet import BALLOON_ON_3, DOMAIN


def _json(r):
    assert r.returncode in (0, 3), r.stderr
    doc = json.loads(r.stdout)
    return doc, {"%s/%s" % (i["vm"]["namespace"], i["vm"]["name"]): i for i in doc["items"]}


def _risks(item):
    return [r["id"] for r in item["risks"]]


def test_pages_are_joined_without_a_get_per_vm(run_plugin, cluster):
    fleet.load(cluster.server, vms=1203, running=700, namespaces=3)
    r = run_plugin("list", "-A", "-o", "json", env=cluster.env())
    doc, items = _json(r)
    assert len(items) == 1203 and doc["summary"]["vms"] == 1203
    assert sum(1 for i in items.values() if i["running"]) == 700
    # every running VM got its own VMI (the join is by namespace/name, page by page)
    assert all(i["useVirtioTransitional"]["live"] is not None for i in items.values() if i["running"])
    vm_lists = cluster.request_log(path_prefix="/apis/kubevirt.io/v1/virtualmachines")
    vmi_lists = cluster.request_log(path_prefix="/apis/kubevirt.io/v1/virtualmachineinstances")
    assert len(vm_lists) == 3 and len(vmi_lists) == 2
    assert all("limit=500" in rec.query for rec in vm_lists + vmi_lists)
    # no GET per VM, no pod LIST without --live; one read of the KubeVirt CR for the release of
    # the halted VMs (no VMI names it)
    others = [rec.path for rec in cluster.request_log() if rec not in vm_lists + vmi_lists]
    assert len(others) == 1 and others[0].startswith("/apis/kubevirt.io/v1/kubevirts"), others


def test_selector_goes_to_the_server_and_narrows_both_lists(run_plugin, cluster):
    fleet.load(cluster.server, vms=50, running=50, namespaces=2)
    r = run_plugin("list", "-A", "-l", "app=web", "-o", "json", env=cluster.env())
    _, items = _json(r)
    assert len(items) == 30 and all(i["guest"]["id"] == "rhel9" for i in items.values())
    assert all(i["running"] and i["useVirtioTransitional"]["live"] is False for i in items.values())
    for rec in cluster.request_log(path_prefix="/apis/kubevirt.io/v1/"):
        assert "labelSelector=app%3Dweb" in rec.query
    # VMs whose VMI does not carry the VM's labels still show as running (from the VM's status)
    cluster.reset()
    vm = objects.vm("lonely", "default", labels={"tier": "x"}, template_labels={})
    cluster.put(vm, objects.vmi("lonely", "default", owner_vm=vm))
    _, items = _json(run_plugin("list", "-l", "tier=x", "-o", "json", env=cluster.env()))
    assert items["default/lonely"]["running"] is True and items["default/lonely"]["useVirtioTransitional"]["live"] is None


def test_one_read_per_distinct_preference(run_plugin, cluster):
    cluster.put(objects.cluster_preference("legacy", use_virtio_transitional=True),
                objects.preference("modern", "team", use_virtio_transitional=False))
    for i in range(12):
        cluster.put(objects.vm("c%d" % i, "team", preference="legacy", run_strategy="Halted",
                               labels={"vm.kubevirt.io/os": "centos6.10"}))
    for i in range(5):
        cluster.put(objects.vm("m%d" % i, "team", preference="modern", preference_kind=objects.PREFERENCE_KIND,
                               run_strategy="Halted", labels={"vm.kubevirt.io/os": "rhel9"}))
    r = run_plugin("list", "-n", "team", "-o", "json", "--check", env=cluster.env())
    doc, items = _json(r)
    assert r.returncode == 0, r.stdout  # the preference makes the CentOS 6 VMs transitional: not at risk
    assert items["team/c3"]["useVirtioTransitional"] == {"effective": True, "origin": "preference", "live": None}
    assert items["team/m1"]["useVirtioTransitional"]["origin"] == "preference"
    gets = cluster.request_log(path_prefix="/apis/instancetype.kubevirt.io/")
    assert len(gets) == 2


def test_every_risk_check_codes_and_acceptance(run_plugin, cluster):
    cluster.add_running_vm("old", "prod", vm_kwargs={"labels": {"vm.kubevirt.io/os": "centos6.10"}})
    cluster.put(objects.vm("waste", "prod", use_virtio_transitional=True, run_strategy="Halted",
                           labels={"vm.kubevirt.io/os": "rhel9"}))
    cluster.put(objects.vm("pending", "prod", restart_required=True, run_strategy="Halted",
                           labels={"vm.kubevirt.io/os": "rhel9"}))
    cluster.put(objects.vm("mystery", "prod", run_strategy="Halted"))
    env = cluster.env()
    doc, items = _json(run_plugin("list", "-A", "-o", "json", env=env))
    assert _risks(items["prod/old"]) == ["no-virtio1-driver"]
    assert _risks(items["prod/waste"]) == ["needless-transitional"]
    assert _risks(items["prod/pending"]) == ["restart-pending"]
    assert _risks(items["prod/mystery"]) == ["unknown-guest"]
    assert all(r["message"] and r["severity"] for i in items.values() for r in i["risks"])
    assert doc["summary"]["byRisk"]["no-virtio1-driver"] == 1
    assert run_plugin("list", "-A", "--check", env=env).returncode == 3
    assert run_plugin("list", "-A", "--check", "--ignore", "prod/old", env=env).returncode == 0
    assert run_plugin("list", "-A", "--check", "--ignore", "prod/old", "--fail-on", "warning",
                      env=env).returncode == 3  # restart-pending
    assert run_plugin("list", "-A", "--check", "--ignore", "prod/old", "--fail-on", "info",
                      env=env).returncode == 3
    # the VM's owner accepts the risk in an annotation
    cluster.mutate("vm", "old", lambda o: o["metadata"].setdefault("annotations", {}).update(
        {"virtio.kubectl.io/accept-risks": "no-virtio1-driver"}), namespace="prod")
    r = run_plugin("list", "-A", "--check", env=env)
    assert r.returncode == 0 and "no-virtio1-driver(accepted)" in r.stdout
    # --risk filters rows; --sort risk puts the worst first; --no-headers for scripts
    r = run_plugin("list", "-A", "--risk", "needless-transitional", "--no-headers", env=env)
    assert r.returncode == 0 and r.stdout.split()[:2] == ["prod", "waste"] and "NAMESPACE" not in r.stdout
    r = run_plugin("list", "-A", "--sort", "risk", "-o", "markdown", env=env)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("| namespace") and "| pending " in lines[2]  # old's risk is accepted now
    r = run_plugin("list", "-A", "-o", "wide", env=env)
    assert "REASONS" in r.stdout and "drives virtio 1.0" in r.stdout
    # usage errors are exit 2 and touch nothing
    before = cluster.api_request_count()
    for bad in (["--risk", "nonsense"], ["--fail-on", "sometimes"], ["--ignore", "noslash"], ["--parallel", "0"]):
        r = run_plugin("list", "-A", *bad, env=env)
        assert r.returncode == 2 and r.stderr.startswith("error: "), bad
    assert cluster.api_request_count() == before


def test_live_reads_domains_and_keeps_per_vm_errors_in_the_row(run_plugin, cluster):
    stacks = [cluster.add_running_vm("vm%d" % i, "live", vm_kwargs={"labels": {"vm.kubevirt.io/os": "rhel9"}})
              for i in range(5)]
    cluster.set_domain("live", stacks[0].pod["metadata"]["name"], "live_vm0", DOMAIN % BALLOON_ON_3)
    cluster.set_domain("live", stacks[1].pod["metadata"]["name"], "live_vm1", DOMAIN % "")
    cluster.set_virsh("live", stacks[2].pod["metadata"]["name"], VirshConfig())  # no domain: virsh fails
    r = run_plugin("list", "-n", "live", "--live", "--parallel", "3", "-o", "json", env=cluster.env())
    doc, items = _json(r)
    assert r.returncode == 0
    assert items["live/vm0"]["hotplugPortsFree"] == 0 and "hotplug-exhausted" in _risks(items["live/vm0"])
    assert items["live/vm1"]["hotplugPortsFree"] == 1 and items["live/vm1"]["error"] is None
    assert "failed to get domain" in items["live/vm2"]["error"]
    assert items["live/vm3"]["error"] is None and len(items) == 5 and doc["summary"]["errors"] == 1
    pod_lists = [rec for rec in cluster.request_log() if rec.path == "/api/v1/namespaces/live/pods"]
    assert len(pod_lists) == 1 and "kubevirt.io%3Dvirt-launcher" in pod_lists[0].query  # one LIST, no GET per pod
    # --check cannot vouch for a VM it could not read: exit 1 when nothing else fails
    r = run_plugin("list", "-n", "live", "--live", "--check", env=cluster.env())
    assert r.returncode == 1 and "with errors" in r.stderr
    # an unexpected model in the running domain
    cluster.set_domain("live", stacks[3].pod["metadata"]["name"], "live_vm3",
                       (DOMAIN % "").replace("virtio-non-transitional", "virtio-transitional"))
    _, items = _json(run_plugin("list", "-n", "live", "--live", "-o", "json", env=cluster.env()))
    assert "unexpected-model" in _risks(items["live/vm3"])


def test_ctrl_c_prints_what_was_gathered_and_exits_130(plugin_path, cluster):
    for i in range(6):
        cluster.add_running_vm("vm%d" % i, "slow", vm_kwargs={"labels": {"vm.kubevirt.io/os": "rhel9"}})
    cluster.exec_delay = 30
    env = dict(os.environ, **cluster.env())
    p = interactive_popen([plugin_path, "list", "-n", "slow", "--live", "--parallel", "2", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while len(cluster.request_log(path_prefix="/api/v1/namespaces/slow/pods/")) < 2:
            assert time.monotonic() < deadline and p.poll() is None, "no exec started"
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        cluster.release_pauses()
    assert p.returncode == 130, err
    doc = json.loads(out)
    assert doc["summary"]["interrupted"] is True and len(doc["items"]) < 6
    assert "Traceback" not in err and "interrupted" in err


def test_standalone_vmis_are_rows_too(run_plugin, cluster):
    cluster.put(objects.vmi("bare", "default", labels={"vm.kubevirt.io/os": "centos6.10"}))
    cluster.put(objects.vm("halted", "default", run_strategy="Halted"))
    _, items = _json(run_plugin("list", "-o", "json", env=cluster.env()))
    assert items["default/bare"]["kind"] == "VirtualMachineInstance"
    assert items["default/bare"]["useVirtioTransitional"]["origin"] == "vmi"
    assert _risks(items["default/bare"]) == ["no-virtio1-driver"]
    assert items["default/halted"]["running"] is False


def test_set_transitional_selector_streams_with_one_line_a_vm(run_plugin, cluster):
    fleet.load(cluster.server, vms=60, running=0, namespaces=3)
    cluster.put(objects.vm("odd", "ns-001", labels={"app": "legacy"}, run_strategy="Halted",
                           use_virtio_transitional=True))
    r = run_plugin("set-transitional", "-l", "app=legacy", "-A", "--parallel", "4", env=cluster.env())
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith("virtualmachine.kubevirt.io/")]
    assert len(lines) == 7  # 6 generated legacy VMs + odd
    assert sum("patched" in x for x in lines) == 6 and "virtualmachine.kubevirt.io/odd unchanged (namespace ns-001)" \
        in lines
    assert "7 VM(s): 6 patched, 1 unchanged, 0 failed" in r.stdout
    # in list order (namespace/name), whatever order the patches finished in
    names = [x.split()[0].split("/")[1] for x in lines]
    spaces = [x.rsplit(" ", 1)[1].rstrip(")") for x in lines]
    assert list(zip(spaces, names)) == sorted(zip(spaces, names))
    lists = cluster.request_log(method="GET", path_prefix="/apis/kubevirt.io/v1/virtualmachines")
    assert len(lists) == 1 and "labelSelector=app%3Dlegacy" in lists[0].query and "limit=500" in lists[0].query
    gets = [x for x in cluster.request_log(method="GET") if x.name]
    assert gets == []  # no GET per VM
    assert len(cluster.request_log(method="PATCH")) == 6


def test_progress_bar_only_on_a_terminal_and_never_on_stdout(plugin_path, cluster):
    """--live draws tqdm's bar on stderr when stderr is a terminal (a pty here); stdout stays
    the report alone, and without a terminal there is no bar at all."""
    import pty

    for i in range(3):
        cluster.add_running_vm("vm%d" % i, "bar", vm_kwargs={"labels": {"vm.kubevirt.io/os": "rhel9"}})
    env = dict(os.environ, **cluster.env())
    env.pop("NO_COLOR", None)
    import fcntl
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size
    p = subprocess.Popen([plugin_path, "list", "-n", "bar", "--live", "-o", "json"], stdout=subprocess.PIPE,
                         stderr=secondary, env=env)
    os.close(secondary)
    out, _ = p.communicate(timeout=60)
    tty = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty += chunk
    os.close(primary)
    assert p.returncode == 0
    assert len(json.loads(out)["items"]) == 3
    assert b"virsh dumpxml" in tty and b"/3 " in tty  # the bar, with the total it learnt
    r = subprocess.run([plugin_path, "list", "-n", "bar", "--live", "-o", "json"], capture_output=True, env=env)
    assert r.returncode == 0 and b"virsh dumpxml" not in r.stderr


def test_a_malformed_vm_is_reported_in_its_row_and_the_rest_go_on(run_plugin, cluster):
    """One VM whose spec is a list (a broken object in etcd, a hostile server) must not abort
    the fleet: its row carries the error, the others are listed, and --check exits 1."""
    good = objects.vm("good", "default")
    bad = objects.vm("bad", "default")
    bad["spec"] = ["not", "a", "mapping"]
    cluster.put(good, bad)
    r = run_plugin("list", "-o", "json", env=cluster.env())
    assert "Traceback" not in r.stderr and "Error:" not in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    items = {i["vm"]["name"]: i for i in doc["items"]}
    assert set(items) == {"good", "bad"}, items
    assert items["good"]["error"] is None
    assert items["bad"]["error"] and "spec" in items["bad"]["error"], items["bad"]
    assert r.returncode == 0 and doc["summary"]["errors"] == 1, r.stderr
    # --check cannot vouch for the VM it could not read
    r = run_plugin("list", "--check", env=cluster.env())
    assert r.returncode == 1 and "with errors" in r.stderr and "good" in r.stdout, (r.stdout, r.stderr)


def test_live_models_are_judged_by_the_rules_of_the_cluster_release_as_explain_does(run_plugin, cluster):
    """KubeVirt before v0.38.0 gave the interface and the balloon plain `virtio`: on a v0.37.0
    cluster those models are expected, on v1.9.0 they are not.  `list --live` and `explain`
    judge the running domain with the same rules (the VMI's launcher release), device by
    device."""
    stack = cluster.add_running_vm("old", "legacy", vmi_kwargs={"image": "quay.io/kubevirt/virt-launcher:v0.37.0"})
    xml = open(os.path.join(os.path.dirname(__file__), "..", "examples", "testvm.dumpxml.xml")).read()
    xml = xml.replace("default_testvm", "legacy_old").replace(
        "<model type='virtio-non-transitional'/>", "<model type='virtio'/>").replace(
        "<memballoon model='virtio-non-transitional'", "<memballoon model='virtio'")
    assert xml.count("model type='virtio'") == 1 and xml.count("memballoon model='virtio'") == 1
    cluster.set_domain("legacy", stack.pod["metadata"]["name"], "legacy_old", xml)

    def both(*flags):
        """The devices explain calls unexpected, and those list's unexpected-model names."""
        r = run_plugin("explain", "old", "-n", "legacy", "-o", "json", *flags, env=cluster.env())
        assert r.returncode == 0, r.stderr
        explained = sorted("%s %s" % (d["kind"], d["name"]) for d in json.loads(r.stdout)["devices"]
                           if d["status"] == "unexpected")
        _, items = _json(run_plugin("list", "-n", "legacy", "--live", "-o", "json", *flags, env=cluster.env()))
        row = items["legacy/old"]
        reason = next((r["message"] for r in row["risks"] if r["id"] == "unexpected-model"), "")
        listed = sorted(d.split(":")[0] for d in reason.partition("do not give: ")[2].split(", ") if d)
        return explained, listed, row

    explained, listed, row = both()
    assert row["kubevirtVersion"] == "v0.37.0"
    assert "interface default" not in explained and "memballoon memballoon0" not in explained
    assert listed == explained
    explained, listed, row = both("--kubevirt-version", "v1.9.0")
    assert explained == ["interface default", "memballoon memballoon0"]
    assert listed == explained
