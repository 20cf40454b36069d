-- Corrupt one byte in 1 % of the chunks the backend sends, seeded.
--
--   vaurien --protocol tcp --backend 127.0.0.1:9000 --seed 42 \
--       --behavior-file flip=examples/lua/tcp_corrupt.lua --behavior 100:flip
--
-- Unlike error's inject (which inserts 100 random bytes), the chunk keeps
-- its length: one byte, at a seeded place, has its bits inverted. The
-- draws come from the connection's generator, so --seed replays them.
return {
  help = "Flips the bits of one byte in a fraction of the backend's chunks",
  options = {
    { name = "rate", type = "float", default = 0.01, min = 0, max = 1,
      help = "Fraction of chunks hit" },
  },
  reply = function(rep, req, opts)
    if vaurien.random() >= opts.rate then return end
    local b = rep.bytes
    local i = vaurien.random(#b)
    return vaurien.replace(b:sub(1, i - 1) .. string.char(b:byte(i) ~ 0xff)
                           .. b:sub(i + 1))
  end,
}
