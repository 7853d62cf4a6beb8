// The binding's tests, run with Mono against libveltix:
//
//   mono VeltixTests.exe client <port of a server that echoes type 200>
//   mono VeltixTests.exe server <python with veltix 3.3.0> <tests/support/ref_client.py>
//
// Prints "ok <name>" per test and "PASS <count>" at the end; a failure
// throws (exit status 1).
using System;

namespace Veltix.Tests
{
    internal static class Program
    {
        private static int Main(string[] args)
        {
            if (args.Length == 2 && args[0] == "client")
            {
                ClientTests.Run(ushort.Parse(args[1]));
            }
            else if (args.Length == 3 && args[0] == "server")
            {
                ServerTests.Run(args[1], args[2]);
            }
            else
            {
                Console.Error.WriteLine("usage: VeltixTests.exe client <port> | server <python> <ref_client.py>");
                return 2;
            }
            return Harness.Report();
        }
    }
}
