package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
)

// What an upstream sends as a manifest comes back only when it is JSON of
// a known manifest or index media type; anything else is an *Error
// matching oci.ErrManifestInvalid that says what was wrong.
func TestGetManifestRefusesWhatIsNotAManifest(t *testing.T) {
	t.Parallel()
	answers := map[string]struct{ contentType, body string }{
		"oci":      {oci.MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `","layers":[]}`},
		"generic":  {"application/json", `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeDockerManifest + `","layers":[]}`},
		"html":     {"text/html", "<html><body>login</body></html>"},
		"untyped":  {"application/json", `{"schemaVersion":2}`},
		"mismatch": {oci.MediaTypeDockerManifest, `{"mediaType":"` + oci.MediaTypeDockerManifestList + `"}`},
		"schema1":  {"application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1}`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/team/"), "/manifests/")
		a, ok := answers[repo]
		if !ok {
			w.Write([]byte("{}")) // the ping
			return
		}
		w.Header().Set("Content-Type", a.contentType)
		w.Write([]byte(a.body))
	}))
	t.Cleanup(srv.Close)
	cl, err := New(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for repo, want := range map[string]string{"oci": oci.MediaTypeOCIManifest, "generic": oci.MediaTypeDockerManifest} {
		if m, err := cl.GetManifest(ctx, Credentials{}, "team/"+repo, tag("v1")); err != nil || m.MediaType != want {
			t.Errorf("%s: %q, %v; want %s", repo, m.MediaType, err, want)
		}
	}
	for repo, says := range map[string]string{
		"html": "not a JSON object", "untyped": "no manifest media type",
		"mismatch": oci.MediaTypeDockerManifestList, "schema1": "schema 1",
	} {
		_, err := cl.GetManifest(ctx, Credentials{}, "team/"+repo, tag("v1"))
		var e *Error
		if !errors.Is(err, oci.ErrManifestInvalid) || !errors.As(err, &e) || e.Op != "GET manifest" || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v; want an *Error of GET manifest matching ErrManifestInvalid saying %q", repo, err, says)
		}
		if errors.Is(err, oci.ErrUnavailable) || retryable(err) {
			t.Errorf("%s: %v is also unavailable or retryable; an answer that is not a manifest is neither", repo, err)
		}
	}
}
