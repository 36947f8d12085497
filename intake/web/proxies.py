"""Requests that reach the service through reverse proxies (a TLS terminator, a load balancer).

Behind a proxy every request comes from the proxy's address, so the audit log's "from where"
and the per-address rate limits (sign-in, patient links, tokens) would see one client. With
INTAKE_TRUSTED_PROXIES = n, werkzeug's ProxyFix takes the client address, scheme, host and port
from the X-Forwarded-* headers the nearest n proxies add. The default, 0, trusts no header: set
directly on the internet, a client could otherwise write any address it liked there.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def register(app: Flask) -> None:
    hops = int(app.config["INTAKE_TRUSTED_PROXIES"])
    if hops < 0:
        raise ValueError("INTAKE_TRUSTED_PROXIES must be 0 or more")
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
