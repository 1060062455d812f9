"""The one door: every update from a person passes here before any flow sees it.

In order, for each update:
1. Groups and channels are ignored: members talk to cocreate one to one.
2. The person's session (where they are in a flow, their draft) is read from the database.
   An update the session says was already applied (a replay after a crash) changes nothing.
3. Everything the update does is one unit of work (storage/db.py): its writes, the step the
   person moved to and "update N was applied" commit together, before each message the bot
   sends and at the end, with the inbox's done-mark. So what the door itself says (help,
   "we got your messages") waits until the update's writes are on disk, and goes before the
   flow's reply (storage/db.py `after_commit`): said at once, it would mark the update
   applied before the flow's writes. A replay of an update applied before a crash sends
   the help again, if its words called for it.
4. What applies to every message happens here, once: someone who wrote can be reached again;
   words that suggest a risk to life get help at once, in any flow and before joining
   (conversations/safeguarding.py).
5. Someone flooding (more than FLOOD of their updates waiting behind this one) gets one calm
   "we got your messages" (once a minute at most). Their updates are still handled, in
   order, but quietly: nothing is lost, their flows' replies are not sent (safeguarding help
   still is), until their last one, which is answered as usual.
6. The flows (conversations/routes.py, in order) take the update.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError

from bot.catalogue import recipient_channel, t
from bot.channels import channel_of
from conversations import safeguarding
from conversations.context import CURRENT_SESSION, QUIET, RISK_NOTED, Resources
from conversations.replies import chat_of, person_language
from storage.db import after_commit
from storage.sessions import Session

logger = logging.getLogger(__name__)

Dispatch = Callable[[Update], Awaitable[None]]
Reask = Callable[[Update], Awaitable[object]]
# More updates than this from one person waiting behind the one in hand: a flood.
FLOOD = 5
# Someone told "we got your messages" is not told again for this many seconds.
CALM_FOR = 60.0


class Door:
    """Wraps the handling of each update (see the module docstring)."""

    def __init__(
        self,
        resources: Resources,
        wake_delivery: Callable[[], None],
        behind: Callable[[int], int] = lambda person: 0,
    ) -> None:
        self.resources = resources
        self.wake_delivery = wake_delivery
        self.behind = behind  # how many of a person's updates wait behind the one in hand
        # When each person flooding was told "we got your messages" (time.monotonic()).
        self._calmed: dict[int, float] = {}

    async def handle(self, update: Update, dispatch: Dispatch, reask: Reask) -> None:
        """Handles one update through the door, then marks it done in the inbox.

        An update applied before a crash is not applied again; the person is asked again
        where they are (`reask`), as the reply may have been lost with the process.
        """
        store = self.resources.store
        chat, user = update.effective_chat, update.effective_user
        if chat is not None and chat.type != ChatType.PRIVATE:
            logger.info("Ignoring an update from a %s chat", chat.type)
            await store.inbox.mark_done(update.update_id)
            return
        if user is None:  # nothing from a person: no session to keep
            async with store.db.unit([self._done(update)]):
                await dispatch(update)
            return
        risk_token = RISK_NOTED.set(None)
        quiet_token = QUIET.set(False)
        # Texts are for this person: on SMS, the catalogue's SMS variants (and only theirs).
        channel_token = recipient_channel.set(channel_of(chat.id if chat else user.id))
        session_token = None
        try:
            async with store.db.unit() as unit:
                # Where the person is, and who they are (every flow asks), in one trip.
                await store.db.prefetch(
                    [store.sessions.reading(user.id), store.members.reading(user.id)]
                )
                session = await store.sessions.get(user.id)
                session_token = CURRENT_SESSION.set(session)
                unit.hooks += [self._keep(session, update), self._done(update)]
                if update.update_id <= session.last_update_id:
                    logger.info("Update %s was applied before a restart", update.update_id)
                    await safeguarding.help_again(update, self.resources)
                    try:
                        await reask(update)
                    except TelegramError as exc:  # the update is done all the same
                        logger.warning("Could not ask again after a restart: %s", exc)
                    return
                await self._for_everyone(update, user.id)
                QUIET.set(await self._flooding(update, user.id))
                await dispatch(update)
            if RISK_NOTED.get():
                self.wake_delivery()  # staff alerts were queued with the update's effects
        finally:
            recipient_channel.reset(channel_token)
            QUIET.reset(quiet_token)
            RISK_NOTED.reset(risk_token)
            if session_token is not None:
                CURRENT_SESSION.reset(session_token)

    async def _for_everyone(self, update: Update, user_id: int) -> None:
        """What applies to every message, whatever flow the person is in."""
        store = self.resources.store
        if update.message or update.callback_query:
            if await store.members.mark_reachable(user_id):
                logger.info("A member marked unreachable wrote again; they can be reached")
        message = update.message
        words = (message.text or message.caption) if message is not None else None
        if words:
            await safeguarding.notice(update, self.resources, words)

    async def _flooding(self, update: Update, user_id: int) -> bool:
        """True while this person floods: they are told once (in CALM_FOR) that their
        messages arrived; their last one is answered as usual."""
        waiting = self.behind(user_id)
        now = time.monotonic()
        told = self._calmed.get(user_id)
        if told is not None and now - told > CALM_FOR:
            del self._calmed[user_id]
            told = None
        if not waiting:
            return False
        if told is not None:
            return True
        if waiting <= FLOOD:
            return False
        self._calmed[user_id] = now
        if len(self._calmed) > 1000:  # forget those told long ago
            self._calmed = {u: at for u, at in self._calmed.items() if now - at <= CALM_FOR}
        chat_id = chat_of(update)
        logger.info("Someone sent many messages at once; answering their last one")
        if chat_id is not None:
            text = t(await person_language(update, self.resources), "flood.got_them")

            async def tell() -> None:
                try:
                    await update.get_bot().send_message(chat_id, text)
                except TelegramError as exc:
                    logger.warning("Could not tell someone their messages arrived: %s", exc)

            await after_commit(tell)  # after this update's writes (see the module docstring)
        return True

    def _keep(self, session: Session, update: Update) -> Callable[[bool], Awaitable[None]]:
        """Saves the session with every commit, marked with this update's id."""
        store = self.resources.store

        async def keep(final: bool) -> None:
            session.last_update_id = max(session.last_update_id, update.update_id)
            # Before consent, keep nothing about someone who is in no flow.
            if (
                session.dropped
                or session.stored
                or not session.empty
                or await store.members.exists(session.user_id)
            ):
                await store.sessions.save(session)

        return keep

    def _done(self, update: Update) -> Callable[[bool], Awaitable[None]]:
        """Marks the update done with the unit's last commit; if that commit has nothing
        else to write (all was committed before the last message went, with the session
        saying the update was applied), a moment later with other updates' marks."""
        store = self.resources.store

        async def done(final: bool) -> None:
            if not final:
                return
            # With several processes, the mark goes with the update's last commit: the next
            # process to hold this person must see it done (storage/coordination.py).
            if store.db.in_transaction() or store.coordination.shared:
                await store.inbox.mark_done(update.update_id)
            else:
                store.inbox.mark_done_soon(update.update_id)

        return done
