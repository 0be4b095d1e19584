// A FIFO of encoded frames with O(1) amortised push/shift and a running byte total.

export class FrameQueue {
  private items: Buffer[] = [];
  /** Index of the oldest live item; items before it are consumed slots awaiting compaction. */
  private head = 0;
  /** Invariant: the sum of the lengths of items[head..]. */
  private byteCount = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.byteCount;
  }

  push(frame: Buffer): void {
    this.items.push(frame);
    this.byteCount += frame.length;
  }

  /** The i-th oldest frame, or undefined. */
  peek(i: number): Buffer | undefined {
    return this.items[this.head + i];
  }

  /** Removes the n oldest frames (n <= length). */
  discard(n: number): void {
    for (let i = 0; i < n; i += 1) {
      const frame = this.items[this.head + i];
      if (frame !== undefined) this.byteCount -= frame.length;
    }
    this.head += n;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      // Compact once the dead prefix dominates, so memory tracks the live queue.
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.byteCount = 0;
  }
}
