"""The SMS provider stand-in (emulator/sms.py), driven by the real `twilio` package over HTTP.

The REST side is called by twilio's own Client (sync and async); the webhooks it posts are
checked by twilio's own RequestValidator, as the bot checks them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from emulator.sms import SmsProvider

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "test-auth-token-0123456789"
NUMBER = "+447700900000"
SAM = "+447700900123"
ANN = "+447700900456"
TWILIO = "https://api.twilio.com"


class LocalHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio's own HTTP client, sending what it would send to api.twilio.com elsewhere."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        return super().request(method, url.replace(TWILIO, self.base_url, 1), *args, **kwargs)


class AsyncLocalHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """twilio's own async HTTP client (aiohttp), pointed at the stand-in."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        local = url.replace(TWILIO, self.base_url, 1)
        return await super().request(method, local, *args, **kwargs)


@dataclass
class Received:
    """What one of the bot's webhooks would have received."""

    url: str
    form: dict[str, str]
    signature: str | None
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A tiny web app standing in for the bot's /sms/inbound and /sms/status."""

    def __init__(self) -> None:
        self.posts: list[Received] = []
        self.status = 200
        self.answer = "<Response/>"  # TwiML: <Message>s are texted back to the member
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/sms/{kind}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        url = self.base_url + request.path
        self.posts.append(
            Received(url, form, request.headers.get("X-Twilio-Signature"), dict(request.headers))
        )
        return web.Response(text=self.answer, content_type="text/xml", status=self.status)

    def to(self, path: str) -> list[Received]:
        return [post for post in self.posts if post.url.endswith(path)]


@pytest.fixture
async def provider() -> AsyncIterator[SmsProvider]:
    async with SmsProvider(account_sid=SID, auth_token=TOKEN, number=NUMBER) as stand_in:
        yield stand_in


@pytest.fixture
async def receiver(provider: SmsProvider) -> AsyncIterator[Receiver]:
    app = Receiver()
    await app.start()
    provider.inbound_url = app.base_url + "/sms/inbound"
    yield app
    await app.stop()


def valid(received: Received, form: dict[str, str] | None = None) -> bool:
    """Does twilio's RequestValidator accept this post (with `form` in place of its own)?"""
    checked = received.form if form is None else form
    return bool(RequestValidator(TOKEN).validate(received.url, checked, received.signature))


async def create(
    provider: SmsProvider, login: str = SID, **fields: str
) -> tuple[int, dict[str, Any]]:
    """A Messages.json POST by hand (for what twilio's client would never send)."""
    headers = {"Authorization": aiohttp.encode_basic_auth(login, TOKEN)}
    url = f"{provider.base_url}/2010-04-01/Accounts/{SID}/Messages.json"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=fields, headers=headers) as response,
    ):
        return response.status, await response.json()


# ---------------------------------------------------------------- the REST API


async def test_twilio_client_sends_a_text_and_the_stand_in_records_it(
    provider: SmsProvider, receiver: Receiver
) -> None:
    client = Client(SID, TOKEN, http_client=LocalHttpClient(provider.base_url))
    callback = receiver.base_url + "/sms/status"
    message = await asyncio.to_thread(
        client.messages.create, to=SAM, from_=NUMBER, body="Hello Sam", status_callback=callback
    )
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == (SAM, NUMBER, "Hello Sam")
    assert message.account_sid == SID
    assert message.direction == "outbound-api"
    assert message.date_created is not None  # twilio parsed the RFC 2822 date
    assert message.uri == f"/2010-04-01/Accounts/{SID}/Messages/{message.sid}.json"

    [sent] = provider.sent_to(SAM)
    assert (sent.sid, sent.to, sent.from_, sent.body) == (message.sid, SAM, NUMBER, "Hello Sam")
    assert sent.status_callback == callback
    assert sent.segments is None
    assert provider.sent == [sent]
    assert provider.sent_to(ANN) == []

    await provider.settled()
    assert provider.statuses(message.sid) == ["sent", "delivered"]
    fetched = await asyncio.to_thread(client.messages(message.sid).fetch)
    assert fetched.status == "delivered"


# twilio's async client passes aiohttp.BasicAuth as `auth`, both deprecated in aiohttp 3.14.
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")
async def test_twilio_async_client_and_messaging_service(provider: SmsProvider) -> None:
    http_client = AsyncLocalHttpClient(provider.base_url)
    try:
        client = Client(SID, TOKEN, http_client=http_client)
        service = "MG" + "f" * 32
        message = await client.messages.create_async(
            to=SAM, messaging_service_sid=service, body="Croeso, ŵ ŷ"
        )
    finally:
        await http_client.close()
    assert message.messaging_service_sid == service
    [sent] = await provider.wait_for(SAM, count=1)
    assert sent.body == "Croeso, ŵ ŷ"
    assert sent.from_ == NUMBER
    assert sent.status_callback is None
    await provider.settled()
    assert provider.statuses(sent.sid) == []  # no StatusCallback, no callbacks
    assert sent.status == "delivered"


async def test_bad_auth_is_refused_with_twilios_error(provider: SmsProvider) -> None:
    client = Client(SID, "wrong-token", http_client=LocalHttpClient(provider.base_url))
    with pytest.raises(TwilioRestException) as refused:
        await asyncio.to_thread(client.messages.create, to=SAM, from_=NUMBER, body="Hi")
    assert refused.value.status == 401
    assert refused.value.code == 20003
    status, body = await create(provider, To=SAM, From=NUMBER, Body="Hi", login="AC" + "1" * 32)
    assert status == 401
    assert body == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{provider.base_url}/2010-04-01/Accounts/{SID}/Messages.json") as response,
    ):
        assert response.status == 401  # no Authorization at all
    assert provider.sent == []


async def test_missing_to_or_body_gets_twilios_codes(provider: SmsProvider) -> None:
    assert await create(provider, From=NUMBER, Body="Hi") == (
        400,
        {
            "code": 21604,
            "message": "A 'To' phone number is required.",
            "more_info": "https://www.twilio.com/docs/errors/21604",
            "status": 400,
        },
    )
    status, body = await create(provider, To=SAM, From=NUMBER)
    assert (status, body["code"]) == (400, 21602)
    status, body = await create(provider, To=SAM, Body="Hi")
    assert (status, body["code"]) == (400, 21603)
    status, body = await create(provider, To=SAM, From="+447700900999", Body="Hi")
    assert (status, body["code"]) == (400, 21606)
    status, body = await create(provider, To="07700900123", From=NUMBER, Body="Hi")
    assert (status, body["code"]) == (400, 21211)
    status, body = await create(provider, To=SAM, From=NUMBER, Body="x" * 1601)
    assert (status, body["code"]) == (400, 21617)
    client = Client(SID, TOKEN, http_client=LocalHttpClient(provider.base_url))
    with pytest.raises(TwilioRestException) as refused:
        await asyncio.to_thread(client.messages.create, to=SAM, from_=NUMBER, body="")
    assert (refused.value.status, refused.value.code) == (400, 21602)
    assert provider.sent == []
    assert [code for _, code in provider.refusals] == [
        21604,
        21602,
        21603,
        21606,
        21211,
        21617,
        21602,
    ]


# ---------------------------------------------------------------- status callbacks


async def test_callbacks_are_signed_as_twilio_signs_them(
    provider: SmsProvider, receiver: Receiver
) -> None:
    callback = receiver.base_url + "/sms/status"
    status, resource = await create(
        provider, To=SAM, From=NUMBER, Body="Hi", StatusCallback=callback
    )
    assert status == 201
    await provider.settled()
    sent, delivered = receiver.to("/sms/status")
    for post, expected in ((sent, "sent"), (delivered, "delivered")):
        assert post.url == callback
        assert post.form["MessageSid"] == post.form["SmsSid"] == resource["sid"]
        assert post.form["MessageStatus"] == post.form["SmsStatus"] == expected
        assert (post.form["To"], post.form["From"]) == (SAM, NUMBER)
        assert post.form["AccountSid"] == SID
        assert post.form["ApiVersion"] == "2010-04-01"
        assert valid(post)
        assert not valid(post, {**post.form, "MessageStatus": "failed"})
        assert not valid(post, {**post.form, "To": ANN})
    assert not RequestValidator("another-token").validate(
        callback, delivered.form, delivered.signature
    )
    assert [c.http_status for c in provider.callbacks] == [200, 200]
    assert provider.sent_to(SAM)[0].status == "delivered"


async def test_hold_delivery_stops_after_sent_until_released(
    provider: SmsProvider, receiver: Receiver
) -> None:
    provider.hold_delivery = True
    callback = receiver.base_url + "/sms/status"
    await create(provider, To=SAM, From=NUMBER, Body="One", StatusCallback=callback)
    await provider.settled()
    [sms] = provider.sent_to(SAM)
    assert provider.statuses(sms.sid) == ["sent"]
    assert sms.status == "sent"
    provider.deliver_held()
    await provider.settled()
    assert provider.statuses(sms.sid) == ["sent", "delivered"]
    assert [post.form["MessageStatus"] for post in receiver.to("/sms/status")] == [
        "sent",
        "delivered",
    ]


async def test_a_failing_number_ends_undelivered_with_30003(
    provider: SmsProvider, receiver: Receiver
) -> None:
    provider.fail(ANN)
    callback = receiver.base_url + "/sms/status"
    await create(provider, To=ANN, From=NUMBER, Body="Lost", StatusCallback=callback)
    await create(provider, To=SAM, From=NUMBER, Body="Fine", StatusCallback=callback)
    await provider.settled()
    [lost] = provider.sent_to(ANN)
    [fine] = provider.sent_to(SAM)
    assert provider.statuses(lost.sid) == ["sent", "undelivered"]
    assert provider.statuses(fine.sid) == ["sent", "delivered"]
    [undelivered] = [p for p in receiver.posts if p.form["MessageStatus"] == "undelivered"]
    assert undelivered.form["ErrorCode"] == "30003"
    assert undelivered.form["To"] == ANN
    assert valid(undelivered)
    provider.fail(ANN, failing=False)
    await create(provider, To=ANN, From=NUMBER, Body="Back", StatusCallback=callback)
    await provider.settled()
    assert provider.statuses(provider.sent_to(ANN)[1].sid) == ["sent", "delivered"]


async def test_a_callback_nobody_answers_is_recorded_not_raised(provider: SmsProvider) -> None:
    receiver = Receiver()
    await receiver.start()
    gone = receiver.base_url + "/sms/status"
    await receiver.stop()  # nothing listens there now
    await create(provider, To=SAM, From=NUMBER, Body="Hi", StatusCallback=gone)
    await provider.settled()
    assert [(c.status, c.http_status) for c in provider.callbacks] == [
        ("sent", None),
        ("delivered", None),
    ]


async def test_wait_for_waits_for_the_count_and_times_out_clearly(provider: SmsProvider) -> None:
    waiting = asyncio.create_task(provider.wait_for(SAM, count=2, timeout=5.0))
    await create(provider, To=SAM, From=NUMBER, Body="One")
    await create(provider, To=ANN, From=NUMBER, Body="Not Sam's")
    assert not waiting.done()
    await create(provider, To=SAM, From=NUMBER, Body="Two")
    assert [sms.body for sms in await waiting] == ["One", "Two"]
    with pytest.raises(TimeoutError, match="got 2 texts, not 3"):
        await provider.wait_for(SAM, count=3, timeout=0.05)


# ---------------------------------------------------------------- inbound texts


async def test_inbound_texts_are_signed_as_twilio_signs_them(
    provider: SmsProvider, receiver: Receiver
) -> None:
    status, body = await provider.text(SAM, "HELLO")
    assert (status, body) == (200, "<Response/>")
    [post] = receiver.to("/sms/inbound")
    assert post.url == provider.inbound_url
    form = post.form
    assert (form["From"], form["To"], form["Body"]) == (SAM, NUMBER, "HELLO")
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"]
    assert form["MessageSid"].startswith("SM") and len(form["MessageSid"]) == 34
    assert form["AccountSid"] == SID
    assert (form["NumMedia"], form["NumSegments"], form["SmsStatus"]) == ("0", "1", "received")
    assert form["FromCountry"] == form["ToCountry"] == "GB"
    assert form["ApiVersion"] == "2010-04-01"
    assert "MediaUrl0" not in form
    assert valid(post)
    assert not valid(post, {**form, "Body": "HELLO!"})
    assert not valid(post, {**form, "From": ANN})
    assert provider.sign(post.url, form) == post.signature

    await provider.text(SAM, "Second")
    first, second = receiver.to("/sms/inbound")
    assert first.form["MessageSid"] != second.form["MessageSid"]
    assert [sms.body for sms in provider.received_from(SAM)] == ["HELLO", "Second"]
    assert provider.received_from(SAM)[0].http_status == 200


async def test_a_twiml_answer_is_texted_back_as_twilio_does(
    provider: SmsProvider, receiver: Receiver
) -> None:
    answer = MessagingResponse()
    answer.message("Text the project's code to join.")
    answer.message("Anfonwch y cod.")
    receiver.answer = str(answer)  # twilio's own TwiML
    assert (await provider.text(SAM, "HELLO"))[0] == 200
    assert provider.sent_to(SAM) == []  # `sent` is the REST API's
    first, second = provider.replies_to(SAM)
    assert (first.body, second.body) == ("Text the project's code to join.", "Anfonwch y cod.")
    assert (first.from_, first.direction, first.status_callback) == (NUMBER, "outbound-reply", None)
    await provider.settled()
    assert first.status == "delivered"
    assert provider.callbacks == []  # a TwiML reply names no StatusCallback
    assert [type(sms).__name__ for sms in provider.thread(SAM)] == [
        "InboundSms",
        "SentSms",
        "SentSms",
    ]
    receiver.answer = "<Response/>"
    await provider.text(SAM, "Again")
    receiver.status = 500
    receiver.answer = str(answer)
    await provider.text(SAM, "Failed")  # no TwiML is read from an error
    assert len(provider.replies_to(SAM)) == 2


async def test_an_mms_carries_its_media_fields(provider: SmsProvider, receiver: Receiver) -> None:
    await provider.text(SAM, "", media=["image/jpeg"])
    [post] = receiver.to("/sms/inbound")
    form = post.form
    assert form["NumMedia"] == "1"
    assert form["MediaContentType0"] == "image/jpeg"
    assert form["MediaUrl0"].startswith(provider.base_url)
    assert form["MessageSid"].startswith("MM")
    assert form["Body"] == ""
    assert valid(post)


async def test_repost_last_repeats_the_very_same_request(
    provider: SmsProvider, receiver: Receiver
) -> None:
    receiver.status = 500  # the bot failed: Twilio would post again
    assert (await provider.text(SAM, "STOP"))[0] == 500
    receiver.status = 200
    assert (await provider.repost_last(SAM))[0] == 200
    first, again = receiver.to("/sms/inbound")
    assert first.form == again.form
    assert first.signature == again.signature
    token = "I-Twilio-Idempotency-Token"
    assert first.headers[token] == again.headers[token]
    assert valid(again)
    with pytest.raises(LookupError):
        await provider.repost_last(ANN)


async def test_unsigned_and_forged_posts_fail_validation(
    provider: SmsProvider, receiver: Receiver
) -> None:
    url = receiver.base_url + "/sms/inbound"
    form = {"From": SAM, "To": NUMBER, "Body": "STOP", "MessageSid": "SM" + "0" * 32}
    assert (await provider.post_unsigned(url, form))[0] == 200
    assert (await provider.post_forged(url, form))[0] == 200
    unsigned, forged = receiver.to("/sms/inbound")
    assert unsigned.signature is None
    assert forged.signature is not None
    assert not valid(forged)
    assert forged.form == form


async def test_the_stand_in_checks_what_it_is_given() -> None:
    with pytest.raises(ValueError, match="account sid"):
        SmsProvider(account_sid="AC123", auth_token=TOKEN, number=NUMBER)
    with pytest.raises(ValueError, match=r"E\.164"):
        SmsProvider(account_sid=SID, auth_token=TOKEN, number="07700900000")
    provider = SmsProvider(account_sid=SID, auth_token=TOKEN, number=NUMBER)
    with pytest.raises(RuntimeError):
        _ = provider.base_url
    async with provider:
        assert provider.base_url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="inbound_url"):
            await provider.text(SAM, "Hi")
    await provider.stop()  # stopping twice is harmless
