"""One module a CLI subcommand, each with ``add_arguments(parser)`` and ``run(args) -> int``."""
