package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// vrEnv is a server on a fake clock with a virtual registry over three real
// registries on loopback: a (anonymous), b (needs credentials) and c.
type vrEnv struct {
	*env
	clock   *testclock.Clock
	a, b, c *testregistry.Upstream
	reg     store.VirtualRegistry
	ups     map[string]store.VirtualUpstream
	tok     string // alice's token: read_virtual_registry + read_registry
}

func newVREnv(t *testing.T) *vrEnv {
	t.Helper()
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	// The test registries are on 127.0.0.1, which the operator allows here.
	e := newEnv(t, envOptions{clock: clock, configure: allowCIDR("127.0.0.1/32")})
	v := &vrEnv{env: e, clock: clock, ups: map[string]store.VirtualUpstream{},
		a: testregistry.New(t, testregistry.Options{Now: clock.Now}),
		b: testregistry.New(t, testregistry.Options{Users: map[string]string{"bot": "b-pa55word"}, RequireAuth: true, Now: clock.Now}),
		c: testregistry.New(t, testregistry.Options{Now: clock.Now}),
	}
	e.group("acme")
	ctx := context.Background()
	var err error
	v.reg, err = e.app.Store.CreateVirtualRegistry(ctx, store.VirtualRegistry{GroupID: e.groupID("acme"), Name: "all"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []store.VirtualUpstream{
		{Name: "a", URL: v.a.URL, CacheValidityHours: 24},
		{Name: "b", URL: v.b.URL, Username: "bot", Password: "b-pa55word", CacheValidityHours: 24},
		{Name: "c", URL: v.c.URL, CacheValidityHours: 0},
	} {
		u.RegistryID = v.reg.ID
		added, err := e.app.Store.AddVirtualUpstream(ctx, u, 5)
		if err != nil {
			t.Fatal(err)
		}
		v.ups[u.Name] = added
	}
	v.tok = e.user("alice", "acme", store.RoleGuest, auth.ScopeReadVirtualRegistry, auth.ScopeReadRegistry)
	return v
}

func (v *vrEnv) repo(image string) string {
	return fmt.Sprintf("virtual_registries/container/%d/%s", v.reg.ID, image)
}

// get GETs (or HEADs) image's manifest or blob path through dproxy as alice.
func (v *vrEnv) get(method, image, kind, arg string) (*http.Response, []byte) {
	repo := v.repo(image)
	return v.do(method, "/v2/"+repo+"/"+kind+"/"+arg, v.jwt("alice", v.tok, repo))
}

func imageDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	m, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return digestOf(m)
}

// upstreamRequests counts an upstream's manifest and blob requests.
func upstreamRequests(u *testregistry.Upstream) int {
	n := 0
	for k, c := range u.Counts() {
		if strings.HasSuffix(k, " manifest") || strings.HasSuffix(k, " blob") {
			n += c
		}
	}
	return n
}

func TestVirtualRegistryResolution(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	onlyB := imageDigest(t, v.b.PushRandomImage(t, "team/only-b", "v1", 1, 2048))
	bothA := imageDigest(t, v.a.PushRandomImage(t, "team/both", "v1", 1, 2048))
	v.b.PushRandomImage(t, "team/both", "v1", 1, 2048)

	// Only in the second upstream: found there, with its credentials.
	res, body := v.get(http.MethodGet, "team/only-b", "manifests", "v1")
	if res.StatusCode != http.StatusOK || res.Header.Get("Docker-Content-Digest") != onlyB {
		t.Fatalf("image only in b: %d %s %s", res.StatusCode, res.Header.Get("Docker-Content-Digest"), body)
	}
	if users := v.b.TokenRequests(); len(users) == 0 || users[len(users)-1].Username != "bot" {
		t.Errorf("b's token requests %+v, want bot's credentials", users)
	}
	// In both: the first upstream's.
	if res, body := v.get(http.MethodGet, "team/both", "manifests", "v1"); res.StatusCode != http.StatusOK || res.Header.Get("Docker-Content-Digest") != bothA {
		t.Errorf("image in a and b: %d %s %s, want a's %s", res.StatusCode, res.Header.Get("Docker-Content-Digest"), body, bothA)
	}
	// Nowhere: 404 naming the upstreams.
	res, body = v.get(http.MethodGet, "team/nowhere", "manifests", "v1")
	if code, msg := ociError(t, body); res.StatusCode != http.StatusNotFound || code != "MANIFEST_UNKNOWN" || !strings.Contains(msg, "(a, b, c)") {
		t.Errorf("image nowhere: %d %s %s", res.StatusCode, code, msg)
	}

	// The wrong password on b: a clear error naming b.
	u := v.ups["b"]
	u.Password = "not-b-pa55word-either"
	if _, err := v.app.Store.UpdateVirtualUpstream(context.Background(), u, true); err != nil {
		t.Fatal(err)
	}
	v.b.PushRandomImage(t, "team/new-in-b", "v1", 1, 512)
	res, body = v.get(http.MethodGet, "team/new-in-b", "manifests", "v1")
	if _, msg := ociError(t, body); res.StatusCode == http.StatusOK || !strings.Contains(msg, "upstream b: ") || !strings.Contains(msg, "rejected the credentials") || strings.Contains(msg, v.b.URL) {
		t.Errorf("wrong password on b: %d %s", res.StatusCode, msg)
	}

	// Neither password is in a response, a log line or a file of the data dir.
	for _, pw := range []string{"b-pa55word", "not-b-pa55word-either"} {
		if strings.Contains(string(body), pw) || strings.Contains(v.logs.String(), pw) {
			t.Errorf("the upstream password %q is in a response or the log", pw)
		}
	}
	filepath.WalkDir(v.app.Config.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte("b-pa55word")) {
			t.Errorf("the upstream password is in plaintext in %s", path)
		}
		return nil
	})
}

// Blobs: exact bytes, verified, one upstream GET however many clients ask.
func TestVirtualRegistryBlobs(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	img := v.c.PushRandomImage(t, "team/app", "v1", 1, 256<<10)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			res, body := v.get(http.MethodGet, "team/app", "blobs", d.String())
			sum := sha256.Sum256(body)
			if res.StatusCode != http.StatusOK || "sha256:"+hex.EncodeToString(sum[:]) != d.String() {
				t.Errorf("blob GET: %d, %d bytes hashing to another digest", res.StatusCode, len(body))
			}
		})
	}
	wg.Wait()
	waitFor(t, "downloads to finish", func() bool { return v.app.Virtual.InFlight() == 0 })
	if n := v.c.CountBlob(http.MethodGet, d.String()); n != 1 {
		t.Errorf("upstream c served the blob %d times for 5 clients, want 1", n)
	}
	size, err := layers[0].Size()
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := v.get(http.MethodHead, "team/app", "blobs", d.String()); res.StatusCode != http.StatusOK || res.ContentLength != size {
		t.Errorf("blob HEAD: %d length %d, want %d", res.StatusCode, res.ContentLength, size)
	}

	// Garbage collection keeps a blob file a virtual registry references.
	if _, err := v.app.Lifecycle.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.app.Blobs.(*blobstore.FS).Path(oci.Digest(d.String()))); err != nil {
		t.Errorf("the blob file is gone after garbage collection: %v", err)
	}
}

// cache_validity_hours: no upstream request inside the window, one HEAD
// after it; 0 means never ask again.
func TestVirtualRegistryCacheValidity(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	v.a.PushRandomImage(t, "team/app", "v1", 1, 512)
	v.c.PushRandomImage(t, "team/forever", "v1", 1, 512)
	for _, image := range []string{"team/app", "team/forever"} {
		if res, body := v.get(http.MethodGet, image, "manifests", "v1"); res.StatusCode != http.StatusOK {
			t.Fatalf("first pull of %s: %d %s", image, res.StatusCode, body)
		}
	}
	v.a.ResetCounts()
	v.c.ResetCounts()

	v.clock.Add(23 * time.Hour)
	v.get(http.MethodGet, "team/app", "manifests", "v1")
	if n := upstreamRequests(v.a); n != 0 {
		t.Errorf("inside the 24 h window: %d requests to a, want 0", n)
	}
	v.clock.Add(2 * time.Hour)
	if res, _ := v.get(http.MethodGet, "team/app", "manifests", "v1"); res.StatusCode != http.StatusOK {
		t.Fatalf("pull after the window: %d", res.StatusCode)
	}
	if h, g := v.a.Count(http.MethodHead, testregistry.KindManifest), v.a.Count(http.MethodGet, testregistry.KindManifest); h != 1 || g != 0 {
		t.Errorf("after the window: %d HEADs and %d GETs to a, want 1 and 0", h, g)
	}

	v.clock.Add(1000 * time.Hour)
	if res, _ := v.get(http.MethodGet, "team/forever", "manifests", "v1"); res.StatusCode != http.StatusOK {
		t.Fatalf("pull from c: %d", res.StatusCode)
	}
	if n := upstreamRequests(v.c); n != 0 {
		t.Errorf("cache_validity_hours 0: %d requests to c after 1,000 hours, want 0", n)
	}
}

// The first upstream down: what is cached from it is served, what is not
// falls through to the next upstream.
func TestVirtualRegistryUpstreamDown(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	fromA := imageDigest(t, v.a.PushRandomImage(t, "team/app", "v1", 1, 512))
	v.a.PushRandomImage(t, "team/later", "v1", 1, 512)
	laterC := imageDigest(t, v.c.PushRandomImage(t, "team/later", "v1", 1, 512))
	if res, _ := v.get(http.MethodGet, "team/app", "manifests", "v1"); res.StatusCode != http.StatusOK {
		t.Fatal("first pull failed")
	}
	v.a.SetDown(true)
	v.clock.Add(48 * time.Hour) // past a's window: a revalidation is due
	res, body := v.get(http.MethodGet, "team/app", "manifests", "v1")
	if res.StatusCode != http.StatusOK || res.Header.Get("Docker-Content-Digest") != fromA {
		t.Errorf("cached from a, a down: %d %s", res.StatusCode, body)
	}
	res, body = v.get(http.MethodGet, "team/later", "manifests", "v1")
	if res.StatusCode != http.StatusOK || res.Header.Get("Docker-Content-Digest") != laterC {
		t.Errorf("uncached, a down: %d %s %s, want c's %s", res.StatusCode, res.Header.Get("Docker-Content-Digest"), body, laterC)
	}
}

// Pulling needs read_virtual_registry with read_registry (or api); read
// access to the group; and knowledge of the registry.
func TestVirtualRegistryAuthorization(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	v.a.PushRandomImage(t, "team/app", "v1", 1, 512)
	repo := v.repo("team/app")
	path := "/v2/" + repo + "/manifests/v1"
	for _, tc := range []struct {
		name   string
		user   string
		group  string
		scopes []string
		status int
		code   string
	}{
		{"read_registry alone", "rita", "acme", []string{auth.ScopeReadRegistry}, http.StatusForbidden, "DENIED"},
		{"read_virtual_registry alone", "vera", "acme", []string{auth.ScopeReadVirtualRegistry}, http.StatusForbidden, "DENIED"},
		{"api", "ann", "acme", []string{auth.ScopeAPI}, http.StatusOK, ""},
		{"not a member", "olaf", "", []string{auth.ScopeReadVirtualRegistry, auth.ScopeReadRegistry}, http.StatusNotFound, "NAME_UNKNOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := v.user(tc.user, tc.group, store.RoleGuest, tc.scopes...)
			res, body := v.do(http.MethodGet, path, v.jwt(tc.user, tok, repo))
			if res.StatusCode != tc.status {
				t.Errorf("status %d %s, want %d", res.StatusCode, body, tc.status)
			}
			if tc.code != "" {
				if code, _ := ociError(t, body); code != tc.code {
					t.Errorf("code %s, want %s", code, tc.code)
				}
			}
		})
	}
	res, body := v.do(http.MethodGet, "/v2/virtual_registries/container/999/team/app/manifests/v1", v.jwt("alice", v.tok, "virtual_registries/container/999/team/app"))
	if code, _ := ociError(t, body); res.StatusCode != http.StatusNotFound || code != "NAME_UNKNOWN" {
		t.Errorf("unknown registry: %d %s", res.StatusCode, code)
	}
}

// What no upstream has is a 404 with the code of what was asked for.
func TestVirtualRegistryUnknown(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	missing := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct{ kind, arg, code string }{
		{"manifests", "v1", "MANIFEST_UNKNOWN"},
		{"manifests", missing, "MANIFEST_UNKNOWN"},
		{"blobs", missing, "BLOB_UNKNOWN"},
	} {
		res, body := v.get(http.MethodGet, "team/nowhere", c.kind, c.arg)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s/%s: status %d, want 404", c.kind, c.arg, res.StatusCode)
		}
		code, msg := ociError(t, body)
		if code != c.code || !strings.Contains(msg, "none of the upstreams") || !strings.Contains(msg, "a, b, c") {
			t.Errorf("%s/%s: %s %q, want %s naming the upstreams", c.kind, c.arg, code, msg, c.code)
		}
	}
}

// Deleting an upstream stops its downloads at the next collection, and
// the files only it referenced are deleted.
func TestVirtualRegistryUpstreamDeleted(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	kept := v.c.PushRandomImage(t, "team/app", "v1", 1, 64<<10)
	slow := v.c.PushRandomImage(t, "team/big", "v1", 1, 4<<20)
	if res, body := v.get(http.MethodGet, "team/app", "manifests", "v1"); res.StatusCode != http.StatusOK {
		t.Fatalf("pull: %d %s", res.StatusCode, body)
	}
	keptLayer := string(blobsOf(t, kept)[1])
	if res, _ := v.get(http.MethodGet, "team/app", "blobs", keptLayer); res.StatusCode != http.StatusOK {
		t.Fatalf("blob pull: %d", res.StatusCode)
	}
	keptPath := v.app.Blobs.(*blobstore.FS).Path(oci.Digest(keptLayer))
	// Stored, and its download over: the one in flight below is the slow one.
	waitFor(t, "the blob to be stored", func() bool {
		_, err := os.Stat(keptPath)
		return err == nil && v.app.Virtual.InFlight() == 0
	})

	v.c.SetBandwidth(64 << 10) // 4 MiB takes a minute
	slowLayer := string(blobsOf(t, slow)[1])
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.get(http.MethodGet, "team/big", "blobs", slowLayer)
	}()
	waitFor(t, "the slow download to start", func() bool {
		return v.app.Virtual.InFlight() == 1 && v.c.CountBlob(http.MethodGet, slowLayer) == 1
	})

	if p := v.vrMutate(v.adminToken(), "containerVirtualRegistryUpstreamDelete", map[string]any{"id": fmt.Sprint(v.ups["c"].ID)}); len(p.Errors) != 0 {
		t.Fatalf("delete upstream c: %v", p.Errors)
	}
	if _, err := v.app.Lifecycle.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted upstream's download to stop", func() bool { return v.app.Virtual.InFlight() == 0 })
	<-done
	if _, err := os.Stat(keptPath); !os.IsNotExist(err) {
		t.Errorf("the blob only upstream c referenced is still stored: %v", err)
	}
	if res, _ := v.get(http.MethodGet, "team/app", "manifests", "v1"); res.StatusCode != http.StatusNotFound {
		t.Errorf("pull after its only upstream was deleted: %d, want 404", res.StatusCode)
	}
}

// The TTL policy of the registry's group covers its upstreams' caches:
// what was not read for 90 days goes, its files are collected, and the next
// pull fetches it again; what was read recently stays.
func TestVirtualRegistryTTL(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	old := v.a.PushRandomImage(t, "team/old", "v1", 1, 2048)
	v.a.PushRandomImage(t, "team/new", "v1", 1, 2048)
	oldLayer := string(blobsOf(t, old)[1])
	for _, image := range []string{"team/old", "team/new"} {
		if res, body := v.get(http.MethodGet, image, "manifests", "v1"); res.StatusCode != http.StatusOK {
			t.Fatalf("pull %s: %d %s", image, res.StatusCode, body)
		}
	}
	if res, _ := v.get(http.MethodGet, "team/old", "blobs", oldLayer); res.StatusCode != http.StatusOK {
		t.Fatalf("blob pull: %d", res.StatusCode)
	}
	waitFor(t, "blobs to be out of use", v.app.Virtual.Idle)

	v.clock.Add(60 * 24 * time.Hour)
	v.get(http.MethodGet, "team/new", "manifests", "v1") // read within the window (Expire flushes read times)
	v.clock.Add(40 * 24 * time.Hour)                     // old: last read 100 days ago; new: 40

	res, err := v.app.Lifecycle.Expire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifests == 0 || res.Blobs == 0 {
		t.Errorf("expired %d manifests and %d blobs of the virtual registry, want some of each", res.Manifests, res.Blobs)
	}
	if _, err := v.app.Lifecycle.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.app.Blobs.(*blobstore.FS).Path(oci.Digest(oldLayer))); !os.IsNotExist(err) {
		t.Errorf("the expired layer's file is still stored: %v", err)
	}
	v.a.ResetCounts()
	if res, _ := v.get(http.MethodGet, "team/new", "manifests", "v1"); res.StatusCode != http.StatusOK {
		t.Fatalf("pull of the recent image: %d", res.StatusCode)
	}
	if n := v.a.Count(http.MethodGet, testregistry.KindManifest); n != 0 {
		t.Errorf("the image read 40 days ago was fetched again (%d manifest GETs)", n)
	}
	if res, _ := v.get(http.MethodGet, "team/old", "manifests", "v1"); res.StatusCode != http.StatusOK {
		t.Fatalf("pull after expiry: %d", res.StatusCode)
	}
	if n := v.a.Count(http.MethodGet, testregistry.KindManifest); n != 1 {
		t.Errorf("the expired image made %d upstream manifest GETs, want 1", n)
	}
}
