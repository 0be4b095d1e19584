// The node-to-node transport: TCP, length-prefixed msgpack frames, handshake per connection.
export { TcpTransport } from './tcp-transport.ts';
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
