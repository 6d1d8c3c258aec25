-- wrk script: DescribeJobExecution on varied pairs of a 1,000,000-thing x 5-job simulated fleet.
-- Usage: wrk -t2 -c64 -d10s -s scripts/wrk_describe.lua http://127.0.0.1:PORT
local things = tonumber(os.getenv("WRK_THINGS") or "1000000")
local jobs = tonumber(os.getenv("WRK_JOBS") or "5")
math.randomseed(os.time())
request = function()
  local path = string.format("/things/thing-%06d/jobs/job-%03d", math.random(0, things - 1), math.random(0, jobs - 1))
  return wrk.format("GET", path, { ["Authorization"] = "AWS4-HMAC-SHA256 Credential=AKIDWRK/20261129/us-east-1/iot/aws4_request" })
end
