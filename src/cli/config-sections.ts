// The one nested section of a config file: `alerts` (docs/observability.md). The rest of the
// file stays flat and goes to the parser in config-file.ts; this takes the section out first.
//
//   YAML subset:                      JSON:
//     alerts:                           {"alerts": {"lagSecondsMax": 10, "webhook": "http://..."}}
//       lag-seconds-max: 10
//       webhook: http://127.0.0.1:9000/hook
//
// In YAML the section is the line `alerts:` and the indented `key: value` lines after it (blank
// and comment lines may be mixed in); values are numbers (decimals allowed), true/false, or
// strings (quoted as in the rest of the file). Keys may be kebab-, snake- or camelCase.
import { ChorusError } from '../node/errors.ts';

export type SectionValue = string | number | boolean;

export interface SplitConfig {
  /** The file's text without the section (lines blanked, so line numbers stay right). */
  readonly rest: string;
  readonly alerts: Record<string, SectionValue> | undefined;
}

function invalid(file: string, message: string): ChorusError {
  return new ChorusError('CHORUS_CONFIG_INVALID', `${file}: ${message}`);
}

function camel(key: string): string {
  return key.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Drops a `#` comment that starts the line or follows whitespace, outside quotes. */
function withoutComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== null) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i);
    }
  }
  return line;
}

function scalar(text: string, file: string, lineNo: number): SectionValue {
  const v = text.trim();
  if (v.startsWith('"')) {
    try {
      const parsed: unknown = JSON.parse(v);
      if (typeof parsed === 'string') return parsed;
    } catch {
      // reported below
    }
    throw invalid(file, `line ${lineNo}: bad double-quoted string`);
  }
  if (v.startsWith("'")) {
    if (v.length < 2 || !v.endsWith("'")) throw invalid(file, `line ${lineNo}: unterminated single-quoted string`);
    return v.slice(1, -1).replace(/''/g, "'");
  }
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (v === '') throw invalid(file, `line ${lineNo}: empty values are not supported`);
  return v;
}

function splitYaml(text: string, file: string): SplitConfig {
  const lines = text.split(/\r?\n/);
  let alerts: Record<string, SectionValue> | undefined;
  for (let i = 0; i < lines.length; i++) {
    const head = withoutComment(lines[i]!).trimEnd();
    if (!/^alerts\s*:/.test(head)) continue;
    if (alerts !== undefined) throw invalid(file, `line ${i + 1}: alerts is set twice`);
    if (!/^alerts\s*:$/.test(head)) throw invalid(file, `line ${i + 1}: alerts must be a section of indented "key: value" lines`);
    alerts = {};
    lines[i] = '';
    for (let j = i + 1; j < lines.length; j++) {
      const raw = lines[j]!;
      const line = withoutComment(raw);
      if (line.trim() === '') {
        lines[j] = '';
        continue;
      }
      if (!/^\s/.test(line)) break;
      const match = /^\s+([A-Za-z][A-Za-z0-9_-]*)\s*:(?:\s+(.*))?$/.exec(line.trimEnd());
      if (match === null) throw invalid(file, `line ${j + 1}: expected an indented "key: value" in the alerts section`);
      const key = camel(match[1]!);
      if (Object.hasOwn(alerts, key)) throw invalid(file, `line ${j + 1}: alerts.${match[1]} is set twice`);
      alerts[key] = scalar(match[2] ?? '', file, j + 1);
      lines[j] = '';
      i = j;
    }
  }
  return { rest: lines.join('\n'), alerts };
}

function splitJson(text: string, file: string): SplitConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The flat parser reports the syntax error with its own message.
    return { rest: text, alerts: undefined };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || !Object.hasOwn(doc, 'alerts')) return { rest: text, alerts: undefined };
  const { alerts: section, ...rest } = doc as Record<string, unknown>;
  if (typeof section !== 'object' || section === null || Array.isArray(section)) throw invalid(file, 'alerts must be a JSON object');
  const alerts: Record<string, SectionValue> = {};
  for (const [k, v] of Object.entries(section)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw invalid(file, `alerts.${k} must be a string, number or boolean`);
    alerts[camel(k)] = v;
  }
  return { rest: JSON.stringify(rest), alerts };
}

/** Takes the `alerts` section out of a config file's text (`json`: the file is JSON). */
export function splitAlertsSection(text: string, file: string, json: boolean): SplitConfig {
  return json ? splitJson(text, file) : splitYaml(text, file);
}
