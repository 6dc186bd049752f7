"""The host subcommands of ``python -m profiling`` (``run``, ``show``, ``report``, ``compare``).

Each module defines ``HELP``, ``add_arguments(parser)`` and ``main(args, console) -> int``; the
list that registers them is ``profiling.__main__.SUBCOMMANDS``.
"""
