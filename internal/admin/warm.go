package admin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// WarmStore holds the tags the groups keep warm.
type WarmStore interface {
	WarmEntries(ctx context.Context, groupID int64) ([]store.WarmEntry, error)
	PutWarmEntry(ctx context.Context, e store.WarmEntry) (store.WarmEntry, error)
	DeleteWarmEntry(ctx context.Context, groupID int64, image, tag string) error
	MakeWarmDue(ctx context.Context, groupID int64, image, tag string, at time.Time) (int64, error)
	WarmAuto(ctx context.Context, groupID int64) (store.WarmAuto, error)
	SetWarmAuto(ctx context.Context, a store.WarmAuto) error
	DeleteWarmAuto(ctx context.Context, groupID int64) error
}

// Warmer is the prewarming schedule (warm.Warmer).
type Warmer interface {
	// Kick asks it to look at the entries now; it never blocks.
	Kick()
}

// Limits and defaults of warm entries.
const (
	DefaultWarmEvery  = 15 * time.Minute
	MinWarmEvery      = time.Second
	MaxWarmEvery      = 7 * 24 * time.Hour
	DefaultWarmWindow = 7 * 24 * time.Hour
	MaxWarmWindow     = 90 * 24 * time.Hour
	MaxWarmTop        = 100
	// MaxWarmEntries caps the manual entries of one group.
	MaxWarmEntries = 500
)

// WarmEntry is a tag a group keeps warm, with its last check.
type WarmEntry struct {
	// Image is as pulled through the proxy ("node", "acme/tool").
	Image     string
	Tag       string
	Platforms []string // none: the platforms pulled recently, else linux/amd64
	Every     time.Duration
	Auto      bool // chosen from pull statistics
	CheckedAt *time.Time
	Digest    string
	State     string
	Message   string
	NextAt    time.Time
}

// Ref is image:tag.
func (e WarmEntry) Ref() string { return e.Image + ":" + e.Tag }

// WarmAuto keeps a group's most pulled tags warm.
type WarmAuto struct {
	Top         int
	Window      time.Duration
	Every       time.Duration
	Platforms   []string
	RefreshedAt *time.Time
}

// WarmInput configures entries being added.
type WarmInput struct {
	Platforms []string
	Every     time.Duration // 0: DefaultWarmEvery
}

// WarmAutoInput configures a group's auto-top entries.
type WarmAutoInput struct {
	Top       int
	Window    time.Duration // 0: DefaultWarmWindow
	Every     time.Duration // 0: DefaultWarmEvery
	Platforms []string
}

func warmEntryOf(e store.WarmEntry) WarmEntry {
	return WarmEntry{
		Image: proxyImage(e.Image), Tag: e.Tag, Platforms: e.Platforms, Every: e.Every, Auto: e.Auto,
		CheckedAt: e.CheckedAt, Digest: e.Digest, State: e.State, Message: e.Message, NextAt: e.NextAt,
	}
}

// proxyImage is the name a client pulls an upstream image by ("node" for
// "library/node").
func proxyImage(upstream string) string {
	if rest, ok := strings.CutPrefix(upstream, "library/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return upstream
}

// WarmEntries returns the tags a group keeps warm and its auto-top
// setting (nil when none); reading needs guest.
func (s *Service) WarmEntries(ctx context.Context, a Actor, groupPath string) ([]WarmEntry, *WarmAuto, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleGuest, "reading warm entries")
	if err != nil {
		return nil, nil, err
	}
	ws, err := s.warm()
	if err != nil {
		return nil, nil, err
	}
	rows, err := ws.WarmEntries(ctx, g.ID)
	if err != nil {
		return nil, nil, err
	}
	out := make([]WarmEntry, 0, len(rows))
	for _, e := range rows {
		out = append(out, warmEntryOf(e))
	}
	auto, err := ws.WarmAuto(ctx, g.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return out, nil, nil
	case err != nil:
		return nil, nil, err
	}
	return out, &WarmAuto{Top: auto.Top, Window: auto.Window, Every: auto.Every, Platforms: auto.Platforms, RefreshedAt: auto.RefreshedAt}, nil
}

// AddWarmEntries keeps image:tag references of a group warm (owner): new
// ones are added, existing ones take the new platforms and interval; all
// are checked soon.
func (s *Service) AddWarmEntries(ctx context.Context, a Actor, groupPath string, refs []string, in WarmInput) ([]WarmEntry, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "keeping tags warm")
	if err != nil {
		return nil, err
	}
	ws, err := s.warm()
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, invalid("name at least one image:tag to keep warm, or use --auto-top")
	}
	every, err := warmEvery(in.Every)
	if err != nil {
		return nil, err
	}
	platforms, err := validatePlatforms(in.Platforms)
	if err != nil {
		return nil, err
	}
	type key struct{ image, tag string }
	var keys []key
	var errs []error
	for _, r := range refs {
		image, tag, err := parseWarmRef(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, key{image, tag})
	}
	if err := joinInvalid(errs...); err != nil {
		return nil, err
	}
	existing, err := ws.WarmEntries(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	if len(existing)+len(keys) > MaxWarmEntries {
		have := map[key]bool{}
		for _, e := range existing {
			have[key{e.Image, e.Tag}] = true
		}
		n := len(existing)
		for _, k := range keys {
			if !have[k] {
				n++
			}
		}
		if n > MaxWarmEntries {
			return nil, refuse(ErrLimit, "group %s would keep %d tags warm, more than the %d allowed; remove some with `dproxy warm remove`", g.Path, n, MaxWarmEntries)
		}
	}
	out := make([]WarmEntry, 0, len(keys))
	for _, k := range keys {
		e, err := ws.PutWarmEntry(ctx, store.WarmEntry{GroupID: g.ID, Image: k.image, Tag: k.tag, Platforms: platforms, Every: every})
		if err != nil {
			return nil, err
		}
		out = append(out, warmEntryOf(e))
		s.log.InfoContext(ctx, "warm entry added", "group", g.Path, "image", k.image, "tag", k.tag, "every", every, "by", a.Name())
	}
	s.kickWarmer()
	return out, nil
}

// SetWarmAuto keeps a group's in.Top most pulled tags of the window warm
// (owner); the tags are chosen at the warmer's next run, then daily.
func (s *Service) SetWarmAuto(ctx context.Context, a Actor, groupPath string, in WarmAutoInput) (WarmAuto, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "keeping tags warm")
	if err != nil {
		return WarmAuto{}, err
	}
	ws, err := s.warm()
	if err != nil {
		return WarmAuto{}, err
	}
	var errs []error
	if in.Top < 1 || in.Top > MaxWarmTop {
		errs = append(errs, invalid("--auto-top must be from 1 to %d, not %d", MaxWarmTop, in.Top))
	}
	window := in.Window
	if window == 0 {
		window = DefaultWarmWindow
	}
	if window < 24*time.Hour || window > MaxWarmWindow {
		errs = append(errs, invalid("the window must be from 1d to %dd, not %s", int(MaxWarmWindow/(24*time.Hour)), window))
	}
	every, err := warmEvery(in.Every)
	errs = append(errs, err)
	platforms, err := validatePlatforms(in.Platforms)
	errs = append(errs, err)
	if err := joinInvalid(errs...); err != nil {
		return WarmAuto{}, err
	}
	if err := ws.SetWarmAuto(ctx, store.WarmAuto{GroupID: g.ID, Top: in.Top, Window: window, Every: every, Platforms: platforms}); err != nil {
		return WarmAuto{}, err
	}
	s.log.InfoContext(ctx, "auto warm set", "group", g.Path, "top", in.Top, "window", window, "every", every, "by", a.Name())
	s.kickWarmer()
	return WarmAuto{Top: in.Top, Window: window, Every: every, Platforms: platforms}, nil
}

// RemoveWarmEntry stops keeping image:tag of a group warm (owner); what is
// cached stays, as ordinary cache. ref "" with auto removes the auto-top
// setting and its entries.
func (s *Service) RemoveWarmEntry(ctx context.Context, a Actor, groupPath, ref string, auto bool) error {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "keeping tags warm")
	if err != nil {
		return err
	}
	ws, err := s.warm()
	if err != nil {
		return err
	}
	if auto {
		if ref != "" {
			return invalid("name either an image:tag or --auto, not both")
		}
		err := ws.DeleteWarmAuto(ctx, g.ID)
		if errors.Is(err, store.ErrNotFound) {
			return refuse(ErrNotFound, "group %s keeps no most-pulled tags warm", g.Path)
		}
		if err == nil {
			s.log.InfoContext(ctx, "auto warm removed", "group", g.Path, "by", a.Name())
		}
		return err
	}
	image, tag, err := parseWarmRef(ref)
	if err != nil {
		return err
	}
	err = ws.DeleteWarmEntry(ctx, g.ID, image, tag)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(ErrNotFound, "group %s does not keep %s warm; `dproxy warm list %s` shows what it does", g.Path, ref, g.Path)
	}
	if err == nil {
		s.log.InfoContext(ctx, "warm entry removed", "group", g.Path, "image", image, "tag", tag, "by", a.Name())
	}
	return err
}

// WarmNow makes a group's entries due now (owner): all, or the one of ref.
// It returns how many; the warmer checks them within seconds.
func (s *Service) WarmNow(ctx context.Context, a Actor, groupPath, ref string) (int, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "keeping tags warm")
	if err != nil {
		return 0, err
	}
	ws, err := s.warm()
	if err != nil {
		return 0, err
	}
	var image, tag string
	if ref != "" {
		if image, tag, err = parseWarmRef(ref); err != nil {
			return 0, err
		}
	}
	n, err := ws.MakeWarmDue(ctx, g.ID, image, tag, s.opts.Now())
	if err != nil {
		return 0, err
	}
	if n == 0 {
		if ref != "" {
			return 0, refuse(ErrNotFound, "group %s does not keep %s warm; add it with `dproxy warm add %s %s`", g.Path, ref, g.Path, ref)
		}
		return 0, refuse(ErrNotFound, "group %s keeps no tags warm; add some with `dproxy warm add %s <image:tag>`", g.Path, g.Path)
	}
	s.log.InfoContext(ctx, "warm run requested", "group", g.Path, "entries", n, "by", a.Name())
	s.kickWarmer()
	return int(n), nil
}

// warm returns the warm tables (Options.WarmEntries), or a refusal when
// this server was built without them.
func (s *Service) warm() (WarmStore, error) {
	if s.opts.WarmEntries == nil {
		return nil, refuse(ErrUnavailable, "this server does not keep tags warm")
	}
	return s.opts.WarmEntries, nil
}

func (s *Service) kickWarmer() {
	if s.opts.Warmer != nil {
		s.opts.Warmer.Kick()
	}
}

func warmEvery(d time.Duration) (time.Duration, error) {
	if d == 0 {
		return DefaultWarmEvery, nil
	}
	if d < MinWarmEvery || d > MaxWarmEvery || d%time.Second != 0 {
		return 0, invalid("--every must be whole seconds from 1s to 168h, not %s", d)
	}
	return d, nil
}

var platformPattern = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)

// validatePlatforms checks os/arch[/variant] values and drops repeats.
func validatePlatforms(ps []string) ([]string, error) {
	var out []string
	for _, p := range ps {
		p = strings.TrimSpace(p)
		if !platformPattern.MatchString(p) {
			return nil, invalid("platform %q: want os/arch or os/arch/variant, like linux/amd64 or linux/arm64/v8", clip(p))
		}
		dup := false
		for _, q := range out {
			dup = dup || q == p
		}
		if !dup {
			out = append(out, p)
		}
	}
	if len(out) > 10 {
		return nil, invalid("at most 10 platforms, not %d", len(out))
	}
	return out, nil
}

// parseWarmRef reads image:tag as pulled through the proxy ("node:20")
// and returns the upstream image ("library/node") and the tag.
func parseWarmRef(ref string) (image, tag string, _ error) {
	i := strings.LastIndexByte(ref, ':')
	if i <= 0 || strings.Contains(ref[i:], "/") {
		return "", "", invalid("%q: name an image and a tag, like node:20", clip(ref))
	}
	if strings.Contains(ref, "@") {
		return "", "", invalid("%q: a digest never moves, so there is nothing to keep warm; name a tag, like node:20", clip(ref))
	}
	name, tag := ref[:i], ref[i+1:]
	if _, err := oci.ParseReference(tag); err != nil {
		return "", "", invalid("%q: %s", clip(ref), strip(err, oci.ErrTagInvalid))
	}
	if _, err := oci.ParseRepository(name); err != nil || strings.Contains(name, "dependency_proxy") {
		return "", "", invalid("%q: %q is not an image name; name it as after /dependency_proxy/containers/, like node or acme/tool", clip(ref), clip(name))
	}
	return oci.NormalizeImage(name), tag, nil
}

// String shows the entry for logs and messages.
func (e WarmEntry) String() string { return fmt.Sprintf("%s (%s)", e.Ref(), e.State) }
