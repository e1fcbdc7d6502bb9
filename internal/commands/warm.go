package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
	"github.com/dproxy/dproxy/internal/units"
)

func newCmdWarm(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "warm <command>",
		Short: "Keep tags cached before clients ask for them",
		Long: "Keep tags of a group cached before clients ask for them (prewarming). The server checks\n" +
			"each watched tag upstream with a HEAD every interval; when it moved, it fetches the new\n" +
			"manifest and the missing layers of the entry's platforms, spending pulls only above the\n" +
			"rate-limit reserve. Reading needs guest, changes need owner.",
		Example: "  $ dproxy warm add acme node:20 python:3.12 --platform linux/amd64,linux/arm64 --every 15m\n" +
			"  $ dproxy warm add acme --auto-top 20 --window 7d\n" +
			"  $ dproxy warm list acme\n" +
			"  $ dproxy warm now acme node:20",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdWarmAdd(f, nil), newCmdWarmList(f, nil), newCmdWarmRemove(f, nil), newCmdWarmNow(f, nil))
	return cmd
}

type warmAddOptions struct {
	api
	Group  string
	Images []string
	Input  adminclient.WarmInput
}

func newCmdWarmAdd(f *cmdutil.Factory, runF func(context.Context, *warmAddOptions) error) *cobra.Command {
	opts := &warmAddOptions{api: newAPI(f)}
	var (
		platforms     []string
		every, window string
		top           int
	)
	cmd := &cobra.Command{
		Use:   "add <group> {<image:tag>... | --auto-top N} [--platform P,...] [--every 15m] [--window 7d]",
		Short: "Keep tags of a group warm",
		Long: "Keep tags of a group warm (owner). An image is named as pulled through the proxy (node:20,\n" +
			"acme/tool:v1). A tag already watched takes the new platforms and interval. With --auto-top N\n" +
			"the N tags pulled most in the --window are kept warm instead, chosen again daily.\n" +
			"--platform defaults to the platforms pulled in the window, else linux/amd64; --every to 15m\n" +
			"(whole seconds, from 1s).",
		Example: "  $ dproxy warm add acme node:20 python:3.12 --every 15m\n" +
			"  $ dproxy warm add acme node:20 --platform linux/amd64,linux/arm64\n" +
			"  $ dproxy warm add acme --auto-top 20 --window 7d",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &cmdutil.FlagError{Err: fmt.Errorf("%s takes a group path and image:tag references (or --auto-top N); see '%s --help'", cmd.CommandPath(), cmd.CommandPath())}
			}
			return nil
		},
		ValidArgsFunction: args(newCompleter(f).groups(), newCompleter(f).tags(), newCompleter(f).tags(), newCompleter(f).tags()),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group, opts.Images = args[0], args[1:]
			opts.Input = adminclient.WarmInput{GroupPath: opts.Group, Images: opts.Images, Platforms: splitPlatforms(platforms)}
			auto := cmd.Flags().Changed("auto-top")
			switch {
			case auto && len(opts.Images) > 0:
				return &cmdutil.FlagError{Err: errors.New("name image:tag references or --auto-top N, not both")}
			case !auto && len(opts.Images) == 0:
				return &cmdutil.FlagError{Err: errors.New("name at least one image:tag to keep warm, or --auto-top N")}
			case !auto && cmd.Flags().Changed("window"):
				return &cmdutil.FlagError{Err: errors.New("--window goes with --auto-top")}
			}
			if auto {
				opts.Input.AutoTop = &top
			}
			if cmd.Flags().Changed("every") {
				secs, err := parseSeconds(every)
				if err != nil || secs == 0 {
					return &cmdutil.FlagError{Err: fmt.Errorf("invalid --every %q: want a duration in whole seconds such as 30s, 15m or 1h", every)}
				}
				opts.Input.EverySeconds = &secs
			}
			if cmd.Flags().Changed("window") {
				secs, err := parseWindow(window)
				if err != nil {
					return &cmdutil.FlagError{Err: err}
				}
				opts.Input.WindowSeconds = &secs
			}
			return dispatch(cmd, opts, runF, runWarmAdd)
		},
	}
	cmd.Flags().StringSliceVar(&platforms, "platform", nil, "platforms to warm, os/arch[/variant], comma-separated or repeated (default: those pulled in the window, else linux/amd64)")
	cmd.Flags().StringVar(&every, "every", "", "check interval, such as 30s, 15m or 1h (default 15m)")
	cmd.Flags().IntVar(&top, "auto-top", 0, "keep the N tags pulled most in the window warm (1 to 100)")
	cmd.Flags().StringVar(&window, "window", "", "with --auto-top: the pulls counted, such as 7d or 48h (default 7d)")
	_ = cmd.RegisterFlagCompletionFunc("platform", commaList("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x", "windows/amd64"))
	return cmd
}

// splitPlatforms trims the --platform values and drops empty ones.
func splitPlatforms(ps []string) []string {
	var out []string
	for _, p := range ps {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseWindow reads a window of days ("7d") or a duration ("48h") in
// whole seconds.
func parseWindow(s string) (int, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("invalid --window %q: want a number of days such as 7d, or a duration such as 48h", s)
		}
		return n * 24 * 3600, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%time.Second != 0 {
		return 0, fmt.Errorf("invalid --window %q: want a number of days such as 7d, or a duration such as 48h", s)
	}
	return int(d / time.Second), nil
}

// windowText shows a window in days when it is whole days ("7d").
func windowText(secs int) string {
	if secs > 0 && secs%(24*3600) == 0 {
		return strconv.Itoa(secs/(24*3600)) + "d"
	}
	return units.Seconds(secs)
}

func runWarmAdd(ctx context.Context, opts *warmAddOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	entries, auto, err := c.AddWarmEntries(ctx, opts.Input)
	if err != nil {
		return fmt.Errorf("keep tags of %s warm: %w", opts.Group, err)
	}
	if auto != nil {
		return p.Message(auto, fmt.Sprintf("Keeping the %d most pulled tags of %s over %s warm, checked every %s; chosen at the next run, then daily",
			auto.Top, opts.Group, windowText(auto.WindowSeconds), units.Seconds(auto.EverySeconds)))
	}
	refs := make([]string, 0, len(entries))
	for _, e := range entries {
		refs = append(refs, e.Ref())
	}
	every := ""
	if len(entries) > 0 {
		every = units.Seconds(entries[0].EverySeconds)
	}
	if entries == nil {
		entries = []adminclient.WarmEntry{}
	}
	return p.Message(entries, fmt.Sprintf("Keeping %s of %s warm, checked every %s", strings.Join(refs, ", "), opts.Group, every))
}

type warmListOptions struct {
	api
	Group string
}

func newCmdWarmList(f *cmdutil.Factory, runF func(context.Context, *warmListOptions) error) *cobra.Command {
	opts := &warmListOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "list <group>",
		Aliases:           []string{"ls"},
		Short:             "List the tags a group keeps warm, with their last check",
		Example:           "  $ dproxy warm list acme\n  $ dproxy warm list acme -o json",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			return dispatch(cmd, opts, runF, runWarmList)
		},
	}
}

func runWarmList(ctx context.Context, opts *warmListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	l, err := c.WarmEntries(ctx, opts.Group)
	if err != nil {
		return fmt.Errorf("list the warm entries of %s: %w", opts.Group, err)
	}
	if l.Entries == nil {
		l.Entries = []adminclient.WarmEntry{}
	}
	t := output.Table{Header: []string{"IMAGE", "PLATFORMS", "EVERY", "STATE", "DIGEST", "LAST CHECK", "NEXT RUN"}}
	for _, e := range l.Entries {
		platforms := strings.Join(e.Platforms, ",")
		if platforms == "" {
			platforms = "(pulled)"
		}
		ref := e.Ref()
		if e.Auto {
			ref += " (auto)"
		}
		digest, checked := "", ""
		if e.Digest != nil {
			digest = shortDigest(*e.Digest)
		}
		if e.LastCheckedAt != nil {
			checked = p.Time(*e.LastCheckedAt)
		}
		t.Rows = append(t.Rows, []string{ref, platforms, units.Seconds(e.EverySeconds), e.State, digest, checked, p.Time(e.NextRunAt)})
	}
	if p.JSON() {
		return p.PrintJSON(l)
	}
	if l.Auto != nil {
		refreshed := "at the next run"
		if l.Auto.RefreshedAt != nil {
			refreshed = p.Time(*l.Auto.RefreshedAt)
		}
		fmt.Fprintf(opts.IO.ErrOut, "Auto: the %d most pulled tags over %s, every %s (chosen %s)\n",
			l.Auto.Top, windowText(l.Auto.WindowSeconds), units.Seconds(l.Auto.EverySeconds), refreshed)
	}
	return p.PrintTable(t)
}

// shortDigest is sha256: and the first 12 hex characters.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

type warmRemoveOptions struct {
	api
	Group string
	Image string
	Auto  bool
}

func newCmdWarmRemove(f *cmdutil.Factory, runF func(context.Context, *warmRemoveOptions) error) *cobra.Command {
	opts := &warmRemoveOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:     "remove <group> {<image:tag> | --auto}",
		Aliases: []string{"rm"},
		Short:   "Stop keeping a tag warm",
		Long: "Stop keeping a tag of a group warm, or with --auto its most pulled tags (owner). What is\n" +
			"cached stays, as ordinary cache.",
		Example:           "  $ dproxy warm remove acme node:20\n  $ dproxy warm remove acme --auto",
		ValidArgsFunction: args(newCompleter(f).groups(), newCompleter(f).warmEntries()),
		Args: func(cmd *cobra.Command, args []string) error {
			auto, _ := cmd.Flags().GetBool("auto")
			switch {
			case auto && len(args) != 1:
				return &cmdutil.FlagError{Err: fmt.Errorf("%s --auto takes a group path alone", cmd.CommandPath())}
			case !auto && len(args) != 2:
				return &cmdutil.FlagError{Err: fmt.Errorf("%s takes a group path and an image:tag (or --auto); see '%s --help'", cmd.CommandPath(), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			if len(args) > 1 {
				opts.Image = args[1]
			}
			return dispatch(cmd, opts, runF, runWarmRemove)
		},
	}
	cmd.Flags().BoolVar(&opts.Auto, "auto", false, "remove the auto-top setting and its entries")
	return cmd
}

// warmRemoved is what `warm remove -o json` prints.
type warmRemoved struct {
	GroupPath string `json:"groupPath"`
	Image     string `json:"image,omitempty"`
	Auto      bool   `json:"auto,omitempty"`
	Removed   bool   `json:"removed"`
}

func runWarmRemove(ctx context.Context, opts *warmRemoveOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	what := opts.Image
	if opts.Auto {
		what = "the most pulled tags"
	}
	if err := c.RemoveWarmEntry(ctx, opts.Group, opts.Image, opts.Auto); err != nil {
		return fmt.Errorf("stop keeping %s of %s warm: %w", what, opts.Group, err)
	}
	return p.Message(warmRemoved{GroupPath: opts.Group, Image: opts.Image, Auto: opts.Auto, Removed: true},
		fmt.Sprintf("No longer keeping %s of %s warm; what is cached stays", what, opts.Group))
}

type warmNowOptions struct {
	api
	Group string
	Image string
}

func newCmdWarmNow(f *cmdutil.Factory, runF func(context.Context, *warmNowOptions) error) *cobra.Command {
	opts := &warmNowOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:   "now <group> [<image:tag>]",
		Short: "Check a group's warm entries now",
		Long: "Check a group's warm entries now instead of at their next run (owner): all of them, or\n" +
			"the one named. `dproxy warm list` shows the outcome.",
		Example:           "  $ dproxy warm now acme\n  $ dproxy warm now acme node:20",
		ValidArgsFunction: args(newCompleter(f).groups(), newCompleter(f).warmEntries()),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return &cmdutil.FlagError{Err: fmt.Errorf("%s takes a group path and optionally an image:tag (got %d arguments); see '%s --help'", cmd.CommandPath(), len(args), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			if len(args) > 1 {
				opts.Image = args[1]
			}
			return dispatch(cmd, opts, runF, runWarmNow)
		},
	}
}

// warmQueued is what `warm now -o json` prints.
type warmQueued struct {
	GroupPath string `json:"groupPath"`
	Entries   int    `json:"entries"`
}

func runWarmNow(ctx context.Context, opts *warmNowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	n, err := c.WarmNow(ctx, opts.Group, opts.Image)
	if err != nil {
		return fmt.Errorf("check the warm entries of %s now: %w", opts.Group, err)
	}
	return p.Message(warmQueued{GroupPath: opts.Group, Entries: n},
		fmt.Sprintf("Checking %d entries of %s now; `dproxy warm list %s` shows the outcome", n, opts.Group, opts.Group))
}
