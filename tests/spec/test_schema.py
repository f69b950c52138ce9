"""The JSON Schemas and validate_document: shape of the schemas, messages, fast path."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastjsonschema import JsonSchemaException
from jsonschema import Draft202012Validator

from backfill_ctl.errors import Diagnostic
from backfill_ctl.spec.schema import (
    KINDS,
    _fast_check,
    _small_check,
    _validator,
    kind_schema,
    schema_dir,
    validate_document,
)
from backfill_ctl.spec.yamlfile import RawDocument, parse_text
from tests.builders import backfill, config, node, resource_group, workspace

SCHEMAS = schema_dir()


def validate(data: Any) -> tuple[str | None, list[Diagnostic]]:
    return validate_document(RawDocument("f.yaml", 0, 1, data))


def messages(data: Any) -> list[tuple[str, str, str | None]]:
    """(JSON path, message, hint) of every schema error."""
    _, diags = validate(data)
    return [(d.format().split(": ")[2], d.message, d.hint) for d in diags]


def examples() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in KINDS:
        for example in kind_schema(kind)["examples"]:
            yield kind, example


# -- the schema files ----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(schema_dir().glob("*.schema.json")), ids=lambda p: p.name)
def test_schema_file_is_a_valid_draft_2020_12_schema(path: Any) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_examples_and_they_validate(kind: str) -> None:
    found = kind_schema(kind)["examples"]
    assert found
    for example in found:
        assert validate(example) == (kind, [])


def test_inlined_kind_schema_has_no_refs_left() -> None:
    for kind in KINDS:
        text = json.dumps(kind_schema(kind))
        assert "$ref" not in text
        assert "$defs" not in text


def object_schemas(schema: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema that describes an object, skipping `if` (a condition, not a shape)."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from object_schemas(item, f"{where}[{i}]")
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object" or "properties" in schema:
        yield where, schema
    for key, value in schema.items():
        if key in ("if", "examples", "default", "enum", "const"):
            continue
        if key == "properties":
            for name, sub in value.items():
                yield from object_schemas(sub, f"{where}.{name}")
        else:
            yield from object_schemas(value, f"{where}/{key}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_object_schema_is_closed_or_a_map(kind: str) -> None:
    found = list(object_schemas(kind_schema(kind)))
    assert len(found) >= 3
    open_objects = [
        where
        for where, schema in found
        if schema.get("additionalProperties") is not False
        and not isinstance(schema.get("additionalProperties"), dict)
    ]
    assert open_objects == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_description(kind: str) -> None:
    missing = [
        f"{where}.{name}"
        for where, schema in object_schemas(kind_schema(kind))
        for name, prop in schema.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []


def test_the_walk_sees_the_nested_objects() -> None:
    # guards the two tests above: they must reach oneOf branches and array items
    wheres = [where for where, _ in object_schemas(kind_schema("Backfill"))]
    assert "$.spec.select.descendants/oneOf[1]" in wheres
    assert "$.spec.alerts.notify/items/oneOf[2]" in wheres
    assert "$.spec.dates/items/oneOf[1]" in wheres


# -- YAML 1.1 traps through the schema -----------------------------------------------


def test_yes_is_a_boolean_the_schema_accepts_and_yaml_flags() -> None:
    docs, yaml_diags = parse_text("f.yaml", dump_backfill("  runImmediately: yes\n"))
    assert [d.message for d in yaml_diags] == ["'yes' is read as a boolean by YAML 1.1"]
    assert validate_document(docs[0]) == ("Backfill", [])


def test_a_node_named_no_is_false_and_a_type_error_with_the_quoting_hint() -> None:
    text = (
        "apiVersion: backfillctl.dev/v1alpha1\nkind: Node\n"
        "metadata: {name: no, workspace: ws}\n"
        "spec: {schedule: '0 2 * * *', run: {command: [x]}}\n"
    )
    docs, yaml_diags = parse_text("f.yaml", text)
    assert [d.message for d in yaml_diags] == ["'no' is read as a boolean by YAML 1.1"]
    kind, diags = validate_document(docs[0])
    assert kind == "Node"
    assert [(d.path, d.message, d.hint) for d in diags] == [
        (
            ("metadata", "name"),
            "False is not of type 'string'",
            "YAML reads unquoted yes/no/on/off/true/false as booleans; quote the value",
        )
    ]


def dump_backfill(extra: str) -> str:
    return (
        "apiVersion: backfillctl.dev/v1alpha1\nkind: Backfill\nmetadata: {name: bf}\n"
        "spec:\n  select: {method: descendants, roots: [a]}\n  dates: [2024-03-01]\n" + extra
    )


def test_a_time_written_unquoted_validates() -> None:
    docs, yaml_diags = parse_text(
        "f.yaml", dump_backfill("  timeWindow: {from: 00:00, to: 22:00}\n")
    )
    assert yaml_diags == []
    assert validate_document(docs[0]) == ("Backfill", [])


@pytest.mark.parametrize("name", ["dwd_orders\n", "dwd_orders\n\n", "\ndwd_orders"])
def test_a_name_with_a_newline_is_invalid(name: str) -> None:
    # `$` is the end of the text (ECMA-262), not "before a final newline" (Python);
    # a block scalar (name: |) would otherwise slip a newline into a name
    doc = node("a")
    doc["metadata"]["name"] = name
    assert [(path, message) for path, message, _ in messages(doc)] == [
        ("$.metadata.name", f"{name!r} is not valid here")
    ]


# -- messages ------------------------------------------------------------------------


def test_unknown_field_with_did_you_mean() -> None:
    assert messages(backfill(grups=2)) == [
        ("$.spec.grups", "unknown field 'grups'", "did you mean 'groups'?")
    ]


def test_unknown_field_without_a_close_match_lists_the_allowed_fields() -> None:
    assert messages(resource_group() | {"zzz": 1}) == [
        ("$.zzz", "unknown field 'zzz'", "allowed fields: apiVersion, kind, metadata, spec")
    ]


def test_missing_required_field() -> None:
    doc = backfill()
    del doc["spec"]["dates"]
    assert messages(doc) == [("$.spec", "missing required field 'dates'", "add the missing field")]


def test_wrong_enum_lists_the_choices_and_the_hint_says_which_to_use() -> None:
    assert messages(backfill(order="sideways")) == [
        (
            "$.spec.order",
            "'sideways' is not one of: ascending, descending",
            "use one of: ascending, descending",
        )
    ]


@pytest.mark.parametrize(
    ("doc", "hint"),
    [
        (backfill(order="descnding"), "did you mean 'descending'?"),
        (backfill(order="Ascending"), "did you mean 'ascending'?"),
        (backfill(alerts={"when": "fail"}), "did you mean 'failure'?"),
        (backfill(select={"method": "descendents", "roots": ["a"]}), "did you mean 'descendants'?"),
        (resource_group(type="shard"), "did you mean 'shared'?"),
        (config(backend="k8s"), "use one of: local, kubernetes"),
        (backfill(order=True), "use one of: ascending, descending"),
    ],
)
def test_a_wrong_enum_value_gets_the_closest_allowed_one(doc: dict[str, Any], hint: str) -> None:
    assert [h for _, _, h in messages(doc)] == [hint]


def test_a_rule_without_words_of_its_own_points_at_the_fields_documentation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backfill_ctl.spec import hints

    monkeypatch.delitem(hints.RULES, "enum")
    assert messages(backfill(alerts={"when": "sometimes"})) == [
        (
            "$.spec.alerts.when",
            "'sometimes' is not one of ['failure', 'success', 'always', 'never']",
            "see backfillctl explain Backfill.spec.alerts.when",
        )
    ]


def test_a_policy_with_both_a_command_and_a_url_says_to_keep_one() -> None:
    doc = config(policies=[{"name": "p", "command": ["x"], "url": "https://example.com"}])
    assert messages(doc) == [
        (
            "$.spec.policies[0]",
            "both 'command' and 'url' are set; only one of them may be",
            "remove 'command' or 'url'",
        )
    ]


def test_a_field_backfillctl_owns_cannot_be_set_in_the_pod_template() -> None:
    doc = config(kubernetes={"podTemplate": {"spec": {"restartPolicy": "Always"}}})
    assert messages(doc) == [
        (
            "$.spec.kubernetes.podTemplate.spec.restartPolicy",
            "field 'restartPolicy' cannot be set here",
            "remove it (backfillctl sets these: the container comes from the node's run, "
            "and restartPolicy is Never)",
        )
    ]


def test_wrong_enum_of_numbers() -> None:
    assert messages(node("a", priority=2)) == [
        ("$.spec.priority", "2 is not one of: 1, 3, 5, 7, 8", "use one of: 1, 3, 5, 7, 8")
    ]


def test_bad_date_pattern_message_and_hint() -> None:
    assert messages(backfill(dates=["2024-3-1"])) == [
        (
            "$.spec.dates[0]",
            "'2024-3-1' is not a calendar date",
            "A calendar date, YYYY-MM-DD (quoted or not), for example '2024-03-01'",
        )
    ]


def test_bad_date_inside_a_range_points_at_the_field() -> None:
    # dates[i] is oneOf(date, range): the message is the range's, not "not a string"
    assert messages(backfill(dates=[{"from": "2024-3-1", "to": "2024-03-02"}])) == [
        (
            "$.spec.dates[0].from",
            "'2024-3-1' is not a calendar date",
            "A calendar date, YYYY-MM-DD (quoted or not), for example '2024-03-01'",
        )
    ]


def test_half_a_range_says_which_end_is_missing() -> None:
    assert messages(backfill(dates=[{"from": "2024-03-01"}])) == [
        ("$.spec.dates[0]", "missing required field 'to'", "add the missing field")
    ]


def test_a_number_where_a_date_belongs() -> None:
    assert messages(backfill(dates=[20240301])) == [
        (
            "$.spec.dates[0]",
            "20240301 is not of type 'string'",
            "quote the value to make it a string",
        )
    ]


@pytest.mark.parametrize(
    ("descendants", "expected"),
    [
        (
            {"depth": 0},
            [
                (
                    "$.spec.select.descendants.depth",
                    "0 is less than the minimum of 1",
                    "use 1 or more",
                )
            ],
        ),
        (
            {"dpth": 1},
            [  # one typo, one error: the missing 'depth' follows from it
                (
                    "$.spec.select.descendants.dpth",
                    "unknown field 'dpth'",
                    "did you mean 'depth'? (it is required)",
                ),
            ],
        ),
        (
            "x",
            [
                (
                    "$.spec.select.descendants",
                    "'x' is not of type 'array'",
                    "write a list, for example [x]",
                )
            ],
        ),
    ],
)
def test_oneof_errors_come_from_the_branch_that_fits(
    descendants: Any, expected: list[tuple[str, str, str | None]]
) -> None:
    select = {"method": "manual", "roots": ["a"], "descendants": descendants}
    assert messages(backfill(select=select)) == expected


@pytest.mark.parametrize(
    ("notifier", "expected"),
    [
        (
            {"webhook": "ftp://x"},
            ("$.spec.alerts.notify[0].webhook", "'ftp://x' is not valid here"),
        ),
        ({"email": "nobody"}, ("$.spec.alerts.notify[0].email", "'nobody' is not valid here")),
        (
            {"command": []},
            ("$.spec.alerts.notify[0].command", "the list is empty; at least 1 needed"),
        ),
        ({"command": ""}, ("$.spec.alerts.notify[0].command", "the value is empty")),
    ],
)
def test_a_bad_notifier_value_is_explained_by_its_own_branch(
    notifier: dict[str, Any], expected: tuple[str, str]
) -> None:
    found = messages(backfill(alerts={"notify": [notifier]}))
    assert [(path, message) for path, message, _ in found] == [expected]


def test_wrong_api_version_hint() -> None:
    doc = workspace() | {"apiVersion": "backfillctl.dev/v1"}
    assert messages(doc) == [
        (
            "$.apiVersion",
            "'backfillctl.dev/v1alpha1' was expected",
            "use apiVersion: backfillctl.dev/v1alpha1",
        )
    ]


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("Backfil", "did you mean 'Backfill'?"),
        ("node", "did you mean 'Node'?"),
        ("Pipeline", "use one of Workspace, ResourceGroup, Node, Backfill, Config"),
        (["Node"], "did you mean 'Node'?"),  # (a list: no crash, it cannot be hashed)
        ({"a": 1}, "use one of Workspace, ResourceGroup, Node, Backfill, Config"),
    ],
)
def test_unknown_kind(kind: Any, hint: str) -> None:
    assert validate(workspace() | {"kind": kind}) == (
        None,
        [Diagnostic(f"unknown kind {kind!r}", "f.yaml", 0, ("kind",), hint, code="schema")],
    )


def test_missing_kind() -> None:
    doc = workspace()
    del doc["kind"]
    kind, diags = validate(doc)
    assert kind is None
    assert [(d.message, d.hint) for d in diags] == [
        ("missing 'kind'", "add kind: one of Workspace, ResourceGroup, Node, Backfill, Config")
    ]


@pytest.mark.parametrize(
    ("data", "what"), [([1, 2], "a list"), ("kind: Node", "a string"), (42, "a scalar")]
)
def test_a_document_that_is_not_a_mapping(data: Any, what: str) -> None:
    kind, diags = validate(data)
    assert kind is None
    assert [(d.path, d.message, d.hint) for d in diags] == [
        (
            (),
            f"a document must be a mapping, not {what}",
            "start the document with apiVersion:, kind:, metadata:, spec:",
        )
    ]


@pytest.mark.parametrize(
    ("select", "missing"),
    [
        ({"method": "manual"}, ["roots"]),
        ({"method": "descendants"}, ["roots"]),
        ({"method": "workspace"}, ["roots", "workspaces"]),
        ({"method": "workspace", "roots": ["a"]}, ["workspaces"]),
        ({"method": "link"}, ["start", "ends"]),
        ({"method": "link", "start": "a"}, ["ends"]),
    ],
)
def test_select_requires_the_fields_of_its_method(
    select: dict[str, Any], missing: list[str]
) -> None:
    assert sorted(messages(backfill(select=select))) == sorted(
        ("$.spec.select", f"missing required field {field!r}", "add the missing field")
        for field in missing
    )


@pytest.mark.parametrize(
    "select",
    [
        {"method": "manual", "roots": ["a"]},
        {"method": "descendants", "roots": ["a"]},
        {"method": "workspace", "roots": ["a"], "workspaces": ["w"]},
        {"method": "link", "start": "a", "ends": ["b"]},
    ],
)
def test_select_with_the_fields_of_its_method_is_valid(select: dict[str, Any]) -> None:
    assert validate(backfill(select=select)) == ("Backfill", [])


def test_every_error_of_a_document_is_reported() -> None:
    doc = backfill(order="sideways", groups=11, grups=1)
    doc["metadata"]["name"] = "-bad"
    assert sorted(path for path, _, _ in messages(doc)) == [
        "$.metadata.name",
        "$.spec.groups",
        "$.spec.grups",
        "$.spec.order",
    ]


# -- the fast path agrees with jsonschema --------------------------------------------
#
# schema_errors() asks fastjsonschema (draft-07) for a yes/no first and only runs
# jsonschema (2020-12, the reference) when the answer is no. If the two ever disagree,
# an invalid document passes silently or a valid one gets no message: so every
# document below, and a few thousand mutations of it, must get the same answer.

VALID_DOCUMENTS: list[tuple[str, dict[str, Any]]] = [
    ("Workspace", workspace()),
    ("Workspace", workspace("sales", "Asia/Shanghai", ("bob", "carol"))),
    ("ResourceGroup", resource_group("etl", 8, "exclusive")),
    ("Node", node("a")),
    ("Node", node("b", command="echo ${pt} >> out.txt", upstream=["a"])),
    (
        "Node",
        node(
            "dwd_orders",
            upstream=["ods_orders", "dim_customers"],
            selfDependent=True,
            priority=5,
            resourceGroup="etl",
            effective={"from": "2020-01-01", "to": "2099-12-31"},
            parameters={"pt": "${yyyymmdd}"},
            run={
                "command": ["python", "jobs/x.py", "--pt", "${pt}"],
                "image": "registry.example.com/etl:1.4",
                "env": {"TABLE": "dwd_orders"},
                "timeout": "1h30m",
                "retries": 1,
                "resources": {"cpu": "500m", "memory": "1Gi"},
            },
        )
        | {"metadata": {"name": "n", "workspace": "ws", "labels": {"t": "x"}, "description": "d"}},
    ),
    ("Backfill", backfill()),
    ("Backfill", backfill(select={"method": "manual", "roots": ["a"], "descendants": ["b"]})),
    (
        "Backfill",
        backfill(select={"method": "link", "start": "a", "ends": ["b", "c"], "block": ["x"]}),
    ),
    (
        "Backfill",
        backfill(
            "full",
            {"method": "manual", "roots": ["a"], "descendants": {"depth": 2}},
            [{"from": "2024-03-01", "to": "2024-03-07"}, "2024-03-15"],
            timeWindow={"from": "00:00", "to": "23:59"},
            runImmediately=True,
            order="descending",
            groups=3,
            resourceGroup="etl",
            executionWindow={"from": "22:00", "to": "06:00"},
            alerts={
                "when": "always",
                "notify": [
                    {"webhook": "https://hooks.example.com/x"},
                    {"command": ["notify.sh"]},
                    {"command": "notify.sh"},
                    {"email": "a@example.com"},
                ],
            },
            checks={"stopOnRisk": False},
            suspend=True,
            parameters={"full_refresh": "true"},
        ),
    ),
    (
        "Backfill",
        backfill(
            select={
                "method": "workspace",
                "roots": ["a"],
                "workspaces": ["w"],
                "includeRoot": False,
                "allow": ["c"],
            }
        ),
    ),
    ("Config", config()),
    (
        "Config",
        config(
            state="sqlite:///state.db",
            backend="kubernetes",
            kubernetes={"namespace": "backfill", "serviceAccount": "runner"},
            limits={"maxRoots": 10, "maxNodes": 20},
            retention={
                "instances": "30d",
                "logs": {"shared": "7d", "exclusive": "90s", "serverless": "2h"},
                "maxLogSize": "500KB",
            },
        )
        | {"metadata": {"name": "repo"}},
    ),
]

DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
ONE_OF_EACH_TYPE: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "integer": 3,
    "number": 2.5,
    "string": "x",
    "array": [],
    "object": {},
}


def json_type(value: Any) -> str:
    for name, python in (("null", type(None)), ("boolean", bool), ("integer", int)):
        if isinstance(value, python):
            return name
    return {float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def replacements(value: Any) -> Iterator[Any]:
    """Values to put where `value` is: every other JSON type, then edge values."""
    yield from (v for t, v in ONE_OF_EACH_TYPE.items() if t != json_type(value))
    if isinstance(value, str):
        yield from ("", "-x", "a" * 64, value + "\n")
        if DATE.match(value):
            yield from ("2024-02-30", "2024-3-1")
    if json_type(value) == "integer":
        yield from (-1, 0, 11, 10001, float(value))  # 2.0 is an integer to 2020-12
    if isinstance(value, list) and value:
        yield [value[0], value[0]]  # uniqueItems


def mutations(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """For every path in `doc`: delete it, replace it, add an unknown sibling key."""

    def walk(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        yield path
        if isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                yield from walk(child, (*path, key))

    for path in walk(doc, ()):
        value = doc
        for part in path:
            value = value[part]
        if isinstance(value, dict):
            for unknown in ("zzUnknown", "bad key!"):
                yield edited(doc, path, lambda target, v=unknown: target.__setitem__(v, "1"))
        if not path:
            continue
        *parents, last = path
        yield edited(doc, tuple(parents), lambda target, k=last: target.pop(k))
        for new in replacements(value):
            yield edited(
                doc, tuple(parents), lambda target, k=last, v=new: target.__setitem__(k, v)
            )


def edited(doc: dict[str, Any], path: tuple[Any, ...], change: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target: Any = out
    for part in path:
        target = target[part]
    change(target)
    return out


def fast_says_valid(kind: str, data: Any) -> bool:
    try:
        _fast_check(kind)(data)
    except JsonSchemaException:
        return False
    return True


def small_says_valid(kind: str, data: Any) -> bool:
    check = _small_check(kind)
    assert check is not None, f"spec.check lacks a keyword of the {kind} schema"
    return check(data)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("says_valid", [fast_says_valid, small_says_valid], ids=["fast", "small"])
def test_fast_check_agrees_with_jsonschema(kind: str, says_valid: Any) -> None:
    corpus = [doc for k, doc in [*examples(), *VALID_DOCUMENTS] if k == kind]
    cases = [*corpus, *(m for doc in corpus for m in mutations(doc))]
    reference = _validator(kind)
    verdicts = [(reference.is_valid(case), says_valid(kind, case)) for case in cases]
    disagreements = [
        (case, ref) for case, (ref, fast) in zip(cases, verdicts, strict=True) if ref != fast
    ]
    assert disagreements == []
    # the corpus is valid, and the mutations really exercise both answers
    assert all(reference.is_valid(doc) for doc in corpus)
    invalid = sum(1 for ref, _ in verdicts if not ref)
    assert invalid > 40
    assert len(cases) - invalid > len(corpus)


@pytest.mark.parametrize("kind", KINDS)
def test_every_schema_error_has_a_hint(kind: str) -> None:
    """Every rule a mutation of a valid document breaks is explained with a fix."""
    corpus = [doc for k, doc in [*examples(), *VALID_DOCUMENTS] if k == kind]
    found = [d for doc in corpus for m in mutations(doc) for d in validate(m)[1]]
    assert len(found) > 40
    assert [d.format() for d in found if not d.hint] == []


@pytest.mark.parametrize("kind", KINDS)
def test_no_schema_error_is_reported_twice(kind: str) -> None:
    corpus = [doc for k, doc in [*examples(), *VALID_DOCUMENTS] if k == kind]
    for case in (m for doc in corpus for m in mutations(doc)):
        found = [(d.path, d.message) for d in validate(case)[1]]
        assert len(found) == len(set(found)), found


def test_a_selection_without_its_method_is_one_error_not_each_methods_fields() -> None:
    select = {"start": "a", "ends": ["b"]}
    assert messages(backfill(select=select)) == [
        ("$.spec.select", "missing required field 'method'", "add the missing field")
    ]


def test_every_if_requires_the_field_it_tests() -> None:
    """Else it holds when the field is absent, and each `then` adds an error to the one
    that the field is missing (editors read backfillctl.schema.json's ifs on kind)."""

    def ifs(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "if" in node:
                yield node["if"]
            for value in node.values():
                yield from ifs(value)
        elif isinstance(node, list):
            for value in node:
                yield from ifs(value)

    found = [
        cond
        for path in sorted(SCHEMAS.glob("*.json"))
        for cond in ifs(json.loads(path.read_text(encoding="utf-8")))
    ]
    assert len(found) == 9
    assert all(set(cond["properties"]) <= set(cond.get("required", ())) for cond in found)


def test_mutations_cover_what_they_claim() -> None:
    doc = backfill(groups=2)
    produced = list(mutations(doc))
    assert {"apiVersion": doc["apiVersion"], "kind": "Backfill", "metadata": doc["metadata"]} in [
        {k: v for k, v in m.items() if k != "spec"} for m in produced if "spec" not in m
    ]
    spec_variants = [m["spec"] for m in produced if "spec" in m]
    assert {**doc["spec"], "groups": 10001} in spec_variants
    assert {**doc["spec"], "groups": 2.0} in spec_variants
    assert {**doc["spec"], "dates": ["2024-02-30"]} in spec_variants
    assert {**doc["spec"], "zzUnknown": "1"} in spec_variants
    assert {k: v for k, v in doc["spec"].items() if k != "groups"} in spec_variants


def test_the_date_pattern_accepts_exactly_the_calendar_dates() -> None:
    """Editors check `format: date` by pattern only, so the pattern itself knows each
    month's length and the leap years (the CLI's own check is date.fromisoformat)."""
    import datetime

    from backfill_ctl.spec.schema import COMMON, load_schema

    pattern = re.compile(load_schema(COMMON)["$defs"]["date"]["pattern"])
    years = [*range(1, 30), *range(1890, 2110), 2400, 2500, 9999]
    for year in years:
        for month in range(0, 14):
            for day in range(0, 33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    datetime.date.fromisoformat(text)
                    real = True
                except ValueError:
                    real = False
                assert bool(pattern.match(text)) == real, text
    assert not pattern.match("0000-01-01")


def test_an_unknown_field_of_an_object_without_fields_is_told_to_go() -> None:
    from backfill_ctl.spec import schema as module

    closed = Draft202012Validator({"type": "object", "additionalProperties": False})
    (error,) = closed.iter_errors({"x": 1})
    (found,) = module._explain(error, module._unlocated, "Config")
    assert (found.path, found.message, found.hint) == (("x",), "unknown field 'x'", "remove it")
