package oci

import "testing"

func TestParseContents(t *testing.T) {
	const a, b, c = "sha256:" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"sha256:" + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		"sha256:" + "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	image := `{"schemaVersion":2,"config":{"digest":"` + a + `","size":100},
		"layers":[{"digest":"` + b + `","size":2000},{"digest":"` + c + `","size":30000}]}`
	got, err := ParseContents(MediaTypeOCIManifest, []byte(image))
	if err != nil {
		t.Fatal(err)
	}
	if got.Index || len(got.Blobs) != 3 || got.Blobs[0].Digest != a || got.BlobSize() != 32100 {
		t.Errorf("image manifest: got %+v, size %d; want config+2 layers of 32100 bytes", got, got.BlobSize())
	}

	index := `{"schemaVersion":2,"manifests":[
		{"digest":"` + a + `","size":500,"platform":{"os":"linux","architecture":"amd64"}},
		{"digest":"` + b + `","size":500,"platform":{"os":"linux","architecture":"arm64"}},
		{"digest":"` + c + `","size":800,"platform":{"os":"unknown","architecture":"unknown"},
		 "annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}`
	got, err = ParseContents(MediaTypeOCIIndex, []byte(index))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Index || len(got.Manifests) != 2 || got.Manifests[1].Digest != b || got.BlobSize() != 0 {
		t.Errorf("index: got %+v; want 2 platform manifests, the attestation left out", got)
	}

	for _, bad := range []string{`[`, `{"layers":[{"digest":"md5:x","size":1}]}`, `{"layers":[{"digest":"` + a + `","size":-1}]}`} {
		if _, err := ParseContents(MediaTypeOCIManifest, []byte(bad)); err == nil {
			t.Errorf("ParseContents(%s) = nil error, want one", bad)
		}
	}
}
