-- wrk script for Rempart's rights check: each request is a random line of the bodies file
-- (script args: BODIES_FILE TOKEN, or BODIES_FILE @TOKENS_FILE for several clients: each body
-- is given one of the tokens at random, once, when the script starts). Same shape as
-- ../shared/bench/ceiling/load.lua.
local reqs, n = {}, 0
function init(args)
  math.randomseed(os.time())
  local tokens = {}
  if args[2]:sub(1, 1) == "@" then
    for t in io.lines(args[2]:sub(2)) do tokens[#tokens + 1] = t end
  else
    tokens[1] = args[2]
  end
  for line in io.lines(args[1]) do
    n = n + 1
    local headers = { ["Content-Type"] = "application/json",
                      ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)] }
    reqs[n] = wrk.format("POST", "/api/v1/rights-checks", headers, line)
  end
  math.randomseed(os.time() + n)
end
function request() return reqs[math.random(n)] end
function done(s, lat, _)
  local e = s.errors; io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"errors":%d,"non_2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n', s.requests, s.duration, e.connect + e.read + e.write + e.timeout,
    e.status, lat:percentile(50), lat:percentile(99)))
end
