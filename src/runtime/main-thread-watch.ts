/**
 * For a worker thread that must not outlive a stuck main thread (BFD, BGP):
 * the main thread says it is alive a few times a second (`alive()`); once it
 * has been silent for `silenceAfterMs`, `silence(true)` is called, and at the
 * next `alive()`, `silence(false)` with how long the silence lasted.
 */
export class MainThreadWatch {
  private lastAlive = performance.now();
  private silencedAt: number | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly silenceAfterMs: number,
    private readonly silence: (on: boolean, forMs: number) => void,
  ) {
    this.timer = setInterval(() => this.check(), 100);
  }

  alive(): void {
    this.lastAlive = performance.now();
    if (this.silencedAt === undefined) return;
    const forMs = Math.round(this.lastAlive - this.silencedAt);
    this.silencedAt = undefined;
    this.silence(false, forMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const quiet = performance.now() - this.lastAlive;
    if (this.silencedAt !== undefined || quiet <= this.silenceAfterMs) return;
    this.silencedAt = this.lastAlive;
    this.silence(true, Math.round(quiet));
  }
}
