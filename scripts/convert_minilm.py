"""Convert all-MiniLM-L6-v2 into a llama.cpp GGUF: the node's converter, run from here.

The converter lives in the node's package (heatcompute_node.engines.llm.convert_minilm)
so the add-on image, whose build sees only addon/, converts the model the same way.

    python scripts/convert_minilm.py --out models/all-MiniLM-L6-v2.gguf
"""

from __future__ import annotations

from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "addon"))

from heatcompute_node.engines.llm.convert_minilm import (
    ConversionError,
    convert,
    main,
    package_model_dir,
    read_safetensors,
)

__all__ = ["ConversionError", "convert", "main", "package_model_dir", "read_safetensors"]

if __name__ == "__main__":
    sys.exit(main())
