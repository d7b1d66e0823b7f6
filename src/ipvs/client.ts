/**
 * The only netlink I/O of the IPVS layer: one generic netlink socket, the
 * IPVS family resolved once, every exchange with a timeout, one exchange at a
 * time (the kernel allows one dump per socket, and replies must not mix).
 *
 * Batching: many requests go out in one sendmsg. By default only the last
 * request of a batch asks for an ACK; the kernel handles the messages of one
 * send in order and answers every failed one with its own NLMSG_ERROR (seq =
 * that request's), so when the last ACK arrives every earlier error has
 * arrived too, and a request without an error succeeded. This costs one
 * sendmsg and (when nothing fails) one recvmsg per batch. `ackEach` asks for
 * every ACK instead, at the cost of one recvmsg per request.
 */
import { createRequire } from 'node:module';
import type { ErrnoException } from 'netlink/dist/raw.js';
import { setAnswerTimeout, type Clock, type Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { errorMessage } from '../runtime/errors.js';
import { sliced, type SliceOptions } from '../runtime/sliced.js';
import type { IpFamily } from './address.js';
import {
  decodeDaemonReply,
  decodeDestReply,
  decodeInfoReply,
  decodeServiceReply,
  decodeTimeoutsReply,
  appendIpvsMessage,
  encodeIpvsMessage,
  formatServiceKey,
  ipvsRequests,
  type IpvsRequest,
} from './codec.js';
import { CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_CMD_GETFAMILY, GENL_ID_CTRL, IPVS_GENL_NAME, NETLINK_GENERIC, ipvsCmdName } from './constants.js';
import { opObject, requestForOp, type IpvsOp } from './diff.js';
import { EINVAL, EIO, ENOBUFS, ETIMEDOUT, IpvsError } from './errors.js';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  createAttrWriter,
  decodeAttrs,
  decodeDonePayload,
  decodeErrorPayload,
  decodeGenl,
  decodeMessages,
  DumpReplies,
  getU16,
  putCString,
  setAckFlag,
  writtenBytes,
  type NetlinkMessage,
} from './netlink-framing.js';
import type { IpvsInfo, IpvsTimeouts, KernelDest, KernelService, ServiceKey, SyncDaemon, SyncState } from './types.js';

/**
 * The raw socket alone: the package's index loads every netlink family it
 * knows (nl80211, rtnetlink...), 0.1 s on a host, near a second in the lab
 * guest. And require()d, not imported: an ES module's import of a CommonJS
 * file has Node parse that file for its export names first
 * (cjs-module-lexer, itself compiled at that moment), 0.1 s of a profiled
 * start in the lab guest.
 */
const { RawNetlinkSocket } = createRequire(import.meta.url)('netlink/dist/raw.js') as typeof import('netlink/dist/raw.js');

/** A request in a batch, with the object named in its error if it fails. */
export interface BatchItem {
  readonly request: IpvsRequest;
  readonly object: string;
}

/** The items of a batch, each made when it is needed (see IpvsClient.apply). */
interface LazyBatch {
  readonly length: number;
  request(index: number): IpvsRequest;
  /** What the request is about, for its error. */
  object(index: number): string;
}

/** Per item: undefined when it succeeded, else why it failed. */
export type BatchResult = (IpvsError | undefined)[];

/** What the manager needs from the kernel; the client implements it, tests fake it. */
export interface IpvsKernel {
  listServices(): Promise<KernelService[]>;
  listDests(key: ServiceKey): Promise<KernelDest[]>;
  /** A service's destinations, each turned by `each` into what the caller keeps as it is decoded. */
  mapDests<T>(key: ServiceKey, each: (dest: KernelDest) => T): Promise<T[]>;
  /** Applies the operations in order (batched); one result per operation. */
  apply(ops: readonly IpvsOp[]): Promise<BatchResult>;
}

export interface IpvsClientOptions {
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Deadline of one exchange (a dump, a request, or one chunk of a batch). Default 5000. */
  readonly timeoutMs?: number;
  /** SO_RCVBUF (the kernel caps it at 2 x net.core.rmem_max). Default 4 MiB. */
  readonly recvBufferSize?: number;
  /** SO_SNDBUF. Default 1 MiB. */
  readonly sendBufferSize?: number;
  /** Upper bound of the bytes of one sendmsg. Default 64 KiB. */
  readonly maxBatchBytes?: number;
  /** The socket; default a NETLINK_GENERIC RawNetlinkSocket from the netlink package. Tests pass a scripted one. */
  readonly socket?: NetlinkSocketLike;
  /** Ask for an ACK for every request of a batch (default false: errors only, plus the last ACK). */
  readonly ackEach?: boolean;
  /**
   * At most this many requests per sendmsg. Default: as many as the receive
   * buffer holds replies for (SO_RCVBUF / REPLY_TRUESIZE_BOUND), since the
   * kernel answers a whole send before we can read anything.
   */
  readonly maxRequestsPerSend?: number;
  /** How dump replies are decoded in slices (tests shrink the budget); runtime/sliced.ts defaults. */
  readonly slicing?: SliceOptions;
}

export interface IpvsClientCounters {
  /** IPVS requests sent (each message of a batch counts). */
  requests: number;
  /** sendmsg calls. */
  sends: number;
  /** Datagrams received. */
  receives: number;
  /** Requests the kernel refused. */
  kernelErrors: number;
  /** Socket errors (ENOBUFS...) and timeouts. */
  transportErrors: number;
}

/** The part of the netlink package's RawNetlinkSocket the client uses. */
export interface NetlinkSocketLike {
  send(msg: Uint8Array, options: undefined, callback: (error?: ErrnoException) => void): void;
  on(event: 'message', listener: (msg: Buffer) => void): unknown;
  on(event: 'truncatedMessage', listener: (msg: Buffer) => void): unknown;
  on(event: 'error', listener: (err: ErrnoException) => void): unknown;
  ref(): void;
  unref(): void;
  close(): void;
  getRecvBufferSize(): number;
}

/** Handles the messages of one exchange; returns true once the exchange is complete. */
type Handler = (msg: NetlinkMessage) => boolean;

interface Exchange {
  readonly seqs: readonly number[];
  readonly handler: Handler;
  readonly fail: (error: Error) => void;
  /** When its last message arrived (or it was sent): the timeout counts from there. */
  progressAtMs: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** Replies a dump's decode takes before its first look at the clock (see decodeEach). */
const DECODE_FIRST_LOOK = 64;

/**
 * Receive-buffer bytes one reply (an ACK, or an error that echoes its request)
 * may take. Measured on 6.1: about 770 each, so 425984 bytes held 500 error
 * replies and not 700. Twice that leaves a margin. Overflowing is not an
 * option: the netlink addon aborts the process on a recvmsg ENOBUFS.
 */
export const REPLY_TRUESIZE_BOUND = 1536;

export class IpvsClient implements IpvsKernel {
  readonly counters: IpvsClientCounters = { requests: 0, sends: 0, receives: 0, kernelErrors: 0, transportErrors: 0 };
  private readonly socket: NetlinkSocketLike;
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly slicing: SliceOptions | undefined;
  private readonly timeoutMs: number;
  private readonly maxBatchBytes: number;
  private readonly ackEach: boolean;
  private readonly maxRequestsPerSend: number;
  private readonly bySeq = new Map<number, Exchange>();
  private nextSeq = 1;
  private familyId = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** Use createIpvsClient, which also resolves the family. */
  constructor(options: IpvsClientOptions) {
    this.clock = options.clock;
    this.logger = options.logger;
    this.slicing = options.slicing;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxBatchBytes = options.maxBatchBytes ?? 64 * 1024;
    this.ackEach = options.ackEach ?? false;
    this.socket =
      options.socket ??
      new RawNetlinkSocket(NETLINK_GENERIC, {
        recvBufferSize: options.recvBufferSize ?? 4 * 1024 * 1024,
        sendBufferSize: options.sendBufferSize ?? 1024 * 1024,
      });
    this.socket.unref();
    this.maxRequestsPerSend =
      options.maxRequestsPerSend ?? Math.max(1, Math.floor(this.socket.getRecvBufferSize() / REPLY_TRUESIZE_BOUND));
    this.socket.on('message', (buf) => this.receive(buf));
    this.socket.on('truncatedMessage', () => this.transportFailure(EIO, 'truncated netlink message'));
    // Socket errors the addon reports arrive here (with no listener they would be thrown).
    // A recvmsg ENOBUFS never does: netlink@0.3.0 aborts the process inside its native
    // callback first, which is why a send never carries more requests than the receive
    // buffer has room to answer (maxRequestsPerSend).
    this.socket.on('error', (err: ErrnoException) => this.transportFailure(err.errno > 0 ? err.errno : -err.errno || EIO, err.message));
  }

  /** Resolves the IPVS generic netlink family (ENOENT when ip_vs is not loaded). */
  async resolveFamily(): Promise<number> {
    const request: IpvsRequest = { cmd: CTRL_CMD_GETFAMILY, dump: false, writeAttrs: (w) => putCString(w, CTRL_ATTR_FAMILY_NAME, IPVS_GENL_NAME) };
    let replies;
    try {
      replies = await this.serialize(() => this.exchangeDo(GENL_ID_CTRL, request, 'CTRL_CMD_GETFAMILY', IPVS_GENL_NAME));
    } catch (error) {
      if (error instanceof IpvsError && error.code === 'ENOENT') {
        throw new IpvsError(error.errno, 'CTRL_CMD_GETFAMILY', IPVS_GENL_NAME, 'this kernel has no IPVS: is the ip_vs module loaded?');
      }
      throw error;
    }
    for (const reply of replies) {
      const id = decodeAttrs(decodeGenl(reply.payload).attrs).get(CTRL_ATTR_FAMILY_ID);
      if (id) this.familyId = getU16('family id', id);
    }
    if (!this.familyId) throw new IpvsError(EIO, 'CTRL_CMD_GETFAMILY', IPVS_GENL_NAME, 'no family id in the reply');
    return this.familyId;
  }

  get family(): number {
    return this.familyId;
  }

  async listServices(): Promise<KernelService[]> {
    const replies = await this.dump(ipvsRequests.dumpServices(), 'all services');
    return this.decodeEach(replies, decodeServiceReply, 'service');
  }

  listDests(key: ServiceKey): Promise<KernelDest[]> {
    return this.mapDests(key, (dest) => dest);
  }

  /**
   * A service's destinations, each turned into what the caller keeps as it
   * is decoded: the decoded destination (its counters bigints) dies young,
   * instead of 10,000 of them piling up over the decode's slices.
   */
  async mapDests<T>(key: ServiceKey, each: (dest: KernelDest) => T): Promise<T[]> {
    const object = formatServiceKey(key);
    const replies = await this.dump(ipvsRequests.dumpDests(key), object);
    const family: IpFamily = key.family;
    return this.decodeEach(replies, (attrs) => each(decodeDestReply(attrs, family)), `destination of ${object}`);
  }

  async info(): Promise<IpvsInfo> {
    const [reply] = await this.request(ipvsRequests.getInfo(), 'info');
    if (!reply) throw new IpvsError(EIO, 'IPVS_CMD_GET_INFO', 'info', 'no reply');
    return decodeInfoReply(decodeGenl(reply.payload).attrs);
  }

  async timeouts(): Promise<IpvsTimeouts> {
    const [reply] = await this.request(ipvsRequests.getTimeouts(), 'timeouts');
    if (!reply) throw new IpvsError(EIO, 'IPVS_CMD_GET_CONFIG', 'timeouts', 'no reply');
    return decodeTimeoutsReply(decodeGenl(reply.payload).attrs);
  }

  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    await this.request(ipvsRequests.setTimeouts(t), 'timeouts');
  }

  async daemons(): Promise<SyncDaemon[]> {
    const replies = await this.dump(ipvsRequests.dumpDaemons(), 'sync daemons');
    return this.decodeEach(replies, decodeDaemonReply, 'sync daemon');
  }

  async startDaemon(d: SyncDaemon): Promise<void> {
    await this.request(ipvsRequests.newDaemon(d), `${d.state} sync daemon`);
  }

  async stopDaemon(state: SyncState): Promise<void> {
    await this.request(ipvsRequests.delDaemon(state), `${state} sync daemon`);
  }

  /** Zeroes the counters of one service, or of every service. */
  async zero(key?: ServiceKey): Promise<void> {
    await this.request(ipvsRequests.zero(key), key ? formatServiceKey(key) : 'all services');
  }

  /** A do request that may answer with data (GET_INFO, GET_CONFIG, GET_SERVICE) or just an ACK. */
  request(request: IpvsRequest, object: string): Promise<NetlinkMessage[]> {
    return this.serialize(() => this.exchangeDo(this.familyId, request, ipvsCmdName(request.cmd), object));
  }

  /** A dump: every reply message until NLMSG_DONE (their attributes, in DumpReplies). */
  dump(request: IpvsRequest, object: string): Promise<DumpReplies> {
    const command = ipvsCmdName(request.cmd);
    return this.serialize(
      () =>
        new Promise<DumpReplies>((resolve, reject) => {
          const seq = this.takeSeq();
          const out = new DumpReplies();
          this.start([seq], encodeIpvsMessage(this.familyId, seq, 0, request, false), command, object, reject, (msg) => {
            if (msg.type === NLMSG_DONE || msg.type === NLMSG_ERROR) {
              const errno = msg.type === NLMSG_DONE ? decodeDonePayload(msg.payload) : decodeErrorPayload(msg.payload).errno;
              if (errno) reject(this.kernelError(errno, command, object));
              else resolve(out);
              return true;
            }
            if (msg.type === this.familyId) out.add(msg.payload);
            return false;
          });
        }),
    );
  }

  /**
   * Sends many do requests, a few sendmsg calls in all, and reports each
   * one's outcome. A failed request does not stop the ones after it.
   */
  batch(items: readonly BatchItem[]): Promise<BatchResult> {
    return this.batchOf({ length: items.length, request: (i) => items[i]!.request, object: (i) => items[i]!.object });
  }

  /**
   * batch() of the changes: each request is made as its send is written, and
   * the text naming its object only for a request that fails. Made all at
   * once, the 4,000 changes that a cold start of 1,000 services handed over
   * in one go held the event loop for half a second in the lab guest.
   */
  apply(ops: readonly IpvsOp[]): Promise<BatchResult> {
    return this.batchOf({ length: ops.length, request: (i) => requestForOp(ops[i]!), object: (i) => opObject(ops[i]!) });
  }

  private batchOf(items: LazyBatch): Promise<BatchResult> {
    return this.serialize(async () => {
      const results: BatchResult = new Array<IpvsError | undefined>(items.length).fill(undefined);
      let next = 0;
      while (next < items.length) {
        // Every message of one send is written into one buffer: no allocation per request.
        const w = createAttrWriter(Math.min(this.maxBatchBytes, 64 * 1024));
        const seqs: number[] = [];
        const indexes: number[] = [];
        let lastStart = 0;
        while (next < items.length && seqs.length < this.maxRequestsPerSend) {
          const seq = this.nextSeq;
          const mark = w.len;
          let msgStart: number;
          let request: IpvsRequest | undefined;
          try {
            request = items.request(next);
            msgStart = appendIpvsMessage(w, this.familyId, seq, 0, request, this.ackEach);
          } catch (error) {
            // A value the codec refuses (not an address, a name too long) is never sent.
            w.len = mark;
            results[next] = new IpvsError(EINVAL, request === undefined ? 'request' : ipvsCmdName(request.cmd), items.object(next), `not sent: ${errorMessage(error)}`);
            next++;
            continue;
          }
          if (seqs.length > 0 && w.len > this.maxBatchBytes) {
            w.len = mark;
            break;
          }
          this.takeSeq();
          seqs.push(seq);
          indexes.push(next);
          lastStart = msgStart;
          next++;
        }
        if (seqs.length === 0) continue;
        // Only the last message asks for an ACK (see the top of this file), unless ackEach.
        if (!this.ackEach) setAckFlag(w.buf, lastStart);
        await this.sendChunk(items, indexes, seqs, writtenBytes(w), results);
      }
      return results;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new IpvsError(EIO, 'close', 'socket', 'client closed'));
    this.socket.close();
  }

  // ---- internals ----

  private sendChunk(items: LazyBatch, indexes: number[], seqs: number[], datagram: Buffer, results: BatchResult): Promise<void> {
    const last = seqs[seqs.length - 1] ?? 0;
    const indexBySeq = new Map(seqs.map((seq, i) => [seq, indexes[i] ?? -1]));
    let answered = 0;
    return new Promise<void>((resolve, reject) => {
      this.start(seqs, datagram, 'batch', `${seqs.length} requests`, reject, (msg) => {
        if (msg.type !== NLMSG_ERROR) return false;
        const { errno } = decodeErrorPayload(msg.payload);
        const index = indexBySeq.get(msg.seq) ?? -1;
        if (errno && index >= 0) results[index] = this.kernelError(errno, ipvsCmdName(items.request(index).cmd), items.object(index));
        answered++;
        const done = this.ackEach ? answered === seqs.length : msg.seq === last;
        if (done) resolve();
        return done;
      });
    }).catch((error: unknown) => {
      // The whole send is in doubt (timeout, socket error): report it on every request not already failed.
      const e = error instanceof IpvsError ? error : new IpvsError(EIO, 'batch', '', errorMessage(error));
      for (const index of indexes) {
        if (results[index]) continue;
        results[index] = new IpvsError(e.errno, ipvsCmdName(items.request(index).cmd), items.object(index), 'outcome unknown');
      }
    });
  }

  /** A do request to a family (IPVS, or nlctrl to resolve it), with its ACK. */
  private exchangeDo(familyId: number, request: IpvsRequest, command: string, object: string): Promise<NetlinkMessage[]> {
    return new Promise<NetlinkMessage[]>((resolve, reject) => {
      const seq = this.takeSeq();
      const out: NetlinkMessage[] = [];
      this.start([seq], encodeIpvsMessage(familyId, seq, 0, request, true), command, object, reject, (reply) => {
        if (reply.type === NLMSG_ERROR) {
          const { errno } = decodeErrorPayload(reply.payload);
          if (errno) reject(this.kernelError(errno, command, object));
          else resolve(out);
          return true;
        }
        out.push(reply);
        return false;
      });
    });
  }

  /** Registers an exchange, sends its messages (one datagram, one sendmsg) and arms its timeout. */
  private start(seqs: number[], datagram: Buffer, command: string, object: string, reject: (e: Error) => void, handler: Handler): void {
    if (this.closed) {
      reject(new IpvsError(EIO, command, object, 'client closed'));
      return;
    }
    let timer: Timer | undefined;
    const finish = (): void => {
      timer?.cancel();
      for (const s of seqs) this.bySeq.delete(s);
      if (this.bySeq.size === 0) this.socket.unref();
    };
    const exchange: Exchange = {
      progressAtMs: this.clock.now(),
      seqs,
      handler: (msg) => {
        const done = handler(msg);
        if (done) finish();
        return done;
      },
      fail: (error) => {
        finish();
        reject(error);
      },
    };
    for (const s of seqs) this.bySeq.set(s, exchange);
    this.socket.ref();
    // The timeout is for silence, not for the whole exchange: a dump of
    // 40,000 servers that keeps arriving is not cut off after 5 s (a cut dump
    // also leaves the kernel busy with it, and the next one gets EBUSY).
    // An answer already waiting when the time comes still wins (setAnswerTimeout).
    const expire = (): void => {
      const silentMs = this.clock.now() - exchange.progressAtMs;
      if (silentMs < this.timeoutMs) {
        timer = setAnswerTimeout(this.clock, expire, this.timeoutMs - silentMs);
        return;
      }
      this.counters.transportErrors++;
      exchange.fail(new IpvsError(ETIMEDOUT, command, object, `no answer within ${this.timeoutMs} ms`));
    };
    timer = setAnswerTimeout(this.clock, expire, this.timeoutMs);
    this.counters.requests += seqs.length;
    this.counters.sends++;
    this.socket.send(datagram, undefined, (err) => {
      if (err) {
        this.counters.transportErrors++;
        exchange.fail(new IpvsError(err.errno > 0 ? err.errno : -err.errno || EIO, command, object, `send: ${err.message}`));
      }
    });
  }

  private receive(buf: Buffer): void {
    this.counters.receives++;
    let msgs: NetlinkMessage[];
    try {
      msgs = decodeMessages(buf);
    } catch (error) {
      this.logger?.warn({ err: error }, 'undecodable netlink datagram ignored');
      return;
    }
    let nowMs: number | undefined;
    for (const msg of msgs) {
      const exchange = this.bySeq.get(msg.seq);
      if (!exchange) continue; // a late answer to an exchange that timed out
      exchange.progressAtMs = nowMs ??= this.clock.now();
      try {
        exchange.handler(msg);
      } catch (error) {
        exchange.fail(new IpvsError(EIO, 'receive', '', errorMessage(error)));
      }
    }
  }

  private transportFailure(errno: number, detail: string): void {
    this.counters.transportErrors++;
    this.logger?.warn({ errno, detail }, 'netlink socket error; pending IPVS requests fail');
    this.failAll(new IpvsError(errno || ENOBUFS, 'socket', '', detail));
  }

  private failAll(error: IpvsError): void {
    for (const exchange of new Set(this.bySeq.values())) exchange.fail(error);
  }

  private kernelError(errno: number, command: string, object: string): IpvsError {
    this.counters.kernelErrors++;
    return new IpvsError(errno, command, object);
  }

  /**
   * Decodes a dump's replies in slices (runtime/sliced.ts), once the dump is
   * read: the periodic resync dumps every destination, and decoding 10,000
   * of them in one go held the event loop for almost a second in the lab
   * guest, long enough to delay a BGP KEEPALIVE. Not while it arrives: the
   * netlink socket reads up to 32 datagrams a turn, so decoding in the
   * receive callback held the loop for thousands (main-loop stalls over
   * 100 ms doubled in the guest), and decoding slices between them took
   * turns from the reading (in one loaded CI run a resync's dump of a
   * service being programmed then read the growing list for 14 s). Each
   * datagram is let go once its replies are decoded. A step is light (one
   * reply): the clock is first looked at after DECODE_FIRST_LOOK of them, so
   * that a dump of a small service, the common case, reads it not at all (a
   * clock read is a system call in the lab guest: a stats reading of 1,000
   * services of 10 read it some 3,000 times here).
   */
  private decodeEach<T>(replies: DumpReplies, decode: (attrs: Buffer) => T, what: string): Promise<T[]> {
    return sliced(this.decodeSteps(replies, decode, what), { firstLookSteps: DECODE_FIRST_LOOK, ...this.slicing });
  }

  private *decodeSteps<T>(replies: DumpReplies, decode: (attrs: Buffer) => T, what: string): Generator<void, T[], undefined> {
    const out: T[] = [];
    for (let attrs = replies.take(); attrs !== undefined; attrs = replies.take()) {
      try {
        out.push(decode(attrs));
      } catch (error) {
        // One entry we cannot represent (set by hand with a newer ipvsadm, say) must not hide the others.
        this.logger?.warn({ err: error }, `skipped an undecodable ${what}`);
      }
      yield;
    }
    return out;
  }

  private takeSeq(): number {
    const seq = this.nextSeq;
    this.nextSeq = this.nextSeq >= 0xfffffff0 ? 1 : this.nextSeq + 1;
    return seq;
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

/** Opens the socket and resolves the IPVS family. Throws IpvsError ENOENT when IPVS is not in the kernel. */
export async function createIpvsClient(options: IpvsClientOptions): Promise<IpvsClient> {
  const client = new IpvsClient(options);
  try {
    await client.resolveFamily();
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}
