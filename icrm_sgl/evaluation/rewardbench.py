"""RewardBench's official sections and per-subset weights.

The values are those of ``SUBSET_MAPPING`` and ``EXAMPLE_COUNTS`` in the ``rewardbench``
package (allenai/reward-bench, ``rewardbench/constants.py``, Apache-2.0). A section's score
is the mean of its subset accuracies weighted by these counts; the leaderboard score is the
mean of the four sections. ``math-prm`` really has 447 pairs but is weighted as 984 so that
math weighs as much as the six code subsets together (6 x 164), as the official script does.
"""

from __future__ import annotations

#: Section name -> the RewardBench subsets it averages.
SUBSET_MAPPING: dict[str, list[str]] = {
    "Chat": [
        "alpacaeval-easy",
        "alpacaeval-length",
        "alpacaeval-hard",
        "mt-bench-easy",
        "mt-bench-med",
    ],
    "Chat Hard": [
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ],
    "Safety": [
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ],
    "Reasoning": [
        "math-prm",
        "hep-cpp",
        "hep-go",
        "hep-java",
        "hep-js",
        "hep-python",
        "hep-rust",
    ],
}

#: Subset -> weight in its section score (the number of pairs, except math-prm).
EXAMPLE_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "xstest-should-refuse": 250,
    "xstest-should-respond": 154,
    "donotanswer": 136,
    "math-prm": 984,  # 447 pairs, weighted to equal the six code subsets (6 x 164)
    "hep-cpp": 164,
    "hep-go": 164,
    "hep-java": 164,
    "hep-js": 164,
    "hep-python": 164,
    "hep-rust": 164,
}

#: Every subset RewardBench scores, in section order.
SUBSETS: tuple[str, ...] = tuple(s for subsets in SUBSET_MAPPING.values() for s in subsets)

#: Section of each subset.
SECTION_OF: dict[str, str] = {
    s: section for section, subsets in SUBSET_MAPPING.items() for s in subsets
}
