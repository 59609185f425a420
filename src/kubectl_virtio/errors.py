"""Errors the CLI turns into `error: ...` lines and exit codes (no traceback without --debug)."""


class VirtioError(Exception):
    """A failure the user can act on. `hint` is the second line: what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(VirtioError):
    """Bad input: a malformed manifest or XML, a wrong kind, an invalid name."""


class UsageError(VirtioError):
    """Wrong flags or arguments (exit 2, like kubectl's and argparse's usage errors)."""

    exit_code = 2


class ClusterError(VirtioError):
    """The API server refused or failed a request."""
