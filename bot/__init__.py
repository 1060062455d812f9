"""cocreate: wiring — settings, app, roles, CLI, the Bot API emulator."""
