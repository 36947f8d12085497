"""The pure pipeline: catalog, enablement, answers, validation (and later scoring).

Nothing in here imports Flask, SQLAlchemy or WeasyPrint, so it can be tested and reused
without a server (DESIGN.md, "The one-way flow").
"""
