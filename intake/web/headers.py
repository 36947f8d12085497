"""Security headers on every response (OWASP ASVS 14.4): what a browser may load, frame or leak.

The pages need nothing inline: one same-origin script (static/intake.js), same-origin styles, and
inline SVG sparklines drawn with attributes. So the policy allows only 'self', with no
'unsafe-inline' anywhere; `frame-ancestors 'none'` stops click-jacking.

HSTS is sent when the service is served over HTTPS: its INTAKE_BASE_URL is https://, or the
request itself came over HTTPS. The base URL decides even when the request reached the app over
plain HTTP from a TLS-terminating proxy (browsers take the header only from HTTPS responses, and
the proxy's were). With an http:// base URL and a plain request (local development) it is not
sent: it would pin a development host to HTTPS.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.wrappers import Response

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=63072000; includeSubDomains"


def register(app: Flask) -> None:
    served_over_https = str(app.config["INTAKE_BASE_URL"]).startswith("https://")

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if served_over_https or request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")  # health information: never cached
        return response
