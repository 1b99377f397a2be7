//go:build !linux

package virtual

import "net"

// quickAcker is a no-op outside Linux (TCP_QUICKACK is Linux-only).
type quickAcker struct{}

func newQuickAcker(net.Conn) quickAcker { return quickAcker{} }

func (quickAcker) arm() {}
