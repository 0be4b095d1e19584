/** A broken invariant: a bug in Chorus, never an operating condition. The member stops. */
export class InvariantError extends Error {
  readonly code = 'CHORUS_INVARIANT';
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
