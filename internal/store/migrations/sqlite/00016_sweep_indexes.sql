-- Indexes that keep the cache's sweeps and lists cheap however many rows
-- it holds: the size cap walks blob references in read order from a
-- cursor (LeastRecentlyRead), and the admin lists page a group's
-- manifests newest (highest id) first and its blob references newest
-- (created_at, then digest) first.

-- +goose Up
CREATE INDEX blobs_read_at ON blobs (read_at, digest);
CREATE INDEX virtual_blobs_read_at ON virtual_blobs (read_at, digest);
CREATE INDEX manifests_group_id ON manifests (group_id, id);
CREATE INDEX blobs_group_created_at ON blobs (group_id, created_at DESC, digest);

