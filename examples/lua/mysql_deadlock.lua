-- MySQL: a deadlock (1213, SQLSTATE 40001) on 5 % of UPDATE statements.
--
--   vaurien --protocol mysql --backend 127.0.0.1:3306 --seed 7 \
--       --behavior-file deadlock=examples/lua/mysql_deadlock.lua \
--       --behavior 100:deadlock
--
-- What InnoDB sends its victim: the client library raises its deadlock
-- error (pymysql: OperationalError(1213, ...)), and the connection stays
-- usable, so the application's retry can be tested.
return {
  help = "Answers a fraction of UPDATE statements with a deadlock error",
  options = {
    { name = "rate", type = "float", default = 0.05, min = 0, max = 1,
      help = "Fraction of UPDATEs that deadlock" },
  },
  request = function(req, opts)
    local sql = req.statement
    if sql == nil or not sql:match("^%s*[Uu][Pp][Dd][Aa][Tt][Ee]%s") then
      return
    end
    if vaurien.random() < opts.rate then
      return vaurien.error{
        code = 1213, sqlstate = "40001",
        message = "Deadlock found when trying to get lock; try restarting transaction",
      }
    end
  end,
}
