"""Background workers: readers of the log that act on it (notices, mail, alerts, and later
webhooks and pollers). They run commands through :mod:`service.commands` and read access
facts through :mod:`service.reads`, never through the HTTP layer.

:mod:`.reader` is what every delivery reader shares: a checkpoint of its own, moved in the
transaction that records what the batch caused, one instance at a time.
"""
