// End to end: pybal keeps the kernel's IPVS connection-sync daemons as
// pybal.conf's ipvs-sync-* keys say, on the lab guest's real kernel, read
// back with `ipvsadm -L --daemon` as an operator would. (That synced
// connections survive a failover between two directors is in
// failover.lab.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, type E2eService } from './pybal-lab.js';

const web: E2eService = { name: 'web', vipIndex: 0, extra: ["monitors = [ 'IdleConnection' ]"] };
/** A resync every 2 s: a daemon stopped by hand is put back within that. */
const RESYNC = 'ipvs-resync-interval = 2';

/** `ipvsadm -L --daemon` as { state: its settings }, e.g. { master: 'mcast=eth0, syncid=1, ...' }. */
function daemonsOf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^(master|backup) sync daemon \((.*)\)$/gm)) out[m[1]!] = m[2]!;
  return out;
}

describe('e2e: the IPVS sync daemons from pybal.conf', () => {
  let lab: Lab;
  let conf: E2eConfig;
  let pybal: E2ePybal;
  const daemons = async (): Promise<Record<string, string>> => daemonsOf(await lab.ipvsadm(['-L', '--daemon']));
  const waitForDaemons = (want: (d: Record<string, string>) => boolean, what: string): Promise<Record<string, string>> =>
    waitFor(
      async () => {
        const d = await daemons();
        return want(d) ? d : undefined;
      },
      { timeoutMs: 20_000, what },
    );
  async function reload(globalExtra: string[]): Promise<number> {
    conf.write([web], { bgp: false, globalExtra });
    const mark = pybal.log().length;
    pybal.process.signal('SIGHUP');
    await waitFor(async () => pybal.logSince(mark).find((l) => l.includes('Configuration reloaded')), { timeoutMs: 20_000, what: 'the reload' });
    return mark;
  }

  beforeAll(async () => {
    lab = await startLab({ realServers: 1, forwarding: 'dr', router: 'none', families: [4] });
    conf = new E2eConfig(lab);
    conf.writePool(web.name, conf.realServerEntries());
    conf.write([web], { bgp: false, globalExtra: [RESYNC, 'ipvs-sync-daemon = both', 'ipvs-sync-interface = eth0', 'ipvs-sync-id = 7'] });
    pybal = E2ePybal.start(lab, conf.file);
  }, 90_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('ipvs-sync-daemon = both starts a master and a backup on the interface with the sync id, and says so', async () => {
    const d = await waitForDaemons((x) => x.master !== undefined && x.backup !== undefined, 'a master and a backup');
    expect(d.master).toMatch(/^mcast=eth0, syncid=7\b/);
    expect(d.backup).toMatch(/^mcast=eth0, syncid=7\b/);
    // The kernel's defaults, which pybal left to it.
    expect(d.master).toMatch(/group=224\.0\.0\.81, port=8848, ttl=1/);
    const started = await waitFor(
      async () => {
        const lines = pybal.logSince(0).filter((l) => l.includes('Started the IPVS sync daemon'));
        return lines.length === 2 ? lines : undefined;
      },
      { what: 'two log lines' },
    );
    expect(started[0]).toMatch(/INFO.*Started the IPVS sync daemon master on eth0, sync id 7, group 224\.0\.0\.81 port 8848 ttl 1$/);
    // IPVS itself is programmed as ever.
    await waitFor(async () => ((await lab.ipvsTable()).map((s) => s.destinations.length).join() === '1' ? true : undefined), { what: 'the service with its server' });
  });

  it('a daemon stopped by hand is started again at the next resync', async () => {
    await lab.ipvsadm(['--stop-daemon', 'backup']);
    expect((await daemons()).backup).toBeUndefined();
    const d = await waitForDaemons((x) => x.backup !== undefined, 'the backup back');
    expect(d.backup).toMatch(/^mcast=eth0, syncid=7\b/);
  });

  it('a SIGHUP with another sync id, group, port and TTL restarts them so; master alone stops the backup', async () => {
    await reload([RESYNC, 'ipvs-sync-daemon = both', 'ipvs-sync-interface = eth0', 'ipvs-sync-id = 9', 'ipvs-sync-group = 239.1.1.9', 'ipvs-sync-port = 8850', 'ipvs-sync-ttl = 2']);
    const d = await waitForDaemons((x) => /syncid=9\b/.test(x.master ?? '') && /syncid=9\b/.test(x.backup ?? ''), 'both at sync id 9');
    expect(d.master).toMatch(/group=239\.1\.1\.9, port=8850, ttl=2/);
    expect(d.backup).toMatch(/group=239\.1\.1\.9, port=8850/);

    await reload([RESYNC, 'ipvs-sync-daemon = master', 'ipvs-sync-interface = eth0', 'ipvs-sync-id = 9', 'ipvs-sync-group = 239.1.1.9', 'ipvs-sync-port = 8850', 'ipvs-sync-ttl = 2']);
    await waitForDaemons((x) => x.backup === undefined && x.master !== undefined, 'the master alone');
  });

  it('an interface the director lacks: one error in the log however many resyncs; once put right the daemon starts and the log says so', async () => {
    const mark = await reload([RESYNC, 'ipvs-sync-daemon = master', 'ipvs-sync-interface = nosuch0', 'ipvs-sync-id = 9']);
    await waitFor(async () => pybal.logSince(mark).find((l) => l.includes('Could not start the IPVS sync daemon master on nosuch0')), {
      timeoutMs: 20_000,
      what: 'the error',
    });
    // Two resyncs later, still one line.
    await new Promise((r) => setTimeout(r, 5_000));
    const errors = pybal.logSince(mark).filter((l) => l.includes('Could not start the IPVS sync daemon'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/ERROR.*: IPVS_CMD_NEW_DAEMON master sync daemon: ENODEV \(this director has no interface nosuch0\); /);
    // The old master was stopped to start the new one, which the kernel refused: none runs, as the file cannot have it.
    expect(await daemons()).toEqual({});
    expect(pybal.process.running).toBe(true);

    const fixed = await reload([RESYNC, 'ipvs-sync-daemon = master', 'ipvs-sync-interface = eth0', 'ipvs-sync-id = 9']);
    await waitForDaemons((x) => /^mcast=eth0, syncid=9\b/.test(x.master ?? ''), 'the master on eth0');
    await waitFor(async () => pybal.logSince(fixed).find((l) => l.includes('The IPVS sync daemons are as configured again')), { what: 'the all-clear' });
  });

  it('ipvs-sync-daemon = none stops them; gone from the file, pybal leaves an operator\'s own alone', async () => {
    await reload([RESYNC, 'ipvs-sync-daemon = none']);
    await waitForDaemons((x) => Object.keys(x).length === 0, 'no daemon');

    await reload([RESYNC]);
    await lab.ipvsadm(['--start-daemon', 'backup', '--mcast-interface', 'eth0', '--syncid', '3']);
    await new Promise((r) => setTimeout(r, 5_000));
    expect((await daemons()).backup).toMatch(/^mcast=eth0, syncid=3\b/);
    expect((await daemons()).master).toBeUndefined();
  });

  it('pybal stopping leaves the daemons running, as it leaves the table', async () => {
    await reload([RESYNC, 'ipvs-sync-daemon = both', 'ipvs-sync-interface = eth0', 'ipvs-sync-id = 3']);
    await waitForDaemons((x) => /syncid=3\b/.test(x.master ?? '') && /syncid=3\b/.test(x.backup ?? ''), 'both at sync id 3');
    pybal.process.signal('SIGTERM');
    expect((await pybal.process.exited).code).toBe(0);
    const d = await daemons();
    expect(d.master).toMatch(/^mcast=eth0, syncid=3\b/);
    expect(d.backup).toMatch(/^mcast=eth0, syncid=3\b/);
  });
});
