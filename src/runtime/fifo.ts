/**
 * A first-in first-out queue over an array: shift() moves a head index
 * instead of moving every item, and the array is cut down once most of it
 * lies before the head, so neither end costs O(n). A shifted item is let go
 * at once.
 */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Lets every item go. */
  clear(): void {
    this.items = [];
    this.head = 0;
  }

  /** The oldest item, taken out; undefined when there is none. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
