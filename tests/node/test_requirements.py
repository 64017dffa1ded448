"""Every package the node imports is in the add-on's requirements.

The dev venv also holds Home Assistant and the test tools, so an import the image lacks
passes every other test here and fails only in the add-on image (as `cryptography` for
the fleet's keys did). This reads the node's imports and the installed distributions'
top-level modules; no network, no image needed.
"""

from __future__ import annotations

import ast
from importlib.metadata import packages_distributions
from pathlib import Path
import re
import sys

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "addon" / "heatcompute_node"
REQUIREMENTS = ROOT / "addon" / "requirements.txt"
# Run only while the image is built, with gguf installed beside the build (Dockerfile),
# never by the node.
BUILD_ONLY = {NODE / "engines" / "llm" / "convert_minilm.py"}


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in set(NODE.rglob("*.py")) - BUILD_ONLY:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"heatcompute_node", "__future__"}


def _required() -> set[str]:
    names = set()
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        if found := re.match(r"\s*([A-Za-z0-9_.-]+)\s*==", line):
            names.add(_normal(found.group(1)))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_of_the_node_is_a_requirement_of_the_image() -> None:
    distributions = packages_distributions()
    required = _required()
    missing = {
        module: sorted(distributions.get(module, ["(not installed)"]))
        for module in sorted(_imported_top_levels())
        if not {_normal(d) for d in distributions.get(module, [])} & required
    }
    assert not missing, f"imported by the node, not in addon/requirements.txt: {missing}"
