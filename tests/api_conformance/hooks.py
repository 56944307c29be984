"""Schemathesis hooks for OmniChat's conformance run (loaded by run.sh via SCHEMATHESIS_HOOKS).

Valid logins: every other valid `POST /token` case logs in as the run's own user (run.sh passes
its email and password in ST_LOGIN_EMAIL and ST_LOGIN_PASSWORD), so the 200 and its token are
checked against the document too, not only the 401 of credentials that were made up.

A new password must also not be one of the commonly breached passwords the server ships
(actors/src/auth/breached.txt), nor the account's email or username, whatever the case. JSON
Schema cannot say that (the list is compared case-insensitively), so the document says it in
words, and generated bodies that break it are dropped here: the server's 422 for them is the
documented rule, not a schema-valid request refused. Every other check on these operations stays.
"""

import os
from pathlib import Path

import schemathesis

_LIST = Path(__file__).resolve().parents[2] / "actors" / "src" / "auth" / "breached.txt"
BREACHED = {
    line
    for line in _LIST.read_text(encoding="utf-8").splitlines()
    if line and not line.startswith("#")
}


def _refused_password(password, *personal):
    if not isinstance(password, str):
        return False
    lower = password.lower()
    return lower in BREACHED or any(
        isinstance(value, str) and lower == value.lower() for value in personal
    )


# `filter_case` rather than `filter_body`: the coverage phase applies only the case hooks.
@schemathesis.hook("filter_case").apply_to(operation_id="sign_up")
def sign_up_password_is_not_refused(context, case):
    body = case.body
    if not isinstance(body, dict):
        return True
    return not _refused_password(body.get("password"), body.get("email"), body.get("username"))


@schemathesis.hook("filter_case").apply_to(operation_id="change_password")
def new_password_is_not_refused(context, case):
    body = case.body
    if not isinstance(body, dict):
        return True
    return not _refused_password(body.get("new_password"), "conformance@example.com", "conformance")


LOGIN = (os.environ.get("ST_LOGIN_EMAIL"), os.environ.get("ST_LOGIN_PASSWORD"))


@schemathesis.hook("map_case").apply_to(operation_id="login")
def log_in_as_the_run_user(context, case):
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and all(LOGIN) and isinstance(case.body, dict) and len(repr(case.body)) % 2 == 0:
        case.body = {**case.body, "username": LOGIN[0], "password": LOGIN[1]}
    return case


# Page tokens: `cursor` (GET /sessions) and `before` (GET /sessions/{id}) are valid only as the
# server gave them out in a `Link: <...>; rel="next"` header, for that listing. A made-up value
# of the right type is refused with the documented 422 ("not one this server gave out"), which
# JSON Schema cannot tell from a schema-valid value refused. So generated cases that carry one
# are dropped; the paging itself is tested over HTTP in tests/integration (session_search.rs,
# message_pages.rs), and every other parameter of these operations is still generated.
def _carries_page_token(case, name):
    query = case.query
    return isinstance(query, dict) and query.get(name) not in (None, "")


@schemathesis.hook("filter_case").apply_to(operation_id="list_sessions")
def no_made_up_cursor(context, case):
    return not _carries_page_token(case, "cursor")


@schemathesis.hook("filter_case").apply_to(operation_id="get_session")
def no_made_up_before(context, case):
    return not _carries_page_token(case, "before")
