"""
The API surface the Kubernetes stand-in imitates: resource types, discovery
documents and C{Status} errors.

Messages, reasons and details are copied from the apiserver's own
constructors (C{k8s.io/apimachinery/pkg/api/errors}, C{k8s.io/apiserver}
storage and handlers) because clients match on them: a stand-in that says
something different would let a client pass here and fail against a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

KARGO_GROUP = "kargo.akuity.io"
KARGO_VERSION = "v1alpha1"

CUSTOM_RESOURCE_VERBS = (
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class ResourceType:
    """
    One REST resource the stand-in serves.

    Custom resources (C{custom=True}) follow the CRD handler's rules: list
    items carry C{apiVersion}/C{kind}, an update needs
    C{metadata.resourceVersion}, strategic merge patch is refused and
    C{metadata.generation} is maintained.  Built-in ones (Secret, Namespace)
    follow the core registry's rules for those points.
    """

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    custom: bool = True
    selectable_fields: tuple[str, ...] = ("metadata.name", "metadata.namespace")
    verbs: tuple[str, ...] = CUSTOM_RESOURCE_VERBS

    @property
    def api_version(self) -> str:
        """
        The C{apiVersion} objects of this type carry.
        """
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """
        The name error messages use: C{warehouses.kargo.akuity.io}, or just
        C{secrets} for the core group.
        """
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        """
        The C{kind} of a list response.
        """
        return self.kind + "List"

    @property
    def patch_types(self) -> tuple[str, ...]:
        """
        The PATCH content types the real server accepts for this resource, in
        the order its 415 message lists them.
        """
        if self.custom:
            return (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)
        return (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

    def names(self) -> Iterable[str]:
        """
        Every name a Python caller (or kubectl) may use for this type.
        """
        yield self.plural
        yield self.singular
        yield self.kind
        yield self.kind.lower()
        yield from self.short_names
        if self.group:
            yield self.group_resource
            yield f"{self.singular}.{self.group}"
            yield f"{self.kind}.{self.group}"


def _kargo(
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group=KARGO_GROUP,
        version=KARGO_VERSION,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short_names,
        status_subresource=True,
    )


# Names, scopes and short names as in Kargo's CRDs
# (charts/kargo/resources/crds/kargo.akuity.io_*.yaml); every one of them
# has a status subresource.
WAREHOUSES = _kargo("warehouses", "Warehouse")
PROMOTIONS = _kargo("promotions", "Promotion", short_names=("promo", "promos"))
STAGES = _kargo("stages", "Stage")
PROJECTCONFIGS = _kargo("projectconfigs", "ProjectConfig")
CLUSTERCONFIGS = _kargo(
    "clusterconfigs",
    "ClusterConfig",
    namespaced=False,
    short_names=("clusterconfig", "clusterconfigs"),
)
SECRETS = ResourceType(
    group="",
    version="v1",
    plural="secrets",
    singular="secret",
    kind="Secret",
    custom=False,
    selectable_fields=("metadata.name", "metadata.namespace", "type"),
)
NAMESPACES = ResourceType(
    group="",
    version="v1",
    plural="namespaces",
    singular="namespace",
    kind="Namespace",
    namespaced=False,
    short_names=("ns",),
    status_subresource=True,
    custom=False,
    selectable_fields=("metadata.name", "metadata.namespace", "status.phase"),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
)

DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    WAREHOUSES,
    PROMOTIONS,
    STAGES,
    PROJECTCONFIGS,
    CLUSTERCONFIGS,
    SECRETS,
    NAMESPACES,
)


def version_info(git_version: str) -> JSON:
    """
    The C{/version} document.  kubectl's version dispatchers pick a client
    from C{major}/C{minor}, so they must agree with C{gitVersion}.
    """
    major, minor = git_version.lstrip("v").split(".")[:2]
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": str(max(int(minor) - 1, 0)),
        "gitVersion": git_version,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def group_versions(resources: Iterable[ResourceType]) -> dict[str, list[str]]:
    """
    Named groups (not the core group) and their versions, in first-seen
    order.
    """
    groups: dict[str, list[str]] = {}
    for rt in resources:
        if rt.group:
            versions = groups.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
    return groups


def api_group(name: str, versions: Sequence[str]) -> JSON:
    """
    One C{APIGroup}, as listed by C{/apis} and served at C{/apis/GROUP}.
    """
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_resource_list(group_version: str, resources: Iterable[ResourceType]) -> JSON:
    """
    The C{APIResourceList} of one group version, the document kubectl maps
    C{warehouses.kargo.akuity.io} or C{promo} to a URL with.
    """
    entries: list[JSON] = []
    for rt in resources:
        entry: JSON = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        entries.append(entry)
        if rt.status_subresource:
            entries.append(
                {
                    "name": rt.plural + "/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


@dataclass(frozen=True)
class Cause:
    """
    One C{details.causes[]} entry of a C{Status}.
    """

    reason: str
    message: str
    field: str = ""

    def to_json(self) -> JSON:
        out: JSON = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass(eq=False)
class KubeError(Exception):
    """
    An API error, carried as the C{Status} object the real server would send.

    Raised by the stand-in's Python API too, so tests see the same reason and
    message a client would.
    """

    code: int
    reason: str
    message: str
    details: JSON | None = None
    continue_token: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> JSON:
        """
        The C{Status} object, in the field order Go encodes it.
        """
        metadata: JSON = {}
        if self.continue_token:
            metadata["continue"] = self.continue_token
        out: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": metadata,
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out


def _details(rt: ResourceType | None, name: str = "", **extra: Any) -> JSON:
    details: JSON = {}
    if name:
        details["name"] = name
    if rt is not None:
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
    details.update(extra)
    return details


def not_found(rt: ResourceType, name: str) -> KubeError:
    return KubeError(
        404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name)
    )


def path_not_found() -> KubeError:
    return KubeError(
        404, "NotFound", "the server could not find the requested resource", {}
    )


def already_exists(rt: ResourceType, name: str) -> KubeError:
    return KubeError(
        409,
        "AlreadyExists",
        f'{rt.group_resource} "{name}" already exists',
        _details(rt, name),
    )


OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest "
    "version and try again"
)


def conflict(
    rt: ResourceType, name: str, why: str = OPTIMISTIC_LOCK_MESSAGE
) -> KubeError:
    return KubeError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
        _details(rt, name),
    )


def invalid(group: str, kind: str, name: str, causes: Sequence[Cause]) -> KubeError:
    """
    C{NewInvalid}: 422 with one cause per field error, aggregated into the
    message the way C{field.ErrorList.ToAggregate} prints them.
    """
    qualified = f"{kind}.{group}" if group else kind
    texts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    if not texts:
        summary = ""
    elif len(texts) == 1:
        summary = ": " + texts[0]
    else:
        summary = ": [" + ", ".join(texts) + "]"
    details: JSON = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [c.to_json() for c in causes]
    return KubeError(
        422, "Invalid", f'{qualified} "{name}" is invalid{summary}', details
    )


def forbidden_cause(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", "Forbidden: " + detail, path)


def unsupported_value_cause(path: str, value: str, supported: Sequence[str]) -> Cause:
    quoted = ", ".join(f'"{s}"' for s in supported)
    return Cause(
        "FieldValueNotSupported",
        f'Unsupported value: "{value}": supported values: {quoted}',
        path,
    )


def list_options_invalid(causes: Sequence[Cause]) -> KubeError:
    return invalid("meta.k8s.io", "ListOptions", "", causes)


_MATCH = "resourceVersionMatch"
_SEND = "sendInitialEvents"


def validate_list_options(
    *,
    watch: bool,
    resource_version: str,
    match: str,
    continue_token: str,
    send_initial_events: bool | None,
    watch_list: bool,
) -> list[Cause]:
    """
    C{ValidateListOptions} (apimachinery's internalversion validation), run
    after defaulting; a non-empty result is a 422.
    """
    causes: list[Cause] = []
    if watch:
        if send_initial_events is not None:
            if match != "NotOlderThan":
                causes.append(
                    forbidden_cause(
                        _MATCH,
                        "sendInitialEvents requires setting resourceVersionMatch "
                        "to NotOlderThan",
                    )
                )
            if not watch_list:
                causes.append(
                    forbidden_cause(
                        _SEND,
                        "sendInitialEvents is forbidden for watch unless the "
                        "WatchList feature gate is enabled",
                    )
                )
        if match:
            if send_initial_events is None:
                causes.append(
                    forbidden_cause(
                        _MATCH,
                        "resourceVersionMatch is forbidden for watch unless "
                        "sendInitialEvents is provided",
                    )
                )
            if match != "NotOlderThan":
                causes.append(unsupported_value_cause(_MATCH, match, ["NotOlderThan"]))
            if continue_token:
                causes.append(
                    forbidden_cause(
                        _MATCH,
                        "resourceVersionMatch is forbidden when continue is provided",
                    )
                )
        return causes
    if match:
        if not resource_version:
            causes.append(
                forbidden_cause(
                    _MATCH,
                    "resourceVersionMatch is forbidden unless resourceVersion is "
                    "provided",
                )
            )
        if continue_token:
            causes.append(
                forbidden_cause(
                    _MATCH,
                    "resourceVersionMatch is forbidden when continue is provided",
                )
            )
        if match not in ("Exact", "NotOlderThan"):
            causes.append(
                unsupported_value_cause(_MATCH, match, ["Exact", "NotOlderThan", ""])
            )
        if match == "Exact" and resource_version == "0":
            causes.append(
                forbidden_cause(
                    _MATCH,
                    'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                )
            )
    if send_initial_events is not None:
        causes.append(forbidden_cause(_SEND, "sendInitialEvents is forbidden for list"))
    return causes


NAMESPACE_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on "
    "the request"
)


def name_mismatch(object_name: object, url_name: str) -> KubeError:
    return bad_request(
        f"the name of the object ({object_name}) does not match the name on the "
        f"URL ({url_name})"
    )


def bad_request(message: str) -> KubeError:
    return KubeError(400, "BadRequest", message)


def expired(message: str, continue_token: str = "") -> KubeError:
    return KubeError(410, "Expired", message, None, continue_token)


def too_old_watch(requested: int, oldest: int) -> KubeError:
    """
    The watch cache's answer to a resume from a compacted RV; C{oldest} is
    the lowest RV a watch may still start from.
    """
    return expired(f"too old resource version: {requested} ({oldest})")


LIST_TOO_OLD = "The resourceVersion for the provided list is too old."
INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list "
    "result. You can start a new list without the continue parameter, or use "
    "the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent "
    "list - objects that were created, modified, or deleted between the time "
    "the first chunk was returned and now may show up in the list."
)


def too_large_resource_version(requested: int, current: int) -> KubeError:
    """
    C{storage.NewTooLargeResourceVersionError}: what a read gets when it asks
    for an RV the cache did not reach within its 3 s wait.
    """
    return KubeError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {requested}, current: {current}",
        {
            "causes": [
                {
                    "reason": "ResourceVersionTooLarge",
                    "message": "Too large resource version",
                }
            ],
            "retryAfterSeconds": 1,
        },
    )


def unauthorized() -> KubeError:
    return KubeError(401, "Unauthorized", "Unauthorized")


def method_not_allowed() -> KubeError:
    return KubeError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        {},
    )


def unsupported_media_type(accepted: Sequence[str]) -> KubeError:
    return KubeError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media "
        "types include: " + ", ".join(accepted),
    )


def forbidden(
    rt: ResourceType | None, verb: str, namespace: str | None, name: str = ""
) -> KubeError:
    """
    The authorizer's message for a denied request, as seen in real logs.
    """
    if rt is None:
        return KubeError(
            403,
            "Forbidden",
            f'forbidden: User "system:anonymous" cannot {verb} path',
            {},
        )
    what = f'{rt.group_resource} "{name}"' if name else rt.group_resource
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{what} is forbidden: User "system:anonymous" cannot {verb} resource '
        f'"{rt.plural}" in API group "{rt.group}" {scope}'
    )
    return KubeError(403, "Forbidden", message, _details(rt, name))


# Reason and message of C{NewGenericServerResponse} per status code, used for
# injected faults that name only a code.
GENERIC_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: (
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    ),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the resource version is too old"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: (
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
    ),
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, "
        "but may still be processing the request",
    ),
}


def generic_error(code: int, message: str | None = None) -> KubeError:
    reason, default = GENERIC_RESPONSES.get(
        code, ("InternalError" if code >= 500 else "Unknown", f"injected status {code}")
    )
    return KubeError(code, reason, message if message is not None else default, {})
