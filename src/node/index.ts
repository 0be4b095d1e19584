// The embeddable member runtime: `await ChorusNode.start(config)`, `await node.stop()`.
export { ChorusNode } from './chorus-node.ts';
export { deriveClusterId, parseHostPort, parseInitialCluster, resolveConfig } from './config.ts';
export type { ChorusNodeConfig, HostPort, ResolvedConfig } from './config.ts';
export { ChorusError, NotLeaderError } from './errors.ts';
export type { ChorusErrorCode, NodeErrorCode } from './errors.ts';
export { createJsonLogger, silentLogger } from './logger.ts';
export type { LogFields, LogLevel, Logger } from './logger.ts';
