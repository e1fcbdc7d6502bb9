package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
)

// Manifest media types dproxy passes through.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
	MediaTypeOctetStream        = "application/octet-stream"

	// Docker's schema 1 manifests, which dproxy does not serve.
	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
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

// IsManifestMediaType reports whether dproxy serves content of mediaType
// as a manifest: one of ManifestMediaTypes.
func IsManifestMediaType(mediaType string) bool {
	switch mediaType {
	case MediaTypeDockerManifest, MediaTypeDockerManifestList, MediaTypeOCIManifest, MediaTypeOCIIndex:
		return true
	}
	return false
}

// ManifestMediaType checks that body, sent by an upstream as a manifest
// with the Content-Type contentType, is one dproxy may store and serve, and
// returns its media type. The body must be a JSON object; its media type
// is the Content-Type, or the body's mediaType field when the Content-Type
// is missing or generic (application/json, text/plain,
// application/octet-stream), and must be one of ManifestMediaTypes. A
// mediaType field that contradicts the Content-Type is refused, so that
// one set of bytes cannot be read as a manifest by one client and as an
// index by another. Docker schema 1 is refused: it is deprecated, clients
// no longer pull it, and its digest is not the digest of its bytes.
//
// Errors wrap ErrManifestInvalid and say what was wrong.
func ManifestMediaType(contentType string, body []byte) (string, error) {
	header, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		header = strings.TrimSpace(contentType)
	}
	header = strings.ToLower(header)
	var fields struct {
		MediaType string `json:"mediaType"`
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return "", fmt.Errorf("%w: the body is not a JSON object, as a manifest is (Content-Type %q, %d bytes)", ErrManifestInvalid, clipType(contentType), len(body))
	}
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return "", fmt.Errorf("%w: the body is not valid JSON: %v (Content-Type %q)", ErrManifestInvalid, err, clipType(contentType))
	}
	mt := header
	switch header {
	case "", "application/json", "text/plain", MediaTypeOctetStream:
		mt = fields.MediaType
	default:
		if fields.MediaType != "" && fields.MediaType != header {
			return "", fmt.Errorf("%w: Content-Type %q but the mediaType field says %q", ErrManifestInvalid, clipType(header), clipType(fields.MediaType))
		}
	}
	switch {
	case IsManifestMediaType(mt):
		return mt, nil
	case mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSchema1Signed:
		return "", fmt.Errorf("%w: Docker image manifest schema 1 (%s) is deprecated and not served; the image must be pushed again with schema 2 or as OCI", ErrManifestInvalid, mt)
	case mt == "":
		return "", fmt.Errorf("%w: no manifest media type in the Content-Type (%q) or the mediaType field; want one of %s", ErrManifestInvalid, clipType(contentType), AcceptManifests)
	case mt == header:
		return "", fmt.Errorf("%w: Content-Type %q is not a manifest media type; want one of %s", ErrManifestInvalid, clipType(mt), AcceptManifests)
	default:
		return "", fmt.Errorf("%w: media type %q is not a manifest media type; want one of %s", ErrManifestInvalid, clipType(mt), AcceptManifests)
	}
}

// clipType keeps an upstream's media type short in messages.
func clipType(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
