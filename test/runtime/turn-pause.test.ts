/**
 * setTurnPause (runtime/clock.ts): after a turn of the loop that read the
 * time, the thread sleeps, and what arrived meanwhile is taken in one poll.
 * A process of its own sends datagrams 5 ms apart; this one notes, for each,
 * the time it was handled. With a 40 ms pause they are handled in a few
 * groups; without, one by one.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { monotonicNow, setTurnPause, turnPausesTaken } from '../../src/runtime/clock.js';

const DATAGRAMS = 12;
const APART_MS = 5;

/** The sender: DATAGRAMS datagrams to the port, APART_MS apart (each sent when due, by its own clock). */
const SENDER = `
const dgram = require('node:dgram');
const socket = dgram.createSocket('udp4');
const port = Number(process.argv[1]);
const start = performance.now();
let sent = 0;
const next = () => {
  socket.send(String(sent), port, '127.0.0.1', () => {
    // When all are sent, how long the sending took (a loaded host stretches it).
    if (++sent === ${DATAGRAMS}) return socket.close(() => console.log(performance.now() - start));
    setTimeout(next, Math.max(0, start + sent * ${APART_MS} - performance.now()));
  });
};
next();
`;

/** The times (ms) at which this thread handled each datagram, in order, and how long the sender took to send them all. */
async function handledAt(): Promise<{ times: number[]; sentOverMs: number }> {
  const socket = dgram.createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const times: number[] = [];
  const all = new Promise<void>((done) =>
    socket.on('message', () => {
      // The handler reads the time as a check's would: the turn then ends in a pause.
      monotonicNow();
      times.push(performance.now());
      if (times.length === DATAGRAMS) done();
    }),
  );
  const sender = spawn(process.execPath, ['-e', SENDER, String(socket.address().port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  sender.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  try {
    await all;
  } finally {
    socket.close();
    if (sender.exitCode === null) await once(sender, 'exit');
  }
  return { times, sentOverMs: Number(out.trim()) };
}

/** Datagrams handled within 1 ms of the one before are taken as handled in one turn. */
function groups(times: readonly number[]): number {
  let n = 1;
  for (let i = 1; i < times.length; i++) if (times[i]! - times[i - 1]! > 1) n++;
  return n;
}

describe('setTurnPause', () => {
  afterEach(() => setTurnPause(0));

  it('takes what arrived during the pause in one poll, and without a pause each as it comes', async () => {
    setTurnPause(40);
    const sent = await handledAt();
    const paused = groups(sent.times);
    setTurnPause(0);
    const unpaused = groups((await handledAt()).times);
    // 12 datagrams over 55 ms (longer when the host is loaded: the sender says how long), a 40 ms
    // sleep after each turn that handled some: a poll per 40 ms of sending, one more if the first
    // comes alone and one for the last ones (2 to 4 over 55 ms).
    expect(sent.sentOverMs).toBeGreaterThanOrEqual(50);
    expect(paused).toBeGreaterThanOrEqual(2);
    expect(paused).toBeLessThanOrEqual(Math.ceil(sent.sentOverMs / 40) + 2);
    // The same datagrams without the pause: taken one by one (a busy host may join a few).
    expect(unpaused).toBeGreaterThanOrEqual(8);
  });

  it('sleeps after a short turn that read the time soon after the last one, not after a lone one, a long one or one that did not read it', async () => {
    // What is asserted is endTurn's decision (the count of sleeps), not the wall clock: on a
    // loaded host (CI runs the lab's guest beside this) a turn that did not sleep can take longer
    // than one that did. The pause is long, so that a host's hiccup does not turn a short turn
    // into a long one: "soon after" is within 2 * PAUSE, "short" under PAUSE.
    const PAUSE = 200;
    const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    /** The sleeps taken while `run` runs and two turns after it. */
    const sleepsOver = async (run: () => void | Promise<void>): Promise<number> => {
      const before = turnPausesTaken();
      await run();
      await turn();
      await turn();
      return turnPausesTaken() - before;
    };
    setTurnPause(PAUSE);
    // A lone turn that reads the time (the first since the pause was set): no sleep.
    expect(await sleepsOver(() => void monotonicNow())).toBe(0);
    // A second one soon after: a sleep, and the next turn starts after it (a sleep is at least
    // PAUSE; a loaded host only makes it longer).
    const t0 = performance.now();
    expect(await sleepsOver(() => void monotonicNow())).toBe(1);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(PAUSE - 5);
    // Turns that do not read it (monotonicNow's reading is kept for its own turn only): no sleep.
    expect(await sleepsOver(() => turn())).toBe(0);
    // A turn soon after the last that itself takes longer than the pause: no sleep (it found plenty to do).
    await turn();
    monotonicNow();
    await turn();
    expect(
      await sleepsOver(() => {
        const start = performance.now();
        monotonicNow();
        while (performance.now() - start < PAUSE + 10);
      }),
    ).toBe(0);
    // A turn that reads it long after the last (over twice the pause): no sleep.
    await new Promise((resolve) => setTimeout(resolve, 2 * PAUSE + 50));
    expect(await sleepsOver(() => void monotonicNow())).toBe(0);
  });
});
