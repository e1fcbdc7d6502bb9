package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// cacheTables holds the queries of one kind of cache owner: groups (the
// dependency proxy: manifests, blobs) or virtual registry upstreams
// (virtual_manifests, virtual_blobs). Both kinds of table have the same
// columns but the owner's, so one set of functions serves both. The
// queries are built once; owner is what errors call an owner.
type cacheTables struct {
	owner                                                 string
	manifest, putManifest, confirmManifest, touchManifest string
	blob, putBlob, touchBlob, deleteBlob                  string
	// putBlobUnpurged is putBlob that inserts nothing when the owner's
	// purge_generation ($6) has changed; generation reads it and
	// bumpGeneration counts a purge.
	putBlobUnpurged, generation, bumpGeneration string
}

var (
	groupCache    = newCacheTables("group", "groups", "manifests", "blobs", "group_id")
	upstreamCache = newCacheTables("virtual registry upstream", "virtual_registry_upstreams", "virtual_manifests", "virtual_blobs", "upstream_id")
)

func newCacheTables(owner, owners, manifests, blobs, ownerCol string) cacheTables {
	r := strings.NewReplacer("{o}", owners, "{m}", manifests, "{b}", blobs, "{owner}", ownerCol)
	cols := `id, {owner}, image, reference, digest, media_type, size, image_size, content, etag, status, created_at, updated_at, read_at`
	return cacheTables{
		owner:    owner,
		manifest: r.Replace(`SELECT ` + cols + ` FROM {m} WHERE {owner} = $1 AND image = $2 AND reference = $3`),
		putManifest: r.Replace(`INSERT INTO {m} ({owner}, image, reference, digest, media_type, size, image_size, content, etag,
			status, created_at, updated_at, read_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT ({owner}, image, reference) DO UPDATE SET digest = excluded.digest,
			media_type = excluded.media_type, size = excluded.size, image_size = excluded.image_size,
			content = excluded.content,
			etag = excluded.etag, status = excluded.status, updated_at = excluded.updated_at,
			read_at = excluded.read_at
		RETURNING id, created_at`),
		confirmManifest: r.Replace(`UPDATE {m} SET updated_at = $1 WHERE id = $2`),
		touchManifest:   r.Replace(`UPDATE {m} SET read_at = $1 WHERE id = $2`),
		blob:            r.Replace(`SELECT {owner}, digest, size, created_at, read_at FROM {b} WHERE {owner} = $1 AND digest = $2`),
		putBlob: r.Replace(`INSERT INTO {b} ({owner}, digest, size, created_at, read_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT ({owner}, digest) DO UPDATE SET size = excluded.size, read_at = excluded.read_at`),
		putBlobUnpurged: r.Replace(`INSERT INTO {b} ({owner}, digest, size, created_at, read_at)
		SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM {o} WHERE id = $1 AND purge_generation = $6)
		ON CONFLICT ({owner}, digest) DO UPDATE SET size = excluded.size, read_at = excluded.read_at`),
		generation:     r.Replace(`SELECT purge_generation FROM {o} WHERE id = $1`),
		bumpGeneration: r.Replace(`UPDATE {o} SET purge_generation = purge_generation + 1 WHERE id = $1`),
		touchBlob:      r.Replace(`UPDATE {b} SET read_at = $1 WHERE {owner} = $2 AND digest = $3`),
		deleteBlob:     r.Replace(`DELETE FROM {b} WHERE {owner} = $1 AND digest = $2`),
	}
}

// bumpPurgeGeneration counts a purge of owner's cache in tx, so that no
// download that started before it adds a blob reference back
// (putBlobUnpurged).
func bumpPurgeGeneration(ctx context.Context, tx *sql.Tx, t *cacheTables, owner int64) error {
	if _, err := tx.ExecContext(ctx, t.bumpGeneration, owner); err != nil {
		return fmt.Errorf("count the purge of %s %d: %w", t.owner, owner, err)
	}
	return nil
}
