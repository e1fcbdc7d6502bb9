package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// lyingRegistry is a registry a group owner controls, on 127.0.0.2: it
// answers every request without asking for credentials (unless challenge
// is set) and lets the test decide what manifests and blobs look like. It
// records the Authorization headers it is sent and counts blob GETs.
type lyingRegistry struct {
	URL string

	mu        sync.Mutex
	auths     []string
	blobGETs  map[string]int
	manifest  func(w http.ResponseWriter, r *http.Request, repo, ref string)
	blob      func(w http.ResponseWriter, r *http.Request, d string)
	challenge bool // answer 401 with a Bearer challenge until a token of its own comes
}

func newLyingRegistry(t *testing.T) *lyingRegistry {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2: %v", err)
	}
	l := &lyingRegistry{blobGETs: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(l.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	l.URL = srv.URL
	return l
}

// lyingToken is the only bearer token the lying registry accepts.
const lyingToken = "lying-registry-token"

func (l *lyingRegistry) serve(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	if a := r.Header.Get("Authorization"); a != "" {
		l.auths = append(l.auths, a)
	}
	challenge := l.challenge
	l.mu.Unlock()
	if r.URL.Path == "/token" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":%q,"expires_in":300}`, lyingToken)
		return
	}
	if challenge && r.Header.Get("Authorization") != "Bearer "+lyingToken {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="lying"`, l.URL))
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}`, http.StatusUnauthorized)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if i := strings.LastIndex(p, "/blobs/"); i >= 0 {
		d := p[i+len("/blobs/"):]
		l.mu.Lock()
		if r.Method == http.MethodGet {
			l.blobGETs[d]++
		}
		blob := l.blob
		l.mu.Unlock()
		if blob == nil {
			http.NotFound(w, r)
			return
		}
		blob(w, r, d)
		return
	}
	if i := strings.LastIndex(p, "/manifests/"); i >= 0 {
		l.mu.Lock()
		manifest := l.manifest
		l.mu.Unlock()
		if manifest == nil {
			http.NotFound(w, r)
			return
		}
		manifest(w, r, p[:i], p[i+len("/manifests/"):])
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte("{}"))
}

func (l *lyingRegistry) set(fn func(l *lyingRegistry)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l)
}

func (l *lyingRegistry) blobGETsOf(d string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blobGETs[d]
}

// sawSecret reports whether any Authorization header it was sent carries
// secret, as is or Basic-encoded with any username.
func (l *lyingRegistry) sawSecret(secret string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.auths {
		if strings.Contains(a, secret) {
			return true
		}
		if enc, ok := strings.CutPrefix(a, "Basic "); ok {
			if b, err := base64.StdEncoding.DecodeString(enc); err == nil && strings.Contains(string(b), secret) {
				return true
			}
		}
	}
	return false
}

// sawBasic reports whether it was sent any Basic credentials.
func (l *lyingRegistry) sawBasic() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.auths {
		if strings.HasPrefix(a, "Basic ") {
			return true
		}
	}
	return false
}

// tenantEnv is two tenants of one instance: group victim pulls through its
// dependency proxy from the instance upstream (vic is its guest), and
// mallory owns group evil with a virtual registry whose upstreams she
// chooses.
type tenantEnv struct {
	*env
	vicTok, malTok string
	reg            store.VirtualRegistry
}

func newTenantEnv(t *testing.T, o envOptions) *tenantEnv {
	t.Helper()
	// The tenants' upstreams are test registries on 127.0.0.1 and 127.0.0.2, which the
	// operator allows here: these tests are about what an allowed upstream
	// can do.
	configure := o.configure
	o.configure = func(c *config.Config) {
		c.UpstreamAllowCIDR = []string{"127.0.0.1/32", "127.0.0.2/32"}
		if configure != nil {
			configure(c)
		}
	}
	e := newEnv(t, o)
	e.group("victim", "evil")
	te := &tenantEnv{env: e,
		vicTok: e.user("vic", "victim", store.RoleGuest),
		malTok: e.user("mallory", "evil", store.RoleOwner, auth.ScopeAPI),
	}
	var err error
	te.reg, err = e.app.Store.CreateVirtualRegistry(context.Background(), store.VirtualRegistry{GroupID: e.groupID("evil"), Name: "mine"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	return te
}

// addUpstream adds an upstream to mallory's virtual registry.
func (te *tenantEnv) addUpstream(name, url string) store.VirtualUpstream {
	te.t.Helper()
	u, err := te.app.Store.AddVirtualUpstream(context.Background(), store.VirtualUpstream{
		RegistryID: te.reg.ID, Name: name, URL: url, CacheValidityHours: 24}, 5)
	if err != nil {
		te.t.Fatal(err)
	}
	return u
}

// victimPulls pulls blob d of library/<image> through victim's dependency
// proxy and waits until it is stored.
func (te *tenantEnv) victimPulls(image string, d oci.Digest) []byte {
	te.t.Helper()
	repo := "victim/dependency_proxy/containers/" + image
	res, body := te.do(http.MethodGet, "/v2/"+repo+"/blobs/"+string(d), te.jwt("vic", te.vicTok, repo))
	if res.StatusCode != http.StatusOK || digestOf(body) != string(d) {
		te.t.Fatalf("victim's pull of %s: %d, %d bytes", d, res.StatusCode, len(body))
	}
	waitFor(te.t, "victim's download to be stored", func() bool { return te.app.Cache.InFlight() == 0 })
	return body
}

// malloryGets GETs (or HEADs) a manifest or blob of image through her
// virtual registry. A body cut short by an aborted connection is returned
// with the error.
func (te *tenantEnv) malloryGets(method, image, kind, arg string) (*http.Response, []byte, error) {
	te.t.Helper()
	repo := fmt.Sprintf("virtual_registries/container/%d/%s", te.reg.ID, image)
	req, _ := http.NewRequest(method, te.srv.URL+"/v2/"+repo+"/"+kind+"/"+arg, nil)
	req.Header.Set("Authorization", "Bearer "+te.jwt("mallory", te.malTok, repo))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// storedFiles counts the committed blob files and leftover temp files.
func (te *tenantEnv) storedFiles() (blobs, temps int) {
	te.t.Helper()
	root := te.app.Config.BlobDir()
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(path, filepath.Join(root, "tmp")) {
			temps++
		} else {
			blobs++
		}
		return nil
	})
	return blobs, temps
}

// A virtual-registry upstream answering HEAD 200 for any digest proves
// nothing: mallory does not get victim's layer through it. Her upstream
// must serve the bytes itself; bytes of its own fail verification.
func TestLyingHeadDoesNotShareAnotherTenantsBlob(t *testing.T) {
	t.Parallel()
	te := newTenantEnv(t, envOptions{})
	img := te.up.PushRandomImage(t, "library/secret", "v1", 1, 64<<10)
	layer := blobsOf(t, img)[1]
	secret := te.victimPulls("secret", layer)

	lying := newLyingRegistry(t)
	up := te.addUpstream("lying", lying.URL)
	lying.set(func(l *lyingRegistry) {
		l.blob = func(w http.ResponseWriter, r *http.Request, d string) {
			w.Header().Set("Docker-Content-Digest", d)
			w.Header().Set("Content-Length", strconv.Itoa(len(secret)))
			if r.Method == http.MethodHead {
				return // "I have it"
			}
			http.NotFound(w, r)
		}
	})

	res, body, err := te.malloryGets(http.MethodGet, "anything", "blobs", string(layer))
	if bytes.Contains(body, secret[:4096]) {
		t.Fatalf("mallory read victim's layer through a HEAD her upstream answered: status %d", res.StatusCode)
	}
	if err != nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("blob her upstream does not serve: %v, status %v %s, want 404", err, statusOf(res), body)
	}
	if code, _ := ociError(t, body); code != "BLOB_UNKNOWN" {
		t.Errorf("code %s, want BLOB_UNKNOWN", code)
	}
	if n := lying.blobGETsOf(string(layer)); n != 1 {
		t.Errorf("mallory's upstream got %d GETs of the blob, want 1 (it must serve the bytes)", n)
	}

	// Her upstream serves other bytes under the digest: they fail
	// verification, the client never gets a complete blob, nothing is
	// referenced for her upstream.
	fake := make([]byte, len(secret))
	rand.Read(fake)
	lying.set(func(l *lyingRegistry) {
		l.blob = func(w http.ResponseWriter, r *http.Request, d string) {
			w.Header().Set("Content-Length", strconv.Itoa(len(fake)))
			if r.Method == http.MethodGet {
				w.Write(fake)
			}
		}
	})
	res, body, err = te.malloryGets(http.MethodGet, "anything", "blobs", string(layer))
	if bytes.Contains(body, secret[:4096]) {
		t.Fatalf("mallory read victim's layer: status %d", statusOf(res))
	}
	if err == nil && res.StatusCode == http.StatusOK && len(body) == len(fake) {
		t.Errorf("a blob that fails verification was served whole")
	}
	waitFor(t, "mallory's download to end", func() bool { return te.app.Virtual.InFlight() == 0 })
	if _, err := te.app.Store.UpstreamCache().Blob(context.Background(), up.ID, layer); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("blob reference of mallory's upstream after a failed verification: %v, want not found", err)
	}
	// The stored file is still victim's.
	if got := te.victimPulls("secret", layer); !bytes.Equal(got, secret) {
		t.Errorf("victim's layer changed")
	}

	// Manifests are not shared by a HEAD either: victim's manifest by
	// digest is not served to mallory.
	raw, _ := img.RawManifest()
	te.do(http.MethodGet, "/v2/victim/dependency_proxy/containers/secret/manifests/v1", te.jwt("vic", te.vicTok, "victim/dependency_proxy/containers/secret"))
	lying.set(func(l *lyingRegistry) {
		l.manifest = func(w http.ResponseWriter, r *http.Request, repo, ref string) {
			w.Header().Set("Docker-Content-Digest", ref)
			w.Header().Set("Content-Type", oci.MediaTypeDockerManifest)
			if r.Method == http.MethodGet {
				http.NotFound(w, r)
			}
		}
	})
	res, body, _ = te.malloryGets(http.MethodGet, "library/secret", "manifests", digestOf(raw))
	if bytes.Equal(body, raw) || statusOf(res) != http.StatusNotFound {
		t.Errorf("victim's manifest by digest through a lying HEAD: status %d", statusOf(res))
	}
}

func statusOf(res *http.Response) int {
	if res == nil {
		return 0
	}
	return res.StatusCode
}

// A blob that mallory's upstream really serves is downloaded from it and
// verified, then deduplicated against the stored file: one file on disk.
func TestVirtualRegistryBlobStoredOnceAfterItsOwnDownload(t *testing.T) {
	t.Parallel()
	te := newTenantEnv(t, envOptions{})
	img := te.up.PushRandomImage(t, "library/shared", "v1", 1, 64<<10)
	layer := blobsOf(t, img)[1]
	want := te.victimPulls("shared", layer)
	blobsBefore, _ := te.storedFiles()

	theirs := testregistry.New(t, testregistry.Options{})
	theirs.PushImage(t, "team/shared", "v1", img)
	up := te.addUpstream("theirs", theirs.URL)

	res, body, err := te.malloryGets(http.MethodGet, "team/shared", "blobs", string(layer))
	if err != nil || res.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("blob her upstream serves: %v %d, %d bytes", err, statusOf(res), len(body))
	}
	waitFor(t, "her download to be stored", func() bool { return te.app.Virtual.InFlight() == 0 })
	if n := theirs.CountBlob(http.MethodGet, string(layer)); n != 1 {
		t.Errorf("her upstream served the blob %d times, want 1 (downloaded and verified, not taken by HEAD)", n)
	}
	if blobs, temps := te.storedFiles(); blobs != blobsBefore || temps != 0 {
		t.Errorf("%d blob files and %d temp files after her download, want %d and 0", blobs, temps, blobsBefore)
	}
	if _, err := te.app.Store.UpstreamCache().Blob(context.Background(), up.ID, layer); err != nil {
		t.Errorf("her upstream's blob reference: %v", err)
	}
	// From now on it is hers: served from storage without her upstream.
	theirs.ResetCounts()
	if res, body, err := te.malloryGets(http.MethodGet, "team/shared", "blobs", string(layer)); err != nil || res.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Errorf("second pull: %v %d", err, statusOf(res))
	}
	if n := upstreamRequests(theirs); n != 0 {
		t.Errorf("second pull made %d upstream requests, want 0", n)
	}
}

// Groups on the instance upstream keep sharing stored blobs once the
// instance upstream confirmed access with a HEAD: no second GET. So does a
// virtual-registry upstream whose URL is the instance upstream's.
func TestInstanceUpstreamSharesStoredBlobsByHead(t *testing.T) {
	t.Parallel()
	te := newTenantEnv(t, envOptions{})
	te.group("other")
	otherTok := te.user("olga", "other", store.RoleGuest)
	img := te.up.PushRandomImage(t, "library/base", "v1", 1, 64<<10)
	layer := blobsOf(t, img)[1]
	want := te.victimPulls("base", layer)

	repo := "other/dependency_proxy/containers/base"
	res, body := te.do(http.MethodGet, "/v2/"+repo+"/blobs/"+string(layer), te.jwt("olga", otherTok, repo))
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("other group's pull: %d", res.StatusCode)
	}
	if n := te.up.CountBlob(http.MethodGet, string(layer)); n != 1 {
		t.Errorf("the instance upstream served the blob %d times for two groups, want 1", n)
	}
	if n := te.up.CountBlob(http.MethodHead, string(layer)); n != 1 {
		t.Errorf("the instance upstream got %d HEADs of the blob, want 1 (the second group's confirmation)", n)
	}

	te.addUpstream("hub", te.up.URL)
	res2, body2, err := te.malloryGets(http.MethodGet, "library/base", "blobs", string(layer))
	if err != nil || res2.StatusCode != http.StatusOK || !bytes.Equal(body2, want) {
		t.Fatalf("virtual registry on the instance upstream: %v %d", err, statusOf(res2))
	}
	if n := te.up.CountBlob(http.MethodGet, string(layer)); n != 1 {
		t.Errorf("the instance upstream served the blob %d times, want 1", n)
	}
}
