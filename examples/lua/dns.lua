-- A length-prefixed binary protocol, as a custom protocol: DNS over TCP
-- (RFC 1035 4.2.2, RFC 7766): each message is a 2-byte big-endian length,
-- then the message.
--
--   vaurien --protocol-file dns=examples/lua/dns.lua --protocol dns \
--       --backend 127.0.0.1:53 --behavior 20:error --behavior-error-code 2
--
-- An injected error is a real DNS answer: the query's id and question,
-- QR set, and RCODE `code` (default 2, SERVFAIL; 3 NXDOMAIN, 5 REFUSED).

local function message_len(buf)
  if #buf < 2 then return nil end
  return 2 + string.unpack(">I2", buf)   -- the rest may still be coming
end

-- The query name of a message (at byte 3 of unit: after the prefix and
-- the 12-byte header), and the byte after the question.
local function question(unit)
  local at, labels = 15, {}
  while at <= #unit do
    local n = unit:byte(at)
    if n == 0 then return table.concat(labels, "."), at + 5 end
    if n >= 64 then return nil end     -- compression: not in a query
    labels[#labels + 1] = unit:sub(at + 1, at + n)
    at = at + 1 + n
  end
  return nil
end

return {
  help = "DNS over TCP: 2-byte length prefix; errors are DNS RCODEs",
  request = message_len,
  reply = function(buf, req) return message_len(buf) end,
  parse = function(unit)
    if #unit < 14 then return {} end
    local id, flags = string.unpack(">I2I2", unit, 3)
    local name, after = question(unit)
    local qtype = after and #unit >= after - 1 and string.unpack(">I2", unit, after - 4)
    return { id = id, flags = flags, command = "QUERY", key = name,
             qtype = qtype, question = after and unit:sub(15, after - 1) }
  end,
  error_reply = function(req, opts)
    local rcode = opts.code ~= 0 and opts.code or 2
    local q = req and req.question or ""
    local id = req and req.id or 0
    local rd = req and req.flags and (req.flags & 0x0100) or 0
    local flags = 0x8000 | 0x0080 | rd | (rcode & 0xf)
    local msg = string.pack(">I2I2I2I2I2I2", id, flags, q ~= "" and 1 or 0, 0, 0, 0) .. q
    return string.pack(">s2", msg)
  end,
}
