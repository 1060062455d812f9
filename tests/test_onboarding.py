"""Joining, through the real ptb stack and the emulator, read as transcripts."""

from __future__ import annotations

from collections.abc import Callable

from telegram import Update

from bot.catalogue import t
from bot.receiving import CocreateApplication
from conversations.onboarding import AGREED_TO, CONSENT_VERSION
from emulator import Emulator
from storage.models import PREFER_NOT_TO_SAY
from storage.store import Store
from tests.transcript import NOT_STARTED, Person, choose_language, hello, holds_trace, join

MakePerson = Callable[..., Person]
EXTRA = "Do you look after someone?"  # ABOUT_EXTRA_QUESTION in the test settings, with choices


async def test_onboarding_in_english(person: MakePerson, store: Store) -> None:
    ann = person(1001, "Ann")

    assert await ann.says("/start") == [hello(), choose_language()]
    assert ann.buttons == ["English", "Cymraeg"]

    assert await ann.taps("English") == [t("en", "consent.text")]
    assert ann.buttons == ["Yes, I agree", "Not now"]

    assert await ann.taps("Yes, I agree") == [t("en", "naming.ask")]
    member = await store.members.by_telegram_id(1001)
    assert member is not None and member.language == "en" and not member.onboarded
    receipt = await store.consent.current(member.id)
    assert receipt is not None
    assert receipt.consent_version == CONSENT_VERSION and receipt.agreed_to == AGREED_TO

    assert await ann.taps("Use my first name") == [
        "OK. The team will see the name Ann.",
        t("en", "about.intro"),
        "How old are you?",
    ]
    assert ann.buttons == [
        "Under 18",
        "18 to 24",
        "25 to 34",
        "35 to 49",
        "50 to 64",
        "65 or over",
        "Prefer not to say",
        "Skip",
    ]
    assert await ann.taps("25 to 34") == [t("en", "about.area.typed")]
    assert ann.buttons == ["Prefer not to say", "Skip"]
    assert await ann.says("Splott, Cardiff") == [EXTRA]
    assert ann.buttons == ["Yes", "No", "Prefer not to say", "Skip"]
    assert await ann.taps("Prefer not to say") == [
        "Thank you. You are all set.",
        t("en", "menu.title"),
    ]
    assert ann.buttons == [
        "Share your story",
        "Share an idea",
        "See others' ideas",
        "Questions for you",
        "News about ideas",
        "See my data",
        "Change language",
        "Help",
        "Stop messages",
        "Delete my data",
    ]

    member = await store.members.by_telegram_id(1001)
    assert member is not None and member.onboarded and member.display_name == "Ann"
    assert await store.about.of(member.id) == {
        "age_band": "25_34",
        "area": "Splott, Cardiff",
        "extra": PREFER_NOT_TO_SAY,
    }


async def test_onboarding_in_welsh(person: MakePerson, store: Store) -> None:
    bryn = person(1002, "Bryn", language_code="cy")
    await bryn.says("/start")
    assert await bryn.taps("Cymraeg") == [t("cy", "consent.text")]
    assert bryn.buttons == [t("cy", "consent.agree"), t("cy", "consent.not_now")]
    assert await bryn.taps(t("cy", "consent.agree")) == [t("cy", "naming.ask")]
    assert await bryn.taps(t("cy", "naming.anonymous")) == [
        t("cy", "naming.anonymous_ok"),
        t("cy", "about.intro"),
        t("cy", "about.age"),
    ]
    assert await bryn.taps(t("cy", "about.age.65_plus")) == [t("cy", "about.area.typed")]
    assert await bryn.taps(t("cy", "common.skip")) == [EXTRA]
    assert await bryn.taps("Yes") == [t("cy", "onboarding.done"), t("cy", "menu.title")]
    member = await store.members.by_telegram_id(1002)
    assert member is not None and member.language == "cy" and member.display_name is None
    assert await store.about.of(member.id) == {"age_band": "65_plus", "extra": "Yes"}
    receipt = await store.consent.current(member.id)
    assert receipt is not None and receipt.language == "cy"


async def test_not_now_keeps_nothing_personal(person: MakePerson, store: Store) -> None:
    cai = person(1003, "Cai", username="cai_w")
    await cai.says("/start")
    await cai.taps("Cymraeg")
    assert await cai.taps(t("cy", "consent.not_now")) == [t("cy", "consent.declined")]

    await store.inbox.flush()  # done-marks (which clear what was said) go a moment later
    for table in await store.db.table_names():
        rows = await store.db.fetch_all(f"SELECT * FROM {table}")
        if table == "inbox":
            assert all(r["payload"] is None for r in rows), "handled updates keep no content"
            continue
        dump = repr([tuple(r) for r in rows])
        for trace in ("1003", "Cai", "cai_w", "cy"):
            assert not holds_trace(dump, trace), (table, trace)

    # They can come back later and are greeted afresh.
    assert await cai.says("/start") == [hello(), choose_language()]


async def test_typed_answers_work_like_buttons(person: MakePerson, store: Store) -> None:
    dee = person(1004, "Dee")
    await dee.says("/start")
    assert await dee.says("  english. ") == [t("en", "consent.text")]
    assert await dee.says("YES") == [t("en", "naming.ask")]
    replies = await dee.says("1")
    assert replies[0] == t("en", "naming.anonymous_ok")
    assert await dee.says("2") == [t("en", "about.area.typed")]  # 2 = "18 to 24"
    assert await dee.says("skip") == [EXTRA]
    assert await dee.says("no!") == [t("en", "onboarding.done"), t("en", "menu.title")]
    member = await store.members.by_telegram_id(1004)
    assert member is not None and member.onboarded
    assert await store.about.of(member.id) == {"age_band": "18_24", "extra": "No"}
    # The menu's numbers and words work too.
    assert await dee.says("8") == [t("en", "help.text")]
    assert await dee.says("Help") == [t("en", "help.text")]


async def test_bad_input_gets_a_kind_answer_and_loses_nothing(
    person: MakePerson, store: Store
) -> None:
    eve = person(1005, "Eve")
    await eve.says("/start")
    language_prompt = eve.user.messages[-1].message_id
    await eve.taps("English")
    await eve.taps("Yes, I agree")

    not_text = t("en", "bad.not_text")
    assert await eve.does(lambda u: u.send_sticker()) == [not_text]
    assert await eve.does(lambda u: u.send_location(51.48, -3.18)) == [not_text]
    assert await eve.does(lambda u: u.send_contact("+447700900000", "Eve")) == [not_text]
    assert await eve.says("x" * 10_000) == [t("en", "bad.choice")]
    assert await eve.says("🙂🙂🙂") == [t("en", "bad.choice")]
    assert await eve.says("مرحبا، كيف حالك؟") == [t("en", "bad.choice")]
    assert await eve.says("/frobnicate") == [t("en", "bad.unknown_command")]
    # A button from an earlier step: answered as old, and the current question comes again.
    stale = lambda u: u.press_callback("onb:1:cy", message_id=language_prompt)  # noqa: E731
    assert await eve.does(stale) == [
        t("en", "bad.old_button"),
        t("en", "naming.ask"),
    ]
    assert eve.user.callback_answers[-1]["text"] == t("en", "bad.old_button")
    # A forged button.
    assert await eve.does(lambda u: u.press_callback("onb:3:hacked")) == [
        t("en", "bad.old_button"),
        t("en", "naming.ask"),
    ]

    # Nothing given so far was lost: she is still at the naming step, as a member.
    member = await store.members.by_telegram_id(1005)
    assert member is not None and member.language == "en"
    assert (await eve.taps("Stay anonymous"))[0] == t("en", "naming.anonymous_ok")
    # A too-long typed area is refused kindly, and the step waits.
    await eve.taps("Skip")
    assert await eve.says("Cardiff " * 30) == [t("en", "about.too_long")]
    assert await eve.says("Roath") == [EXTRA]


async def test_a_button_from_someone_who_never_started(
    person: MakePerson, emulator: object
) -> None:
    fin = person(1006, "Fin")
    assert await fin.does(lambda u: u.press_callback("onb:2:agree")) == [NOT_STARTED]
    assert fin.user.callback_answers, "the button press was answered"
    assert await fin.says("hello?") == [NOT_STARTED]
    assert await fin.does(lambda u: u.send_sticker()) == [NOT_STARTED]


async def test_start_again_shows_the_menu_not_the_whole_onboarding(
    person: MakePerson, store: Store
) -> None:
    gwen = person(1007, "Gwen")
    await join(gwen)
    assert await gwen.says("/start") == [t("en", "menu.title")]
    assert len(await store.consent.all()) == 1


async def test_start_mid_onboarding_asks_the_current_question_again(person: MakePerson) -> None:
    huw = person(1008, "Huw")
    await huw.says("/start")
    await huw.taps("English")
    await huw.taps("Yes, I agree")
    await huw.taps("Stay anonymous")
    assert await huw.says("/start") == [t("en", "about.age")]


async def test_commands_work_at_any_point(person: MakePerson, store: Store) -> None:
    ifan = person(1009, "Ifan")
    await ifan.says("/start")
    await ifan.taps("English")
    # Before consent: /help helps and asks again; /menu asks for an answer first.
    assert await ifan.says("/help") == [
        t("en", "help.text"),
        t("en", "bad.not_started"),  # English was chosen: English only
        t("en", "consent.text"),
    ]
    assert await ifan.says("/menu") == [t("en", "onboarding.answer_first"), t("en", "consent.text")]
    # /language mid-way changes language and comes back to the same question.
    assert await ifan.says("/language") == [choose_language()]
    assert await ifan.taps("Cymraeg") == [t("cy", "consent.text")]
    await ifan.taps(t("cy", "consent.agree"))
    assert await ifan.says("/language") == [choose_language()]
    assert await ifan.taps("English") == [t("en", "naming.ask")]
    member = await store.members.by_telegram_id(1009)
    assert member is not None and member.language == "en"
    # After consent, /menu leaves the optional questions unanswered.
    assert await ifan.says("MENU") == [t("en", "onboarding.done"), t("en", "menu.title")]
    # /stop, /resume, /cancel from the menu.
    assert await ifan.says("/stop") == [t("en", "stop.done")]
    assert (await store.members.by_telegram_id(1009)).stopped  # type: ignore[union-attr]
    assert await ifan.says("/stop") == [t("en", "stop.already")]
    assert await ifan.says("/menu") == [t("en", "menu.title")]
    assert "Start messages again" in ifan.buttons
    assert await ifan.says("/resume") == [t("en", "resume.done")]
    assert not (await store.members.by_telegram_id(1009)).stopped  # type: ignore[union-attr]
    assert await ifan.says("/cancel") == [t("en", "cancel.nothing")]


async def test_stop_and_cancel_before_consent_keep_nothing(
    person: MakePerson, store: Store
) -> None:
    jo = person(1010, "Jo")
    await jo.says("/start")
    assert await jo.says("/cancel") == [t("en", "consent.declined")]
    await jo.says("/start")
    await jo.taps("English")
    assert await jo.says("STOP") == [t("en", "consent.declined")]
    assert await store.members.by_telegram_id(1010) is None
    assert await store.db.fetch_all("SELECT * FROM sessions") == []


async def test_back_goes_to_the_previous_question(person: MakePerson) -> None:
    kim = person(1011, "Kim")
    await kim.says("/start")
    await kim.taps("English")
    await kim.taps("Yes, I agree")
    await kim.taps("Stay anonymous")
    await kim.taps("50 to 64")
    assert await kim.says("back") == [t("en", "about.age")]
    assert await kim.says("1") == [t("en", "about.area.typed")]


async def test_join_link_adds_the_member_to_the_project(person: MakePerson, store: Store) -> None:
    project = await store.projects.add("parks-2026", "Parks for everyone")
    lee = person(1012, "Lee")
    await lee.says("/start parks-2026")
    await lee.taps("English")
    assert await lee.taps("Yes, I agree") == [
        "You have joined the project: Parks for everyone.",
        t("en", "naming.ask"),
    ]
    member = await store.members.by_telegram_id(1012)
    assert member is not None
    assert await store.members.projects_of(member.id) == [project]
    await lee.says("/menu")
    # A joined member following a second link is added without onboarding again.
    await store.projects.add("libraries", "Libraries")
    assert await lee.says("/start libraries") == [
        "You have joined the project: Libraries.",
        t("en", "menu.title"),
    ]
    assert await lee.says("/start nope") == [t("en", "project.unknown"), t("en", "menu.title")]


async def test_unknown_project_code_still_lets_people_join(
    person: MakePerson, store: Store
) -> None:
    mo = person(1013, "Mo")
    await mo.says("/start no-such-project")
    assert await mo.taps("English") == [t("en", "project.unknown"), t("en", "consent.text")]
    await mo.taps("Yes, I agree")
    member = await store.members.by_telegram_id(1013)
    assert member is not None and await store.members.projects_of(member.id) == []


async def test_change_language_and_delete_from_the_menu(person: MakePerson, store: Store) -> None:
    nia = person(1014, "Nia")
    await join(nia)
    assert await nia.taps("Change language") == [t("en", "language.ask")]
    assert await nia.says("cymraeg") == [t("cy", "language.set"), t("cy", "menu.title")]
    assert await nia.says("/delete") == [t("cy", "delete.ask")]
    assert await nia.says("na") == [t("cy", "delete.kept"), t("cy", "menu.title")]
    await nia.says("/delete")
    assert await nia.taps(t("cy", "delete.yes")) == [t("cy", "delete.done")]
    assert await store.members.by_telegram_id(1014) is None
    assert await nia.says("/start") == [hello(), choose_language()]


async def test_edited_messages_are_answered_not_dropped(person: MakePerson) -> None:
    ola = person(1015, "Ola")
    await join(ola)
    await ola.says("hello")
    sent = ola.user.last_sent_id
    assert sent is not None
    assert await ola.does(lambda u: u.edit(sent, "hello again")) == [t("en", "bad.edited")]


async def test_bad_input_at_the_menu(person: MakePerson, store: Store) -> None:
    pat = person(1016, "Pat")
    await join(pat)
    assert await pat.does(lambda u: u.send_sticker()) == [t("en", "bad.idle_media")]
    assert await pat.does(lambda u: u.send_location(51.5, -3.2)) == [t("en", "bad.idle_media")]
    assert await pat.says("y" * 10_000) == [t("en", "bad.idle")]
    assert await pat.says("/frobnicate") == [t("en", "bad.unknown_command")]
    assert await pat.says("11") == [t("en", "bad.idle")]
    # A button from joining, pressed after joining, is answered as old.
    assert await pat.does(lambda u: u.press_callback("onb:4:25_34")) == [
        t("en", "bad.old_button"),
        t("en", "menu.title"),
    ]


async def test_an_old_delete_button_deletes_nothing(person: MakePerson, store: Store) -> None:
    rae = person(1017, "Rae")
    await join(rae)
    await rae.says("/delete")
    delete_question = rae.user.messages[-1].message_id
    assert await rae.says("no") == [t("en", "delete.kept"), t("en", "menu.title")]
    old_yes = lambda u: u.press_callback("erase:yes", message_id=delete_question)  # noqa: E731
    assert await rae.does(old_yes) == [t("en", "bad.old_button"), t("en", "menu.title")]
    assert await store.members.by_telegram_id(1017) is not None


async def test_delete_before_consent_keeps_nothing(person: MakePerson, store: Store) -> None:
    sam = person(1018, "Sam")
    await sam.says("/start")
    await sam.taps("English")
    assert await sam.says("/delete") == [t("en", "consent.declined")]
    assert await store.db.fetch_all("SELECT * FROM sessions") == []
    assert await sam.says("/delete") == [t("en", "delete.nothing")]


async def test_a_failure_on_our_side_gets_an_apology_and_the_bot_goes_on(
    person: MakePerson, emulator: Emulator
) -> None:
    tom = person(1019, "Tom")
    emulator.faults.add(method="sendMessage", status=500, times=1)
    assert await tom.says("/start") == [t("en", "error.generic")]
    assert await tom.says("/start") == [hello(), choose_language()]


async def test_group_chats_are_ignored(bot: CocreateApplication, emulator: Emulator) -> None:
    group = {"id": -100123, "type": "supergroup", "title": "Parks group"}
    update = Update.de_json(
        {
            "update_id": 77_000,
            "message": {
                "message_id": 5,
                "date": 1_790_000_000,
                "chat": group,
                "from": {"id": 1020, "is_bot": False, "first_name": "Uma"},
                "text": "/start",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            },
        },
        bot.bot,
    )
    await bot.update_queue.put(update)
    await bot.wait_handled(77_000)
    assert not [p for m, p in emulator.calls if m == "sendmessage"]
