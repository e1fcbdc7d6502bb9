package admin

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// TestManifestsCarryImageSizes: a listing of a group's manifests pairs
// each with its image's size and the bytes of it the group holds, and a
// deleted image reports them too; an outsider gets neither.
func TestManifestsCarryImageSizes(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := t.Context()
	config, layer := oci.FromBytes([]byte("config")), oci.FromBytes([]byte("layer"))
	content := fmt.Sprintf(`{"schemaVersion":2,"config":{"digest":%q,"size":10},"layers":[{"digest":%q,"size":2000000}]}`, config, layer)
	f.st.manifests[100] = store.Manifest{ID: 100, OwnerID: f.acme.ID, Image: "library/alpine", Reference: "latest",
		MediaType: oci.MediaTypeOCIManifest, Content: []byte(content), Size: int64(len(content))}
	f.st.blobs[store.BlobKey{OwnerID: f.acme.ID, Digest: layer}] = store.Blob{OwnerID: f.acme.ID, Digest: layer, Size: 2000000}

	ms, err := f.svc.Manifests(ctx, f.maintainer, f.acme.ID, 0, 10)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Manifests = %+v, %v; want one", ms, err)
	}
	if want := (ImageSizes{Image: 2000010, Cached: 2000000}); ms[0].Sizes != want || ms[0].Size != int64(len(content)) {
		t.Errorf("Manifests[0]: sizes %+v, size %d; want %+v and %d", ms[0].Sizes, ms[0].Size, want, len(content))
	}
	if _, err := f.svc.Manifests(ctx, f.outsider, f.acme.ID, 0, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("an outsider lists manifests: %v, want not found", err)
	}
	deleted, err := f.svc.DeleteImage(ctx, f.owner, "acme", "alpine", "latest")
	if err != nil || deleted.Sizes.Image != 2000010 || deleted.ID != 100 {
		t.Errorf("DeleteImage = %+v, %v; want manifest 100 with image size 2000010", deleted, err)
	}
}
