-- blob_ref_generation counts committed removals of blob references (of
-- groups and of virtual registry upstreams) and changes of a reference's
-- size. Triggers bump it in the same transaction as the change, so a
-- replica that remembers which owner references which blob, under the
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
CREATE FUNCTION bump_blob_ref_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE blob_ref_generation SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- A DELETE that removed no row (a sweep that found nothing) leaves the
-- number alone.
-- +goose StatementBegin
CREATE FUNCTION bump_blob_ref_generation_if_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM gone) THEN
        UPDATE blob_ref_generation SET n = n + 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER blobs_del_blob_ref_generation AFTER DELETE ON blobs
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION bump_blob_ref_generation_if_deleted();
CREATE TRIGGER blobs_truncate_blob_ref_generation AFTER TRUNCATE ON blobs
    FOR EACH STATEMENT EXECUTE FUNCTION bump_blob_ref_generation();
CREATE TRIGGER blobs_upd_blob_ref_generation AFTER UPDATE ON blobs
    FOR EACH ROW WHEN (OLD.group_id <> NEW.group_id OR OLD.digest <> NEW.digest OR OLD.size <> NEW.size)
    EXECUTE FUNCTION bump_blob_ref_generation();
CREATE TRIGGER virtual_blobs_del_blob_ref_generation AFTER DELETE ON virtual_blobs
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION bump_blob_ref_generation_if_deleted();
CREATE TRIGGER virtual_blobs_truncate_blob_ref_generation AFTER TRUNCATE ON virtual_blobs
    FOR EACH STATEMENT EXECUTE FUNCTION bump_blob_ref_generation();
CREATE TRIGGER virtual_blobs_upd_blob_ref_generation AFTER UPDATE ON virtual_blobs
    FOR EACH ROW WHEN (OLD.upstream_id <> NEW.upstream_id OR OLD.digest <> NEW.digest OR OLD.size <> NEW.size)
    EXECUTE FUNCTION bump_blob_ref_generation();
