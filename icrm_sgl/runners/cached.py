"""The verdict cache in front of a runner: hits are answered at once, the rest run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from icrm_sgl.evaluation.cache import VerdictCache, cache_key
from icrm_sgl.judgement import Judgement
from icrm_sgl.judges import Judge
from icrm_sgl.runners.base import Batch, Runner


def run_cached(
    runner: Runner,
    cache: VerdictCache,
    config: dict[str, Any],
    batch: Batch,
    overwrite: bool = False,
    *,
    judge: Judge,
) -> Iterator[Judgement]:
    """Cached verdicts first (unless ``overwrite``), then the misses through ``runner``;
    every new valid verdict is stored under ``config`` + the example's fields."""
    keys = [cache_key(config, {"fields": fields}) for fields in batch.arguments]
    todo = []
    for i, key in enumerate(keys):
        hit = None if overwrite else cache.get(key, judge)
        if hit is None:
            todo.append(i)
        else:
            meta = {"from_cache": True, "prompt_tokens": 0, "cached_tokens": 0}
            yield Judgement(batch.ids[i], verdict=hit, meta=meta)
    if not todo:
        return
    for result in runner.run(batch.subset(todo)):
        position = int(result.id)
        if result.ok:
            cache.put(keys[position], result.verdict)
        result.id = batch.ids[position]
        yield result
