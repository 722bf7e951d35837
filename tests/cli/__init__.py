"""CLI tests: every one lives here, one file per command (``test_<command>_cli.py``), plus
``test_cli_errors.py`` for what all commands share (one-line errors, the exit-code map)."""
