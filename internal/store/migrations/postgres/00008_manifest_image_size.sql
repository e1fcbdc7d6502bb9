-- image_size is the size of what a cached image manifest refers to: its
-- config plus its layers, the bytes a pull of the image downloads besides
-- the manifest (size is the manifest's own bytes, as GitLab counts them).
-- It is 0 for an index, whose size is its platforms' and is added up when
-- listed. The next migration (Go: imagesize.go) fills it for rows stored
-- before it existed.

-- +goose Up
ALTER TABLE manifests ADD COLUMN image_size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE virtual_manifests ADD COLUMN image_size BIGINT NOT NULL DEFAULT 0;
