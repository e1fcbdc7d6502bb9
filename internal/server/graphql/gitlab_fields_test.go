package graphql

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// TestManifestNames: imageName and fileName in GitLab's form, for a tag
// and for a digest; image is the repository the entry is cached under.
func TestManifestNames(t *testing.T) {
	t.Parallel()
	d := admin.Digest("sha256:" + strings.Repeat("ab", 32))
	for _, c := range []struct {
		image, ref          string
		imageName, fileName string
	}{
		{"library/alpine", "latest", "alpine:latest", "alpine:latest.json"},
		{"library/alpine", string(d), "alpine:" + string(d), "alpine:" + string(d) + ".json"},
		{"bitnami/redis", "7.2", "bitnami/redis:7.2", "bitnami/redis:7.2.json"},
		{"library/x/y", "1", "library/x/y:1", "library/x/y:1.json"},
	} {
		n := manifestNode(admin.Manifest{Manifest: store.Manifest{Image: c.image, Reference: c.ref, Digest: d}})
		if n.ImageName != c.imageName || n.FileName != c.fileName || n.Image != c.image || n.Reference != c.ref {
			t.Errorf("%s %s: imageName %q fileName %q image %q reference %q; want %q %q %q %q",
				c.image, c.ref, n.ImageName, n.FileName, n.Image, n.Reference, c.imageName, c.fileName, c.image, c.ref)
		}
	}
}

// TestImagePrefixIsTheGroupsOwn: a subgroup's prefix is its own path, as
// GitLab gives it.
func TestImagePrefixIsTheGroupsOwn(t *testing.T) {
	t.Parallel()
	api := newCountedAPI(t, 1)
	data := api.query(t, api.member, `{ top: group(fullPath: "top") { dependencyProxyImagePrefix dependencyProxyDirectImagePrefix }
		sub: group(fullPath: "top/s00/x") { dependencyProxyImagePrefix dependencyProxyDirectImagePrefix } }`)
	for alias, path := range map[string]string{"top": "top", "sub": "top/s00/x"} {
		g := data[alias].(map[string]any)
		want := "dproxy.test:5000/" + path + "/dependency_proxy/containers"
		if g["dependencyProxyImagePrefix"] != want || g["dependencyProxyDirectImagePrefix"] != want {
			t.Errorf("%s: prefixes %v and %v, want %s", path, g["dependencyProxyImagePrefix"], g["dependencyProxyDirectImagePrefix"], want)
		}
	}
}

// TestTotalSizeInBytes: GitLab's deprecated Int total answers the total
// while it fits 32 bits and an error after, where the BigInt one goes on.
func TestTotalSizeInBytes(t *testing.T) {
	t.Parallel()
	api := newCountedAPI(t, 2)
	q := `{ group(fullPath: "top/s00") { dependencyProxyTotalSizeInBytes } other: group(fullPath: "top/s01") { dependencyProxyTotalSizeBytes } }`
	data := api.query(t, api.member, q)
	// top/s00 holds a manifest of 7 bytes and a blob of 1000.
	if got := data["group"].(map[string]any)["dependencyProxyTotalSizeInBytes"]; got != float64(1007) {
		t.Errorf("dependencyProxyTotalSizeInBytes = %v, want 1007", got)
	}

	// Past 2147483647 bytes.
	var sub store.Group
	for _, g := range mustGroups(t, api) {
		if g.Path == "top/s00" {
			sub = g
		}
	}
	big := int64(1) << 31
	if err := api.st.st.PutBlob(t.Context(), store.Blob{OwnerID: sub.ID, Digest: oci.FromBytes([]byte("big")), Size: big}); err != nil {
		t.Fatal(err)
	}
	data, errs := api.try(t, api.member, q)
	if len(errs) != 1 || !strings.Contains(errs[0], "Integer out of bounds") || !strings.Contains(errs[0], "dependencyProxyTotalSizeBytes") {
		t.Errorf("errors %q, want one saying Integer out of bounds and naming dependencyProxyTotalSizeBytes", errs)
	}
	if data["group"] != nil {
		t.Errorf("group = %v, want null (the Int! field failed)", data["group"])
	}
	if got := data["other"].(map[string]any)["dependencyProxyTotalSizeBytes"]; got != "1008" {
		t.Errorf("other group's BigInt total = %v, want \"1008\"", got)
	}
	data = api.query(t, api.member, `{ group(fullPath: "top/s00") { dependencyProxyTotalSizeBytes } }`)
	if got, want := data["group"].(map[string]any)["dependencyProxyTotalSizeBytes"], fmt.Sprint(big+1007); got != want {
		t.Errorf("dependencyProxyTotalSizeBytes = %v, want %q", got, want)
	}
}

func mustGroups(t *testing.T, api *countedAPI) []store.Group {
	t.Helper()
	gs, err := api.st.st.Groups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return gs
}
