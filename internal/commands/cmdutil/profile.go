package cmdutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/dproxy/dproxy/internal/keyfile"
)

// Profile is what `dproxy login` saves: the server and its token.
type Profile struct {
	Server string `yaml:"server"`
	Token  string `yaml:"token,omitempty"`
}

// ProfilePath is $XDG_CONFIG_HOME/dproxy/config.yaml, or
// ~/.config/dproxy/config.yaml.
func ProfilePath(getenv func(string) string) (string, error) {
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "dproxy", "config.yaml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("find the profile: no home directory; set XDG_CONFIG_HOME: %w", err)
		}
	}
	return filepath.Join(home, ".config", "dproxy", "config.yaml"), nil
}

// LoadProfile reads the profile; a missing file is an empty profile.
func LoadProfile(getenv func(string) string) (Profile, error) {
	path, err := ProfilePath(getenv)
	if err != nil {
		return Profile{}, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Profile{}, nil
	}
	if err != nil {
		return Profile{}, fmt.Errorf("read profile %s: %w", path, err)
	}
	var p Profile
	if err := yaml.Unmarshal(b, &p); err != nil {
		return Profile{}, fmt.Errorf("read profile %s: %w; fix or remove it and run `dproxy login`", path, err)
	}
	return p, nil
}

// SaveProfile writes the profile with mode 0600 (its folder 0700),
// atomically: a crash leaves the old file or the new one. It returns the
// path written.
func SaveProfile(getenv func(string) string, p Profile) (string, error) {
	path, err := ProfilePath(getenv)
	if err != nil {
		return "", err
	}
	b, err := yaml.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode profile: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create profile folder %s: %w", dir, err)
	}
	err = keyfile.WriteAtomic(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("write profile: %w", err)
	}
	return path, nil
}
