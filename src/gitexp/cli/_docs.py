"""Write docs/cli.md from the commands' own help: `python -m gitexp.cli._docs > docs/cli.md`."""

from __future__ import annotations

from collections.abc import Iterator

import click

from . import main


def _walk(group: click.Group, parent: click.Context,
          path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    for name in sorted(group.commands):
        command = group.commands[name]
        ctx = click.Context(command, info_name=name, parent=parent)
        yield path + (name,), command, ctx
        if isinstance(command, click.Group):
            yield from _walk(command, ctx, path + (name,))


def render() -> str:
    parts = ["# gitexp command line", "",
             "Generated from each command's `--help` by `python -m gitexp.cli._docs > docs/cli.md`;",
             "a test keeps this file in step with the code.", ""]
    ctx = click.Context(main, info_name="gitexp", terminal_width=100, **main.context_settings)
    parts += ["```text", main.get_help(ctx), "```", ""]
    for path, command, sub in _walk(main, ctx, ()):
        parts += [f"## gitexp {' '.join(path)}", "", "```text", command.get_help(sub), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
