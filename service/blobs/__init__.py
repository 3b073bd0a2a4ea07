"""Files' bytes: the blob store (content-addressed by SHA-256) and attachables (bytes
uploaded, named and typed, waiting to be attached to a recording).

Beside the event store, below the domain: events name files by :class:`FileRef` (their
SHA-256, size, type and name), never by where their bytes are kept.
"""
