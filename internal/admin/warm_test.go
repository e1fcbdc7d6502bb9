package admin

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseWarmRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, image, tag string
		err            string // part of the refusal; "" when accepted
	}{
		{in: "node:20", image: "library/node", tag: "20"},
		{in: "library/node:20", image: "library/node", tag: "20"},
		{in: "acme/tool:v1.2", image: "acme/tool", tag: "v1.2"},
		{in: "registry:5000/x", err: "name an image and a tag"},
		{in: "node", err: "name an image and a tag"},
		{in: ":20", err: "name an image and a tag"},
		{in: "node@sha256:" + strings.Repeat("a", 64), err: "a digest never moves"},
		{in: "node:-bad", err: "node:-bad"},
		{in: "Node:20", err: "is not an image name"},
		{in: "acme/dependency_proxy/containers/node:20", err: "is not an image name"},
	} {
		image, tag, err := parseWarmRef(tc.in)
		switch {
		case tc.err == "" && (err != nil || image != tc.image || tag != tc.tag):
			t.Errorf("parseWarmRef(%q) = %q, %q, %v; want %q, %q", tc.in, image, tag, err, tc.image, tc.tag)
		case tc.err != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseWarmRef(%q) error = %v; want an ErrInvalid saying %q", tc.in, err, tc.err)
		}
	}
}

func TestWarmSettingsValidation(t *testing.T) {
	t.Parallel()
	if got, err := validatePlatforms([]string{"linux/amd64", " linux/arm64/v8 ", "linux/amd64"}); err != nil || strings.Join(got, ",") != "linux/amd64,linux/arm64/v8" {
		t.Errorf("validatePlatforms = %v, %v; want the two, trimmed, once each", got, err)
	}
	for _, bad := range []string{"amd64", "linux/", "Linux/amd64", "linux/amd64/v8/x"} {
		if _, err := validatePlatforms([]string{bad}); err == nil {
			t.Errorf("validatePlatforms(%q) accepted", bad)
		}
	}
	for _, tc := range []struct {
		in   time.Duration
		want time.Duration
		bad  bool
	}{
		{in: 0, want: DefaultWarmEvery},
		{in: time.Second, want: time.Second},
		{in: 15 * time.Minute, want: 15 * time.Minute},
		{in: 1500 * time.Millisecond, bad: true},
		{in: 8 * 24 * time.Hour, bad: true},
		{in: -time.Second, bad: true},
	} {
		got, err := warmEvery(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("warmEvery(%s) = %s, %v; want %s (refused: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
