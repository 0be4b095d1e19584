// The node-to-node transport: TCP, length-prefixed msgpack frames, handshake per connection;
// and an in-memory one with the same contract, for tests and simulation.
export { TcpTransport } from './tcp-transport.ts';
export { MemoryNetwork, MemoryTransport } from './memory-transport.ts';
export type {
  AddressedMessage,
  DeliveryScheduler,
  LinkRef,
  MemoryInboundStats,
  MemoryNetworkOptions,
  MemoryPeerStats,
  MemoryTransportStats,
} from './memory-transport.ts';
export { TransportError } from './errors.ts';
export type { TransportErrorCode } from './errors.ts';
export { PROTOCOL_VERSION } from './codec.ts';
export type {
  InboundStats,
  LinkState,
  LogFields,
  PeerAddress,
  PeerResolver,
  PeerStats,
  TcpTransportOptions,
  TransportFaults,
  TransportLogger,
  TransportStats,
  MultiMasterMessage,
  WireMessage,
} from './types.ts';
