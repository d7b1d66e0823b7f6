// DataPathCheck over scripted checks (manual clock): which path each check
// takes, how its reasons say it, the second look at the server's own
// address after a failure (the periodic wrapper's explain), and ARP theft.
import { describe, expect, it } from 'vitest';
import { DataPathCheck } from '../../src/monitors/data-path.js';
import type { CheckSignal } from '../../src/monitors/deadline.js';
import { createPeriodicMonitor } from '../../src/monitors/periodic.js';
import type { ArpWatchLike, CheckOutcome, DataPathRoute } from '../../src/monitors/types.js';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { recorder, target } from './support/helpers.js';

const opts = { intervalMs: 10_000, timeoutMs: 5_000, rise: 1, fall: 1 };

/** A check answering from a script: an outcome, or 'hang' (until aborted, then a timeout-ish failure). */
function scripted(name: string) {
  const script: (CheckOutcome | 'hang')[] = [];
  let runs = 0;
  return {
    script,
    runs: () => runs,
    check: {
      run(signal: CheckSignal): Promise<CheckOutcome> {
        runs++;
        const next = script.shift() ?? { ok: true, reason: `${name} fine` };
        if (next !== 'hang') return Promise.resolve(next);
        return new Promise((resolve) => signal.addEventListener('abort', () => resolve({ ok: false, reason: `${name} aborted` })));
      },
      timeoutReason: (message: string) => `${name} ${message}`,
    },
  };
}

function setup(options: { ready?: boolean; arp?: ArpWatchLike } = {}) {
  const clock = new ManualClock();
  const rec = recorder();
  const vip = scripted('TCP connect to 203.0.113.1:80');
  const own = scripted('TCP connect to 198.51.100.12:80');
  let ready = options.ready ?? true;
  const route: DataPathRoute = { vip: '203.0.113.1', mark: 0x70b00003, method: 'dr', source: '198.51.100.2', ready: () => ready };
  const check = new DataPathCheck(vip.check, own.check, target('198.51.100.12', 80), route, options.arp);
  const monitor = createPeriodicMonitor('TCPConnect', opts, check, rec.deps(clock, { random: () => 0.5 }));
  return { clock, rec, vip, own, monitor, setReady: (r: boolean) => (ready = r), check };
}

describe('DataPathCheck', () => {
  it('checks at the server’s own address until the probe service is in the kernel, and says so', async () => {
    const t = setup({ ready: false });
    t.monitor.start();
    await flushAsync();
    expect([t.vip.runs(), t.own.runs()]).toEqual([0, 1]);
    expect(t.rec.results[0]?.reason).toBe('TCP connect to 198.51.100.12:80 fine (at its own address: its data-path probe service is not in IPVS yet)');
    t.setReady(true);
    t.clock.advance(10_000);
    await flushAsync();
    expect([t.vip.runs(), t.own.runs()]).toEqual([1, 1]);
    expect(t.rec.results[1]?.reason).toBe('to the VIP 203.0.113.1:80 by direct routing (firewall mark 0x70b00003): TCP connect to 203.0.113.1:80 fine');
    await t.monitor.stop();
  });

  it('after a failure on the VIP, looks at the server’s own address and says it answers there', async () => {
    const t = setup();
    t.vip.script.push({ ok: false, reason: 'TCP connect to 203.0.113.1:80 failed: connection refused (ECONNREFUSED)' });
    t.monitor.start();
    await flushAsync();
    expect(t.rec.states()).toEqual(['down']);
    expect(t.rec.reports[0]?.reason).toBe(
      'to the VIP 203.0.113.1:80 by direct routing (firewall mark 0x70b00003): TCP connect to 203.0.113.1:80 failed: connection refused (ECONNREFUSED); ' +
        'it answers at its own address 198.51.100.12:80 but not on the VIP (does it hold 203.0.113.1 on lo?)',
    );
    await t.monitor.stop();
  });

  it('a check on the VIP that times out gets the second look too, under a deadline of its own', async () => {
    const t = setup();
    t.vip.script.push('hang', 'hang');
    t.own.script.push('hang');
    t.monitor.start();
    await flushAsync();
    t.clock.advance(5_000); // the VIP check's deadline
    await flushAsync();
    expect(t.rec.reports).toEqual([]);
    expect(t.own.runs()).toBe(1);
    t.clock.advance(5_000); // the second look's own deadline: the failure stands as it was
    await flushAsync();
    expect(t.rec.reports[0]?.reason).toBe('to the VIP 203.0.113.1:80 by direct routing (firewall mark 0x70b00003): TCP connect to 203.0.113.1:80 timed out after 5 s');
    // Next round (due as the first ended): the VIP times out again, the own address answers.
    await flushAsync();
    t.clock.advance(5_000);
    await flushAsync();
    expect(t.vip.runs()).toBe(2);
    expect(t.rec.results.at(-1)?.reason).toBe(
      'to the VIP 203.0.113.1:80 by direct routing (firewall mark 0x70b00003): TCP connect to 203.0.113.1:80 timed out after 5 s; ' +
        'it answers at its own address 198.51.100.12:80 but not on the VIP (does it hold 203.0.113.1 on lo?)',
    );
    await t.monitor.stop();
  });

  it('a connect to the VIP that finds no local port (the director’s shortage) checks at the server’s own address instead, and says why', async () => {
    const t = setup();
    t.vip.script.push({ ok: false, reason: 'TCP connect to 203.0.113.1:80 failed: no local address or port available (EADDRNOTAVAIL)' });
    t.monitor.start();
    await flushAsync();
    expect(t.rec.reports[0]).toMatchObject({ up: true });
    expect(t.rec.reports[0]?.reason).toBe(
      'TCP connect to 198.51.100.12:80 fine (at its own address: to the VIP 203.0.113.1:80 by direct routing (firewall mark 0x70b00003): ' +
        'TCP connect to 203.0.113.1:80 failed: no local address or port available (EADDRNOTAVAIL): this director has no local port left towards the VIP; see docs/data-path-checks.md)',
    );
    await t.monitor.stop();
  });

  it('says when the server fails at its own address too', async () => {
    const t = setup();
    t.vip.script.push({ ok: false, reason: 'HTTP 503' });
    t.own.script.push({ ok: false, reason: 'HTTP 503 here too' });
    t.monitor.start();
    await flushAsync();
    expect(t.rec.reports[0]?.reason).toMatch(/HTTP 503; it fails at its own address 198\.51\.100\.12:80 too: HTTP 503 here too$/);
    await t.monitor.stop();
  });

  it('fails a server that answers on the VIP but also answers ARP for it, and stops watching when stopped', async () => {
    const watched: string[] = [];
    let answered = true;
    const arp: ArpWatchLike = {
      watch: (vip, ip) => {
        watched.push(`${vip} ${ip}`);
        return () => watched.splice(watched.indexOf(`${vip} ${ip}`), 1);
      },
      answers: () => ({ answered, mac: '02:00:00:00:00:12', device: 'eth0' }),
    };
    const t = setup({ arp });
    expect(watched).toEqual(['203.0.113.1 198.51.100.12']);
    t.monitor.start();
    await flushAsync();
    expect(t.rec.reports[0]).toMatchObject({ up: false });
    expect(t.rec.reports[0]?.reason).toContain('but it answers ARP requests for 203.0.113.1 on eth0 (MAC 02:00:00:00:00:12)');
    // No second look: its own address would say nothing about ARP.
    expect(t.own.runs()).toBe(0);
    answered = false;
    t.clock.advance(10_000);
    await flushAsync();
    expect(t.rec.states()).toEqual(['down', 'up']);
    await t.monitor.stop();
    expect(watched).toEqual([]);
  });
});
