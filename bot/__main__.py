"""`python -m bot` is the same as the `cocreate` command."""

from bot.cli import main

main()
