package adminclient_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/testserver"
)

// TestWarmContract runs every warm method against a real server, in order.
func TestWarmContract(t *testing.T) {
	t.Parallel()
	s := testserver.New(t, testserver.Options{})
	ctx := context.Background()
	c := newClient(t, s.URL, s.AdminToken)
	if _, err := c.CreateGroup(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	every := 60
	added, _, err := c.AddWarmEntries(ctx, adminclient.WarmInput{GroupPath: "acme", Images: []string{"node:20", "acme/tool:v1"},
		Platforms: []string{"linux/arm64"}, EverySeconds: &every})
	if err != nil || len(added) != 2 {
		t.Fatalf("AddWarmEntries = %+v, %v", added, err)
	}
	top := 5
	if _, auto, err := c.AddWarmEntries(ctx, adminclient.WarmInput{GroupPath: "acme", AutoTop: &top}); err != nil || auto == nil || auto.Top != 5 {
		t.Fatalf("AddWarmEntries(autoTop 5) = %+v, %v", auto, err)
	}
	l, err := c.WarmEntries(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, e := range l.Entries {
		refs = append(refs, e.Ref())
		if e.State != "pending" || e.EverySeconds != 60 || strings.Join(e.Platforms, ",") != "linux/arm64" || e.LastCheckedAt != nil {
			t.Errorf("entry %+v: want pending, every 60 s, linux/arm64, not checked", e)
		}
	}
	if strings.Join(refs, " ") != "acme/tool:v1 node:20" {
		t.Errorf("entries %v, want [acme/tool:v1 node:20]", refs)
	}
	if l.Auto == nil || l.Auto.Top != 5 || l.Auto.WindowSeconds != 7*24*3600 {
		t.Errorf("auto = %+v, want top 5 over 7 days", l.Auto)
	}
	if n, err := c.WarmNow(ctx, "acme", "node:20"); err != nil || n != 1 {
		t.Errorf("WarmNow(node:20) = %d, %v; want 1", n, err)
	}
	if err := c.RemoveWarmEntry(ctx, "acme", "node:20", false); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveWarmEntry(ctx, "acme", "node:20", false); err == nil || !strings.Contains(err.Error(), "does not keep node:20 warm") {
		t.Errorf("removing it again: %v, want a refusal naming it", err)
	}
	if err := c.RemoveWarmEntry(ctx, "acme", "", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AddWarmEntries(ctx, adminclient.WarmInput{GroupPath: "acme", Images: []string{"node@sha256:" + strings.Repeat("a", 64)}}); err == nil ||
		!strings.Contains(err.Error(), "digest never moves") {
		t.Errorf("a digest reference: %v, want a refusal saying why", err)
	}
	if l, err := c.WarmEntries(ctx, "acme"); err != nil || len(l.Entries) != 1 || l.Auto != nil {
		t.Errorf("after the removals: %+v, %v; want acme/tool:v1 alone", l, err)
	}
}
