package adminclient

import (
	"strings"
	"time"
)

// Image is one cached image of a group: an image and digest with the tags
// it was cached under. A pull by tag and the pull by digest a client makes
// next are two manifests (GitLab lists both) and one Image.
type Image struct {
	// Image is the repository ("library/alpine"), as Manifest.Image.
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// Tags are the tags cached with this digest, newest first; empty when
	// it was pulled by digest only.
	Tags      []string `json:"tags"`
	MediaType string   `json:"mediaType"`
	// ManifestSize is the manifest's own bytes (GitLab's size); ImageSize
	// its config plus layers (an index: its cached platforms'); CachedSize
	// the bytes of those the group holds.
	ManifestSize Bytes `json:"manifestSize"`
	ImageSize    Bytes `json:"imageSize"`
	CachedSize   Bytes `json:"cachedSize"`
	// Platforms and PlatformsCached count an index's platforms (0 for a
	// single-platform image).
	Platforms       int `json:"platforms"`
	PlatformsCached int `json:"platformsCached"`
	// UpdatedAt and ReadAt are the latest of its manifests'.
	UpdatedAt time.Time `json:"updatedAt"`
	ReadAt    time.Time `json:"readAt"`
}

// Images groups manifests (newest first, as Manifests lists them) into
// images by image and digest, in the order of each image's newest
// manifest.
func Images(ms []Manifest) []Image {
	out := []Image{}
	at := map[[2]string]int{}
	for _, m := range ms {
		key := [2]string{m.Image, m.Digest}
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, Image{Image: m.Image, Digest: m.Digest, Tags: []string{}, MediaType: m.MediaType,
				ManifestSize: m.Size, ImageSize: m.ImageSize, CachedSize: m.CachedSize,
				Platforms: m.Platforms, PlatformsCached: m.PlatformsCached})
		}
		im := &out[i]
		if !IsDigest(m.Reference) {
			im.Tags = append(im.Tags, m.Reference)
		}
		if m.UpdatedAt.After(im.UpdatedAt) {
			im.UpdatedAt = m.UpdatedAt
		}
		if m.ReadAt.After(im.ReadAt) {
			im.ReadAt = m.ReadAt
		}
	}
	return out
}

// IsDigest reports whether a manifest reference is a digest
// ("sha256:…") rather than a tag; a tag never holds a colon.
func IsDigest(reference string) bool { return strings.Contains(reference, ":") }
