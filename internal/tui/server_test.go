package tui

import (
	"context"
	"io"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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
	_, c := cachedServer(t)
	ctx := context.Background()
	m := drive(newRealModel(c), nil, tea.WindowSizeMsg{Width: 80, Height: 24})
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
	if g.CachedImageCount != 0 || g.BlobCount != 0 || g.TotalSizeBytes != 0 {
		t.Errorf("after purging from the browser the server has %d images, %d blobs, %d bytes in acme; want none",
			g.CachedImageCount, g.BlobCount, g.TotalSizeBytes)
	}
}

// Against a real server: deleting an image from the browser deletes the
// entry it shows (the browser passes the repository the entry is cached
// under, not GitLab's imageName).
func TestDeleteImageOnARealServer(t *testing.T) {
	t.Parallel()
	_, c := cachedServer(t)
	m := drive(newRealModel(c), nil, tea.WindowSizeMsg{Width: 80, Height: 24})
	m = press(m, "enter")
	mustContain(t, m.View(), "Group acme", "library/alpine", "latest")
	m = press(m, "x")
	mustContain(t, m.View(), "Delete library/alpine:latest")
	m = press(m, "y")
	mustContain(t, m.View(), "deleted library/alpine:latest from acme")

	mp, err := c.Manifests(context.Background(), "acme", adminclient.Page{First: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range mp.Manifests {
		if im.Reference == "latest" {
			t.Errorf("after deleting from the browser the server still has %s", im.ImageName)
		}
	}
}

// Against a real server: an action the signed-in user may not take shows
// the server's refusal and changes nothing; when the server goes away the
// browser says it cannot reach it and keeps answering keys.
func TestRefusedAndGoneOnARealServer(t *testing.T) {
	t.Parallel()
	s, admin := cachedServer(t)
	ctx := context.Background()
	if _, err := admin.CreateUser(ctx, adminclient.UserInput{Username: "rita"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddMember(ctx, "acme", "rita", "REPORTER"); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, adminclient.TokenInput{Kind: adminclient.TokenPersonal, Name: "tui", Username: "rita", Scopes: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}

	// rita reaches the server through a front that can be taken away.
	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer front.Close()
	c, err := adminclient.New(front.URL, tok.Secret, adminclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := drive(newRealModel(c), nil, tea.WindowSizeMsg{Width: 100, Height: 30})
	mustContain(t, m.View(), "rita", "acme")

	// Purging needs an owner: the key bar does not offer it to rita, and
	// the key says so instead of asking.
	mustNotContain(t, m.View(), "p purge", "e proxy on/off")
	m = press(m, "p", "y")
	mustContain(t, m.View(), "purging needs the owner role in acme (yours: reporter)")
	mustNotContain(t, m.View(), "Purge the cache")
	g, err := admin.Group(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if g.CachedImageCount == 0 {
		t.Errorf("a refused purge emptied acme")
	}

	front.CloseClientConnections()
	front.Close()
	m = press(m, "r")
	mustContain(t, m.View(), "error: list groups: cannot reach dproxy at "+front.URL, "acme")
	m = press(m, "enter")
	mustContain(t, m.View(), "error: open group acme:")
	next, cmd := m.Update(keys("q")[0])
	if _, ok := cmd().(tea.QuitMsg); !ok || next == nil {
		t.Errorf("q did not quit after the server went away")
	}
}

// cachedServer starts a server with group acme, its proxy enabled, and
// library/alpine:latest pulled through it; c is its admin's client.
func cachedServer(t *testing.T) (s *testserver.Server, c *adminclient.Client) {
	t.Helper()
	s = testserver.New(t, testserver.Options{})
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
	return s, c
}

// newRealModel is the browser on a real server's client, loaded, with
// the wall clock.
func newRealModel(c *adminclient.Client) Model {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	m := New(c, r, Options{LiveEvery: -1})
	return drive(m, m.Init())
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
