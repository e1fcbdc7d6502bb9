package oci

import (
	"encoding/json"
	"fmt"
)

// Descriptor names content a manifest or index refers to.
type Descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    Digest `json:"digest"`
	Size      int64  `json:"size"`
}

// Contents is what a manifest refers to. For an image manifest Blobs is
// its config followed by its layers; for an index (IsIndex) Manifests is
// its platforms' manifests, without attestation manifests (BuildKit's
// provenance and SBOMs, platform unknown/unknown), which are not images
// anyone pulls.
type Contents struct {
	Index     bool
	Blobs     []Descriptor
	Manifests []Descriptor
}

// BlobSize is the size of an image manifest's config and layers: what a
// pull of the image downloads besides the manifest. It is 0 for an index.
func (c Contents) BlobSize() int64 {
	var n int64
	for _, d := range c.Blobs {
		n += d.Size
	}
	return n
}

// ParseContents reads what the manifest body of mediaType (one of
// ManifestMediaTypes) refers to. Descriptors without a valid digest or with
// a negative size are an error: a stored manifest never has them.
func ParseContents(mediaType string, body []byte) (Contents, error) {
	var doc struct {
		Config    *Descriptor  `json:"config"`
		Layers    []Descriptor `json:"layers"`
		Manifests []struct {
			Descriptor
			Platform *struct {
				OS string `json:"os"`
			} `json:"platform"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return Contents{}, fmt.Errorf("read manifest of type %s: %w", clipType(mediaType), err)
	}
	var c Contents
	if IsIndex(mediaType) {
		c.Index = true
		for _, m := range doc.Manifests {
			if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" ||
				(m.Platform != nil && m.Platform.OS == "unknown") {
				continue
			}
			c.Manifests = append(c.Manifests, m.Descriptor)
		}
	} else {
		if doc.Config != nil {
			c.Blobs = append(c.Blobs, *doc.Config)
		}
		c.Blobs = append(c.Blobs, doc.Layers...)
	}
	for _, d := range append(c.Blobs, c.Manifests...) {
		if _, err := ParseDigest(string(d.Digest)); err != nil {
			return Contents{}, fmt.Errorf("read manifest of type %s: %w", clipType(mediaType), err)
		}
		if d.Size < 0 {
			return Contents{}, fmt.Errorf("read manifest of type %s: descriptor %s has negative size %d", clipType(mediaType), d.Digest, d.Size)
		}
	}
	return c, nil
}
