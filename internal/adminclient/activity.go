package adminclient

import (
	"context"
	"time"
)

// ActiveDownload is a blob being downloaded from an upstream, once for
// every client that asked for it.
type ActiveDownload struct {
	Digest string `json:"digest"`
	// Image is the upstream repository of the client that started it.
	Image string `json:"image"`
	// GroupPaths are the groups served (the ones the caller may read);
	// VirtualRegistry and VirtualRegistryGroup name a virtual registry.
	GroupPaths           []string `json:"groupPaths"`
	VirtualRegistry      *string  `json:"virtualRegistry"`
	VirtualRegistryGroup *string  `json:"virtualRegistryGroup"`
	// Bytes were received so far; TotalBytes is nil until known.
	Bytes      Bytes     `json:"bytes"`
	TotalBytes *Bytes    `json:"totalBytes"`
	Clients    int       `json:"clients"`
	StartedAt  time.Time `json:"startedAt"`
}

// ActiveDownloads returns the downloads in progress the caller may see,
// oldest first.
func (c *Client) ActiveDownloads(ctx context.Context) ([]ActiveDownload, error) {
	var q struct {
		ActiveDownloads []ActiveDownload `graphql:"activeDownloads"`
	}
	if err := c.query(ctx, &q, nil); err != nil {
		return nil, err
	}
	return q.ActiveDownloads, nil
}

// RecentPull is one manifest or blob request a client made.
type RecentPull struct {
	At time.Time `json:"at"`
	// Result is hit, miss or stale; Kind manifest or blob.
	Result    string `json:"result"`
	Kind      string `json:"kind"`
	Image     string `json:"image"`
	Reference string `json:"reference"`
	// GroupPath is the group served, or VirtualRegistry and its group.
	GroupPath            *string `json:"groupPath"`
	VirtualRegistry      *string `json:"virtualRegistry"`
	VirtualRegistryGroup *string `json:"virtualRegistryGroup"`
	Client               string  `json:"client"`
	Principal            string  `json:"principal"`
}

// RecentPulls returns up to first recent pulls the caller may see, newest
// first (0: all the server keeps).
func (c *Client) RecentPulls(ctx context.Context, first int) ([]RecentPull, error) {
	var q struct {
		RecentPulls []RecentPull `graphql:"recentPulls(first: $first)"`
	}
	var n *int
	if first > 0 {
		n = &first
	}
	if err := c.query(ctx, &q, map[string]any{"first": n}); err != nil {
		return nil, err
	}
	return q.RecentPulls, nil
}

// ActivityTotals are counts over a stretch of time; a stale answer counts
// as served from cache. The ratios are nil when nothing was counted.
type ActivityTotals struct {
	Requests           int      `json:"requests"`
	Hits               int      `json:"hits"`
	Misses             int      `json:"misses"`
	Stale              int      `json:"stale"`
	UpstreamPullsSaved int      `json:"upstreamPullsSaved"`
	BytesFromCache     Bytes    `json:"bytesFromCache"`
	BytesFromUpstream  Bytes    `json:"bytesFromUpstream"`
	UpstreamRequests   int      `json:"upstreamRequests"`
	HitRatio           *float64 `json:"hitRatio"`
	ByteHitRatio       *float64 `json:"byteHitRatio"`
}

// CacheActivity is the instance's counts since the start and over the
// last 5 minutes.
type CacheActivity struct {
	StartedAt    time.Time      `json:"startedAt"`
	SinceStart   ActivityTotals `json:"sinceStart"`
	Last5Minutes ActivityTotals `json:"last5Minutes" graphql:"last5Minutes"`
}

// CacheActivity returns the instance's hit and byte counts.
func (c *Client) CacheActivity(ctx context.Context) (CacheActivity, error) {
	var q struct {
		CacheActivity CacheActivity `graphql:"cacheActivity"`
	}
	err := c.query(ctx, &q, nil)
	return q.CacheActivity, err
}

// ActivityBucket is one bucket of a series; DockerHubRemaining is nil when
// Docker Hub reported no limit in it.
type ActivityBucket struct {
	Start              time.Time      `json:"start"`
	Totals             ActivityTotals `json:"totals"`
	DockerHubRemaining *int           `json:"dockerHubRemaining"`
}

// ActivitySeries returns the last minutes of activity in buckets of equal
// length, oldest first.
func (c *Client) ActivitySeries(ctx context.Context, minutes, buckets int) ([]ActivityBucket, error) {
	var q struct {
		Series []ActivityBucket `graphql:"cacheActivitySeries(minutes: $minutes, buckets: $buckets)"`
	}
	if err := c.query(ctx, &q, map[string]any{"minutes": minutes, "buckets": buckets}); err != nil {
		return nil, err
	}
	return q.Series, nil
}
