// app.js — the partyline chat page. It uses nothing but partyline.js and the
// DOM. User data reaches the page only through textContent and dataset, never
// through an API that parses HTML, so a message is always shown as text
// (web_test.go checks that no such API appears here).

import { Partyline, validUsername, validRoom } from "/partyline.js";

const HISTORY_PAGE = 50; // messages per history request
const TYPING_MS = 3500; // how long "bob is typing…" stays without a new notice
const GROUP_MS = 5 * 60 * 1000; // consecutive messages of one author within this share a header
const SESSION_KEY = "partyline.session"; // per tab: a reload resumes the same rooms
const NAME_KEY = "partyline.name"; // per browser: prefills the name

const $ = (id) => document.getElementById(id);
const ui = {
  login: $("login"), loginForm: $("login-form"), loginName: $("login-name"), loginRoom: $("login-room"),
  loginError: $("login-error"),
  app: $("chat"), conn: $("conn"), connText: $("conn-text"), connTransport: $("conn-transport"),
  meName: $("me-name"), meAvatar: $("me-avatar"),
  logout: $("logout"),
  roomList: $("room-list"), joinForm: $("join-form"), joinRoom: $("join-room"), joinError: $("join-error"),
  roomTitle: $("room-title"), roomCount: $("room-count"), usersToggle: $("users-toggle"), leave: $("leave-room"),
  notice: $("notice"), panes: $("panes"), typing: $("typing"),
  composer: $("composer"), input: $("composer-input"), send: $("send"),
  users: $("users"), usersCount: $("users-count"), userList: $("user-list"),
};

let client = null;
let me = "";
let active = null; // the room on screen
const views = new Map(); // room → view (see newView)
let countdown = 0;

// ---- small helpers ----

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function hue(name) {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return String(x % 360);
}

function avatar(name, extra = "") {
  const a = h("span", `avatar ${extra}`.trim(), name.slice(0, 1).toUpperCase());
  a.style.setProperty("--hue", hue(name));
  a.setAttribute("aria-hidden", "true");
  return a;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dated = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

function timeEl(ts) {
  const d = new Date(ts);
  const today = d.toDateString() === new Date().toDateString();
  const t = h("time", "msg-time", (today ? clock : dated).format(d));
  t.dateTime = d.toISOString();
  t.title = full.format(d);
  return t;
}

function storage(kind) {
  try {
    return kind === "session" ? window.sessionStorage : window.localStorage;
  } catch {
    return null; // storage disabled: the page still works, it just forgets
  }
}

function saveSession() {
  storage("session")?.setItem(SESSION_KEY, JSON.stringify({ username: me, rooms: [...views.keys()], active }));
}

function loadSession() {
  try {
    const s = JSON.parse(storage("session")?.getItem(SESSION_KEY) ?? "null");
    if (s && validUsername(s.username) && Array.isArray(s.rooms) && s.rooms.every(validRoom)) return s;
  } catch { /* a bad entry is no session */ }
  return null;
}

function nearBottom(pane) {
  return pane.scrollHeight - pane.scrollTop - pane.clientHeight < 80;
}

function toast(text, kind = "info") {
  let box = $("toasts");
  if (!box) {
    box = h("div", "toasts");
    box.id = "toasts";
    box.setAttribute("aria-live", "polite");
    document.body.append(box);
  }
  const t = h("div", `toast toast--${kind}`, text);
  box.append(t);
  setTimeout(() => t.remove(), 6000);
}

// ---- rooms: one view per joined room ----

function newView(room) {
  const id = `pane-${views.size}-${Date.now().toString(36)}`;
  const pane = h("div", "pane");
  pane.id = id;
  pane.dataset.room = room;
  pane.setAttribute("role", "tabpanel");
  pane.setAttribute("aria-label", `Messages in ${room}`);
  pane.tabIndex = 0;
  pane.hidden = true;

  const more = h("button", "btn btn--ghost load-more", "Load earlier messages");
  more.type = "button";
  more.hidden = true;
  const empty = h("p", "empty", "Joining…");
  const list = h("div", "messages");
  pane.append(more, empty, list);
  ui.panes.append(pane);

  const li = h("li", "room-item");
  li.setAttribute("role", "presentation");
  const tab = h("button", "room-tab");
  tab.type = "button";
  tab.dataset.room = room;
  tab.setAttribute("role", "tab");
  tab.setAttribute("aria-controls", id);
  tab.tabIndex = -1;
  const badge = h("span", "badge");
  badge.hidden = true;
  tab.append(h("span", "room-hash", "#"), h("span", "room-name", room), badge);
  const leave = h("button", "room-leave", "×");
  leave.type = "button";
  leave.setAttribute("aria-label", `Leave ${room}`);
  leave.title = `Leave ${room}`;
  li.append(tab, leave);
  ui.roomList.append(li);

  const v = {
    room, pane, list, more, empty, li, tab, badge,
    seqs: new Map(), // seq → element: each message is shown once
    pendings: [], // own messages not yet confirmed, oldest first
    users: [],
    count: 0, // online users: more than users.length when partial
    partial: false, // a large room (protocol §5.5): users is not the whole list
    typing: new Map(), // username → timer
    unread: 0,
    loading: false,
    oldest: Infinity,
  };
  tab.addEventListener("click", () => select(room));
  leave.addEventListener("click", () => leaveRoom(room));
  more.addEventListener("click", () => loadHistory(v, v.oldest));
  views.set(room, v);
  return v;
}

function removeView(room) {
  const v = views.get(room);
  if (!v) return;
  for (const timer of v.typing.values()) clearTimeout(timer);
  v.pane.remove();
  v.li.remove();
  views.delete(room);
  if (active === room) {
    active = null;
    const next = views.keys().next();
    if (!next.done) select(next.value, { focus: false });
    else renderRoom();
  }
  saveSession();
  renderUnread();
}

function select(room, { focus = true } = {}) {
  const v = views.get(room);
  if (!v) return;
  active = room;
  for (const other of views.values()) {
    const on = other === v;
    other.pane.hidden = !on;
    other.tab.setAttribute("aria-selected", String(on));
    other.tab.tabIndex = on ? 0 : -1;
    other.li.classList.toggle("is-active", on);
  }
  v.unread = 0;
  renderBadge(v);
  renderRoom();
  saveSession();
  if (focus && !matchMedia("(hover: none)").matches) ui.input.focus();
}

function renderRoom() {
  const v = views.get(active);
  ui.roomTitle.textContent = v ? `# ${v.room}` : "No room";
  ui.input.placeholder = v ? `Message #${v.room}` : "Join a room to chat";
  ui.input.disabled = !v;
  ui.send.disabled = !v;
  ui.leave.hidden = !v;
  ui.notice.hidden = true;
  if (!v) {
    ui.notice.textContent = "You are not in any room. Join one from the list.";
    ui.notice.hidden = false;
  }
  renderUsers();
  renderTyping();
}

function renderBadge(v) {
  v.badge.hidden = v.unread === 0;
  v.badge.textContent = v.unread > 99 ? "99+" : String(v.unread);
  v.tab.setAttribute("aria-label", v.unread ? `${v.room}, ${v.unread} unread` : v.room);
  renderUnread();
}

function renderUnread() {
  let n = 0;
  for (const v of views.values()) n += v.unread;
  document.title = n ? `(${n}) partyline` : "partyline";
}

function renderUsers() {
  const v = views.get(active);
  const users = v?.users ?? [];
  const count = v?.count ?? 0;
  ui.roomCount.textContent = `${count} online`;
  ui.usersCount.textContent = String(count);
  if (v?.partial) {
    // The server names the users of a large room to nobody: the count is
    // all there is to show.
    ui.userList.replaceChildren(h("li", "user user-partial", "Too many to list"));
    return;
  }
  ui.userList.replaceChildren(...users.map((name) => {
    const li = h("li", "user");
    li.dataset.user = name;
    li.append(avatar(name, "avatar--small"), h("span", "user-name", name));
    if (name === me) li.append(h("span", "user-you", "you"));
    return li;
  }));
}

function renderTyping() {
  const v = views.get(active);
  const names = v ? [...v.typing.keys()] : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names[0]}, ${names[1]} and ${names.length - 2} more are typing…`;
  ui.typing.textContent = text;
  ui.typing.classList.toggle("is-on", text !== "");
}

function renderEmpty(v) {
  const hasMessages = v.list.querySelector(".msg") !== null;
  v.empty.hidden = hasMessages || v.loading;
  if (!hasMessages) v.empty.textContent = "No messages yet. Say hello!";
}

// ---- messages ----

function messageEl(m, own) {
  const item = h("article", own ? "msg msg--own" : "msg");
  item.dataset.user = m.username;
  item.dataset.ts = String(m.timestamp);
  if (m.seq !== undefined) item.dataset.seq = String(m.seq);
  const body = h("div", "msg-body");
  const meta = h("div", "msg-meta");
  const author = h("span", "msg-author", m.username);
  author.style.setProperty("--hue", hue(m.username));
  meta.append(author, timeEl(m.timestamp));
  body.append(meta, h("p", "msg-text", m.content));
  item.append(avatar(m.username), body);
  return item;
}

// insertBySeq keeps the list in seq order. A live message goes after the
// newest message with a lower seq and the presence lines that followed it,
// but before own messages still waiting for their seq; a page of history
// that is older than everything shown goes on top.
function insertBySeq(v, item, seq, { history = false } = {}) {
  let prev = null;
  for (let c = v.list.lastElementChild; c; c = c.previousElementSibling) {
    if (c.dataset.seq && Number(c.dataset.seq) < seq) {
      prev = c;
      break;
    }
  }
  if (!prev && history) {
    v.list.prepend(item);
    return;
  }
  let next = prev ? prev.nextElementSibling : v.list.firstElementChild;
  while (next && !next.dataset.seq && !next.classList.contains("is-pending")) next = next.nextElementSibling;
  v.list.insertBefore(item, next);
}

// regroup hides the header of a message that follows one by the same author
// shortly before.
function regroup(item) {
  for (const node of [item, item?.nextElementSibling]) {
    if (!node?.classList.contains("msg")) continue;
    const prev = node.previousElementSibling;
    const cont = prev?.classList.contains("msg") && prev.dataset.user === node.dataset.user &&
      Number(node.dataset.ts) - Number(prev.dataset.ts) < GROUP_MS &&
      !prev.classList.contains("is-failed") && !node.classList.contains("is-failed");
    node.classList.toggle("msg--cont", Boolean(cont));
  }
}

function addMessage(v, m, { history = false } = {}) {
  if (v.seqs.has(m.seq)) return; // shown already (history and live overlap)
  const own = m.username === me;
  const stick = nearBottom(v.pane);
  stopTyping(v, m.username);
  if (own && !history) {
    const p = v.pendings.find((x) => !x.failed && x.content === m.content);
    if (p) {
      confirmPending(v, p, m.seq, m.timestamp);
      scrollDown(v);
      return;
    }
  }
  const item = messageEl(m, own);
  v.seqs.set(m.seq, item);
  v.oldest = Math.min(v.oldest, m.seq);
  insertBySeq(v, item, m.seq, { history });
  regroup(item);
  renderEmpty(v);
  if (history) return;
  if (v.room !== active || document.hidden) {
    if (!own && v.room !== active) {
      v.unread++;
      renderBadge(v);
    }
  }
  if (stick || own) scrollDown(v);
}

function scrollDown(v) {
  v.pane.scrollTop = v.pane.scrollHeight;
}

// confirmPending turns an own message that was waiting into the stored one.
function confirmPending(v, p, seq, timestamp) {
  v.pendings.splice(v.pendings.indexOf(p), 1);
  if (v.seqs.has(seq)) {
    p.item.remove(); // the stored copy is on screen already
    return;
  }
  p.settled = true;
  const fresh = messageEl({ username: me, content: p.content, timestamp, seq }, true);
  p.item.replaceWith(fresh);
  p.item = fresh;
  v.seqs.set(seq, fresh);
  v.oldest = Math.min(v.oldest, seq);
  fresh.remove();
  insertBySeq(v, fresh, seq);
  regroup(fresh);
}

function sendMessage(v, content) {
  const item = messageEl({ username: me, content, timestamp: Date.now() }, true);
  item.classList.add("is-pending");
  const status = h("span", "msg-status", "Sending…");
  item.querySelector(".msg-body").append(status);
  const p = { content, item, settled: false, failed: false };
  v.pendings.push(p);
  v.list.append(item);
  regroup(item);
  renderEmpty(v);
  scrollDown(v);
  client.send(v.room, content).then(
    (ack) => {
      if (!p.settled && views.get(v.room) === v && v.pendings.includes(p)) confirmPending(v, p, ack.seq, ack.timestamp);
    },
    (err) => {
      if (p.settled || err.code === "closed") return;
      p.failed = true;
      item.classList.remove("is-pending");
      item.classList.add("is-failed");
      status.textContent = `Not sent: ${describe(err)}. `;
      const retry = h("button", "link-btn", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => {
        v.pendings.splice(v.pendings.indexOf(p), 1);
        item.remove();
        sendMessage(v, content);
      });
      const discard = h("button", "link-btn", "Discard");
      discard.type = "button";
      discard.addEventListener("click", () => {
        v.pendings.splice(v.pendings.indexOf(p), 1);
        item.remove();
        renderEmpty(v);
      });
      status.append(retry, " · ", discard);
    },
  );
}

function presenceLine(v, f) {
  sysLine(v, f.type === "user_joined" ? `${f.username} joined` : `${f.username} left`, f.timestamp);
}

// DIFF_NAMES is how many names a line about a large room's changes shows.
const DIFF_NAMES = 3;

// diffLine shows a large room's batched changes in one line, such as
// "carol, dave joined · erin and 12 others left", without the reader.
function diffLine(v, f) {
  const part = (names, more, verb) => {
    const others = names.filter((n) => n !== me);
    const shown = others.slice(0, DIFF_NAMES);
    const rest = others.length - shown.length + (more ?? 0);
    if (!shown.length && !rest) return "";
    if (!shown.length) return `${rest} ${rest === 1 ? "person" : "people"} ${verb}`;
    const tail = rest ? ` and ${rest} ${rest === 1 ? "other" : "others"}` : "";
    return `${shown.join(", ")}${tail} ${verb}`;
  };
  const text = [part(f.joined ?? [], f.joined_more, "joined"), part(f.left ?? [], f.left_more, "left")].filter(Boolean).join(" · ");
  if (text) sysLine(v, text, f.timestamp);
}

function sysLine(v, text, timestamp) {
  const line = h("div", "sys", text);
  line.prepend(timeEl(timestamp ?? Date.now()));
  const stick = nearBottom(v.pane);
  // Before own messages still waiting, after everything else.
  const firstPending = v.pendings.find((p) => !p.settled)?.item;
  v.list.insertBefore(line, firstPending?.parentNode === v.list ? firstPending : null);
  if (stick) scrollDown(v);
}

function loadHistory(v, before) {
  if (v.loading) return;
  v.loading = true;
  v.more.disabled = true;
  const height = v.pane.scrollHeight;
  const opts = { limit: HISTORY_PAGE };
  if (Number.isFinite(before)) opts.before = before;
  client.history(v.room, opts).then(
    (messages) => {
      if (views.get(v.room) !== v) return;
      for (const m of messages) addMessage(v, m, { history: true });
      v.more.hidden = !(messages.length === HISTORY_PAGE && messages[0].seq > 1);
      if (opts.before) v.pane.scrollTop += v.pane.scrollHeight - height; // keep the reader's place
      else scrollDown(v);
    },
    (err) => {
      if (err.code !== "closed") toast(`Could not load the history of #${v.room}: ${describe(err)}`, "error");
    },
  ).finally(() => {
    v.loading = false;
    v.more.disabled = false;
    renderEmpty(v);
  });
}

function clearView(v) {
  v.list.replaceChildren();
  v.seqs.clear();
  v.oldest = Infinity;
  for (const p of v.pendings) v.list.append(p.item);
}

// ---- typing ----

function showTyping(v, username) {
  clearTimeout(v.typing.get(username));
  v.typing.set(username, setTimeout(() => stopTyping(v, username), TYPING_MS));
  if (v.room === active) renderTyping();
}

function stopTyping(v, username) {
  if (!v.typing.has(username)) return;
  clearTimeout(v.typing.get(username));
  v.typing.delete(username);
  if (v.room === active) renderTyping();
}

// ---- connection ----

function describe(err) {
  switch (err?.code) {
    case "kicked": return "you were disconnected by the server";
    case "token_expired": return "your session expired";
    case "rate_limited": return "too many messages, slow down";
    case "too_large": return "the message is too long";
    case "unavailable": return "the server could not store it";
    case "invalid_username": return "that name is not allowed";
    case "missing_username": return "a name is required";
    case "forbidden_room": return "you may not join that room";
    case "too_many_rooms": return "you are in too many rooms";
    case "timeout": return "the server did not answer";
    default: return err?.message || "unknown error";
  }
}

// The transports as the status line names them, and says more on hover.
const TRANSPORT_NAMES = {
  websocket: ["WebSocket", "Connected over WebSocket"],
  sse: ["SSE", "Connected over server-sent events: WebSocket does not get through this network (or this server does not serve it)"],
};

function renderState(d) {
  clearInterval(countdown);
  ui.conn.dataset.state = d.state;
  ui.app.dataset.conn = d.state;
  renderTransport(d.state === "connected" ? client?.transport : null);
  switch (d.state) {
    case "connected":
      ui.connText.textContent = "Connected";
      break;
    case "reconnecting": {
      const tick = () => {
        const s = d.retryAt ? Math.ceil((d.retryAt - Date.now()) / 1000) : 0;
        ui.connText.textContent = s > 0 ? `Reconnecting in ${s}s…` : "Reconnecting…";
      };
      tick();
      if (d.retryAt) countdown = setInterval(tick, 500);
      break;
    }
    case "closed": {
      ui.connText.textContent = "Disconnected";
      if (d.error) {
        ui.notice.replaceChildren(`Disconnected: ${describe(d.error)}. `);
        const again = h("button", "link-btn", "Reconnect");
        again.type = "button";
        again.addEventListener("click", () => start(loadSession() ?? { username: me, rooms: [...views.keys()], active }));
        ui.notice.append(again);
        ui.notice.hidden = false;
      }
      break;
    }
    default:
      ui.connText.textContent = "Connecting…";
  }
}

// renderTransport shows, small, which transport the connection uses:
// "Connected · SSE".
function renderTransport(transport) {
  const [name, title] = TRANSPORT_NAMES[transport] ?? ["", ""];
  ui.conn.dataset.transport = transport ?? "";
  ui.connTransport.textContent = name ? `· ${name}` : "";
  ui.connTransport.hidden = !name;
  ui.conn.title = title;
}

function start(session) {
  stop();
  me = session.username;
  storage("local")?.setItem(NAME_KEY, me);
  ui.login.hidden = true;
  ui.app.hidden = false;
  ui.meName.textContent = me;
  ui.meAvatar.replaceWith(Object.assign(avatar(me, "avatar--small"), { id: "me-avatar" }));
  ui.meAvatar = $("me-avatar");

  for (const room of session.rooms) newView(room);
  select(views.has(session.active) ? session.active : session.rooms[0], { focus: true });

  client = new Partyline({ url: "/ws", username: me, rooms: session.rooms });
  const c = client;
  const live = (fn) => (d) => { if (client === c) fn(d); };
  c.on("state", live(renderState));
  c.on("welcome", live((w) => {
    me = w.username; // the server's word (a JWT may name us)
    ui.meName.textContent = me;
  }));
  c.on("joined", live(({ room, resumed, recovered, reset }) => {
    const v = views.get(room) ?? newView(room);
    if (!active) select(room, { focus: false });
    if (reset) clearView(v); // the server's history started over: what we show is gone
    if (!resumed) {
      loadHistory(v);
    } else if (recovered === false) {
      // The server no longer has everything we missed: start afresh.
      clearView(v);
      loadHistory(v);
      toast(`#${room}: some messages from while you were away are no longer available.`);
    }
    renderEmpty(v);
    saveSession();
  }));
  c.on("left", live(({ room }) => removeView(room)));
  c.on("message", live((m) => {
    const v = views.get(m.room);
    if (v) addMessage(v, m);
  }));
  c.on("presence", live(({ room, users, count, partial }) => {
    const v = views.get(room);
    if (!v) return;
    Object.assign(v, { users, count, partial });
    if (room === active) renderUsers();
  }));
  c.on("user_joined", live((f) => { const v = views.get(f.room); if (v && f.username !== me) presenceLine(v, f); }));
  c.on("user_left", live((f) => {
    const v = views.get(f.room);
    if (!v || f.username === me) return;
    stopTyping(v, f.username);
    presenceLine(v, f);
  }));
  c.on("presence_diff", live((f) => {
    const v = views.get(f.room);
    if (!v) return;
    for (const name of f.left ?? []) stopTyping(v, name);
    diffLine(v, f);
  }));
  c.on("typing", live(({ room, username }) => {
    const v = views.get(room);
    if (v && username !== me) showTyping(v, username);
  }));
  c.on("direct", live((d) => toast(`${d.from} (private): ${d.content}`)));
  c.on("error", live((err) => {
    if (err.code !== "kicked" && err.code !== "token_expired") toast(describe(err), "error");
  }));
  saveSession();
}

function stop() {
  if (client) {
    const c = client;
    client = null;
    c.close();
  }
  clearInterval(countdown);
  for (const room of [...views.keys()]) {
    const v = views.get(room);
    for (const timer of v.typing.values()) clearTimeout(timer);
    v.pane.remove();
    v.li.remove();
    views.delete(room);
  }
  active = null;
}

function leaveRoom(room) {
  client?.leave(room).catch(() => {});
  removeView(room); // the "left" event finds it gone already
}

function joinRoom(room) {
  if (views.has(room)) {
    select(room);
    return;
  }
  const v = newView(room);
  select(room);
  saveSession();
  client.join(room).catch((err) => {
    if (views.get(room) === v) removeView(room);
    ui.joinError.textContent = `Could not join #${room}: ${describe(err)}.`;
  });
}

// ---- wiring ----

ui.loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const username = ui.loginName.value.trim();
  const room = ui.loginRoom.value.trim().replace(/^#/, "");
  if (!validUsername(username)) {
    ui.loginError.textContent = "Names are 1–32 letters, digits, dots, dashes or underscores, starting with a letter or digit.";
    ui.loginName.focus();
    return;
  }
  if (!validRoom(room)) {
    ui.loginError.textContent = "Room names are 1–64 letters, digits, dots, dashes, underscores or colons.";
    ui.loginRoom.focus();
    return;
  }
  ui.loginError.textContent = "";
  start({ username, rooms: [room], active: room });
});

ui.logout.addEventListener("click", () => {
  stop();
  storage("session")?.removeItem(SESSION_KEY);
  showLogin();
});

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const room = ui.joinRoom.value.trim().replace(/^#/, "");
  if (!room) return;
  if (!validRoom(room)) {
    ui.joinError.textContent = "Room names are letters, digits and . _ : -";
    return;
  }
  ui.joinError.textContent = "";
  ui.joinRoom.value = "";
  joinRoom(room);
});

ui.leave.addEventListener("click", () => {
  if (active) leaveRoom(active);
});

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  const v = views.get(active);
  const content = ui.input.value;
  if (!v || !client || content.trim() === "") return;
  ui.input.value = "";
  autosize();
  sendMessage(v, content);
});

ui.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.input.addEventListener("input", () => {
  autosize();
  if (active && ui.input.value.trim() !== "") client?.typing(active);
});

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 160)}px`;
}

// Arrow keys move between room tabs; Alt+↑/↓ does it from anywhere.
function step(delta) {
  const rooms = [...views.keys()];
  if (rooms.length < 2) return;
  const i = (rooms.indexOf(active) + delta + rooms.length) % rooms.length;
  select(rooms[i], { focus: false });
  return rooms[i];
}

ui.roomList.addEventListener("keydown", (e) => {
  const delta = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[e.key];
  if (!delta || !e.target.classList.contains("room-tab")) return;
  e.preventDefault();
  const room = step(delta);
  if (room) views.get(room).tab.focus();
});

document.addEventListener("keydown", (e) => {
  if (!e.altKey || (e.key !== "ArrowUp" && e.key !== "ArrowDown") || !client) return;
  e.preventDefault();
  step(e.key === "ArrowDown" ? 1 : -1);
});

ui.usersToggle.addEventListener("click", () => {
  const narrow = matchMedia("(max-width: 760px)").matches;
  const cls = narrow ? "users-open" : "users-collapsed";
  const on = ui.app.classList.toggle(cls);
  ui.usersToggle.setAttribute("aria-expanded", String(narrow ? on : !on));
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && active) {
    const v = views.get(active);
    if (v) { v.unread = 0; renderBadge(v); }
  }
});

function showLogin() {
  ui.app.hidden = true;
  ui.login.hidden = false;
  const params = new URLSearchParams(location.search);
  ui.loginName.value = storage("local")?.getItem(NAME_KEY) ?? "";
  const room = params.get("room");
  if (room && validRoom(room)) ui.loginRoom.value = room;
  (ui.loginName.value ? ui.loginRoom : ui.loginName).focus();
}

const session = loadSession();
if (session && session.rooms.length) start(session);
else showLogin();
