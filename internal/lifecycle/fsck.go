package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// Kinds of fsck findings.
const (
	FindingMissingFile = "missing-file" // rows reference a blob whose file is gone
	FindingCorruptFile = "corrupt-file" // the file's size or content does not match
	FindingOrphanFile  = "orphan-file"  // a blob file no group references
	FindingTempFile    = "temp-file"    // a temp file left by an interrupted download
)

// Finding is one problem fsck found.
type Finding struct {
	Kind     string
	Digest   oci.Digest // "" for temp files
	Name     string     // the temp file's name
	Detail   string
	Repaired bool
}

// FsckReport is what Fsck checked and found.
type FsckReport struct {
	Referenced int // digests referenced by some group
	Files      int // blob files
	Temps      int // temp files
	Findings   []Finding
}

// Unrepaired counts the findings left as they were.
func (r FsckReport) Unrepaired() int {
	n := 0
	for _, f := range r.Findings {
		if !f.Repaired {
			n++
		}
	}
	return n
}

// fsckStore is what fsck needs of the store.
type fsckStore interface {
	ReferencedBlobs(ctx context.Context, after oci.Digest, limit int) ([]store.StoredBlob, error)
	BlobReferenced(ctx context.Context, d oci.Digest) (bool, error)
	DropBlob(ctx context.Context, d oci.Digest) (int64, error)
}

// FsckFiles is what fsck needs of blob storage: the blob folder
// (blobstore.FS) or a bucket (blobstore.S3).
type FsckFiles interface {
	Walk(ctx context.Context, fn func(d oci.Digest, size int64) error) error
	Stat(ctx context.Context, d oci.Digest) (int64, error)
	Verify(ctx context.Context, d oci.Digest) error
	Delete(ctx context.Context, d oci.Digest) error
	ModTime(ctx context.Context, d oci.Digest) (time.Time, error)
	Temps() ([]blobstore.TempFile, error)
	RemoveTemp(name string) error
}

// FsckOptions say what Fsck checks and whether it repairs.
type FsckOptions struct {
	// Repair drops the references of missing and corrupt blobs (the next
	// pull fetches them again) and deletes corrupt, orphan and temp files.
	Repair bool
	// VerifyContent re-hashes every referenced blob file (reads all of them).
	VerifyContent bool
	// Grace spares orphan and temp files modified more recently: with a
	// server running on the same data dir they may belong to a download
	// that is being committed. Default 1h; negative means no grace.
	Grace time.Duration
	Now   func() time.Time
	// Progress, when not nil and with VerifyContent, is called once with
	// the bytes of the referenced blobs to re-hash, then after each blob.
	Progress func(Progress)
}

// Fsck checks that the store and the blob folder agree: every referenced
// blob has a file of the recorded size (and, with VerifyContent, the right
// content), every file is referenced, and no temp file was left behind. It
// may run alongside a server using the same data dir; at worst a repair
// makes a pull fetch a blob again.
func Fsck(ctx context.Context, st fsckStore, files FsckFiles, opts FsckOptions) (FsckReport, error) {
	if opts.Grace == 0 {
		opts.Grace = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var rep FsckReport
	add := func(f Finding, repair func() error) error {
		if opts.Repair && repair != nil {
			if err := repair(); err != nil {
				return fmt.Errorf("repair %s %s%s: %w", f.Kind, f.Digest, f.Name, err)
			}
			f.Repaired = true
		}
		rep.Findings = append(rep.Findings, f)
		return nil
	}
	dropAndDelete := func(d oci.Digest) func() error {
		return func() error {
			if _, err := st.DropBlob(ctx, d); err != nil {
				return err
			}
			return files.Delete(ctx, d)
		}
	}

	var verified, toVerify int64
	if opts.VerifyContent && opts.Progress != nil {
		for after := oci.Digest(""); ; {
			page, err := st.ReferencedBlobs(ctx, after, 500)
			if err != nil {
				return rep, err
			}
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].Digest
			for _, b := range page {
				toVerify += b.Size
			}
		}
		opts.Progress(Progress{Total: toVerify})
	}
	// checked reports a referenced blob as done, whatever was found.
	checked := func(b store.StoredBlob) {
		if opts.VerifyContent && opts.Progress != nil {
			verified += b.Size
			opts.Progress(Progress{Done: verified, Total: max(toVerify, verified), Entry: string(b.Digest)})
		}
	}
	var after oci.Digest
	for {
		page, err := st.ReferencedBlobs(ctx, after, 500)
		if err != nil {
			return rep, err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Digest
		for _, b := range page {
			rep.Referenced++
			size, err := files.Stat(ctx, b.Digest)
			switch {
			case errors.Is(err, oci.ErrBlobUnknown):
				// Dropped and collected since the listing?
				if ok, err := st.BlobReferenced(ctx, b.Digest); err != nil {
					return rep, err
				} else if !ok {
					checked(b)
					continue
				}
				if err := add(Finding{Kind: FindingMissingFile, Digest: b.Digest, Detail: "referenced but the file is missing"},
					func() error { _, err := st.DropBlob(ctx, b.Digest); return err }); err != nil {
					return rep, err
				}
				checked(b)
				continue
			case err != nil:
				return rep, err
			case size != b.Size:
				if err := add(Finding{Kind: FindingCorruptFile, Digest: b.Digest,
					Detail: fmt.Sprintf("the file has %d bytes, the cache recorded %d", size, b.Size)}, dropAndDelete(b.Digest)); err != nil {
					return rep, err
				}
				checked(b)
				continue
			}
			if !opts.VerifyContent {
				continue
			}
			err = files.Verify(ctx, b.Digest)
			checked(b)
			if errors.Is(err, oci.ErrDigestInvalid) {
				if err := add(Finding{Kind: FindingCorruptFile, Digest: b.Digest, Detail: err.Error()}, dropAndDelete(b.Digest)); err != nil {
					return rep, err
				}
			} else if err != nil && !errors.Is(err, oci.ErrBlobUnknown) {
				return rep, err
			}
		}
	}

	recent := func(t time.Time) bool { return opts.Grace > 0 && opts.Now().Sub(t) < opts.Grace }
	err := files.Walk(ctx, func(d oci.Digest, size int64) error {
		rep.Files++
		ok, err := st.BlobReferenced(ctx, d)
		if err != nil || ok {
			return err
		}
		if opts.Grace > 0 {
			if mt, err := files.ModTime(ctx, d); err == nil && recent(mt) {
				return nil
			}
		}
		return add(Finding{Kind: FindingOrphanFile, Digest: d, Detail: fmt.Sprintf("%d bytes that no group references", size)},
			func() error {
				// Referenced again since? Then it is not an orphan any more.
				if ok, err := st.BlobReferenced(ctx, d); err != nil || ok {
					return err
				}
				return files.Delete(ctx, d)
			})
	})
	if err != nil {
		return rep, err
	}

	temps, err := files.Temps()
	if err != nil {
		return rep, err
	}
	for _, tf := range temps {
		rep.Temps++
		if recent(tf.ModTime) {
			continue // probably a download in progress
		}
		if err := add(Finding{Kind: FindingTempFile, Name: tf.Name,
			Detail: fmt.Sprintf("%d bytes, last written %s", tf.Size, tf.ModTime.UTC().Format(time.RFC3339))},
			func() error { return files.RemoveTemp(tf.Name) }); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
