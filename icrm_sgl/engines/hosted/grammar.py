"""The verdict as a GBNF grammar for llama.cpp servers (llama-server and llama-cpp-python's).

It writes what the programs write: the keys fixed, in order, with the programs' spacing;
each text field a JSON string body of bounded length whose characters exclude raw control
characters (llama-cpp-python's own schema converter admits them, and a model that writes a
newline there breaks the JSON); each score, choice or boolean one of its allowed values.
"""

from __future__ import annotations

import json

from icrm_sgl.engines.hosted.fields import FieldRequest

#: One JSON string character, as ``programs.judge.JSON_CHAR`` has it.
CHAR_RULE = r'char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'


def literal(text: str) -> str:
    """``text`` as a GBNF string literal (JSON's escapes are GBNF's)."""
    return json.dumps(text, ensure_ascii=False)


def verdict_grammar(request: FieldRequest) -> str:
    """The grammar of a reply holding the fields ``request`` asks for, each text field at
    most ``request.max_chars`` characters long."""
    limits = request.max_chars
    rules, parts = [], []
    for i, spec in enumerate(request.specs):
        name = f"v{i}"
        parts += [literal(("{" if i == 0 else ", ") + json.dumps(spec.key) + ": "), name]
        if spec.kind == "text":
            rules.append(f'{name} ::= "\\"" char{{0,{limits[spec.key]}}} "\\""')
        else:
            quote = '"' if spec.quoted else ""
            values = " | ".join(literal(quote + v + quote) for v in spec.values)
            rules.append(f"{name} ::= {values}")
    root = "root ::= " + " ".join([*parts, literal("}")])
    return "\n".join([root, *rules, CHAR_RULE]) + "\n"
