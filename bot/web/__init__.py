"""The staff workbench: web pages served beside the bot (bot/web/server.py, bot/web/app.py)."""
