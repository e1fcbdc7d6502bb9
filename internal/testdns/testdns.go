// Package testdns is a DNS resolver for tests that answers from a table in
// memory: a *net.Resolver whose queries never leave the process. Names not
// in the table do not exist (NXDOMAIN); names in /etc/hosts (localhost)
// are answered from there first, as by any Go resolver. A test changes an
// answer while a server runs to play DNS rebinding.
//
// Only tests import it. It must not import any other dproxy package.
package testdns

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// Table maps names to addresses. It is safe for concurrent use.
type Table struct {
	mu      sync.Mutex
	hosts   map[string][]netip.Addr
	queries map[string]int
}

// New returns an empty table.
func New() *Table {
	return &Table{hosts: map[string][]netip.Addr{}, queries: map[string]int{}}
}

// Set makes host resolve to addrs (none: host does not exist).
func (t *Table) Set(host string, addrs ...string) {
	as := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		as[i] = netip.MustParseAddr(a)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hosts[canonical(host)] = as
}

// Queries returns how many questions about host the table answered.
func (t *Table) Queries(host string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.queries[canonical(host)]
}

func canonical(host string) string { return strings.ToLower(strings.TrimSuffix(host, ".")) + "." }

// Resolver returns a resolver that asks this table.
func (t *Table) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go t.serve(server)
		return client, nil
	}}
}

// serve answers the DNS queries of one connection, framed as over TCP
// (a length, then the message): the Go resolver frames them so on a
// connection that is not a net.PacketConn.
func (t *Table) serve(conn net.Conn) {
	defer conn.Close()
	for {
		var n [2]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(conn, msg); err != nil {
			return
		}
		res, err := t.answer(msg)
		if err != nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(res)))
		if _, err := conn.Write(append(out, res...)); err != nil {
			return
		}
	}
}

// answer answers the first question of msg from the table.
func (t *Table) answer(msg []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(q.Name.String())
	t.mu.Lock()
	addrs, ok := t.hosts[name]
	t.queries[name]++
	t.mu.Unlock()

	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, a := range addrs {
		rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
