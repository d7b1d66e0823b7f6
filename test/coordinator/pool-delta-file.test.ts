// From a real pool file to the coordinator, with the delta path in play:
// random edits of weights and enabled flags (most arrive as deltas), and now
// and then a server added, removed or moved (whole pools). After each edit,
// what the coordinator pools is exactly what the file says: a weight edit
// never gets lost on the way (issue 11 saw one never reach the kernel).
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { createFileSource } from '../../src/pool/file-source.js';
import type { PoolSource } from '../../src/pool/types.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { createRandomInt } from '../support/random.js';
import { fakeMonitors, serviceConfig } from './support/fakes.js';

describe('pool file -> coordinator, with deltas', () => {
  let source: PoolSource | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await source?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('pools exactly what the file says after each of 60 random edits', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pybal-delta-'));
    const path = join(dir, 'pool');
    const random = createRandomInt(11);
    const clock = createSystemClock();
    const log = createMemoryLogger();
    // Literal addresses: no resolution to wait for.
    type Line = { ip: string; weight: number; enabled: boolean };
    let lines: Line[] = Array.from({ length: 300 }, (_, i) => ({ ip: `10.0.${i >> 8}.${i & 255}`, weight: 10, enabled: true }));
    let written = 0;
    const write = async (): Promise<void> => {
      const text = lines.map((l) => `{ 'host': '${l.ip}', 'weight': ${l.weight}, 'enabled': ${l.enabled ? 'True' : 'False'} }`).join('\n') + '\n';
      // As an editor or `sed -i` does: a new file renamed over the old one.
      const tmp = `${path}.${written++}`;
      await writeFile(tmp, text);
      await rename(tmp, path);
    };
    await write();
    const coordinator = new Coordinator(serviceConfig({ monitors: [] }), {
      clock,
      logger: log.logger,
      createMonitor: fakeMonitors().create,
      resolve: () => Promise.reject(new Error('no names here')),
      onChange: () => undefined,
    });
    source = createFileSource(`file://${path}`, { clock, logger: log.logger.child({ component: 'pool' }) });
    source.start((event) => coordinator.onPoolEvent(event));
    const want = (): string => lines.filter((l) => l.enabled).map((l) => `${l.ip}:${l.weight}`).sort().join(' ');
    const have = (): string => coordinator.pooledServers().map((s) => `${s.address}:${s.weight}`).sort().join(' ');
    const settle = async (what: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (have() !== want()) {
        if (Date.now() > deadline) throw new Error(`${what}: the coordinator pools ${have().slice(0, 200)}... instead of ${want().slice(0, 200)}...`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    await settle('the first pool');
    for (let step = 0; step < 60; step++) {
      const at = random(lines.length);
      const roll = random(10);
      if (roll === 0) lines.splice(at, 0, { ip: `10.9.${step >> 8}.${step & 255}`, weight: 5, enabled: true });
      else if (roll === 1) lines.splice(at, 1);
      else if (roll === 2) lines = [...lines.slice(at), ...lines.slice(0, at)];
      else if (roll === 3) lines[at] = { ...lines[at]!, enabled: !lines[at]!.enabled };
      else lines[at] = { ...lines[at]!, weight: (lines[at]!.weight + 1 + random(5)) % 20 };
      await write();
      await settle(`edit ${step}`);
    }
    expect(log.lines().filter((l) => l.includes('ERROR'))).toEqual([]);
  }, 120_000);
});
