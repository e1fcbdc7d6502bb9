package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	t.Parallel()
	good := "sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		in string
		ok bool
	}{
		{good, true},
		{"sha256:" + strings.Repeat("AB", 32), false},
		{"sha256:" + strings.Repeat("a", 63), false},
		{"sha512:" + strings.Repeat("a", 128), false},
		{"md5:" + strings.Repeat("a", 32), false},
		{strings.Repeat("a", 64), false},
		{"sha256:" + strings.Repeat("g", 64), false},
		{"", false},
	}
	for _, c := range cases {
		d, err := ParseDigest(c.in)
		if c.ok != (err == nil) {
			t.Errorf("ParseDigest(%q) err = %v, want ok %v", c.in, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrDigestInvalid) {
			t.Errorf("ParseDigest(%q) err %v does not wrap ErrDigestInvalid", c.in, err)
		}
		if c.ok && (d.Hex() != strings.Repeat("ab", 32) || d.Short() != "abababababab") {
			t.Errorf("Hex/Short of %q = %q/%q", c.in, d.Hex(), d.Short())
		}
	}
}

func TestVerifier(t *testing.T) {
	t.Parallel()
	d := FromBytes([]byte("hello"))
	v := NewVerifier(d)
	v.Write([]byte("hel"))
	if v.Verified() {
		t.Fatal("verified after a prefix")
	}
	v.Write([]byte("lo"))
	if !v.Verified() || v.Sum() != d {
		t.Fatalf("not verified after the whole content: %s vs %s", v.Sum(), d)
	}
}

func TestValidateNameAndTag(t *testing.T) {
	t.Parallel()
	names := map[string]bool{
		"alpine": true, "library/alpine": true, "a/b/c-d_e.f": true, "a__b": true,
		"": false, "Alpine": false, "a//b": false, "/a": false, "a/": false, "a/../b": false, ".a": false,
		"a-": false, strings.Repeat("a", 256): false, strings.Repeat("a", 255): true,
	}
	for n, ok := range names {
		if err := ValidateName(n); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok %v", n, err, ok)
		} else if err != nil && !errors.Is(err, ErrNameInvalid) {
			t.Errorf("ValidateName(%q) does not wrap ErrNameInvalid", n)
		}
	}
	tags := map[string]bool{"latest": true, "3.12-slim": true, "V1.0": true, "_x": true,
		"": false, "-x": false, ".x": false, "a/b": false, strings.Repeat("t", 128): true, strings.Repeat("t", 129): false}
	for tag, ok := range tags {
		if err := ValidateTag(tag); (err == nil) != ok {
			t.Errorf("ValidateTag(%q) = %v, want ok %v", tag, err, ok)
		}
	}
}

func TestParseReference(t *testing.T) {
	t.Parallel()
	r, err := ParseReference("latest")
	if err != nil || r.IsDigest() || r.String() != "latest" {
		t.Errorf("tag: %+v %v", r, err)
	}
	dg := "sha256:" + strings.Repeat("0", 64)
	r, err = ParseReference(dg)
	if err != nil || !r.IsDigest() || r.String() != dg {
		t.Errorf("digest: %+v %v", r, err)
	}
	if _, err := ParseReference("sha256:zz"); !errors.Is(err, ErrDigestInvalid) {
		t.Errorf("bad digest: %v", err)
	}
	if _, err := ParseReference("-x"); !errors.Is(err, ErrTagInvalid) {
		t.Errorf("bad tag: %v", err)
	}
	// Shaped like a digest: an algorithm of the OCI grammar before the colon.
	for _, s := range []string{"sha512:" + strings.Repeat("0", 128), "sha256+b64u:abc", "md5:x"} {
		if _, err := ParseReference(s); !errors.Is(err, ErrDigestInvalid) {
			t.Errorf("ParseReference(%q) = %v, want a digest error", s, err)
		}
	}
	// Not a tag, and no algorithm before the colon: a tag error.
	for _, s := range []string{"Latest:x", ":x", ".INVALID_MANIFEST_NAME", "sha256-:x"} {
		if _, err := ParseReference(s); !errors.Is(err, ErrTagInvalid) || errors.Is(err, ErrDigestInvalid) {
			t.Errorf("ParseReference(%q) = %v, want a tag error", s, err)
		}
	}
}

func TestParseProxyRepository(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in            string
		group, image  string
		isProxy, fail bool
	}{
		{"acme/dependency_proxy/containers/alpine", "acme", "alpine", true, false},
		{"acme/ci/dependency_proxy/containers/bitnami/redis", "acme/ci", "bitnami/redis", true, false},
		{"library/alpine", "", "", false, false},
		{"Acme/dependency_proxy/containers/alpine", "", "", true, true},
		{"acme/dependency_proxy/containers/Alpine", "", "", true, true},
	}
	for _, c := range cases {
		r, ok, err := ParseProxyRepository(c.in)
		if ok != c.isProxy || (err != nil) != c.fail {
			t.Errorf("%s: ok %v err %v", c.in, ok, err)
			continue
		}
		if !c.fail && c.isProxy && (r.Group != c.group || r.Image != c.image || r.Name() != c.in) {
			t.Errorf("%s: %+v", c.in, r)
		}
	}
	r, _, _ := ParseProxyRepository("acme/dependency_proxy/containers/alpine")
	if r.Upstream() != "library/alpine" {
		t.Errorf("Upstream() = %s", r.Upstream())
	}
	if NormalizeImage("bitnami/redis") != "bitnami/redis" {
		t.Error("NormalizeImage changed a namespaced image")
	}
}
