package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
)

// contractStore is every method a blob store implementation has.
type contractStore interface {
	CreateTemp() (*os.File, error)
	Commit(ctx context.Context, d oci.Digest, tmp *os.File) error
	Abort(tmp *os.File)
	Open(ctx context.Context, d oci.Digest) (Blob, error)
	Stat(ctx context.Context, d oci.Digest) (int64, error)
	Delete(ctx context.Context, d oci.Digest) error
	CleanTemp() (int, error)
	Walk(ctx context.Context, fn func(d oci.Digest, size int64) error) error
	Verify(ctx context.Context, d oci.Digest) error
}

var (
	_ contractStore = (*FS)(nil)
	_ contractStore = (*S3)(nil)
)

// testStoreContract checks the behaviour every blob store promises (see the
// package comment), using only the store's API. Each subtest gets a new
// store from newStore.
func testStoreContract(t *testing.T, newStore func(t *testing.T) contractStore) {
	t.Run("commit open read seek", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		content := randomBytes(t, 100_000)
		d := put(t, s, content)

		size, err := s.Stat(ctx, d)
		if err != nil || size != int64(len(content)) {
			t.Fatalf("Stat = %d, %v; want %d, nil", size, err, len(content))
		}
		b, err := s.Open(ctx, d)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer b.Close()
		if b.Size() != int64(len(content)) {
			t.Errorf("Size = %d, want %d", b.Size(), len(content))
		}
		got, err := io.ReadAll(b)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("read %d bytes, err %v; want the %d committed bytes", len(got), err, len(content))
		}
		for _, tc := range []struct {
			offset int64
			whence int
			want   []byte
		}{
			{10, io.SeekStart, content[10:20]},
			{-10, io.SeekEnd, content[len(content)-10:]},
			{50_000, io.SeekStart, content[50_000:50_010]},
		} {
			if _, err := b.Seek(tc.offset, tc.whence); err != nil {
				t.Fatalf("Seek(%d, %d): %v", tc.offset, tc.whence, err)
			}
			buf := make([]byte, len(tc.want))
			if _, err := io.ReadFull(b, buf); err != nil || !bytes.Equal(buf, tc.want) {
				t.Errorf("after Seek(%d, %d) read %x, %v; want %x", tc.offset, tc.whence, buf, err, tc.want)
			}
		}
		if err := s.Verify(ctx, d); err != nil {
			t.Errorf("Verify of an intact blob: %v", err)
		}
	})

	t.Run("missing blob is unknown", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		d := oci.FromBytes([]byte("never stored"))
		if _, err := s.Open(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Open = %v, want ErrBlobUnknown", err)
		}
		if _, err := s.Stat(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Stat = %v, want ErrBlobUnknown", err)
		}
		if err := s.Verify(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Verify = %v, want ErrBlobUnknown", err)
		}
	})

	t.Run("invalid digest is rejected", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		for _, d := range []oci.Digest{"", "sha256:../../etc/passwd", "sha256:ab", "md5:d41d8cd98f00b204e9800998ecf8427e"} {
			if _, err := s.Open(ctx, d); !errors.Is(err, oci.ErrDigestInvalid) {
				t.Errorf("Open(%q) = %v, want ErrDigestInvalid", d, err)
			}
			if _, err := s.Stat(ctx, d); !errors.Is(err, oci.ErrDigestInvalid) {
				t.Errorf("Stat(%q) = %v, want ErrDigestInvalid", d, err)
			}
			if err := s.Delete(ctx, d); !errors.Is(err, oci.ErrDigestInvalid) {
				t.Errorf("Delete(%q) = %v, want ErrDigestInvalid", d, err)
			}
			tmp := writeTemp(t, s, []byte("x"))
			if err := s.Commit(ctx, d, tmp); !errors.Is(err, oci.ErrDigestInvalid) {
				t.Errorf("Commit(%q) = %v, want ErrDigestInvalid", d, err)
			}
			assertGone(t, tmp.Name())
		}
	})

	t.Run("commit twice is idempotent", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		content := randomBytes(t, 1000)
		d := put(t, s, content)
		tmp := writeTemp(t, s, content)
		if err := s.Commit(ctx, d, tmp); err != nil {
			t.Fatalf("second Commit: %v", err)
		}
		assertGone(t, tmp.Name())
		assertContent(t, s, d, content)
		if got := walkAll(t, s); len(got) != 1 {
			t.Errorf("Walk lists %d blobs, want 1: %v", len(got), got)
		}
	})

	t.Run("concurrent commits of one digest", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		content := randomBytes(t, 10_000)
		d := oci.FromBytes(content)
		const n = 8
		tmps := make([]*os.File, n)
		for i := range tmps {
			tmps[i] = writeTemp(t, s, content)
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, tmp := range tmps {
			wg.Go(func() { errs[i] = s.Commit(ctx, d, tmp) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Commit %d: %v", i, err)
			}
		}
		assertContent(t, s, d, content)
		if removed, err := s.CleanTemp(); err != nil || removed != 0 {
			t.Errorf("CleanTemp after the commits = %d, %v; want 0 leftovers", removed, err)
		}
	})

	t.Run("not visible before commit", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		content := randomBytes(t, 2000)
		d := oci.FromBytes(content)
		tmp := writeTemp(t, s, content[:1000])
		if _, err := s.Stat(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Stat of a half-written blob = %v, want ErrBlobUnknown", err)
		}
		if _, err := s.Open(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Open of a half-written blob = %v, want ErrBlobUnknown", err)
		}
		if got := walkAll(t, s); len(got) != 0 {
			t.Errorf("Walk lists %v before Commit, want nothing", got)
		}
		if _, err := tmp.Write(content[1000:]); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, d, tmp); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		assertContent(t, s, d, content)
	})

	t.Run("temp readers survive commit", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		content := randomBytes(t, 64_000)
		d := oci.FromBytes(content)
		tmp := writeTemp(t, s, content[:20_000])
		r, err := os.Open(tmp.Name())
		if err != nil {
			t.Fatalf("open temp file by name: %v", err)
		}
		defer r.Close()
		first := make([]byte, 20_000)
		if _, err := io.ReadFull(r, first); err != nil || !bytes.Equal(first, content[:20_000]) {
			t.Fatalf("read the written part of the temp file: %v", err)
		}
		if _, err := tmp.Write(content[20_000:]); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(context.Background(), d, tmp); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		rest, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(rest, content[20_000:]) {
			t.Errorf("reader of the temp file got %d more bytes after Commit, err %v; want %d", len(rest), err, len(content)-20_000)
		}
	})

	t.Run("abort", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		content := randomBytes(t, 500)
		d := oci.FromBytes(content)
		tmp := writeTemp(t, s, content)
		s.Abort(tmp)
		assertGone(t, tmp.Name())
		if _, err := s.Stat(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Stat after Abort = %v, want ErrBlobUnknown", err)
		}
		s.Abort(tmp) // twice: no panic
		s.Abort(nil)

		tmp = writeTemp(t, s, content)
		if err := s.Commit(ctx, d, tmp); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		s.Abort(tmp) // after Commit: must leave the blob alone
		assertContent(t, s, d, content)
	})

	t.Run("failed commit removes temp file", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		content := randomBytes(t, 500)
		d := oci.FromBytes(content)
		tmp := writeTemp(t, s, content)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Commit(ctx, d, tmp); !errors.Is(err, context.Canceled) {
			t.Fatalf("Commit with a cancelled context = %v, want context.Canceled", err)
		}
		assertGone(t, tmp.Name())
		if _, err := s.Stat(context.Background(), d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Stat after a failed Commit = %v, want ErrBlobUnknown", err)
		}
	})

	t.Run("clean temp", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		content := randomBytes(t, 300)
		d := put(t, s, content)
		open := writeTemp(t, s, []byte("interrupted"))
		closed := writeTemp(t, s, []byte("also interrupted"))
		closed.Close()
		removed, err := s.CleanTemp()
		if err != nil || removed != 2 {
			t.Fatalf("CleanTemp = %d, %v; want 2, nil", removed, err)
		}
		assertGone(t, open.Name())
		assertGone(t, closed.Name())
		assertContent(t, s, d, content)
		if removed, err := s.CleanTemp(); err != nil || removed != 0 {
			t.Errorf("second CleanTemp = %d, %v; want 0, nil", removed, err)
		}
		// The store still works after a clean.
		put(t, s, []byte("after clean"))
	})

	t.Run("walk", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		want := map[oci.Digest]int64{}
		for i := range 5 {
			b := randomBytes(t, 100+i)
			want[put(t, s, b)] = int64(len(b))
		}
		got := walkAll(t, s)
		if len(got) != len(want) {
			t.Fatalf("Walk listed %d blobs, want %d", len(got), len(want))
		}
		for i, e := range got {
			if want[e.d] != e.size {
				t.Errorf("Walk listed %s size %d, want size %d", e.d, e.size, want[e.d])
			}
			if i > 0 && got[i-1].d >= e.d {
				t.Errorf("Walk order: %s before %s", got[i-1].d, e.d)
			}
		}

		stop := errors.New("stop")
		calls := 0
		err := s.Walk(ctx, func(oci.Digest, int64) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Errorf("Walk with a failing fn = %v after %d calls, want the fn's error after 1", err, calls)
		}

		// fn may delete what it is given.
		err = s.Walk(ctx, func(d oci.Digest, _ int64) error { return s.Delete(ctx, d) })
		if err != nil {
			t.Fatalf("Walk deleting every blob: %v", err)
		}
		if got := walkAll(t, s); len(got) != 0 {
			t.Errorf("Walk after deleting every blob lists %v", got)
		}

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		put(t, s, []byte("one more"))
		if err := s.Walk(cctx, func(oci.Digest, int64) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("Walk with a cancelled context = %v, want context.Canceled", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := context.Background()
		content := randomBytes(t, 4000)
		d := put(t, s, content)
		keep := put(t, s, []byte("keep me"))
		r, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := s.Delete(ctx, d); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Stat(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Stat after Delete = %v, want ErrBlobUnknown", err)
		}
		if err := s.Delete(ctx, d); err != nil {
			t.Errorf("Delete of a missing blob = %v, want nil", err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, content) {
			t.Errorf("reader opened before Delete read %d bytes, %v; want %d", len(got), err, len(content))
		}
		assertContent(t, s, keep, []byte("keep me"))
		// A deleted blob can be stored again.
		assertContent(t, s, put(t, s, content), content)
	})

	t.Run("verify honours cancellation", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		d := put(t, s, randomBytes(t, 1000))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Verify(ctx, d); !errors.Is(err, context.Canceled) {
			t.Errorf("Verify with a cancelled context = %v, want context.Canceled", err)
		}
	})
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTemp returns an open temp file of s holding content.
func writeTemp(t *testing.T, s contractStore, content []byte) *os.File {
	t.Helper()
	tmp, err := s.CreateTemp()
	if err != nil {
		t.Fatalf("CreateTemp: %v", err)
	}
	t.Cleanup(func() { tmp.Close() })
	if _, err := tmp.Write(content); err != nil {
		t.Fatalf("write temp file: %v", err)
	}
	return tmp
}

// put stores content and returns its digest.
func put(t *testing.T, s contractStore, content []byte) oci.Digest {
	t.Helper()
	d := oci.FromBytes(content)
	if err := s.Commit(context.Background(), d, writeTemp(t, s, content)); err != nil {
		t.Fatalf("Commit %s: %v", d, err)
	}
	return d
}

func assertContent(t *testing.T, s contractStore, d oci.Digest, want []byte) {
	t.Helper()
	b, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, want) || b.Size() != int64(len(want)) {
		t.Fatalf("blob %s: read %d bytes (Size %d), err %v; want the %d stored bytes", d, len(got), b.Size(), err, len(want))
	}
}

func assertGone(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temp file %s still exists (stat: %v)", name, err)
	}
}

type walked struct {
	d    oci.Digest
	size int64
}

func (w walked) String() string { return fmt.Sprintf("%s(%d)", w.d.Short(), w.size) }

func walkAll(t *testing.T, s contractStore) []walked {
	t.Helper()
	var got []walked
	err := s.Walk(context.Background(), func(d oci.Digest, size int64) error {
		got = append(got, walked{d, size})
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}
