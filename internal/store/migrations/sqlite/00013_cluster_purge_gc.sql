-- Purges, garbage collection and blob downloads that hold across
-- replicas sharing one database.
--
-- purge_generation counts the purges of a group's cache (and the clears
-- of a virtual registry upstream's cache). A download notes it when a
-- client of the owner joins; its commit adds the owner's blob reference
-- only while the count is unchanged, in the statement that inserts it,
-- so a purge through any replica stops the downloads of every replica
-- from adding the reference back.
--
-- blob_unreferenced holds the blob files garbage collection found with
-- no reference, and since when. A file is deleted only once it has been
-- unreferenced for longer than the grace period, so a replica still
-- handing it out (it had a reference when it started) finishes first.
-- Adding a reference removes the row.
--
-- blob_fetches holds the lease of the one replica fetching a blob from
-- its upstream, with the internal URL (peer_url, "" for none) other
-- replicas stream it from meanwhile. The holder renews expires_at while it
-- downloads; a lease past expires_at (its holder died) may be taken over.

-- +goose Up
ALTER TABLE groups ADD COLUMN purge_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE virtual_registry_upstreams ADD COLUMN purge_generation BIGINT NOT NULL DEFAULT 0;

CREATE TABLE blob_unreferenced (
    digest TEXT NOT NULL PRIMARY KEY,
    since  TIMESTAMP NOT NULL
);

CREATE TABLE blob_fetches (
    digest     TEXT NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    peer_url   TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
