package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/store"
)

// A pull interrupted during a cold download resumes with a Range request
// (as docker and containerd do): it is answered 206 from the download in
// progress, with the bytes from its offset as soon as they arrived, not
// from zero and not after the whole blob; the upstream sends the blob once.
func TestRangeOnColdMissResumesFromTheDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	img := e.up.PushRandomImage(t, "library/resume", "v1", 1, 4<<20)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[0].Digest()
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	content, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(content))
	repo := "acme/dependency_proxy/containers/resume"
	jwt := e.jwt("alice", tok, repo)
	path := "/v2/" + repo + "/blobs/" + d.String()

	// The upstream sends 2 MiB, then waits until released.
	const held, cut = 2 << 20, 1 << 20
	hold := e.up.HoldBlob(d.String(), held)
	defer hold.Release()
	get := func(hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// read reads n bytes of body, failing t if they do not come while the
	// upstream holds the rest (the bound only ends a failing run).
	read := func(body io.Reader, n int64, what string) []byte {
		t.Helper()
		type result struct {
			b   []byte
			err error
		}
		ch := make(chan result, 1)
		go func() {
			b := make([]byte, n)
			_, err := io.ReadFull(body, b)
			ch <- result{b, err}
		}()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("%s: %v", what, r.err)
			}
			return r.b
		case <-time.After(time.Minute):
			hold.Release()
			t.Fatalf("%s: no bytes while the upstream held the blob after %d bytes", what, held)
		}
		return nil
	}

	// The interrupted pull: 1 MiB, then the connection breaks.
	res := get()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("cold pull: %s", res.Status)
	}
	if got := read(res.Body, cut, "cold pull"); !bytes.Equal(got, content[:cut]) {
		t.Fatal("cold pull: wrong first bytes")
	}
	res.Body.Close()

	// The resume, while the download is held after 2 MiB.
	res = get("Range", fmt.Sprintf("bytes=%d-", cut))
	defer res.Body.Close()
	if want := fmt.Sprintf("bytes %d-%d/%d", cut, size-1, size); res.StatusCode != http.StatusPartialContent || res.Header.Get("Content-Range") != want {
		t.Fatalf("resumed pull: %s, Content-Range %q; want 206, %q", res.Status, res.Header.Get("Content-Range"), want)
	}
	// All it has but the last byte, which the download keeps until the
	// whole blob is verified.
	if got := read(res.Body, held-cut-1, "resumed pull"); !bytes.Equal(got, content[cut:held-1]) {
		t.Fatal("resumed pull: wrong bytes from the offset")
	}
	hold.Release()
	rest, err := io.ReadAll(res.Body)
	if err != nil || !bytes.Equal(rest, content[held-1:]) {
		t.Fatalf("resumed pull after the release: %d bytes, %v; want the %d left", len(rest), err, size-held+1)
	}
	if n := e.up.CountBlob(http.MethodGet, d.String()); n != 1 {
		t.Errorf("upstream GETs of the blob: %d, want 1", n)
	}
}
