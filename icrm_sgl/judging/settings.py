"""``ICRM``'s settings in three groups, each validated and handed to the layer that owns it.

``EngineSettings`` builds the engine (``EngineSettings.build``), ``JudgingSettings`` the
judge definition and its shots, ``CacheSettings`` the verdict cache. ``ICRM(...)``'s flat,
seed-compatible keywords are sorted into these groups by ``Settings.from_flat``; the
command line builds them the same way, and ``ICRM.from_settings`` takes them directly.
``EndpointSettings`` are ``ICRMReward(endpoint=...)``'s, for a served judge.
A bad value is an ``InputError`` in one line naming the setting. Each setting's default,
description and flag (``Flag``) are declared here once: ``ICRM(...)``'s keywords,
``program_config`` and the command line's options are made from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from icrm_sgl.engines import create_engine
from icrm_sgl.engines.protocol import Engine
from icrm_sgl.errors import InputError
from icrm_sgl.judges import BUILTIN_NAMES, Judge, as_judge, builtin_judge
from icrm_sgl.judges.shots import SAMPLING_MODES, Shot, check_sampling_mode, sample_shots
from icrm_sgl.plumbing.arguments import GenerationOptions, check_count, validation_message
from icrm_sgl.plumbing.defaults import FIELD_TOKENS, NUM_SHOTS, SEED

if TYPE_CHECKING:
    from icrm_sgl.runners.cache import VerdictCache

#: The original IC-RM's launch values that change nothing (its documented defaults, and
#: the defaults of the engines that launch servers): accepted by every engine and dropped,
#: so only a value that would change something reaches an engine, which refuses it by name
#: when it launches no server.
LAUNCH_NEUTRAL: dict[str, Any] = {"num_workers": 1, "num_gpu_per_worker": 1}

StrPath = str | Path


class Flag:
    """How the command line spells a setting, in ``Annotated`` beside the field's type:
    ``cli.options`` makes its click option from this and the field (type, bounds, default,
    and the description as the help)."""

    def __init__(
        self,
        *decls: str,
        metavar: str | None = None,
        choices: Sequence[str] | None = None,
        path: Literal["file", "read", "folder"] | None = None,
    ) -> None:
        self.decls = decls
        self.metavar = metavar
        self.choices = choices
        #: ``file``: a file the command reads, checked to exist first; ``read``: a file
        #: read later (a rubric, a model); ``folder``: a folder the command writes.
        self.path = path


def _judge_reference(value: Any) -> Judge | StrPath | None:
    """A ``Judge``, a built-in judge's name or a rubric's path (read when it is used)."""
    if value is None or isinstance(value, Judge | str | Path):
        return value
    raise ValueError(
        f"judge must be a Judge, a built-in judge's name or a rubric file's path, got {value!r}"
    )


def _judge_text(value: Judge | StrPath | None) -> str | None:
    """How a dump shows the judge: its name, or the name or path given."""
    return value.name if isinstance(value, Judge) else None if value is None else str(value)


class _Group(BaseModel):
    """A frozen group of settings: strict types, unknown names refused, and every
    problem raised as one ``InputError`` line (not pydantic's report)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InputError(validation_message(exc, data, type(self).__name__)) from exc

    def values(self) -> dict[str, Any]:
        """The settings by name, as given (no copies, no conversion)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class EngineSettings(_Group):
    """Which engine runs the judge and how: its registered name, the model, the sampling
    seed, the original's launch settings, and the engine's own options (``-E KEY=VALUE``)."""

    #: One of the registered engines (``cli.options.engine_option`` lists them).
    name: Annotated[str, Flag("--engine")] = Field(
        "local", description="Engine that runs the programs."
    )
    model_name: Annotated[StrPath | None, Flag("--model", path="read")] = Field(
        None,
        description="Model: a GGUF path (local engine, default: packaged SmolLM2), a name/path "
        "for the sglang engine to launch, or a hosted API's model name.",
    )
    seed: int | None = SEED
    num_workers: int | None = Field(
        None, ge=1, description="Data-parallel servers (sglang, vllm); 1 is accepted everywhere."
    )
    num_gpu_per_worker: int | None = Field(
        None,
        ge=1,
        description="Tensor-parallel GPUs per server (sglang, vllm); 1 is accepted everywhere.",
    )
    dtype: str | None = Field(None, description="Launched servers' weight dtype.")
    quantization: str | None = Field(None, description="Launched servers' quantization.")
    #: The engine's own options (for the local engine ``n_ctx``, ``n_threads`` …), checked
    #: by the engine's options model when it is built.
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _no_setting_twice(cls, options: dict[str, Any]) -> dict[str, Any]:
        twice = sorted(set(options) & (set(cls.model_fields) - {"options"}))
        if twice:
            raise ValueError(
                f"{twice[0]} is an engine setting of its own, not one of the engine's options"
            )
        return options

    def build(self) -> Engine:
        """The engine these settings describe; its factory gets the model, seed, launch
        settings and own options, nothing of the judging or the cache."""
        return create_engine(self.name, **self.factory_options())

    def factory_options(self) -> dict[str, Any]:
        """The engine factory's keywords: model, seed, the launch settings that change
        something, then the engine's own options."""
        launch = {
            key: value
            for key in ("num_workers", "num_gpu_per_worker", "dtype", "quantization")
            if (value := getattr(self, key)) is not None
            and LAUNCH_NEUTRAL.get(key, object()) != value
        }
        model = None if self.model_name is None else str(self.model_name)
        return {"model_name": model, "seed": self.seed, **launch, **self.options}


class JudgingSettings(_Group):
    """What is judged and how the prompt is made: a built-in mode (``rm_type``, with your
    templates and shots pool) or your own ``judge``, the shots, the prompt mode, the text
    fields' token budget, examples in flight, and the seed of shot sampling."""

    rm_type: Annotated[str | None, Flag("--rm-type", choices=BUILTIN_NAMES)] = Field(
        None, description="Built-in judging mode"
    )
    judge: Annotated[
        Judge | StrPath | None,
        PlainValidator(_judge_reference),
        PlainSerializer(_judge_text),
        Flag("--judge", metavar="RUBRIC.toml", path="read"),
    ] = Field(
        None,
        description="Your own judge: a TOML rubric file (fields, template, reward; see "
        "docs/judges.md). Replaces --rm-type.",
    )
    template_path: Annotated[StrPath | None, Flag("--template", path="file")] = Field(
        None, description="Prompt template with {$key} placeholders (see README)."
    )
    shot_template_path: Annotated[StrPath | None, Flag("--shot-template", path="file")] = Field(
        None, description="Template for one shot."
    )
    feedback_template_path: Annotated[StrPath | None, Flag("--feedback-template", path="file")] = (
        Field(None, description="Template for a shot's verdict, placeholders named after its keys.")
    )
    shots_pool_path: Annotated[StrPath | None, Flag("--shots-pool", path="file")] = Field(
        None, description="A shots pool JSON file (default: the packaged pool)."
    )
    num_shots: Annotated[int, Flag("--num-shots")] = Field(
        NUM_SHOTS, ge=0, description="Shots shown before each example."
    )
    shot_sampling_mode: Annotated[str, Flag("--shot-sampling", choices=SAMPLING_MODES)] = Field(
        "fixed",
        description="fixed: first n (one shared prefix); random: seeded; balanced: spread "
        "categories.",
    )
    completion: Annotated[bool | None, Flag("--completion/--chat")] = Field(
        None,
        description="Plain-text prompt, or user/assistant chat roles (default: the engine's "
        "mode: completion for local, sglang, vllm; chat for hosted APIs).",
    )
    #: Each text field's token budget (``max_tokens`` of a call splits its own evenly).
    field_tokens: int = Field(FIELD_TOKENS, ge=1)
    concurrency: Annotated[int | None, Flag("--concurrency")] = Field(
        None,
        ge=1,
        description="Examples in flight at once (default: the engine's choice; local: its n_seq).",
    )
    verbose: Annotated[bool, Flag("--verbose")] = Field(
        False, description="Print each prompt to stderr."
    )
    #: Seeds shot sampling (``Settings.from_flat`` gives the engine the same seed).
    seed: Annotated[int | None, Flag("--seed")] = SEED

    @field_validator("num_shots", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> int:
        return check_count("num_shots", value)

    @field_validator("shot_sampling_mode")
    @classmethod
    def _known_mode(cls, mode: str) -> str:
        return check_sampling_mode(mode)

    @model_validator(mode="after")
    def _one_judge(self) -> JudgingSettings:
        """``rm_type`` or ``judge``; the template and pool paths belong to the built-ins."""
        if self.judge is None:
            return self
        if self.rm_type is not None:
            raise ValueError("give rm_type or judge, not both")
        if self.shots_pool_path is not None:
            raise ValueError("shots_pool_path is for the built-in modes: a rubric names its shots")
        for name in ("template_path", "shot_template_path", "feedback_template_path"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} is for the built-in modes: a judge has its own templates")
        return self

    def with_judge(self, judge: Judge | StrPath) -> JudgingSettings:
        """These settings judging with ``judge``: a built-in mode's name, or your own."""
        chosen = {"rm_type": judge, "judge": None}
        if not (isinstance(judge, str) and judge in BUILTIN_NAMES):
            chosen = {"rm_type": None, "judge": judge}
        return type(self)(**{**self.values(), **chosen})

    def definition(self) -> Judge:
        """The judge these settings run: a built-in (with the user's templates and pool)
        or the user's own."""
        if self.judge is not None:
            return as_judge(self.judge)
        return builtin_judge(
            self.rm_type or "individual",
            template_path=self.template_path,
            shot_template_path=self.shot_template_path,
            feedback_template_path=self.feedback_template_path,
            shots_pool_path=self.shots_pool_path,
        )

    def shots(self, judge: Judge, num_shots: int, mode: str | None = None) -> list[Shot]:
        """Shots from ``judge``'s pool: ``fixed`` (first n) or seeded ``random`` /
        ``balanced``."""
        pool = list(judge.shots_pool)
        return sample_shots(pool, num_shots, mode or self.shot_sampling_mode, self.seed)

    def default_shots(self, judge: Judge) -> list[Shot]:
        """The shots every call uses unless it passes its own. A rubric's pool (a few
        shots, or none) gives all it has; a built-in pool asked for more is an error."""
        wanted = self.num_shots
        if judge.name not in BUILTIN_NAMES:
            wanted = min(wanted, len(judge.shots_pool))
        return self.shots(judge, wanted)


class CacheSettings(_Group):
    """The verdict cache: reuse verdicts (``use_cache``), judge again and replace them
    (``overwrite_cache``), and its folder (default ``$ICRM_CACHE_DIR`` or
    ``~/.cache/icrm-sgl``)."""

    use_cache: Annotated[bool, Flag("--use-cache")] = Field(
        False, description="Reuse verdicts from earlier identical calls."
    )
    overwrite_cache: Annotated[bool, Flag("--overwrite-cache")] = Field(
        False, description="Judge again and replace cached verdicts."
    )
    cache_dir: Annotated[StrPath | None, Flag("--cache-dir", path="folder")] = Field(
        None, description="Verdict cache folder (default: $ICRM_CACHE_DIR or ~/.cache/icrm-sgl)."
    )

    def open(self) -> VerdictCache | None:
        """The cache these settings ask for, opened now (a bad folder fails before a model
        loads); None when no cache is used."""
        if not (self.use_cache or self.overwrite_cache):
            return None
        from icrm_sgl.runners.cache import VerdictCache  # the runners import sglang

        return VerdictCache(self.cache_dir)


class EndpointSettings(_Group):
    """A served judge's ``/get_reward`` (``ICRMReward(endpoint=...)``): its URL (or the
    server's base URL), API key, queries per request, and the seconds one call may take,
    retries and slow answers included."""

    endpoint: str
    api_key: str | None = None
    batch_size: int = Field(32, ge=1)
    timeout: float = Field(600.0, gt=0, allow_inf_nan=False)

    @field_validator("endpoint")
    @classmethod
    def _reward_url(cls, url: str) -> str:
        """An http(s) URL of a host, ending in ``/get_reward`` (added to a base URL)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or "://" not in url:
            raise ValueError(f"endpoint must be an http:// or https:// URL, got {url!r}")
        problem = _url_problem(url, parts)
        if problem:
            shown = url.replace(parts.netloc, parts.netloc.rpartition("@")[2], 1)  # no password
            raise ValueError(f"endpoint {shown!r} has {problem}")
        url = parts.scheme + url[len(parts.scheme) :].rstrip("/")  # the scheme in lower case
        return url if url.endswith("/get_reward") else url + "/get_reward"


class Settings(NamedTuple):
    """The three groups, as ``ICRM.from_settings(*settings)`` takes them."""

    engine: EngineSettings = EngineSettings()
    judging: JudgingSettings = JudgingSettings()
    cache: CacheSettings = CacheSettings()

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> Settings:
        """``ICRM``'s flat keywords sorted into the groups: ``engine`` names the engine,
        ``seed`` seeds both the engine and shot sampling, a keyword no group has is one of
        the engine's own options."""
        rest = dict(flat)
        cache = CacheSettings(**_take(rest, CacheSettings.model_fields))
        judging = JudgingSettings(**_take(rest, JudgingSettings.model_fields, keep={"seed"}))
        name = {"name": rest.pop("engine")} if "engine" in rest else {}
        engine_keys = set(EngineSettings.model_fields) - {"name", "options"}
        engine = EngineSettings(**name, **_take(rest, engine_keys), options=rest)
        return cls(engine, judging, cache)

    def with_judge(self, judge: Judge | StrPath) -> Settings:
        """The same settings judging with ``judge`` (see ``JudgingSettings.with_judge``)."""
        return self._replace(judging=self.judging.with_judge(judge))


#: The settings that are not an engine's own options, by the group they belong to.
_NOT_ENGINE: dict[str, frozenset[str]] = {
    "judging": frozenset(JudgingSettings.model_fields),
    "cache": frozenset(CacheSettings.model_fields),
    "generation": frozenset(GenerationOptions.model_fields),
}


def check_engine_key(key: str, flags: Mapping[str, str] | None = None) -> None:
    """Refuse KEY among an engine's own options (``-E KEY``, a panel member's ``options``)
    when it is a judging, cache or generation setting, or has a flag of its own in
    ``flags`` (the command line's): passed on, it would mean nothing to the engine."""
    flag = (flags or {}).get(key)
    if flag is not None:
        raise InputError(f"-E {key}: not an engine option; use {flag}")
    owner = next((group for group, names in _NOT_ENGINE.items() if key in names), None)
    if owner is not None:
        raise InputError(
            f"-E {key}: a {owner} setting, not an engine option (-E takes the engine's own "
            "options, e.g. -E n_ctx=4096)"
        )


def _url_problem(url: str, parts: SplitResult) -> str | None:
    """What keeps an http(s) URL from naming a server's path, if anything."""
    bad_port = "a port that is not a number from 1 to 65535"
    if any(char.isspace() or not char.isprintable() for char in url):
        return "spaces or control characters"
    if not parts.hostname:
        return "no host"
    try:
        if parts.port == 0:
            return bad_port
    except ValueError:
        return bad_port
    if "@" in parts.netloc:
        return "a user or password (give the key as api_key)"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "a query or fragment (give the server's base URL or its /get_reward)"
    return None


def _take(rest: dict[str, Any], names: Iterable[str], keep: Iterable[str] = ()) -> dict[str, Any]:
    """The entries of ``rest`` that ``names`` lists, removed from it (except ``keep``)."""
    taken = {key: rest[key] for key in names if key in rest}
    for key in set(taken) - set(keep):
        del rest[key]
    return taken
