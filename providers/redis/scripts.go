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
//	r  the driver.MarshalRecord envelope (format 2), with the same version
//	x  only if the record expires: timeToken(ExpiresAt)
//
// and, if it expires, a PEXPIREAT of expireAtMillis(ExpiresAt + the
// tombstone retention). The tombstone of a deleted record is the same hash
// with r a driver.MarshalTombstone envelope (flag bit 1, the deleted
// version, no data) and no x, and a PEXPIRE of the retention. An expired
// record and a tombstone are no live record, but they keep the key's last
// version: a create stores one more than it.
//
// Replies are arrays whose first element says what happened:
//
//	{1, v1, v2, ...}         applied; vi is the version write i stored, as
//	                         a decimal string ('0' for a delete)
//	{0, index, actual}       version mismatch at write index (0-based);
//	                         actual is the live version, 0 if none, -1 if
//	                         it has more than 15 digits (Lua numbers are
//	                         doubles, exact to 2^53 only)
//	{2, index, reason}       the stored record at write index is damaged;
//	                         nothing was written
//	{3, index}               write index would create a version past
//	                         2^63-1; nothing was written
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

-- envelope checks what driver.UnmarshalRecord checks (format 2: magic,
-- format, flags, a 4-byte checksum, then the varints), that the envelope
-- carries version v, and that its expiry is the one in the field x (false
-- if absent). If r is sound it returns nil and whether r is a tombstone
-- (which has no codec, checksum, expiry, data nor field x); else why not.
local function envelope(r, v, x)
  local magic, format, flags = string.byte(r, 1, 3)
  if magic ~= 81 or format ~= 2 or flags == nil or flags > 2 or string.len(r) < 7 then
    return 'bad envelope header'
  end
  local n, i = uvarint(r, 8)
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
  if flags == 2 then
    local c1, c2, c3, c4 = string.byte(r, 4, 7)
    if n ~= 0 or c1 + c2 + c3 + c4 ~= 0 or t ~= 0 or j <= string.len(r) then
      return 'tombstone with contents'
    end
    if x then return 'field x is set on a tombstone' end
    return nil, true
  end
  if t == 0 then
    if x then return 'field x is set but the envelope has no expiry' end
  elseif not x then
    return 'the envelope has an expiry but field x is missing'
  elseif not sametime(r, i, j, x) then
    return 'field x differs from the envelope expiry'
  end
  return nil, false
end

-- state reads the record under key. It returns its live version ('0' if
-- there is none: absent, a tombstone, or expired at now), the key's last
-- version (that of a tombstone or an expired record too; '0' if the key
-- holds nothing), whether it has a field x and whether it has a TTL (x, or
-- a tombstone); or, for a damaged record, nil and the reason.
local function state(key, now)
  local h = redis.pcall('HMGET', key, 'v', 'r', 'x')
  if h['err'] then return nil, 'not a record hash: ' .. h['err'] end
  local v, r, x = h[1], h[2], h[3]
  if not v and not r and not x then return '0', '0', false, false end
  if not v then return nil, 'missing field v' end
  if not r then return nil, 'missing field r' end
  if not isversion(v) then return nil, 'bad field v' end
  if x and (string.len(x) ~= 20 or string.find(x, '%D')) then return nil, 'bad field x' end
  local why, tomb = envelope(r, v, x)
  if why then return nil, why end
  local hasx = x ~= false
  if tomb or (hasx and le(x, now)) then return '0', v, hasx, true end
  return v, v, hasx, hasx
end

-- incr returns the canonical decimal v+1, or nil past 2^63-1.
local function incr(v)
  if v == '9223372036854775807' then return nil end
  local i = string.len(v)
  while i > 0 and string.byte(v, i) == 57 do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', string.len(v)) end
  return string.sub(v, 1, i - 1) .. string.char(string.byte(v, i) + 1) .. string.rep('0', string.len(v) - i)
end

-- reversion returns the envelope r (written by the store, so sound) with
-- the version replaced by the decimal v: a create continuing the versions
-- of a tombstone or an expired record, whose envelope the store encoded at
-- version 1.
local function reversion(r, v)
  local n, i = uvarint(r, 8)
  local _, j = uvarint(r, i + n)
  local _, k = uvarint(r, j)
  local g = dgroups(v)
  local top = 10
  while top > 1 and g[top] == 0 do top = top - 1 end
  local b = {}
  for m = 1, top - 1 do b[m] = g[m] + 128 end
  b[top] = g[top]
  return string.sub(r, 1, j - 1) .. string.char(unpack(b)) .. string.sub(r, k)
end
`

// putScript applies conditional writes and deletes to the keys of one
// actor, all or none: it checks every write first (as if the earlier ones
// were applied, so a batch may name one key twice), then applies them all.
// A put requires the live version to be expected; an update stores
// expected+1, a create one more than the key's last version (that of a
// tombstone or an expired record it still holds). A delete requires the
// live version to be expected and replaces the live record by its
// tombstone; a delete expecting 0 that finds no live record writes nothing.
//
//	KEYS[i]           the key of write i
//	ARGV[1]           now, as timeToken
//	ARGV[2]           the tombstone retention, milliseconds (PEXPIRE)
//	ARGV[5i-2..5i+2]  for write i: expected version; for a put the version
//	                  its envelope carries (expected+1), '' for a delete;
//	                  the envelope (for a delete the tombstone, '' if
//	                  expected is 0); expiry token or ''; PEXPIREAT
//	                  milliseconds of the expiry plus the retention, or ''
//
// A write with an expiry sets field x and PEXPIREAT; a write without one
// over a key with a TTL (field x, or a tombstone) removes x and PERSISTs
// the key: the store sets a TTL only together with x or on a tombstone. A
// write whose expiry has already passed is stored as an expired record: it
// keeps its version until Redis removes it after the retention.
var putScript = goredis.NewScript(luaPrelude + `
local now, keep, n = ARGV[1], ARGV[2], #KEYS
local live, last, hasx, ttl = {}, {}, {}, {}
local out = {1}
for i = 1, n do
  local key, a = KEYS[i], 5 * i - 2
  if not live[key] then
    local l, s, x, t = state(key, now)
    if not l then return {2, i - 1, s} end
    live[key], last[key], hasx[key], ttl[key] = l, s, x, t
  end
  if live[key] ~= ARGV[a] then return {0, i - 1, num(live[key])} end
  if ARGV[a + 1] == '' then
    out[i + 1] = '0'
    live[key] = '0'
  else
    local v = ARGV[a + 1]
    if ARGV[a] == '0' then
      v = incr(last[key])
      if not v then return {3, i - 1} end
    end
    out[i + 1] = v
    live[key], last[key] = v, v
  end
end
for i = 1, n do
  local key, a = KEYS[i], 5 * i - 2
  local v = out[i + 1]
  if ARGV[a + 1] == '' then
    if ARGV[a] ~= '0' then
      redis.call('HSET', key, 'v', ARGV[a], 'r', ARGV[a + 2])
      if hasx[key] then redis.call('HDEL', key, 'x') end
      redis.call('PEXPIRE', key, keep)
      hasx[key], ttl[key] = false, true
    end
  else
    local r = ARGV[a + 2]
    if v ~= ARGV[a + 1] then r = reversion(r, v) end
    local x = ARGV[a + 3]
    if x == '' then
      redis.call('HSET', key, 'v', v, 'r', r)
      if hasx[key] then redis.call('HDEL', key, 'x') end
      if ttl[key] then redis.call('PERSIST', key) end
      hasx[key], ttl[key] = false, false
    else
      redis.call('HSET', key, 'v', v, 'r', r, 'x', x)
      redis.call('PEXPIREAT', key, ARGV[a + 4])
      hasx[key], ttl[key] = true, true
    end
  end
end
return out
`)
