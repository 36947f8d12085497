"""Lint a Questionnaire before the engine trusts it.

A broken form must stop start-up with a message naming the file, the linkId and the problem, not
surface as a wrong page or a wrong score in front of a patient. The same rules run from
`flask intake lint-forms` on any file, including Questionnaires exported from the NLM LHC Form
Builder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from intake.core import extensions as ext
from intake.core import item_types
from intake.core.enablement import COMPARISONS
from intake.core.fhir_models import Questionnaire, model_errors
from intake.core.fhirpath import check_syntax, option_weight
from intake.core.items import is_exclusive, media_problem
from intake.core.score_scale import DIRECTIONS
from intake.core.translations import translation

SUPPORTED_TYPES = item_types.SUPPORTED
ORDERED_OPERATORS = {">", "<", ">=", "<="}
OPERATORS = ORDERED_OPERATORS | {"exists", "=", "!="}


@dataclass(frozen=True)
class LintIssue:
    severity: str  # "error" | "warning"
    link_id: str | None
    message: str

    def format(self, source: str) -> str:
        where = f" linkId '{self.link_id}'" if self.link_id else ""
        return f"{source}:{where} {self.severity}: {self.message}"


def lint(resource: Any) -> list[LintIssue]:
    """Every problem found in `resource`, errors first in document order; empty when clean."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Questionnaire":
        return [LintIssue("error", None, "not a FHIR Questionnaire (resourceType must be 'Questionnaire')")]
    issues: list[LintIssue] = []
    issues += _model_issues(resource)
    structural = bool(issues)
    if not resource.get("url"):
        issues.append(LintIssue("error", None, "has no url: a QuestionnaireResponse must be able to pin it"))
    if not resource.get("version"):
        issues.append(LintIssue("warning", None, "has no version: responses will pin the url alone"))
    if not resource.get("item"):
        issues.append(LintIssue("error", None, "has no items"))
    if structural:  # not structurally a Questionnaire: the item rules below could not trust its shape
        return sorted(issues, key=lambda i: i.severity != "error")
    issues += _expression_issues(resource, None)
    items = list(_walk(resource.get("item") or []))
    issues += _item_issues(items)
    issues += _constraint_issues(resource, items)
    issues += _rule_issues(resource, items)
    return sorted(issues, key=lambda i: i.severity != "error")


def _walk(
    items: list[dict[str, Any]], parent: dict[str, Any] | None = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    for item in items:
        if not isinstance(item, dict):
            continue
        yield item, parent
        yield from _walk(item.get("item") or [], item)


def _model_issues(resource: dict[str, Any]) -> list[LintIssue]:
    """fhir.resources (R4) structural validation, with item paths turned into linkIds."""
    out = []
    for path, message in model_errors(Questionnaire, resource):
        link_id, element = _link_for_path(resource, path)
        out.append(LintIssue("error", link_id, f"{element}: {message}"))
    return out


def _link_for_path(resource: dict[str, Any], path: str) -> tuple[str | None, str]:
    """`item.2.item.0.answerOption.1.valueString` -> ('linkId of that item', 'answerOption.1.valueString')."""
    parts = path.split(".")
    node: Any = resource
    link_id = None
    i = 0
    while i + 1 < len(parts) and parts[i] == "item" and parts[i + 1].isdigit():
        try:
            node = node["item"][int(parts[i + 1])]
        except (KeyError, IndexError, TypeError):
            break
        link_id = node.get("linkId") if isinstance(node, dict) else None
        i += 2
    return link_id, ".".join(parts[i:]) or path


def _expression_issues(element: dict[str, Any], link_id: str | None) -> list[LintIssue]:
    out = []
    for url in ext.EXPRESSION_EXTENSIONS:
        for extension in ext.find(element, url):
            val = extension.get("valueExpression")
            if not isinstance(val, dict):
                out.append(LintIssue("error", link_id, f"{url.rsplit('/', 1)[-1]} needs a valueExpression"))
                continue
            language = val.get("language")
            if language != "text/fhirpath":
                out.append(
                    LintIssue(
                        "error",
                        link_id,
                        f"{url.rsplit('/', 1)[-1]}: expression language {language!r} is not supported "
                        "(only text/fhirpath)",
                    )
                )
                continue
            reason = check_syntax(val.get("expression") or "")
            if reason:
                out.append(LintIssue("error", link_id, f"{url.rsplit('/', 1)[-1]}: {reason}"))
    return out


def _item_issues(items: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> list[LintIssue]:
    out: list[LintIssue] = []
    position: dict[str, int] = {}
    by_link: dict[str, dict[str, Any]] = {}
    for index, (item, _parent) in enumerate(items):
        link_id = item.get("linkId")
        if not link_id:
            out.append(LintIssue("error", None, f"item #{index + 1} has no linkId"))
            continue
        if link_id in position:
            out.append(LintIssue("error", link_id, "linkId is used more than once"))
            continue
        position[link_id] = index
        by_link[link_id] = item

    for index, (item, parent) in enumerate(items):
        link_id = item.get("linkId")
        if not link_id:
            continue
        out += _one_item(item, parent, index, position, by_link)
    return out


def _one_item(
    item: dict[str, Any],
    parent: dict[str, Any] | None,
    index: int,
    position: dict[str, int],
    by_link: dict[str, dict[str, Any]],
) -> list[LintIssue]:
    link_id = item["linkId"]
    kind = item.get("type")
    out: list[LintIssue] = []

    def error(message: str) -> None:
        out.append(LintIssue("error", link_id, message))

    spec = item_types.item_type(kind)
    if spec is None:
        error(f"item type {kind!r} is not supported by the engine (supported: {', '.join(sorted(SUPPORTED_TYPES))})")
        return out
    if spec.role == "group" and item.get("repeats"):
        error("a repeating group is not supported by the engine (ask the repeated questions with `repeats` instead)")
    if not spec.is_question and (item.get("answerOption") or item.get("answerValueSet")):
        error(f"a {kind} item must not have answerOption or answerValueSet")
    if spec.role == "display" and item.get("item"):
        error("a display item must not have child items")
    if spec.role == "display" and item.get("required"):
        error("a display item cannot be required")
    if spec.needs_options and not item.get("answerOption"):
        if item.get("answerValueSet"):
            error("answerValueSet is not supported: list the choices as answerOption")
        else:
            error(f"a {kind} item needs answerOption")
    if item.get("answerValueSet") and spec.is_question and not spec.needs_options:
        error("answerValueSet is not supported: list the choices as answerOption")

    allowed = spec.option_keys
    for n, option in enumerate(item.get("answerOption") or []):
        keys = [k for k in option if k.startswith("value")]
        if allowed is None and keys:
            error(f"answerOption is not allowed on a {kind} item")
            break
        if allowed is not None and (len(keys) != 1 or keys[0] not in allowed):
            error(f"answerOption #{n + 1} has {keys or 'no value'}; a {kind} item takes one of {sorted(allowed)}")
        coding = option.get("valueCoding")
        if coding is not None and not coding.get("code"):
            error(f"answerOption #{n + 1} valueCoding has no code")

    exclusive = [n + 1 for n, o in enumerate(item.get("answerOption") or []) if is_exclusive(o)]
    if exclusive and not (spec.needs_options and item.get("repeats")):
        error(f"answerOption {exclusive} are optionExclusive, which only means something on a repeating choice")
    for extension in ext.find(item, ext.ITEM_MEDIA):
        attachment = extension.get("valueAttachment")
        problem = media_problem(attachment)
        if problem:
            error(problem)
        elif isinstance(attachment, dict):  # a translated url (a picture with words of its own) too
            for lang in _translation_languages(attachment.get("_url")):
                problem = media_problem({**attachment, "url": translation(attachment, "url", lang)})
                if problem:
                    error(f"{problem} (the {lang!r} translation)")

    for n, initial in enumerate(item.get("initial") or []):
        keys = [k for k in initial if k.startswith("value")]
        if not (keys and keys[0] in spec.answer_keys):  # its own value[x], or one an option could have
            error(f"initial #{n + 1} has {keys or 'no value'}, which does not fit a {kind} item")

    for url, name in ((ext.MIN_VALUE, "minValue"), (ext.MAX_VALUE, "maxValue")):
        for extension in ext.find(item, url):
            if not any(k.startswith(("value", "_value")) for k in extension):
                # Ignored by the engine. (Not an error: `localize` drops `_value[x]` shadows, so a
                # localized copy of a limit given by an expression has no value left.)
                out.append(
                    LintIssue(
                        "warning", link_id, f"{name} has neither a value nor a cqf-expression giving one: ignored"
                    )
                )
                continue
            out += [LintIssue("error", link_id, f"{name} {m}") for m in _limit_problems(extension, spec)]
    if spec.role != "group" and ext.find(item, ext.CONSTRAINT):
        error("questionnaire-constraint is supported on groups and on the Questionnaire only")
    pattern = ext.value(item, ext.REGEX)
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            error(f"regex {pattern!r} does not compile: {exc}")
    control = ext.item_control(item)
    if control and control not in ext.ITEM_CONTROLS:
        out.append(
            LintIssue("warning", link_id, f"itemControl {control!r} is not supported; the default control is used")
        )

    if ext.value(item, ext.SCORED):
        if spec.needs_options:
            unweighted = [n + 1 for n, o in enumerate(item.get("answerOption") or []) if option_weight(o) is None]
            if unweighted:
                error(f"is scored but answerOption {unweighted} carry no itemWeight/ordinalValue")
        elif not ext.expression(item, ext.SCORE_CRITERION):
            error("is scored but has neither weighted answerOptions nor a scoreCriterion")

    out += _presentation_issues(item, link_id, spec.is_question)
    out += _expression_issues(item, link_id)
    out += _enable_when_issues(item, index, position, by_link)
    if ext.expression(item, ext.CALCULATED_EXPRESSION) and not item.get("readOnly"):
        out.append(
            LintIssue(
                "warning",
                link_id,
                "has a calculatedExpression but is not readOnly: the calculated value overwrites the patient's",
            )
        )
    return out


def _translation_languages(shadow: Any) -> list[str]:
    """The `lang` codes of the translation extensions on a primitive's `_x` shadow."""
    langs: list[str] = []
    extensions = shadow.get("extension") if isinstance(shadow, dict) else None
    for extension in extensions or []:
        if isinstance(extension, dict) and extension.get("url") == ext.TRANSLATION:
            for sub in extension.get("extension") or []:
                if isinstance(sub, dict) and sub.get("url") == "lang" and isinstance(sub.get("valueCode"), str):
                    langs.append(sub["valueCode"])
    return langs


_DYNAMIC_LIMIT_WORDS = " and ".join(code for code, row in item_types.TYPES.items() if row.dynamic_limits)


def _presentation_issues(item: dict[str, Any], link_id: str, is_question: bool) -> list[LintIssue]:
    """requiredMessage: the page's message for a missing answer must be usable."""
    out: list[LintIssue] = []
    for extension in ext.find(item, ext.REQUIRED_MESSAGE):
        text = extension.get("valueString")
        if not is_question or not isinstance(text, str) or not text.strip():
            out.append(LintIssue("error", link_id, "requiredMessage needs a non-empty valueString on a question"))
        elif not item.get("required"):
            out.append(LintIssue("warning", link_id, "has a requiredMessage but is not required: it is never shown"))
    return out


def _limit_problems(extension: dict[str, Any], spec: item_types.ItemType) -> list[str]:
    """A minValue/maxValue: a fixed value[x] of the item's type, or one given by a FHIRPath
    `cqf-expression` on the primitive (`_valueDate`), which the engine evaluates on the types
    with `dynamic_limits` (date and dateTime: `today()`, `%birthDate`)."""
    kind = spec.code
    keys = [k for k in extension if k.startswith("value")]
    shadows = [k for k in extension if k.startswith("_value")]
    allowed = spec.limit_keys
    problems = [
        f"{k} does not fit a {kind} item" for k in dict.fromkeys(keys + [s[1:] for s in shadows]) if k not in allowed
    ]
    dynamic = ext.shadow_expression(extension)
    if dynamic is None:
        if not keys:
            problems.append("has no value: its `_value[x]` carries no cqf-expression")
        return problems
    if not spec.dynamic_limits:
        problems.append(
            f"given by an expression is supported on {_DYNAMIC_LIMIT_WORDS} items only, not on a {kind} item"
        )
    expression = dynamic[1]
    if not isinstance(expression, dict):
        problems.append("cqf-expression needs a valueExpression")
    elif expression.get("language") != "text/fhirpath":
        problems.append(f"cqf-expression language {expression.get('language')!r} is not supported (only text/fhirpath)")
    else:
        reason = check_syntax(expression.get("expression") or "")
        if reason:
            problems.append(f"cqf-expression: {reason}")
    return problems


def _constraint_issues(
    resource: dict[str, Any], items: list[tuple[dict[str, Any], dict[str, Any] | None]]
) -> list[LintIssue]:
    """questionnaire-constraint (R4 core): a unique key, severity error|warning, an expression that
    parses, the `human` text, and `location`s that are linkIds of this Questionnaire."""
    by_link = {item.get("linkId") for item, _ in items if item.get("linkId")}
    holders = [(resource, None)] + [(item, item.get("linkId")) for item, _ in items if item.get("type") == "group"]
    keys: set[str] = set()
    out: list[LintIssue] = []
    for holder, link_id in holders:
        for extension in ext.find(holder, ext.CONSTRAINT):
            out += _one_constraint(extension, link_id, by_link, keys)
    return out


def _one_constraint(
    extension: dict[str, Any], link_id: str | None, by_link: set[Any], keys: set[str]
) -> list[LintIssue]:
    parts: dict[str, list[dict[str, Any]]] = {}
    for sub in extension.get("extension") or []:
        parts.setdefault(str(sub.get("url")), []).append(sub)

    def one(name: str, value_key: str) -> Any:
        found = parts.get(name) or []
        value = found[0].get(value_key) if len(found) == 1 else None
        return value if isinstance(value, str) and value else None

    key = one("key", "valueId")
    where = f"questionnaire-constraint {key!r}" if key else "questionnaire-constraint"
    problems: list[str] = []
    if key is None:
        problems.append("needs one `key` (valueId)")
    elif key in keys:
        problems.append("key is used by another constraint of this Questionnaire")
    else:
        keys.add(key)
    if one("severity", "valueCode") not in CONSTRAINT_SEVERITIES:
        problems.append(f"needs one `severity` (valueCode): one of {sorted(CONSTRAINT_SEVERITIES)}")
    expression = one("expression", "valueString")
    if expression is None:
        problems.append("needs one `expression` (valueString, FHIRPath)")
    elif reason := check_syntax(expression):
        problems.append(f"expression: {reason}")
    if one("human", "valueString") is None:
        problems.append("needs one `human` (valueString): the message the patient reads")
    for location in parts.get("location") or []:
        if location.get("valueString") not in by_link:
            problems.append(f"location {location.get('valueString')!r} is not a linkId of this Questionnaire")
    if len(parts.get("requirements") or []) > 1:
        problems.append("has more than one `requirements`")
    out = [LintIssue("error", link_id, f"{where}: {problem}") for problem in problems]
    out += [LintIssue("warning", link_id, f"{where}: unknown sub-extension {name!r} is ignored")
            for name in parts if name not in CONSTRAINT_PARTS]
    return out


CONSTRAINT_SEVERITIES = {"error", "warning"}
CONSTRAINT_PARTS = {"key", "requirements", "severity", "expression", "human", "location"}


def _descendants(item: dict[str, Any]) -> set[str]:
    out = set()
    for child, _ in _walk(item.get("item") or []):
        if child.get("linkId"):
            out.add(child["linkId"])
    return out


def _enable_when_issues(
    item: dict[str, Any], index: int, position: dict[str, int], by_link: dict[str, dict[str, Any]]
) -> list[LintIssue]:
    link_id = item["linkId"]
    out: list[LintIssue] = []
    conditions = item.get("enableWhen") or []
    if len(conditions) > 1 and not item.get("enableBehavior"):
        out.append(
            LintIssue("error", link_id, f"has {len(conditions)} enableWhen conditions but no enableBehavior (que-12)")
        )
    for n, cond in enumerate(conditions):
        label = f"enableWhen #{n + 1}"
        question = cond.get("question")
        operator = cond.get("operator")
        answer_keys = [k for k in cond if k.startswith("answer")]
        if question not in by_link:
            out.append(
                LintIssue(
                    "error", link_id, f"{label} refers to '{question}', which is not an item of this Questionnaire"
                )
            )
            continue
        if question == link_id or question in _descendants(item):
            out.append(LintIssue("error", link_id, f"{label} refers to the item itself or one of its children"))
            continue
        if position[question] >= index:
            out.append(
                LintIssue(
                    "error",
                    link_id,
                    f"{label} refers to '{question}', which comes after it: "
                    "a condition must depend on an earlier answer",
                )
            )
        target_type = by_link[question].get("type")
        if operator not in OPERATORS:
            out.append(LintIssue("error", link_id, f"{label} has unknown operator {operator!r}"))
            continue
        if len(answer_keys) != 1:
            out.append(LintIssue("error", link_id, f"{label} needs exactly one answer[x]"))
            continue
        key = answer_keys[0]
        if operator == "exists":
            if key != "answerBoolean":
                out.append(LintIssue("error", link_id, f"{label}: operator 'exists' takes answerBoolean, not {key}"))
            continue
        target = item_types.item_type(target_type)
        if target is None or key not in target.enable_when:
            out.append(
                LintIssue("error", link_id, f"{label}: {key} can never match '{question}' of type {target_type}")
            )
        elif operator in ORDERED_OPERATORS and COMPARISONS[key].order is None:
            out.append(LintIssue("error", link_id, f"{label}: operator {operator!r} cannot order {key}"))
    return out


# --- scoring rules (docs/questionnaires.md, "Scoring, flags and findings") -----------------------

RULE_URLS = {
    ext.PROJECT_EXT + "flag": "flag",
    ext.PROJECT_EXT + "finding": "finding",
    ext.PROJECT_EXT + "crossDomainNote": "crossDomainNote",
}
TIERS = {"emergency", "urgent", "review"}


def _rule_issues(
    resource: dict[str, Any], items: list[tuple[dict[str, Any], dict[str, Any] | None]]
) -> list[LintIssue]:
    """Scores name a calculated item and answerable items; rules parse and point at real items."""
    by_link = {item.get("linkId"): item for item, _ in items if item.get("linkId")}
    out: list[LintIssue] = []
    for item, _parent in items:
        for extension in ext.find(item, ext.PROJECT_EXT + "score"):
            subs = ext.sub_values(extension)
            link_id = item.get("linkId")
            score_id = (subs.get("id") or [None])[0]
            if not score_id:
                out.append(LintIssue("error", link_id, "score has no id"))
            holder = (subs.get("item") or [None])[0]
            target = by_link.get(holder)
            if target is None or not ext.expression(target, ext.CALCULATED_EXPRESSION):
                out.append(
                    LintIssue(
                        "error",
                        link_id,
                        f"score {score_id!r}: item {holder!r} is not a calculated item of this Questionnaire",
                    )
                )
            for needed in subs.get("requires") or []:
                if needed not in by_link:
                    out.append(
                        LintIssue("error", link_id, f"score {score_id!r} requires {needed!r}, which is not an item")
                    )
            for band in subs.get("band") or []:
                b = ext.sub_values(band)
                if not b.get("code"):
                    out.append(LintIssue("error", link_id, f"score {score_id!r}: a band has no code"))
            for direction in subs.get("direction") or []:
                if direction not in DIRECTIONS:
                    out.append(LintIssue("error", link_id,
                                         f"score {score_id!r}: direction must be one of {list(DIRECTIONS)}"))
    for url, kind in RULE_URLS.items():
        for extension in ext.find(resource, url):
            subs = ext.sub_values(extension)
            rule_id = (subs.get("id") or [None])[0]
            where = f"{kind} {rule_id!r}"
            if not rule_id:
                out.append(LintIssue("error", None, f"{kind} has no id"))
            when = (subs.get("when") or [None])[0]
            if not isinstance(when, dict) or not when.get("expression"):
                out.append(LintIssue("error", None, f"{where} has no `when` expression"))
            for name in ("when", "value"):
                expression = (subs.get(name) or [None])[0]
                if isinstance(expression, dict):
                    reason = check_syntax(expression.get("expression") or "")
                    if reason:
                        out.append(LintIssue("error", None, f"{where} {name}: {reason}"))
            if kind == "flag" and (subs.get("tier") or [None])[0] not in TIERS:
                out.append(LintIssue("error", None, f"{where}: tier must be one of {sorted(TIERS)}"))
            for link in subs.get("because") or []:
                if kind != "crossDomainNote" and link not in by_link:  # notes may cite other domains
                    out.append(
                        LintIssue("error", None, f"{where}: because {link!r} is not an item of this Questionnaire")
                    )
    return out
