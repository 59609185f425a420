"""`set-transitional` against the local API server: one field, resourceVersion-guarded,
dry runs, preview, restart, selectors and refusals."""
import copy
import json
import os
import re
import shlex

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
    """The object minus what issue 4 allows a write to change: the field, resourceVersion and
    generation.  (A real API server would also rewrite metadata.managedFields; the test
    server does not keep managedFields, so nothing else is dropped here.)"""
    v = copy.deepcopy(vm)
    for k in ("resourceVersion", "generation"):
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
    before = cluster.get("vm", "testvm", "default")
    r = run(run_plugin, cluster, "vm/testvm", "--off")
    assert r.returncode == 0, r.stderr
    after = cluster.get("vm", "testvm", "default")
    assert flag(after) is False and without_volatile(after) == without_volatile(before)
    r = run(run_plugin, cluster, "testvm", "--unset")
    assert r.returncode == 0, r.stderr
    after = cluster.get("vm", "testvm", "default")
    assert flag(after) == "<absent>" and without_volatile(after) == without_volatile(before)
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


def owned_by(obj, kind, name, api_version):
    obj["metadata"]["ownerReferences"] = [{"apiVersion": api_version, "kind": kind, "name": name, "uid": "1234",
                                           "controller": True, "blockOwnerDeletion": True}]
    return obj


@pytest.mark.parametrize("setup,args,needles", [
    ("vmi-only", ["vmi/lonely"], ["immutable", "recreate"]),
    ("vmi-only", ["lonely"], ["immutable", "recreate"]),
    ("pool", ["pooled"], ["VirtualMachinePool mypool", "patch the VirtualMachinePool's template",
                          "kubectl patch vmpool mypool --type merge -p '{\"spec\":{\"virtualMachineTemplate\":"
                          "{\"spec\":{\"template\":{\"spec\":{\"domain\":{\"devices\":"
                          "{\"useVirtioTransitional\":true}}}}}}}}'"]),
    # docs/kubevirt.md §5: a VMI of a replica set is changed through the replica set's template
    ("replicaset", ["vmi/replica-x7k2p"], ["VirtualMachineInstanceReplicaSet myrs", "template",
                                          "kubectl patch vmirs myrs --type merge", "immutable"]),
    ("replicaset", ["replica-x7k2p"], ["VirtualMachineInstanceReplicaSet myrs", "template"]),
])
def test_refusals(run_plugin, cluster, setup, args, needles):
    if setup == "vmi-only":
        cluster.put(objects.vmi("lonely", "default"))
    elif setup == "replicaset":
        cluster.put(owned_by(objects.vmi("replica-x7k2p", "default"), "VirtualMachineInstanceReplicaSet", "myrs",
                             "kubevirt.io/v1"))
    else:
        cluster.put(owned_by(objects.vm("pooled"), "VirtualMachinePool", "mypool", "pool.kubevirt.io/v1alpha1"))
    r = run(run_plugin, cluster, *args)
    assert r.returncode == 1 and r.stderr.startswith("error: ")
    for n in needles:
        assert n in r.stderr
    if setup != "vmi-only":
        assert "has no VirtualMachine" not in r.stderr and "recreate" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
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


# --- restart decisions (docs/kubevirt.md §5: only a restart applies the field; the VMI spec
# holds the value in effect, a preference's included, §3) ------------------------------------

def running_with(cluster, name="testvm", *, template_flag=None, live_flag=None, **vm_kwargs):
    """A running VM whose template says `template_flag` while its VMI runs with `live_flag`."""
    vmi_spec = objects.testvm_template_spec(use_virtio_transitional=live_flag)
    return cluster.add_running_vm(name, "default", vm_kwargs={"use_virtio_transitional": template_flag, **vm_kwargs},
                                  vmi_kwargs={"spec": vmi_spec})


def test_unchanged_field_but_running_vm_differs_is_restarted(run_plugin, cluster):
    # The template already says true (someone patched it), the VM never restarted.
    running_with(cluster, template_flag=True, live_flag=None, restart_required=True)
    r = run(run_plugin, cluster, "testvm")
    assert r.returncode == 0, r.stderr
    assert "virtualmachine.kubevirt.io/testvm unchanged" in r.stdout
    assert "runs with useVirtioTransitional false; its next start gives true" in r.stdout
    assert "KubeVirt shows RestartRequired" in r.stdout and "--restart" in r.stdout
    assert not cluster.restarts
    r = run(run_plugin, cluster, "testvm", "--restart")
    assert r.returncode == 0, r.stderr
    assert "unchanged" in r.stdout and "restart requested" in r.stdout
    assert [(x.namespace, x.name) for x in cluster.restarts] == [("default", "testvm")]
    assert not [x for x in cluster.request_log() if x.method == "PATCH"]


def test_no_restart_when_running_vm_already_has_the_value(run_plugin, cluster):
    # The preference gave the running VMI true; pinning true in the template changes nothing running.
    pref = objects.cluster_preference("linux.virtiotransitional", use_virtio_transitional=True)
    rev = objects.preference_revision_name("testvm", pref)
    stack = running_with(cluster, live_flag=True, preference="linux.virtiotransitional", preference_revision=rev)
    cluster.put(pref, objects.controller_revision(rev, "default", data=pref, owner_vm=stack.vm))
    r = run(run_plugin, cluster, "testvm", "--restart")
    assert r.returncode == 0, r.stderr
    assert "virtualmachine.kubevirt.io/testvm patched" in r.stdout
    assert "unset -> true (effective at next start: true, from vm)" in r.stdout
    assert "not restarting testvm: the running VM already has useVirtioTransitional true" in r.stdout
    assert "Restart it" not in r.stdout
    assert not cluster.restarts and not [x for x in cluster.request_log() if x.method == "PUT"]
    assert flag(cluster.get("vm", "testvm")) is True


def test_restart_required_for_another_change_is_not_ours_to_apply(run_plugin, cluster):
    running_with(cluster, template_flag=True, live_flag=True, restart_required=True)
    r = run(run_plugin, cluster, "testvm", "--restart")
    assert r.returncode == 0, r.stderr
    assert "not restarting" in r.stdout and "RestartRequired is set for another change" in r.stdout
    assert not cluster.restarts


def test_restart_with_dry_run_says_what_it_did_not_do(run_plugin, cluster):
    cluster.add_running_vm("testvm", "default")
    r = run(run_plugin, cluster, "testvm", "--restart", "--dry-run=client")
    assert r.returncode == 0, r.stderr
    assert "would restart testvm" in r.stdout and "not restarted" in r.stdout
    assert not [x for x in cluster.request_log() if x.method in ("PUT", "PATCH")]
    # server dry run: the restart subresource is asked with dryRun too, and stores nothing
    r = run(run_plugin, cluster, "testvm", "--restart", "--dry-run=server")
    assert r.returncode == 0, r.stderr
    assert "restart accepted (server dry run): not restarted" in r.stdout
    puts = [x for x in cluster.request_log() if x.method == "PUT"]
    assert len(puts) == 1 and puts[0].path.endswith("/virtualmachines/testvm/restart")
    assert not cluster.restarts
    assert "stateChangeRequests" not in cluster.get("vm", "testvm")["status"]
    assert flag(cluster.get("vm", "testvm")) == "<absent>"
    # ... so a server dry run already shows the runStrategy refusal
    cluster.add_running_vm("once", "default", vm_kwargs={"run_strategy": "Once"})
    r = run(run_plugin, cluster, "once", "--restart", "--dry-run=server")
    assert r.returncode == 1 and "refused to restart" in r.stderr and "Once" in r.stderr
    assert "patched (server dry run), but" in r.stderr
    assert flag(cluster.get("vm", "once")) == "<absent>"


def test_selector_restart_refusal_is_counted_and_fails_the_run(run_plugin, cluster):
    cluster.add_running_vm("a", "default", vm_kwargs={"labels": {"os": "rhel6"}})
    cluster.add_running_vm("b", "default", vm_kwargs={"labels": {"os": "rhel6"}, "run_strategy": "Once"})
    r = run(run_plugin, cluster, "-l", "os=rhel6", "--restart")
    assert r.returncode == 1
    assert "2 VM(s): 2 patched, 0 unchanged, 0 failed, 1 restart(s) failed" in r.stdout
    assert "error: default/b: virtualmachine.kubevirt.io/b was patched, but KubeVirt refused to restart b" in r.stderr
    assert [x.name for x in cluster.restarts] == ["a"]
    assert flag(cluster.get("vm", "b")) is True


def test_restart_of_a_stopped_vm_says_nothing_was_restarted(run_plugin, cluster):
    cluster.put(objects.vm("testvm", run_strategy="Halted"))
    r = run(run_plugin, cluster, "testvm", "--restart")
    assert r.returncode == 0, r.stderr
    assert "not running: nothing restarted" in r.stdout
    assert not [x for x in cluster.request_log() if x.method == "PUT"]


# --- machine-readable output ----------------------------------------------------------------

def test_json_and_yaml_keep_stdout_parseable_and_say_the_rest_on_stderr(run_plugin, cluster):
    running_with(cluster, template_flag=True, live_flag=None)
    r = run(run_plugin, cluster, "testvm", "--unset", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert flag(json.loads(r.stdout)) == "<absent>"
    assert "default false applies" in r.stderr
    assert "preview default/testvm" in r.stderr and "no restart needed" in r.stderr
    r = run(run_plugin, cluster, "testvm", "-o", "yaml")
    assert r.returncode == 0, r.stderr
    assert flag(yaml.safe_load(r.stdout)) is True
    assert "virtualmachine.kubevirt.io/testvm patched" in r.stderr
    assert "disk containerdisk: virtio-non-transitional -> virtio-transitional" in r.stderr
    assert "PCIe root port -> conventional PCI slot" in r.stderr and "--restart" in r.stderr


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_selector_with_json_or_yaml_prints_one_list(run_plugin, cluster, fmt):
    for ns, name in [("default", "a"), ("prod", "b")]:
        cluster.put(objects.vm(name, ns, labels={"os": "rhel6"}, run_strategy="Halted"))
    cluster.put(objects.vm("c", "prod", labels={"os": "rhel6"}, run_strategy="Halted", use_virtio_transitional=True))
    r = run(run_plugin, cluster, "-l", "os=rhel6", "-A", "-o", fmt)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout) if fmt == "json" else yaml.safe_load(r.stdout)  # exactly one document
    assert doc["apiVersion"] == "v1" and doc["kind"] == "List"
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in doc["items"]] == \
        [("default", "a"), ("prod", "b"), ("prod", "c")]
    assert all(flag(i) is True for i in doc["items"])
    assert "3 VM(s): 2 patched, 1 unchanged, 0 failed" in r.stderr


# --- the preview follows the machine type (docs/libvirt.md §1.3) --------------------------------

@pytest.mark.parametrize("arch,machine,needle,absent", [
    ("amd64", "q35", "PCIe root port -> conventional PCI slot", "stays in a conventional PCI slot"),
    ("arm64", "virt", "PCIe root port -> conventional PCI slot", "stays in a conventional PCI slot"),
    ("amd64", "pc-i440fx-rhel7.6.0", "stays in a conventional PCI slot; modern-only -> transitional",
     "PCIe root port"),
])
def test_preview_follows_the_machine_type(run_plugin, cluster, arch, machine, needle, absent):
    tmpl = objects.testvm_template_spec()
    tmpl["architecture"] = arch
    tmpl["domain"]["machine"] = {"type": machine}
    stack = objects.running_vm("testvm", vm_kwargs={"template_spec": tmpl}, vmi_kwargs={"architecture": arch})
    stack.vmi["status"]["machine"] = {"type": machine}  # the fixture's VMI status always says q35/virt
    cluster.put(*stack)
    r = run(run_plugin, cluster, "testvm", "--dry-run=client")
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("disk ")]
    assert rows and all(needle in line for line in rows), r.stdout
    assert absent not in r.stdout
    family = {"q35": "q35", "virt": "virt"}.get(machine, "i440fx")
    assert "machine: %s" % family in r.stdout


def test_preview_of_a_running_i440fx_vm_uses_the_vmis_machine(run_plugin, cluster):
    # No machine in the template: the next start gets what the VMI got (the cluster default).
    stack = objects.running_vm("testvm")
    stack.vmi["spec"]["domain"]["machine"] = {"type": "pc-i440fx-rhel7.6.0"}
    stack.vmi["status"]["machine"] = {"type": "pc-i440fx-rhel7.6.0"}
    cluster.put(*stack)
    r = run(run_plugin, cluster, "testvm", "--off")
    assert r.returncode == 0, r.stderr
    assert "PCIe" not in r.stdout and "machine: i440fx" in r.stdout


# --- conflicts ------------------------------------------------------------------------------

def test_conflict_retry_limit(run_plugin, cluster):
    """Another writer gets in before every one of our PATCHes: after MAX_CONFLICT_RETRIES
    re-reads we give up with exit 1, and their writes all stand."""
    from kubectl_virtio.set_transitional import MAX_CONFLICT_RETRIES

    cluster.put(objects.vm("testvm"))

    def someone_else(vm):
        labels = vm["metadata"].setdefault("labels", {})
        labels["edits"] = str(int(labels.get("edits", "0")) + 1)
        cluster.concurrent_edit("vm", "testvm", "default", mutate=someone_else)  # re-arm for the next write

    cluster.concurrent_edit("vm", "testvm", "default", mutate=someone_else)
    r = run(run_plugin, cluster, "testvm")
    assert r.returncode == 1
    attempts = MAX_CONFLICT_RETRIES + 1
    assert r.stderr.count("modified concurrently") == MAX_CONFLICT_RETRIES
    assert ("error: VirtualMachine default/testvm kept changing under us (%d conflicts); nothing was overwritten"
            % attempts) in r.stderr
    patches = [x for x in cluster.request_log() if x.method == "PATCH"]
    assert len(patches) == attempts and all(x.status == 409 for x in patches)
    after = cluster.get("vm", "testvm")
    assert after["metadata"]["labels"]["edits"] == str(attempts) and flag(after) == "<absent>"


# --- odd objects and missing permissions ------------------------------------------------------

@pytest.mark.parametrize("null_at", ["domain", "devices"])
@pytest.mark.parametrize("dry_run", ["none", "client"])
def test_null_domain_or_devices(run_plugin, cluster, null_at, dry_run):
    tmpl = objects.testvm_template_spec()
    if null_at == "domain":
        tmpl["domain"] = None
    else:
        tmpl["domain"]["devices"] = None
    cluster.put(objects.vm("testvm", template_spec=tmpl, run_strategy="Halted"))
    r = run(run_plugin, cluster, "testvm", "--dry-run=" + dry_run, "-o", "json")
    assert r.returncode == 0, r.stderr
    assert flag(json.loads(r.stdout)) is True
    assert flag(cluster.get("vm", "testvm")) is (True if dry_run == "none" else "<absent>")


def test_unreadable_preference_degrades_the_preview(run_plugin, cluster):
    from apiserver.rbac import READ, Rule

    pref = objects.cluster_preference("linux.virtiotransitional", use_virtio_transitional=True)
    rev = objects.preference_revision_name("testvm", pref)
    stack = running_with(cluster, template_flag=True, live_flag=True, preference="linux.virtiotransitional",
                         preference_revision=rev)
    cluster.put(pref, objects.controller_revision(rev, "default", data=pref, owner_vm=stack.vm))
    # may read and patch VMs, not ControllerRevisions or preferences
    cluster.add_user("vm-admin", [Rule(READ, ("kubevirt.io",)),
                                  Rule(("patch",), ("kubevirt.io",), ("virtualmachines",)),
                                  Rule(("update",), ("subresources.kubevirt.io",), ("virtualmachines/restart",))])
    r = run(run_plugin, cluster, "testvm", "--unset", user="vm-admin")
    assert r.returncode == 0, r.stderr
    assert "warning: cannot read" in r.stderr and "ControllerRevision" not in r.stderr.split("warning:")[0]
    assert "(origin \"unknown\")" in r.stderr
    assert "effective at next start: unknown, from unknown" in r.stdout
    assert "depends on the preference, which could not be read" in r.stdout
    assert flag(cluster.get("vm", "testvm")) == "<absent>"
    assert any(x.resource == "controllerrevisions" and x.status == 403 for x in cluster.request_log())
    # nothing changed and the preference is unreadable: KubeVirt's RestartRequired decides
    r = run(run_plugin, cluster, "testvm", "--unset", "--restart", user="vm-admin")
    assert r.returncode == 0 and "KubeVirt does not show RestartRequired" in r.stdout and not cluster.restarts
    # setting an explicit value does not depend on the preference: the preview is complete
    r = run(run_plugin, cluster, "testvm", "--off", user="vm-admin")
    assert r.returncode == 0, r.stderr
    assert "effective at next start: false, from vm" in r.stdout and "depends on" not in r.stdout


# --- the README shows real output for the motivating VM (issue 4, "Done when") ----------------

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def centos6_stack():
    """The motivating VM: a CentOS 6.10 guest (no virtio 1.0 drivers), running on q35 with
    useVirtioTransitional unset, so every virtio device is modern-only (non-transitional)."""
    tmpl = objects.testvm_template_spec()
    tmpl["volumes"][0]["containerDisk"]["image"] = "registry.example.com/legacy/centos6-containerdisk:6.10"
    tmpl["domain"]["resources"]["requests"]["memory"] = "1Gi"
    return objects.running_vm("centos6", "default", vm_kwargs={
        "template_spec": tmpl, "labels": {"vm.kubevirt.io/os": "centos6.10"},
        "template_labels": {"kubevirt.io/domain": "centos6", "vm.kubevirt.io/os": "centos6.10"}})


def readme_blocks():
    """(command, stdout) of every `$ kubectl virtio set-transitional ...` block in the README's
    set-transitional section, in order."""
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    start = text.index("### `set-transitional`")
    end = text.find("\n### ", start + 1)
    section = text[start:end if end > 0 else None]
    blocks = re.findall(r"^```\n(.*?)^```", section, re.S | re.M)
    out = []
    for b in blocks:
        cmd, _, stdout = b.partition("\n")
        if cmd.startswith("$ kubectl virtio set-transitional "):
            out.append((shlex.split(cmd[len("$ kubectl virtio "):]), stdout))
    return out


def _rv_free(text):
    # the test server's resourceVersion counter depends on the tests that ran before
    return re.sub(r'"resourceVersion":"\d+"', '"resourceVersion":"N"', text)


def test_readme_shows_real_output_for_the_motivating_vm(run_plugin, cluster):
    blocks = readme_blocks()
    assert [b[0][:2] for b in blocks] == [["set-transitional", "centos6"]] * len(blocks) and len(blocks) >= 2
    cluster.put(*centos6_stack())
    for args, shown in blocks:
        r = run_plugin(*args, env=cluster.env())
        assert r.returncode == 0, r.stderr
        assert _rv_free(r.stdout) == _rv_free(shown), \
            "README block `%s` is not what the command prints now:\n%s" % (" ".join(args), r.stdout)
    assert [(x.namespace, x.name) for x in cluster.restarts] == [("default", "centos6")]


# --- unit tests: the plan, its next steps and the command's Run, without a subprocess ------------

import io  # noqa: E402

from fake_cluster import FakeCluster  # noqa: E402
from kubectl_virtio import context as C  # noqa: E402
from kubectl_virtio import set_transitional as ST  # noqa: E402
from kubectl_virtio.cmdline import Streams  # noqa: E402

NEWEST = C.Release(C.V.NEWEST, C.SOURCE_NEWEST)


def ctx_of(vm, vmi=None, pref=None):
    return C.build(vm, vmi, release=NEWEST, pref=pref)


def test_plan_of_a_stopped_vm():
    plan = ST.make_plan(ctx_of(objects.vm("testvm", run_strategy="Halted")), True)
    assert (plan.current, plan.desired, plan.before, plan.after) == (None, True, (False, "default"), (True, "vm"))
    assert plan.changed and plan.differs is False and not plan.running
    assert ST.next_steps(False, "none", plan) == ["Next: VM testvm is not running; the change applies when it starts."]
    assert ST.next_steps(True, "none", plan) == []   # --restart says itself why nothing restarts
    rows = {(r[0], r[1]): r for r in plan.rows}
    assert rows[("disk", "containerdisk")][2:4] == ["virtio-non-transitional", "virtio-transitional"]
    assert plan.machine_next == "q35" and "assumed" in plan.machine_note


def test_plan_of_a_running_vm_that_will_differ_and_one_that_already_has_it():
    stack = objects.running_vm("testvm")
    plan = ST.make_plan(ctx_of(stack.vm, stack.vmi), True)
    assert plan.running and plan.live is False and plan.differs is True
    steps = ST.next_steps(False, "none", plan)
    assert len(steps) == 1 and "runs with useVirtioTransitional false; its next start gives true" in steps[0]
    assert "set-transitional testvm --restart" in steps[0] and "KubeVirt will show RestartRequired" in steps[0]
    # with --restart (and no dry run) the step says no more than that the restart applies it
    assert "Restart it" not in ST.next_steps(True, "none", plan)[0]
    stack = objects.running_vm("testvm", vmi_kwargs={"use_virtio_transitional": True})
    plan = ST.make_plan(ctx_of(stack.vm, stack.vmi), True)
    assert plan.differs is False
    assert ST.next_steps(False, "none", plan) == [
        "The running VM already has useVirtioTransitional true, which the next start keeps: no restart needed."]


def test_plan_with_an_unreadable_preference():
    stack = objects.running_vm("testvm", vm_kwargs={"preference": "linux"}, vmi_kwargs={"use_virtio_transitional": True})
    read = C.PreferenceRead(problem="long text", reason="cannot read VirtualMachineClusterPreference linux (forbidden)")
    plan = ST.make_plan(ctx_of(stack.vm, stack.vmi, read), None)
    assert plan.after == (None, "unknown") and plan.differs is False   # nothing changes: KubeVirt's condition decides
    assert plan.warnings and plan.warnings[0].startswith("cannot read VirtualMachineClusterPreference linux")
    plan = ST.make_plan(ctx_of(stack.vm, stack.vmi, read), False)
    assert plan.after == (False, "vm") and plan.differs is True


def run_command(fake, **kw):
    opts = ST.SetTransitionalOptions(**kw)
    opts.validate()
    out, err = io.StringIO(), io.StringIO()
    code = opts.run(fake, Streams(out, err))
    return code, out.getvalue(), err.getvalue()


def test_run_with_a_fake_adapter_dry_run_client_writes_nothing():
    fake = FakeCluster(objects.vm("testvm", run_strategy="Halted"))
    code, out, err = run_command(fake, vm="testvm", dry_run="client")
    assert code == 0 and "would send to virtualmachine.kubevirt.io/testvm" in out and "patched (dry run)" in out
    assert not [c for c in fake.calls if c[0] == "patch"] and err == ""
    code, out, err = run_command(fake, vm="testvm")
    assert code == 0 and [c for c in fake.calls if c[0] == "patch"] == [("patch", "default", "testvm")]
    assert fake.objs[("VirtualMachine", "default", "testvm")]["spec"]["template"]["spec"]["domain"]["devices"][
        "useVirtioTransitional"] is True


def test_run_over_a_selector_reads_each_preference_once_and_sums_up():
    pref = objects.cluster_preference("legacy", use_virtio_transitional=True)
    vms = [objects.vm("vm%d" % i, run_strategy="Halted", labels={"app": "web"}, preference="legacy") for i in range(3)]
    fake = FakeCluster(pref, *vms)
    code, out, err = run_command(fake, selector="app=web", unset=True, output="json")
    assert code == 0
    doc = __import__("json").loads(out)
    assert doc["kind"] == "List" and len(doc["items"]) == 3
    assert "3 VM(s): 0 patched, 3 unchanged, 0 failed" in err
    assert [c for c in fake.calls if c[0] == "VirtualMachineClusterPreference"] == [
        ("VirtualMachineClusterPreference", None, "legacy")]
