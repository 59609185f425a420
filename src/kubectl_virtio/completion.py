"""Shell completion through kubectl (1.26+), and how to install it.

kubectl completes a plugin's arguments by running an executable named
`kubectl_complete-virtio` from PATH with the words typed after `kubectl virtio`, the last
one being the word under the cursor ('' for a new word).  It reads one candidate a line
(`value<TAB>description`) and an optional last line `:<directive>` (Cobra's
ShellCompDirective).  It only reads stdout when the exit status is 0, and passes our stderr
to the user's terminal: so this module always exits 0 and never writes to stderr.
(kubectl's pkg/cmd/plugin/plugin_completion.go, `pluginCompletion`/`getPluginCompletions`.)

Subcommands and flags come from the real argparse tree (`cmdline.build_parser`), so they never
drift from what the plugin accepts.  VM names are listed from the cluster only when one is
wanted: the kubernetes client is imported then and not before, with a short timeout and a
hard deadline, and any failure just gives no names.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import threading
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from kubectl_virtio import cmdline
from kubectl_virtio.cmdline import Flag

# Cobra's ShellCompDirective bits (spf13/cobra completions.go).
DIRECTIVE_DEFAULT = 0      # let the shell complete file names
DIRECTIVE_NO_SPACE = 2
DIRECTIVE_NO_FILE = 4

EXECUTABLE = "kubectl_complete-virtio"
PLUGIN = "kubectl-virtio"
# Commands whose positional argument is a VM, and the kinds their NAME may be prefixed with.
VM_COMMANDS = {"explain": ("vm", "vmi", "virtualmachine"), "dumpxml": ("vm", "vmi", "virtualmachine"),
               "set-transitional": ("vm", "virtualmachine")}
FILE_OPTIONS = {"-f", "--filename", "--dumpxml", "--kubeconfig"}
_STUCK: List[threading.Thread] = []  # lookups still running after DEADLINE
REQUEST_TIMEOUT = 2.0   # seconds, a single API request
DEADLINE = 3.0          # seconds, all cluster work (kubeconfig exec plugins included)


# --- the argparse tree (through cmdline's public views) ----------------------------------------

def _short_help(text: Optional[str]) -> str:
    """A one-line description: the help text without parentheses and examples."""
    text = (text or "").replace("%(default)s", "").replace("%%", "%")
    text = " ".join(re.sub(r"\s+\([^()]*\)(?=[\s;,.:]|$)", "", text).split())
    for stop in ("; ", ", e.g.", " e.g.", ": "):
        i = text.find(stop)
        if i >= 12:
            text = text[:i]
    return text if len(text) <= 64 else text[:61].rstrip() + "..."


# --- the command line being completed ---------------------------------------------------

class Words:
    """What the words before the cursor say: the subcommand, its parser, the positionals
    given so far, and the cluster flags (so VM names come from the cluster the command
    would talk to)."""

    def __init__(self, root, words: Sequence[str]):
        self.command: Optional[str] = None
        self.parser = root
        self.positionals: List[str] = []
        self.used: set = set()
        self.values: Dict[str, str] = {}
        self.pending: Optional[Flag] = None  # the last word was an option wanting a value
        self.unknown = False  # a word that is no subcommand: nothing sensible to offer
        subs = cmdline.subcommands(root)
        i, n = 0, len(words)
        after_dashdash = False
        while i < n:
            w = words[i]
            i += 1
            if after_dashdash or not w.startswith("-") or w == "-":
                if self.command is None:
                    if w in subs:
                        self.command, self.parser = w, subs[w]
                    else:
                        self.unknown = True
                    continue
                self.positionals.append(w)
                continue
            if w == "--":
                after_dashdash = True
                continue
            opts = cmdline.flag_map(self.parser)
            name, eq, value = w.partition("=")
            action = opts.get(name)
            if action is None and not w.startswith("--") and len(w) > 2 and w[:2] in opts:
                # -nNAMESPACE: a short option with its value attached
                name, action, eq, value = w[:2], opts[w[:2]], "=", w[2:]
            if action is None:
                continue
            self.used.add(action.dest)
            if not action.takes_value:
                continue
            if not eq:
                if i == n:
                    self.pending = action
                    break
                value = words[i]
                i += 1
            self.values[action.dest] = value

    @property
    def vm_given(self) -> bool:
        return bool(self.positionals)


# --- candidates ---------------------------------------------------------------------------

def complete(args: Sequence[str], list_names=None) -> Tuple[List[str], int]:
    """Candidates and Cobra directive for `kubectl virtio ARGS` (the last arg is the word
    under the cursor).  `list_names(words, kind)` returns names from the cluster."""
    words, cur = list(args[:-1]), (args[-1] if args else "")
    root = cmdline.build_parser(prog="kubectl virtio")
    w = Words(root, words)
    list_names = list_names or cluster_names

    if w.pending is not None:
        return _values(w.pending, cur, w, list_names)
    if cur.startswith("-") and "=" in cur and cur.startswith("--"):
        name, _, value = cur.partition("=")
        action = cmdline.flag_map(w.parser).get(name)
        if action is None or not action.takes_value:
            return [], DIRECTIVE_NO_FILE
        got, directive = _values(action, value, w, list_names)
        return [name + "=" + g for g in got], directive
    if w.unknown:
        return [], DIRECTIVE_NO_FILE
    if cur.startswith("-"):
        return _flags(w, cur), DIRECTIVE_NO_FILE
    if w.command is None:
        helps = cmdline.subcommand_help(root)
        return [_cand(c, helps.get(c, "")) for c in cmdline.subcommands(root) if c.startswith(cur)], \
            DIRECTIVE_NO_FILE
    if w.command in VM_COMMANDS and not w.vm_given:
        if w.command == "explain" and ({"filename", "dumpxml"} & w.used):
            return [], DIRECTIVE_NO_FILE  # offline explain takes no VM
        if w.command == "set-transitional" and "selector" in w.used:
            return [], DIRECTIVE_NO_FILE
        return _vm_names(w, cur, list_names), DIRECTIVE_NO_FILE
    return [], DIRECTIVE_NO_FILE


def _cand(value: str, description: str = "") -> str:
    description = _short_help(description)
    return value + ("\t" + description if description else "")


def _flags(w: Words, cur: str) -> List[str]:
    out, seen = [], set()
    for action in cmdline.flags(w.parser):
        if action.hidden:
            continue
        if action.dest in w.used and not action.repeatable:
            continue
        for s in action.strings:
            if not s.startswith(cur):
                continue
            if s not in seen:
                seen.add(s)
                out.append(_cand(s, action.help))
    return out


def _values(action: Flag, cur: str, w: Words, list_names) -> Tuple[List[str], int]:
    strings = set(action.strings)
    if strings & FILE_OPTIONS:
        return [], DIRECTIVE_DEFAULT
    if action.choices:
        return [str(c) for c in action.choices if str(c).startswith(cur)], DIRECTIVE_NO_FILE
    if action.dest == "namespace":
        return sorted(n for n in list_names(w, "namespace") if n.startswith(cur)), DIRECTIVE_NO_FILE
    if action.dest == "context":
        return sorted(c for c in kubeconfig_contexts(w.values.get("kubeconfig")) if c.startswith(cur)), \
            DIRECTIVE_NO_FILE
    return [], DIRECTIVE_NO_FILE


def _vm_names(w: Words, cur: str, list_names) -> List[str]:
    prefixes = VM_COMMANDS[w.command]
    kind, slash, partial = cur.partition("/")
    if slash:
        if kind not in prefixes:
            return []
        names = list_names(w, "vmi" if kind == "vmi" else "vm")
        return sorted(kind + "/" + n for n in names if n.startswith(partial))
    return sorted(n for n in list_names(w, "vm") if n.startswith(cur))


# --- the cluster ---------------------------------------------------------------------------

def cluster_names(w: Words, kind: str) -> List[str]:
    """Names of VMs ('vm'), VMIs ('vmi') or namespaces ('namespace') in the cluster the
    command line points at; [] on any error or after DEADLINE seconds."""
    result: List[str] = []

    def work():
        try:
            result.extend(_fetch(w, kind))
        except BaseException:  # noqa: BLE001 - completion must stay quiet whatever happens
            pass

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(DEADLINE)
    if t.is_alive():
        _STUCK.append(t)
        return []
    return list(result)


def _fetch(w: Words, kind: str) -> Iterable[str]:
    from kubectl_virtio.cluster import Cluster

    timeout = REQUEST_TIMEOUT
    c = Cluster(w.values.get("kubeconfig"), w.values.get("context"), w.values.get("namespace"), timeout)
    if kind == "namespace":
        return c.list_namespaces()
    if kind == "vmi":
        items = c.list_vmis(c.namespace)
    else:
        items = c.list_vms(c.namespace)
    return [i.get("metadata", {}).get("name", "") for i in items if i.get("metadata", {}).get("name")]


def kubeconfig_contexts(kubeconfig: Optional[str]) -> List[str]:
    """Context names from the kubeconfig files (no client import: plain YAML)."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    names: List[str] = []
    try:
        import yaml

        for p in path.split(os.pathsep):
            if not p or not os.path.isfile(p):
                continue
            with open(p, "rb") as fh:
                doc = yaml.safe_load(fh.read(4 * 1024 * 1024)) or {}
            for ctx in doc.get("contexts") or []:
                name = (ctx or {}).get("name")
                if isinstance(name, str) and name not in names:
                    names.append(name)
    except Exception:  # noqa: BLE001
        return names
    return names


# --- entry points --------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> int:
    """The `kubectl_complete-virtio` executable."""
    args = sys.argv[1:] if argv is None else list(argv)
    _silence_stderr()
    try:
        candidates, directive = complete(args)
    except BaseException:  # noqa: BLE001 - a broken completion must not print a traceback
        candidates, directive = [], DIRECTIVE_NO_FILE
    try:
        out = "".join(c + "\n" for c in candidates) + ":%d\n" % directive
        sys.stdout.write(out)
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass
    if _STUCK:  # a hung lookup (say an exec credential plugin waiting on a prompt): leave now
        os._exit(0)
    return 0


def _silence_stderr() -> None:
    """kubectl shows our stderr in the middle of the user's command line: send it (and that
    of any kubeconfig exec plugin we might start) to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = open(os.devnull, "w")
    except OSError:
        pass


def _completion_on_path() -> Optional[str]:
    return shutil.which(EXECUTABLE)


def _plugin_location() -> Optional[str]:
    """The plugin executable being run, or the one kubectl would find."""
    if getattr(sys, "frozen", False):
        return sys.executable
    if sys.argv and os.path.basename(sys.argv[0]).startswith(PLUGIN):
        return os.path.abspath(sys.argv[0])
    return shutil.which(PLUGIN)


def instructions() -> str:
    """What `kubectl virtio completion` prints."""
    found = _completion_on_path()
    frozen = getattr(sys, "frozen", False)
    lines = ["kubectl (1.26 or newer) completes `kubectl virtio ...` by running an executable named",
             "%s found on PATH; kubectl's own completion must be enabled" % EXECUTABLE,
             "(e.g. `source <(kubectl completion bash)` in ~/.bashrc, or zsh/fish likewise).", ""]
    if found:
        lines += ["It is installed: %s" % found, "Try: kubectl virtio <TAB><TAB>"]
        return "\n".join(lines)
    if frozen:
        krew_bin = os.path.join(os.environ.get("KREW_ROOT") or os.path.join("~", ".krew"), "bin")
        lines += ["krew installs only the plugin, so add the completion executable once: it is the",
                  "plugin itself under another name.", ""]
        if sys.platform == "win32":
            lines += ["PowerShell (as administrator, or with Developer Mode on):",
                      '  New-Item -ItemType SymbolicLink -Path "%s\\%s.exe" -Target "%s\\kubectl-virtio.exe"'
                      % (krew_bin, EXECUTABLE, krew_bin)]
        else:
            lines += ["  ln -sf kubectl-virtio %s/%s" % (krew_bin, EXECUTABLE),
                      "", "It follows upgrades (it points at krew's link). To remove it:",
                      "  rm %s/%s" % (krew_bin, EXECUTABLE)]
        return "\n".join(lines)
    plugin = _plugin_location()
    scripts = os.path.dirname(plugin) if plugin else None
    candidate = os.path.join(scripts, EXECUTABLE) if scripts else None
    if candidate and os.path.exists(candidate):
        lines += ["pip installed it next to the plugin, in a directory that is not on PATH:",
                  "  %s" % candidate, "", "Add that directory to PATH, or link it into one that is:",
                  "  ln -s %s ~/.local/bin/%s" % (candidate, EXECUTABLE)]
    else:
        lines += ["Install the Python package (`pipx install kubectl-virtio` or `pip install kubectl-virtio`),",
                  "which provides it, or put this one-line script on PATH as %s:" % EXECUTABLE,
                  "  #!/bin/sh",
                  "  exec %s -m kubectl_virtio.completion \"$@\"" % (sys.executable or "python3")]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
