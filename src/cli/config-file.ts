// `chorus start --config FILE`: settings from a JSON file, or from a small YAML subset parsed
// here (no YAML package is installed). The subset, documented in docs/api.md:
//   - one `key: value` per line, at the top level only (no nesting, no lists, no anchors);
//   - `#` starts a comment at the beginning of a line or after whitespace;
//   - values are integers, true/false, or strings (optionally in single or double quotes;
//     double-quoted strings take the JSON escapes).
// Keys may be camelCase (dataDir), kebab-case (data-dir, as the command-line flags) or
// snake_case (data_dir).
import { readFileSync } from 'node:fs';
import { ChorusError } from '../shared/errors.ts';
import { splitAlertsSection } from './config-sections.ts';
import { camelCase, parseScalar, stripComment } from './config-syntax.ts';
import type { SectionValue } from './config-sections.ts';

export type ConfigValue = string | number | boolean;
export type ConfigRecord = Record<string, ConfigValue>;

function invalid(file: string, message: string): ChorusError {
  return new ChorusError('CHORUS_CONFIG_INVALID', `${file}: ${message}`);
}

function parseValue(text: string, file: string, lineNo: number): ConfigValue {
  return parseScalar(text, (message) => invalid(file, `line ${lineNo}: ${message}`), { decimals: false, plainOnly: true });
}

export function parseYamlSubset(text: string, file = 'config'): ConfigRecord {
  const out: ConfigRecord = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = stripComment(lines[i]!);
    if (line.trim() === '' || line.trim() === '---') continue;
    if (/^\s/.test(line)) throw invalid(file, `line ${lineNo}: nested values are not supported (top-level key: value only)`);
    const match = /^([A-Za-z][A-Za-z0-9_-]*)\s*:(?:\s+(.*))?$/.exec(line.trimEnd());
    if (match === null) throw invalid(file, `line ${lineNo}: expected "key: value"`);
    const key = camelCase(match[1]!);
    if (Object.hasOwn(out, key)) throw invalid(file, `line ${lineNo}: ${match[1]} is set twice`);
    out[key] = parseValue(match[2] ?? '', file, lineNo);
  }
  return out;
}

export function parseJsonConfig(text: string, file = 'config'): ConfigRecord {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw invalid(file, `not valid JSON: ${(error as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid(file, 'must hold a JSON object');
  const out: ConfigRecord = {};
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw invalid(file, `${k} must be a string, number or boolean`);
    out[camelCase(k)] = v;
  }
  return out;
}

/** Reads a config file: JSON when it ends in .json or its text starts with '{', else the YAML subset. */
export function loadConfigFile(file: string): ConfigRecord {
  return loadConfigFileSections(file).settings;
}

/** As loadConfigFile, with the nested `alerts` section (config-sections.ts) apart. */
export function loadConfigFileSections(file: string): { settings: ConfigRecord; alerts: Record<string, SectionValue> | undefined } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw invalid(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const json = file.endsWith('.json') || text.trimStart().startsWith('{');
  const { rest, alerts } = splitAlertsSection(text, file, json);
  return { settings: json ? parseJsonConfig(rest, file) : parseYamlSubset(rest, file), alerts };
}
