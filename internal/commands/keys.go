package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/lifecycle"
)

func newCmdKeys(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys <command>",
		Short: "Rotate the keys of a data dir",
		Long: "Rotate the keys in a data dir while no server uses it: the secret key that seals stored\n" +
			"secrets, and the key that signs registry tokens. Stop the server first, start it after.",
		Example: "  $ dproxy keys rotate-secret --data-dir /var/lib/dproxy\n" +
			"  $ dproxy keys rotate-jwt --data-dir /var/lib/dproxy",
		Args: noArgs,
		RunE: nounHelp,
	}
	cmd.AddCommand(newCmdKeysRotateSecret(ios, nil), newCmdKeysRotateJWT(ios, nil))
	return cmd
}

type keysRotateOptions struct {
	IO      *cmdutil.IOStreams
	DataDir string
	Keep    time.Duration // rotate-jwt: how long the old key verifies
	Now     func() time.Time
}

func newCmdKeysRotateSecret(ios *cmdutil.IOStreams, runF func(context.Context, *keysRotateOptions) error) *cobra.Command {
	opts := &keysRotateOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "rotate-secret",
		Short: "Replace the secret key and re-seal every stored secret with the new one",
		Long: "Replace <data-dir>/secret.key with a new key and re-seal every stored secret (Docker Hub\n" +
			"secrets, upstream passwords, shared keys) in one transaction. The new key is written to\n" +
			"secret.key.next first; a server refuses to start while that file exists, and running the\n" +
			"command again finishes an interrupted rotation. Stop the server first.",
		Example: "  $ dproxy keys rotate-secret --data-dir /var/lib/dproxy",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runKeysRotateSecret(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "data dir whose key to rotate (default $DPROXY_DATA_DIR or ./dproxy-data)")
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}

func runKeysRotateSecret(ctx context.Context, opts *keysRotateOptions) error {
	if _, err := existingDataDir(opts.DataDir); err != nil {
		return err
	}
	n, err := lifecycle.RotateSecretKey(ctx, opts.DataDir)
	if errors.Is(err, lifecycle.ErrDataDirInUse) {
		return &cmdutil.FlagError{Err: err}
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "rotated the secret key of %s: re-sealed %d secrets; back up the data dir again, older archives hold the old key\n", opts.DataDir, n)
	return err
}

func newCmdKeysRotateJWT(ios *cmdutil.IOStreams, runF func(context.Context, *keysRotateOptions) error) *cobra.Command {
	opts := &keysRotateOptions{IO: ios, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "rotate-jwt",
		Short: "Replace the key that signs registry tokens; tokens of the old key stay valid until they expire",
		Long: "Replace <data-dir>/jwt.pem with a new key. The old public key is kept in jwt-previous.pem\n" +
			"for --keep (default: the lifetime of a refresh token), so the tokens it signed verify until\n" +
			"they expire; after that it is dropped. Stop the server first, start it after.",
		Example: "  $ dproxy keys rotate-jwt --data-dir /var/lib/dproxy",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Keep < auth.DefaultTokenTTL {
				return &cmdutil.FlagError{Err: fmt.Errorf("--keep %s is shorter than a token's lifetime: tokens would stop working before they expire", opts.Keep)}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runKeysRotateJWT(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "data dir whose key to rotate (default $DPROXY_DATA_DIR or ./dproxy-data)")
	cmd.Flags().DurationVar(&opts.Keep, "keep", auth.DefaultRefreshTTL+auth.DefaultLeeway, "how long tokens of the old key stay valid")
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}

func runKeysRotateJWT(_ context.Context, opts *keysRotateOptions) error {
	cfg, err := existingDataDir(opts.DataDir)
	if err != nil {
		return err
	}
	lock, err := lifecycle.TryExclusive(opts.DataDir)
	if errors.Is(err, lifecycle.ErrDataDirInUse) {
		return &cmdutil.FlagError{Err: fmt.Errorf("%s: %w: stop it first", opts.DataDir, err)}
	}
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	defer lock.Unlock()
	if err := auth.RotateSigningKey(cfg.JWTKeyPath(), cfg.PreviousJWTKeysPath(), opts.Keep, opts.Now()); err != nil {
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "rotated the JWT signing key of %s: tokens of the old key stay valid until %s\n",
		opts.DataDir, opts.Now().Add(opts.Keep).UTC().Format(time.RFC3339))
	return err
}
