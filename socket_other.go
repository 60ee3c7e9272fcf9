//go:build !linux

package partyline

import "net"

// msgNoSignal is 0: not every system has MSG_NOSIGNAL.
const msgNoSignal = 0

// adopt reports false: there is no poller here, and each connection keeps
// its net.Conn and a reader goroutine.
func (c *Conn) adopt(net.Conn) bool { return false }

// polled reports false: no socket is adopted here.
func (c *Conn) polled() bool { return false }

// leavePoller does nothing: no socket is adopted here.
func (c *Conn) leavePoller() {}
