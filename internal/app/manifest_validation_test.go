package app_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// What an upstream sends as a manifest is served and cached only when it
// is JSON of a known manifest or index media type within the size limit;
// anything else is a 502 MANIFEST_INVALID saying what was wrong, and
// nothing is cached.
func TestUpstreamManifestMustBeAManifest(t *testing.T) {
	t.Parallel()
	const limit = 4096
	te := newTenantEnv(t, envOptions{configure: func(c *config.Config) { c.MaxManifestSize = limit }})
	lying := newLyingRegistry(t)
	up := te.addUpstream("lying", lying.URL)

	valid := `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` +
		strings.Repeat("a", 64) + `","size":2},"layers":[]}`
	answers := map[string]struct{ contentType, body string }{
		"valid":     {oci.MediaTypeOCIManifest, valid},
		"html":      {"text/html; charset=utf-8", "<html><script>alert(document.cookie)</script></html>"},
		"untyped":   {"application/json", `{"schemaVersion":2,"layers":[]}`},
		"notjson":   {oci.MediaTypeOCIManifest, "<html>not json</html>"},
		"mismatch":  {oci.MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIIndex + `","manifests":[]}`},
		"schema1":   {"application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1,"name":"x","tag":"v1","fsLayers":[]}`},
		"oversized": {oci.MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `","annotations":{"x":"` + strings.Repeat("x", 2*limit) + `"}}`},
	}
	lying.set(func(l *lyingRegistry) {
		l.manifest = func(w http.ResponseWriter, r *http.Request, repo, ref string) {
			a, ok := answers[strings.TrimPrefix(repo, "team/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", a.contentType)
			if r.Method == http.MethodGet {
				w.Write([]byte(a.body))
			}
		}
	})

	for _, c := range []struct{ image, says string }{
		{"html", "text/html"},
		{"untyped", "media type"},
		{"notjson", "JSON"},
		{"mismatch", oci.MediaTypeOCIIndex},
		{"schema1", "schema 1"},
		{"oversized", "limit"},
	} {
		t.Run(c.image, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				res, body, err := te.malloryGets(method, "team/"+c.image, "manifests", "v1")
				if err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != http.StatusBadGateway {
					t.Errorf("%s: status %d %q, want 502", method, res.StatusCode, body)
					continue
				}
				if method == http.MethodGet {
					if code, msg := ociError(t, body); code != "MANIFEST_INVALID" || !strings.Contains(msg, c.says) {
						t.Errorf("%s: %s %q, want MANIFEST_INVALID saying %q", method, code, msg, c.says)
					}
				}
				if ct := res.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("%s: Content-Type %q, want the error body's application/json", method, ct)
				}
			}
			if _, err := te.app.Store.UpstreamCache().Manifest(context.Background(), up.ID, "team/"+c.image, "v1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("cached after an invalid answer: %v", err)
			}
		})
	}

	// The control: a real manifest from the same upstream is served.
	res, body, err := te.malloryGets(http.MethodGet, "team/valid", "manifests", "v1")
	if err != nil || res.StatusCode != http.StatusOK || string(body) != valid || res.Header.Get("Content-Type") != oci.MediaTypeOCIManifest {
		t.Errorf("valid manifest: %v %d %q %s", err, statusOf(res), res.Header.Get("Content-Type"), body)
	}
}

// Every registry answer tells browsers not to guess its type.
func TestRegistryAnswersCarryNosniff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	e.up.PushRandomImage(t, "library/app", "v1", 1, 512)
	repo := "acme/dependency_proxy/containers/app"
	jwt := e.jwt("alice", tok, repo)
	for _, c := range []struct {
		name, method, path, token string
	}{
		{"ping without a token", http.MethodGet, "/v2/", ""},
		{"ping", http.MethodGet, "/v2/", jwt},
		{"manifest", http.MethodGet, "/v2/" + repo + "/manifests/v1", jwt},
		{"manifest HEAD", http.MethodHead, "/v2/" + repo + "/manifests/v1", jwt},
		{"unknown manifest", http.MethodGet, "/v2/" + repo + "/manifests/nope", jwt},
		{"bad path", http.MethodGet, "/v2/nothing-here", jwt},
		{"token", http.MethodGet, "/jwt/auth?service=dependency_proxy", ""},
		{"bad token request", http.MethodPost, "/jwt/auth", ""},
	} {
		res, _ := e.do(c.method, c.path, c.token)
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: %d with X-Content-Type-Options %q, want nosniff", c.name, res.StatusCode, got)
		}
	}
}
