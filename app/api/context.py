"""Access to the process's services Context from a view."""

from __future__ import annotations

from flask import current_app

from app.services.context import Context


def ctx() -> Context:
    return current_app.extensions["taskfleet"]
