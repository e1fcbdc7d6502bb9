-- Container virtual registries: per top-level group, an ordered list of
-- upstream registries pulled through one address. Upstream passwords are
-- sealed like Docker Hub secrets (AD virtual_registry_upstreams:<id>:password).

-- +goose Up
CREATE TABLE virtual_registries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    UNIQUE (group_id, name)
);

CREATE TABLE virtual_registry_upstreams (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    registry_id          INTEGER NOT NULL REFERENCES virtual_registries (id) ON DELETE CASCADE,
    position             INTEGER NOT NULL,
    name                 TEXT NOT NULL,
    url                  TEXT NOT NULL,
    username             TEXT NOT NULL DEFAULT '',
    password_sealed      BLOB,
    cache_validity_hours INTEGER NOT NULL DEFAULT 24,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL,
    UNIQUE (registry_id, name)
);
CREATE INDEX virtual_registry_upstreams_position ON virtual_registry_upstreams (registry_id, position);
