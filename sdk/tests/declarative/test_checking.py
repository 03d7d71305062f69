"""Checking a definition against the provider's own description of its API
(seedos_sdk.declarative.checking): OpenAPI 3, Swagger 2 and Google Discovery documents; every
kind of mismatch found and named; what cannot be checked listed, never passed. (The catalog's
definitions against their providers' own descriptions: tests/catalog/.)"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from seedos_sdk.declarative import load
from seedos_sdk.declarative.checking import check, description_of

SDK = Path(__file__).resolve().parents[2]

ITEM = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                         "created": {"type": "integer"}}}  # fmt: skip
OPENAPI = {
    "openapi": "3.0.3",
    "servers": [{"url": "https://api.example.com"}],
    "paths": {
        "/v1/items": {
            "get": {
                "parameters": [
                    {"name": n, "in": "query"} for n in ("limit", "starting_after", "created")
                ],
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "data": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Item"},
                                        },
                                        "has_more": {"type": "boolean"},
                                    },
                                }
                            }
                        }
                    }
                },
            },
            "post": {
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {"type": "object", "properties": {"name": {"type": "string"}}}
                        }
                    }
                },
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                        }
                    }
                },
            },
        },
        "/v1/items/{item}": {
            "parameters": [{"name": "item", "in": "path", "required": True}],
            "delete": {"responses": {"200": {"description": "deleted"}}},
        },
    },
    "components": {"schemas": {"Item": {"allOf": [ITEM]}}},
}

DEFINITION: dict[str, Any] = {
    "definition_version": 1, "name": "items", "version": "1.0.0",
    "base_url": "{{ config.base_url | default('https://api.example.com') }}",
    "auth": {"type": "bearer", "token": "{{ credentials.key }}"},
    "check": {"request": {"path": "/v1/items", "query": {"limit": 1}}},
    "streams": [{
        "name": "items", "primary_key": "id", "schema": ITEM,
        "request": {"path": "/v1/items", "query": {"limit": 100}},
        "records": "data",
        "incremental": {"cursor_field": "created", "param": "created[gt]", "cursor_from": "max"},
        "pagination": {"type": "cursor", "from": "last_record", "select": "id",
                       "param": "starting_after", "has_more": "has_more"},
        "write": {
            "create": {"method": "POST", "path": "/v1/items", "body_encoding": "form",
                       "body": {"name": "{{ record.name }}"}},
            "delete": {"method": "DELETE", "path": "/v1/items/{{ key | urlencode }}"},
        },
    }],
    "actions": [{"name": "add", "input_schema": {"type": "object", "properties": {
        "name": {"type": "string"}}}, "request": {"method": "POST", "path": "/v1/items",
                                                   "body": {"from": "input"}}}],
}  # fmt: skip


def _checked(definition: dict[str, Any], description: dict[str, Any] = OPENAPI):
    return check(load(yaml.safe_dump(definition)), description_of(description))


def test_a_definition_that_matches_its_description_has_no_problems():
    report = _checked(DEFINITION)
    assert report.problems == []
    assert len(report.checked) == 5 and report.unchecked == []
    assert (
        "streams[0] (items).write.delete: DELETE /v1/items/{{ key | urlencode }} is DELETE"
        " /v1/items/{item}" in report.checked
    )


def _changed(change) -> dict[str, Any]:
    definition = copy.deepcopy(DEFINITION)
    change(definition)
    return definition


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d["streams"][0]["request"].update(path="/v1/itemz"),
     "streams[0] (items): GET /v1/itemz: no such operation in the description"),
    (lambda d: d["streams"][0]["write"]["delete"].update(method="PUT"),
     "streams[0] (items).write.delete: PUT /v1/items/{{ key | urlencode }}: no such operation"),
    (lambda d: d["streams"][0]["pagination"].update(param="after"),
     "streams[0] (items): GET /v1/items: query parameter 'after' is not one of the operation's"),
    (lambda d: d["streams"][0]["incremental"].update(param="updated[gt]"),
     "query parameter 'updated[gt]' is not one of the operation's"),
    (lambda d: d["streams"][0]["write"]["create"]["body"].update(email="{{ record.email }}"),
     "streams[0] (items).write.create: POST /v1/items: body field 'email' is not one of the"
     " operation's"),
    (lambda d: d["actions"][0]["input_schema"]["properties"].update(color={"type": "string"}),
     "actions[0] (add): POST /v1/items: body field 'color' is not one of the operation's"),
    (lambda d: d["streams"][0].update(records="items"),
     "streams[0] (items): GET /v1/items: the answer has no 'items' (records: items)"),
    (lambda d: d["streams"][0]["pagination"].update(has_more="more"),
     "streams[0] (items): GET /v1/items: the answer has no 'more' (more)"),
    (lambda d: d["streams"][0]["schema"]["properties"].update(colour={"type": "string"}),
     "streams[0] (items): GET /v1/items: schema field 'colour' is not a field of the"
     " description's records"),
    (lambda d: d["streams"][0]["request"].update(path="/v1/items?limit=5&colour=red"),
     "streams[0] (items): GET /v1/items?limit=5&colour=red: query parameter 'colour' is not"
     " one of the operation's"),
    (lambda d: d["check"]["request"].update(path="/v1/items?limit=1"), None),
    (lambda d: d["streams"][0]["incremental"].update(cursor_field="name"), None),
    (lambda d: d["streams"][0].update(primary_key="name"), None),
])  # fmt: skip
def test_each_mismatch_is_named(change, problem):
    report = _checked(_changed(change))
    if problem is None:  # a field the records have: fine
        assert report.problems == []
    else:
        assert any(problem in p for p in report.problems), report.problems
        assert len(report.problems) == 1, report.problems


def test_a_parameter_the_description_names_with_brackets():
    described = copy.deepcopy(OPENAPI)
    described["paths"]["/v1/items"]["get"]["parameters"].append({"name": "page[size]",
                                                                 "in": "query"})  # fmt: skip
    sized = _changed(lambda d: d["streams"][0]["request"]["query"].update({"page[size]": 10}))
    assert _checked(sized, described).problems == []  # JSON:API's names, as written


def test_what_cannot_be_checked_is_listed_not_passed():
    definition = _changed(lambda d: d["streams"][0].update(records="data[?name != null]"))
    report = _checked(definition)
    assert report.problems == []
    assert any("records selector 'data[?name != null]' is no field path" in u
               for u in report.unchecked)  # fmt: skip


def test_a_base_url_with_a_path_and_a_server_with_one():
    described = copy.deepcopy(OPENAPI)
    described["servers"] = [{"url": "https://api.example.com/api"}]
    assert _checked(DEFINITION, described).problems  # /v1/items is /api/v1/items there
    moved = _changed(lambda d: d.update(
        base_url="{{ config.base_url | default('https://api.example.com/api') }}"))  # fmt: skip
    assert _checked(moved, described).problems == []


def test_swagger_2():
    swagger = {"swagger": "2.0", "basePath": "/", "paths": {"/v1/items": {
        "get": {"parameters": [{"name": n, "in": "query"} for n in
                               ("limit", "starting_after", "created")],
                "responses": {"200": {"schema": {"type": "object", "properties": {
                    "data": {"type": "array", "items": ITEM}, "has_more": {}}}}}},
        "post": {"parameters": [{"name": "name", "in": "formData"}],
                 "responses": {"200": {"schema": ITEM}}}},
        "/v1/items/{item}": {"delete": {"responses": {"200": {"description": "gone"}}}},
    }}  # fmt: skip
    assert _checked(DEFINITION, swagger).problems == []
    swagger["paths"]["/v1/items"]["post"]["parameters"] = [{"name": "title", "in": "formData"}]
    assert any("body field 'name'" in p for p in _checked(DEFINITION, swagger).problems)


DISCOVERY = {
    "kind": "discovery#restDescription", "rootUrl": "https://sheets.googleapis.com/",
    "servicePath": "",
    "parameters": {"fields": {"location": "query"}, "key": {"location": "query"}},
    "schemas": {"ValueRange": {"id": "ValueRange", "type": "object", "properties": {
        "range": {"type": "string"}, "values": {"type": "array", "items": {"type": "array"}}}}},
    "resources": {"spreadsheets": {"resources": {"values": {"methods": {"get": {
        "httpMethod": "GET",
        "path": "v4/spreadsheets/{spreadsheetId}/values/{range}",
        "flatPath": "v4/spreadsheets/{spreadsheetId}/values/{range}",
        "parameters": {"spreadsheetId": {"location": "path"}, "range": {"location": "path"},
                       "majorDimension": {"location": "query"}},
        "response": {"$ref": "ValueRange"}}}}}}},
}  # fmt: skip


def test_a_google_discovery_document():
    path = "/v4/spreadsheets/{{ config.sheet }}/values/A1:Z"
    sheet = {
        "definition_version": 1, "name": "sheet", "version": "1.0.0",
        "base_url": "https://sheets.googleapis.com", "auth": {"type": "none"},
        "streams": [{"name": "rows", "primary_key": "range",
                     "schema": {"type": "object", "properties": {"range": {"type": "string"}}},
                     "request": {"path": path, "query": {"majorDimension": "ROWS"}},
                     "records": "values"}],
        "actions": [{"name": "read", "input_schema": {"type": "object"},
                     "request": {"path": path, "query": {"fields": "range"}},
                     "output": "range"}],
    }  # fmt: skip
    report = _checked(sheet, DISCOVERY)
    assert report.problems == [] and len(report.checked) == 2
    # rows are lists, not objects: their fields are not checked, and the report says so
    assert [u for u in report.unchecked if "lists no fields of a record" in u]
    sheet["streams"][0]["request"]["query"]["dimension"] = "ROWS"
    sheet["actions"][0]["output"] = "rows"
    problems = _checked(sheet, DISCOVERY).problems
    assert len(problems) == 2, problems
    assert "'dimension'" in problems[0] and "no 'rows'" in problems[1]


def test_a_templated_segment_is_a_parameters_value_before_a_literal():
    """Drive's files/{fileId} and files/generateIds: GET files/{{ input.id }} is the first."""
    described = copy.deepcopy(OPENAPI)
    # the literal first, as in Drive's description (a tie used to go to the first)
    described["paths"] = {"/v1/items/generate": {"get": {"responses": {}}}, **described["paths"]}
    described["paths"]["/v1/items/{item}"]["get"] = {
        "parameters": [{"name": "expand", "in": "query"}], "responses": {}}  # fmt: skip
    fetch = _changed(lambda d: d["actions"].append({
        "name": "one", "input_schema": {"type": "object", "properties": {"id": {}}},
        "request": {"path": "/v1/items/{{ input.id }}", "query": {"expand": "all"}}}))  # fmt: skip
    report = _checked(fetch, described)
    assert report.problems == [], report.problems
    assert any(c.endswith("is GET /v1/items/{item}") for c in report.checked)


def test_an_answer_whose_fields_are_not_listed_is_unchecked_not_wrong():
    """Notion's answers are a bare {"type": "object"}: the description says nothing either way."""
    described = copy.deepcopy(OPENAPI)
    described["paths"]["/v1/items"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"] = {"type": "object"}  # fmt: skip
    report = _checked(DEFINITION, described)
    assert report.problems == [], report.problems
    assert any("lists no fields of the answer" in u for u in report.unchecked), report.unchecked


def test_a_base_url_naming_a_config_field_without_a_default_keeps_its_path():
    """Mailchimp's https://{{ config.dc }}.api.mailchimp.com/3.0: the /3.0 is kept."""
    described = copy.deepcopy(OPENAPI)
    described["servers"] = [{"url": "https://server.api.example.com/3.0"}]
    moved = _changed(lambda d: d.update(base_url="https://{{ config.dc }}.api.example.com/3.0",
                                        config_schema={"type": "object", "properties": {
                                            "dc": {"type": "string"}}}))  # fmt: skip
    assert _checked(moved, described).problems == []
    assert _checked(DEFINITION, described).problems  # without the /3.0 nothing matches
