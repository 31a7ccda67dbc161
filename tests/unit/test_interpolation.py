"""Unit tests for stepwise.interpolation: examples for every rule, then hypothesis properties."""

from __future__ import annotations

import copy
import json
import operator
import pickle
import re
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepwise.interpolation import (
    InterpolationError,
    UnknownVariable,
    escape,
    has_path,
    interpolate,
    parse_path,
    placeholders,
    resolve,
)

VARIABLES: dict[str, Any] = {
    "order": {"id": "ord_1", "total": 42, "price": 9.5, "paid": True, "refunded": False, "note": None},
    "user": {"name": "Ann", "first name": "Ann-Marie", "a.b": "dotted", "it's": "quoted", "": "empty"},
    "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
    "matrix": [[1, 2], [3, 4]],
    "tags": ["x", "y"],
    "meta": {"city": "Zürich", "ok": True},
    "my-var_1": "dash",
    "template": "${order.total}",
}


# --- whole-string placeholders keep the value's type ---------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${order.total}", 42),
        ("${order.price}", 9.5),
        ("${order.paid}", True),
        ("${order.refunded}", False),
        ("${order.note}", None),
        ("${order.id}", "ord_1"),
        ("${meta}", {"city": "Zürich", "ok": True}),
        ("${tags}", ["x", "y"]),
        ("${items[1]}", {"sku": "B2", "qty": 1}),
        ("${items[0].qty}", 2),
        ("${matrix[1][0]}", 3),
        ("${ order.total }", 42),
        ("${\torder.total\n}", 42),
        ("${my-var_1}", "dash"),
    ],
)
def test_whole_string_placeholder_returns_the_value_with_its_type(template: str, expected: Any) -> None:
    # Given a string that is exactly one placeholder
    # When it is interpolated
    result = interpolate(template, VARIABLES)
    # Then the value itself comes back, with its JSON type (bool is not confused with int)
    assert result == expected
    assert type(result) is type(expected)


def test_whole_string_container_is_a_copy_not_an_alias_of_the_variables() -> None:
    # Given variables holding nested containers
    variables = copy.deepcopy(VARIABLES)
    # When a whole-string placeholder yields a container and the caller mutates it
    result = interpolate("${items}", variables)
    result[0]["qty"] = 99
    result.append("extra")
    # Then the variables are untouched
    assert variables == VARIABLES


def test_text_around_a_single_placeholder_makes_it_text() -> None:
    assert interpolate(" ${order.total}", VARIABLES) == " 42"
    assert interpolate("${order.total} ", VARIABLES) == "42 "
    assert interpolate("${order.total}${order.total}", VARIABLES) == "4242"


# --- embedded placeholders render as text ---------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("total=${order.total}", "total=42"),
        ("price=${order.price}", "price=9.5"),
        ("paid=${order.paid}/${order.refunded}", "paid=true/false"),
        ("note=${order.note}", "note=null"),
        ("id=${order.id}", "id=ord_1"),
        ("meta=${meta}", 'meta={"city":"Zürich","ok":true}'),
        ("tags=${tags}", 'tags=["x","y"]'),
        ("${user.name} has ${items[0].qty} of ${items[0].sku}.", "Ann has 2 of A1."),
        ("[${ tags[0] }]", "[x]"),
    ],
)
def test_embedded_placeholders_render_strings_as_is_and_the_rest_as_compact_json(template: str, expected: str) -> None:
    assert interpolate(template, VARIABLES) == expected


def test_substituted_values_are_not_interpolated_again() -> None:
    # Given a variable whose value looks like a placeholder
    # When it is substituted, whole or embedded
    # Then it is inserted verbatim, never expanded
    assert interpolate("${template}", VARIABLES) == "${order.total}"
    assert interpolate("t=${template}", VARIABLES) == "t=${order.total}"


def test_decimal_numbers_render_as_json_numbers() -> None:
    # Numbers read back from DynamoDB are Decimals
    variables = {"n": Decimal("3"), "x": Decimal("2.50"), "v": [Decimal("1"), Decimal("0.5")]}
    assert interpolate("${n} ${x} ${v}", variables) == "3 2.5 [1,0.5]"
    assert interpolate("${n}", variables) == Decimal("3")


def test_a_value_that_is_not_json_renders_as_an_error() -> None:
    with pytest.raises(InterpolationError, match=r"cannot render \$\{thing\} as text"):
        interpolate("x=${thing}", {"thing": object()})


# --- walking configs ------------------------------------------------------------------------------


def test_nested_configs_are_walked_and_only_values_are_interpolated() -> None:
    # Given a node config mixing dicts, lists, strings and other scalars
    config: dict[str, Any] = {
        "url": "https://api.example.com/orders/${order.id}",
        "${order.id}": "keys are kept as written",
        "body": {"amount": "${order.total}", "lines": ["${items[0].sku}", {"q": "${items[1].qty}"}]},
        "retries": 3,
        "enabled": True,
        "timeout": None,
        "pair": ("${order.id}", 1),
    }
    original = copy.deepcopy(config)
    # When it is interpolated
    result = interpolate(config, VARIABLES)
    # Then values are interpolated at every depth, keys and non-str/list/dict values are untouched
    assert result == {
        "url": "https://api.example.com/orders/ord_1",
        "${order.id}": "keys are kept as written",
        "body": {"amount": 42, "lines": ["A1", {"q": 1}]},
        "retries": 3,
        "enabled": True,
        "timeout": None,
        "pair": ("${order.id}", 1),
    }
    # And the input is left as it was, the result sharing no container with it
    assert config == original
    assert result is not config
    assert result["body"] is not config["body"]
    assert result["body"]["lines"] is not config["body"]["lines"]


@pytest.mark.parametrize("value", [7, 2.5, True, None, b"${order.id}", ("${order.id}",)])
def test_values_other_than_str_list_dict_come_back_unchanged(value: Any) -> None:
    assert interpolate(value, VARIABLES) is value


# --- path grammar ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('${user["first name"]}', "Ann-Marie"),
        ("${user['first name']}", "Ann-Marie"),
        ('${user["a.b"]}', "dotted"),
        ('${user["it\'s"]}', "quoted"),
        ("${user['it\\'s']}", "quoted"),
        ('${user[""]}', "empty"),
        ('${items[0]["sku"]}', "A1"),
        ('Hi ${user["first name"]}!', "Hi Ann-Marie!"),
    ],
)
def test_quoted_keys_reach_keys_with_dots_spaces_and_quotes(template: str, expected: str) -> None:
    assert interpolate(template, VARIABLES) == expected


def test_a_backslash_in_a_quoted_key_takes_the_next_character_literally() -> None:
    variables = {"m": {'say "hi"': 1, "back\\slash": 2, "]}": 3, "${x}": 4}}
    assert interpolate('${m["say \\"hi\\""]}', variables) == 1
    assert interpolate('${m["back\\\\slash"]}', variables) == 2
    assert interpolate('${m["]}"]}', variables) == 3
    assert interpolate('<${m["${x}"]}>', variables) == "<4>"


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("a", ("a",)),
        ("a.b[0].c", ("a", "b", 0, "c")),
        ('user["first name"]', ("user", "first name")),
        ("x['a.b'][12]", ("x", "a.b", 12)),
        ("_a-1.B_2", ("_a-1", "B_2")),
        ("  a.b  ", ("a", "b")),
        ('a["q\\"uote"]', ("a", 'q"uote')),
    ],
)
def test_parse_path_splits_a_path_into_segments(path: str, segments: tuple[str | int, ...]) -> None:
    assert parse_path(path) == segments


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "invalid path '': empty path"),
        ("a..b", "expected a name after '.' at position 1"),
        ("a[x]", "expected an index [N] or a quoted key after '[' at position 2"),
        ("a[-1]", "expected an index [N] or a quoted key after '['"),
        ("a[0", "expected ']' after the index at position 3"),
        ('a["x', "unterminated quoted key at position 2"),
        ("1a", "expected a variable name at position 0"),
        ('["a"]', "expected a variable name at position 0"),
        ("a b", "unexpected 'b', expected end of path at position 2"),
        ("${a}", "expected a variable name at position 0"),
    ],
)
def test_parse_path_rejects_malformed_paths(path: str, message: str) -> None:
    with pytest.raises(InterpolationError, match=re.escape(message)):
        parse_path(path)


# --- escapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$${x}", "${x}"),
        ("$${order.total} is ${order.total}", "${order.total} is 42"),
        ("$$${x}", "$${x}"),
        ("$${", "${"),
        ("cost: $5, $x, $ {x}, $", "cost: $5, $x, $ {x}, $"),
        ("$$", "$$"),
        ("a$", "a$"),
    ],
)
def test_double_dollar_escapes_a_placeholder_and_a_lone_dollar_is_left_alone(template: str, expected: str) -> None:
    assert interpolate(template, VARIABLES) == expected


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("${x}", "$${x}"), ("$${x}", "$$${x}"), ("no dollars", "no dollars"), ("$5 {x}", "$5 {x}")],
)
def test_escape_makes_text_literal(text: str, escaped: str) -> None:
    assert escape(text) == escaped
    assert interpolate(escaped, {}) == text


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "message"),
    [
        ("${user.email}", "user.email", "unknown variable ${user.email}: 'email' not found in 'user'"),
        ("${nope}", "nope", "unknown variable ${nope}: 'nope' not found in variables"),
        (
            "x ${items[3]}",
            "items[3]",
            "unknown variable ${items[3]}: index 3 out of range in 'items' (length 2)",
        ),
        (
            "${user.name.first}",
            "user.name.first",
            "unknown variable ${user.name.first}: 'user.name' is a string, not an object",
        ),
        ("${user[0]}", "user[0]", "unknown variable ${user[0]}: 'user' is an object, not a list"),
        ("${tags.first}", "tags.first", "unknown variable ${tags.first}: 'tags' is a list, not an object"),
        (
            "${order.note.x}",
            "order.note.x",
            "unknown variable ${order.note.x}: 'order.note' is null, not an object",
        ),
        ("${order.total[0]}", "order.total[0]", "'order.total' is a number, not a list"),
        ("${order.paid.x}", "order.paid.x", "'order.paid' is a boolean, not an object"),
        (
            '${user["first name"].x}',
            'user["first name"].x',
            """'user["first name"]' is a string, not an object""",
        ),
        ("${ user.email }", "user.email", "unknown variable ${user.email}"),
    ],
)
def test_unknown_variable_names_the_path_and_what_is_missing(template: str, path: str, message: str) -> None:
    # Given a placeholder whose path is not in the variables
    # When the template is interpolated
    with pytest.raises(UnknownVariable) as caught:
        interpolate({"deep": [template]}, VARIABLES)
    # Then the error names the placeholder path and the missing part
    assert message in str(caught.value)
    assert caught.value.path == path
    assert isinstance(caught.value, InterpolationError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("template", "message", "position"),
    [
        ("abc ${order.total", "unclosed placeholder '${order.total' at position 4", 4),
        ("${", "unclosed placeholder '${' at position 0", 0),
        ("x ${}", "empty placeholder '${}' at position 2", 2),
        ("${  }", "empty placeholder '${  }' at position 0", 0),
        (
            "${a..b}",
            "malformed placeholder '${a..b}' at position 0: expected a name after '.' at position 3",
            3,
        ),
        (
            "id ${a[x]}",
            "malformed placeholder '${a[x]}' at position 3: "
            "expected an index [N] or a quoted key after '[' at position 7",
            7,
        ),
        ("${1a}", "expected a variable name at position 2", 2),
        ("${a b}", "unexpected 'b', expected '}' at position 4", 4),
        ("${a .b}", "unexpected '.', expected '}' at position 4", 4),
        ('${a["x" ]}', "expected ']' after the quoted key at position 7", 7),
        ('${a["x]}', "unterminated quoted key at position 4", 4),
        ("${a[0}", "expected ']' after the index at position 5", 5),
    ],
)
def test_malformed_placeholder_names_the_problem_and_the_position(template: str, message: str, position: int) -> None:
    with pytest.raises(InterpolationError) as caught:
        interpolate(template, VARIABLES)
    assert message in str(caught.value)
    assert caught.value.position == position
    assert not isinstance(caught.value, UnknownVariable)


def test_errors_survive_pickling() -> None:
    unknown = UnknownVariable("a.b", "'b' not found in 'a'")
    clone = pickle.loads(pickle.dumps(unknown))  # noqa: S301 - our own object
    assert (type(clone), str(clone), clone.path) == (UnknownVariable, str(unknown), "a.b")
    malformed = InterpolationError("bad", 3)
    clone2 = pickle.loads(pickle.dumps(malformed))  # noqa: S301 - our own object
    assert (type(clone2), str(clone2), clone2.position) == (InterpolationError, "bad", 3)


# --- resolve, has_path, placeholders --------------------------------------------------------------


def test_resolve_returns_the_value_at_a_path() -> None:
    assert resolve(VARIABLES, "items[1].sku") == "B2"
    assert resolve(VARIABLES, ' user["first name"] ') == "Ann-Marie"
    with pytest.raises(UnknownVariable, match=re.escape("index 5 out of range in 'tags' (length 2)")):
        resolve(VARIABLES, "tags[5]")


def test_has_path_tells_whether_a_path_exists() -> None:
    assert has_path(VARIABLES, "order.note")  # present, even though null
    assert has_path(VARIABLES, "matrix[1][1]")
    assert not has_path(VARIABLES, "order.missing")
    assert not has_path(VARIABLES, "tags[2]")
    assert not has_path(VARIABLES, "order.id.x")
    with pytest.raises(InterpolationError, match="expected a name"):
        has_path(VARIABLES, "a..b")


def test_placeholders_lists_referenced_paths_in_order_without_duplicates() -> None:
    config = {
        "${ignored.key}": "${a.b}",
        "list": ["x ${ c[0] } y ${a.b}", '${d["e f"]}', 5, None],
        "escaped": "$${not.this}",
    }
    assert placeholders(config) == ["a.b", "c[0]", 'd["e f"]']
    assert placeholders("no placeholders $5") == []
    with pytest.raises(InterpolationError, match="unclosed placeholder"):
        placeholders(["ok ${a}", "bad ${b"])


# --- properties -----------------------------------------------------------------------------------

FAST = settings(max_examples=200, deadline=None)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

FIRST = "abcxyzABCXYZ_"
identifiers = st.builds(operator.add, st.sampled_from(FIRST), st.text(FIRST + "09-", max_size=5))
no_dollar_text = st.text(st.characters(exclude_characters="$"), max_size=8)
dollar_heavy_text = st.text(st.sampled_from("${}[]\"'\\. a"), max_size=16)


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
        max_leaves=5,
    )


def variables_of(text: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(identifiers, json_values(text), min_size=1, max_size=2)


any_text = st.text(max_size=8) | dollar_heavy_text
any_variables = variables_of(any_text)
dollar_free_variables = variables_of(no_dollar_text)


def render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def key_syntax(key: str) -> st.SearchStrategy[str]:
    """Any of the forms the grammar allows for writing ``key`` as a path segment."""
    forms = ['["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]']
    forms.append("['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']")
    if IDENTIFIER.fullmatch(key):
        forms.append("." + key)
    return st.sampled_from(forms)


@st.composite
def paths_into(draw: st.DrawFn, variables: dict[str, Any]) -> tuple[str, tuple[str | int, ...], Any]:
    """A path into ``variables``: its text, its segments and the value it points at."""
    key = draw(st.sampled_from(sorted(variables)))
    text, value = key, variables[key]
    segments: list[str | int] = [key]
    while isinstance(value, dict | list) and value and draw(st.booleans()):
        if isinstance(value, list):
            index = draw(st.integers(0, len(value) - 1))
            text, value = text + f"[{index}]", value[index]
            segments.append(index)
        else:
            member = draw(st.sampled_from(sorted(value)))
            text, value = text + draw(key_syntax(member)), value[member]
            segments.append(member)
    return text, tuple(segments), value


SPACE = st.sampled_from(["", " ", "\t", " \n "])


@st.composite
def wrapped(draw: st.DrawFn, path: str) -> str:
    """``path`` as a placeholder, with optional whitespace inside the braces."""
    return "${" + draw(SPACE) + path + draw(SPACE) + "}"


@FAST
@given(st.text() | dollar_heavy_text)
def test_property_escape_round_trips_any_text(text: str) -> None:
    # For any text, escaping it makes it literal: nothing is interpolated, nothing raises
    assert interpolate(escape(text), {}) == text
    assert placeholders(escape(text)) == []


@FAST
@given(dollar_free_variables, no_dollar_text, no_dollar_text, st.data())
def test_property_placeholders_yield_the_values_at_their_paths(
    variables: dict[str, Any], prefix: str, suffix: str, data: st.DataObject
) -> None:
    # Given paths into generated variables, each written in any allowed syntax
    paths = data.draw(st.lists(paths_into(variables), min_size=1, max_size=3))
    written = [data.draw(wrapped(path)) for path, _, _ in paths]
    # Then a whole-string placeholder yields exactly the value at its path, and the helpers agree
    for (path, segments, value), placeholder in zip(paths, written, strict=True):
        assert interpolate(placeholder, variables) == value
        assert parse_path(path) == segments
        assert resolve(variables, path) == value
        assert has_path(variables, path)
    # And embedded in text with no "$", each becomes its rendered value with no "${" left behind
    template = "<" + prefix + "".join(placeholder + suffix for placeholder in written) + ">"
    result = interpolate(template, variables)
    assert result == "<" + prefix + "".join(render(value) + suffix for _, _, value in paths) + ">"
    assert "${" not in result
    assert placeholders({"k": [template]}) == list(dict.fromkeys(path for path, _, _ in paths))


class Template(NamedTuple):
    """A config string to be: (kind, text, choice) pieces, a choice picking a path for a placeholder."""

    pieces: list[tuple[str, str, int]]


PIECES = st.tuples(st.sampled_from(["text", "escaped", "placeholder"]), any_text, st.integers(0, 999))
CONFIG_SKELETONS = st.recursive(
    st.lists(PIECES, max_size=3).map(Template) | st.integers() | st.none(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=5,
)


def every_path(value: Any, prefix: str) -> list[str]:
    """``prefix`` and every path below it, in one canonical syntax."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            quoted = '["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'
            paths += every_path(item, prefix + (f".{key}" if IDENTIFIER.fullmatch(key) else quoted))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += every_path(item, f"{prefix}[{index}]")
    return paths


def build_config(skeleton: Any, paths: list[str]) -> Any:
    if isinstance(skeleton, Template):
        out = []
        for kind, text, choice in skeleton.pieces:
            if kind == "text":
                out.append(text.replace("$", ""))
            elif kind == "escaped":
                # A trailing "$" would join the next piece's "{" into a placeholder nobody wrote.
                out.append(escape(text.rstrip("$")))
            else:
                out.append("${" + paths[choice % len(paths)] + "}")
        return "".join(out)
    if isinstance(skeleton, dict):
        return {key: build_config(item, paths) for key, item in skeleton.items()}
    if isinstance(skeleton, list):
        return [build_config(item, paths) for item in skeleton]
    return skeleton


@FAST
@given(any_variables, CONFIG_SKELETONS)
def test_property_input_is_never_mutated(variables: dict[str, Any], skeleton: Any) -> None:
    # Given a nested config whose strings mix text, escapes and placeholders into the variables
    paths = [path for key, value in variables.items() for path in every_path(value, key)]
    config = build_config(skeleton, paths)
    config_before, variables_before = copy.deepcopy(config), copy.deepcopy(variables)
    # When it is interpolated, and the result is then mutated everywhere
    result = interpolate(config, variables)
    scramble(result)
    # Then neither the config nor the variables changed
    assert config == config_before
    assert variables == variables_before


def scramble(value: Any) -> None:
    """Mutate every dict and list reachable from ``value``."""
    if isinstance(value, dict):
        for item in list(value.values()):
            scramble(item)
        value["\x00scrambled"] = True
    elif isinstance(value, list):
        for item in value:
            scramble(item)
        value.append("\x00scrambled")


@FAST
@given(any_variables | st.just({}), json_values(no_dollar_text))
def test_property_values_without_a_dollar_come_back_unchanged(variables: dict[str, Any], value: Any) -> None:
    assert interpolate(value, variables) == value
    assert placeholders(value) == []
