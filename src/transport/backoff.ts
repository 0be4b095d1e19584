// Reconnect delays: exponential in the number of consecutive failures, capped, with jitter so
// that members restarting together do not dial in lockstep.

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): the capped exponential
 * base scaled into [base/2, base) by `random` (uniform in [0, 1)). Keeping half the base as a
 * floor ensures jitter never turns into a tight retry loop.
 */
export function backoffDelayMs(attempt: number, backoffMsMin: number, backoffMsMax: number, random: () => number): number {
  const exponent = Math.min(attempt, 30);
  const base = Math.min(backoffMsMax, backoffMsMin * 2 ** exponent);
  return jitterMs(base, random);
}

export function jitterMs(baseMs: number, random: () => number): number {
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.max(1, Math.round(baseMs / 2 + (baseMs / 2) * r));
}
