package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// TestMalformedManifestReference: a manifest GET or HEAD whose reference
// is neither a tag nor a digest names no manifest that could exist, and
// distribution-spec allows only 404 for it; a malformed digest stays 400.
// Neither reaches the upstream.
func TestMalformedManifestReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: func(c *config.Config) { c.MirrorGroup = "acme" }})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	e.up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	proxyJWT := e.jwt("alice", tok, "acme/dependency_proxy/containers/alpine")
	mirrorJWT := e.jwt("alice", tok, "library/alpine")
	e.up.ResetCounts()

	cases := []struct {
		name, ref string
		status    int
		code      string
		says      string
	}{
		{"the conformance suite's invalid name", ".INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN", `".INVALID_MANIFEST_NAME"`},
		{"a leading dash", "-latest", 404, "MANIFEST_UNKNOWN", "not starting with . or -"},
		{"a tag over 128 characters", strings.Repeat("t", 129), 404, "MANIFEST_UNKNOWN", "1 to 128 characters"},
		{"a colon after no algorithm", "Latest:x", 404, "MANIFEST_UNKNOWN", "a tag or a digest"},
		{"a sha256 digest of bad hex", "sha256:totallywrong", 400, "DIGEST_INVALID", "64 hex characters"},
		{"a sha256 digest one short", "sha256:" + strings.Repeat("a", 63), 400, "DIGEST_INVALID", "has 63"},
		{"another algorithm", "sha512:" + strings.Repeat("a", 128), 400, "DIGEST_INVALID", "only sha256"},
	}
	for _, path := range []struct{ prefix, jwt string }{
		{"/v2/acme/dependency_proxy/containers/alpine/manifests/", proxyJWT},
		{"/v2/library/alpine/manifests/", mirrorJWT},
	} {
		for _, c := range cases {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				res, body := e.do(method, path.prefix+c.ref, path.jwt)
				if res.StatusCode != c.status {
					t.Errorf("%s %s (%s): status %d, want %d: %s", method, path.prefix, c.name, res.StatusCode, c.status, body)
					continue
				}
				if method == http.MethodHead {
					if len(body) != 0 {
						t.Errorf("HEAD %s (%s) has a body", path.prefix, c.name)
					}
					continue
				}
				if code, msg := ociError(t, body); code != c.code || !strings.Contains(msg, c.says) {
					t.Errorf("GET %s (%s): %s %q, want %s saying %q", path.prefix, c.name, code, msg, c.code, c.says)
				}
			}
		}
	}
	if n := e.up.Count(http.MethodGet, testregistry.KindManifest) + e.up.Count(http.MethodHead, testregistry.KindManifest); n != 0 {
		t.Errorf("malformed references reached the upstream %d times", n)
	}
	// A well-formed tag still works on both paths.
	for _, path := range []struct{ p, jwt string }{
		{"/v2/acme/dependency_proxy/containers/alpine/manifests/latest", proxyJWT},
		{"/v2/library/alpine/manifests/latest", mirrorJWT},
	} {
		if res, body := e.do(http.MethodGet, path.p, path.jwt); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path.p, res.StatusCode, body)
		}
	}
}
