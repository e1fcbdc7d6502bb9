package testdns

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

func TestTable(t *testing.T) {
	t.Parallel()
	tab := New()
	r := tab.Resolver()
	ctx := context.Background()
	tab.Set("Registry.Test", "127.0.0.2", "::2")
	got, err := r.LookupNetIP(ctx, "ip", "registry.test")
	want := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::2")}
	slices.SortFunc(got, netip.Addr.Compare)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("lookup registry.test = %v, %v; want %v", got, err, want)
	}
	if tab.Queries("registry.test") == 0 {
		t.Errorf("no query counted")
	}
	// The answer changes between lookups: nothing is cached.
	tab.Set("registry.test", "127.0.0.1")
	if got, err := r.LookupNetIP(ctx, "ip4", "registry.test"); err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("after the change: %v, %v; want 127.0.0.1", got, err)
	}
	if _, err := r.LookupNetIP(ctx, "ip", "unknown.test"); err == nil {
		t.Errorf("an unknown name resolved")
	}
}
