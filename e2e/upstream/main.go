// Command upstream runs the end-to-end suite's Docker-Hub-like upstream
// registry as a process (internal/testregistry: a real registry behind a
// Docker v2 token service) and a small control server reporting the
// upstream's request counts, so the suite can check that a warm cache
// makes no upstream blob fetch, and capping its bandwidth, so a pull can be
// watched while it runs.
//
// With -seed REPO it first pushes a small OCI image (a config and one
// layer) to REPO under the tags of -seed-tags, for suites that only pull
// (the OCI conformance suite), and adds what they need to know to the env
// file: SEED_REPO, SEED_TAGS (space-separated), SEED_MANIFEST, SEED_CONFIG
// and SEED_LAYER.
//
// It also runs an OpenID Connect issuer, as a CI system does
// (internal/testoidc), and mints ID tokens on the control server for the
// suite's CI sign-in round.
//
// It listens only on 127.0.0.1, writes its addresses to the -env file as
// shell assignments once it serves, and runs until SIGINT or SIGTERM.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/dproxy/dproxy/internal/testoidc"
	"github.com/dproxy/dproxy/internal/testregistry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run() error {
	envFile := flag.String("env", "", "write UPSTREAM_URL, UPSTREAM_PUSH, UPSTREAM_CONTROL and OIDC_ISSUER to this file once serving (required)")
	users := flag.String("users", "", "comma-separated user:password pairs the token service accepts besides anonymous requests")
	seedRepo := flag.String("seed", "", "push a small OCI image to this repository before serving")
	seedTags := flag.String("seed-tags", "tagtest0,tagtest1,tagtest2,tagtest3", "comma-separated tags of the -seed image")
	flag.Parse()
	if *envFile == "" {
		return fmt.Errorf("-env FILE is required")
	}
	opts := testregistry.Options{Users: map[string]string{}}
	for _, pair := range strings.Split(*users, ",") {
		if pair == "" {
			continue
		}
		u, p, ok := strings.Cut(pair, ":")
		if !ok || u == "" || p == "" {
			return fmt.Errorf("-users: %q is not user:password", pair)
		}
		opts.Users[u] = p
	}

	up := testregistry.Start(opts)
	defer up.Close()
	var seeded string
	if *seedRepo != "" {
		var err error
		if seeded, err = seed(up.PushURL(), *seedRepo, strings.Split(*seedTags, ",")); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the control server: %w", err)
	}
	mux := http.NewServeMux()
	// GET /-/counts: {"GET blob": 3, "HEAD manifest": 5, ...}
	mux.HandleFunc("GET /-/counts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(up.Counts())
	})
	// POST /-/reset zeroes the counts.
	mux.HandleFunc("POST /-/reset", func(w http.ResponseWriter, r *http.Request) {
		up.ResetCounts()
		w.WriteHeader(http.StatusNoContent)
	})
	// POST /-/id-token?aud=A&sub=S&claim=k=v...: an RS256 ID token of the
	// issuer, valid for 10 minutes, with the claims given.
	issuer := testoidc.Start()
	defer issuer.Close()
	mux.HandleFunc("POST /-/id-token", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		claims := issuer.Claims(q.Get("sub"), q.Get("aud"), time.Now(), 10*time.Minute)
		for _, kv := range q["claim"] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				http.Error(w, "claim must be key=value", http.StatusBadRequest)
				return
			}
			claims[k] = v
		}
		fmt.Fprint(w, issuer.Token(testoidc.RS256, claims))
	})
	// POST /-/bandwidth?bytes-per-second=N caps the throughput of blob
	// bodies (0: unlimited), so a pull can be watched while it runs.
	mux.HandleFunc("POST /-/bandwidth", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("bytes-per-second"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bytes-per-second must be a number of bytes, 0 for unlimited", http.StatusBadRequest)
			return
		}
		up.SetBandwidth(n)
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	env := fmt.Sprintf("UPSTREAM_URL=%s\nUPSTREAM_PUSH=%s\nUPSTREAM_CONTROL=http://%s\nOIDC_ISSUER=%s\n%s", up.URL, up.PushURL(), ln.Addr(), issuer.URL, seeded)
	tmp := *envFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(env), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, *envFile); err != nil {
		return fmt.Errorf("write %s: %w", *envFile, err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}

// seed pushes an OCI image manifest with an OCI config and one random
// layer to repo at pushURL under tags, and returns its env assignments.
func seed(pushURL, repo string, tags []string) (string, error) {
	layer, err := random.Layer(1024, types.OCILayer)
	if err != nil {
		return "", fmt.Errorf("seed: make a layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layer)
	if err != nil {
		return "", fmt.Errorf("seed: make the image: %w", err)
	}
	host := strings.TrimPrefix(pushURL, "http://")
	for _, tag := range tags {
		ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure, name.StrictValidation)
		if err != nil {
			return "", fmt.Errorf("seed: -seed %q, tag %q: %w", repo, tag, err)
		}
		if err := remote.Write(ref, img); err != nil {
			return "", fmt.Errorf("seed: push %s: %w", ref, err)
		}
	}
	manifest, err := img.Digest()
	if err != nil {
		return "", err
	}
	config, err := img.ConfigName()
	if err != nil {
		return "", err
	}
	ld, err := layer.Digest()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("SEED_REPO=%s\nSEED_TAGS='%s'\nSEED_MANIFEST=%s\nSEED_CONFIG=%s\nSEED_LAYER=%s\n",
		repo, strings.Join(tags, " "), manifest, config, ld), nil
}
