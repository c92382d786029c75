"""The one place errors become JSON answers ``{error, message, details}``."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import Request, Response, jsonify, request
from jwt import PyJWTError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from app.core.errors import ProfileCapReached, RedisRefusesWrites, StoreUnavailable, TaskfleetError
from app.store.redis_client import refuses_writes

log = logging.getLogger("taskfleet.api")

#: Methods whose body must be JSON.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    response = jsonify(error=code, message=message, details=details or {})
    response.status_code = status
    return response


class JsonBodyRequest(Request):
    """Flask's request, except that a body ``require_json_body`` found to be a JSON object
    is JSON whatever its Content-Type says, for the schemas and the JSON parser alike."""

    #: Set by ``require_json_body``: the body is a JSON object under another Content-Type.
    json_by_content: bool = False

    @property
    def mimetype(self) -> str:
        return "application/json" if self.json_by_content else super().mimetype


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body.decode("utf-8")), dict)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deeply
        return False


def require_json_body() -> Response | None:
    """415 for a body that is not JSON (an empty body is left to the schema). A body that
    parses as a JSON object is JSON whatever its Content-Type says: ``curl -d '{...}'``
    sends application/x-www-form-urlencoded, and nothing else could be meant."""
    if request.method not in BODY_METHODS or request.is_json:
        return None
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        return _not_json()  # declared too large to read: not looked at
    body = request.get_data(cache=True)
    if not body:
        return None
    if isinstance(request, JsonBodyRequest) and _is_json_object(body):
        request.json_by_content = True
        return None
    return _not_json()


def _not_json() -> Response:
    return error_response(
        415, "unsupported_media_type", "request body must be application/json (or a JSON object)"
    )


def refuse_nul_in_path() -> Response | None:
    """404 for an id with a NUL character: no record has one (Postgres cannot store it),
    and the stores are not asked, since their drivers refuse such a parameter outright."""
    if any(isinstance(value, str) and "\x00" in value for value in (request.view_args or {}).values()):
        return error_response(404, "not_found", "no such resource")
    return None


#: Answers of the request-body checks above and below, for every operation they apply to:
#: (status, description, whether the operation needs a JSON body of its own).
BODY_ERRORS = (
    ("400", "Malformed JSON body", True),
    ("413", "Request body larger than MAX_BODY_BYTES", False),
    ("415", "Request body is neither application/json nor a JSON object", False),
)


def _has_required_fields(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = spec.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
    return bool(schema.get("required"))


def _document_body(spec: dict[str, Any], operation: dict[str, Any]) -> None:
    body = operation.get("requestBody")
    if body and any(
        _has_required_fields(spec, media.get("schema", {})) for media in body["content"].values()
    ):
        body["required"] = True  # a missing body is a 422, like a missing required field
    responses = operation.setdefault("responses", {})
    error = responses.get("422") or responses.get("401")
    for status, description, needs_body in BODY_ERRORS:
        if needs_body and "requestBody" not in operation:
            continue
        response: dict[str, Any] = {"description": description}
        if error and "content" in error:
            response["content"] = error["content"]
        responses.setdefault(status, response)


def _document_query(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if parameter.get("in") != "query" or not schema.pop("nullable", False):
            continue
        if "default" in schema and schema["default"] is None:
            del schema["default"]
        if "enum" in schema:
            schema["enum"] = [value for value in schema["enum"] if value is not None]


#: Answers any operation behind a bearer token, or using a store, may give.
AUTH_ERRORS = (("403", "The token's roles do not allow this"),)
STORE_ERRORS = (
    ("503", "Redis or the database is unreachable, or Redis is full; try again after Retry-After"),
)
#: Operations that use no store (answered by the API process alone).
STORELESS_PATHS = frozenset({"/api/health"})


def _document_errors(path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    error = next((responses[s] for s in ("422", "401", "404") if s in responses), None)
    answers = list(AUTH_ERRORS) if operation.get("security") else []
    if path not in STORELESS_PATHS:
        answers += STORE_ERRORS
    for status, description in answers:
        response: dict[str, Any] = {"description": description}
        if error and "content" in error:
            response["content"] = error["content"]
        responses.setdefault(status, response)


def complete_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Complete /openapi.json where apiflask leaves gaps or says too much:

    - a JSON body whose schema has required fields is itself required;
    - the 400/413/415 answers of the JSON parser and ``require_json_body`` are
      documented, with the error schema of the operation's own 422 or 401;
    - a query parameter that may be left out is optional, not nullable: a query string
      cannot carry a null (``?status=null`` is the string "null", refused as such);
    - 403 on every operation behind a token, 503 on every one that uses a store.
    """
    for name, path in spec.get("paths", {}).items():
        for method, operation in path.items():
            if method.upper() in BODY_METHODS:
                _document_body(spec, operation)
            _document_query(operation)
            _document_errors(name, operation)
    return spec


def register_error_handlers(app: APIFlask) -> None:
    app.request_class = JsonBodyRequest
    app.before_request(require_json_body)
    app.before_request(refuse_nul_in_path)
    app.spec_processor(complete_spec)

    @app.error_processor
    def _apiflask_error(error: HTTPError) -> Response:
        # Validation errors of request schemas land here with apiflask's status (422).
        if error.status_code == 400 and request.is_json and request.get_json(silent=True) is None:
            return error_response(400, "malformed_json", "request body is not valid JSON")
        code = "validation_error" if error.status_code == 422 else _snake(error.message)
        response = error_response(error.status_code, code, error.message, error.detail)
        response.headers.update(error.headers or {})
        return response

    @app.errorhandler(TaskfleetError)
    def _taskfleet_error(error: TaskfleetError) -> Response:
        response = error_response(error.status, error.code, error.message, error.details)
        if isinstance(error, ProfileCapReached):
            response.headers["Retry-After"] = str(error.retry_after_s)
        if isinstance(error, StoreUnavailable):
            response.headers["Retry-After"] = str(error.retry_after_s)
            log.warning("unavailable: %s (%s)", error.message, type(error.__cause__).__name__)
        return response

    @app.errorhandler(RecursionError)
    def _too_deep(error: RecursionError) -> Response:
        return error_response(400, "malformed_json", "request body is nested too deeply")

    @app.errorhandler(PyJWTError)
    def _jwt_error(error: PyJWTError) -> Response:
        return error_response(401, "unauthorized", "invalid token")

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code, message = _snake(error.name), error.description or error.name
        if status == 400 and request.is_json:
            code, message = "malformed_json", "request body is not valid JSON"
        if status == 413:
            code, message = "payload_too_large", "request body is larger than MAX_BODY_BYTES"
        response = error_response(status, code, message)
        # Keep the exception's own headers (the Allow of a 405, the WWW-Authenticate of a
        # 401), but not its HTML content type.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if refuses_writes(error):  # a Redis call the store left unwrapped: still a 503
            return _taskfleet_error(RedisRefusesWrites())
        if isinstance(error, SQLAlchemyError):
            # A database's own message can quote the statement with its values (Postgres
            # echoes the failing line): log the kind of error only.
            cause = getattr(error, "orig", None) or error
            log.error("database error %s on %s %s", type(cause).__name__, request.method, request.path)
        else:
            log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error")
