"""Questions: each round that went out, how many it was sent to, delivered to and answered
by; for a choice, scale or yes/no question a bar chart of the options (SVG made here) with
its data table beside it; the open answers, each with a form to answer it privately. A
private reply goes through the reply relay the chat uses (conversations/reviewing.py
`relay_reply`): the member gets it in Telegram from the bot, with "Answer back".

Small numbers: the answers per option are hidden as /stats hides counts (storage/
suppression.py): a count from 1 to 9 shows as *, and so does the answered total's smallest
other part when only one would be hidden, so none can be worked out by subtraction (the
answered total is the options' sum plus the answers without a choice). Sent and delivered
count messages the bot sent, not what anyone said: they are shown as they are.

Routes:
  GET  /questions                         rounds, newest first, a page at a time
  GET  /questions/rounds/{id}             one round: its chart and its open answers
  POST /questions/answers/{id}/reply      a private reply to an answer (CSRF)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.web.access import Staff, form_of, same_token
from bot.web.bench import Bench
from conversations.reviewing import MAX_REPLY, relay_reply
from storage.round_figures import OpenAnswer, RoundFigures
from storage.suppression import hidden_counts

logger = logging.getLogger(__name__)

NAV = ("/questions", "Questions")
ROUNDS = 5  # rounds a page (counting a round reads its outbox rows: 100,000 take ~30 ms)
ANSWERS = 20  # open answers a page
HIDDEN = "*"
WHEN = "%-d %b %Y, %H:%M"
KIND_NAMES = {
    "open": "In their own words",
    "choice": "Choose one",
    "scale": "Scale of 1 to 5",
    "yesno": "Yes or no",
}
# The chart: a bar per option, as wide as its share of the largest count shown.
BAR_LEFT, BAR_WIDTH, ROW_HEIGHT = 130, 220, 30


@dataclass(frozen=True)
class Bar:
    label: str
    count: str  # the number, or "*" when hidden
    width: int  # in the chart's units (0: hidden or none)
    y: int


@dataclass(frozen=True)
class Shown:
    """A round as the page shows it."""

    figures: RoundFigures
    kind_name: str
    when: str
    answered: str
    bars: tuple[Bar, ...]
    chart_height: int


@dataclass(frozen=True)
class Answered:
    answer: OpenAnswer
    pseudonym: str
    when: str


def options(figures: RoundFigures) -> list[tuple[str, str]]:
    """(stored choice, label) for each option of the question."""
    if figures.kind == "choice":
        return [(str(i), label) for i, label in enumerate(figures.options, start=1)]
    if figures.kind == "scale":
        return [(str(n), str(n)) for n in range(1, 6)]
    if figures.kind == "yesno":
        return [("yes", "Yes"), ("no", "No")]
    return []


def shown(figures: RoundFigures, bench: Bench) -> Shown:
    """The round's counts with small ones hidden, and its chart."""
    choices = options(figures)
    counts: dict[str, int] = {key: figures.per_choice.get(key, 0) for key, _ in choices}
    counts[" answered"] = figures.answered
    counts[" other"] = figures.answered - sum(counts[key] for key, _ in choices)
    hidden = hidden_counts(counts, [(" answered", [*(key for key, _ in choices), " other"])])
    top = max([counts[key] for key, _ in choices if key not in hidden] + [1])
    bars = tuple(
        Bar(
            label=label,
            count=HIDDEN if key in hidden else str(counts[key]),
            width=0 if key in hidden else round(BAR_WIDTH * counts[key] / top),
            y=i * ROW_HEIGHT,
        )
        for i, (key, label) in enumerate(choices)
    )
    tz = bench.resources.settings.tz
    when = figures.sent_at.astimezone(tz).strftime(WHEN) if figures.sent_at else ""
    return Shown(
        figures=figures,
        kind_name=KIND_NAMES.get(figures.kind, figures.kind),
        when=when,
        answered=HIDDEN if " answered" in hidden else str(figures.answered),
        bars=bars,
        chart_height=max(len(bars), 1) * ROW_HEIGHT,
    )


def _page(request: Request) -> int:
    value = request.query_params.get("page", "")
    return max(int(value), 1) if value.isascii() and value.isdigit() else 1


def routes(bench: Bench) -> list[BaseRoute]:
    async def rounds(request: Request) -> Response:
        staff = await bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        page = _page(request)
        found = await bench.reader.rounds.sent((page - 1) * ROUNDS, ROUNDS + 1)
        return bench.page(
            request,
            "questions",
            staff=staff,
            rounds=[shown(f, bench) for f in found[:ROUNDS]],
            page=page,
            more=len(found) > ROUNDS,
        )

    async def one_round(
        request: Request, staff: Staff, round_id: int, status: int = 200, **extra: object
    ) -> Response:
        figures = await bench.reader.rounds.get(round_id)
        if figures is None:
            return bench.page(request, "questions_gone", 404, staff=staff)
        page = _page(request)
        found = await bench.reader.rounds.open_answers(round_id, (page - 1) * ANSWERS, ANSWERS + 1)
        answers = found[:ANSWERS]
        names = await bench.resources.store.pseudonyms.of_many(a.member_id for a in answers)
        tz = bench.resources.settings.tz
        return bench.page(
            request,
            "questions_round",
            status,
            staff=staff,
            round=shown(figures, bench),
            answers=[
                Answered(a, names[a.member_id], a.answered_at.astimezone(tz).strftime(WHEN))
                for a in answers
            ],
            page=page,
            more=len(found) > ANSWERS,
            max_reply=MAX_REPLY,
            **extra,
        )

    async def round_page(request: Request) -> Response:
        staff = await bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        sent = request.query_params.get("sent", "")
        return await one_round(
            request,
            staff,
            int(request.path_params["round_id"]),
            sent=int(sent) if sent.isascii() and sent.isdigit() else None,
        )

    async def reply(request: Request) -> Response:
        staff = await bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        form = await form_of(request)
        if not same_token(form.get("csrf"), staff.csrf):
            return bench.page(request, "forbidden", 403)
        store = bench.resources.store
        answer = await store.answers.get(int(request.path_params["answer_id"]))
        member = await store.members.get(answer.member_id) if answer else None
        if answer is None or member is None:
            return bench.page(request, "questions_gone", 404, staff=staff)
        text = form.get("text", "").strip()
        problem = None
        if not text:
            problem = "Write your reply first."
        elif len(text) > MAX_REPLY:
            problem = f"Your reply is {len(text)} letters long. It can be {MAX_REPLY} at most."
        if problem is not None:
            return await one_round(
                request,
                staff,
                answer.round_id,
                400,
                problem=problem,
                problem_for=answer.id,
                draft=text,
            )
        who = staff.session.telegram_user_id
        await relay_reply(store, answer, member, who, who, text, via="workbench")
        bench.wake_delivery()
        return RedirectResponse(
            f"/questions/rounds/{answer.round_id}?sent={answer.id}#answer-{answer.id}",
            status_code=303,
        )

    return [
        Route("/questions", rounds),
        Route("/questions/rounds/{round_id:int}", round_page),
        Route("/questions/answers/{answer_id:int}/reply", reply, methods=["POST"]),
    ]
