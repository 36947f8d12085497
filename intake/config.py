"""Configuration: defaults, then `INTAKE_*` / `DATABASE_URL` from the environment, then overrides.

Secrets come only from the environment. For the embedded default (`make run`) a random secret key
is generated once into the instance folder, which git ignores.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from intake.core.extract import SID
from intake.core.reminders import QuietHours

PROJECT_ROOT = Path(__file__).resolve().parent.parent

MRN_SYSTEM = SID + "mrn"  # a local system until a deployment names its EHR's (INTAKE_MRN_SYSTEM)
DEFAULT_QUESTIONNAIRES = ["digestive", "neuropathy", "autoimmune", "diet", "stress"]

# name -> (type, default). Each is read from INTAKE_<NAME>.
SETTINGS: dict[str, tuple[type, Any]] = {
    "FORMS_DIR": (str, str(PROJECT_ROOT / "forms")),
    "QUESTIONNAIRES": (list, DEFAULT_QUESTIONNAIRES),
    "LINK_TTL_HOURS": (int, 7 * 24),
    "BASE_URL": (str, "http://127.0.0.1:5000"),
    "SESSION_HOURS": (int, 12),
    "CSRF_MINUTES": (int, 60),
    "TIMEZONE": (str, "UTC"),
    # Scoring: the age (years) at GI symptom onset that raises the GI-AF5 flag (reference §2.2).
    "GI_ONSET_AGE": (int, 50),
    # Who a patient who reports danger is told to call (intake/web/contacts.py), shown as tap-to-call
    # links under the guidance. Empty: the pages say "your local emergency number" and name no
    # country's numbers. CRISIS_LINES is "Label|number; Label|number"; CRISIS_LINES_ES, when set,
    # replaces it on Spanish pages (a line's name, or a Spanish-speaking line, differs by language).
    "EMERGENCY_NUMBER": (str, ""),
    "CLINIC_PHONE": (str, ""),
    "CRISIS_LINES": (str, ""),
    "CRISIS_LINES_ES": (str, ""),
    # Staff notification of emergency/urgent flags (once per flag): a webhook and/or e-mail.
    "NOTIFY_WEBHOOK": (str, ""),
    "NOTIFY_EMAIL_TO": (str, ""),
    "SMTP_HOST": (str, "127.0.0.1"),
    "SMTP_PORT": (int, 25),
    "SMTP_FROM": (str, "intake@localhost"),
    "SMTP_USER": (str, ""),
    "SMTP_PASSWORD": (str, ""),
    "SMTP_STARTTLS": (bool, False),
    # Invitations and reminders to patients (intake/invitations.py): e-mail through the SMTP_*
    # server above; SMS through a provider with Twilio's Messages API shape (POST To/From/Body,
    # basic auth ACCOUNT:TOKEN) at SMS_URL, sent from SMS_FROM. Reminders go REMINDER_HOURS before
    # the appointment (at most REMINDER_MAX of them), never in QUIET_HOURS (local, INTAKE_TIMEZONE).
    "SMS_URL": (str, ""),
    "SMS_ACCOUNT": (str, ""),
    "SMS_TOKEN": (str, ""),
    "SMS_FROM": (str, ""),
    "REMINDER_HOURS": (list, ["48", "4"]),
    "REMINDER_MAX": (int, 2),
    "QUIET_HOURS": (str, "21:00-08:00"),
    # Staff sessions end after this long without a request, and this long after sign-in.
    "STAFF_IDLE_MINUTES": (int, 15),
    "STAFF_SESSION_HOURS": (int, 10),
    # The audit rows of reads: "behind" (a queue written by a thread per process, group commit)
    # or "sync" (written before each response). Sign-ins and changes are always written with them.
    "AUDIT_QUEUE": (str, "behind"),
    # The key of the audit log's HMAC chain (a secret, at least 32 characters, never in the
    # database; the same in every process of a deployment). Required with INTAKE_JOBS=celery
    # (production); the embedded default generates one into the instance folder (docs/security.md).
    "AUDIT_KEY": (str, ""),
    # The audit chain's head goes to the application log (an AUDIT_ANCHOR line) every this many rows.
    "AUDIT_ANCHOR_ROWS": (int, 100),
    # How many audit rows were written before the chain was keyed (migration 0012 logs the number
    # when it upgrades a log that has rows): `audit verify` accepts unkeyed rows only up to there.
    "AUDIT_UNKEYED_ROWS": (int, 0),
    # Rate limits (Flask-Limiter syntax) per client address, and where the counts live.
    "LINK_RATE_LIMIT": (str, "20 per minute"),
    "TOKEN_RATE_LIMIT": (str, "60 per minute"),
    # Staff sign-in: failed attempts per address; per address and user name (and, softly, per
    # user name from anywhere: intake/web/limits.py); wrong TOTP codes per account.
    "LOGIN_RATE_LIMIT": (str, "10 per minute"),
    "LOGIN_USER_RATE_LIMIT": (str, "30 per hour"),
    "LOGIN_CODE_RATE_LIMIT": (str, "5 per 15 minutes"),
    "RATE_LIMIT_STORAGE": (str, "memory://"),
    # Reverse proxies in front of the service whose X-Forwarded-For/-Proto/-Host/-Port headers
    # are believed (intake/web/proxies.py): 0 = none, the client connects directly.
    "TRUSTED_PROXIES": (int, 0),
    # Background jobs (outbox rows, bulk export): "thread" (in-process, after the request: the
    # embedded default), "eager" (at once, in the caller: tests and one-off commands) or "celery"
    # (handed to Celery workers over the broker below: production, intake/celery_app.py).
    "JOBS": (str, "thread"),
    "CELERY_BROKER_URL": (str, "redis://127.0.0.1:6379/0"),
    # Seconds before Redis hands an unacknowledged task to another worker (acks_late): longer than
    # any task runs, and short enough that a killed worker's task is not left waiting long.
    "CELERY_VISIBILITY_TIMEOUT": (int, 600),
    # The outbox (intake/jobs/outbox.py): how often due rows are looked for, how long a hand-over lasts
    # before the row is handed over again, and retries: exponential backoff from BACKOFF seconds,
    # capped at BACKOFF_MAX, with jitter; after MAX_ATTEMPTS the row is a dead letter.
    "OUTBOX_POLL_SECONDS": (float, 2.0),
    "OUTBOX_LEASE_SECONDS": (float, 300.0),
    "OUTBOX_BACKOFF_SECONDS": (float, 2.0),
    "OUTBOX_BACKOFF_MAX_SECONDS": (float, 600.0),
    "OUTBOX_MAX_ATTEMPTS": (int, 20),
    # Whether a process that serves starts the in-process poller (the clock of outbox dispatch and
    # bulk-export expiry) when the app is created, so work left by a previous run goes out without
    # waiting for a request (intake/jobs/background.py): "on", "off" (the default of TESTING apps), or
    # "worker" (the server starts it in each worker process: gunicorn.conf.py sets this). Celery
    # mode never starts it: `celery beat` is the clock there.
    "OUTBOX_POLLER": (str, "on"),
    # Bulk export (intake/fhir/bulk_export.py): hours a job's files are kept after it ends (then its
    # status and file URLs answer 404 and the files are deleted), and how many unexpired jobs
    # (running or finished, not deleted) one API client may hold before a kick-off answers 429.
    "BULK_EXPORT_TTL_HOURS": (float, 24.0),
    "BULK_EXPORT_MAX_JOBS_PER_CLIENT": (int, 3),
    # EHR push (optional): each completed intake's $extract transaction Bundle is POSTed to this
    # FHIR base, with this bearer token (a secret: from the environment only), within this timeout.
    "EHR_FHIR_BASE": (str, ""),
    "EHR_BEARER_TOKEN": (str, ""),
    "EHR_TIMEOUT_SECONDS": (float, 30.0),
    # How the Bundle is sent (intake/fhir/ehr_push.py; `flask intake ehr check` says which fits):
    # "transaction" (dependency-ordered transactions of at most MAX_ENTRIES entries and about
    # MAX_BYTES bytes: 8 suits Medplum, whose cap with conditional entries is the lowest known) or
    # "sequence" (one conditional create/update per request, for EHRs without Bundles).
    "EHR_PUSH_MODE": (str, "transaction"),
    "EHR_MAX_ENTRIES": (int, 8),
    "EHR_MAX_BYTES": (int, 900_000),
    # A push for a patient linked to no EHR record (no EHR Patient reference, no record number):
    # "create" sends our Patient as before; "hold" keeps it for staff to link (intake/fhir/patient_match.py).
    "EHR_UNMATCHED_PATIENT": (str, "create"),
    # How the push authenticates (intake/fhir/ehr_auth.py): "bearer" (EHR_BEARER_TOKEN, or none) or
    # "smart-backend" (SMART Backend Services: a client assertion signed with EHR_CLIENT_KEY_FILE,
    # whose public key is served at /.well-known/jwks.json, exchanged for an access token at the EHR's
    # token endpoint: EHR_TOKEN_URL, or found in the EHR's .well-known/smart-configuration).
    "EHR_AUTH": (str, "bearer"),
    "EHR_CLIENT_ID": (str, ""),
    "EHR_CLIENT_KEY_FILE": (str, ""),
    "EHR_CLIENT_KEY_ID": (str, ""),
    "EHR_TOKEN_URL": (str, ""),
    "EHR_SCOPE": (str, "system/Patient.read system/*.write"),
    # The system of the patient record numbers given with `flask intake invite --mrn`.
    "MRN_SYSTEM": (str, MRN_SYSTEM),
}


def _parse(kind: type, raw: str) -> Any:
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def load_config(instance_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Flask config dict for one app."""
    env = os.environ
    config: dict[str, Any] = {}
    for name, (kind, default) in SETTINGS.items():
        raw = env.get(f"INTAKE_{name}")
        config[f"INTAKE_{name}"] = _parse(kind, raw) if raw is not None else default
    config["DATABASE_URL"] = env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'intake.sqlite3'}"
    config["SECRET_KEY"] = env.get("INTAKE_SECRET_KEY")
    config.update(overrides or {})
    if config.get("TESTING") and "INTAKE_OUTBOX_POLLER" not in env and "INTAKE_OUTBOX_POLLER" not in (overrides or {}):
        config["INTAKE_OUTBOX_POLLER"] = "off"  # test apps leave no thread behind unless a test asks
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _instance_secret(instance_path)
    if not config.get("INTAKE_AUDIT_KEY"):
        if config["INTAKE_JOBS"] == "celery":
            # several processes, often on several machines: a key generated per instance folder
            # would differ between them, and a key beside the database protects nothing
            raise ValueError("INTAKE_AUDIT_KEY must be set in production (INTAKE_JOBS=celery): "
                             "the same secret of 32 or more characters in every process")
        config["INTAKE_AUDIT_KEY"] = _instance_secret(instance_path, "audit_key")
    if config["INTAKE_EHR_UNMATCHED_PATIENT"] not in ("create", "hold"):
        raise ValueError("INTAKE_EHR_UNMATCHED_PATIENT must be create or hold, "
                         f"not {config['INTAKE_EHR_UNMATCHED_PATIENT']!r}")
    try:  # a wrong window or hour stops start-up, not the first reminder
        QuietHours.parse(str(config["INTAKE_QUIET_HOURS"]), str(config["INTAKE_TIMEZONE"]))
        [float(hours) for hours in config["INTAKE_REMINDER_HOURS"]]
    except ValueError as exc:
        raise ValueError(f"{exc} (INTAKE_QUIET_HOURS, INTAKE_REMINDER_HOURS)") from None
    from datetime import timedelta

    config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=config["INTAKE_SESSION_HOURS"]))
    config.setdefault("WTF_CSRF_TIME_LIMIT", config["INTAKE_CSRF_MINUTES"] * 60)
    # The session lasts INTAKE_SESSION_HOURS from opening the link (an absolute timeout); the
    # cookie is only re-sent when the session changes, not re-signed on every page.
    config.setdefault("SESSION_REFRESH_EACH_REQUEST", False)
    config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    config.setdefault("MAX_CONTENT_LENGTH", 1024 * 1024)
    if str(config["INTAKE_BASE_URL"]).startswith("https://"):
        # Served over HTTPS: the cookie never travels in clear, and the __Host- prefix pins it to
        # this host and path (browsers refuse it otherwise).
        config.setdefault("SESSION_COOKIE_SECURE", True)
        config.setdefault("SESSION_COOKIE_NAME", "__Host-intake")
        config.setdefault("SESSION_COOKIE_PATH", "/")
    return config


def _instance_secret(instance_path: Path, name: str = "secret_key") -> str:
    """A per-installation random key for the embedded default; never committed."""
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / name
    if not path.exists():
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()
