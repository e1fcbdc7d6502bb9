package testregistry

import (
	"io"
	"slices"
	"testing"
)

func TestHideBlobLength(t *testing.T) {
	t.Parallel()
	// A body this small would otherwise be sized by the server itself.
	for _, layerSize := range []int64{100, 256 << 10} {
		u := New(t, Options{})
		img := u.PushRandomImage(t, "library/alpine", "latest", 1, layerSize)
		d, size := layerDigest(t, img)
		tok := token(t, u, "repository:library/alpine:pull")
		blob := u.URL + "/v2/library/alpine/blobs/" + d.String()

		u.HideBlobLength(d.String(), true)
		res := get(t, blob, tok)
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("read blob of %d bytes sent without length: %v", size, err)
		}
		if res.ContentLength != -1 || res.Header.Get("Content-Length") != "" || !slices.Contains(res.TransferEncoding, "chunked") {
			t.Errorf("blob of %d bytes with its length hidden: ContentLength %d, header %q, transfer encoding %v; want -1, none, chunked",
				size, res.ContentLength, res.Header.Get("Content-Length"), res.TransferEncoding)
		}
		if sha(b) != d.String() {
			t.Errorf("blob of %d bytes sent without length has digest %s, want %s", size, sha(b), d)
		}

		u.HideBlobLength(d.String(), false)
		if res := get(t, blob, tok); res.ContentLength != size {
			t.Errorf("blob after HideBlobLength off: ContentLength %d, want %d", res.ContentLength, size)
		}
	}
}
