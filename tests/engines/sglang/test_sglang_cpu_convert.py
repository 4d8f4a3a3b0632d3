"""The CPU sglang server's checkpoint conversion, as pytest-xdist workers meet it: several
processes asking for the checkpoint at once on an empty cache folder."""

from __future__ import annotations

import pytest

from devtools.sglang_cpu.convert import CHECKPOINT
from tests.conftest import race_conversions


# In the sglang server's group, whose first need of the checkpoint this race then is: the
# run converts once. Where another worker converted first, the race runs on a folder of its own.
@pytest.mark.xdist_group("sglang_server")
def test_two_conversions_at_once_on_an_empty_cache_both_succeed(converted_checkpoint, tmp_path):
    """The second process waits for the first and finds its checkpoint (before the lock,
    the loser's rename raised 'Directory not empty')."""
    race = converted_checkpoint
    if race is None or not race.raced:
        race = race_conversions(tmp_path)
    assert race.raced
    for _, err, code in race.results:
        assert code == 0, err[-2000:]
    paths = {out.strip().splitlines()[-1] for out, _, _ in race.results}
    checkpoint = race.folder / CHECKPOINT
    assert paths == {str(checkpoint)}
    assert (checkpoint / "config.json").is_file()
    # Nothing half-written is left behind: only the checkpoint and its lock file.
    left = sorted(
        p.name for p in race.folder.iterdir() if CHECKPOINT in p.name or "convert" in p.name
    )
    assert left == [f".{CHECKPOINT}.lock", CHECKPOINT]
