"""Helpers for the browser tests: reading a question page, answering it by keyboard or by mouse,
screenshots. Answers are chosen from what the page shows, so the helpers follow the forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from intake.config import PROJECT_ROOT
from intake.web.forms import field_name

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE_JS = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = PROJECT_ROOT / "build" / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
NARROW = {"width": 320, "height": 640}

AXE_RESULTS: list[dict[str, Any]] = []  # one entry per axe run; written and printed at the end of the run

# The page form's submit button (the language switch is a submit button too, but in the header).
CONTINUE = "main form[method=post] button[type=submit]:not([name=language])"

# Each visible question of the page form, in page order.
QUESTIONS_JS = """() => {
  const form = document.querySelector('main form[method=post]');
  if (!form) { return []; }
  const out = [];
  for (const group of form.querySelectorAll('.form-group')) {
    if (!group.checkVisibility() || group.classList.contains('readonly')) { continue; }
    const title = group.querySelector('legend, label.label');
    const q = {required: !(title && title.querySelector('.optional')), text: title ? title.textContent.trim() : ''};
    const radios = [...group.querySelectorAll('input[type=radio]')];
    const boxes = [...group.querySelectorAll('input[type=checkbox]')];
    const field = group.querySelector('input.input, textarea, select');
    const parts = [...group.querySelectorAll('.date-input input')];
    if (parts.length) {  // the GOV.UK date pattern: a box per part (day, month, year)
      Object.assign(q, {kind: 'date', name: group.querySelector('fieldset').id, ids: parts.map(p => p.id),
                        parts: parts.map(p => p.id.split('-').pop()), value: parts.map(p => p.value).join(' '),
                        answered: parts.every(p => p.value !== '')});
    } else if (radios.length || boxes.length) {
      const opts = radios.length ? radios : boxes;
      Object.assign(q, {kind: radios.length ? 'radio' : 'checkbox', name: opts[0].name,
                        values: opts.map(o => o.value), ids: opts.map(o => o.id),
                        checked: opts.filter(o => o.checked).map(o => o.value)});
      q.answered = q.checked.length > 0;
    } else if (field) {
      const kind = field.tagName === 'SELECT' ? 'select' : field.tagName === 'TEXTAREA' ? 'textarea'
        : ['numeric', 'decimal'].includes(field.inputMode) ? 'number'
        : 'text';
      Object.assign(q, {kind, name: field.name, ids: [field.id], value: field.value, answered: field.value !== ''});
    } else { continue; }
    out.push(q);
  }
  return out;
}"""

ACTIVE_JS = """() => { const a = document.activeElement;
  return a ? a.tagName.toLowerCase() + (a.id ? '#' + a.id : '') + (a.name ? '[name=' + a.name + ']' : '')
    + (a.type ? '[type=' + a.type + ']' : '') + ' '
    + (a.textContent || a.value || '').trim().slice(0, 40) : 'none'; }"""


def questions(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(QUESTIONS_JS)


def html_lang(page: Any) -> str:
    return page.evaluate("document.documentElement.lang")


def active(page: Any) -> str:
    """What has the focus, for messages."""
    return page.evaluate(ACTIVE_JS)


def is_focused(page: Any, selector: str) -> bool:
    return page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector)


def tab_to(page: Any, selector: str, max_presses: int = 80) -> int:
    """Press Tab (or Shift+Tab when the target comes before the focus) until document.activeElement
    matches `selector`; focus moves only by keys. Returns the number of presses."""
    if is_focused(page, selector):
        return 0
    backwards = page.evaluate("""(s) => {
      const target = document.querySelector(s), a = document.activeElement;
      if (!target) { throw new Error('no element matches ' + s); }
      if (!a || a === document.body) { return false; }
      return !!(a.compareDocumentPosition(target) & Node.DOCUMENT_POSITION_PRECEDING);
    }""", selector)
    key = "Shift+Tab" if backwards else "Tab"
    seen = []
    for n in range(1, max_presses + 1):
        page.keyboard.press(key)
        if is_focused(page, selector):
            return n
        if len(seen) < 12:
            seen.append(active(page))
    raise AssertionError(f"{max_presses} x {key} never focused {selector!r} (focus went: {seen} ...)")


def choice_for(q: dict[str, Any], answers: dict[str, Any]) -> Any:
    """The answer to give: an override by linkId (keyed by field name here), else a harmless default:
    'No' for yes/no, 'None of these' for check boxes that offer it, else the first option, 1 for
    numbers, a month for dates."""
    if q["name"] in answers:
        return answers[q["name"]]
    if q["kind"] == "radio":
        return "false" if q["values"] == ["true", "false"] else q["values"][0]
    if q["kind"] == "checkbox":
        return ["none"] if "none" in q["values"] else [q["values"][0]]
    if q["kind"] == "select":
        return q.get("values", [""])[0]
    if q["kind"] == "number":
        return "1"
    if q["kind"] == "date":
        return "2019-06"
    return "fine"


def date_boxes(q: dict[str, Any], value: str) -> list[tuple[str, str]]:
    """(box id, text) for a date question's boxes from a FHIR date (`2019-06`): 6 and 2019."""
    pieces = dict(zip(("year", "month", "day"), str(value).split("-"), strict=False))
    return [(box, (pieces.get(part) or "1").lstrip("0") if part != "year" else pieces["year"])
            for box, part in zip(q["ids"], q["parts"], strict=True)]


def by_field(answers: dict[str, Any] | None) -> dict[str, Any]:
    """{linkId: value} -> {field name: value}."""
    return {field_name(k): v for k, v in (answers or {}).items()}


def _todo(page: Any, answers: dict[str, Any], done: set[str]) -> dict[str, Any] | None:
    """The next question to answer: an overridden one, or a required one still unanswered."""
    for q in questions(page):
        if q["name"] in done:
            continue
        if q["name"] in answers or (q["required"] and not q["answered"]):
            return q
    return None


def _each_answer(page: Any, answers: dict[str, Any] | None) -> Iterator[tuple[dict[str, Any], Any]]:
    """(question, value) for each question to answer, read again after every answer (an answer
    can show a follow-up on the same page)."""
    wanted = by_field(answers)
    done: set[str] = set()
    while (q := _todo(page, wanted, done)) is not None:
        done.add(q["name"])
        yield q, choice_for(q, wanted)


def answer_by_keyboard(page: Any, answers: dict[str, Any] | None = None) -> list[str]:
    """Answer the page with the keyboard only: Tab/Shift+Tab to each control, arrow keys and Space
    for radios, Space for check boxes, typing for text. Returns the field names answered."""
    done: list[str] = []
    for q, value in _each_answer(page, answers):
        done.append(q["name"])
        if q["kind"] == "radio":
            target = q["values"].index(value)
            tab_to(page, f"input[type=radio][name='{q['name']}']")
            here = page.evaluate("() => document.activeElement.value")
            current = q["values"].index(here)
            step = "ArrowDown" if target > current else "ArrowUp"
            for _ in range(abs(target - current)):
                page.keyboard.press(step)  # moves the focus and checks the radio
            if not page.evaluate("() => document.activeElement.checked"):
                page.keyboard.press("Space")
        elif q["kind"] == "checkbox":
            for v in value:
                box = q["ids"][q["values"].index(v)]
                tab_to(page, f"#{box}")
                if not page.evaluate("() => document.activeElement.checked"):
                    page.keyboard.press("Space")
        elif q["kind"] == "date":
            for box, text in date_boxes(q, value):
                tab_to(page, f"#{box}")
                page.keyboard.press("Control+A")
                page.keyboard.type(text)
        elif q["kind"] in ("number", "text", "textarea"):
            tab_to(page, f"#{q['ids'][0]}")
            page.keyboard.press("Control+A")
            page.keyboard.type(str(value))
        else:
            raise AssertionError(f"no keyboard recipe for {q}")
    return sorted(done)


def continue_by_keyboard(page: Any) -> None:
    """Tab to the page's submit button and press Enter; wait for the next page."""
    tab_to(page, CONTINUE)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def answer_by_mouse(page: Any, answers: dict[str, Any] | None = None) -> None:
    """Answer the page with check()/fill() (works with JavaScript off too)."""
    for q, value in _each_answer(page, answers):
        if q["kind"] == "radio":
            page.check(f"#{q['ids'][q['values'].index(value)]}")
        elif q["kind"] == "checkbox":
            for v in value:
                page.check(f"#{q['ids'][q['values'].index(v)]}")
        elif q["kind"] == "select":
            page.select_option(f"#{q['ids'][0]}", value)
        elif q["kind"] == "date":
            for box, text in date_boxes(q, value):
                page.fill(f"#{box}", text)
        else:
            page.fill(f"#{q['ids'][0]}", str(value))


_SET_JS = """(todo) => {
  for (const [id, value] of todo) {
    const el = document.getElementById(id);
    if (el.type === 'radio' || el.type === 'checkbox') { el.checked = true; } else { el.value = value; }
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
  }
}"""


def answer_quickly(page: Any, answers: dict[str, Any] | None = None) -> None:
    """Answer the page by setting the controls from a script, a batch at a time (for tests about
    the pages rather than the typing: much faster than one click per answer)."""
    wanted = by_field(answers)
    done: set[str] = set()
    while True:
        batch = []
        for q in questions(page):
            if q["name"] in done or not (q["name"] in wanted or (q["required"] and not q["answered"])):
                continue
            done.add(q["name"])
            value = choice_for(q, wanted)
            if q["kind"] in ("radio", "checkbox"):
                for v in ([value] if q["kind"] == "radio" else value):
                    batch.append((q["ids"][q["values"].index(v)], v))
            elif q["kind"] == "date":
                batch += date_boxes(q, value)
            else:
                batch.append((q["ids"][0], str(value)))
        if not batch:
            return
        page.evaluate(_SET_JS, batch)


def continue_by_mouse(page: Any) -> None:
    with page.expect_navigation():
        page.click(CONTINUE)


def page_path(page: Any) -> str:
    from urllib.parse import urlsplit
    return urlsplit(page.url).path


def is_question_page(page: Any) -> bool:
    return page_path(page).startswith("/intake/") and page_path(page).count("/") == 3


def screenshot(page: Any, page_type: str, lang: str) -> list[Path]:
    """Full-page screenshots at phone and desktop width: <page-type>-<lang>-<phone|desktop>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    paths = []
    for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        path = SCREENSHOTS / f"{page_type}-{lang}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    page.set_viewport_size(before)
    return paths


def reflow_width(page: Any) -> int:
    """document.documentElement.scrollWidth at 320 x 640 (WCAG 1.4.10 reflow: no sideways scrolling)."""
    before = page.viewport_size
    page.set_viewport_size(NARROW)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size(before)
    return width


# --- text of a page, for "is every string in this language" -----------------------------------

TEXTS_JS = """() => {
  const out = [];
  const norm = (s) => (s || '').replace(/\\s+/g, ' ').trim();
  const langOf = (el) => { const l = el.closest('[lang]'); return l ? l.getAttribute('lang') : ''; };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const el = n.parentElement, text = norm(n.textContent);
    if (!text || el.closest('script, style, template, [hidden]') || !el.checkVisibility()) { continue; }
    out.push({text, lang: langOf(el), where: el.tagName.toLowerCase() + (el.className ? '.' + el.className : '')});
  }
  for (const el of document.querySelectorAll('[aria-label], [placeholder], [title], [alt]')) {
    if (el.closest('[hidden]')) { continue; }
    for (const attr of ['aria-label', 'placeholder', 'title', 'alt']) {
      if (el.hasAttribute(attr)) { out.push({text: norm(el.getAttribute(attr)), lang: langOf(el), where: '@' + attr}); }
    }
  }
  out.push({text: norm(document.title), lang: document.documentElement.lang, where: 'title'});
  return out;
}"""

# Language-neutral: numbers, punctuation, acronyms and codes (PHQ-4, PSS-10, MNSI, MEDAS, kg, %).
NEUTRAL = re.compile(r"^(?:[\d\W_]+|(?:[A-Z0-9][A-Z0-9\-]*[\W_\d]*|kg|cm|mg|ml)(?:\s+|$))+$")
SAME_IN_BOTH = {"No", "Error:", "Total"}  # words spelt the same in English and Spanish


def texts(page: Any) -> list[dict[str, str]]:
    return page.evaluate(TEXTS_JS)


def foreign_strings(page: Any, lang: str, other: set[str], allowed: set[str] = frozenset()) -> list[str]:
    """Strings of the page in `lang` that are also strings of the other language's pages (`other`),
    except language-neutral ones and text marked with another lang attribute (the language switch)."""
    found = []
    for t in texts(page):
        text = t["text"]
        if t["lang"] and t["lang"] != lang:
            continue
        if text in other and text not in allowed and text not in SAME_IN_BOTH and not NEUTRAL.match(text):
            found.append(f"{text!r} ({t['where']})")
    return found
