-- Slow down only HTTP POSTs to /api/ (by 300 ms unless told otherwise).
--
--   vaurien --protocol http --backend 127.0.0.1:8080 \
--       --behavior-file slowpost=examples/lua/http_slow_post.lua \
--       --behavior 100:slowpost --behavior-slowpost-ms 300
--
-- GETs, and POSTs elsewhere, pass at full speed.
return {
  help = "Delays POST requests whose path starts with a prefix",
  options = {
    { name = "ms", type = "int", default = 300, min = 0, max = 86400000,
      help = "Delay, ms" },
    { name = "prefix", type = "str", default = "/api/",
      help = "Only paths that start with this" },
  },
  request = function(req, opts)
    if req.method == "POST" and req.path
       and req.path:sub(1, #opts.prefix) == opts.prefix then
      return vaurien.delay(opts.ms)
    end
  end,
}
