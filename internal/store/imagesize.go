package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"

	"github.com/dproxy/dproxy/internal/oci"
)

// imageSize is Manifest.ImageSize of content: the config plus layers of an
// image manifest; 0 for an index or content that does not parse (the
// store keeps what it is given; the cache checked it).
func imageSize(mediaType string, content []byte) int64 {
	c, err := oci.ParseContents(mediaType, content)
	if err != nil {
		return 0
	}
	return c.BlobSize()
}

// ImageSizes is how big a cached manifest's image is and how much of it
// its owner holds.
type ImageSizes struct {
	// Image is what a pull downloads besides the manifest: config plus
	// layers; for an index, the sum over its platforms whose manifests are
	// cached too (a platform never pulled has no known size).
	Image int64
	// Cached is the bytes of Image's blobs the owner holds references to.
	Cached int64
	// Platforms is an index's number of platforms (attestations left out)
	// and PlatformsCached how many of them are cached; both 0 for an image.
	Platforms, PlatformsCached int
}

// ImageSizesOfGroup returns ImageSizes of each of ms (a page of one group's
// manifests), by manifest ID, with two queries whatever the page's length:
// one for the platform manifests its indexes name, one for the blobs.
func (s *Store) ImageSizesOfGroup(ctx context.Context, groupID int64, ms []Manifest) (map[int64]ImageSizes, error) {
	fail := func(err error) (map[int64]ImageSizes, error) {
		return nil, fmt.Errorf("image sizes of group %d: %w", groupID, err)
	}
	contents := make(map[int64]oci.Contents, len(ms))
	var children []string
	for _, m := range ms {
		c, err := oci.ParseContents(m.MediaType, m.Content)
		if err != nil {
			continue // not a manifest the store can read: size unknown
		}
		contents[m.ID] = c
		for _, d := range c.Manifests {
			children = append(children, string(d.Digest))
		}
	}

	// The platform manifests of the page's indexes that the group caches,
	// under any reference.
	type child struct {
		size  int64
		blobs []oci.Descriptor
	}
	cachedChildren := map[oci.Digest]child{}
	err := inBatchesAfter([]any{groupID}, children, func(in string, args []any) error {
		rows, err := s.read(ctx, `SELECT digest, media_type, image_size, content FROM manifests
			WHERE group_id = $1 AND digest IN (`+in+`)`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var digest, mediaType string
			var size int64
			var content []byte
			if err := rows.Scan(&digest, &mediaType, &size, &content); err != nil {
				return err
			}
			if _, seen := cachedChildren[oci.Digest(digest)]; seen {
				continue
			}
			c, err := oci.ParseContents(mediaType, content)
			if err != nil || c.Index {
				continue
			}
			cachedChildren[oci.Digest(digest)] = child{size: size, blobs: c.Blobs}
		}
		return rows.Err()
	})
	if err != nil {
		return fail(err)
	}

	// Every blob the page's images refer to, and which of them the group
	// holds.
	blobsOf := make(map[int64][]oci.Descriptor, len(ms))
	out := make(map[int64]ImageSizes, len(ms))
	var blobs []string
	for _, m := range ms {
		c, ok := contents[m.ID]
		if !ok {
			continue
		}
		sz := ImageSizes{Image: m.ImageSize}
		bs := c.Blobs
		if c.Index {
			sz = ImageSizes{Platforms: len(c.Manifests)}
			seen := map[oci.Digest]bool{}
			for _, d := range c.Manifests {
				ch, ok := cachedChildren[d.Digest]
				if !ok || seen[d.Digest] {
					continue
				}
				seen[d.Digest] = true
				sz.PlatformsCached++
				sz.Image += ch.size
				bs = append(bs, ch.blobs...)
			}
		}
		out[m.ID] = sz
		blobsOf[m.ID] = bs
		for _, b := range bs {
			blobs = append(blobs, string(b.Digest))
		}
	}
	held := map[oci.Digest]int64{}
	err = inBatchesAfter([]any{groupID}, blobs, func(in string, args []any) error {
		rows, err := s.read(ctx, `SELECT digest, size FROM blobs WHERE group_id = $1 AND digest IN (`+in+`)`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var digest string
			var size int64
			if err := rows.Scan(&digest, &size); err != nil {
				return err
			}
			held[oci.Digest(digest)] = size
		}
		return rows.Err()
	})
	if err != nil {
		return fail(err)
	}
	for id, bs := range blobsOf {
		sz := out[id]
		counted := map[oci.Digest]bool{}
		for _, b := range bs {
			if size, ok := held[b.Digest]; ok && !counted[b.Digest] {
				counted[b.Digest] = true
				sz.Cached += size
			}
		}
		out[id] = sz
	}
	return out, nil
}

// imageSizeBackfill is the migration after 00008_manifest_image_size: it
// fills image_size of the manifests cached before the column existed. Its
// version follows the SQL migrations'; a new SQL migration takes the next.
var imageSizeBackfill = goose.NewGoMigration(9, &goose.GoFunc{RunTx: backfillImageSizes}, nil)

// goMigrations are the migrations written in Go, applied between the SQL
// files by version.
var goMigrations = []*goose.Migration{imageSizeBackfill}

// backfillImageSizes sets image_size of every image manifest of the
// dependency proxy and the virtual registries from its content, a page of
// rows at a time.
func backfillImageSizes(ctx context.Context, tx *sql.Tx) error {
	for _, table := range []string{"manifests", "virtual_manifests"} {
		for after := int64(0); ; {
			type row struct {
				id   int64
				size int64
			}
			var page []row
			n := 0
			rows, err := tx.QueryContext(ctx, `SELECT id, media_type, content FROM `+table+
				` WHERE id > $1 ORDER BY id LIMIT 500`, after)
			if err != nil {
				return fmt.Errorf("backfill image sizes of %s: %w", table, err)
			}
			for rows.Next() {
				var id int64
				var mediaType string
				var content []byte
				if err := rows.Scan(&id, &mediaType, &content); err != nil {
					rows.Close()
					return fmt.Errorf("backfill image sizes of %s: %w", table, err)
				}
				n++
				after = id
				if size := imageSize(mediaType, content); size != 0 {
					page = append(page, row{id, size})
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("backfill image sizes of %s: %w", table, err)
			}
			for _, r := range page {
				if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET image_size = $1 WHERE id = $2`, r.size, r.id); err != nil {
					return fmt.Errorf("backfill image size of %s %d: %w", table, r.id, err)
				}
			}
			if n == 0 {
				break
			}
		}
	}
	return nil
}
