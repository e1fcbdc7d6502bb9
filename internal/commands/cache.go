package commands

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
	"github.com/dproxy/dproxy/internal/units"
)

func newCmdCache(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache <command>",
		Short: "List, purge and delete a group's cached images",
		Example: "  $ dproxy cache list acme\n" +
			"  $ dproxy cache delete acme alpine:latest\n" +
			"  $ dproxy cache purge acme --yes",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdCacheList(f, nil), newCmdCachePurge(f, nil), newCmdCacheDelete(f, nil))
	return cmd
}

type cacheListOptions struct {
	api
	Group string
	Blobs bool
	Wide  bool
	Limit int
}

func newCmdCacheList(f *cmdutil.Factory, runF func(context.Context, *cacheListOptions) error) *cobra.Command {
	opts := &cacheListOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:     "list <group> [--blobs]",
		Aliases: []string{"ls"},
		Short:   "List a group's cached images (or blobs), newest first",
		Long: "List a group's cached images, newest first: one row per image and digest, with the tags it\n" +
			"was cached under (a pull by tag and the client's pull by digest are one image). SIZE is what\n" +
			"a pull downloads, config plus layers (for a multi-platform index, its cached platforms and\n" +
			"how many of its platforms are cached); CACHED is how much of that the group holds. On a\n" +
			"terminal the digest is short and the table fits 100 columns; --wide shows whole values.",
		Example: "  $ dproxy cache list acme\n" +
			"  $ dproxy cache list acme --wide\n" +
			"  $ dproxy cache list acme --blobs -o json",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			if opts.Limit < 0 {
				return &cmdutil.FlagError{Err: fmt.Errorf("invalid --limit %d: want 0 (everything) or more", opts.Limit)}
			}
			return dispatch(cmd, opts, runF, runCacheList)
		},
	}
	cmd.Flags().BoolVar(&opts.Blobs, "blobs", false, "list blobs (layers and configs) instead of images")
	cmd.Flags().BoolVar(&opts.Wide, "wide", false, "show whole digests, image names and tags on a terminal")
	cmd.Flags().IntVar(&opts.Limit, "limit", 0, "read at most this many cached manifests (0: all); an image cached by tag and digest is two")
	return cmd
}

func runCacheList(ctx context.Context, opts *cacheListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if opts.Blobs {
		blobs, err := adminclient.Collect(opts.Limit, func(pg adminclient.Page) ([]adminclient.Blob, adminclient.PageInfo, error) {
			r, err := c.Blobs(ctx, opts.Group, pg)
			return r.Blobs, r.PageInfo, err
		})
		if err != nil {
			return fmt.Errorf("list the cached blobs of %s: %w", opts.Group, err)
		}
		t := output.Table{Header: []string{"DIGEST", "SIZE", "CACHED", "LAST READ"}}
		for _, b := range blobs {
			t.Rows = append(t.Rows, []string{b.Digest, p.Size(int64(b.Size)), p.Time(b.CreatedAt), p.Time(b.ReadAt)})
		}
		return p.Print(blobs, t)
	}
	manifests, err := adminclient.Collect(opts.Limit, func(pg adminclient.Page) ([]adminclient.Manifest, adminclient.PageInfo, error) {
		r, err := c.Manifests(ctx, opts.Group, pg)
		return r.Manifests, r.PageInfo, err
	})
	if err != nil {
		return fmt.Errorf("list the cached images of %s: %w", opts.Group, err)
	}
	images := adminclient.Images(manifests)
	if len(images) == 0 && !p.JSON() {
		g, err := c.Group(ctx, opts.Group)
		if err != nil {
			return fmt.Errorf("list the cached images of %s: %w", opts.Group, err)
		}
		fmt.Fprintf(opts.IO.ErrOut, "Nothing cached in %s yet; pull through it: docker pull %s/alpine:latest\n", opts.Group, g.ImagePrefix)
		return nil
	}
	return p.Print(images, imagesTable(p, images, opts.Wide))
}

// tableWidth is the width cache list's table fits on a terminal.
const tableWidth = 100

// imagesTable is cache list's table: one row per image and digest with
// its tags. On a terminal the digest is short and long image names and tag
// lists are cut so that the table fits tableWidth columns, unless wide;
// piped, every value is whole.
func imagesTable(p *output.Printer, images []adminclient.Image, wide bool) output.Table {
	t := output.Table{Header: []string{"IMAGE", "TAGS", "DIGEST", "SIZE", "CACHED", "LAST PULLED"}}
	short := p.TTY && !wide
	for _, im := range images {
		tags, digest := strings.Join(im.Tags, ","), im.Digest
		size := p.Size(int64(im.ImageSize))
		if p.TTY {
			tags = strings.Join(im.Tags, ", ")
			if tags == "" {
				tags = "-"
			}
			if im.Platforms > 0 {
				// An index: its cached platforms' total, and how many of
				// its platforms are cached.
				size = fmt.Sprintf("%s (%d/%d)", size, im.PlatformsCached, im.Platforms)
			}
		}
		if short {
			if _, hex, ok := strings.Cut(digest, ":"); ok && len(hex) > 12 {
				digest = hex[:12]
			}
		}
		t.Rows = append(t.Rows, []string{im.Image, tags, digest, size, p.Size(int64(im.CachedSize)), p.Time(im.ReadAt)})
	}
	if short {
		fitColumns(t, tableWidth, 0, 1)
	}
	return t
}

// fitColumns cuts the values of the columns a and b (the others are kept
// whole) so that t, boxed ("│ v │ v │"), is at most width columns wide: b
// gets up to a third of the room left, a the rest.
func fitColumns(t output.Table, width, a, b int) {
	widest := func(col int) int {
		n := utf8.RuneCountInString(t.Header[col])
		for _, r := range t.Rows {
			n = max(n, utf8.RuneCountInString(r[col]))
		}
		return n
	}
	room := width - (3*len(t.Header) + 1)
	for col := range t.Header {
		if col != a && col != b {
			room -= widest(col)
		}
	}
	wa, wb := widest(a), widest(b)
	if wa+wb <= room {
		return
	}
	wb = min(wb, max(room/3, room-wa))
	wa = room - wb
	for _, r := range t.Rows {
		r[a], r[b] = cut(r[a], max(wa, 2)), cut(r[b], max(wb, 2))
	}
}

// cut shortens s to n runes, ending in "…" when it was longer.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

type cachePurgeOptions struct {
	api
	Group string
	Yes   bool
}

func newCmdCachePurge(f *cmdutil.Factory, runF func(context.Context, *cachePurgeOptions) error) *cobra.Command {
	opts := &cachePurgeOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "purge <group> [--yes]",
		Short: "Remove every cached image and blob of a group",
		Long: "Remove every cached manifest and blob reference of a group (owner); the next pull goes\n" +
			"upstream. Asks for confirmation on a terminal unless --yes; without a terminal --yes is required.",
		Example: "  $ dproxy cache purge acme\n" +
			"  $ dproxy cache purge acme --yes",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			return dispatch(cmd, opts, runF, runCachePurge)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runCachePurge(ctx context.Context, opts *cachePurgeOptions) error {
	ask, err := mustAsk(opts.IO, opts.Yes)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if ask {
		// The question says what goes: the group's cache as it is now.
		g, err := c.Group(ctx, opts.Group)
		if err != nil {
			return err
		}
		if g.CachedImageCount == 0 && g.BlobCount == 0 {
			return p.Message(adminclient.PurgeResult{}, "Nothing is cached for "+opts.Group+": nothing to purge")
		}
		q := fmt.Sprintf("Remove %s cached for %s? Their next pulls go upstream.", cacheText(g.CachedImageCount, g.BlobCount, int64(g.TotalSizeBytes)), opts.Group)
		if err := confirm(opts.IO, false, q); err != nil {
			return err
		}
	}
	r, err := c.PurgeCache(ctx, opts.Group)
	if err != nil {
		return fmt.Errorf("purge the cache of %s: %w", opts.Group, err)
	}
	if p.JSON() {
		return p.PrintJSON(r)
	}
	_, err = fmt.Fprintf(opts.IO.Out, "Purged %s: %d manifests, %d blobs, %s freed\n",
		opts.Group, r.ManifestCount, r.BlobCount, units.Size(int64(r.FreedBytes)))
	return err
}

type cacheDeleteOptions struct {
	api
	Group     string
	Image     string
	Reference string
}

func newCmdCacheDelete(f *cmdutil.Factory, runF func(context.Context, *cacheDeleteOptions) error) *cobra.Command {
	opts := &cacheDeleteOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:   "delete <group> <image>{:<tag> | @<digest>}",
		Short: "Remove one cached image of a group",
		Long: "Remove one cached manifest of a group (owner); the next pull of it goes upstream. Its\n" +
			"layers stay cached (a group's blobs are shared by its images) until the TTL policy or a\n" +
			"purge removes them, as in GitLab.",
		Example: "  $ dproxy cache delete acme alpine:latest\n" +
			"  $ dproxy cache delete acme library/node@sha256:0123…",
		Args:              exactArgs(2, "a group path and an image reference"),
		ValidArgsFunction: args(newCompleter(f).groups(), newCompleter(f).images()),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			img, ref, err := splitImageRef(args[1])
			if err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			opts.Image, opts.Reference = img, ref
			return dispatch(cmd, opts, runF, runCacheDelete)
		},
	}
}

// splitImageRef splits "alpine:3.20" and "alpine@sha256:…" (a registry
// port is not part of these names, so the last ':' after the last '/' is
// the tag).
func splitImageRef(s string) (image, ref string, err error) {
	if i := strings.Index(s, "@"); i > 0 && i < len(s)-1 {
		return s[:i], s[i+1:], nil
	}
	slash := strings.LastIndex(s, "/")
	if i := strings.LastIndex(s, ":"); i > slash+1 && i < len(s)-1 {
		return s[:i], s[i+1:], nil
	}
	return "", "", fmt.Errorf("invalid image %q: want <image>:<tag> or <image>@<digest>, e.g. alpine:latest", s)
}

func runCacheDelete(ctx context.Context, opts *cacheDeleteOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	m, err := c.DeleteManifest(ctx, opts.Group, opts.Image, opts.Reference)
	if err != nil {
		return fmt.Errorf("delete %s:%s from the cache of %s: %w", opts.Image, opts.Reference, opts.Group, err)
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if p.JSON() {
		return p.PrintJSON(m)
	}
	_, err = fmt.Fprintf(opts.IO.Out, "Deleted %s:%s (%s) from the cache of %s\n", opts.Image, opts.Reference, m.Digest, opts.Group)
	return err
}
