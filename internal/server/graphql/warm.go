package graphql

import (
	"context"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

// WarmEntries lists what a group keeps warm.
func (q queryResolver) WarmEntries(ctx context.Context, groupPath string) (*generated.WarmEntries, error) {
	entries, auto, err := q.h.svc.WarmEntries(ctx, principal(ctx), groupPath)
	if err != nil {
		return nil, err
	}
	out := &generated.WarmEntries{Entries: warmEntryNodes(entries), Auto: warmAutoNode(auto)}
	return out, nil
}

// AddWarmEntry adds named entries, or with autoTop the auto-top setting.
func (m mutationResolver) AddWarmEntry(ctx context.Context, in generated.AddWarmEntryInput) (*generated.AddWarmEntryPayload, error) {
	every := seconds(in.EverySeconds)
	out := &generated.AddWarmEntryPayload{WarmEntries: []generated.WarmEntry{}, Errors: []string{}}
	if in.AutoTop != nil {
		if len(in.Images) > 0 {
			out.Errors = []string{"name images or autoTop, not both"}
			return out, nil
		}
		a, err := m.h.svc.SetWarmAuto(ctx, principal(ctx), in.GroupPath, admin.WarmAutoInput{
			Top: *in.AutoTop, Window: seconds(in.WindowSeconds), Every: every, Platforms: in.Platforms})
		if msgs, ok := refusal(err); ok {
			out.Errors = msgs
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out.Auto = warmAutoNode(&a)
		return out, nil
	}
	if in.WindowSeconds != nil {
		out.Errors = []string{"windowSeconds goes with autoTop"}
		return out, nil
	}
	entries, err := m.h.svc.AddWarmEntries(ctx, principal(ctx), in.GroupPath, in.Images, admin.WarmInput{Platforms: in.Platforms, Every: every})
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.WarmEntries = warmEntryNodes(entries)
	return out, nil
}

// RemoveWarmEntry removes an entry, or the auto-top setting.
func (m mutationResolver) RemoveWarmEntry(ctx context.Context, in generated.RemoveWarmEntryInput) (*generated.RemoveWarmEntryPayload, error) {
	err := m.h.svc.RemoveWarmEntry(ctx, principal(ctx), in.GroupPath, deref(in.Image), in.Auto != nil && *in.Auto)
	if msgs, ok := refusal(err); ok {
		return &generated.RemoveWarmEntryPayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.RemoveWarmEntryPayload{Errors: []string{}}, nil
}

// WarmNow makes entries due now.
func (m mutationResolver) WarmNow(ctx context.Context, in generated.WarmNowInput) (*generated.WarmNowPayload, error) {
	n, err := m.h.svc.WarmNow(ctx, principal(ctx), in.GroupPath, deref(in.Image))
	if msgs, ok := refusal(err); ok {
		return &generated.WarmNowPayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.WarmNowPayload{Entries: n, Errors: []string{}}, nil
}

// seconds reads an optional whole number of seconds; nil is 0 (the default).
func seconds(n *int) time.Duration {
	if n == nil {
		return 0
	}
	return time.Duration(*n) * time.Second
}

func warmEntryNodes(es []admin.WarmEntry) []generated.WarmEntry {
	out := make([]generated.WarmEntry, 0, len(es))
	for _, e := range es {
		n := generated.WarmEntry{
			Image: e.Image, Tag: e.Tag, Platforms: orEmpty(e.Platforms), EverySeconds: int(e.Every / time.Second),
			Auto: e.Auto, State: e.State, Message: e.Message, NextRunAt: e.NextAt.UTC(),
		}
		if e.CheckedAt != nil {
			t := e.CheckedAt.UTC()
			n.LastCheckedAt = &t
		}
		if e.Digest != "" {
			d := e.Digest
			n.Digest = &d
		}
		out = append(out, n)
	}
	return out
}

func warmAutoNode(a *admin.WarmAuto) *generated.WarmAuto {
	if a == nil {
		return nil
	}
	n := &generated.WarmAuto{Top: a.Top, WindowSeconds: int(a.Window / time.Second), EverySeconds: int(a.Every / time.Second),
		Platforms: orEmpty(a.Platforms)}
	if a.RefreshedAt != nil {
		t := a.RefreshedAt.UTC()
		n.RefreshedAt = &t
	}
	return n
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
