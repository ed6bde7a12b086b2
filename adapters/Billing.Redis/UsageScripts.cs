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
/// <b>Cost.</b> Keys are per customer group (<see cref="RedisUsageCounterOptions.CustomerGroups"/>), not per customer:
/// idempotency keys are fields of one hash per group and generation (see <see cref="Idempotency"/>), and counters fields
/// of one hash per group and UTC day of their period start (see <see cref="Counters"/>; periods of different
/// subscriptions start at different instants, so a hash per exact start would hold about one counter). So a call looks up
/// all of a group's keys with one <c>HMGET</c> per generation it must search (two with the defaults, one once the
/// previous generation's hash is known to be gone) and takes the new ones with one <c>HSET</c>; it reads all of a
/// group's counters of periods starting the same day with one <c>HMGET</c> before the first event and writes their
/// final state with one <c>HSET</c> at the end: about four Redis calls per group and call, however many customers and
/// events the group has in it. Expiries cost no call in the
/// common case: the current generation's hash and each counter hash record the instant they are kept until (field
/// <c>""</c>, read by the same <c>HMGET</c>), each counter its own expiry (in its value, written with its total), and a
/// hash's expiry is only set (<c>PEXPIRE</c>, plus a <c>PTTL</c> for a hash without the field, e.g. a new one) when it
/// must move; it is then set 1/64 of the generation or retention later than needed, at most a minute, so that it moves
/// once per such slack rather than once per ms. An idempotency hash is still kept at least until its last key expires, a
/// counter hash until its latest counter expires, and a counter reads as absent once its retention has passed since its
/// last write (the latest event's retention wins: a shorter one moves it back). UniqueCount adds a <c>SISMEMBER</c> per
/// event, one <c>SADD</c> of the new values and one <c>PEXPIRE</c> of its set at the end. Duplicates and events that
/// cannot be accepted (over the limit, overflow) write nothing. Reading the server clock (<c>TIME</c>) needs Redis 5 or
/// later (script effects replication).
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

    /// <summary>Arguments per settings of <see cref="Record"/>: aggregation, limit, dedup ms.</summary>
    public const int RecordArgumentsPerSettings = 3;

    /// <summary>Arguments of <see cref="Record"/> before the first counter hash.</summary>
    public const int RecordHeader = 7;

    /// <summary>Arguments per run of <see cref="Record"/> before its idempotency fields: m, group, window, counter, settings,
    /// retention.</summary>
    public const int RecordRunHeader = 6;

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
    /// Records events: in runs, each of one customer group's events in their order (events of different groups share no
    /// key, and events of different customers share no field, so any interleaving of the runs gives the same results).
    /// <c>KEYS</c>: per group the start of its idempotency hashes' names (<c>{prefix}:{g7}:i:</c>, the script appends the
    /// generation), per group and UTC day of period start its counter hash, and per UniqueCount counter its set of unique
    /// values, in any order. <c>ARGV</c>: n, the number of settings s, the generation length in ms, whether the events are sent in their
    /// order (1: an overflow keeps what the events before it did; 0: an overflow writes nothing, the caller sends them again
    /// in their order), the number of runs, the number of counter hashes, the number of sets; then per counter hash: the
    /// index of the hash in <c>KEYS</c>, its number of counters c and their c fields (consecutive, so they are read straight
    /// from <c>ARGV</c>; the counters are numbered from 1 in this order over all hashes); then per set: its counter's number
    /// and its index in <c>KEYS</c>; then per settings (<see cref="RecordArgumentsPerSettings"/>): aggregation, hard limit
    /// (empty for none), dedup window ms (0: the key is not kept); then per run: its number of events m, the index of its
    /// group's idempotency name in <c>KEYS</c>, the longest dedup window ms of the group's events in the call, its events'
    /// counter, settings and counter retention ms (each 0 when they differ between its events; a retention is at least 1),
    /// the m idempotency fields (consecutive, so they are looked up straight from <c>ARGV</c>), then per event: its
    /// counter, its settings and its retention (each only when the run's is 0), quantity, acceptance token (decimal text, kept as text: Lua numbers cannot hold 64 bits),
    /// UTC ticks and ordinal key (Last only), unique value (UniqueCount only). Nothing is written before the last event is
    /// decided.
    /// </summary>
    public const string Record = Helpers + Idempotency + Counters + """
        local A, call = ARGV, redis.call
        local n, ns, gen, ordered, nr, nh, nu = tonumber(A[1]), tonumber(A[2]), tonumber(A[3]), A[4] == '1', tonumber(A[5]), tonumber(A[6]), tonumber(A[7])
        local now = servertime()
        -- Counters, hash by hash: each hash is read once (its META and the fields of all its counters in the call), before
        -- any event. Counter k's field is A[base + k].
        local tot, big, stamps, skeys, fresh, sof, hashes = {}, {}, {}, {}, {}, {}, {}
        local a, nc = 7, 0
        for j = 1, nh do
          local h, m = tonumber(A[a + 1]), tonumber(A[a + 2])
          local base = a + 2 - nc
          hashes[j] = { h = h, first = nc + 1, last = nc + m, base = base,
            kept = readcounters(KEYS[h], base, nc + 1, nc + m, now, tot, big, stamps, skeys, fresh) }
          nc = nc + m
          a = a + 2 + m
        end
        for j = 1, nu do
          sof[tonumber(A[a + 1])] = KEYS[tonumber(A[a + 2])]
          a = a + 2
        end
        -- Settings (by their index, also by its text for the per-event index).
        local set, named, sfxs = {}, {}, {}
        for j = 1, ns do
          local agg, l, dedup = A[a + 1], A[a + 2], tonumber(A[a + 3])
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
          local st = { agg = agg, lim = lim, nlim = type(lim) == 'number', dedup = dedup, exp = exp, sfx = sfx, w = w }
          set[j] = st
          named[tostring(j)] = st
          a = a + 3
        end
        -- First pass: each run's keys (consecutive arguments) are looked up together in its group's hashes.
        local first, grp = a, {}
        for r = 1, nr do
          local m, ix, rc, rs, rr = tonumber(A[a + 1]), tonumber(A[a + 2]), A[a + 4], A[a + 5], A[a + 6]
          local cu = grp[ix]
          if not cu then
            cu = { base = KEYS[ix], found = {}, writes = {}, nw = 0, expiry = 0, meta = false }
            grp[ix] = cu
          end
          local meta = lookup(cu.base, cu.found, a + 7, a + 6 + m, now, gen, tonumber(A[a + 3]))
          if meta then cu.meta = meta end
          a = a + 6 + m
          local pc, pr = 0, 0
          if rc == '0' then pc = 1 end
          if rr == '0' then pr = 1 end
          if rs ~= '0' then
            a = a + m * (pc + pr + named[rs].w)
          else
            for i = 1, m do a = a + pc + 1 + pr + named[A[a + pc + 1]].w end
          end
        end
        -- Second pass: the events, run by run. Nothing is written until the end.
        local ret, sets, adds, added, out, o = {}, {}, {}, {}, {}, 0
        a = first
        local stopped = false
        for r = 1, nr do
          local m, cu, ci, rs, rt = tonumber(A[a + 1]), grp[tonumber(A[a + 2])], tonumber(A[a + 4]), A[a + 5], A[a + 6]
          local ks = a + 6
          a = ks + m
          local each, st, eachret = ci == 0, named[rs], rt == '0'
          local fixed = st ~= nil
          local found = cu.found
          for i = 1, m do
            if each then
              a = a + 1
              ci = tonumber(A[a])
            end
            if not fixed then
              a = a + 1
              st = named[A[a]]
            end
            if eachret then
              a = a + 1
              rt = A[a]
            end
            local key, q, tk, x, y = A[ks + i], A[a + 1], A[a + 2], A[a + 3], A[a + 4]
            a = a + st.w
            o = o + 1
            local original = found[key]
            if original then
              out[o] = duplicate(original)
            else
              local agg = st.agg
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
                -- An expired counter's set is stale: it starts empty (and is deleted before the new values are added).
                local seen = added[ci]
                later = not (seen and seen[x]) and (fresh[ci] or call('SISMEMBER', sof[ci], x) == 0)
                if later then c = add(t, 1) else c = t end
              end
              local small = type(c) == 'number'
              local ok
              if small then
                ok = not st.nlim or c <= st.lim
              else
                ok = fits(c) and (not st.lim or cmp(c, st.lim) <= 0)
              end
              if ok then
                if st.dedup > 0 then
                  local v
                  if small then v = format('%d%s:%s', c, st.sfx, tk) else v = c .. st.sfx .. ':' .. tk end
                  found[key] = v
                  local w, nw = cu.writes, cu.nw
                  w[nw + 1] = key
                  w[nw + 2] = v
                  cu.nw = nw + 2
                  if st.exp > cu.expiry then cu.expiry = st.exp end
                end
                tot[ci] = c
                big[ci] = not small
                if agg == 'l' then
                  if later then
                    stamps[ci] = x
                    skeys[ci] = y
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
                ret[ci] = rt
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
        for ix, cu in pairs(grp) do
          store(cu.base, cu.writes, cu.nw, cu.expiry, now, gen, cu.meta)
        end
        -- Per counter hash: one HSET of the counters written (each with its own expiry, the latest event's retention from
        -- now), the hash kept until the latest of them.
        for j = 1, nh do
          local hs = hashes[j]
          local w, nw, expiry, target, base = {}, 0, 0, 0, hs.base
          for k = hs.first, hs.last do
            local ms = ret[k]
            if ms then
              ms = tonumber(ms)
              local exp = now + ms
              w[nw + 1] = A[base + k]
              w[nw + 2] = countervalue(tot[k], exp, stamps[k], skeys[k])
              nw = nw + 2
              if exp > expiry then expiry = exp end
              local t = exp + slack(ms)
              if t > target then target = t end
              local skey = sof[k]
              if skey then
                if fresh[k] then call('DEL', skey) end
                local values = adds[k]
                if values then
                  for s = 1, #values, CHUNK do
                    call('SADD', skey, unpack(values, s, math.min(s + CHUNK - 1, #values)))
                  end
                end
                if sets[k] then call('PEXPIRE', skey, ms + slack(ms)) end
              end
            end
          end
          if nw > 0 then storecounters(KEYS[hs.h], w, nw, hs.kept, expiry, target, now) end
        end
        return out
        """;

    /// <summary>
    /// Applies a chunk of a rebuild: no duplicate or limit checks, every key taken again with its own window.
    /// <c>KEYS</c>: the counter hash, the counter's set of unique values, the start of its group's idempotency hashes'
    /// names. <c>ARGV</c>: reset (1: delete the counter and its set first), aggregation, n, the generation length in ms, the
    /// counter's field; then per event (<see cref="RebuildArgumentsPerEvent"/>): quantity, UTC ticks, ordinal key, unique
    /// value, dedup window ms, counter retention ms, idempotency field, acceptance token. Returns one element as
    /// <see cref="Record"/> does: outcome 0 with the total, or 3 with the total before the overflowing event (the events
    /// before it are applied).
    /// </summary>
    public const string Rebuild = Helpers + Idempotency + Counters + """
        local ckey, ukey, ikey, field = KEYS[1], KEYS[2], KEYS[3], ARGV[5]
        local agg, n, gen = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
        local now = servertime()
        local tot, big, stamps, skeys, fresh = {}, {}, {}, {}, {}
        local kept = readcounters(ckey, 4, 1, 1, now, tot, big, stamps, skeys, fresh)
        if ARGV[1] == '1' then
          redis.call('HDEL', ckey, field)
          tot[1], stamps[1], skeys[1], fresh[1] = 0, false, nil, true
        end
        -- An absent or expired counter starts afresh, and so does its set.
        if fresh[1] then redis.call('DEL', ukey) end
        local t, lts, lkh, retention, result = tot[1], stamps[1], skeys[1], nil, nil
        local keys, writes, window, maxexp = {}, {}, 0, 0
        for i = 1, n do
          local a = 5 + (i - 1) * 8
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
              lts, lkh = ts, kh
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
          retention = tonumber(ARGV[a + 6])
        end
        forget(ikey, keys, now, gen, window)
        store(ikey, writes, #writes, maxexp, now, gen, false)
        if retention then
          local exp = now + retention
          storecounters(ckey, { field, countervalue(t, exp, lts, lkh) }, 2, kept, exp, exp + slack(retention), now)
          redis.call('PEXPIRE', ukey, retention + slack(retention))
        end
        return result or { reply(0, t) }
        """;

    /// <summary>
    /// Reads a counter's total as decimal text (<c>0</c> when it is absent or expired by the server clock). <c>KEYS</c>:
    /// the counter hash; <c>ARGV</c>: the counter's field.
    /// </summary>
    public const string Total = """
        local v = redis.call('HGET', KEYS[1], ARGV[1])
        if not v then return '0' end
        local at = string.find(v, ':', 1, true)
        local bt = string.find(v, ':', at + 1, true)
        local tm = redis.call('TIME')
        local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
        if tonumber(string.sub(v, at + 1, (bt or 0) - 1)) <= now then return '0' end
        return string.sub(v, 1, at - 1)
        """;

    /// <summary>
    /// The idempotency hashes: one per customer group and generation (<c>floor(server ms / generation ms)</c>); a field is a
    /// customer and idempotency key (the customer's UTF-8 length, <c>:</c>, the customer, the key), its value <c>total:expiry:token</c> (the total the event produced, the server time in ms at which the
    /// key is free again, and the acceptance token of the event, 0 for none; entries written before tokens have no
    /// <c>:token</c> and are read as having none). A key is looked up in every generation its window can reach (at least the
    /// current and the previous one). The field <c>""</c> (no other field is empty) holds an instant in ms the hash is kept until at least
    /// (its expiry is never earlier), and, from its creation, <c>:</c> and the instant the previous generation's hash is kept
    /// until at least (0 when there was none): once that has passed, lookups skip the previous generation (server time
    /// moves forward, so no key is taken in a generation after the next one has begun). A hash expires at most a slack (1/64
    /// of a generation, at most a minute) after its last key.
    /// </summary>
    private const string Idempotency = """
        local CHUNK = 1000

        -- Writes the field/value pairs writes[1..nw] of the hash name, CHUNK pairs per HSET.
        local function hsetpairs(name, writes, nw)
          for s = 1, nw, 2 * CHUNK do
            local e = s + 2 * CHUNK - 1
            if e > nw then e = nw end
            redis.call('HSET', name, unpack(writes, s, e))
          end
        end
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
          hsetpairs(name, writes, nw)
          if target then redis.call('PEXPIRE', name, target - now) end
        end

        """;

    /// <summary>
    /// The counter hashes: one per customer group and UTC day of period start (see <see cref="RedisKeys"/>); a field is an
    /// exact period start, a customer and a meter (the scripts never parse it), its value <c>total:expiry</c>, for Last followed by <c>:ticks:key</c> (the latest event's UTC ticks and ordinal key). The expiry
    /// (server ms) is the counter's own, its last write plus the retention of that write's latest event: once passed, the
    /// counter reads as absent and the next write starts it afresh (its set of unique values too). The field <c>""</c>
    /// holds an instant (ms) the hash is kept until at least (its expiry is never earlier); it moves only when a counter's
    /// expiry passes it, to that expiry plus a slack (1/64 of the retention, at most a minute), so once per slack rather than
    /// per write, and never back. The hash is freed only after its latest counter expires: a counter with a long retention
    /// keeps its day's shorter, expired counters (read as absent) in memory until then.
    /// </summary>
    private const string Counters = """
        -- A counter's value (false: none). Returns its total (text), the latest event's ticks and key (false, nil when none),
        -- or false when it is absent or expired.
        local function parsecounter(v, now)
          if not v then return false end
          local at = string.find(v, ':', 1, true)
          local bt = string.find(v, ':', at + 1, true)
          if tonumber(string.sub(v, at + 1, (bt or 0) - 1)) <= now then return false end
          if not bt then return string.sub(v, 1, at - 1), false, nil end
          local ct = string.find(v, ':', bt + 1, true)
          return string.sub(v, 1, at - 1), string.sub(v, bt + 1, ct - 1), string.sub(v, ct + 1)
        end

        -- Reads counters first..last, counter k's field being ARGV[base + k], from the hash name with one HMGET per CHUNK of
        -- them, the first one with the hash's META field. Sets per counter its total (a value of num(), 0 when absent or
        -- expired), whether that is text (big), the latest event's ticks and key (false, nil when none) and whether it
        -- starts afresh (fresh). Returns the hash's META as a number, or false.
        local function readcounters(name, base, first, last, now, tot, big, stamps, skeys, fresh)
          local kept = false
          for s = first, last, CHUNK do
            local e = s + CHUNK - 1
            if e > last then e = last end
            local vals, o
            if s == first then
              vals = redis.call('HMGET', name, META, unpack(ARGV, base + s, base + e))
              if vals[1] then kept = tonumber(vals[1]) end
              o = 1 - s
            else
              vals = redis.call('HMGET', name, unpack(ARGV, base + s, base + e))
              o = -s
            end
            for k = s, e do
              local t, ts, kh = parsecounter(vals[k + 1 + o], now)
              if t then
                t = num(t)
                tot[k], big[k], stamps[k], skeys[k], fresh[k] = t, type(t) ~= 'number', ts, kh, false
              else
                tot[k], big[k], stamps[k], skeys[k], fresh[k] = 0, false, false, nil, true
              end
            end
          end
          return kept
        end

        -- A counter's value: total, expiry and, for Last, the latest event's ticks and key.
        local function countervalue(t, exp, ts, kh)
          if ts then return text(t) .. ':' .. format('%.0f', exp) .. ':' .. ts .. ':' .. kh end
          if type(t) == 'number' then return format('%d:%d', t, exp) end
          return t .. ':' .. format('%.0f', exp)
        end

        -- Writes the first nw entries of writes (field/value pairs) into the counter hash name and keeps the hash at least
        -- until expiry, the latest expiry of the counters written: when its META (kept, as read; false when none, e.g. a new
        -- hash: then PTTL tells) is earlier, the hash is kept until target (at least expiry; each expiry plus its slack).
        local function storecounters(name, writes, nw, kept, expiry, target, now)
          if not kept then
            local ttl = redis.call('PTTL', name)
            if ttl >= 0 then kept = now + ttl else kept = 0 end
            if kept >= expiry then
              writes[nw + 1] = META
              writes[nw + 2] = format('%.0f', kept)
              nw = nw + 2
            end
          end
          local move = kept < expiry
          if move then
            writes[nw + 1] = META
            writes[nw + 2] = format('%.0f', target)
            nw = nw + 2
          end
          hsetpairs(name, writes, nw)
          if move then redis.call('PEXPIRE', name, target - now) end
        end

        """;

#pragma warning disable CA5350 // Redis names cached scripts by their SHA1; no security depends on it.

    /// <summary>The SHA1 of <see cref="Record"/> (what EVALSHA names).</summary>
    public static readonly byte[] RecordSha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Record));

    /// <summary>The SHA1 of <see cref="Rebuild"/>.</summary>
    public static readonly byte[] RebuildSha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Rebuild));

    /// <summary>The SHA1 of <see cref="Total"/>.</summary>
    public static readonly byte[] TotalSha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Total));
#pragma warning restore CA5350
}
