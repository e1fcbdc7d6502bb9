package oci

import "strings"

// Manifest media types dproxy passes through.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
	MediaTypeOctetStream        = "application/octet-stream"
)

// ManifestMediaTypes is the full list sent upstream in Accept, so the
// upstream never downgrades a manifest for us.
var ManifestMediaTypes = []string{
	MediaTypeDockerManifest,
	MediaTypeDockerManifestList,
	MediaTypeOCIManifest,
	MediaTypeOCIIndex,
}

// AcceptManifests is ManifestMediaTypes as one Accept header value.
var AcceptManifests = strings.Join(ManifestMediaTypes, ", ")

// IsIndex reports whether a media type is a multi-platform index or list.
func IsIndex(mediaType string) bool {
	return mediaType == MediaTypeOCIIndex || mediaType == MediaTypeDockerManifestList
}
