"""The schema as the last release before numbered migrations left it, reached from any earlier store.

Stores made before migrations were numbered have no ``schema_migrations`` table: this first
migration runs on them too, so every statement tolerates what is already there, and the columns
added since 0.1 are added where missing.
"""

from __future__ import annotations

from ..database import Database, Transaction

# A migration is frozen: it spells out the values it was written with, whatever the code says later.
UNFINISHED = "('queued', 'retrying', 'running', 'pushing')"

_SCHEMA = """
create table if not exists deliveries (
    id text primary key,
    action text not null,
    contact_id text,
    email text,
    role text,
    send_notification integer not null default 0,
    status text not null,
    attempts integer not null default 0,
    result text,
    user_id integer,
    secret text,
    created_at {float} not null,
    updated_at {float} not null,
    retry_since {float} not null,
    lease_until {float},
    dedupe_key text,
    run_after {float} not null,
    push_to text
);
create index if not exists deliveries_dedupe on deliveries (dedupe_key, created_at);
create index if not exists deliveries_created on deliveries (created_at);
create index if not exists deliveries_updated on deliveries (updated_at);
drop index if exists deliveries_unfinished;
drop index if exists deliveries_unfinished_contact;
drop index if exists deliveries_unfinished_email;
create index if not exists deliveries_open on deliveries (created_at, id) where status in {unfinished};
create index if not exists deliveries_open_contact on deliveries (contact_id, created_at) where status in {unfinished};
create index if not exists deliveries_open_email on deliveries (email, created_at) where status in {unfinished};
create table if not exists key_failures (
    client text primary key,
    window_start {float} not null,
    failures integer not null
);
create index if not exists key_failures_window on key_failures (window_start);
create table if not exists key_totals (
    client text primary key,
    window_start {float} not null,
    failures integer not null
);
create table if not exists attempts (
    delivery_id text not null,
    at {float} not null,
    call text not null,
    status text not null,
    code text not null default '',
    message text not null,
    next_retry {float}
);
create index if not exists attempts_delivery on attempts (delivery_id, at);
create table if not exists refusals (
    reason text primary key,
    count integer not null,
    last_at {float} not null
);
create table if not exists heartbeats (
    worker text primary key,
    beat_at {float} not null
);
create table if not exists refused_recent (
    at {float} not null,
    status integer not null,
    reason text not null,
    client text not null
);
create index if not exists refused_recent_at on refused_recent (at);
create table if not exists operator_actions (
    id text primary key,
    at {float} not null,
    who text not null,
    what text not null,
    matched integer not null default 0,
    done integer not null default 0,
    finished_at {float},
    updated_at {float} not null
);
create index if not exists operator_actions_at on operator_actions (at);
create table if not exists marks (
    name text primary key,
    value {float} not null
);
create table if not exists console_sessions (
    id text primary key,
    who text not null,
    client text not null,
    password text not null,
    created_at {float} not null,
    expires_at {float} not null
);
create index if not exists console_sessions_expires on console_sessions (expires_at)
"""

# Columns added since 0.1 (when Huey held the queue), with what an older row gets.
_ADDED_COLUMNS = {
    "deliveries": {
        "run_after": "{float} not null default 0",
        "push_to": "text",
        "shape": "text",
        "lease_owner": "text",
    },
    "attempts": {"duration": "{float}", "calls": "text not null default ''"},
}

# PostgreSQL: a webhook's whole write as one statement, so one round trip to the server: the
# client's wrong-key block, the redelivery check (serialised per key) and the insert. The id comes
# from the caller, so the statement can be sent again after a lost connection: it then finds its
# own row instead of inserting a second. Times: the database's clock, as ``now`` elsewhere; the
# key block, the web host's (``key_failure`` writes its times).
_ADD_FUNCTION = """
create or replace function wpf_add_delivery(p_id text, p_action text, p_contact_id text, p_email text, p_role text,
    p_notify integer, p_key text, p_window double precision, p_shape text,
    p_client text, p_client_now double precision, p_key_window double precision, p_key_limit integer)
returns json language plpgsql as $fn$
declare
    v_now double precision;
    v_row deliveries;
    v_block key_failures;
begin
    if p_client is not null then
        select * into v_block from key_failures where client = p_client;
        if found and v_block.failures >= p_key_limit and v_block.window_start + p_key_window > p_client_now then
            return json_build_object('blocked', v_block.window_start + p_key_window - p_client_now);
        end if;
    end if;
    if p_key is not null then
        perform pg_advisory_xact_lock(2003854946, hashtext(p_key));  -- database.KEY_LOCK, as serialize_key
    end if;
    select * into v_row from deliveries where id = p_id;
    if found then
        return json_build_object('added', true, 'delivery', row_to_json(v_row));
    end if;
    v_now := extract(epoch from clock_timestamp());
    if p_key is not null then
        select * into v_row from deliveries where dedupe_key = p_key and created_at > v_now - p_window
            order by created_at limit 1;
        if found then
            return json_build_object('added', false, 'delivery', row_to_json(v_row));
        end if;
    end if;
    insert into deliveries (id, action, contact_id, email, role, send_notification, status, created_at, updated_at,
                            retry_since, dedupe_key, run_after, shape)
        values (p_id, p_action, p_contact_id, p_email, p_role, p_notify, 'queued', v_now, v_now, v_now, p_key, v_now,
                p_shape)
        returning * into v_row;
    return json_build_object('added', true, 'delivery', row_to_json(v_row));
end
$fn$
"""


def apply(tx: Transaction, database: Database) -> None:
    statements = _SCHEMA.format(float=database.float_type, unfinished=UNFINISHED).split(";")
    tx.execute(statements[0])  # the deliveries table
    _add_columns(tx, database, "deliveries")
    for statement in statements[1:]:
        tx.execute(statement)
    _add_columns(tx, database, "attempts")
    if database.functions:
        tx.execute(_ADD_FUNCTION)


def _add_columns(tx: Transaction, database: Database, table: str) -> None:
    """Bring a table written by an earlier version up to date."""
    columns = database.columns(tx, table)
    for name, definition in _ADDED_COLUMNS[table].items():
        if name not in columns:
            tx.execute(f"alter table {table} add column {name} {definition.format(float=database.float_type)}")
