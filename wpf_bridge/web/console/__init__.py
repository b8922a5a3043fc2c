"""The operator console (``/console``): what happened to whom, and replay what failed, without a
shell. Off unless ``WPF_CONSOLE_PASSWORD`` is set. Pages are rendered on the server; a small
script refreshes the live parts. Nothing secret is ever rendered: the access keys, the
application password, the Ortto key and generated passwords never reach a template."""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint, Flask, Response, abort, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup

from ... import history
from ...check import webhook_urls
from ...settings import Settings
from ...store import Store, StoreUnavailable
from ...types import DELIVERY_ACTIONS, DIRECTIONS, FAILED, RETRYING, STATUSES, TO_ORTTO, TO_WORDPRESS, towards
from .auth import configure_sessions, login_required, operator, shown_signed_in, sign_out, try_login
from .charts import TITLES, draw_charts
from .filters import PAGE_SIZE, read_filters
from .overview import check_view, outbox_view
from .previews import PREVIEW_ACTIONS, add_preview_pages

log = logging.getLogger(__name__)
SAFE_NEXT = re.compile(r"^/console/[A-Za-z0-9/_.?=&%-]*\Z")  # where sign-in may send back to: this console only
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: over HTTPS Flask-WTF requires the Referer of the console's own forms
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

WAY_NAMES = {TO_WORDPRESS: "WordPress", TO_ORTTO: "Ortto"}  # where a delivery goes, as the pages say it


def init_console(app: Flask, settings: Settings, store: Store) -> None:
    """Mount the console on ``app`` (only when a console password is set)."""
    configure_sessions(app, settings)
    csrf = CSRFProtect(app)  # checked only on the console's own forms (WTF_CSRF_CHECK_DEFAULT is off)
    app.register_blueprint(_blueprint(settings, store, csrf))


def _blueprint(settings: Settings, store: Store, csrf: CSRFProtect) -> Blueprint:
    console = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")
    signed = login_required(settings, store)

    @console.before_request
    def protect() -> None:
        if request.method == "POST":
            csrf.protect()

    @console.after_request
    def headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @console.errorhandler(CSRFError)
    def csrf_refused(exc: CSRFError) -> tuple[str, int]:
        log.warning("console: %s %s refused: %s", request.method, request.path, exc.description)
        return render_template(
            "console/error.html",
            message="This form has expired or did not come from this "
            "console (CSRF check failed). Go back, reload the page and try again.",
        ), 400

    @console.errorhandler(StoreUnavailable)
    def store_down(exc: StoreUnavailable) -> tuple[str, int]:
        log.error("%s", exc)
        return render_template(
            "console/error.html", message="The delivery store cannot be read now; try again in a moment."
        ), 503

    @console.context_processor
    def helpers() -> dict:
        return {
            "when": _when,
            "settled": history.settled,
            "ago": history.ago,
            "until": history.until,
            "now": time.time(),
            "zone": time.strftime("%Z"),
            "signed_in": shown_signed_in(settings, store),
            "operator": operator,
            "towards": towards,
            "directions": DIRECTIONS,
            "way_names": WAY_NAMES,
        }

    @console.route("/login", methods=["GET", "POST"])
    def login():
        error = ""
        if request.method == "POST":
            ok, error = try_login(settings, store, request.form.get("password", ""), request.form.get("name", ""))
            if ok:
                target = request.args.get("next", "")
                return redirect(target if SAFE_NEXT.match(target) else url_for(".overview"))
        return render_template("console/login.html", error=error), 401 if error else 200

    @console.post("/logout")
    def logout():
        sign_out(settings, store)
        return redirect(url_for(".login"))

    @console.get("/")
    @signed
    def overview():
        figures = store.figures.overview()
        template = "console/_figures.html" if request.args.get("partial") else "console/overview.html"
        return render_template(
            template,
            figures=figures,
            outbox=outbox_view(store),
            charts=draw_charts(store),
            chart_titles=TITLES,
            statuses=STATUSES,
            urls=webhook_urls(settings, request.url_root),
            check=check_view(store, operator(), again=bool(request.args.get("recheck"))),
        )

    @console.get("/check")
    @signed
    def check():
        return render_template("console/_check.html", check=check_view(store, operator()))

    @console.get("/deliveries")
    @signed
    def deliveries():
        filters = read_filters(request.args)
        found = store.deliveries.find(search=filters.search, limit=PAGE_SIZE + 1, offset=filters.page * PAGE_SIZE)
        replayable = store.deliveries.count(filters.replayable)
        context = {
            "filters": filters,
            "deliveries": found[:PAGE_SIZE],
            "more": len(found) > PAGE_SIZE,
            "replayable": replayable,
            "statuses": STATUSES,
            "actions": DELIVERY_ACTIONS,
        }
        if request.args.get("partial"):
            return render_template("console/_rows.html", **context)
        return render_template("console/deliveries.html", **context)

    @console.get("/person")
    @signed
    def person():
        who = (request.args.get("q") or "").strip()[:200]
        found = store.deliveries.of_person(who) if who else []
        return render_template(
            "console/person.html",
            who=who,
            deliveries=found,
            emails=sorted({d.email.lower() for d in found if d.email}),
            contact_ids=sorted({d.contact_id for d in found if d.contact_id}),
            user_ids=sorted({d.user_id for d in found if d.user_id}),
            wordpress_url=settings.wordpress_url,
        )

    add_preview_pages(console, store, signed)

    @console.get("/deliveries/<delivery_id>")
    @signed
    def delivery(delivery_id: str):
        found = store.deliveries.get(delivery_id) or abort(404)
        template = "console/_delivery.html" if request.args.get("partial") else "console/delivery.html"
        return render_template(
            template,
            d=found,
            steps=store.history.of(found.id),
            wordpress_url=settings.wordpress_url,
            replayable=found.status in (FAILED, RETRYING),
            default_role=settings.default_role,
            preview_actions=PREVIEW_ACTIONS,
        )

    @console.post("/deliveries/<delivery_id>/replay")
    @signed
    def replay_one(delivery_id: str):
        found = store.deliveries.get(delivery_id) or abort(404)
        replayed = store.operators.requeue(found.id, operator())
        store.operators.start_action(
            operator(),
            f"replay delivery {found.id} ({found.action}, {found.email or found.contact_id})"
            + ("" if replayed else f": left alone, it was {found.status}"),
            matched=int(replayed),
        )
        log.info("console: %s replayed delivery %s", operator(), found.id)
        return redirect(url_for(".delivery", delivery_id=found.id))

    @console.get("/replay")
    @signed
    def replay_confirm():
        filters = read_filters(request.args)
        return render_template("console/replay.html", filters=filters, count=store.deliveries.count(filters.replayable))

    @console.post("/replay")
    @signed
    def replay_matching():
        filters = read_filters(request.form)
        count = store.deliveries.count(filters.replayable)
        who = operator()
        action_id = store.operators.start_action(
            who,
            f"replay every failed or retrying delivery matching {filters.describe()}",
            matched=count,
            replay=filters.replayable,  # a worker does it, and stores its progress in this record
        )
        return redirect(url_for(".action", action_id=action_id) + "?" + filters.query())

    @console.get("/actions")
    @signed
    def actions():
        return render_template("console/actions.html", actions=store.operators.operator_actions())

    @console.get("/actions/<action_id>")
    @signed
    def action(action_id: str):
        found = store.operators.operator_action(action_id) or abort(404)
        if request.args.get("progress"):
            return jsonify(matched=found["matched"], done=found["done"], finished=found["finished_at"] is not None)
        return render_template("console/action.html", a=found, filters=read_filters(request.args))

    @console.get("/refused")
    @signed
    def refused():
        return render_template(
            "console/refused.html", recent=store.refusals.recent(), reasons=store.refusals.by_reason()
        )

    return console


def _when(timestamp: float | None) -> Markup:
    """A date and time that never wraps over lines."""
    return Markup('<time class="when">{}</time>').format(history.when(timestamp))
