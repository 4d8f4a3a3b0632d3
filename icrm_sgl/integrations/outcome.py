"""What judging one completion gives a training adapter: a reward or a failure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """Why a completion got no reward; ``bad_input`` when the completion itself is malformed
    (so no engine could judge it), as opposed to a verdict the judge could not produce."""

    message: str
    bad_input: bool = False


#: A completion's reward, or why it has none.
Outcome = float | Failure
