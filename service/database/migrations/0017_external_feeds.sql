-- 0017: external feeds (#19, docs/API.md "External feeds"). A project's subscriptions to
-- RSS/Atom feeds and where the poller is with each. Not a read model: written in the same
-- transaction as the subscription's events (ExternalFeedAdded, ExternalFeedEdited,
-- ExternalFeedRemoved on stream extfeed-<id>), as invitations are, and holding operational
-- state the log never sees (validators, failures, the next poll, the poller's lease).
CREATE TABLE external_feeds (
    feed_id            text        PRIMARY KEY,
    project_id         text        NOT NULL,
    url                text        NOT NULL,
    title              text,
    visible_to_clients boolean     NOT NULL,
    interval_seconds   integer     NOT NULL,
    creator_id         text        NOT NULL,
    created_at         timestamptz NOT NULL,
    removed_at         timestamptz,
    -- The feed's own title, as last parsed (shown when no title was given).
    feed_title         text,
    -- Conditional GET validators of the last 200.
    etag               text,
    last_modified      text,
    next_poll_at       timestamptz NOT NULL,
    last_polled_at     timestamptz,
    failures           integer     NOT NULL DEFAULT 0,
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'ok', 'error')),
    error              text,
    -- A poller's claim: it polls the feed until then (another instance skips it).
    leased_until       timestamptz
);
CREATE INDEX external_feeds_project ON external_feeds (project_id, created_at);
CREATE INDEX external_feeds_due ON external_feeds (next_poll_at) WHERE removed_at IS NULL;
