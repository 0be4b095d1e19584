// The embeddable member runtime: `await ChorusNode.start(config)`, `await node.stop()`.
export { ChorusNode } from './chorus-node.ts';
export { deriveClusterId, parseHostPort, parseInitialCluster, resolveConfig } from '../node/config.ts';
export type { ChorusNodeConfig, HostPort, ResolvedConfig } from '../node/config.ts';
export { ChorusError, NotLeaderError } from '../shared/errors.ts';
export type { ChorusErrorCode, NodeErrorCode } from '../shared/errors.ts';
export { createJsonLogger, silentLogger } from '../shared/logger.ts';
export type { LogFields, LogLevel, Logger } from '../shared/logger.ts';
