-- Installs the LuaJIT binding from this folder:
--   luarocks --lua-version 5.1 make veltix-0.1.0-1.rockspec
-- The binding loads libveltix itself (see README.md): it builds nothing.
package = "veltix"
version = "0.1.0-1"
source = {
   url = "git+file:///dev/null",
   dir = ".",
}
description = {
   summary = "Veltix TCP messaging from LuaJIT, on libveltix",
   detailed = [[
A client of the Veltix protocol (byte-compatible with the Python veltix
3.3.0) for LuaJIT, through the FFI and libveltix. Callbacks run on the Lua
thread inside dispatch(), with an event descriptor for event loops.
]],
   license = "MIT",
}
dependencies = {
   "lua == 5.1",
}
build = {
   type = "builtin",
   modules = {
      veltix = "veltix.lua",
      ["veltix.cdef"] = "veltix/cdef.lua",
   },
}
