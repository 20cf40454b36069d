-- The original Vaurien's own custom behavior, ported: it waits, then
-- fails (its docs' example of a class with on_before_handle).
--
--   vaurien --protocol redis --backend 127.0.0.1:6379 \
--       --behavior-file slowfail=examples/lua/delay_then_error.lua \
--       --behavior 20:slowfail --behavior-slowfail-sleep 0.5
--
-- The client waits `sleep` seconds for its answer, then gets the
-- protocol's error (a 5xx for http, -ERR for redis, ...). The request never
-- reaches the backend.
return {
  help = "Waits, then answers with the protocol's error",
  options = {
    { name = "sleep", type = "float", default = 1, min = 0, max = 86400,
      help = "Seconds before the error" },
    { name = "message", type = "str", default = "",
      help = "Text of the error (default: the protocol's own)" },
  },
  request = function(req, opts)
    return { delay = opts.sleep * 1000, error = { message = opts.message } }
  end,
}
