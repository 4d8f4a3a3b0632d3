"""Selection by joint probability, with a probability for every allowed value."""

from __future__ import annotations

from typing import Any

import numpy as np
from sglang.lang.choices import ChoicesDecision, ChoicesSamplingMethod


class JointProbability(ChoicesSamplingMethod):
    """Pick the choice whose whole token sequence is most probable.

    Unlike sglang's length-normalised default this compares true sequence
    probabilities, which is right when choices end in the same terminator. The meta
    info carries ``probabilities``: the softmax of the summed log-probabilities.

    A server reports no log-probability (``None``) for the first token of the scored
    window; that token lies in the prefix every choice shares, so it counts as 0.
    """

    def __call__(
        self,
        *,
        choices: list[str],
        normalized_prompt_logprobs: list[float],
        input_token_logprobs: list[list[Any]],
        output_token_logprobs: list[list[Any]],
        unconditional_token_logprobs: list[list[Any]] | None = None,
    ) -> ChoicesDecision:
        totals = np.array([sum(tok[0] or 0.0 for tok in seq) for seq in input_token_logprobs])
        probs = np.exp(totals - totals.max())
        probs /= probs.sum()
        return ChoicesDecision(
            decision=choices[int(np.argmax(totals))],
            meta_info={
                "probabilities": dict(zip(choices, probs.tolist(), strict=True)),
                "input_token_logprobs": input_token_logprobs,
                "normalized_prompt_logprobs": normalized_prompt_logprobs,
            },
        )


joint_probability = JointProbability()
