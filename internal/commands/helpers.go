package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/units"
)

// dispatch hands opts to runF when a test gave one, else to the real run
// function.
func dispatch[O any](cmd *cobra.Command, opts O, runF, real func(context.Context, O) error) error {
	if runF != nil {
		return runF(cmd.Context(), opts)
	}
	return real(cmd.Context(), opts)
}

// exactArgs requires n arguments and names what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &cmdutil.FlagError{Err: fmt.Errorf("%s takes %s (got %d arguments); see '%s --help'", cmd.CommandPath(), what, len(args), cmd.CommandPath())}
		}
		return nil
	}
}

// errCancelled is returned when the user answers no.
var errCancelled = errors.New("cancelled; nothing was changed")

// mustAsk reports whether a destructive action must be confirmed: not
// with yes; on a terminal, yes; without one it is refused (a usage error
// telling to add --yes), before anything is asked of the server.
func mustAsk(ios *cmdutil.IOStreams, yes bool) (bool, error) {
	if yes {
		return false, nil
	}
	if !ios.IsStdinTTY() {
		return false, &cmdutil.FlagError{Err: errors.New("refusing to ask for confirmation without a terminal; add --yes")}
	}
	return true, nil
}

// confirm asks before a destructive action: on a terminal unless yes;
// without a terminal only yes lets it proceed.
func confirm(ios *cmdutil.IOStreams, yes bool, question string) error {
	if ask, err := mustAsk(ios, yes); !ask {
		return err
	}
	ok, err := ios.Confirm(question)
	if err != nil {
		return err
	}
	if !ok {
		return errCancelled
	}
	return nil
}

// confirmTyped asks the operator to type want (a group's path, as
// `gh repo delete` asks for the repository's name) to go on: anything else
// cancels.
func confirmTyped(ios *cmdutil.IOStreams, want, what string) error {
	fmt.Fprintf(ios.ErrOut, "%s\nType %s to confirm: ", what, want)
	line, err := bufio.NewReader(ios.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the answer: %w", err)
	}
	if got := strings.TrimSpace(line); got != want {
		return fmt.Errorf("%w (%q is not %s)", errCancelled, got, want)
	}
	return nil
}

// cacheText says what a group's cache holds: "3 images and 12 blobs
// (1.2 GiB)".
func cacheText(images, blobs int, size int64) string {
	return fmt.Sprintf("%s and %s (%s)", plural(images, "image", "images"), plural(blobs, "blob", "blobs"), units.Size(size))
}

// plural is "1 image", "2 images": one or many after the number.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func enabledWord(on bool) string {
	if on {
		return "enabled"
	}
	return "disabled"
}

func enableVerb(on bool) string {
	if on {
		return "enable"
	}
	return "disable"
}

func allowedWord(on bool) string {
	if on {
		return "allowed"
	}
	return "not allowed"
}

func roleWord(r adminclient.Role) string {
	if r == "" {
		return "-"
	}
	return strings.ToLower(string(r))
}

func identityText(identity string, secretSet bool) string {
	switch {
	case identity == "":
		return "(none: the instance default, else anonymous)"
	case secretSet:
		return identity + " (secret set)"
	}
	return identity + " (no secret)"
}

func ttlText(p adminclient.TTLPolicy) string {
	if !p.Enabled {
		return fmt.Sprintf("disabled (ttl %d days)", p.TTL)
	}
	return fmt.Sprintf("enabled: entries unread for %d days are removed", p.TTL)
}

// parseSeconds accepts a duration in whole seconds with its unit ("30s",
// "5m", "1h30m") or 0. A bare number is refused, as everywhere in dproxy:
// "5" could mean seconds or minutes.
func parseSeconds(s string) (int, error) {
	if s == "0" {
		return 0, nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("%q has no unit: write %ss for seconds or %sm for minutes (a duration such as 30s, 5m or 1h; 0 for none)", s, s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d%time.Second != 0 {
		return 0, fmt.Errorf("%q is not a duration in whole seconds: want one such as 30s, 5m or 1h (0 for none)", s)
	}
	return int(d / time.Second), nil
}

// oldName keeps a renamed flag working, hidden from help and completion:
// define adds it to cmd, and using it prints a note naming the new flag
// on stderr (never stdout, which may carry an archive).
func oldName(cmd *cobra.Command, name, now string, define func()) {
	define()
	_ = cmd.Flags().MarkHidden(name)
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if c.Flags().Changed(name) {
			fmt.Fprintf(c.ErrOrStderr(), "dproxy: --%s is the old name of %s\n", name, now)
		}
		return run(c, args)
	}
}
