"""Entry point of the self-contained (PyInstaller) build.

The same executable serves as the plugin (`kubectl-virtio`, the name krew links it under)
and as kubectl's completion helper when it is run under the name
`kubectl_complete-virtio` (a symlink next to krew's; see `kubectl virtio completion`).
"""
import os
import sys

# Library search paths PyInstaller's bootloader (or its run-time hooks) may point into the
# bundle.  PyInstaller docs, runtime-information.rst "LD_LIBRARY_PATH / LIBPATH
# considerations" and common-issues-and-pitfalls.rst "Launching External Programs": the
# bootloader saves the user's value in <NAME>_ORIG and prepends the bundle directory.
_LIBRARY_PATHS = ("LD_LIBRARY_PATH", "LIBPATH", "DYLD_LIBRARY_PATH")


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), root]) == root
    except ValueError:  # different drives, relative vs absolute
        return False


def sanitize_environment(environ=None, bundle=None) -> None:
    """Give the programs we start (kubeconfig `exec:` credential plugins: aws, gke-gcloud-
    auth-plugin, kubelogin, ...) the user's environment, not the bundle's: restore the
    library search paths and drop PyInstaller's private variables (`_PYI_*`, the older
    `_MEIPASS2`), which would make another PyInstaller program think it is our worker.
    Our own process is unaffected: the dynamic loader read LD_LIBRARY_PATH when it started."""
    env = os.environ if environ is None else environ
    root = os.path.realpath(bundle or getattr(sys, "_MEIPASS", None) or os.path.dirname(sys.executable))
    for name in _LIBRARY_PATHS:
        orig = env.pop(name + "_ORIG", None)
        if orig is not None:
            env[name] = orig
            continue
        value = env.get(name)
        if value is None:
            continue
        # No saved copy: the user had none, or a hook added to it; keep only the user's entries.
        kept = [p for p in value.split(os.pathsep) if p and not _inside(p, root)]
        if kept:
            env[name] = os.pathsep.join(kept)
        else:
            del env[name]
    for name in [k for k in env if k.startswith("_PYI_") or k == "_MEIPASS2"]:
        del env[name]


def _run() -> int:
    if getattr(sys, "frozen", False):
        sanitize_environment()  # before anything can start a subprocess
    name = os.path.basename(sys.argv[0] if sys.argv else "").lower()
    if name.startswith("kubectl_complete-"):
        from kubectl_virtio.completion import main
    else:
        from kubectl_virtio.cli import main
    return main()


if __name__ == "__main__":
    sys.exit(_run())
