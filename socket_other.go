//go:build !linux

package partyline

import "net"

// adopt reports false: there is no poller here, and each connection keeps
// its net.Conn and a reader goroutine.
func (c *Conn) adopt(net.Conn) bool { return false }
