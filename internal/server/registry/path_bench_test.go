package registry

import (
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
)

// BenchmarkParsePath measures what every registry request pays before
// authentication: routing the path and parsing the repository name and reference.
func BenchmarkParsePath(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"manifest-tag", "/v2/acme/dependency_proxy/containers/library/node/manifests/22-alpine"},
		{"blob", "/v2/acme/sub/dependency_proxy/containers/node/blobs/sha256:" + "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := checkRawPath("", bc.path); err != nil {
					b.Fatal(err)
				}
				rt, ok := parsePath(bc.path)
				if !ok {
					b.Fatalf("%s did not parse", bc.path)
				}
				if _, err := oci.ParseRepository(rt.name); err != nil {
					b.Fatal(err)
				}
				if rt.kind == kindManifests {
					_, err := oci.ParseReference(rt.arg)
					if err != nil {
						b.Fatal(err)
					}
				} else if _, err := oci.ParseDigest(rt.arg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
