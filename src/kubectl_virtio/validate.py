"""Checks of command-line input before any request: namespaces, object names, label selectors.

Pure functions; each raises UsageError (exit 2) naming the bad input, echoed at most ECHO
characters long, so a huge or hostile argument never reaches the API server or the terminal
whole.  The grammar follows Kubernetes (k8s.io/apimachinery pkg/util/validation
validation.go IsDNS1123Label / IsDNS1123Subdomain / IsQualifiedName / IsValidLabelValue, and
pkg/labels/selector.go Parse): no selector library for Python is maintained, and the API
server does the selecting, so this only has to refuse what the server would refuse.
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from kubectl_virtio.errors import UsageError

ECHO = 80
MAX_SELECTOR = 4096  # far above any real selector; bounds the work on hostile input

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")


def clip(text: str, n: int = ECHO) -> str:
    """The input as quoted in a message: repr-quoted, at most n characters of it."""
    text = str(text)
    if len(text) <= n:
        return repr(text)
    return repr(text[:n]) + "... (%d characters)" % len(text)


def is_dns1123_label(s: str) -> bool:
    return isinstance(s, str) and 0 < len(s) <= 63 and bool(_LABEL.match(s))


def is_dns1123_subdomain(s: str) -> bool:
    return isinstance(s, str) and 0 < len(s) <= 253 and bool(_SUBDOMAIN.match(s))


def namespace(ns: Optional[str], flag: str = "-n/--namespace") -> None:
    """A namespace is a DNS-1123 label: lower-case letters, digits and '-', at most 63."""
    if ns is None:
        return
    if not is_dns1123_label(ns):
        raise UsageError("%s %s is not a valid namespace: lower-case letters, digits and '-', starting and "
                         "ending with a letter or digit, at most 63 characters" % (flag, clip(ns)))


def name(n: str, what: str = "VM name") -> None:
    """An object name is a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most 253."""
    if not is_dns1123_subdomain(n):
        raise UsageError("%s is not a valid %s: lower-case letters, digits, '-' and '.', starting and ending "
                         "with a letter or digit, at most 253 characters" % (clip(n), what))


def label_key_problem(key: str) -> Optional[str]:
    """Why `key` is not a label key ([prefix/]name), or None."""
    prefix, slash, nm = key.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        return "its prefix %s is not a DNS subdomain" % clip(prefix, 40)
    if not nm or len(nm) > 63 or not _QUALIFIED.match(nm):
        return "the name part must be 1-63 characters of letters, digits, '-', '_' and '.', starting and " \
               "ending with a letter or digit"
    return None


def label_value_problem(value: str) -> Optional[str]:
    if value == "":
        return None
    if len(value) > 63 or not _QUALIFIED.match(value):
        return "a label value is at most 63 characters of letters, digits, '-', '_' and '.', starting and " \
               "ending with a letter or digit"
    return None


VM_WORDS = {"vm", "vms", "virtualmachine", "virtualmachines", "virtualmachine.kubevirt.io",
            "virtualmachines.kubevirt.io"}
VMI_WORDS = {"vmi", "vmis", "virtualmachineinstance", "virtualmachineinstances",
             "virtualmachineinstance.kubevirt.io", "virtualmachineinstances.kubevirt.io"}


def vm_ref(text: str, allow_vmi: bool = True) -> Tuple[Optional[str], str]:
    """'NAME', 'vm/NAME', 'vmi/NAME', 'virtualmachine/NAME' -> (kind "vm"/"vmi" or None, name)."""
    kind, nm = None, text
    if "/" in text:
        word, nm = text.split("/", 1)
        w = word.lower()
        if w in VM_WORDS:
            kind = "vm"
        elif w in VMI_WORDS and allow_vmi:
            kind = "vmi"
        else:
            raise UsageError("%s: the resource must be %s, not %s" % (
                clip(text), "vm/NAME or vmi/NAME (or virtualmachine/NAME)" if allow_vmi else
                "vm/NAME (or virtualmachine/NAME)", clip(word, 40)))
    name(nm)
    return kind, nm


def release(text: Optional[str]):
    """--kubevirt-version -> the Version (None when not given)."""
    if not text:
        return None
    from kubectl_virtio import versions

    try:
        return versions.parse(text)
    except ValueError:
        raise UsageError("invalid KubeVirt version %s (--kubevirt-version): expected vMAJOR.MINOR[.PATCH], e.g. "
                         "v1.9.0" % clip(text, 40)) from None


# --- label selectors ------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!|<|>)|(?P<word>[^\s=!(),<>]+))")


def _tokens(text: str) -> List[Tuple[str, str]]:
    out, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None or m.end() == i:
            if text[i:].strip() == "":
                break
            raise ValueError("unexpected character %s" % clip(text[i], 5))
        i = m.end()
        if m.group("op"):
            out.append(("op", m.group("op")))
        elif m.group("word"):
            out.append(("word", m.group("word")))
    return out


def parse_selector(text: str) -> List[Tuple[str, str, List[str]]]:
    """A label selector -> [(key, operator, values)]; raises ValueError with the reason.
    Operators: exists, !, =, ==, !=, in, notin, <, > (labels.Parse)."""
    toks = _tokens(text)
    reqs: List[Tuple[str, str, List[str]]] = []
    i, n = 0, len(toks)

    def peek(k=0):
        return toks[i + k] if i + k < n else ("end", "")

    while True:
        neg = peek() == ("op", "!")
        if neg:
            i += 1
        kind, key = peek()
        if kind != "word":
            raise ValueError("a label key was expected%s" % (" after '!'" if neg else ""))
        i += 1
        why = label_key_problem(key)
        if why:
            raise ValueError("label key %s is invalid: %s" % (clip(key, 40), why))
        kind, tok = peek()
        if neg:
            reqs.append((key, "!", []))
        elif kind == "end" or tok == ",":
            reqs.append((key, "exists", []))
        elif kind == "op" and tok in ("=", "==", "!="):
            i += 1
            kind, val = peek()
            if kind == "word":
                i += 1
            else:
                val = ""  # `k=` selects an empty value
            why = label_value_problem(val)
            if why:
                raise ValueError("label value %s is invalid: %s" % (clip(val, 40), why))
            reqs.append((key, tok, [val]))
        elif kind == "op" and tok in ("<", ">"):
            i += 1
            kind, val = peek()
            if kind != "word" or not re.fullmatch(r"-?\d+", val):
                raise ValueError("%s after %s needs an integer" % (tok, clip(key, 40)))
            i += 1
            reqs.append((key, tok, [val]))
        elif kind == "word" and tok in ("in", "notin"):
            i += 1
            if peek() != ("op", "("):
                raise ValueError("'%s' must be followed by '(' and a list of values" % tok)
            i += 1
            values = []
            while True:
                kind, val = peek()
                if kind == "word":
                    why = label_value_problem(val)
                    if why:
                        raise ValueError("label value %s is invalid: %s" % (clip(val, 40), why))
                    values.append(val)
                    i += 1
                    kind, val = peek()
                elif val in (",", ")"):
                    values.append("")
                if val == ",":
                    i += 1
                    continue
                if val == ")":
                    i += 1
                    break
                raise ValueError("the value list after '%s' is not closed with ')'" % tok)
            reqs.append((key, tok, values))
        else:
            raise ValueError("after the key %s an operator (=, ==, !=, in, notin) or ',' was expected"
                             % clip(key, 40))
        kind, tok = peek()
        if kind == "end":
            return reqs
        if tok != ",":
            raise ValueError("',' was expected between requirements")
        i += 1


def selector(text: Optional[str], flag: str = "-l/--selector") -> None:
    if text is None:
        return
    if len(text) > MAX_SELECTOR:
        raise UsageError("%s is %d characters long: that is not a label selector" % (flag, len(text)))
    if not text.strip():
        raise UsageError("%s is empty: give a label selector such as app=web" % flag)
    try:
        parse_selector(text)
    except ValueError as e:
        raise UsageError("%s %s is not a valid label selector: %s" % (flag, clip(text), e),
                         "e.g. -l app=web, -l 'tier in (db,cache)', -l '!legacy'") from None
