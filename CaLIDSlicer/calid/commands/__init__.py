"""One module per CLI command: each defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.

Command modules import only the standard library at module level, so ``calid --help``
is instant; heavy imports (torch, SimpleITK) happen inside ``run``.
"""
