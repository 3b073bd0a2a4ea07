"""Mail: notifications out over SMTP (the outbox, composition, digests) and mail in over
LMTP/SMTP (replies become comments, forwards become messages). Runs commands through
:mod:`service.commands` and reads through :mod:`service.reads`, never through HTTP."""
