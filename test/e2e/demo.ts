// `npm run demo` (inside a lab guest, started by test/e2e/demo.sh): pybal in
// a director with three real servers, a client sending requests and a BIRD
// router. Prints what pybal logs as it happens and what the client sees,
// fails a real server, recovers it, and ends with a summary.
import { startLab, type Lab } from '../lab/lab.js';
import { waitFor } from '../lab/exec.js';
import { DEPOOL_BOUND_MS, E2eConfig, E2ePybal, ipvsDestinations, CHECK, type E2eService } from './pybal-lab.js';

const started = Date.now();
const stamp = (): string => `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s]`;
const say = (text: string): void => void process.stdout.write(`${stamp()} ${text}\n`);
const heading = (text: string): void => void process.stdout.write(`\n${stamp()} == ${text}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Echoes the daemon's new log lines every 100 ms. */
function followLog(pybal: E2ePybal): () => void {
  let printed = 0;
  const flush = (): void => {
    const text = pybal.log();
    const end = text.lastIndexOf('\n') + 1;
    if (end <= printed) return;
    // pybal's own timestamp is kept, without the date.
    for (const line of text.slice(printed, end).split('\n')) if (line.length > 0) say(`  pybal  | ${line.replace(/^\d{4}-\d\d-\d\d /, '')}`);
    printed = end;
  };
  const timer = setInterval(flush, 100);
  return () => {
    clearInterval(timer);
    flush();
  };
}

async function routerSays(lab: Lab, prefix: string): Promise<string> {
  const routes = await lab.router.route(prefix);
  return routes.length === 0 ? `router: no route to ${prefix}` : `router: ${prefix} via ${routes.map((r) => r.nextHop).join(', ')}`;
}

async function main(): Promise<void> {
  heading('Booting the lab: a client, a BIRD router, director1 and three real servers (network namespaces in a UML kernel)');
  const lab = await startLab({ realServers: 3, forwarding: 'dr', router: 'bird', families: [4] });
  let stopLog = (): void => undefined;
  try {
    const vip = lab.addr.vip.v4!;
    const prefix = `${vip}/32`;
    say(`VIP ${vip}:80, real servers ${lab.addr.realServers.map((r) => `${r.name}=${r.v4}`).join(' ')}, router ${lab.addr.router.v4}`);
    const conf = new E2eConfig(lab);
    const web: E2eService = { name: 'web' };
    conf.writePool('web', conf.realServerEntries());
    conf.write([web]);
    say(`ProxyFetch every ${CHECK.intervalSec} s, timeout ${CHECK.timeoutSec} s, fall ${CHECK.fall}: a dead server should leave IPVS within ${DEPOOL_BOUND_MS / 1000} s`);

    heading('Starting pybal in director1');
    const pybal = E2ePybal.start(lab, conf.file);
    stopLog = followLog(pybal);
    const nameOf = new Map(lab.addr.realServers.map((r) => [r.v4!, r.name]));
    const pooled = async (): Promise<string[]> => ((await ipvsDestinations(lab)) ?? []).map((a) => nameOf.get(a) ?? a);
    await waitFor(async () => ((await pooled()).length === 3 ? true : undefined), { timeoutMs: 30_000, what: 'three pooled servers' });
    say(`IPVS (ipvsadm -Ln): ${(await pooled()).join(', ')} pooled`);
    await lab.router.waitForRoute(prefix, { timeoutMs: 30_000 });
    say(await routerSays(lab, prefix));

    heading('A client requests http://VIP/ in a loop');
    const load = lab.client.startLoad(lab.vipUrl(4), { requestTimeoutMs: 2_000 });
    let seen = 0;
    const window = (): void => {
      const recent = load.answers.slice(seen);
      seen += recent.length;
      const counts: Record<string, number> = {};
      for (const a of recent) counts[a.servedBy ?? 'FAILED'] = (counts[a.servedBy ?? 'FAILED'] ?? 0) + 1;
      say(`  client | ${Object.entries(counts).sort().map(([k, v]) => `${k} ${v}`).join(', ') || 'no answers'}`);
    };
    const watchClient = setInterval(window, 2_000);
    await sleep(6_000);

    heading('rs2 stops answering (its HTTP port now refuses connections)');
    const rs2 = `${vip}:80 -> ${lab.addr.realServers[1]!.v4}:80`;
    let mark = pybal.log().length;
    const failedAt = Date.now();
    await lab.realServer('rs2').setBehaviour({ mode: 'down' });
    await waitFor(async () => ((await pooled()).includes('rs2') ? undefined : true), { timeoutMs: 30_000, what: 'rs2 depooled' });
    // Delays are read from pybal's own log timestamps: probing in a busy guest is slower than pybal.
    const depoolMs = (pybal.loggedAtMs(`IPVS: delete server TCP ${rs2}`, mark) ?? Date.now()) - failedAt;
    say(`IPVS: ${(await pooled()).join(', ')} pooled; rs2 was depooled ${(depoolMs / 1000).toFixed(1)} s after failing`);
    await sleep(6_000);

    heading('rs2 recovers');
    mark = pybal.log().length;
    const recoveredAt = Date.now();
    await lab.realServer('rs2').setBehaviour({ mode: 'ok' });
    await waitFor(async () => ((await pooled()).includes('rs2') ? true : undefined), { timeoutMs: 30_000, what: 'rs2 repooled' });
    const repoolMs = (pybal.loggedAtMs(`IPVS: add server TCP ${rs2}`, mark) ?? Date.now()) - recoveredAt;
    say(`IPVS: ${(await pooled()).join(', ')} pooled; rs2 was repooled ${(repoolMs / 1000).toFixed(1)} s after recovering`);
    await sleep(6_000);

    clearInterval(watchClient);
    const answers = await load.stop();
    window();
    heading('pybal status');
    for (const line of (await pybal.statusCommand()).trimEnd().split('\n')) say(`  ${line}`);

    heading('SIGTERM: pybal withdraws the VIP and leaves the IPVS table as it is');
    const termAt = Date.now();
    pybal.process.signal('SIGTERM');
    await lab.router.waitForNoRoute(prefix, { timeoutMs: 10_000 });
    const withdrawMs = Date.now() - termAt;
    const exit = await pybal.process.exited;
    stopLog();
    say(await routerSays(lab, prefix));
    say(`IPVS still: ${(await pooled()).join(', ')}`);

    const counts = load.countByServer();
    const failed = answers.filter((a) => a.status !== 200).length;
    heading('Summary');
    say(`client requests: ${answers.length}, answered: ${answers.length - failed}, failed: ${failed}`);
    say(`answered by: ${['rs1', 'rs2', 'rs3'].map((n) => `${n} ${counts[n] ?? 0}`).join(', ')}`);
    say(`rs2 depooled after ${(depoolMs / 1000).toFixed(1)} s (bound: ${DEPOOL_BOUND_MS / 1000} s), repooled after ${(repoolMs / 1000).toFixed(1)} s`);
    say(`VIP gone from the router ${(withdrawMs / 1000).toFixed(1)} s after SIGTERM (as seen by polling it); pybal exited with ${exit.code ?? exit.signal}`);
    if (failed > 0) say('(the failed requests reached rs2 between its failure and its depool: the price of detection)');
  } finally {
    stopLog();
    await lab.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
