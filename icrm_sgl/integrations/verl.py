"""ICRM as verl's custom reward function: ``compute_score(data_source, solution_str,
ground_truth, extra_info)``, the call verl's reward managers make per response.

verl loads it from its config and adds ``reward_kwargs`` to every call::

    reward.custom_reward_function.path=pkg://icrm_sgl.integrations.verl
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.judge=/path/to/rubric.toml

``judge`` (a rubric path or a built-in judge's name; else ``$ICRM_JUDGE``, else the
built-in individual judge) judges in the reward worker's process; ``endpoint`` (else
``$ICRM_ENDPOINT``) sends to ``icrm-sgl serve``'s ``/get_reward`` instead. ``options``
holds ``ICRMReward``'s other keywords (``model_name``, ``num_shots``, ``gen`` ...), and
``failed_reward`` (default 0.0) is a response's reward when it gets no verdict. The judge
reads ``solution_str`` as the reply (``{$model_output}``), ``ground_truth`` as
``{$reference}``, ``extra_info["question"]`` as the question and ``extra_info``'s other
keys and ``data_source`` by name (``supply.VERL``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from icrm_sgl.errors import InputError, VerdictError
from icrm_sgl.integrations.reward import ICRMReward
from icrm_sgl.judges.supply import VERL, Consumer

log = logging.getLogger(__name__)

#: Where the question comes from: the key verl's example data preprocessors write.
QUESTION = "question"

_REWARDS: dict[str, _Reward] = {}
_LOCK = threading.Lock()


class VerlReward(ICRMReward):
    """``ICRMReward`` that names verl's inputs when it refuses a judge or an example."""

    consumer: Consumer = VERL


class _Reward:
    """One reward function per configuration and process; a judge in this process
    takes one call at a time (verl calls from several threads)."""

    def __init__(self, reward: VerlReward, local: bool) -> None:
        self.reward = reward
        self.lock = threading.Lock() if local else None

    def __call__(self, question: str, reply: str, columns: dict[str, Any]) -> float | None:
        call = {"prompts": [question], "completions": [reply], **columns}
        if self.lock is None:
            return self.reward(**call)[0]
        with self.lock:
            return self.reward(**call)[0]


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    judge: str | None = None,
    endpoint: str | None = None,
    options: Mapping[str, Any] | None = None,
    failed_reward: float = 0.0,
    **_: Any,
) -> float:
    """The judge's reward for one response (keywords verl adds that the judge has no use
    for, such as ``reward_router_address``, are ignored); ``failed_reward`` when it gets
    no verdict, with the reason logged in one line."""
    reward = _reward(judge, endpoint, dict(options or {}))
    info = dict(extra_info or {})
    question = info.pop(QUESTION, None)
    columns = {**info, "data_source": data_source, "reference": ground_truth}
    try:
        if not isinstance(question, str):
            raise InputError(
                f"extra_info[{QUESTION!r}] must hold the question as text (the judge's "
                f"{{$user_query}}), got {type(question).__name__}"
            )
        value = reward(question, solution_str, {k: [v] for k, v in columns.items()})
    except (InputError, VerdictError) as exc:
        value = None
        log.warning("icrm verl reward: %s", exc)
    return float(failed_reward) if value is None else value


def _reward(judge: str | None, endpoint: str | None, options: dict[str, Any]) -> _Reward:
    """The reward function for this configuration, built on its first call."""
    judge = judge or os.environ.get("ICRM_JUDGE") or None
    endpoint = endpoint or os.environ.get("ICRM_ENDPOINT") or None
    key = json.dumps([judge, endpoint, options], sort_keys=True, default=str)
    with _LOCK:
        if key not in _REWARDS:
            chosen: dict[str, Any] = {
                k: v for k, v in (("judge", judge), ("endpoint", endpoint)) if v
            }
            reward = VerlReward(**chosen, **options, raise_on_failure=True)
            _REWARDS[key] = _Reward(reward, local=endpoint is None)
        return _REWARDS[key]
