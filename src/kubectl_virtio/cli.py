"""The command line: argparse, one function a command.  Each command completes its
arguments, validates them (no cluster I/O on bad input), then runs.

Offline commands (table, explain -f/--dumpxml) never import the cluster adapter: it
loads the kubernetes client, which costs a quarter of a second.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from kubectl_virtio import __version__
from kubectl_virtio.errors import InputError, UsageError, VirtioError

OUTPUTS = ("table", "wide", "json", "yaml", "markdown")


def program_name(argv0: Optional[str] = None) -> str:
    """`kubectl virtio` when run as a kubectl plugin (argv[0] is then a full path)."""
    base = os.path.basename(argv0 or sys.argv[0] or "")
    return "kubectl virtio" if base.startswith("kubectl-") or base.startswith("kubectl_") else "kubectl-virtio"


class Parser(argparse.ArgumentParser):
    """kubectl-style usage errors: `error: ...` plus where to look, exit 2.  Descriptions are
    wrapped here (the raw formatter keeps the examples' layout but would not wrap them)."""

    def __init__(self, *args, description=None, **kwargs):
        if description:
            import textwrap

            description = textwrap.fill(description, 88, break_on_hyphens=False)
        super().__init__(*args, description=description, **kwargs)

    def error(self, message):
        raise UsageError(message, "See '%s --help' for usage." % self.prog)


def _add_cluster_flags(p: argparse.ArgumentParser, namespaced: bool = True) -> None:
    g = p.add_argument_group("cluster flags (as kubectl's)")
    g.add_argument("--kubeconfig", metavar="FILE", help="path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    g.add_argument("--context", metavar="NAME", help="the kubeconfig context to use")
    if namespaced:
        g.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: the context's, else default)")
    g.add_argument("--request-timeout", metavar="SECONDS", type=_seconds, default=None,
                   help="timeout of a single API request (e.g. 10, 30s, 1m; default: none)")


def _seconds(text: str) -> float:
    t = text.strip().lower()
    mult = 1.0
    for suffix, m in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], m
            break
    try:
        v = float(t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError("invalid duration %r (e.g. 10, 30s, 1m)" % text) from None
    if v < 0:
        raise argparse.ArgumentTypeError("the timeout must not be negative")
    return v


def _add_output(p, choices=OUTPUTS):
    p.add_argument("-o", "--output", default="table", choices=choices, metavar="FORMAT",
                   help="output format: %s" % "|".join(choices))


def _add_common(p):
    p.add_argument("-v", "--debug", action="store_true", help="print the traceback of an error")


def build_parser(prog: Optional[str] = None) -> Parser:
    prog = prog or program_name()
    root = Parser(prog=prog, description="Explain, check and fix the virtio models of KubeVirt VMs: why libvirt "
                                         "shows virtio-non-transitional or virtio-transitional, and what "
                                         "spec.domain.devices.useVirtioTransitional changes.",
                  formatter_class=argparse.RawDescriptionHelpFormatter,
                  epilog="Examples:\n"
                         "  %(prog)s explain testvm -n default        # live: spec, pod, virsh dumpxml\n"
                         "  %(prog)s explain -f vm.yaml --dumpxml dump.xml   # offline\n"
                         "  %(prog)s set-transitional testvm --dry-run=client\n"
                         "  %(prog)s table --arch arm64 -o wide\n")
    root.add_argument("--version", action="version", version="kubectl-virtio " + __version__)
    sub = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    ex = sub.add_parser("explain", help="explain every device's virtio model, live or from files",
                        description="For every device of the VM's libvirt domain: its model, the model KubeVirt's "
                                    "rules give for the spec, whether they agree, and why.",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="Examples:\n"
                               "  {p} explain testvm                     # live from the cluster\n"
                               "  {p} explain vmi/testvm -n prod -o json\n"
                               "  {p} explain -f testvm.yaml --dumpxml dump.xml\n"
                               "  kubectl get vm testvm -o yaml | {p} explain -f -\n"
                               "  {p} explain --dumpxml dump.xml --pci".format(p=prog))
    ex.add_argument("vm", nargs="?", metavar="VM", help="NAME, vm/NAME, vmi/NAME or virtualmachine/NAME")
    ex.add_argument("-f", "--filename", action="append", metavar="FILE",
                    help="VM, VMI or (Cluster)Preference manifest, YAML or JSON ('-' = stdin); repeatable")
    ex.add_argument("--dumpxml", metavar="FILE", help="a saved `virsh dumpxml` ('-' = stdin)")
    ex.add_argument("--arch", choices=("amd64", "arm64", "s390x"), help="converter architecture (default: the "
                                                                         "domain's, the VMI's node, spec.architecture, else amd64)")
    ex.add_argument("--kubevirt-version", metavar="V", help="apply the rules of this KubeVirt release (default: newest)")
    ex.add_argument("--guest-os", metavar="OS", help="the guest OS, e.g. centos6.10, rhel7.2, win10 "
                                                     "(default: from the VM's os labels)")
    ex.add_argument("--pci", action="store_true", help="also draw the domain's PCI topology")
    _add_output(ex)
    _add_cluster_flags(ex)
    _add_common(ex)

    tb = sub.add_parser("table", help="print KubeVirt's translate table (no cluster needed)",
                        description="KubeVirt's translate table: device and spec condition -> model when "
                                    "useVirtioTransitional is unset/false and when it is true.",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="Examples:\n  {p} table\n  {p} table --arch s390x -o wide\n"
                               "  {p} table --kubevirt-version v0.37.2 -o json".format(p=prog))
    tb.add_argument("--arch", choices=("amd64", "arm64", "s390x"), default="amd64", help="converter architecture")
    tb.add_argument("--kubevirt-version", metavar="V", help="KubeVirt release (default: newest)")
    tb.add_argument("--all", action="store_true", help="include rows of other KubeVirt releases")
    _add_output(tb)
    _add_common(tb)

    dx = sub.add_parser("dumpxml", help="print the live domain XML of a VM",
                        description="Print the running VM's libvirt domain XML, as `virsh dumpxml` gives it in the "
                                    "virt-launcher pod's compute container.",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="Examples:\n  {p} dumpxml testvm > testvm.xml\n"
                               "  {p} dumpxml testvm | {p} explain --dumpxml -".format(p=prog))
    dx.add_argument("vm", metavar="VM", help="NAME, vm/NAME or vmi/NAME")
    _add_cluster_flags(dx)
    _add_common(dx)

    st = sub.add_parser("set-transitional", help="set useVirtioTransitional on a VM (safe patch)",
                        description="Set spec.template.spec.domain.devices.useVirtioTransitional on VirtualMachines "
                                    "(true by default, --off for false, --unset to remove it). Only that field "
                                    "changes; a concurrent edit is never overwritten.",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="Examples:\n  {p} set-transitional centos6 --dry-run=client\n"
                               "  {p} set-transitional centos6 --restart\n"
                               "  {p} set-transitional -l os=rhel6 -A\n"
                               "  {p} set-transitional testvm --unset".format(p=prog))
    st.add_argument("vm", nargs="?", metavar="VM", help="NAME or vm/NAME")
    mode = st.add_mutually_exclusive_group()
    mode.add_argument("--off", action="store_true", help="set false (virtio-non-transitional)")
    mode.add_argument("--unset", action="store_true", help="remove the field: a preference (or the default "
                                                           "false) decides")
    st.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector: patch every matching VM")
    st.add_argument("-A", "--all-namespaces", action="store_true", help="with -l: in every namespace")
    st.add_argument("--dry-run", nargs="?", const="client", default="none", choices=("none", "client", "server"),
                    help="none|client|server: client shows what would be sent; server sends it with dryRun=All")
    st.add_argument("--restart", action="store_true", help="restart running VMs through KubeVirt so the change applies")
    _add_output(st, ("table", "json", "yaml"))
    _add_cluster_flags(st)
    _add_common(st)

    ls = sub.add_parser("list", help="fleet view: flag, guest OS and risk of every VM",
                        description="One row a VM: running, effective useVirtioTransitional and its origin, guest "
                                    "OS and whether it has virtio 1.0 drivers, restart pending, risk.",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="Examples:\n  {p} list -A\n  {p} list -l app=legacy\n"
                               "  {p} list -A --check   # exit 3 when a VM is at risk".format(p=prog))
    ls.add_argument("-A", "--all-namespaces", action="store_true", help="list VMs in every namespace")
    ls.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector")
    ls.add_argument("--check", action="store_true", help="exit 3 when a VM is at risk")
    _add_output(ls)
    _add_cluster_flags(ls)
    _add_common(ls)

    cp = sub.add_parser("completion", help="how to enable shell completion through kubectl",
                        description="kubectl (1.26+) completes plugin arguments through an executable named "
                                    "kubectl_complete-virtio on PATH. This prints how to install it.",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="Examples:\n  {p} completion        # is it installed, and if not, how\n"
                               "  kubectl virtio <TAB>           # then: subcommands, flags, VM names".format(p=prog))
    _add_common(cp)
    return root


# --- Commands ---------------------------------------------------------------------------

def _version(args):
    from kubectl_virtio import versions

    if not getattr(args, "kubevirt_version", None):
        return versions.NEWEST
    try:
        return versions.parse(args.kubevirt_version)
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_table(args) -> int:
    from kubectl_virtio import render, rules, versions

    version, warning = versions.rules_release(_version(args))
    arch = rules.effective_arch(args.arch, version)
    rows = rules.table_rows(version, arch, args.all)
    meta = {"kind": "VirtioTranslateTable", "arch": args.arch, "converterArch": arch,
            "kubevirtVersion": versions.show(version), "field": "spec.domain.devices.useVirtioTransitional"}
    print(render.translate_table(rows, meta, args.output))
    if warning:
        print("warning: " + warning, file=sys.stderr)
    if arch != args.arch:
        print("warning: KubeVirt %s has no %s converter; these are the amd64 rules it falls back to"
              % (versions.show(version), args.arch), file=sys.stderr)
    return 0


MAX_INPUT_BYTES = 16 * 1024 * 1024  # far above any manifest or domain XML; bounds memory on bad input


def _read_source(path: str, what: str, stdin_used: List[bool]) -> str:
    name = "stdin" if path == "-" else path
    if path == "-":
        if stdin_used[0]:
            raise UsageError("only one of -f and --dumpxml can read stdin ('-')")
        stdin_used[0] = True
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_INPUT_BYTES + 1)
        except FileNotFoundError:
            raise InputError("%s %s does not exist" % (what, path)) from None
        except IsADirectoryError:
            raise InputError("%s %s is a directory" % (what, path)) from None
        except OSError as e:
            raise InputError("cannot read %s %s: %s" % (what, path, e.strerror or e)) from None
    if len(data) > MAX_INPUT_BYTES:
        raise InputError("%s %s is larger than %d MiB: that is not a %s" % (
            what, name, MAX_INPUT_BYTES // (1024 * 1024), "VM manifest" if what == "manifest" else "domain XML"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("%s %s is not UTF-8 text" % (what, "stdin" if path == "-" else path)) from None


def cmd_explain(args) -> int:
    if args.vm and (args.filename or args.dumpxml):
        raise UsageError("give either a VM name (live) or -f/--dumpxml files (offline), not both")
    if not args.vm and not args.filename and not args.dumpxml:
        raise UsageError("explain needs a VM name, or -f FILE and/or --dumpxml FILE")
    version = _version(args)
    if args.vm:
        from kubectl_virtio import live  # loads the cluster adapter

        exp = live.explain(args, version)
    else:
        exp = explain_files(args, version)
    from kubectl_virtio import render

    print(render.explanation(exp, args.output, pci=args.pci))
    return 0


def explain_files(args, version):
    from kubectl_virtio import domain, explain, spec

    stdin_used = [False]
    vm = None
    if args.filename:
        objects = []
        for path in args.filename:
            text = _read_source(path, "manifest", stdin_used)
            objects.extend(spec.load_documents(text, "stdin" if path == "-" else path))
        vm = spec.select(objects, ", ".join(args.filename))
    dom = None
    if args.dumpxml:
        src = "stdin" if args.dumpxml == "-" else args.dumpxml
        dom = domain.parse(_read_source(args.dumpxml, "dumpxml", stdin_used), src, fragment=True)
    return explain.explain(vm, dom, arch=args.arch, version=version, guest_os=args.guest_os)


def cmd_completion(args) -> int:
    from kubectl_virtio import completion

    print(completion.instructions())
    return 0


def _live(name):
    def run(args):
        from kubectl_virtio import live

        return getattr(live, name)(args)

    return run


def _set_transitional(args):
    from kubectl_virtio import set_transitional

    return set_transitional.set_transitional(args)


COMMANDS = {"explain": cmd_explain, "table": cmd_table, "dumpxml": _live("dumpxml"),
            "set-transitional": _set_transitional, "list": _live("list_vms"), "completion": cmd_completion}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or "-v" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 0
        return COMMANDS[args.command](args)
    except VirtioError as e:
        if debug:
            import traceback

            traceback.print_exc()
        print("error: " + e.message, file=sys.stderr)
        if e.hint:
            print(e.hint, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kubectl virtio table | head`: stdout went away; exit quietly.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback by default
        if debug:
            raise
        print("error: internal error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        print("Rerun with --debug for the traceback, and please report it.", file=sys.stderr)
        return 1
