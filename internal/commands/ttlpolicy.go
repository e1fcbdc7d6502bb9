package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
)

// TTL bounds in days, as the server enforces them.
const (
	minTTLDays = 1
	maxTTLDays = 3650
)

func newCmdTTLPolicy(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ttl-policy <command>",
		Short: "Manage how long unread cache entries of a group are kept",
		Example: "  $ dproxy ttl-policy set acme --enabled --ttl 30\n" +
			"  $ dproxy ttl-policy show acme",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdTTLPolicySet(f, nil), newCmdTTLPolicyShow(f, nil))
	return cmd
}

type ttlPolicySetOptions struct {
	api
	Group   string
	Enabled *bool
	TTL     *int
}

func newCmdTTLPolicySet(f *cmdutil.Factory, runF func(context.Context, *ttlPolicySetOptions) error) *cobra.Command {
	opts := &ttlPolicySetOptions{api: newAPI(f)}
	var enabled bool
	var ttl string
	cmd := &cobra.Command{
		Use:   "set <group> [--enabled[=false]] [--ttl DAYS]",
		Short: "Change a group's image TTL policy",
		Long: "Change a group's image TTL policy (owner): with the policy enabled, cached manifests and\n" +
			"blobs not read for --ttl days (1 to 3650) are removed.",
		Example: "  $ dproxy ttl-policy set acme --enabled --ttl 30\n" +
			"  $ dproxy ttl-policy set acme --enabled=false",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			if cmd.Flags().Changed("enabled") {
				opts.Enabled = &enabled
			}
			if cmd.Flags().Changed("ttl") {
				days, err := parseTTL(ttl)
				if err != nil {
					return &cmdutil.FlagError{Err: err}
				}
				opts.TTL = &days
			}
			if opts.Enabled == nil && opts.TTL == nil {
				return &cmdutil.FlagError{Err: errors.New("nothing to change: give --enabled[=false] and/or --ttl DAYS")}
			}
			return dispatch(cmd, opts, runF, runTTLPolicySet)
		},
	}
	cmd.Flags().BoolVar(&enabled, "enabled", false, "turn the policy on (--enabled=false turns it off)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "days an entry may go unread before it is removed (1 to 3650)")
	return cmd
}

// parseTTL checks a TTL in days before anything is sent.
func parseTTL(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("invalid --ttl %q: want a whole number of days from %d to %d", s, minTTLDays, maxTTLDays)
	}
	if n < minTTLDays || n > maxTTLDays {
		return 0, fmt.Errorf("invalid --ttl %d: want a number of days from %d to %d", n, minTTLDays, maxTTLDays)
	}
	return n, nil
}

func runTTLPolicySet(ctx context.Context, opts *ttlPolicySetOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	pol, err := c.UpdateTTLPolicy(ctx, adminclient.TTLPolicyInput{GroupPath: opts.Group, Enabled: opts.Enabled, TTL: opts.TTL})
	if err != nil {
		return fmt.Errorf("set the TTL policy of %s: %w", opts.Group, err)
	}
	return printTTLPolicy(opts.api, opts.Group, pol)
}

type ttlPolicyShowOptions struct {
	api
	Group string
}

func newCmdTTLPolicyShow(f *cmdutil.Factory, runF func(context.Context, *ttlPolicyShowOptions) error) *cobra.Command {
	opts := &ttlPolicyShowOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "show <group>",
		Short:             "Show a group's image TTL policy",
		Example:           "  $ dproxy ttl-policy show acme -o json",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			return dispatch(cmd, opts, runF, runTTLPolicyShow)
		},
	}
}

func runTTLPolicyShow(ctx context.Context, opts *ttlPolicyShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	g, err := c.Group(ctx, opts.Group)
	if err != nil {
		return err
	}
	pol := adminclient.TTLPolicy{}
	if g.TTLPolicy != nil {
		pol = *g.TTLPolicy
	}
	return printTTLPolicy(opts.api, opts.Group, pol)
}

func printTTLPolicy(a api, group string, pol adminclient.TTLPolicy) error {
	p, err := a.Printer()
	if err != nil {
		return err
	}
	updated := ""
	if pol.UpdatedAt != nil {
		updated = p.Time(*pol.UpdatedAt)
	}
	return p.PrintFields(pol, []output.Field{
		{Name: "Group", Value: group},
		{Name: "Enabled", Value: strconv.FormatBool(pol.Enabled)},
		{Name: "TTL (days)", Value: strconv.Itoa(pol.TTL)},
		{Name: "Updated", Value: updated},
	})
}
