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
import { ChorusError } from '../shared/errors.ts';
import { camelCase, parseScalar, stripComment } from './config-syntax.ts';

export type SectionValue = string | number | boolean;

export interface SplitConfig {
  /** The file's text without the section (lines blanked, so line numbers stay right). */
  readonly rest: string;
  readonly alerts: Record<string, SectionValue> | undefined;
}

function invalid(file: string, message: string): ChorusError {
  return new ChorusError('CHORUS_CONFIG_INVALID', `${file}: ${message}`);
}

function scalar(text: string, file: string, lineNo: number): SectionValue {
  return parseScalar(text, (message) => invalid(file, `line ${lineNo}: ${message}`), { decimals: true, plainOnly: false });
}

function splitYaml(text: string, file: string): SplitConfig {
  const lines = text.split(/\r?\n/);
  let alerts: Record<string, SectionValue> | undefined;
  for (let i = 0; i < lines.length; i++) {
    const head = stripComment(lines[i]!).trimEnd();
    if (!/^alerts\s*:/.test(head)) continue;
    if (alerts !== undefined) throw invalid(file, `line ${i + 1}: alerts is set twice`);
    if (!/^alerts\s*:$/.test(head)) throw invalid(file, `line ${i + 1}: alerts must be a section of indented "key: value" lines`);
    alerts = {};
    lines[i] = '';
    for (let j = i + 1; j < lines.length; j++) {
      const raw = lines[j]!;
      const line = stripComment(raw);
      if (line.trim() === '') {
        lines[j] = '';
        continue;
      }
      if (!/^\s/.test(line)) break;
      const match = /^\s+([A-Za-z][A-Za-z0-9_-]*)\s*:(?:\s+(.*))?$/.exec(line.trimEnd());
      if (match === null) throw invalid(file, `line ${j + 1}: expected an indented "key: value" in the alerts section`);
      const key = camelCase(match[1]!);
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
    alerts[camelCase(k)] = v;
  }
  return { rest: JSON.stringify(rest), alerts };
}

/** Takes the `alerts` section out of a config file's text (`json`: the file is JSON). */
export function splitAlertsSection(text: string, file: string, json: boolean): SplitConfig {
  return json ? splitJson(text, file) : splitYaml(text, file);
}
