package bench

import (
	"path/filepath"

	"github.com/dproxy/dproxy/internal/oci"
	"strings"
	"testing"
)

// S9's seeding puts the numbers of rows it promises where it promises
// them: refs blob references and refs/5 manifests, a tenth of the
// references and half the manifests in the big group, every group used.
func TestScaleSeed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const refs = 2000
	s := &scaleRun{o: ScaleOptions{Groups: 10}, backend: SQLite, refs: refs, dataDir: filepath.Join(t.TempDir(), "data")}
	s.o.defaults()
	if err := s.open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close(ctx) })
	if err := s.prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.seed(ctx); err != nil {
		t.Fatal(err)
	}
	big, err := s.st.GroupUsage(ctx, s.bigID)
	if err != nil {
		t.Fatal(err)
	}
	if big.Blobs != refs/10 || big.Manifests != refs/10 || big.Images != refs/10 {
		t.Errorf("big group: %+v, want %d blob references and %d manifests and images", big, refs/10, refs/10)
	}
	usages, err := s.st.GroupUsages(ctx, s.groups)
	if err != nil {
		t.Fatal(err)
	}
	blobs, manifests := big.Blobs, big.Manifests
	for id, u := range usages {
		if u.Blobs == 0 || u.Manifests == 0 {
			t.Errorf("group %d is empty: %+v", id, u)
		}
		blobs, manifests = blobs+u.Blobs, manifests+u.Manifests
	}
	if blobs != refs || manifests != refs/5 {
		t.Errorf("seeded %d blob references and %d manifests, want %d and %d", blobs, manifests, refs, refs/5)
	}
	// Every seeded reference is a distinct blob the GC walk names.
	var walked, referenced int
	files := &seededFiles{n: refs, scale: refs}
	if err := files.Walk(ctx, func(d oci.Digest, _ int64) error {
		walked++
		ok, err := s.st.BlobReferenced(ctx, d)
		if ok {
			referenced++
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if walked != 2*refs || referenced != refs {
		t.Errorf("GC walk: %d files, %d referenced; want %d and %d", walked, referenced, 2*refs, refs)
	}
}

func TestScaleMarkdown(t *testing.T) {
	t.Parallel()
	r := &ScaleResults{Scales: []int{0, 10_000, 1_000_000}, Backends: []string{SQLite}, values: map[[2]string]map[int]float64{}}
	r.add(SQLite, "purge (s)", 0, 0.5)
	r.add(SQLite, "purge (s)", 1_000_000, 12)
	md := r.Markdown("dproxy-bench -s9 -")
	for _, want := range []string{"| measure | 0 | 10K | 1M |", "| purge (s) | 0.50 |  | 12 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
