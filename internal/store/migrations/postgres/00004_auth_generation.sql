-- auth_generation counts changes to what authorises a pull: users, groups,
-- memberships, tokens (but not their last_used_at), dependency proxy
-- settings and instance settings. Triggers bump it in the same transaction
-- as the change, so a replica that remembers pull decisions under the
-- number it read first sees every committed change on its next request.

-- +goose Up
CREATE TABLE auth_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO auth_generation (id, n) VALUES (1, 0);

-- +goose StatementBegin
CREATE FUNCTION bump_auth_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth_generation SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER users_auth_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_generation();
CREATE TRIGGER groups_auth_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON groups
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_generation();
CREATE TRIGGER members_auth_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_generation();
CREATE TRIGGER tokens_auth_generation
    AFTER INSERT OR DELETE OR TRUNCATE
        OR UPDATE OF kind, name, user_id, group_id, username, role, scopes, hash, expires_at, revoked_at, created_at ON tokens
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_generation();
CREATE TRIGGER dependency_proxy_settings_auth_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dependency_proxy_settings
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_generation();
CREATE TRIGGER instance_settings_auth_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON instance_settings
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_generation();
