package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrPaginationInvalid is a list request whose page size (n) is not a
// number of results.
var ErrPaginationInvalid = errors.New("invalid number of results requested")

// Referrer is one descriptor of a referrers list (OCI 1.1): a manifest
// whose subject is the listed digest. It keeps the descriptor's JSON as
// the upstream sent it (annotations, platform, fields dproxy does not
// know) and the fields dproxy reads.
type Referrer struct {
	MediaType    string
	Digest       Digest
	ArtifactType string
	// Descriptor is the descriptor's JSON object.
	Descriptor json.RawMessage
}

// ReferrersTag is the tag under which the referrers tag schema keeps the
// referrers index of d, for registries without the referrers API:
// "sha256-<hex>".
func ReferrersTag(d Digest) string {
	alg, hex, _ := bytes.Cut([]byte(d), []byte(":"))
	return string(alg) + "-" + string(hex)
}

// ParseReferrersIndex reads the manifests of an image index: an answer of
// the referrers API, or an index tagged by the referrers tag schema. A body
// that is not a JSON object with a "manifests" array is an error wrapping
// ErrManifestInvalid; a descriptor without a media type or a valid digest
// is left out (it names nothing a client could pull).
func ParseReferrersIndex(body []byte) ([]Referrer, error) {
	var index struct {
		Manifests *[]json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(body, &index); err != nil {
		return nil, fmt.Errorf("%w: the referrers list is not a JSON image index: %v", ErrManifestInvalid, err)
	}
	if index.Manifests == nil {
		return nil, fmt.Errorf("%w: the referrers list has no manifests array", ErrManifestInvalid)
	}
	out := make([]Referrer, 0, len(*index.Manifests))
	for _, raw := range *index.Manifests {
		var d struct {
			MediaType    string `json:"mediaType"`
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		}
		if json.Unmarshal(raw, &d) != nil || d.MediaType == "" {
			continue
		}
		dg, err := ParseDigest(d.Digest)
		if err != nil {
			continue
		}
		var compact bytes.Buffer
		if json.Compact(&compact, raw) != nil {
			continue
		}
		out = append(out, Referrer{MediaType: d.MediaType, Digest: dg, ArtifactType: d.ArtifactType, Descriptor: compact.Bytes()})
	}
	return out, nil
}

// ReferrersIndex renders referrers as the OCI image index the referrers API
// answers with; none is an index with an empty manifests array.
func ReferrersIndex(refs []Referrer) []byte {
	var b bytes.Buffer
	b.WriteString(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[`)
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r.Descriptor)
	}
	b.WriteString("]}")
	return b.Bytes()
}
