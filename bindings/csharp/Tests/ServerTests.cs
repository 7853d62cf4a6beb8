// Tests of the server, against the binding's own client (in this process,
// both dispatched by this thread) and against the reference veltix 3.3.0
// client (tests/support/ref_client.py, run by the given Python).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using static Veltix.Tests.Harness;

namespace Veltix.Tests
{
    internal static class ServerTests
    {
        private const ushort Echo = 200, Ask = 212, Answer = 213, Broadcasts = 203;

        /// <summary>A started server on a free port of 127.0.0.1 that echoes type 200.</summary>
        private static Server EchoServer(CallbackMode mode = CallbackMode.Dispatch)
        {
            var server = new Server(new ServerOptions { Host = "127.0.0.1", Port = 0, Mode = mode });
            server.Route(Echo, (peer, message) => server.Reply(peer, message, Echo, message.Payload));
            server.Start();
            return server;
        }

        private static Client ClientOf(Server server)
        {
            return new Client(new ClientOptions { Host = "127.0.0.1", Port = server.Port });
        }

        internal static void Run(string python, string referenceClient)
        {
            Test("a server answers the binding's client, and sees it come and go", () =>
            {
                using (var server = EchoServer())
                {
                    ulong joined = 0, left = 0;
                    var reason = (DisconnectReason)(-1);
                    server.ClientConnected += peer => joined = peer;
                    server.ClientDisconnected += (peer, why) => { left = peer; reason = why; };
                    var client = ClientOf(server);
                    var connecting = client.ConnectAsync();
                    DispatchUntil(() => joined != 0 && connecting.IsCompleted, server.Dispatch, client.Dispatch);
                    Check(server.Peers().SequenceEqual(new[] { joined }), "Peers()");
                    Equal(1, server.ClientCount, "ClientCount");
                    var address = server.PeerAddress(joined);
                    Equal("127.0.0.1", address.Address.ToString(), "PeerAddress");
                    Check(address.Port > 0, "the peer's port");
                    var reply = client.RequestAsync(Echo, "hello");
                    DispatchUntil(() => reply.IsCompleted, server.Dispatch, client.Dispatch);
                    Equal("hello", reply.Result.Text, "reply");
                    Check(server.PeerStats(joined).FramesIn >= 1, "peer stats");
                    client.Dispose();
                    DispatchUntil(() => left != 0, server.Dispatch);
                    Equal(joined, left, "who left");
                    Equal(DisconnectReason.PeerClosed, reason, "reason");
                }
            });

            Test("a server's requests, broadcasts, tags and CloseClient reach the binding's client", () =>
            {
                using (var server = EchoServer())
                using (var client = ClientOf(server))
                {
                    ulong peer = 0;
                    server.ClientConnected += p => peer = p;
                    var got = new List<string>();
                    DisconnectInfo ended = null;
                    client.Route(Ask, message => client.Reply(message, Answer, "answer:" + message.Text));
                    client.Route(Broadcasts, message => got.Add(message.Text));
                    client.Disconnected += info => ended = info;
                    client.Connect();
                    DispatchUntil(() => peer != 0, server.Dispatch, client.Dispatch);
                    var answer = server.RequestAsync(peer, Ask, "q");
                    DispatchUntil(() => answer.IsCompleted, server.Dispatch, client.Dispatch);
                    Equal(Answer, answer.Result.Type, "answer type");
                    Equal("answer:q", answer.Result.Text, "answer");
                    Equal(1, server.Broadcast(Broadcasts, "to all"), "sent to");
                    Equal(0, server.Broadcast(Broadcasts, "to nobody", peer), "sent to, with the peer excepted");
                    DispatchUntil(() => got.Count == 1, server.Dispatch, client.Dispatch);
                    Equal("to all", got[0], "broadcast");

                    server.SetTag(peer, "room", "lobby");
                    Equal("lobby", server.GetTag(peer, "room"), "GetTag");
                    Check(!server.AddTag(peer, "room", "hall"), "AddTag keeps a tag that is set");
                    Check(server.AddTag(peer, "role", "player"), "AddTag sets a new tag");
                    Check(server.PeersWithTag("room", "lobby").SequenceEqual(new[] { peer }), "PeersWithTag");
                    Equal(0, server.PeersWithTag("room", "hall").Length, "PeersWithTag, another value");
                    Equal(1, server.PeersWithTag("room").Length, "PeersWithTag, any value");
                    Check(server.RemoveTag(peer, "room") && !server.RemoveTag(peer, "room"), "RemoveTag");
                    Check(server.GetTag(peer, "room") == null, "a removed tag");

                    server.CloseClient(peer);
                    DispatchUntil(() => ended != null, server.Dispatch, client.Dispatch);
                    Equal(DisconnectReason.ServerClosed, ended.Reason, "reason");
                }
            });

            Test("a message kept with Clone can be answered after its handler", () =>
            {
                using (var server = EchoServer())
                using (var client = ClientOf(server))
                {
                    ulong peer = 0;
                    server.ClientConnected += p => peer = p;
                    Message kept = null;
                    client.Route(Ask, message => kept = message.Clone());
                    client.Connect();
                    DispatchUntil(() => peer != 0, server.Dispatch, client.Dispatch);
                    var answer = server.RequestAsync(peer, Ask, "later");
                    DispatchUntil(() => kept != null, server.Dispatch, client.Dispatch);
                    using (kept)
                    {
                        client.Reply(kept, Answer, "answered later");
                    }
                    DispatchUntil(() => answer.IsCompleted, server.Dispatch, client.Dispatch);
                    Equal("answered later", answer.Result.Text, "answer");
                    Throws<ObjectDisposedException>(() => client.Reply(kept, Answer, "again"));
                }
            });

            Test("the PROXY protocol's trust list reaches the config, which checks it", () =>
            {
                var bad = Throws<VeltixException>(() => new Server(new ServerOptions { ProxyProtocolFrom = "not an address" }));
                Equal(Status.InvalidArgument, bad.Status, "status");
                Check(bad.Detail.Contains("proxy_protocol_from"), bad.Detail);
                using (var server = new Server(new ServerOptions { Host = "127.0.0.1", Port = 0, ProxyProtocolFrom = "10.0.0.0/8" }))
                {
                    Check(server.Start() > 0, "it listens");
                }
            });

            Test("IoThreads reaches the config: two loops serve two clients and broadcast to both", () =>
            {
                var bad = Throws<VeltixException>(() => new Server(new ServerOptions { IoThreads = 257 }));
                Equal(Status.InvalidArgument, bad.Status, "status");
                Check(bad.Detail.Contains("io_threads"), bad.Detail);
                using (var server = new Server(new ServerOptions { Host = "127.0.0.1", Port = 0, IoThreads = 2 }))
                {
                    server.Route(Echo, (peer, message) => server.Reply(peer, message, Echo, message.Payload));
                    server.Start();
                    using (var first = ClientOf(server))
                    using (var second = ClientOf(server))
                    {
                        var got = new List<string>();
                        first.Route(Broadcasts, message => got.Add(message.Text));
                        second.Route(Broadcasts, message => got.Add(message.Text));
                        first.Connect();
                        second.Connect();
                        DispatchUntil(() => server.ClientCount == 2, server.Dispatch, first.Dispatch, second.Dispatch);
                        var echoes = new[] { first.RequestAsync(Echo, "one"), second.RequestAsync(Echo, "two") };
                        Equal(2, server.Broadcast(Broadcasts, "to both"), "sent to");
                        DispatchUntil(() => got.Count == 2 && echoes.All(e => e.IsCompleted), server.Dispatch, first.Dispatch, second.Dispatch);
                        Check(got.All(text => text == "to both"), "both got the broadcast");
                        Equal("one", echoes[0].Result.Text, "first echo");
                        Equal("two", echoes[1].Result.Text, "second echo");
                    }
                }
            });

            Test("cluster settings reach the config; an unreachable bus is reported and local sends go on", () =>
            {
                var bad = Throws<VeltixException>(() => new Server(new ServerOptions { ClusterBus = "rediss://127.0.0.1:1" }));
                Equal(Status.InvalidArgument, bad.Status, "status");
                Check(bad.Detail.Contains("cluster_bus"), bad.Detail);
                // Nothing listens on port 1: the first attempt fails.
                var options = new ServerOptions
                {
                    Host = "127.0.0.1", Port = 0, ClusterBus = "redis://127.0.0.1:1", ClusterName = "cs", ClusterNodeId = 42,
                };
                using (var server = new Server(options))
                {
                    var states = new List<bool>();
                    ulong? joined = null;
                    server.ClusterStateChanged += connected => states.Add(connected);
                    server.ClientConnected += peer => joined = peer;
                    server.Start();
                    using (var client = ClientOf(server))
                    {
                        var got = new List<string>();
                        client.MessageReceived += message => got.Add(message.Text);
                        client.Connect();
                        DispatchUntil(() => joined.HasValue && states.Count > 0, server.Dispatch, client.Dispatch);
                        Equal(false, states.Single(), "reported lost once");
                        Equal(42UL, joined.Value >> 37, "the node id in the peer id");
                        var stats = server.GetClusterStats();
                        Equal((ushort)42, stats.NodeId, "node id");
                        Equal(false, stats.Connected, "connected");
                        server.SetTag(joined.Value, "room", "red");
                        Equal(1, server.SendToTag("room", "red", 220, "to the room"), "sent");
                        Equal(0, server.SendToTag("room", "blue", 220, "nobody"), "sent to blue");
                        DispatchUntil(() => got.Count == 1, server.Dispatch, client.Dispatch);
                        Equal("to the room", got[0], "received");
                        ulong total;
                        var nodes = server.ClusterNodes(out total);
                        Equal(1, nodes.Length, "nodes");
                        Equal((ushort)42, nodes[0].NodeId, "node");
                        Equal(1UL, nodes[0].Clients, "its clients");
                        Equal(1UL, total, "total");
                        Equal(stats.Dropped + 2, server.GetClusterStats().Dropped, "tag sends that could not cross");
                    }
                }
            });

            Test("Drain closes the connections and stops listening", () =>
            {
                using (var server = EchoServer())
                using (var client = ClientOf(server))
                {
                    DisconnectReason? reason = null;
                    server.ClientDisconnected += (peer, why) => reason = why;
                    client.Connect();
                    DispatchUntil(() => server.ClientCount == 1, server.Dispatch, client.Dispatch);
                    server.Drain(0);
                    DispatchUntil(() => reason.HasValue && !client.IsConnected, server.Dispatch, client.Dispatch);
                    Equal(DisconnectReason.Manual, reason.Value, "reason");
                    using (var late = ClientOf(server))
                    {
                        Equal(Status.ConnectFailed, Throws<VeltixException>(late.Connect).Status, "a late client");
                    }
                }
            });

            Test("a server with workers runs handlers on library threads", () =>
            {
                var me = Thread.CurrentThread.ManagedThreadId;
                using (var server = EchoServer(CallbackMode.Workers))
                using (var client = ClientOf(server))
                {
                    var threads = new System.Collections.Concurrent.ConcurrentBag<int>();
                    server.ClientConnected += _ => threads.Add(Thread.CurrentThread.ManagedThreadId);
                    server.Route(Ask, (peer, message) =>
                    {
                        threads.Add(Thread.CurrentThread.ManagedThreadId);
                        server.Reply(peer, message, Answer, "from a worker");
                    });
                    client.Connect();
                    Equal("from a worker", client.SendAndWait(Ask, "?").Text, "reply");
                    WaitUntil(() => threads.Count == 2);
                    Check(threads.All(thread => thread != me), "no handler on the test's thread");
                }
            });

            Test("the reference client gets answers, requests and broadcasts from the binding's server", () =>
            {
                using (var server = EchoServer())
                {
                    ulong peer = 0;
                    server.ClientConnected += p => peer = p;
                    var start = new ProcessStartInfo(python, string.Format("\"{0}\" --port {1}", referenceClient, server.Port))
                    {
                        UseShellExecute = false,
                        RedirectStandardInput = true,
                        RedirectStandardOutput = true,
                    };
                    using (var reference = Process.Start(start))
                    {
                        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
                        reference.OutputDataReceived += (_, line) => { if (line.Data != null) lines.Enqueue(line.Data); };
                        reference.BeginOutputReadLine();
                        reference.StandardInput.WriteLine("{\"op\": \"connect\"}");
                        reference.StandardInput.WriteLine("{\"op\": \"request\", \"type\": 200, \"text\": \"hello\"}");
                        reference.StandardInput.Flush();
                        DispatchUntil(() => peer != 0, server.Dispatch);
                        var answer = server.SendAndWait(peer, Ask, "waited");
                        Equal(Answer, answer.Type, "answer type");
                        Equal("answer:waited", answer.Text, "answer");
                        var asked = server.RequestAsync(peer, Ask, "async");
                        DispatchUntil(() => asked.IsCompleted, server.Dispatch);
                        Equal("answer:async", asked.Result.Text, "async answer");
                        Check(server.PingClient(peer) > 0, "PingClient");
                        Equal(1, server.Broadcast(Broadcasts, "to python"), "broadcast");
                        Func<string, bool> seen = text => lines.Any(line => line.Contains(text));
                        DispatchUntil(() => seen("\"text\": \"to python\"") && seen("\"op\": \"request\", \"reply\": {\"type\": 200"), server.Dispatch);
                        Check(seen("\"text\": \"hello\""), "the echo of the reference's request");
                        reference.StandardInput.Close();
                        Check(reference.WaitForExit(10000), "the reference client exits");
                    }
                }
            });
        }
    }
}
