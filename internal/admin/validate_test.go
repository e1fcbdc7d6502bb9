package admin

import (
	"strings"
	"testing"
)

func TestValidateGroupPath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		path, want string // want "" = valid
	}{
		{"acme", ""},
		{"acme/platform/ci-2", ""},
		{"Acme", "lower-case"},
		{"acme//ci", "lower-case"},
		{"/acme", "lower-case"},
		{"", "lower-case"},
		{strings.Repeat("a", 201), "limit is 200"},
		{strings.Repeat("a/", 20) + "a", "levels deep"},
		{"acme/dependency_proxy", "reserved"},
		{"virtual_registries", "reserved"},
	} {
		err := validateGroupPath(c.path)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("validateGroupPath(%q) = %v, want %q", clip(c.path), err, c.want)
		}
	}
}

func TestValidateCredentials(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	for _, c := range []struct {
		identity, secret, want string
	}{
		{"", "", ""},
		{"bob", secret, ""},
		{"bob", "", "needs a secret"},
		{"", secret, "needs an identity"},
		{"bo b", secret, "without spaces"},
		{"bob", "a\nb", "control characters"},
	} {
		err := validateCredentials(c.identity, c.secret)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("validateCredentials(%q) = %v, want %q", c.identity, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}
