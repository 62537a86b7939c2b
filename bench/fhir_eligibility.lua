-- wrk script: each request is a random line of the bodies file, POSTed to PATH with CTYPE
-- (script args: BODIES_FILE TOKEN PATH CTYPE). Same output as rights_check.lua.
local reqs, n = {}, 0
function init(args)
  local headers = { ["Content-Type"] = args[4], ["Authorization"] = "Bearer " .. args[2] }
  for line in io.lines(args[1]) do n = n + 1; reqs[n] = wrk.format("POST", args[3], headers, line) end
  math.randomseed(os.time() + n)
end
function request() return reqs[math.random(n)] end
function done(s, lat, _)
  local e = s.errors; io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"errors":%d,"non_2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n', s.requests, s.duration, e.connect + e.read + e.write + e.timeout,
    e.status, lat:percentile(50), lat:percentile(99)))
end
