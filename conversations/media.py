"""Files members send (voice notes, audio, photos, documents, video notes): what they are and
how they are fetched into MEDIA_DIR under an unguessable name."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from telegram import Message

from conversations.context import CocreateContext
from storage.sharing import NewMedia

# A stored file's suffix comes from what Telegram says the file is, never from the name the
# member gave it (invoice.pdf.exe is no PDF): a fixed suffix by kind, or one from this short
# list by MIME type, else ".bin".
_AUDIO = {
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
}
_DOCUMENTS = {
    **_AUDIO,
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/heic": ".heic",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "video/mp4": ".mp4",
}
UNKNOWN_SUFFIX = ".bin"


@dataclass(frozen=True)
class Incoming:
    """A file attached to a message, before it is fetched."""

    kind: str
    file_id: str
    size: int | None
    duration: int | None
    mime_type: str | None
    suffix: str


def incoming(message: Message) -> Incoming | None:
    """The file a message carries, if any (the largest size of a photo)."""
    if message.voice:
        v = message.voice
        return Incoming("voice", v.file_id, v.file_size, _seconds(v.duration), v.mime_type, ".ogg")
    if message.audio:
        a = message.audio
        suffix = _AUDIO.get(a.mime_type or "", UNKNOWN_SUFFIX)
        return Incoming("audio", a.file_id, a.file_size, _seconds(a.duration), a.mime_type, suffix)
    if message.photo:
        p = max(message.photo, key=lambda size: size.width * size.height)
        return Incoming("photo", p.file_id, p.file_size, None, "image/jpeg", ".jpg")
    if message.video_note:
        n = message.video_note
        return Incoming(
            "video_note", n.file_id, n.file_size, _seconds(n.duration), "video/mp4", ".mp4"
        )
    if message.document:
        d = message.document
        suffix = _DOCUMENTS.get(d.mime_type or "", UNKNOWN_SUFFIX)
        return Incoming("document", d.file_id, d.file_size, None, d.mime_type, suffix)
    return None


def _seconds(duration: object) -> int | None:
    """Telegram durations as whole seconds (ptb gives a timedelta or an int)."""
    if duration is None:
        return None
    total = getattr(duration, "total_seconds", None)
    return int(total()) if callable(total) else int(duration)  # type: ignore[call-overload]


def too_big(item: Incoming, context: CocreateContext) -> bool:
    """Whether a file is over the configured limit."""
    return item.size is not None and item.size > context.settings.media_max_mb * 1024 * 1024


def private_folder(folder: Path) -> None:
    """MEDIA_DIR (and any folder in it): only the bot's own user may open it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # mkdir's mode is cut by the umask, and it may exist already


def stored_name(suffix: str) -> str:
    """A new file name: unguessable (128 bits, hex), and never starting with a character a
    spreadsheet reads as a formula, so exports show it as it is."""
    return secrets.token_hex(16) + suffix


async def fetch(item: Incoming, context: CocreateContext) -> NewMedia:
    """Downloads a file into MEDIA_DIR under a new unguessable name, readable only by the
    bot's own user."""
    folder = context.settings.media_dir
    private_folder(folder)
    name = stored_name(item.suffix)
    partial = folder / f".{name}.part"
    telegram_file = await context.bot.get_file(item.file_id)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            await telegram_file.download_to_memory(out)
        os.replace(partial, folder / name)  # the file appears whole or not at all
    finally:
        partial.unlink(missing_ok=True)
    size = item.size if item.size is not None else (folder / name).stat().st_size
    return NewMedia(
        kind=item.kind,
        file_name=name,
        telegram_file_id=item.file_id,
        mime_type=item.mime_type,
        size=size,
        duration=item.duration,
    )


def remove_files(context: CocreateContext, names: list[str]) -> None:
    """Deletes files from MEDIA_DIR (names only: never a path from outside)."""
    for name in names:
        (context.settings.media_dir / Path(name).name).unlink(missing_ok=True)
