"""The native pieces one engine thread drives: weights, a context, a reusable batch.

Built by a factory so the scheduler can throw a broken one away and build a fresh one
(model reloaded) after a fault, without the process restarting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .native import ContextConfig, LlamaContext, LlamaModel, TokenBatch


@dataclass(slots=True)
class Runtime:
    model: LlamaModel
    context: LlamaContext
    batch: TokenBatch

    @classmethod
    def load(cls, path: Path, config: ContextConfig) -> Runtime:
        model = LlamaModel(path, offload=config.offload)
        try:
            context = LlamaContext(model, config)
        except Exception:
            model.close()
            raise
        return cls(model=model, context=context, batch=TokenBatch(config.n_batch))

    def close(self) -> None:
        self.batch.close()
        self.context.close()
        self.model.close()
