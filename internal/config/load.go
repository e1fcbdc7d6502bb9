package config

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

const envPrefix = "DPROXY_"

// Load builds the configuration from, lowest precedence first: Default(),
// the YAML file configFile (skipped when ""), the DPROXY_* variables in
// environ (os.Environ() form; empty values are ignored, unknown DPROXY_
// names too, as other tools share the prefix), and the flags of flags that
// were set explicitly (flags named after no key, such as --config, are
// ignored; flags may be nil). An unknown key in the file is an error naming
// it. When no source sets external-url it is derived from addr. The result
// is validated.
func Load(configFile string, flags *pflag.FlagSet, environ []string) (Config, error) {
	cfg := Default()
	byKey := fieldsByKey()
	set := make(map[string]bool)

	if configFile != "" {
		ko := koanf.New(".")
		if err := ko.Load(file.Provider(configFile), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("read config file %s: %w", configFile, err)
		}
		src := func(key string) string { return fmt.Sprintf("config file %s: key %q", configFile, key) }
		if err := apply(&cfg, ko.All(), byKey, src, set); err != nil {
			return Config{}, err
		}
	}

	ko := koanf.New(".")
	envKey := func(name, value string) (string, any) {
		key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), "_", "-"))
		if _, ok := byKey[key]; !ok || value == "" {
			return "", nil
		}
		return key, value
	}
	if err := ko.Load(env.Provider(".", env.Opt{
		Prefix:        envPrefix,
		TransformFunc: envKey,
		EnvironFunc:   func() []string { return environ },
	}), nil); err != nil {
		return Config{}, fmt.Errorf("read environment: %w", err)
	}
	src := func(key string) string { return "environment variable " + EnvVar(key) }
	if err := apply(&cfg, ko.All(), byKey, src, set); err != nil {
		return Config{}, err
	}

	if flags != nil {
		ko := koanf.New(".")
		// Without a koanf instance posflag takes only the flags that were set.
		p := posflag.ProviderWithFlag(flags, ".", nil, func(f *pflag.Flag) (string, any) {
			if _, ok := byKey[f.Name]; !ok {
				return "", nil
			}
			return f.Name, posflag.FlagVal(flags, f)
		})
		if err := ko.Load(p, nil); err != nil {
			return Config{}, fmt.Errorf("read flags: %w", err)
		}
		src := func(key string) string { return "flag --" + key }
		if err := apply(&cfg, ko.All(), byKey, src, set); err != nil {
			return Config{}, err
		}
	}

	// The standard AWS variables are the fallback for S3 credentials.
	if !set["s3-access-key-id"] && !set["s3-secret-access-key"] {
		aws := environMap(environ)
		cfg.S3AccessKeyID, cfg.S3SecretAccessKey = aws["AWS_ACCESS_KEY_ID"], aws["AWS_SECRET_ACCESS_KEY"]
	}

	cfg.ExternalURL = strings.TrimRight(cfg.ExternalURL, "/")
	if !set["external-url"] || cfg.ExternalURL == "" {
		cfg.ExternalURL = deriveExternalURL(cfg.Addr, cfg.TLSCert != "")
	}
	if !set["storage-redirect-expiry"] && cfg.TokenExpiry > 0 {
		cfg.StorageRedirectExpiry = min(cfg.StorageRedirectExpiry, cfg.TokenExpiry)
	}
	cfg.LogFormat = strings.ToLower(cfg.LogFormat)
	cfg.LogLevel = strings.ToLower(cfg.LogLevel)
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// environMap turns os.Environ() form into a map; later entries win.
func environMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

type kind int

const (
	kindString kind = iota
	kindDuration
	kindSize
	kindBool
	kindInt
	kindList
)

type field struct {
	key   string
	index int
	kind  kind
}

// fields describes Config from its koanf tags.
func fields() []field {
	t := reflect.TypeFor[Config]()
	out := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		f := field{key: sf.Tag.Get("koanf"), index: i}
		switch sf.Type {
		case reflect.TypeFor[string]():
			f.kind = kindString
		case reflect.TypeFor[time.Duration]():
			f.kind = kindDuration
		case reflect.TypeFor[int64]():
			f.kind = kindSize
		case reflect.TypeFor[bool]():
			f.kind = kindBool
		case reflect.TypeFor[int]():
			f.kind = kindInt
		case reflect.TypeFor[[]string]():
			f.kind = kindList
		default:
			panic(fmt.Sprintf("config field %s has unsupported type %s", sf.Name, sf.Type))
		}
		out = append(out, f)
	}
	return out
}

func fieldsByKey() map[string]field {
	m := make(map[string]field)
	for _, f := range fields() {
		m[f.key] = f
	}
	return m
}

// apply sets the fields named by values' keys; src names where a key came
// from, for error messages.
func apply(cfg *Config, values map[string]any, byKey map[string]field, src func(key string) string, set map[string]bool) error {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	v := reflect.ValueOf(cfg).Elem()
	for _, key := range keys {
		f, ok := byKey[key]
		if !ok {
			return fmt.Errorf("%s: unknown key%s", src(key), suggest(key, byKey))
		}
		raw := values[key]
		if raw == nil {
			continue // "key:" with no value in YAML: keep the lower layer's value
		}
		var err error
		switch f.kind {
		case kindString:
			var s string
			if s, err = toString(raw); err == nil {
				v.Field(f.index).SetString(s)
			}
		case kindDuration:
			var d time.Duration
			if d, err = toDuration(raw); err == nil {
				v.Field(f.index).SetInt(int64(d))
			}
		case kindSize:
			var n int64
			if n, err = toSize(raw); err == nil {
				v.Field(f.index).SetInt(n)
			}
		case kindBool:
			var b bool
			if b, err = toBool(raw); err == nil {
				v.Field(f.index).SetBool(b)
			}
		case kindInt:
			var n int
			if n, err = toInt(raw); err == nil {
				v.Field(f.index).SetInt(int64(n))
			}
		case kindList:
			var l []string
			if l, err = toList(raw); err == nil {
				v.Field(f.index).Set(reflect.ValueOf(l))
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", src(key), err)
		}
		set[key] = true
	}
	return nil
}

// suggest names the key the user probably meant ("data_dir" → "data-dir").
func suggest(key string, byKey map[string]field) string {
	norm := strings.ToLower(strings.ReplaceAll(key, "_", "-"))
	if _, ok := byKey[norm]; ok {
		return fmt.Sprintf(" (did you mean %q?)", norm)
	}
	return " (docs/configuration.md lists the keys)"
}

func toString(raw any) (string, error) {
	switch x := raw.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	}
	return "", fmt.Errorf("want a string, got %v (%T)", raw, raw)
}

// toList reads a list: a YAML sequence of strings, a flag's values, or one
// comma-separated string (the environment). Items are trimmed; empty ones
// are dropped. A layer's list replaces the lower layer's.
func toList(raw any) ([]string, error) {
	var items []string
	switch x := raw.(type) {
	case string:
		items = strings.Split(x, ",")
	case []string:
		for _, s := range x {
			items = append(items, strings.Split(s, ",")...)
		}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want a list of strings, got the item %v (%T)", e, e)
			}
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("want a list of strings, got %v (%T)", raw, raw)
	}
	out := []string{}
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func toBool(raw any) (bool, error) {
	switch x := raw.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("invalid boolean %q: want true or false", x)
		}
		return b, nil
	}
	return false, fmt.Errorf("want true or false, got %v (%T)", raw, raw)
}

func toDuration(raw any) (time.Duration, error) {
	switch x := raw.(type) {
	case time.Duration:
		return x, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want a number with a unit, e.g. 30s, 5m or 1h30m", x)
		}
		return d, nil
	case int, int64, uint64:
		// A bare number is ambiguous (seconds? nanoseconds?); only 0 is clear.
		if reflect.ValueOf(x).IsZero() {
			return 0, nil
		}
		return 0, fmt.Errorf("duration %v has no unit: write e.g. %vs or %vm", x, x, x)
	}
	return 0, fmt.Errorf("want a duration such as 30s, got %v (%T)", raw, raw)
}

func toSize(raw any) (int64, error) {
	switch x := raw.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("size %d is too large", x)
		}
		return int64(x), nil
	case float64:
		if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
			return 0, fmt.Errorf("size %v is not a whole number of bytes", x)
		}
		return int64(x), nil
	case string:
		return ParseSize(x)
	}
	return 0, fmt.Errorf("want a size such as 10MiB, got %v (%T)", raw, raw)
}

func toInt(raw any) (int, error) {
	switch x := raw.(type) {
	case int:
		return x, nil
	case int64:
		if x >= math.MinInt32 && x <= math.MaxInt32 {
			return int(x), nil
		}
	case uint64:
		if x <= math.MaxInt32 {
			return int(x), nil
		}
	case float64:
		if x == math.Trunc(x) && x >= math.MinInt32 && x <= math.MaxInt32 {
			return int(x), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("want a whole number, got %v", raw)
}

// unitSize returns how many bytes one unit (lower case) stands for.
func unitSize(unit string) (int64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "tb":
		return 1e12, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	case "tib":
		return 1 << 40, true
	}
	return 0, false
}

// ParseSize parses a byte count: a number, optionally with a fraction, and
// an optional unit, case-insensitive, optionally after a space. Units are
// B; KB, MB, GB, TB (powers of 1000); KiB, MiB, GiB, TiB (powers of 1024).
// The result must be a whole number of bytes that fits an int64.
// Examples: "1024", "10MiB", "50GiB", "200GB", "1.5 GiB".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	end := 0
	dot := false
	for end < len(t) && (t[end] >= '0' && t[end] <= '9' || t[end] == '.' && !dot) {
		dot = dot || t[end] == '.'
		end++
	}
	num, unit := t[:end], strings.ToLower(strings.TrimSpace(t[end:]))
	if num == "" || num == "." {
		return 0, fmt.Errorf("invalid size %q: want a number of bytes, optionally with a unit, e.g. 1024, 10MiB or 50GiB", s)
	}
	mult, ok := unitSize(unit)
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q, use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB", s, t[end:])
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n.Int64(), nil
}
