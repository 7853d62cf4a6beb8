// Type declarations of the veltix package (index.js).
/// <reference types="node" />
import { EventEmitter } from 'node:events';

/** A payload: bytes, or a string sent as UTF-8. */
export type Payload = Buffer | Uint8Array | ArrayBufferView | string;

/** Why a connection ended. */
export type DisconnectReason = 'server_closed' | 'error' | 'manual' | 'peer_closed';

/** What a client's 'disconnect' event carries. */
export interface DisconnectInfo {
  /** True when no reconnection attempt follows. */
  permanent: boolean;
  /** 0 for the disconnection itself, else the failed attempt's number. */
  attempt: number;
  retryMax: number;
  reason: DisconnectReason;
  /** Milliseconds until the next attempt, when one follows. */
  nextDelayMs: number;
  /** What went wrong, in the library's words ('' for a manual disconnect). */
  detail: string;
}

/** Heartbeats and TCP keepalive; all off by default. */
export interface Liveness {
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  keepaliveIdleS?: number;
  keepaliveIntervalS?: number;
  keepaliveCount?: number;
}

/** A client's settings; each omitted one keeps the library's default (see include/veltix.h). */
export interface ClientOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 8080. */
  port?: number;
  bufferSize?: number;
  maxMessageSize?: number;
  handshakeTimeoutMs?: number;
  /** Reconnection attempts after a failed connect or a lost connection; default 0. */
  retry?: number;
  retryDelayMs?: number;
  retryDelayMaxMs?: number;
  retryJitter?: boolean;
  sendTimeoutMs?: number;
  maxQueuedMessages?: number;
  maxQueuedBytes?: number;
  replySpinUs?: number;
  liveness?: Liveness;
}

/** A server's settings; each omitted one keeps the library's default. */
export interface ServerOptions {
  /** Default '0.0.0.0'. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  bufferSize?: number;
  /** -1 (the default) for no limit. */
  maxConnection?: number;
  maxMessageSize?: number;
  handshakeTimeoutMs?: number;
  maxOutboundBytes?: number;
  maxQueuedMessages?: number;
  maxQueuedBytes?: number;
  maxMemoryBytes?: number | bigint;
  idleTimeoutMs?: number;
  replySpinUs?: number;
  liveness?: Liveness;
  /** The load balancers ('10.0.0.5, 192.168.0.0/16') whose connections start with a PROXY header naming the real client. */
  proxyProtocolFrom?: string;
  /** Cluster mode: the bus, 'redis://host:port' (see docs/cluster.md). */
  clusterBus?: string;
  /** The cluster's name (default 'veltix'). */
  clusterName?: string;
  /** This node's id, 1 to 65535, unique per process; 0 (the default) draws one. */
  clusterNodeId?: number;
  /** I/O threads: event loops that share the connections; default 1, 0 is one per core. */
  ioThreads?: number;
}

/** A cluster node's bus counters. */
export interface ClusterStats {
  connected: boolean;
  nodeId: number;
  published: number;
  received: number;
  dropped: number;
  malformed: number;
  disconnects: number;
}

/** A connection's counters. */
export interface Stats {
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  framesOut: number;
  /** The last ping's round trip in ms; negative before the first. */
  lastRttMs: number;
  msSinceLastFrame: number;
}

/** A received message; its payload is a copy that is yours. */
export class Message {
  readonly type: number;
  /** Non-zero for a request or its reply. */
  readonly requestId: number;
  readonly payload: Buffer;
  /** The payload as UTF-8 text. */
  readonly text: string;
  /** A copy that holds a native message, so that it can be answered after its handler; free() releases it. */
  clone(): Message;
  /** Releases a clone's native message (the collector does it otherwise). */
  free(): void;
}

/** A failed call. */
export class VeltixError extends Error {
  /** The status's name, e.g. 'VELTIX_ERR_TIMEOUT'. */
  readonly code: string;
  /** The status's value, e.g. -9. */
  readonly status: number;
  /** The library's detail: what failed and how to fix it. */
  readonly detail: string;
}

export interface RequestOptions {
  /** Default 5000. */
  timeoutMs?: number;
}

/** A Veltix client; its events and handlers run on the JS thread. */
export class Client extends EventEmitter {
  constructor(options?: ClientOptions);
  /** Resolves once the handshake is done; rejects (VELTIX_ERR_CONNECT_FAILED) when the client gives up. */
  connect(): Promise<void>;
  readonly connected: boolean;
  readonly stats: Stats;
  send(type: number, payload?: Payload): void;
  /** Answers a request, inside its handler or with a clone. */
  reply(message: Message, type: number, payload?: Payload): void;
  /** A request: resolves with its reply; rejects on timeout or when the connection ends. */
  request(type: number, payload?: Payload, options?: RequestOptions): Promise<Message>;
  /** The round trip in milliseconds. */
  ping(options?: RequestOptions): Promise<number>;
  route(type: number, handler: (message: Message) => void): void;
  unroute(type: number): void;
  disconnect(): void;
  retry(maxAttempts: number): void;
  stopRetry(): void;
  /** Frees it; pending requests reject with VELTIX_ERR_CLOSED. */
  close(): void;

  on(event: 'connect', listener: () => void): this;
  on(event: 'disconnect', listener: (info: DisconnectInfo) => void): this;
  on(event: 'message', listener: (message: Message) => void): this;
  on(event: 'error', listener: (error: unknown) => void): this;
  once(event: 'connect', listener: () => void): this;
  once(event: 'disconnect', listener: (info: DisconnectInfo) => void): this;
  once(event: 'message', listener: (message: Message) => void): this;
  once(event: 'error', listener: (error: unknown) => void): this;
}

/** A Veltix server; peers are numeric ids, never reused. */
export class Server extends EventEmitter {
  constructor(options?: ServerOptions);
  /** Starts listening; returns the port. */
  listen(): number;
  readonly port: number;
  readonly clientCount: number;
  /** Stops listening, then closes its connections `peersPerSecond` at a time (0: all at once). */
  drain(peersPerSecond?: number): void;
  route(type: number, handler: (peer: number, message: Message) => void): void;
  unroute(type: number): void;
  send(peer: number, type: number, payload?: Payload): void;
  reply(peer: number, message: Message, type: number, payload?: Payload): void;
  request(peer: number, type: number, payload?: Payload, options?: RequestOptions): Promise<Message>;
  ping(peer: number, options?: RequestOptions): Promise<number>;
  /** Returns how many clients it was sent to. */
  broadcast(type: number, payload?: Payload, except?: number[]): number;
  peers(): number[];
  peersWithTag(name: string, value?: string | null): number[];
  setTag(peer: number, name: string, value: string): void;
  getTag(peer: number, name: string): string | undefined;
  removeTag(peer: number, name: string): boolean;
  peerAddress(peer: number): { address: string; port: number };
  closeClient(peer: number): void;
  /** Sends to the clients whose tag `name` is `value` (any if null), on every node in cluster mode; returns how many of this server's. */
  sendToTag(name: string, value: string | null, type: number, payload?: Payload): number;
  /** Cluster mode: the bus counters. */
  readonly clusterStats: ClusterStats;
  /** Cluster mode: every live node and its clients, in node order, and their total. */
  clusterNodes(): { nodes: { nodeId: number; clients: number }[]; total: number };
  /** Closes every connection and frees it. */
  close(): void;

  on(event: 'clusterState', listener: (connected: boolean) => void): this;
  once(event: 'clusterState', listener: (connected: boolean) => void): this;
  on(event: 'connect', listener: (peer: number) => void): this;
  on(event: 'disconnect', listener: (peer: number, reason: DisconnectReason) => void): this;
  on(event: 'message', listener: (peer: number, message: Message) => void): this;
  on(event: 'error', listener: (error: unknown) => void): this;
  once(event: 'connect', listener: (peer: number) => void): this;
  once(event: 'disconnect', listener: (peer: number, reason: DisconnectReason) => void): this;
  once(event: 'message', listener: (peer: number, message: Message) => void): this;
  once(event: 'error', listener: (error: unknown) => void): this;
}

/** Loads libveltix from `path` (else VELTIX_LIBRARY, the package's prebuilds, the system's path); returns its version. */
export function load(path?: string): string;
/** The loaded library's version. */
export function version(): string;
/** The header's status, disconnect-reason and log-level constants. */
export const constants: Readonly<Record<string, number>>;
