// The client's protocol handling against a scripted socket: seq matching,
// errors-only batching, chunking, timeouts on the injected clock, socket
// errors, dump serialisation. The lab tests run the same client on the real kernel.
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IpvsClient, type BatchItem, type NetlinkSocketLike } from '../../src/ipvs/client.js';
import { encodeIpvsMessage, formatDestKey, formatServiceKey, ipvsRequests } from '../../src/ipvs/codec.js';
import type { IpvsOp } from '../../src/ipvs/diff.js';
import type { Logger } from '../../src/runtime/logger.js';
import { IpvsError } from '../../src/ipvs/errors.js';
import { NLMSG_DONE, NLMSG_ERROR, NLM_F, createAttrWriter, decodeMessages, encodeGenlMessage, putU16, writtenBytes, type NetlinkMessage } from '../../src/ipvs/netlink-framing.js';
import { ManualClock, flushAsync } from '../../src/runtime/clock.js';
import { dest, svc } from './fixtures.js';

const FAMILY = 0x2a;

/** Kernel-style replies. */
function errorReply(req: NetlinkMessage, errno: number): Buffer {
  const out = Buffer.alloc(16 + 4 + 16);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(NLMSG_ERROR, 4);
  out.writeUInt32LE(req.seq, 8);
  out.writeInt32LE(-errno, 16);
  out.writeUInt32LE(16 + req.payload.length, 20);
  out.writeUInt16LE(req.type, 24);
  out.writeUInt16LE(req.flags, 26);
  out.writeUInt32LE(req.seq, 28);
  return out;
}
function doneReply(seq: number, errno = 0): Buffer {
  const out = Buffer.alloc(20);
  out.writeUInt32LE(20, 0);
  out.writeUInt16LE(NLMSG_DONE, 4);
  out.writeUInt16LE(NLM_F.MULTI, 6);
  out.writeUInt32LE(seq, 8);
  out.writeInt32LE(-errno, 16);
  return out;
}
function familyReply(seq: number): Buffer {
  const w = createAttrWriter();
  putU16(w, 1, FAMILY); // CTRL_ATTR_FAMILY_ID
  return encodeGenlMessage(16, 0, seq, 0, { cmd: 1, version: 2 }, writtenBytes(w));
}
function dataReply(seq: number, cmd: number, attrs: Buffer, multi: boolean): Buffer {
  return encodeGenlMessage(FAMILY, multi ? NLM_F.MULTI : 0, seq, 0, { cmd, version: 1 }, attrs);
}

type Responder = (msg: NetlinkMessage) => Buffer[] | undefined;

class ScriptedSocket extends EventEmitter implements NetlinkSocketLike {
  readonly sent: NetlinkMessage[][] = [];
  refs = 0;
  closed = false;
  constructor(public respond: Responder, private readonly rcvbuf = 1 << 20) {
    super();
  }
  send(msg: Uint8Array, _options: undefined, callback: (error?: import('netlink').ErrnoException) => void): void {
    const msgs = decodeMessages(Buffer.from(msg));
    this.sent.push(msgs);
    setImmediate(() => {
      callback();
      for (const m of msgs) for (const reply of this.respond(m) ?? []) this.emit('message', reply);
    });
  }
  ref(): void {
    this.refs++;
  }
  unref(): void {
    this.refs = 0;
  }
  close(): void {
    this.closed = true;
  }
  getRecvBufferSize(): number {
    return this.rcvbuf;
  }
}

const clients: IpvsClient[] = [];
function makeClient(socket: ScriptedSocket, extra: Partial<ConstructorParameters<typeof IpvsClient>[0]> = {}): { client: IpvsClient; clock: ManualClock } {
  const clock = new ManualClock();
  const client = new IpvsClient({ clock, socket, timeoutMs: 1000, ...extra });
  clients.push(client);
  return { client, clock };
}
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

/** Items whose destination port says what the kernel answers: port 0 = ok, else that errno. */
function items(errnos: number[]): BatchItem[] {
  return errnos.map((errno, i) => ({ request: ipvsRequests.newDest(svc(80).key, dest(i, { port: errno })), object: `item ${i}` }));
}
/** The destination port of a NEW_DEST built by items(). */
function destPort(m: NetlinkMessage): number {
  // genl header 4, SERVICE nest (36 bytes for an IPv4 key), DEST nest header 4, ADDR attr 8, PORT attr header 4.
  return m.payload.readUInt16BE(4 + 36 + 4 + 8 + 4);
}
const answerBatch: Responder = (m) => {
  if (m.type === 16) return [familyReply(m.seq), errorReply(m, 0)];
  const errno = destPort(m);
  if (errno) return [errorReply(m, errno)];
  return m.flags & NLM_F.ACK ? [errorReply(m, 0)] : undefined;
};

describe('IpvsClient protocol handling', () => {
  it('resolves the family once and addresses IPVS requests to it', async () => {
    const socket = new ScriptedSocket(answerBatch);
    const { client } = makeClient(socket);
    expect(await client.resolveFamily()).toBe(FAMILY);
    await client.batch(items([0]));
    expect(socket.sent[0]?.[0]).toMatchObject({ type: 16, flags: NLM_F.REQUEST | NLM_F.ACK });
    expect(socket.sent[1]?.[0]?.type).toBe(FAMILY);
  });

  it('sends a batch in one sendmsg, asks only the last for an ACK, and matches each error to its request', async () => {
    const socket = new ScriptedSocket(answerBatch);
    const { client } = makeClient(socket);
    await client.resolveFamily();
    const results = await client.batch(items([0, 17, 0, 0, 34, 0]));
    expect(socket.sent).toHaveLength(2);
    const sent = socket.sent[1] ?? [];
    expect(sent.map((m) => (m.flags & NLM_F.ACK) !== 0)).toEqual([false, false, false, false, false, true]);
    expect(new Set(sent.map((m) => m.seq)).size).toBe(6);
    expect(results.map((r) => r && [r.code, r.command, r.object])).toEqual([
      undefined,
      ['EEXIST', 'IPVS_CMD_NEW_DEST', 'item 1'],
      undefined,
      undefined,
      ['ERANGE', 'IPVS_CMD_NEW_DEST', 'item 4'],
      undefined,
    ]);
    expect(client.counters).toMatchObject({ requests: 7, sends: 2, kernelErrors: 2 });
  });

  it('never sends a request the codec refuses, and sends the others', async () => {
    const socket = new ScriptedSocket(answerBatch);
    const { client } = makeClient(socket);
    await client.resolveFamily();
    const bad = { request: ipvsRequests.newDest(svc(80).key, dest(0, { address: '2001:db8::6' })), object: 'bad' };
    const results = await client.batch([...items([0]), bad, ...items([0])]);
    expect(socket.sent[1]).toHaveLength(2);
    expect(results.map((r) => r?.message)).toEqual([undefined, 'IPVS_CMD_NEW_DEST bad: EINVAL (not sent: not an IPv4 address: "2001:db8::6")', undefined]);
  });

  it('treats a failing last request as the end of its batch', async () => {
    const socket = new ScriptedSocket(answerBatch);
    const { client } = makeClient(socket);
    await client.resolveFamily();
    const results = await client.batch(items([0, 0, 22]));
    expect(results.map((r) => r?.code)).toEqual([undefined, undefined, 'EINVAL']);
  });

  it('splits a batch so that every reply of one send fits the receive buffer', async () => {
    const socket = new ScriptedSocket(answerBatch, 1536 * 3);
    const { client } = makeClient(socket);
    await client.resolveFamily();
    const results = await client.batch(items([0, 0, 0, 2, 0, 0, 0]));
    expect(socket.sent.slice(1).map((s) => s.length)).toEqual([3, 3, 1]);
    expect(results.map((r) => r?.code)).toEqual([undefined, undefined, undefined, 'ENOENT', undefined, undefined, undefined]);
  });

  it("apply() makes each change's request as its send is written, not all before the first, and names a failed one", async () => {
    // Each send holds at most 3 replies; the ops are read through a proxy that notes which were looked at.
    const socket = new ScriptedSocket(answerBatch, 1536 * 3);
    const { client } = makeClient(socket);
    await client.resolveFamily();
    const ops: IpvsOp[] = [0, 0, 0, 0, 17, 0, 0].map((errno, i) => ({ op: 'new-dest', key: svc(80).key, dest: dest(i, { port: errno }) }));
    const read: number[] = [];
    const watched = new Proxy(ops, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) read.push(Number(key));
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const done = client.apply(watched);
    // Written and sent, nothing answered yet: only the first send's changes were made into requests.
    await new Promise((resolve) => setImmediate(resolve));
    expect(socket.sent.slice(1).map((s) => s.length)).toEqual([3]);
    expect(new Set(read)).toEqual(new Set([0, 1, 2]));
    const results = await done;
    expect(socket.sent.slice(1).map((s) => s.length)).toEqual([3, 3, 1]);
    expect(results.map((r) => r && [r.code, r.command, r.object])).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      ['EEXIST', 'IPVS_CMD_NEW_DEST', `${formatServiceKey(svc(80).key)} -> ${formatDestKey(dest(4, { port: 17 }))}`],
      undefined,
      undefined,
    ]);
  });

  it('asks for every ACK in ackEach mode', async () => {
    const socket = new ScriptedSocket(answerBatch);
    const { client } = makeClient(socket, { ackEach: true });
    await client.resolveFamily();
    const results = await client.batch(items([0, 3, 0]));
    expect(socket.sent[1]?.every((m) => (m.flags & NLM_F.ACK) !== 0)).toBe(true);
    expect(results.map((r) => r?.code)).toEqual([undefined, 'ESRCH', undefined]);
  });

  it('times out on the injected clock, reports the outcome as unknown, then ignores the late answer', async () => {
    let silent = true;
    const late: NetlinkMessage[] = [];
    const socket = new ScriptedSocket((m) => {
      if (m.type === 16) return [familyReply(m.seq), errorReply(m, 0)];
      if (silent) {
        late.push(m);
        return undefined;
      }
      return answerBatch(m);
    });
    const { client, clock } = makeClient(socket);
    await client.resolveFamily();
    const pending = client.batch(items([0, 0]));
    await flushAsync();
    expect(clock.nextDeadline()).toBe(1000);
    await clock.advanceAsync(1000);
    const results = await pending;
    expect(results.map((r) => r && [r.code, r.message])).toEqual([
      ['ETIMEDOUT', 'IPVS_CMD_NEW_DEST item 0: ETIMEDOUT (outcome unknown)'],
      ['ETIMEDOUT', 'IPVS_CMD_NEW_DEST item 1: ETIMEDOUT (outcome unknown)'],
    ]);
    // The kernel's answer arrives late: nobody waits for it any more, and nothing breaks.
    const last = late.at(-1);
    if (last) socket.emit('message', errorReply(last, 0));
    silent = false;
    expect(await client.batch(items([0, 17]))).toEqual([undefined, expect.objectContaining({ code: 'EEXIST' })]);
    expect(clock.pendingCount()).toBe(0);
  });

  it('takes an answer that came in while the loop was held, though the timeout expired meanwhile', async () => {
    const held: NetlinkMessage[] = [];
    const socket = new ScriptedSocket((m) => {
      if (m.type === 16) return [familyReply(m.seq), errorReply(m, 0)];
      held.push(m);
      return undefined;
    });
    const { client, clock } = makeClient(socket);
    await client.resolveFamily();
    const pending = client.batch(items([0, 0]));
    await flushAsync();
    // The kernel's answer is read in the poll phase of the turn where the expired timer also runs.
    setImmediate(() => {
      for (const m of held.splice(0)) for (const reply of answerBatch(m) ?? []) socket.emit('message', reply);
    });
    clock.advance(1000);
    expect(await pending).toEqual([undefined, undefined]);
  });

  it('fails pending requests on a socket error and keeps working', async () => {
    let hold = true;
    const socket = new ScriptedSocket((m) => (m.type === 16 ? [familyReply(m.seq), errorReply(m, 0)] : hold ? undefined : answerBatch(m)));
    const { client } = makeClient(socket);
    await client.resolveFamily();
    const pending = client.batch(items([0]));
    await flushAsync();
    socket.emit('error', Object.assign(new Error('recvmsg failed'), { name: 'ErrnoException' as const, errno: 105, code: 'ENOBUFS', syscall: 'recvmsg' }));
    expect((await pending)[0]).toMatchObject({ code: 'ENOBUFS' });
    hold = false;
    expect(await client.batch(items([0]))).toEqual([undefined]);
    expect(client.counters.transportErrors).toBe(1);
  });

  it('reports a failed send as a typed error', async () => {
    const socket = new ScriptedSocket(answerBatch);
    const { client } = makeClient(socket);
    await client.resolveFamily();
    socket.send = (_msg, _o, callback) => setImmediate(() => callback(Object.assign(new Error('sendmsg: EPERM'), { name: 'ErrnoException' as const, errno: 1, code: 'EPERM', syscall: 'sendmsg' })));
    await expect(client.request(ipvsRequests.getInfo(), 'info')).rejects.toMatchObject({ name: 'IpvsError', code: 'EPERM', command: 'IPVS_CMD_GET_INFO' });
  });

  it('collects a dump across datagrams, one dump at a time, and maps an error carried by DONE', async () => {
    const order: string[] = [];
    const socket = new ScriptedSocket((m) => {
      if (m.type === 16) return [familyReply(m.seq), errorReply(m, 0)];
      order.push(`sent ${m.seq}`);
      // Two daemons for GET_DAEMON; ENOENT in DONE for GET_SERVICE dumps.
      if (m.payload[0] === 11) {
        // IPVS_CMD_ATTR_DAEMON { STATE } only: enough for the dump, not for decoding.
        const d = (state: number): Buffer => Buffer.from([0x0c, 0, 3, 0, 8, 0, 1, 0, state, 0, 0, 0]);
        return [dataReply(m.seq, 9, d(1), true), Buffer.concat([dataReply(m.seq, 9, d(2), true), doneReply(m.seq)])];
      }
      return [doneReply(m.seq, 2)];
    });
    const { client } = makeClient(socket);
    await client.resolveFamily();
    const both = Promise.allSettled([client.dump(ipvsRequests.dumpDaemons(), 'daemons'), client.listServices()]);
    const [daemons, services] = await both;
    expect(daemons.status === 'fulfilled' && daemons.value.length).toBe(2);
    expect(services).toMatchObject({ status: 'rejected', reason: { code: 'ENOENT', command: 'IPVS_CMD_GET_SERVICE', object: 'all services' } });
    expect(socket.sent.slice(1).map((s) => s.length)).toEqual([1, 1]);
    expect(order).toHaveLength(2);
    expect(services.status === 'rejected' && services.reason).toBeInstanceOf(IpvsError);
  });

  it('times out on silence, not on length: a dump that keeps arriving for longer than the timeout completes', async () => {
    const d = (state: number): Buffer => Buffer.from([0x0c, 0, 3, 0, 8, 0, 1, 0, state, 0, 0, 0]);
    let dumpSeq = -1;
    const socket = new ScriptedSocket((m) => {
      if (m.type === 16) return [familyReply(m.seq), errorReply(m, 0)];
      dumpSeq = m.seq;
      return [dataReply(m.seq, 9, d(1), true)];
    });
    const { client, clock } = makeClient(socket);
    await client.resolveFamily();
    const dump = client.dump(ipvsRequests.dumpDaemons(), 'daemons');
    await flushAsync();
    // A part every 800 ms for 4 s (the timeout is 1 s), then the end.
    for (let part = 2; part <= 6; part++) {
      await clock.advanceAsync(800);
      socket.emit('message', dataReply(dumpSeq, 9, d(part), true));
    }
    await clock.advanceAsync(800);
    socket.emit('message', doneReply(dumpSeq));
    expect(await dump).toHaveLength(6);
    // Silence for the timeout still fails.
    const silent = client.dump(ipvsRequests.dumpDaemons(), 'daemons');
    const failed = silent.catch((e: unknown) => e);
    await flushAsync();
    await clock.advanceAsync(1_000);
    expect(await failed).toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('reads a dump of many destinations at once, then decodes it in slices, every one in order, skipping one it cannot read', async () => {
    const key = svc(80).key;
    const count = 2_000;
    /** A dest dump reply's attributes: the DEST nest of a NEW_DEST request (its SERVICE nest is ignored). */
    const destAttrs = (i: number): Buffer => encodeIpvsMessage(FAMILY, 0, 0, ipvsRequests.newDest(key, dest(i)), false).subarray(20);
    // As the kernel sends a dump: datagrams of at most 32 KB, NLMSG_DONE in the last; here one a turn.
    const datagramsOf = (replies: Buffer[]): Buffer[] => {
      const out: Buffer[] = [];
      let current: Buffer[] = [];
      let bytes = 0;
      for (const r of replies) {
        if (bytes + r.length > 32 * 1024) {
          out.push(Buffer.concat(current));
          current = [];
          bytes = 0;
        }
        current.push(r);
        bytes += r.length;
      }
      out.push(Buffer.concat(current));
      return out;
    };
    let received = 0;
    let datagrams = 0;
    const socket: ScriptedSocket = new ScriptedSocket((m) => {
      if (m.type === 16) return [familyReply(m.seq), errorReply(m, 0)];
      const replies = Array.from({ length: count }, (_, i) => dataReply(m.seq, 2, i === 7 ? Buffer.from([4, 0, 99, 0]) : destAttrs(i), true));
      const out = datagramsOf([...replies, doneReply(m.seq)]);
      datagrams = out.length;
      const next = (i: number): void => {
        const datagram = out[i];
        if (datagram === undefined) return;
        received++;
        socket.emit('message', datagram);
        setImmediate(() => next(i + 1));
      };
      setImmediate(() => next(0));
      return [];
    });
    const warnings: string[] = [];
    const logger = { warn: (_o: unknown, message: string) => void warnings.push(message) } as unknown as Logger;
    // Every look at the slice's clock finds 1 ms gone: a slice ends at its first look.
    let nowMs = 0;
    let looks = 0;
    const { client } = makeClient(socket, { logger, slicing: { budgetMs: 0, now: () => (looks++, (nowMs += 1)) } });
    await client.resolveFamily();
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    tick();
    // For each reply decoded: the datagrams received by then, and the turn.
    const at: { received: number; turn: number }[] = [];
    let dests;
    try {
      dests = await client.mapDests(key, (d) => {
        at.push({ received, turn });
        return d;
      });
    } finally {
      ticking = false;
    }
    expect(dests.map((d) => d.address)).toEqual(Array.from({ length: count }, (_, i) => dest(i).address).filter((_, i) => i !== 7));
    expect(warnings).toEqual([`skipped an undecodable destination of ${formatServiceKey(key)}`]);
    expect(datagrams).toBeGreaterThan(5);
    // The whole dump was read before decoding began (decoding while it arrived slowed the reading)...
    expect(at[0]?.received).toBe(datagrams);
    // ...and no turn decoded more than a slice's first steps: 64 light ones (one reply each)
    // before the first look at the clock, so that 2,000 took some 30 turns.
    const perTurn = new Map<number, number>();
    for (const { turn: t } of at) perTurn.set(t, (perTurn.get(t) ?? 0) + 1);
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(64);
    expect(perTurn.size).toBeGreaterThanOrEqual(Math.floor(count / 64));
    // listDests is the same path.
    expect((await client.listDests(key)).length).toBe(count - 1);
  });

  it('decodes a small dump (a service of 10) without a look at the clock, in the turn it arrives', async () => {
    const key = svc(80).key;
    const destAttrs = (i: number): Buffer => encodeIpvsMessage(FAMILY, 0, 0, ipvsRequests.newDest(key, dest(i)), false).subarray(20);
    const socket: ScriptedSocket = new ScriptedSocket((m) => {
      if (m.type === 16) return [familyReply(m.seq), errorReply(m, 0)];
      return [Buffer.concat([...Array.from({ length: 10 }, (_, i) => dataReply(m.seq, 2, destAttrs(i), true)), doneReply(m.seq)])];
    });
    // The daemon's own clock (runtime/clock.ts readMonotonic), watched: a slice of no budget ends at its first look.
    const { client } = makeClient(socket, { slicing: { budgetMs: 0 } });
    await client.resolveFamily();
    const reads = vi.spyOn(performance, 'now');
    try {
      const dests = await client.listDests(key);
      expect(dests.map((d) => d.address)).toEqual(Array.from({ length: 10 }, (_, i) => dest(i).address));
      expect(reads).not.toHaveBeenCalled();
      // A large one still looks (the test above: in slices); 100 here, with the first look after 64.
      const big: ScriptedSocket = new ScriptedSocket((m) => {
        if (m.type === 16) return [familyReply(m.seq), errorReply(m, 0)];
        return [Buffer.concat([...Array.from({ length: 100 }, (_, i) => dataReply(m.seq, 2, destAttrs(i), true)), doneReply(m.seq)])];
      });
      const { client: other } = makeClient(big, { slicing: { budgetMs: 0 } });
      await other.resolveFamily();
      reads.mockClear();
      expect(await other.listDests(key)).toHaveLength(100);
      expect(reads).toHaveBeenCalled();
    } finally {
      reads.mockRestore();
    }
  });
});

