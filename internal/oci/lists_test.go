package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestReferrersTag(t *testing.T) {
	t.Parallel()
	d := FromBytes([]byte("x"))
	if got := ReferrersTag(d); got != "sha256-"+d.Hex() || ValidateTag(got) != nil {
		t.Errorf("ReferrersTag(%s) = %q", d, got)
	}
}

func TestParseReferrersIndex(t *testing.T) {
	t.Parallel()
	good := string(FromBytes([]byte("good")))
	body := `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[
		{"mediaType":"` + MediaTypeOCIManifest + `", "digest":"` + good + `","size":7,
		 "artifactType":"application/vnd.test.sig","annotations":{"a":"b"},"x-unknown":1},
		{"mediaType":"` + MediaTypeOCIManifest + `","digest":"sha256:short","size":1},
		{"digest":"` + good + `","size":1},
		"not an object"]}`
	refs, err := ParseReferrersIndex([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Digest != Digest(good) || refs[0].ArtifactType != "application/vnd.test.sig" ||
		refs[0].MediaType != MediaTypeOCIManifest {
		t.Fatalf("refs = %+v, want the one valid descriptor", refs)
	}
	want := `{"mediaType":"` + MediaTypeOCIManifest + `","digest":"` + good + `","size":7,"artifactType":"application/vnd.test.sig","annotations":{"a":"b"},"x-unknown":1}`
	if string(refs[0].Descriptor) != want {
		t.Errorf("descriptor = %s, want it whole (compacted): %s", refs[0].Descriptor, want)
	}
	index := string(ReferrersIndex(refs))
	if index != `{"schemaVersion":2,"mediaType":"`+MediaTypeOCIIndex+`","manifests":[`+want+`]}` {
		t.Errorf("ReferrersIndex = %s", index)
	}
	back, err := ParseReferrersIndex([]byte(index))
	if err != nil || len(back) != 1 || string(back[0].Descriptor) != want {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if got := string(ReferrersIndex(nil)); !strings.HasSuffix(got, `"manifests":[]}`) {
		t.Errorf("no referrers: %s", got)
	}
	for _, bad := range []string{`[]`, `{}`, `{"manifests":{}}`, `not json`} {
		if _, err := ParseReferrersIndex([]byte(bad)); !errors.Is(err, ErrManifestInvalid) {
			t.Errorf("ParseReferrersIndex(%s) = %v, want ErrManifestInvalid", bad, err)
		}
	}
}
