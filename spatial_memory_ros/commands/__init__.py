"""Subcommands of ``spatial-memory`` beyond demo and graph, one module each.

A module here defines ``add_parser(subparsers)``, which adds its parser and sets ``run=<function>`` with
``parser.set_defaults(run=run)``, and ``run(args) -> int``. cli.py finds them by listing this package; a module whose name starts
with an underscore is a helper of another command (``_adapt_bev``: the bag mode of ``train bev``) and is skipped.
"""


def command_group(subparsers, name: str, help_text: str):
    """The sub-subparsers of a command group that several modules add to (``data``, ``train``), made on first use."""
    group = subparsers.choices.get(name) or subparsers.add_parser(name, help=help_text)
    models = getattr(group, "_models", None)
    if models is None:
        models = group.add_subparsers(dest="model", required=True, metavar="MODEL")
        group._models = models
    return models
