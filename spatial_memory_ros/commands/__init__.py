"""Subcommands of ``spatial-memory`` beyond demo and graph, one module each.

A module here defines ``add_parser(subparsers)``, which adds its parser and sets ``run=<function>`` with
``parser.set_defaults(run=run)``, and ``run(args) -> int``. cli.py finds them by listing this package.
"""
