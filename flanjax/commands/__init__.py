"""Subcommands of the `flanjax` command line (thin: parse flags, call a library)."""
