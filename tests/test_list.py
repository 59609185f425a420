"""`list`: the fleet view, and `--check`'s exit code."""
import json

from apiserver import objects


def items_of(r):
    assert r.returncode in (0, 3), r.stderr
    doc = json.loads(r.stdout)
    assert doc["kind"] == "VirtioFleetReport"
    return doc, {i["vm"]["name"]: i for i in doc["items"]}


def test_list_and_check(run_plugin, cluster):
    cluster.add_running_vm("old", "default", vm_kwargs={"template_labels": {"os.template.kubevirt.io/centos6.10": "true"}})
    cluster.put(objects.vm("fixed", "default", use_virtio_transitional=True, run_strategy="Halted",
                           annotations={"vm.kubevirt.io/os": "rhel6"}))
    cluster.put(objects.vm("modern", "prod", annotations={"vm.kubevirt.io/os": "fedora38"}, run_strategy="Halted"))
    doc, items = items_of(run_plugin("list", "-A", "-o", "json", env=cluster.env()))
    assert set(items) == {"old", "fixed", "modern"}
    assert items["old"]["running"] is True and [r["id"] for r in items["old"]["risks"]] == ["no-virtio1-driver"]
    assert items["old"]["guest"]["id"] == "centos6.10" and items["old"]["guest"]["virtio1"] is False
    assert items["old"]["kubevirtVersion"] == objects.KUBEVIRT_VERSION
    assert items["fixed"]["useVirtioTransitional"] == {"effective": True, "origin": "vm", "live": None}
    assert items["fixed"]["risks"] == [] and items["fixed"]["error"] is None
    assert items["modern"]["guest"]["virtio1"] is True and items["modern"]["vm"]["namespace"] == "prod"
    assert doc["summary"] == {"vms": 3, "atRisk": 1, "byRisk": {"no-virtio1-driver": 1}}
    r = run_plugin("list", env=cluster.env())  # the context's namespace only
    assert "old" in r.stdout and "modern" not in r.stdout and r.stdout.startswith("NAMESPACE")
    assert run_plugin("list", "-A", "--check", env=cluster.env()).returncode == 3
    assert run_plugin("list", "-n", "prod", "--check", env=cluster.env()).returncode == 0


def test_list_run_with_a_fake_adapter():
    """ListOptions' Run with the adapter and the streams handed in (no subprocess)."""
    import io

    from fake_cluster import FakeCluster
    from kubectl_virtio.cmdline import Streams
    from kubectl_virtio.fleet_list import ListOptions

    stack = objects.running_vm("old", vm_kwargs={"annotations": {"vm.kubevirt.io/os": "centos6.10"}})
    fake = FakeCluster(*stack, objects.vm("halted", run_strategy="Halted", use_virtio_transitional=True))
    opts = ListOptions(check=True, output="json")
    opts.validate()
    out, err = io.StringIO(), io.StringIO()
    assert opts.run(fake, Streams(out, err)) == 3
    doc = json.loads(out.getvalue())
    got = {i["vm"]["name"]: (i["useVirtioTransitional"]["origin"], [r["id"] for r in i["risks"]]) for i in doc["items"]}
    assert got == {"old": ("default", ["no-virtio1-driver"]), "halted": ("vm", ["unknown-guest"])}
    # the stopped VM has no VMI to name the release: the KubeVirt CR is read, once; nothing per VM
    assert sorted(c[0] for c in fake.calls) == ["KubeVirt", "list VirtualMachine", "list VirtualMachineInstance"]
