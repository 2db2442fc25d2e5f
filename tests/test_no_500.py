"""No 500, ever: bad input, malformed requests and unknown actions are answered, never crash the request.

Everything goes through the HTTP surface (the WSGI app waitress serves) into the real Bolt app, service and
fake Slack; a property-based fuzz of the slash command and block_actions surfaces checks that no answer is a
5xx and that nothing is logged with a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from wsgiref.types import WSGIApplication

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import views
from bot.http_server import make_wsgi_app
from bot.verbs import VERBS
from tests.support import slack_requests as req
from tests.support.slack_world import APPROVER, OUTSIDER, STARTER, SlackWorld, slack_world
from tests.support.world import FN
from tests.test_http_server import call, signed

FORM = "application/x-www-form-urlencoded"


class TracebackCatcher(logging.Handler):
    """Every log record that carries an exception (a traceback in the logs), and every error: Bolt logs a
    failed lazy listener as one ERROR line without the exception."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[SlackWorld, WSGIApplication, TracebackCatcher]]:
    catcher = TracebackCatcher()
    logging.getLogger().addHandler(catcher)
    try:
        with slack_world() as sw:
            sw.command(f"start {FN} 2", user=STARTER)
            start = sw.buttons(sw.last_response()["blocks"])[views.ACTION_START_CONFIRM]
            sw.click(views.ACTION_START_CONFIRM, start, user=STARTER)
            wsgi = make_wsgi_app(sw.app, sns_handler=None, health=lambda: (True, {}))
            yield sw, wsgi, catcher
    finally:
        logging.getLogger().removeHandler(catcher)


def _no_crash(world: tuple[SlackWorld, WSGIApplication, TracebackCatcher], request: req.SignedRequest) -> int:
    _sw, wsgi, catcher = world
    before = len(catcher.records)
    reply = signed(wsgi, "/slack/events", request)
    assert reply.status < 500, reply.body[:300]
    assert b"Traceback" not in reply.body
    logged = catcher.records[before:]
    assert not logged, f"traceback logged: {logged[0].getMessage()} {logged[0].exc_info!r}"
    return reply.status


def _command(sw: SlackWorld, text: str, user: str = APPROVER) -> req.SignedRequest:
    return req.slash_command(
        text=text, user_id=user, user_name=user.lower(), response_url=sw.slack.response_url("fuzz")
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"extend {FN} 99999999999d", "longer than 366d"),
        (f"start {FN} 2 --soak 99999999999d", "longer than 366d"),
        (f"start {FN} 2 --weight 99999999999999999999999%", "between 0% and 100%"),
        (f"history {FN} --limit 99999999999999999999999", "from 1 to 100"),
    ],
)
def test_huge_numbers_are_bad_input_with_a_clear_message(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher], text: str, expected: str
) -> None:
    sw, wsgi, _ = world
    reply = signed(wsgi, "/slack/events", _command(sw, text))
    assert reply.status == 200
    assert expected in reply.body.decode()


@pytest.mark.parametrize("timestamp", ["abc", "²", "1e9", "", "-5", "99999999999999999999"])
def test_a_timestamp_that_is_not_a_number_is_401_not_500(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher], timestamp: str
) -> None:
    _, wsgi, _ = world
    headers = {"content-type": FORM, "x-slack-request-timestamp": timestamp, "x-slack-signature": "v0=00"}
    assert call(wsgi, "POST", "/slack/events", b"text=status", headers).status == 401


@pytest.mark.parametrize("body", ["payload=%7Bnot-json", "payload=%5B1%5D", "payload=1", "payload="])
def test_a_payload_that_is_not_json_is_400_not_500(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher], body: str
) -> None:
    for request in (
        req.sign(body, content_type=FORM),
        req.SignedRequest(
            body, {"content-type": FORM, "x-slack-request-timestamp": "1", "x-slack-signature": "v0=0"}
        ),
    ):
        assert _no_crash(world, request) in (400, 401)


def test_a_json_body_that_is_not_json_is_400_not_500(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher],
) -> None:
    assert _no_crash(world, req.sign("{not json", content_type="application/json")) in (400, 401)


def test_an_unknown_action_id_gets_a_polite_answer_not_404(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher],
) -> None:
    sw, _, _ = world
    url = sw.slack.response_url("unknown-action")
    status = _no_crash(world, req.block_actions("canary_frobnicate", "x", response_url=url))
    assert status == 200
    answer = sw.slack.calls("response_url")[-1].params
    assert "does not know this button" in answer["text"] and answer["replace_original"] is False


def test_an_unknown_command_gets_a_polite_answer_not_404(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher],
) -> None:
    _, wsgi, _ = world
    reply = signed(wsgi, "/slack/events", req.slash_command("/deploy", "now"))
    assert reply.status == 200 and "/canary" in reply.body.decode()


@pytest.mark.parametrize("metadata", ["{not json", "[]", '{"button": "x"}', '{"button": 5}', ""])
def test_a_rollback_form_with_unreadable_metadata_is_ignored_without_a_traceback(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher], metadata: str
) -> None:
    form = req.view_submission(
        views.CALLBACK_ROLLBACK_REASON,
        req.plain_text_values({(views.BLOCK_ROLLBACK_REASON, views.INPUT_ROLLBACK_REASON): "why"}),
        private_metadata=metadata,
        user_id=APPROVER,
    )
    assert _no_crash(world, form) == 200


# ---------------------------------------------------------------- fuzz
TOKENS = [
    *VERBS,
    FN,
    "production",
    "--alias",
    "--weight",
    "--soak",
    "--reason",
    "--publish",
    "--set",
    "--unset",
    "--limit",
    "--override-alarms",
    "-h",
    "--",
    "99999999999d",
    "99999999999999999999%",
    "1e309",
    "-1",
    "0",
    "0.05",
    "5%",
    "100%",
    "NaN",
    "inf",
    "30m",
    "1h30m",
    "2",
    "K=V",
    "'",
    '"',
    "“",
    "<!channel>",
]
words = st.one_of(st.sampled_from(TOKENS), st.text(max_size=12))
command_texts = st.lists(words, max_size=8).map(" ".join)
users = st.sampled_from([STARTER, APPROVER, OUTSIDER])
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(text=command_texts, user=users)
def test_fuzzed_slash_commands_never_get_a_5xx_or_a_traceback(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher], text: str, user: str
) -> None:
    sw, _, _ = world
    _no_crash(world, _command(sw, text, user))


ACTION_IDS = [
    views.ACTION_START_CONFIRM,
    views.ACTION_START_CANCEL,
    views.ACTION_PROMOTE,
    views.ACTION_ROLLBACK,
    views.ACTION_EXTEND,
    views.ACTION_HOLD,
    views.ACTION_RESUME,
]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.text(max_size=20)
)


@FUZZ
@given(data=st.data(), user=users)
def test_fuzzed_button_clicks_never_get_a_5xx_or_a_traceback(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher], data: st.DataObject, user: str
) -> None:
    sw, _, _ = world
    ids = [e.deployment.id for e in sw.world.service.history(FN, None, 5)] or ["d-none"]
    action_id = data.draw(st.one_of(st.sampled_from(ACTION_IDS), st.text(max_size=30)))
    fields: dict[str, Any] = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "d": st.one_of(st.sampled_from(ids), json_scalars),
                "r": st.one_of(st.integers(min_value=-5, max_value=50), json_scalars),
                "by": st.one_of(st.sampled_from(["30m", "99999999999d", "0s", "-1m"]), json_scalars),
                "reason": json_scalars,
            },
        )
    )
    value = data.draw(st.one_of(st.just(json.dumps(fields)), st.text(max_size=40)))
    url = sw.slack.response_url("fuzz-click")
    _no_crash(world, req.block_actions(action_id or "x", value, user_id=user, response_url=url))


content_types = st.sampled_from(
    [FORM, "application/json", "text/plain", "", "multipart/form-data; boundary=x"]
)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from(
        [b"payload=", b"payload=%7B", b"payload=null", b"{}", b"[]", b"null", b"command=/canary"]
    ),
)


@FUZZ
@given(
    body=raw_bodies,
    content_type=content_types,
    timestamp=st.one_of(st.text(max_size=12), st.integers().map(str), st.sampled_from(["²", "１２", "٣"])),
    signature=st.one_of(st.text(max_size=70), st.just("v0=" + "0" * 64)),
)
def test_fuzzed_unsigned_requests_are_refused_with_400_or_401(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher],
    body: bytes,
    content_type: str,
    timestamp: str,
    signature: str,
) -> None:
    _, wsgi, catcher = world
    before = len(catcher.records)
    headers = {
        "content-type": content_type,
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
    }
    reply = call(wsgi, "POST", "/slack/events", body, {k: v for k, v in headers.items() if v.isprintable()})
    assert reply.status in (400, 401), (reply.status, reply.body[:200])
    assert catcher.records[before:] == []


@FUZZ
@given(body=raw_bodies, content_type=content_types)
def test_fuzzed_signed_bodies_never_get_a_5xx_or_a_traceback(
    world: tuple[SlackWorld, WSGIApplication, TracebackCatcher], body: bytes, content_type: str
) -> None:
    text = body.decode("utf-8", "replace")
    _no_crash(world, req.sign(text, content_type=content_type))
