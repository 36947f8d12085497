"""The patient's pages: link -> start -> one page per group -> review -> submit -> done.

Every page that passes validation is stored at once as the in-progress response. Nothing is
written when a page has errors (the page is shown again with everything typed), so hostile or
mistaken input never leaves a partial write.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import validate_csrf
from sqlalchemy.orm import Session
from werkzeug.datastructures import CombinedMultiDict
from wtforms import ValidationError

from intake import audit, notify, workflow
from intake.auth.links import token_hash
from intake.core import translations
from intake.core.enablement import Answers
from intake.core.estimate import estimate
from intake.core.fhir_time import utcnow
from intake.core.items import Form, Item, Page
from intake.core.scoring import instrument_of
from intake.errors import IntakeError
from intake.jobs import outbox
from intake.storage import intakes, invites, responses, scores
from intake.storage.intakes import IntakeView
from intake.web import auditing, language
from intake.web import forms as webforms  # `forms` names the intake's Questionnaires here
from intake.web.context import catalog, reader, readers, writer
from intake.web.staff import safe_next

bp = Blueprint("patient", __name__)

SESSION_KEY = "intake_id"
LINK_KEY = "link_id"  # the link that opened this session: the session ends when that link does
# Pages a browser may ask for whatever its session holds (opening a link starts a new session).
UNBOUND_ENDPOINTS = frozenset({"patient.home", "patient.open_link"})


class LinkEnded(IntakeError):
    """The link that opened this session was revoked, replaced by a newer one, or has expired
    (403; `_link_ended` answers it: it also forgets the intake in this browser)."""

    status = 403


@bp.get("/")
def home() -> Any:
    return render_template("patient/home.html")


@bp.get("/i/<token>")
def open_link(token: str) -> Any:
    """The link from the invitation: bind this browser session to the intake, then drop the token."""
    if len(token) > 200:
        return _invalid_link()
    found = invites.find_live_link(reader(), token_hash(token), now=utcnow())
    intake, link_id = found if found is not None else (None, None)
    if intake is None or intake.status == "completed":
        # Unknown, expired, revoked and already-submitted links look the same: nobody holding a
        # link can learn which (the patient who just submitted keeps their session's done page).
        with writer() as db:
            audit.record(db, actor=audit.Actor("anonymous", ""), action="login-failed", outcome="failure",
                         now=utcnow(), detail={"via": "patient link"}, source=auditing.source())
        return _invalid_link()
    with writer() as db:
        audit.record(db, actor=audit.Actor("patient-link", f"Intake/{intake.id}"), action="login", now=utcnow(),
                     entities=[f"Intake/{intake.id}"], source=auditing.source())
        if link_id is not None:
            invites.mark_opened(db, link_id, now=utcnow())  # the front desk's "opened"
    chosen = intake.language if intake.language in language.LANGUAGES else session.get(language.SESSION_KEY)
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = intake.id
    session[LINK_KEY] = link_id
    _name_actor()
    if chosen in language.LANGUAGES:
        session[language.SESSION_KEY] = chosen
    return redirect(url_for("patient.start"))


def _invalid_link() -> Any:
    """One page for every unusable link. A link reopened after Submit is one of them: the page
    tells that patient their answers were sent, in words true of every case, and shows no answer."""
    return render_template(
        "error.html", title=_("This link cannot be used"),
        body=_("If you have already sent your answers, your care team has them and you do not need to do "
               "anything else. Your answers are not shown again here."),
        more=[_("Otherwise, the link may have expired or been replaced. Contact the clinic for a new one.")]), 404


def _session_ended() -> Any:
    return render_template(
        "error.html",
        title=_("Your session has ended"),
        body=_("Your saved answers are safe. Open the link from your message again to carry on where you stopped."),
    ), 403


@bp.before_app_request
def _name_actor() -> None:
    """Tell the audit (`g`) who this browser is when its session holds an intake: on any page,
    as a refused FHIR read or staff page is audited by who asked too."""
    intake_id = session.get(SESSION_KEY)
    if isinstance(intake_id, str):
        setattr(g, auditing.LINK_ACTOR, audit.Actor("patient-link", f"Intake/{intake_id}"))
    else:
        g.pop(auditing.LINK_ACTOR, None)


@bp.before_request
def _check_link() -> None:
    """Every request of a link's session, on every patient page: is that link still in force?

    The session records which link opened it; once the front desk or the command line issues a
    newer link, or the link is revoked or expires, the old browser is refused (`LinkEnded`).
    Writes check again inside their own transaction (`_hold_link`), so a new link issued in
    between cannot let a save or a submit through.
    """
    if request.endpoint in UNBOUND_ENDPOINTS or SESSION_KEY not in session:
        return
    if not _link_in_force(reader()):
        raise LinkEnded()


def _link_in_force(db: Session, *, lock: bool = False) -> bool:
    intake_id, link_id = session.get(SESSION_KEY), session.get(LINK_KEY)
    if not isinstance(intake_id, str) or not isinstance(link_id, int) or isinstance(link_id, bool):
        return False
    return invites.link_in_force(db, link_id, intake_id, now=utcnow(), lock=lock)


def _hold_link(db: Session) -> None:
    """In a write transaction: lock the intake and stop unless the session's link still works,
    so the write and a newer link take turns (the write lands first or is refused)."""
    if not _link_in_force(db, lock=True):
        raise LinkEnded()


@bp.errorhandler(LinkEnded)
def _link_ended(exc: LinkEnded) -> Any:
    """Forget the intake in this browser (its saved answers stay stored) and say what to do."""
    intake_id = session.get(SESSION_KEY)
    chosen = session.get(language.SESSION_KEY)
    session.clear()
    _name_actor()  # nobody now: this request's page showed them nothing
    if chosen in language.LANGUAGES:
        session[language.SESSION_KEY] = chosen  # the page, and what follows, stay in their language
    with writer() as db:
        audit.record(
            db,
            actor=audit.Actor("patient-link", f"Intake/{intake_id}"),
            action="login-failed",
            outcome="failure",
            now=utcnow(),
            entities=[f"Intake/{intake_id}"] if isinstance(intake_id, str) else [],
            detail={"via": "patient session", "reason": "link revoked, replaced or expired"},
            source=auditing.source(),
        )
    return render_template(
        "error.html",
        title=_("This link no longer works"),
        body=_("Your saved answers are safe. Use the newest link the clinic sent you, or contact the clinic "
               "for a new one."),
    ), exc.status


@bp.get("/language/<code>")
def choose_language(code: str) -> Any:
    """The language switch on every page: remember the choice, then back to the same page."""
    if code not in language.LANGUAGES:
        abort(404)
    _remember_language(code)
    target = safe_next(request.args.get("next"))
    return redirect(target or url_for("patient.start" if session.get(SESSION_KEY) else "patient.home"))


def _remember_language(code: str) -> None:
    """This session's language, and the open intake's, so its link continues in it anywhere."""
    language.choose(code)
    intake_id = session.get(SESSION_KEY)
    if isinstance(intake_id, str):
        with writer() as db:
            _hold_link(db)
            if intakes.set_intake_language(db, intake_id, code):
                auditing.record_change(db, "update", f"Intake/{intake_id}", detail={"language": code})


def _current_intake(db: Session) -> IntakeView | None:
    intake_id = session.get(SESSION_KEY)
    if not isinstance(intake_id, str):
        return None
    return intakes.intake_view(db, intake_id)


def _open_intake(db: Session) -> IntakeView:
    """The session's intake while it is still open; otherwise stop the request with the
    session-ended page, or send a completed intake to the confirmation page."""
    intake = _current_intake(db)
    if intake is None:
        abort(make_response(_session_ended()))
    if intake.status == "completed":
        abort(redirect(url_for("patient.done")))
    return intake


def _locate(
    db: Session, intake: IntakeView, form_key: str, page_key: str
) -> tuple[list[Any], dict[str, Answers], list[workflow.Step], int]:
    """Forms, stored answers, current steps and the index of the requested page (404 if not shown)."""
    forms, answers, steps = _context(db, intake)
    index = _step_index(steps, form_key, page_key)
    if index is None:
        abort(404)
    return forms, answers, steps, index


def _context(db: Session, intake: IntakeView) -> tuple[list[Any], dict[str, Answers], list[workflow.Step]]:
    forms = workflow.intake_forms(catalog(), intake)
    answers = workflow.stored_answers(intake)
    return forms, answers, workflow.steps(forms, answers)


def _step_index(steps: list[workflow.Step], form_key: str, page_key: str) -> int | None:
    for n, step in enumerate(steps):
        if step.slug == (form_key, page_key):
            return n
    return None


def _page_url(step: workflow.Step, **kwargs: Any) -> str:
    return url_for("patient.page", form_key=step.form.key, page_key=step.page.key, **kwargs)


@bp.get("/intake")
def start() -> Any:
    db = reader()
    intake = _open_intake(db)
    _forms, answers, steps = _context(db, intake)
    resume = steps[0]
    if intake.last_page:
        form_key, _sep, page_key = intake.last_page.partition("/")
        index = _step_index(steps, form_key, page_key)
        if index is not None:
            resume = steps[min(index + 1, len(steps) - 1)]
    return render_template(
        "patient/start.html",
        started=intake.status == "in-progress",
        first_url=_page_url(steps[0]),
        resume_url=_page_url(resume) if intake.status == "in-progress" else None,
        estimate=estimate([(s.page, workflow.enabled_for(s.form, answers.get(s.form.canonical, workflow.NO_ANSWERS)))
                           for s in steps]),
    )


@bp.route("/intake/<form_key>/<page_key>", methods=["GET", "POST"])
def page(form_key: str, page_key: str) -> Any:
    if request.method == "POST":
        return _post_page(form_key, page_key)
    db = reader()
    intake = _open_intake(db)
    _forms, answers, steps, index = _locate(db, intake, form_key, page_key)
    step = steps[index]
    form_answers = answers.get(step.form.canonical, workflow.NO_ANSWERS)
    form_cls = webforms.page_form_class(step.form, step.page)
    first_visit = not any(i.link_id in form_answers for i in step.page.walk())
    form = form_cls(formdata=None, data=webforms.form_data(form_cls, form_answers, use_initial=first_visit))
    enabled = set(workflow.enabled_for(step.form, form_answers))
    return _render_page(steps, index, form, enabled, form_answers, status=200)


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _localized(step: workflow.Step) -> tuple[Form, Page]:
    """The step's questionnaire and page in the patient's language (the same items, other words)."""
    form = catalog().localized(step.form, language.current())
    page = next(p for p in form.pages if p.key == step.page.key)
    return form, page


def _translation_notices(steps: list[workflow.Step], index: int) -> list[str]:
    """Instruments validated only in other languages: said once per intake, on the first page
    that asks one of them, naming every such instrument of the intake (issue 19: not on every
    page), in the patient's language."""
    lang = language.current()
    unvalidated: dict[tuple[str, ...], list[str]] = {}
    first: int | None = None
    for number, step in enumerate(steps):
        local = catalog().localized(step.form, lang)
        page = next((p for p in local.pages if p.key == step.page.key), step.page)
        for item in page.walk():
            instrument = instrument_of(item) if item.type == "group" else None
            if instrument and not instrument.validated_in(lang):
                first = number if first is None else first
                titles = unvalidated.setdefault(instrument.validated_languages, [])
                if instrument.title not in titles:
                    titles.append(instrument.title)
    if first != index:
        return []
    notices = []
    for languages, titles in unvalidated.items():
        names = ", ".join(language.language_name(code) for code in languages)
        notices.append(_(
            "%(instrument)s: the wording used here is the version validated in %(languages)s. These "
            "questions are our translation, not a validated version: answer as well as you can, and "
            "your care team will take this into account.", instrument="; ".join(titles), languages=names))
    return notices


def _summary_line(message: str, shown: Item) -> str:
    """One error-summary line: the message, and the question's words unless the message is the
    question's own (`requiredMessage`, already in the patient's language on `shown`)."""
    if message == shown.required_message:
        return message
    return f"{message} – {_short(shown.text)}"


def _render_page(steps: list[workflow.Step], index: int, form: webforms.PageForm, enabled: set[str],
                 answers: Answers, *, status: int, notice: str | None = None, errors_shown: bool = True) -> Any:
    step = steps[index]
    local_form, local_page = _localized(step)
    back_url = _page_url(steps[index - 1]) if index > 0 else url_for("patient.start")
    errors: list[tuple[str, str]] = []
    if errors_shown:
        # The summary names the question, so a list of "Select an answer" still says which one; a
        # question's own message ("Select yes if you have seen blood…") already says it.
        errors = [(webforms.anchor(item, field), _summary_line(field.errors[0], local_form.by_link[item.link_id]))
                  for item, field in form.question_fields() if field.errors]
        errors += [
            (form[name].id, form[name].errors[0])
            for name in (*form.other_fields.values(), *form.unit_fields.values())
            if form[name].errors
        ]
    else:
        for field in form:
            field.errors = []
    from_review = request.args.get("from") == "review"
    return render_template(
        "patient/page.html",
        page_title=local_page.title or local_form.title,
        form_title=local_form.title,
        number=index + 1,
        total=len(steps),
        form=form,
        nodes=webforms.render_tree(local_page, form, enabled, answers,
                                   source_url=lambda link_id: _question_url(steps, step, link_id, from_review)),
        errors=errors,
        notice=notice,
        translation_notices=_translation_notices(steps, index),
        back_url=back_url,
        from_review=from_review,
        action=_page_url(step, **({"from": "review"} if from_review else {})),
    ), status


def _question_url(steps: list[workflow.Step], current: workflow.Step, link_id: str, from_review: bool) -> str | None:
    """The page (and field) where a question of the current form is asked, e.g. the PHQ-4 item
    that a PHQ-9 item carries forward; None when no page of the intake asks it."""
    for step in steps:
        if step.form is current.form:
            item = next((i for i in step.page.walk() if i.link_id == link_id), None)
            if item is not None:
                return _page_url(step, **({"from": "review"} if from_review else {})) + "#" + webforms.anchor(item)
    return None


MAX_SAVE_ATTEMPTS = 3


def _posted() -> Any:
    """The posted fields, files included (so a file sent as an answer is refused, not ignored)."""
    if request.files:
        return CombinedMultiDict((request.files, request.form))
    return request.form


def _csrf_ok() -> bool:
    """Exactly one CSRF token, valid for this session and not expired (Flask-WTF)."""
    tokens = request.form.getlist("csrf_token")
    if len(tokens) != 1:
        return False
    try:
        validate_csrf(tokens[0])
    except ValidationError:
        return False
    return True


def _post_page(form_key: str, page_key: str) -> Any:
    """Parse and validate outside the write transaction, then store with a conditional write.

    The write lock (SQLite allows one writer) is held only for the save itself; if another
    request saved this questionnaire in between, the page is worked out again on fresh data.
    """
    for _attempt in range(MAX_SAVE_ATTEMPTS):
        with readers() as db:
            intake = _open_intake(db)
            forms, answers, steps, index = _locate(db, intake, form_key, page_key)
        step = steps[index]
        form_cls = webforms.page_form_class(step.form, step.page)
        # The birth date bounds dates such as a symptom onset (`minValue` = %birthDate).
        form = form_cls(_posted(), birth_date=intake.birth_date)
        # Enablement needs the posted answers before validation can say what is required;
        # answers that do not parse count as unanswered here and fail validation below.
        merged = dict(answers.get(step.form.canonical, {}))
        merged.update(webforms.page_answers(form))
        form.answers = merged  # a questionnaire-level constraint may read answers on other pages
        enabled = set(workflow.enabled_for(step.form, merged))
        form.enabled = enabled
        form.shown_form = _localized(step)[0]
        switch = request.form.get("language")
        if switch is not None:
            # The language switch on a question page: show the same page, with what was typed
            # (nothing saved, nothing judged), in the other language.
            if switch in language.LANGUAGES:
                _remember_language(switch)
            return _render_page(steps, index, form, enabled, merged, status=200, errors_shown=False)
        valid = form.validate()
        if not _csrf_ok():
            notice = _("This page was open for a long time, so your answers on it were not saved yet. "
                       "Check them and press Continue again.")
            return _render_page(steps, index, form, enabled, merged, status=400, notice=notice)
        if not valid:
            return _render_page(steps, index, form, enabled, merged, status=400)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            with writer() as db:
                _hold_link(db)
                # Danger reported on this page is acted on now, not at Submit (`save_answers`).
                saved = workflow.save_answers(app, db, intake, forms, answers, step, merged, by=_caller(),
                                              language=language.current())
        except intakes.IntakeClosed:
            return redirect(url_for("patient.done"))
        except responses.StaleResponse:
            continue
        if saved.queued:
            outbox.kick(app)  # after the commit: the notification rows are there to be handed over
        following = _after_save(forms, answers, steps, step, merged, form_key, page_key)
        if saved.emergencies:
            return _interrupt(saved.emergencies, following.location)
        session.pop(HELP_KEY, None)
        return following
    abort(409)


HELP_KEY = "urgent_help"


def _interrupt(flag_ids: list[str], next_url: str) -> Any:
    """The GOV.UK "interruption card": the guidance for what was just reported, before anything else.

    A redirect to a GET page (so it works without JavaScript, and reloading it does not post the
    answers again); the session remembers which guidance to show and where the questionnaire
    carries on.
    """
    session[HELP_KEY] = {"flags": flag_ids, "next": next_url}
    return redirect(url_for("patient.urgent_help"))


@bp.get("/intake/help")
def urgent_help() -> Any:
    db = reader()
    intake = _open_intake(db)
    pending = session.get(HELP_KEY)
    flag_ids = pending.get("flags") if isinstance(pending, dict) else None
    next_url = safe_next(pending.get("next")) if isinstance(pending, dict) else None
    if not isinstance(flag_ids, list) or not flag_ids or not next_url:
        return redirect(url_for("patient.start"))
    return render_template("patient/urgent_help.html", guidance=_guidance(intake, [str(f) for f in flag_ids]),
                           next_url=next_url, staff_told=notify.configured(current_app))


def _guidance(intake: IntakeView, flag_ids: list[str], stored: dict[str, str] | None = None) -> list[str]:
    """What the patient is told for each flag, in their language (the base wording if a
    Questionnaire lacks the translation; `stored` holds the wording kept with the scores)."""
    forms = workflow.intake_forms(catalog(), intake)
    local_forms = [catalog().localized(form, language.current()) for form in forms]
    texts = []
    for flag_id in flag_ids:
        text = next((t for f in local_forms if (t := translations.flag_guidance(f.resource, flag_id))), None)
        text = text or next((t for f in forms if (t := translations.flag_guidance(f.resource, flag_id))), None)
        text = text or (stored or {}).get(flag_id)
        if text:
            texts.append(text)
    return list(dict.fromkeys(texts))


def _after_save(forms: list[Any], answers: dict[str, Answers], steps: list[workflow.Step], step: workflow.Step,
                merged: Answers, form_key: str, page_key: str) -> Any:
    """Where to go next; enablement may have changed which pages follow (a reflex on or off)."""
    new_answers = dict(answers)
    new_answers[step.form.canonical] = merged
    new_steps = workflow.steps(forms, new_answers)
    if request.args.get("from") == "review":
        before = answers.get(step.form.canonical, workflow.NO_ANSWERS)
        changed = next((item.link_id for item in step.page.walk()
                        if item.is_question and before.get(item.link_id) != merged.get(item.link_id)), None)
        return _back_to_review(steps, new_answers, new_steps, (form_key, page_key), changed)
    index = _step_index(new_steps, form_key, page_key)
    if index is None or index + 1 >= len(new_steps):
        return redirect(url_for("patient.review"))
    return redirect(_page_url(new_steps[index + 1]))


PENDING_KEY = "pages_switched_on"


def _back_to_review(steps: list[workflow.Step], new_answers: dict[str, Answers], new_steps: list[workflow.Step],
                    saved: tuple[str, str], changed: str | None) -> Any:
    """After a change from the review page: first the pages it switched on, then the review, at
    the answer that changed (`changed`, a link id) when there was one.

    A change can switch follow-ups on (PHQ-4 raised: PHQ-9 and GAD-7). Their questions come
    next, one page after the other, rather than a review page that only then lists them as
    unanswered. Only newly switched-on pages are queued, so blank optional pages never loop.
    """
    before = {step.slug for step in steps}
    queued = [tuple(slug) for slug in session.get(PENDING_KEY, []) if isinstance(slug, list) and len(slug) == 2]
    queued += [step.slug for step in new_steps if step.slug not in before]
    by_slug = {step.slug: step for step in new_steps}
    pending = [
        slug for slug in dict.fromkeys(queued)
        if slug != saved and slug in by_slug
        and not any(i.link_id in new_answers.get(by_slug[slug].form.canonical, {})
                    for i in by_slug[slug].page.walk() if not i.read_only)  # carried answers are not the patient's yet
    ]
    session[PENDING_KEY] = [list(slug) for slug in pending[1:]]
    if pending:
        return redirect(_page_url(by_slug[pending[0]], **{"from": "review"}))
    session.pop(PENDING_KEY, None)
    if changed is None:
        return redirect(url_for("patient.review") + "#section-" + "-".join(saved))
    return redirect(url_for("patient.review", changed=changed) + "#" + review_anchor(changed))


@bp.get("/intake/review")
def review() -> Any:
    db = reader()
    intake = _open_intake(db)
    _forms, answers, steps = _context(db, intake)
    return _render_review(steps, answers, problems=[], status=200)


def _render_review(steps: list[workflow.Step], answers: dict[str, Answers], problems: list[Any], status: int) -> Any:
    """Check answers by section: one "Change" per page and its answers folded away.

    A section opens when it has a problem to fix or when the patient has just changed an answer
    in it (``?changed=<link id>``, with the answer's row as the fragment): they land on the answer
    they changed, not at the top of a long page.
    """
    yes_no = webforms.yes_no()
    changed = request.args.get("changed", "")
    problem_links = []
    problem_slugs = set()
    for form, issue in problems:
        target = next(
            (s for s in steps if s.form is form and any(i.link_id == issue.link_id for i in s.page.walk())), None
        )
        local = catalog().localized(form, language.current())
        shown = local.by_link.get(issue.link_id or "")
        # Worded like the page's own error summary: what to do, then which question.
        message = webforms.patient_message(form, issue, shown=local) or _problem_message(issue.code)
        label = f"{message} – {_short(shown.text)}" if shown else message
        href = (_page_url(target, **{"from": "review"}) + "#" + webforms.anchor(shown)) if target and shown else "#"
        problem_links.append((href, label))
        if target is not None:
            problem_slugs.add(target.slug)
    sections = []
    for step in steps:
        local_form, local_page = _localized(step)
        form_answers = answers.get(step.form.canonical, workflow.NO_ANSWERS)
        enabled = set(workflow.enabled_for(step.form, form_answers))
        rows = []
        for item in local_page.walk():
            if not item.is_question or item.hidden or item.link_id not in enabled:
                continue
            values = form_answers.get(item.link_id) or []
            rows.append({
                "id": review_anchor(item.link_id),
                "text": item.text,
                "answer": webforms.display_answer(item, values, yes_no=yes_no) if values else "",
                "changed": item.link_id == changed,
            })
        sections.append({
            "id": "section-" + "-".join(step.slug),
            "title": local_page.title or local_form.title,
            "form": local_form.title,
            "rows": rows,
            "answered": sum(1 for row in rows if row["answer"]),
            "unanswered": sum(1 for row in rows if not row["answer"]),
            "open": step.slug in problem_slugs or any(row["changed"] for row in rows),
            "url": _page_url(step, **{"from": "review"}),
        })
    return render_template("patient/review.html", sections=sections, problems=problem_links,
                           total=len(steps)), status


def review_anchor(link_id: str) -> str:
    """The id of an answer's row on the check-answers page (the fragment a change returns to)."""
    return "answer-" + link_id.replace(".", "-")


def _problem_message(code: str) -> str:
    """Strict validation at submit speaks FHIR (issue codes); the patient is told plainly what to do."""
    if code == "required":
        return _("Answer this question")
    return _("Check this answer")


@bp.post("/intake/submit")
def submit() -> Any:
    if not _csrf_ok():
        # A stale review page: nothing is lost, show it again with a fresh token.
        return redirect(url_for("patient.review"))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with writer() as db:
        _hold_link(db)
        intake = _open_intake(db)
        done, problems = workflow.submit_intake(app, db, catalog(), intake, by=_caller(), language=language.current())
        if problems:
            _forms, answers, steps = _context(db, intake)
            return _render_review(steps, answers, problems, status=400)
    if done:
        outbox.kick(app)  # after the commit: the follow-up rows are there to be handed over
    return redirect(url_for("patient.done"))


def _caller() -> workflow.Caller:
    """Who writes, for the audit row: this request's actor (the link's session) and address."""
    return workflow.Caller(auditing.current_actor(), auditing.source())


@bp.get("/intake/done")
def done() -> Any:
    db = reader()
    intake = _current_intake(db)
    if intake is None:
        return _session_ended()
    if intake.status != "completed":
        return redirect(url_for("patient.start"))
    scoring = scores.get_scoring(db, intake.id)
    flags = scoring.result.get("flags", []) if scoring is not None else []
    stored = {str(flag.get("id")): str(flag["patientGuidance"]) for flag in flags if flag.get("patientGuidance")}
    by_tier = {tier: [str(flag.get("id")) for flag in flags if flag.get("tier") == tier]
               for tier in ("emergency", "urgent")}
    return render_template(
        "patient/done.html",
        guidance=_guidance(intake, by_tier["emergency"], stored),
        urgent_guidance=_guidance(intake, by_tier["urgent"], stored),
        urgent=bool(by_tier["urgent"]),
        flagged=bool(flags) or scoring is None,  # unscored (a rule failed): never "nothing else to do"
        staff_told=notify.configured(current_app),
    )
