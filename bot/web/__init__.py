"""The staff workbench: web pages served beside the bot (bot/web/server.py, bot/web/app.py).

Nothing heavy is imported here: the command line names the error below without loading the
web libraries (only `cocreate run` and `cocreate try` serve the workbench).
"""


class WorkbenchUnavailable(RuntimeError):
    """WEB_LISTEN:WEB_PORT cannot be listened on."""
