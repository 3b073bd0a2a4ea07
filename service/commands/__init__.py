"""The application layer: running commands (fold, decide, append, wait for the read models)
and replaying the log, for every caller alike — HTTP, the CLI, bootstrap and background
workers. Takes plain arguments (:class:`~service.commands.caller.Caller`); knows no
transport."""
