package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts that make writes conditional. Redis runs a script
// atomically: no other command runs between its first read and its last
// write, so each script is one compare-and-set over every key it names.
// go-redis' Script.Run sends EVALSHA and falls back to EVAL (which loads the
// script) when the server answers NOSCRIPT.
//
// A record is a hash with the fields
//
//	v  the version, canonical decimal, 1..2^63-1
//	r  the driver.MarshalRecord envelope, with the same version
//	x  only if the record expires: timeToken(ExpiresAt)
//
// and, if it expires, a PEXPIREAT of expireAtMillis(ExpiresAt).
//
// Replies are arrays whose first element says what happened:
//
//	{1}                      applied
//	{0, index, actual}       version mismatch at write index (0-based);
//	                         actual is the stored version, 0 if absent, -1 if
//	                         it has more than 15 digits (Lua numbers are
//	                         doubles, exact to 2^53 only)
//	{2, index, reason}       the stored record at write index is damaged;
//	                         nothing was written
const luaPrelude = `
-- le reports whether a <= b, for decimal strings of equal length (11 to 20
-- digits), comparing exact 10-digit halves: Lua numbers are doubles.
local function le(a, b)
  local a1, b1 = tonumber(string.sub(a, 1, 10)), tonumber(string.sub(b, 1, 10))
  if a1 ~= b1 then return a1 < b1 end
  return tonumber(string.sub(a, 11)) <= tonumber(string.sub(b, 11))
end

-- isversion reports whether v is a canonical decimal in 1..2^63-1.
local function isversion(v)
  if not string.find(v, '^[1-9]%d*$') then return false end
  local n = string.len(v)
  return n < 19 or (n == 19 and le(v, '9223372036854775807'))
end

-- num is the integer reply for a stored version.
local function num(v)
  if string.len(v) <= 15 then return tonumber(v) end
  return -1
end

-- uvarint reads a base-128 varint at position i of s as Go's
-- binary.Uvarint does. It returns the value (exact below 2^53), the
-- position after it and whether bit 63 is set, or nil if s ends first or
-- the value overflows 64 bits.
local function uvarint(s, i)
  local x, mul = 0, 1
  for n = 0, 9 do
    local b = string.byte(s, i + n)
    if not b then return nil end
    if b < 128 then
      if n == 9 and b > 1 then return nil end
      return x + b * mul, i + n + 1, n == 9 and b == 1
    end
    x = x + (b - 128) * mul
    mul = mul * 128
  end
  return nil
end

-- The exact comparisons below work on 64-bit numbers as 10 groups of 7
-- bits, least significant first, and on bits (70 of them, bit 0 first).

-- vgroups returns the groups of the varint in s[i..j-1].
local function vgroups(s, i, j)
  local g = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
  for n = i, j - 1 do g[n - i + 1] = string.byte(s, n) % 128 end
  return g
end

-- dgroups returns the groups of the decimal string d (at most 21 digits).
local function dgroups(d)
  local g = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
  for i = 1, string.len(d) do
    local carry = string.byte(d, i) - 48
    for j = 1, 10 do
      local t = g[j] * 10 + carry
      g[j] = t % 128
      carry = (t - g[j]) / 128
    end
  end
  return g
end

local function bits(g)
  local b = {}
  for j = 1, 10 do
    local v = g[j]
    for k = 1, 7 do
      b[#b + 1] = v % 2
      v = (v - v % 2) / 2
    end
  end
  return b
end

-- sametime reports whether the zigzag varint in r[i..j-1] (Unix
-- nanoseconds n, as binary.AppendVarint writes them) is the instant of the
-- token x (the bits of n with bit 63 flipped). With h = u >> 1 for the
-- varint's value u: n is h if u is even and the complement of h if u is
-- odd, so the token's bits 0..62 are h's, complemented when u is odd, and
-- its bit 63 is 1 exactly when u is even.
local function sametime(r, i, j, x)
  local u, t = bits(vgroups(r, i, j)), bits(dgroups(x))
  local odd = u[1]
  for k = 1, 63 do
    local h = u[k + 1]
    if odd == 1 then h = 1 - h end
    if t[k] ~= h then return false end
  end
  if t[64] ~= 1 - odd then return false end
  for k = 65, 70 do
    if t[k] ~= 0 then return false end
  end
  return true
end

-- envelope checks what driver.UnmarshalRecord checks, that the envelope
-- carries version v, and that its expiry is the one in the field x (false
-- if absent). It returns nil if r is sound, else why not.
local function envelope(r, v, x)
  local magic, format, flags = string.byte(r, 1, 3)
  if magic ~= 81 or format ~= 1 or flags == nil or flags > 1 then return 'bad envelope header' end
  local n, i = uvarint(r, 4)
  if not n or n > 64 or n > string.len(r) - i + 1 then return 'bad codec length' end
  local schema, version, big, t, j
  schema, i = uvarint(r, i + n)
  if not schema or schema > 4294967295 then return 'bad schema version' end
  version, j, big = uvarint(r, i)
  if not version or version == 0 or big then return 'bad envelope version' end
  if string.len(v) <= 15 then
    if version ~= tonumber(v) then return 'field v differs from the envelope version' end
  else
    local g1, g2 = vgroups(r, i, j), dgroups(v)
    for k = 1, 10 do
      if g1[k] ~= g2[k] then return 'field v differs from the envelope version' end
    end
  end
  t, i = uvarint(r, j)
  if not t then return 'bad updated-at' end
  t, j = uvarint(r, i)
  if not t then return 'bad expires-at' end
  if t == 0 then
    if x then return 'field x is set but the envelope has no expiry' end
  elseif not x then
    return 'the envelope has an expiry but field x is missing'
  elseif not sametime(r, i, j, x) then
    return 'field x differs from the envelope expiry'
  end
  return nil
end

-- state reads the record under key. It returns its live version ('0' if
-- absent or expired at now), whether the key exists and whether it has an
-- x field; or, for a damaged record, nil and the reason.
local function state(key, now)
  local h = redis.pcall('HMGET', key, 'v', 'r', 'x')
  if h['err'] then return nil, 'not a record hash: ' .. h['err'] end
  local v, r, x = h[1], h[2], h[3]
  if not v and not r and not x then return '0', false, false end
  if not v then return nil, 'missing field v' end
  if not r then return nil, 'missing field r' end
  if not isversion(v) then return nil, 'bad field v' end
  if x and (string.len(x) ~= 20 or string.find(x, '%D')) then return nil, 'bad field x' end
  local why = envelope(r, v, x)
  if why then return nil, why end
  if x and le(x, now) then return '0', true, true end
  return v, true, x ~= false
end
`

// putScript applies conditional writes to the keys of one actor, all or
// none: it checks every write first (as if applied in order, so a batch may
// write one key twice), then applies them all.
//
//	KEYS[i]           the key of write i
//	ARGV[1]           now, as timeToken
//	ARGV[5i-3..5i+1]  for write i: expected version, new version, envelope,
//	                  expiry token or "", PEXPIREAT milliseconds or ""
//
// A write with an expiry sets field x and PEXPIREAT; a write without one
// over a record that had one (field x) removes x and PERSISTs the key: the
// store sets a TTL only together with x. A write that expires at or before
// now deletes the key: an expired record is never left live.
var putScript = goredis.NewScript(luaPrelude + `
local now, n = ARGV[1], #KEYS
local cur, exists, hasx = {}, {}, {}
for i = 1, n do
  local key, a = KEYS[i], 5 * i - 4
  local v = cur[key]
  if not v then
    local e, x
    v, e, x = state(key, now)
    if not v then return {2, i - 1, e} end
    exists[key], hasx[key] = e, x
  end
  if v ~= ARGV[a + 1] then return {0, i - 1, num(v)} end
  cur[key] = ARGV[a + 2]
end
for i = 1, n do
  local key, a = KEYS[i], 5 * i - 4
  local x, at = ARGV[a + 4], ARGV[a + 5]
  if x == '' then
    redis.call('HSET', key, 'v', ARGV[a + 2], 'r', ARGV[a + 3])
    if hasx[key] then
      redis.call('HDEL', key, 'x')
      redis.call('PERSIST', key)
    end
    exists[key], hasx[key] = true, false
  elseif le(x, now) then
    if exists[key] then redis.call('DEL', key) end
    exists[key], hasx[key] = false, false
  else
    redis.call('HSET', key, 'v', ARGV[a + 2], 'r', ARGV[a + 3], 'x', x)
    redis.call('PEXPIREAT', key, at)
    exists[key], hasx[key] = true, true
  end
end
return {1}
`)

// deleteScript deletes one record if its version is the expected one.
// Deleting an absent (or expired) record with expected version 0 succeeds;
// an expired record still in Redis is removed.
//
//	KEYS[1]  the key
//	ARGV[1]  now, as timeToken
//	ARGV[2]  expected version
var deleteScript = goredis.NewScript(luaPrelude + `
local v, exists = state(KEYS[1], ARGV[1])
if not v then return {2, 0, exists} end
if v ~= ARGV[2] then return {0, 0, num(v)} end
if exists then redis.call('DEL', KEYS[1]) end
return {1}
`)
