"""An Ortto API test server, written from the shapes in shared/reference/ortto-api.md.

Strict about requests (POST, ``X-Api-Key``, JSON object bodies, known keys, field-id syntax,
limits) and faithful in answers, as the reference records the live API: ``contacts`` keyed by id,
``contacts: null`` and zeros past the last page, ``next_offset`` counting the people returned, a
merge by email finding the person it names (``merged``), merge results in an order of Ortto's own
(reversed here) with refusals carrying no person id, the all-invalid 400 with ``details``, the
``tags/get`` array. Tests seed people, inject failures with ``fail_next`` (a whole request) and
``refuse`` (one person of a merge), and read every request from ``calls``.

Run it alone for manual trials: ``python tests/ortto_server.py --port 8025 --key KEY --seed seed.json``,
then open http://127.0.0.1:8025/admin to see its people (read-only). The seed file:

    {"custom_fields": {"str:cm:wp-password": "text", "str:cm:company": "text"},
     "people": [{"id": "0061b12ed91681ad2bbe4100", "fields": {"str::email": "jane@example.com",
                 "str::first": "Jane", "str:cm:company": "Acme"}, "tags": ["vip"]}]}

Custom fields are declared up front, as in an Ortto account: a person or merge naming an
undeclared one is refused, as Ortto refuses it. ``id`` is optional (one is made up).
"""
from __future__ import annotations

import argparse
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request
from markupsafe import escape
from werkzeug.serving import make_server

FIELD_ID = re.compile(r"^(str|phn|geo|dtz|bol|int|dcm|txt|tme)::?[a-z0-9]*:?[A-Za-z0-9_-]*$")
BUILT_IN = {"str::email", "str::first", "str::last", "str::name", "str::ei", "str::postal", "phn::phone", "geo::city",
            "geo::country", "geo::region", "dtz::b", "bol::p", "bol::sp", "str::person_id"}
NO_CURSOR = "0" * 24  # the cursor_id of a page past the end
ORGANIZATION = "idt::o"  # every person/get result carries its organization link, asked for or not
MAX_BODY = 2 * 1024 * 1024


class Refused(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(status)
        self.status, self.body = status, body


@dataclass
class Call:
    path: str
    body: Any


@dataclass
class OrttoState:
    api_key: str
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom_fields: dict[str, str] = field(default_factory=dict)  # id: display type ("text", "number"...)
    suppressed: set[str] = field(default_factory=set)  # emails on the suppression list (lower case)
    refusing: dict[str, str] = field(default_factory=dict)  # person id: why merges of that person are refused (injected)
    calls: list[Call] = field(default_factory=list)
    failures: list[tuple[str | None, int, Any]] = field(default_factory=list)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    cursors: dict[str, list[str]] = field(default_factory=dict)  # cursor id: the matches when the scan began
    lock: threading.Lock = field(default_factory=threading.Lock)

    def declare(self, *field_ids: str, display_type: str = "text") -> None:
        """Create custom fields, as an Ortto user does in Settings > Fields."""
        for field_id in field_ids:
            self.custom_fields[field_id] = display_type

    def add_person(self, fields: dict[str, Any], tags: list[str] | None = None, person_id: str | None = None) -> str:
        person_id = person_id or secrets.token_hex(12)
        undeclared = [f for f in fields if f not in BUILT_IN and f not in self.custom_fields]
        if undeclared:
            raise ValueError(f"declare the custom field {undeclared[0]} first (state.declare)")
        with self.lock:
            self.people[person_id] = {**fields, "tags": list(tags or [])}
        return person_id

    def fail_next(self, status: int, body: Any = None, times: int = 1, path: str | None = None) -> None:
        """The next ``times`` requests (to ``path``, or any) get this answer instead of the real one."""
        if body is None:
            body = {"error": {"code": "rate-limit", "message": "rate limit", "try-in-seconds": 1}} if status == 429 \
                else {"request_id": secrets.token_hex(8), "code": status, "error": "internal error"}
        with self.lock:
            self.failures.extend([(path, status, body)] * times)

    def take_failure(self, path: str) -> tuple[int, Any] | None:
        for i, (wanted, status, body) in enumerate(self.failures):
            if wanted in (None, path):
                del self.failures[i]
                return status, body
        return None

    def refuse(self, person_id: str, error: str = "failed to validate person: injected refusal") -> None:
        """Merges of this person answer ``invalid`` with ``error`` until ``refusing`` forgets it (a
        refusal of one person among many, injected; Ortto's real ones are recorded in the reference)."""
        self.refusing[person_id] = error

    def find(self, merge_by: list[str], fields: dict[str, Any]) -> str | None:
        """The person a merge by ``merge_by`` finds (emails compared in any case, as Ortto does)."""
        def same(f: str, value: Any, wanted: Any) -> bool:
            return str(value or "").lower() == str(wanted).lower() if f == "str::email" else value == wanted
        return next((pid for pid, person in self.people.items()
                     if all(same(f, person.get(f), fields[f]) for f in merge_by)), None)

    def hold(self, path: str) -> threading.Event:
        """Requests to ``path`` wait (up to 60 s) until the returned event is set: a slow Ortto."""
        gate = self.gates[path] = threading.Event()
        return gate

    def calls_to(self, path: str) -> list[Any]:
        return [c.body for c in self.calls if c.path == path]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Refused(400, {"request_id": secrets.token_hex(8), "code": 400, "error": message})


def _matches(person: dict[str, Any], condition: Any) -> bool:
    """The filters the bridge sends: none (everyone), ``$str::is`` (any case, as Ortto compares
    emails), ``$has_any_value``, and ``$and`` / ``$or`` of them; anything else is refused."""
    if condition is None:
        return True
    _require(isinstance(condition, dict) and len(condition) == 1, "a filter is one operator")
    (operator, operand), = condition.items()
    if operator in ("$and", "$or"):
        _require(isinstance(operand, list) and operand, f"{operator} takes a list of filters")
        results = [_matches(person, part) for part in operand]
        return all(results) if operator == "$and" else any(results)
    _require(isinstance(operand, dict) and "field_id" in operand, "unsupported filter")
    value = person.get(operand["field_id"])
    if operator == "$str::is":
        _require(set(operand) == {"field_id", "value"}, "unsupported filter")
        return str(value or "").lower() == str(operand["value"]).lower()
    _require(operator == "$has_any_value" and set(operand) == {"field_id"}, "unsupported filter")
    return value not in (None, "", [])


def _field_list(body: dict) -> list[str]:
    fields = body.get("fields")
    _require(isinstance(fields, list) and all(isinstance(f, str) for f in fields), "fields must be a list of field ids")
    for f in fields:
        _require(f in ("tags", "u4s::t") or FIELD_ID.match(f) is not None, f"invalid field id {f}")
    return fields


def _only_keys(body: dict, allowed: set[str]) -> None:
    extra = set(body) - allowed
    _require(not extra, f"unknown keys: {sorted(extra)}")


def create_app(state: OrttoState) -> Flask:
    app = Flask("ortto-test-server")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    def person_view(person_id: str, fields: list[str]) -> dict:
        person = state.people[person_id]
        return {"id": person_id, "fields": {f: person[f] for f in fields if f in person and person[f] is not None}}

    def listed(person_id: str, fields: list[str]) -> dict:
        view = person_view(person_id, fields)
        view["fields"].setdefault(ORGANIZATION, "")
        return view

    def get_by_ids(body: dict) -> Any:
        _only_keys(body, {"contact_ids", "fields"})
        ids = body.get("contact_ids")
        _require(isinstance(ids, list) and 0 < len(ids) <= 100 and all(isinstance(i, str) for i in ids),
                 "contact_ids must be a list of 1-100 ids")
        fields = _field_list(body)
        return {"contacts": {i: person_view(i, fields) for i in ids if i in state.people}}

    def get(body: dict) -> Any:
        _only_keys(body, {"limit", "fields", "filter", "offset", "cursor_id", "sort_by_field_id", "sort_order", "q"})
        limit = body.get("limit")
        _require(isinstance(limit, int) and 1 <= limit <= 500, "limit must be 1-500")
        fields = _field_list(body)
        offset, cursor = body.get("offset", 0), body.get("cursor_id")
        _require(isinstance(offset, int) and offset >= 0, "offset must be a non-negative integer")
        _matches({}, body.get("filter"))  # refused as a whole, even on an empty account
        _require(cursor is None or (isinstance(cursor, str) and re.fullmatch(r"[0-9a-f]{24}", cursor) is not None),
                 "cannot unmarshal into an ID, the length must be 12 or 24 + 2 for hex")
        if cursor is None or cursor not in state.cursors:  # a new scan: its matches are fixed now, as a cursor keeps them
            cursor = secrets.token_hex(12)
            state.cursors[cursor] = [pid for pid in state.people if _matches(state.people[pid], body.get("filter"))]
        matches = state.cursors[cursor]
        page = [pid for pid in matches[offset:offset + limit] if pid in state.people]
        if not page:  # past the end, as recorded: no people, no cursor, every number 0
            return {"contacts": None, "meta": dict.fromkeys(("total_contacts", "total_organizations", "total_matches",
                                                             "total_subscribers"), 0),
                    "offset": 0, "next_offset": 0, "cursor_id": NO_CURSOR, "has_more": False}
        return {
            "contacts": [listed(pid, fields) for pid in page],
            "meta": {"total_contacts": len(state.people), "total_organizations": 0,
                     "total_matches": len(matches), "total_subscribers": len(state.people)},
            "offset": offset, "next_offset": offset + len(page), "cursor_id": cursor,
            "has_more": offset + len(page) < len(matches),
        }

    def merge(body: dict) -> Any:
        _only_keys(body, {"people", "async", "merge_by", "merge_strategy", "find_strategy", "suppression_list_field_id", "skip_non_existing"})
        people = body.get("people")
        _require(isinstance(people, list) and 1 <= len(people) <= 100, "people must hold 1-100 people")
        merge_by = body.get("merge_by")
        _require(isinstance(merge_by, list) and 1 <= len(merge_by) <= 3, "merge_by must list 1-3 field ids")
        _require("str::person_id" not in merge_by or merge_by == ["str::person_id"], "str::person_id must be the only merge_by field")
        _require(body.get("merge_strategy", 2) in (1, 2, 3), "merge_strategy must be 1, 2 or 3")
        _require(isinstance(body.get("async", False), bool), "async must be a boolean")
        results = [merge_one(person, merge_by, body) for person in people]
        if not any(r["status"] in ("created", "merged") for r in results):
            raise Refused(400, {"request_id": secrets.token_hex(8), "code": 400,
                                "error": f"No valid contacts provided ({results[0]['error']})", "details": results})
        if any("str::person_id" in (p.get("fields") or {}) for p in people if isinstance(p, dict)):
            results.reverse()  # recorded: an order that cannot be checked against the request's
        return {"people": results}

    def merge_one(person: Any, merge_by: list[str], body: dict) -> dict:
        """One person of a merge: its result, as the live API answers (a refusal carries no person id)."""
        fields = person.get("fields") if isinstance(person, dict) else None
        if not isinstance(fields, dict) or any(f not in fields for f in merge_by):
            return {"status": "invalid", "error": "missing merge field"}
        unknown = [f for f in fields if f not in BUILT_IN and f not in state.custom_fields]
        if unknown:
            return {"status": "invalid", "error": f"failed to validate field {unknown[0]} in schema: Object not found"}
        pid = fields["str::person_id"] if merge_by == ["str::person_id"] else state.find(merge_by, fields)
        if merge_by == ["str::person_id"] and pid not in state.people:
            return {"status": "invalid", "error": "person not found"}
        if pid in state.refusing:
            return {"status": "invalid", "error": state.refusing[pid]}
        email = str(fields.get("str::email") or "").lower()
        if pid is None and body.get("suppression_list_field_id") == "str::email" and email in state.suppressed:
            return {"status": "suppressed", "error": "Email is suppressed"}
        created = pid is None
        pid = pid or secrets.token_hex(12)
        target = state.people.setdefault(pid, {"tags": []})
        for f, v in fields.items():
            if f != "str::person_id" and not (body.get("merge_strategy") == 3 and target.get(f)):
                target[f] = v
        target["tags"] = sorted((set(target["tags"]) | set(person.get("tags") or [])) - set(person.get("unset_tags") or []))
        return {"person_id": pid, "status": "created" if created else "merged"}

    def custom_fields(body: dict) -> Any:
        _only_keys(body, set())
        return {"fields": [{"field": {"id": fid, "name": fid.split(":")[-1].replace("-", " ").title(),
                                      "display_type": kind, "liquid_name": fid.split(":")[-1].replace("-", "_")},
                            "tracked_value": False} for fid, kind in sorted(state.custom_fields.items())]}

    def tags(body: dict) -> Any:
        """As recorded: a bare array, ids not unique, an organization tag mixed in, ``q`` filtering."""
        _only_keys(body, {"q"})
        query = str(body.get("q") or "").lower()
        counts: dict[str, int] = {}
        for person in state.people.values():
            for tag in person["tags"]:
                counts[tag] = counts.get(tag, 0) + 1
        made = {"instance_id": "0061b12ed91681ad2bbe4000", "created_by_id": "0061b12ed91681ad2bbe4001",
                "created_by_name": "Test Owner", "created_by_email": "owner@example.test",
                "created_at": "2024-01-02T03:04:05Z", "last_used": "2024-01-02T03:04:05Z"}
        found = [{"id": 1 + i // 2, "name": name, **made, "count": n, "subscribers": n, "type": ""}
                 for i, (name, n) in enumerate(sorted(counts.items()))]
        found.append({"id": 1, "name": "Organisation tag", **made, "count": 0, "type": "organization"})
        return [t for t in found if query in t["name"].lower()]

    routes = {"/v1/person/get-by-ids": get_by_ids, "/v1/person/get": get, "/v1/person/merge": merge, "/v1/tags/get": tags,
              "/v1/person/custom-field/get": custom_fields}

    @app.get("/admin")
    def admin() -> str:
        """The people, read-only, for manual trials (a test tool: no key asked, loopback only)."""
        with state.lock:
            people = [(pid, dict(fields)) for pid, fields in state.people.items()]
        rows = "".join(
            f"<tr><td>{escape(pid)}</td><td>{escape(', '.join(p.pop('tags', [])))}</td>"
            f"<td>{'<br>'.join(f'{escape(k)} = {escape(json.dumps(v))}' for k, v in sorted(p.items()))}</td></tr>"
            for pid, p in people)
        fields = ", ".join(f"{escape(fid)} ({escape(kind)})" for fid, kind in sorted(state.custom_fields.items()))
        return (f"<!doctype html><title>Ortto test server</title><h1>{len(people)} people</h1>"
                f"<p>Custom fields: {fields or 'none'}</p><table border=1><tr><th>id</th><th>tags</th><th>fields</th></tr>"
                f"{rows}</table>")

    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def api(path: str):
        path = "/" + path
        try:
            if path not in routes:
                raise Refused(404, {"code": 404, "error": "not found"})
            if request.method != "POST":
                raise Refused(405, {"code": 405, "error": "method not allowed"})
            if request.headers.get("X-Api-Key") != state.api_key:
                raise Refused(401, {"code": 401, "error": "Invalid API key"})
            _require(request.mimetype == "application/json", "Content-Type must be application/json")
            try:
                body = json.loads(request.get_data())
            except ValueError:
                raise Refused(400, {"code": 400, "error": "invalid JSON"}) from None
            _require(isinstance(body, dict), "body must be a JSON object")
            with state.lock:
                state.calls.append(Call(path, body))
                failure = state.take_failure(path)
                gate = state.gates.get(path)
            if gate is not None:
                gate.wait(60)
            if failure:
                raise Refused(*failure)
            with state.lock:
                return jsonify(routes[path](body))
        except Refused as refused:
            return jsonify(refused.body), refused.status

    return app


class OrttoServer:
    """The test server on a free loopback port, in a thread."""

    def __init__(self, api_key: str | None = None, port: int = 0):
        self.state = OrttoState(api_key or secrets.token_hex(16))
        self._server = make_server("127.0.0.1", port, create_app(self.state), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> OrttoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--key", required=True)
    parser.add_argument("--seed", help="JSON file of custom fields and people (format: this module's docstring)")
    args = parser.parse_args()
    server = OrttoServer(args.key, args.port)
    if args.seed:
        with open(args.seed, encoding="utf-8") as seed:
            seed_data = json.load(seed)
        for field_id, kind in seed_data.get("custom_fields", {}).items():
            server.state.declare(field_id, display_type=kind)
        for person in seed_data.get("people", []):
            server.state.add_person(person["fields"], person.get("tags"), person.get("id"))
    print(f"Ortto test server on {server.url}", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
