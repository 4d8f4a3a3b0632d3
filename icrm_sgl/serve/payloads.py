"""Request bodies: pydantic models for both endpoints, and problems that name the example
and the field, checked before anything is queued."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from icrm_sgl.conversation import check_text, validate_conversation, validate_pair
from icrm_sgl.errors import InputError
from icrm_sgl.integrations.convert import to_conversation


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class IndividualExample(BaseModel):
    """The ``score`` format for one response: ``{"id"?, "conversation"}``."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None
    conversation: list[Turn]


class PairwiseExample(BaseModel):
    """The ``score`` format for two responses: ``{"id"?, "conversation_A", "conversation_B"}``."""

    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None
    conversation_A: list[Turn]
    conversation_B: list[Turn]


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward model request; its other fields (e.g. metadata) are ignored."""

    model_config = ConfigDict(extra="ignore")

    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None


_MODELS: dict[str, type[BaseModel]] = {
    "individual": IndividualExample,
    "pairwise": PairwiseExample,
}


@dataclass(frozen=True)
class Problem:
    """One reason a request is rejected: which example, which field, what is wrong."""

    example: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"example": self.example, "field": self.field, "message": self.message}


class RequestRejected(Exception):
    """The request body cannot be judged; ``problems`` say why (HTTP 422)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Parsed:
    """Validated examples in request order, each with its judging mode and client id."""

    single: bool
    rm_types: list[str]
    examples: list[dict[str, Any]]
    ids: list[str]


def load_json(body: bytes) -> Any:
    """The body as JSON, or a rejection saying where it stops parsing."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestRejected([Problem(None, None, f"body is not valid JSON: {exc}")]) from None
    except RecursionError:
        raise RequestRejected(
            [Problem(None, None, "body nests arrays or objects too deeply")]
        ) from None


def parse_examples(data: Any, modes: tuple[str, ...]) -> Parsed:
    """One example object or a list of them; every problem of every example is reported."""
    single = isinstance(data, dict)
    items = [data] if single else data
    if not isinstance(items, list) or not items:
        raise RequestRejected(
            [Problem(None, None, "expected an example object or a non-empty list of them")]
        )
    problems: list[Problem] = []
    parsed: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        found = _check_example(index, item, modes)
        if isinstance(found, list):
            problems.extend(found)
        else:
            parsed.append(found)
    if problems:
        raise RequestRejected(problems)
    ids = [
        str(ex["id"]) if ex.get("id") is not None else str(i) for i, (_, ex) in enumerate(parsed)
    ]
    return Parsed(single, [m for m, _ in parsed], [ex for _, ex in parsed], ids)


def _check_example(
    index: int, item: Any, modes: tuple[str, ...]
) -> tuple[str, dict[str, Any]] | list[Problem]:
    where = f"example {index}"
    if not isinstance(item, dict):
        return [Problem(index, None, f"{where}: expected an object, got {type(item).__name__}")]
    rm_type = "pairwise" if {"conversation_A", "conversation_B"} & set(item) else "individual"
    if rm_type not in modes:
        return [Problem(index, None, f"{where}: this server judges {' and '.join(modes)} only")]
    try:
        example = _MODELS[rm_type].model_validate(item).model_dump()
    except ValidationError as exc:
        return [_field_problem(index, where, err) for err in exc.errors()]
    try:
        if rm_type == "individual":
            validate_conversation(example["conversation"], f"{where}: conversation")
        else:
            validate_pair(example["conversation_A"], example["conversation_B"], where)
    except InputError as exc:
        return [Problem(index, _field_named(str(exc), rm_type), str(exc))]
    return rm_type, example


def _field_problem(index: int, where: str, error: dict[str, Any]) -> Problem:
    field = ".".join(str(part) for part in error["loc"])
    return Problem(index, field, f"{where}: {field}: {error['msg']}")


def _field_named(message: str, rm_type: str) -> str:
    """The conversation field an ``InputError`` message is about."""
    if rm_type == "individual":
        return "conversation"
    return "conversation_A" if "conversation_A:" in message else "conversation_B"


def reward_examples(request: RewardRequest, rm_type: str) -> list[dict[str, Any]]:
    """OpenRLHF's (query, prompt[, label]) triples as examples: the response is the query
    after its prompt; pairwise servers compare it (as A) with the label (as B)."""
    n = len(request.query)
    problems = [
        Problem(None, name, f"{name} has {len(values)} items but query has {n}")
        for name, values in (("prompts", request.prompts), ("labels", request.labels))
        if values is not None and len(values) != n
    ]
    if request.prompts is None:
        problems.append(Problem(None, "prompts", "prompts is required to split each query"))
    if rm_type == "pairwise" and request.labels is None:
        problems.append(Problem(None, "labels", "a pairwise server needs labels (references)"))
    if problems:
        raise RequestRejected(problems)
    problems = _text_problems(request)
    if problems:
        raise RequestRejected(problems)
    examples = []
    for i, (query, prompt) in enumerate(zip(request.query, request.prompts or [], strict=True)):
        if not query.startswith(prompt):
            problems.append(Problem(i, "query", f"query {i} does not start with prompts[{i}]"))
            continue
        response = query[len(prompt) :]
        if rm_type == "individual":
            examples.append({"id": str(i), "conversation": to_conversation(prompt, response)})
            continue
        label = (request.labels or [])[i]
        if not isinstance(label, str):
            problems.append(Problem(i, "labels", f"labels[{i}] must be a reference response"))
            continue
        examples.append(
            {
                "id": str(i),
                "conversation_A": to_conversation(prompt, response),
                "conversation_B": to_conversation(prompt, label),
            }
        )
    if problems:
        raise RequestRejected(problems)
    return examples


def _text_problems(request: RewardRequest) -> list[Problem]:
    """Text that is not valid Unicode (a lone surrogate), refused before anything is queued."""
    problems = []
    for name in ("query", "prompts", "labels"):
        for i, value in enumerate(getattr(request, name) or []):
            if not isinstance(value, str):
                continue
            try:
                check_text(value, f"{name}[{i}]")
            except InputError as exc:
                problems.append(Problem(i, name, str(exc)))
    return problems
