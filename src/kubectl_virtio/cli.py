"""The command line: each command is an options object, Complete -> Validate -> Run, as
kubectl plugins built on cli-runtime do.  `complete(args)` fills the options from the parsed
flags, `validate()` checks them with no I/O (bad input never reaches the cluster), and
`run(cluster, streams)` does the work with the cluster adapter and the output streams handed
in, so command logic is tested without a subprocess.  The grammar is in `cmdline`.

Offline commands (table, explain -f/--dumpxml) never import the cluster adapter: it
loads the kubernetes client, which costs a quarter of a second.
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional, Sequence

from kubectl_virtio import cmdline
from kubectl_virtio.cmdline import ClusterFlags, Options, Streams, build_parser
from kubectl_virtio.errors import InputError, UsageError, VirtioError


def parse_version(text: Optional[str]):
    """--kubevirt-version -> Version (None when not given); a usage error when malformed."""
    from kubectl_virtio.validate import release

    return release(text)


# --- table ------------------------------------------------------------------------------

class TableOptions(Options):
    arch: str = "amd64"
    kubevirt_version: Optional[str] = None
    all: bool = False
    output: str = "table"
    needs_cluster = False

    @classmethod
    def complete(cls, args) -> "TableOptions":
        return cls(arch=args.arch, kubevirt_version=args.kubevirt_version, all=args.all, output=args.output)

    def validate(self) -> None:
        self.version = parse_version(self.kubevirt_version)

    def run(self, cluster, streams: Streams) -> int:
        from kubectl_virtio import render, rules, versions

        version, warning = versions.rules_release(self.version or versions.NEWEST)
        arch = rules.effective_arch(self.arch, version)
        rows = rules.table_rows(version, arch, self.all)
        meta = {"kind": "VirtioTranslateTable", "arch": self.arch, "converterArch": arch,
                "kubevirtVersion": versions.show(version), "field": "spec.domain.devices.useVirtioTransitional"}
        warnings = [warning] if warning else []
        if arch != self.arch:
            warnings.append("KubeVirt %s has no %s converter; these are the amd64 rules it falls back to"
                            % (versions.show(version), self.arch))
        render.emit(streams.out, render.translate_table(rows, meta, self.output))
        render.warnings(streams.err, warnings)
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



# --- explain ----------------------------------------------------------------------------

class ExplainOptions(Options):
    vm: Optional[str] = None
    filename: Sequence[str] = ()
    dumpxml: Optional[str] = None
    arch: Optional[str] = None
    kubevirt_version: Optional[str] = None
    guest_os: Optional[str] = None
    guest_agent: bool = False
    pci: bool = False
    output: str = "table"
    flags: Optional[ClusterFlags] = None
    kind: Optional[str] = None
    name: Optional[str] = None
    version: object = None

    @classmethod
    def complete(cls, args) -> "ExplainOptions":
        return cls(vm=args.vm, filename=list(args.filename or []), dumpxml=args.dumpxml, arch=args.arch,
                   kubevirt_version=args.kubevirt_version, guest_os=args.guest_os,
                   guest_agent=bool(getattr(args, "guest_agent", False)), pci=args.pci,
                   output=args.output, flags=ClusterFlags.from_args(args))

    @property
    def needs_cluster(self) -> bool:
        return bool(self.vm)

    def validate(self) -> None:
        if self.vm and (self.filename or self.dumpxml):
            raise UsageError("give either a VM name (live) or -f/--dumpxml files (offline), not both")
        if not self.vm and not self.filename and not self.dumpxml:
            raise UsageError("explain needs a VM name, or -f FILE and/or --dumpxml FILE")
        if self.guest_agent and not self.vm:
            raise UsageError("--guest-agent asks the running guest: give a VM name (live), not -f/--dumpxml")
        self.version = parse_version(self.kubevirt_version)
        if self.guest_os is not None and (len(self.guest_os) > 64 or not self.guest_os.strip()):
            from kubectl_virtio.validate import clip

            raise UsageError("--guest-os %s is not an OS id such as centos6.10 or win10" % clip(self.guest_os))
        if self.vm:
            from kubectl_virtio import validate

            self.kind, self.name = validate.vm_ref(self.vm)
            validate.namespace(self.flags.namespace)

    def run(self, cluster, streams: Streams) -> int:
        from kubectl_virtio import render

        if self.vm:
            from kubectl_virtio import live

            exp = live.explain_vm(self, cluster, streams)
        else:
            exp = self.explain_files()
        render.emit(streams.out, render.explanation(exp, self.output, pci=self.pci))
        return 0

    def explain_files(self):
        from kubectl_virtio import domain, explain, spec, versions

        stdin_used = [False]
        vm = None
        if self.filename:
            objects = []
            for path in self.filename:
                text = _read_source(path, "manifest", stdin_used)
                objects.extend(spec.load_documents(text, "stdin" if path == "-" else path))
            vm = spec.select(objects, ", ".join(self.filename))
        dom = None
        if self.dumpxml:
            src = "stdin" if self.dumpxml == "-" else self.dumpxml
            dom = domain.parse(_read_source(self.dumpxml, "dumpxml", stdin_used), src, fragment=True)
        # As live: the release asked for is the one explain reads its rules at (a release
        # outside the rules' span gets the nearest one's), shown and warned the same way.
        version = self.version or versions.NEWEST
        _, warning = versions.rules_release(version, versions.SOURCE_TEXT["flag"] if self.version else "")
        exp = explain.explain(vm, dom, arch=self.arch, version=version, guest_os=self.guest_os,
                              extra_findings=[explain.Finding("warning", warning)] if warning else None)
        exp.kubevirt_version_source = "flag" if self.version else "newest-known"
        return exp


# --- guests -----------------------------------------------------------------------------

class GuestsOptions(Options):
    os: List[str] = ()
    output: str = "table"
    needs_cluster = False

    @classmethod
    def complete(cls, args) -> "GuestsOptions":
        return cls(os=list(args.os or []), output=args.output)

    def validate(self) -> None:
        pass

    def run(self, cluster, streams: Streams) -> int:
        """Offline: the shipped table (guests.py), never the cluster adapter."""
        from kubectl_virtio import guests, render

        render.emit(streams.out, render.guest_table(guests.rows(self.os), guests.provenance(), self.output))
        return 0


# --- completion -------------------------------------------------------------------------

class CompletionOptions(Options):
    needs_cluster = False

    @classmethod
    def complete(cls, args) -> "CompletionOptions":
        return cls()

    def validate(self) -> None:
        pass

    def run(self, cluster, streams: Streams) -> int:
        from kubectl_virtio import completion, render

        render.emit(streams.out, completion.instructions())
        return 0


def _options_class(command: str):
    """The options class of a command; live commands' modules are imported only when run."""
    if command == "table":
        return TableOptions
    if command == "explain":
        return ExplainOptions
    if command == "completion":
        return CompletionOptions
    if command == "guests":
        return GuestsOptions
    if command == "dumpxml":
        from kubectl_virtio.live import DumpxmlOptions

        return DumpxmlOptions
    if command == "list":
        from kubectl_virtio.fleet_list import ListOptions

        return ListOptions
    if command == "set-transitional":
        from kubectl_virtio.set_transitional import SetTransitionalOptions

        return SetTransitionalOptions
    raise UsageError("unknown command %r" % command)


def connect(flags: ClusterFlags):
    """The cluster adapter for these flags (the only import of the kubernetes client); the
    namespace from the kubeconfig is checked like one given with -n."""
    from kubectl_virtio import validate
    from kubectl_virtio.cluster import Cluster

    cluster = Cluster(flags.kubeconfig, flags.context, flags.namespace, flags.request_timeout,
                      debug=flags.debug or None)
    if not flags.namespace:
        validate.namespace(cluster.namespace, "the kubeconfig context's namespace")
    return cluster


def run(args, streams: Optional[Streams] = None) -> int:
    """Complete -> Validate -> (connect) -> Run for parsed arguments."""
    streams = streams or Streams()
    opts = _options_class(args.command).complete(args)
    opts.validate()
    cluster = connect(opts.flags) if opts.needs_cluster else None
    return opts.run(cluster, streams)


def main(argv: Optional[List[str]] = None) -> int:
    """The `kubectl-virtio` executable (argv None: a process of its own, which may leave
    early; an explicit argv: called in-process, which always returns)."""
    rc = _main(sys.argv[1:] if argv is None else list(argv))
    if argv is None and "kubernetes" in sys.modules:
        exit_now(rc)
    return rc


def exit_now(rc: int) -> None:
    """Leave without the interpreter's teardown.  Once the kubernetes client is loaded,
    freeing its ~300 modules at exit takes longer than all the command's API requests
    (see bench/explain).  The atexit handlers still run (the client's cleanup of the
    temporary certificate files it wrote, KUBECTL_VIRTIO_TIMINGS' report) and the output
    is flushed; threads still waiting on the network (after Ctrl-C) are abandoned."""
    import atexit

    try:
        atexit._run_exitfuncs()  # CPython's own exit path; there is no public equivalent
    except Exception:  # noqa: BLE001 - handlers report their own errors; leave anyway
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: nothing more to say
            pass
    os._exit(rc)


def _main(argv: List[str]) -> int:
    argv, _verbosity = cmdline.strip_verbosity(argv)  # kubectl's -v=N: log verbosity, not --debug
    debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
    parser = build_parser(only=cmdline.command_of(argv))
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 0
        return run(args)
    except VirtioError as e:
        if debug:
            import traceback

            traceback.print_exc()
        from kubectl_virtio import render

        render.emit(sys.stderr, render.error_lines(e.message, e.hint))
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
        from kubectl_virtio import render

        render.emit(sys.stderr, render.error_lines("internal error: %s: %s" % (type(e).__name__, e),
                                                   "Rerun with --debug for the traceback, and please report it."))
        return 1
