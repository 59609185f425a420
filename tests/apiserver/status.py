"""metav1.Status bodies, worded the way the Kubernetes API server words them."""
from __future__ import annotations

from .resources import Resource


class ApiError(Exception):
    """Raised by handlers; turned into a JSON Status response with ``code`` as HTTP status."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def success_status(details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body


def _details(name: str, group: str, kind: str) -> dict:
    # The apiserver leaves out empty fields: no "group" for core resources, no "name" for lists.
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = kind
    return d


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(qualified: str, group: str, plural: str, name: str, reason_text: str) -> ApiError:
    # `pods "x" is forbidden: <why>`, or `pods is forbidden: <why>` for collection requests.
    subject = f'{qualified} "{name}"' if name else qualified
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {reason_text}",
                    _details(name, group, plural))


def not_found(resource: Resource, name: str, *, qualified: str | None = None,
              plural: str | None = None) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified or resource.qualified} "{name}" not found',
                    _details(name, resource.group, plural or resource.plural))


def path_not_found() -> ApiError:
    # What the server answers for a URL no handler serves.
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


def conflict(resource: Resource, name: str, why: str | None = None, *, qualified: str | None = None,
             plural: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified or resource.qualified} "{name}": {why}',
                    _details(name, resource.group, plural or resource.plural))


def already_exists(resource: Resource, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource.qualified} "{name}" already exists',
                    _details(name, resource.group, resource.plural))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(resource: Resource, name: str, message: str, causes: list | None = None) -> ApiError:
    # `VirtualMachine.kubevirt.io "testvm" is invalid: <field>: <problem>`; details carry the Kind.
    subject = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    details = _details(name, resource.group, resource.kind)
    if causes:
        details["causes"] = causes
    return ApiError(422, "Invalid", f'{subject} "{name}" is invalid: {message}', details)


def unprocessable(message: str) -> ApiError:
    # A JSON patch whose operations cannot be applied (e.g. a failed `test`) gets a bare 422.
    return ApiError(422, "Invalid", message)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", message)


def method_not_supported(resource: str, action: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"{action} is not supported on resources of kind {resource!r}")


def internal_error(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}",
                    {"causes": [{"message": message}]})
