package registry

import (
	"errors"
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
)

func TestParsePath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		path string
		want route
		ok   bool
	}{
		{"/v2/a/dependency_proxy/containers/alpine/manifests/latest", route{"a/dependency_proxy/containers/alpine", kindManifests, "latest"}, true},
		{"/v2/foo/manifests/bar/manifests/latest", route{"foo/manifests/bar", kindManifests, "latest"}, true},
		{"/v2/a/b/c/blobs/sha256:abc", route{"a/b/c", kindBlobs, "sha256:abc"}, true},
		{"/v2/a/b/blobs/uploads/", route{"a/b", kindUploads, ""}, true},
		{"/v2/a/b/tags/list", route{"a/b", kindTags, ""}, true},
		{"/v2/a/referrers/sha256:abc", route{"a", kindReferrers, "sha256:abc"}, true},
		{"/v2/a", route{}, false},
		{"/v2/manifests/x", route{}, false},
		{"/v3/a/manifests/x", route{}, false},
	}
	for _, c := range cases {
		got, ok := parsePath(c.path)
		if ok != c.ok || got != c.want {
			t.Errorf("parsePath(%q) = %+v %v, want %+v %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

func TestCheckRawPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw, path string
		ok        bool
	}{
		{"", "/v2/a/manifests/b", true},
		{"/v2/a%2Fb/manifests/c", "/v2/a/b/manifests/c", false},
		{"", "/v2/a/../b/manifests/c", false},
		{"", "/v2/./a/manifests/c", false},
	}
	for _, c := range cases {
		err := checkRawPath(c.raw, c.path)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, oci.ErrNameInvalid)) {
			t.Errorf("checkRawPath(%q, %q) = %v, want ok %v", c.raw, c.path, err, c.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, e := range errorCodes {
		code, status := classify(errors.Join(errors.New("context"), e.err))
		if code != e.code || status != e.status {
			t.Errorf("classify(%v) = %s %d, want %s %d", e.err, code, status, e.code, e.status)
		}
	}
	if code, status := classify(errors.New("boom")); code != "UNKNOWN" || status != 500 {
		t.Errorf("unknown error: %s %d", code, status)
	}
}
