package commands

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/tui"
)

type tuiOptions struct {
	api
	Refresh  time.Duration
	Activity bool
}

func newCmdTUI(f *cmdutil.Factory, runF func(context.Context, *tuiOptions) error) *cobra.Command {
	opts := &tuiOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "tui [--refresh 5s] [--activity]",
		Short: "Browse the cache interactively",
		Long: "A full-screen browser of the server's cache: groups with their size, image and blob counts\n" +
			"and TTL policy; a group's images and blobs; an image's manifest, platforms, layers (which\n" +
			"are cached) and pull reference. `a` shows what is happening now (downloads in flight with\n" +
			"their progress and clients, recent pulls), `d` charts the last hour; the header shows the\n" +
			"hit ratio, the upstream pulls saved and the Docker Hub pulls left. Delete an image, purge\n" +
			"a group or enable/disable its proxy, each after a confirmation. `?` lists the keys. It\n" +
			"needs a terminal; scripts use `dproxy cache list`. NO_COLOR turns colours off. See docs/tui.md.",
		Example: "  $ dproxy tui\n" +
			"  $ dproxy tui --activity\n" +
			"  $ dproxy tui --server https://dproxy.example.com --refresh 0",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Refresh < 0 {
				return &cmdutil.FlagError{Err: errors.New("--refresh must not be negative (0 turns auto-refresh off)")}
			}
			if !opts.IO.IsStdoutTTY() || !opts.IO.IsStdinTTY() {
				return &cmdutil.FlagError{Err: errors.New("dproxy tui needs a terminal; in scripts use `dproxy cache list <group>` (or `-o json`) instead")}
			}
			return dispatch(cmd, opts, runF, runTUI)
		},
	}
	addConnectionFlags(cmd, f, false)
	cmd.Flags().DurationVar(&opts.Refresh, "refresh", 5*time.Second, "auto-refresh period of the cache screens (0: off; the A key toggles it)")
	cmd.Flags().BoolVar(&opts.Activity, "activity", false, "start on the activity screen (downloads in flight, recent pulls)")
	return cmd
}

func runTUI(ctx context.Context, opts *tuiOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	return tui.Run(ctx, c, opts.IO.In, opts.IO.Out, tui.Options{
		RefreshEvery:  opts.Refresh,
		StartActivity: opts.Activity,
		NoColor:       os.Getenv("NO_COLOR") != "",
	})
}
