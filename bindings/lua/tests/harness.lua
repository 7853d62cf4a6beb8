-- What the binding's test programs share: named tests that print "ok
-- <name>", a loop that dispatches until a condition holds, and the tally.
local harness = { passed = 0 }

--- Runs `fn`; prints "ok <name>" if it returns (any failure raises).
function harness.test(name, fn)
  fn()
  harness.passed = harness.passed + 1
  print("ok " .. name)
end

--- Dispatches each of `handles` (clients and servers) in turn until
-- `done()`, for 10 s at most.
function harness.dispatch_until(handles, done)
  local deadline = os.time() + 10
  while not done() do
    assert(os.time() <= deadline, "timed out waiting in dispatch")
    for _, handle in ipairs(handles) do handle:dispatch(5) end
  end
end

--- Prints "PASS <count>".
function harness.report()
  print("PASS " .. harness.passed)
end

return harness
