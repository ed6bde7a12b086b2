namespace Billing.Redis;

/// <summary>
/// The Lua scripts. Each applies events exactly as <see cref="Usage.UsageCounterState"/> does, atomically (Redis runs a
/// script alone), and only touches keys passed in <c>KEYS</c>, all of one customer, so they run on Redis Cluster.
/// </summary>
/// <remarks>
/// <para>
/// <b>Exact numbers.</b> Lua numbers are doubles, exact only up to 2^53, and Redis turns integer replies into Lua numbers.
/// So every number travels as a decimal string (quantities, limits, totals, UTC ticks), totals are read as strings from the
/// hash, and the scripts compare and add them as decimal strings: by length first and then in chunks of at most 15 digits
/// (exact as doubles), adding digit by digit when an operand has more than 15 digits. Stored sums are incremented with
/// <c>HINCRBY</c> (exact 64-bit on the server); a sum past <see cref="long.MaxValue"/> is detected before anything is
/// written and reported as outcome 3 (an <see cref="OverflowException"/> in .NET). Hard limits are therefore exact over the
/// whole <see cref="long"/> range.
/// </para>
/// <para>
/// <b>Ordering of <see cref="Usage.MeterAggregation.Last"/>.</b> Ties on the timestamp are broken by
/// <see cref="string.CompareOrdinal(string, string)"/> of the idempotency keys, i.e. by UTF-16 code units. The adapter
/// passes each key's code units as 4 lowercase hex digits, whose byte order is that order, and the script compares
/// bytes one by one (Lua's <c>&lt;</c> on strings uses the server's locale collation, so it is never used).
/// </para>
/// <para><b>Results.</b> A flat array of (outcome, total) pairs: 0 accepted, 1 duplicate, 2 over the limit, 3 overflow
/// (the script stops there); totals are decimal strings.</para>
/// </remarks>
internal static class UsageScripts
{
    /// <summary>The aggregation codes the scripts understand.</summary>
    public const string Sum = "s", Count = "c", Max = "m", Last = "l", UniqueCount = "u";

    /// <summary>Arguments per event of <see cref="Record"/>.</summary>
    public const int RecordArgumentsPerEvent = 9;

    /// <summary>Arguments per event of <see cref="Rebuild"/>.</summary>
    public const int RebuildArgumentsPerEvent = 6;

    private const string Helpers = """
        local MAXI = '9223372036854775807'

        -- Compares two non-negative canonical decimal strings: -1, 0 or 1.
        local function cmp(a, b)
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

        -- Adds two non-negative canonical decimal strings exactly.
        local function add(a, b)
          if #a <= 15 and #b <= 15 then
            return string.format('%.0f', tonumber(a) + tonumber(b))
          end
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

        local function fits(s)
          return #s < 19 or (#s == 19 and cmp(s, MAXI) <= 0)
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

        local function load(ckey)
          local h = redis.call('HMGET', ckey, 'total', 'last_ts', 'last_key')
          return { total = h[1] or '0', ts = h[2], key = h[3] }
        end

        -- The total after the event (UsageCounterState.Peek) and whether the event changes the Last/UniqueCount state.
        local function peek(s, agg, q, ts, kh, ukey, uv)
          if agg == 's' then
            return add(s.total, q), true
          elseif agg == 'c' then
            return add(s.total, '1'), true
          elseif agg == 'm' then
            if cmp(q, s.total) > 0 then return q, true else return s.total, true end
          elseif agg == 'l' then
            local later = not s.ts
            if not later then
              local c = cmp(ts, s.ts)
              later = c > 0 or (c == 0 and bytecmp(kh, s.key) > 0)
            end
            if later then return q, true else return s.total, false end
          elseif agg == 'u' then
            if redis.call('SISMEMBER', ukey, uv) == 1 then return s.total, false else return add(s.total, '1'), true end
          end
          error('unknown aggregation ' .. tostring(agg))
        end

        -- Writes the event (UsageCounterState.Apply); the total is exact because HINCRBY is 64-bit on the server.
        local function apply(s, ckey, ukey, agg, q, candidate, changes, ts, kh, uv)
          if agg == 's' then
            redis.call('HINCRBY', ckey, 'total', q)
          elseif agg == 'c' then
            redis.call('HINCRBY', ckey, 'total', 1)
          elseif agg == 'm' then
            redis.call('HSET', ckey, 'total', candidate)
          elseif agg == 'l' then
            if changes then
              redis.call('HSET', ckey, 'total', candidate, 'last_ts', ts, 'last_key', kh)
              s.ts = ts
              s.key = kh
            end
          elseif changes then
            redis.call('SADD', ukey, uv)
            redis.call('HINCRBY', ckey, 'total', 1)
          end
          s.total = candidate
        end

        """;

    /// <summary>
    /// Records events of one customer in order. <c>KEYS</c>: the events' idempotency keys (1..n), then per distinct
    /// counter its hash and its unique set. <c>ARGV[1]</c>: n; then per event: the index of its counter hash in
    /// <c>KEYS</c> (the set follows it), aggregation, quantity, UTC ticks (Last), ordinal key (Last), unique value
    /// (UniqueCount), hard limit (empty for none), dedup window ms (0: the key is not kept), counter retention ms.
    /// </summary>
    public const string Record = Helpers + """
        local n = tonumber(ARGV[1])
        local out, states, expiries, sets = {}, {}, {}, {}
        for i = 1, n do
          local a = 1 + (i - 1) * 9
          local ikey = KEYS[i]
          local original = redis.call('GET', ikey)
          if original then
            out[#out + 1] = 1
            out[#out + 1] = original
          else
            local ci = tonumber(ARGV[a + 1])
            local agg, q, ts, kh, uv = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
            local limit, dedup = ARGV[a + 7], ARGV[a + 8]
            local ckey, ukey = KEYS[ci], KEYS[ci + 1]
            local s = states[ci]
            if not s then
              s = load(ckey)
              states[ci] = s
            end
            local candidate, changes = peek(s, agg, q, ts, kh, ukey, uv)
            if not fits(candidate) then
              out[#out + 1] = 3
              out[#out + 1] = s.total
              break
            elseif limit ~= '' and cmp(candidate, limit) > 0 then
              out[#out + 1] = 2
              out[#out + 1] = s.total
            else
              apply(s, ckey, ukey, agg, q, candidate, changes, ts, kh, uv)
              if dedup ~= '0' then
                redis.call('SET', ikey, candidate, 'PX', dedup)
              end
              expiries[ci] = ARGV[a + 9]
              if agg == 'u' then sets[ci] = true end
              out[#out + 1] = 0
              out[#out + 1] = candidate
            end
          end
        end
        for ci, ms in pairs(expiries) do
          redis.call('PEXPIRE', KEYS[ci], ms)
          if sets[ci] then redis.call('PEXPIRE', KEYS[ci + 1], ms) end
        end
        return out
        """;

    /// <summary>
    /// Applies a chunk of a rebuild: no duplicate or limit checks, every key taken again with its own window.
    /// <c>KEYS</c>: the counter hash, its unique set, then the events' idempotency keys. <c>ARGV</c>: reset (1: delete the
    /// counter first), aggregation, n; then per event: quantity, UTC ticks, ordinal key, unique value, dedup window ms,
    /// counter retention ms. Returns (0, total), or (3, total) on overflow.
    /// </summary>
    public const string Rebuild = Helpers + """
        local ckey, ukey = KEYS[1], KEYS[2]
        if ARGV[1] == '1' then
          redis.call('DEL', ckey, ukey)
        end
        local agg, n = ARGV[2], tonumber(ARGV[3])
        local s = load(ckey)
        local retention = nil
        for i = 1, n do
          local a = 3 + (i - 1) * 6
          local q, ts, kh, uv, dedup = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
          local candidate, changes = peek(s, agg, q, ts, kh, ukey, uv)
          if not fits(candidate) then
            return { 3, s.total }
          end
          apply(s, ckey, ukey, agg, q, candidate, changes, ts, kh, uv)
          if dedup ~= '0' then
            redis.call('SET', KEYS[2 + i], candidate, 'PX', dedup)
          else
            redis.call('DEL', KEYS[2 + i])
          end
          retention = ARGV[a + 6]
        end
        if retention then
          redis.call('PEXPIRE', ckey, retention)
          redis.call('PEXPIRE', ukey, retention)
        end
        return { 0, s.total }
        """;
}
