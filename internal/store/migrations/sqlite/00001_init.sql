-- The initial schema. Times are UTC; booleans are 0/1; ids are never reused.
-- Keep migrations forward-only: a later change is a new numbered file.

-- +goose Up
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL DEFAULT '',
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id  INTEGER REFERENCES groups (id) ON DELETE CASCADE,
    path       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX groups_parent_id ON groups (parent_id);

CREATE TABLE members (
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX members_user_id ON members (user_id);

-- Only the SHA-256 of a token's secret is stored. scopes is a comma-separated list.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    group_id     INTEGER REFERENCES groups (id) ON DELETE CASCADE,
    username     TEXT NOT NULL DEFAULT '',
    role         INTEGER NOT NULL DEFAULT 0,
    scopes       TEXT NOT NULL DEFAULT '',
    hash         BLOB NOT NULL UNIQUE,
    expires_at   TIMESTAMP,
    revoked_at   TIMESTAMP,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    CHECK ((kind = 'personal' AND user_id IS NOT NULL)
        OR (kind IN ('group', 'deploy') AND group_id IS NOT NULL))
);
CREATE INDEX tokens_user_id ON tokens (user_id);
CREATE INDEX tokens_group_id ON tokens (group_id);

-- secret_sealed is AES-256-GCM sealed (see internal/secretbox); NULL when unset.
CREATE TABLE dependency_proxy_settings (
    group_id             INTEGER PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    identity             TEXT NOT NULL DEFAULT '',
    secret_sealed        BLOB,
    freshness_window_ms  BIGINT NOT NULL DEFAULT 0,
    allow_anonymous_pull BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at           TIMESTAMP NOT NULL
);

CREATE TABLE ttl_policies (
    group_id   INTEGER PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    ttl_days   INTEGER NOT NULL DEFAULT 90,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE instance_settings (
    key          TEXT PRIMARY KEY,
    value        TEXT NOT NULL DEFAULT '',
    value_sealed BLOB,
    updated_at   TIMESTAMP NOT NULL
);

CREATE TABLE manifests (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    image      TEXT NOT NULL,
    reference  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       BIGINT NOT NULL,
    content    BLOB NOT NULL,
    etag       TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL DEFAULT 'default',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    read_at    TIMESTAMP NOT NULL,
    UNIQUE (group_id, image, reference)
);
CREATE INDEX manifests_digest ON manifests (digest);
CREATE INDEX manifests_group_read_at ON manifests (group_id, read_at);

CREATE TABLE blobs (
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    digest     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    read_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, digest)
);
CREATE INDEX blobs_digest ON blobs (digest);
CREATE INDEX blobs_group_read_at ON blobs (group_id, read_at);
