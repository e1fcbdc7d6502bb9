package commands

import (
	"fmt"
	"io"
	"strings"
)

// ciSnippet is what ci-env --oidc / --github print for a group.
type ciSnippet struct {
	Audience string // the server's external URL: the ID token's aud
	Server   string // host:port to log in to
	Prefix   string // the group's image prefix (its own, not the top-level one)
	Group    string
}

// trustHint is the ci-trust command a snippet needs, for its header.
func (s ciSnippet) trustHint(name, issuer, claim string) string {
	return fmt.Sprintf("dproxy ci-trust add %s --issuer %s --audience %s --group %s --claim %s", name, issuer, s.Audience, s.Group, claim)
}

// writeGitLabOIDC prints a .gitlab-ci.yml snippet: the job asks GitLab for
// an ID token with the server as audience and logs in with it.
func writeGitLabOIDC(w io.Writer, s ciSnippet) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# .gitlab-ci.yml: pull through dproxy with the job's own ID token; no secret is stored.
# dproxy must trust your GitLab's ID tokens for group %[4]s (an owner or instance admin, once):
#   %[5]s
# Replace https://gitlab.example.com with your GitLab's URL (the tokens' iss).

variables:
  DPROXY_SERVER: "%[2]s"
  DPROXY_IMAGE_PREFIX: "%[3]s"

# Docker-in-Docker builds: log in with the ID token, then pull and build.
build:
  image: docker:27
  services:
    - docker:27-dind
  id_tokens:
    DPROXY_ID_TOKEN:
      aud: "%[1]s"
  script:
    - echo "$DPROXY_ID_TOKEN" | docker login "$DPROXY_SERVER" -u ci --password-stdin
    - docker pull "$DPROXY_IMAGE_PREFIX/alpine:latest"
    - docker build --build-arg BASE="$DPROXY_IMAGE_PREFIX/alpine:latest" .

# The job's own image (image: below) is pulled by the runner before the job runs, with the
# credentials of DOCKER_AUTH_CONFIG. The job's ID token is not available to the runner then, so
# for the job image use a deploy token instead:
#   dproxy ci-env %[4]s -o dockerconfig --create-deploy-token   (as the DOCKER_AUTH_CONFIG variable)
# or let the group allow anonymous pulls (dproxy group update %[4]s --allow-anonymous-pull).
test:
  image: "%[3]s/alpine:latest"
  script:
    - echo pulled through dproxy
`, s.Audience, s.Server, s.Prefix, s.Group, s.trustHint("gitlab", "https://gitlab.example.com", "ref_protected=true"))
	_, err := io.WriteString(w, b.String())
	return err
}

// writeGitHubOIDC prints a GitHub Actions workflow snippet: the job gets
// an ID token for the server as audience and logs in with
// docker/login-action.
func writeGitHubOIDC(w io.Writer, s ciSnippet) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# GitHub Actions: pull through dproxy with the job's own ID token; no secret is stored.
# dproxy must trust GitHub's ID tokens for group %[4]s (an owner or instance admin, once):
#   %[5]s
# Replace acme/* with your repositories (the tokens' repository claim, owner/name).

permissions:
  id-token: write   # lets the job ask for an ID token
  contents: read

jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: Get an ID token for dproxy
        id: dproxy-token
        uses: actions/github-script@v7
        with:
          script: core.setOutput('token', await core.getIDToken('%[1]s'))
      - uses: docker/login-action@v3
        with:
          registry: %[2]s
          username: ci
          password: ${{ steps.dproxy-token.outputs.token }}
      - run: docker pull %[3]s/alpine:latest
`, s.Audience, s.Server, s.Prefix, s.Group, s.trustHint("github", "https://token.actions.githubusercontent.com", "'repository=acme/*'"))
	_, err := io.WriteString(w, b.String())
	return err
}
