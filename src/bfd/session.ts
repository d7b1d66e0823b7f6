/**
 * One BFD session in asynchronous mode (RFC 5880 §6), the active role: it
 * sends from the start. No demand mode, no echo, no authentication.
 *
 * Timers follow §6.8.2-§6.8.4: a packet every max(our Desired Min TX, the
 * remote's Required Min RX), less 0 to 25 % of jitter (10 to 25 % with a
 * detect multiplier of 1); the session goes down when nothing came for the
 * remote's Detect Mult × max(our Required Min RX, its Desired Min TX).
 * While not Up we send at most once a second (§6.8.3); once Up we switch to
 * the configured interval with a Poll Sequence (§6.5).
 */
import type { Clock, Timer } from '../runtime/clock.js';
import { Diag, encodeControl, type BfdControlPacket, type BfdState } from './packet.js';

/** §6.8.3: not faster than once a second while the session is not Up. */
export const SLOW_TX_US = 1_000_000;

export interface BfdStateChange {
  readonly previous: BfdState;
  readonly state: BfdState;
  /** Our diagnostic: why the session went down (Diag). */
  readonly diag: number;
  /** The remote's diagnostic in the packet that caused the change (undefined on a time-out or a local stop). */
  readonly remoteDiag: number | undefined;
}

export interface BfdSessionOptions {
  readonly clock: Clock;
  readonly myDiscriminator: number;
  /** Our Desired Min TX once Up and our Required Min RX, in microseconds. */
  readonly intervalUs: number;
  readonly detectMult: number;
  readonly send: (packet: Buffer) => void;
  readonly onStateChange: (change: BfdStateChange) => void;
  /** [0, 1), for jitter. Default Math.random. */
  readonly random?: () => number;
}

export interface BfdSessionStatus {
  readonly state: BfdState;
  readonly remoteState: BfdState;
  readonly diag: number;
  readonly myDiscriminator: number;
  readonly remoteDiscriminator: number;
  /** What we send at now, and the time without a packet after which the session goes down (ms). */
  readonly txIntervalMs: number;
  readonly detectionTimeMs: number;
  readonly packetsIn: number;
  readonly packetsOut: number;
}

export class BfdSession {
  private state: BfdState = 'Down';
  private remoteState: BfdState = 'Down';
  private diag: number = Diag.None;
  private remoteDiscr = 0;
  /** §6.8.1: initialised to 1 (microsecond), so that we send before hearing anything. */
  private remoteMinRxUs = 1;
  private remoteDesiredMinTxUs = 0;
  private remoteDetectMult = 0;
  private desiredMinTxUs = SLOW_TX_US;
  private pollActive = false;
  private running = false;
  private silenced = false;
  private txTimer: Timer | undefined;
  private detectTimer: Timer | undefined;
  private lastTxAt: number | undefined;
  private packetsIn = 0;
  private packetsOut = 0;
  private readonly random: () => number;

  constructor(private readonly options: BfdSessionOptions) {
    this.random = options.random ?? Math.random;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // A first packet soon, not at once: sessions started together do not send in step.
    this.armTx(this.jittered(Math.min(this.txIntervalUs(), SLOW_TX_US)) / 1000 / 4);
  }

  /**
   * Ends the session. With `adminDown`, the remote is told first (state
   * AdminDown, diagnostic 7), so that it takes the session down without
   * blaming the path (RFC 5882 §3.2).
   */
  stop(adminDown: boolean): void {
    if (!this.running) return;
    if (adminDown) {
      this.setState('AdminDown', Diag.AdminDown, undefined);
      // Three copies: one lost on the way would leave the remote to its detection time.
      for (let i = 0; i < 3; i++) this.transmit(false);
    }
    this.running = false;
    this.txTimer?.cancel();
    this.detectTimer?.cancel();
    this.txTimer = undefined;
    this.detectTimer = undefined;
  }

  /**
   * Stops sending (and starts again) without changing state: the remote sees
   * us as dead after its detection time. For a daemon whose main thread has
   * stopped answering while this session still could.
   */
  silence(silenced: boolean): void {
    if (silenced === this.silenced) return;
    this.silenced = silenced;
    if (!silenced && this.running) this.armTx(0);
  }

  /** A packet for this session (demultiplexed by the caller, already checked by decodeControl). */
  receive(p: BfdControlPacket): void {
    if (!this.running) return;
    this.packetsIn++;
    const previousTx = this.txIntervalUs();
    this.remoteDiscr = p.myDiscriminator;
    this.remoteState = p.state;
    this.remoteMinRxUs = p.requiredMinRxUs;
    this.remoteDesiredMinTxUs = p.desiredMinTxUs;
    this.remoteDetectMult = p.detectMult;
    if (p.final && this.pollActive) this.pollActive = false;
    if (this.state === 'AdminDown') return;

    if (p.state === 'AdminDown') {
      if (this.state !== 'Down') this.setState('Down', Diag.NeighborSignaledDown, p.diag);
    } else if (this.state === 'Down') {
      if (p.state === 'Down') this.setState('Init', this.diag, p.diag);
      else if (p.state === 'Init') this.setState('Up', Diag.None, p.diag);
    } else if (this.state === 'Init') {
      if (p.state === 'Init' || p.state === 'Up') this.setState('Up', Diag.None, p.diag);
    } else if (p.state === 'Down') {
      this.setState('Down', Diag.NeighborSignaledDown, p.diag);
    }

    // §6.8.7: a Poll is answered at once with a Final, whatever the timer says.
    if (p.poll) this.transmit(true);
    // The remote asked for a different pace: the next packet keeps to it.
    else if (this.txIntervalUs() !== previousTx && this.txTimer !== undefined) this.rearmTx();
    this.armDetect();
  }

  status(): BfdSessionStatus {
    return {
      state: this.state,
      remoteState: this.remoteState,
      diag: this.diag,
      myDiscriminator: this.options.myDiscriminator,
      remoteDiscriminator: this.remoteDiscr,
      txIntervalMs: this.txIntervalUs() / 1000,
      detectionTimeMs: this.detectionTimeUs() / 1000,
      packetsIn: this.packetsIn,
      packetsOut: this.packetsOut,
    };
  }

  private setState(state: BfdState, diag: number, remoteDiag: number | undefined): void {
    const previous = this.state;
    this.diag = diag;
    if (state === previous) return;
    this.state = state;
    if (state === 'Up') {
      // The configured pace, announced with a Poll Sequence (§6.8.3); faster
      // takes effect at once on our side.
      this.desiredMinTxUs = this.options.intervalUs;
      this.pollActive = true;
      this.rearmTx();
    } else if (previous === 'Up') {
      this.desiredMinTxUs = SLOW_TX_US;
      this.pollActive = false;
    }
    this.options.onStateChange({ previous, state, diag, remoteDiag });
  }

  private txIntervalUs(): number {
    return Math.max(this.desiredMinTxUs, this.remoteMinRxUs);
  }

  private detectionTimeUs(): number {
    return this.remoteDetectMult * Math.max(this.options.intervalUs, this.remoteDesiredMinTxUs);
  }

  private jittered(us: number): number {
    // §6.8.7: 75 to 100 % of the interval; at most 90 % with a detect multiplier of 1.
    const top = this.options.detectMult === 1 ? 0.9 : 1;
    return us * (0.75 + (top - 0.75) * this.random());
  }

  private armTx(delayMs: number): void {
    this.txTimer?.cancel();
    this.txTimer = this.options.clock.setTimeout(() => {
      this.txTimer = undefined;
      if (!this.running) return;
      this.transmit(false);
      this.armTx(this.jittered(this.txIntervalUs()) / 1000);
    }, delayMs);
  }

  /** The next packet one (new) interval after the last one, or now if that is past. */
  private rearmTx(): void {
    if (!this.running) return;
    const since = this.lastTxAt === undefined ? Infinity : this.options.clock.now() - this.lastTxAt;
    this.armTx(Math.max(0, this.jittered(this.txIntervalUs()) / 1000 - since));
  }

  private armDetect(): void {
    this.detectTimer?.cancel();
    const ms = this.detectionTimeUs() / 1000;
    if (ms <= 0) return;
    this.detectTimer = this.options.clock.setTimeout(() => {
      this.detectTimer = undefined;
      if (!this.running) return;
      // §6.8.1: the remote's discriminator is forgotten with it.
      this.remoteDiscr = 0;
      this.remoteState = 'Down';
      if (this.state === 'Init' || this.state === 'Up') this.setState('Down', Diag.DetectionTimeExpired, undefined);
    }, ms);
  }

  private transmit(final: boolean): void {
    // §6.8.7: nothing periodic when the remote wants none (Required Min RX 0); a Final still goes.
    if (this.silenced || (!final && this.remoteMinRxUs === 0)) return;
    const packet: BfdControlPacket = {
      diag: this.diag,
      state: this.state,
      poll: this.pollActive && !final,
      final,
      cpi: false,
      auth: false,
      demand: false,
      multipoint: false,
      detectMult: this.options.detectMult,
      myDiscriminator: this.options.myDiscriminator,
      yourDiscriminator: this.remoteDiscr,
      desiredMinTxUs: this.desiredMinTxUs,
      requiredMinRxUs: this.options.intervalUs,
      requiredMinEchoRxUs: 0,
    };
    this.lastTxAt = this.options.clock.now();
    this.packetsOut++;
    this.options.send(encodeControl(packet));
  }
}
