-- CI trust policies: which OpenID Connect ID tokens sign in as a CI job.
-- A trust names the token issuer and audience, and the group it grants
-- pulls in: a fixed group (group_id) or the group whose path a token claim
-- names (group_claim). claims is a JSON array of {"key","glob"} rules that
-- must all match; max_lifetime bounds the registry tokens issued, in
-- seconds. Changes bump auth_generation like the other credentials.

-- +goose Up
CREATE TABLE ci_trusts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    issuer       TEXT NOT NULL,
    audience     TEXT NOT NULL,
    group_id     INTEGER REFERENCES groups (id) ON DELETE CASCADE,
    group_claim  TEXT NOT NULL,
    role         INTEGER NOT NULL,
    claims       TEXT NOT NULL,
    max_lifetime BIGINT NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX ci_trusts_issuer ON ci_trusts (issuer);

-- +goose StatementBegin
CREATE TRIGGER ci_trusts_ins_auth_generation AFTER INSERT ON ci_trusts BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ci_trusts_upd_auth_generation AFTER UPDATE ON ci_trusts BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ci_trusts_del_auth_generation AFTER DELETE ON ci_trusts BEGIN UPDATE auth_generation SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd
