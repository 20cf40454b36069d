-- A line protocol, as a custom protocol: Redis's inline commands.
--
--   vaurien --protocol-file inline=examples/lua/inline.lua --protocol inline \
--       --backend 127.0.0.1:6379 --behavior 10:error
--
-- A request is one line, "COMMAND arg arg\r\n"; a reply is one RESP value
-- (+simple, -error, :integer, $bulk, *array). An injected error is
-- "-ERR <message>\r\n", what a Redis client reads as an error.

-- The length of the RESP value starting at byte i of buf, or nil when it
-- has not all arrived.
local function value_len(buf, i)
  local eol = buf:find("\r\n", i, true)
  if eol == nil then return nil end
  local kind, n = buf:sub(i, i), tonumber(buf:sub(i + 1, eol - 1))
  local head = eol + 2 - i
  if kind == "+" or kind == "-" or kind == ":" then return head end
  if kind == "$" then
    if n == nil then return false end
    if n < 0 then return head end
    return head + n + 2             -- may be more than has arrived: fine
  end
  if kind == "*" then
    if n == nil then return false end
    local at = eol + 2
    for _ = 1, n do
      if at > #buf then return nil end
      local len = value_len(buf, at)
      if not len then return len end
      at = at + len
    end
    if at - 1 > #buf then return nil end
    return at - i
  end
  return false                      -- not RESP
end

return {
  help = "Redis inline commands: one line per request, RESP replies",
  request = function(buf)
    local lf = buf:find("\n", 1, true)
    if lf == nil then return nil end
    return lf
  end,
  reply = function(buf, req)
    return value_len(buf, 1)
  end,
  parse = function(unit)
    local words = {}
    for w in unit:gmatch("%S+") do words[#words + 1] = w end
    local args = { table.unpack(words, 2) }
    return { command = words[1], args = args, key = args[1] }
  end,
  error_reply = function(req, opts)
    local msg = opts.message ~= "" and opts.message or "ERR injected error (vaurien)"
    return "-" .. msg:gsub("[\r\n]", " ") .. "\r\n"
  end,
}
