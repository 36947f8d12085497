"""Which language a page is in: Flask-Babel for the words of the UI, the patient's choice for which.

Patients choose English or Spanish on any page; the choice lives in the session and on the
intake (so the link opened in another browser continues in it). Without a choice, the browser's
Accept-Language decides. Staff pages are in the clinician's language, English: the staff UI
has no Spanish catalog yet.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel, get_locale, refresh
from flask_babel import lazy_gettext as _l

# Each language named in itself: the switch must be readable by someone who cannot read the page.
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español"}
# Each language named in the page's language, for sentences ("validated in English").
SPOKEN_NAMES = {"en": _l("English"), "es": _l("Spanish")}
DEFAULT = "en"
SESSION_KEY = "language"
# Blueprints whose pages patients see; error pages raised outside any blueprint count too.
PATIENT_BLUEPRINTS = {"patient", None}
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def select_locale() -> str:
    """Flask-Babel's locale selector."""
    if request.blueprint not in PATIENT_BLUEPRINTS:
        return DEFAULT
    chosen = session.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT


def current() -> str:
    """The language of this request's page (`en`, `es`)."""
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT


def choose(code: str) -> None:
    """Make `code` this session's language from now on, this request included."""
    session[SESSION_KEY] = code
    refresh()


def language_name(code: str | None) -> str:
    """The language named in the page's language ("inglés" on a Spanish page); else the code."""
    return str(SPOKEN_NAMES.get(code or "", code or ""))


def register(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)

    @app.context_processor
    def languages() -> dict[str, object]:
        return {"languages": LANGUAGES, "current_language": current, "language_name": language_name}
