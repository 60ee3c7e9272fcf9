// Package webhook tells an application's backend what happens on a
// partyline server (docs/protocol.md §11.1): it signs and verifies webhook
// requests (Sign, Verify) and sends the events of a partyline.EventLog to
// their URLs (Sender).
package webhook
