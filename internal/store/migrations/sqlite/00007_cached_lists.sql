-- Cached listings of upstream repositories: tag lists and OCI referrers
-- lists, one row per owner (a group's dependency proxy, or a virtual
-- registry upstream), image and listing. kind is 'tags' (subject '') or
-- 'referrers' (subject: the digest whose referrers are listed); content is
-- the listing as dproxy serves it (JSON). updated_at is when the upstream
-- last answered it, read_at when a client last read it (TTL expiry).

-- +goose Up
CREATE TABLE lists (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    image      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    content    BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    read_at    TIMESTAMP NOT NULL,
    UNIQUE (group_id, image, kind, subject)
);
CREATE INDEX lists_group_read_at ON lists (group_id, read_at);

CREATE TABLE virtual_lists (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    upstream_id INTEGER NOT NULL REFERENCES virtual_registry_upstreams (id) ON DELETE CASCADE,
    image       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    content     BLOB NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    read_at     TIMESTAMP NOT NULL,
    UNIQUE (upstream_id, image, kind, subject)
);
