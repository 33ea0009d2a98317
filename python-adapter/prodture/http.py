"""Ready-made HTTP effects with httpx performers (``pip install prodture[http]``).

In a handler::

    from prodture import http

    reply = await http.post(f"{PAYMENTS}/charges", json={"amount": 12}, headers={"Authorization": key})
    charge = reply.json()

``http.get/post/put/patch/delete/request`` build an :class:`HttpRequest` effect; the performers
(:func:`performers` for ``Interpreter.run``, :func:`async_performers` for ``run_async``) send it
with an ``httpx.Client``/``AsyncClient`` and answer an :class:`HttpResponse`.

* A 4xx/5xx status raises :class:`ClientError`/:class:`ServerError` (registered, so replay raises
  the same type at the same line); pass ``raise_for_status=False`` to get the response instead.
  A transport failure (refused, timed out) raises :class:`TransportError`.
* ``Authorization``, ``Cookie``, ``Proxy-Authorization`` request headers and ``Set-Cookie``
  response headers are kept in a field declared with :func:`prodture.secret`, so they are
  redacted in every trace whatever the recorder's patterns (``secret_headers=`` names more).

This module imports httpx only when a performer is built: handlers and replay need only the
effect and value types.
"""

from __future__ import annotations

import dataclasses
import json as _json
from collections.abc import Iterable, Mapping
from typing import Any

from .effects import Effect, register, secret

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "HTTPStatusError",
    "ClientError",
    "ServerError",
    "TransportError",
    "request",
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "performers",
    "async_performers",
    "SECRET_REQUEST_HEADERS",
]

#: Request headers never recorded (lower case).
SECRET_REQUEST_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
#: Response headers never recorded (lower case).
SECRET_RESPONSE_HEADERS = frozenset({"set-cookie"})


@dataclasses.dataclass(frozen=True)
class HttpRequest(Effect, name="prodture.http.Request"):
    """One HTTP request. ``secret_headers`` holds the headers that must never be recorded."""

    method: str
    url: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    timeout: float | None = None
    raise_for_status: bool = True
    secret_headers: dict[str, str] = secret(default_factory=dict)


@register(name="prodture.http.Response")
@dataclasses.dataclass(frozen=True)
class HttpResponse:
    status_code: int
    url: str
    headers: dict[str, str]
    content: bytes
    secret_headers: dict[str, str] = secret(default_factory=dict)

    def json(self) -> Any:
        return _json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


@register(name="prodture.http.HTTPStatusError")
class HTTPStatusError(Exception):
    """The server answered 4xx/5xx: ``status_code``, ``url`` and the response ``body`` (text)."""

    def __init__(self, status_code: int, url: str, body: str) -> None:
        super().__init__(f"HTTP {status_code} from {url}: {body[:200]}")
        self.status_code = status_code
        self.url = url
        self.body = body


@register(name="prodture.http.ClientError")
class ClientError(HTTPStatusError):
    """4xx."""


@register(name="prodture.http.ServerError")
class ServerError(HTTPStatusError):
    """5xx."""


@register(name="prodture.http.TransportError")
class TransportError(Exception):
    """No answer: connection refused, timed out, reset (``kind`` is httpx's error class name)."""

    def __init__(self, kind: str, url: str, message: str) -> None:
        super().__init__(f"{kind} for {url}: {message}")
        self.kind = kind
        self.url = url


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    timeout: float | None = None,
    raise_for_status: bool = True,
    secret_headers: Iterable[str] = (),
) -> HttpRequest:
    """An :class:`HttpRequest` with its secret headers split off (see the module docstring)."""
    hidden = SECRET_REQUEST_HEADERS | {h.lower() for h in secret_headers}
    plain: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key, value in (headers or {}).items():
        (secrets if key.lower() in hidden else plain)[key] = value
    return HttpRequest(
        method.upper(),
        url,
        plain,
        dict(params) if params is not None else None,
        json,
        content.encode() if isinstance(content, str) else content,
        timeout,
        raise_for_status,
        secrets,
    )


def get(url: str, **kwargs: Any) -> HttpRequest:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> HttpRequest:
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> HttpRequest:
    return request("PUT", url, **kwargs)


def patch(url: str, **kwargs: Any) -> HttpRequest:
    return request("PATCH", url, **kwargs)


def delete(url: str, **kwargs: Any) -> HttpRequest:
    return request("DELETE", url, **kwargs)


# ---------------------------------------------------------------------------------------------
# Performers


def _send_args(effect: HttpRequest) -> dict[str, Any]:
    args: dict[str, Any] = {"headers": {**effect.headers, **effect.secret_headers}}
    if effect.params is not None:
        args["params"] = effect.params
    if effect.json is not None:
        args["json"] = effect.json
    if effect.content is not None:
        args["content"] = effect.content
    if effect.timeout is not None:
        args["timeout"] = effect.timeout
    return args


def _answer(effect: HttpRequest, response: Any) -> HttpResponse:
    plain: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key, value in response.headers.multi_items():
        target = secrets if key.lower() in SECRET_RESPONSE_HEADERS else plain
        target[key] = f"{target[key]}, {value}" if key in target else value
    answer = HttpResponse(response.status_code, str(response.url), plain, response.content, secrets)
    if effect.raise_for_status and response.status_code >= 400:
        error = ClientError if response.status_code < 500 else ServerError
        raise error(response.status_code, str(response.url), answer.text)
    return answer


def _transport_error(effect: HttpRequest, error: Exception) -> TransportError:
    return TransportError(type(error).__name__, effect.url, str(error) or type(error).__name__)


def performers(client: Any = None) -> dict[type, Any]:
    """``{HttpRequest: perform}`` for ``Interpreter.run``, sending with ``client`` (an
    ``httpx.Client``; a new one by default)."""
    import httpx

    client = client if client is not None else httpx.Client()

    def perform(effect: HttpRequest) -> HttpResponse:
        try:
            response = client.request(effect.method, effect.url, **_send_args(effect))
        except httpx.TransportError as error:
            raise _transport_error(effect, error) from None
        return _answer(effect, response)

    return {HttpRequest: perform}


def async_performers(client: Any = None) -> dict[type, Any]:
    """``{HttpRequest: perform}`` for ``Interpreter.run_async`` with an ``httpx.AsyncClient``
    (requests gathered with ``prodture.gather`` run concurrently)."""
    import httpx

    client = client if client is not None else httpx.AsyncClient()

    async def perform(effect: HttpRequest) -> HttpResponse:
        try:
            response = await client.request(effect.method, effect.url, **_send_args(effect))
        except httpx.TransportError as error:
            raise _transport_error(effect, error) from None
        return _answer(effect, response)

    return {HttpRequest: perform}
