package store

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/dproxy/dproxy/internal/oci"
)

// imageFixture is an image manifest with a config and two layers, and the
// descriptors it names.
func imageFixture(salt string) (content string, config, layer1, layer2 oci.Descriptor) {
	config = oci.Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digestOf("config" + salt), Size: 1500}
	layer1 = oci.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digestOf("layer1" + salt), Size: 3 << 20}
	layer2 = oci.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digestOf("layer2" + salt), Size: 700_000}
	desc := func(d oci.Descriptor) string {
		return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, d.MediaType, d.Digest, d.Size)
	}
	content = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + desc(config) +
		`,"layers":[` + desc(layer1) + `,` + desc(layer2) + `]}`
	return content, config, layer1, layer2
}

// An image's size is its config plus layers, stored with the manifest; an
// index's is its cached platforms'. Cached counts the bytes of those blobs
// the group holds, each blob once.
func contractImageSizes(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "sizes")
	other := mustGroup(t, s, "other")
	content, config, layer1, layer2 := imageFixture("amd64")
	imageBytes := config.Size + layer1.Size + layer2.Size

	byTag, err := s.PutManifest(ctx, testManifest(g.ID, "library/alpine", "3", content))
	if err != nil {
		t.Fatal(err)
	}
	if byTag.ImageSize != imageBytes || byTag.Size != int64(len(content)) {
		t.Errorf("PutManifest: ImageSize %d, Size %d; want %d (config+layers) and %d (the manifest)",
			byTag.ImageSize, byTag.Size, imageBytes, len(content))
	}
	byDigest, err := s.PutManifest(ctx, testManifest(g.ID, "library/alpine", string(digestOf(content)), content))
	if err != nil {
		t.Fatal(err)
	}
	// The group holds the config and the first layer; another group holds
	// the second layer, which is not this group's.
	for _, b := range []Blob{{OwnerID: g.ID, Digest: config.Digest, Size: config.Size},
		{OwnerID: g.ID, Digest: layer1.Digest, Size: layer1.Size},
		{OwnerID: other.ID, Digest: layer2.Digest, Size: layer2.Size}} {
		if err := s.PutBlob(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// An index with the cached platform, an uncached one and an
	// attestation.
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[
		{"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}},
		{"digest":%q,"size":600,"platform":{"os":"linux","architecture":"arm64"}},
		{"digest":%q,"size":800,"platform":{"os":"unknown","architecture":"unknown"},
		 "annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}`,
		oci.MediaTypeOCIIndex, digestOf(content), len(content), digestOf("arm64"), digestOf("attestation"))
	im := testManifest(g.ID, "library/alpine", "latest", index)
	im.MediaType = oci.MediaTypeOCIIndex
	idx, err := s.PutManifest(ctx, im)
	if err != nil {
		t.Fatal(err)
	}
	if idx.ImageSize != 0 {
		t.Errorf("index ImageSize = %d, want 0 (added up when listed)", idx.ImageSize)
	}
	junk, err := s.PutManifest(ctx, testManifest(g.ID, "junk", "1", "not json"))
	if err != nil {
		t.Fatal(err)
	}

	page, err := s.ManifestsOfGroup(ctx, g.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 4 || page[len(page)-1].ImageSize != imageBytes {
		t.Fatalf("ManifestsOfGroup = %d rows, last ImageSize %d; want 4, %d", len(page), page[len(page)-1].ImageSize, imageBytes)
	}
	sizes, err := s.ImageSizesOfGroup(ctx, g.ID, page)
	if err != nil {
		t.Fatal(err)
	}
	cached := config.Size + layer1.Size
	want := map[int64]ImageSizes{
		byTag.ID:    {Image: imageBytes, Cached: cached},
		byDigest.ID: {Image: imageBytes, Cached: cached},
		idx.ID:      {Image: imageBytes, Cached: cached, Platforms: 2, PlatformsCached: 1},
	}
	for id, w := range want {
		if got := sizes[id]; got != w {
			t.Errorf("ImageSizesOfGroup[%d] = %+v, want %+v", id, got, w)
		}
	}
	if got, ok := sizes[junk.ID]; ok {
		t.Errorf("ImageSizesOfGroup[unparsable] = %+v, want no entry", got)
	}
	// Another group caching nothing holds none of it.
	if sizes, err := s.ImageSizesOfGroup(ctx, other.ID, page); err != nil || sizes[idx.ID].Cached != layer2.Size*0 {
		t.Errorf("ImageSizesOfGroup(other group) = %+v, %v; the index's platform is not cached there", sizes[idx.ID], err)
	}
	if sizes, err := s.ImageSizesOfGroup(ctx, other.ID, page); err != nil || sizes[byTag.ID].Cached != layer2.Size {
		t.Errorf("ImageSizesOfGroup(other group)[image] = %+v, %v; want Cached %d (its one layer)", sizes[byTag.ID], err, layer2.Size)
	}
}

// The migration after the image_size column fills it for the manifests of
// both cache tables that were stored before it.
func contractImageSizeBackfill(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "backfill")
	content, _, _, _ := imageFixture("bf")
	var ids []int64
	for i := range 3 {
		m, err := s.PutManifest(ctx, testManifest(g.ID, "library/busybox", fmt.Sprint(i), content))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	want := s.mustImageSize(t, ids[0])
	if want == 0 {
		t.Fatal("PutManifest stored no image size")
	}
	// As a database before the column: every size 0.
	if _, err := s.w.ExecContext(ctx, `UPDATE manifests SET image_size = 0`); err != nil {
		t.Fatal(err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := backfillImageSizes(ctx, tx); err != nil {
		tx.Rollback()
		t.Fatalf("backfill: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if got := s.mustImageSize(t, id); got != want {
			t.Errorf("manifest %d: image_size %d after the backfill, want %d", id, got, want)
		}
	}
}

func (s *Store) mustImageSize(t *testing.T, id int64) int64 {
	t.Helper()
	m, err := s.ManifestByID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m.ImageSize
}

// A database whose manifests were stored before image_size (the backfill
// not yet applied, every size 0) gets their sizes when it is next opened.
func TestSQLiteImageSizeBackfillOnOpen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path, box := filepath.Join(t.TempDir(), "dproxy.db"), testBox(t, 1)
	// The schema as it was just before the backfill, with one manifest.
	db, err := sql.Open("sqlite", "file:"+path+"?"+sqlitePragmas)
	if err != nil {
		t.Fatal(err)
	}
	p, err := migrationProvider(goose.DialectSQLite3, db, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, imageSizeBackfill.Version-1); err != nil {
		t.Fatal(err)
	}
	content, config, layer1, layer2 := imageFixture("old")
	m := testManifest(0, "library/alpine", "3", content)
	now := dbTime(time.Now())
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO groups (id, path, created_at) VALUES (1, 'old', $1)`, []any{now}},
		{`INSERT INTO manifests (id, group_id, image, reference, digest, media_type, size, content, etag, created_at, updated_at, read_at)
			VALUES (1, 1, $1, $2, $3, $4, $5, $6, $7, $8, $8, $8)`,
			[]any{m.Image, m.Reference, string(m.Digest), m.MediaType, len(m.Content), m.Content, m.ETag, now}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openSQLiteAt(t, path, box)
	if got, want := s.mustImageSize(t, 1), config.Size+layer1.Size+layer2.Size; got != want {
		t.Errorf("image_size after reopening = %d, want %d (backfilled)", got, want)
	}
}
