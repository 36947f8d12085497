"""Plain words for stored answers, shared by the patient's review page and the clinician summary."""

from __future__ import annotations

from typing import Any

from intake.core.items import Item


def plain_number(value: Any) -> str:
    """3.0 -> "3", 2.5 -> "2.5", None -> ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def display_answer(item: Item, values: list[dict[str, Any]], *, yes_no: tuple[str, str] = ("Yes", "No")) -> str:
    """Plain words for a stored answer ("Yes", "Several days", "72 kg").

    A coded answer reads as the item's own option says it, so an item in the patient's
    language shows the answer in that language too; `yes_no` words the booleans.
    """
    words = []
    for value in values:
        if "valueBoolean" in value:
            words.append(yes_no[0] if value["valueBoolean"] else yes_no[1])
        elif "valueCoding" in value:
            coding = value["valueCoding"]
            option = _option_coding(item, coding)
            words.append(str((option or coding).get("display") or coding.get("code")))
        elif "valueQuantity" in value:
            quantity = value["valueQuantity"]
            words.append(f"{plain_number(quantity.get('value'))} {quantity.get('unit') or ''}".strip())
        else:
            for key, val in value.items():
                if key.startswith("value"):
                    words.append(plain_number(val) if isinstance(val, float) else str(val))
    return ", ".join(words)


def _option_coding(item: Item, coding: dict[str, Any]) -> dict[str, Any] | None:
    for option in item.options:
        candidate = option.get("valueCoding")
        if (
            candidate
            and candidate.get("code") == coding.get("code")
            and candidate.get("system") == coding.get("system")
        ):
            matched: dict[str, Any] = candidate
            return matched
    return None
