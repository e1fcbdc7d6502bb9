-- blob_ref_generation counts committed removals of blob references (of
-- groups and of virtual registry upstreams) and changes of a reference's
-- size. Triggers bump it in the same transaction as the change, so a
-- process that remembers which owner references which blob, under the
-- number it read, sees every committed removal on its next request. New
-- references do not bump it: what is remembered is only ever a reference
-- that was found.

-- +goose Up
CREATE TABLE blob_ref_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO blob_ref_generation (id, n) VALUES (1, 0);

-- +goose StatementBegin
CREATE TRIGGER blobs_del_blob_ref_generation AFTER DELETE ON blobs BEGIN UPDATE blob_ref_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER blobs_upd_blob_ref_generation AFTER UPDATE ON blobs
    WHEN OLD.group_id <> NEW.group_id OR OLD.digest <> NEW.digest OR OLD.size <> NEW.size
    BEGIN UPDATE blob_ref_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER virtual_blobs_del_blob_ref_generation AFTER DELETE ON virtual_blobs BEGIN UPDATE blob_ref_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER virtual_blobs_upd_blob_ref_generation AFTER UPDATE ON virtual_blobs
    WHEN OLD.upstream_id <> NEW.upstream_id OR OLD.digest <> NEW.digest OR OLD.size <> NEW.size
    BEGIN UPDATE blob_ref_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
