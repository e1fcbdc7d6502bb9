package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"
)

// manifestAccept is the Accept list of a docker or containerd client.
const manifestAccept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

// client pulls from one repository of one registry the way a container
// runtime does: Bearer token flow on the first 401, manifest by tag, blobs
// by digest; it verifies the digest of everything it reads. It is used by
// one goroutine at a time.
type client struct {
	hc         *http.Client
	base       string // http://host:port
	repo       string // repository path on that registry
	user, pass string // Basic credentials for the token endpoint; "" = anonymous
	token      string
	requests   int // HTTP requests sent, token requests included
	buf        []byte
}

func newClient(hc *http.Client, base, repo, user, pass string) *client {
	return &client{hc: hc, base: base, repo: repo, user: user, pass: pass, buf: make([]byte, 256<<10)}
}

// send sends a request, logging in and retrying once on a 401 challenge.
func (c *client) send(ctx context.Context, method, path, accept string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
		if err != nil {
			return nil, err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		c.requests++
		res, err := c.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		if res.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return res, nil
		}
		challenge := res.Header.Get("WWW-Authenticate")
		drain(res)
		if err := c.login(ctx, challenge); err != nil {
			return nil, err
		}
	}
}

// login answers a Bearer challenge at its realm.
func (c *client) login(ctx context.Context, challenge string) error {
	params, ok := strings.CutPrefix(challenge, "Bearer ")
	if !ok {
		return fmt.Errorf("log in to %s: not a Bearer challenge: %q", c.base, challenge)
	}
	p := map[string]string{}
	for _, kv := range splitParams(params) {
		k, v, _ := strings.Cut(kv, "=")
		p[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	q := url.Values{"service": {p["service"]}}
	if p["scope"] != "" {
		q.Set("scope", p["scope"])
	} else {
		q.Set("scope", "repository:"+c.repo+":pull")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p["realm"]+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("log in to %s: realm %q: %w", c.base, p["realm"], err)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	c.requests++
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("log in to %s: %w", c.base, err)
	}
	defer drain(res)
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK {
		return fmt.Errorf("log in to %s: token endpoint answered %d: %v", c.base, res.StatusCode, err)
	}
	c.token = body.Token
	if c.token == "" {
		c.token = body.AccessToken
	}
	return nil
}

// splitParams splits challenge parameters at commas outside quotes.
func splitParams(s string) []string {
	var out []string
	quoted, start := false, 0
	for i, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// manifest is what a pull needs of an image manifest.
type manifest struct {
	Config struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
}

// getManifest GETs a manifest by tag or digest and verifies its digest
// against Docker-Content-Digest (and against ref when ref is a digest).
func (c *client) getManifest(ctx context.Context, ref string) (manifest, string, error) {
	res, err := c.send(ctx, http.MethodGet, "/v2/"+c.repo+"/manifests/"+ref, manifestAccept)
	if err != nil {
		return manifest{}, "", err
	}
	defer drain(res)
	body, err := io.ReadAll(io.LimitReader(res.Body, 10<<20))
	if err != nil {
		return manifest{}, "", fmt.Errorf("read manifest %s:%s: %w", c.repo, ref, err)
	}
	if res.StatusCode != http.StatusOK {
		return manifest{}, "", fmt.Errorf("get manifest %s:%s from %s: status %d: %.200s", c.repo, ref, c.base, res.StatusCode, body)
	}
	sum := sha256.Sum256(body)
	got := "sha256:" + hex.EncodeToString(sum[:])
	if want := res.Header.Get("Docker-Content-Digest"); want != "" && want != got {
		return manifest{}, "", fmt.Errorf("manifest %s:%s: body digest %s does not match Docker-Content-Digest %s", c.repo, ref, got, want)
	}
	if strings.HasPrefix(ref, "sha256:") && ref != got {
		return manifest{}, "", fmt.Errorf("manifest %s@%s: body digest is %s", c.repo, ref, got)
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return manifest{}, "", fmt.Errorf("decode manifest %s:%s: %w", c.repo, ref, err)
	}
	return m, got, nil
}

// getBlob GETs a blob and returns its length and the time to its first
// body byte. With verify, the body's digest must be d.
func (c *client) getBlob(ctx context.Context, d string, verify bool) (int64, time.Duration, error) {
	return c.getFile(ctx, "/v2/"+c.repo+"/blobs/"+d, d, verify)
}

// getFile is getBlob for any path serving the blob d.
func (c *client) getFile(ctx context.Context, path, d string, verify bool) (int64, time.Duration, error) {
	start := time.Now()
	res, err := c.send(ctx, http.MethodGet, path, "")
	if err != nil {
		return 0, 0, err
	}
	defer drain(res)
	if res.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("get %s from %s: status %d", path, c.base, res.StatusCode)
	}
	return readBody(res.Body, d, verify, c.buf, start)
}

// readBody reads a blob body to the end; ttfb is measured from start.
func readBody(body io.Reader, d string, verify bool, buf []byte, start time.Time) (int64, time.Duration, error) {
	var h hash.Hash
	var ttfb time.Duration
	var n int64
	if verify {
		h = sha256.New()
	}
	for {
		k, err := body.Read(buf)
		if k > 0 {
			if n == 0 {
				ttfb = time.Since(start)
			}
			n += int64(k)
			if h != nil {
				h.Write(buf[:k])
				// Hashing keeps a core busy; yield after each buffer so the
				// goroutines waiting for a response (their latency is being
				// measured) and the in-process upstream run when it arrives,
				// not after a 10 ms preemption slice.
				runtime.Gosched()
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, ttfb, fmt.Errorf("read blob %s after %d bytes: %w", d, n, err)
		}
	}
	if h != nil {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d {
			return n, ttfb, fmt.Errorf("blob %s: body digest is %s", d, got)
		}
	}
	return n, ttfb, nil
}

// pull pulls an image by tag, verifying every digest, and returns the
// manifest request's latency.
func (c *client) pull(ctx context.Context, tag string) (time.Duration, error) {
	start := time.Now()
	m, _, err := c.getManifest(ctx, tag)
	if err != nil {
		return 0, err
	}
	lat := time.Since(start)
	digests := []string{m.Config.Digest}
	for _, l := range m.Layers {
		digests = append(digests, l.Digest)
	}
	for _, d := range digests {
		if _, _, err := c.getBlob(ctx, d, true); err != nil {
			return lat, err
		}
	}
	return lat, nil
}

// drain reads what is left of a body so the connection is reused.
func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
}
