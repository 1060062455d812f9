"""The Bot API emulator: a local stand-in for Telegram, for tests and `cocreate try`."""
