export * from './types.ts';
export { Raft, applyConfigChange, quorumValue } from './raft.ts';
export { ImageAssembler } from './image-assembler.ts';
export type { RaftOptions, RaftBootState, RaftStatus, ProgressStatus, ConfigChange, LeaderChangeReason, Random } from './raft.ts';
export { describeMessage, describeReady, describeEntry } from './describe.ts';
export { InvariantError, assert } from './assert.ts';
