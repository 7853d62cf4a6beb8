using Veltix.Interop;

namespace Veltix
{
    /// <summary>A cluster node's bus counters (<c>veltix_cluster_stats_t</c>); see docs/cluster.md.</summary>
    public struct ClusterStats
    {
        internal ClusterStats(veltix_cluster_stats_t stats)
        {
            Connected = stats.connected != 0;
            NodeId = stats.node_id;
            Published = stats.published;
            Received = stats.received;
            Dropped = stats.dropped;
            Malformed = stats.malformed;
            Disconnects = stats.disconnects;
        }

        /// <summary>Whether both bus connections are up.</summary>
        public bool Connected { get; private set; }
        /// <summary>This node's id (the configured one, or the one drawn for 0).</summary>
        public ushort NodeId { get; private set; }
        /// <summary>Messages handed to Redis for the other nodes.</summary>
        public ulong Published { get; private set; }
        /// <summary>Messages received from other nodes.</summary>
        public ulong Received { get; private set; }
        /// <summary>Messages that would have crossed nodes but were dropped (bus down, or its queue full).</summary>
        public ulong Dropped { get; private set; }
        /// <summary>Messages received in another format; ignored.</summary>
        public ulong Malformed { get; private set; }
        /// <summary>Times a bus connection was lost.</summary>
        public ulong Disconnects { get; private set; }

        internal static veltix_cluster_stats_t Empty()
        {
            return new veltix_cluster_stats_t { struct_size = (uint)System.Runtime.InteropServices.Marshal.SizeOf(typeof(veltix_cluster_stats_t)) };
        }
    }

    /// <summary>One node of a cluster and its connected clients (<c>veltix_cluster_node_t</c>).</summary>
    public struct ClusterNode
    {
        internal ClusterNode(veltix_cluster_node_t node)
        {
            NodeId = node.node_id;
            Clients = node.clients;
        }

        /// <summary>The node's id.</summary>
        public ushort NodeId { get; private set; }
        /// <summary>Its connected clients, as it last recorded them.</summary>
        public ulong Clients { get; private set; }
    }
}
