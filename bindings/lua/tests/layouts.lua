-- Prints the size of every struct the binding declares, and each field's
-- offset, as LuaJIT lays them out: bindings/check_layouts.py compares them
-- with the C compiler's.
package.path = arg[0]:gsub("tests/layouts.lua$", "") .. "?.lua;" .. package.path
require("veltix")
local ffi = require("ffi")
local cdef = require("veltix.cdef")
for name, body in cdef.declarations:gmatch("typedef struct (veltix_[%w_]+) {(.-)} veltix_[%w_]+;") do
  print(name .. " " .. tonumber(ffi.sizeof(name)))
  for field in body:gmatch("([%w_]+)%s*%[?%d*%]?;") do
    print(name .. "." .. field .. " " .. tonumber(ffi.offsetof(name, field)))
  end
end
