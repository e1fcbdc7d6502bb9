package graphql

import (
	"fmt"
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// TestManifestImageSizes: a manifest keeps GitLab's size (its own bytes)
// and adds imageSize (config plus layers) and cachedSize (those the group
// holds), read for a whole page at once; the group counts the image pulled
// by tag and by digest once in dependencyProxyCachedImageCount.
func TestManifestImageSizes(t *testing.T) {
	t.Parallel()
	api := newCountedAPI(t, 1)
	ctx := t.Context()
	var sub store.Group
	for _, g := range mustGroups(t, api) {
		if g.Path == "top/s00" {
			sub = g
		}
	}
	config := oci.FromBytes([]byte("config"))
	layer := oci.FromBytes([]byte("layer"))
	content := fmt.Sprintf(`{"schemaVersion":2,"config":{"digest":%q,"size":1234},"layers":[{"digest":%q,"size":5000000}]}`, config, layer)
	for _, ref := range []string{"3.20", string(oci.FromBytes([]byte(content)))} {
		if _, err := api.st.st.PutManifest(ctx, store.Manifest{OwnerID: sub.ID, Image: "library/alpine", Reference: ref,
			Digest: oci.FromBytes([]byte(content)), MediaType: oci.MediaTypeOCIManifest, Content: []byte(content)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := api.st.st.PutBlob(ctx, store.Blob{OwnerID: sub.ID, Digest: config, Size: 1234}); err != nil {
		t.Fatal(err)
	}
	api.st.take()
	data := api.query(t, api.member, `{ group(fullPath: "top/s00") { dependencyProxyImageCount dependencyProxyCachedImageCount
		dependencyProxyManifests(first: 10) { nodes { reference size imageSize cachedSize platforms } } } }`)
	if n := api.st.take()["ImageSizesOfGroup"]; n != 1 {
		t.Errorf("ImageSizesOfGroup called %d times for one page, want 1", n)
	}
	g := data["group"].(map[string]any)
	// The fixture's own manifest ("latest") and the image by tag and digest.
	if g["dependencyProxyImageCount"] != float64(3) || g["dependencyProxyCachedImageCount"] != float64(2) {
		t.Errorf("image counts: GitLab's %v, cached images %v; want 3 rows and 2 images",
			g["dependencyProxyImageCount"], g["dependencyProxyCachedImageCount"])
	}
	nodes := g["dependencyProxyManifests"].(map[string]any)["nodes"].([]any)
	for _, n := range nodes[:2] {
		m := n.(map[string]any)
		if m["size"] != fmt.Sprint(len(content)) || m["imageSize"] != "5001234" || m["cachedSize"] != "1234" || m["platforms"] != float64(0) {
			t.Errorf("manifest %v: size %v imageSize %v cachedSize %v platforms %v; want %d, \"5001234\", \"1234\", 0",
				m["reference"], m["size"], m["imageSize"], m["cachedSize"], m["platforms"], len(content))
		}
	}
}
