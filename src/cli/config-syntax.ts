// The lexical pieces of the config files' YAML subset, shared by the flat parser
// (config-file.ts) and the nested alerts section (config-sections.ts).

/** data-dir, data_dir and dataDir all name dataDir (PostgreSQL's names use underscores:
 * synchronous_commit, synchronous_standby_names). */
export function camelCase(key: string): string {
  return key.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Drops a `#` comment that starts the line or follows whitespace, outside quotes. */
export function stripComment(line: string): string {
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

export interface ScalarRules {
  /** Whether numbers may have a fractional part (thresholds in seconds do; flags do not). */
  readonly decimals: boolean;
  /** Whether `~`, `null` and YAML's lists, maps, anchors and block strings are refused. */
  readonly plainOnly: boolean;
}

/** A scalar: a double- or single-quoted string, true/false, a number, or a plain string. */
export function parseScalar(text: string, fail: (message: string) => Error, rules: ScalarRules): string | number | boolean {
  const v = text.trim();
  if (v.startsWith('"')) {
    try {
      const parsed: unknown = JSON.parse(v);
      if (typeof parsed === 'string') return parsed;
    } catch {
      // reported below
    }
    throw fail('bad double-quoted string');
  }
  if (v.startsWith("'")) {
    if (v.length < 2 || !v.endsWith("'")) throw fail('unterminated single-quoted string');
    return v.slice(1, -1).replace(/''/g, "'");
  }
  if (v === 'true') return true;
  if (v === 'false') return false;
  if ((rules.decimals ? /^-?\d+(\.\d+)?$/ : /^-?\d+$/).test(v)) return Number(v);
  if (v === '' || (rules.plainOnly && (v === '~' || v === 'null'))) throw fail('empty values are not supported');
  if (rules.plainOnly && /^[[{&*!|>]/.test(v)) throw fail('only plain scalars are supported (no lists, maps, anchors or block strings)');
  return v;
}
