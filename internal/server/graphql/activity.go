package graphql

import (
	"context"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/server/graphql/model"
)

func (q queryResolver) ActiveDownloads(ctx context.Context) ([]generated.ActiveDownload, error) {
	dls, err := q.h.svc.ActiveDownloads(ctx, principal(ctx))
	if err != nil {
		return nil, err
	}
	out := make([]generated.ActiveDownload, len(dls))
	for i, d := range dls {
		n := generated.ActiveDownload{Digest: string(d.Digest), Image: d.Image, GroupPaths: d.Groups,
			VirtualRegistry: optional(d.VirtualRegistry), VirtualRegistryGroup: optional(d.VirtualGroup),
			Bytes: model.BigInt(d.Written), Clients: d.Readers, StartedAt: d.Started.UTC()}
		if n.GroupPaths == nil {
			n.GroupPaths = []string{}
		}
		if d.Size >= 0 {
			total := model.BigInt(d.Size)
			n.TotalBytes = &total
		}
		out[i] = n
	}
	return out, nil
}

func (q queryResolver) RecentPulls(ctx context.Context, first *int, after *model.BigInt) ([]generated.RecentPull, error) {
	limit, since := 0, int64(0)
	if first != nil {
		limit = *first
	}
	if after != nil {
		since = int64(*after)
	}
	ps, err := q.h.svc.RecentPulls(ctx, principal(ctx), limit, since)
	if err != nil {
		return nil, err
	}
	out := make([]generated.RecentPull, len(ps))
	for i, p := range ps {
		out[i] = generated.RecentPull{Seq: model.BigInt(p.Seq), At: p.At.UTC(), Result: p.Result, Kind: p.Kind, Image: p.Image, Reference: p.Reference,
			GroupPath: optional(p.Group), VirtualRegistry: optional(p.VirtualRegistry), VirtualRegistryGroup: optional(p.VirtualGroup),
			Client: p.Client.String(), Principal: p.Principal}
		if p.VirtualRegistryID != 0 {
			out[i].GroupPath = nil
		}
	}
	return out, nil
}

func (q queryResolver) CacheActivity(ctx context.Context) (*generated.CacheActivity, error) {
	st := q.h.svc.Activity(principal(ctx))
	return &generated.CacheActivity{StartedAt: st.Started.UTC(), SinceStart: totalsNode(st.SinceStart), Last5Minutes: totalsNode(st.Last5Min)}, nil
}

func (q queryResolver) CacheActivitySeries(ctx context.Context, minutes, buckets int) ([]generated.ActivityBucket, error) {
	bs, err := q.h.svc.ActivitySeries(principal(ctx), minutes, buckets)
	if err != nil {
		return nil, err
	}
	out := make([]generated.ActivityBucket, len(bs))
	for i, b := range bs {
		out[i] = generated.ActivityBucket{Start: b.Start.UTC(), Totals: totalsNode(b.ActivityTotals)}
		if b.HubRemaining >= 0 {
			n := b.HubRemaining
			out[i].DockerHubRemaining = &n
		}
	}
	return out, nil
}

func totalsNode(t admin.ActivityTotals) *generated.ActivityTotals {
	n := &generated.ActivityTotals{Requests: int(t.Hits + t.Misses + t.Stale), Hits: int(t.Hits), Misses: int(t.Misses), Stale: int(t.Stale),
		UpstreamPullsSaved: int(t.Saved), BytesFromCache: model.BigInt(t.BytesCache), BytesFromUpstream: model.BigInt(t.BytesUpstream),
		UpstreamRequests: int(t.UpstreamRequests)}
	if n.Requests > 0 {
		r := float64(t.Hits+t.Stale) / float64(n.Requests)
		n.HitRatio = &r
	}
	if all := t.BytesCache + t.BytesUpstream; all > 0 {
		r := float64(t.BytesCache) / float64(all)
		n.ByteHitRatio = &r
	}
	return n
}

// optional is nil for "".
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
