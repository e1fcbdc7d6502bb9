package graphql

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

// Mutations call one admin operation each. Its refusals of an operation
// that was allowed (admin.IsRefusal: bad input, a name taken, a limit)
// go to the payload's errors; everything else (not found, not allowed, an
// internal failure) to the top-level errors with a null field. A refused
// or failed mutation changes nothing.
type mutationResolver struct{ h *Handler }

func noErrors() []string { return []string{} }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (m mutationResolver) UpdateDependencyProxySettings(ctx context.Context, in generated.UpdateDependencyProxySettingsInput) (*generated.UpdateDependencyProxySettingsPayload, error) {
	c := admin.ProxySettingChange{
		Enabled: in.Enabled, Identity: in.Identity, Secret: in.Secret,
		AllowAnonymousPull: in.AllowAnonymousPull, AnonymousPullsUseCredentials: in.AnonymousPullsUseCredentials,
	}
	if in.FreshnessWindowSeconds != nil {
		w := time.Duration(*in.FreshnessWindowSeconds) * time.Second
		if *in.FreshnessWindowSeconds > int(maxDurationSeconds) || *in.FreshnessWindowSeconds < -int(maxDurationSeconds) {
			w = -time.Second // out of any range: refused by the service
		}
		c.FreshnessWindow = &w
	}
	out := &generated.UpdateDependencyProxySettingsPayload{ClientMutationID: in.ClientMutationID, Errors: noErrors()}
	s, err := m.h.svc.UpdateProxySetting(ctx, principal(ctx), in.GroupPath, c)
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.DependencyProxySetting = settingNode(s)
	return out, nil
}

// maxDurationSeconds bounds seconds that fit a time.Duration.
const maxDurationSeconds = int64(1<<63-1) / int64(time.Second)

func (m mutationResolver) UpdateDependencyProxyImageTTLGroupPolicy(ctx context.Context, in generated.UpdateDependencyProxyImageTTLGroupPolicyInput) (*generated.UpdateDependencyProxyImageTTLGroupPolicyPayload, error) {
	out := &generated.UpdateDependencyProxyImageTTLGroupPolicyPayload{ClientMutationID: in.ClientMutationID, Errors: noErrors()}
	p, err := m.h.svc.UpdateTTLPolicy(ctx, principal(ctx), in.GroupPath, admin.TTLPolicyChange{Enabled: in.Enabled, TTLDays: in.TTL})
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.DependencyProxyImageTTLPolicy = ttlNode(p)
	return out, nil
}

func (m mutationResolver) PurgeDependencyProxyCache(ctx context.Context, in generated.PurgeDependencyProxyCacheInput) (*generated.PurgeDependencyProxyCachePayload, error) {
	p, err := m.h.svc.Purge(ctx, principal(ctx), in.GroupPath)
	if msgs, ok := refusal(err); ok {
		return &generated.PurgeDependencyProxyCachePayload{ClientMutationID: in.ClientMutationID, FreedBytes: bigInt(0), Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.PurgeDependencyProxyCachePayload{
		ClientMutationID: in.ClientMutationID, ManifestCount: p.Manifests, BlobCount: p.Blobs,
		FreedBytes: bigInt(p.Bytes), Errors: noErrors(),
	}, nil
}

func (m mutationResolver) DeleteDependencyProxyManifest(ctx context.Context, in generated.DeleteDependencyProxyManifestInput) (*generated.DeleteDependencyProxyManifestPayload, error) {
	out := &generated.DeleteDependencyProxyManifestPayload{ClientMutationID: in.ClientMutationID, Errors: noErrors()}
	row, err := m.h.svc.DeleteImage(ctx, principal(ctx), in.GroupPath, in.ImageName, in.Reference)
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.DependencyProxyManifest = manifestNode(row)
	return out, nil
}

func (m mutationResolver) UpdateInstanceDockerHubCredentials(ctx context.Context, in generated.UpdateInstanceDockerHubCredentialsInput) (*generated.UpdateInstanceDockerHubCredentialsPayload, error) {
	out := &generated.UpdateInstanceDockerHubCredentialsPayload{Errors: noErrors()}
	c, err := m.h.svc.SetInstanceHubCredentials(ctx, principal(ctx), in.Identity, in.Secret)
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.DockerHubCredentials = credentialsNode(c)
	return out, nil
}

func (m mutationResolver) GroupCreate(ctx context.Context, in generated.GroupCreateInput) (*generated.GroupCreatePayload, error) {
	out := &generated.GroupCreatePayload{Errors: noErrors()}
	g, err := m.h.svc.CreateGroup(ctx, principal(ctx), in.Path)
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.Group = groupNode(g)
	return out, nil
}

func (m mutationResolver) GroupDelete(ctx context.Context, in generated.GroupDeleteInput) (*generated.GroupDeletePayload, error) {
	err := m.h.svc.DeleteGroup(ctx, principal(ctx), in.Path)
	if msgs, ok := refusal(err); ok {
		return &generated.GroupDeletePayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.GroupDeletePayload{Errors: noErrors()}, nil
}

func (m mutationResolver) UserCreate(ctx context.Context, in generated.UserCreateInput) (*generated.UserCreatePayload, error) {
	out := &generated.UserCreatePayload{Errors: noErrors()}
	u, err := m.h.svc.CreateUser(ctx, principal(ctx), admin.UserInput{Username: in.Username, Password: deref(in.Password), Admin: in.Admin != nil && *in.Admin})
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.User = userNode(u)
	return out, nil
}

func (m mutationResolver) UserUpdate(ctx context.Context, in generated.UserUpdateInput) (*generated.UserUpdatePayload, error) {
	out := &generated.UserUpdatePayload{Errors: noErrors()}
	u, err := m.h.svc.UpdateUser(ctx, principal(ctx), clientAddr(ctx), in.Username, admin.UserChange{
		Admin: in.Admin, Blocked: in.Blocked, Password: in.Password, CurrentPassword: in.CurrentPassword,
	})
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.User = userNode(u)
	return out, nil
}

func (m mutationResolver) UserDelete(ctx context.Context, in generated.UserDeleteInput) (*generated.UserDeletePayload, error) {
	err := m.h.svc.DeleteUser(ctx, principal(ctx), in.Username)
	if msgs, ok := refusal(err); ok {
		return &generated.UserDeletePayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.UserDeletePayload{Errors: noErrors()}, nil
}

func (m mutationResolver) MemberAdd(ctx context.Context, in generated.MemberAddInput) (*generated.MemberAddPayload, error) {
	out := &generated.MemberAddPayload{Errors: noErrors()}
	role, err := roleOf(in.Role)
	if err != nil {
		return nil, err
	}
	mem, err := m.h.svc.SetMember(ctx, principal(ctx), in.GroupPath, in.Username, role)
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.Member = memberNode(mem, in.GroupPath)
	return out, nil
}

func (m mutationResolver) MemberRemove(ctx context.Context, in generated.MemberRemoveInput) (*generated.MemberRemovePayload, error) {
	err := m.h.svc.RemoveMember(ctx, principal(ctx), in.GroupPath, in.Username)
	if msgs, ok := refusal(err); ok {
		return &generated.MemberRemovePayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.MemberRemovePayload{Errors: noErrors()}, nil
}

func (m mutationResolver) TokenCreate(ctx context.Context, in generated.TokenCreateInput) (*generated.TokenCreatePayload, error) {
	ti := admin.TokenInput{
		Kind: tokenKindOf(in.Kind), Name: in.Name, Username: in.Username, GroupPath: in.GroupPath,
		Scopes: in.Scopes, ExpiresAt: in.ExpiresAt, DeployUsername: in.DeployUsername,
	}
	if in.Role != nil {
		r, err := roleOf(*in.Role)
		if err != nil {
			return nil, err
		}
		ti.Role = &r
	}
	out := &generated.TokenCreatePayload{Errors: noErrors()}
	t, secret, err := m.h.svc.CreateToken(ctx, principal(ctx), ti)
	if msgs, ok := refusal(err); ok {
		out.Errors = msgs
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.Token, out.Secret = tokenNode(t), &secret
	return out, nil
}

func (m mutationResolver) TokenRevoke(ctx context.Context, in generated.TokenRevokeInput) (*generated.TokenRevokePayload, error) {
	// Unknown and not the principal's to revoke look the same, named as
	// the caller named the token.
	notFound := fail(fmt.Sprintf("token %q not found", clip(in.ID)))
	id, ok := parseGID(gidToken, in.ID)
	if !ok {
		return nil, notFound
	}
	t, already, err := m.h.svc.RevokeToken(ctx, principal(ctx), id)
	if msgs, ok := refusal(err); ok {
		return &generated.TokenRevokePayload{Errors: msgs}, nil
	}
	if errors.Is(err, admin.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	return &generated.TokenRevokePayload{Token: tokenNode(t), AlreadyRevoked: already, Errors: noErrors()}, nil
}
