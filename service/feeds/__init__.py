"""Atom 1.0 and RSS 2.0 feeds of the activity stream: pure rendering (:mod:`.render`) and the
queries that choose what a viewer may read (:mod:`.query`)."""
