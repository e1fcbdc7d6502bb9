package tui

import (
	"context"
	"io"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/muesli/termenv"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/testserver"
)

// The browser against a real server with cached content: it shows the
// group and the image, and purging from it really empties the group.
func TestPurgeOnARealServer(t *testing.T) {
	t.Parallel()
	s := testserver.New(t, testserver.Options{})
	ctx := context.Background()
	c, err := adminclient.New(s.URL, s.AdminToken, adminclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGroup(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	on := true
	if _, err := c.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{GroupPath: "acme", Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	s.Upstream.PushRandomImage(t, "library/alpine", "latest", 2, 1024)
	pullThrough(t, s, "acme/dependency_proxy/containers/alpine:latest")
	s.WaitDownloads(t)

	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	m := New(c, r, Options{})
	m = drive(m, m.Init(), tea.WindowSizeMsg{Width: 80, Height: 24})
	mustContain(t, m.View(), "admin", "acme", "enabled")

	m = press(m, "enter")
	mustContain(t, m.View(), "Group acme", "library/alpine", "latest")
	m = press(m, "p")
	mustContain(t, m.View(), "Purge the cache of group acme?", "cached images")
	m = press(m, "y")
	mustContain(t, m.View(), "purged acme:", "No cached images yet")

	g, err := c.Group(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if g.ImageCount != 0 || g.BlobCount != 0 || g.TotalSizeBytes != 0 {
		t.Errorf("after purging from the browser the server has %d images, %d blobs, %d bytes in acme; want none",
			g.ImageCount, g.BlobCount, g.TotalSizeBytes)
	}
}

// pullThrough pulls an image and its layers through dproxy as the admin.
func pullThrough(t *testing.T, s *testserver.Server, ref string) {
	t.Helper()
	r, err := name.ParseReference(s.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: "admin", Password: s.AdminToken}))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}
