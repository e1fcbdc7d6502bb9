package graphql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// countedAPI is the admin API over a counting SQLite store holding group
// top with n subgroups top/sNN, each with a subgroup top/sNN/x, with a
// cached manifest and a blob in each top/sNN.
type countedAPI struct {
	st            *countingStore
	url           string
	admin, member string // api tokens: an instance admin, a guest of top
}

func newCountedAPI(t *testing.T, n int) *countedAPI {
	t.Helper()
	ctx := t.Context()
	box, err := secretbox.New(bytes.Repeat([]byte{3}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "dproxy.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	st := &countingStore{st: raw, n: map[string]int{}}
	// A fixed clock: a token's use is recorded once, not when a slow run
	// passes the touch interval.
	now := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }
	adm := admin.New(st, nil, auth.NewService(st, nil, auth.ServiceOptions{Now: now}), admin.Options{Now: now})
	group := func(path string) admin.Group {
		g, err := adm.CreateGroup(ctx, admin.System, path)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	token := func(name string, isAdmin bool) string {
		if _, err := adm.CreateUser(ctx, admin.System, admin.UserInput{Username: name, Admin: isAdmin}); err != nil {
			t.Fatal(err)
		}
		if !isAdmin {
			if _, err := adm.SetMember(ctx, admin.System, "top", name, admin.RoleGuest); err != nil {
				t.Fatal(err)
			}
		}
		_, secret, err := adm.CreateToken(ctx, admin.System, admin.TokenInput{Kind: admin.TokenPersonal, Name: "t", Username: &name, Scopes: []string{"api"}})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	group("top")
	for i := range n {
		sub := group(fmt.Sprintf("top/s%02d", i))
		group(sub.Path + "/x")
		content := fmt.Sprintf(`{"n":%d}`, i)
		if _, err := raw.PutManifest(ctx, store.Manifest{OwnerID: sub.ID, Image: "library/alpine", Reference: "latest",
			Digest: oci.FromBytes([]byte(content)), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte(content)}); err != nil {
			t.Fatal(err)
		}
		if err := raw.PutBlob(ctx, store.Blob{OwnerID: sub.ID, Digest: oci.FromBytes([]byte(content + "layer")), Size: int64(1000 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	api := &countedAPI{st: st, admin: token("root", true), member: token("gus", false)}
	srv := httptest.NewServer(New(adm, Options{ExternalURL: "http://dproxy.test:5000"}).GraphQL())
	t.Cleanup(srv.Close)
	api.url = srv.URL
	// Sign in once with each token, so that recording its first use is
	// not counted below.
	for _, tok := range []string{api.admin, api.member} {
		api.query(t, tok, `{ currentUser { username } }`)
	}
	api.st.take()
	return api
}

// query runs a GraphQL query and returns its data; errors fail the test.
func (api *countedAPI) query(t *testing.T, token, q string) map[string]any {
	t.Helper()
	data, errs := api.try(t, token, q)
	if len(errs) > 0 {
		t.Fatalf("query %s: errors %q", q, errs)
	}
	return data
}

// try runs a GraphQL query and returns its data and error messages.
func (api *countedAPI) try(t *testing.T, token, q string) (map[string]any, []string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": q})
	req, _ := http.NewRequest(http.MethodPost, api.url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data   map[string]any
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("query %s: status %d, errors %+v", q, resp.StatusCode, out.Errors)
	}
	var errs []string
	for _, e := range out.Errors {
		errs = append(errs, e.Message)
	}
	return out.Data, errs
}

// TestQueriesPerFieldNotPerGroup: listing groups with their counts, sizes,
// settings and subgroups costs the same store calls for 3 groups as for
// 30, for an instance admin and for a member.
func TestQueriesPerFieldNotPerGroup(t *testing.T) {
	t.Parallel()
	queries := []struct{ name, q string }{
		{"groups", `{ groups(first: 100) { nodes { fullPath
			dependencyProxyImageCount dependencyProxyBlobCount dependencyProxyTotalSize dependencyProxyTotalSizeBytes
			dependencyProxyTotalSizeInBytes dependencyProxySetting { enabled } dependencyProxyImageTtlPolicy { ttl }
			subgroups { fullPath dependencyProxyImageCount } } } }`},
		{"subgroups", `{ group(fullPath: "top") { dependencyProxyImageCount subgroups { fullPath
			dependencyProxyImageCount dependencyProxyBlobCount dependencyProxyTotalSizeInBytes dependencyProxySetting { enabled }
			subgroups { fullPath dependencyProxyTotalSizeBytes dependencyProxyImageTtlPolicy { ttl } } } } }`},
	}
	calls := map[string]map[string]string{} // query/principal → N → counts
	for _, n := range []int{3, 30} {
		api := newCountedAPI(t, n)
		for _, q := range queries {
			for _, who := range []struct{ name, token string }{{"admin", api.admin}, {"member", api.member}} {
				data := api.query(t, who.token, q.q)
				got := api.st.take()
				key := q.name + " as " + who.name
				if calls[key] == nil {
					calls[key] = map[string]string{}
				}
				calls[key][fmt.Sprint(n)] = fmt.Sprint(got)
				t.Logf("%s, %d groups: %v", key, n, got)
				checkCounted(t, key, n, data)
			}
		}
	}
	for key, byN := range calls {
		if byN["3"] != byN["30"] {
			t.Errorf("%s: store calls for 3 groups %s, for 30 groups %s; want the same", key, byN["3"], byN["30"])
		}
		if strings.Contains(byN["3"], "GroupUsage:") || strings.Contains(byN["3"], "ProxySetting:") || strings.Contains(byN["3"], "TTLPolicy:") {
			t.Errorf("%s: one-group reads %s; want batched ones", key, byN["3"])
		}
	}
}

// checkCounted checks that the answer holds the cache of the n subgroups
// of top, so that few calls are not few because little was answered.
func checkCounted(t *testing.T, key string, n int, data map[string]any) {
	t.Helper()
	var subs []any
	if g, ok := data["group"].(map[string]any); ok {
		subs, _ = g["subgroups"].([]any)
	} else {
		nodes, _ := data["groups"].(map[string]any)["nodes"].([]any)
		if len(nodes) != 1+2*n {
			t.Errorf("%s: %d groups listed, want %d", key, len(nodes), 1+2*n)
		}
		for _, node := range nodes {
			if g := node.(map[string]any); strings.Count(g["fullPath"].(string), "/") == 1 {
				subs = append(subs, g)
			}
		}
	}
	if len(subs) != n {
		t.Fatalf("%s: %d subgroups of top, want %d", key, len(subs), n)
	}
	for _, s := range subs {
		g := s.(map[string]any)
		if g["dependencyProxyImageCount"] != float64(1) {
			t.Errorf("%s: %s counts %v images, want 1", key, g["fullPath"], g["dependencyProxyImageCount"])
		}
		if x, ok := g["subgroups"].([]any); !ok || len(x) != 1 {
			t.Errorf("%s: %s has subgroups %v, want its one", key, g["fullPath"], g["subgroups"])
		}
	}
}
