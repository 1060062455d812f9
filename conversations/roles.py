"""The staff team: organisers invite facilitators, see who is on the team, remove facilitators.

Commands: /invite and /roles (organisers), and the deep link `/start invite-<token>` (anyone;
onboarding.start hands it to `redeem`). Buttons: `roles:remove:<id>` asks to confirm,
`roles:confirm:<id>` removes, `roles:keep:<id>` does nothing. Tables: roles, invites (through
storage/roles.py). A role change also changes the person's command menu (commands.py).
"""

from __future__ import annotations

import logging

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from bot.catalogue import long_date, t, tn
from conversations.commands import command_list, menu_language, show_member_menu, show_staff_menu
from conversations.context import CocreateContext
from conversations.replies import chat_of, language_of, say, settle_button
from conversations.staff import FACILITATOR, ORGANISER, refuse, staff_only
from storage.roles import INVITE_TTL, Redemption, Role, StaffRole

logger = logging.getLogger(__name__)

PREFIX = "roles"
INVITE_PAYLOAD = "invite-"  # /start invite-<token>
REFUSALS = {
    Redemption.ALREADY_STAFF: "invite.already_staff",
    Redemption.WITHDRAWN: "invite.withdrawn",
    Redemption.EXPIRED: "invite.expired",
    Redemption.USED: "invite.used",
    Redemption.UNKNOWN: "invite.unknown",
}


async def _update_menu(context: CocreateContext, user_id: int, role: Role | None) -> None:
    """Changes someone's menu (in their private chat) after a role change; a failure leaves
    the role as it is."""
    try:
        if role is None:
            await show_member_menu(context.bot, user_id)
        else:
            language = await menu_language(context.store, user_id)
            await show_staff_menu(context.bot, user_id, role, language)
    except TelegramError as exc:
        logger.warning("Could not change the command menu of a staff chat: %s", exc)


# ---- invites


def invite_token(args: list[str] | None) -> str | None:
    """The token of a `/start invite-<token>` payload, or None for any other /start."""
    payload = args[0] if args else ""
    return payload.removeprefix(INVITE_PAYLOAD) if payload.startswith(INVITE_PAYLOAD) else None


async def invite(update: Update, context: CocreateContext) -> None:
    """Makes a single-use invite link for a new facilitator and sends it to the organiser."""
    user = update.effective_user
    assert user is not None
    now = context.clock.now()
    token = await context.store.roles.create_invite(user.id, now, INVITE_TTL)
    lang = await language_of(update, context)
    until = long_date((now + INVITE_TTL).astimezone(context.settings.tz).date(), lang)
    link = f"https://t.me/{context.bot.username}?start={INVITE_PAYLOAD}{token}"
    logger.info("Organiser %s made an invite", user.id)
    # To their private chat, whichever chat the command came from.
    days = INVITE_TTL.days
    text = tn(lang, "invite.link.days", days, link=link, days=days, until=until)
    await context.bot.send_message(user.id, text)


async def redeem(update: Update, context: CocreateContext, token: str) -> None:
    """Opens an invite: its first valid opener becomes a facilitator; others are told why not."""
    user = update.effective_user
    assert user is not None
    result = await context.store.roles.redeem(token, user.id, user.first_name)
    lang = await language_of(update, context)
    if result is not Redemption.OK:
        logger.info("An invite was refused for user %s: %s", user.id, result.value)
        await say(update, context, REFUSALS[result], language=lang)
        return
    logger.info("User %s became a facilitator", user.id)
    commands = command_list(FACILITATOR, lang)
    await say(update, context, "invite.welcome", language=lang, commands=commands)
    await _update_menu(context, user.id, FACILITATOR)


# ---- the team


def display_name(role: StaffRole, language: str) -> str:
    """A staff member's first name, or who they are until the bot has seen them."""
    return role.name or t(language, "roles.unnamed", id=role.telegram_user_id)


def since(role: StaffRole, context: CocreateContext, language: str) -> str:
    """The date a role was granted, in the organiser's language and time zone."""
    granted = role.granted_at.astimezone(context.settings.tz)
    return long_date(granted.date(), language)


async def list_roles(update: Update, context: CocreateContext) -> None:
    """Lists organisers and facilitators, with a Remove button for each facilitator."""
    lang = await language_of(update, context)
    team = await context.store.roles.staff()
    lines = [t(lang, "roles.title")]
    for role in team:
        key = "roles.line.organiser" if role.role == ORGANISER else "roles.line.facilitator"
        lines.append(t(lang, key, name=display_name(role, lang), since=since(role, context, lang)))
    facilitators = [role for role in team if role.role == FACILITATOR]
    lines.append("")
    if not facilitators:
        lines.append(t(lang, "roles.no_facilitators"))
    lines.append(t(lang, "roles.organisers_note"))
    buttons = [
        [
            InlineKeyboardButton(
                t(lang, "roles.remove", name=display_name(role, lang)),
                callback_data=f"{PREFIX}:remove:{role.telegram_user_id}",
            )
        ]
        for role in facilitators
    ]
    chat_id = chat_of(update)
    assert chat_id is not None
    markup = InlineKeyboardMarkup(buttons) if buttons else None
    await context.bot.send_message(chat_id, "\n".join(lines), reply_markup=markup)


async def on_button(update: Update, context: CocreateContext) -> None:
    """Asks to confirm a removal, removes a facilitator, or keeps them."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    action, _, target = (query.data or "").removeprefix(f"{PREFIX}:").partition(":")
    if action not in {"remove", "confirm", "keep"} or not target.isdigit():
        await refuse(update, context)
        return
    await settle_button(update)
    lang = await language_of(update, context)
    user_id = int(target)
    current = await context.store.roles.get(user_id)
    if current is None or current.role != FACILITATOR:
        await say(update, context, "roles.not_facilitator", language=lang)
        return
    name = display_name(current, lang)
    if action == "keep":
        await say(update, context, "roles.kept", language=lang)
    elif action == "remove":
        yes = InlineKeyboardButton(
            t(lang, "roles.remove.yes"), callback_data=f"{PREFIX}:confirm:{user_id}"
        )
        no = InlineKeyboardButton(
            t(lang, "roles.remove.no"), callback_data=f"{PREFIX}:keep:{user_id}"
        )
        markup = InlineKeyboardMarkup([[yes], [no]])
        await say(
            update, context, "roles.remove.ask", language=lang, reply_markup=markup, name=name
        )
    else:
        removed = await context.store.roles.remove(user_id, by=user.id)
        if removed is None:
            await say(update, context, "roles.not_facilitator", language=lang)
            return
        logger.info("Organiser %s removed facilitator %s", user.id, user_id)
        # Before the reply: a command menu is no commit point (bot/receiving.py QUIET_CALLS),
        # so a kill after the reply cannot leave it undone.
        await _update_menu(context, user_id, None)
        await say(update, context, "roles.removed", language=lang, name=name)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """/invite, /roles and the team's buttons, all for organisers only."""
    new_messages = filters.UpdateType.MESSAGE
    return [
        CommandHandler("invite", staff_only(invite, ORGANISER), filters=new_messages),
        CommandHandler("roles", staff_only(list_roles, ORGANISER), filters=new_messages),
        CallbackQueryHandler(staff_only(on_button, ORGANISER), pattern=rf"^{PREFIX}:"),
    ]
