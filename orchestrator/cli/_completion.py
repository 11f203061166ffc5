"""``orchestrator completion SHELL``: the shell completion script, as click writes it."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from orchestrator.cli._exit_codes import EXIT_OK, _exit_codes
from orchestrator.cli._group import _CONTEXT, cli

#: the variable click's completion scripts call the command back with
_COMPLETE_VAR = "_ORCHESTRATOR_COMPLETE"


@cli.command(
    context_settings=_CONTEXT,
    epilog="\b\nInstall it (once):\n"
    "  orchestrator completion bash > ~/.local/share/bash-completion/completions/orchestrator\n"
    '  orchestrator completion zsh > "${fpath[1]}/_orchestrator"\n'
    "  orchestrator completion fish > ~/.config/fish/completions/orchestrator.fish\n"
    'or load it in each shell: eval "$(orchestrator completion bash)"\n\n'
    + _exit_codes((EXIT_OK, "the script was printed")),
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> int:
    """Print the completion script of SHELL (commands, options, choices, file names)."""
    cls = get_completion_class(shell)
    assert cls is not None  # every choice is one of click's shells
    script = cls(cli, {}, "orchestrator", _COMPLETE_VAR).source()
    click.echo(script)  # exactly as click prints it for _ORCHESTRATOR_COMPLETE=bash_source
    return EXIT_OK
