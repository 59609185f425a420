"""`set-transitional` against the local API server: one field, resourceVersion-guarded,
dry runs, preview, restart, selectors and refusals."""
import copy
import json

import pytest
import yaml

from apiserver import objects

FIELD_PATH = ("spec", "template", "spec", "domain", "devices")


def flag(vm):
    d = vm
    for k in FIELD_PATH:
        d = d.get(k) or {}
    return d.get("useVirtioTransitional", "<absent>")


def without_volatile(vm):
    """The object minus what every write legitimately changes."""
    v = copy.deepcopy(vm)
    for k in ("resourceVersion", "generation", "managedFields"):
        v["metadata"].pop(k, None)
    devices = v
    for k in FIELD_PATH:
        devices = devices[k]
    devices.pop("useVirtioTransitional", None)
    return v


def run(run_plugin, cluster, *args, user="admin"):
    return run_plugin("set-transitional", *args, env=cluster.env(user=user))


def test_sets_true_and_changes_nothing_else(run_plugin, cluster):
    stack = cluster.add_running_vm("testvm", "default", vm_kwargs={"labels": {"app": "legacy"}})
    before = cluster.get("vm", "testvm", "default")
    r = run(run_plugin, cluster, "testvm")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "virtualmachine.kubevirt.io/testvm patched"
    after = cluster.get("vm", "testvm", "default")
    assert flag(after) is True
    assert without_volatile(after) == without_volatile(before)
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    # the patch was a merge patch carrying the resourceVersion read just before
    patches = [x for x in cluster.request_log() if x.method == "PATCH"]
    assert len(patches) == 1
    # preview: per device now -> after the next start; the move to conventional PCI; next steps
    assert "virtio-non-transitional" in r.stdout and "virtio-transitional" in r.stdout
    assert "PCIe root port -> conventional PCI slot" in r.stdout
    assert "--restart" in r.stdout and "guest reboot" in r.stdout
    assert not cluster.restarts


def test_off_and_unset(run_plugin, cluster):
    cluster.put(objects.vm("testvm", use_virtio_transitional=True))
    r = run(run_plugin, cluster, "vm/testvm", "--off")
    assert r.returncode == 0, r.stderr
    assert flag(cluster.get("vm", "testvm", "default")) is False
    r = run(run_plugin, cluster, "testvm", "--unset")
    assert r.returncode == 0, r.stderr
    assert flag(cluster.get("vm", "testvm", "default")) == "<absent>"
    assert "default false applies" in r.stderr  # no preference would decide


def test_unchanged_makes_no_write(run_plugin, cluster):
    cluster.put(objects.vm("testvm", use_virtio_transitional=True))
    r = run(run_plugin, cluster, "testvm")
    assert r.returncode == 0 and "virtualmachine.kubevirt.io/testvm unchanged" in r.stdout
    assert not [x for x in cluster.request_log() if x.method in ("PATCH", "PUT")]


def test_dry_run_client_sends_nothing(run_plugin, cluster):
    cluster.put(objects.vm("testvm"))
    before = cluster.get("vm", "testvm", "default")
    r = run(run_plugin, cluster, "testvm", "--dry-run=client")
    assert r.returncode == 0, r.stderr
    assert "virtualmachine.kubevirt.io/testvm patched (dry run)" in r.stdout
    assert '"useVirtioTransitional":true' in r.stdout  # what would be sent
    assert cluster.get("vm", "testvm", "default") == before
    assert not [x for x in cluster.request_log() if x.method in ("PATCH", "PUT")]
    r = run(run_plugin, cluster, "testvm", "--dry-run=client", "-o", "json")
    assert flag(json.loads(r.stdout)) is True


def test_dry_run_server_stores_nothing(run_plugin, cluster):
    cluster.put(objects.vm("testvm"))
    before = cluster.get("vm", "testvm", "default")
    r = run(run_plugin, cluster, "testvm", "--dry-run=server", "-o", "yaml")
    assert r.returncode == 0, r.stderr
    assert flag(yaml.safe_load(r.stdout)) is True
    assert cluster.get("vm", "testvm", "default") == before
    patch = [x for x in cluster.request_log() if x.method == "PATCH"][0]
    assert ("dryRun", "All") in list(patch.query) or "dryRun=All" in str(patch.query)


def test_concurrent_writer_is_never_overwritten(run_plugin, cluster):
    cluster.put(objects.vm("testvm"))

    def someone_else(vm):
        vm["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"] = False
        vm["metadata"].setdefault("labels", {})["edited-by"] = "someone-else"

    cluster.concurrent_edit("vm", "testvm", "default", mutate=someone_else)
    r = run(run_plugin, cluster, "testvm")
    assert r.returncode == 0, r.stderr
    assert "modified concurrently" in r.stderr
    after = cluster.get("vm", "testvm", "default")
    # their label survives; our field is set on top of their version, after a re-check
    assert after["metadata"]["labels"]["edited-by"] == "someone-else"
    assert flag(after) is True
    assert len([x for x in cluster.request_log() if x.method == "PATCH"]) == 2


def test_concurrent_writer_that_already_did_it(run_plugin, cluster):
    cluster.put(objects.vm("testvm"))
    cluster.concurrent_edit("vm", "testvm", "default", mutate=lambda vm: vm["spec"]["template"]["spec"]["domain"]
                            ["devices"].update(useVirtioTransitional=True))
    r = run(run_plugin, cluster, "testvm")
    assert r.returncode == 0 and "unchanged" in r.stdout, r.stdout + r.stderr


def test_selector_over_several_namespaces(run_plugin, cluster):
    for ns, name, labels in [("default", "a", {"os": "rhel6"}), ("prod", "b", {"os": "rhel6"}),
                             ("prod", "c", {"os": "fedora"})]:
        cluster.put(objects.vm(name, ns, labels=labels, run_strategy="Halted"))
    r = run(run_plugin, cluster, "-l", "os=rhel6", "-A")
    assert r.returncode == 0, r.stderr
    assert flag(cluster.get("vm", "a", "default")) is True and flag(cluster.get("vm", "b", "prod")) is True
    assert flag(cluster.get("vm", "c", "prod")) == "<absent>"
    assert "2 VM(s): 2 patched, 0 unchanged, 0 failed" in r.stdout
    r = run(run_plugin, cluster, "-l", "os=rhel6")  # only the context's namespace (default)
    assert "virtualmachine.kubevirt.io/a unchanged" in r.stdout and "/b " not in r.stdout


def test_restart_and_its_refusal(run_plugin, cluster):
    cluster.add_running_vm("testvm", "default")
    r = run(run_plugin, cluster, "testvm", "--restart")
    assert r.returncode == 0, r.stderr
    assert [(x.namespace, x.name) for x in cluster.restarts] == [("default", "testvm")]
    assert "restart requested" in r.stdout
    cluster.add_running_vm("once", "default", vm_kwargs={"run_strategy": "Once"})
    r = run(run_plugin, cluster, "once", "--restart")
    assert r.returncode == 1 and "refused to restart" in r.stderr and "Once" in r.stderr
    assert flag(cluster.get("vm", "once", "default")) is True  # the patch itself went through
    assert len(cluster.restarts) == 1


@pytest.mark.parametrize("setup,args,needles", [
    ("vmi-only", ["vmi/lonely"], ["immutable", "recreate"]),
    ("vmi-only", ["lonely"], ["immutable", "recreate"]),
    ("pool", ["pooled"], ["VirtualMachinePool", "mypool"]),
])
def test_refusals(run_plugin, cluster, setup, args, needles):
    if setup == "vmi-only":
        cluster.put(objects.vmi("lonely", "default"))
    else:
        vm = objects.vm("pooled")
        vm["metadata"]["ownerReferences"] = [{"apiVersion": "pool.kubevirt.io/v1alpha1", "kind": "VirtualMachinePool",
                                              "name": "mypool", "uid": "1234", "controller": True}]
        cluster.put(vm)
    r = run(run_plugin, cluster, *args)
    assert r.returncode == 1 and r.stderr.startswith("error: ")
    for n in needles:
        assert n in r.stderr
    assert not [x for x in cluster.request_log() if x.method in ("PATCH", "PUT")]


def test_patch_forbidden_names_verb_and_resource(run_plugin, cluster):
    cluster.put(objects.vm("testvm"))
    r = run(run_plugin, cluster, "testvm", user="viewer")
    assert r.returncode == 1
    assert "forbidden" in r.stderr and "patch virtualmachines.kubevirt.io" in r.stderr
    assert "Traceback" not in r.stderr


def test_usage_errors(run_plugin, cluster):
    assert run(run_plugin, cluster).returncode == 2
    assert run(run_plugin, cluster, "testvm", "--off", "--unset").returncode == 2
    assert run(run_plugin, cluster, "testvm", "-A").returncode == 2
    r = run(run_plugin, cluster, "testvm", "--dry-run=maybe")
    assert r.returncode == 2 and "invalid choice" in r.stderr
