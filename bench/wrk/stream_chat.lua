-- wrk script: the streaming variant of post_chat.lua ("stream": true).
-- wrk counts a request when the whole event stream has arrived, so
-- requests/s times the events per stream is the events relayed per second.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "post_chat.lua")
wrk.body = chat_body(true)
