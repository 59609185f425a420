"""What runs when a test client execs into a simulated pod: a scripted `virsh`.

Each launcher pod gets a :class:`VirshConfig` describing which libvirt URIs answer inside its
`compute` container, which URI plain `virsh` uses, and the domain XML per domain name.
Root launchers talk to `qemu:///system`; non-root ones (KubeVirt's default, runtimeUser 107)
only through the session URI with virt-launcher's socket.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit

ROOT_URI = "qemu:///system"
NONROOT_URI = "qemu+unix:///session?socket=/var/run/libvirt/virtqemud-sock"
SESSION_URI = "qemu:///session"


@dataclass
class ExecResult:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


@dataclass
class VirshConfig:
    uris: set[str] = field(default_factory=lambda: {NONROOT_URI})
    default_uri: str = SESSION_URI           # what `virsh` without -c connects to
    domains: dict[str, str] = field(default_factory=dict)            # name -> live XML
    inactive_domains: dict[str, str] = field(default_factory=dict)   # name -> `--inactive` XML
    # name -> the guest agent's JSON reply to guest-get-devices; a domain not listed has no agent
    agent_devices: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_root(cls, root: bool, domains: dict[str, str] | None = None) -> "VirshConfig":
        if root:
            return cls(uris={ROOT_URI}, default_uri=ROOT_URI, domains=dict(domains or {}))
        return cls(uris={NONROOT_URI}, default_uri=SESSION_URI, domains=dict(domains or {}))


def socket_path(uri: str, uid: int) -> str:
    """The unix socket a libvirt client would try for `uri` (used in connection errors)."""
    parts = urlsplit(uri)
    explicit = parse_qs(parts.query).get("socket")
    if explicit:
        return explicit[0]
    if parts.path.rstrip("/") == "/session":
        return f"/run/user/{uid}/libvirt/virtqemud-sock"
    return "/var/run/libvirt/virtqemud-sock"


def _connect_error(uri: str, uid: int) -> ExecResult:
    return ExecResult(stderr=("error: failed to connect to the hypervisor\n"
                              f"error: Failed to connect socket to '{socket_path(uri, uid)}': "
                              "No such file or directory\n"), exit_code=1)


_DUMPXML_FLAGS = {"--inactive", "--security-info", "--update-cpu", "--migratable"}


def run_virsh(argv: list[str], config: VirshConfig, uid: int) -> ExecResult:
    """Run `virsh [-c URI] [-r] [-q] COMMAND ...` against `config`."""
    args = list(argv[1:])
    uri = None
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in ("-c", "--connect"):
            if not args:
                return ExecResult(stderr="error: option '-c' requires an argument\n", exit_code=1)
            uri = args.pop(0)
        elif opt.startswith("--connect="):
            uri = opt.split("=", 1)[1]
        elif opt in ("-r", "--readonly", "-q", "--quiet"):
            continue
        else:
            return ExecResult(stderr=f"error: unsupported option '{opt}'. See --help.\n", exit_code=1)
    if not args:
        return ExecResult(stderr="error: no command given (this simulated virsh has no shell)\n",
                          exit_code=1)
    command, rest = args[0], args[1:]
    if command not in ("dumpxml", "list", "version", "qemu-agent-command"):
        return ExecResult(stderr=f"error: unknown command: '{command}'\n", exit_code=1)

    # Connecting happens before the command runs; a wrong URI fails every command.
    effective_uri = uri or config.default_uri
    if effective_uri not in config.uris:
        return _connect_error(effective_uri, uid)

    if command == "version":
        return ExecResult(stdout="Compiled against library: libvirt 10.10.0\n"
                                 "Using library: libvirt 10.10.0\n"
                                 "Using API: QEMU 10.10.0\nRunning hypervisor: QEMU 9.1.0\n")
    if command == "list":
        names = sorted(config.domains)
        if "--name" in rest:
            return ExecResult(stdout="".join(n + "\n" for n in names) + "\n")
        lines = [" Id   Name" + " " * 30 + "State", "-" * 45]
        lines += [f" {i}    {n:<34}running" for i, n in enumerate(names, start=1)]
        return ExecResult(stdout="\n".join(lines) + "\n\n")

    if command == "qemu-agent-command":
        return _agent_command(rest, config)
    flags = {a for a in rest if a.startswith("--") and a != "--domain"}
    unknown = flags - _DUMPXML_FLAGS
    if unknown:
        return ExecResult(stderr=f"error: command '{command}' doesn't support option {sorted(unknown)[0]}\n",
                          exit_code=1)
    positional = [a for a in rest if not a.startswith("--")]
    if not positional:
        return ExecResult(stderr="error: command 'dumpxml' requires <domain> option\n", exit_code=1)
    domain = positional[0]
    if domain not in config.domains:
        return ExecResult(stderr=f"error: failed to get domain '{domain}'\n", exit_code=1)
    if "--inactive" in flags and domain in config.inactive_domains:
        xml = config.inactive_domains[domain]
    else:
        xml = config.domains[domain]
    return ExecResult(stdout=xml if xml.endswith("\n") else xml + "\n")


def _agent_command(rest: list[str], config: VirshConfig) -> ExecResult:
    """`virsh qemu-agent-command [--timeout N] DOMAIN JSON`: guest-get-devices only."""
    args = list(rest)
    if "--timeout" in args:
        i = args.index("--timeout")
        del args[i:i + 2]
    if len(args) != 2:
        return ExecResult(stderr="error: command 'qemu-agent-command' requires <domain> and <cmd>\n", exit_code=1)
    domain, cmd = args
    if domain not in config.domains:
        return ExecResult(stderr=f"error: failed to get domain '{domain}'\n", exit_code=1)
    if domain not in config.agent_devices:
        return ExecResult(stderr="error: Guest agent is not responding: QEMU guest agent is not connected\n",
                          exit_code=1)
    if '"guest-get-devices"' not in cmd.replace(" ", ""):
        return ExecResult(stderr="error: internal error: unable to execute QEMU agent command: this simulated "
                                 "agent only knows guest-get-devices\n", exit_code=1)
    return ExecResult(stdout=config.agent_devices[domain] + "\n")


@dataclass
class ExecContext:
    """What a custom exec handler receives."""
    namespace: str
    pod: dict
    container: str
    argv: list[str]
    user: str
    virsh: VirshConfig
    uid: int


ExecHandler = Callable[[ExecContext], ExecResult]


def not_found(argv0: str) -> ExecResult:
    # The container runtime's answer for a missing executable; kubectl reports exit code 127.
    return ExecResult(stderr=f'exec: "{argv0}": executable file not found in $PATH: unknown\n',
                      exit_code=127)


def run_command(ctx: ExecContext, handlers: dict[str, ExecHandler]) -> ExecResult:
    argv0 = ctx.argv[0]
    name = argv0.rsplit("/", 1)[-1]
    if argv0 in handlers:
        return handlers[argv0](ctx)
    if name in handlers:
        return handlers[name](ctx)
    if name == "virsh":
        return run_virsh(ctx.argv, ctx.virsh, ctx.uid)
    if name == "true":
        return ExecResult()
    if name == "false":
        return ExecResult(exit_code=1)
    if name == "echo":
        return ExecResult(stdout=" ".join(ctx.argv[1:]) + "\n")
    if name in ("sh", "bash"):
        # The launcher image has a shell, but this simulation does not interpret scripts.
        return ExecResult(stderr=f"{name}: the simulated pod cannot run {shlex.join(ctx.argv[1:])!r}\n",
                          exit_code=126)
    return not_found(argv0)
