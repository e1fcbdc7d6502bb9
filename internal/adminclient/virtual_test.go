package adminclient_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/testserver"
)

// TestVirtualRegistryContract runs every virtual-registry method against a
// real server, in order.
func TestVirtualRegistryContract(t *testing.T) {
	t.Parallel()
	s := testserver.New(t, testserver.Options{})
	ctx := context.Background()
	c := newClient(t, s.URL, s.AdminToken)
	if _, err := c.CreateGroup(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	r, err := c.CreateVirtualRegistry(ctx, "acme", "all", "everything")
	if err != nil || r.Name != "all" || r.GroupPath != "acme" || r.PullPrefix != s.Host+"/virtual_registries/container/1" {
		t.Fatalf("CreateVirtualRegistry = %+v, %v", r, err)
	}
	for _, u := range []adminclient.VirtualUpstreamInput{
		{RegistryID: r.ID, Name: ptr("private"), URL: ptr("https://registry.example.com"), Username: ptr("bot"), Password: ptr("s3cret-pw")},
		{RegistryID: r.ID, Name: ptr("hub"), URL: ptr("https://registry-1.docker.io"), CacheValidityHours: ptr(0)},
	} {
		if r, err = c.AddVirtualUpstream(ctx, u); err != nil {
			t.Fatalf("AddVirtualUpstream: %v", err)
		}
	}
	if len(r.Upstreams) != 2 || !r.Upstreams[0].PasswordSet || r.Upstreams[1].CacheValidityHours != 0 {
		t.Fatalf("upstreams = %+v", r.Upstreams)
	}
	if r, err = c.MoveVirtualUpstream(ctx, r.Upstreams[1].ID, 0); err != nil || r.Upstreams[0].Name != "hub" {
		t.Fatalf("MoveVirtualUpstream = %+v, %v", r.Upstreams, err)
	}
	// Another host without new credentials clears them, and says so.
	ch, err := c.UpdateVirtualUpstream(ctx, adminclient.VirtualUpstreamInput{ID: r.Upstreams[1].ID, URL: ptr("https://other.example.com")})
	if err != nil || !ch.CredentialsCleared || ch.Registry.Upstreams[1].PasswordSet || ch.Registry.Upstreams[1].Username != "" {
		t.Fatalf("move to another host = %+v, %v; want the credentials cleared", ch, err)
	}
	ch, err = c.UpdateVirtualUpstream(ctx, adminclient.VirtualUpstreamInput{ID: r.Upstreams[1].ID,
		URL: ptr("https://registry.example.com"), Username: ptr("bot"), Password: ptr("s3cret-pw")})
	if err != nil || ch.CredentialsCleared || !ch.Registry.Upstreams[1].PasswordSet {
		t.Fatalf("move back with credentials = %+v, %v", ch, err)
	}
	if ch, err = c.UpdateVirtualUpstream(ctx, adminclient.VirtualUpstreamInput{ID: r.Upstreams[1].ID, Username: ptr(""), Password: ptr("")}); err != nil || ch.CredentialsCleared || ch.Registry.Upstreams[1].PasswordSet {
		t.Fatalf("clear the password = %+v, %v", ch, err)
	}
	r = ch.Registry
	if r, err = c.UpdateVirtualRegistry(ctx, adminclient.VirtualRegistryInput{ID: r.ID, Description: ptr("hub first")}); err != nil || r.Description != "hub first" {
		t.Fatalf("UpdateVirtualRegistry = %+v, %v", r, err)
	}
	if got, err := c.VirtualRegistry(ctx, "1"); err != nil || got.ID != r.ID || len(got.Upstreams) != 2 {
		t.Fatalf("VirtualRegistry(1) = %+v, %v", got, err)
	}
	if list, err := c.VirtualRegistries(ctx, "acme"); err != nil || len(list) != 1 {
		t.Fatalf("VirtualRegistries = %+v, %v", list, err)
	}
	var api *adminclient.APIError
	if _, err := c.AddVirtualUpstream(ctx, adminclient.VirtualUpstreamInput{RegistryID: r.ID, Name: ptr("bad"), URL: ptr("ftp://x")}); !errors.As(err, &api) {
		t.Errorf("bad URL: %v, want an APIError", err)
	}
	if r, err = c.DeleteVirtualUpstream(ctx, r.Upstreams[0].ID); err != nil || len(r.Upstreams) != 1 {
		t.Fatalf("DeleteVirtualUpstream = %+v, %v", r, err)
	}
	if err := c.DeleteVirtualRegistry(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VirtualRegistry(ctx, r.ID); err == nil {
		t.Error("a deleted registry is still shown")
	}
}
