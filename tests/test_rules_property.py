"""Property: for every generated VMI, arch and release, the prediction keeps to the rules.

- each predicted model is one the claiming rule allows at that release and arch;
- exactly one rule claims each predicted device (no two rules' conditions overlap);
- every rule that holds at the release is either used by a predicted device or the
  prediction says why it has no such device;
- a live device with the predicted kind, bus and model is classified by a rule of the same
  kind that holds at the release (prediction and classification read the same rules).

Examples are drawn with a fixed derandomized seed and a modest count: seconds in CI.
"""
from hypothesis import HealthCheck, given, settings

from kubectl_virtio import domain as D
from kubectl_virtio import predict as P
from kubectl_virtio import rules as R
from kubectl_virtio import versions
from kubectl_virtio.spec import vm_from_object
from vmi_gen import manifests

# The release boundaries the rules claim, the tags on either side.
RELEASES = [versions.parse(v) for v in (
    "v0.36.0", "v0.36.1", "v0.36.2", "v0.37.1", "v0.37.2", "v0.37.3", "v0.38.0", "v0.40.1", "v0.41.0", "v0.41.4", "v0.42.0", "v0.46.1", "v0.47.1",
    "v0.48.0", "v0.53.2", "v0.54.0", "v0.56.1", "v0.57.0", "v0.58.2", "v0.59.0", "v1.0.0", "v1.0.1", "v1.1.0",
    "v1.1.1", "v1.3.0", "v1.4.0", "v1.4.1", "v1.5.0", "v1.5.1", "v1.6.0", "v1.9.0")]

SETTINGS = settings(max_examples=20, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
COVERAGE = settings(SETTINGS, max_examples=40)


def _live_device(e: P.Expected, model):
    """What the domain XML would show for a predicted device."""
    dev = D.Device(kind=e.kind, name=e.name, bus=e.bus, device=e.device, model=model, target=e.target)
    if e.kind == "controller":
        dev.type = e.name.rstrip("0123456789")
    elif e.kind == "hostdev" and e.rule.id == "interface.sriov":
        dev.alias = "ua-sriov-" + e.name
    elif e.kind == "input" and e.rule.id == "input.s390x-keyboard":
        dev.type = "keyboard"
    elif e.rule.id != "controller.virtio-serial.libvirt":
        dev.alias = "ua-" + e.name
    if e.rule.id == "controller.virtio-serial.libvirt":
        dev.model = None
    return dev


@SETTINGS
@given(manifests())
def test_predictions_keep_to_the_rules(manifest):
    vm = vm_from_object(manifest)
    flag = bool(vm.devices.get("useVirtioTransitional"))
    for version in RELEASES:
        for arch in R.ARCHES:
            conv_arch = R.effective_arch(arch, version)
            pred = P.prediction(vm, conv_arch, version)
            used = set()
            for e in pred.devices:
                assert e.rule.holds_for(version), (e.rule.id, versions.show(version))
                claims = [r.id for r in R.claims(e.spec)]
                assert claims == [e.rule.id], (e.kind, e.name, claims, versions.show(version))
                allowed = e.rule.allowed(conv_arch, version)
                model = e.model(flag, conv_arch)
                if allowed == {R.LITERAL}:
                    assert model is not None, (e.rule.id, e.name)
                else:
                    assert model in allowed and model != R.UNSUPPORTED, (e.rule.id, model, allowed)
                used.add(e.rule.id)
                seen = R.classify(_live_device(e, model), version)
                assert seen.kind == e.rule.kind and seen.holds_for(version), (e.rule.id, seen.id)
            for r in R.rules_for(version):
                assert r.id in used or pred.absent.get(r.id), (r.id, versions.show(version))
            assert ("bare" in pred.origin_text) == (vm.kind not in R.THROUGH_VM_CONTROLLER)


def test_the_generator_reaches_every_rule_that_predicts():
    """The generated manifests exercise every rule with a spec condition somewhere."""
    hit = set()

    @COVERAGE
    @given(manifests())
    def collect(manifest):
        vm = vm_from_object(manifest)
        for version in (versions.parse("v0.36.0"), versions.parse("v0.37.2"), versions.parse("v0.59.0"),
                        versions.NEWEST):
            for arch in R.ARCHES:
                hit.update(e.rule.id for e in P.predict(vm, R.effective_arch(arch, version), version))

    collect()
    predicting = {r.id for r in R.RULES if r.when is not None}
    assert predicting - hit == set()


@SETTINGS
@given(manifests())
def test_brief_explain_judges_every_device_as_the_full_one(manifest):
    """`list --live` explains domains with brief=True (no sentences, no guest); every device's
    status, model and expected model, and the flags, must be what the full explain gives,
    with the domain the prediction describes and with one whose models were switched."""
    from kubectl_virtio import explain as E

    vm = vm_from_object(manifest)
    for version in (RELEASES[0], RELEASES[6], RELEASES[-1]):
        for arch in ("amd64", "arm64"):
            conv_arch = R.effective_arch(arch, version)
            pred = P.prediction(vm, conv_arch, version)
            for flip in (False, True):
                flag = bool(vm.devices.get("useVirtioTransitional")) != flip
                dom = D.Domain(name="default_" + vm.name, arch="x86_64" if arch == "amd64" else "aarch64",
                               machine="q35" if arch == "amd64" else "virt",
                               devices=[_live_device(e, e.model(flag, conv_arch)) for e in pred.devices])
                full = E.explain(vm, dom, version=version, vm_running=True)
                brief = E.explain(vm, dom, version=version, vm_running=True, brief=True)

                def view(x):
                    return (x.effective, x.origin, x.live, x.restart_required,
                            [(d.kind, d.name, d.model, d.expected, d.status, d.rule) for d in x.devices])

                assert view(brief) == view(full)
                assert brief.verdict == "" and all(d.reason == "" for d in brief.devices)
