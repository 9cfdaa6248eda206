"""
A small Kubernetes REST client spoken directly with treq.

Only what the daemon needs: paged lists, gets, JSON merge patches and watch
streams, for a handful of resource types.  Every request goes through
:obj:`KubeClient._request`, which adds the bearer token, re-reads rotated
credentials after a 401 and turns non-2xx answers into the typed
:obj:`KubeError` family, so callers decide on retries by exception type rather
than by inspecting status codes.

The HTTP client is injected (a treq ``HTTPClient``, or
``treq.testing.StubTreq`` in tests) and so is the clock: nothing here touches
the global reactor unless the caller leaves the clock out.
"""

from __future__ import annotations

import json
import math
import random as _random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast
from urllib.parse import quote, urlencode

from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import (
    ConnectError,
    ConnectionClosed,
)
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol as _TwistedProtocol
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import RequestNotSent
from twisted.web.client import (
    _HTTP11ClientFactory,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IPolicyForHTTPS, IResponse

if TYPE_CHECKING:
    from treq.testing import StubTreq

__all__ = [
    "CLUSTERCONFIGS",
    "PROJECTCONFIGS",
    "PROMOTIONS",
    "SECRETS",
    "WAREHOUSES",
    "BadRequest",
    "BadResponse",
    "Conflict",
    "Credentials",
    "Forbidden",
    "Gone",
    "HTTPRequester",
    "Invalid",
    "KubeClient",
    "KubeError",
    "NotFound",
    "ResourceType",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "WatchDecodeError",
    "WatchStalled",
    "WatchStream",
    "error_from_response",
    "error_from_status",
    "is_retryable",
    "make_http_client",
]

_T = TypeVar("_T")

log = Logger()

#: The largest error body we read; APF answers are one line, Status bodies
#: a few hundred bytes.  Anything bigger is cut, not buffered.
MAX_ERROR_BODY = 64 * 1024

#: The largest single watch event (one line) we accept.  etcd refuses
#: objects over 1.5 MiB, so this is generous; it only bounds a broken peer.
MAX_EVENT_BYTES = 16 * 1024 * 1024

#: The largest list page we accept (500 Kargo objects are a few MiB).
MAX_LIST_BYTES = 256 * 1024 * 1024


# --------------------------------------------------------------------------
# Resource types


@dataclass(frozen=True)
class ResourceType:
    """
    One kind of Kubernetes object the daemon reads or patches.

    The core group (``group=""``) lives under ``/api/v1``; every other group
    under ``/apis/GROUP/VERSION``.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """
        The ``apiVersion`` objects of this type carry.
        """
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        """
        ``plural.group`` as kubectl spells it: a stable label for logs and
        metrics.
        """
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def prefix(self) -> str:
        """
        The API path prefix of the type's group and version.
        """
        if self.group:
            return f"/apis/{self.group}/{self.version}"
        return f"/api/{self.version}"

    def collection_path(self, namespace: str | None) -> str:
        """
        The list/watch path: one namespace, or all of them when ``namespace``
        is :obj:`None`.

        :raises ValueError: a namespace was given for a cluster-scoped type.
        """
        if namespace is None:
            return f"{self.prefix}/{self.plural}"
        if not self.namespaced:
            raise ValueError(f"{self.name} is cluster-scoped: no namespace")
        return f"{self.prefix}/namespaces/{_seg(namespace)}/{self.plural}"

    def object_path(self, namespace: str | None, name: str) -> str:
        """
        The get/patch path of one object.

        :raises ValueError: the namespace does not fit the type's scope.
        """
        if self.namespaced and namespace is None:
            raise ValueError(f"{self.name} is namespaced: a namespace is needed")
        return f"{self.collection_path(namespace)}/{_seg(name)}"


def _seg(value: str) -> str:
    """
    Quote one path segment, so a stray ``/`` cannot climb the URL.
    """
    if not value or value in (".", ".."):
        raise ValueError(f"invalid path segment {value!r}")
    return quote(value, safe="")


WAREHOUSES = ResourceType("kargo.akuity.io", "v1alpha1", "warehouses", "Warehouse")
PROMOTIONS = ResourceType("kargo.akuity.io", "v1alpha1", "promotions", "Promotion")
PROJECTCONFIGS = ResourceType(
    "kargo.akuity.io", "v1alpha1", "projectconfigs", "ProjectConfig"
)
CLUSTERCONFIGS = ResourceType(
    "kargo.akuity.io", "v1alpha1", "clusterconfigs", "ClusterConfig", namespaced=False
)
SECRETS = ResourceType("", "v1", "secrets", "Secret")


# --------------------------------------------------------------------------
# Errors


class KubeError(Exception):
    """
    The API answered with a non-2xx status.

    :ivar code: the HTTP status (or the ``code`` of a Status in a watch
        ``ERROR`` event).
    :ivar reason: the Status ``reason`` (``NotFound``, ``Expired``, ...), or the
        HTTP reason phrase when the body was not a Status.
    :ivar message: the Status ``message``, or the start of a plain-text body
        (API Priority and Fairness answers 429 in plain text).
    :ivar retry_after: seconds from ``Retry-After`` (or the Status'
        ``details.retryAfterSeconds``), if any.
    :ivar status: the decoded Status object, if the body was one.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        retry_after: float | None = None,
        status: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code, reason, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.status = status

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    @property
    def causes(self) -> list[str]:
        """
        The ``details.causes[].reason`` values of the Status (for instance
        ``ResourceVersionTooLarge``).
        """
        details = (self.status or {}).get("details")
        causes = details.get("causes") if isinstance(details, dict) else None
        if not isinstance(causes, list):
            return []
        return [
            c["reason"]
            for c in causes
            if isinstance(c, dict) and isinstance(c.get("reason"), str)
        ]

    @property
    def resource_version_too_large(self) -> bool:
        """
        Whether the server's cache has not reached the resource version asked
        for (a 504 after a 3 s wait).  Retrying the same request does not
        help; a consistent read (no resource version) does.
        """
        return "ResourceVersionTooLarge" in self.causes or (
            self.code == 504 and "Too large resource version" in self.message
        )


class BadRequest(KubeError):
    """400."""


class Unauthorized(KubeError):
    """401: the credentials were refused (after re-reading them once)."""


class Forbidden(KubeError):
    """403: RBAC (or admission) said no."""


class NotFound(KubeError):
    """404: the object, or the resource type (CRD not installed), is absent."""


class Conflict(KubeError):
    """409: a precondition failed."""


class Gone(KubeError):
    """410 (reason ``Expired`` or ``Gone``): a resource version or continue
    token fell out of the server's history."""


class UnsupportedMediaType(KubeError):
    """415: the patch type is not accepted."""


class Invalid(KubeError):
    """422: the request (or the object it would produce) is invalid."""


class TooManyRequests(KubeError):
    """429: throttled by API Priority and Fairness or max-inflight."""


class ServerError(KubeError):
    """5xx."""


_BY_CODE: dict[int, type[KubeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    415: UnsupportedMediaType,
    422: Invalid,
    429: TooManyRequests,
}


class TransportError(Exception):
    """
    No usable HTTP answer: connection refused or reset, TLS failure, a
    request that could not be sent or whose response never came, a
    timeout, or an answer that could not be decoded.  Always worth retrying.
    """

    def __init__(self, message: str, cause: Failure | BaseException | None = None):
        super().__init__(message)
        self.message = message
        self.cause = cause

    def __str__(self) -> str:
        return self.message


class BadResponse(TransportError):
    """A 2xx answer whose body was not the JSON object expected."""


class WatchStalled(TransportError):
    """A watch stream stayed silent past its inactivity limit and was aborted."""


class WatchDecodeError(TransportError):
    """A watch stream carried a line that is not a JSON object."""


def is_retryable(error: BaseException) -> bool:
    """
    Whether a failed request may succeed if sent again later: throttling,
    server errors and transport failures.
    """
    return isinstance(error, (TooManyRequests, ServerError, TransportError))


def _class_for(code: int, reason: str) -> type[KubeError]:
    if code == 410 or reason in ("Expired", "Gone"):
        return Gone
    if code >= 500:
        return ServerError
    return _BY_CODE.get(code, KubeError)


def _parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """
    ``Retry-After`` as seconds: an integer (what the API server sends), or
    an HTTP date for good measure.  Unparseable values are ignored.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if now is None:
            return None
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def error_from_status(
    status: Mapping[str, Any],
    code: int | None = None,
    phrase: str = "",
    retry_after: float | None = None,
) -> KubeError:
    """
    Build the typed error for a Kubernetes ``Status`` object (from an error
    response or from a watch ``ERROR`` event).
    """
    raw_code = status.get("code")
    if code is None:
        code = raw_code if isinstance(raw_code, int) else 500
    reason = status.get("reason")
    if not isinstance(reason, str) or not reason:
        reason = phrase or "Unknown"
    message = status.get("message")
    if not isinstance(message, str):
        message = ""
    if retry_after is None:
        details = status.get("details")
        if isinstance(details, dict):
            ras = details.get("retryAfterSeconds")
            if isinstance(ras, (int, float)) and ras >= 0:
                retry_after = float(ras)
    return _class_for(code, reason)(code, reason, message, retry_after, status)


def error_from_response(
    code: int,
    phrase: str,
    body: bytes,
    retry_after_header: str | None = None,
) -> KubeError:
    """
    Build the typed error for a non-2xx answer: a JSON ``Status`` body when
    there is one, else a plain-text (or empty) body as the message.
    """
    retry_after = _parse_retry_after(retry_after_header)
    try:
        decoded = json.loads(body) if body.strip() else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        return error_from_status(decoded, code, phrase, retry_after)
    text = body.decode("utf-8", "replace").strip()
    if len(text) > 300:
        text = text[:300] + "..."
    reason = phrase or "Unknown"
    return _class_for(code, reason)(code, reason, text, retry_after, None)


# --------------------------------------------------------------------------
# Credentials and the HTTP client


class Credentials(Protocol):
    """
    Where the bearer token comes from.  :obj:`bbreceiver.kube.auth` has a static
    token and a token file that is re-read as it rotates.
    """

    def token(self) -> str | None:
        """
        The token to send now, or :obj:`None` for none.
        """

    def token_rejected(self, token: str | None) -> bool:
        """
        The server answered 401 to a request sent with ``token``: look for a
        fresh one now.

        :return: whether a different token is now available, so that
            sending the request once more makes sense.
        """


class HTTPRequester(Protocol):
    """
    The part of treq's ``HTTPClient`` used here (``StubTreq`` has it too):
    ``request(method, url, *, headers, data, unbuffered, allow_redirects)``
    returning a Deferred response.
    """

    @property
    def request(self) -> Callable[..., Deferred[Any]]:
        """
        Send a request; see ``treq.request``.
        """


@dataclass(frozen=True)
class _Retry:
    max_attempts: int
    base: float
    cap: float
    retry_after_cap: float


class _BodyCollector(_TwistedProtocol):
    """
    Read a whole response body, up to a size limit, in a way that can be
    abandoned: cancelling :obj:`finished` aborts the connection rather than
    leaving it reading forever.
    """

    def __init__(self, limit: int, truncate: bool) -> None:
        self._limit = limit
        self._truncate = truncate
        self._parts: list[bytes] = []
        self._size = 0
        self.finished: Deferred[bytes] = Deferred(lambda d: self._abort())

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        room = self._limit - self._size
        if len(data) > room:
            self._parts.append(data[:room])
            self._size = self._limit
            self._abort()
            if self._truncate:
                self.finished.callback(b"".join(self._parts))
            else:
                self.finished.errback(
                    BadResponse(f"response body over {self._limit} bytes")
                )
            return
        self._parts.append(data)
        self._size += len(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            self.finished.callback(b"".join(self._parts))
        else:
            self.finished.errback(
                TransportError("response body lost: " + _describe(reason), reason)
            )


def _describe(failure: Failure | BaseException) -> str:
    """
    A one-line account of a transport failure, unwrapping the lists of
    failures that ``twisted.web.client`` nests.
    """
    value = failure.value if isinstance(failure, Failure) else failure
    inner = getattr(value, "reasons", None)
    if isinstance(inner, list) and inner:
        return "; ".join(_describe(f) for f in inner)
    text = str(value).strip()
    name = type(value).__name__
    return f"{name}: {text}" if text else name


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectError,
    ConnectionClosed,
    TwistedTimeoutError,
    ResponseNeverReceived,
    RequestTransmissionFailed,
    RequestNotSent,
    ResponseFailed,
    SSL.Error,
    OSError,
)


def _guard(
    clock: IReactorTime, d: Deferred[_T], timeout: float | None, what: str
) -> Deferred[_T]:
    """
    Wrap ``d`` so that (a) it fails with :obj:`TransportError` after ``timeout``
    seconds, and (b) cancelling the wrapper always yields :obj:`CancelledError`,
    whatever ``twisted.web.client`` turns the cancellation into (it reports
    a cancelled request as ``ResponseNeverReceived``, which would otherwise
    look like a retryable transport failure and keep a stopping service
    busy).
    """
    state = {"cancelled": False, "timed_out": False}

    def cancel(_: Deferred[_T]) -> None:
        state["cancelled"] = True
        d.cancel()

    wrapper: Deferred[_T] = Deferred(cancel)
    call: IDelayedCall | None = None

    def expire() -> None:
        state["timed_out"] = True
        d.cancel()

    if timeout is not None:
        call = clock.callLater(timeout, expire)

    def done(result: _T | Failure) -> None:
        if call is not None and call.active():
            call.cancel()
        if wrapper.called:
            return  # already failed by cancellation; drop the late result
        if isinstance(result, Failure):
            if state["cancelled"]:
                wrapper.errback(CancelledError())
            elif state["timed_out"]:
                wrapper.errback(TransportError(f"{what}: timed out after {timeout}s"))
            else:
                wrapper.errback(result)
        else:
            wrapper.callback(result)

    d.addBoth(done)
    return wrapper


class KubeClient:
    """
    Speaks to one API server.

    :param http_client: treq's ``HTTPClient`` (see :obj:`make_http_client`) or
        anything with its ``request`` surface, such as ``StubTreq``.
    :param base_url: ``https://host:port``, possibly with a path prefix (as
        behind Rancher); no trailing ``/`` needed.
    :param credentials: the bearer token source, or :obj:`None` for none (client
        certificates live in the HTTP client's TLS policy).
    :param clock: for timeouts, retry delays and inactivity timers; the
        global reactor when left out.
    :param random: returns a float in [0, 1); injected so tests can pin
        the jitter.
    :param request_timeout: seconds allowed for the response headers of any
        request, and again for the body of a non-streaming one.
    :param max_attempts: how many times :obj:`get` and :obj:`list_page` try in all on
        429, 5xx and transport errors.
    """

    def __init__(
        self,
        http_client: HTTPRequester | StubTreq,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        clock: IReactorTime | None = None,
        random: Callable[[], float] = _random.random,
        request_timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        retry_after_cap: float = 32.0,
        user_agent: str = "bbreceiver",
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        # StubTreq grows its methods at run time; it has this one.
        self._http = cast(HTTPRequester, http_client)
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.clock = clock
        self._random = random
        self.request_timeout = request_timeout
        self._retry = _Retry(
            max(1, max_attempts), backoff_base, backoff_cap, retry_after_cap
        )
        self._user_agent = user_agent

    # -- the one request path ----------------------------------------------

    def _url(self, path: str, query: list[tuple[str, str]]) -> str:
        url = self.base_url + path
        if query:
            # Quote everything ourselves: a continue token or selector must
            # reach the server byte-for-byte (Go reads "+" as a space).
            url += "?" + urlencode(query, quote_via=quote, safe="")
        return url

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> IResponse:
        """
        Send one request and return the 2xx response with its body unread.

        Adds the bearer token; after a 401, asks the credentials for a fresh
        token and, if there is one, sends the request once more.

        :raises KubeError: (a subclass of) for a non-2xx answer.
        :raises TransportError: when no answer came.
        """
        url = self._url(path, query or [])
        timeout = self.request_timeout if timeout is None else timeout
        reauthenticated = False
        while True:
            token = self.credentials.token() if self.credentials else None
            sent = {
                "Accept": "application/json",
                "User-Agent": self._user_agent,
                **(headers or {}),
            }
            if token:
                sent["Authorization"] = f"Bearer {token}"
            response = await self._send(method, url, sent, body, timeout)
            code = response.code
            if 200 <= code < 300:
                return response
            raw = await self._read(response, MAX_ERROR_BODY, True, timeout, url)
            retry_after = response.headers.getRawHeaders(b"retry-after")
            error = error_from_response(
                code,
                _text(response.phrase),
                raw,
                _text(retry_after[0]) if retry_after else None,
            )
            if error.retry_after is not None:
                error.retry_after = min(error.retry_after, self._retry.retry_after_cap)
            if (
                isinstance(error, Unauthorized)
                and self.credentials is not None
                and not reauthenticated
                and self.credentials.token_rejected(token)
            ):
                reauthenticated = True
                log.info(
                    "API refused the token for {method} {path}; "
                    "retrying with a fresh one",
                    method=method,
                    path=path,
                )
                continue
            raise error

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float | None,
    ) -> IResponse:
        try:
            d = self._http.request(
                method,
                url,
                headers=headers,
                data=body,
                unbuffered=True,
                allow_redirects=False,
            )
        except _TRANSPORT_ERRORS as e:
            raise TransportError(f"{method} {url}: {_describe(e)}", e) from e
        try:
            return cast(
                IResponse, await _guard(self.clock, d, timeout, f"{method} {url}")
            )
        except (CancelledError, TransportError):
            raise
        except _TRANSPORT_ERRORS as e:
            raise TransportError(f"{method} {url}: {_describe(e)}", e) from e

    async def _read(
        self,
        response: IResponse,
        limit: int,
        truncate: bool,
        timeout: float | None,
        url: str,
    ) -> bytes:
        collector = _BodyCollector(limit, truncate)
        response.deliverBody(collector)  # type: ignore[no-untyped-call]
        return await _guard(self.clock, collector.finished, timeout, f"reading {url}")

    async def _request_json(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        response = await self._request(
            method, path, query=query, headers=headers, body=body, timeout=timeout
        )
        timeout = self.request_timeout if timeout is None else timeout
        raw = await self._read(response, MAX_LIST_BYTES, False, timeout, path)
        try:
            decoded = json.loads(raw)
        except ValueError as e:
            raise BadResponse(f"{method} {path}: response is not JSON: {e}") from e
        if not isinstance(decoded, dict):
            raise BadResponse(f"{method} {path}: response is not a JSON object")
        return decoded

    # -- retries -----------------------------------------------------------

    def retry_delay(self, attempt: int, error: BaseException | None = None) -> float:
        """
        The pause before attempt ``attempt + 1``: jittered exponential backoff,
        or the server's ``Retry-After`` (capped) when that is longer.
        """
        nominal = min(self._retry.base * 2.0 ** (attempt - 1), self._retry.cap)
        delay = nominal * (0.5 + 0.5 * self._random())
        if isinstance(error, KubeError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self._retry.retry_after_cap))
        return delay

    async def _retrying(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await operation()
            except (TooManyRequests, ServerError, TransportError) as e:
                if attempt >= self._retry.max_attempts or (
                    isinstance(e, KubeError) and e.resource_version_too_large
                ):
                    raise
                delay = self.retry_delay(attempt, e)
                log.info(
                    "{what} failed ({error}); attempt {attempt} of {attempts}, "
                    "retrying in {delay} s",
                    what=what,
                    error=str(e),
                    attempt=attempt,
                    attempts=self._retry.max_attempts,
                    delay=round(delay, 2),
                )
                await deferLater(self.clock, delay)

    # -- operations --------------------------------------------------------

    async def list_page(
        self,
        resource: ResourceType,
        namespace: str | None,
        *,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> dict[str, Any]:
        """
        One page of a list (the whole list if the server ignores ``limit``).
        Retried a few times on 429, 5xx and transport errors.

        :return: the decoded ``...List`` object: ``metadata.resourceVersion``,
            ``metadata.continue`` (absent or empty on the last page), ``items``.
        """
        query: list[tuple[str, str]] = []
        if limit is not None:
            query.append(("limit", str(limit)))
        if continue_:
            query.append(("continue", continue_))
        if resource_version is not None:
            query.append(("resourceVersion", resource_version))
        if resource_version_match is not None:
            query.append(("resourceVersionMatch", resource_version_match))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        path = resource.collection_path(namespace)
        return await self._retrying(
            f"list {path}",
            lambda: self._request_json("GET", path, query=query),
        )

    async def get(
        self, resource: ResourceType, namespace: str | None, name: str
    ) -> dict[str, Any]:
        """
        One object.  Retried a few times on 429, 5xx and transport errors.

        :raises NotFound: it does not exist.
        """
        path = resource.object_path(namespace, name)
        return await self._retrying(
            f"get {path}", lambda: self._request_json("GET", path)
        )

    async def merge_patch(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        patch: bytes,
        *,
        field_manager: str | None = "bbreceiver",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """
        Apply a JSON merge patch (RFC 7386), sent byte-for-byte.

        One attempt only (besides the re-send after a token rotation): the
        caller owns retries, within its own deadline.  Twisted does not
        re-send a PATCH on a stale pooled connection either, so a
        :obj:`TransportError` here is worth retrying (a merge patch is
        idempotent).

        :return: the patched object.
        :raises KubeError: with ``retry_after`` set when the server sent one.
        """
        query = [("fieldManager", field_manager)] if field_manager else []
        return await self._request_json(
            "PATCH",
            resource.object_path(namespace, name),
            query=query,
            headers={"Content-Type": "application/merge-patch+json"},
            body=patch,
            timeout=timeout,
        )

    async def watch(
        self,
        resource: ResourceType,
        namespace: str | None,
        *,
        resource_version: str | None,
        timeout_seconds: int | None,
        on_event: Callable[[dict[str, Any]], bool | None],
        inactivity_seconds: float,
        field_selector: str | None = None,
        label_selector: str | None = None,
        allow_bookmarks: bool = True,
        clock: IReactorTime | None = None,
    ) -> WatchStream:
        """
        Open a watch and start reading it.

        Returns once the response headers are in; events then go to
        ``on_event`` as they arrive, one decoded ``{"type", "object"}`` dict
        at a time (return ``False`` from it to stop reading).  The returned
        stream's ``done`` tells how it ended.  A single attempt: the
        reflector owns reconnection.

        :param timeout_seconds: asked of the server, which then ends the
            stream cleanly.
        :param inactivity_seconds: no byte for this long aborts the stream
            (:obj:`WatchStalled`); only the headers are covered by the request
            timeout.
        :raises KubeError: the watch was refused (a 410 here means the
            resource version is too old).
        """
        query: list[tuple[str, str]] = [("watch", "true")]
        if resource_version is not None:
            query.append(("resourceVersion", resource_version))
        if allow_bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        if timeout_seconds is not None:
            query.append(("timeoutSeconds", str(timeout_seconds)))
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        response = await self._request(
            "GET", resource.collection_path(namespace), query=query
        )
        stream = WatchStream(clock or self.clock, on_event, inactivity_seconds)
        response.deliverBody(stream)  # type: ignore[no-untyped-call]
        return stream


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class WatchStream(_TwistedProtocol):
    """
    Reads one watch response: newline-delimited JSON events, buffered
    across chunk boundaries (one event may span chunks, one chunk may hold
    several events, blank lines are skipped).

    Any received byte resets the inactivity timer; when it fires the
    transport is aborted with ``stopProducing()`` (treq's ``timeout=`` stops
    at the headers and a dead peer never says so).

    :ivar done: fires with :obj:`None` when the server ends the stream cleanly
        or ``on_event`` asked to stop (then :obj:`stopped` is true); fails with
        :obj:`WatchStalled`, :obj:`WatchDecodeError`, :obj:`TransportError` (connection
        broken) or :obj:`CancelledError` (:obj:`cancel`).  Cancelling it cancels the
        stream.
    :ivar events: how many events were delivered.
    :ivar bytes_received: how many body bytes arrived.
    :ivar opened_at: the clock's time when the body started.
    """

    def __init__(
        self,
        clock: IReactorTime,
        on_event: Callable[[dict[str, Any]], bool | None],
        inactivity_seconds: float,
    ) -> None:
        self._clock = clock
        self._on_event = on_event
        self._inactivity = inactivity_seconds
        self._buffer = bytearray()
        self._scanned = 0
        self._timer: IDelayedCall | None = None
        self.events = 0
        self.bytes_received = 0
        self.stopped = False
        self.opened_at = clock.seconds()
        self.done: Deferred[None] = Deferred(lambda d: self.cancel())

    def connectionMade(self) -> None:
        self._timer = self._clock.callLater(self._inactivity, self._stalled)

    def cancel(self) -> None:
        """
        Stop reading and close the connection; :obj:`done` fails with
        :obj:`CancelledError`.
        """
        if not self.done.called:
            self._abort()
            self._finish(CancelledError())

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def _finish(self, result: BaseException | Failure | None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.done.called:
            return
        if result is None:
            self.done.callback(None)
        else:
            self.done.errback(result)

    def _stalled(self) -> None:
        self._timer = None
        if self.done.called:
            return
        self._abort()
        self._finish(
            WatchStalled(f"watch stream silent for {self._inactivity} s; aborted")
        )

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.bytes_received += len(data)
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._inactivity)
        self._buffer += data
        consumed = 0
        while not self.done.called:
            end = self._buffer.find(b"\n", max(self._scanned, consumed))
            if end < 0:
                break
            line = bytes(self._buffer[consumed:end])
            consumed = end + 1
            self._line(line)
        if self.done.called:
            return
        del self._buffer[:consumed]
        self._scanned = len(self._buffer)
        if len(self._buffer) > MAX_EVENT_BYTES:
            self._decode_error(f"watch event over {MAX_EVENT_BYTES} bytes")

    def _decode_error(self, message: str) -> None:
        self._abort()
        self._finish(WatchDecodeError(message))

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except ValueError as e:
            self._decode_error(f"watch line is not JSON ({e}): {line[:200]!r}")
            return
        if not isinstance(event, dict):
            self._decode_error(f"watch line is not a JSON object: {line[:200]!r}")
            return
        self.events += 1
        try:
            go_on = self._on_event(event)
        except Exception as e:  # noqa: BLE001 - handed to the consumer via done
            self._abort()
            self._finish(e)
            return
        if go_on is False:
            self.stopped = True
            self._abort()
            self._finish(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            rest = bytes(self._buffer)
            self._buffer.clear()
            self._line(rest)
            self._finish(None)
        else:
            self._finish(
                TransportError("watch stream broken: " + _describe(reason), reason)
            )


class _QuietClientFactory(_HTTP11ClientFactory):
    """
    A connection factory that does not log every connection it makes.
    """

    noisy = False


def make_http_client(
    reactor: Any,
    tls_policy: IPolicyForHTTPS | None = None,
    *,
    max_persistent_per_host: int = 32,
    cached_connection_timeout: int = 60,
    connect_timeout: int = 10,
    pool: HTTPConnectionPool | None = None,
) -> HTTPClient:
    """
    A treq ``HTTPClient`` suited to one API server.

    Idle pooled connections are dropped after 60 s, before the API server's
    own 90 s idle close can hit a request in flight; up to 32 are kept so
    the refresher's parallel PATCHes reuse them.  Each watch holds a
    connection of its own while it streams.

    :param tls_policy: see :obj:`bbreceiver.kube.auth.KubeTLSPolicy`; the
        platform's trust store when left out.
    :param pool: use this connection pool as it is (the caller can then
        close its cached connections at shutdown).
    """
    if pool is None:
        pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        pool.maxPersistentPerHost = max_persistent_per_host
        pool.cachedConnectionTimeout = cached_connection_timeout
        pool._factory = _QuietClientFactory
    agent = Agent(  # type: ignore[no-untyped-call]
        reactor,
        contextFactory=tls_policy or BrowserLikePolicyForHTTPS(),  # type: ignore[no-untyped-call]
        pool=pool,
        connectTimeout=connect_timeout,
    )
    return HTTPClient(agent)
