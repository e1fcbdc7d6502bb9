package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/store"
)

// hotPathEnv is a server with group acme (revalidate on every pull) and
// group fresh (a 30 s freshness window), both with guest alice, and image
// library/node:v1 cached in both; it returns alice's JWTs per group.
func hotPathEnv(b *testing.B) (e *env, acme, fresh string, blobPath string) {
	e = newEnv(b, envOptions{})
	e.group("acme", "fresh")
	tok := e.user("alice", "acme", store.RoleGuest)
	// The seeding is admin work: through the admin service, as the server.
	ctx := context.Background()
	if _, err := e.app.Admin.SetMember(ctx, admin.System, "fresh", "alice", admin.RoleGuest); err != nil {
		b.Fatal(err)
	}
	window := 30 * time.Second
	if _, err := e.app.Admin.UpdateProxySetting(ctx, admin.System, "fresh", admin.ProxySettingChange{FreshnessWindow: &window}); err != nil {
		b.Fatal(err)
	}
	img := e.up.PushRandomImage(b, "library/node", "v1", 1, 64<<10)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	acme = e.jwt("alice", tok, "acme/dependency_proxy/containers/node")
	fresh = e.jwt("alice", tok, "fresh/dependency_proxy/containers/node")
	blobPath = "/v2/acme/dependency_proxy/containers/node/blobs/" + d.String()
	for _, c := range []struct{ group, jwt string }{{"acme", acme}, {"fresh", fresh}} {
		if res, _ := e.do("GET", "/v2/"+c.group+"/dependency_proxy/containers/node/manifests/v1", c.jwt); res.StatusCode != 200 {
			b.Fatalf("warm manifest in %s: %d", c.group, res.StatusCode)
		}
	}
	if res, _ := e.do("GET", blobPath, acme); res.StatusCode != 200 {
		b.Fatalf("warm blob: %d", res.StatusCode)
	}
	e.settle()
	return e, acme, fresh, blobPath
}

// serveDirect sends a request through the server's handler, without a
// network connection, and fails unless it answered 200.
func serveDirect(b *testing.B, h http.Handler, path, jwt string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
	}
}

// BenchmarkWarmManifest is a cached tag GET through the whole handler
// (middleware, JWT check, principal and permission lookup, setting, store
// lookup): within the freshness window, and revalidated by an upstream
// HEAD over loopback (no injected latency).
func BenchmarkWarmManifest(b *testing.B) {
	e, acme, fresh, _ := hotPathEnv(b)
	h := e.app.Server.Handler()
	for _, bc := range []struct{ name, group, jwt string }{
		{"fresh-window", "fresh", fresh},
		{"revalidate", "acme", acme},
	} {
		path := "/v2/" + bc.group + "/dependency_proxy/containers/node/manifests/v1"
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serveDirect(b, h, path, bc.jwt)
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serveDirect(b, h, path, bc.jwt)
				}
			})
		})
	}
}

// BenchmarkCachedSmallBlob opens and serves a cached 64 KiB blob through
// the whole handler.
func BenchmarkCachedSmallBlob(b *testing.B) {
	e, acme, _, blobPath := hotPathEnv(b)
	h := e.app.Server.Handler()
	b.ReportAllocs()
	b.SetBytes(64 << 10)
	for b.Loop() {
		serveDirect(b, h, blobPath, acme)
	}
}
