-- credential_version counts the changes that end a user's sessions: a new
-- password, or being blocked. Refresh and registry tokens carry the number
-- they were minted under and stop working once it moves on. A blocked user
-- cannot sign in at all, with a password or with their personal tokens.

-- +goose Up
ALTER TABLE users ADD COLUMN credential_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN blocked BOOLEAN NOT NULL DEFAULT FALSE;
