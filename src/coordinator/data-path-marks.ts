/**
 * The firewall marks of data-path checks (`datapath-fwmark-base`): one per
 * checked server, held while the server is in its pool, each with an IPVS
 * firewall-mark service of its own whose one destination is that server
 * (ipvs/desired.ts, probeServiceFor). One allocator for the whole daemon, so
 * that no two servers of any services share a mark; a released mark is
 * reused last (a probe service being deleted is not handed out again at once).
 */
import { DATAPATH_FWMARK_COUNT } from '../config/types.js';
import { Fifo } from '../runtime/fifo.js';

export class DataPathMarks {
  private next = 0;
  /** Released marks, oldest first. */
  private readonly freed = new Fifo<number>();
  private held = 0;

  constructor(readonly base: number) {}

  /** A free mark, or undefined when every mark of the range is held. */
  acquire(): number | undefined {
    // Fresh marks first: a released one waits until the range is used up.
    if (this.next < DATAPATH_FWMARK_COUNT) {
      this.held++;
      return this.base + this.next++;
    }
    const mark = this.freed.shift();
    if (mark !== undefined) this.held++;
    return mark;
  }

  release(mark: number): void {
    this.held--;
    this.freed.push(mark);
  }

  /** Marks held now. */
  count(): number {
    return this.held;
  }

  /** Whether a firewall mark is in this range (probe services are pybal's own, whoever made them). */
  owns(mark: number): boolean {
    return mark >= this.base && mark < this.base + DATAPATH_FWMARK_COUNT;
  }
}
