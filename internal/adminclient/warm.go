package adminclient

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// WarmEntry is a tag a group keeps warm, with its last check.
type WarmEntry struct {
	Image         string     `json:"image"`
	Tag           string     `json:"tag"`
	Platforms     []string   `json:"platforms"`
	EverySeconds  int        `json:"everySeconds"`
	Auto          bool       `json:"auto"`
	LastCheckedAt *time.Time `json:"lastCheckedAt"`
	Digest        *string    `json:"digest"`
	State         string     `json:"state"`
	Message       string     `json:"message"`
	NextRunAt     time.Time  `json:"nextRunAt"`
}

// Ref is image:tag.
func (e WarmEntry) Ref() string { return e.Image + ":" + e.Tag }

// WarmAuto keeps a group's most pulled tags warm.
type WarmAuto struct {
	Top           int        `json:"top"`
	WindowSeconds int        `json:"windowSeconds"`
	EverySeconds  int        `json:"everySeconds"`
	Platforms     []string   `json:"platforms"`
	RefreshedAt   *time.Time `json:"refreshedAt"`
}

// WarmList is what a group keeps warm.
type WarmList struct {
	Entries []WarmEntry `json:"entries"`
	Auto    *WarmAuto   `json:"auto"`
}

const (
	warmEntrySelection = `image tag platforms everySeconds auto lastCheckedAt digest state message nextRunAt`
	warmAutoSelection  = `top windowSeconds everySeconds platforms refreshedAt`
)

// WarmEntries returns what a group keeps warm (guest).
func (c *Client) WarmEntries(ctx context.Context, group string) (WarmList, error) {
	q := `query($path: ID!) { warmEntries(groupPath: $path) { entries { ` + warmEntrySelection + ` } auto { ` + warmAutoSelection + ` } } }`
	var out struct {
		List WarmList `json:"warmEntries"`
	}
	if err := c.execRaw(ctx, "warmEntries", q, map[string]any{"path": group}, &out); err != nil {
		return WarmList{}, err
	}
	return out.List, nil
}

// WarmInput adds entries (Images) or the auto-top setting (AutoTop) of a
// group; nil fields take the server's defaults.
type WarmInput struct {
	GroupPath     string   `json:"groupPath"`
	Images        []string `json:"images,omitempty"`
	Platforms     []string `json:"platforms,omitempty"`
	EverySeconds  *int     `json:"everySeconds,omitempty"`
	AutoTop       *int     `json:"autoTop,omitempty"`
	WindowSeconds *int     `json:"windowSeconds,omitempty"`
}

// AddWarmEntries keeps tags of a group warm, or its most pulled tags
// (owner); it returns the entries added or changed, or the auto setting.
func (c *Client) AddWarmEntries(ctx context.Context, in WarmInput) ([]WarmEntry, *WarmAuto, error) {
	q := `mutation($input: AddWarmEntryInput!) { payload: addWarmEntry(input: $input) { warmEntries { ` + warmEntrySelection +
		` } auto { ` + warmAutoSelection + ` } errors } }`
	var out struct {
		Payload struct {
			Entries []WarmEntry `json:"warmEntries"`
			Auto    *WarmAuto   `json:"auto"`
			Errors  []string    `json:"errors"`
		} `json:"payload"`
	}
	if err := c.execRaw(ctx, "addWarmEntry", q, map[string]any{"input": in}, &out); err != nil {
		return nil, nil, err
	}
	if len(out.Payload.Errors) > 0 {
		return nil, nil, &APIError{Messages: out.Payload.Errors}
	}
	return out.Payload.Entries, out.Payload.Auto, nil
}

// RemoveWarmEntry stops keeping image:tag of a group warm, or with auto
// its most pulled tags (owner).
func (c *Client) RemoveWarmEntry(ctx context.Context, group, image string, auto bool) error {
	in := map[string]any{"groupPath": group}
	if image != "" {
		in["image"] = image
	}
	if auto {
		in["auto"] = true
	}
	q := `mutation($input: RemoveWarmEntryInput!) { payload: removeWarmEntry(input: $input) { errors } }`
	var out struct {
		Payload struct {
			Errors []string `json:"errors"`
		} `json:"payload"`
	}
	if err := c.execRaw(ctx, "removeWarmEntry", q, map[string]any{"input": in}, &out); err != nil {
		return err
	}
	if len(out.Payload.Errors) > 0 {
		return &APIError{Messages: out.Payload.Errors}
	}
	return nil
}

// WarmNow has a group's entries checked now: all, or the one of image
// (image:tag) (owner). It returns how many.
func (c *Client) WarmNow(ctx context.Context, group, image string) (int, error) {
	in := map[string]any{"groupPath": group}
	if image != "" {
		in["image"] = image
	}
	q := `mutation($input: WarmNowInput!) { payload: warmNow(input: $input) { entries errors } }`
	var out struct {
		Payload struct {
			Entries int      `json:"entries"`
			Errors  []string `json:"errors"`
		} `json:"payload"`
	}
	if err := c.execRaw(ctx, "warmNow", q, map[string]any{"input": in}, &out); err != nil {
		return 0, err
	}
	if len(out.Payload.Errors) > 0 {
		return 0, &APIError{Messages: out.Payload.Errors}
	}
	return out.Payload.Entries, nil
}

// execRaw runs a query written out in full and decodes its data into out.
func (c *Client) execRaw(ctx context.Context, field, q string, vars map[string]any, out any) error {
	raw, err := c.gql.ExecRaw(ctx, q, vars)
	if err := c.translate(err); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode the answer to %s: %w", field, err)
	}
	return nil
}
