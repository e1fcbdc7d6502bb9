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
	groups := ByImage(ms, func(m Manifest) Manifest { return m })
	out := make([]Image, 0, len(groups))
	for _, g := range groups {
		m := g[0]
		im := Image{Image: m.Image, Digest: m.Digest, Tags: []string{}, MediaType: m.MediaType,
			ManifestSize: m.Size, ImageSize: m.ImageSize, CachedSize: m.CachedSize,
			Platforms: m.Platforms, PlatformsCached: m.PlatformsCached}
		for _, m := range g {
			if !IsDigest(m.Reference) {
				im.Tags = append(im.Tags, m.Reference)
			}
			im.UpdatedAt = later(im.UpdatedAt, m.UpdatedAt)
			im.ReadAt = later(im.ReadAt, m.ReadAt)
		}
		out = append(out, im)
	}
	return out
}

// ByImage groups items (manifests, newest first) by image and digest, in
// the order of each image's newest manifest; a group keeps the items'
// order. manifest returns an item's manifest.
func ByImage[T any](items []T, manifest func(T) Manifest) [][]T {
	var out [][]T
	at := map[[2]string]int{}
	for _, it := range items {
		m := manifest(it)
		key := [2]string{m.Image, m.Digest}
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], it)
	}
	return out
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// IsDigest reports whether a manifest reference is a digest
// ("sha256:…") rather than a tag; a tag never holds a colon.
func IsDigest(reference string) bool { return strings.Contains(reference, ":") }
