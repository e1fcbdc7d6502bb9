package graphql

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/server/graphql/model"
	"github.com/dproxy/dproxy/internal/units"
)

// groupResolver resolves the fields of a Group. The admin service checks
// that the principal may read the group; within a request it remembers
// the groups it already checked (admin.WithRequestScope), so the fields of
// a listed group cost no further checks.
type groupResolver struct{ h *Handler }

// groupID is the id inside a Group node's global id.
func groupID(obj *generated.Group) (int64, error) {
	id, ok := parseGID(gidGroup, obj.ID)
	if !ok {
		return 0, fmt.Errorf("malformed group id %q", obj.ID)
	}
	return id, nil
}

func (g groupResolver) MyRole(ctx context.Context, obj *generated.Group) (*generated.Role, error) {
	id, err := groupID(obj)
	if err != nil {
		return nil, err
	}
	role, err := g.h.svc.MyRole(ctx, principal(ctx), id)
	if err != nil {
		return nil, err
	}
	return gqlRole(role), nil
}

func (g groupResolver) DependencyProxySetting(ctx context.Context, obj *generated.Group) (*generated.DependencyProxySetting, error) {
	id, err := groupID(obj)
	if err != nil {
		return nil, err
	}
	s, err := g.h.svc.ProxySetting(ctx, principal(ctx), id)
	if err != nil {
		return nil, err
	}
	return settingNode(s), nil
}

func (g groupResolver) DependencyProxyImageTTLPolicy(ctx context.Context, obj *generated.Group) (*generated.DependencyProxyImageTTLGroupPolicy, error) {
	id, err := groupID(obj)
	if err != nil {
		return nil, err
	}
	p, err := g.h.svc.TTLPolicy(ctx, principal(ctx), id)
	if err != nil {
		return nil, err
	}
	return ttlNode(p), nil
}

// DependencyProxyImagePrefix is the group's own path, as GitLab gives it
// for a subgroup too; the registry serves pulls there from the group's
// own cache.
func (g groupResolver) DependencyProxyImagePrefix(ctx context.Context, obj *generated.Group) (string, error) {
	return g.h.imagePrefix(obj.FullPath), nil
}

func (g groupResolver) DependencyProxyDirectImagePrefix(ctx context.Context, obj *generated.Group) (string, error) {
	return g.h.imagePrefix(obj.FullPath), nil
}

// imagePrefix is the dependency proxy image prefix of the group at path.
func (h *Handler) imagePrefix(path string) string {
	return h.host + "/" + path + "/dependency_proxy/containers"
}

func (g groupResolver) DependencyProxyManifests(ctx context.Context, obj *generated.Group, first *int, after *string) (*generated.DependencyProxyManifestConnection, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	pos, hasPrev, err := decodeCursor("m", after)
	if err != nil {
		return nil, err
	}
	var afterID int64
	if hasPrev {
		if afterID, err = strconv.ParseInt(pos, 10, 64); err != nil || afterID <= 0 {
			return nil, fail(fmt.Sprintf("invalid cursor %q: pass an endCursor this connection returned", clip(*after)))
		}
	}
	id, err := groupID(obj)
	if err != nil {
		return nil, err
	}
	ms, err := g.h.svc.Manifests(ctx, principal(ctx), id, afterID, n+1)
	if err != nil {
		return nil, err
	}
	items, cursors, info := pageOf(ms, n, hasPrev, func(m admin.Manifest) string {
		return encodeCursor("m", strconv.FormatInt(m.ID, 10))
	})
	out := &generated.DependencyProxyManifestConnection{PageInfo: info,
		Nodes: []*generated.DependencyProxyManifest{}, Edges: []*generated.DependencyProxyManifestEdge{}}
	for i, m := range items {
		node := manifestNode(m)
		out.Nodes = append(out.Nodes, node)
		out.Edges = append(out.Edges, &generated.DependencyProxyManifestEdge{Cursor: cursors[i], Node: node})
	}
	return out, nil
}

func (g groupResolver) DependencyProxyBlobs(ctx context.Context, obj *generated.Group, first *int, after *string) (*generated.DependencyProxyBlobConnection, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	pos, hasPrev, err := decodeCursor("b", after)
	if err != nil {
		return nil, err
	}
	var from *admin.BlobCursor
	if hasPrev {
		ts, d, _ := strings.Cut(pos, "|")
		at, terr := time.Parse(time.RFC3339Nano, ts)
		digest, derr := admin.ParseDigest(d)
		if terr != nil || derr != nil {
			return nil, fail(fmt.Sprintf("invalid cursor %q: pass an endCursor this connection returned", clip(*after)))
		}
		from = &admin.BlobCursor{CreatedAt: at, Digest: digest}
	}
	id, err := groupID(obj)
	if err != nil {
		return nil, err
	}
	bs, err := g.h.svc.Blobs(ctx, principal(ctx), id, from, n+1)
	if err != nil {
		return nil, err
	}
	items, cursors, info := pageOf(bs, n, hasPrev, func(b admin.Blob) string {
		return encodeCursor("b", b.CreatedAt.UTC().Format(time.RFC3339Nano)+"|"+string(b.Digest))
	})
	out := &generated.DependencyProxyBlobConnection{PageInfo: info,
		Nodes: []*generated.DependencyProxyBlob{}, Edges: []*generated.DependencyProxyBlobEdge{}}
	for i, b := range items {
		node := blobNode(b)
		out.Nodes = append(out.Nodes, node)
		out.Edges = append(out.Edges, &generated.DependencyProxyBlobEdge{Cursor: cursors[i], Node: node})
	}
	return out, nil
}

func (g groupResolver) usage(ctx context.Context, obj *generated.Group) (admin.Usage, error) {
	id, err := groupID(obj)
	if err != nil {
		return admin.Usage{}, err
	}
	return g.h.svc.Usage(ctx, principal(ctx), id)
}

func (g groupResolver) DependencyProxyImageCount(ctx context.Context, obj *generated.Group) (int, error) {
	u, err := g.usage(ctx, obj)
	return u.Manifests, err
}

// DependencyProxyCachedImageCount counts images (image and digest), where
// GitLab's image count counts manifest rows.
func (g groupResolver) DependencyProxyCachedImageCount(ctx context.Context, obj *generated.Group) (int, error) {
	u, err := g.usage(ctx, obj)
	return u.Images, err
}

func (g groupResolver) DependencyProxyBlobCount(ctx context.Context, obj *generated.Group) (int, error) {
	u, err := g.usage(ctx, obj)
	return u.Blobs, err
}

// DependencyProxyTotalSize counts blobs and manifests, as GitLab does.
func (g groupResolver) DependencyProxyTotalSize(ctx context.Context, obj *generated.Group) (string, error) {
	u, err := g.usage(ctx, obj)
	return units.Size(u.BlobBytes + u.ManifestBytes), err
}

func (g groupResolver) DependencyProxyTotalSizeBytes(ctx context.Context, obj *generated.Group) (model.BigInt, error) {
	u, err := g.usage(ctx, obj)
	return bigInt(u.BlobBytes + u.ManifestBytes), err
}

// DependencyProxyTotalSizeInBytes is GitLab's deprecated 32-bit total:
// like GitLab, a total that does not fit is an error, not a wrong number.
func (g groupResolver) DependencyProxyTotalSizeInBytes(ctx context.Context, obj *generated.Group) (int, error) {
	u, err := g.usage(ctx, obj)
	if err != nil {
		return 0, err
	}
	total := u.BlobBytes + u.ManifestBytes
	if total > math.MaxInt32 {
		return 0, fail(fmt.Sprintf("Integer out of bounds: the total size of %s is %d bytes, more than a GraphQL Int holds; ask for dependencyProxyTotalSizeBytes", obj.FullPath, total))
	}
	return int(total), nil
}

func (g groupResolver) Subgroups(ctx context.Context, obj *generated.Group) ([]generated.Group, error) {
	id, err := groupID(obj)
	if err != nil {
		return nil, err
	}
	subs, err := g.h.svc.Subgroups(ctx, principal(ctx), id)
	if err != nil {
		return nil, err
	}
	out := []generated.Group{}
	for _, sub := range subs {
		out = append(out, *groupNode(sub))
	}
	return out, nil
}

func (g groupResolver) Members(ctx context.Context, obj *generated.Group) ([]generated.Member, error) {
	id, err := groupID(obj)
	if err != nil {
		return nil, err
	}
	ms, err := g.h.svc.Members(ctx, principal(ctx), id)
	if err != nil {
		return nil, err
	}
	out := make([]generated.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, *memberNode(m, obj.FullPath))
	}
	return out, nil
}
