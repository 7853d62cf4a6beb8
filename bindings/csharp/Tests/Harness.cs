// What the binding's tests share: named tests, dispatching until a
// condition holds, assertions and the tally.
using System;
using System.Diagnostics;

namespace Veltix.Tests
{
    /// <summary>What the tests' handlers throw on purpose.</summary>
    internal sealed class HandlerFailure : Exception
    {
        internal HandlerFailure(string message) : base(message) { }
    }

    internal static class Harness
    {
        private static int passed;

        /// <summary>Runs <paramref name="body"/>; prints "ok name" if it returns (any exception fails the run).</summary>
        internal static void Test(string name, Action body)
        {
            body();
            passed++;
            Console.WriteLine("ok " + name);
        }

        /// <summary>Dispatches each of <paramref name="dispatchers"/> in turn until <paramref name="done"/>, 10 s at most.</summary>
        internal static void DispatchUntil(Func<bool> done, params Func<int, int>[] dispatchers)
        {
            var clock = Stopwatch.StartNew();
            while (!done())
            {
                Check(clock.Elapsed.TotalSeconds < 10, "timed out waiting in Dispatch");
                foreach (var dispatch in dispatchers)
                {
                    dispatch(5);
                }
            }
        }

        /// <summary>Waits (without dispatching) until <paramref name="done"/>, 10 s at most.</summary>
        internal static void WaitUntil(Func<bool> done)
        {
            var clock = Stopwatch.StartNew();
            while (!done())
            {
                Check(clock.Elapsed.TotalSeconds < 10, "timed out waiting");
                System.Threading.Thread.Sleep(5);
            }
        }

        internal static void Check(bool condition, string what)
        {
            if (!condition)
            {
                throw new Exception("check failed: " + what);
            }
        }

        internal static void Equal<T>(T expected, T actual, string what)
        {
            if (!Equals(expected, actual))
            {
                throw new Exception(string.Format("check failed: {0}: expected {1}, got {2}", what, expected, actual));
            }
        }

        /// <summary>The exception of type <typeparamref name="T"/> that <paramref name="body"/> throws.</summary>
        internal static T Throws<T>(Action body) where T : Exception
        {
            try
            {
                body();
            }
            catch (T expected)
            {
                return expected;
            }
            throw new Exception("check failed: expected a " + typeof(T).Name);
        }

        /// <summary>The exception a faulted task holds (it must be faulted with a T).</summary>
        internal static T Faulted<T>(System.Threading.Tasks.Task task) where T : Exception
        {
            Check(task.IsFaulted, "the task faulted (it is " + task.Status + ")");
            var error = task.Exception.InnerException as T;
            Check(error != null, "the task's exception is a " + typeof(T).Name + ": " + task.Exception.InnerException);
            return error;
        }

        internal static int Report()
        {
            Console.WriteLine("PASS " + passed);
            return 0;
        }
    }
}
