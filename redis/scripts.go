package redis

import goredis "github.com/redis/go-redis/v9"

// The presence scripts. Each runs atomically in Redis, which is what makes
// Add's first, Remove's last and the reaper's reports exact across nodes.
// All take ARGV[1] = key prefix, ARGV[2] = node id; times are Redis's own
// clock in milliseconds, so the nodes' clocks need not agree.

// scriptPrelude is shared by the scripts: key names, the clock, and drop,
// which takes one node's hold on (room, user) away and returns 1 when that
// was the last node holding it.
const scriptPrelude = `
if redis.replicate_commands then redis.replicate_commands() end
local prefix, node = ARGV[1], ARGV[2]
local nodes = prefix .. 'presence:nodes'
local members = prefix .. 'presence:node:' .. node
local rooms = prefix .. 'presence:rooms'
local function roomKey(room) return prefix .. 'presence:room:' .. room end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- number returns the next number of the cluster's presence decisions:
-- Redis's clock in microseconds, or one more than the last number when
-- that is not behind it, so that the numbers keep growing even after Redis
-- lost the last one.
local function number()
  local key = prefix .. 'presence:order'
  local t = redis.call('TIME')
  local n = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', key) or '0')
  if n <= last then n = last + 1 end
  redis.call('SET', key, string.format('%d', n))
  return n
end
local function hold(room, user)
  if redis.call('SADD', members, room .. '\0' .. user) == 0 then return 0 end
  redis.call('SADD', rooms, room)
  if redis.call('HINCRBY', roomKey(room), user, 1) == 1 then return 1 end
  return 0
end
local function drop(room, user)
  local key = roomKey(room)
  if redis.call('HINCRBY', key, user, -1) > 0 then return 0 end
  redis.call('HDEL', key, user)
  if redis.call('HLEN', key) == 0 then redis.call('SREM', rooms, room) end
  return 1
end
`

// heartbeatScript (ARGV[3] = window ms) moves the node's expiry to now +
// window. It returns 0 when the node was not registered: new, reaped while
// cut off, or lost by Redis; the node then restores its entries.
var heartbeatScript = goredis.NewScript(scriptPrelude + `
local known = redis.call('ZSCORE', nodes, node)
redis.call('ZADD', nodes, now() + tonumber(ARGV[3]), node)
if known then return 1 end
return 0
`)

// addScript (ARGV[3] = window ms, ARGV[4] = room, ARGV[5] = user) records
// that the node holds user in room, registering the node too. It returns
// {first, known, number}: first is 1 when no node held the user there
// before, known is 0 when the node had not been registered, and number is
// the decision's number when first, else 0.
var addScript = goredis.NewScript(scriptPrelude + `
local known = redis.call('ZSCORE', nodes, node)
redis.call('ZADD', nodes, now() + tonumber(ARGV[3]), node)
local first, n = hold(ARGV[4], ARGV[5]), 0
if first == 1 then n = number() end
if known then return {first, 1, n} end
return {first, 0, n}
`)

// removeScript (ARGV[3] = room, ARGV[4] = user) forgets that the node holds
// user in room. It returns {last, number}: last is 1 when no node holds the
// user there any more, and number is the decision's number then, else 0.
var removeScript = goredis.NewScript(scriptPrelude + `
if redis.call('SREM', members, ARGV[3] .. '\0' .. ARGV[4]) == 0 then return {0, 0} end
if drop(ARGV[3], ARGV[4]) == 0 then return {0, 0} end
return {1, number()}
`)

// restoreScript (ARGV[3] = window ms, then room, user pairs) registers the
// node and records that it holds each pair; pairs it holds already are left
// alone. When the node was reaped, and the others announced its users'
// departures, it returns, flattened, the pairs that thereby came back
// online; when Redis lost its data instead, nobody was told they left, and
// it returns none.
var restoreScript = goredis.NewScript(scriptPrelude + `
redis.call('ZADD', nodes, now() + tonumber(ARGV[3]), node)
local reaped = redis.call('EXISTS', prefix .. 'presence:reaped:' .. node) == 1
local back = {}
for i = 4, #ARGV - 1, 2 do
  if hold(ARGV[i], ARGV[i + 1]) == 1 and reaped then
    table.insert(back, ARGV[i])
    table.insert(back, ARGV[i + 1])
  end
end
return back
`)

// expiredScript (ARGV[3] = limit) returns up to limit nodes whose expiry has
// passed, the calling node excepted.
var expiredScript = goredis.NewScript(scriptPrelude + `
local found = {}
for _, n in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now(), 'LIMIT', 0, tonumber(ARGV[3]))) do
  if n ~= node then table.insert(found, n) end
end
return found
`)

// reapScript forgets everything node ARGV[2] holds if its expiry has passed,
// unregisters it, and marks it reaped for a day (restoreScript). It returns the (room, user) pairs that thereby became
// absent, flattened; the script deletes what it reports, so exactly one
// reaper reports each pair.
var reapScript = goredis.NewScript(scriptPrelude + `
local expiry = redis.call('ZSCORE', nodes, node)
if not expiry or tonumber(expiry) > now() then return {} end
local gone = {}
for _, m in ipairs(redis.call('SMEMBERS', members)) do
  local i = string.find(m, '\0', 1, true)
  local room, user = string.sub(m, 1, i - 1), string.sub(m, i + 1)
  if drop(room, user) == 1 then
    table.insert(gone, room)
    table.insert(gone, user)
  end
end
redis.call('DEL', members)
redis.call('ZREM', nodes, node)
redis.call('SET', prefix .. 'presence:reaped:' .. node, '1', 'EX', 86400)
return gone
`)
