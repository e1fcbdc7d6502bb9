package adminclient

import (
	"context"
	"strconv"
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
	// Seq numbers the pulls in the order the server recorded them.
	Seq Seq       `json:"seq"`
	At  time.Time `json:"at"`
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

// Seq is a pull's number, a GraphQL BigInt (sent as a string).
type Seq int64

// GetGraphQLType names the scalar in the schema (Seq goes as a nullable
// argument, *Seq).
func (*Seq) GetGraphQLType() string { return "BigInt" }

// MarshalJSON sends the number as a string, as BigInt wants.
func (s Seq) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(strconv.FormatInt(int64(s), 10))), nil
}

// UnmarshalJSON accepts "123" and 123.
func (s *Seq) UnmarshalJSON(data []byte) error {
	var b Bytes
	err := b.UnmarshalJSON(data)
	*s = Seq(b)
	return err
}

// pullVars are the variables of recentPulls: up to first (0: all kept)
// after the pull numbered after (0: from the oldest kept).
func pullVars(first int, after Seq) map[string]any {
	var n *int
	if first > 0 {
		n = &first
	}
	var a *Seq
	if after > 0 {
		a = &after
	}
	return map[string]any{"first": n, "after": a}
}

// RecentPulls returns up to first recent pulls the caller may see, newest
// first (0: all the server keeps), recorded after the pull numbered after
// (0: any).
func (c *Client) RecentPulls(ctx context.Context, first int, after Seq) ([]RecentPull, error) {
	var q struct {
		RecentPulls []RecentPull `graphql:"recentPulls(first: $first, after: $after)"`
	}
	if err := c.query(ctx, &q, pullVars(first, after)); err != nil {
		return nil, err
	}
	return q.RecentPulls, nil
}

// ActivitySnapshot is what one refresh of the activity screen shows, asked
// in one request: the header's figures and rate limits, the downloads in
// flight and the pulls after the one numbered after.
type ActivitySnapshot struct {
	Stats     CacheActivity
	Limits    []UpstreamRateLimit
	Downloads []ActiveDownload
	Pulls     []RecentPull
}

// ActivitySnapshot asks for one refresh of the activity screen: up to
// first pulls recorded after the one numbered after.
func (c *Client) ActivitySnapshot(ctx context.Context, first int, after Seq) (ActivitySnapshot, error) {
	var q struct {
		CacheActivity      CacheActivity       `graphql:"cacheActivity"`
		UpstreamRateLimits []UpstreamRateLimit `graphql:"upstreamRateLimits"`
		ActiveDownloads    []ActiveDownload    `graphql:"activeDownloads"`
		RecentPulls        []RecentPull        `graphql:"recentPulls(first: $first, after: $after)"`
	}
	if err := c.query(ctx, &q, pullVars(first, after)); err != nil {
		return ActivitySnapshot{}, err
	}
	return ActivitySnapshot{Stats: q.CacheActivity, Limits: q.UpstreamRateLimits, Downloads: q.ActiveDownloads, Pulls: q.RecentPulls}, nil
}

// DashboardSnapshot is what one refresh of the dashboard shows, asked in
// one request: the header's figures and rate limits and the last 15 and 60
// minutes in buckets.
type DashboardSnapshot struct {
	Stats          CacheActivity
	Limits         []UpstreamRateLimit
	Last15, Last60 []ActivityBucket
}

// DashboardSnapshot asks for one refresh of the dashboard, each window in
// buckets.
func (c *Client) DashboardSnapshot(ctx context.Context, buckets int) (DashboardSnapshot, error) {
	var q struct {
		CacheActivity      CacheActivity       `graphql:"cacheActivity"`
		UpstreamRateLimits []UpstreamRateLimit `graphql:"upstreamRateLimits"`
		Last15             []ActivityBucket    `graphql:"last15: cacheActivitySeries(minutes: 15, buckets: $buckets)"`
		Last60             []ActivityBucket    `graphql:"last60: cacheActivitySeries(minutes: 60, buckets: $buckets)"`
	}
	if err := c.query(ctx, &q, map[string]any{"buckets": buckets}); err != nil {
		return DashboardSnapshot{}, err
	}
	return DashboardSnapshot{Stats: q.CacheActivity, Limits: q.UpstreamRateLimits, Last15: q.Last15, Last60: q.Last60}, nil
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
