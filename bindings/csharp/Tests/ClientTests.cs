// Tests of the client against a server on 127.0.0.1 that echoes type 200
// with its request id: the reference veltix 3.3.0 server
// (tests/support/ref_server.py) or libveltix's c-examples/echo_server.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using static Veltix.Tests.Harness;

namespace Veltix.Tests
{
    internal static class ClientTests
    {
        private const ushort Echo = 200;
        private const ushort Unanswered = 221; // a type both servers leave unanswered

        internal static void Run(ushort port)
        {
            Func<ClientOptions> options = () => new ClientOptions { Host = "127.0.0.1", Port = port };
            Func<Client> connected = () =>
            {
                var client = new Client(options());
                client.Connect();
                return client;
            };

            Test("the library loads and reports its version", () =>
            {
                Check(System.Text.RegularExpressions.Regex.IsMatch(Library.Version, @"^\d+\.\d+\.\d+"), Library.Version);
            });

            Test("ConnectAsync completes inside Dispatch, after the Connected event", () =>
            {
                using (var client = new Client(options()))
                {
                    var connects = 0;
                    client.Connected += () => connects++;
                    var connecting = client.ConnectAsync();
                    Thread.Sleep(100);
                    Check(!connecting.IsCompleted, "nothing completes outside Dispatch");
                    DispatchUntil(() => connecting.IsCompleted, client.Dispatch);
                    Check(connecting.Status == System.Threading.Tasks.TaskStatus.RanToCompletion, connecting.Status.ToString());
                    Equal(1, connects, "Connected events");
                    Check(client.IsConnected, "connected");
                }
            });

            Test("a route receives the echo of every send: arrays, slices and text", () =>
            {
                using (var client = connected())
                {
                    var got = new List<string>();
                    client.Route(Echo, message =>
                    {
                        Equal(Echo, message.Type, "type");
                        got.Add(message.Text);
                    });
                    for (var i = 0; i < 50; i++)
                    {
                        client.Send(Echo, "message " + i);
                    }
                    var buffer = System.Text.Encoding.UTF8.GetBytes("xxslicexx");
                    client.Send(Echo, buffer, 2, 5);
                    client.Send(Echo, new byte[0]);
                    DispatchUntil(() => got.Count == 52, client.Dispatch);
                    // The reference server answers on a thread pool, in any order.
                    for (var i = 0; i < 50; i++)
                    {
                        Check(got.Contains("message " + i), "echo of message " + i);
                    }
                    Check(got.Contains("slice") && got.Contains(""), "the slice and the empty payload");
                }
            });

            Test("a slice outside its buffer is refused before anything is sent", () =>
            {
                using (var client = connected())
                {
                    Throws<ArgumentOutOfRangeException>(() => client.Send(Echo, new byte[4], 2, 3));
                    Throws<ArgumentOutOfRangeException>(() => client.Send(Echo, new byte[4], -1, 1));
                    Throws<ArgumentNullException>(() => client.Send(Echo, (byte[])null));
                }
            });

            Test("binary payloads keep every byte through SendAndWait", () =>
            {
                using (var client = connected())
                {
                    var payload = new byte[] { 0, 1, 2, 255, 32, 0 };
                    var reply = client.SendAndWait(Echo, payload);
                    Equal(Echo, reply.Type, "type");
                    Check(reply.Payload.SequenceEqual(payload), "payload");
                    Check(reply.RequestId != 0, "a reply carries its request id");
                }
            });

            Test("RequestAsync tasks complete with their replies inside Dispatch, once", () =>
            {
                using (var client = connected())
                {
                    var tasks = Enumerable.Range(0, 10).Select(i => client.RequestAsync(Echo, "ask " + i)).ToArray();
                    var continued = 0;
                    foreach (var task in tasks)
                    {
                        task.ContinueWith(_ => Interlocked.Increment(ref continued));
                    }
                    DispatchUntil(() => tasks.All(t => t.IsCompleted), client.Dispatch);
                    for (var i = 0; i < 10; i++)
                    {
                        Equal("ask " + i, tasks[i].Result.Text, "reply " + i);
                    }
                    WaitUntil(() => Volatile.Read(ref continued) == 10);
                }
            });

            Test("a request that gets no reply fails with Timeout", () =>
            {
                using (var client = connected())
                {
                    var task = client.RequestAsync(Unanswered, "nobody answers", 100);
                    DispatchUntil(() => task.IsCompleted, client.Dispatch);
                    var error = Faulted<VeltixException>(task);
                    Equal(Status.Timeout, error.Status, "status");
                    Check(error.Message.StartsWith("timed out: ") && error.Message.EndsWith(error.Detail), error.Message);
                    Check(error.Detail.Length > 0, "the detail");
                }
            });

            Test("a pending request fails with Closed when its client is disposed", () =>
            {
                var client = connected();
                var task = client.RequestAsync(Unanswered, "pending", 60000);
                client.Dispose();
                WaitUntil(() => task.IsCompleted);
                Equal(Status.Closed, Faulted<VeltixException>(task).Status, "status");
            });

            Test("Ping measures a round trip; Stats count the traffic", () =>
            {
                using (var client = connected())
                {
                    var rtt = client.Ping();
                    Check(rtt > 0 && rtt < 5000, "rtt " + rtt);
                    client.SendAndWait(Echo, "counted");
                    var stats = client.Stats;
                    Check(stats.FramesOut >= 2 && stats.FramesIn >= 2, "frames " + stats.FramesOut + "/" + stats.FramesIn);
                    Check(stats.BytesIn > 0 && stats.BytesOut > 0, "bytes");
                    Check(stats.LastRttMs > 0, "last rtt " + stats.LastRttMs);
                }
            });

            Test("Unroute hands the type to MessageReceived; a handler's exception is thrown by Dispatch", () =>
            {
                using (var client = connected())
                {
                    client.Route(Echo, message => { throw new Exception("routed"); });
                    client.Unroute(Echo);
                    var seen = new List<string>();
                    client.MessageReceived += message =>
                    {
                        seen.Add(message.Text);
                        if (seen.Count == 1)
                        {
                            throw new HandlerFailure("boom in MessageReceived");
                        }
                    };
                    client.Send(Echo, "first");
                    client.Send(Echo, "second");
                    var thrown = Throws<HandlerFailure>(() => DispatchUntil(() => seen.Count == 2, client.Dispatch));
                    Equal("boom in MessageReceived", thrown.Message, "the handler's own exception");
                    Check(thrown.StackTrace.Contains("ClientTests"), "its stack trace starts in the handler");
                    DispatchUntil(() => seen.Count == 2, client.Dispatch);
                }
            });

            Test("every handler runs on the dispatching thread", () =>
            {
                var me = Thread.CurrentThread.ManagedThreadId;
                using (var client = new Client(options()))
                {
                    var calls = 0;
                    Action here = () =>
                    {
                        Equal(me, Thread.CurrentThread.ManagedThreadId, "thread");
                        calls++;
                    };
                    client.Connected += here;
                    client.Route(Echo, _ => here());
                    client.Disconnected += _ => here();
                    client.ConnectAsync();
                    DispatchUntil(() => calls == 1, client.Dispatch);
                    client.Send(Echo, "x");
                    DispatchUntil(() => calls == 2, client.Dispatch);
                    client.Disconnect();
                    DispatchUntil(() => calls == 3, client.Dispatch);
                }
            });

            Test("a refused ConnectAsync fails with the cause, after a permanent Disconnected", () =>
            {
                using (var refused = new Client(new ClientOptions { Host = "127.0.0.1", Port = 1 }))
                {
                    DisconnectInfo state = null;
                    refused.Disconnected += info => state = info;
                    var connecting = refused.ConnectAsync();
                    DispatchUntil(() => connecting.IsCompleted, refused.Dispatch);
                    var error = Faulted<VeltixException>(connecting);
                    Equal(Status.ConnectFailed, error.Status, "status");
                    Check(error.Detail.Contains("refused"), error.Detail);
                    Check(state != null && state.Permanent, "a permanent Disconnected");
                    Equal(DisconnectReason.Error, state.Reason, "reason");
                }
            });

            Test("Disconnect reports a manual, permanent end inside Dispatch", () =>
            {
                using (var client = connected())
                {
                    DisconnectInfo state = null;
                    client.Disconnected += info => state = info;
                    client.Disconnect();
                    DispatchUntil(() => state != null, client.Dispatch);
                    Check(state.Permanent, "permanent");
                    Equal(DisconnectReason.Manual, state.Reason, "reason");
                    Check(client.WaitUntilClosed(1000), "closed");
                }
            });

            Test("errors are VeltixExceptions with the status and the library's detail", () =>
            {
                using (var refused = new Client(new ClientOptions { Host = "127.0.0.1", Port = 1, HandshakeTimeoutMs = 2000 }))
                {
                    var error = Throws<VeltixException>(refused.Connect);
                    Equal(Status.ConnectFailed, error.Status, "status");
                    Check(error.Message.EndsWith(": " + error.Detail) && error.Detail.Length > 0, error.Message);
                }
                using (var client = new Client(options()))
                {
                    Equal(Status.NotConnected, Throws<VeltixException>(() => client.Send(Echo, "x")).Status, "status");
                }
            });

            Test("options reach the library's config, which checks them", () =>
            {
                var bad = Throws<VeltixException>(() => new Client(new ClientOptions { Port = port, BufferSize = 0 }));
                Equal(Status.InvalidArgument, bad.Status, "status");
                Check(bad.Detail.Contains("buffer_size"), bad.Detail);
                var liveness = new Liveness { HeartbeatIntervalMs = 200, HeartbeatTimeoutMs = 5000 };
                using (var client = new Client(new ClientOptions
                {
                    Host = "localhost", Port = port, Retry = 2, RetryDelayMs = 10, RetryDelayMaxMs = 100,
                    RetryJitter = true, ReplySpinUs = 0, Liveness = liveness,
                }))
                {
                    client.Connect();
                    Equal("configured", client.SendAndWait(Echo, "configured").Text, "reply");
                }
            });

            Test("Dispose is idempotent, and a disposed client refuses calls", () =>
            {
                var client = connected();
                client.Dispose();
                client.Dispose();
                Throws<ObjectDisposedException>(() => client.Send(Echo, "x"));
            });

            Test("a reply outside its handler is refused, with what to do instead", () =>
            {
                using (var client = connected())
                {
                    Message kept = null;
                    client.Route(Echo, message => kept = message);
                    client.Send(Echo, "keep me");
                    DispatchUntil(() => kept != null, client.Dispatch);
                    var error = Throws<InvalidOperationException>(() => client.Reply(kept, Echo, "late"));
                    Check(error.Message.Contains("Clone"), error.Message);
                    Equal("keep me", kept.Text, "the payload stays readable");
                }
            });

            Test("with workers, handlers run on library threads and tasks complete without Dispatch", () =>
            {
                var me = Thread.CurrentThread.ManagedThreadId;
                var workerOptions = options();
                workerOptions.Mode = CallbackMode.Workers;
                workerOptions.Workers = 2;
                using (var client = new Client(workerOptions))
                {
                    var threads = new System.Collections.Concurrent.ConcurrentBag<int>();
                    var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
                    client.CallbackError += errors.Enqueue;
                    client.Route(Echo, message =>
                    {
                        threads.Add(Thread.CurrentThread.ManagedThreadId);
                        if (message.Text == "throw")
                        {
                            throw new HandlerFailure("on a worker");
                        }
                    });
                    Check(client.ConnectAsync().Wait(5000), "connected without Dispatch");
                    client.Send(Echo, "hello");
                    client.Send(Echo, "throw");
                    Equal("task", client.RequestAsync(Echo, "task").Result.Text, "reply");
                    WaitUntil(() => threads.Count == 2 && errors.Count == 1);
                    Check(threads.All(thread => thread != me), "no handler on the test's thread");
                    Equal("on a worker", errors.Single().Message, "CallbackError");
                    Throws<VeltixException>(() => client.Dispatch());
                }
            });

            Test("a client nothing refers to is collected, registrations and all", () =>
            {
                var forgotten = Forgotten(options());
                for (var i = 0; i < 10 && forgotten.Any(c => c.IsAlive); i++)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                }
                Check(forgotten.All(c => !c.IsAlive), "every forgotten client was collected");
            });
        }

        /// <summary>Weak references to connected clients with handlers, left without Dispose.</summary>
        [MethodImpl(MethodImplOptions.NoInlining)]
        private static WeakReference[] Forgotten(ClientOptions options)
        {
            return Enumerable.Range(0, 5).Select(_ =>
            {
                var client = new Client(options);
                client.Route(Echo, message => { });
                client.MessageReceived += message => { };
                client.Connected += () => { };
                client.Connect();
                return new WeakReference(client);
            }).ToArray();
        }
    }
}
