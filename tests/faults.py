"""The fault suite's instruments: a sender that retries like Ortto, an audit of what WordPress and
Ortto hold afterwards, and the ledger printed at the end of the run (see ``conftest``)."""
from __future__ import annotations

import collections
import itertools
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from conftest import PASSWORD_FIELD

from wpf_bridge.store import Store
from wpf_bridge.types import DONE

RETRIED_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class Tally:
    """One scenario's line in the ledger."""

    scenario: str
    tried: str
    sent: int = 0  # distinct webhook calls (or hostile requests) sent
    applied: int = 0  # deliveries that ended done (or, for attacks, were refused as they should be)
    retried: int = 0  # deliveries that needed more than one attempt
    duplicated: int = 0
    lost: int = 0
    let_in: int = 0  # hostile requests stored, privileged users changed, administrators made
    mail_cut: int = 0  # welcome emails WordPress had begun to hand to its mailer when it was killed
    recovery: float | None = None  # longest time from a kill to the last person it hit having user, email, password
    problems: list[str] = field(default_factory=list)

    def check(self, mail_cut_at_most: int = 0) -> None:
        """Nothing lost, duplicated or let in; ``mail_cut_at_most`` for a scenario that kills WordPress."""
        assert (self.lost, self.duplicated, self.let_in) == (0, 0, 0), "\n".join([str(self), *self.problems[:20]])
        assert self.mail_cut <= mail_cut_at_most, "\n".join([str(self), *self.problems[:20]])


LEDGER: list[Tally] = []


def ledger_table() -> str:
    header = (f"{'scenario':36} {'sent':>5} {'applied':>7} {'retried':>7} {'dup':>4} {'lost':>4} {'let in':>6} "
              f"{'mail cut':>8} {'recovery':>8}  what was tried")
    lines = [header, "-" * len(header)]
    for t in LEDGER:
        recovery = f"{t.recovery:7.1f}s" if t.recovery is not None else ""
        lines.append(f"{t.scenario:36} {t.sent:5} {t.applied:7} {t.retried:7} {t.duplicated:4} {t.lost:4} {t.let_in:6} "
                     f"{t.mail_cut:8} {recovery:>8}  {t.tried}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Call:
    """One webhook call as an Ortto journey makes it (its run id makes a resend a redelivery)."""

    action: str
    payload: dict
    query: dict = field(default_factory=dict)


def add_call(contact_id: str, run: str = "") -> Call:
    payload = {"campaign_id": "fault-suite", "contact_id": contact_id, "run_id": run or secrets.token_hex(6), "shape_id": "1"}
    return Call("add", payload, {"role": "customer", "send_notification": "true"})


def send(base_urls: list[str], key: str, call: Call, deadline: float = 120.0) -> dict:
    """POST the call until it is answered 2xx, as Ortto retries a delivery; return the answer with
    ``tries``. Connection errors, 429 and 5xx are retried (the web process may be down), each try
    on the next web process, as a load balancer would; 4xx fails."""
    params = {"wpf_action": call.action, "access_key": key, **call.query}
    give_up = time.monotonic() + deadline
    first = random.randrange(len(base_urls))
    for tries in itertools.count(1):
        try:
            base_url = base_urls[(first + tries) % len(base_urls)]
            answer = requests.post(f"{base_url}/", params=params, json=call.payload, timeout=10)
            if answer.status_code in (200, 202):
                return {**answer.json(), "tries": tries}
            assert answer.status_code in RETRIED_STATUSES, f"refused: {answer.status_code} {answer.text}"
        except requests.RequestException:
            pass
        assert time.monotonic() < give_up, f"not accepted within {deadline} s"
        time.sleep(0.1)  # Ortto's pause between retries, not a wait for anything


def send_all(base_urls: list[str], key: str, calls: list[Call], concurrency: int = 8) -> list[dict]:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda call: send(base_urls, key, call), calls))


def new_people(ortto, n: int, prefix: str) -> list[tuple[str, str]]:
    """``n`` Ortto contacts with no WordPress user yet: (contact id, email)."""
    people = []
    for _ in range(n):
        email = f"{prefix}-{secrets.token_hex(5)}@example.test"
        people.append((ortto.add_person({"str::email": email, "str::first": prefix.title(), "str::last": "Fault"}), email))
    return people


def settle(store: Store, ids: list[str], timeout: float) -> dict[str, int]:
    """Poll until every delivery has ended or the deadline passes; return the count per status."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = collections.Counter(store.deliveries.get(i).status for i in set(ids))
        if set(statuses) <= {"done", "skipped", "failed"} or time.monotonic() > deadline:
            return dict(statuses)
        time.sleep(0.1)


def add_burst(base_urls: list[str], key: str, people: list[tuple[str, str]], concurrency: int = 8) -> list[str]:
    """One ``add`` per person, sent at once; the delivery ids."""
    return [a["delivery_id"] for a in send_all(base_urls, key, [add_call(cid) for cid, _ in people], concurrency)]


def audit_new_users(tally: Tally, wordpress, ortto, store: Store, people: list[tuple[str, str]],
                    delivery_ids: list[str], calls: int, within: float = 120.0, role: str = "customer") -> Tally:
    """Wait up to ``within`` seconds for the deliveries to end, then check. Each person should have exactly one WordPress user with ``role``, one welcome email, one
    password pushed to Ortto that logs in; every accepted delivery done; one stored delivery per
    distinct call. A person with more than one of anything counts as duplicated, a person missing
    any of it or a delivery that never ended as lost; ``applied`` counts the deliveries done.

    The one exception is the welcome email WordPress was killed while handing to its mailer: the
    email is at most once by design (no second email), so that kill can cost it. It is counted in
    ``mail_cut`` when the plugin's mark proves it, and only a kill of WordPress can cause it."""
    settle(store, delivery_ids, within)
    emails = [email for _, email in people]
    accounts = wordpress.accounts(emails)
    mail = wordpress.mail_count()
    pushed: dict[str, set[str]] = collections.defaultdict(set)
    for body in ortto.calls_to("/v1/person/merge"):
        for person in body["people"]:
            if PASSWORD_FIELD in person["fields"]:
                pushed[person["fields"]["str::person_id"]].add(person["fields"][PASSWORD_FIELD])
    logins = wordpress.logins({email: ortto.people[cid].get(PASSWORD_FIELD) or "-" for cid, email in people})
    for contact_id, email in people:
        users, sent, passwords = accounts[email], mail[email], pushed[contact_id]
        if len(users) > 1 or sent > 1 or len(passwords) > 1:
            tally.duplicated += 1
            tally.problems.append(f"{email}: {len(users)} users, {sent} emails, {len(passwords)} passwords")
        elif users and not sent and users[0]["notified"] and passwords and logins[email]:
            tally.mail_cut += 1  # at most once: the plugin had marked it, WordPress died handing it over
            tally.problems.append(f"{email}: welcome email cut off by the kill")
        elif not users or not sent or not passwords or not logins[email] or users[0]["roles"] != [role]:
            tally.lost += 1
            tally.problems.append(f"{email}: users {users}, {sent} emails, {len(passwords)} passwords, login {logins[email]}")
    records = [store.deliveries.get(i) for i in set(delivery_ids)]
    unfinished = [d for d in records if d.status != DONE]
    tally.retried = sum(1 for d in records if d.attempts > 1)
    tally.problems += [f"delivery {d.id} {d.status}: {d.result}" for d in unfinished]
    tally.applied = len(set(delivery_ids)) - len(unfinished)
    stored = sum(store.deliveries.counts().values())
    if stored != calls:
        tally.duplicated += max(0, stored - calls)
        tally.problems.append(f"{stored} deliveries stored for {calls} distinct calls")
    tally.lost = max(tally.lost, len(unfinished))  # an unfinished delivery is lost even if its person looks right
    LEDGER.append(tally)
    return tally


def in_flight(store: Store) -> list[str]:
    """The deliveries a kill would hit now: running, or waiting for their password push."""
    return [d.id for status in ("running", "pushing") for d in store.deliveries.find(status=status, limit=None)]


def recovery(store: Store, kills: list[tuple[float, list[str]]]) -> float:
    """The longest time from a kill to the moment the last delivery it hit was done (the person has
    their user, their email and their password in Ortto)."""
    return max((max(store.deliveries.get(i).updated_at for i in hit) - killed_at for killed_at, hit in kills if hit), default=0.0)
