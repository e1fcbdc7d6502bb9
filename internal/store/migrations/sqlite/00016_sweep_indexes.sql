-- Indexes that keep the cache's sweeps and lists cheap however many rows
-- it holds: the size cap walks blob references in read order from a
-- cursor (LeastRecentlyRead), and the admin lists page a group's
-- manifests newest (highest id) first.

-- +goose Up
CREATE INDEX blobs_read_at ON blobs (read_at, digest);
CREATE INDEX virtual_blobs_read_at ON virtual_blobs (read_at, digest);
CREATE INDEX manifests_group_id ON manifests (group_id, id);

