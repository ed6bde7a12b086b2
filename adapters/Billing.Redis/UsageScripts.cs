using System.Security.Cryptography;
using System.Text;

namespace Billing.Redis;

/// <summary>
/// The Lua scripts. Each applies events exactly as <see cref="Usage.UsageCounterState"/> does, atomically (Redis runs a
/// script alone), and only touches keys passed in <c>KEYS</c>.
/// </summary>
/// <remarks>
/// <para>
/// <b>Exact numbers.</b> Lua numbers are doubles, exact only up to 2^53, and Redis turns integer replies into Lua numbers.
/// So numbers travel as decimal text (quantities, limits, totals, UTC ticks) and totals are read as text from the hash. A
/// value below 10^15 (at most 15 digits) is turned into a Lua number and added, compared and written as one: exact, since
/// a sum of two such values stays below 2^53. A value of 16 digits or more stays text and is compared and added as decimal
/// text (by length, then in chunks of at most 15 digits; digit by digit for additions), so limits and totals are exact over
/// the whole <see cref="long"/> range; a sum past <see cref="long.MaxValue"/> is detected before anything is written for the
/// event and reported as outcome 3 (an <see cref="OverflowException"/> in .NET). Numbers passed to <c>redis.call</c> are
/// written by Redis as <c>%.17g</c>, i.e. as plain digits below 10^17.
/// </para>
/// <para>
/// <b>Ordering of <see cref="Usage.MeterAggregation.Last"/>.</b> Ties on the timestamp are broken by
/// <see cref="string.CompareOrdinal(string, string)"/> of the idempotency keys, i.e. by UTF-16 code units. The adapter
/// passes each key's code units as 4 lowercase hex digits, whose byte order is that order, and the script compares
/// bytes one by one (Lua's <c>&lt;</c> on strings uses the server's locale collation, so it is never used).
/// </para>
/// <para>
/// <b>Cost.</b> Idempotency keys are fields of one hash per customer and generation (see <see cref="Idempotency"/>), so a
/// call looks up all of a customer's keys with one <c>HMGET</c> per generation it must search (two with the defaults) and
/// takes the new ones with one <c>HSET</c>, a <c>PTTL</c> and at most one <c>PEXPIRE</c>: a few Redis calls per customer
/// and call instead of one per event. Per counter and call: one <c>HGET</c> (<c>HMGET</c> for Last) when it is first
/// used, and one <c>HSET</c> of the final state plus a <c>PEXPIRE</c> at the end. UniqueCount adds a <c>SISMEMBER</c> per
/// event and a <c>SADD</c> per new value. Duplicates and events that cannot be accepted (over the limit, overflow) write
/// nothing. Reading the server clock (<c>TIME</c>) needs Redis 5 or later (script effects replication).
/// </para>
/// <para><b>Results.</b> One element per event, in order: the integer <c>outcome + 4 × total</c> when the total is below
/// 10^15, otherwise the text of the outcome digit followed by the total's digits. Outcomes: 0 accepted, 1 duplicate,
/// 2 over the limit, 3 overflow (the script stops there: the reply is shorter than the events).</para>
/// </remarks>
internal static class UsageScripts
{
    /// <summary>The aggregation codes the scripts understand.</summary>
    public const string Sum = "s", Count = "c", Max = "m", Last = "l", UniqueCount = "u";

    /// <summary>Arguments per profile of <see cref="Record"/>: counter hash index, aggregation, limit, dedup ms, retention ms, customer index.</summary>
    public const int RecordArgumentsPerProfile = 6;

    /// <summary>Arguments per event of <see cref="Rebuild"/>.</summary>
    public const int RebuildArgumentsPerEvent = 7;

    /// <summary>Totals below this are encoded as one integer (<c>outcome + 4 × total</c>).</summary>
    public const long CompactLimit = 1_000_000_000_000_000;

    private const string Helpers = """
        local MAXI = '9223372036854775807'
        local BIG = 1e15
        local type, tonumber, format = type, tonumber, string.format

        -- Decimal text as a Lua number when it has at most 15 digits (exact), else the text itself.
        local function num(s)
          if #s <= 15 then return tonumber(s) end
          return s
        end

        local function text(x)
          if type(x) == 'number' then return format('%.0f', x) end
          return x
        end

        -- Compares two non-negative canonical decimal texts: -1, 0 or 1.
        local function cmpstr(a, b)
          local la, lb = #a, #b
          if la ~= lb then
            if la < lb then return -1 else return 1 end
          end
          local x, y
          if la <= 15 then
            x, y = tonumber(a), tonumber(b)
          else
            x, y = tonumber(string.sub(a, 1, la - 15)), tonumber(string.sub(b, 1, la - 15))
            if x == y then
              x, y = tonumber(string.sub(a, la - 14)), tonumber(string.sub(b, la - 14))
            end
          end
          if x == y then return 0 elseif x < y then return -1 else return 1 end
        end

        -- Compares two values of num(): a number is always below a text (which has 16 digits or more).
        local function cmp(a, b)
          local na, nb = type(a) == 'number', type(b) == 'number'
          if na and nb then
            if a == b then return 0 elseif a < b then return -1 else return 1 end
          elseif na then
            return -1
          elseif nb then
            return 1
          end
          return cmpstr(a, b)
        end

        -- Adds two non-negative canonical decimal texts exactly.
        local function addstr(a, b)
          local digits, carry, i, j = {}, 0, #a, #b
          while i > 0 or j > 0 or carry > 0 do
            local d = carry
            if i > 0 then d = d + string.byte(a, i) - 48 end
            if j > 0 then d = d + string.byte(b, j) - 48 end
            if d >= 10 then d = d - 10; carry = 1 else carry = 0 end
            digits[#digits + 1] = string.char(d + 48)
            i = i - 1
            j = j - 1
          end
          local n = #digits
          for p = 1, math.floor(n / 2) do
            digits[p], digits[n - p + 1] = digits[n - p + 1], digits[p]
          end
          return table.concat(digits)
        end

        -- Adds two values of num(); the result is a value of num() again.
        local function add(a, b)
          if type(a) == 'number' and type(b) == 'number' then
            local r = a + b
            if r < BIG then return r end
            return format('%.0f', r)
          end
          return addstr(text(a), text(b))
        end

        local function fits(x)
          return type(x) == 'number' or #x < 19 or (#x == 19 and cmpstr(x, MAXI) <= 0)
        end

        -- Byte-wise comparison (independent of the server's locale).
        local function bytecmp(a, b)
          if a == b then return 0 end
          local la, lb = #a, #b
          for p = 1, math.min(la, lb) do
            local x, y = string.byte(a, p), string.byte(b, p)
            if x ~= y then
              if x < y then return -1 else return 1 end
            end
          end
          if la < lb then return -1 else return 1 end
        end

        local function reply(outcome, total)
          if type(total) == 'number' then return outcome + 4 * total end
          return outcome .. total
        end

        """;

    /// <summary>
    /// Records events in order. <c>KEYS</c>: per customer the start of its idempotency hashes' names
    /// (<c>{prefix}:{cus}:i:</c>, the script appends the generation), then per counter its hash, followed by its set of
    /// unique values when a UniqueCount event uses it. <c>ARGV</c>: n, the number of profiles p, the generation length in ms,
    /// then per profile (<see cref="RecordArgumentsPerProfile"/>): the index of the counter hash in <c>KEYS</c>, aggregation,
    /// hard limit (empty for none), dedup window ms (0: the key is not kept), counter retention ms, the index of the
    /// customer's idempotency name in <c>KEYS</c>; then per event: its profile (1..p, only when p &gt; 1), idempotency key,
    /// quantity, UTC ticks and ordinal key (Last only), unique value (UniqueCount only).
    /// </summary>
    public const string Record = Helpers + Idempotency + """
        local n, p, gen = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
        local now = servertime()
        local pc, pagg, plim, pdedup, pret, pcus, psuffix = {}, {}, {}, {}, {}, {}, {}
        local a = 3
        for j = 1, p do
          pc[j] = tonumber(ARGV[a + 1])
          pagg[j] = ARGV[a + 2]
          local l = ARGV[a + 3]
          if l == '' then plim[j] = false else plim[j] = num(l) end
          pdedup[j] = tonumber(ARGV[a + 4])
          pret[j] = ARGV[a + 5]
          pcus[j] = tonumber(ARGV[a + 6])
          psuffix[j] = ':' .. format('%.0f', now + pdedup[j])
          a = a + 6
        end
        -- First pass: where each event's arguments start, and each customer's keys (looked up together).
        local ep, ea, cust, corder = {}, {}, {}, {}
        local pi = 1
        for i = 1, n do
          if p > 1 then
            a = a + 1
            pi = tonumber(ARGV[a])
          end
          ep[i], ea[i] = pi, a
          local ci, agg = pcus[pi], pagg[pi]
          local cu = cust[ci]
          if not cu then
            cu = { keys = {}, window = 0, writes = {}, expiry = 0 }
            cust[ci] = cu
            corder[#corder + 1] = ci
          end
          cu.keys[#cu.keys + 1] = ARGV[a + 1]
          if pdedup[pi] > cu.window then cu.window = pdedup[pi] end
          if agg == 'l' then a = a + 4 elseif agg == 'u' then a = a + 3 else a = a + 2 end
        end
        for k = 1, #corder do
          local ci = corder[k]
          local cu = cust[ci]
          cu.found = lookup(KEYS[ci], cu.keys, now, gen, cu.window)
        end
        local totals, stamps, skeys, changed, sets, ret, order, out = {}, {}, {}, {}, {}, {}, {}, {}
        for i = 1, n do
          pi = ep[i]
          a = ea[i]
          local key, q = ARGV[a + 1], ARGV[a + 2]
          a = a + 2
          local ci, agg = pc[pi], pagg[pi]
          local cu = cust[pcus[pi]]
          local t = totals[ci]
          if agg == 'l' and stamps[ci] == nil then
            local h = redis.call('HMGET', KEYS[ci], 'total', 'last_ts', 'last_key')
            if t == nil then
              if h[1] then t = num(h[1]) else t = 0 end
              totals[ci] = t
            end
            stamps[ci] = h[2] or false
            skeys[ci] = h[3]
          elseif t == nil then
            local h = redis.call('HGET', KEYS[ci], 'total')
            if h then t = num(h) else t = 0 end
            totals[ci] = t
          end
          local original = cu.found[key]
          if original then
            out[i] = reply(1, num(original))
          else
            local c, ts, kh, uv, later
            if agg == 's' then
              if type(t) == 'number' and #q <= 15 then
                c = t + tonumber(q)
                if c >= BIG then c = format('%.0f', c) end
              else
                c = add(t, num(q))
              end
            elseif agg == 'c' then
              c = add(t, 1)
            elseif agg == 'm' then
              c = num(q)
              if cmp(c, t) <= 0 then c = t end
            elseif agg == 'l' then
              ts, kh = ARGV[a + 1], ARGV[a + 2]
              local lts = stamps[ci]
              later = not lts
              if not later then
                local d = cmpstr(ts, lts)
                later = d > 0 or (d == 0 and bytecmp(kh, skeys[ci]) > 0)
              end
              if later then c = num(q) else c = t end
            elseif agg == 'u' then
              uv = ARGV[a + 1]
              later = redis.call('SISMEMBER', KEYS[ci + 1], uv) == 0
              if later then c = add(t, 1) else c = t end
            else
              error('unknown aggregation ' .. tostring(agg))
            end
            local lim, ok = plim[pi], false
            if type(c) == 'number' then
              ok = not lim or type(lim) ~= 'number' or c <= lim
            else
              ok = fits(c) and (not lim or cmp(c, lim) <= 0)
            end
            if ok then
              local dedup = pdedup[pi]
              if dedup > 0 then
                local ct = c
                if type(c) == 'number' then ct = format('%d', c) end
                cu.found[key] = ct
                local w = cu.writes
                w[#w + 1] = key
                w[#w + 1] = ct .. psuffix[pi]
                if now + dedup > cu.expiry then cu.expiry = now + dedup end
              end
              totals[ci] = c
              if agg == 'l' then
                if later then
                  stamps[ci] = ts
                  skeys[ci] = kh
                  changed[ci] = true
                end
              elseif agg == 'u' then
                if later then redis.call('SADD', KEYS[ci + 1], uv) end
                sets[ci] = true
              end
              if not ret[ci] then order[#order + 1] = ci end
              ret[ci] = pret[pi]
              if type(c) == 'number' then out[i] = 4 * c else out[i] = '0' .. c end
            elseif fits(c) then
              out[i] = reply(2, t)
            else
              out[i] = reply(3, t)
              break
            end
          end
        end
        for k = 1, #corder do
          local cu = cust[corder[k]]
          store(KEYS[corder[k]], cu.writes, cu.expiry, now, gen)
        end
        for k = 1, #order do
          local ci = order[k]
          local ckey, ms = KEYS[ci], ret[ci]
          if changed[ci] then
            redis.call('HSET', ckey, 'total', totals[ci], 'last_ts', stamps[ci], 'last_key', skeys[ci])
          else
            redis.call('HSET', ckey, 'total', totals[ci])
          end
          redis.call('PEXPIRE', ckey, ms)
          if sets[ci] then redis.call('PEXPIRE', KEYS[ci + 1], ms) end
        end
        return out
        """;

    /// <summary>
    /// Applies a chunk of a rebuild: no duplicate or limit checks, every key taken again with its own window.
    /// <c>KEYS</c>: the counter hash, its unique set, the start of the customer's idempotency hashes' names. <c>ARGV</c>:
    /// reset (1: delete the counter first), aggregation, n, the generation length in ms; then per event: quantity, UTC
    /// ticks, ordinal key, unique value, dedup window ms, counter retention ms, idempotency key. Returns one element as
    /// <see cref="Record"/> does: outcome 0 with the total, or 3 with the total before the overflowing event (the events
    /// before it are applied).
    /// </summary>
    public const string Rebuild = Helpers + Idempotency + """
        local ckey, ukey, ikey = KEYS[1], KEYS[2], KEYS[3]
        if ARGV[1] == '1' then
          redis.call('DEL', ckey, ukey)
        end
        local agg, n, gen = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
        local now = servertime()
        local h = redis.call('HMGET', ckey, 'total', 'last_ts', 'last_key')
        local t, lts, lkh, changed, retention, result = 0, h[2] or false, h[3], false, nil, nil
        local keys, writes, window, maxexp = {}, {}, 0, 0
        if h[1] then t = num(h[1]) end
        for i = 1, n do
          local a = 4 + (i - 1) * 7
          local q, ts, kh, uv, dedup = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 5])
          local c, add_value = t, false
          if agg == 's' then
            c = add(t, num(q))
          elseif agg == 'c' then
            c = add(t, 1)
          elseif agg == 'm' then
            c = num(q)
            if cmp(c, t) <= 0 then c = t end
          elseif agg == 'l' then
            local later = not lts
            if not later then
              local d = cmpstr(ts, lts)
              later = d > 0 or (d == 0 and bytecmp(kh, lkh) > 0)
            end
            if later then
              c = num(q)
              lts, lkh, changed = ts, kh, true
            end
          elseif agg == 'u' then
            if redis.call('SISMEMBER', ukey, uv) == 0 then
              c = add(t, 1)
              add_value = true
            end
          else
            error('unknown aggregation ' .. tostring(agg))
          end
          if not fits(c) then
            result = { reply(3, t) }
            break
          end
          if add_value then redis.call('SADD', ukey, uv) end
          t = c
          local key = ARGV[a + 7]
          keys[#keys + 1] = key
          if dedup > window then window = dedup end
          if dedup > 0 then
            local expiry = now + dedup
            writes[#writes + 1] = key
            writes[#writes + 1] = text(c) .. ':' .. format('%.0f', expiry)
            if expiry > maxexp then maxexp = expiry end
          end
          retention = ARGV[a + 6]
        end
        forget(ikey, keys, now, gen, window)
        store(ikey, writes, maxexp, now, gen)
        if retention then
          if changed then
            redis.call('HSET', ckey, 'total', t, 'last_ts', lts, 'last_key', lkh)
          else
            redis.call('HSET', ckey, 'total', t)
          end
          redis.call('PEXPIRE', ckey, retention)
          redis.call('PEXPIRE', ukey, retention)
        end
        return result or { reply(0, t) }
        """;

    /// <summary>
    /// The idempotency hashes: one per customer and generation (<c>floor(server ms / generation ms)</c>); a field is an
    /// idempotency key, its value <c>total:expiry</c> (the total the event produced, and the server time in ms at which the
    /// key is free again). A key is looked up in every generation its window can reach (at least the current and the
    /// previous one); a hash expires when its last field does.
    /// </summary>
    private const string Idempotency = """
        local CHUNK = 1000
        local floor, unpack = math.floor, unpack

        -- The server's clock in ms (scripts replicate their effects, so reading it is allowed).
        local function servertime()
          local tm = redis.call('TIME')
          return tonumber(tm[1]) * 1000 + floor(tonumber(tm[2]) / 1000)
        end

        local function generations(now, gen, window)
          if window < gen then window = gen end
          return floor((now - window) / gen), floor(now / gen)
        end

        -- The keys of the list that are held (not expired): key -> total text. Newer generations win.
        local function lookup(base, keys, now, gen, window)
          local found = {}
          local first, last = generations(now, gen, window)
          for g = first, last do
            local name = base .. format('%.0f', g)
            for s = 1, #keys, CHUNK do
              local e = math.min(s + CHUNK - 1, #keys)
              local vals = redis.call('HMGET', name, unpack(keys, s, e))
              for j = 1, #vals do
                local v = vals[j]
                if v then
                  local at = string.find(v, ':', 1, true)
                  if tonumber(string.sub(v, at + 1)) > now then
                    found[keys[s + j - 1]] = string.sub(v, 1, at - 1)
                  end
                end
              end
            end
          end
          return found
        end

        -- Removes the keys from every generation their window can reach.
        local function forget(base, keys, now, gen, window)
          if #keys == 0 then return end
          local first, last = generations(now, gen, window)
          for g = first, last do
            local name = base .. format('%.0f', g)
            for s = 1, #keys, CHUNK do
              redis.call('HDEL', name, unpack(keys, s, math.min(s + CHUNK - 1, #keys)))
            end
          end
        end

        -- Writes key/value pairs into the current generation and keeps the hash until its last key expires.
        local function store(base, writes, expiry, now, gen)
          if #writes == 0 then return end
          local name = base .. format('%.0f', floor(now / gen))
          for s = 1, #writes, 2 * CHUNK do
            redis.call('HSET', name, unpack(writes, s, math.min(s + 2 * CHUNK - 1, #writes)))
          end
          local need = expiry - now
          if redis.call('PTTL', name) < need then redis.call('PEXPIRE', name, need) end
        end

        """;

#pragma warning disable CA5350 // Redis names cached scripts by their SHA1; no security depends on it.

    /// <summary>The SHA1 of <see cref="Record"/> (what EVALSHA names).</summary>
    public static readonly byte[] RecordSha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Record));

    /// <summary>The SHA1 of <see cref="Rebuild"/>.</summary>
    public static readonly byte[] RebuildSha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Rebuild));
#pragma warning restore CA5350
}
