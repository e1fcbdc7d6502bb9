package oci

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MaxNameLength is the longest repository name accepted (distribution's limit).
const MaxNameLength = 255

var (
	// nameComponent is one path component of a repository name, as in the
	// distribution spec: lower-case alphanumerics separated by '.', '_', '__' or '-'s.
	nameComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	nameRegexp    = regexp.MustCompile(`^` + nameComponent + `(?:/` + nameComponent + `)*$`)
	tagRegexp     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// algorithmRegexp is the algorithm part of a digest in the OCI image
	// spec's grammar: components of [a-z0-9] joined by + . _ -.
	algorithmRegexp = regexp.MustCompile(`^[a-z0-9]+(?:[+._-][a-z0-9]+)*$`)
)

// ValidateName checks a repository name (or any slash-separated path built
// from name components, such as a group path).
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrNameInvalid)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: %q is %d characters long, the limit is %d", ErrNameInvalid, clip(name), len(name), MaxNameLength)
	case !nameRegexp.MatchString(name):
		return fmt.Errorf("%w: %q must be lower-case letters, digits and separators (. _ __ -) in components joined by /", ErrNameInvalid, clip(name))
	}
	return nil
}

// ValidateTag checks a tag.
func ValidateTag(tag string) error {
	if !tagRegexp.MatchString(tag) {
		return fmt.Errorf("%w: %q must be 1 to 128 characters of letters, digits, _ . -, not starting with . or -", ErrTagInvalid, clip(tag))
	}
	return nil
}

// Reference is what a manifest is asked for by: a tag or a digest.
type Reference struct {
	Tag    string
	Digest Digest
}

// ParseReference parses the last path segment of a manifest URL. A
// segment shaped like a digest (an algorithm of the OCI grammar, a colon,
// anything) is parsed as one and fails with ErrDigestInvalid; anything
// else must be a tag and fails with ErrTagInvalid.
func ParseReference(s string) (Reference, error) {
	if alg, _, ok := strings.Cut(s, ":"); ok && algorithmRegexp.MatchString(alg) {
		d, err := ParseDigest(s)
		if err != nil {
			return Reference{}, err
		}
		return Reference{Digest: d}, nil
	}
	if err := ValidateTag(s); err != nil {
		return Reference{}, err
	}
	return Reference{Tag: s}, nil
}

// IsDigest reports whether the reference names a digest (immutable content).
func (r Reference) IsDigest() bool { return r.Digest != "" }

// String returns the tag or the digest.
func (r Reference) String() string {
	if r.Digest != "" {
		return string(r.Digest)
	}
	return r.Tag
}

// NormalizeImage returns the upstream repository for a Docker Hub image
// name: a name without a '/' is an official image under "library/".
func NormalizeImage(image string) string {
	if !strings.Contains(image, "/") {
		return "library/" + image
	}
	return image
}

// proxySeparator splits a dependency proxy repository name into the group
// path and the image: "acme/ci/dependency_proxy/containers/node".
const proxySeparator = "/dependency_proxy/containers/"

// ProxyRepository is a dependency proxy repository: a group's view of an
// upstream image.
type ProxyRepository struct {
	Group string // full group path
	Image string // image as requested ("alpine", "bitnami/redis")
}

// Name returns the repository name clients use.
func (r ProxyRepository) Name() string { return r.Group + proxySeparator + r.Image }

// Upstream returns the upstream repository ("library/alpine" for "alpine").
func (r ProxyRepository) Upstream() string { return NormalizeImage(r.Image) }

// ParseProxyRepository splits and validates a dependency proxy repository
// name. ok is false when name is not a dependency proxy path at all.
func ParseProxyRepository(name string) (repo ProxyRepository, ok bool, err error) {
	group, image, found := strings.Cut(name, proxySeparator)
	if !found {
		return ProxyRepository{}, false, nil
	}
	if err := ValidateName(group); err != nil {
		return ProxyRepository{}, true, fmt.Errorf("group path: %w", err)
	}
	if err := ValidateName(image); err != nil {
		return ProxyRepository{}, true, fmt.Errorf("image: %w", err)
	}
	return ProxyRepository{Group: group, Image: image}, true, nil
}

// virtualPrefix starts a container virtual registry repository name:
// "virtual_registries/container/<id>/<image>".
const virtualPrefix = "virtual_registries/container/"

// VirtualRepository is an image of a container virtual registry.
type VirtualRepository struct {
	RegistryID int64
	Image      string // as requested ("alpine", "prometheus/node-exporter")
}

// Repository returns r as the repository name a client uses for it,
// "virtual_registries/container/<id>/<image>".
func (r VirtualRepository) Repository() Repository {
	return Repository{Name: virtualPrefix + strconv.FormatInt(r.RegistryID, 10) + "/" + r.Image, Kind: VirtualName, Virtual: r}
}

// ParseVirtualRepository splits and validates a virtual registry
// repository name. ok is false when name is not a virtual registry path.
func ParseVirtualRepository(name string) (repo VirtualRepository, ok bool, err error) {
	rest, found := strings.CutPrefix(name, virtualPrefix)
	if !found {
		return VirtualRepository{}, false, nil
	}
	id, image, _ := strings.Cut(rest, "/")
	n, perr := strconv.ParseInt(id, 10, 64)
	if perr != nil || n <= 0 || strings.HasPrefix(id, "0") {
		return VirtualRepository{}, true, fmt.Errorf("%w: %q is not a virtual registry id: the path is virtual_registries/container/<id>/<image>", ErrNameInvalid, id)
	}
	if err := ValidateName(image); err != nil {
		return VirtualRepository{}, true, fmt.Errorf("image: %w", err)
	}
	return VirtualRepository{RegistryID: n, Image: image}, true, nil
}

// NameKind is which form of repository name a request uses.
type NameKind int

const (
	// PlainName is a name of no dproxy form ("library/alpine", "alpine"):
	// a Docker Hub name, served only in mirror mode.
	PlainName NameKind = iota
	// ProxyName is "<group>/dependency_proxy/containers/<image>".
	ProxyName
	// VirtualName is "virtual_registries/container/<id>/<image>".
	VirtualName
)

// Repository is a registry API repository name, validated and split once
// per request: everything after routing reads this value, never the name.
type Repository struct {
	// Name is the name as requested.
	Name string
	Kind NameKind
	// Proxy is set when Kind is ProxyName.
	Proxy ProxyRepository
	// Virtual is set when Kind is VirtualName.
	Virtual VirtualRepository
}

// ParseRepository validates a repository name and splits it by its form.
// A virtual registry name wins over a dependency proxy name. Every error
// wraps ErrNameInvalid.
func ParseRepository(name string) (Repository, error) {
	if err := ValidateName(name); err != nil {
		return Repository{}, err
	}
	if vr, ok, err := ParseVirtualRepository(name); ok {
		if err != nil {
			return Repository{}, err
		}
		return Repository{Name: name, Kind: VirtualName, Virtual: vr}, nil
	}
	if pr, ok, err := ParseProxyRepository(name); ok {
		if err != nil {
			return Repository{}, err
		}
		return Repository{Name: name, Kind: ProxyName, Proxy: pr}, nil
	}
	return Repository{Name: name, Kind: PlainName}, nil
}
