// Issue 11: a pool edit reaches the kernel while a periodic resync dumps a
// large table, and that resync neither reverts it nor calls it drift.
//
// The daemon in director1 with one service of 20,000 servers (127/8
// addresses, local in the director's namespace, which IPVS takes as real
// servers), no monitors, `ipvs-resync-interval = 1` (the manager stretches it
// to 20 times a dump, some tens of seconds here) and --debug, whose lines say
// when a resync starts dumping and when the write loop merges its dump. From
// a second before each resync is due until its merge line the test edits one
// server's weight in the pool file after another (servers the dump reads
// first, so that it holds their old weights); one server is edited by hand with
// `ipvsadm -e` meanwhile. Then, after one more whole resync:
//   - every edit was acknowledged (the daemon's line, logged once the kernel
//     answered), some of them while the dump was still reading (before the
//     time of the start line plus the "read in N ms" of the merge line; over
//     one socket, a write would wait for the dump's end);
//   - the kernel has each edited weight (ipvsadm -Ln), and the log edited each
//     server once: no resync put an old weight back;
//   - the only drift line is the hand edit's, which is repaired.
// Nothing here is timed: the figures are bench:pools' (docs/benchmarks.md).
import { renameSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, poolLine } from './pybal-lab.js';

const SERVERS = 20_000;
/** Edits per resync at most once its dump has begun (one every EDIT_EVERY_MS from EDIT_LEAD_MS before it is due until it merges). */
const EDITS_PER_RESYNC = 16;
const EDIT_EVERY_MS = 250;
const EDIT_LEAD_MS = 1_000;
const RESYNCS_WITH_EDITS = 2;
/** The manager's RESYNC_TIME_SHARE (src/ipvs/manager.ts): the next resync comes this many times a dump's cost after a start. */
const RESYNC_TIME_SHARE = 20;
/** A resync comes every 20 dumps of 20,000 servers: about a minute in a slow guest. */
const RESYNC_WAIT_MS = 240_000;

/** 127.20.0.1 onwards, 250 per third octet. */
const hosts = Array.from({ length: SERVERS }, (_, i) => `127.${20 + Math.floor(i / 62_500)}.${Math.floor((i % 62_500) / 250)}.${(i % 250) + 1}`);

describe('e2e: pool edits while a periodic resync dumps 20,000 servers', () => {
  let lab: Lab;
  let conf: E2eConfig;
  let pybal: E2ePybal;
  let vip: string;
  const weights = new Map<string, number>(hosts.map((h) => [h, 10]));
  /** Edits made, in order. */
  const edits: { host: string; weight: number }[] = [];
  const handEdited = hosts[5]!;

  const writePool = (): void => {
    const path = conf.poolFile('big');
    writeFileSync(`${path}.new`, hosts.map((host) => poolLine({ host, weight: weights.get(host) ?? 10 })).join('\n') + '\n');
    renameSync(`${path}.new`, path);
  };
  // The log's complete lines, split once each (the start logs 20,000 lines at debug; the guest is slow).
  const seen: string[] = [];
  let parsedTo = 0;
  const lines = (): string[] => {
    const text = pybal.log();
    const end = text.lastIndexOf('\n') + 1;
    if (end > parsedTo) {
      seen.push(...text.slice(parsedTo, end - 1).split('\n'));
      parsedTo = end;
    }
    return seen;
  };
  /** Index of the first line from `from` on that matches. */
  const lineIndex = (pattern: RegExp, from = 0): number => {
    const all = lines();
    for (let i = from; i < all.length; i++) if (pattern.test(all[i]!)) return i;
    return -1;
  };
  const waitForLine = (pattern: RegExp, from: number, what: string, timeoutMs = RESYNC_WAIT_MS): Promise<number> =>
    waitFor(async () => {
      const i = lineIndex(pattern, from);
      return i >= 0 ? i : undefined;
    }, { timeoutMs, intervalMs: 50, what });
  /** The daemon's time on a log line (local time), in ms. */
  const timeOf = (line: string): number => {
    const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3}) /.exec(line);
    if (m === null) throw new Error(`no time on the log line ${JSON.stringify(line)}`);
    const [y, mo, d, h, mi, sec, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
    return new Date(y, mo - 1, d, h, mi, sec, ms).getTime();
  };
  const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const ackOf = (host: string, weight: number): RegExp => new RegExp(`IPVS: edit server TCP ${escape(vip)}:80 -> ${escape(host)}:80: .* => route weight ${weight}$`);
  /** The kernel's weight of each server of the service (one ipvsadm dump). */
  const kernelWeights = async (): Promise<Map<string, number>> => {
    const r = await lab.execOk('director', ['ipvsadm', '-Ln', '-t', `${vip}:80`]);
    const out = new Map<string, number>();
    for (const line of r.stdout.split('\n')) {
      const m = /^\s+->\s+([\d.]+):80\s+\S+\s+(\d+)/.exec(line);
      if (m) out.set(m[1]!, Number(m[2]));
    }
    return out;
  };

  beforeAll(async () => {
    lab = await startLab({ realServers: 1, forwarding: 'dr', router: 'none', families: [4] });
    conf = new E2eConfig(lab);
    vip = lab.addr.vips[0]!.v4!;
    writePool();
    conf.write([{ name: 'big', scheduler: 'wrr', extra: ['monitors = []'] }], { bgp: false, globalExtra: ['ipvs-resync-interval = 1'] });
    pybal = E2ePybal.start(lab, conf.file, { extraArgs: ['--debug'] });
    await waitFor(async () => ((await kernelWeights()).size === SERVERS ? true : undefined), { timeoutMs: 180_000, intervalMs: 2_000, what: `${SERVERS} servers in IPVS` });
  }, 240_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it(
    'applies every edit made during the resyncs\' dumps, reverts none, calls none drift, and still repairs a hand edit',
    async () => {
      // From the end of the pool: the kernel puts a new server at the head of
      // its list, so a dump reads the last added first, and these are read
      // before the edits that follow land (the dump holds the old weight).
      let next = SERVERS - 1;
      let editedDuringDump = 0;
      const dumping = /IPVS: resync: dumping/;
      const merging = /IPVS: resync: merging/;
      // When the next resync is due, as the manager reckons it (runtime/time-share.ts): a start
      // plus RESYNC_TIME_SHARE times the shorter of the last two dumps (their `read in` on the
      // merge lines). The period changes with each dump's speed: two starts in a row said
      // what it had been, and edits begun from that were over before the next resync.
      const readOf = (merged: number): number => Number(/read in (\d+) ms/.exec(lines()[merged]!)?.[1]);
      const first = await waitForLine(dumping, lines().length, 'a resync to start');
      let previousRead = readOf(await waitForLine(merging, first, 'that resync to merge'));
      let lastStart = await waitForLine(dumping, first + 1, 'the next resync to start');
      let lastRead = readOf(await waitForLine(merging, lastStart, 'that resync to merge'));
      for (let round = 0; round < RESYNCS_WITH_EDITS; round++) {
        if (round === 1) {
          // By hand, before the resync that finds it (or the one after).
          await lab.execOk('director', ['ipvsadm', '-e', '-t', `${vip}:80`, '-r', `${handEdited}:80`, '-g', '-w', '99']);
        }
        // Edits from EDIT_LEAD_MS before the next resync is due until it merges: an edit takes
        // some hundreds of ms to reach the kernel (the settle time, a read of 20,000 lines, the
        // write), and in a fast boot a dump reads in less, so edits begun as it starts could
        // all land after it.
        const dueMs = timeOf(lines()[lastStart]!) + Math.max(1_000, RESYNC_TIME_SHARE * Math.min(lastRead, previousRead));
        await new Promise((r) => setTimeout(r, Math.max(0, dueMs - EDIT_LEAD_MS - Date.now())));
        const from = lines().length;
        const roundEdits: { host: string; weight: number }[] = [];
        let sinceBegun = 0;
        for (;;) {
          const begun = lineIndex(dumping, from);
          // Until it merges, and at most EDITS_PER_RESYNC once it has begun (were it due later than
          // reckoned, the edits go on until it begins; the pool's hosts are not the limit).
          if (begun >= 0 && (lineIndex(merging, begun) >= 0 || sinceBegun >= EDITS_PER_RESYNC)) break;
          if (next < 0) throw new Error(`no host left to edit: the resync never began (${edits.length} edits)`);
          const host = hosts[next]!;
          next -= 97;
          const weight = 3 + (edits.length % 5);
          weights.set(host, weight);
          writePool();
          edits.push({ host, weight });
          roundEdits.push({ host, weight });
          if (begun >= 0) sinceBegun++;
          await new Promise((r) => setTimeout(r, EDIT_EVERY_MS));
        }
        const started = await waitForLine(dumping, from, `resync ${round + 1} to start`);
        const merged = await waitForLine(merging, started, `resync ${round + 1} to merge`);
        const readMs = readOf(merged);
        const dumpEndMs = timeOf(lines()[started]!) + readMs;
        for (const e of roundEdits) {
          const acked = await waitForLine(ackOf(e.host, e.weight), from, `the edit of ${e.host} to ${e.weight} acknowledged`, 30_000);
          if (acked > started && timeOf(lines()[acked]!) < dumpEndMs) editedDuringDump++;
        }
        previousRead = lastRead;
        lastRead = readMs;
        lastStart = started;
      }
      // Some edits went in while a dump was reading (else this test proved nothing).
      expect(editedDuringDump, lines().filter((l) => /resync|edit server/.test(l)).slice(-60).join('\n')).toBeGreaterThan(0);

      // One whole resync after the last edit: one that dumps after it and merges.
      const after = lines().length;
      const finalStart = await waitForLine(dumping, after, 'a resync after the last edit');
      await waitForLine(merging, finalStart, 'that resync to merge');
      // Its repair is logged just after the merge line; the hand edit's drift was found by now.
      await waitFor(async () => ((await kernelWeights()).get(handEdited) === 10 ? true : undefined), { timeoutMs: 30_000, intervalMs: 2_000, what: 'the hand edit repaired' });

      const log = lines();
      // Each edited server was edited once, to the weight asked: no resync put the old weight back.
      for (const e of edits) {
        const mine = log.filter((l) => l.includes(`IPVS: edit server TCP ${vip}:80 -> ${e.host}:80:`));
        expect(mine, e.host).toHaveLength(1);
        expect(mine[0]).toMatch(ackOf(e.host, e.weight));
      }
      // The only drift is the hand edit.
      const drift = log.filter((l) => l.includes('IPVS drift'));
      expect(drift.length).toBeGreaterThan(0);
      for (const l of drift) expect(l).toContain(`-> ${handEdited}:80 has route weight 99, expected route weight 10; repairing`);
      expect(log.filter((l) => /could not|reconcile failed|resync failed/.test(l))).toEqual([]);
      // The kernel: every server at its weight.
      const kernel = await kernelWeights();
      expect(kernel.size).toBe(SERVERS);
      const wrong = hosts.filter((h) => kernel.get(h) !== weights.get(h)).map((h) => `${h}: kernel ${kernel.get(h)}, pool ${weights.get(h)}`);
      expect(wrong).toEqual([]);
    },
    900_000,
  );
});
