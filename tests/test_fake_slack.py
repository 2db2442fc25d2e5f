"""The fake Slack Web API server behaves enough like Slack for slack_sdk and Bolt to be tested against it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.support.fake_slack import BOT_USER_ID, TEAM_ID, FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(
        usergroups={"S0SREONCALL": ["U0ALICE", "U0BOB"]}, channels={"#deploys": "C0DEPLOYS"}
    ) as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    # No retries: these tests look at single answers of the fake.
    return WebClient(token="xoxb-test", base_url=slack.base_url, retry_handlers=[])


def test_base_url_ends_with_api_slash_as_slack_sdk_expects(slack: FakeSlack) -> None:
    assert slack.base_url.startswith("http://127.0.0.1:")
    assert slack.base_url.endswith("/api/")


def test_auth_test_names_the_bot_and_team(client: WebClient) -> None:
    answer = client.auth_test()
    assert (answer["user_id"], answer["team_id"]) == (BOT_USER_ID, TEAM_ID)


def test_post_message_is_recorded_with_params_and_headers(slack: FakeSlack, client: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*canary* started"}}]
    client.chat_postMessage(channel="C0DEPLOYS", text="canary started", blocks=blocks)

    [call] = slack.calls("chat.postMessage")
    assert call.params["channel"] == "C0DEPLOYS"
    assert call.params["blocks"] == blocks
    assert call.headers["authorization"] == "Bearer xoxb-test"


def test_post_message_answers_increasing_unique_timestamps(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel="C0DEPLOYS", text=f"m{i}")["ts"] for i in range(3)]
    assert stamps[0] == "1700000000.000100"
    assert stamps == sorted(set(stamps), key=float)
    assert len(set(stamps)) == 3


def test_channel_names_resolve_to_ids_like_slack(slack: FakeSlack, client: WebClient) -> None:
    answer = client.chat_postMessage(channel="#deploys", text="hi")
    assert answer["channel"] == "C0DEPLOYS"
    other = client.chat_postMessage(channel="#ops", text="hi")["channel"]
    assert other.startswith("C") and other == slack.channel_id("#ops")


def test_messages_lists_thread_replies_with_their_thread_ts(slack: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0DEPLOYS", text="canary started")["ts"]
    client.chat_postMessage(channel="C0DEPLOYS", text="soak report", thread_ts=parent)

    messages = slack.messages()
    assert [(m.text, m.thread_ts) for m in messages] == [("canary started", None), ("soak report", parent)]


def test_chat_update_rewrites_the_stored_message(slack: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(channel="C0DEPLOYS", text="at 5%")["ts"]
    client.chat_update(channel="C0DEPLOYS", ts=ts, text="at 25%")

    [message] = slack.messages()
    assert (message.text, message.updates) == ("at 25%", 1)


def test_chat_update_with_a_channel_name_fails_as_on_slack(client: WebClient) -> None:
    ts = client.chat_postMessage(channel="#deploys", text="at 5%")["ts"]
    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="#deploys", ts=ts, text="at 25%")
    assert raised.value.response["error"] == "channel_not_found"


def test_usergroup_members_come_from_the_configured_mapping(client: WebClient) -> None:
    assert client.usergroups_users_list(usergroup="S0SREONCALL")["users"] == ["U0ALICE", "U0BOB"]
    with pytest.raises(SlackApiError) as raised:
        client.usergroups_users_list(usergroup="S0NOBODY")
    assert raised.value.response["error"] == "no_such_subteam"


def test_ephemeral_permalink_user_and_channel_lookups_answer(client: WebClient) -> None:
    assert client.chat_postEphemeral(channel="C0DEPLOYS", user="U0ALICE", text="only you")["message_ts"]
    link = client.chat_getPermalink(channel="C0DEPLOYS", message_ts="1700000000.000100")["permalink"]
    assert link.endswith("/archives/C0DEPLOYS/p1700000000000100")
    assert client.users_info(user="U0ALICE")["user"]["id"] == "U0ALICE"
    assert client.conversations_info(channel="C0DEPLOYS")["channel"]["name"] == "deploys"


def test_views_publish_open_and_update(slack: FakeSlack, client: WebClient) -> None:
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "no canaries"}}],
    }
    client.views_publish(user_id="U0ALICE", view=home)
    assert slack.home_view("U0ALICE") is not None
    assert slack.home_view("U0ALICE")["blocks"] == home["blocks"]  # type: ignore[index]

    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Roll back"}, "blocks": []}
    view_id = client.views_open(trigger_id="1.2.trigger", view=modal)["view"]["id"]
    updated = client.views_update(view_id=view_id, view={**modal, "callback_id": "rollback"})
    assert updated["view"]["id"] == view_id
    assert updated["view"]["callback_id"] == "rollback"


def test_files_upload_v2_works_end_to_end(slack: FakeSlack, client: WebClient) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    answer = client.files_upload_v2(
        content=png, filename="error-rate.png", title="Error rate", channel="C0DEPLOYS", thread_ts="1700.0001"
    )

    assert answer["file"]["title"] == "Error rate"
    [uploaded] = slack.uploaded_files()
    assert uploaded.content == png
    assert (uploaded.filename, uploaded.channel, uploaded.thread_ts) == (
        "error-rate.png",
        "C0DEPLOYS",
        "1700.0001",
    )
    assert [c.method for c in slack.calls()] == [
        "files.getUploadURLExternal",
        "file_upload",
        "files.completeUploadExternal",
    ]


def test_response_url_posts_are_recorded(slack: FakeSlack) -> None:
    WebhookClient(slack.response_url("abc")).send(text="Rolled back", replace_original=True)

    [call] = slack.calls("response_url")
    assert call.path == "/response/abc"
    assert call.params == {"text": "Rolled back", "replace_original": True}


def test_unknown_methods_answer_unknown_method(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.api_call("chat.postMesage")
    assert raised.value.response["error"] == "unknown_method"


def test_calls_without_a_token_are_not_authed(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as raised:
        WebClient(base_url=slack.base_url, retry_handlers=[]).auth_test()
    assert raised.value.response["error"] == "not_authed"


def test_fail_next_answers_429_with_retry_after_then_recovers(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0DEPLOYS", text="hi")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["retry-after"] == "7"
    assert client.chat_postMessage(channel="C0DEPLOYS", text="hi")["ok"]


def test_fail_next_can_fail_several_times_and_only_that_method(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next("chat.update", status=500, times=2)

    assert client.chat_postMessage(channel="C0DEPLOYS", text="hi")["ok"]
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            client.chat_update(channel="C0DEPLOYS", ts="1700000000.000100", text="x")
        assert raised.value.response.status_code == 500
    assert client.chat_update(channel="C0DEPLOYS", ts="1700000000.000100", text="x")["ok"]


def test_fail_next_with_a_slack_error_at_http_200(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0DEPLOYS", text="hi")
    assert raised.value.response["error"] == "not_in_channel"


def test_wait_for_returns_once_another_thread_made_the_call(slack: FakeSlack, client: WebClient) -> None:
    worker = threading.Thread(target=lambda: client.chat_postMessage(channel="C0DEPLOYS", text="later"))
    worker.start()
    [call] = slack.wait_for("chat.postMessage", timeout=5)
    worker.join()
    assert call.params["text"] == "later"


def test_wait_for_times_out_naming_what_was_called(slack: FakeSlack, client: WebClient) -> None:
    client.auth_test()
    with pytest.raises(AssertionError, match=r"expected 1 views.publish.*\['auth.test'\]"):
        slack.wait_for("views.publish", timeout=0.05)


def test_reset_forgets_calls_messages_and_failures(slack: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C0DEPLOYS", text="hi")
    slack.fail_next("auth.test", status=500)
    slack.reset()

    assert slack.calls() == [] and slack.messages() == []
    assert client.auth_test()["ok"]
    assert client.usergroups_users_list(usergroup="S0SREONCALL")["users"] == ["U0ALICE", "U0BOB"]
