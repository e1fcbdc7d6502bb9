-- Prewarming. warm_entries are the tags a group's dependency proxy keeps
-- warm: image is the upstream repository ("library/node"), platforms a
-- comma-separated list ('' = the platforms pulled recently, else
-- linux/amd64), every_seconds the check interval. auto marks an entry
-- chosen from pull statistics (warm_auto), replaced when they are
-- refreshed. checked_at, digest, state and message are the last check;
-- next_at is when the entry is due again.
--
-- warm_auto is a group's "keep the top N pulled tags warm" setting.
-- tag_pulls counts the pulls of a group's tags per UTC day, for it.
-- Written to run again on a database that has it (IF NOT EXISTS).

-- +goose Up
CREATE TABLE IF NOT EXISTS warm_entries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id      INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    image         TEXT NOT NULL,
    tag           TEXT NOT NULL,
    platforms     TEXT NOT NULL DEFAULT '',
    every_seconds BIGINT NOT NULL,
    auto          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL,
    checked_at    TIMESTAMP,
    digest        TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'pending',
    message       TEXT NOT NULL DEFAULT '',
    next_at       TIMESTAMP NOT NULL,
    UNIQUE (group_id, image, tag)
);
CREATE INDEX IF NOT EXISTS warm_entries_next_at ON warm_entries (next_at);

CREATE TABLE IF NOT EXISTS warm_auto (
    group_id       INTEGER PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    top            INTEGER NOT NULL,
    window_seconds BIGINT NOT NULL,
    every_seconds  BIGINT NOT NULL,
    platforms      TEXT NOT NULL DEFAULT '',
    refreshed_at   TIMESTAMP
);

CREATE TABLE IF NOT EXISTS tag_pulls (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    image    TEXT NOT NULL,
    tag      TEXT NOT NULL,
    day      TIMESTAMP NOT NULL,
    pulls    BIGINT NOT NULL,
    PRIMARY KEY (group_id, image, tag, day)
);
CREATE INDEX IF NOT EXISTS tag_pulls_group_day ON tag_pulls (group_id, day);
