"""FHIRPath through fhirpathpy, with the SDC functions it lacks.

fhirpathpy has no `weight()` / `ordinal()` (SDC). They are registered through its user invocation
table rather than by forking it. A user function only sees plain data, not the Questionnaire item
it came from, so before evaluating we give every answer Coding (in a private copy of the response)
the `itemWeight` extension of the answer option it was chosen from — which is also where SDC's
`weight()` looks first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
WEIGHT_URLS = (ITEM_WEIGHT, ORDINAL_VALUE)

R4_MODEL = models["r4"]


class FhirPathError(Exception):
    """An expression that does not parse or cannot be evaluated."""


def option_weight(option: dict[str, Any]) -> float | None:
    """The weight of an answerOption: `itemWeight`, falling back to `ordinalValue` (SDC order)."""
    for url in WEIGHT_URLS:
        for ext in option.get("extension") or []:
            if ext.get("url") == url and "valueDecimal" in ext:
                return ext["valueDecimal"]
            if ext.get("url") == url and "valueInteger" in ext:
                return ext["valueInteger"]
    return None


def _coding_weight(coding: Any) -> list[Any]:
    if not isinstance(coding, dict):
        return []
    for url in WEIGHT_URLS:  # itemWeight first, whatever the order of the extensions
        for ext in coding.get("extension") or []:
            if ext.get("url") == url:
                value = ext.get("valueDecimal", ext.get("valueInteger"))
                if value is not None:
                    return [value]
    return []


def _weight(inputs: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in inputs:
        out.extend(_coding_weight(value))
    return out


USER_FUNCTIONS: dict[str, dict[str, Any]] = {
    "weight": {"fn": _weight, "arity": {0: []}},
    "ordinal": {"fn": _weight, "arity": {0: []}},
}
OPTIONS = {"userInvocationTable": USER_FUNCTIONS}


# The lru_caches in this module stay process-wide on purpose: each is keyed by expression text
# alone (parsing, syntax checks, rewriting), which depends on no catalog, form or app.
@lru_cache(maxsize=2048)
def compile_expression(expression: str, base: str | None = None) -> Callable[..., list[Any]]:
    """Parse once and cache; raises FhirPathError naming the expression on a syntax error."""
    reason = check_syntax(expression)
    if reason:
        raise FhirPathError(reason)
    try:
        if base:
            parsed = fhirpathpy.parse(expression)
            return lambda resource, context=None: fhirpathpy.apply_parsed_path(
                fhirpathpy.ResourceNode.create_node(resource, base),
                parsed,
                context or {},
                R4_MODEL,
                OPTIONS,
            )
        return fhirpathpy.compile(expression, R4_MODEL, OPTIONS)
    except Exception as exc:  # fhirpathpy raises bare Exceptions from its ANTLR parser
        raise FhirPathError(f"FHIRPath does not parse: {expression!r}: {exc}") from exc


class _RaisingErrorListener(ErrorListener):
    def syntaxError(self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str, e: Any) -> None:
        raise FhirPathError(f"column {column + 1}: {msg}")


@lru_cache(maxsize=4096)
def check_syntax(expression: str) -> str | None:
    """None if the expression is valid FHIRPath, else the reason.

    fhirpathpy's own `parse` installs a silent error listener and recovers from syntax errors, so
    a typo would only show up as a wrong score at run time. The lint parses with the same
    generated grammar, the whole input (`entireExpression`), and an error listener that raises.
    """
    lexer = FHIRPathLexer(InputStream(expression))
    parser = FHIRPathParser(CommonTokenStream(lexer))
    for recognizer in (lexer, parser):
        recognizer.removeErrorListeners()
        recognizer.addErrorListener(_RaisingErrorListener())
    try:
        parser.entireExpression()
    except FhirPathError as exc:
        return f"FHIRPath does not parse: {expression!r}: {exc}"
    except Exception as exc:  # the lexer raises its own errors on unknown characters
        return f"FHIRPath does not parse: {expression!r}: {exc}"
    return None


def _walk_items(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk_items(item.get("item") or [])
        for answer in item.get("answer") or []:
            yield from _walk_items(answer.get("item") or [])


def _copy_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of the item tree's containers (items, answers); leaf values stay shared, unmodified."""
    out = []
    for item in items:
        node = dict(item)
        if "item" in node:
            node["item"] = _copy_items(node["item"])
        if "answer" in node:
            node["answer"] = [
                {**a, "item": _copy_items(a["item"])} if "item" in a else dict(a) for a in node["answer"]
            ]
        out.append(node)
    return out


WeightTable = dict[str, dict[tuple[Any, Any], Any]]


def weight_table(options_by_link: dict[str, list[dict[str, Any]]]) -> WeightTable:
    """linkId -> {(system, code): weight} for the weighted Coding options (first option wins)."""
    table: WeightTable = {}
    for link_id, options in options_by_link.items():
        weights: dict[tuple[Any, Any], Any] = {}
        for option in options:
            coding = option.get("valueCoding") or {}
            key = (coding.get("system"), coding.get("code"))
            if coding and key not in weights:
                weights[key] = option_weight(option)
        weights = {k: w for k, w in weights.items() if w is not None}
        if weights:
            table[link_id] = weights
    return table


def with_weights(response: dict[str, Any], weights: WeightTable | dict[str, list[dict[str, Any]]],
                 *, fresh: bool = False) -> dict[str, Any]:
    """A copy of `response` whose answer Codings carry the weights of their answerOptions.

    `weights` is a `weight_table` (the form keeps one), or answerOptions by linkId. `fresh`: the
    caller just built the item tree (`answers.nest` makes new item and answer dicts) and gives it
    up, so it is annotated in place instead of copied first.
    """
    table = weights if all(isinstance(v, dict) for v in weights.values()) else weight_table(weights)  # type: ignore[arg-type]
    enriched = dict(response)
    if not table:
        return enriched
    enriched["item"] = (response.get("item") or []) if fresh else _copy_items(response.get("item") or [])
    for item in _walk_items(enriched["item"]):
        by_code = table.get(item.get("linkId", ""))
        if not by_code or not item.get("answer"):
            continue
        # New Coding dicts rather than in-place edits: one Coding object shared by several
        # answers must not take the weight of whichever item was annotated last.
        for answer in item["answer"]:
            coding = answer.get("valueCoding")
            if not coding:
                continue
            weight = by_code.get((coding.get("system"), coding.get("code")))
            if weight is not None:
                answer["valueCoding"] = {**coding, "extension": [{"url": ITEM_WEIGHT, "valueDecimal": weight}]}
    return enriched


# --- the linkId index ----------------------------------------------------------------------------
#
# Scoring rules (like the LHC-Forms ones they mirror) find answers with
# `%resource.repeat(item).where(linkId='x')`. fhirpathpy walks the whole response for each such
# lookup (about 2 ms on a 40-item response; a PSS-10 total has ten of them). The expression is
# rewritten once to read a variable instead, bound to the same item nodes from an index built once
# per response: the same FHIRPath, the same result (the tests compare both), a hundred times faster.

LOOKUP = re.compile(
    r"%([A-Za-z][A-Za-z0-9]*)\.repeat\(item\)\.where\(\s*linkId\s*"
    r"(?:=\s*'([^'\\]+)'|in\s*\(\s*('[^'\\]+'(?:\s*\|\s*'[^'\\]+')*)\s*\))\s*\)"
    # ... and what the lookup is for: the answers' weights, or their values where they are
    # compared with a boolean or number literal (the shapes of totals and criteria)
    r"(\.answer\.value\.weight\(\)|\.answer\.where\(\s*value\s*=\s*true\s*\)\.exists\(\)"
    r"|\.answer\.value(?=\s*(?:=|!=|>=|<=|>|<)\s*(?:true\b|false\b|-?\d)"
    r"|\.(?:where\(|code\b|system\b)))?"
)
INDEX_KEY = "__intake_link_index__"


@lru_cache(maxsize=4096)
def indexed(expression: str) -> tuple[str, tuple[tuple[str, str, tuple[str, ...], str], ...]]:
    """(`expression` with each lookup replaced by a variable,
    ((variable, response, linkIds, kind), ...)) where kind is "items", "weights" or "values".

    `%r.repeat(item).where(linkId = 'a')` and `... linkId in ('a' | 'b')` each become one
    variable holding the matching item nodes in document order, as the lookup would return
    them. (Not a FHIRPath union of single lookups: fhirpathpy's `|` drops the node types that
    `answer.value` needs.) Followed by `.answer.value.weight()`, the variable holds the weights;
    followed by `.answer.value` compared with a boolean or number, or read through `.where(`,
    `.code` or `.system`, the answer values; `.answer.where(value = true).exists()` becomes
    `.exists($this = true)` over those values (true when any answer is true, else false).
    """
    names: dict[tuple[str, tuple[str, ...], str], str] = {}

    def replace(match: re.Match[str]) -> str:
        source, single, several, tail = match.group(1), match.group(2), match.group(3), match.group(4)
        links = (single,) if single is not None else tuple(p.strip().strip("'") for p in several.split("|"))
        kind = "items" if not tail else ("weights" if tail.endswith("weight()") else "values")
        names.setdefault((source, links, kind), f"intake{kind.title()}{len(names)}")
        variable = "%" + names[(source, links, kind)]
        if tail and tail.endswith(".exists()"):
            return variable + ".exists($this = true)"  # = answer.where(value = true).exists()
        return variable

    rewritten = LOOKUP.sub(replace, expression)
    return rewritten, tuple((name, source, links, kind) for (source, links, kind), name in names.items())


class LinkIndex(dict[str, list[Any]]):
    """linkId -> the item nodes `repeat(item)` would reach (items under items, not under answers),
    with each linkId's document position for lookups of several linkIds."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__()
        self.position: dict[str, int] = {}

        def walk(items: list[dict[str, Any]]) -> None:
            for item in items:
                link_id = item.get("linkId", "")
                self.position.setdefault(link_id, len(self.position))
                self.setdefault(link_id, []).append(ResourceNode.create_node(item, "QuestionnaireResponse.item"))
                walk(item.get("item") or [])

        walk(response.get("item") or [])

    def nodes(self, links: tuple[str, ...]) -> list[Any]:
        if len(links) == 1:
            return self.get(links[0], [])
        ordered = sorted((link for link in set(links) if link in self), key=self.position.__getitem__)
        return [node for link in ordered for node in self[link]]

    def weights(self, links: tuple[str, ...]) -> list[Any]:
        """What `.answer.value.weight()` gives for these items (weights set by `with_weights`)."""
        out: list[Any] = []
        for node in self.nodes(links):
            for answer in node.data.get("answer") or []:
                out.extend(_coding_weight(answer.get("valueCoding")))
        return out

    def values(self, links: tuple[str, ...]) -> list[Any] | None:
        """What `.answer.value` gives, when every value is a boolean, a number or a Coding (read
        only through its `code`/`system`), else None (then the expression is evaluated as written)."""
        out: list[Any] = []
        for node in self.nodes(links):
            for answer in node.data.get("answer") or []:
                for key in ("valueBoolean", "valueInteger", "valueDecimal", "valueCoding"):
                    if key in answer:
                        out.append(answer[key])
                        break
                else:
                    return None
        return out


def link_index(response: dict[str, Any]) -> LinkIndex:
    return LinkIndex(response)


def with_index(
    variables: dict[str, Any],
    response: dict[str, Any] | None = None,
    *,
    built: dict[int, tuple[dict[str, Any], LinkIndex]] | None = None,
) -> dict[str, Any]:
    """`variables` plus linkId indexes for `%resource` and for every other variable that holds a
    QuestionnaireResponse (the other domains of an intake). `built` (id -> (response, index))
    lets a caller that scores several rules over the same responses build each index once."""
    built = {} if built is None else built

    def index_of(value: dict[str, Any]) -> LinkIndex:
        hit = built.get(id(value))
        if hit is None or hit[0] is not value:
            hit = built[id(value)] = (value, link_index(value))
        return hit[1]

    indexes: dict[str, LinkIndex] = {}
    for name, value in variables.items():
        if isinstance(value, dict) and value.get("resourceType") == "QuestionnaireResponse":
            indexes[name] = index_of(value)
    if response is not None:
        indexes["resource"] = index_of(response)
    return {**variables, INDEX_KEY: indexes}


def _bind_index(expression: str, variables: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """With a linkId index in `variables`, the rewritten expression and the variables it reads."""
    indexes = variables.get(INDEX_KEY)
    if indexes is None:
        return expression, variables
    rewritten, lookups = indexed(expression)
    if not lookups:
        return expression, variables
    binding: dict[str, Any] = {}
    for name, source, links, kind in lookups:
        if source in indexes:
            index = indexes[source]
            value = index.nodes(links) if kind == "items" else index.weights(links) if kind == "weights" else index.values(links)
            if value is None:
                return expression, variables  # values that are not plain: evaluate as written
            binding[name] = value
        elif not variables.get(source):  # an absent domain: its lookups find nothing
            binding[name] = []
        else:
            return expression, variables  # a variable we cannot index: evaluate as written
    return rewritten, {**variables, **binding}


def evaluate(
    expression: str,
    resource: Any,
    *,
    variables: dict[str, Any] | None = None,
    base: str | None = None,
) -> list[Any]:
    """Evaluate `expression` on `resource` with `%name` variables; errors become FhirPathError.

    With a linkId index in `variables` (`with_index`), lookups of `%resource` items by linkId
    read the index instead of walking the response.
    """
    expression, variables = _bind_index(expression, variables or {})
    fn = compile_expression(expression, base)
    try:
        return fn(resource, variables)
    except FhirPathError:
        raise
    except Exception as exc:
        raise FhirPathError(f"FHIRPath failed: {expression!r}: {exc}") from exc


# --- rules that must be true -----------------------------------------------------------------


@lru_cache(maxsize=4096)
def _conjuncts(expression: str) -> tuple[Any, ...]:
    """The top-level `and` operands of `expression`, as parsed sub-trees, left to right."""
    root = fhirpathpy.parse(expression)["children"][0]
    out: list[Any] = []

    def split(node: Any) -> None:
        if node.get("type") == "AndExpression":
            for child in node["children"]:
                split(child)
        else:
            out.append(node)

    split(root)
    return tuple(out)


def is_true(expression: str, resource: Any, *, variables: dict[str, Any] | None = None) -> bool:
    """Whether `expression` evaluates to exactly `true`, stopping at the first operand of a
    top-level `and` chain that is not `true`.

    fhirpathpy evaluates both sides of `and`; a rule only fires on `true`, and `A and B` is
    `true` only when both are, so the remaining operands cannot change the outcome (they may
    only have raised an error, which a rule that is false anyway need not report).
    """
    variables = variables or {}
    if check_syntax(expression):
        raise FhirPathError(f"FHIRPath does not parse: {expression!r}")
    expression, variables = _bind_index(expression, variables)
    try:
        for operand in _conjuncts(expression):
            result = fhirpathpy.apply_parsed_path(resource, {"children": [operand]}, variables, R4_MODEL, OPTIONS)
            if result != [True]:
                return False
    except Exception as exc:
        raise FhirPathError(f"FHIRPath failed: {expression!r}: {exc}") from exc
    return True
