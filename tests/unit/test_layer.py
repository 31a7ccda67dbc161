"""The Lambda layer holds only what runs in Lambda: checked on its build recipe, without building it.

``sam build`` runs ``layers/stepwise/Makefile`` (BuildMethod makefile): its ``package`` step copies the
package, and its ``dependencies`` step installs the pins ``layer_dependencies.py`` picks from pip's report.
Both are run here on their own, in milliseconds; pip and the network are left out.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stepwise.local.template import load_template

PROJECT_DIR = Path(__file__).resolve().parents[2]
LAYER_DIR = PROJECT_DIR / "layers" / "stepwise"
PACKAGE_DIR = LAYER_DIR / "stepwise"
NOT_IN_LAMBDA = ("stepwise.local", "stepwise.cli")


def layer_dependencies() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layer_dependencies", LAYER_DIR / "layer_dependencies.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the recipe's package step puts in the layer's python/ directory."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    artifacts = tmp_path_factory.mktemp("layer")
    subprocess.run(
        [make, "--silent", "-f", str(LAYER_DIR / "Makefile"), "package", f"ARTIFACTS_DIR={artifacts}"],
        check=True,
        capture_output=True,
    )
    return artifacts / "python"


def test_sam_builds_the_layer_with_its_recipe() -> None:
    layer = load_template(PROJECT_DIR)["Resources"]["StepwiseLayer"]

    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/stepwise"


def test_the_layer_ships_the_package_without_the_local_stack_or_the_cli(shipped: Path) -> None:
    modules = {module_name(path, shipped) for path in shipped.rglob("*.py")}
    expected = {
        name
        for path in PACKAGE_DIR.rglob("*.py")
        if not (name := module_name(path, PACKAGE_DIR.parent)).startswith(NOT_IN_LAMBDA)
    }

    assert modules == expected
    assert "stepwise.service.runner" in modules
    assert not list(shipped.rglob("__pycache__"))


def test_nothing_the_layer_ships_imports_what_it_leaves_out(shipped: Path) -> None:
    # Lambda would fail at import time: the left-out modules are not there.
    offenders = []
    for path in shipped.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            offenders += [f"{path.relative_to(shipped)}: {name}" for name in names if name.startswith(NOT_IN_LAMBDA)]

    assert offenders == []


def test_the_layer_ships_the_viewers_page_script_and_stylesheet(shipped: Path) -> None:
    from stepwise import viewer

    for name in (viewer.PAGE, *viewer.ASSETS):
        assert (shipped / "stepwise" / "viewer" / name).read_bytes() == (PACKAGE_DIR / "viewer" / name).read_bytes()


def report(*names: str) -> dict[str, Any]:
    return {"install": [{"metadata": {"name": name, "version": "1.0"}} for name in names]}


def test_the_layer_installs_no_aws_sdk_the_runtime_already_has() -> None:
    pins = layer_dependencies().layer_pins(
        report("aws-lambda-powertools", "aws-xray-sdk", "botocore", "Boto3", "s3transfer")
    )

    assert pins == ["aws-lambda-powertools==1.0", "aws-xray-sdk==1.0"]


def test_the_layer_installs_what_the_sdk_shares_with_our_dependencies() -> None:
    # croniter asks for python-dateutil (and it for six), as botocore does: the layer must not rely on the
    # runtime's copy, whose version the tests never ran.
    pins = layer_dependencies().layer_pins(report("croniter", "python_dateutil", "Six", "botocore"))

    assert pins == ["croniter==1.0", "python_dateutil==1.0", "Six==1.0"]


def test_the_layer_installs_every_other_resolved_dependency() -> None:
    # A line added to requirements.txt ships with its own dependencies (PyJWT[crypto] brings cryptography).
    pins = layer_dependencies().layer_pins(report("PyJWT", "cryptography", "cffi", "jmespath", "urllib3"))

    assert pins == ["cffi==1.0", "cryptography==1.0", "jmespath==1.0", "PyJWT==1.0", "urllib3==1.0"]


def test_the_layer_requirements_name_no_dev_tool() -> None:
    lines = (LAYER_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
    names = {line.split("==")[0].split("[")[0].strip().lower() for line in lines if line and not line.startswith("#")}

    assert names.isdisjoint({"moto", "boto3", "botocore", "pyyaml", "pytest", "rich"}), names
