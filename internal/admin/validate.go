package admin

import (
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/dproxy/dproxy/internal/oci"
)

// Input limits.
const (
	maxGroupPath      = 200 // leaves room for /dependency_proxy/containers/<image> in a 255-character name
	maxGroupDepth     = 20  // GitLab's limit
	maxUsername       = 255
	maxTokenName      = 255
	maxIdentity       = 255
	maxSecret         = 4096
	maxFreshness      = 7 * 24 * 3600 // seconds
	minTTL, maxTTL    = 1, 3650       // days
	minPasswordLength = 8
	maxPasswordLength = 72 // bcrypt's limit

	maxVirtualName        = 255
	maxVirtualDescription = 1024
	maxCacheValidityHours = 24 * 365
)

var usernameRegexp = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]*$`)

// reservedSegments may not be group path segments: they would make
// registry paths ambiguous.
var reservedSegments = []string{"dependency_proxy", "virtual_registries"}

// validateGroupPath checks a group's full path: lower-case name components
// (as image names), at most maxGroupPath characters and maxGroupDepth
// levels, no reserved segment.
func validateGroupPath(path string) error {
	if len(path) > maxGroupPath {
		return invalid("group path %q is %d characters long; the limit is %d", clip(path), len(path), maxGroupPath)
	}
	if err := oci.ValidateName(path); err != nil {
		return invalid("group path %q: use lower-case letters, digits and . _ - in segments joined by /", clip(path))
	}
	segs := strings.Split(path, "/")
	if len(segs) > maxGroupDepth {
		return invalid("group path %q is %d levels deep; the limit is %d", clip(path), len(segs), maxGroupDepth)
	}
	for _, s := range segs {
		if slices.Contains(reservedSegments, s) {
			return invalid("group path %q: %q is reserved and cannot be a group name", clip(path), s)
		}
	}
	return nil
}

func validateUsername(name string) error {
	switch {
	case name == "":
		return invalid("the username is empty")
	case len(name) > maxUsername:
		return invalid("username %q is %d characters long; the limit is %d", clip(name), len(name), maxUsername)
	case !usernameRegexp.MatchString(name):
		return invalid("username %q: use letters, digits and _ . + -, starting with a letter, digit or _", clip(name))
	}
	return nil
}

func validatePassword(pw string) error {
	switch {
	case len(pw) < minPasswordLength:
		return invalid("the password is too short: use at least %d characters", minPasswordLength)
	case len(pw) > maxPasswordLength:
		return invalid("the password is %d bytes long; the limit is %d bytes", len(pw), maxPasswordLength)
	}
	return nil
}

// validateText checks a free-text name: not blank, no control characters,
// at most limit bytes.
func validateText(what, s string, limit int) error {
	switch {
	case strings.TrimSpace(s) == "":
		return invalid("the %s is empty", what)
	case len(s) > limit:
		return invalid("the %s is %d characters long; the limit is %d", what, len(s), limit)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return invalid("the %s contains control characters", what)
	}
	return nil
}

// validateCredentials checks a Docker Hub identity and secret: both set,
// or both empty to clear. The secret never appears in a message.
func validateCredentials(identity, secret string) error {
	return validatePair(credentialNames{"identity", "an identity", "secret", "a secret"}, identity, secret)
}

// credentialNames name the two halves of a credential in messages.
type credentialNames struct{ user, aUser, secret, aSecret string }

// validatePair checks a username-like name and its secret: both set, or
// both empty to clear. The secret never appears in a message.
func validatePair(w credentialNames, user, secret string) error {
	switch {
	case user == "" && secret == "":
		return nil
	case user == "":
		return invalid("%s needs %s: set both, or both to empty strings to clear them", w.aSecret, w.aUser)
	case secret == "":
		return invalid("%s %q needs %s: set both, or both to empty strings to clear them", w.user, clip(user), w.aSecret)
	case len(user) > maxIdentity || strings.IndexFunc(user, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return invalid("%s %q: use at most %d characters without spaces", w.user, clip(user), maxIdentity)
	case len(secret) > maxSecret || strings.IndexFunc(secret, unicode.IsControl) >= 0:
		return invalid("the %s must be at most %d characters without control characters", w.secret, maxSecret)
	}
	return nil
}

// validateVirtualName checks a registry's or an upstream's name.
func validateVirtualName(what, name string) error {
	if strings.TrimSpace(name) == "" || len(name) > maxVirtualName || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return invalid("%s name %q: use 1 to %d characters without control characters", what, clip(name), maxVirtualName)
	}
	return nil
}

func validateDescription(d string) error {
	if len(d) > maxVirtualDescription || strings.IndexFunc(d, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) >= 0 {
		return invalid("the description must be at most %d characters without control characters", maxVirtualDescription)
	}
	return nil
}

func validateCacheValidity(h int) error {
	if h < 0 || h > maxCacheValidityHours {
		return invalid("cacheValidityHours must be between 0 (never ask the upstream again) and %d, got %d", maxCacheValidityHours, h)
	}
	return nil
}

// joinInvalid joins the messages of several validation errors (nil ones
// skipped) into one refusal, one message per line; nil when all are nil.
func joinInvalid(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return invalid("%s", strings.Join(msgs, "\n"))
}
