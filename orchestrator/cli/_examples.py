"""``orchestrator examples``: the example spec files that come with the program."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from orchestrator.cli._console import _fail, _out
from orchestrator.cli._exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _exit_codes
from orchestrator.cli._group import _CONTEXT, cli


@cli.command(
    context_settings=_CONTEXT,
    epilog="\b\nStart here, anywhere (no account, no network, nothing real is built):\n"
    "  orchestrator examples specs && orchestrator run --simulate specs/example.toml\n\n"
    + _exit_codes(
        (EXIT_OK, "listed, or copied"),
        (EXIT_USAGE, "a file of that name is already in DIR (nothing copied)"),
        (EXIT_FAILED, "DIR could not be written, or this install has no examples"),
    ),
)
@click.argument("directory", metavar="[DIR]", required=False, type=click.Path(path_type=Path))
def examples(directory: Path | None) -> int:
    """List the example spec files, or copy them into DIR (created if need be).

    Every example uses only the simulator's catalogue, so it runs with --simulate.
    """
    from orchestrator._examples import example_specs

    specs = example_specs()
    if not specs:
        return _fail("this installation has no example specs", EXIT_FAILED)
    out = _out()
    if directory is None:
        for spec in specs:
            out.print(str(spec), markup=False, highlight=False)
        return EXIT_OK
    taken = [spec.name for spec in specs if (directory / spec.name).exists()]
    if taken:
        return _fail(f"{directory}: already has {', '.join(taken)}; nothing copied", EXIT_USAGE)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            shutil.copyfile(spec, directory / spec.name)
    except OSError as exc:
        return _fail(f"cannot write {directory}: {exc.strerror or exc}", EXIT_FAILED)
    for spec in specs:
        out.print(str(directory / spec.name), markup=False, highlight=False)
    return EXIT_OK
