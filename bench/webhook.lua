-- wrk script: Ortto journey webhooks, each with its own run id (none is a redelivery).
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  id = wrk.thread:get("id")
  counter = 0
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"campaign_id":"bench","contact_id":"%08x%016x","run_id":"r-%d-%d","shape_id":"1"}', id, counter, id, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
