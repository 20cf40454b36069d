-- READONLY on every 10th Redis SET, only for keys that start with "user:".
--
--   vaurien --protocol redis --backend 127.0.0.1:6379 \
--       --behavior-file readonly=examples/lua/redis_readonly.lua \
--       --behavior 100:readonly
--
-- Every other request passes. The count is per proxy (all connections
-- together), so the 10th, 20th, ... matching SET through the proxy fails
-- the way a replica refuses a write.
return {
  help = "READONLY error on every Nth SET to a key with the prefix",
  options = {
    { name = "every", type = "int", default = 10, min = 1, max = 1000000,
      help = "Fail one matching SET in this many" },
    { name = "prefix", type = "str", default = "user:",
      help = "Only keys that start with this" },
  },
  request = function(req, opts, conn, proxy)
    if req.command == nil or req.command:upper() ~= "SET" then return end
    local key = req.key
    if key == nil or key:sub(1, #opts.prefix) ~= opts.prefix then return end
    proxy.sets = (proxy.sets or 0) + 1
    if proxy.sets % opts.every == 0 then
      return vaurien.error{ message = "READONLY You can't write against a read only replica." }
    end
  end,
}
