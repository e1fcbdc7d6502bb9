-- Anonymous pulls go upstream anonymously unless an instance admin lets
-- them use the group's (else the instance's) Docker Hub credentials.

-- +goose Up
ALTER TABLE dependency_proxy_settings ADD COLUMN anonymous_pulls_use_credentials BOOLEAN NOT NULL DEFAULT FALSE;
