package upstream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testregistry"
)

func TestTagsFollowsLinks(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{Users: map[string]string{"alice": "s3cret"}, RequireAuth: true})
	up.PushRandomImage(t, "acme/app", "v3", 1, 16)
	up.TagManifest(t, "acme/app", "v3", "v1", "v2", "latest", "v10")
	up.SetListPaging(2, true)
	cl := newClient(t, up, Options{})
	creds := Credentials{Username: "alice", Password: "s3cret"}

	tags, err := cl.Tags(context.Background(), creds, "acme/app")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"latest", "v1", "v10", "v2", "v3"}; !slices.Equal(tags, want) {
		t.Errorf("Tags = %v, want %v", tags, want)
	}
	// 3 pages, the first one twice (its challenge, then with a token).
	if n := up.Count("GET", testregistry.KindTags); n != 4 {
		t.Errorf("%d GET tags requests, want 4 (a challenge and 3 pages)", n)
	}
	reqs := up.TokenRequests()
	if len(reqs) != 1 || reqs[0].Username != "alice" || !slices.Equal(reqs[0].Scope, []string{"repository:acme/app:pull"}) {
		t.Errorf("token requests = %+v, want one pull token of acme/app for alice", reqs)
	}
	// The manifests' token serves the tag list too: one token per repository.
	if _, err := cl.HeadManifest(context.Background(), creds, "acme/app", tag("v3")); err != nil {
		t.Fatal(err)
	}
	if n := len(up.TokenRequests()); n != 1 {
		t.Errorf("%d token requests after a manifest HEAD, want the tag list's token reused", n)
	}
}

// TestTagsWithoutLinks: a registry that pages without Link headers is
// asked for the tags after the last of a full page.
func TestTagsWithoutLinks(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/many", "t0000", 1, 16)
	var want []string
	for i := range tagsPageSize + 200 {
		want = append(want, fmt.Sprintf("t%04d", i))
	}
	up.TagManifest(t, "library/many", "t0000", want[1:]...)
	up.SetListPaging(tagsPageSize, false)
	cl := newClient(t, up, Options{})
	tags, err := cl.Tags(context.Background(), Credentials{}, "library/many")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags, want) {
		t.Errorf("got %d tags (%v … %v), want %d", len(tags), tags[:2], tags[len(tags)-2:], len(want))
	}
}

// TestTagsBounded: a list longer than maxListPages pages is cut there.
func TestTagsBounded(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/long", "a000", 1, 16)
	var more []string
	for i := 1; i < maxListPages+5; i++ {
		more = append(more, fmt.Sprintf("a%03d", i))
	}
	up.TagManifest(t, "library/long", "a000", more...)
	up.SetListPaging(1, true)
	cl := newClient(t, up, Options{})
	tags, err := cl.Tags(context.Background(), Credentials{}, "library/long")
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != maxListPages || tags[0] != "a000" {
		t.Errorf("got %d tags from %q, want the first %d", len(tags), tags[0], maxListPages)
	}
}

func TestTagsErrors(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 16)
	cl := newClient(t, up, Options{Retries: -1})
	ctx := context.Background()

	_, err := cl.Tags(ctx, Credentials{}, "library/nothing")
	checkErr(t, "unknown repository", err, oci.ErrNameUnknown, 404, "library/nothing", up.Host())

	up.SetStatus(http.StatusServiceUnavailable)
	_, err = cl.Tags(ctx, Credentials{}, "library/alpine")
	checkErr(t, "upstream failure", err, oci.ErrUnavailable, 503)
	up.SetStatus(0)

	// A Link to another host would take the pull's token there.
	up.SetListPaging(1, true)
	up.TagManifest(t, "library/alpine", "3", "4")
	elsewhere := newClient(t, up, Options{Transport: tamper{http.DefaultTransport, func(res *http.Response) {
		if res.Header.Get("Link") != "" {
			res.Header.Set("Link", `<http://127.0.0.2:9/v2/library/alpine/tags/list?n=1&last=3>; rel="next"`)
		}
	}}})
	_, err = elsewhere.Tags(ctx, Credentials{}, "library/alpine")
	checkErr(t, "Link elsewhere", err, oci.ErrUnavailable, 200, "127.0.0.2:9")
}

func TestNextLink(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		values []string
		want   string
	}{
		{nil, ""},
		{[]string{`</v2/a/tags/list?n=2&last=b>; rel="next"`}, "/v2/a/tags/list?n=2&last=b"},
		{[]string{`</v2/a/tags/list?n=2&last=b>; rel=next`}, "/v2/a/tags/list?n=2&last=b"},
		{[]string{`<https://x/prev>; rel="prev", <https://x/next>; rel="next"`}, "https://x/next"},
		{[]string{`<https://x/first>; rel="first"`, `<https://x/n>; type="a"; rel="last next"`}, "https://x/n"},
		{[]string{`<https://x/prev>; rel="prev"`}, ""},
		{[]string{`garbage`}, ""},
	} {
		if got := nextLink(c.values); got != c.want {
			t.Errorf("nextLink(%q) = %q, want %q", c.values, got, c.want)
		}
	}
}

func pushSubject(t *testing.T, up *testregistry.Upstream, repo string) v1.Descriptor {
	t.Helper()
	img := up.PushRandomImage(t, repo, "latest", 1, 16)
	d, _ := img.Digest()
	mt, _ := img.MediaType()
	size, _ := img.Size()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}
}

func referrerTypes(refs []oci.Referrer) map[string]string {
	out := map[string]string{}
	for _, r := range refs {
		out[string(r.Digest)] = r.ArtifactType
	}
	return out
}

func TestReferrersFromAPI(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	subject := pushSubject(t, up, "library/alpine")
	sbom := up.PushReferrer(t, "library/alpine", subject, testregistry.Referrer{ArtifactType: "application/vnd.test.sbom",
		Annotations: map[string]string{"org.test.kind": "sbom"}})
	sig := up.PushReferrer(t, "library/alpine", subject, testregistry.Referrer{ArtifactType: "application/vnd.test.sig"})
	up.SetListPaging(1, true)
	cl := newClient(t, up, Options{})

	got, err := cl.Referrers(context.Background(), Credentials{}, "library/alpine", oci.Digest(subject.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{sbom.Digest.String(): "application/vnd.test.sbom", sig.Digest.String(): "application/vnd.test.sig"}
	if got.TagSchema || !maps.Equal(referrerTypes(got.Referrers), want) {
		t.Errorf("Referrers = %+v, want %v from the API", got, want)
	}
	for _, r := range got.Referrers {
		if r.Digest == oci.Digest(sbom.Digest.String()) && !strings.Contains(string(r.Descriptor), `"org.test.kind":"sbom"`) {
			t.Errorf("the sbom's descriptor lost its annotations: %s", r.Descriptor)
		}
	}
	if n := up.Count("GET", testregistry.KindReferrers); n != 3 {
		t.Errorf("%d GET referrers requests, want 3 (a challenge and 2 pages)", n)
	}
	if n := up.Count("GET", testregistry.KindManifest); n != 0 {
		t.Errorf("%d manifest GETs: the referrers tag was read though the API answered", n)
	}
}

func TestReferrersFromTagSchema(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.SetReferrersAPI(false)
	subject := pushSubject(t, up, "library/alpine")
	cl := newClient(t, up, Options{})
	d := oci.Digest(subject.Digest.String())

	got, err := cl.Referrers(context.Background(), Credentials{}, "library/alpine", d)
	if err != nil || !got.TagSchema || len(got.Referrers) != 0 {
		t.Fatalf("no API, no tag: %+v, %v; want an empty list from the tag schema", got, err)
	}
	att := up.PushReferrer(t, "library/alpine", subject, testregistry.Referrer{ArtifactType: "application/vnd.test.attestation"})
	got, err = cl.Referrers(context.Background(), Credentials{}, "library/alpine", d)
	want := map[string]string{att.Digest.String(): "application/vnd.test.attestation"}
	if err != nil || !got.TagSchema || !maps.Equal(referrerTypes(got.Referrers), want) {
		t.Errorf("no API, a tag: %+v, %v; want %v", got, err, want)
	}
	// An unknown repository has no referrers either.
	got, err = cl.Referrers(context.Background(), Credentials{}, "library/nothing", d)
	if err != nil || len(got.Referrers) != 0 {
		t.Errorf("unknown repository: %+v, %v; want an empty list", got, err)
	}
}

func TestReferrersUpstreamFailure(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	subject := pushSubject(t, up, "library/alpine")
	up.SetStatus(http.StatusBadGateway)
	cl := newClient(t, up, Options{Retries: -1})
	_, err := cl.Referrers(context.Background(), Credentials{}, "library/alpine", oci.Digest(subject.Digest.String()))
	checkErr(t, "referrers on a failing upstream", err, oci.ErrUnavailable, 502)
	if n := up.Count("GET", testregistry.KindManifest); n != 0 {
		t.Errorf("a failing referrers API fell back to the tag schema (%d manifest GETs)", n)
	}
	var e *Error
	if errors.As(err, &e) && !strings.Contains(e.Error(), "GET referrers library/alpine@"+subject.Digest.String()) {
		t.Errorf("error %q does not name the request", e)
	}
}
