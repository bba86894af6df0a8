-- wrk script: POST the same non-streamed chat completion on every request.
--
--   BENCH_MODEL=fake BENCH_KEY=sk-bench \
--     wrk -t1 -c50 -d10s --latency -s bench/wrk/post_chat.lua http://127.0.0.1:PORT
--
-- The model and API key come from the environment (defaults: "fake",
-- "sk-bench"); stream_chat.lua reuses this file with chat_body(true).
-- done() prints one line, "BENCH {json}", that bench/run.py reads: totals,
-- errors and the latency percentiles in microseconds.

local model = os.getenv("BENCH_MODEL") or "fake"
local key = os.getenv("BENCH_KEY") or "sk-bench"

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

function chat_body(stream)
  return '{"model": "' .. model .. '", "messages": [{"role": "user", "content": "hi"}]'
    .. (stream and ', "stream": true}' or '}')
end

wrk.body = chat_body(false)

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, '
      .. '"status_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
