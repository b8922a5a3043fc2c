"""The console's preview ("what would add do to Jane?"). The page records the question and a
worker answers it: only workers speak to Ortto and WordPress, so a slow peer holds no web worker."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from flask import Blueprint, abort, redirect, render_template, request, url_for
from marshmallow import ValidationError, validate

from ...store import Store
from ...store.previews import Preview
from ...types import CONTACT_ID, ROLE_NAME
from .auth import operator

PREVIEW_ACTIONS = ("add", "update", "update_tags")
_EMAIL = validate.Email()


@dataclass(frozen=True)
class PreviewForm:
    person: str = ""
    action: str = "add"
    role: str | None = None
    notify: bool = False
    errors: tuple[str, ...] = ()


def read_preview_form(form: Mapping[str, str]) -> PreviewForm:
    """What the operator asked, checked as a webhook's parameters are; each problem said."""
    person = (form.get("q") or "").strip()[:254]
    action = form.get("action") or "add"
    role = (form.get("role") or "").strip()[:100] or None
    errors = []
    if not person:
        errors.append("Whose? Give an email or an Ortto contact id.")
    elif "@" in person:
        try:
            _EMAIL(person)
        except ValidationError:
            errors.append(f"{person!r} is not an email address.")
    elif not re.match(CONTACT_ID, person):
        errors.append(f"{person!r} is neither an email nor an Ortto contact id.")
    if action not in PREVIEW_ACTIONS:
        errors.append(f"Unknown action {action!r}: use one of {', '.join(PREVIEW_ACTIONS)}.")
        action = "add"
    if role and not re.match(ROLE_NAME, role):
        errors.append(f"{role!r} is not a role name (lower-case letters, digits, - and _).")
    return PreviewForm(person, action, role, form.get("notify") == "1", tuple(errors))


def add_preview_pages(console: Blueprint, store: Store, signed: Callable) -> None:
    def page(form: PreviewForm, status: int = 200, shown: Preview | None = None) -> tuple[str, int]:
        return render_template(
            "console/preview.html",
            form=form,
            shown=shown,
            actions=PREVIEW_ACTIONS,
            recent=store.previews.recent(),
            worker_alive=store.figures.worker_alive(),
        ), status

    @console.get("/preview")
    @signed
    def preview_form():
        """The form, filled from the query (a person's page, a delivery's parameters)."""
        form = read_preview_form(request.args)
        return page(form if request.args.get("q") else replace(form, errors=()))

    @console.post("/preview")
    @signed
    def preview_ask():
        form = read_preview_form(request.form)
        if form.errors:
            return page(form, 400)
        preview_id = store.previews.ask(operator(), form.person, form.action, form.role, form.notify)
        return redirect(url_for(".preview", preview_id=preview_id))

    @console.get("/preview/<preview_id>")
    @signed
    def preview(preview_id: str):
        shown = store.previews.get(preview_id) or abort(404)
        if request.args.get("partial"):
            return render_template("console/_preview.html", shown=shown, worker_alive=store.figures.worker_alive())
        return page(PreviewForm(shown.person, shown.action, shown.role, shown.notify), shown=shown)
