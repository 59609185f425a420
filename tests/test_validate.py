"""validate.py and cmdline.py: input checks before any request, kubectl's flag conventions."""
import argparse

import pytest

from kubectl_virtio import cmdline, validate
from kubectl_virtio.errors import UsageError


@pytest.mark.parametrize("ns", ["default", "prod-1", "a", "x" * 63, "0abc"])
def test_good_namespaces(ns):
    validate.namespace(ns)


@pytest.mark.parametrize("ns", ["", "Prod", "a.b", "-a", "a-", "x" * 64, "a_b", "a b", "ü"])
def test_bad_namespaces(ns):
    with pytest.raises(UsageError) as e:
        validate.namespace(ns)
    assert e.value.exit_code == 2 and "not a valid namespace" in e.value.message


@pytest.mark.parametrize("name", ["testvm", "a.b-c", "x" * 253, "0"])
def test_good_names(name):
    validate.name(name)


@pytest.mark.parametrize("name", ["", "Bad_Name", "a..b", ".a", "x" * 254, "a/b", "vm\n"])
def test_bad_names(name):
    with pytest.raises(UsageError):
        validate.name(name)


def test_messages_never_echo_unbounded_input():
    huge = "A" * 100000
    for check in (validate.namespace, validate.name, validate.selector):
        with pytest.raises(UsageError) as e:
            check(huge)
        assert len(e.value.message) < 400, check
    with pytest.raises(UsageError) as e:
        validate.name("B" * 1000)
    assert "(1000 characters)" in e.value.message


def test_vm_refs():
    assert validate.vm_ref("testvm") == (None, "testvm")
    assert validate.vm_ref("vm/testvm") == ("vm", "testvm")
    assert validate.vm_ref("VirtualMachineInstance/x") == ("vmi", "x")
    assert validate.vm_ref("virtualmachines.kubevirt.io/x") == ("vm", "x")
    for bad in ("pod/x", "vm/", "vm/Bad", "vmi/x/y"):
        with pytest.raises(UsageError):
            validate.vm_ref(bad)
    with pytest.raises(UsageError):
        validate.vm_ref("vmi/x", allow_vmi=False)


@pytest.mark.parametrize("sel,expected", [
    ("app=web", [("app", "=", ["web"])]),
    ("app==web,tier!=db", [("app", "==", ["web"]), ("tier", "!=", ["db"])]),
    ("tier in (db, cache)", [("tier", "in", ["db", "cache"])]),
    ("tier notin (db)", [("tier", "notin", ["db"])]),
    ("legacy", [("legacy", "exists", [])]),
    ("!legacy", [("legacy", "!", [])]),
    ("vm.kubevirt.io/os=centos6.10", [("vm.kubevirt.io/os", "=", ["centos6.10"])]),
    ("app=", [("app", "=", [""])]),
    (" app = web , !x ", [("app", "=", ["web"]), ("x", "!", [])]),
])
def test_selector_grammar(sel, expected):
    assert validate.parse_selector(sel) == expected
    validate.selector(sel)


@pytest.mark.parametrize("sel", ["", " ", "=web", "app=web,", "app in web", "app in (a", "app=web db",
                                 "Bad_/x=y", "app=-web", "a" * 64 + "=b", "app=" + "v" * 64, "app=(x)",
                                 "!", "app!", "a=b;c=d"])
def test_bad_selectors(sel):
    with pytest.raises(UsageError) as e:
        validate.selector(sel)
    assert e.value.exit_code == 2 and "-l/--selector" in e.value.message


@pytest.mark.parametrize("text,seconds", [("0", None), ("10", 10.0), ("1.5", 1.5), ("30s", 30.0), ("1m30s", 90.0),
                                          ("500ms", 0.5), ("2h0m0s", 7200.0), ("1h1m1s", 3661.0), ("+5s", 5.0),
                                          ("250us", 0.00025), ("0s", None)])
def test_request_timeout_takes_go_durations(text, seconds):
    assert cmdline.duration(text) == pytest.approx(seconds) if seconds else cmdline.duration(text) is None


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "-1s", "1x", "", "1m30", "s", "1e5", "NaN", "infinity",
                                  "1 s", "9" * 100])
def test_request_timeout_refuses_the_rest(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cmdline.duration(text)


def test_kubectl_verbosity_is_removed_not_debug():
    words, level = cmdline.strip_verbosity(["explain", "-v=6", "x", "--v=2", "-v", "3", "--debug", "--", "-v=1"])
    assert words == ["explain", "x", "--debug", "--", "-v=1"] and level == 3
    assert cmdline.strip_verbosity(["list", "-v8"]) == (["list"], 8)
    assert cmdline.strip_verbosity(["list", "-v"]) == (["list"], 0)


def test_parser_views_for_completion():
    root = cmdline.build_parser(prog="kubectl virtio")
    subs = cmdline.subcommands(root)
    assert {"explain", "table", "dumpxml", "set-transitional", "list", "completion"} <= set(subs)
    flags = cmdline.flag_map(subs["explain"])
    assert flags["--arch"].choices == ("amd64", "arm64", "s390x") and flags["-f"].repeatable
    assert not flags["--pci"].takes_value and "-v" not in flags and "--debug" in flags


def test_kubevirt_version_flag():
    assert validate.release(None) is None and validate.release("v1.6.4") == (1, 6, 4)
    with pytest.raises(UsageError) as e:
        validate.release("v" + "9" * 10000)
    assert e.value.exit_code == 2 and len(e.value.message) < 200
