// partyline.js — the browser (and Node ≥ 22) client of the partyline server.
//
// An ES module with no dependencies. It speaks docs/protocol.md §4: one JSON
// object per client frame, server frames split on "\n". See docs/client.md.
// It is one file on purpose, longer than the project's usual ~800 lines:
// users save /partyline.js and import it, with no bundler to join modules.
//
//   import { connect } from "/partyline.js";
//   const pl = connect({ url: "/ws", username: "alice", rooms: ["lobby"] });
//   pl.on("message", (m) => console.log(m.room, m.username, m.content));
//   await pl.send("lobby", "hello");
//
// What it guarantees, and how:
//
//  - Resume. It remembers, per room, the last seq it delivered. After a
//    reconnect it re-joins every room with `since` = that seq, so the server
//    replays what was missed. Chat messages with a seq it has already
//    delivered are dropped: each message is emitted once, in seq order.
//  - Sends while offline are queued, not rejected. They go out, in order,
//    once the connection is back and every room has caught up. A chat
//    message that was on the wire when the connection dropped is checked
//    against the replay: if the server stored it (same room, our username,
//    same content and data, a seq after the one we had seen when sending),
//    its promise resolves with that seq; otherwise it is sent again. So a
//    queued message is neither lost nor sent twice.
//  - Reconnect uses exponential backoff with jitter, and waits at least as
//    long as a close reason's "retry after Nms" asks (a 4009 slow-consumer
//    close carries one). Close 4003 (kicked) stops; 4001 (token expired)
//    stops unless `token` is a function that can fetch a new one;
//    everything else (1001 shutdown, 4009 slow consumer, network loss)
//    reconnects and resumes.
//  - Transports. It speaks WebSocket, or server-sent events where a network
//    refuses WebSocket (§12.1): a stream of events read with fetch, and one
//    POST per client frame, sent one at a time. Both carry the same frames,
//    so everything above is the same over either. When a WebSocket cannot
//    be opened twice in a row although the server answers HTTP, the client
//    moves to SSE at once; a reconnect after transportRetry ms tries
//    WebSocket again (see the transports section at the end of this file,
//    and docs/client.md).

const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
const ROOM = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** Reports whether name is a valid partyline username. */
export const validUsername = (name) => typeof name === "string" && USERNAME.test(name);

/** Reports whether name is a valid partyline room name. */
export const validRoom = (name) => typeof name === "string" && ROOM.test(name);

/** The connection states, in the order a client usually goes through them. */
export const State = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

/**
 * The error a request's promise rejects with, and the detail of "error"
 * events. `code` is a protocol error code (bad_request, not_joined,
 * rate_limited, …) or one of the library's own: disconnected, timeout,
 * closed, kicked, token_expired, queue_full, too_large, invalid_room.
 */
export class PartylineError extends Error {
  constructor(code, message, frame) {
    super(message || code);
    this.name = "PartylineError";
    this.code = code;
    this.frame = frame;
  }
}

const DEFAULTS = {
  url: "/ws",
  rooms: [],
  autoConnect: true,
  reconnect: true,
  minDelay: 500, // ms, first reconnect delay (before jitter)
  maxDelay: 30000, // ms, cap of the exponential backoff
  requestTimeout: 15000, // ms to wait for an ack once a request is on the wire
  heartbeat: 25000, // ms of silence before a ping; 0 turns the heartbeat off
  // The same over SSE, where a ping is a POST: longer than the server's
  // ping interval (54 s by default), whose ": ping" comments keep a healthy
  // stream from ever being that quiet.
  sseHeartbeat: 60000,
  queue: true, // queue sends while offline (false: reject them)
  queueLimit: 1000,
  maxMessageSize: 16384, // bytes; larger frames are refused locally
  typingInterval: 2000, // ms between typing notices per room
  // Outgoing frames are paced by a token bucket a little under the server's
  // default limit (20/s, burst 40), so a flushed queue is not rate limited.
  rateLimit: 16, // frames per second
  rateBurst: 30,
  transports: ["websocket", "sse"], // the transports allowed, preferred first
  sseUrl: null, // the event stream's URL; null derives it from url (/ws → /sse)
  transportRetry: 300000, // ms on a fallback transport before a reconnect tries the first again
  openTimeout: 10000, // ms for a connection to be welcomed; then it counts as failed
};

const TRANSPORTS = ["websocket", "sse"];

// Close codes of docs/protocol.md §4.
const CLOSE_KICKED = 4003;
const CLOSE_TOKEN = 4001;
const CLOSE_TOO_BIG = 1009; // a message over the server's --max-message-size
// The client's own, for connections it abandons; the server sends neither.
const CLOSE_HEARTBEAT = 4000; // no answer to a ping
const CLOSE_NO_WELCOME = 4002; // no welcome within openTimeout
const STABLE_MS = 5000; // a connection that lived this long resets the backoff
const AUTH_RETRIES = 3; // consecutive 4001s tolerated when the token is a function

// Refusals before the upgrade that retrying cannot fix (§3).
const PERMANENT = new Set([
  "missing_username", "invalid_username", "invalid_room", "too_many_rooms",
  "unauthorized", "forbidden_origin", "forbidden_room",
]);

// Refusals that say "come back later": they are the server's, whatever the
// transport, so they are retried on the same transport.
const TRANSIENT = new Set(["shutting_down", "unavailable", "too_many_connections", "rate_limited"]);

const encoder = new TextEncoder();

/** The wait a close reason asks for ("…retry after 1500ms"), or null. */
export function retryAfter(reason) {
  const m = /retry after (\d+)\s*ms/.exec(reason ?? "");
  return m ? Number(m[1]) : null;
}

/**
 * A connection to a partyline server that survives disconnects.
 *
 * Events (listen with on(type, fn) — fn gets the detail — or with
 * addEventListener, where it is event.detail):
 *   state        {state, previous, attempt, delay, code, reason, error}
 *   welcome      the welcome frame
 *   joined       {room, seq, resumed, recovered, reset}
 *   left         {room}
 *   message      a chat frame (room, username, content, data, timestamp, seq, id)
 *   presence     {room, users, count, partial, change}: change is null for
 *                a list from the server, {type: "user_joined" | "user_left",
 *                username}, or {type: "presence_diff", joined, left,
 *                joined_more, left_more}; partial says users is not the whole
 *                room (a large room, §5.5), count is always the room's
 *   user_joined, user_left, presence_diff   the frames, for "bob joined" lines
 *   typing       {room, username}
 *   direct       a direct frame
 *   transport    {transport, previous}: a connection opened over another
 *                transport than the last one ("websocket" or "sse")
 *   error        a PartylineError not tied to a request
 *   frame        every server frame, before it is handled
 */
export class Partyline extends EventTarget {
  #opts;
  #token; // the last token given (string or undefined)
  #conn = null; // the current connection: a WebSocketTransport or SseTransport
  #welcomed = false; // the current connection has received welcome
  #resync = null; // Set of rooms still catching up after welcome, or null
  #resyncTimer = 0;
  #state = State.IDLE;
  #username;
  #session = null;
  #rooms = new Map(); // name → {lastSeq, target, joined, users, count, partial, asking, waiters, typingAt}
  #pending = new Map(); // request id → request, on the wire of the current socket
  #queue = []; // requests waiting for a connection, in id order
  #uncertain = []; // chats on the wire when a socket died, oldest first
  #nextId = 1;
  #attempt = 0;
  #authFailures = 0;
  #retryTimer = 0;
  #heartbeatTimer = 0;
  #refreshTimer = 0;
  #lastReceived = 0;
  #pingSentAt = 0;
  #openedAt = 0;
  #connectWaiters = [];
  #stopped = false;
  #welcome = null; // the current connection's welcome frame
  #maxSize = 0; // the largest frame sent, when less than maxMessageSize: the server's max_message_size, or what a 1009 taught
  #epoch = null; // the server's history's life, when it does not outlive the server (welcome.epoch)
  #wire = []; // frames waiting for rate budget: {frame, req}
  #wireTimer = 0;
  #tokens = 0;
  #tokensAt = 0;
  #fetch; // the fetch function of the SSE transport and of probes
  #transports; // the usable transports of options.transports, preferred first
  #transportIndex = 0; // the one the next connection uses
  #fellBackAt = 0; // when the client moved off the preferred transport
  #switched = false; // the current attempt follows a failed one at once, on another transport
  #rechecking = false; // the current attempt repeats at once one that a probe found blocked (#lost)
  #transport = null; // the transport of the last connection that opened
  #openTimer = 0;

  /**
   * @param {object} options
   * @param {string} [options.url="/ws"] ws://, wss://, http(s):// or a path
   *   resolved against the page.
   * @param {string} [options.username] required in anonymous mode.
   * @param {string|function(): (string|Promise<string>)} [options.token] a
   *   JWT, or a function returning a fresh one; a function is called before
   *   every connection and shortly before the token expires.
   * @param {string[]} [options.rooms] rooms to join on connect.
   * @param {string[]} [options.transports] "websocket" and/or "sse", the
   *   preferred first.
   * The other options and their defaults are in DEFAULTS above.
   */
  constructor(options = {}) {
    super();
    this.#opts = { ...DEFAULTS, ...options };
    this.#username = this.#opts.username;
    if (typeof this.#opts.token === "string") this.#token = this.#opts.token;
    for (const name of this.#opts.transports) {
      if (!TRANSPORTS.includes(name)) throw new TypeError(`partyline: unknown transport ${JSON.stringify(name)} (want "websocket" or "sse")`);
    }
    this.#fetch = this.#opts.fetch ?? (typeof fetch === "function" ? (...args) => fetch(...args) : null);
    this.#transports = this.#opts.transports.filter((name) => this.#usable(name));
    for (const room of this.#opts.rooms) this.#addRoom(room);
    if (this.#opts.autoConnect) queueMicrotask(() => this.connect().catch(() => {}));
  }

  /** The connection state: one of State's values. */
  get state() { return this.#state; }
  /** The username: the server's (from welcome) once connected. */
  get username() { return this.#username; }
  /** The server's id of the current connection, or null. */
  get session() { return this.#session; }
  /** The transport of the current or last connection: "websocket", "sse" or null. */
  get transport() { return this.#transport; }
  /** The rooms this client is in or joining, in join order. */
  get rooms() { return [...this.#rooms.keys()]; }
  /**
   * The online users of a room, as last reported, sorted. In a large room
   * (partial(room)) only those the client has heard of: count(room) says
   * how many there are.
   */
  users(room) { return [...(this.#rooms.get(room)?.users ?? [])]; }
  /** How many users are online in room, as last reported. */
  count(room) { return this.#rooms.get(room)?.count ?? 0; }
  /** Whether users(room) is not the room's whole list (a large room, §5.5). */
  partial(room) { return this.#rooms.get(room)?.partial ?? false; }
  /** The last seq delivered in room, or null before the first join. */
  lastSeq(room) { return this.#rooms.get(room)?.lastSeq ?? null; }

  /**
   * Subscribes fn(detail, event) to an event; returns a function that
   * unsubscribes it.
   */
  on(type, fn) {
    const listener = (event) => fn(event.detail, event);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /**
   * Opens the connection if it is not open or opening. Resolves with the
   * welcome frame; rejects if the client closes for good first.
   */
  connect() {
    if (this.#stopped) return Promise.reject(new PartylineError("closed", "client is closed"));
    const welcomed = new Promise((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    if (this.#state === State.IDLE) this.#open();
    else if (this.#state === State.CONNECTED) this.#settleConnect();
    return welcomed;
  }

  /**
   * Closes the connection for good: no reconnect. Queued and unanswered
   * requests reject with code "closed".
   */
  close() {
    this.#stop(new PartylineError("closed", "client closed"), 1000, "client closed");
  }

  /**
   * Joins room. Resolves with {room, seq, resumed, recovered} once the server
   * confirms; while offline the join is sent on reconnect.
   */
  join(room) {
    if (!validRoom(room)) return Promise.reject(new PartylineError("invalid_room", `invalid room name ${JSON.stringify(room)}`));
    if (this.#stopped) return Promise.reject(new PartylineError("closed", "client is closed"));
    let rec = this.#rooms.get(room);
    if (rec?.joined) return Promise.resolve({ room, seq: rec.lastSeq, resumed: false, recovered: null });
    const isNew = !rec;
    if (isNew) rec = this.#addRoom(room);
    const done = new Promise((resolve, reject) => rec.waiters.push({ resolve, reject }));
    if (isNew && this.#welcomed) this.#sendJoin(room);
    return done;
  }

  /** Leaves room. Resolves once the server confirms, or at once offline. */
  leave(room) {
    const rec = this.#rooms.get(room);
    if (!rec) return Promise.resolve();
    this.#rooms.delete(room);
    this.#resync?.delete(room);
    this.#stopTyping(rec);
    const err = new PartylineError("not_joined", `left room ${room}`);
    for (const w of rec.waiters) w.reject(err);
    this.#queue = this.#queue.filter((req) => (req.frame.room === room ? (req.reject(err), false) : true));
    this.#uncertain = this.#uncertain.filter((req) => (req.frame.room === room ? (req.reject(err), false) : true));
    this.#emit("left", { room });
    this.#maybeFinishResync();
    if (!this.#welcomed) return Promise.resolve();
    return this.#request({ type: "leave", room }, { immediate: true }).then(() => {}, () => {});
  }

  /**
   * Sends a chat message. Resolves with the ack {id, seq, timestamp}; the
   * message itself also arrives as a "message" event, like everyone's.
   */
  send(room, content, data) {
    if (typeof content !== "string") return Promise.reject(new PartylineError("bad_request", "content must be a string"));
    if (!this.#rooms.has(room)) return Promise.reject(new PartylineError("not_joined", `not in room ${room}`));
    const frame = { type: "chat", room, content };
    if (data !== undefined) frame.data = data;
    this.#stopTyping(this.#rooms.get(room)); // the message ends the typing
    return this.#request(frame);
  }

  /** Sends a direct message to a user. Resolves with the ack. */
  direct(to, content, data) {
    if (typeof content !== "string") return Promise.reject(new PartylineError("bad_request", "content must be a string"));
    const frame = { type: "direct", to, content };
    if (data !== undefined) frame.data = data;
    return this.#request(frame);
  }

  /**
   * Tells the room we are typing. Cheap to call on every keystroke: at most
   * one notice per typingInterval per room goes out (the server relays no
   * more), and none while offline. Keystrokes inside the interval earn one
   * notice at its end, unless a message to the room goes out first.
   */
  typing(room) {
    const rec = this.#rooms.get(room);
    if (!rec?.joined || this.#resync || !this.#welcomed) return;
    const wait = rec.typingAt + this.#opts.typingInterval - Date.now();
    if (wait > 0) {
      // A little late rather than early: the server measures the interval
      // by arrival and would drop an early notice.
      rec.typingTimer ||= setTimeout(() => {
        rec.typingTimer = 0;
        if (this.#rooms.get(room) === rec) this.typing(room);
      }, wait + 100);
      return;
    }
    // A notice that would wait for rate budget is stale: drop it instead.
    if (this.#wire.length || !this.#take()) return;
    rec.typingAt = Date.now();
    this.#send({ type: "typing", room });
  }

  /**
   * Fetches a page of a room's history: the newest `limit` (1–100, default
   * 50) messages below `before` (a seq), ascending. Resolves with the list.
   * History does not go through the "message" event: merge it by seq.
   */
  history(room, { before, limit } = {}) {
    const frame = { type: "history", room };
    if (before !== undefined) frame.before = before;
    if (limit !== undefined) frame.limit = limit;
    return this.#request(frame);
  }

  /**
   * Asks for a room's online users. Resolves with the sorted list, which is
   * empty for a large room: the presence event that follows has its count.
   */
  presence(room) {
    return this.#request({ type: "presence", room });
  }

  /** Replaces an expiring JWT on the live connection (and for reconnects). */
  refresh(token) {
    this.#token = token;
    this.#scheduleRefresh(token);
    if (!this.#welcomed) return Promise.resolve();
    return this.#request({ type: "refresh", token }, { immediate: true });
  }

  // ---- connection lifecycle ----

  async #open({ switched = false, recheck = false } = {}) {
    clearTimeout(this.#retryTimer);
    this.#setState(this.#attempt === 0 && !this.#session ? State.CONNECTING : State.RECONNECTING, {
      attempt: this.#attempt,
    });
    if (this.#transports.length === 0) {
      this.#stop(new PartylineError("bad_request", `cannot connect: none of the transports ${this.#opts.transports.join(", ")} can run here`));
      return;
    }
    try {
      if (typeof this.#opts.token === "function") {
        this.#token = await this.#opts.token();
        if (this.#stopped) return;
      }
    } catch (err) {
      this.#stop(new PartylineError("bad_request", `cannot connect: ${err.message}`));
      return;
    }
    if (typeof this.#opts.token === "function") this.#scheduleRefresh(this.#token);

    // Back on the preferred transport a while after falling back: the
    // network may let it through now.
    if (!switched && this.#transportIndex !== 0 && Date.now() - this.#fellBackAt >= this.#opts.transportRetry) {
      this.#transportIndex = 0;
    }
    this.#switched = switched;
    this.#rechecking = recheck;
    const name = this.#transports[this.#transportIndex];
    let conn;
    let opened = false;
    const hooks = {
      open: () => {
        if (conn !== this.#conn) return;
        opened = true;
        this.#openedAt = Date.now();
        this.#lastReceived = Date.now();
        this.#startHeartbeat(name === "sse" ? this.#opts.sseHeartbeat : this.#opts.heartbeat);
        if (this.#transport !== name) {
          const previous = this.#transport;
          this.#transport = name;
          this.#emit("transport", { transport: name, previous });
        }
      },
      // Anything from the server, a stream's comment too, shows that the
      // connection is alive.
      activity: () => {
        if (conn !== this.#conn) return;
        this.#lastReceived = Date.now();
        this.#pingSentAt = 0;
      },
      message: (text) => {
        for (const line of text.split("\n")) {
          if (conn !== this.#conn) return; // a frame before this one ended the connection
          if (line.trim() === "") continue;
          let frame;
          try {
            frame = JSON.parse(line);
          } catch {
            this.#emit("error", new PartylineError("bad_frame", "server sent a frame that is not JSON"));
            continue;
          }
          this.#handle(frame);
        }
      },
      // answer is the server's HTTP answer to a connection that did not
      // open, {status, error} or null for none, when the transport knows it.
      close: (code, reason, answer) => {
        if (conn !== this.#conn) return;
        this.#lost(code, reason, opened, answer);
      },
    };
    try {
      conn = name === "sse"
        ? new SseTransport(this.#fetch, this.#streamUrl(), () => this.#token, hooks)
        : new WebSocketTransport(this.#opts.WebSocket ?? globalThis.WebSocket, this.#url(), hooks);
    } catch (err) {
      this.#stop(new PartylineError("bad_request", `cannot connect: ${err.message}`));
      return;
    }
    this.#conn = conn;
    this.#openTimer = setTimeout(() => {
      if (conn !== this.#conn || this.#welcomed) return;
      this.#lost(CLOSE_NO_WELCOME, `no welcome within ${this.#opts.openTimeout} ms`, opened);
      conn.close(CLOSE_NO_WELCOME, "no welcome");
    }, this.#opts.openTimeout);
  }

  // #usable reports whether transport name can run here.
  #usable(name) {
    if (name === "websocket") return typeof (this.#opts.WebSocket ?? globalThis.WebSocket) === "function";
    if (typeof this.#fetch !== "function" || typeof TextDecoder !== "function") return false;
    try {
      this.#streamUrl();
      return true;
    } catch {
      return false; // no URL for the stream (or an invalid one)
    }
  }

  // #url is the WebSocket URL: options.url with the username and token.
  #url() {
    const base = globalThis.location?.href;
    const u = new URL(this.#opts.url, base);
    if (u.protocol === "http:") u.protocol = "ws:";
    if (u.protocol === "https:") u.protocol = "wss:";
    if (this.#opts.username && !u.searchParams.has("username")) u.searchParams.set("username", this.#opts.username);
    if (this.#token) u.searchParams.set("token", this.#token);
    return u.toString();
  }

  // #streamUrl is the SSE stream's URL: options.sseUrl, or options.url with
  // /ws (or /ws/{room}) turned into /sse (/sse/{room}), and the username.
  // The token goes in a header instead (SseTransport). It throws when there
  // is none.
  #streamUrl() {
    const base = globalThis.location?.href;
    const u = new URL(this.#opts.sseUrl ?? this.#opts.url, base);
    if (u.protocol === "ws:") u.protocol = "http:";
    if (u.protocol === "wss:") u.protocol = "https:";
    if (!this.#opts.sseUrl) {
      const m = /^(.*)\/ws(\/[^/]+)?\/?$/.exec(u.pathname);
      if (!m) throw new Error(`no SSE URL: ${this.#opts.url} does not end in /ws; set sseUrl`);
      u.pathname = `${m[1]}/sse${m[2] ?? ""}`;
    }
    if (this.#opts.username && !u.searchParams.has("username")) u.searchParams.set("username", this.#opts.username);
    return u;
  }

  // #lost handles the end of the current connection, whatever ended it.
  // opened says whether the transport had opened; answer is, for one that
  // had not, the server's HTTP answer if the transport knows it (see
  // hooks.close in #open). The caller closes the transport if need be.
  #lost(code, reason, opened, answer) {
    this.#conn = null;
    clearTimeout(this.#openTimer);
    this.#welcomed = false;
    this.#welcome = null;
    this.#stopHeartbeat();
    this.#endResync();
    this.#wire = []; // their requests are in #pending, handled below
    clearTimeout(this.#wireTimer);
    this.#wireTimer = 0;
    const lived = opened ? Date.now() - this.#openedAt : 0;
    if (lived >= STABLE_MS) this.#attempt = 0;

    // Requests that were on the wire: reads are asked again, chats are
    // checked against the replay, the rest cannot be confirmed. The one
    // that closed the connection with 1009 fails alone.
    const tooLarge = code === CLOSE_TOO_BIG ? this.#largest(this.#pending.values()) : null;
    for (const req of this.#pending.values()) {
      clearTimeout(req.timer);
      if (req === tooLarge) {
        req.reject(this.#tooLargeError());
        continue;
      }
      switch (req.frame.type) {
        case "history":
        case "presence":
          this.#queue.push(req);
          break;
        case "chat":
          this.#uncertain.push(req);
          break;
        case "leave":
        case "refresh":
          req.resolve();
          break;
        default: // direct, ping: nothing replays them
          req.reject(new PartylineError("disconnected", "connection lost before the server answered; the message may or may not have been delivered"));
      }
    }
    this.#pending.clear();
    this.#queue.sort((a, b) => a.n - b.n);
    for (const rec of this.#rooms.values()) {
      rec.joined = false;
      rec.target = null;
      this.#stopTyping(rec);
    }
    if (this.#stopped) return;

    if (code === CLOSE_KICKED) {
      this.#stop(new PartylineError("kicked", "the server closed this connection (4003)"), 0, "", code, reason);
      return;
    }
    if (code === CLOSE_TOKEN) {
      this.#authFailures++;
      if (typeof this.#opts.token !== "function" || this.#authFailures > AUTH_RETRIES) {
        this.#stop(new PartylineError("token_expired", "the token expired or was refused (4001)"), 0, "", code, reason);
        return;
      }
    }
    if (!this.#opts.reconnect) {
      this.#stop(new PartylineError("disconnected", `connection closed (${code})`), 0, "", code, reason);
      return;
    }
    if (!opened && code !== CLOSE_NO_WELCOME) {
      // The connection failed before it opened. A browser cannot see why a
      // WebSocket handshake failed, so ask over plain HTTP: the server
      // refuses with a JSON error before any upgrade (§3). The SSE
      // transport has that answer already.
      const probed = answer === undefined;
      const answered = probed ? this.#probe() : Promise.resolve(answer);
      answered.then((answer) => {
        if (this.#stopped) return;
        const refusal = answer?.error;
        if (refusal && PERMANENT.has(refusal.code) && !(refusal.code === "unauthorized" && typeof this.#opts.token === "function" && ++this.#authFailures <= AUTH_RETRIES)) {
          this.#stop(new PartylineError(refusal.code, refusal.message || refusal.code), 0, "", code, reason);
          return;
        }
        // The server (or a proxy) answers HTTP, and not with "come back
        // later": it is this transport that does not get through — a
        // proxy that refuses upgrades, or a server that does not serve it
        // (404). No answer at all is a network or server outage instead,
        // which another transport would not fix.
        const blocked = answer !== null && !TRANSIENT.has(refusal?.code);
        // But a probe comes after the attempt it explains: a server that
        // was down for the attempt may be up for the probe, as when it
        // restarts. So the first such verdict is checked by trying the
        // same transport again at once; a second in a row stands.
        if (blocked && probed && !this.#rechecking) {
          this.#scheduleReconnect(code, reason, { now: true, switched: this.#switched, recheck: true });
          return;
        }
        this.#retry(code, reason, blocked);
      });
      return;
    }
    // A connection that hangs, or opens but brings no welcome (a proxy that
    // buffers the event stream, say), does not get through either.
    this.#retry(code, reason, code === CLOSE_NO_WELCOME);
  }

  // #largest returns the largest of the requests that were on the wire
  // when the server closed with 1009, which that one must have caused: sent
  // again after the reconnect it would only cause it again. Frames as large
  // are refused locally from then on.
  #largest(requests) {
    let largest = null;
    let size = 0;
    for (const req of requests) {
      if (req.size > size) [largest, size] = [req, req.size];
    }
    if (largest) this.#maxSize = Math.min(this.#limit(), size - 1);
    return largest;
  }

  // #retry schedules the next connection. When blocked, the transport just
  // used cannot get through, so the next attempt uses the next transport,
  // at once — unless this attempt was such a switch already: then, on the
  // next transport still, after the backoff, so that two blocked transports
  // are not tried in a tight loop.
  #retry(code, reason, blocked) {
    if (blocked && this.#nextTransport() && !this.#switched) {
      this.#scheduleReconnect(code, reason, { now: true });
      return;
    }
    this.#scheduleReconnect(code, reason);
  }

  // #nextTransport moves to the next usable transport, if there is another.
  #nextTransport() {
    const n = this.#transports.length;
    if (n < 2) return false;
    this.#transportIndex = (this.#transportIndex + 1) % n;
    this.#fellBackAt = this.#transportIndex === 0 ? 0 : Date.now();
    return true;
  }

  // #probe asks with a plain GET what the server answers on the WebSocket
  // URL: {status, error} (error is the JSON refusal, or null), or null when
  // nothing answers.
  async #probe() {
    if (typeof this.#fetch !== "function") return null;
    try {
      const u = new URL(this.#url());
      u.protocol = u.protocol === "wss:" ? "https:" : "http:";
      const res = await this.#fetch(u, { cache: "no-store", credentials: "same-origin" });
      return { status: res.status, error: await refusalOf(res) };
    } catch {
      return null; // unreachable, or cross-origin: just retry
    }
  }

  // #scheduleReconnect opens the next connection after the backoff, or at
  // once (now) as another try of the same attempt. switched marks a try on
  // another transport than the one that failed, or a recheck of such a try
  // (see #retry); recheck, a try that checks a probe's verdict (see #lost).
  #scheduleReconnect(code, reason, { now = false, switched = now, recheck = false } = {}) {
    let delay = 0;
    if (!now) {
      const n = this.#attempt++;
      const ceiling = Math.min(this.#opts.maxDelay, this.#opts.minDelay * 2 ** Math.min(n, 30));
      delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2); // "equal jitter"
      // A server that sheds load says when to come back ("slow consumer;
      // retry after 1500ms", already randomized so that the clients it closed
      // together return spread out): wait at least that long.
      const hint = retryAfter(reason);
      if (hint !== null) delay = Math.max(delay, Math.min(hint, this.#opts.maxDelay));
    }
    // A switch to another transport, or a recheck, goes on with the same
    // attempt: no state event.
    if (!now) this.#setState(State.RECONNECTING, { attempt: this.#attempt, delay, retryAt: Date.now() + delay, code, reason }, true);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#open({ switched, recheck }), delay);
    if (!this.#onlineHooked && typeof globalThis.addEventListener === "function") {
      this.#onlineHooked = true;
      globalThis.addEventListener("online", this.#onOnline);
    }
  }

  #onlineHooked = false;
  // The network came back: skip the rest of the backoff.
  #onOnline = () => {
    if (this.#state === State.RECONNECTING && !this.#conn && !this.#stopped) this.#open();
  };

  #stop(error, closeCode = 1000, closeReason = "", code, reason) {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#refreshTimer);
    if (this.#onlineHooked) globalThis.removeEventListener("online", this.#onOnline);
    const conn = this.#conn;
    if (conn) {
      this.#lost(closeCode, closeReason, true);
      conn.close(closeCode || 1000, closeReason);
    }
    for (const req of [...this.#queue, ...this.#uncertain]) req.reject(error);
    this.#queue = [];
    this.#uncertain = [];
    for (const rec of this.#rooms.values()) for (const w of rec.waiters.splice(0)) w.reject(error);
    for (const w of this.#connectWaiters.splice(0)) w.reject(error);
    this.#setState(State.CLOSED, { code, reason, error: error.code === "closed" ? null : error });
    if (error.code !== "closed") this.#emit("error", error);
  }

  #setState(state, detail = {}, always = false) {
    const previous = this.#state;
    if (previous === state && !always) return;
    this.#state = state;
    this.#emit("state", { state, previous, ...detail });
  }

  // #startHeartbeat checks the connection after every ms of silence: it
  // sends a ping, and a connection that answers nothing in time is dead.
  #startHeartbeat(every) {
    if (!every) return;
    this.#heartbeatTimer = setInterval(() => {
      const now = Date.now();
      if (this.#pingSentAt && now - this.#pingSentAt > Math.min(every, 10000)) {
        // No answer to our ping: the connection is dead even if the
        // browser has not noticed. Abandon it and reconnect.
        const conn = this.#conn;
        this.#lost(CLOSE_HEARTBEAT, "heartbeat timeout", true);
        conn?.close(CLOSE_HEARTBEAT, "heartbeat timeout");
        return;
      }
      if (!this.#pingSentAt && now - this.#lastReceived >= every) {
        this.#pingSentAt = now;
        this.#send({ type: "ping" }); // not paced: it must not wait behind a backlog
      }
    }, Math.max(250, Math.min(every / 2, 5000)));
  }

  #stopHeartbeat() {
    clearInterval(this.#heartbeatTimer);
    this.#pingSentAt = 0;
  }

  #scheduleRefresh(token) {
    clearTimeout(this.#refreshTimer);
    if (typeof this.#opts.token !== "function") return;
    const exp = jwtExpiry(token);
    if (!exp) return;
    const wait = Math.max(1000, exp * 1000 - Date.now() - 30000);
    this.#refreshTimer = setTimeout(async () => {
      try {
        const fresh = await this.#opts.token();
        if (!this.#stopped) await this.refresh(fresh);
      } catch (err) {
        this.#emit("error", new PartylineError("token_expired", `token refresh failed: ${err.message}`));
      }
    }, wait);
  }

  // ---- requests ----

  #request(frame, { immediate = false } = {}) {
    if (this.#stopped) return Promise.reject(new PartylineError("closed", "client is closed"));
    const n = this.#nextId++;
    frame.id = `r${n}`;
    const size = encoder.encode(JSON.stringify(frame)).length; // measured once: the limit may fall later
    if (size > this.#limit()) return Promise.reject(this.#tooLargeError());
    return new Promise((resolve, reject) => {
      const req = { n, frame, size, resolve, reject, timer: 0, afterSeq: null };
      if (this.#welcomed && (immediate || !this.#resync)) {
        this.#transmit(req);
      } else if (!this.#opts.queue && !this.#welcomed) {
        reject(new PartylineError("disconnected", "not connected"));
      } else if (this.#queue.length >= this.#opts.queueLimit) {
        reject(new PartylineError("queue_full", "too many messages waiting for a connection"));
      } else {
        this.#queue.push(req);
      }
    });
  }

  // #limit is the largest frame the server takes, as far as the client knows.
  #limit() {
    return this.#maxSize || this.#opts.maxMessageSize;
  }

  #tooLargeError() {
    return new PartylineError("too_large", `message larger than ${this.#limit()} bytes`);
  }

  // #transmit puts a request on the wire of the current socket; one queued
  // before the server said how large a message it takes may be refused now.
  #transmit(req) {
    const { frame } = req;
    if (req.size > this.#limit()) {
      req.reject(this.#tooLargeError());
      return;
    }
    if (frame.type === "chat") req.afterSeq = this.#rooms.get(frame.room)?.lastSeq ?? 0;
    this.#pending.set(frame.id, req);
    this.#write(frame, req);
  }

  // #write sends frame when the rate budget allows, else after what waits.
  // A request's timeout starts when its frame actually leaves.
  #write(frame, req = null) {
    if (this.#wire.length === 0 && this.#take()) {
      this.#send(frame, req);
      return;
    }
    this.#wire.push({ frame, req });
    this.#drainLater();
  }

  #drainLater() {
    if (this.#wireTimer) return;
    const wait = Math.max(5, Math.ceil(((1 - this.#tokens) / this.#opts.rateLimit) * 1000));
    this.#wireTimer = setTimeout(() => {
      this.#wireTimer = 0;
      while (this.#wire.length && this.#take()) {
        const { frame, req } = this.#wire.shift();
        this.#send(frame, req);
      }
      if (this.#wire.length) this.#drainLater();
    }, wait);
  }

  // #take spends one token of the bucket, if there is one.
  #take() {
    const now = Date.now();
    const { rateLimit, rateBurst } = this.#opts;
    if (!(rateLimit > 0)) return true;
    this.#tokens = this.#tokensAt === 0 ? rateBurst : Math.min(rateBurst, this.#tokens + ((now - this.#tokensAt) / 1000) * rateLimit);
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #send(frame, req = null) {
    if (req) {
      req.timer = setTimeout(() => {
        if (this.#pending.get(frame.id) !== req) return;
        this.#pending.delete(frame.id);
        req.reject(new PartylineError("timeout", `no answer to ${frame.type} within ${this.#opts.requestTimeout} ms`));
      }, this.#opts.requestTimeout);
    }
    this.#conn?.send(JSON.stringify(frame)); // a closing one drops it; #lost requeues what is pending
  }

  #sendJoin(room) {
    const rec = this.#rooms.get(room);
    const frame = { type: "join", room, id: `r${this.#nextId++}` };
    if (rec.lastSeq !== null) frame.since = rec.lastSeq;
    rec.resuming = rec.lastSeq !== null; // until the joined that answers since
    rec.joinId = frame.id;
    this.#write(frame);
  }

  #stopTyping(rec) {
    if (!rec) return;
    clearTimeout(rec.typingTimer);
    rec.typingTimer = 0;
  }

  #addRoom(room) {
    const rec = {
      lastSeq: null, target: null, joined: false, waiters: [], typingAt: 0, typingTimer: 0, joinId: null,
      resuming: false, // a join with since is on its way: the replay that answers it brings the chats
      reset: false, // the server's history started over: the next joined says so
      users: [], count: 0, partial: false, // partial: users is not the whole room
      asking: false, // a presence request to fill a partial list is on its way
    };
    this.#rooms.set(room, rec);
    return rec;
  }

  // ---- incoming frames ----

  #handle(f) {
    this.#emit("frame", f);
    switch (f.type) {
      case "welcome": return this.#onWelcome(f);
      case "joined": return this.#onJoined(f);
      case "left": return this.#onLeft(f);
      case "chat": return this.#onChat(f);
      case "online_users": return this.#onUsers(f);
      case "user_joined":
      case "user_left": return this.#onUserChange(f);
      case "presence_diff": return this.#onPresenceDiff(f);
      case "typing": return this.#emit("typing", { room: f.room, username: f.username });
      case "direct": return this.#emit("direct", f);
      case "history": return this.#answer("history", f.room, f.messages ?? [], f.id);
      case "ack": return this.#onAck(f);
      case "error": return this.#onError(f);
      case "pong": return;
      case "close": return this.#onClose(f);
      default: return; // newer server, newer frame: ignore
    }
  }

  #onWelcome(f) {
    clearTimeout(this.#openTimer);
    this.#welcomed = true;
    this.#welcome = f;
    this.#username = f.username;
    this.#session = f.session;
    this.#authFailures = 0;
    const limit = f.max_message_size;
    if (Number.isInteger(limit) && limit > 0) this.#maxSize = Math.min(this.#opts.maxMessageSize, limit);
    // A server whose history ended with its process, restarted: every
    // room's seqs started over, so the rooms are joined afresh.
    const epoch = typeof f.epoch === "string" ? f.epoch : null;
    if (this.#epoch !== null && epoch !== this.#epoch) {
      for (const rec of this.#rooms.values()) Object.assign(rec, { lastSeq: null, reset: true });
    }
    this.#epoch = epoch;
    this.#emit("welcome", f);
    // Re-join every room, resuming where we left off; the replay and the
    // joins must finish before queued sends go out (chat needs the join).
    this.#resync = new Set(this.#rooms.keys());
    for (const room of this.#rooms.keys()) this.#sendJoin(room);
    this.#resyncTimer = setTimeout(() => this.#finishResync(), this.#opts.requestTimeout);
    this.#maybeFinishResync();
  }

  // #onClose handles an event stream's last event (§12.1): the server closes
  // the stream as it would close a WebSocket with that code and reason.
  #onClose(f) {
    const conn = this.#conn;
    this.#lost(Number(f.code) || 1006, String(f.reason ?? ""), true);
    conn?.close(1000, "");
  }

  #onJoined(f) {
    let rec = this.#rooms.get(f.room);
    if (!rec) rec = this.#addRoom(f.room); // joined by the server (URL or default room)
    const asked = rec.lastSeq;
    const resumed = asked !== null && typeof f.recovered === "boolean";
    // The server joins a room of the URL (or its default room) by itself
    // after welcome, from its latest seq: when we resume the room, the
    // answer to our join with since is the one that counts.
    if (rec.resuming && !resumed) return;
    // Joined already on this connection, by the server and by us: once.
    if (rec.joined && !resumed) return;
    rec.resuming = false;
    const recovered = resumed ? f.recovered : null;
    let reset = false;
    if (resumed && f.recovered) {
      rec.target = f.seq > asked ? f.seq : null; // the replay ends at f.seq
    } else {
      reset = rec.reset || (resumed && f.seq < asked); // the room's seqs started over
      rec.lastSeq = f.seq;
      rec.target = null;
    }
    rec.reset = false;
    rec.joined = true;
    this.#emit("joined", { room: f.room, seq: f.seq, resumed, recovered, reset });
    for (const w of rec.waiters.splice(0)) w.resolve({ room: f.room, seq: f.seq, resumed, recovered });
    this.#caughtUp(f.room, rec);
  }

  #onLeft(f) {
    const rec = this.#rooms.get(f.room);
    this.#answerAck(f.id);
    if (!rec) return; // we left it ourselves
    this.#rooms.delete(f.room);
    this.#resync?.delete(f.room);
    this.#emit("left", { room: f.room });
    this.#maybeFinishResync();
  }

  #onChat(f) {
    const rec = this.#rooms.get(f.room);
    if (!rec) return; // a room we just left
    if (rec.resuming) return; // the replay that answers our join with since brings it
    if (rec.lastSeq !== null && f.seq <= rec.lastSeq) return; // seen already
    rec.lastSeq = f.seq;
    if (this.#uncertain.length && f.username === this.#username) this.#settleUncertain(f);
    this.#emit("message", f);
    this.#caughtUp(f.room, rec);
  }

  #onUsers(f) {
    const users = [...new Set(f.users ?? [])].sort();
    // A server older than count sends only the list.
    const count = Number.isInteger(f.count) ? f.count : users.length;
    const rec = this.#rooms.get(f.room);
    if (rec) Object.assign(rec, { users, count, partial: users.length < count });
    this.#answer("presence", f.room, [...users], f.id);
    if (rec) this.#emitPresence(f.room, rec, null);
  }

  #onUserChange(f) {
    const rec = this.#rooms.get(f.room);
    if (!rec) return;
    const users = new Set(rec.users);
    const joined = f.type === "user_joined";
    if (joined) users.add(f.username);
    else users.delete(f.username);
    rec.users = [...users].sort();
    // A room back from large (§5.5, appendix "Large rooms"): the changes
    // are named again, but this list lacks those of the large time.
    if (rec.partial) {
      rec.count = Math.max(0, rec.count + (joined ? 1 : -1));
      this.#fillPresence(f.room, rec);
    } else {
      rec.count = rec.users.length;
    }
    this.#emit(f.type, f);
    this.#emitPresence(f.room, rec, { type: f.type, username: f.username });
  }

  // #onPresenceDiff applies a large room's batched changes. The names go
  // into the list either way, but only a whole list stays whole, and only
  // if the diff left no one out and agrees with the count.
  #onPresenceDiff(f) {
    const rec = this.#rooms.get(f.room);
    if (!rec) return;
    const joined = f.joined ?? [];
    const left = f.left ?? [];
    const users = new Set(rec.users);
    for (const name of left) users.delete(name);
    for (const name of joined) users.add(name);
    rec.users = [...users].sort();
    if (Number.isInteger(f.count)) rec.count = f.count;
    const more = (f.joined_more ?? 0) + (f.left_more ?? 0);
    rec.partial = rec.partial || more > 0 || rec.users.length !== rec.count;
    this.#emit("presence_diff", f);
    this.#emitPresence(f.room, rec, {
      type: "presence_diff", joined: [...joined], left: [...left],
      joined_more: f.joined_more ?? 0, left_more: f.left_more ?? 0,
    });
  }

  // #fillPresence asks for the whole list of a room whose list is partial,
  // once at a time; the answer comes as online_users.
  #fillPresence(room, rec) {
    if (rec.asking) return;
    rec.asking = true;
    this.presence(room).catch(() => {}).finally(() => { rec.asking = false; });
  }

  #emitPresence(room, rec, change) {
    this.#emit("presence", { room, users: [...rec.users], count: rec.count, partial: rec.partial, change });
  }

  #onAck(f) {
    const id = String(f.id);
    const req = this.#pending.get(id);
    if (!req) return;
    // history and presence resolve with their answer frame, which may come
    // after the ack; the others are done.
    if (req.frame.type === "history" || req.frame.type === "presence") return;
    this.#pending.delete(id);
    clearTimeout(req.timer);
    req.resolve(f);
  }

  #answerAck(id) {
    if (id === undefined) return;
    const req = this.#pending.get(String(id));
    if (!req) return;
    this.#pending.delete(String(id));
    clearTimeout(req.timer);
    req.resolve();
  }

  #onError(f) {
    const err = new PartylineError(f.code, f.message, f);
    if (f.id === undefined || f.id === null) {
      this.#emit("error", err);
      return;
    }
    const id = String(f.id);
    const req = this.#pending.get(id);
    if (req) {
      this.#pending.delete(id);
      clearTimeout(req.timer);
      req.reject(err);
      return;
    }
    // A join we sent (they are not requests: their promise is the room's).
    for (const [room, rec] of this.#rooms) {
      if (rec.joinId !== id) continue;
      this.#rooms.delete(room);
      this.#resync?.delete(room);
      for (const w of rec.waiters.splice(0)) w.reject(err);
      this.#emit("error", err);
      this.#emit("left", { room });
      this.#maybeFinishResync();
      return;
    }
    this.#emit("error", err);
  }

  // #answer resolves the oldest pending request of type for room: the server
  // answers one connection's requests in order.
  #answer(type, room, value, id) {
    let req = id !== undefined ? this.#pending.get(String(id)) : undefined;
    if (!req) {
      for (const r of this.#pending.values()) {
        if (r.frame.type === type && r.frame.room === room) { req = r; break; }
      }
    }
    if (!req) return;
    this.#pending.delete(req.frame.id);
    clearTimeout(req.timer);
    req.resolve(value);
  }

  // ---- resume ----

  #caughtUp(room, rec) {
    if (rec.target !== null && rec.lastSeq >= rec.target) rec.target = null;
    if (rec.target === null && rec.joined && this.#resync?.delete(room)) this.#maybeFinishResync();
  }

  #maybeFinishResync() {
    if (this.#resync && this.#resync.size === 0) this.#finishResync();
  }

  #endResync() {
    clearTimeout(this.#resyncTimer);
    this.#resync = null;
  }

  // #finishResync runs once every room has re-joined and replayed: chats
  // whose fate was unknown and the queue go out, in their original order.
  #finishResync() {
    if (!this.#welcomed) return;
    this.#endResync();
    // A room whose join went unanswered within the timeout takes live chats
    // again rather than none.
    for (const rec of this.#rooms.values()) rec.resuming = false;
    const unconfirmed = this.#uncertain.splice(0);
    const out = [...unconfirmed, ...this.#queue.splice(0)].sort((a, b) => a.n - b.n);
    this.#setState(State.CONNECTED, { attempt: 0 });
    this.#settleConnect();
    for (const req of out) {
      if (req.frame.room !== undefined && req.frame.type === "chat" && !this.#rooms.has(req.frame.room)) {
        req.reject(new PartylineError("not_joined", `not in room ${req.frame.room}`));
        continue;
      }
      this.#transmit(req);
    }
  }

  // #settleUncertain matches a replayed chat of ours with a chat that was on
  // the wire when the connection died: the server did store it.
  #settleUncertain(f) {
    const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const i = this.#uncertain.findIndex((req) =>
      req.frame.room === f.room && req.frame.content === f.content && f.seq > req.afterSeq && same(req.frame.data, f.data));
    if (i < 0) return;
    const [req] = this.#uncertain.splice(i, 1);
    req.resolve({ type: "ack", id: req.frame.id, seq: f.seq, timestamp: f.timestamp });
  }

  #settleConnect() {
    for (const w of this.#connectWaiters.splice(0)) w.resolve(this.#welcome);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * Creates a client and connects it. Listeners added right after the call see
 * every event, because the connection opens asynchronously.
 */
export function connect(options) {
  return new Partyline({ ...options, autoConnect: true });
}

// ---- transports ----
//
// A transport carries one connection's frames. Both have the same shape:
// the constructor starts connecting, send(text) sends one client frame,
// close(code, reason) ends the connection and silences the hooks. They call
// back hooks.open() once the connection is open, hooks.message(text) with
// server frames (one or more, separated by "\n"), hooks.activity() on any
// traffic, and hooks.close(code, reason, answer) once when the connection
// ends by itself; answer is only for a connection that did not open, and
// only when the transport knows it (see #lost).

// WebSocketTransport is a WebSocket: the browser pings and pongs for it.
class WebSocketTransport {
  #ws;

  constructor(WebSocketClass, url, hooks) {
    const ws = new WebSocketClass(url);
    this.#ws = ws;
    ws.onopen = () => hooks.open();
    ws.onmessage = (ev) => {
      hooks.activity();
      if (typeof ev.data === "string") hooks.message(ev.data);
    };
    ws.onclose = (ev) => {
      this.#detach();
      hooks.close(ev.code, ev.reason);
    };
    ws.onerror = () => {}; // onclose follows and carries the code
  }

  send(text) {
    try {
      this.#ws.send(text);
    } catch {
      // Not open, or closing: onclose follows.
    }
  }

  close(code = 1000, reason = "") {
    this.#detach();
    try { this.#ws.close(code, reason); } catch { /* already closing */ }
  }

  #detach() {
    const ws = this.#ws;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }
}

// SseTransport is server-sent events (§12.1): GET the stream, POST each
// client frame to /sse/{session}.
//
// It reads the stream with fetch rather than EventSource, because
//  - EventSource hides comments, so the server's ": ping" lines could not
//    show that a quiet stream is alive;
//  - EventSource hides the HTTP answer of a refused stream (its error
//    event says nothing), and fetch shows the status and the JSON refusal;
//  - EventSource reconnects by itself, behind the client's back, with its
//    own policy; this way the client's backoff, close codes and resume
//    (join with since, as over WebSocket) are the only ones;
//  - fetch can send the token in an Authorization header, out of URLs and
//    their logs, and runs in Node, which has no EventSource.
// The stream's "id:" lines (the server's resume token) are not needed: the
// client re-joins each room with since after welcome, as over WebSocket.
//
// POSTs go one at a time, in order, so the server handles the frames in the
// order the client sent them. A POST that fails ends the connection like a
// broken socket would (the client reconnects and resumes), except 413: that
// frame alone is refused, as an error frame for its request.
class SseTransport {
  #fetch;
  #token; // () => the current token, or undefined
  #hooks;
  #abort = new AbortController();
  #closed = false;
  #postUrl = null; // known once the welcome names the session
  #outbox = []; // client frames not yet posted, oldest first
  #posting = false;

  constructor(fetchFn, url, token, hooks) {
    this.#fetch = fetchFn;
    this.#token = token;
    this.#hooks = hooks;
    this.#read(url, this.#postBase(url));
  }

  send(text) {
    if (this.#closed) return;
    this.#outbox.push(text);
    this.#post();
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#outbox = [];
    this.#abort.abort(); // the stream, and a POST in flight
  }

  // #end reports the end of the connection, once, and closes it.
  #end(code, reason, answer) {
    if (this.#closed) return;
    this.close();
    this.#hooks.close(code, reason, answer);
  }

  #headers() {
    const token = this.#token();
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  // #postBase is where the client's frames go: the stream's path without a
  // room, /sse/ in the usual mount.
  #postBase(url) {
    const u = new URL(url);
    u.search = "";
    u.pathname = u.pathname.replace(/\/sse\/[^/]+$/, "/sse").replace(/\/?$/, "/");
    return u.toString();
  }

  async #read(url, postBase) {
    let res;
    try {
      res = await this.#fetch(url, {
        headers: { Accept: "text/event-stream", ...this.#headers() },
        cache: "no-store", credentials: "same-origin", signal: this.#abort.signal,
      });
    } catch {
      this.#end(1006, "", null); // no answer at all
      return;
    }
    if (this.#closed) return;
    if (!res.ok || !res.body || !(res.headers.get("Content-Type") ?? "").startsWith("text/event-stream")) {
      const error = await refusalOf(res);
      this.#end(1006, "", { status: res.status, error });
      return;
    }
    this.#hooks.open();
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let rest = ""; // an incomplete line
    let data = null; // the data of the event being read
    try {
      while (!this.#closed) {
        const { value, done } = await reader.read();
        if (done || this.#closed) break;
        this.#hooks.activity();
        const lines = (rest + decoder.decode(value, { stream: true })).split("\n");
        rest = lines.pop();
        for (let line of lines) {
          if (this.#closed) return; // an event before this one ended the connection
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") { // the end of an event
            if (data !== null) this.#event(data, postBase);
            data = null;
          } else if (line.startsWith("data:")) {
            const value = line.slice(line[5] === " " ? 6 : 5);
            data = data === null ? value : `${data}\n${value}`;
          }
          // Comments (": ping") count as activity only; "id:" is not needed.
        }
      }
    } catch {
      // Aborted by close(), or the network failed: the stream is over.
    }
    this.#end(1006, "the event stream ended");
  }

  #event(data, postBase) {
    if (this.#postUrl === null) {
      // The first event is the welcome; its session is where to POST.
      try {
        const session = JSON.parse(data).session;
        if (typeof session === "string" && session !== "") this.#postUrl = postBase + encodeURIComponent(session);
      } catch { /* the client reports frames that are not JSON */ }
    }
    this.#hooks.message(data);
    this.#post(); // frames sent before the welcome
  }

  async #post() {
    if (this.#posting || this.#postUrl === null) return;
    this.#posting = true;
    while (this.#outbox.length && !this.#closed) {
      const text = this.#outbox.shift();
      let res;
      try {
        res = await this.#fetch(this.#postUrl, {
          method: "POST", body: text, headers: this.#headers(),
          cache: "no-store", credentials: "same-origin", signal: this.#abort.signal,
        });
      } catch {
        this.#end(1006, "cannot send: the network failed");
        break;
      }
      if (this.#closed) break;
      if (res.ok) continue; // 202: the answer comes on the stream
      const error = await refusalOf(res);
      if (res.status === 413) {
        this.#refuse(text, error);
        continue;
      }
      // 404 (the session is gone), 401, 403, 503…: as a broken socket.
      // The reconnect's own answer says whether to go on.
      this.#end(1006, `cannot send: ${res.status} ${error?.code ?? ""}`.trim());
      break;
    }
    this.#posting = false;
  }

  // #refuse answers a frame the server would not take as the server answers
  // an oversized frame's request: an error frame with its id.
  #refuse(text, error) {
    let id;
    try { id = JSON.parse(text).id; } catch { /* no id */ }
    const frame = { type: "error", code: error?.code ?? "too_large", message: error?.message ?? "message too large" };
    if (id !== undefined) frame.id = id;
    this.#hooks.message(JSON.stringify(frame));
  }
}

// refusalOf returns the JSON error of a refused HTTP request (§3), or null.
async function refusalOf(res) {
  try {
    const body = await res.json();
    return body?.error ?? null;
  } catch {
    return null;
  }
}

// jwtExpiry returns a JWT's exp claim (seconds), or 0.
function jwtExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
    return typeof json.exp === "number" ? json.exp : 0;
  } catch {
    return 0;
  }
}

export default Partyline;
