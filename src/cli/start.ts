// `chorus start`: runs one member in this process until SIGTERM or SIGINT.
import { ChorusNode } from '../server/chorus-node.ts';
import type { ChorusNodeConfig } from '../node/config.ts';
import { ChorusError } from '../shared/errors.ts';
import { createJsonLogger, isLogLevel } from '../shared/logger.ts';
import { StorageError } from '../storage/errors.ts';
import { parseAlertsSettings } from '../observe/config.ts';
import type { AlertsSettings } from '../observe/config.ts';
import { loadConfigFileSections } from './config-file.ts';
import type { ConfigValue } from './config-file.ts';

/** Exit codes of `chorus start`. */
export const EXIT_FAILURE = 1;
export const EXIT_CONFIG = 2;
export const EXIT_DATA = 3;

const STRING_SETTINGS = [
  'id', 'dataDir', 'listenClient', 'listenPeer', 'initialCluster', 'clusterId', 'advertiseClient', 'listenBinary', 'logLevel',
  'synchronousCommit', 'synchronousStandbyNames', 'initialClusterState', 'alertWebhook',
] as const;
const INT_SETTINGS = [
  'tickMs', 'electionTicks', 'heartbeatTicks', 'snapshotEntries', 'walKeepEntries', 'valueBytesMax', 'keyBytesMax',
  'requestTimeoutMs', 'proposalsPendingMax', 'readsPendingMax', 'forwardsPendingMax', 'syncStandbyTimeoutMs', 'leaseTicks',
  'heartbeatDelayMaxMs',
] as const;
const BOOL_SETTINGS = ['enableTestFaults', 'join'] as const;
const KNOWN: ReadonlySet<string> = new Set<string>([...STRING_SETTINGS, ...INT_SETTINGS, ...BOOL_SETTINGS]);

function invalid(message: string): ChorusError {
  return new ChorusError('CHORUS_CONFIG_INVALID', message);
}

/** Merges the config file (if any) with the flags (flags win) into a member configuration. */
export function startConfig(flags: Record<string, unknown>): ChorusNodeConfig {
  const merged: Record<string, ConfigValue> = {};
  let alerts: AlertsSettings | undefined;
  if (typeof flags['config'] === 'string') {
    const file = loadConfigFileSections(flags['config']);
    Object.assign(merged, file.settings);
    if (file.alerts !== undefined) alerts = parseAlertsSettings(file.alerts, `${flags['config']}: alerts`);
  }
  for (const [key, value] of Object.entries(flags)) {
    if (key === 'config' || value === undefined) continue;
    merged[key] = value as ConfigValue;
  }
  for (const key of Object.keys(merged)) if (!KNOWN.has(key)) throw invalid(`unknown setting ${key}`);
  const config: Record<string, unknown> = {};
  for (const key of STRING_SETTINGS) {
    const v = merged[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw invalid(`${key} must be a string`);
    config[key] = v;
  }
  for (const key of INT_SETTINGS) {
    const v = merged[key];
    if (v === undefined) continue;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw invalid(`${key} must be an integer`);
    config[key] = n;
  }
  for (const key of BOOL_SETTINGS) {
    const v = merged[key];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') throw invalid(`${key} must be true or false`);
    config[key] = v;
  }
  for (const key of ['id', 'dataDir', 'listenClient', 'listenPeer', 'initialCluster']) {
    if (config[key] === undefined) throw invalid(`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is required (flag or config file)`);
  }
  if (config['logLevel'] !== undefined && !isLogLevel(config['logLevel'])) throw invalid('logLevel must be debug, info, warn or error');
  if (alerts !== undefined) config['alerts'] = alerts;
  return config as unknown as ChorusNodeConfig;
}

function describeFailure(error: unknown): { code: string; message: string; exitCode: number; fields: Record<string, unknown> } {
  if (error instanceof StorageError) {
    const fields: Record<string, unknown> = {};
    const file = (error as { file?: unknown }).file;
    const offset = (error as { offset?: unknown }).offset;
    if (file !== undefined) fields['file'] = file;
    if (offset !== undefined) fields['offset'] = offset;
    return { code: error.code, message: error.message, exitCode: EXIT_DATA, fields };
  }
  if (error instanceof ChorusError) {
    const exitCode = error.code === 'CHORUS_CONFIG_INVALID' ? EXIT_CONFIG : error.code === 'CHORUS_DATA_DIR_MISMATCH' || error.code === 'CHORUS_RECOVERY_FAILED' ? EXIT_DATA : EXIT_FAILURE;
    return { code: error.code, message: error.message, exitCode, fields: {} };
  }
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  return { code: typeof code === 'string' ? code : 'CHORUS_INTERNAL', message, exitCode: EXIT_FAILURE, fields: {} };
}

export async function runStart(flags: Record<string, unknown>): Promise<void> {
  let config: ChorusNodeConfig;
  try {
    config = startConfig(flags);
  } catch (error) {
    const failure = describeFailure(error);
    process.stderr.write(`chorus start: ${failure.code}: ${failure.message}\n`);
    process.exit(failure.exitCode);
  }
  const logger = createJsonLogger({ level: config.logLevel ?? 'info', base: { member: config.id } });
  let node: ChorusNode;
  try {
    node = await ChorusNode.start({
      ...config,
      logger,
      onFatal: (error) => {
        const failure = describeFailure(error);
        process.stderr.write(`chorus start: ${failure.code}: ${failure.message}: the member stopped; restart it to recover\n`);
        process.exit(EXIT_FAILURE);
      },
    });
  } catch (error) {
    const failure = describeFailure(error);
    logger.error('start-failed', { code: failure.code, message: failure.message, ...failure.fields });
    process.stderr.write(`chorus start: ${failure.code}: ${failure.message}\n`);
    process.exit(failure.exitCode);
  }
  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn('forced-exit', { signal });
      process.exit(EXIT_FAILURE);
    }
    logger.info('shutdown', { signal });
    node.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('stop-failed', { error });
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
