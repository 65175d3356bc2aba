"""`python -m gitexp ...` is the `gitexp` command (the installed git hooks use this form)."""

from .cli import main

main(prog_name="gitexp")
