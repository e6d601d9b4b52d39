"""HTTP plumbing the endpoints share: JSON bodies in and out, request ids, error responses.

A client mistake anywhere is a ``BadRequest``; ``error`` turns it into the JSON
error response, ``answer`` runs an endpoint's work (in a thread for a large body) and answers
with its result or its error. After a large body the allocator's free memory goes back to the
system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import uuid
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

JSON_TYPES = ("application/json",)
# After a request body this large, free memory is handed back to the system (see trim_memory).
TRIM_AFTER_BYTES = 1 << 20
# Bodies up to this size are handled on the event loop (a thread hop would cost more than a
# small prediction); larger ones in a thread, so that they do not hold up /health and the rest.
INLINE_BYTES = 16 << 10
MAX_DETAILS = 100  # problems listed (and looked for) in one response, by default
MAX_ECHO = 120  # characters of a client's value or field name repeated in an error
MAX_MESSAGE = 600


class BadRequest(Exception):
    """A client mistake: the HTTP status and one detail per problem.

    At most ``limit`` details are kept, and every text a client could have put there (a field
    name, a value) is clipped: a 5 MB value must not come back as a 5 MB error.
    """

    def __init__(
        self,
        status: int,
        message: str,
        details: list[dict[str, Any]],
        total: int | None = None,
        limit: int = MAX_DETAILS,
    ) -> None:
        total = len(details) if total is None else total
        if total > limit:
            message += f"; the first {limit} are listed"
        message = clip(message, MAX_MESSAGE)
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = [_clipped(d) for d in details[:limit]]


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text``, or its start and end around a note of how much was cut."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]}...[{len(text) - 2 * keep} characters cut]...{text[-keep:]}"


def _clipped(found: dict[str, Any]) -> dict[str, Any]:
    field = found.get("field")
    return {
        **found,
        "field": clip(field) if isinstance(field, str) else field,
        "msg": clip(str(found["msg"]), MAX_MESSAGE),
    }


def detail(field: str | None, kind: str, message: str, row: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"field": field, "type": kind, "msg": message}
    if row is not None:
        found["row"] = row
    return found


class ErrorResponse(BaseModel):
    error: str
    detail: list[dict[str, Any]] = Field(
        description="one per problem (at most 100 by default): field (the feature), type, msg, "
        "and row (from 1) in a batch; a client's long value or field name is shortened"
    )
    request_id: str | None


CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "malformed JSON"},
    401: {"model": ErrorResponse, "description": "an API key is configured and was not sent"},
    413: {"model": ErrorResponse, "description": "too many records or too large a body"},
    415: {"model": ErrorResponse, "description": "not Content-Type: application/json"},
    422: {"model": ErrorResponse, "description": "a field missing, unknown, of the wrong type..."},
}


def error(request: Request, exc: BadRequest) -> Response:
    request_id = getattr(request.state, "request_id", None)
    body = {"error": exc.message, "detail": exc.details, "request_id": request_id}
    return json_response(body, exc.status, request_id)


async def answer(request: Request, work: Any, request_id: str, size: int) -> Response:
    """``work()``'s result as the response, or its ``BadRequest`` as the error response; after
    a large body, free memory goes back to the system."""
    try:
        result = await run_in_threadpool(work) if size > INLINE_BYTES else work()
        response = json_response(result, 200, request_id)
    except BadRequest as exc:
        response = error(request, exc)
        # The traceback's frames hold the parsed body and, through the thread pool's future,
        # the exception again: a cycle that only a full collection (rare) would free. A
        # 15 MiB body refused that way kept ~45 MB each until then.
        exc.__traceback__ = None
    if size > TRIM_AFTER_BYTES:
        await run_in_threadpool(trim_memory)
    return response


def trim_memory() -> None:
    """Give the allocator's free memory back to the system (glibc keeps it otherwise: a
    64 MiB JSON body left the process ~290 MB larger for good)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def request_id(request: Request) -> str:
    request_id = uuid.uuid4().hex
    request.state.request_id = request_id
    return request_id


async def json_body(request: Request, limit: int) -> bytes:
    """The body of a JSON request: 415 for another content type, 413 beyond ``limit`` bytes."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise BadRequest(
            415,
            "the body must be JSON",
            [detail(None, "content_type", f"send Content-Type: application/json, not "
                    f"'{content_type or 'none'}'")],
        )  # fmt: skip
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> BadRequest:
    return BadRequest(
        413,
        f"the body is larger than {limit} bytes",
        [detail(None, "body_too_large", "send smaller batches")],
    )


def json_response(body: Any, status: int = 200, request_id: str | None = None) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
