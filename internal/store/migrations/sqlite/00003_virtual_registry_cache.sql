-- The cache of virtual registry upstreams: the same columns as a group's
-- manifests and blobs, owned by an upstream. Blob files are shared with
-- the groups' caches: blob_refs lists every reference to a file, for
-- garbage collection and the size cap.

-- +goose Up
CREATE TABLE virtual_manifests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    upstream_id INTEGER NOT NULL REFERENCES virtual_registry_upstreams (id) ON DELETE CASCADE,
    image       TEXT NOT NULL,
    reference   TEXT NOT NULL,
    digest      TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        BIGINT NOT NULL,
    content     BLOB NOT NULL,
    etag        TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'default',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    read_at     TIMESTAMP NOT NULL,
    UNIQUE (upstream_id, image, reference)
);

CREATE TABLE virtual_blobs (
    upstream_id INTEGER NOT NULL REFERENCES virtual_registry_upstreams (id) ON DELETE CASCADE,
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    read_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (upstream_id, digest)
);
CREATE INDEX virtual_blobs_digest ON virtual_blobs (digest);

CREATE VIEW blob_refs AS
    SELECT digest, size, read_at FROM blobs
    UNION ALL
    SELECT digest, size, read_at FROM virtual_blobs;
