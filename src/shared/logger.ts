// Structured logs: one JSON object per line, to stderr by default. Each line carries the time,
// the level, the member id and an event name, so that operators can grep and tools can parse.
import type { TransportLogger } from '../transport/types.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const LEVEL_RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && Object.hasOwn(LEVEL_RANK, value);
}

function errorFields(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const code = (value as { code?: unknown }).code;
  return { name: value.name, message: value.message, ...(code === undefined ? {} : { code }) };
}

/** A JSON-lines logger writing through `write` (default: stderr). Lines below `level` are dropped. */
export function createJsonLogger(options: { level?: LogLevel; base?: LogFields; write?: (line: string) => void } = {}): Logger {
  const threshold = LEVEL_RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const make = (base: LogFields): Logger => {
    const at = (level: LogLevel) => (event: string, fields?: LogFields): void => {
      if (LEVEL_RANK[level] < threshold) return;
      const record: LogFields = { ts: new Date().toISOString(), level, ...base, event };
      if (fields !== undefined) for (const [k, v] of Object.entries(fields)) record[k] = errorFields(v);
      let line: string;
      try {
        line = JSON.stringify(record);
      } catch {
        line = JSON.stringify({ ts: record['ts'], level, ...base, event, note: 'fields not serializable' });
      }
      write(`${line}\n`);
    };
    return {
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make(options.base ?? {});
}

export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

/** Adapts a Logger to the transport's logging interface. */
export function transportLogger(logger: Logger): TransportLogger {
  const t = logger.child({ component: 'transport' });
  return {
    debug: (message, fields) => t.debug(message, fields),
    info: (message, fields) => t.info(message, fields),
    warn: (message, fields) => t.warn(message, fields),
    error: (message, fields) => t.error(message, fields),
  };
}
