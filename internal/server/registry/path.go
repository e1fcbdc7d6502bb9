package registry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dproxy/dproxy/internal/oci"
)

// Route kinds of the /v2/ API.
const (
	kindManifests = "manifests"
	kindBlobs     = "blobs"
	kindUploads   = "uploads"
	kindTags      = "tags"
	kindReferrers = "referrers"
)

// route is a parsed /v2/<name>/<kind>/<arg> path.
type route struct {
	name string
	kind string
	arg  string
}

// parsePath splits a /v2/ path from the right, so that repository names may
// contain any number of slashes (and even components named "manifests").
// ok is false when the path has none of the known shapes.
func parsePath(p string) (rt route, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return route{}, false
	}
	s := strings.Split(rest, "/")
	n := len(s)
	switch {
	case n >= 3 && s[n-2] == kindManifests:
		return route{strings.Join(s[:n-2], "/"), kindManifests, s[n-1]}, true
	case n >= 4 && s[n-3] == kindBlobs && s[n-2] == kindUploads:
		return route{strings.Join(s[:n-3], "/"), kindUploads, s[n-1]}, true
	case n >= 3 && s[n-2] == kindBlobs:
		return route{strings.Join(s[:n-2], "/"), kindBlobs, s[n-1]}, true
	case n >= 3 && s[n-2] == kindTags && s[n-1] == "list":
		return route{strings.Join(s[:n-2], "/"), kindTags, ""}, true
	case n >= 3 && s[n-2] == kindReferrers:
		return route{strings.Join(s[:n-2], "/"), kindReferrers, s[n-1]}, true
	}
	return route{}, false
}

// checkRawPath rejects paths that only decode to a valid shape: encoded
// slashes or other escapes, and dot segments.
func checkRawPath(rawPath, path string) error {
	if rawPath != "" && rawPath != path {
		return fmt.Errorf("%w: the path must not contain percent-encoded characters", oci.ErrNameInvalid)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: the path must not contain %q segments", oci.ErrNameInvalid, seg)
		}
	}
	return nil
}

// manifestReference parses the reference of a manifest GET or HEAD. One
// that is neither a tag nor shaped like a digest names no manifest that
// could exist: distribution-spec answers that 404 MANIFEST_UNKNOWN, not
// 400. A malformed digest stays oci.ErrDigestInvalid (400), which the spec
// allows.
func manifestReference(s string) (oci.Reference, error) {
	ref, err := oci.ParseReference(s)
	if errors.Is(err, oci.ErrTagInvalid) {
		return oci.Reference{}, fmt.Errorf("%w: %v; a manifest reference is a tag or a digest (sha256:<64 hex>)", oci.ErrManifestUnknown, err)
	}
	return ref, err
}
