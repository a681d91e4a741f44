"""The command-line layer: the `spac` subcommands and the CLI conventions every program shares."""
