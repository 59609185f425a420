"""The manifest reader on hostile and wrong-shaped input: bounded, and always our InputError
with a short message naming the source (never a Python exception)."""
import json
import os

import pytest
import yaml

from kubectl_virtio import spec
from kubectl_virtio.errors import InputError

VM = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "testvm", "namespace": "default"},
      "spec": {"template": {"spec": {"domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]}},
                                     "volumes": [{"name": "root", "containerDisk": {"image": "x"}}]}}}}


def read(text, source="vm.yaml"):
    return spec.select(spec.load_documents(text, source), source)


def refused(text, source="vm.yaml"):
    with pytest.raises(InputError) as e:
        read(text, source)
    assert source in e.value.message
    assert len(e.value.message) < 400 and len(e.value.hint) < 400
    return e.value.message


def alias_bomb(levels=9, width=9):
    """The classic YAML bomb: `levels` anchors of `width` aliases each (~500 bytes), landing
    in metadata.name."""
    lines = ["apiVersion: kubevirt.io/v1", "kind: VirtualMachine", "x:",
             "  a0: &a0 [%s]" % ", ".join(["lol"] * width)]
    for i in range(1, levels):
        lines.append("  a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * width)))
    lines.append("metadata: {name: *a%d}" % (levels - 1))
    lines.append("spec: {template: {spec: {}}}")
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_metadata_name_fails_fast_with_a_short_message():
    bomb = alias_bomb()
    assert len(bomb) < 700
    message = refused(bomb)
    assert "alias" in message and "lol" not in message


def test_a_few_aliases_are_fine():
    text = yaml.safe_dump(VM).replace("namespace: default", "namespace: &ns default") + "x: [*ns, *ns]\n"
    assert read(text).namespace == "default"


def test_recursive_alias_is_refused():
    assert "recursive" in refused("kind: VirtualMachine\nmetadata: {name: a}\nspec: &s {template: *s}\n")


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    "a: " + "[" * 100_000 + "]" * 100_000,
    "".join("  " * i + "a:\n" for i in range(200)),
    "kind: VirtualMachine\nmetadata: {name: a}\nspec: " + "{a: " * 1000 + "1" + "}" * 1000,
])
def test_deep_nesting_is_refused_without_recursion_error(text):
    assert "nested too deeply" in refused(text)


def test_json_nesting_within_the_bound_is_read():
    obj = json.loads(json.dumps(VM))
    obj["spec"]["x"] = json.loads("[" * 40 + "]" * 40)
    assert read(json.dumps(obj)).name == "testvm"


@pytest.mark.parametrize("mutate,needle", [
    (lambda o: o.__setitem__("spec", ["a", "b"]), "spec is a list, not a mapping"),
    (lambda o: o.__setitem__("metadata", "x"), "metadata is a string, not a mapping"),
    (lambda o: o["metadata"].__setitem__("name", ["a"]), "metadata.name is a list, not a string"),
    (lambda o: o["metadata"].__setitem__("name", 5), "metadata.name is a number, not a string"),
    (lambda o: o["spec"].__setitem__("template", []), "spec.template is a list, not a mapping"),
    (lambda o: o["spec"]["template"]["spec"]["domain"].__setitem__("devices", "x"),
     "spec.template.spec.domain.devices is a string, not a mapping"),
    (lambda o: o["spec"]["template"]["spec"]["domain"]["devices"].__setitem__("disks", {"a": 1}),
     "devices.disks is a mapping, not a list"),
    (lambda o: o["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0].__setitem__("name", {"a": 1}),
     "devices.disks[0].name is a mapping, not a string"),
    (lambda o: o["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0].__setitem__("disk", "virtio"),
     "devices.disks[0].disk is a string, not a mapping"),
    (lambda o: o["spec"]["template"]["spec"]["domain"]["devices"].__setitem__("useVirtioTransitional", "true"),
     "devices.useVirtioTransitional is a string, not true or false"),
    (lambda o: o["spec"]["template"]["spec"]["domain"]["devices"].__setitem__("autoattachMemBalloon", 1),
     "devices.autoattachMemBalloon is a number, not true or false"),
    (lambda o: o["spec"]["template"]["spec"].__setitem__("volumes", [{"name": ["x"]}]),
     "spec.template.spec.volumes[0].name is a list"),
    (lambda o: o["metadata"].__setitem__("labels", {"a": ["b"]}), "metadata.labels[a] is a list, not a string"),
    (lambda o: o["spec"].__setitem__("preference", "u1.small"), "spec.preference is a string, not a mapping"),
])
def test_wrong_shaped_fields_name_the_field(mutate, needle):
    obj = json.loads(json.dumps(VM))
    mutate(obj)
    assert needle in refused(json.dumps(obj))


def test_null_fields_are_absent_as_for_the_api_server():
    text = ("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: testvm, labels: null}\n"
            "spec:\n  template:\n    metadata:\n    spec:\n      domain:\n        devices:\n        firmware:\n"
            "      volumes:\n")
    vm = read(text)
    assert vm.devices == {} and vm.labels == {}
    from kubectl_virtio import predict

    assert [e.kind for e in predict.predict(vm, "amd64")]  # predicts the defaults, no crash
    devices_null = json.loads(json.dumps(VM))
    devices_null["spec"]["template"]["spec"]["domain"]["devices"] = None
    assert read(yaml.safe_dump(devices_null)).devices == {}
    items_null = json.loads(json.dumps(VM))
    items_null["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [None, {"name": "root"}]
    assert read(json.dumps(items_null)).name == "testvm"


def test_a_vm_without_spec_and_kinds_that_are_not_strings():
    obj = json.loads(json.dumps(VM))
    del obj["spec"]
    assert "has no spec" in refused(json.dumps(obj))
    obj = json.loads(json.dumps(VM))
    obj["kind"] = ["VirtualMachine"]
    assert "no VirtualMachine" in refused(json.dumps(obj))


def test_long_values_are_not_echoed():
    obj = json.loads(json.dumps(VM))
    obj["metadata"]["name"] = "A" * 1_000_000
    message = refused(json.dumps(obj))
    assert "not a valid Kubernetes name" in message and "1000000 characters" in message
    assert "!" * 200 not in refused("kind: VirtualMachine\nmetadata: !" + "!" * 100_000 + "x {}\n")
    obj = {"kind": "X" * 100_000, "metadata": {"name": "a"}}
    assert "X" * 200 not in refused(json.dumps(obj))


def test_an_unread_preference_is_flagged_with_how_to_pass_it():
    obj = json.loads(json.dumps(VM))
    obj["spec"]["preference"] = {"name": "centos.6"}
    vm = read(json.dumps(obj))
    assert vm.preference_unread and vm.preference_name == "VirtualMachineClusterPreference centos.6"
    assert "kubectl get vmcp centos.6 -o yaml" in vm.preference_hint()
    assert any("not given with -f" in w and "-f pref.yaml" in w for w in vm.warnings)
    obj["spec"]["preference"] = {"name": "legacy", "kind": "VirtualMachinePreference"}
    vm = read(json.dumps(obj))
    assert "kubectl get vmpref legacy -n default -o yaml" in vm.preference_hint()
    pref = {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachinePreference",
            "metadata": {"name": "legacy"}, "spec": {"devices": {"preferredUseVirtioTransitional": True}}}
    vm = read(json.dumps({"kind": "List", "items": [obj, pref]}))
    assert not vm.preference_unread and vm.effective_flag() == (True, "preference")


# --- The installed plugin on the same inputs ------------------------------------------------

EXCEPTION_NAMES = ("Error:", "Exception", "Traceback", "internal error", "RecursionError", "AttributeError")


@pytest.mark.parametrize("name,text,needle", [
    ("bomb.yaml", alias_bomb(), "alias"),
    ("null-devices.yaml", "kind: VirtualMachine\nmetadata: {name: testvm}\nspec:\n  template:\n    spec:\n"
                          "      domain:\n        devices:\n", None),
    ("spec-list.yaml", "kind: VirtualMachine\nmetadata: {name: testvm}\nspec: [a, b]\n", "spec is a list"),
    ("deep.yaml", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("deep.json", '{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ("wrong.json", json.dumps(dict(VM, spec={"template": {"spec": {"domain": {"devices": {"disks": "vda"}}}}})),
     "devices.disks is a string, not a list"),
])
def test_the_plugin_reports_bad_manifests_in_one_short_line(run_plugin, tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    r = run_plugin("explain", "-f", str(path), "-o", "json", timeout=30)
    for word in EXCEPTION_NAMES:
        assert word not in r.stderr, r.stderr[:500]
    if needle is None:  # null = absent: the defaults are predicted
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["useVirtioTransitional"]["origin"] == "default"
        return
    assert r.returncode == 1 and r.stderr.startswith("error: %s" % path), r.stderr[:500]
    assert needle in r.stderr and len(r.stderr) < 600


def test_the_plugin_on_a_domain_of_another_vm_and_an_unread_preference(run_plugin, tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "examples", "testvm.dumpxml.xml"), encoding="utf-8") as fh:
        dump = fh.read()
    other = tmp_path / "windows.xml"
    other.write_text(dump.replace("<name>default_testvm</name>", "<name>default_windows</name>"))
    vm = yaml.safe_load(open(os.path.join(repo, "examples", "testvm.yaml"), encoding="utf-8"))
    vm["spec"]["preference"] = {"name": "centos.6"}
    manifest = tmp_path / "testvm.yaml"
    manifest.write_text(yaml.safe_dump(vm))
    r = run_plugin("explain", "-f", str(manifest), "--dumpxml", str(other), "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["useVirtioTransitional"]["origin"] == "unknown"
    assert "assumed" in doc["verdict"] and "kubectl get vmcp centos.6 -o yaml" in doc["verdict"]
    assert any("default_windows" in f["message"] and f["severity"] == "warning" for f in doc["findings"])
    # a truncated copy of the same file is an error naming it, not a partial explanation
    cut = tmp_path / "cut.xml"
    cut.write_text(dump[: len(dump) // 2])
    r = run_plugin("explain", "-f", str(manifest), "--dumpxml", str(cut))
    assert r.returncode == 1 and r.stderr.startswith("error: %s is not a whole domain XML" % cut), r.stderr


def test_the_first_wrong_field_is_named_and_nulls_are_dropped_in_large_maps():
    """The shape check's first pass tracks no path: the error still names the first wrong
    field in the document's order, with its path, and a null among many fields is dropped."""
    obj = json.loads(json.dumps(VM))
    meta = obj["metadata"]
    meta.update({"uid": "u", "generation": 1, "resourceVersion": "9", "finalizers": ["f"], "managedFields": [{}],
                 "creationTimestamp": None, "deletionTimestamp": None,
                 "labels": {"l%d" % i: "v" for i in range(50)}, "annotations": {"a%d" % i: "v" for i in range(50)}})
    devices = obj["spec"]["template"]["spec"]["domain"]["devices"]
    devices["disks"] = [{"name": "d%d" % i, "disk": {"bus": "virtio", "pciAddress": None}, "bootOrder": None}
                        for i in range(20)]
    devices["interfaces"] = None
    vm = read(json.dumps(obj))
    assert all(set(d) == {"name", "disk"} and d["disk"] == {"bus": "virtio"} for d in vm.devices["disks"])
    assert "interfaces" not in vm.devices and len(vm.labels) == 50
    assert obj["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]["bootOrder"] is None  # not mutated
    devices["disks"][7]["disk"]["bus"] = 7
    devices["disks"][3]["name"] = ["x"]
    assert "spec.template.spec.domain.devices.disks[3].name is a list, not a string" in refused(json.dumps(obj))
    devices["disks"][3]["name"] = "d3"
    assert "spec.template.spec.domain.devices.disks[7].disk.bus is a number, not a string" in refused(json.dumps(obj))
    devices["disks"][7]["disk"]["bus"] = "virtio"
    meta["labels"]["l30"] = 5
    meta["labels"]["l40"] = ["x"]
    assert "metadata.labels[l30] is a number, not a string" in refused(json.dumps(obj))
    meta["labels"]["l30"] = "v"
    assert "metadata.labels[l40] is a list, not a string" in refused(json.dumps(obj))
    meta["labels"]["l40"] = "v"
    meta["annotations"][3] = "x"  # YAML allows a number as key; the API server does not
    assert "metadata.annotations[3]" in refused(yaml.safe_dump(obj))
