package testregistry

import (
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pushes go straight to the bare registry: they are neither authenticated,
// counted nor subject to faults.

// PushRandomImage pushes an image of layers random layers of layerSize bytes
// each as repo:tag (repo like "library/alpine") and returns it.
func (u *Upstream) PushRandomImage(t testing.TB, repo, tag string, layers int, layerSize int64) v1.Image {
	t.Helper()
	img, err := u.PushRandom(repo, tag, layers, layerSize)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// PushRandom is PushRandomImage for programs that are not tests.
func (u *Upstream) PushRandom(repo, tag string, layers int, layerSize int64) (v1.Image, error) {
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		return nil, fmt.Errorf("build random image for %s:%s: %w", repo, tag, err)
	}
	ref, err := name.NewTag(u.push.Listener.Addr().String()+"/"+repo+":"+tag, name.Insecure, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("parse reference %s:%s: %w", repo, tag, err)
	}
	if err := remote.Write(ref, img); err != nil {
		return nil, fmt.Errorf("push image %s:%s: %w", repo, tag, err)
	}
	return img, nil
}

// PushImage pushes img as repo:tag.
func (u *Upstream) PushImage(t testing.TB, repo, tag string, img v1.Image) {
	t.Helper()
	ref := u.pushRef(t, repo, tag)
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push image %s:%s: %v", repo, tag, err)
	}
}

// PushIndex pushes a multi-arch OCI index (linux/amd64 and linux/arm64
// children, small random images) as repo:tag and returns it.
func (u *Upstream) PushIndex(t testing.TB, repo, tag string) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatalf("build random image for %s:%s: %v", repo, tag, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("read config of random image: %v", err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatalf("set platform of random image: %v", err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	if err := remote.WriteIndex(u.pushRef(t, repo, tag), idx); err != nil {
		t.Fatalf("push index %s:%s: %v", repo, tag, err)
	}
	return idx
}

func (u *Upstream) pushRef(t testing.TB, repo, tag string) name.Tag {
	t.Helper()
	ref, err := name.NewTag(u.push.Listener.Addr().String()+"/"+repo+":"+tag, name.Insecure, name.StrictValidation)
	if err != nil {
		t.Fatalf("parse reference %s:%s: %v", repo, tag, err)
	}
	return ref
}

// DeleteTag removes repo:tag from the registry, as an operator retiring a
// tag would.
func (u *Upstream) DeleteTag(t testing.TB, repo, tag string) {
	t.Helper()
	if err := remote.Delete(u.pushRef(t, repo, tag)); err != nil {
		t.Fatalf("delete %s:%s: %v", repo, tag, err)
	}
}
