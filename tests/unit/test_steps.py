"""Each action's steps, against a WordPress kept in a dict: what it asks in which order, which
password it keeps and sends, and how it carries on when WordPress says a username or an email is
taken. The worker sends the same requests, alone or a group's together (tests/test_batch.py)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from wpf_bridge.actions import ACTIONS, Context, Look
from wpf_bridge.accounts import Lookup, User
from wpf_bridge.clients.wordpress import WordPressError
from wpf_bridge.rules import Outcome, Write
from wpf_bridge.types import DONE, PUSHING, SKIPPED

from .facts import CONTACT_ID, POLICY, SITE, contact, delivery, user


@dataclass
class Journal:
    pending: str | None = None
    kept: list[str] = field(default_factory=list)
    forgotten: int = 0

    def pending_password(self) -> str | None:
        return self.pending

    def keep_password(self, password: str, person_id: str) -> None:
        assert person_id == CONTACT_ID
        self.pending = password
        self.kept.append(password)

    def forget_password(self) -> None:
        self.pending, self.forgotten = None, self.forgotten + 1


@dataclass
class WordPress:
    """Users by email; ``logins`` taken; ``appears``: a user that shows up after the first look-up."""

    users: dict[str, User] = field(default_factory=dict)
    logins: set[str] = field(default_factory=set)
    appears: User | None = None
    asked: list = field(default_factory=list)

    def answer(self, request):
        self.asked.append(request)
        if isinstance(request, Look):
            found = self.users.get(request.email or "")
            if self.appears:
                self.users[self.appears.email], self.appears = self.appears, None
            return Lookup(found if found and found.contact_id == request.contact_id else None, found)
        if request.user_id:
            return next(u for u in self.users.values() if u.id == request.user_id)
        if request.values["username"] in self.logins:
            raise WordPressError("taken", "existing_user_login")
        if request.values["email"] in self.users:
            raise WordPressError("taken", "existing_user_email")
        made = user(41, username=request.values["username"], email=request.values["email"])
        self.users[made.email] = made
        return made


def run(action, wordpress, journal=None, policy=POLICY, **asked):
    """The action's outcome, driven as the worker drives it."""
    steps = ACTIONS[action](delivery(action, **asked), contact(), Context(policy, journal or Journal(), lambda: SITE))
    answer = error = None
    while True:
        try:
            request = steps.throw(error) if error else steps.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = error = None
        try:
            answer = wordpress.answer(request)
        except WordPressError as exc:
            error = exc


def creates(wordpress):
    return [r for r in wordpress.asked if isinstance(r, Write) and r.user_id is None]


def test_a_new_user_is_a_look_up_and_a_create_with_a_password_kept_before_it():
    wordpress, journal = WordPress(), Journal()
    assert run("add", wordpress, journal) == Outcome(PUSHING, "created user 41 (jane@example.test)", 41)
    [look, create] = wordpress.asked
    assert look == Look(CONTACT_ID, "jane@example.test") and create.values["password"] == journal.kept[0]


def test_a_retry_creates_with_the_password_kept_before_and_keeps_no_other():
    wordpress, journal = WordPress(), Journal(pending="Kept-Pass-123")
    assert run("add", wordpress, journal).status == PUSHING
    assert creates(wordpress)[0].values["password"] == "Kept-Pass-123" and journal.kept == []


def test_a_mapped_password_is_used_and_never_kept():
    wordpress, journal = WordPress(), Journal()
    steps = ACTIONS["add"](delivery(), contact(**{"str:cm:password": "Mapped-1"}), Context(POLICY, journal, lambda: SITE))
    next(steps)
    request = steps.send(Lookup(None, None))
    assert request.values["password"] == "Mapped-1" and journal.kept == []
    with pytest.raises(StopIteration) as stop:
        steps.send(user(41, username="jane@example.test"))
    assert stop.value.value == Outcome(DONE, "created user 41 (jane@example.test) with the mapped password", 41)


def test_taken_usernames_are_skipped_in_order():
    wordpress = WordPress(logins={"jane@example.test", "jane@example.test1"})
    assert run("add", wordpress).message == "created user 41 (jane@example.test2)"
    assert [c.values["username"] for c in creates(wordpress)] == [
        "jane@example.test", "jane@example.test1", "jane@example.test2"]


def test_without_a_password_field_the_kept_password_is_forgotten_once_the_user_exists():
    journal = Journal()
    outcome = run("add", WordPress(), journal, policy=replace(POLICY, returns_password=False))
    assert outcome.status == DONE and journal.kept and journal.forgotten == 1 and journal.pending is None


def test_an_email_taken_since_the_look_up_updates_that_user_and_forgets_the_password():
    wordpress, journal = WordPress(appears=user(9)), Journal()
    outcome = run("add", wordpress, journal, role="customer")
    assert outcome == Outcome(DONE, "updated user 9; role subscriber -> customer", 9)
    assert [type(r).__name__ for r in wordpress.asked] == ["Look", "Write", "Look", "Write"]
    assert journal.forgotten == 1 and journal.pending is None


def test_an_email_taken_by_this_delivery_s_own_user_finishes_it_with_its_password():
    """A batch WordPress refused as a whole after applying this create: the user is ours."""
    ours = user(9, contact_id=CONTACT_ID, delivery_id="d-1", notified=True)
    journal = Journal()
    assert run("add", WordPress(appears=ours), journal, send_notification=True) == Outcome(
        PUSHING, "created user 9 (jane)", 9)
    assert journal.forgotten == 0 and journal.pending == journal.kept[0]


def test_the_user_this_delivery_created_gets_the_welcome_email_it_still_owes():
    ours = user(9, contact_id=CONTACT_ID, delivery_id="d-1", notified=False)
    wordpress = WordPress({ours.email: ours})
    assert run("add", wordpress, Journal(pending="Kept-1"), send_notification=True).status == PUSHING
    assert wordpress.asked[1] == Write(9, {"wpf_send_notification": True})


@pytest.mark.parametrize("action", ["add", "update", "update_tags"])
def test_a_privileged_user_gets_a_look_up_and_nothing_else(action):
    wordpress = WordPress({"jane@example.test": user(roles=("editor",))})
    assert run(action, wordpress, role="customer").status == SKIPPED
    assert [type(r).__name__ for r in wordpress.asked] == ["Look"]


def test_an_error_no_rule_expects_ends_the_run_as_it_is():
    steps = ACTIONS["add"](delivery(), contact(), Context(POLICY, Journal(), lambda: SITE))
    next(steps)
    steps.send(Lookup(None, None))
    with pytest.raises(WordPressError, match="no"):
        steps.throw(WordPressError("no", "rest_cannot_create_user"))
