"""fleet.py: risks and their reasons, hotplug ports, --check ranks, ignores, sorting (pure)."""
import pytest

from kubectl_virtio import domain as D
from kubectl_virtio import fleet as F

CENTOS6 = {"id": "centos6.10", "source": "label", "virtio1": False, "evidence": "kernel 2.6.32"}
RHEL9 = {"id": "rhel9.4", "source": "label", "virtio1": True, "evidence": "since RHEL 7.2"}
WIN = {"id": "win2k22", "source": "label", "virtio1": None, "evidence": "virtio-win drivers decide"}


def ids(row):
    return [r.id for r in row.risks]


def test_no_virtio1_driver_at_next_start_and_while_running():
    stopped = F.evaluate(F.FleetInput("ns", "old", effective=False, origin="default", guest=CENTOS6))
    assert ids(stopped) == ["no-virtio1-driver"]
    msg = stopped.risks[0].message
    assert "centos6.10" in msg and "next start" in msg and "set-transitional old -n ns" in msg
    # flag already set but the domain still runs modern devices: restart, not set-transitional
    pending = F.evaluate(F.FleetInput("ns", "old", running=True, effective=True, origin="vm", live=False,
                                      restart_required=True, guest=CENTOS6))
    assert ids(pending) == ["no-virtio1-driver", "restart-pending"]
    assert "restart" in pending.risks[0].message and "set-transitional" not in pending.risks[0].message
    fixed = F.evaluate(F.FleetInput("ns", "old", running=True, effective=True, origin="vm", live=True,
                                    guest=CENTOS6))
    assert ids(fixed) == []


def test_needless_transitional_and_unknown_guest():
    row = F.evaluate(F.FleetInput("ns", "db", effective=True, origin="vm", guest=RHEL9))
    # the same fix explain gives: remove the VM's own field; override a preference with --off
    assert ids(row) == ["needless-transitional"] and "set-transitional db --unset -n ns" in row.risks[0].message
    row = F.evaluate(F.FleetInput("ns", "db", effective=True, origin="preference", guest=RHEL9))
    assert "set-transitional db --off -n ns" in row.risks[0].message
    assert ids(F.evaluate(F.FleetInput("ns", "db", effective=False, guest=RHEL9))) == []
    row = F.evaluate(F.FleetInput("ns", "w", effective=False, guest=WIN))
    assert ids(row) == ["unknown-guest"] and "virtio-win" in row.risks[0].message
    row = F.evaluate(F.FleetInput("ns", "x", effective=False, guest=None))
    assert ids(row) == ["unknown-guest"] and "vm.kubevirt.io/os" in row.risks[0].message


def test_unexpected_model_is_listed_with_the_devices():
    row = F.evaluate(F.FleetInput("ns", "v", effective=False, guest=RHEL9, live_checked=True,
                                  unexpected=["disk vda: virtio-transitional"] * 6))
    assert ids(row) == ["unexpected-model"]
    assert "disk vda: virtio-transitional" in row.risks[0].message and "(+2)" in row.risks[0].message


@pytest.mark.parametrize("kwargs, free, exhausted", [
    # v1 topology (KubeVirt < 1.6): 4 reserved interface slots minus the interfaces
    ({"kubevirt_version": "v1.5.2", "interfaces": 1}, 3, False),
    ({"kubevirt_version": "v1.5.2", "interfaces": 4}, 0, True),
    ({"kubevirt_version": "v1.5.2", "interfaces": 0}, 0, True),
    # v1 placeholders follow the flag: transitional ones go to the PCI bridge
    ({"kubevirt_version": "v1.5.2", "interfaces": 1, "effective": True}, 0, True),
    # v2/v3 keep at least 3 free at start: not predicted exactly, never exhausted
    ({"kubevirt_version": "v1.6.0", "interfaces": 4}, None, False),
    ({"topology_version": "v3", "interfaces": 9}, None, False),
    ({"root_complex": True}, 0, True),
    # before v1.0.0 no placeholder interfaces, no port reserved: nothing to predict
    ({"kubevirt_version": "v0.59.0", "interfaces": 1}, None, False),
    ({"kubevirt_version": "v0.20.0", "interfaces": 4}, None, False),
    ({"kubevirt_version": "v1.0.0", "interfaces": 1}, 3, False),
    # nothing to go by
    ({"interfaces": 4}, None, False),
    # not q35: no PCIe root ports at all
    ({"kubevirt_version": "v1.5.2", "interfaces": 4, "machine": "pc-i440fx-9.0"}, None, False),
])
def test_hotplug_prediction(kwargs, free, exhausted):
    base = {"effective": False, "guest": RHEL9}
    base.update(kwargs)
    row = F.evaluate(F.FleetInput("ns", "v", **base))
    assert row.hotplug_free == free
    assert ("hotplug-exhausted" in ids(row)) is exhausted


DOMAIN = """<domain type='kvm'><name>ns_v</name><os><type arch='x86_64' machine='pc-q35-rhel9.6.0'>hvm</type></os>
<devices>
<controller type='pci' index='0' model='pcie-root'/>
<controller type='pci' index='1' model='pcie-root-port'><address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></controller>
<controller type='pci' index='2' model='pcie-root-port'><address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x1'/></controller>
<controller type='pci' index='3' model='pcie-root-port'><address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x2'/></controller>
<disk type='file' device='disk' model='virtio-non-transitional'><target dev='vda' bus='virtio'/><alias name='ua-disk0'/><address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></disk>
<interface type='ethernet'><model type='virtio-non-transitional'/><alias name='ua-default'/><address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></interface>
%s
</devices></domain>"""
BALLOON_ON_3 = ("<memballoon model='virtio-non-transitional'><alias name='balloon0'/>"
                "<address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></memballoon>")


def test_free_root_ports_counted_in_the_live_domain():
    assert F.free_root_ports(D.parse(DOMAIN % "")) == 1
    full = D.parse(DOMAIN % BALLOON_ON_3)
    assert F.free_root_ports(full) == 0
    inp = F.FleetInput("ns", "v", running=True, effective=False, live=False, guest=RHEL9, kubevirt_version="v1.9.0")
    F.apply_domain(inp, full)
    row = F.evaluate(inp)
    assert row.hotplug_free == 0 and row.hotplug_source == "live" and "hotplug-exhausted" in ids(row)
    # an XML without libvirt's controllers cannot be counted
    assert F.free_root_ports(D.parse("<domain><devices><disk type='file'><target dev='vda' bus='virtio'/></disk>"
                                     "</devices></domain>")) is None


def test_accept_annotation_and_ignore_keep_the_row_but_not_the_failure():
    fail = F.parse_fail_on("no-virtio1-driver")
    inp = F.FleetInput("ns", "old", effective=False, guest=CENTOS6,
                       annotations={F.ACCEPT_ANNOTATION: "no-virtio1-driver, bogus"})
    row = F.evaluate(inp)
    assert ids(row) == ["no-virtio1-driver"] and row.risks[0].accepted and not row.open_risks
    assert not F.check_failed(row, fail)
    assert row.to_dict()["risks"][0]["accepted"] is True
    plain = F.FleetInput("ns", "old", effective=False, guest=CENTOS6)
    assert F.check_failed(F.evaluate(plain), fail)
    ignored = F.evaluate(plain, ignore=["ns/old"])
    assert ignored.ignored and not F.check_failed(ignored, fail) and ids(ignored) == ["no-virtio1-driver"]
    star = F.evaluate(F.FleetInput("ns", "db", effective=True, guest=RHEL9, annotations={F.ACCEPT_ANNOTATION: "*"}))
    assert star.risks and all(r.accepted for r in star.risks)


def test_fail_on_ranks_and_severities():
    restart = F.evaluate(F.FleetInput("ns", "r", effective=False, guest=RHEL9, restart_required=True))
    assert not F.check_failed(restart, F.parse_fail_on("no-virtio1-driver"))
    assert F.check_failed(restart, F.parse_fail_on("restart-pending"))
    assert F.check_failed(restart, F.parse_fail_on("warning"))
    assert not F.check_failed(restart, F.parse_fail_on("hotplug-exhausted"))
    assert F.parse_fail_on("info") < F.parse_fail_on("warning") < F.parse_fail_on("error")
    with pytest.raises(ValueError):
        F.parse_fail_on("sometimes")


def test_sorting_filtering_and_summary():
    rows = [F.evaluate(F.FleetInput("b", "z", effective=False, guest=RHEL9)),
            F.evaluate(F.FleetInput("a", "y", effective=False, guest=CENTOS6)),
            F.evaluate(F.FleetInput("c", "x", effective=True, guest=RHEL9))]
    assert [r.input.name for r in sorted(rows, key=F.sort_key("risk"))] == ["y", "x", "z"]
    assert [r.input.name for r in sorted(rows, key=F.sort_key("name"))] == ["x", "y", "z"]
    assert [r.input.namespace for r in sorted(rows, key=F.sort_key("namespace"))] == ["a", "b", "c"]
    assert [r.input.name for r in rows if F.wanted(r, ["needless-transitional"])] == ["x"]
    s = F.Summary(F.parse_fail_on("no-virtio1-driver"))
    for r in rows:
        s.add(r)
    assert s.to_dict() == {"vms": 3, "atRisk": 2, "byRisk": {"no-virtio1-driver": 1, "needless-transitional": 1}}
    assert s.failed == 1


def test_input_from_objects_reads_flag_origin_restart_and_release():
    from apiserver import objects

    vm = objects.vm("db", "prod", preference="centos.6", labels={"vm.kubevirt.io/os": "centos6.10"})
    vmi = objects.vmi("db", "prod", owner_vm=vm, use_virtio_transitional=True)
    pref = objects.cluster_preference("centos.6", use_virtio_transitional=True)
    inp = F.input_from_objects(vm, vmi, preference=pref)
    assert (inp.effective, inp.origin, inp.live, inp.restart_required) == (True, "preference", True, False)
    assert inp.kubevirt_version == "v1.9.0" and inp.guest["id"] == "centos6.10"
    # without the preference the origin is not guessed
    inp = F.input_from_objects(vm, vmi, preference_error="cannot read preference centos.6: forbidden")
    assert inp.effective is None and inp.origin == "unknown" and "forbidden" in inp.error
    # a running VM whose spec now differs from its domain: restart pending, and why
    vm2 = objects.vm("web", "prod", use_virtio_transitional=False)
    inp = F.input_from_objects(vm2, objects.vmi("web", "prod", owner_vm=vm2, use_virtio_transitional=True))
    assert inp.restart_required and "restart" in inp.restart_reason
    assert F.image_tag("quay.io/kubevirt/virt-launcher@sha256:abc") is None


def test_join_pairs_vms_and_vmis_page_by_page_holding_only_the_read_ahead():
    from kubectl_virtio.fleet_list import join

    def obj(kind, ns, name, owned=True):
        o = {"kind": kind, "metadata": {"namespace": ns, "name": name}}
        if kind == "VirtualMachineInstance" and owned:
            o["metadata"]["ownerReferences"] = [{"kind": "VirtualMachine", "name": name, "controller": True}]
        return o

    vms = [obj("VirtualMachine", "a", n) for n in ("x", "y", "z")] + [obj("VirtualMachine", "b", "x")]
    vmis = [obj("VirtualMachineInstance", "a", "lone", owned=False), obj("VirtualMachineInstance", "a", "w"),
            obj("VirtualMachineInstance", "a", "y"), obj("VirtualMachineInstance", "b", "x"),
            obj("VirtualMachineInstance", "c", "bare", owned=False)]
    seen = []

    def counted(items):
        for i in items:
            seen.append(i["metadata"]["name"])
            yield i

    pairs = [((vm or {}).get("metadata", {}).get("name"), (vmi or {}).get("metadata", {}).get("name"))
             for vm, vmi in join(iter(vms), counted(vmis))]
    # a/w's VM is not listed (another selector, or deleted meanwhile): dropped, not paired
    assert pairs == [(None, "lone"), ("x", None), ("y", "y"), ("z", None), ("x", "x"), (None, "bare")]
    assert seen == ["lone", "w", "y", "x", "bare"]  # each VMI read once, in order


class _Out:
    def __init__(self, tty):
        self.tty, self.parts, self.flushes = tty, [], 0

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        self.flushes += 1

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("fmt", ["json", "yaml", "table"])
def test_fleet_printer_flushes_each_row_on_a_terminal_and_once_into_a_pipe(fmt):
    """On a terminal a row shows as soon as it is ready; into a pipe or a file the stream's
    buffer decides (a flush a row was a write(2) a row) and close() flushes once."""
    from kubectl_virtio import render

    rows = [F.evaluate(F.FleetInput("ns", "vm%d" % i, effective=False, guest=RHEL9)) for i in range(130)]
    outs = {}
    for tty in (True, False):
        out = _Out(tty)
        p = render.FleetPrinter(fmt, out=out)
        for row in rows:
            p.add(row)
        p.close(F.Summary(F.parse_fail_on("no-virtio1-driver")).to_dict())
        outs[tty] = out
    assert "".join(outs[True].parts) == "".join(outs[False].parts)
    assert outs[False].flushes == 1
    assert outs[True].flushes >= (130 if fmt != "table" else 2)


def _guest_vm(labels=None, annotations=None, template_labels=None, template_annotations=None, pref=None):
    vm = {"kind": "VirtualMachine", "metadata": {"name": "g", "namespace": "ns", "labels": labels or {},
                                                 "annotations": annotations or {}},
          "spec": {"template": {"metadata": {"labels": template_labels or {},
                                             "annotations": template_annotations or {}}, "spec": {}}}}
    if pref:
        vm["spec"]["preference"] = {"name": pref}
    return vm


def test_the_guest_cache_key_reads_the_keys_guests_reads():
    from kubectl_virtio import guests

    assert F._OS_KEY == guests.OS_ANNOTATION
    assert F._OS_PREFIXES == (guests.OS_TEMPLATE_LABEL, guests.OS_NAME_ANNOTATION)
    d = {"app": "web", "vm.kubevirt.io/os": "rhel9", "os.template.kubevirt.io/rhel9.4": "true",
         "name.os.template.kubevirt.io/rhel9.4": "Red Hat", 7: "x", "vm.kubevirt.io/osx": "no"}
    assert F._os_items(d) == (("name.os.template.kubevirt.io/rhel9.4", "Red Hat"),
                              ("os.template.kubevirt.io/rhel9.4", "true"), ("vm.kubevirt.io/os", "rhel9"))
    assert F._os_items({"app": "web", 1: 2}) == () == F._os_items({1: 2, "app": "web"}) == F._os_items({})
    assert F._os_items({1: 2, "os.template.kubevirt.io/centos6.10": True}) == (
        ("os.template.kubevirt.io/centos6.10", "True"),)
    assert F._os_items({b"vm.kubevirt.io/os": "x", "vm.kubevirt.io/os": "fedora"}) == (("vm.kubevirt.io/os", "fedora"),)


def test_release_at_least_asked_again_gives_the_same_answers():
    for _ in range(2):  # the second time from the cache
        assert [F._release_at_least(v, (1, 6)) for v in ("v1.6.0", "v1.5.9", "1.10.1", None, "", "latest", "v2")] \
            == [True, False, True, False, False, False, False]
        assert F._release_at_least("v1.5.9", (1, 0)) and not F._release_at_least("v0.59.2", (1, 0))


def test_cached_guests_are_what_guests_assess_gives_for_each_vm():
    """VMs that differ only in one OS clue (a label, a template annotation, an os.template
    label's value, the preference) get their own guest, however warm the cache is."""
    from kubectl_virtio import guests

    vms = [_guest_vm(labels={"vm.kubevirt.io/os": "rhel9", "app": "a"}),
           _guest_vm(labels={"vm.kubevirt.io/os": "centos6", "app": "a"}),
           _guest_vm(labels={"vm.kubevirt.io/os": "centos6", "app": "b"}),  # same guest as the one before
           _guest_vm(template_annotations={"vm.kubevirt.io/os": "centos6"}),
           _guest_vm(labels={"os.template.kubevirt.io/centos6.10": "true"}),
           _guest_vm(labels={"os.template.kubevirt.io/centos6.10": "false"}),
           _guest_vm(annotations={"name.os.template.kubevirt.io/win2k22": "Windows"}),
           _guest_vm(template_labels={"os.template.kubevirt.io/rhel9.4": "true"}),
           _guest_vm(labels={"app": "none"}),
           _guest_vm(pref="centos.7"),
           _guest_vm(pref="rhel.9")]
    F._GUEST_CACHE.clear()
    for _ in range(2):  # cold, then warm
        got = [F.assess_guest(vm, None) for vm in vms]
        want = [guests.assess(vm, None) for vm in vms]
        assert [g and g.to_dict() for g in got] == [g and g.to_dict() for g in want]
    assert len({(g.id, g.source) if g else None for g in got}) >= 8
    vmi = {"kind": "VirtualMachineInstance", "metadata": {"name": "g"}, "status": {}}
    for info in ({"id": "centos", "versionId": "6"}, {"id": "rhel", "versionId": "9.4"}):
        vmi["status"]["guestOSInfo"] = info
        assert F.assess_guest(vms[8], vmi).to_dict() == guests.assess(vms[8], vmi).to_dict()


def test_summary_counts_as_check_failed_decides():
    """Summary.add computes the open risks once; it must count what check_failed and
    open_risks say, for ignored rows, accepted risks and every --fail-on rank."""
    inputs = [F.FleetInput("ns", "a", effective=False, guest=CENTOS6),
              F.FleetInput("ns", "b", effective=False, guest=CENTOS6,
                           annotations={F.ACCEPT_ANNOTATION: "no-virtio1-driver"}),
              F.FleetInput("ns", "c", effective=True, guest=RHEL9, restart_required=True),
              F.FleetInput("ns", "d", effective=False, guest=RHEL9),
              F.FleetInput("ns", "e", effective=False, guest=None, annotations={F.ACCEPT_ANNOTATION: "*"})]
    for ignore in ((), ["ns/a", "ns/c"], iter(["ns/a"])):
        ignore = list(ignore)
        rows = [F.evaluate(i, ignore) for i in inputs]
        assert [r.ignored for r in rows] == [("ns/%s" % i.name) in ignore for i in inputs]
        for rank in sorted({r for _, r in F.RISKS.values()} | {0, 100}):
            s = F.Summary(rank)
            for r in rows:
                s.add(r)
            assert s.failed == sum(F.check_failed(r, rank) for r in rows)
            assert s.at_risk == sum(bool(r.open_risks) for r in rows)
            assert sum(s.by_risk.values()) == sum(len(r.open_risks) for r in rows)
    assert F.evaluate(inputs[0], iter(["ns/a"])).ignored and not F.evaluate(inputs[0], iter([])).ignored


def test_json_rows_are_the_bytes_json_dumps_gives():
    """The printer encodes rows without json.dumps' cycle check: same bytes, non-ASCII and
    floats included."""
    import io
    import json

    from kubectl_virtio import render

    guest = dict(CENTOS6, evidence="noyau 2.6.32 \u2014 pas de virtio 1.0 \u00e9", others=[{"id": 1.5}])
    rows = [F.evaluate(F.FleetInput("ns", "caf\u00e9", effective=False, guest=guest, error="x\"y\\z\n")),
            F.evaluate(F.FleetInput("ns", "b", running=True, live=True, effective=True, origin="vm", guest=RHEL9))]
    out = io.StringIO()
    p = render.FleetPrinter("json", out=out)
    for r in rows:
        p.add(r)
    p.close({"vms": 2})
    lines = out.getvalue().splitlines()
    assert [line.strip().rstrip(",") for line in lines[3:5]] == [json.dumps(r.to_dict()) for r in rows]
    assert json.loads(out.getvalue())["items"] == [r.to_dict() for r in rows]
