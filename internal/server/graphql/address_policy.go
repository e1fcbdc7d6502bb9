package graphql

import (
	"context"
	"errors"
	"fmt"

	"github.com/dproxy/dproxy/internal/netpolicy"
)

// checkAddress refuses an upstream URL whose host the upstream address
// policy refuses: an IP literal is decided without a lookup or a
// connection, a name when every address it resolves to is refused. This
// is the early, friendly check; every connection is checked again when it
// is made. The log gets a name's addresses, the caller does not.
func (h *Handler) checkAddress(ctx context.Context, url string) error {
	if h.opts.AddressPolicy == nil {
		return nil
	}
	err := h.opts.AddressPolicy.Validate(ctx, url)
	if err == nil {
		return nil
	}
	var ne *netpolicy.NameError
	if errors.As(err, &ne) {
		h.log.InfoContext(ctx, "virtual registry upstream refused by the address policy", "url", url,
			"addresses", fmt.Sprint(ne.Addrs), "by", principal(ctx).Name())
	}
	return fmt.Errorf("url %q: %w", clip(url), err)
}
