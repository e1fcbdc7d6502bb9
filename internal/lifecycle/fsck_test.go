package lifecycle_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
)

// damaged is a data dir with one of each thing fsck looks for, and the
// same things in good order.
type damaged struct {
	f       *fixture
	group   int64
	at      time.Time // when fsck runs: files older than Grace before it are not new
	ok      oci.Digest
	missing oci.Digest // referenced, no file
	size    oci.Digest // the file is shorter than the cache recorded
	content oci.Digest // the file's bytes do not hash to its digest
	orphan  oci.Digest // an old file no group references
	newFile oci.Digest // a file no group references, written within Grace
	oldTemp string     // a temp file of an interrupted download
	newTemp string     // a temp file written within Grace
}

func newDamaged(t *testing.T) *damaged {
	t.Helper()
	f := newFixture(t, fixtureOptions{})
	g := f.group(t, "a")
	x := &damaged{f: f, group: g}
	x.ok = f.blob(t, content("ok", 100), now, g)
	x.missing = oci.FromBytes(content("missing", 100))
	f.reference(t, g, x.missing, 100, now)
	x.size = f.blob(t, content("size", 100), now)
	f.reference(t, g, x.size, 120, now)
	x.content = oci.FromBytes(content("content", 100))
	f.writeFile(t, x.content, content("not the content", 100))
	f.reference(t, g, x.content, 100, now)
	x.orphan = f.blob(t, content("orphan", 100), now)
	x.newFile = f.blob(t, content("new file", 100), now)
	x.oldTemp = f.temp(t, "interrupted")
	x.newTemp = f.temp(t, "in progress")

	x.at = time.Now()
	old := x.at.Add(-2 * time.Hour)
	for _, p := range []string{f.blobs.Path(x.orphan), filepath.Join(f.root, "tmp", x.oldTemp)} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// temp leaves a temp file holding data and returns its name.
func (f *fixture) temp(t *testing.T, data string) string {
	t.Helper()
	tmp, err := f.blobs.CreateTemp()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	if _, err := tmp.WriteString(data); err != nil {
		t.Fatal(err)
	}
	return filepath.Base(tmp.Name())
}

// hasTemp reports whether temp file name is left.
func (f *fixture) hasTemp(t *testing.T, name string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(f.root, "tmp", name))
	return err == nil
}

// finding is what a test expects of a lifecycle.Finding.
type finding struct {
	kind string
	key  string // the digest, or the temp file's name
}

func (x *damaged) fsck(t *testing.T, opts lifecycle.FsckOptions) lifecycle.FsckReport {
	t.Helper()
	opts.Now = func() time.Time { return x.at }
	rep, err := lifecycle.Fsck(t.Context(), x.f.st, x.f.blobs, opts)
	if err != nil {
		t.Fatalf("Fsck(%+v): %v", opts, err)
	}
	return rep
}

// checkFindings fails t unless rep holds exactly want, each repaired or not.
func checkFindings(t *testing.T, rep lifecycle.FsckReport, repaired bool, want ...finding) {
	t.Helper()
	var got []finding
	for _, f := range rep.Findings {
		key := string(f.Digest) + f.Name
		got = append(got, finding{f.Kind, key})
		if f.Repaired != repaired {
			t.Errorf("finding %s %s: repaired %v, want %v", f.Kind, key, f.Repaired, repaired)
		}
		if f.Detail == "" {
			t.Errorf("finding %s %s has no detail", f.Kind, key)
		}
	}
	cmp := func(a, b finding) int { return strings.Compare(a.kind+a.key, b.kind+b.key) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) {
		t.Errorf("findings\n got %v\nwant %v", got, want)
	}
	wantUnrepaired := len(want)
	if repaired {
		wantUnrepaired = 0
	}
	if n := rep.Unrepaired(); n != wantUnrepaired {
		t.Errorf("Unrepaired() = %d, want %d", n, wantUnrepaired)
	}
}

// checkState fails t unless the references, files and temp files are as
// a check leaves them (repaired false: all there), or as a repair does.
func (x *damaged) checkState(t *testing.T, repaired bool) {
	t.Helper()
	f := x.f
	kept := func(what string, got, always bool) {
		t.Helper()
		if want := always || !repaired; got != want {
			t.Errorf("%s: kept %v, want %v", what, got, want)
		}
	}
	kept("the good blob's reference", f.hasRef(t, x.group, x.ok), true)
	kept("the good blob's file", f.hasFile(t, x.ok), true)
	kept("the reference of the blob whose file is missing", f.hasRef(t, x.group, x.missing), false)
	kept("the reference of the blob of the wrong size", f.hasRef(t, x.group, x.size), false)
	kept("the file of the blob of the wrong size", f.hasFile(t, x.size), false)
	kept("the reference of the blob of the wrong content", f.hasRef(t, x.group, x.content), false)
	kept("the file of the blob of the wrong content", f.hasFile(t, x.content), false)
	kept("the old orphan file", f.hasFile(t, x.orphan), false)
	kept("the new orphan file", f.hasFile(t, x.newFile), true)
	kept("the old temp file", f.hasTemp(t, x.oldTemp), false)
	kept("the new temp file", f.hasTemp(t, x.newTemp), true)
}

// Fsck finds what does not agree between the store and the blob folder:
// referenced blobs whose file is missing or of the wrong size (or, when
// asked, content), files no group references and temp files left behind,
// sparing files written within the grace period. It repairs only when
// asked, and a repaired data dir checks clean.
func TestFsck(t *testing.T) {
	t.Parallel()
	t.Run("check", func(t *testing.T) {
		t.Parallel()
		x := newDamaged(t)
		rep := x.fsck(t, lifecycle.FsckOptions{VerifyContent: true})
		checkFindings(t, rep, false,
			finding{lifecycle.FindingMissingFile, string(x.missing)},
			finding{lifecycle.FindingCorruptFile, string(x.size)},
			finding{lifecycle.FindingCorruptFile, string(x.content)},
			finding{lifecycle.FindingOrphanFile, string(x.orphan)},
			finding{lifecycle.FindingTempFile, x.oldTemp})
		if rep.Referenced != 4 || rep.Files != 5 || rep.Temps != 2 {
			t.Errorf("checked %d referenced blobs, %d files, %d temp files; want 4, 5 and 2", rep.Referenced, rep.Files, rep.Temps)
		}
		x.checkState(t, false)
	})
	t.Run("without content verification or grace", func(t *testing.T) {
		t.Parallel()
		x := newDamaged(t)
		rep := x.fsck(t, lifecycle.FsckOptions{Grace: -1})
		checkFindings(t, rep, false,
			finding{lifecycle.FindingMissingFile, string(x.missing)},
			finding{lifecycle.FindingCorruptFile, string(x.size)},
			finding{lifecycle.FindingOrphanFile, string(x.orphan)},
			finding{lifecycle.FindingOrphanFile, string(x.newFile)},
			finding{lifecycle.FindingTempFile, x.oldTemp},
			finding{lifecycle.FindingTempFile, x.newTemp})
	})
	t.Run("repair", func(t *testing.T) {
		t.Parallel()
		x := newDamaged(t)
		rep := x.fsck(t, lifecycle.FsckOptions{VerifyContent: true, Repair: true})
		checkFindings(t, rep, true,
			finding{lifecycle.FindingMissingFile, string(x.missing)},
			finding{lifecycle.FindingCorruptFile, string(x.size)},
			finding{lifecycle.FindingCorruptFile, string(x.content)},
			finding{lifecycle.FindingOrphanFile, string(x.orphan)},
			finding{lifecycle.FindingTempFile, x.oldTemp})
		x.checkState(t, true)

		rep = x.fsck(t, lifecycle.FsckOptions{VerifyContent: true, Repair: true})
		checkFindings(t, rep, true)
		if rep.Referenced != 1 || rep.Files != 2 || rep.Temps != 1 {
			t.Errorf("after the repair: %d referenced blobs, %d files, %d temp files; want 1, 2 and 1", rep.Referenced, rep.Files, rep.Temps)
		}
	})
}
