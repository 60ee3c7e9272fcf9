// Package ws is the server side of the WebSocket protocol (RFC 6455) that
// partyline needs: the opening handshake ([Check], [Upgrade]), an
// incremental parser for the frames a client sends ([Reader]), and the
// vocabulary that the server, its tests and the bench share (vocab.go):
// opcodes, close codes, and building frames ([TextFrame], [CloseFrame],
// [AppendFrame] for a client's, masked).
//
// It does no I/O of its own after the handshake. The connection's reader
// goroutine reads into its own buffer and feeds each read to a Reader, which
// unmasks complete frames in place and hands them over without copying; only
// the bytes of a frame or a fragmented message that straddle two reads are
// kept, in a slice sized for them and dropped as soon as the frame or message
// is complete. An idle Reader holds no buffer at all, so a million idle
// connections cost a million small structs.
//
// Writing frames is the caller's: server frames are unmasked and simple. No
// subprotocol is negotiated. The one extension is permessage-deflate (RFC
// 7692), only through [UpgradeWith] and only with no context takeover
// either way, so that no connection keeps compression state between
// messages: a Reader told so ([Reader.EnableDeflate]) inflates each
// compressed message alone, within its limit, and [AppendCompressedText]
// builds a compressed frame once for any number of connections. Both borrow
// flate readers and writers from pools shared by all connections.
//
// The package imports only the standard library.
package ws
