-- wrk script for invoice intake: each request is the next line of the bodies file, a batch
-- {"invoices": [...]} (script args: BODIES_FILE TOKEN); lines are used once each, in order,
-- so that no invoice is sent twice (a replay would be cheaper than an intake).
local reqs, n, i = {}, 0, 0
function init(args)
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2] }
  for line in io.lines(args[1]) do n = n + 1; reqs[n] = wrk.format("POST", "/api/v1/invoice-batches", headers, line) end
end
function request() i = i + 1; if i > n then i = 1 end; return reqs[i] end
function done(s, lat, _)
  local e = s.errors; io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"errors":%d,"non_2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n', s.requests, s.duration, e.connect + e.read + e.write + e.timeout,
    e.status, lat:percentile(50), lat:percentile(99)))
end
