package graphql

import (
	"context"
	"errors"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

func (q queryResolver) CiTrusts(ctx context.Context) ([]generated.CiTrust, error) {
	ts, err := q.h.svc.CITrusts(ctx, principal(ctx))
	if err != nil {
		return nil, err
	}
	out := make([]generated.CiTrust, 0, len(ts))
	for _, t := range ts {
		out = append(out, *ciTrustNode(t))
	}
	return out, nil
}

func (q queryResolver) CiTrust(ctx context.Context, name string) (*generated.CiTrust, error) {
	t, err := q.h.svc.CITrust(ctx, principal(ctx), name)
	if errors.Is(err, admin.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ciTrustNode(t), nil
}

func (q queryResolver) ExternalURL(context.Context) (string, error) { return q.h.opts.ExternalURL, nil }

func (m mutationResolver) CreateCiTrust(ctx context.Context, in generated.CreateCiTrustInput) (*generated.CreateCiTrustPayload, error) {
	n := admin.NewCITrust{Name: in.Name, Issuer: in.Issuer, Audience: in.Audience,
		GroupPath: deref(in.GroupPath), GroupClaim: deref(in.GroupClaim)}
	if in.Role != nil {
		r, err := admin.ParseRole(*in.Role)
		if err != nil {
			return &generated.CreateCiTrustPayload{Errors: []string{"role: " + err.Error()}}, nil
		}
		n.Role = r
	}
	for _, c := range in.Claims {
		n.Claims = append(n.Claims, admin.ClaimRule{Key: c.Key, Glob: c.Glob})
	}
	if in.MaxLifetimeSeconds != nil {
		n.MaxLifetime = time.Duration(min(max(*in.MaxLifetimeSeconds, -1), int(maxDurationSeconds))) * time.Second
		if n.MaxLifetime == 0 {
			n.MaxLifetime = -1 // zero given: refused by the service, not the default
		}
	}
	t, err := m.h.svc.CreateCITrust(ctx, principal(ctx), n)
	if msgs, ok := refusal(err); ok {
		return &generated.CreateCiTrustPayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.CreateCiTrustPayload{CiTrust: ciTrustNode(t), Errors: noErrors()}, nil
}

func (m mutationResolver) DeleteCiTrust(ctx context.Context, in generated.DeleteCiTrustInput) (*generated.DeleteCiTrustPayload, error) {
	t, err := m.h.svc.DeleteCITrust(ctx, principal(ctx), in.Name)
	if msgs, ok := refusal(err); ok {
		return &generated.DeleteCiTrustPayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.DeleteCiTrustPayload{CiTrust: ciTrustNode(t), Errors: noErrors()}, nil
}

func ciTrustNode(t admin.CITrust) *generated.CiTrust {
	n := &generated.CiTrust{Name: t.Name, Issuer: t.Issuer, Audience: t.Audience, Role: t.Role.String(),
		Claims: []generated.CiTrustClaim{}, MaxLifetimeSeconds: int(t.MaxLifetime / time.Second), CreatedAt: t.CreatedAt.UTC()}
	if t.GroupPath != "" {
		n.GroupPath = &t.GroupPath
	}
	if t.GroupClaim != "" {
		n.GroupClaim = &t.GroupClaim
	}
	for _, c := range t.Claims {
		n.Claims = append(n.Claims, generated.CiTrustClaim{Key: c.Key, Glob: c.Glob})
	}
	return n
}
