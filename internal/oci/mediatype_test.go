package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestManifestMediaType(t *testing.T) {
	t.Parallel()
	manifest := `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","layers":[]}`
	untyped := `{"schemaVersion":2,"layers":[]}`
	for _, c := range []struct {
		name, contentType, body string
		want                    string // the media type, or "" for a refusal
		says                    string // what a refusal names
	}{
		{"oci manifest", MediaTypeOCIManifest, manifest, MediaTypeOCIManifest, ""},
		{"parameters and case", "Application/VND.OCI.Image.Manifest.v1+JSON; charset=utf-8", manifest, MediaTypeOCIManifest, ""},
		{"untyped body under its type", MediaTypeDockerManifest, untyped, MediaTypeDockerManifest, ""},
		{"index under its type", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[]}`, MediaTypeOCIIndex, ""},
		{"docker list", MediaTypeDockerManifestList, `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifestList + `","manifests":[]}`, MediaTypeDockerManifestList, ""},
		{"generic type, typed body", "application/json", manifest, MediaTypeOCIManifest, ""},
		{"no type, typed body", "", manifest, MediaTypeOCIManifest, ""},
		{"octet-stream, typed body", MediaTypeOctetStream, manifest, MediaTypeOCIManifest, ""},
		{"leading space", MediaTypeOCIManifest, "  \n" + manifest, MediaTypeOCIManifest, ""},

		{"html", "text/html; charset=utf-8", "<html></html>", "", "JSON"},
		{"html wrapping json", "text/html", manifest, "", "text/html"},
		{"not json", MediaTypeOCIManifest, "hello", "", "JSON"},
		{"truncated json", MediaTypeOCIManifest, manifest[:20], "", "JSON"},
		{"json array", MediaTypeOCIManifest, "[1,2]", "", "JSON"},
		{"json null", MediaTypeOCIManifest, "null", "", "JSON"},
		{"empty", MediaTypeOCIManifest, "", "", "JSON"},
		{"generic type, untyped body", "application/json", untyped, "", "media type"},
		{"no type at all", "", untyped, "", "media type"},
		{"unknown type", "application/vnd.example+json", untyped, "", "application/vnd.example+json"},
		{"unknown body type", "application/json", `{"mediaType":"application/vnd.oci.image.config.v1+json"}`, "", "application/vnd.oci.image.config.v1+json"},
		{"type mismatch", MediaTypeOCIManifest, `{"mediaType":"` + MediaTypeOCIIndex + `"}`, "", MediaTypeOCIIndex},
		{"schema 1", "application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1}`, "", "schema 1"},
		{"schema 1 in the body", "application/json", `{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}`, "", "schema 1"},
	} {
		got, err := ManifestMediaType(c.contentType, []byte(c.body))
		if c.want != "" {
			if err != nil || got != c.want {
				t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, ErrManifestInvalid) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %q, %v; want ErrManifestInvalid saying %q", c.name, got, err, c.says)
		}
	}
}

func TestIsManifestMediaType(t *testing.T) {
	t.Parallel()
	for _, mt := range ManifestMediaTypes {
		if !IsManifestMediaType(mt) {
			t.Errorf("IsManifestMediaType(%q) = false", mt)
		}
	}
	for _, mt := range []string{"", "text/html", "application/json", MediaTypeOctetStream, mediaTypeDockerSchema1} {
		if IsManifestMediaType(mt) {
			t.Errorf("IsManifestMediaType(%q) = true", mt)
		}
	}
}
