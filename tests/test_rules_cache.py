"""The rules' answers per release are worked out once (rules._at and the other caches): a
cached answer must be the one for the release asked, whatever was asked before.

Each test asks releases alternately on both sides of a boundary and compares with the
answer worked out from the table's data here, without the cache."""
import pathlib

from kubectl_virtio import domain as D
from kubectl_virtio import predict as P
from kubectl_virtio import rules as R
from kubectl_virtio import versions
from kubectl_virtio.rules import NT, T, UNSUPPORTED, Era, Read, Rule, SpecDevice
from kubectl_virtio.spec import vm_from_object


def _before(v):
    """The release just before a boundary (the last patch, or a high one of the last minor)."""
    major, minor, patch = v
    if patch:
        return major, minor, patch - 1
    if minor:
        return major, minor - 1, 99
    return major - 1, 99, 99


def _in(era, v):
    return (era.since is None or v >= era.since) and (era.until is None or v < era.until)


def _models(rule, v):
    for e in rule.eras:
        if _in(e, v):
            return e.models or rule.models
    return rule.models


def _alternating(rule):
    edges = sorted({b for e in rule.eras for b in (e.since, e.until) if b is not None})
    out = []
    for b in edges:
        out += [_before(b), b, _before(b), b]
    return out + [versions.OLDEST, versions.NEWEST, (9, 0, 0), versions.OLDEST]


def test_models_and_holds_follow_the_release_when_releases_alternate():
    for rule in R.RULES:
        for v in _alternating(rule):
            assert rule.models_at(v) == _models(rule, v), (rule.id, v)
            assert rule.holds_for(v) == any(_in(e, v) for e in rule.eras), (rule.id, v)
            era = rule.era(v)
            assert era is next((e for e in rule.eras if _in(e, v)), None), (rule.id, v)
            for arch in R.ARCHES:
                for flag in (False, True):
                    models = _models(rule, v)
                    assert rule.model(flag, arch, v) == models[arch][flag], (rule.id, v, arch, flag)


def test_known_answers_on_both_sides_of_era_boundaries_asked_in_turn():
    """Named answers (not derived from the table): a cache keyed by the row alone, or that
    kept the first release it saw, fails here."""
    watchdog, no_bus, balloon = R.rule("watchdog"), R.rule("disk.no-bus"), R.rule("memballoon.virtio")
    for _ in range(3):
        assert watchdog.model(False, "arm64", (0, 59, 2)) == "i6300esb"
        assert watchdog.model(False, "arm64", (1, 0, 0)) == UNSUPPORTED
        assert watchdog.model(False, "s390x", (1, 5, 0)) == "i6300esb"
        assert watchdog.model(False, "s390x", (1, 5, 1)) == "diag288"
        assert no_bus.model(True, "arm64", (0, 56, 1)) is None
        assert no_bus.model(True, "arm64", (0, 57, 0)) == T
        assert no_bus.model(False, "arm64", (0, 57, 0)) == NT
        assert not balloon.holds_for((0, 37, 3)) and balloon.holds_for((0, 38, 0))


def test_a_rule_outside_the_table_is_worked_out_from_its_own_eras():
    """A Rule built elsewhere (same id as a row) never gets the table row's cached answers."""
    row = R.rule("watchdog")
    other = Rule("watchdog", "watchdog", "x", R._fixed("other"),
                 (Era((1, 2, 0), None, (Read("v1.2.0", "f", "g"),), models=R._fixed("late")),), reason="x")
    for v in ((1, 0, 0), (1, 2, 0), (1, 0, 0), (1, 2, 0)):
        assert row.holds_for(v)
        assert other.holds_for(v) == (v >= (1, 2, 0))
        assert other.model(False, "amd64", v) == ("late" if v >= (1, 2, 0) else "other")
        assert row.model(False, "amd64", v) == "i6300esb"


def test_a_version_that_is_not_a_tuple_is_answered_uncached():
    rule = R.rule("graphics.vnc")  # one era with no bounds: holds whatever the release
    assert rule.holds_for([1, 9, 0]) and rule.model(False, "amd64", [1, 9, 0]) is None


def test_era_span_is_its_releases():
    for rule in R.RULES:
        for e in rule.eras:
            assert e.span == versions.Span(e.since, e.until)
            assert "span" not in repr(e)


# --- select() and classify() keep their answers per distinct device ------------------------

DOMAINS = pathlib.Path(__file__).parent / "data" / "domains"
RELEASES = [versions.parse(v) for v in (
    "v0.36.0", "v0.36.1", "v0.36.2", "v0.37.1", "v0.37.2", "v0.38.0", "v0.41.0", "v0.47.1", "v0.57.0", "v0.59.0",
    "v1.0.0", "v1.1.0", "v1.1.1", "v1.3.0", "v1.4.1", "v1.5.1", "v1.6.0", "v1.9.0")]
# What a `seen` may name besides the device's attributes in SEEN_READS.
SEEN_HELPERS = {"versions", "has_flag", "startswith", "bool"}


def test_every_seen_reads_only_the_attributes_classify_keys_on():
    """classify() keeps its answer per (release, SEEN_READS of the device): a condition that
    read another attribute (or called a helper that might) would be answered wrongly."""
    for rule in R.RULES:
        if rule.seen is None:
            continue
        code = rule.seen.__code__
        assert code.co_varnames[:code.co_argcount] == ("d", "v"), rule.id
        assert set(code.co_names) <= set(R.SEEN_READS) | SEEN_HELPERS, (rule.id, code.co_names)
        assert not [c for c in code.co_consts if hasattr(c, "co_code")], rule.id  # no nested function
        for cell in rule.seen.__closure__ or ():
            value = cell.cell_contents
            assert isinstance(value, str) or (isinstance(value, tuple) and all(isinstance(x, str) for x in value))


def test_classify_keys_on_the_release_and_every_attribute_in_seen_reads():
    dev = D.Device("disk", "n", type="file", device="disk", bus="virtio", model="m", alias="ua-n")
    assert R._seen_key(dev, (1, 2, 3)) == ((1, 2, 3),) + tuple(getattr(dev, a) for a in R.SEEN_READS)


def test_select_keys_on_every_field_of_the_spec_device():
    dev = SpecDevice("disk", (1, 2, 3), "arm64", dtype="lun", bus="scsi", bus_defaulted=True, model="m",
                     downward=True, passt=True, sriov=True, efi=True, on=False, usb=True, persistent=True,
                     slirp=True)
    assert R._spec_key(dev) == dev._values()
    assert len(R._spec_key(dev)) == len(SpecDevice._fields)


def _devices():
    for p in sorted(DOMAINS.glob("*.xml")):
        yield from D.parse(p.read_text()).devices


def test_classify_gives_the_scan_s_answer_for_every_fixture_device_at_every_release_twice():
    devs = list(_devices())
    for _ in range(2):  # the second pass is answered from what the first kept
        for v in RELEASES:
            for d in devs:
                assert R.classify(d, v) is R._classify(d, v), (d.kind, d.name, v)


def test_classify_alternating_releases_and_aliases():
    serial = D.Device("controller", "virtio-serial0", type="virtio-serial")  # no model
    nic = D.Device("interface", "default", model="virtio", alias="ua-default")
    balloon = D.Device("memballoon", "memballoon0", model="virtio")
    vf = D.Device("hostdev", "vf", alias="ua-sriov-vf")
    gpu = D.Device("hostdev", "gpu", alias="ua-gpu-gpu")
    for _ in range(3):
        assert R.classify(serial, (0, 36, 0)).id == "controller.virtio-serial.no-flag"
        assert R.classify(serial, (0, 36, 1)).id == "controller.virtio-serial.libvirt"
        assert R.classify(nic, (0, 37, 1)).id == "interface.virtio.no-flag"
        assert R.classify(nic, (0, 37, 2)).id == "interface.virtio"
        assert R.classify(balloon, (0, 37, 3)).id == "memballoon.legacy"
        assert R.classify(balloon, (0, 38, 0)).id == "memballoon.virtio"
        assert R.classify(vf, versions.NEWEST).id == "interface.sriov"
        assert R.classify(gpu, versions.NEWEST).id == "hostdev"
    # the answer follows a device changed in place between two calls
    nic.model = "e1000"
    assert R.classify(nic, (0, 37, 2)).id == "interface.emulated"


def test_select_alternating_releases():
    for _ in range(3):
        assert R.select(SpecDevice("controller.scsi", (0, 36, 1), "amd64")).id == "controller.scsi.legacy"
        assert R.select(SpecDevice("controller.scsi", (0, 36, 2), "amd64")).id == "controller.scsi"
        assert R.select(SpecDevice("vsock", (0, 59, 0), "amd64")).id == "vsock.translated"
        assert R.select(SpecDevice("vsock", (1, 0, 0), "amd64")).id == "vsock.virtio"
        assert R.select(SpecDevice("disk", (0, 36, 0), "amd64", bus="virtio")).id == "disk.virtio.no-flag"
        assert R.select(SpecDevice("disk", (0, 36, 1), "amd64", bus="virtio")).id == "disk.virtio"
        assert R.select(SpecDevice("vsock", (0, 58, 0), "amd64")) is None
        assert R.select(SpecDevice("interface", (1, 1, 1), "amd64", model="virtio", passt=True)).id \
            == "interface.passt-sidecar"
        assert R.select(SpecDevice("interface", (1, 1, 0), "amd64", model="virtio", passt=True)).id \
            == "interface.virtio"


def test_select_and_classify_take_values_a_key_cannot_hold():
    dev = SpecDevice("panic", versions.NEWEST, "amd64", model=["isa"])  # a manifest's list
    assert R.select(dev) is R._select(dev) and R.select(dev).id == "panic"
    odd = D.Device("video", "video0", model=["vga"])
    assert R.classify(odd, versions.NEWEST) is R._classify(odd, versions.NEWEST)


def test_kept_answers_stay_bounded():
    for i in range(R._KEPT + 10):
        R.classify(D.Device("disk", "d", bus="virtio", alias="ua-d%d" % i), versions.NEWEST)
        R.select(SpecDevice("panic", versions.NEWEST, "amd64", model="m%d" % i))
    assert len(R._CLASSIFIED) <= R._KEPT and len(R._SELECTED) <= R._KEPT
    assert R.classify(D.Device("disk", "d", bus="virtio", alias="ua-d1"), versions.NEWEST).id == "disk.virtio"



def test_absent_reasons_follow_the_release_when_releases_alternate():
    """prediction().absent: every rule holding at the release that no device uses, in table
    order, with the spec's own reason in place where it gave one, then the spec devices no
    rule makes; the generic texts are kept per release."""
    vm = vm_from_object({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "a"},
                         "spec": {"template": {"spec": {"domain": {"devices": {
                             "disks": [{"name": "root", "disk": {"bus": "virtio"}}], "disableHotplug": True}}}}}})
    no_scsi = "disableHotplug = true and no disk on bus scsi: no SCSI controller"
    for _ in range(2):
        for v in ((1, 3, 0), (1, 9, 0)):
            pred = P.prediction(vm, "s390x", v)
            used = {e.rule.id for e in pred.devices}
            keys = list(pred.absent)
            rule_keys = [r.id for r in R.RULES if r.holds_for(v) and r.id not in used]
            assert keys[:len(rule_keys)] == rule_keys, v
            assert pred.absent["controller.scsi"] == no_scsi
            for k in rule_keys:
                if k != "controller.scsi":
                    r = R.rule(k)
                    assert pred.absent[k] == (r.unpredicted or "nothing in the spec meets its condition (%s)"
                                              % r.condition), (k, v)
            if v == (1, 3, 0):  # s390x gets its virtio keyboard from v1.4.1: no rule makes it
                assert keys[len(rule_keys):] == ["input:keyboard0"]
                assert "v1.3.0 adds no keyboard" in pred.absent["input:keyboard0"]
            else:
                assert keys[len(rule_keys):] == [] and "input.s390x-keyboard" in used
