"""Request bodies: pydantic models for both endpoints, and problems that name the example
and the field, checked before anything is queued."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from icrm_sgl.errors import InputError
from icrm_sgl.integrations.convert import to_conversation
from icrm_sgl.judges import Judge
from icrm_sgl.judges.inputs import ConversationInputs, PairInputs
from icrm_sgl.judges.supply import GET_REWARD, check_supplied, checked, one_reply, two_replies
from icrm_sgl.judging.examples import check_id
from icrm_sgl.judging.pair_judging import ONE_REPLY
from icrm_sgl.plumbing.conversation import check_text
from icrm_sgl.plumbing.files import deep_parse

#: Why ``--both-orders`` refuses an example of one reply (``score --both-orders``' words).


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
    """OpenRLHF's remote reward model request. Another field holding a list with a value
    per query is a per-query field, for judges whose template uses it; the rest (e.g.
    OpenRLHF's metadata) is ignored."""

    model_config = ConfigDict(extra="allow")

    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None

    def per_query(self) -> list[dict[str, Any]]:
        """Each query's own fields (from the lists with a value per query)."""
        n = len(self.query)
        lists = {
            k: v for k, v in (self.model_extra or {}).items() if isinstance(v, list) and len(v) == n
        }
        return [{k: v[i] for k, v in lists.items()} for i in range(n)]


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
        with deep_parse():
            return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestRejected([Problem(None, None, f"body is not valid JSON: {exc}")]) from None
    except RecursionError:
        raise RequestRejected(
            [Problem(None, None, "body nests arrays or objects too deeply")]
        ) from None


def parse_examples(data: Any, judges: tuple[Judge, ...], pairs_only: bool = False) -> Parsed:
    """One example object or a list of them, each matched to the served judge its keys
    are meant for; every problem of every example is reported. ``pairs_only``
    (``--both-orders``): an example for a judge of one reply is a problem too."""
    single = isinstance(data, dict)
    items = [data] if single else data
    if not isinstance(items, list) or not items:
        raise RequestRejected(
            [Problem(None, None, "expected an example object or a non-empty list of them")]
        )
    problems: list[Problem] = []
    parsed: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        found = _check_example(index, item, judges, pairs_only)
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
    index: int, item: Any, judges: tuple[Judge, ...], pairs_only: bool
) -> tuple[str, dict[str, Any]] | list[Problem]:
    where = f"example {index}"
    if not isinstance(item, dict):
        return [Problem(index, None, f"{where}: expected an object, got {type(item).__name__}")]
    judge = match_judge(item, judges)
    if judge is None:
        names = " and ".join(j.name for j in judges)
        return [Problem(index, None, f"{where}: this server judges {names} only")]
    if pairs_only and judge.pair is None:
        return [Problem(index, None, f"{where}: {ONE_REPLY}")]
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


def reward_examples(request: RewardRequest, judge: Judge) -> list[dict[str, Any]]:
    """OpenRLHF's (query, prompt[, label]) triples as examples: the response is the query
    after its prompt; a judge of pairs compares it (as A) with the label (as B), any other
    judge gets a text label as its ``reference``. Per-query fields travel with each
    example. Every example is checked here: a query the judge cannot read is a 422 naming
    it, never a failure once queued (a 500, which OpenRLHF retries)."""
    try:
        check_supplied(judge, GET_REWARD)
    except InputError as exc:
        raise RequestRejected([Problem(None, None, str(exc))]) from None
    problems = _shape_problems(request, judge) or _text_problems(request)
    if problems:
        raise RequestRejected(problems)
    labels = request.labels or [None] * len(request.query)
    rows = zip(request.query, request.prompts or [], labels, request.per_query(), strict=True)
    examples = []
    for i, (query, prompt, label, fields) in enumerate(rows):
        found = _reward_example(judge, i, query, prompt, label, fields)
        if isinstance(found, Problem):
            problems.append(found)
        else:
            examples.append(found)
    if problems:
        raise RequestRejected(problems)
    return examples


def _shape_problems(request: RewardRequest, judge: Judge) -> list[Problem]:
    """Lists whose lengths differ from the queries' (of the judge's inputs too), and
    lists the request lacks."""
    n = len(request.query)
    named = [("prompts", request.prompts), ("labels", request.labels)]
    named += [(k, v) for k, v in (request.model_extra or {}).items() if k in judge.inputs.keys]
    problems = [
        Problem(None, name, f"{name} has {len(values)} items but query has {n}")
        for name, values in named
        if isinstance(values, list) and len(values) != n
    ]
    if request.prompts is None:
        problems.append(Problem(None, "prompts", "prompts is required to split each query"))
    if judge.pair is not None and request.labels is None:
        problems.append(Problem(None, "labels", "a pairwise server needs labels (references)"))
    return problems


def _reward_example(
    judge: Judge, i: int, query: str, prompt: str, label: Any, fields: dict[str, Any]
) -> dict[str, Any] | Problem:
    """Query ``i`` as the judge's example, or the problem that keeps it from one."""
    where = f"query {i}"
    if not query.startswith(prompt):
        return Problem(i, "query", f"query {i} does not start with prompts[{i}]")
    response = query[len(prompt) :]
    wrong_label = _label_problem(judge, i, label)
    if wrong_label is not None:
        return wrong_label
    try:
        if judge.pair is not None:
            user = [{"role": "user", "content": prompt}]
            example = two_replies(judge, user, (response, label), fields, where)
        else:
            reference = {"reference": label} if isinstance(label, str) else {}
            example = one_reply(to_conversation(prompt, response), {**fields, **reference})
        checked(judge, GET_REWARD, example, where)
    except InputError as exc:
        field = _field_named(str(exc), where, judge, fields)
        from_labels = field == "reference" and "reference" not in fields
        return Problem(i, "labels" if from_labels else field, str(exc))
    return {**example, "id": str(i)}


def _label_problem(judge: Judge, i: int, label: Any) -> Problem | None:
    """A label the judge reads (the reply its pair compares with, or its ``reference``)
    that is not text; a missing reference is reported as the input it leaves missing."""
    if isinstance(label, str) or (label is None and judge.pair is None):
        return None
    if judge.pair is None and "reference" not in judge.inputs.keys:
        return None
    role = "the reply to compare with" if judge.pair else "the judge's {$reference}"
    got = "null" if label is None else type(label).__name__
    return Problem(i, "labels", f"labels[{i}] must be text ({role}), got {got}")


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
