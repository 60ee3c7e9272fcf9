// Package hook asks an application's backend what may happen on a
// partyline server (docs/protocol.md §11.2): who a connecting client is,
// whether a user may join a room, whether a message may be posted and what
// it says. Each question is a signed JSON POST answered within a timeout.
//
// A Client refuses whenever the backend cannot answer properly: a timeout,
// a network error, a 5xx, an unexpected status or a body that is not the
// JSON expected all refuse the action with unavailable. A hook never lets
// an action through because the backend is down.
package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/webhook"
)

// DefaultTimeout bounds one hook call when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// DefaultHeaders are the request headers passed to the connect hook when
// Options.Headers is nil.
var DefaultHeaders = []string{"Cookie", "Authorization"}

// maxAnswer bounds the body of a backend's answer.
const maxAnswer = 64 << 10

// Options configures a Client. An empty URL means that question is not
// asked: connections are identified as without hooks, joins and messages
// are allowed.
type Options struct {
	ConnectURL, JoinURL, PublishURL string
	// Headers names the request headers passed to the connect hook.
	Headers []string
	// Timeout bounds one call, answer included; zero means DefaultTimeout.
	Timeout time.Duration
	// Secret signs every request (Partyline-Signature). Required.
	Secret []byte
	// Client sends the requests; nil means a client of the hook's own.
	// Redirects are never followed.
	Client *http.Client
	// Logger receives why a backend's answer was refused; nil discards.
	Logger *slog.Logger
}

// Client implements partyline.Hooks over HTTP. It is safe for concurrent
// use.
type Client struct {
	opts   Options
	client *http.Client
	log    *slog.Logger
}

var _ partyline.Hooks = (*Client)(nil)

// New returns a Client for opts, or an error naming the first bad field.
func New(opts Options) (*Client, error) {
	for name, u := range map[string]string{"connect": opts.ConnectURL, "join": opts.JoinURL, "publish": opts.PublishURL} {
		if u == "" {
			continue
		}
		if parsed, err := url.Parse(u); err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			return nil, fmt.Errorf("hook: the %s URL must be an absolute http or https URL", name)
		}
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("hook: a secret is required: every request is signed")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Headers == nil {
		opts.Headers = DefaultHeaders
	}
	client := &http.Client{Transport: newTransport()}
	if opts.Client != nil {
		copied := *opts.Client
		client = &copied
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{opts: opts, client: client, log: log}, nil
}

// maxIdlePerHost is how many idle connections to one backend a Client
// keeps for the next calls. Hooks are asked on every connect, join or
// chat, often at once: with the standard library's default of 2, most
// calls would open a connection, and leave it in TIME_WAIT.
const maxIdlePerHost = 64

// newTransport returns the standard library's default transport, keeping
// maxIdlePerHost connections to each backend.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 3 * maxIdlePerHost // one host per hook at most
	t.MaxIdleConnsPerHost = maxIdlePerHost
	return t
}

// connectRequest is the body of a connect hook call.
type connectRequest struct {
	Headers    map[string]string `json:"headers"`
	Query      map[string]string `json:"query"`
	RemoteAddr string            `json:"remote_addr"`
}

// connectAnswer is the body of a connect hook's 200.
type connectAnswer struct {
	Username string   `json:"username"`
	Rooms    []string `json:"rooms"`
	Join     []string `json:"join"`
}

// Connect implements partyline.Hooks: 200 identifies the client, 401 and
// 403 refuse it.
func (c *Client) Connect(ctx context.Context, r partyline.ConnectRequest) (*partyline.ConnectDecision, error) {
	if c.opts.ConnectURL == "" {
		return nil, nil
	}
	body := connectRequest{Headers: map[string]string{}, Query: map[string]string{}, RemoteAddr: r.RemoteAddr}
	for _, name := range c.opts.Headers {
		if v := r.Header.Get(name); v != "" {
			body.Headers[name] = v
		}
	}
	for name, values := range r.Query {
		body.Query[name] = values[0]
	}
	var answer connectAnswer
	status, err := c.call(ctx, c.opts.ConnectURL, body, &answer)
	if err != nil {
		return nil, err
	}
	switch status {
	case http.StatusOK:
		return &partyline.ConnectDecision{
			Identity: partyline.Identity{Username: answer.Username, Rooms: answer.Rooms},
			Join:     answer.Join,
		}, nil
	case http.StatusUnauthorized:
		return nil, &partyline.Error{Code: partyline.CodeUnauthorized, Message: "not allowed to connect"}
	case http.StatusForbidden:
		return nil, &partyline.Error{Code: partyline.CodeForbidden, Message: "not allowed to connect"}
	}
	return nil, c.unexpected("connect", status)
}

// Join implements partyline.Hooks: 200 allows, 403 refuses.
func (c *Client) Join(ctx context.Context, user, room string) error {
	if c.opts.JoinURL == "" {
		return nil
	}
	status, err := c.call(ctx, c.opts.JoinURL, map[string]string{"username": user, "room": room}, nil)
	if err != nil {
		return err
	}
	switch status {
	case http.StatusOK:
		return nil
	case http.StatusForbidden:
		return &partyline.Error{Code: partyline.CodeForbidden, Message: "not allowed to join " + room}
	}
	return c.unexpected("join", status)
}

// publishRequest is the body of a publish hook call.
type publishRequest struct {
	Username string          `json:"username"`
	Room     string          `json:"room"`
	Content  string          `json:"content"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// publishAnswer is the body of a publish hook's 200 or 403. Content and
// Data replace the message's when present; a data of null removes it.
type publishAnswer struct {
	Content *string         `json:"content"`
	Data    json.RawMessage `json:"data"`
	Error   struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Publish implements partyline.Hooks: 200 allows, with a body that may
// replace content and data; 403 refuses, with the backend's message.
func (c *Client) Publish(ctx context.Context, user, room string, content partyline.Content) (partyline.Content, error) {
	if c.opts.PublishURL == "" {
		return content, nil
	}
	var answer publishAnswer
	status, err := c.call(ctx, c.opts.PublishURL, publishRequest{user, room, content.Text, content.Data}, &answer)
	if err != nil {
		return partyline.Content{}, err
	}
	switch status {
	case http.StatusOK:
		if answer.Content != nil {
			content.Text = *answer.Content
		}
		switch {
		case string(answer.Data) == "null":
			content.Data = nil
		case answer.Data != nil:
			content.Data = answer.Data
		}
		return content, nil
	case http.StatusForbidden:
		message := answer.Error.Message
		if message == "" {
			message = "not allowed to post in " + room
		}
		return partyline.Content{}, &partyline.Error{Code: partyline.CodeForbidden, Message: message}
	}
	return partyline.Content{}, c.unexpected("publish", status)
}

// call POSTs body, signed, to target and decodes a 200's JSON answer into
// answer (when not nil; an empty body decodes as nothing), and a 403's as
// far as it is that JSON: a refusal stands whatever its body says. It
// returns the status, or an unavailable error when no proper answer came.
func (c *Client) call(ctx context.Context, target string, body, answer any) (int, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return 0, c.refuse("encoding the request", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return 0, c.refuse("building the request", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "partyline-hook")
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(c.opts.Secret, time.Now(), payload))
	resp, err := c.client.Do(req)
	if err != nil {
		// The URL's query and password, which may be credentials, stay
		// out of the error, which is logged.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return 0, c.refuse("calling "+webhook.Redact(target), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	switch {
	case err != nil:
		return 0, c.refuse("reading the answer of "+webhook.Redact(target), err)
	case len(data) > maxAnswer:
		return 0, c.refuse("the answer of "+webhook.Redact(target)+" is too large", nil)
	}
	if answer == nil || len(bytes.TrimSpace(data)) == 0 {
		return resp.StatusCode, nil
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if err := json.Unmarshal(data, answer); err != nil {
			return 0, c.refuse("the answer of "+webhook.Redact(target)+" is not the JSON expected", err)
		}
	case http.StatusForbidden:
		json.Unmarshal(data, answer) // a reason, if the body gives one
	}
	return resp.StatusCode, nil
}

// unexpected refuses an answer with a status the hook does not define.
func (c *Client) unexpected(hook string, status int) error {
	return c.refuse(fmt.Sprintf("the %s hook answered %d", hook, status), nil)
}

// refuse logs why the backend's answer cannot be used and returns the
// unavailable error that refuses the action.
func (c *Client) refuse(why string, err error) error {
	c.log.Warn("hook refused the action: "+why, "err", err)
	return &partyline.Error{Code: partyline.CodeUnavailable, Message: "the application's backend is unavailable", Err: err}
}
