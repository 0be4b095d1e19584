// The simulator's model of what the final state must be, built from the acknowledged writes
// alone and independently of how records were replicated. Every acknowledged write is an
// event (a dot); a later write at some member "observes" the events that member held when it
// ran (for versions: the siblings of the read whose token it carries). An event survives
// unless some write observed it; LWW keeps the greatest stamp instead. Comparing the converged
// state with this model checks that no acknowledged write was lost (versions, crdt), that
// every lost LWW write was counted, and that a deleted key never came back.
import {
  compareDots,
  compareStamps,
  dotText,
  encodeStamp,
  type CrdtRecord,
  type CrdtValue,
  type Dot,
  type FieldValue,
  type HlcStamp,
  type ReadView,
} from '../../src/core/mm/index.ts';
import { canonicalText } from '../../src/core/mm/codec.ts';

interface LwwWrite {
  readonly id: number;
  readonly key: string;
  readonly dot: Dot;
  readonly stamp: HlcStamp;
  readonly value: string | null;
  /** The record the writer's member held for the key (what it overwrote), if any. */
  readonly pred: Dot | null;
}

interface Created {
  readonly key: string;
  readonly dot: Dot;
  /** The dot's place, in the notation of crdtDots: `counter`, `set/"x"`, `map/"f"/register`... */
  readonly path: string;
  readonly stamp: HlcStamp;
  /** versions: the value; register: canonical JSON; set: the element. */
  readonly value: string;
  readonly inc: number;
  readonly dec: number;
}

export type CrdtSimOp =
  | { readonly type: 'counter'; readonly op: 'incr' | 'decr'; readonly by: number }
  | { readonly type: 'set'; readonly op: 'add' | 'remove'; readonly value: string }
  | { readonly type: 'register'; readonly op: 'set'; readonly value: string }
  | { readonly type: 'map'; readonly op: 'update'; readonly field: string; readonly value: CrdtSimOp }
  | { readonly type: 'map'; readonly op: 'remove'; readonly field: string };

const decoder = new TextDecoder();

export class Oracle {
  private readonly lww: LwwWrite[] = [];
  private readonly created = new Map<string, Created>();
  private readonly observed = new Set<string>();
  /** Problems noticed while recording (a dot the model never created, ...). */
  readonly problems: string[] = [];
  readonly keysTouched = new Set<string>();
  private readonly overwrittenReported = new Map<string, number>();

  // -------------------------------------------------------------------------------------------
  // Recording

  lwwWrite(id: number, key: string, dot: Dot, stamp: HlcStamp, value: string | null, pred: Dot | null): void {
    this.keysTouched.add(key);
    this.lww.push({ id, key, dot, stamp, value, pred });
  }

  /** versions: a put creates a sibling; both puts and deletes observe `observed`. */
  versionsWrite(key: string, dot: Dot, stamp: HlcStamp, value: string | null, observed: readonly Dot[]): void {
    this.keysTouched.add(key);
    for (const d of observed) this.observe(d);
    if (value !== null) this.created.set(dotText(dot), { key, dot, path: 'sibling', stamp, value, inc: 0, dec: 0 });
  }

  /** crdt: derives what the op observed from the record the member held before it (`before`),
   * following the documented semantics, and what it created. */
  crdtWrite(key: string, member: string, op: CrdtSimOp | 'delete', dot: Dot, stamp: HlcStamp, before: CrdtRecord | null): void {
    this.keysTouched.add(key);
    const values = before?.values ?? [];
    if (op === 'delete') {
      for (const v of values) for (const d of valueDots(v)) this.observe(d);
      return;
    }
    if (op.type === 'map') {
      const map = values.find((v) => v.type === 'map');
      const fields = map?.type === 'map' ? map.fields : [];
      if (op.op === 'remove') {
        for (const f of fields) if (f.name === op.field) for (const d of valueDots(f.value)) this.observe(d);
        return;
      }
      const inner = op.value;
      if (inner.type === 'map') throw new Error('nested map op');
      const field = fields.find((f) => f.name === op.field && f.value.type === inner.type)?.value;
      this.fieldOp(key, member, `map/${JSON.stringify(op.field)}/`, field, inner, dot, stamp);
      return;
    }
    const value = values.find((v) => v.type === op.type) as FieldValue | undefined;
    this.fieldOp(key, member, '', value, op, dot, stamp);
  }

  private fieldOp(key: string, member: string, prefix: string, value: FieldValue | undefined, op: CrdtSimOp, dot: Dot, stamp: HlcStamp): void {
    switch (op.type) {
      case 'counter': {
        let inc = 0;
        let dec = 0;
        for (const e of value?.type === 'counter' ? value.entries : []) {
          if (e.dot.member !== member) continue;
          const known = this.created.get(dotText(e.dot));
          if (known === undefined) this.problems.push(`counter entry ${dotText(e.dot)} of ${key} was never created by an acknowledged op`);
          inc += known?.inc ?? 0;
          dec += known?.dec ?? 0;
          this.observe(e.dot);
        }
        if (op.op === 'incr') inc += op.by;
        else dec += op.by;
        this.created.set(dotText(dot), { key, dot, path: `${prefix}counter`, stamp, value: '', inc, dec });
        return;
      }
      case 'set': {
        for (const e of value?.type === 'set' ? value.entries : []) if (e.element === op.value) for (const d of e.dots) this.observe(d);
        if (op.op === 'add') this.created.set(dotText(dot), { key, dot, path: `${prefix}set/${op.value}`, stamp, value: op.value, inc: 0, dec: 0 });
        return;
      }
      case 'register': {
        for (const e of value?.type === 'register' ? value.entries : []) this.observe(e.dot);
        this.created.set(dotText(dot), { key, dot, path: `${prefix}register`, stamp, value: op.value, inc: 0, dec: 0 });
        return;
      }
      case 'map':
        throw new Error('map op in a field');
    }
  }

  private observe(d: Dot): void {
    this.observed.add(dotText(d));
  }

  /** An ApplyResult reported these of its member's writes as lost to concurrent writes. */
  lwwOverwritten(dots: readonly Dot[]): void {
    for (const d of dots) this.overwrittenReported.set(dotText(d), (this.overwrittenReported.get(dotText(d)) ?? 0) + 1);
  }

  // -------------------------------------------------------------------------------------------
  // Checking

  /** Compares the converged state (as read through `view`, `raw`) with the model; returns
   * violations as `kind: text`. `overwriteCounters` is the sum of lwwOverwrites over members. */
  check(mode: 'lww' | 'versions' | 'crdt', view: (key: string) => ReadView, raw: (key: string) => unknown, overwriteCounters: number): string[] {
    const out = [...this.problems.map((p) => `model: ${p}`)];
    if (mode === 'lww') out.push(...this.checkLww(view, overwriteCounters));
    else {
      for (const key of [...this.keysTouched].sort()) {
        const expected = mode === 'versions' ? this.expectedVersions(key) : this.expectedCrdt(key);
        const actual = view(key);
        const actualText = mode === 'versions' ? versionsText(actual) : canonicalText(actual.mode === 'crdt' ? actual.value : null);
        if (expected === null && actual.found) out.push(`deleted-key-returned: ${key} was deleted by writes that observed every event, yet reads ${actualText}`);
        else if ((expected ?? 'null') !== actualText) out.push(`lost-or-phantom-write: ${key} expected ${expected ?? 'absent'} got ${actualText}`);
        if (mode === 'crdt') {
          const expectedDots = this.survivors(key).map((c) => `${dotText(c.dot)}@${c.path}`).sort();
          const rec = raw(key) as CrdtRecord | null;
          const actualDots = (rec === null ? [] : crdtRecordDots(rec)).sort();
          if (expectedDots.join(' ') !== actualDots.join(' ')) out.push(`crdt-dots: ${key} expected [${expectedDots.join(' ')}] got [${actualDots.join(' ')}]`);
        }
      }
    }
    return out;
  }

  private survivors(key: string): Created[] {
    return [...this.created.values()].filter((c) => c.key === key && !this.observed.has(dotText(c.dot))).sort((a, b) => compareDots(a.dot, b.dot));
  }

  private expectedVersions(key: string): string | null {
    const live = this.survivors(key).sort((a, b) => compareStamps(a.stamp, b.stamp) || compareDots(a.dot, b.dot));
    if (live.length === 0) return null;
    return live.map((c) => `${c.value}@${encodeStamp(c.stamp)}`).join(' | ');
  }

  private expectedCrdt(key: string): string | null {
    const live = this.survivors(key);
    if (live.length === 0) return null;
    const top = new Map<string, Created[]>();
    const fields = new Map<string, Map<string, Created[]>>();
    for (const c of live) {
      const m = /^map\/("(?:[^"\\]|\\.)*")\/(counter|set|register)/.exec(c.path);
      if (m === null) {
        const type = c.path.startsWith('set/') ? 'set' : c.path;
        top.set(type, [...(top.get(type) ?? []), c]);
      } else {
        const name = JSON.parse(m[1]!) as string;
        const byType = fields.get(name) ?? new Map<string, Created[]>();
        byType.set(m[2]!, [...(byType.get(m[2]!) ?? []), c]);
        fields.set(name, byType);
      }
    }
    const values = new Map<string, unknown>();
    for (const [type, cs] of top) values.set(type, fieldJson(type, cs));
    if (fields.size > 0) {
      const obj: Record<string, unknown> = {};
      for (const [name, byType] of fields) {
        if (byType.size !== 1) throw new Error('the workload never gives a field two types');
        const [[type, cs]] = [...byType] as [[string, Created[]]];
        Object.defineProperty(obj, name, { value: fieldJson(type, cs), enumerable: true });
      }
      values.set('map', obj);
    }
    if (values.size !== 1) throw new Error('the workload never gives a key two types');
    const [[type, value]] = [...values] as [[string, unknown]];
    return canonicalText({ type, value });
  }

  private checkLww(view: (key: string) => ReadView, overwriteCounters: number): string[] {
    const out: string[] = [];
    const byKey = new Map<string, LwwWrite[]>();
    for (const w of this.lww) byKey.set(w.key, [...(byKey.get(w.key) ?? []), w]);
    // Writes some later write was issued on top of, directly or through a chain: knowingly
    // overwritten. The rest that did not win were lost to concurrent writes.
    const ancestors = new Set<string>();
    const byDot = new Map(this.lww.map((w) => [dotText(w.dot), w]));
    for (const w of this.lww) {
      let p = w.pred;
      while (p !== null && !ancestors.has(dotText(p))) {
        ancestors.add(dotText(p));
        p = byDot.get(dotText(p))?.pred ?? null;
      }
    }
    const winners = new Set<string>();
    for (const [key, writes] of [...byKey].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const winner = writes.reduce((a, b) => ((compareStamps(a.stamp, b.stamp) || compareDots(a.dot, b.dot)) >= 0 ? a : b));
      winners.add(dotText(winner.dot));
      const actual = view(key);
      if (actual.mode !== 'lww') continue;
      const actualValue = actual.value === null ? null : decoder.decode(actual.value);
      if (winner.value === null) {
        // The tombstone itself may have been collected: absent is all a delete promises.
        if (actual.found) out.push(`deleted-key-returned: ${key} was last deleted (${encodeStamp(winner.stamp)}) yet reads ${actualValue}`);
      } else if (actualValue !== winner.value || actual.stamp !== encodeStamp(winner.stamp)) {
        out.push(`lww-winner: ${key} expected ${winner.value ?? 'absent'}@${encodeStamp(winner.stamp)} got ${actualValue ?? 'absent'}@${actual.stamp ?? '-'}`);
      }
    }
    let reported = 0;
    for (const [d, n] of this.overwrittenReported) {
      reported += n;
      const w = byDot.get(d);
      if (n > 1) out.push(`lww-overwrites: ${d} counted ${n} times`);
      if (w === undefined) out.push(`lww-overwrites: ${d} counted but never written`);
      else if (w.value === null) out.push(`lww-overwrites: delete ${d} counted (only values are)`);
      else if (winners.has(d)) out.push(`lww-overwrites: ${d} counted as lost but it won`);
    }
    for (const w of this.lww) {
      const d = dotText(w.dot);
      if (w.value !== null && !winners.has(d) && !ancestors.has(d) && !this.overwrittenReported.has(d)) {
        out.push(`lww-silent-loss: ${w.key}=${w.value} (${d}) lost to a concurrent write without being counted`);
      }
    }
    if (reported !== overwriteCounters) out.push(`lww-overwrites: members count ${overwriteCounters}, apply results reported ${reported}`);
    return out;
  }

  /** How many LWW writes were lost to concurrent writes, for the run summary. */
  get lwwLostCount(): number {
    return this.overwrittenReported.size;
  }
}

function fieldJson(type: string, cs: readonly Created[]): unknown {
  switch (type) {
    case 'counter':
      return cs.reduce((s, c) => s + c.inc - c.dec, 0);
    case 'set':
      return [...new Set(cs.map((c) => c.value))].sort().map((v) => JSON.parse(v) as unknown);
    case 'register': {
      const best = cs.reduce((a, b) => ((compareStamps(a.stamp, b.stamp) || compareDots(a.dot, b.dot)) >= 0 ? a : b));
      return JSON.parse(best.value) as unknown;
    }
    default:
      throw new Error(`type ${type}`);
  }
}

function versionsText(view: ReadView): string {
  if (view.mode !== 'versions' || !view.found) return 'null';
  return view.siblings.map((s) => `${decoder.decode(s.value)}@${s.stamp}`).join(' | ');
}

function valueDots(v: CrdtValue): Dot[] {
  if (v.type === 'map') return v.fields.flatMap((f) => valueDots(f.value));
  if (v.type === 'set') return v.entries.flatMap((e) => e.dots);
  return v.entries.map((e) => e.dot);
}

function crdtRecordDots(rec: CrdtRecord): string[] {
  const out: string[] = [];
  const field = (v: FieldValue, prefix: string): void => {
    if (v.type === 'set') for (const e of v.entries) for (const d of e.dots) out.push(`${dotText(d)}@${prefix}set/${e.element}`);
    else for (const e of v.entries) out.push(`${dotText(e.dot)}@${prefix}${v.type}`);
  };
  for (const v of rec.values) {
    if (v.type === 'map') for (const f of v.fields) field(f.value, `map/${JSON.stringify(f.name)}/`);
    else field(v, '');
  }
  return out;
}
