"""The Bot API emulator: a local stand-in for Telegram, for tests and `cocreate try`.

Where things live:
- `emulator.py` – `Emulator`: start/stop, members, what the bot did, fault switches.
- `member.py` – `SimUser`: a member who sends, presses buttons and reads the bot's messages.
- `methods.py` – the Bot API methods with Telegram's checks and error texts.
- `server.py` – HTTP for the bot: `/bot<token>/<method>`, `/file/bot<token>/<path>`.
- `control.py` – HTTP for members and other processes: `/_emu/...`, and the chat page of
  `cocreate try` (`static/`: plain HTML, CSS and JavaScript) at `/`.
- `state.py` – chats, messages, the update queue, files (all in memory).
- `faults.py` – injected errors and delays; `webhook.py` – webhook delivery (also as a
  reverse proxy in front of several bot processes); `rates.py` – counting new messages and
  429s (`Emulator.rate_report()`); `formatting.py` – parse_mode and bot_command entities.
- `sms.py` – `SmsProvider`: a stand-in for a Twilio-compatible SMS provider (its REST API,
  signed status callbacks, members' signed inbound texts).
"""

from emulator.emulator import DEFAULT_TOKEN, Emulator
from emulator.faults import ApiError, Fault, Faults
from emulator.member import SimUser
from emulator.rates import RateReport
from emulator.sms import SentSms, SmsProvider
from emulator.state import BotMessage

__all__ = [
    "DEFAULT_TOKEN",
    "ApiError",
    "BotMessage",
    "Emulator",
    "Fault",
    "Faults",
    "RateReport",
    "SentSms",
    "SimUser",
    "SmsProvider",
]
