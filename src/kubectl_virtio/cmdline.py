"""The command line's grammar: one argparse tree for `cli` (which runs commands) and
`completion` (which completes them), kubectl's conventions for global flags, and the small
public views of the tree that completion needs (argparse has no public accessors for them).

Pure: nothing here touches a cluster or imports one.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from kubectl_virtio import __version__
from kubectl_virtio.errors import UsageError

# `list --live`: execs at a time.  Each exec waits mostly on the network and the kubelet, and
# its own CPU (a TLS handshake, the WebSocket upgrade, reading the domain) is a few ms: 16
# keeps a 2-core client busy against a remote API server (bench/fleet; docs/fleet.md).
LIST_PARALLEL = 16

OUTPUTS = ("table", "wide", "json", "yaml", "markdown")


def program_name(argv0: Optional[str] = None) -> str:
    """`kubectl virtio` when run as a kubectl plugin (argv[0] is then a full path)."""
    base = os.path.basename(argv0 or sys.argv[0] or "")
    return "kubectl virtio" if base.startswith("kubectl-") or base.startswith("kubectl_") else "kubectl-virtio"


def terminal_columns() -> int:
    """The terminal's width as shutil.get_terminal_size() gives it (CPython Lib/shutil.py):
    $COLUMNS when a positive number, else the width of the terminal on stdout, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
            columns = 0
    return columns or 80


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's raw-description formatter at the same width, without its `import shutil`
    (which brings bz2, lzma, fnmatch): argparse builds a formatter for every add_argument, so
    each start paid that import just to read the terminal's width."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None, **kwargs):
        width = terminal_columns() - 2 if width is None else width  # argparse keeps 2 columns free
        super().__init__(prog, indent_increment, max_help_position, width, **kwargs)


class Parser(argparse.ArgumentParser):
    """kubectl-style usage errors: `error: ...` plus where to look, exit 2.  Descriptions are
    wrapped here, when help is printed (the raw formatter keeps the examples' layout but would
    not wrap them; textwrap is not imported on the command path)."""

    def format_help(self):
        if self.description and "\n" not in self.description:
            import textwrap

            self.description = textwrap.fill(self.description, 88, break_on_hyphens=False)
        return super().format_help()

    def error(self, message):
        raise UsageError(message, "See '%s --help' for usage." % self.prog)


def _add_cluster_flags(p: argparse.ArgumentParser, namespaced: bool = True) -> None:
    g = p.add_argument_group("cluster flags (as kubectl's)")
    g.add_argument("--kubeconfig", metavar="FILE", help="path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    g.add_argument("--context", metavar="NAME", help="the kubeconfig context to use")
    if namespaced:
        g.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: the context's, else default)")
    g.add_argument("--request-timeout", metavar="DURATION", type=duration, default=None,
                   help="timeout of a single API request, as kubectl's: 30s, 1m30s, 500ms, a bare number "
                        "of seconds; 0 = none (default: none)")


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
MAX_DURATION = 9.2e9  # seconds: Go's time.Duration (int64 nanoseconds) ends at about 292 years


def duration(text: str) -> Optional[float]:
    """--request-timeout as kubectl reads it: a Go duration (`1m30s`, `500ms`, `2h0m0s`; Go's
    time.ParseDuration) or a bare number of seconds (client-go clientcmd); 0 = no timeout
    (returned as None).  Negative values, nan and inf are refused."""
    t = (text or "").strip()
    bad = argparse.ArgumentTypeError("invalid duration %s: use a Go duration such as 30s, 1m30s, 500ms, or a "
                                     "number of seconds; 0 means no timeout" % _quote(text))
    if not t or len(t) > 64:
        raise bad
    if t.startswith("-"):
        raise argparse.ArgumentTypeError("invalid duration %s: a timeout cannot be negative" % _quote(text))
    t = t[1:] if t.startswith("+") else t
    if re.fullmatch(r"\d+(\.\d*)?|\.\d+", t):
        seconds = float(t)
    else:
        pos, seconds = 0, 0.0
        for m in _GO_PART.finditer(t):
            if m.start() != pos:
                raise bad
            seconds += float(m.group(1)) * _GO_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(t) or pos == 0:
            raise bad
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise bad
    return seconds or None


def _quote(text) -> str:
    text = str(text)
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _add_output(p, choices=OUTPUTS):
    p.add_argument("-o", "--output", default="table", choices=choices, metavar="FORMAT",
                   help="output format: %s" % "|".join(choices))


def _add_common(p):
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")


_VERBOSITY = re.compile(r"--?v(=\d+)?\Z|-v\d+\Z")


def strip_verbosity(argv: Sequence[str]) -> Tuple[List[str], Optional[int]]:
    """kubectl's -v=N / --v=N / -v N (log verbosity, passed through by kubectl and by habit):
    accepted anywhere before `--` and removed; returns the other words and the level."""
    out: List[str] = []
    level = None
    i, words = 0, list(argv)
    while i < len(words):
        w = words[i]
        if w == "--":
            out.extend(words[i:])
            break
        if _VERBOSITY.match(w):
            digits = re.sub(r"\D", "", w)
            if not digits and i + 1 < len(words) and words[i + 1].isdigit():
                digits = words[i + 1]
                i += 1
            level = int(digits) if digits else 0
            i += 1
            continue
        out.append(w)
        i += 1
    return out, level


def build_parser(prog: Optional[str] = None, only: Optional[str] = None) -> Parser:
    """The argparse tree; `only`: give only that subcommand its flags (the others keep their
    name and help line), which is all a run needs and saves building the rest."""

    def want(command: str) -> bool:
        return only is None or only == command

    prog = prog or program_name()
    root = Parser(prog=prog, description="Explain, check and fix the virtio models of KubeVirt VMs: why libvirt "
                                         "shows virtio-non-transitional or virtio-transitional, and what "
                                         "spec.domain.devices.useVirtioTransitional changes.",
                  formatter_class=HelpFormatter,
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
                        formatter_class=HelpFormatter,
                        epilog="Examples:\n"
                               "  {p} explain testvm                     # live from the cluster\n"
                               "  {p} explain vmi/testvm -n prod -o json\n"
                               "  {p} explain -f testvm.yaml --dumpxml dump.xml\n"
                               "  kubectl get vm testvm -o yaml | {p} explain -f -\n"
                               "  {p} explain --dumpxml dump.xml --pci".format(p=prog))
    if want("explain"):
        ex.add_argument("vm", nargs="?", metavar="VM", help="NAME, vm/NAME, vmi/NAME or virtualmachine/NAME")
        ex.add_argument("-f", "--filename", action="append", metavar="FILE",
                        help="VM, VMI or (Cluster)Preference manifest, YAML or JSON ('-' = stdin); repeatable")
        ex.add_argument("--dumpxml", metavar="FILE", help="a saved `virsh dumpxml` ('-' = stdin)")
        ex.add_argument("--arch", choices=("amd64", "arm64", "s390x"), help="converter architecture (default: the "
                                                                             "domain's, the VMI's node, spec.architecture, else amd64)")
        ex.add_argument("--kubevirt-version", metavar="V", help="apply the rules of this KubeVirt release (default: newest)")
        ex.add_argument("--guest-os", metavar="OS", help="the guest OS as an osinfo short-id, e.g. centos6.10, "
                                                         "rhel7.9, win10 (default: the guest agent's report, the "
                                                         "VM's os labels, its preference; see `guests`)")
        ex.add_argument("--guest-agent", action="store_true",
                        help="live only: ask a Windows guest's QEMU guest agent (guest-get-devices) which driver "
                             "is bound to each virtio device. libvirt then marks the domain tainted "
                             "(custom-ga-command); never done without this flag")
        ex.add_argument("--pci", action="store_true", help="also draw the domain's PCI topology")
        _add_output(ex)
        _add_cluster_flags(ex)
        _add_common(ex)

    tb = sub.add_parser("table", help="print KubeVirt's translate table (no cluster needed)",
                        description="KubeVirt's translate table: device and spec condition -> model when "
                                    "useVirtioTransitional is unset/false and when it is true.",
                        formatter_class=HelpFormatter,
                        epilog="Examples:\n  {p} table\n  {p} table --arch s390x -o wide\n"
                               "  {p} table --kubevirt-version v0.37.2 -o json".format(p=prog))
    if want("table"):
        tb.add_argument("--arch", choices=("amd64", "arm64", "s390x"), default="amd64", help="converter architecture")
        tb.add_argument("--kubevirt-version", metavar="V", help="KubeVirt release (default: newest)")
        tb.add_argument("--all", action="store_true", help="include rows of other KubeVirt releases")
        _add_output(tb)
        _add_common(tb)

    dx = sub.add_parser("dumpxml", help="print the live domain XML of a VM",
                        description="Print the running VM's libvirt domain XML, as `virsh dumpxml` gives it in the "
                                    "virt-launcher pod's compute container.",
                        formatter_class=HelpFormatter,
                        epilog="Examples:\n  {p} dumpxml testvm > testvm.xml\n"
                               "  {p} dumpxml testvm | {p} explain --dumpxml -".format(p=prog))
    if want("dumpxml"):
        dx.add_argument("vm", metavar="VM", help="NAME, vm/NAME or vmi/NAME")
        _add_cluster_flags(dx)
        _add_common(dx)

    st = sub.add_parser("set-transitional", help="set useVirtioTransitional on a VM (safe patch)",
                        description="Set spec.template.spec.domain.devices.useVirtioTransitional on VirtualMachines "
                                    "(true by default, --off for false, --unset to remove it). Only that field "
                                    "changes; a concurrent edit is never overwritten.",
                        formatter_class=HelpFormatter,
                        epilog="Examples:\n  {p} set-transitional centos6 --dry-run=client\n"
                               "  {p} set-transitional centos6 --restart\n"
                               "  {p} set-transitional -l os=rhel6 -A\n"
                               "  {p} set-transitional testvm --unset".format(p=prog))
    if want("set-transitional"):
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
        st.add_argument("--kubevirt-version", metavar="V", help="preview with this KubeVirt release's rules (default: the "
                                                                "cluster's)")
        st.add_argument("--parallel", metavar="N", type=int, default=8,
                        help="with -l: VMs patched at a time (default 8); one result line a VM, in list order")
        _add_output(st, ("table", "json", "yaml"))
        _add_cluster_flags(st)
        _add_common(st)

    ls = sub.add_parser("list", help="fleet view: flag, guest OS and risks of every VM",
                        description="One row a VM (and standalone VMI): running, effective useVirtioTransitional "
                                    "and its origin, KubeVirt release, guest OS and whether it drives virtio 1.0, "
                                    "restart pending, free hotplug ports, and risks (no-virtio1-driver, "
                                    "unexpected-model, hotplug-exhausted, restart-pending, needless-transitional, "
                                    "unknown-guest). Lists are read page by page and rows printed as they are "
                                    "ready. --check exits 3 when a VM has a risk at or above --fail-on, 1 on "
                                    "errors, 0 otherwise; accept a known risk with --ignore NS/NAME or the VM "
                                    "annotation virtio.kubectl.io/accept-risks: \"ID,ID\".",
                        formatter_class=HelpFormatter,
                        epilog="Examples:\n  {p} list -A\n  {p} list -l app=legacy -o wide\n"
                               "  {p} list -A --risk no-virtio1-driver --sort risk\n"
                               "  {p} list -A --live --parallel 4   # gentler on a busy API server\n"
                               "  {p} list --from ./must-gather.local.123 -o wide\n"
                               "  {p} list -A --check --fail-on warning   # CI: exit 3 when a VM is at risk"
                               .format(p=prog))
    if want("list"):
        ls.add_argument("-A", "--all-namespaces", action="store_true", help="list VMs in every namespace")
        ls.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector (applied by the API server)")
        ls.add_argument("--live", action="store_true",
                        help="also read each running domain (virsh dumpxml in its launcher pod): models, hotplug ports")
        ls.add_argument("--parallel", metavar="N", type=int, default=LIST_PARALLEL,
                        help="with --live: execs at a time (default %d)" % LIST_PARALLEL)
        ls.add_argument("--from", dest="from_dir", metavar="DIR",
                        help="audit a must-gather or a directory of manifests and dumpxml files (no cluster)")
        ls.add_argument("--risk", metavar="RISK", action="append", help="only rows with this risk (repeatable)")
        ls.add_argument("--sort", choices=("name", "namespace", "risk", "guest", "flag"),
                        help="sort rows (holds them until the end; default: the API server's order, streamed)")
        ls.add_argument("--no-headers", action="store_true", help="no header line in table output")
        ls.add_argument("--check", action="store_true", help="exit 3 when a VM has a risk at or above --fail-on")
        ls.add_argument("--fail-on", metavar="RISK", default="no-virtio1-driver",
                        help="risk id or severity (error|warning|info) that fails --check (default no-virtio1-driver)")
        ls.add_argument("--ignore", metavar="NS/NAME", action="append", help="VM whose risks --check accepts (repeatable)")
        ls.add_argument("--guest-os", metavar="ID", help="assume this guest OS (osinfo short id) for every VM")
        ls.add_argument("--kubevirt-version", metavar="V", help="apply this KubeVirt release's rules (default: each VM's "
                                                                "launcher image, else the KubeVirt CR)")
        _add_output(ls)
        _add_cluster_flags(ls)
        _add_common(ls)

    gs = sub.add_parser("guests", help="which guest OS releases drive virtio 1.0 devices (no cluster needed)",
                        description="The guest OS table: per osinfo short-id, whether the OS drives virtio 1.0 "
                                    "(virtio-non-transitional) devices, and the evidence: osinfo-db (the version it "
                                    "came from), the distribution's kernel, or the virtio-win drivers.",
                        formatter_class=HelpFormatter,
                        epilog="Examples:\n  {p} guests centos6.10 rhel7.9 win10\n  {p} guests -o wide\n"
                               "  {p} guests -o json | jq '.items[] | select(.virtio1 == false) | .id'".format(p=prog))
    if want("guests"):
        gs.add_argument("os", nargs="*", metavar="OS", help="osinfo short-ids or names (rhel9.4, centos.stream9, "
                                                            "windows.11); default: every OS")
        _add_output(gs)
        _add_common(gs)

    cp = sub.add_parser("completion", help="how to enable shell completion through kubectl",
                        description="kubectl (1.26+) completes plugin arguments through an executable named "
                                    "kubectl_complete-virtio on PATH. This prints how to install it.",
                        formatter_class=HelpFormatter,
                        epilog="Examples:\n  {p} completion        # is it installed, and if not, how\n"
                               "  kubectl virtio <TAB>           # then: subcommands, flags, VM names".format(p=prog))
    if want("completion"):
        _add_common(cp)
    return root




# --- what the commands receive --------------------------------------------------------------

# Plain classes, not dataclasses: generating a dataclass's methods costs about a millisecond
# each on every start (bench/explain), and these are built once a run.

class ClusterFlags:
    """kubectl's cluster flags, as given (None: not given)."""

    def __init__(self, kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 namespace: Optional[str] = None, request_timeout: Optional[float] = None,
                 debug: bool = False):
        self.kubeconfig, self.context = kubeconfig, context
        self.namespace, self.request_timeout = namespace, request_timeout
        self.debug = debug  # --debug: the adapter logs each request (never a header value)

    @classmethod
    def from_args(cls, args) -> "ClusterFlags":
        return cls(getattr(args, "kubeconfig", None), getattr(args, "context", None),
                   getattr(args, "namespace", None), getattr(args, "request_timeout", None),
                   bool(getattr(args, "debug", False)))

    def __repr__(self) -> str:
        return "ClusterFlags(%r)" % vars(self)


class Streams:
    """Where a command writes: injected, so command logic is tested without a subprocess."""

    def __init__(self, out: Optional[TextIO] = None, err: Optional[TextIO] = None):
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr


def preload(*work) -> None:
    """Import modules (names) and run warm-up calls (callables) on a daemon thread while the
    caller waits on the API server, so that their CPU costs no wall time (the interpreter
    runs one thread at a time, but a thread waiting on a socket lets the others run).  The
    package's module-level imports have no cycle, so the import lock cannot deadlock; a module
    the caller needs meanwhile is waited for, never imported twice.  Anything that fails here
    fails again, with its own error, where the caller does it."""
    import threading

    def run():
        import importlib

        for item in work:
            try:
                importlib.import_module(item) if isinstance(item, str) else item()
            except Exception:  # noqa: BLE001 - the caller meets it again in its own path
                return

    threading.Thread(target=run, name="preload", daemon=True).start()


class Options:
    """Base of the commands' options objects: Complete (`complete(args)`, from the parsed
    flags) -> Validate (`validate()`, no I/O) -> Run (`run(cluster, streams)`).  Options are
    the class attributes with their defaults; the constructor sets the ones given."""

    needs_cluster = True
    flags: Optional[ClusterFlags] = None

    def __init__(self, **given: Any):
        for key, value in given.items():
            if key.startswith("_") or not hasattr(type(self), key):
                raise TypeError("%s has no option %r" % (type(self).__name__, key))
            setattr(self, key, value)
        if self.flags is None:
            self.flags = ClusterFlags()

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, vars(self))


# --- public views of the tree (for completion) -----------------------------------------------

def subcommands(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    """Subcommand name -> its parser."""
    for action in parser._actions:  # argparse keeps no public accessor for these
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def subcommand_help(parser: argparse.ArgumentParser) -> Dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


COMMANDS = ("explain", "table", "dumpxml", "set-transitional", "list", "completion")


def command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand a command line names (the root takes no option with a value)."""
    for w in argv:
        if w == "--":
            return None
        if not w.startswith("-"):
            return w if w in COMMANDS else None
    return None


class Flag:
    """One option of a parser, as completion needs it."""

    __slots__ = ("strings", "dest", "help", "takes_value", "repeatable", "choices", "hidden")

    def __init__(self, strings: Tuple[str, ...], dest: str, help: str, takes_value: bool, repeatable: bool,
                 choices: Tuple[str, ...], hidden: bool):
        self.strings, self.dest, self.help, self.takes_value = strings, dest, help, takes_value
        self.repeatable, self.choices, self.hidden = repeatable, choices, hidden


def flags(parser: argparse.ArgumentParser) -> List[Flag]:
    out = []
    for a in parser._actions:
        if not a.option_strings:
            continue
        out.append(Flag(tuple(a.option_strings), a.dest, a.help if isinstance(a.help, str) else "",
                        a.nargs != 0, isinstance(a, (argparse._AppendAction, argparse._CountAction)),
                        tuple(str(c) for c in a.choices) if a.choices else (), a.help == argparse.SUPPRESS))
    return out


def flag_map(parser: argparse.ArgumentParser) -> Dict[str, Flag]:
    return {s: f for f in flags(parser) for s in f.strings}
