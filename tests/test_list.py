"""`list`: the fleet view, and `--check`'s exit code."""
import json

from apiserver import objects


def test_list_and_check(run_plugin, cluster):
    cluster.add_running_vm("old", "default", vm_kwargs={"template_labels": {"os.template.kubevirt.io/centos6.10": "true"}})
    cluster.put(objects.vm("fixed", "default", use_virtio_transitional=True, run_strategy="Halted",
                           annotations={"vm.kubevirt.io/os": "rhel6"}))
    cluster.put(objects.vm("modern", "prod", annotations={"vm.kubevirt.io/os": "fedora38"}, run_strategy="Halted"))
    r = run_plugin("list", "-A", "-o", "json", env=cluster.env())
    assert r.returncode == 0, r.stderr
    items = {i["vm"]["name"]: i for i in json.loads(r.stdout)["items"]}
    assert set(items) == {"old", "fixed", "modern"}
    assert items["old"]["running"] is True and [x["id"] for x in items["old"]["risks"]] == ["no-virtio1-driver"]
    assert items["old"]["guest"]["id"] == "centos6.10" and items["old"]["guest"]["virtio1"] is False
    assert items["fixed"]["useVirtioTransitional"]["effective"] is True and items["fixed"]["risks"] == []
    assert items["modern"]["guest"]["virtio1"] is True
    r = run_plugin("list", env=cluster.env())  # the context's namespace only
    assert "old" in r.stdout and "modern" not in r.stdout and r.stdout.startswith("NAMESPACE")
    assert run_plugin("list", "-A", "--check", env=cluster.env()).returncode == 3
    assert run_plugin("list", "-n", "prod", "--check", env=cluster.env()).returncode == 0
