package commands

import (
	"github.com/dproxy/dproxy/internal/adminclient"
)

// JSONOutput names what a command prints with -o json: a value shaped as
// Value (a slice for a list).
type JSONOutput struct {
	Command string // the command path without "dproxy", e.g. "group list"
	Value   any
	Note    string
}

// JSONOutputs lists the -o json output of every command that prints; the
// CLI reference's json.md is generated from it, and a test checks that
// every command with -o is listed.
func JSONOutputs() []JSONOutput {
	setting := adminclient.ProxySetting{}
	creds := adminclient.DockerHubCredentials{}
	ttl := adminclient.TTLPolicy{}
	user := adminclient.User{}
	vr := adminclient.VirtualRegistry{}
	return []JSONOutput{
		{Command: "version", Value: buildInfo{}, Note: "`modified`: the build had uncommitted changes; unknown values are empty."},
		{Command: "login", Value: loggedIn{}, Note: "`profile` is the file the token was saved to."},
		{Command: "logout", Value: loggedOut{}},
		{Command: "group create", Value: adminclient.GroupSummary{}},
		{Command: "group list", Value: []adminclient.GroupSummary{}},
		{Command: "group show", Value: adminclient.Group{}},
		{Command: "group enable", Value: setting},
		{Command: "group disable", Value: setting},
		{Command: "group update", Value: setting},
		{Command: "group delete", Value: groupDeleted{}},
		{Command: "hub-creds set", Value: creds},
		{Command: "hub-creds clear", Value: creds},
		{Command: "hub-creds show", Value: creds, Note: "The secret is never returned; `secretSet` says whether one is stored."},
		{Command: "ttl-policy set", Value: ttl},
		{Command: "ttl-policy show", Value: ttl},
		{Command: "cache list", Value: []adminclient.Image{}, Note: "One element per image and digest, with the `tags` it was cached under (a pull by tag and the pull by digest that follows are one element; `tags` is empty for an image pulled by digest only). `imageSize` is config plus layers (for an index, its cached platforms'; `platforms` and `platformsCached` count them), `cachedSize` the bytes of those the group holds, `manifestSize` the manifest's own (GitLab's `size`). With `--blobs`, an array of blobs: `digest`, `fileName`, `size`, `createdAt`, `updatedAt`, `readAt`."},
		{Command: "cache purge", Value: adminclient.PurgeResult{}},
		{Command: "cache delete", Value: adminclient.Manifest{}, Note: "The manifest that was deleted."},
		{Command: "ratelimit check", Value: adminclient.DockerHubRateLimit{}, Note: "`limit`, `remaining` and `windowSeconds` are null when `unlimited`."},
		{Command: "user create", Value: user},
		{Command: "user list", Value: []adminclient.User{}},
		{Command: "user set-password", Value: user},
		{Command: "user block", Value: user},
		{Command: "user unblock", Value: user},
		{Command: "user delete", Value: userDeleted{}},
		{Command: "member add", Value: adminclient.Member{}},
		{Command: "member list", Value: []adminclient.Member{}},
		{Command: "member remove", Value: memberRemoved{}},
		{Command: "token create", Value: adminclient.CreatedToken{}, Note: "`secret` is shown this once."},
		{Command: "token list", Value: []adminclient.Token{}},
		{Command: "token revoke", Value: adminclient.RevokedToken{}, Note: "`alreadyRevoked`: the token had been revoked before; `token.revokedAt` is that first revocation."},
		{Command: "ci-env", Value: map[string]string{}, Note: "`-o json`: the variables by name. `-o dockerconfig` prints a Docker `config.json` instead: `{\"auths\": {\"<host:port>\": {\"auth\": \"<base64 of user:password>\"}}}`."},
		{Command: "ci-trust add", Value: adminclient.CITrust{}, Note: "`groupPath` is null when `groupClaim` names the group per token."},
		{Command: "ci-trust list", Value: []adminclient.CITrust{}},
		{Command: "ci-trust show", Value: adminclient.CITrust{}},
		{Command: "ci-trust remove", Value: adminclient.CITrust{}, Note: "The trust that was removed."},
		{Command: "virtual-registry create", Value: vr},
		{Command: "virtual-registry list", Value: []adminclient.VirtualRegistry{}},
		{Command: "virtual-registry show", Value: vr},
		{Command: "virtual-registry update", Value: vr},
		{Command: "virtual-registry delete", Value: vrDeleted{}},
		{Command: "virtual-registry upstream add", Value: vr, Note: "The registry with its upstreams, as `virtual-registry show`."},
		{Command: "virtual-registry upstream list", Value: vr},
		{Command: "virtual-registry upstream update", Value: vr},
		{Command: "virtual-registry upstream move", Value: vr},
		{Command: "virtual-registry upstream delete", Value: vr},
		{Command: "virtual-registry cache list", Value: []adminclient.VirtualCacheEntry{}},
		{Command: "virtual-registry cache delete", Value: vrCacheEntryDeleted{}},
		{Command: "virtual-registry cache clear", Value: vrCacheCleared{}, Note: "`upstreamId` is empty when every upstream's cache was cleared."},
		{Command: "warm add", Value: []adminclient.WarmEntry{}, Note: "The entries added or changed. With `--auto-top`, the auto setting instead: `top`, `windowSeconds`, `everySeconds`, `platforms`, `refreshedAt`."},
		{Command: "warm list", Value: adminclient.WarmList{}, Note: "`state` is `pending`, `current`, `warmed`, `reserve`, `size-cap`, `failed` or `throttled`; `auto` is null when the group has no auto-top setting."},
		{Command: "warm remove", Value: warmRemoved{}},
		{Command: "warm now", Value: warmQueued{}, Note: "`entries`: how many were made due."},
		{Command: "fsck", Value: fsckResult{}, Note: "Printed also when problems are left unrepaired (exit 1); a finding has `digest` for a blob or `name` for a temp file."},
		{Command: "backup create", Value: backupCreated{}, Note: "Not with `--file -`, where stdout carries the archive."},
		{Command: "backup restore", Value: backupRestored{}},
		{Command: "backup verify", Value: backupVerified{}},
	}
}
