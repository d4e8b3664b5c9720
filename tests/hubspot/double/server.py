"""The HubSpot double's HTTP side: a real loopback server (Werkzeug, threaded) speaking the
paths hubspot-api-client 12 calls, with bearer-token auth, request counting and injectable
faults (any status and HubSpot error body, delays for timeouts)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.hubspot.double import meta, objects
from tests.hubspot.double.search import search
from tests.hubspot.double.state import ApiError, Portal

TOKEN = "pat-na1-test-token"

_RULES = Map([
    Rule("/crm/v3/objects/<t>", methods=["POST"], endpoint="create"),
    Rule("/crm/v3/objects/<t>/search", methods=["POST"], endpoint="search"),
    Rule("/crm/v3/objects/<t>/batch/<action>", methods=["POST"], endpoint="batch"),
    Rule("/crm/v3/objects/<t>/<key>", methods=["GET"], endpoint="get"),
    Rule("/crm/v3/objects/<t>/<key>", methods=["PATCH"], endpoint="update"),
    Rule("/crm/v3/properties/<t>", methods=["GET"], endpoint="properties"),
    Rule("/crm/v3/properties/<t>", methods=["POST"], endpoint="property_create"),
    Rule("/crm/v3/properties/<t>/batch/create", methods=["POST"], endpoint="property_batch"),
    Rule("/crm/v3/properties/<t>/groups", methods=["GET"], endpoint="groups"),
    Rule("/crm/v3/properties/<t>/groups", methods=["POST"], endpoint="group_create"),
    Rule("/crm/v3/properties/<t>/<name>", methods=["GET"], endpoint="property"),
    Rule("/crm/v3/properties/<t>/<name>", methods=["PATCH"], endpoint="property_update"),
    Rule("/crm/v4/associations/<f>/<t>/labels", methods=["GET"], endpoint="labels"),
    Rule("/crm/v4/associations/<f>/<t>/labels", methods=["POST"], endpoint="label_create"),
    Rule("/crm/v4/objects/<f>/<fid>/associations/<t>/<tid>", methods=["PUT"],
         endpoint="associate"),
    Rule("/crm/v4/objects/<f>/<fid>/associations/<t>", methods=["GET"],
         endpoint="associations"),
    Rule("/crm-object-schemas/v3/schemas", methods=["GET"], endpoint="schemas"),
    Rule("/crm-object-schemas/v3/schemas", methods=["POST"], endpoint="schema_create"),
    Rule("/crm/v3/owners/", methods=["GET"], endpoint="owners"),
    Rule("/crm/v3/owners/<key>", methods=["GET"], endpoint="owner"),
    Rule("/crm/v3/pipelines/<t>", methods=["GET"], endpoint="pipelines"),
], strict_slashes=False)


@dataclass
class Fault:
    """An injected answer for matching requests (``times`` of them)."""

    status: int
    body: dict[str, Any] | None
    method: str | None
    path: re.Pattern[str]
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: handle the request first, then lose its answer (a response that never arrived)
    process: bool = False


@dataclass(frozen=True)
class Seen:
    """One request the double received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


def rate_limit_body(policy: str) -> dict[str, Any]:
    """HubSpot's 429 body for a policy (``DAILY``, ``TEN_SECONDLY_ROLLING``, ``SECONDLY``)."""
    message = {"DAILY": "You have reached your daily limit.",
               "SECONDLY": "You have reached your secondly limit."}.get(
        policy, "You have reached your ten_secondly_rolling limit.")
    return {"status": "error", "message": message, "errorType": "RATE_LIMIT",
            "correlationId": "5e1f2a3b-0000-4000-8000-000000000429", "policyName": policy,
            "requestId": "req-429"}


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Tests read the request log, not stderr."""


class HubSpotDouble:
    """A stateful stand-in for api.hubapi.com on 127.0.0.1."""

    def __init__(self) -> None:
        self.portal = Portal()
        self.requests: list[Seen] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self.search_window: tuple[int, float] | None = None
        self._search_times: list[float] = []

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> str:
        """Serve on a free port; returns the base URL."""
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True,
                                   request_handler=_QuietHandler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self, **portal: Any) -> Portal:
        """A fresh portal, no faults, no request log."""
        with self._lock:
            self.portal = Portal(**portal)
            self.requests.clear()
            self._faults.clear()
            self.search_window = None
            self._search_times.clear()
        return self.portal

    # -- test controls ---------------------------------------------------------------------
    def inject(self, status: int, body: dict[str, Any] | None = None, *, method: str | None = None,
               path: str = ".*", times: int = 1, headers: dict[str, str] | None = None,
               delay: float = 0.0, process: bool = False) -> None:
        """Answer the next ``times`` matching requests with ``status`` and ``body``
        (after really handling them when ``process``)."""
        with self._lock:
            self._faults.append(Fault(status, body, method, re.compile(path), times,
                                      headers or {}, delay, process))

    def count(self, method: str | None = None, path: str = ".*") -> int:
        """How many requests matched (method, path regex)."""
        pattern = re.compile(path)
        return sum(1 for r in self.requests
                   if (method is None or r.method == method) and pattern.search(r.path))

    # -- serving -------------------------------------------------------------------------
    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and (fault.method in (None, method)) and \
                        fault.path.search(path):
                    fault.times -= 1
                    return fault
        return None

    def _throttled(self, path: str) -> bool:
        if self.search_window is None or not path.endswith("/search"):
            return False
        count, window = self.search_window
        now = time.monotonic()
        with self._lock:
            self._search_times = [t for t in self._search_times if now - t < window]
            if len(self._search_times) >= count:
                return True
            self._search_times.append(now)
        return False

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not json>"
        with self._lock:
            self.requests.append(Seen(request.method, request.path,
                                      request.args.to_dict(flat=False), body))
        response = self._answer(request, body)
        return response(environ, start_response)

    def _answer(self, request: Request, body: Any) -> Response:
        """A fault if one matches, else the real answer."""
        fault = self._fault_for(request.method, request.path)
        if fault is not None:
            if fault.process:
                self._handle(request, body)
            time.sleep(fault.delay)
            return _json(fault.status, fault.body, fault.headers)
        return self._handle(request, body)

    def _handle(self, request: Request, body: Any) -> Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _json(401, ApiError(401, "INVALID_AUTHENTICATION",
                                       "Authentication credentials not found.").body)
        if self._throttled(request.path):
            return _json(429, rate_limit_body("SECONDLY"))
        if request.method in ("POST", "PATCH") and not isinstance(body, dict):
            return _json(400, ApiError(400, "VALIDATION_ERROR", "Invalid input JSON").body)
        try:
            endpoint, values = _RULES.bind("double").match(request.path, request.method)
            with self.portal.lock:
                status, data = self._dispatch(endpoint, values, request, body)
        except ApiError as exc:
            return _json(exc.status, exc.body, exc.headers)
        except HTTPException as exc:  # the router's 404/405, in HubSpot's words
            code = exc.code or 500
            return _json(code, {"status": "error", "message": str(exc),
                                "category": "OBJECT_NOT_FOUND" if code == 404 else "ERROR",
                                "correlationId": "router"})
        return _json(status, data)

    def _dispatch(self, endpoint: str, v: Mapping[str, Any], request: Request,
                  body: Any) -> tuple[int, Any]:
        p, args = self.portal, request.args
        t = p.canonical(v["t"]) if "t" in v else ""
        handlers: dict[str, Callable[[], tuple[int, Any]]] = {
            "create": lambda: (201, objects.create(p, t, body)),
            "search": lambda: (200, search(p, t, body)),
            "batch": lambda: objects.batch(p, t, v["action"], body),
            "get": lambda: (200, self._get(t, v["key"], request)),
            "update": lambda: (200, objects.update(p, t, v["key"], body, args.get("idProperty"))),
            "properties": lambda: (200, {"results": [
                d for d in p.definitions[t].values() if not d["archived"]]}),
            "property": lambda: (200, _present(p.definitions[t].get(v["name"]))),
            "property_create": lambda: (201, meta.property_create(p, t, body)),
            "property_update": lambda: (200, meta.property_update(p, t, v["name"], body)),
            "property_batch": lambda: meta.property_batch_create(p, t, body),
            "groups": lambda: (200, {"results": list(p.groups[t].values())}),
            "group_create": lambda: (201, meta.group_create(p, t, body)),
            "labels": lambda: (200, meta.labels(p, p.canonical(v["f"]), t)),
            "label_create": lambda: (200, meta.label_create(p, p.canonical(v["f"]), t, body)),
            "associate": lambda: (200, meta.associate(p, p.canonical(v["f"]), v["fid"], t,
                                                      v["tid"], body)),
            "associations": lambda: (200, meta.associations_page(p, p.canonical(v["f"]),
                                                                 v["fid"], t)),
            "schemas": lambda: (200, meta.schemas(p)),
            "schema_create": lambda: (201, meta.schema_create(p, body)),
            "owners": lambda: (200, meta.owners_page(p, args.to_dict())),
            "owner": lambda: (200, meta.owner(p, v["key"], args.to_dict())),
            "pipelines": lambda: (200, {"results": p.pipelines if t == "deals" else []}),
        }
        return handlers[endpoint]()

    def _get(self, object_type: str, key: str, request: Request) -> dict[str, Any]:
        args = request.args
        record = objects.find(self.portal, object_type, key, args.get("idProperty"))
        props = [p for v in args.getlist("properties") for p in v.split(",")] or None
        answer = objects.render(self.portal, object_type, record, props)
        linked = objects.associations_of(self.portal, object_type, record.id,
                                         [a for v in args.getlist("associations")
                                          for a in v.split(",")])
        if linked:
            answer["associations"] = linked
        return answer


def _present(found: dict[str, Any] | None) -> dict[str, Any]:
    if found is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", "Property does not exist")
    return found


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = "" if body is None or status == 204 else json.dumps(body)
    return Response(text, status=status, headers=headers or {},
                    content_type="application/json;charset=utf-8")
