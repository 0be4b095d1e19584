// What the core has to say until the next ready: messages (to send before or after the ready's
// write), and reads confirmed or failed.
import type { Message, ReadFailure, ReadState } from './types.ts';

export interface OutboxContents {
  readonly messagesBeforePersist: Message[];
  readonly messages: Message[];
  readonly readStates: ReadState[];
  readonly readFailures: ReadFailure[];
}

export class Outbox {
  private beforePersist: Message[] = [];
  private afterPersist: Message[] = [];
  private readStates: ReadState[] = [];
  private readFailures: ReadFailure[] = [];

  /** `before`: may leave before the ready's write is durable; `after`: only once it is. */
  send(m: Message, when: 'before' | 'after'): void {
    if (when === 'before') this.beforePersist.push(m);
    else this.afterPersist.push(m);
  }

  readConfirmed(state: ReadState): void {
    this.readStates.push(state);
  }

  readFailed(failure: ReadFailure): void {
    this.readFailures.push(failure);
  }

  isEmpty(): boolean {
    return this.beforePersist.length === 0 && this.afterPersist.length === 0 && this.readStates.length === 0 && this.readFailures.length === 0;
  }

  /** Everything collected so far, for a ready; the outbox starts empty again. */
  take(): OutboxContents {
    const contents = { messagesBeforePersist: this.beforePersist, messages: this.afterPersist, readStates: this.readStates, readFailures: this.readFailures };
    this.beforePersist = [];
    this.afterPersist = [];
    this.readStates = [];
    this.readFailures = [];
    return contents;
  }
}
