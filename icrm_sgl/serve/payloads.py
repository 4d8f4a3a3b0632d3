"""Request bodies: pydantic models for both endpoints, and problems that name the example
and the field, checked before anything is queued."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from icrm_sgl.conversation import check_text
from icrm_sgl.errors import InputError
from icrm_sgl.inputs import check_id
from icrm_sgl.integrations.convert import to_conversation
from icrm_sgl.judges import Judge, as_judge
from icrm_sgl.judges.inputs import ConversationInputs, PairInputs


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


#: Request models of the built-in judges' input forms, for problems that name the field.
_MODELS: dict[type, type[BaseModel]] = {
    ConversationInputs: IndividualExample,
    PairInputs: PairwiseExample,
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


def parse_examples(data: Any, modes: tuple[Judge | str, ...]) -> Parsed:
    """One example object or a list of them, each matched to the served judge its keys
    are meant for; every problem of every example is reported."""
    judges = tuple(as_judge(m) for m in modes)
    single = isinstance(data, dict)
    items = [data] if single else data
    if not isinstance(items, list) or not items:
        raise RequestRejected(
            [Problem(None, None, "expected an example object or a non-empty list of them")]
        )
    problems: list[Problem] = []
    parsed: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        found = _check_example(index, item, judges)
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
    index: int, item: Any, judges: tuple[Judge, ...]
) -> tuple[str, dict[str, Any]] | list[Problem]:
    where = f"example {index}"
    if not isinstance(item, dict):
        return [Problem(index, None, f"{where}: expected an object, got {type(item).__name__}")]
    judge = match_judge(item, judges)
    if judge is None:
        names = " and ".join(j.name for j in judges)
        return [Problem(index, None, f"{where}: this server judges {names} only")]
    request_model = _MODELS.get(type(judge.inputs))
    example = dict(item)
    try:
        check_id(item.get("id"), where)
    except InputError as exc:
        return [Problem(index, "id", str(exc))]
    if request_model is not None:
        try:
            example = request_model.model_validate(item).model_dump()
        except ValidationError as exc:
            return [_field_problem(index, where, err) for err in exc.errors()]
    try:
        judge.example_fields(example, where)
    except InputError as exc:
        return [Problem(index, _field_named(str(exc), where, judge, example), str(exc))]
    return judge.name, example


def match_judge(item: dict[str, Any], judges: tuple[Judge, ...]) -> Judge | None:
    """The served judge an example is for: the one whose input keys it carries (pair
    keys first, as a pair also carries what one response would), else the only one."""
    keys = set(item)
    ranked = sorted(judges, key=lambda j: j.pair is None)
    for judge in ranked:
        if judge.inputs.marks & keys:
            return judge
    return None


def _field_problem(index: int, where: str, error: ErrorDetails) -> Problem:
    field = ".".join(str(part) for part in error["loc"])
    return Problem(index, field, f"{where}: {field}: {error['msg']}")


def _field_named(message: str, where: str, judge: Judge, example: dict[str, Any]) -> str | None:
    """The example field an ``InputError`` message is about: the one it names right after
    the example (``example 0: reference ...``, ``example 0: missing 'reference'``)."""
    rest = message.removeprefix(f"{where}: ")
    for key in (*example, *judge.inputs.keys):
        if rest.startswith((f"{key}:", f"{key} ", f"missing {key!r}")):
            return key
    marks = sorted(judge.inputs.marks & set(example))
    return marks[-1] if marks else None


def reward_examples(request: RewardRequest, judge: Judge | str) -> list[dict[str, Any]]:
    """OpenRLHF's (query, prompt[, label]) triples as examples: the response is the query
    after its prompt; a judge of pairs compares it (as A) with the label (as B), any other
    judge gets a text label as the example's ``reference``."""
    judge = as_judge(judge)
    n = len(request.query)
    problems = [
        Problem(None, name, f"{name} has {len(values)} items but query has {n}")
        for name, values in (("prompts", request.prompts), ("labels", request.labels))
        if values is not None and len(values) != n
    ]
    if request.prompts is None:
        problems.append(Problem(None, "prompts", "prompts is required to split each query"))
    if judge.pair is not None and request.labels is None:
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
        label = (request.labels or [None] * n)[i]
        if judge.pair is None:
            example = {"id": str(i), "conversation": to_conversation(prompt, response)}
            examples.append(example | ({"reference": label} if isinstance(label, str) else {}))
            continue
        if not isinstance(label, str):
            problems.append(Problem(i, "labels", f"labels[{i}] must be a reference response"))
            continue
        first, second = judge.pair.sides
        examples.append(
            {
                "id": str(i),
                first: to_conversation(prompt, response),
                second: to_conversation(prompt, label),
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
