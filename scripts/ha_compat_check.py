"""Does every `homeassistant` name the integration imports exist in another release?

    python scripts/ha_compat_check.py COMPONENT_DIR HA_SOURCE_DIR

HA_SOURCE_DIR is an unpacked homeassistant wheel (scripts/setup unpacks the newest
release into the venv). The tests run on two releases; users run newer ones still, and
an import that a release removed fails the whole integration at load. Files of that
release which this Python cannot parse (newer syntax) are searched with a regex instead.
Exit status 1 when a name is missing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
import re
import sys


@dataclass(frozen=True, slots=True)
class ImportedName:
    """One name the component imports from Home Assistant (`name` None: a module)."""

    file: str
    module: str
    name: str | None

    def __str__(self) -> str:
        if self.name is None:
            return f"{self.file}: module {self.module}"
        return f"{self.file}: {self.module}.{self.name}"


def imported_names(component: Path) -> Iterator[ImportedName]:
    for path in sorted(component.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("homeassistant"):
                assert node.module is not None
                for alias in node.names:
                    yield ImportedName(path.name, node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("homeassistant"):
                        yield ImportedName(path.name, alias.name, None)


class Release:
    """An unpacked Home Assistant release's source tree."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def module_path(self, module: str) -> Path | None:
        base = self.source.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.exists():
                return candidate
        return None

    def has(self, imported: ImportedName) -> bool:
        path = self.module_path(imported.module)
        if path is None:
            return False
        if imported.name is None:
            return True
        return self.module_path(f"{imported.module}.{imported.name}") is not None or defines(
            path, imported.name
        )


def defines(path: Path, name: str) -> bool:
    """Whether the module at `path` binds `name` at its top level."""
    text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return _defines_by_regex(text, name)
    return any(_binds(statement, name) for statement in tree.body)


def _binds(statement: ast.stmt, name: str) -> bool:
    match statement:
        case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef():
            return statement.name == name
        case ast.Assign():
            return any(isinstance(t, ast.Name) and t.id == name for t in statement.targets)
        case ast.AnnAssign():
            return isinstance(statement.target, ast.Name) and statement.target.id == name
        case ast.TypeAlias():
            return statement.name.id == name
        case ast.Import() | ast.ImportFrom():
            return any(
                (alias.asname or alias.name.split(".")[-1]) == name for alias in statement.names
            )
        case ast.If() | ast.Try():
            # TYPE_CHECKING blocks, optional imports: their bindings count too.
            return any(
                _binds(inner, name)
                for inner in ast.walk(statement)
                if isinstance(inner, ast.stmt) and inner is not statement
            )
    return False


def _defines_by_regex(text: str, name: str) -> bool:
    word = re.escape(name)
    pattern = (
        rf"^(class|def|async def)\s+{word}\b|^{word}\s*[:=]|^type\s+{word}\b"
        rf"|^\s*(from\s+\S+\s+)?import\s+.*\b{word}\b|^\s+{word},?\s*$"
    )
    return re.search(pattern, text, re.MULTILINE) is not None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    component, source = Path(argv[0]), Path(argv[1])
    if not (source / "homeassistant").is_dir():
        print(f"not an unpacked Home Assistant release: {source}", file=sys.stderr)
        return 2
    release = Release(source)
    names = list(imported_names(component))
    missing = [imported for imported in names if not release.has(imported)]
    for imported in missing:
        print(f"missing: {imported}")
    print(f"ha compat: {len(names) - len(missing)}/{len(names)} imported names exist in {source}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
