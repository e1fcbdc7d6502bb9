package adminclient

import (
	"slices"
	"testing"
	"time"
)

func TestImagesMergeTagAndDigest(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d1, d2 := "sha256:1111", "sha256:2222"
	ms := []Manifest{ // newest first
		{Image: "library/alpine", Reference: d1, Digest: d1, ImageSize: 3 << 20, ReadAt: t0.Add(3 * time.Hour)},
		{Image: "library/alpine", Reference: "3.20", Digest: d2, ImageSize: 100},
		{Image: "library/alpine", Reference: "latest", Digest: d1, ImageSize: 3 << 20, ReadAt: t0.Add(time.Hour), UpdatedAt: t0},
		{Image: "library/alpine", Reference: "3", Digest: d1, ImageSize: 3 << 20},
		{Image: "library/busybox", Reference: "latest", Digest: d1},
	}
	got := Images(ms)
	if len(got) != 3 {
		t.Fatalf("Images = %+v, want 3 (alpine@d1, alpine@d2, busybox@d1)", got)
	}
	if got[0].Digest != d1 || !slices.Equal(got[0].Tags, []string{"latest", "3"}) || got[0].ImageSize != 3<<20 ||
		!got[0].ReadAt.Equal(t0.Add(3*time.Hour)) || !got[0].UpdatedAt.Equal(t0) {
		t.Errorf("alpine@d1 = %+v; want tags latest and 3, the latest read and update", got[0])
	}
	if got[1].Digest != d2 || !slices.Equal(got[1].Tags, []string{"3.20"}) || got[2].Image != "library/busybox" {
		t.Errorf("Images = %+v; want alpine@d2 (3.20) then busybox", got)
	}
	if only := Images(ms[:1]); only[0].Tags == nil || len(only[0].Tags) != 0 {
		t.Errorf("pulled by digest only: tags %#v, want an empty list", only[0].Tags)
	}
}
