package admin

import (
	"context"
	"errors"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// Manifests returns up to limit of the cached manifests of a group the
// actor may read, newest first, after the manifest afterID when it is not
// 0, each with its image's sizes.
func (s *Service) Manifests(ctx context.Context, a Actor, groupID, afterID int64, limit int) ([]Manifest, error) {
	if _, err := s.readableGroup(ctx, a, groupID); err != nil {
		return nil, err
	}
	rows, err := s.store.ManifestsOfGroup(ctx, groupID, afterID, limit)
	if err != nil {
		return nil, err
	}
	return s.sized(ctx, groupID, rows)
}

// sized pairs rows of a group's manifests with their image sizes.
func (s *Service) sized(ctx context.Context, groupID int64, rows []store.Manifest) ([]Manifest, error) {
	sizes, err := s.store.ImageSizesOfGroup(ctx, groupID, rows)
	if err != nil {
		return nil, err
	}
	out := make([]Manifest, len(rows))
	for i, m := range rows {
		out[i] = Manifest{Manifest: m, Sizes: sizes[m.ID]}
	}
	return out, nil
}

// Blobs returns up to limit of the blob references of a group the actor
// may read, newest first, after the cursor when it is not nil.
func (s *Service) Blobs(ctx context.Context, a Actor, groupID int64, after *BlobCursor, limit int) ([]Blob, error) {
	if _, err := s.readableGroup(ctx, a, groupID); err != nil {
		return nil, err
	}
	return s.store.BlobsOfGroupNewest(ctx, groupID, after, limit)
}

// Usage counts the cache of a group the actor may read. Within a request
// scope the usage of every group of the group's cohort is read at once
// (batch.go).
func (s *Service) Usage(ctx context.Context, a Actor, groupID int64) (Usage, error) {
	g, err := s.readableGroup(ctx, a, groupID)
	if err != nil {
		return Usage{}, err
	}
	c := cohortOf(ctx, a, g)
	return batched(ctx, c, &c.usage, g.ID, s.store.GroupUsages)
}

// Purge removes a group's cached manifests and blob references (owner),
// so the next pull goes upstream. Blob files stay for the garbage
// collector, which it wakes.
func (s *Service) Purge(ctx context.Context, a Actor, groupPath string) (Purged, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "purging the dependency proxy cache")
	if err != nil {
		return Purged{}, err
	}
	var p store.Purged
	err = s.dropCached(ctx, cacheScope{groups: []int64{g.ID}}, func(ctx context.Context) (err error) {
		p, err = s.store.PurgeGroupCacheCounted(ctx, g.ID)
		return err
	})
	if err != nil {
		return Purged{}, err
	}
	s.log.InfoContext(ctx, "dependency proxy cache purged", "group", g.Path, "by", a.Name(),
		"manifests", p.Manifests, "blobs", len(p.Blobs), "bytes", p.Bytes)
	return Purged{Manifests: p.Manifests, Blobs: len(p.Blobs), Bytes: p.Bytes}, nil
}

// DeleteImage deletes one cached manifest of a group by image and tag or
// digest (owner), so the next pull of it goes upstream; the blobs it names
// stay cached. It returns the manifest it deleted. An image the group has
// not cached is refused with ErrNotFound.
func (s *Service) DeleteImage(ctx context.Context, a Actor, groupPath, imageName, reference string) (Manifest, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "deleting cached images")
	if err != nil {
		return Manifest{}, err
	}
	if err := oci.ValidateName(imageName); err != nil {
		return Manifest{}, invalid("image name %q: use a lower-case image name such as alpine or bitnami/redis", clip(imageName))
	}
	ref, err := oci.ParseReference(reference)
	if err != nil {
		return Manifest{}, invalid("reference %q is neither a tag nor a sha256 digest", clip(reference))
	}
	image := oci.NormalizeImage(imageName)
	row, err := s.store.Manifest(ctx, g.ID, image, ref.String())
	if errors.Is(err, store.ErrNotFound) {
		return Manifest{}, refuse(ErrNotFound, "%s:%s is not cached in group %s", imageName, reference, g.Path)
	}
	if err != nil {
		return Manifest{}, err
	}
	sized, err := s.sized(ctx, g.ID, []store.Manifest{row})
	if err != nil {
		return Manifest{}, err
	}
	if err := s.store.DeleteManifest(ctx, row.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return Manifest{}, err
	}
	s.log.InfoContext(ctx, "cached manifest deleted", "group", g.Path, "image", image, "reference", ref.String(), "by", a.Name())
	return sized[0], nil
}
