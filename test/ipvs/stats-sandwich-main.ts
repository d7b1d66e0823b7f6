// Run in a lab director's namespace (node dist/test/ipvs/stats-sandwich-main.js
// <stats|rate> [attempts]): reads the kernel's counters with ipvsadm, then
// with `pybal ipvs` (runIpvsCommand, in this process: no start-up between
// the readings), then with ipvsadm again, until both ipvsadm readings agree
// (the kernel's estimator, every 2 s, did not run in between). Prints
// { attempts, ipvsadm, pybal } as JSON: the test compares the two texts.
import { execFileSync } from 'node:child_process';
import { runIpvsCommand } from '../../src/cli/ipvs.js';

const view = process.argv[2] === 'rate' ? 'rate' : 'stats';
const maxAttempts = Number(process.argv[3] ?? 20);

function ipvsadm(): string {
  return execFileSync('ipvsadm', ['-Ln', `--${view}`], { encoding: 'utf8' });
}

async function pybal(): Promise<string> {
  let out = '';
  let err = '';
  const status = await runIpvsCommand({ stdout: (t) => (out += t), stderr: (t) => (err += t) }, { view });
  if (status !== 0) throw new Error(`pybal ipvs --${view} exited ${status}: ${err}`);
  return out;
}

let result = { attempts: 0, ipvsadm: '', pybal: '', stable: false };
for (let attempt = 1; attempt <= maxAttempts; attempt++) {
  const before = ipvsadm();
  const ours = await pybal();
  const after = ipvsadm();
  result = { attempts: attempt, ipvsadm: before, pybal: ours, stable: before === after };
  if (result.stable) break;
}
process.stdout.write(JSON.stringify(result));
