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
/// takes the new ones with one <c>HSET</c>: a few Redis calls per customer and call instead of one per event. Expiries
/// cost no call in the common case: the current generation's hash records the instant it is kept until (field
/// <c>""</c>, read by the same <c>HMGET</c>) and a counter its own (field <c>exp</c>, read with <c>total</c>), and an
/// expiry is only set (<c>PEXPIRE</c>, plus a <c>PTTL</c> for a hash without the field, e.g. a new one) when it must
/// move; it is then set 1/64 of the generation or retention later than needed, at most a minute, so that it moves once
/// per such slack rather than once per ms. A hash is still kept at least until its last key expires, a counter at least
/// its retention after its last write (the latest event's retention wins: a shorter one moves it back). Per counter and
/// call: one <c>HMGET</c> before the first event and one <c>HSET</c> of the final state at the end. UniqueCount adds a <c>SISMEMBER</c> per
/// event and one <c>SADD</c> of the new values at the end. Duplicates and events that cannot be accepted (over the limit, overflow) write
/// nothing. Reading the server clock (<c>TIME</c>) needs Redis 5 or later (script effects replication).
/// </para>
/// <para><b>Results.</b> One element per event, in order: the integer <c>outcome + 4 × total</c> when the total is below
/// 10^15, otherwise the text of the outcome digit followed by the total's digits. Outcomes: 0 accepted, 1 duplicate,
/// 2 over the limit, 3 overflow (the script stops there: the reply is shorter than the events). A duplicate whose key
/// holds an acceptance token replies with text: <c>1</c>, the original total's digits, <c>:</c> and the token (decimal,
/// maybe negative); only duplicates carry a token, so accepted events cost no more reply than before.</para>
/// </remarks>
internal static class UsageScripts
{
    /// <summary>The aggregation codes the scripts understand.</summary>
    public const string Sum = "s", Count = "c", Max = "m", Last = "l", UniqueCount = "u";

    /// <summary>Arguments per profile of <see cref="Record"/>: counter hash index, aggregation, limit, dedup ms, retention ms, customer index.</summary>
    public const int RecordArgumentsPerProfile = 6;

    /// <summary>Arguments per event of <see cref="Rebuild"/>.</summary>
    public const int RebuildArgumentsPerEvent = 8;

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

        -- A duplicate's reply from its key's entry ('total:expiry:token'): '1' .. total .. ':' .. token, the original result
        -- and acceptance token. An entry without a token ('total:expiry', written before tokens) replies as reply(1, total).
        local function duplicate(v)
          local at = string.find(v, ':', 1, true)
          local bt = string.find(v, ':', at + 1, true)
          if bt then return '1' .. string.sub(v, 1, at - 1) .. string.sub(v, bt) end
          return reply(1, num(string.sub(v, 1, at - 1)))
        end

        """;

    /// <summary>
    /// Records events: in groups, each of one customer's events in their order (events of different customers share no
    /// key, so any interleaving of the groups gives the same results). <c>KEYS</c>: per customer the start of its
    /// idempotency hashes' names (<c>{prefix}:{cus}:i:</c>, the script appends the generation), then per counter its hash,
    /// followed by its set of unique values when a UniqueCount event uses it. <c>ARGV</c>: n, the number of profiles p, the
    /// generation length in ms, whether the events are sent in their order (1: an overflow keeps what the events before it
    /// did; 0: an overflow writes nothing, the caller sends them again in their order), the number of groups; then per
    /// profile (<see cref="RecordArgumentsPerProfile"/>): the index of the counter hash in <c>KEYS</c>, aggregation, hard
    /// limit (empty for none), dedup window ms (0: the key is not kept), counter retention ms, the index of the customer's
    /// idempotency name in <c>KEYS</c>; then per group: its number of events m, the index of its customer's idempotency
    /// name, its events' profile (0 when they have several), the m idempotency keys (consecutive, so they are looked up
    /// straight from <c>ARGV</c>), then per event: its profile (only when the group's is 0), quantity, acceptance token
    /// (decimal text, kept as text: Lua numbers cannot hold 64 bits), UTC ticks and ordinal key (Last only), unique value
    /// (UniqueCount only). Nothing is written before the last event is decided.
    /// </summary>
    public const string Record = Helpers + Idempotency + """
        local A, call = ARGV, redis.call
        local n, p, gen, ordered, ng = tonumber(A[1]), tonumber(A[2]), tonumber(A[3]), A[4] == '1', tonumber(A[5])
        local now = servertime()
        -- Profiles (by their index, also as text for the per-event index), customers, counters.
        local prof, named, cust, tot, big, stamps, skeys, counters, ret, kept, sfxs = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
        local nc, a = 0, 5
        for j = 1, p do
          local ci, agg, l, dedup, ix = tonumber(A[a + 1]), A[a + 2], A[a + 3], tonumber(A[a + 4]), tonumber(A[a + 6])
          local cu = cust[ix]
          if not cu then
            cu = { base = KEYS[ix], window = 0, found = {}, writes = {}, nw = 0, expiry = 0, meta = false }
            cust[ix] = cu
          end
          if dedup > cu.window then cu.window = dedup end
          local lim = false
          if l ~= '' then lim = num(l) end
          local w = 2
          if agg == 'l' then w = 4 elseif agg == 'u' then w = 3 elseif agg ~= 's' and agg ~= 'c' and agg ~= 'm' then
            error('unknown aggregation ' .. tostring(agg))
          end
          local exp = now + dedup
          local sfx = sfxs[dedup]
          if not sfx then
            sfx = ':' .. format('%.0f', exp)
            sfxs[dedup] = sfx
          end
          local pr = { ci = ci, agg = agg, lim = lim, nlim = type(lim) == 'number', dedup = dedup, ret = A[a + 5], cu = cu,
            exp = exp, sfx = sfx, w = w }
          prof[j] = pr
          if p > 1 then named[tostring(j)] = pr end
          -- Every counter is read once, before any event (nothing is written before the last event).
          if tot[ci] == nil then
            nc = nc + 1
            counters[nc] = ci
            if agg == 'l' then
              local h = call('HMGET', KEYS[ci], 'total', 'exp', 'last_ts', 'last_key')
              if h[1] then tot[ci] = num(h[1]) else tot[ci] = 0 end
              kept[ci] = h[2] and tonumber(h[2])
              stamps[ci] = h[3] or false
              skeys[ci] = h[4]
            else
              local h = call('HMGET', KEYS[ci], 'total', 'exp')
              if h[1] then tot[ci] = num(h[1]) else tot[ci] = 0 end
              kept[ci] = h[2] and tonumber(h[2])
            end
            big[ci] = type(tot[ci]) ~= 'number'
          elseif agg == 'l' and stamps[ci] == nil then
            local h = call('HMGET', KEYS[ci], 'last_ts', 'last_key')
            stamps[ci] = h[1] or false
            skeys[ci] = h[2]
          end
          a = a + 6
        end
        -- First pass: each group's keys (consecutive arguments) are looked up together in its customer's hashes.
        local first = a
        for g = 1, ng do
          local m, cu, gp = tonumber(A[a + 1]), cust[tonumber(A[a + 2])], tonumber(A[a + 3])
          local meta = lookup(cu.base, cu.found, a + 4, a + 3 + m, now, gen, cu.window)
          if meta then cu.meta = meta end
          a = a + 3 + m
          if gp > 0 then
            a = a + m * prof[gp].w
          else
            for i = 1, m do a = a + 1 + named[A[a + 1]].w end
          end
        end
        -- Second pass: the events, group by group. Nothing is written until the end.
        local changed, sets, adds, added, out, o = {}, {}, {}, {}, {}, 0
        a = first
        local stopped = false
        for g = 1, ng do
          local m, cu, gp = tonumber(A[a + 1]), cust[tonumber(A[a + 2])], tonumber(A[a + 3])
          local ks = a + 3
          a = ks + m
          local pr = prof[gp]
          local found = cu.found
          for i = 1, m do
            if gp == 0 then
              a = a + 1
              pr = named[A[a]]
            end
            local key, q, tk, x, y = A[ks + i], A[a + 1], A[a + 2], A[a + 3], A[a + 4]
            a = a + pr.w
            o = o + 1
            local original = found[key]
            if original then
              out[o] = duplicate(original)
            else
              local ci, agg = pr.ci, pr.agg
              local t = tot[ci]
              local c, later
              if agg == 's' then
                if #q <= 15 and not big[ci] then
                  c = t + q -- decimal text of at most 15 digits: converted exactly
                  if c >= BIG then c = format('%.0f', c) end
                else
                  c = add(t, num(q))
                end
              elseif agg == 'c' then
                if big[ci] then
                  c = addstr(t, '1')
                else
                  c = t + 1
                  if c >= BIG then c = format('%.0f', c) end
                end
              elseif agg == 'm' then
                c = num(q)
                if cmp(c, t) <= 0 then c = t end
              elseif agg == 'l' then
                local lts = stamps[ci]
                later = not lts
                if not later then
                  local d = cmpstr(x, lts)
                  later = d > 0 or (d == 0 and bytecmp(y, skeys[ci]) > 0)
                end
                if later then c = num(q) else c = t end
              else
                local seen = added[ci]
                later = not (seen and seen[x]) and call('SISMEMBER', KEYS[ci + 1], x) == 0
                if later then c = add(t, 1) else c = t end
              end
              local small = type(c) == 'number'
              local ok
              if small then
                ok = not pr.nlim or c <= pr.lim
              else
                ok = fits(c) and (not pr.lim or cmp(c, pr.lim) <= 0)
              end
              if ok then
                if pr.dedup > 0 then
                  local v
                  if small then v = format('%d%s:%s', c, pr.sfx, tk) else v = c .. pr.sfx .. ':' .. tk end
                  found[key] = v
                  local w, nw = cu.writes, cu.nw
                  w[nw + 1] = key
                  w[nw + 2] = v
                  cu.nw = nw + 2
                  if pr.exp > cu.expiry then cu.expiry = pr.exp end
                end
                tot[ci] = c
                big[ci] = not small
                if agg == 'l' then
                  if later then
                    stamps[ci] = x
                    skeys[ci] = y
                    changed[ci] = true
                  end
                elseif agg == 'u' then
                  if later then
                    local seen = added[ci]
                    if not seen then
                      seen = {}
                      added[ci] = seen
                      adds[ci] = {}
                    end
                    seen[x] = true
                    adds[ci][#adds[ci] + 1] = x
                  end
                  sets[ci] = true
                end
                ret[ci] = pr.ret
                if small then out[o] = 4 * c else out[o] = '0' .. c end
              elseif fits(c) then
                out[o] = reply(2, t)
              else
                out[o] = reply(3, t)
                -- Sent in the batch's order: keep what the events before it did. Otherwise write nothing (the caller sends
                -- the batch again in its order).
                if not ordered then return out end
                stopped = true
                break
              end
            end
          end
          if stopped then break end
        end
        for ix, cu in pairs(cust) do
          store(cu.base, cu.writes, cu.nw, cu.expiry, now, gen, cu.meta)
        end
        for k = 1, nc do
          local ci = counters[k]
          local ms = ret[ci]
          if ms then
            local ckey = KEYS[ci]
            local target = counterexpiry(kept[ci], tonumber(ms), now)
            if target then
              if changed[ci] then
                call('HSET', ckey, 'total', tot[ci], 'exp', format('%.0f', target), 'last_ts', stamps[ci], 'last_key', skeys[ci])
              else
                call('HSET', ckey, 'total', tot[ci], 'exp', format('%.0f', target))
              end
              call('PEXPIRE', ckey, target - now)
              ms = target - now
            else
              if changed[ci] then
                call('HSET', ckey, 'total', tot[ci], 'last_ts', stamps[ci], 'last_key', skeys[ci])
              else
                call('HSET', ckey, 'total', tot[ci])
              end
              ms = kept[ci] - now
            end
            if sets[ci] then
              local list = adds[ci]
              if list then
                for s = 1, #list, CHUNK do
                  call('SADD', KEYS[ci + 1], unpack(list, s, math.min(s + CHUNK - 1, #list)))
                end
              end
              call('PEXPIRE', KEYS[ci + 1], ms)
            end
          end
        end
        return out
        """;

    /// <summary>
    /// Applies a chunk of a rebuild: no duplicate or limit checks, every key taken again with its own window.
    /// <c>KEYS</c>: the counter hash, its unique set, the start of the customer's idempotency hashes' names. <c>ARGV</c>:
    /// reset (1: delete the counter first), aggregation, n, the generation length in ms; then per event: quantity, UTC
    /// ticks, ordinal key, unique value, dedup window ms, counter retention ms, idempotency key, acceptance token. Returns one element as
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
          local a = 4 + (i - 1) * 8
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
            writes[#writes + 1] = text(c) .. ':' .. format('%.0f', expiry) .. ':' .. ARGV[a + 8]
            if expiry > maxexp then maxexp = expiry end
          end
          retention = ARGV[a + 6]
        end
        forget(ikey, keys, now, gen, window)
        store(ikey, writes, #writes, maxexp, now, gen, false)
        if retention then
          local target = now + tonumber(retention) + slack(tonumber(retention))
          if changed then
            redis.call('HSET', ckey, 'total', t, 'exp', format('%.0f', target), 'last_ts', lts, 'last_key', lkh)
          else
            redis.call('HSET', ckey, 'total', t, 'exp', format('%.0f', target))
          end
          redis.call('PEXPIRE', ckey, target - now)
          redis.call('PEXPIRE', ukey, target - now)
        end
        return result or { reply(0, t) }
        """;

    /// <summary>
    /// The idempotency hashes: one per customer and generation (<c>floor(server ms / generation ms)</c>); a field is an
    /// idempotency key, its value <c>total:expiry:token</c> (the total the event produced, the server time in ms at which the
    /// key is free again, and the acceptance token of the event, 0 for none; entries written before tokens have no
    /// <c>:token</c> and are read as having none). A key is looked up in every generation its window can reach (at least the current and the
    /// previous one). The field <c>""</c> (no idempotency key is empty) holds an instant in ms the hash is kept until at least
    /// (its expiry is never earlier), and, from its creation, <c>:</c> and the instant the previous generation's hash is kept
    /// until at least (0 when there was none): once that has passed, lookups skip the previous generation (server time
    /// moves forward, so no key is taken in a generation after the next one has begun). A hash expires at most a slack (1/64
    /// of a generation, at most a minute) after its last key.
    /// </summary>
    private const string Idempotency = """
        local CHUNK = 1000
        local floor, unpack = math.floor, unpack
        local META = '' -- the field holding a hash's expiry (no idempotency key is empty)

        -- Generation numbers as text, formatted once per call.
        local gtext = {}
        local function gname(base, g)
          local t = gtext[g]
          if not t then
            t = format('%.0f', g)
            gtext[g] = t
          end
          return base .. t
        end

        -- How much later than needed an expiry is set, so that it moves once per slack instead of once per ms:
        -- 1/64 of the period it covers, at most a minute.
        local function slack(ms)
          local q = floor(ms / 64)
          if q > 60000 then return 60000 end
          return q
        end

        -- The server's clock in ms (scripts replicate their effects, so reading it is allowed).
        local function servertime()
          local tm = redis.call('TIME')
          return tonumber(tm[1]) * 1000 + floor(tonumber(tm[2]) / 1000)
        end

        local function generations(now, gen, window)
          if window < gen then window = gen end
          return floor((now - window) / gen), floor(now / gen)
        end

        -- A hash's META field: 'kept' or 'kept:previous', the instants (ms) it and the previous generation's hash are kept
        -- until at least; previous is recorded when the hash is created (server time only moves forward, so no key is
        -- taken in the previous generation after that).
        local function metaparts(meta)
          local at = string.find(meta, ':', 1, true)
          if not at then return tonumber(meta), false end
          return tonumber(string.sub(meta, 1, at - 1)), tonumber(string.sub(meta, at + 1))
        end

        -- Looks up the keys ARGV[from..to] in every generation the window reaches and adds those held (not expired) to found:
        -- key -> its entry ('total:expiry:token', or 'total:expiry' when written before tokens). Newer generations win:
        -- the current generation is read first (with its META field) and an older one only sets keys not found yet. The
        -- previous generation is not read when the current one's META says it holds no key that has not expired.
        -- Returns the current generation's META, or false.
        local function lookup(base, found, from, to, now, gen, window)
          local first, last = generations(now, gen, window)
          local meta = false
          for g = last, first, -1 do
            local skip = false
            if g == last - 1 and meta then
              local _, previous = metaparts(meta)
              skip = previous and previous <= now
            end
            if not skip then
              local name = gname(base, g)
              for s = from, to, CHUNK do
                local e = s + CHUNK - 1
                if e > to then e = to end
                local vals, o
                if g == last and s == from then
                  vals = redis.call('HMGET', name, META, unpack(ARGV, s, e))
                  meta = vals[1]
                  o = 1
                else
                  vals = redis.call('HMGET', name, unpack(ARGV, s, e))
                  o = 0
                end
                for j = 1 + o, #vals do
                  local v = vals[j]
                  if v then
                    local key = ARGV[s + j - 1 - o]
                    if g == last or not found[key] then
                      local at = string.find(v, ':', 1, true)
                      local bt = string.find(v, ':', at + 1, true)
                      if tonumber(string.sub(v, at + 1, (bt or 0) - 1)) > now then
                        found[key] = v
                      end
                    end
                  end
                end
              end
            end
          end
          return meta
        end

        -- Removes the keys from every generation their window can reach.
        local function forget(base, keys, now, gen, window)
          if #keys == 0 then return end
          local first, last = generations(now, gen, window)
          for g = first, last do
            local name = gname(base, g)
            for s = 1, #keys, CHUNK do
              redis.call('HDEL', name, unpack(keys, s, math.min(s + CHUNK - 1, #keys)))
            end
          end
        end

        -- Writes the first nw entries of writes (key/value pairs) into the current generation and keeps the hash at least until
        -- its last key expires. The hash's META field holds an instant (ms) the hash is kept until at least; meta is its value
        -- as read by lookup (false: not read, or none yet, e.g. a new hash: then PTTL tells). When it is earlier than expiry,
        -- the hash is kept until expiry + slack(gen), so that the expiry moves once per slack rather than once per ms.
        local function store(base, writes, nw, expiry, now, gen, meta)
          if nw == 0 then return end
          local g = floor(now / gen)
          local name = gname(base, g)
          local kept, previous = false, false
          if meta then kept, previous = metaparts(meta) end
          local known = kept
          if not kept then
            local ttl = redis.call('PTTL', name)
            if ttl >= 0 then kept = now + ttl else kept = 0 end
            if ttl == -2 then
              -- A new hash: record until when the previous generation's is kept (0: gone), so lookups can skip it.
              ttl = redis.call('PTTL', gname(base, g - 1))
              if ttl >= 0 then previous = now + ttl elseif ttl == -2 then previous = 0 end
            end
          end
          local suffix = ''
          if previous then suffix = ':' .. format('%.0f', previous) end
          local target = false
          if kept < expiry then
            target = expiry + slack(gen)
            writes[nw + 1] = META
            writes[nw + 2] = format('%.0f', target) .. suffix
            nw = nw + 2
          elseif not known then
            writes[nw + 1] = META
            writes[nw + 2] = format('%.0f', kept) .. suffix
            nw = nw + 2
          end
          for s = 1, nw, 2 * CHUNK do
            local e = s + 2 * CHUNK - 1
            if e > nw then e = nw end
            redis.call('HSET', name, unpack(writes, s, e))
          end
          if target then redis.call('PEXPIRE', name, target - now) end
        end

        -- The expiry a counter needs after a write with retention ms: when its recorded one (its 'exp' field, false when
        -- none) is within [now + ms, now + ms + slack(ms)] it is kept (returns false), otherwise it becomes now + ms + slack(ms).
        local function counterexpiry(kept, ms, now)
          local want = now + ms
          if kept and kept >= want and kept <= want + slack(ms) then return false end
          return want + slack(ms)
        end

        """;

#pragma warning disable CA5350 // Redis names cached scripts by their SHA1; no security depends on it.

    /// <summary>The SHA1 of <see cref="Record"/> (what EVALSHA names).</summary>
    public static readonly byte[] RecordSha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Record));

    /// <summary>The SHA1 of <see cref="Rebuild"/>.</summary>
    public static readonly byte[] RebuildSha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Rebuild));
#pragma warning restore CA5350
}
