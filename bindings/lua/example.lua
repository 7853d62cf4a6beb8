-- The README's example: connect, send, take the echo in a route, make a
-- request, and close. Run it against a server that echoes type 200:
--   VELTIX_LIBRARY=/path/to/libveltix.so luajit example.lua 8080
local veltix = require "veltix"

local client = veltix.client { host = "127.0.0.1", port = tonumber(arg[1]) or 8080 }
local echoes = 0
client:route(200, function(message)
  echoes = echoes + 1
  print("echo: " .. message.payload)
end)
client:connect()
client:send(200, "hello")
client:request(200, "are you there?", 5000, function(err, reply)
  assert(not err, err)
  print("reply: " .. reply.payload)
  echoes = echoes + 1
end)
while echoes < 2 do
  client:dispatch(100)
end
print(("ping: %.3f ms"):format(client:ping(5000)))
client:close()
