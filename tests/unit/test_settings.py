"""Each function's settings: checked once, at cold start, naming what is missing; the template provides them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from stepwise.local.template import function_specs, load_template
from stepwise.settings import ApiSettings, FunctionSettings, InvalidSettings, NodeRunnerSettings, SchedulerSettings

PROJECT_DIR = Path(__file__).resolve().parents[2]
SETTINGS_OF = {
    "ApiFunction": ApiSettings,
    "NodeRunnerFunction": NodeRunnerSettings,
    "SchedulerFunction": SchedulerSettings,
}


def required_variables(model: type[FunctionSettings]) -> set[str]:
    return {str(field.alias) for field in model.model_fields.values() if field.is_required()}


def local_environment() -> dict[str, str]:
    """The variables `sam local --env-vars events/env.json` gives every function."""
    parameters: dict[str, str] = json.loads((PROJECT_DIR / "events" / "env.json").read_text())["Parameters"]
    return parameters


def test_a_missing_variable_is_named() -> None:
    environment = {name: value for name, value in local_environment().items() if name not in ("JWKS_URL", "TABLE_NAME")}

    with pytest.raises(InvalidSettings) as missing:
        ApiSettings.from_environment(environment)

    assert "TABLE_NAME is not set" in str(missing.value)
    assert "JWKS_URL is not set" in str(missing.value)


def test_an_invalid_value_is_named() -> None:
    environment = {**local_environment(), "MAX_VARIABLES_BYTES": "lots"}

    with pytest.raises(InvalidSettings, match="MAX_VARIABLES_BYTES: Input should be a valid integer"):
        NodeRunnerSettings.from_environment(environment)


@pytest.mark.parametrize(
    ("model", "needs_bucket"), [(ApiSettings, True), (NodeRunnerSettings, True), (SchedulerSettings, False)]
)
def test_the_functions_that_read_or_write_values_need_their_bucket(
    model: type[FunctionSettings], needs_bucket: bool
) -> None:
    environment = {name: value for name, value in local_environment().items() if name != "VALUES_BUCKET_NAME"}

    if needs_bucket:
        with pytest.raises(InvalidSettings, match="VALUES_BUCKET_NAME is not set"):
            model.from_environment(environment)
    else:
        model.from_environment(environment)


def test_values_are_inlined_up_to_8_kib_and_limited_to_1_mib_per_output_and_4_mib_in_all() -> None:
    settings = NodeRunnerSettings.from_environment(local_environment())

    assert (settings.inline_value_bytes, settings.max_output_bytes, settings.max_variables_total_bytes) == (
        8192,
        1_048_576,
        4_194_304,
    )


def test_limits_that_do_not_nest_are_refused_by_name() -> None:
    # An output bigger than all the variables together could never be stored.
    environment = {**local_environment(), "MAX_OUTPUT_BYTES": "5000000"}

    with pytest.raises(InvalidSettings, match="MAX_OUTPUT_BYTES <= MAX_VARIABLES_TOTAL_BYTES does not hold"):
        ApiSettings.from_environment(environment)


@pytest.mark.parametrize("logical_id", sorted(SETTINGS_OF))
def test_the_template_gives_each_function_every_variable_its_settings_require(logical_id: str) -> None:
    declared = set(function_specs(load_template(PROJECT_DIR))[logical_id].environment_keys)

    assert required_variables(SETTINGS_OF[logical_id]) <= declared


@pytest.mark.parametrize("logical_id", sorted(SETTINGS_OF))
def test_the_sam_local_environment_is_complete(logical_id: str) -> None:
    SETTINGS_OF[logical_id].from_environment(local_environment())


def _import_handler(function_dir: str) -> Any:
    path = PROJECT_DIR / "functions" / function_dir / "app.py"
    name = f"_cold_start_{function_dir}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.mark.parametrize("function_dir", ["api", "node_runner", "scheduler"])
def test_a_handler_deployed_without_its_table_fails_its_cold_start(
    function_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import wiring

    # Given every variable of the local stack but the table's
    for name, value in local_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TABLE_NAME")
    wiring.reset()
    try:
        # When Lambda imports the handler, Then the import fails and says which variable is missing
        with pytest.raises(InvalidSettings, match="TABLE_NAME is not set"):
            _import_handler(function_dir)
    finally:
        wiring.reset()
