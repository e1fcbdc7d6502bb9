package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// source serves one blob; fail, when set, ends its body with an error
// after that many bytes; unsized hides its size (as an upstream that sent
// no Content-Length).
type source struct {
	d       oci.Digest
	data    []byte
	fail    int
	unsized bool
}

func (s source) PeerBlob(_ context.Context, d oci.Digest, offset int64) (io.ReadCloser, int64, error) {
	if d != s.d {
		return nil, 0, fmt.Errorf("blob %s: %w", d, oci.ErrBlobUnknown)
	}
	var r io.Reader = bytes.NewReader(s.data[offset:])
	if s.fail > 0 {
		r = io.MultiReader(bytes.NewReader(s.data[offset:s.fail]), errReader{})
	}
	if s.unsized {
		return io.NopCloser(r), -1, nil
	}
	return io.NopCloser(r), int64(len(s.data)), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("the download failed") }

// noLeases is a Cluster's store when only peer requests are tested.
type noLeases struct{}

func (noLeases) AcquireFetchLease(context.Context, oci.Digest, string, string, time.Time, time.Time) (store.FetchLease, bool, error) {
	return store.FetchLease{}, false, errors.New("not in this test")
}
func (noLeases) RenewFetchLease(context.Context, oci.Digest, string, time.Time) (bool, error) {
	return false, errors.New("not in this test")
}
func (noLeases) ReleaseFetchLease(context.Context, oci.Digest, string) error {
	return errors.New("not in this test")
}

func newPeer(t *testing.T, src Source, key []byte) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, Handler(src, key, slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPeerRequests(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	d := oci.Digest("sha256:" + strings.Repeat("ab", 32))
	key := bytes.Repeat([]byte{1}, 32)
	url := newPeer(t, source{d: d, data: data}, key)
	self, err := New(noLeases{}, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	for _, offset := range []int64{0, 12345} {
		body, size, err := self.FetchPeer(ctx, url, d, offset)
		if err != nil {
			t.Fatalf("FetchPeer from %d: %v", offset, err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil || size != int64(len(data)) || !bytes.Equal(got, data[offset:]) {
			t.Errorf("FetchPeer from %d: size %d, %d bytes, %v; want %d and the bytes from %d", offset, size, len(got), err, len(data), offset)
		}
	}
	other := oci.Digest("sha256:" + strings.Repeat("cd", 32))
	if _, _, err := self.FetchPeer(ctx, url, other, 0); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a blob the peer does not have: %v, want 404", err)
	}
	stranger, _ := New(noLeases{}, bytes.Repeat([]byte{2}, 32), Options{})
	if _, _, err := stranger.FetchPeer(ctx, url, d, 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a request signed with another key: %v, want 401", err)
	}

	// Raw requests: a signature is for one digest only, and the path must
	// end in a digest.
	for name, c := range map[string]struct {
		path, auth, rng string
		want            int
	}{
		"no signature":            {Path + string(d), "", "", http.StatusUnauthorized},
		"another digest's":        {Path + string(d), authScheme + sign(key, other), "", http.StatusUnauthorized},
		"not a digest":            {Path + "..%2f..%2fetc%2fpasswd", authScheme + sign(key, d), "", http.StatusBadRequest},
		"short digest":            {Path + "sha256:abcd", authScheme + sign(key, d), "", http.StatusBadRequest},
		"a range other than N-":   {Path + string(d), authScheme + sign(key, d), "bytes=0-10", http.StatusRequestedRangeNotSatisfiable},
		"signed, from 10":         {Path + string(d), authScheme + sign(key, d), "bytes=10-", http.StatusPartialContent},
		"signed, the whole":       {Path + string(d), authScheme + sign(key, d), "", http.StatusOK},
		"scheme without a secret": {Path + string(d), authScheme, "", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		if c.rng != "" {
			req.Header.Set("Range", c.rng)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", name, res.StatusCode, c.want)
		}
	}
}

// A download that fails on the peer aborts the response: the replica
// reading it sees an error, not a body that ends early but cleanly, also
// when the size is unknown (no Content-Length to fall short of).
func TestPeerResponseAbortsWhenTheDownloadFails(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("x"), 100_000)
	d := oci.Digest("sha256:" + strings.Repeat("ab", 32))
	key := bytes.Repeat([]byte{1}, 32)
	for _, unsized := range []bool{false, true} {
		url := newPeer(t, source{d: d, data: data, fail: 50_000, unsized: unsized}, key)
		self, _ := New(noLeases{}, key, Options{})
		body, size, err := self.FetchPeer(t.Context(), url, d, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err == nil {
			t.Errorf("size %d: read %d bytes and a clean end from a peer whose download failed", size, len(got))
		}
	}
}
