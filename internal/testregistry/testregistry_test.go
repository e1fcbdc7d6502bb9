package testregistry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/testclock"
)

func ref(t *testing.T, u *Upstream, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(u.Host()+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pullAll reads the manifest, config and every layer of an image through the front.
func pullAll(t *testing.T, u *Upstream, s string, opts ...remote.Option) (v1.Image, error) {
	t.Helper()
	img, err := remote.Image(ref(t, u, s), opts...)
	if err != nil {
		return nil, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

func TestAnonymousPullCountsRequests(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	want := u.PushRandomImage(t, "library/alpine", "latest", 2, 1024)
	if n := u.Count("GET", KindManifest) + u.Count("PUT", KindManifest); n != 0 {
		t.Fatalf("pushes were counted: %d", n)
	}

	got, err := pullAll(t, u, "library/alpine:latest")
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wd, _ := want.Digest()
	gd, _ := got.Digest()
	if wd != gd {
		t.Errorf("pulled digest %s, want %s", gd, wd)
	}
	if n := u.Count("GET", KindManifest); n < 1 {
		t.Errorf("GET manifest count = %d, want ≥ 1", n)
	}
	if n := u.Count("GET", KindToken); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
	// config + 2 layers, each fetched once.
	if n := u.Count("GET", KindBlob); n != 3 {
		t.Errorf("GET blob count = %d, want 3", n)
	}
	layers, _ := want.Layers()
	ld, _ := layers[0].Digest()
	if n := u.CountBlob("GET", ld.String()); n != 1 {
		t.Errorf("GET of layer %s counted %d times, want 1", ld, n)
	}
	reqs := u.TokenRequests()
	if len(reqs) != 1 || reqs[0].Username != "" || reqs[0].Method != "GET" ||
		!strings.Contains(strings.Join(reqs[0].Scope, " "), "repository:library/alpine:pull") {
		t.Errorf("token requests = %+v", reqs)
	}

	u.ResetCounts()
	if _, err := remote.Head(ref(t, u, "library/alpine:latest")); err != nil {
		t.Fatalf("head: %v", err)
	}
	if g, h := u.Count("GET", KindManifest), u.Count("HEAD", KindManifest); g != 0 || h != 1 {
		t.Errorf("after reset and HEAD: GET %d HEAD %d manifest requests, want 0 and 1", g, h)
	}
	if n := len(u.TokenRequests()); n != 1 {
		t.Errorf("token requests after reset = %d, want 1 (the HEAD's own)", n)
	}
}

func TestIndexPull(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	want := u.PushIndex(t, "library/multi", "v1")
	idx, err := remote.Index(ref(t, u, "library/multi:v1"))
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	wd, _ := want.Digest()
	if gd, _ := idx.Digest(); gd != wd {
		t.Errorf("index digest %s, want %s", gd, wd)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var archs []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("child %s has no platform", m.Digest)
		}
		archs = append(archs, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if strings.Join(archs, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("platforms = %v", archs)
	}
	img, err := remote.Image(ref(t, u, "library/multi:v1"), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatalf("pull arm64 child: %v", err)
	}
	if cf, err := img.ConfigFile(); err != nil || cf.Architecture != "arm64" {
		t.Errorf("arm64 child config: %v %v", cf, err)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	u := New(t, Options{Users: map[string]string{"alice": "s3cret"}, RequireAuth: true})
	u.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	cases := []struct {
		name string
		auth authn.Authenticator
		ok   bool
	}{
		{"right password", &authn.Basic{Username: "alice", Password: "s3cret"}, true},
		{"wrong password", &authn.Basic{Username: "alice", Password: "nope"}, false},
		{"unknown user", &authn.Basic{Username: "bob", Password: "s3cret"}, false},
		{"anonymous", authn.Anonymous, false},
	}
	for _, c := range cases {
		_, err := pullAll(t, u, "library/alpine:latest", remote.WithAuth(c.auth))
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok %v", c.name, err, c.ok)
		}
	}
	seen := map[string]bool{}
	for _, r := range u.TokenRequests() {
		seen[r.Username] = true
	}
	if len(seen) != 3 || !seen["alice"] || !seen["bob"] || !seen[""] {
		t.Errorf("token request users = %v, want alice, bob and anonymous", seen)
	}
}

func get(t *testing.T, rawURL, bearer string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func token(t *testing.T, u *Upstream, scope string) string {
	t.Helper()
	res := get(t, u.URL+"/token?service="+Service+"&scope="+url.QueryEscape(scope), "")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("token status %d", res.StatusCode)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Token == "" || body.AccessToken != body.Token || body.ExpiresIn <= 0 || body.IssuedAt == "" {
		t.Fatalf("token body %+v", body)
	}
	return body.Token
}

func TestChallengeAndTokenScope(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Now()) // a part reading the real clock sees time stand still
	u := New(t, Options{TokenTTL: 2 * time.Second, Now: clock.Now})
	u.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	manifest := u.URL + "/v2/library/alpine/manifests/latest"

	res := get(t, manifest, "")
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without token: status %d", res.StatusCode)
	}
	want := `Bearer realm="` + u.URL + `/token",service="registry.test",scope="repository:library/alpine:pull"`
	if g := res.Header.Get("WWW-Authenticate"); g != want {
		t.Errorf("challenge %q, want %q", g, want)
	}

	tok := token(t, u, "repository:library/alpine:pull")
	if res := get(t, manifest, tok); res.StatusCode != http.StatusOK {
		t.Errorf("with token: status %d", res.StatusCode)
	}
	other := token(t, u, "repository:library/other:pull")
	if res := get(t, manifest, other); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("token of another repo: status %d, want 401", res.StatusCode)
	}
	if res := get(t, manifest, "made-up"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown token: status %d, want 401", res.StatusCode)
	}
	if res := get(t, u.URL+"/v2/", tok); res.StatusCode != http.StatusOK || u.Count("GET", KindPing) != 1 {
		t.Errorf("ping: status %d, count %d", res.StatusCode, u.Count("GET", KindPing))
	}

	u.RevokeTokens()
	if res := get(t, manifest, tok); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked token: status %d, want 401", res.StatusCode)
	}
	tok = token(t, u, "repository:library/alpine:pull")
	clock.Add(time.Second)
	if res := get(t, manifest, tok); res.StatusCode != http.StatusOK {
		t.Errorf("token 1 s before its expiry: status %d, want 200", res.StatusCode)
	}
	clock.Add(1100 * time.Millisecond)
	if res := get(t, manifest, tok); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired token: status %d, want 401", res.StatusCode)
	}
}

func TestRegistryFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		set        func(u *Upstream)
		status     int
		code       string
		retryAfter string
	}{
		{"429", func(u *Upstream) { u.Set429(true, 2500*time.Millisecond) }, 429, "TOOMANYREQUESTS", "3"},
		{"500", func(u *Upstream) { u.SetStatus(500) }, 500, "UNAVAILABLE", ""},
		{"503", func(u *Upstream) { u.SetStatus(503) }, 503, "UNAVAILABLE", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u := New(t, Options{})
			u.PushRandomImage(t, "library/alpine", "latest", 1, 512)
			u.SetRateLimit(100, 7)
			c.set(u)
			tok := token(t, u, "repository:library/alpine:pull")
			res := get(t, u.URL+"/v2/library/alpine/manifests/latest", tok)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d", res.StatusCode, c.status)
			}
			var body struct{ Errors []struct{ Code string } }
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != c.code {
				t.Errorf("body %+v (%v), want code %s", body, err, c.code)
			}
			if g := res.Header.Get("Retry-After"); g != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", g, c.retryAfter)
			}
			if g, r := res.Header.Get("RateLimit-Limit"), res.Header.Get("RateLimit-Remaining"); g != "100;w=21600" || r != "7;w=21600" ||
				res.Header.Get("Docker-RateLimit-Source") != "127.0.0.1" {
				t.Errorf("rate-limit headers %q %q", g, r)
			}

			// Back to normal.
			u.Set429(false, 0)
			u.SetStatus(0)
			u.SetRateLimit(0, 0)
			res = get(t, u.URL+"/v2/library/alpine/manifests/latest", tok)
			if res.StatusCode != http.StatusOK || res.Header.Get("RateLimit-Limit") != "" {
				t.Errorf("after reset: status %d, RateLimit-Limit %q", res.StatusCode, res.Header.Get("RateLimit-Limit"))
			}
		})
	}
}

func TestTokenStatus(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	u.SetTokenStatus(503)
	res := get(t, u.URL+"/token?service="+Service+"&scope=repository:a:pull", "")
	if res.StatusCode != 503 {
		t.Errorf("token status %d, want 503", res.StatusCode)
	}
	if n := u.Count("GET", KindToken); n != 1 {
		t.Errorf("token count %d, want 1", n)
	}
	u.SetTokenStatus(0)
	token(t, u, "repository:a:pull")
}

func TestDownAndHang(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	u.PushRandomImage(t, "library/alpine", "latest", 1, 512)

	u.SetDown(true)
	if _, err := http.Get(u.URL + "/v2/"); err == nil {
		t.Error("request to a down upstream succeeded")
	}
	if n := u.Count("GET", KindPing); n != 0 {
		t.Errorf("a down upstream counted %d pings", n)
	}
	u.SetDown(false)
	if res := get(t, u.URL+"/v2/", ""); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("after down: status %d", res.StatusCode)
	}

	u.SetHang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.URL+"/v2/", nil)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung request: err = %v, want deadline exceeded", err)
	}
	released := make(chan int, 1)
	go func() {
		res, err := http.Get(u.URL + "/v2/")
		if err != nil {
			released <- 0
			return
		}
		res.Body.Close()
		released <- res.StatusCode
	}()
	u.SetHang(false)
	if s := <-released; s != http.StatusUnauthorized {
		t.Errorf("request released from the hang: status %d", s)
	}

	// Latency: a client that gives up long before it cannot get an answer.
	u.SetLatency(5 * time.Second)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	req, _ = http.NewRequestWithContext(ctx2, http.MethodGet, u.URL+"/v2/", nil)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed request: err = %v, want deadline exceeded", err)
	}
	u.SetLatency(0)
}

func layerDigest(t *testing.T, img v1.Image) (v1.Hash, int64) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[0].Digest()
	n, _ := layers[0].Size()
	return d, n
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestCorruptBlob(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	img := u.PushRandomImage(t, "library/alpine", "latest", 1, 4096)
	d, size := layerDigest(t, img)
	tok := token(t, u, "repository:library/alpine:pull")
	blob := u.URL + "/v2/library/alpine/blobs/" + d.String()

	u.CorruptBlob(d.String(), true)
	b, _ := io.ReadAll(get(t, blob, tok).Body)
	if int64(len(b)) != size || sha(b) == d.String() {
		t.Errorf("corrupted blob: %d bytes with digest %s; want %d bytes of wrong content", len(b), sha(b), size)
	}
	u.CorruptBlob(d.String(), false)
	b, _ = io.ReadAll(get(t, blob, tok).Body)
	if sha(b) != d.String() {
		t.Errorf("blob after corruption off has digest %s, want %s", sha(b), d)
	}
	if n := u.CountBlob("GET", d.String()); n != 2 {
		t.Errorf("CountBlob = %d, want 2", n)
	}
}

func TestBandwidth(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	img := u.PushRandomImage(t, "library/alpine", "latest", 1, 256<<10)
	d, _ := layerDigest(t, img)
	tok := token(t, u, "repository:library/alpine:pull")
	blob := u.URL + "/v2/library/alpine/blobs/" + d.String()

	// At 32 KiB/s a 256 KiB blob takes about 8 s: it cannot arrive within 1 s.
	u.SetBandwidth(32 << 10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, blob, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		n, rerr := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if rerr == nil {
			t.Errorf("throttled blob of %d bytes arrived within 1s", n)
		}
	}

	u.SetBandwidth(0)
	b, _ := io.ReadAll(get(t, blob, tok).Body)
	if sha(b) != d.String() {
		t.Errorf("unthrottled blob has digest %s, want %s", sha(b), d)
	}
}

func TestRedirectBlobs(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	img := u.PushRandomImage(t, "library/alpine", "latest", 1, 4096)
	d, _ := layerDigest(t, img)
	tok := token(t, u, "repository:library/alpine:pull")
	u.RedirectBlobs(true)

	// A client that does not follow redirects sees the 307 to another host:port.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, u.URL+"/v2/library/alpine/blobs/"+d.String(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusTemporaryRedirect || loc == nil || loc.Host == u.Host() {
		t.Fatalf("redirect: status %d location %q", res.StatusCode, res.Header.Get("Location"))
	}

	// The CDN serves the bytes and records whether it saw credentials.
	b, _ := io.ReadAll(get(t, loc.String(), "").Body)
	if sha(b) != d.String() {
		t.Errorf("CDN blob digest %s, want %s", sha(b), d)
	}
	if u.CDNSawAuthorization() || u.CDNRequests() != 1 {
		t.Errorf("CDN saw Authorization %v, requests %d; want false, 1", u.CDNSawAuthorization(), u.CDNRequests())
	}
	get(t, loc.String(), "leaked")
	if !u.CDNSawAuthorization() {
		t.Error("CDN did not record an Authorization header")
	}

	// go-containerregistry follows the redirect end to end.
	u.ResetCounts()
	if _, err := pullAll(t, u, "library/alpine:latest"); err != nil {
		t.Errorf("pull through the CDN: %v", err)
	}
	if u.CDNRequests() != 2 || u.CDNSawAuthorization() {
		t.Errorf("pull: CDN requests %d (want config + layer = 2), saw Authorization %v", u.CDNRequests(), u.CDNSawAuthorization())
	}
}

// TestHubNotFound: with HubNotFound, and for a private repository, a valid
// token gets Docker Hub's answer (401 insufficient_scope), not a 404.
func TestHubNotFound(t *testing.T) {
	t.Parallel()
	u := New(t, Options{Users: map[string]string{"alice": "pw", "bob": "pw"}, HubNotFound: true})
	img := u.PushRandomImage(t, "library/alpine", "latest", 1, 256)
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	userToken := func(user, scope string) string {
		req, _ := http.NewRequest(http.MethodGet, u.URL+"/token?service="+Service+"&scope="+url.QueryEscape(scope), nil)
		req.SetBasicAuth(user, "pw")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct{ Token string }
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Token == "" {
			t.Fatalf("token for %s: %d %v", user, res.StatusCode, err)
		}
		return body.Token
	}
	hub := func(what string, res *http.Response, repo string) {
		t.Helper()
		want := `error="insufficient_scope"`
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Header.Get("WWW-Authenticate"), want) ||
			!strings.Contains(res.Header.Get("WWW-Authenticate"), `scope="repository:`+repo+`:pull"`) {
			t.Errorf("%s: %d %q, want 401 with %s", what, res.StatusCode, res.Header.Get("WWW-Authenticate"), want)
		}
	}

	missing := token(t, u, "repository:library/nope:pull")
	hub("unknown repository, manifest", get(t, u.URL+"/v2/library/nope/manifests/latest", missing), "library/nope")
	hub("unknown repository, blob", get(t, u.URL+"/v2/library/nope/blobs/"+layer.String(), missing), "library/nope")
	if res := get(t, u.URL+"/v2/library/nope/manifests/latest", ""); res.StatusCode != http.StatusUnauthorized ||
		strings.Contains(res.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("without a token: %d %q, want a plain challenge", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	known := "/v2/library/alpine/manifests/latest"
	if res := get(t, u.URL+known, token(t, u, "repository:library/alpine:pull")); res.StatusCode != http.StatusOK {
		t.Errorf("a known repository: %d", res.StatusCode)
	}

	u.SetPrivate("library/alpine", "alice")
	hub("private, anonymous", get(t, u.URL+known, token(t, u, "repository:library/alpine:pull")), "library/alpine")
	hub("private, another user", get(t, u.URL+known, userToken("bob", "repository:library/alpine:pull")), "library/alpine")
	if res := get(t, u.URL+known, userToken("alice", "repository:library/alpine:pull")); res.StatusCode != http.StatusOK {
		t.Errorf("private, its reader: %d", res.StatusCode)
	}
	u.SetPublic("library/alpine")
	if res := get(t, u.URL+known, token(t, u, "repository:library/alpine:pull")); res.StatusCode != http.StatusOK {
		t.Errorf("public again, anonymous: %d", res.StatusCode)
	}

	plain := New(t, Options{})
	if res := get(t, plain.URL+"/v2/library/nope/manifests/latest", token(t, plain, "repository:library/nope:pull")); res.StatusCode != http.StatusNotFound {
		t.Errorf("without HubNotFound an unknown repository is %d, want 404", res.StatusCode)
	}
}
