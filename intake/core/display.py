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


def display_answer(item: Item, values: list[dict[str, Any]]) -> str:
    """Plain words for a stored answer ("Yes", "Several days", "72 kg")."""
    words = []
    for value in values:
        if "valueBoolean" in value:
            words.append("Yes" if value["valueBoolean"] else "No")
        elif "valueCoding" in value:
            coding = value["valueCoding"]
            words.append(str(coding.get("display") or coding.get("code")))
        elif "valueQuantity" in value:
            quantity = value["valueQuantity"]
            words.append(f"{plain_number(quantity.get('value'))} {quantity.get('unit') or ''}".strip())
        else:
            for key, val in value.items():
                if key.startswith("value"):
                    words.append(plain_number(val) if isinstance(val, float) else str(val))
    return ", ".join(words)
