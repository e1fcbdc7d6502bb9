package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// Credentials authenticate to the upstream; the zero value is anonymous.
type Credentials struct {
	Username, Password string
	// Label names the credentials in errors that reach registry clients,
	// for credentials the client may not know of (the instance default);
	// the username when empty.
	Label string
}

// InstanceDefault returns the instance default credentials, labelled so
// that errors never show pullers or group owners the operator's identity.
func InstanceDefault(username, password string) Credentials {
	return Credentials{Username: username, Password: password, Label: "the instance default credentials"}
}

// Named is how errors that clients see name the credentials.
func (c Credentials) Named() string {
	if c.anonymous() {
		return AnonymousID
	}
	if c.Label != "" {
		return c.Label
	}
	return c.ID()
}

// AnonymousID is the ID of the zero Credentials.
const AnonymousID = "anonymous"

// ID is a stable identifier of the credentials that never contains the
// password: AnonymousID or the username.
func (c Credentials) ID() string {
	if c.Username == "" {
		return AnonymousID
	}
	return c.Username
}

func (c Credentials) anonymous() bool { return c.Username == "" && c.Password == "" }

// cacheKey identifies the credentials in the token cache: a changed password
// never reuses a token obtained with the old one.
func (c Credentials) cacheKey() string {
	sum := sha256.Sum256([]byte(c.Username + "\x00" + c.Password))
	return c.ID() + "\x00" + hex.EncodeToString(sum[:16])
}

// challenge is a parsed WWW-Authenticate header.
type challenge struct {
	scheme  string // "bearer" or "basic"
	realm   string
	service string
}

// parseChallenge returns the first Bearer or Basic challenge of the
// WWW-Authenticate values.
func parseChallenge(values []string) (challenge, bool) {
	for _, v := range values {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		scheme = strings.ToLower(scheme)
		if scheme != "bearer" && scheme != "basic" {
			continue
		}
		params := parseAuthParams(rest)
		ch := challenge{scheme: scheme, realm: params["realm"], service: params["service"]}
		if scheme == "bearer" && ch.realm == "" {
			continue
		}
		return ch, true
	}
	return challenge{}, false
}

// insufficientScope reports whether the WWW-Authenticate values carry a
// Bearer challenge with error="insufficient_scope".
func insufficientScope(values []string) bool {
	for _, v := range values {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		if strings.EqualFold(scheme, "bearer") && parseAuthParams(rest)["error"] == "insufficient_scope" {
			return true
		}
	}
	return false
}

// parseAuthParams parses `k="v", k2=v2` (RFC 7235 auth-params).
func parseAuthParams(s string) map[string]string {
	params := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return params
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return params
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			val, s = b.String(), s[min(i+1, len(s)):]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		params[key] = val
	}
}

type cachedToken struct {
	token      string
	validUntil time.Time
}

func pullScope(repo string) string { return "repository:" + repo + ":pull" }

func tokenKey(creds Credentials, scope string) string { return creds.cacheKey() + "\x00" + scope }

// authorization returns the Authorization header for a request to repo, or
// "" when no challenge was seen yet or none is needed. fromCache reports
// whether a cached token was used (a 401 then earns a fresh one).
func (c *Client) authorization(ctx context.Context, o op, creds Credentials) (header string, fromCache bool, err error) {
	c.mu.Lock()
	ch, known := c.challenge, c.challengeKnown
	c.mu.Unlock()
	if !known {
		return "", false, nil
	}
	if ch.scheme == "basic" {
		if creds.anonymous() {
			return "", false, nil
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(creds.Username, creds.Password)
		return req.Header.Get("Authorization"), false, nil
	}
	key := tokenKey(creds, pullScope(o.repo))
	c.mu.Lock()
	t, ok := c.tokens[key]
	c.mu.Unlock()
	if ok && c.opts.Now().Before(t.validUntil) {
		return "Bearer " + t.token, true, nil
	}
	tok, err := c.fetchToken(ctx, o, creds, ch, key)
	if err != nil {
		return "", false, err
	}
	return "Bearer " + tok, false, nil
}

// dropToken forgets the cached token for repo if it is still the one in
// header, so concurrent callers rejected with the same token refetch once.
func (c *Client) dropToken(creds Credentials, repo, header string) {
	key := tokenKey(creds, pullScope(repo))
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tokens[key]; ok && "Bearer "+t.token == header {
		delete(c.tokens, key)
	}
}

// fetchToken gets a token from the token service, sharing one request among
// concurrent callers with the same credentials and scope. The shared request
// does not end when the first caller's ctx does.
func (c *Client) fetchToken(ctx context.Context, o op, creds Credentials, ch challenge, key string) (string, error) {
	res := c.tokenGroup.DoChan(key, func() (any, error) {
		// A flight that ended just before this one began may have stored it.
		c.mu.Lock()
		t, ok := c.tokens[key]
		c.mu.Unlock()
		if ok && c.opts.Now().Before(t.validUntil) {
			return t.token, nil
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.ConnectTimeout+c.opts.ResponseHeaderTimeout)
		defer cancel()
		return c.requestToken(tctx, o, creds, ch, key)
	})
	select {
	case r := <-res:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", o.transportError(ctx.Err())
	}
}

func (c *Client) requestToken(ctx context.Context, o op, creds Credentials, ch challenge, key string) (string, error) {
	realm, err := url.Parse(ch.realm)
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", o.error(oci.ErrUnavailable, 0, fmt.Sprintf("token realm %q is not an http(s) URL", ch.realm), err)
	}
	if c.base.Scheme == "https" && realm.Scheme != "https" {
		return "", o.error(oci.ErrUnavailable, 0, fmt.Sprintf("refusing plain-http token realm %q of an https registry", ch.realm), nil)
	}
	q := realm.Query()
	if ch.service != "" {
		q.Set("service", ch.service)
	}
	scope := pullScope(o.repo)
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", o.error(oci.ErrUnavailable, 0, "build token request", err)
	}
	if !creds.anonymous() {
		req.SetBasicAuth(creds.Username, creds.Password)
	}
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	req.Header.Set("Accept", "application/json")

	res, err := c.hc.Do(req)
	if err != nil {
		c.opts.Metrics.UpstreamRequest(http.MethodGet, kindToken, 0)
		e := o.transportError(err)
		e.Message = "token service " + realm.Host + " failed"
		return "", e
	}
	defer res.Body.Close()
	c.opts.Metrics.UpstreamRequest(http.MethodGet, kindToken, res.StatusCode)
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		e := o.error(oci.ErrUnavailable, res.StatusCode, "", nil)
		_, detail := parseErrorBody(res.Body)
		e.Message = "the upstream token service rejected the credentials of " + creds.Named()
		if detail != "" {
			e.Message += ": " + detail
		}
		return "", e
	case res.StatusCode != http.StatusOK:
		e := o.error(oci.ErrUnavailable, res.StatusCode, "", nil)
		_, detail := parseErrorBody(res.Body)
		e.Message = "token service " + realm.Host + " failed"
		if detail != "" {
			e.Message += ": " + detail
		}
		e.retryAfter = parseRetryAfter(res.Header.Get("Retry-After"), time.Now())
		return "", e
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&body); err != nil {
		return "", o.error(oci.ErrUnavailable, res.StatusCode, "token service "+realm.Host+" answered invalid JSON", err)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" {
		return "", o.error(oci.ErrUnavailable, res.StatusCode, "token service "+realm.Host+" answered no token", nil)
	}
	// The Docker token spec's default lifetime is 60 s. A lifetime shorter
	// than twice the margin is used for half its length.
	life := time.Duration(body.ExpiresIn) * time.Second
	if life <= 0 {
		life = 60 * time.Second
	}
	validUntil := c.opts.Now().Add(life - min(c.opts.TokenExpiryMargin, life/2))
	c.mu.Lock()
	c.tokens[key] = cachedToken{token: tok, validUntil: validUntil}
	c.mu.Unlock()
	c.log.DebugContext(ctx, "upstream token issued", "host", c.host, "credential", creds.ID(), "scope", scope, "expires_in", body.ExpiresIn)
	return tok, nil
}
