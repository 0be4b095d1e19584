// The multi-master core: pure, deterministic, plain data in and out.
export * from './types.ts';
export * from './errors.ts';
export * from './hlc.ts';
export * from './lww.ts';
export * from './dvv.ts';
export * from './crdt.ts';
export * from './json.ts';
export * from './digest.ts';
export * from './records.ts';
export * from './replica.ts';
