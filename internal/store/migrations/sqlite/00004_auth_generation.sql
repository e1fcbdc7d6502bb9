-- auth_generation counts changes to what authorises a pull: users, groups,
-- memberships, tokens (but not their last_used_at), dependency proxy
-- settings and instance settings. Triggers bump it in the same transaction
-- as the change, so a process that remembers pull decisions under the
-- number it read first sees every committed change on its next request.

-- +goose Up
CREATE TABLE auth_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO auth_generation (id, n) VALUES (1, 0);

-- +goose StatementBegin
CREATE TRIGGER users_ins_auth_generation AFTER INSERT ON users BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER users_upd_auth_generation AFTER UPDATE ON users BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER users_del_auth_generation AFTER DELETE ON users BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER groups_ins_auth_generation AFTER INSERT ON groups BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER groups_upd_auth_generation AFTER UPDATE ON groups BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER groups_del_auth_generation AFTER DELETE ON groups BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER members_ins_auth_generation AFTER INSERT ON members BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER members_upd_auth_generation AFTER UPDATE ON members BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER members_del_auth_generation AFTER DELETE ON members BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER tokens_ins_auth_generation AFTER INSERT ON tokens BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER tokens_upd_auth_generation
    AFTER UPDATE OF kind, name, user_id, group_id, username, role, scopes, hash, expires_at, revoked_at, created_at ON tokens
    BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER tokens_del_auth_generation AFTER DELETE ON tokens BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER dependency_proxy_settings_ins_auth_generation AFTER INSERT ON dependency_proxy_settings BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER dependency_proxy_settings_upd_auth_generation AFTER UPDATE ON dependency_proxy_settings BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER dependency_proxy_settings_del_auth_generation AFTER DELETE ON dependency_proxy_settings BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER instance_settings_ins_auth_generation AFTER INSERT ON instance_settings BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER instance_settings_upd_auth_generation AFTER UPDATE ON instance_settings BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER instance_settings_del_auth_generation AFTER DELETE ON instance_settings BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
